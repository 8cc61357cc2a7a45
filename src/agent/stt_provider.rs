//! What the remote recognizers share: timeouts and retries read from params, the backoff that
//! honours `Retry-After`, secret redaction of provider messages, and the captured runtime.

use std::time::Duration;

use tokio::runtime::Handle;

use super::registry::{BuildError, StageParams};
use super::stages::StageError;
use crate::config::Secret;

/// Longest `Retry-After` honoured; a provider asking for more fails the request instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Longest provider message kept in an error reason.
const MAX_REASON: usize = 300;

/// Timeouts and retry budget of one remote stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderLimits {
    /// TCP + TLS (+ WebSocket handshake) must finish within this.
    pub connect_timeout: Duration,
    /// After the request (or first audio) is sent, the first reply byte must come within this.
    pub first_byte_timeout: Duration,
    /// Once replies flow, a gap longer than this while a reply is owed is a stall.
    pub stall_timeout: Duration,
    /// Retries of connect errors, 429 and 5xx before any output.
    pub retries: u32,
}

impl ProviderLimits {
    /// Reads `connect_timeout_ms`, `first_byte_timeout_ms`, `stall_timeout_ms` and `retries`.
    pub fn from_params(p: &StageParams<'_>, defaults: (u64, u64, u64)) -> Result<Self, BuildError> {
        let ms = |key: &str, default: u64| -> Result<Duration, BuildError> {
            Ok(Duration::from_millis(
                p.number(key, default as f64, 1.0..=600_000.0)? as u64,
            ))
        };
        Ok(Self {
            connect_timeout: ms("connect_timeout_ms", defaults.0)?,
            first_byte_timeout: ms("first_byte_timeout_ms", defaults.1)?,
            stall_timeout: ms("stall_timeout_ms", defaults.2)?,
            retries: p.number("retries", 2.0, 0.0..=10.0)? as u32,
        })
    }
}

/// The runtime the stage's driver tasks will run on: the one the stage is built inside.
pub fn runtime_handle(stage: &str) -> Result<Handle, BuildError> {
    Handle::try_current().map_err(|_| BuildError::BadParam {
        stage: stage.to_owned(),
        key: "name".to_owned(),
        reason: "this stage needs a tokio runtime: build it from inside one".to_owned(),
    })
}

/// How long to wait before retry number `attempt` (0-based): `Retry-After` when the provider
/// gave one (capped), else 250 ms doubling.
pub fn retry_delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    retry_after
        .map(|d| d.min(MAX_RETRY_AFTER))
        .unwrap_or_else(|| Duration::from_millis(250u64 << attempt.min(6)))
}

/// A `Retry-After` header value in seconds (the HTTP-date form is not used by these APIs).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let v = value?.trim();
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_millis((s.min(3600.0) * 1000.0) as u64))
}

/// Whether an HTTP status is worth retrying (rate limit or server error).
pub fn status_is_retryable(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// `text` with every occurrence of the key replaced by `***`, control characters removed and
/// cut to a readable length.
pub fn redact(text: &str, key: &Secret) -> String {
    let key = key.expose();
    let cleaned = if key.is_empty() {
        text.to_owned()
    } else {
        text.replace(key, "***")
    };
    let mut out: String = cleaned
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect();
    if cleaned.chars().count() > MAX_REASON {
        out.push('…');
    }
    out
}

/// A provider error for stage `stage`, with the key redacted from `reason`.
pub fn provider_error(stage: &str, reason: &str, key: &Secret) -> StageError {
    StageError::Provider {
        stage: stage.to_owned(),
        reason: redact(reason, key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_honours_retry_after() {
        assert_eq!(retry_delay(0, None), Duration::from_millis(250));
        assert_eq!(retry_delay(2, None), Duration::from_millis(1000));
        assert_eq!(
            retry_delay(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            retry_delay(0, Some(Duration::from_secs(500))),
            MAX_RETRY_AFTER
        );
        assert_eq!(
            parse_retry_after(Some(" 1.5 ")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after(Some("soon")), None);
        assert_eq!(parse_retry_after(Some("-1")), None);
    }

    #[test]
    fn redaction_removes_the_key_and_bounds_length() {
        let key = Secret::new("sk-live-42");
        assert_eq!(
            redact("bad key sk-live-42\n", &key),
            "bad key ***".to_owned() + " "
        );
        let long = "x".repeat(1000);
        assert_eq!(redact(&long, &key).chars().count(), MAX_REASON + 1);
        assert!(status_is_retryable(429) && status_is_retryable(503));
        assert!(!status_is_retryable(401));
    }
}
