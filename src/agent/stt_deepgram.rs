//! `deepgram` STT: Deepgram live streaming over WebSocket, one connection per session.
//!
//! The driver task owns the socket: it sends the caller's audio as binary linear16 frames,
//! `KeepAlive` while no audio flows, `Finalize` on [`SttSession::end_utterance`] and
//! `CloseStream` when the session is dropped; it feeds server messages to the sans-IO
//! [`UtteranceAssembler`] and forwards its events. The protocol itself is in
//! [`super::deepgram_wire`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use super::deepgram_wire::{
    CLOSE_STREAM, FINALIZE, KEEP_ALIVE, ListenOptions, ServerMessage, UtteranceAssembler,
    encode_linear16, listen_url, parse_handshake_error, parse_server_message,
};
use super::registry::{BuildError, StageParams};
use super::stages::{StageError, Stt, SttEvent, SttSession};
use super::stt_provider::{
    ProviderLimits, parse_retry_after, provider_error, retry_delay, runtime_handle,
    status_is_retryable,
};
use crate::config::Secret;

/// The registered name.
const STAGE: &str = "deepgram";
/// Audio frames the session may queue ahead of the socket (20 ms each: 10 s).
const AUDIO_QUEUE: usize = 500;
/// Events the driver may queue ahead of the call's task.
const EVENT_QUEUE: usize = 64;

/// Settings of the `deepgram` stage.
#[derive(Debug, Clone)]
pub struct DeepgramConfig {
    /// `wss://api.deepgram.com` or a compatible server (`ws://` for local tests).
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Language, or the model's default.
    pub language: Option<String>,
    /// Endpointing silence in ms (`None`: server default).
    pub endpointing_ms: Option<u32>,
    /// `UtteranceEnd` gap in ms (`None`: off).
    pub utterance_end_ms: Option<u32>,
    /// Punctuation and formatting.
    pub smart_format: bool,
    /// The API key, sent as `Authorization: Token <key>`.
    pub api_key: Secret,
    /// A `KeepAlive` is sent after this long without audio.
    pub keepalive: Duration,
    /// How long to wait for the answer to `Finalize` before emitting what was committed.
    pub finalize_timeout: Duration,
    /// Timeouts and retries.
    pub limits: ProviderLimits,
}

/// The `deepgram` recognizer: one live WebSocket stream per session.
#[derive(Debug, Clone)]
pub struct DeepgramStt {
    /// Shared by every session.
    config: Arc<DeepgramConfig>,
    /// The runtime the drivers run on (captured at build time).
    handle: Handle,
}

impl DeepgramStt {
    /// A recognizer with `config`, whose drivers run on `handle`.
    pub fn new(config: DeepgramConfig, handle: Handle) -> Self {
        Self {
            config: Arc::new(config),
            handle,
        }
    }

    /// Reads the stage's params (see `docs/agent-providers.md`); needs a tokio runtime.
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        let opt_ms = |key: &str| -> Result<Option<u32>, BuildError> {
            Ok(match p.value(key) {
                None => None,
                Some(_) => Some(p.number(key, 0.0, 0.0..=60_000.0)? as u32),
            })
        };
        let smart_format = match p.value("smart_format") {
            None => true,
            Some(toml::Value::Boolean(b)) => *b,
            Some(_) => {
                return Err(BuildError::BadParam {
                    stage: format!("stt {STAGE}"),
                    key: "smart_format".into(),
                    reason: "expected true or false".into(),
                });
            }
        };
        let config = DeepgramConfig {
            base_url: p
                .string("base_url")?
                .unwrap_or_else(|| "wss://api.deepgram.com".into()),
            model: p.string("model")?.unwrap_or_else(|| "nova-3".into()),
            language: p.string("language")?,
            endpointing_ms: opt_ms("endpointing_ms")?.or(Some(300)),
            utterance_end_ms: opt_ms("utterance_end_ms")?.or(Some(1000)),
            smart_format,
            api_key: p.secret("api_key_env")?,
            keepalive: Duration::from_millis(
                p.number("keepalive_ms", 3000.0, 100.0..=9000.0)? as u64
            ),
            finalize_timeout: Duration::from_millis(p.number(
                "finalize_timeout_ms",
                2000.0,
                10.0..=30_000.0,
            )? as u64),
            limits: ProviderLimits::from_params(p, (5000, 10_000, 10_000))?,
        };
        if !(config.base_url.starts_with("wss://") || config.base_url.starts_with("ws://")) {
            return Err(BuildError::BadParam {
                stage: format!("stt {STAGE}"),
                key: "base_url".into(),
                reason: "must start with wss:// or ws://".into(),
            });
        }
        Ok(Self::new(config, runtime_handle(&format!("stt {STAGE}"))?))
    }
}

impl Stt for DeepgramStt {
    fn start(
        &mut self,
        rate: u32,
        expected_phrases: &[String],
    ) -> Result<Box<dyn SttSession>, StageError> {
        if !(8000..=48_000).contains(&rate) {
            return Err(StageError::Unsupported {
                stage: STAGE.into(),
                reason: format!("sample rate {rate} Hz"),
            });
        }
        let c = &self.config;
        let url = listen_url(
            &c.base_url,
            &ListenOptions {
                model: c.model.clone(),
                language: c.language.clone(),
                sample_rate: rate,
                endpointing_ms: c.endpointing_ms,
                utterance_end_ms: c.utterance_end_ms,
                smart_format: c.smart_format,
                phrases: expected_phrases.to_vec(),
            },
        );
        let (cmd_tx, cmd_rx) = mpsc::channel(AUDIO_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let config = Arc::clone(&self.config);
        self.handle.spawn(async move {
            if let Err(e) = drive(&config, &url, cmd_rx, &ev_tx).await {
                let _ = ev_tx.send(Err(e)).await;
            }
        });
        Ok(Box::new(DeepgramSession {
            commands: cmd_tx,
            events: ev_rx,
        }))
    }
}

/// What the session asks of its driver.
#[derive(Debug)]
enum Command {
    /// Linear16 LE bytes to send.
    Audio(Vec<u8>),
    /// Send `Finalize`.
    Finalize,
}

/// A session of [`DeepgramStt`]; dropping it sends `CloseStream`.
struct DeepgramSession {
    /// To the driver.
    commands: mpsc::Sender<Command>,
    /// From the driver; closed when it ends.
    events: mpsc::Receiver<Result<SttEvent, StageError>>,
}

impl DeepgramSession {
    fn send(&mut self, cmd: Command) -> Result<(), StageError> {
        self.commands.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StageError::Provider {
                stage: STAGE.into(),
                reason: "audio queue full: the provider is not keeping up".into(),
            },
            mpsc::error::TrySendError::Closed(_) => StageError::Closed {
                stage: STAGE.into(),
            },
        })
    }
}

impl SttSession for DeepgramSession {
    fn push_audio(&mut self, samples: &[i16]) -> Result<(), StageError> {
        // An empty binary frame would make the server close the stream.
        if samples.is_empty() {
            return Ok(());
        }
        let mut frame = Vec::with_capacity(samples.len() * 2);
        encode_linear16(samples, &mut frame);
        self.send(Command::Audio(frame))
    }

    fn end_utterance(&mut self) -> Result<(), StageError> {
        self.send(Command::Finalize)
    }

    fn streams_audio(&self) -> bool {
        true
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<SttEvent, StageError>>> {
        self.events.poll_recv(cx)
    }
}

/// Any byte stream the WebSocket can run on (plain TCP or TLS).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Pin<Box<dyn Io>>>;

/// Why one connection attempt failed.
struct ConnectFailure {
    /// What to report.
    reason: String,
    /// Whether another attempt may succeed (connect error, 429, 5xx).
    retryable: bool,
    /// The server's `Retry-After`.
    retry_after: Option<Duration>,
}

impl ConnectFailure {
    fn io(reason: String) -> Self {
        Self {
            reason,
            retryable: true,
            retry_after: None,
        }
    }
}

/// Runs one session: connect (with retries), then pump audio and messages until the end.
async fn drive(
    c: &DeepgramConfig,
    url: &str,
    mut commands: mpsc::Receiver<Command>,
    events: &mpsc::Sender<Result<SttEvent, StageError>>,
) -> Result<(), StageError> {
    let err = |reason: &str| provider_error(STAGE, reason, &c.api_key);
    let mut attempt = 0;
    let ws = loop {
        match timeout(c.limits.connect_timeout, connect(url, &c.api_key)).await {
            Ok(Ok(ws)) => break ws,
            Ok(Err(f)) if f.retryable && attempt < c.limits.retries => {
                tokio::time::sleep(retry_delay(attempt, f.retry_after)).await;
            }
            Ok(Err(f)) => return Err(err(&f.reason)),
            Err(_) if attempt < c.limits.retries => {
                tokio::time::sleep(retry_delay(attempt, None)).await;
            }
            Err(_) => {
                return Err(err(&format!(
                    "connect timed out after {} ms",
                    c.limits.connect_timeout.as_millis()
                )));
            }
        }
        attempt += 1;
    };
    let (mut sink, mut stream) = ws.split();
    let mut asm = UtteranceAssembler::new();
    let mut last_sent = Instant::now();
    // Since when the server owes us a reply (audio or Finalize sent, nothing received).
    let mut owed_since: Option<Instant> = None;
    let mut heard_any = false;
    let mut finalize_deadline: Option<Instant> = None;
    loop {
        let reply_deadline = owed_since.map(|t| {
            t + if heard_any {
                c.limits.stall_timeout
            } else {
                c.limits.first_byte_timeout
            }
        });
        let far = Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            cmd = commands.recv() => {
                let now = Instant::now();
                let msg = match cmd {
                    Some(Command::Audio(bytes)) => Message::Binary(bytes.into()),
                    Some(Command::Finalize) => {
                        asm.finalize_requested();
                        finalize_deadline = Some(now + c.finalize_timeout);
                        Message::text(FINALIZE)
                    }
                    None => {
                        // The session is gone: nobody reads results any more.
                        let _ = sink.send(Message::text(CLOSE_STREAM)).await;
                        let _ = sink.close().await;
                        return Ok(());
                    }
                };
                sink.send(msg)
                    .await
                    .map_err(|e| err(&format!("send failed: {e}")))?;
                last_sent = now;
                owed_since.get_or_insert(now);
            }
            msg = stream.next() => {
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        heard_any = true;
                        owed_since = None;
                        match parse_server_message(text.as_str()) {
                            Ok(ServerMessage::Error { message }) => {
                                return Err(err(&format!("Deepgram error: {message}")));
                            }
                            Ok(m) => asm.on_message(&m),
                            Err(e) => return Err(err(&e.to_string())),
                        }
                        if !asm.finalize_pending() {
                            finalize_deadline = None;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        asm.finalize_expired();
                        forward(&mut asm, events).await;
                        return match frame {
                            Some(f) if f.code != CloseCode::Normal => Err(err(&format!(
                                "server closed the stream with code {}: {}",
                                u16::from(f.code),
                                f.reason.as_str()
                            ))),
                            _ => Ok(()),
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(err(&format!("connection lost: {e}"))),
                    None => return Err(err("connection closed without a close frame")),
                }
            }
            _ = sleep_until(last_sent + c.keepalive) => {
                sink.send(Message::text(KEEP_ALIVE))
                    .await
                    .map_err(|e| err(&format!("send failed: {e}")))?;
                last_sent = Instant::now();
            }
            _ = sleep_until(reply_deadline.unwrap_or(far)), if reply_deadline.is_some() => {
                let waited = if heard_any { c.limits.stall_timeout } else { c.limits.first_byte_timeout };
                return Err(err(&format!("no reply from the server within {} ms", waited.as_millis())));
            }
            _ = sleep_until(finalize_deadline.unwrap_or(far)), if finalize_deadline.is_some() => {
                asm.finalize_expired();
                finalize_deadline = None;
            }
        }
        if !forward(&mut asm, events).await {
            return Ok(());
        }
    }
}

/// Sends the assembler's events to the session; false when the session is gone.
async fn forward(
    asm: &mut UtteranceAssembler,
    events: &mpsc::Sender<Result<SttEvent, StageError>>,
) -> bool {
    while let Some(ev) = asm.poll_event() {
        if events.send(Ok(ev)).await.is_err() {
            return false;
        }
    }
    true
}

/// One attempt: TCP, TLS for `wss`, then the WebSocket handshake with the key.
async fn connect(url: &str, key: &Secret) -> Result<Ws, ConnectFailure> {
    let uri: Uri = url
        .parse()
        .map_err(|e| ConnectFailure::fatal(format!("bad URL: {e}")))?;
    let tls = uri.scheme_str() == Some("wss");
    let host = uri
        .host()
        .ok_or_else(|| ConnectFailure::fatal("URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| ConnectFailure::io(format!("connect to {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let io: Pin<Box<dyn Io>> = if tls {
        let config = crate::sip::tls::client_config(&[])
            .map_err(|e| ConnectFailure::fatal(format!("TLS setup: {e}")))?;
        let name = rustls_pki_types::ServerName::try_from(host.clone())
            .map_err(|e| ConnectFailure::fatal(format!("bad TLS server name: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| ConnectFailure::io(format!("TLS handshake with {host}: {e}")))?;
        Box::pin(stream)
    } else {
        Box::pin(tcp)
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectFailure::fatal(format!("bad URL: {e}")))?;
    let mut auth = HeaderValue::from_str(&format!("Token {}", key.expose()))
        .map_err(|_| ConnectFailure::fatal("the API key is not a valid header value".into()))?;
    auth.set_sensitive(true);
    request.headers_mut().insert(header::AUTHORIZATION, auth);
    let config = crate::leg::stream::ws_client_config();
    match tokio_tungstenite::client_async_with_config(request, io, Some(config)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => {
            let status = resp.status();
            let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
            let detail = resp
                .body()
                .as_deref()
                .and_then(parse_handshake_error)
                .or_else(|| header("dg-error").map(str::to_owned))
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
            Err(ConnectFailure {
                reason: format!("handshake refused: HTTP {}: {detail}", status.as_u16()),
                retryable: status_is_retryable(status.as_u16()),
                retry_after: parse_retry_after(header("retry-after")),
            })
        }
        Err(e) => Err(ConnectFailure::io(format!("WebSocket handshake: {e}"))),
    }
}

impl ConnectFailure {
    fn fatal(reason: String) -> Self {
        Self {
            reason,
            retryable: false,
            retry_after: None,
        }
    }
}
