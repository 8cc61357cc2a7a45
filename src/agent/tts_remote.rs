//! What the remote synthesizers share: the session that talks to a driver task, timeout and
//! retry parameters, the retry backoff, and scrubbing a secret out of provider text before it
//! becomes an error.

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::registry::{BuildError, StageParams};
use super::stages::{StageError, TtsAudio, TtsSession};

/// A piece of pushed text, as the driver task receives it.
#[derive(Debug)]
pub struct Piece {
    /// The text as pushed.
    pub text: String,
    /// Bytes of pushed text spoken once this piece has played (its end).
    pub text_done: usize,
}

/// Frames (or the one error that ends the session) from a driver task.
pub type AudioSender = mpsc::UnboundedSender<Result<TtsAudio, StageError>>;

/// A [`TtsSession`] whose work happens in a driver task: pushes go down one channel, frames
/// come up another, cancel and drop abort the task.
#[derive(Debug)]
pub struct RemoteSession {
    /// The stage's name, for errors.
    stage: &'static str,
    /// Pieces to the driver; `None` once finished.
    cmd: Option<mpsc::UnboundedSender<Piece>>,
    /// Frames (or the one error) from the driver.
    audio: mpsc::UnboundedReceiver<Result<TtsAudio, StageError>>,
    /// The driver, aborted on cancel and drop.
    task: JoinHandle<()>,
    /// Bytes of text pushed so far.
    text_len: usize,
    /// Cancelled.
    closed: bool,
}

impl RemoteSession {
    /// Spawns `driver(pieces, audio)` on `runtime`; the session ends when the driver drops
    /// its sender (after sending an error, or when all audio is out).
    pub fn spawn<F, Fut>(stage: &'static str, runtime: &Handle, driver: F) -> Self
    where
        F: FnOnce(mpsc::UnboundedReceiver<Piece>, AudioSender) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (audio_tx, audio_rx) = mpsc::unbounded_channel();
        let task = runtime.spawn(driver(cmd_rx, audio_tx));
        Self {
            stage,
            cmd: Some(cmd_tx),
            audio: audio_rx,
            task,
            text_len: 0,
            closed: false,
        }
    }

    fn closed(&self) -> StageError {
        StageError::Closed {
            stage: self.stage.to_owned(),
        }
    }
}

impl TtsSession for RemoteSession {
    fn push_text(&mut self, text: &str) -> Result<(), StageError> {
        let Some(tx) = self.cmd.as_ref().filter(|_| !self.closed) else {
            return Err(self.closed());
        };
        self.text_len += text.len();
        // A send error means the driver already stopped; its error (if any) is in the channel.
        let _ = tx.send(Piece {
            text: text.to_owned(),
            text_done: self.text_len,
        });
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StageError> {
        if self.closed {
            return Err(self.closed());
        }
        self.cmd = None;
        Ok(())
    }

    fn cancel(&mut self) {
        self.closed = true;
        self.cmd = None;
        self.task.abort();
    }

    fn poll_audio(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<TtsAudio, StageError>>> {
        if self.closed {
            return Poll::Ready(None);
        }
        self.audio.poll_recv(cx)
    }
}

impl Drop for RemoteSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

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
