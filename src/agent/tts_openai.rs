//! The `openai` synthesizer: OpenAI's (or a compatible server's) `POST {base_url}/audio/speech`
//! with `response_format: "pcm"`, whose reply is raw 24 kHz 16-bit little-endian mono PCM
//! streamed with chunked transfer encoding (chunks of any length, odd ones included).
//!
//! Each pushed text is one request, sent in order, one at a time; its audio is streamed out
//! as it arrives, resampled to the session rate in 20 ms frames, and its last frame carries
//! `text_done` (the end of that text). A driver task owns the HTTP exchange; the session
//! reads its channel. Connect errors, 429 and 5xx are retried (`retries`, honouring
//! `Retry-After`) as long as that request has produced no audio.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::registry::{BuildError, StageParams};
use super::stages::{StageError, Tts, TtsAudio, TtsSession};
use super::tts_framer::TtsFramer;
use super::tts_remote::{Piece, RemoteSession};
use super::tts_remote::{RemoteOptions, backoff, parse_retry_after, redact};
use crate::codec::resample::RATES;
use crate::config::Secret;

const STAGE: &str = "tts openai";

/// The rate of OpenAI's `pcm` format.
pub const PCM_RATE: u32 = 24_000;

/// Largest error body read from the provider.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What one `openai` stage sends.
#[derive(Debug, Clone)]
struct Settings {
    /// `{base_url}/audio/speech`.
    url: String,
    model: String,
    voice: String,
    speed: Option<f64>,
    instructions: Option<String>,
    key: Secret,
    opts: RemoteOptions,
}

/// The JSON body of `POST /audio/speech`.
#[derive(Debug, Serialize)]
struct SpeechRequest<'a> {
    model: &'a str,
    input: &'a str,
    voice: &'a str,
    response_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    speed: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<&'a str>,
}

/// The `openai` pipeline stage.
#[derive(Debug, Clone)]
pub struct OpenAiTts {
    settings: Arc<Settings>,
    client: reqwest::Client,
    runtime: Handle,
}

impl OpenAiTts {
    /// Reads `base_url`, `model`, `voice`, `speed`, `instructions`, `api_key_env` and the
    /// timeouts; needs a tokio runtime (the driver tasks are spawned on it).
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        let bad = |key: &str, reason: String| BuildError::BadParam {
            stage: STAGE.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let base = p
            .string("base_url")?
            .unwrap_or_else(|| "https://api.openai.com/v1".to_owned());
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(bad("base_url", format!("{base:?} is not an http(s) URL")));
        }
        let model = p
            .string("model")?
            .unwrap_or_else(|| "gpt-4o-mini-tts".to_owned());
        let voice = p.string("voice")?.unwrap_or_else(|| "alloy".to_owned());
        let speed = match p.value("speed") {
            None => None,
            Some(_) => Some(p.number("speed", 1.0, 0.25..=4.0)?),
        };
        let instructions = p.string("instructions")?;
        let key = p.secret("api_key_env")?;
        let opts = RemoteOptions::from_params(p)?;
        let runtime = Handle::try_current().map_err(|_| {
            bad(
                "api_key_env",
                "no tokio runtime to run the HTTP client on".to_owned(),
            )
        })?;
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .build()
            .map_err(|e| bad("base_url", format!("HTTP client: {e}")))?;
        Ok(Self {
            settings: Arc::new(Settings {
                url: format!("{}/audio/speech", base.trim_end_matches('/')),
                model,
                voice,
                speed,
                instructions,
                key,
                opts,
            }),
            client,
            runtime,
        })
    }
}

impl Tts for OpenAiTts {
    fn start(&mut self, rate: u32) -> Result<Box<dyn TtsSession>, StageError> {
        let framer = TtsFramer::new(PCM_RATE, rate).map_err(|_| StageError::Unsupported {
            stage: STAGE.to_owned(),
            reason: format!("sample rate {rate} (one of {RATES:?})"),
        })?;
        let settings = self.settings.clone();
        let client = self.client.clone();
        Ok(Box::new(RemoteSession::spawn(
            STAGE,
            &self.runtime,
            |pieces, audio| {
                Driver {
                    settings,
                    client,
                    framer,
                    audio,
                }
                .run(pieces)
            },
        )))
    }
}

/// Why one attempt failed, and whether another may follow.
#[derive(Debug)]
struct Failure {
    reason: String,
    /// Worth another attempt (connect error, 429, 5xx) with this provider-asked delay.
    retry: Option<Option<Duration>>,
}

impl Failure {
    fn fatal(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retry: None,
        }
    }
}

/// The task behind one session.
struct Driver {
    settings: Arc<Settings>,
    client: reqwest::Client,
    framer: TtsFramer,
    audio: mpsc::UnboundedSender<Result<TtsAudio, StageError>>,
}

impl Driver {
    async fn run(mut self, mut pieces: mpsc::UnboundedReceiver<Piece>) {
        while let Some(piece) = pieces.recv().await {
            if let Err(reason) = self.speak(&piece).await {
                let _ = self.audio.send(Err(StageError::Provider {
                    stage: STAGE.to_owned(),
                    reason: redact(&reason, self.settings.key.expose()),
                }));
                return;
            }
        }
    }

    /// Speaks one piece, with retries while it has produced no audio.
    async fn speak(&mut self, piece: &Piece) -> Result<(), String> {
        if piece.text.trim().is_empty() {
            return self.end_piece(piece.text_done);
        }
        let mut attempt = 0;
        loop {
            let (failure, produced) = match self.attempt(&piece.text).await {
                Ok(()) => return self.end_piece(piece.text_done),
                Err(f) => f,
            };
            match failure.retry {
                Some(after) if !produced && attempt < self.settings.opts.retries => {
                    tracing::info!(stage = STAGE, reason = %redact(&failure.reason, self.settings.key.expose()), attempt, "retrying");
                    tokio::time::sleep(backoff(attempt, after)).await;
                    attempt += 1;
                }
                _ => return Err(failure.reason),
            }
        }
    }

    fn end_piece(&mut self, text_done: usize) -> Result<(), String> {
        let at = self.framer.position();
        self.framer.mark(at, text_done);
        let mut frames = Vec::new();
        self.framer.flush(&mut frames).map_err(|e| e.to_string())?;
        self.send(frames);
        Ok(())
    }

    fn send(&self, frames: Vec<TtsAudio>) {
        for f in frames {
            let _ = self.audio.send(Ok(f));
        }
    }

    /// One request; `Err((failure, produced_audio))`.
    async fn attempt(&mut self, text: &str) -> Result<(), (Failure, bool)> {
        let s = self.settings.clone();
        let body = SpeechRequest {
            model: &s.model,
            input: text,
            voice: &s.voice,
            response_format: "pcm",
            speed: s.speed,
            instructions: s.instructions.as_deref(),
        };
        let deadline = tokio::time::Instant::now() + s.opts.first_byte_timeout;
        let send = self
            .client
            .post(&s.url)
            .bearer_auth(s.key.expose())
            .json(&body)
            .send();
        let resp = match tokio::time::timeout_at(deadline, send).await {
            Err(_) => {
                return Err((
                    Failure::fatal(format!(
                        "no reply within {} ms",
                        s.opts.first_byte_timeout.as_millis()
                    )),
                    false,
                ));
            }
            Ok(Err(e)) => {
                let retry = (e.is_connect() || e.is_timeout()).then_some(None);
                return Err((
                    Failure {
                        reason: format!("request failed: {}", error_chain(&e)),
                        retry,
                    },
                    false,
                ));
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if !status.is_success() {
            return Err((status_failure(resp, deadline).await, false));
        }
        let mut body = resp.bytes_stream();
        let mut odd: Option<u8> = None;
        let mut produced = false;
        let mut samples = Vec::new();
        let mut frames = Vec::new();
        loop {
            let next = if produced {
                tokio::time::timeout(s.opts.stall_timeout, body.next()).await
            } else {
                tokio::time::timeout_at(deadline, body.next()).await
            };
            let chunk = match next {
                Err(_) => {
                    let what = if produced {
                        format!("audio stalled for {} ms", s.opts.stall_timeout.as_millis())
                    } else {
                        format!(
                            "no audio within {} ms",
                            s.opts.first_byte_timeout.as_millis()
                        )
                    };
                    return Err((Failure::fatal(what), produced));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err((
                        Failure::fatal(format!("audio stream broken: {}", error_chain(&e))),
                        produced,
                    ));
                }
                Ok(Some(Ok(c))) => c,
            };
            if chunk.is_empty() {
                continue;
            }
            produced = true;
            samples.clear();
            let mut bytes = &chunk[..];
            if let Some(lo) = odd.take() {
                samples.push(i16::from_le_bytes([lo, bytes[0]]));
                bytes = &bytes[1..];
            }
            let pairs = bytes.chunks_exact(2);
            if let [last] = pairs.remainder() {
                odd = Some(*last);
            }
            samples.extend(pairs.map(|b| i16::from_le_bytes([b[0], b[1]])));
            frames.clear();
            self.framer
                .push(&samples, &mut frames)
                .map_err(|e| (Failure::fatal(e.to_string()), true))?;
            self.send(std::mem::take(&mut frames));
        }
        Ok(())
    }
}

/// The failure a non-2xx reply stands for, with OpenAI's error message when the body has one.
async fn status_failure(resp: reqwest::Response, deadline: tokio::time::Instant) -> Failure {
    let status = resp.status();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = header("retry-after-ms")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .or_else(|| header("retry-after").and_then(|v| parse_retry_after(&v)));
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, stream.next()).await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ERROR_BODY {
            break;
        }
    }
    let detail = error_message(&body);
    let reason = match detail {
        Some(d) => format!("HTTP {status}: {d}"),
        None => format!("HTTP {status}"),
    };
    let retry = (status.as_u16() == 429 || status.is_server_error()).then_some(retry_after);
    Failure { reason, retry }
}

/// `message (code)` from an OpenAI error body `{"error": {"message", "type", "code"}}`.
fn error_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
    let code = e
        .get("code")
        .and_then(|c| c.as_str())
        .or_else(|| e.get("type").and_then(|t| t.as_str()));
    Some(match code {
        Some(c) if !message.is_empty() => format!("{message} ({c})"),
        Some(c) => c.to_owned(),
        None => message.to_owned(),
    })
}

/// An error with its sources (reqwest's own message is often just "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_give_message_and_code() {
        let body = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("Rate limit reached (rate_limit_exceeded)")
        );
        assert_eq!(
            error_message(br#"{"error":{"message":"boom","type":"server_error"}}"#).as_deref(),
            Some("boom (server_error)")
        );
        assert_eq!(error_message(b"<html>"), None);
    }

    #[test]
    fn request_body_has_the_documented_fields() {
        let body = SpeechRequest {
            model: "gpt-4o-mini-tts",
            input: "Hi.",
            voice: "alloy",
            response_format: "pcm",
            speed: None,
            instructions: Some("calm"),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"model":"gpt-4o-mini-tts","input":"Hi.","voice":"alloy","response_format":"pcm","instructions":"calm"})
        );
    }
}
