//! The `elevenlabs` synthesizer: ElevenLabs' streaming-input WebSocket, one socket per
//! session (see [`super::elevenlabs_wire`] for the messages).
//!
//! The driver connects as soon as the session starts (with the `xi-api-key` header), sends
//! the initial message, then each pushed text with `flush: true`, and `{"text": ""}` on
//! finish. Audio (`ulaw_8000` decoded with G.711, or `pcm_*` little-endian) is resampled to the
//! session rate in 20 ms frames; the character alignment of each chunk puts `text_done` on
//! the frame where each word ends, so a barge-in knows word by word what the caller heard.
//! The tail of the audio is released when the service pauses (all pushed text spoken) or at
//! the final message. Connect errors and 429/5xx handshake replies are retried.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::rustls::ClientConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream, tungstenite};

use super::elevenlabs_wire::{
    self as wire, DEFAULT_SCHEDULE, END_MESSAGE, ServerMessage, SpokenText, VoiceSettings,
};
use super::registry::{BuildError, StageParams};
use super::stages::{StageError, Tts, TtsAudio, TtsSession};
use super::tts_framer::TtsFramer;
use super::tts_remote::{
    AudioSender, Piece, RemoteOptions, RemoteSession, backoff, parse_retry_after, redact,
};
use crate::codec::g711;
use crate::codec::resample::RATES;
use crate::config::Secret;

const STAGE: &str = "tts elevenlabs";

/// How long the service may pause, with all pushed text spoken, before the held-back tail
/// of the audio (under one frame plus the resampler's delay) is released.
const TAIL_FLUSH: Duration = Duration::from_millis(100);

/// How often a single space is sent while waiting for text, so that the service's input
/// timeout (20 s by default) does not close the socket during a long pause of the agent.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The audio format asked for (`output_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// G.711 µ-law at 8 kHz (`ulaw_8000`).
    Ulaw8000,
    /// 16-bit little-endian PCM at this rate (`pcm_8000`, `pcm_16000`, `pcm_24000`).
    Pcm(u32),
}

impl OutputFormat {
    /// The format named `name`, among those the resampler takes.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ulaw_8000" => Some(Self::Ulaw8000),
            "pcm_8000" => Some(Self::Pcm(8000)),
            "pcm_16000" => Some(Self::Pcm(16000)),
            "pcm_24000" => Some(Self::Pcm(24000)),
            _ => None,
        }
    }

    /// The query-string name.
    pub fn name(self) -> String {
        match self {
            Self::Ulaw8000 => "ulaw_8000".to_owned(),
            Self::Pcm(rate) => format!("pcm_{rate}"),
        }
    }

    /// Samples per second.
    pub fn rate(self) -> u32 {
        match self {
            Self::Ulaw8000 => 8000,
            Self::Pcm(rate) => rate,
        }
    }
}

/// What one `elevenlabs` stage uses.
#[derive(Debug)]
struct Settings {
    url: String,
    key: Secret,
    init: String,
    format: OutputFormat,
    opts: RemoteOptions,
    /// TLS for `wss://` (rustls on ring, system roots).
    tls: Option<Arc<ClientConfig>>,
}

/// The `elevenlabs` pipeline stage.
#[derive(Debug, Clone)]
pub struct ElevenLabsTts {
    settings: Arc<Settings>,
    runtime: Handle,
}

impl ElevenLabsTts {
    /// Reads `base_url`, `voice_id`, `model_id`, `output_format`, `stability`,
    /// `similarity_boost`, `speed`, `chunk_length_schedule`, `api_key_env` and the timeouts;
    /// needs a tokio runtime (the driver tasks are spawned on it).
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        let bad = |key: &str, reason: String| BuildError::BadParam {
            stage: STAGE.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let id_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        let base = p
            .string("base_url")?
            .unwrap_or_else(|| "wss://api.elevenlabs.io".to_owned());
        if !(base.starts_with("ws://") || base.starts_with("wss://")) {
            return Err(bad("base_url", format!("{base:?} is not a ws(s) URL")));
        }
        let voice_id = p
            .string("voice_id")?
            .ok_or_else(|| bad("voice_id", "missing: the ElevenLabs voice id".to_owned()))?;
        if !id_ok(&voice_id) {
            return Err(bad("voice_id", format!("{voice_id:?} is not a voice id")));
        }
        let model_id = p
            .string("model_id")?
            .unwrap_or_else(|| "eleven_flash_v2_5".to_owned());
        if !id_ok(&model_id) {
            return Err(bad("model_id", format!("{model_id:?} is not a model id")));
        }
        let format_name = p
            .string("output_format")?
            .unwrap_or_else(|| "ulaw_8000".to_owned());
        let format = OutputFormat::from_name(&format_name).ok_or_else(|| {
            bad(
                "output_format",
                format!("{format_name:?} is not ulaw_8000, pcm_8000, pcm_16000 or pcm_24000"),
            )
        })?;
        let defaults = VoiceSettings::default();
        let voice = VoiceSettings {
            stability: p.number("stability", defaults.stability, 0.0..=1.0)?,
            similarity_boost: p.number("similarity_boost", defaults.similarity_boost, 0.0..=1.0)?,
            speed: match p.value("speed") {
                None => None,
                Some(_) => Some(p.number("speed", 1.0, 0.7..=1.2)?),
            },
        };
        let schedule = match p.value("chunk_length_schedule") {
            None => DEFAULT_SCHEDULE.to_vec(),
            Some(toml::Value::Array(items)) => {
                let v: Option<Vec<u32>> = items
                    .iter()
                    .map(|x| x.as_integer().and_then(|i| u32::try_from(i).ok()))
                    .filter(|x| x.is_none_or(|n| (50..=500).contains(&n)))
                    .collect();
                match v {
                    Some(v) if !v.is_empty() && v.len() == items.len() => v,
                    _ => {
                        return Err(bad(
                            "chunk_length_schedule",
                            "expected integers from 50 to 500".to_owned(),
                        ));
                    }
                }
            }
            Some(_) => {
                return Err(bad(
                    "chunk_length_schedule",
                    "expected an array of integers".to_owned(),
                ));
            }
        };
        let key = p.secret("api_key_env")?;
        let opts = RemoteOptions::from_params(p)?;
        let runtime = Handle::try_current().map_err(|_| {
            bad(
                "api_key_env",
                "no tokio runtime to run the WebSocket client on".to_owned(),
            )
        })?;
        let tls = if base.starts_with("wss://") {
            Some(
                crate::sip::tls::client_config(&[])
                    .map_err(|e| bad("base_url", format!("TLS: {e}")))?,
            )
        } else {
            None
        };
        Ok(Self {
            settings: Arc::new(Settings {
                url: wire::url(&base, &voice_id, &model_id, &format.name()),
                key,
                init: wire::init_message(&voice, &schedule),
                format,
                opts,
                tls,
            }),
            runtime,
        })
    }
}

impl Tts for ElevenLabsTts {
    fn start(&mut self, rate: u32) -> Result<Box<dyn TtsSession>, StageError> {
        let framer = TtsFramer::new(self.settings.format.rate(), rate).map_err(|_| {
            StageError::Unsupported {
                stage: STAGE.to_owned(),
                reason: format!("sample rate {rate} (one of {RATES:?})"),
            }
        })?;
        let settings = self.settings.clone();
        Ok(Box::new(RemoteSession::spawn(
            STAGE,
            &self.runtime,
            |pieces, audio| async move {
                let mut driver = Driver {
                    settings,
                    framer,
                    spoken: SpokenText::new(),
                    audio,
                    frames: Vec::new(),
                    samples: Vec::new(),
                };
                if let Err(reason) = driver.run(pieces).await {
                    let reason = redact(&reason, driver.settings.key.expose());
                    let _ = driver.audio.send(Err(StageError::Provider {
                        stage: STAGE.to_owned(),
                        reason,
                    }));
                }
            },
        )))
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The task behind one session.
struct Driver {
    settings: Arc<Settings>,
    framer: TtsFramer,
    spoken: SpokenText,
    audio: AudioSender,
    /// Scratch: frames ready to send.
    frames: Vec<TtsAudio>,
    /// Scratch: decoded samples of one chunk.
    samples: Vec<i16>,
}

impl Driver {
    async fn run(&mut self, mut pieces: mpsc::UnboundedReceiver<Piece>) -> Result<(), String> {
        let mut ws = self.connect().await?;
        ws.send(Message::text(self.settings.init.clone()))
            .await
            .map_err(|e| format!("sending the first message: {e}"))?;
        let mut input_open = true;
        let mut any_text = false;
        let mut audio_seen = false;
        let mut last_message = Instant::now();
        let mut last_sent = Instant::now();
        loop {
            let owed = self.spoken.unspoken_pieces() > 0 || !input_open;
            let limit = if audio_seen {
                self.settings.opts.stall_timeout
            } else {
                self.settings.opts.first_byte_timeout
            };
            let tail_due = self.framer.has_pending() && self.spoken.unspoken_pieces() == 0;
            tokio::select! {
                piece = pieces.recv(), if input_open => match piece {
                    Some(piece) => {
                        if !owed {
                            last_message = Instant::now();
                        }
                        if let Some(done) = self.spoken.push(&piece.text) {
                            let at = self.framer.position();
                            self.framer.mark(at, done);
                        } else {
                            any_text = true;
                            last_sent = Instant::now();
                            ws.send(Message::text(wire::text_message(&piece.text)))
                                .await
                                .map_err(|e| format!("sending text: {e}"))?;
                        }
                    }
                    None => {
                        input_open = false;
                        last_message = Instant::now();
                        if !any_text {
                            // Nothing was ever spoken: no final message will come.
                            self.flush()?;
                            let _ = ws.close(None).await;
                            return Ok(());
                        }
                        ws.send(Message::text(END_MESSAGE))
                            .await
                            .map_err(|e| format!("sending end of input: {e}"))?;
                    }
                },
                msg = ws.next() => {
                    last_message = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(t))) => {
                            if self.on_message(t.as_str(), &mut audio_seen)? {
                                let _ = ws.close(None).await;
                                return Ok(());
                            }
                        }
                        Some(Ok(Message::Close(frame)))
                            if !input_open
                                && self.spoken.unspoken_pieces() == 0
                                && frame.as_ref().is_none_or(|f| u16::from(f.code) == 1000) =>
                        {
                            // A normal close once everything was spoken: as good as the final.
                            let at = self.framer.position();
                            let done = self.spoken.finish_all();
                            self.framer.mark(at, done);
                            self.flush()?;
                            return Ok(());
                        }
                        Some(Ok(Message::Close(frame))) => {
                            return Err(match frame {
                                Some(f) => format!(
                                    "socket closed by the service: {} {}",
                                    u16::from(f.code),
                                    f.reason.as_str()
                                ),
                                None => "socket closed by the service".to_owned(),
                            });
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(format!("socket error: {e}")),
                        None => return Err("socket closed abruptly".to_owned()),
                    }
                }
                _ = tokio::time::sleep_until(last_message + limit), if owed => {
                    return Err(if audio_seen {
                        format!("audio stalled for {} ms", limit.as_millis())
                    } else {
                        format!("no audio within {} ms", limit.as_millis())
                    });
                }
                _ = tokio::time::sleep_until(last_message + TAIL_FLUSH), if tail_due => {
                    self.flush()?;
                }
                _ = tokio::time::sleep_until(last_sent + KEEPALIVE), if input_open && !owed => {
                    last_sent = Instant::now();
                    ws.send(Message::text(wire::KEEPALIVE_MESSAGE))
                        .await
                        .map_err(|e| format!("sending keepalive: {e}"))?;
                }
            }
        }
    }

    /// Handles one server text frame; true at the final message.
    fn on_message(&mut self, text: &str, audio_seen: &mut bool) -> Result<bool, String> {
        let msg = wire::parse(text).map_err(|e| e.to_string())?;
        let (audio, alignment, is_final) = match msg {
            ServerMessage::Audio {
                audio,
                alignment,
                is_final,
            } => (audio, alignment, is_final),
            ServerMessage::Error {
                message,
                error,
                code,
            } => {
                let mut s = format!("service error: {message}");
                for extra in [error, code].into_iter().flatten() {
                    s.push_str(&format!(" ({extra})"));
                }
                return Err(s);
            }
        };
        let start = self.framer.position();
        let rate = u64::from(self.settings.format.rate());
        if let Some(a) = &alignment {
            for m in self.spoken.align(a) {
                self.framer
                    .mark(start + u64::from(m.at_ms) * rate / 1000, m.text_done);
            }
        }
        self.samples.clear();
        match self.settings.format {
            OutputFormat::Ulaw8000 => self
                .samples
                .extend(audio.iter().map(|&b| g711::ulaw_to_linear(b))),
            OutputFormat::Pcm(_) => self.samples.extend(
                audio
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
            ),
        }
        if !self.samples.is_empty() {
            *audio_seen = true;
        }
        self.framer
            .push(&self.samples, &mut self.frames)
            .map_err(|e| e.to_string())?;
        if is_final {
            let at = self.framer.position();
            let done = self.spoken.finish_all();
            self.framer.mark(at, done);
            self.flush()?;
            return Ok(true);
        }
        self.send_frames();
        Ok(false)
    }

    fn flush(&mut self) -> Result<(), String> {
        self.framer
            .flush(&mut self.frames)
            .map_err(|e| e.to_string())?;
        self.send_frames();
        Ok(())
    }

    fn send_frames(&mut self) {
        for f in self.frames.drain(..) {
            let _ = self.audio.send(Ok(f));
        }
    }

    /// Opens the socket, retrying connect errors and 429/5xx handshake replies.
    async fn connect(&self) -> Result<Socket, String> {
        let s = &self.settings;
        let mut attempt = 0;
        loop {
            let (reason, retry) = match self.connect_once().await {
                Ok(ws) => return Ok(ws),
                Err(x) => x,
            };
            match retry {
                Some(after) if attempt < s.opts.retries => {
                    tracing::info!(stage = STAGE, reason = %redact(&reason, s.key.expose()), attempt, "retrying");
                    tokio::time::sleep(backoff(attempt, after)).await;
                    attempt += 1;
                }
                _ => return Err(reason),
            }
        }
    }

    /// One attempt: the error and, when worth retrying, the delay the service asked for.
    async fn connect_once(&self) -> Result<Socket, (String, Option<Option<Duration>>)> {
        let s = &self.settings;
        let mut req = s
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| (format!("bad URL: {e}"), None))?;
        let key = HeaderValue::from_str(s.key.expose())
            .map_err(|_| ("the API key is not a valid header value".to_owned(), None))?;
        req.headers_mut().insert("xi-api-key", key);
        let connector = s.tls.clone().map(Connector::Rustls);
        let config = crate::leg::stream::ws_client_config();
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(req, Some(config), true, connector);
        match tokio::time::timeout(s.opts.connect_timeout, connect).await {
            Err(_) => Err((
                format!(
                    "no connection within {} ms",
                    s.opts.connect_timeout.as_millis()
                ),
                Some(None),
            )),
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(tungstenite::Error::Http(resp))) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let detail = resp.body().as_deref().and_then(http_error_message);
                let reason = match detail {
                    Some(d) => format!("handshake refused: HTTP {status}: {d}"),
                    None => format!("handshake refused: HTTP {status}"),
                };
                let retry =
                    (status.as_u16() == 429 || status.is_server_error()).then_some(retry_after);
                Err((reason, retry))
            }
            Ok(Err(tungstenite::Error::Io(e))) => Err((format!("connect failed: {e}"), Some(None))),
            Ok(Err(e)) => Err((format!("connect failed: {e}"), None)),
        }
    }
}

/// The message of an ElevenLabs HTTP error body: `{"detail": {"status", "message"}}` or
/// `{"detail": "..."}`.
fn http_error_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let d = v.get("detail")?;
    if let Some(s) = d.as_str() {
        return Some(s.to_owned());
    }
    let message = d.get("message").and_then(|m| m.as_str())?;
    Some(match d.get("status").and_then(|s| s.as_str()) {
        Some(status) => format!("{message} ({status})"),
        None => message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_http_errors() {
        assert_eq!(OutputFormat::from_name("ulaw_8000").unwrap().rate(), 8000);
        assert_eq!(
            OutputFormat::from_name("pcm_16000").unwrap().name(),
            "pcm_16000"
        );
        assert_eq!(OutputFormat::from_name("mp3_44100_128"), None);
        assert_eq!(
            http_error_message(
                br#"{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}"#
            )
            .as_deref(),
            Some("Invalid API key (invalid_api_key)")
        );
        assert_eq!(http_error_message(b"nope"), None);
    }
}
