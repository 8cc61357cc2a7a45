//! What the remote synthesizers share: timeout and retry parameters, the retry backoff, and
//! scrubbing a secret out of provider text before it becomes an error.

use std::time::Duration;

use super::registry::{BuildError, StageParams};

/// Timeouts and retries of one remote stage (`connect_timeout_ms`, `first_byte_timeout_ms`,
/// `stall_timeout_ms`, `retries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Limit for opening the connection (TCP + TLS + upgrade).
    pub connect_timeout: Duration,
    /// Limit from sending a request to its first audio byte.
    pub first_byte_timeout: Duration,
    /// Longest silence of the provider while audio is still owed.
    pub stall_timeout: Duration,
    /// Extra attempts on connect errors, 429 and 5xx before any audio came.
    pub retries: u32,
}

impl RemoteOptions {
    /// Reads the four parameters, with defaults 5 s, 10 s, 10 s and 2 retries.
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        let ms = |key: &str, default: f64| -> Result<Duration, BuildError> {
            Ok(Duration::from_millis(
                p.number(key, default, 1.0..=600_000.0)? as u64,
            ))
        };
        Ok(Self {
            connect_timeout: ms("connect_timeout_ms", 5000.0)?,
            first_byte_timeout: ms("first_byte_timeout_ms", 10_000.0)?,
            stall_timeout: ms("stall_timeout_ms", 10_000.0)?,
            retries: p.number("retries", 2.0, 0.0..=10.0)? as u32,
        })
    }
}

/// Longest wait between attempts, whatever `Retry-After` asks.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// The wait before retry number `attempt` (0-based): the provider's `Retry-After` when it
/// gave one, else 250 ms doubling.
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or_else(|| Duration::from_millis(250u64 << attempt.min(6)))
        .min(MAX_BACKOFF)
}

/// A `Retry-After` value in seconds (integer or decimal; HTTP dates are not honoured).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// Provider text made safe for an error: the secret replaced by `***`, control characters
/// dropped, at most 300 characters.
pub fn redact(text: &str, secret: &str) -> String {
    let cleaned = if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "***")
    };
    let mut out: String = cleaned
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    if cleaned.chars().count() > 300 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_honours_retry_after_within_a_cap() {
        assert_eq!(backoff(0, None), Duration::from_millis(250));
        assert_eq!(backoff(2, None), Duration::from_millis(1000));
        assert_eq!(
            backoff(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(backoff(0, Some(Duration::from_secs(999))), MAX_BACKOFF);
        assert_eq!(parse_retry_after(" 1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn redact_hides_the_secret_and_bounds_the_text() {
        assert_eq!(
            redact("Incorrect API key provided: sk-123\n.", "sk-123"),
            "Incorrect API key provided: ***."
        );
        let long = "x".repeat(1000);
        assert_eq!(redact(&long, "k").chars().count(), 301);
    }
}
