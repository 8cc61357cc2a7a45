//! `openai` STT: one `POST {base_url}/audio/transcriptions` per utterance (OpenAI Whisper,
//! or an OpenAI-compatible server such as faster-whisper-server / speaches).
//!
//! The session buffers the utterance's audio; [`SttSession::end_utterance`] hands it to the
//! session's driver task, which sends it as a 16-bit PCM WAV in a multipart form and answers
//! with one [`SttEvent::Final`]. Utterances are transcribed one at a time, in order.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Deserialize;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::registry::{BuildError, StageParams};
use super::stages::{StageError, Stt, SttEvent, SttSession, Word};
use super::stt_provider::{
    ProviderLimits, parse_retry_after, provider_error, retry_delay, runtime_handle,
    status_is_retryable,
};
use crate::config::Secret;

/// The registered name.
const STAGE: &str = "openai";
/// Utterances that may wait for transcription.
const UTTERANCE_QUEUE: usize = 8;
/// Events the driver may queue ahead of the call's task.
const EVENT_QUEUE: usize = 16;
/// Largest reply body read.
const MAX_BODY: usize = 1 << 20;
/// Longest utterance buffered (the API takes files up to 25 MB; a turn is far shorter).
const MAX_UTTERANCE_SECONDS: usize = 120;
/// Shorter audio is not sent: the API rejects clips under 0.1 s.
const MIN_UTTERANCE_MS: usize = 100;

/// Settings of the `openai` stage.
#[derive(Debug, Clone)]
pub struct OpenAiSttConfig {
    /// `https://api.openai.com/v1` or a compatible server.
    pub base_url: String,
    /// Model (`whisper-1`, `gpt-4o-transcribe`, a faster-whisper model name...).
    pub model: String,
    /// ISO-639-1 language, or auto-detect.
    pub language: Option<String>,
    /// Ask for `verbose_json` with word timestamps.
    pub word_timestamps: bool,
    /// Sent as `Authorization: Bearer <key>`.
    pub api_key: Secret,
    /// Timeouts and retries.
    pub limits: ProviderLimits,
}

/// The `openai` recognizer: batch transcription of each utterance over HTTP.
#[derive(Debug, Clone)]
pub struct OpenAiStt {
    /// Shared by every session.
    config: Arc<OpenAiSttConfig>,
    /// One connection pool per stage instance.
    client: reqwest::Client,
    /// The runtime the drivers run on (captured at build time).
    handle: Handle,
}

impl OpenAiStt {
    /// A recognizer with `config`, whose drivers run on `handle`.
    pub fn new(config: OpenAiSttConfig, handle: Handle) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.limits.connect_timeout)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            config: Arc::new(config),
            client,
            handle,
        })
    }

    /// Reads the stage's params (see `docs/agent-providers.md`); needs a tokio runtime.
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        let stage = format!("stt {STAGE}");
        let bad = |key: &str, reason: String| BuildError::BadParam {
            stage: stage.clone(),
            key: key.into(),
            reason,
        };
        let word_timestamps = match p.value("word_timestamps") {
            None => true,
            Some(toml::Value::Boolean(b)) => *b,
            Some(_) => return Err(bad("word_timestamps", "expected true or false".into())),
        };
        let base_url = p
            .string("base_url")?
            .unwrap_or_else(|| "https://api.openai.com/v1".into());
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(bad(
                "base_url",
                "must start with https:// or http://".into(),
            ));
        }
        let config = OpenAiSttConfig {
            base_url,
            model: p.string("model")?.unwrap_or_else(|| "whisper-1".into()),
            language: p.string("language")?,
            word_timestamps,
            api_key: p.secret("api_key_env")?,
            limits: ProviderLimits::from_params(p, (5000, 30_000, 10_000))?,
        };
        let handle = runtime_handle(&stage)?;
        Self::new(config, handle).map_err(|e| bad("name", e))
    }
}

impl Stt for OpenAiStt {
    fn start(
        &mut self,
        rate: u32,
        _expected_phrases: &[String],
    ) -> Result<Box<dyn SttSession>, StageError> {
        if !(8000..=48_000).contains(&rate) {
            return Err(StageError::Unsupported {
                stage: STAGE.into(),
                reason: format!("sample rate {rate} Hz"),
            });
        }
        let (utt_tx, mut utt_rx) = mpsc::channel::<Utterance>(UTTERANCE_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let config = Arc::clone(&self.config);
        let client = self.client.clone();
        self.handle.spawn(async move {
            while let Some(u) = utt_rx.recv().await {
                let result = transcribe(&client, &config, &u, rate).await;
                let failed = result.is_err();
                if ev_tx.send(result).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Box::new(OpenAiSession {
            rate,
            utterances: utt_tx,
            events: ev_rx,
            audio: Vec::new(),
            samples_before: 0,
        }))
    }
}

/// One utterance handed to the driver.
struct Utterance {
    /// Its audio.
    samples: Vec<i16>,
    /// Where it starts, ms from the session start (word times are shifted by it).
    offset_ms: u32,
}

/// A session of [`OpenAiStt`].
struct OpenAiSession {
    /// The audio rate.
    rate: u32,
    /// To the driver.
    utterances: mpsc::Sender<Utterance>,
    /// From the driver; closed when it ends.
    events: mpsc::Receiver<Result<SttEvent, StageError>>,
    /// The open utterance's audio.
    audio: Vec<i16>,
    /// Samples of earlier utterances, for word offsets.
    samples_before: u64,
}

impl SttSession for OpenAiSession {
    fn push_audio(&mut self, samples: &[i16]) -> Result<(), StageError> {
        if self.utterances.is_closed() {
            return Err(StageError::Closed {
                stage: STAGE.into(),
            });
        }
        let room = MAX_UTTERANCE_SECONDS * self.rate as usize - self.audio.len();
        if samples.len() > room {
            return Err(StageError::Unsupported {
                stage: STAGE.into(),
                reason: format!("utterance longer than {MAX_UTTERANCE_SECONDS} s"),
            });
        }
        self.audio.extend_from_slice(samples);
        Ok(())
    }

    fn end_utterance(&mut self) -> Result<(), StageError> {
        let samples = std::mem::take(&mut self.audio);
        let offset_ms =
            (self.samples_before * 1000 / u64::from(self.rate)).min(u64::from(u32::MAX));
        self.samples_before += samples.len() as u64;
        self.utterances
            .try_send(Utterance {
                samples,
                offset_ms: offset_ms as u32,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StageError::Provider {
                    stage: STAGE.into(),
                    reason: "too many utterances waiting for transcription".into(),
                },
                mpsc::error::TrySendError::Closed(_) => StageError::Closed {
                    stage: STAGE.into(),
                },
            })
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<SttEvent, StageError>>> {
        self.events.poll_recv(cx)
    }
}

/// A 16-bit mono PCM WAV file of `samples` at `rate`.
pub fn wav_bytes(samples: &[i16], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// The reply (`json` has only `text`; `verbose_json` adds `words` and `segments`).
#[derive(Debug, Deserialize)]
struct TranscriptionReply {
    text: String,
    #[serde(default)]
    words: Option<Vec<ReplyWord>>,
    #[serde(default)]
    segments: Option<Vec<ReplySegment>>,
}

#[derive(Debug, Deserialize)]
struct ReplyWord {
    word: String,
    start: f64,
    end: f64,
}

#[derive(Debug, Deserialize)]
struct ReplySegment {
    #[serde(default)]
    avg_logprob: Option<f64>,
}

/// An OpenAI error body: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Deserialize)]
struct ErrorReply {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

/// Why one attempt failed.
struct Failure {
    reason: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

/// Transcribes one utterance, retrying connect errors, 429 and 5xx.
async fn transcribe(
    client: &reqwest::Client,
    c: &OpenAiSttConfig,
    u: &Utterance,
    rate: u32,
) -> Result<SttEvent, StageError> {
    if u.samples.len() * 1000 < MIN_UTTERANCE_MS * rate as usize {
        return Ok(SttEvent::Final {
            text: String::new(),
            words: None,
            confidence: 0.0,
        });
    }
    let wav = wav_bytes(&u.samples, rate);
    let mut attempt = 0;
    loop {
        match attempt_once(client, c, &wav).await {
            Ok(body) => {
                return parse_reply(&body, u.offset_ms)
                    .map_err(|e| provider_error(STAGE, &e, &c.api_key));
            }
            Err(f) if f.retryable && attempt < c.limits.retries => {
                tokio::time::sleep(retry_delay(attempt, f.retry_after)).await;
                attempt += 1;
            }
            Err(f) => return Err(provider_error(STAGE, &f.reason, &c.api_key)),
        }
    }
}

async fn attempt_once(
    client: &reqwest::Client,
    c: &OpenAiSttConfig,
    wav: &[u8],
) -> Result<Vec<u8>, Failure> {
    let fatal = |reason: String| Failure {
        reason,
        retryable: false,
        retry_after: None,
    };
    let file = reqwest::multipart::Part::bytes(wav.to_vec())
        .file_name("utterance.wav")
        .mime_str("audio/wav")
        .map_err(|e| fatal(format!("multipart: {e}")))?;
    let mut form = reqwest::multipart::Form::new()
        .part("file", file)
        .text("model", c.model.clone());
    if let Some(lang) = &c.language {
        form = form.text("language", lang.clone());
    }
    if c.word_timestamps {
        form = form
            .text("response_format", "verbose_json")
            .text("timestamp_granularities[]", "word");
    } else {
        form = form.text("response_format", "json");
    }
    let url = format!("{}/audio/transcriptions", c.base_url.trim_end_matches('/'));
    let request = client
        .post(&url)
        .bearer_auth(c.api_key.expose())
        .multipart(form)
        .send();
    let mut resp = match timeout(c.limits.first_byte_timeout, request).await {
        Err(_) => {
            return Err(fatal(format!(
                "no response within {} ms",
                c.limits.first_byte_timeout.as_millis()
            )));
        }
        Ok(Err(e)) => {
            // reqwest's error text names the URL only, never headers.
            return Err(Failure {
                reason: format!("request failed: {}", error_chain(&e)),
                retryable: e.is_connect(),
                retry_after: None,
            });
        }
        Ok(Ok(resp)) => resp,
    };
    let status = resp.status().as_u16();
    let retry_after = parse_retry_after(
        resp.headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
    );
    let mut body = Vec::new();
    loop {
        match timeout(c.limits.stall_timeout, resp.chunk()).await {
            Err(_) => {
                return Err(fatal(format!(
                    "response stalled for {} ms",
                    c.limits.stall_timeout.as_millis()
                )));
            }
            Ok(Err(e)) => return Err(fatal(format!("reading the response: {}", error_chain(&e)))),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(fatal("response larger than 1 MiB".into()));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let detail = match serde_json::from_slice::<ErrorReply>(&body) {
        Ok(ErrorReply { error }) => match error.code {
            Some(serde_json::Value::String(code)) => format!("{} ({code})", error.message),
            _ => error.message,
        },
        Err(_) => String::from_utf8_lossy(&body).into_owned(),
    };
    Err(Failure {
        reason: format!("HTTP {status}: {detail}"),
        retryable: status_is_retryable(status),
        retry_after,
    })
}

/// `e` and its sources, joined (reqwest's top-level text alone is vague).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The Final of a successful reply; word times shifted by `offset_ms`.
fn parse_reply(body: &[u8], offset_ms: u32) -> Result<SttEvent, String> {
    let reply: TranscriptionReply =
        serde_json::from_slice(body).map_err(|e| format!("malformed transcription reply: {e}"))?;
    let ms = |s: f64| -> u32 {
        let v = if s.is_finite() && s > 0.0 {
            s * 1000.0
        } else {
            0.0
        };
        (v.round().min(f64::from(u32::MAX)) as u32).saturating_add(offset_ms)
    };
    let words = reply.words.map(|ws| {
        ws.into_iter()
            .map(|w| Word {
                text: w.word.trim().to_owned(),
                start_ms: ms(w.start),
                end_ms: ms(w.end),
            })
            .collect()
    });
    // Whisper gives no confidence; exp(mean segment log-probability) is its usual stand-in.
    let logprobs: Vec<f64> = reply
        .segments
        .iter()
        .flatten()
        .filter_map(|s| s.avg_logprob)
        .filter(|l| l.is_finite())
        .collect();
    let confidence = if logprobs.is_empty() {
        1.0
    } else {
        (logprobs.iter().sum::<f64>() / logprobs.len() as f64)
            .exp()
            .clamp(0.0, 1.0) as f32
    };
    Ok(SttEvent::Final {
        text: reply.text.trim().to_owned(),
        words,
        confidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_header_is_pcm16_mono() {
        let wav = wav_bytes(&[1, -1, 2], 8000);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(wav[4..8].try_into().unwrap()), 36 + 6);
        assert_eq!(u16::from_le_bytes([wav[20], wav[21]]), 1);
        assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 1);
        assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 8000);
        assert_eq!(u32::from_le_bytes(wav[40..44].try_into().unwrap()), 6);
        assert_eq!(&wav[44..], [1, 0, 0xff, 0xff, 2, 0]);
    }

    #[test]
    fn replies_map_to_finals_with_shifted_words() {
        let body = br#"{"task":"transcribe","language":"english","duration":1.2,"text":" Hello? ",
            "words":[{"word":"Hello","start":0.1,"end":0.52}],
            "segments":[{"id":0,"avg_logprob":-0.2}]}"#;
        let SttEvent::Final {
            text,
            words,
            confidence,
        } = parse_reply(body, 2000).unwrap()
        else {
            panic!()
        };
        assert_eq!(text, "Hello?");
        assert_eq!(
            words.unwrap(),
            [Word {
                text: "Hello".into(),
                start_ms: 2100,
                end_ms: 2520
            }]
        );
        assert!((confidence - (-0.2f64).exp() as f32).abs() < 1e-6);
        assert_eq!(
            parse_reply(br#"{"text":"Yes."}"#, 0).unwrap(),
            SttEvent::Final {
                text: "Yes.".into(),
                words: None,
                confidence: 1.0
            }
        );
        assert!(parse_reply(b"{\"text\":", 0).is_err());
        assert!(parse_reply(br#"{"words":[]}"#, 0).is_err());
    }
}
