//! The fork client: a tokio task that holds a WebSocket to a customer's bot and speaks the
//! Twilio Media Streams protocol as Twilio would ([`TwilioCarrierCodec`]). The media app
//! (`call::fork`) talks to it only through two bounded channels, so the media thread never
//! waits: it `try_send`s the caller's frames and digits and `try_recv`s the bot's audio,
//! marks and clears.
//!
//! If the socket drops mid-call the task reconnects with backoff (0.2, 0.5, 1, 2, 4, 4 ... s)
//! until the reconnect window has passed since the loss, then tells the app to hang up.
//! Every (re)connection sends `connected` and a `start` with a fresh `streamSid` and the same
//! `callSid`. A close frame with code 1000 from the bot ends the call instead (the bot said
//! it is done); any other close, a reset or an error counts as a loss.
//!
//! `wss://` URLs use rustls on ring with the system roots plus `[streams] fork_ca_file`.
//! Keep-alive: a ping every `[streams] ping_interval_s`; a bot that sends nothing (not even
//! a pong) for two intervals, or does not take our frames by then, is closed with 4010 and
//! counts as a loss. When the caller's playout buffer overflows, the app asks this task to
//! send the bot one `error` event per stream ([`ToBot::BufferFull`]).

use super::stream::drops::DropCounters;
use super::stream::error::CLOSE_KEEPALIVE_TIMEOUT;
use super::stream::keepalive::{KeepAlive, KeepAliveAction};
use super::stream::twilio::TwilioCarrierCodec;
use super::stream::{
    Encoding, Event, Frame, FrameRef, MediaChunk, MediaFormat, StreamStart, Track,
};
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::rustls::ClientConfig;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Frames the app can queue towards the bot before new ones are dropped (5 s of media).
pub const TO_BOT_CAPACITY: usize = 256;
/// Messages from the bot waiting for the media thread (it drains them every 20 ms).
pub const FROM_BOT_CAPACITY: usize = 1024;
/// Waits between reconnection attempts; the last one repeats.
pub const BACKOFF: [Duration; 5] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// The `error` event code sent to a bot whose audio overflowed the caller's buffer.
pub const ERROR_BUFFER_FULL: i64 = 4100;

/// Server-wide fork settings (`[streams]`).
#[derive(Debug, Clone)]
pub struct ForkSettings {
    /// Keep-alive ping period.
    pub ping_interval: Duration,
    /// Most bot audio queued for the caller ahead of real time.
    pub max_buffered: Duration,
    /// TLS for `wss://` (system roots plus `fork_ca_file`); built at start when a route
    /// needs it, else on the first `wss://` connection with the system roots.
    pub tls: Option<Arc<ClientConfig>>,
}

impl Default for ForkSettings {
    fn default() -> Self {
        ForkSettings {
            ping_interval: Duration::from_secs(20),
            max_buffered: Duration::from_secs(600),
            tls: None,
        }
    }
}

/// The certificates of a PEM file (`[streams] fork_ca_file`); errors say what is wrong.
pub fn load_ca_file(path: &Path) -> std::io::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot read {:?}: {e}", path.display().to_string()),
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad certificate PEM: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no certificate in PEM",
        ));
    }
    Ok(certs)
}

/// The TLS client for `wss://` bots: the system roots plus the certificates in `ca_file`.
pub fn tls_client(ca_file: Option<&Path>) -> std::io::Result<Arc<ClientConfig>> {
    let extra = match ca_file {
        Some(p) => load_ca_file(p)?,
        None => Vec::new(),
    };
    crate::sip::tls::client_config(&extra)
}

/// What the fork client needs to know about the call.
#[derive(Debug, Clone)]
pub struct ForkConfig {
    /// The bot's URL (`ws://host:port/path`).
    pub url: String,
    /// How long to keep trying after the socket drops (or fails to open) before giving up.
    pub reconnect_window: Duration,
    /// The `callSid` in every `start` (the same across reconnects).
    pub call_sid: String,
    /// The `accountSid` in `start` and `stop` (empty when `None`).
    pub account_sid: Option<String>,
    /// `customParameters` of `start` (`from`, `to`, ...).
    pub custom_parameters: BTreeMap<String, String>,
    /// Keep-alive, buffer cap and TLS.
    pub settings: ForkSettings,
}

/// From the media app to the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToBot {
    /// One 20 ms caller frame in µ-law at 8 kHz; `tick` is the leg's tick (for `timestamp`).
    Media { tick: u64, payload: Vec<u8> },
    /// A digit the caller pressed.
    Dtmf(char),
    /// The bot's mark `name` was played (or cleared): echo it.
    Mark(String),
    /// The caller's buffer is full and the bot's extra audio is being dropped: send the
    /// bot one `error` event (per stream).
    BufferFull {
        /// The cap, for the event's detail.
        max_buffered_s: u64,
    },
    /// The call is over: send `stop` and close.
    Stop,
}

/// From the bot to the media app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromBot {
    /// A (new) stream started with this `streamSid`.
    Started { stream_sid: String },
    /// µ-law audio at 8 kHz to queue for the caller.
    Media(Vec<u8>),
    /// Echo `name` once everything queued before it has been played.
    Mark(String),
    /// Drop everything queued.
    Clear,
    /// The socket dropped; marks still queued will never be echoed on this stream.
    Lost,
    /// Hang up, with the reason for the call record.
    GiveUp(String),
}

/// The app's ends of the channels to a running fork client.
pub struct ForkChannels {
    pub to_bot: mpsc::Sender<ToBot>,
    pub from_bot: mpsc::Receiver<FromBot>,
}

/// A Twilio-style stream id: `MZ` and 32 hex digits.
pub fn new_stream_sid() -> String {
    let n: u128 = rand::random();
    format!("MZ{n:032x}")
}

/// Starts the client task on the current tokio runtime.
pub fn spawn(mut cfg: ForkConfig) -> ForkChannels {
    if cfg.url.starts_with("wss://") && cfg.settings.tls.is_none() {
        match tls_client(None) {
            Ok(tls) => cfg.settings.tls = Some(tls),
            Err(e) => tracing::warn!(error = %e, "fork: no TLS client configuration"),
        }
    }
    let (to_bot, rx) = mpsc::channel(TO_BOT_CAPACITY);
    let (tx, from_bot) = mpsc::channel(FROM_BOT_CAPACITY);
    tokio::spawn(run(cfg, rx, tx));
    ForkChannels { to_bot, from_bot }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a connection ended.
enum End {
    /// The app stopped (call over): nothing more to do.
    Stopped,
    /// The bot closed with 1000: hang up.
    BotClosed,
    /// The socket dropped: reconnect.
    Lost,
}

async fn run(cfg: ForkConfig, mut rx: mpsc::Receiver<ToBot>, tx: mpsc::Sender<FromBot>) {
    let mut lost_at = Instant::now();
    let mut attempt = 0usize;
    let mut first = true;
    loop {
        // Connect, retrying with backoff until the window has passed since the loss.
        let ws = loop {
            if !first {
                let wait = BACKOFF[attempt.min(BACKOFF.len() - 1)];
                attempt += 1;
                let left =
                    (lost_at + cfg.reconnect_window).saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break None;
                }
                if drain_until(tokio::time::sleep(wait.min(left)), &mut rx)
                    .await
                    .is_none()
                {
                    return;
                }
            }
            first = false;
            let left = (lost_at + cfg.reconnect_window).saturating_duration_since(Instant::now());
            // The first attempt always runs, even with a zero window.
            let limit = left.max(Duration::from_secs(1));
            let connect = tokio::time::timeout(
                limit, // Nagle would hold a mark echo behind an unacknowledged media frame (up to the
                // peer's delayed-ACK time): every message here is small and urgent.
                tokio_tungstenite::connect_async_tls_with_config(
                    cfg.url.as_str(),
                    Some(crate::leg::stream::ws_client_config()),
                    true,
                    cfg.settings.tls.clone().map(Connector::Rustls),
                ),
            );
            match drain_until(connect, &mut rx).await {
                None => return,
                Some(Ok(Ok((ws, _)))) => break Some(ws),
                Some(Ok(Err(e))) => {
                    tracing::info!(url = %cfg.url, error = %e, attempt, "fork: cannot connect to the bot");
                }
                Some(Err(_)) => {
                    tracing::info!(url = %cfg.url, attempt, "fork: connecting to the bot timed out");
                }
            }
        };
        let Some(ws) = ws else {
            tracing::warn!(url = %cfg.url, window = ?cfg.reconnect_window, "fork: bot unreachable for the whole reconnect window; hanging up");
            let _ = tx.send(FromBot::GiveUp("fork socket lost".into())).await;
            // Keep draining until the app stops, so its try_sends never see a full queue
            // pile up for nothing.
            while let Some(m) = rx.recv().await {
                if m == ToBot::Stop {
                    break;
                }
            }
            return;
        };
        match session(&cfg, ws, &mut rx, &tx).await {
            End::Stopped => return,
            End::BotClosed => {
                let _ = tx
                    .send(FromBot::GiveUp("fork: the bot closed the stream".into()))
                    .await;
                return;
            }
            End::Lost => {
                tracing::warn!(url = %cfg.url, "fork: socket to the bot lost; reconnecting");
                metrics::counter!(crate::telemetry::metrics::FORK_RECONNECTS).increment(1);
                if tx.send(FromBot::Lost).await.is_err() {
                    return;
                }
                lost_at = Instant::now();
                attempt = 0;
            }
        }
    }
}

/// Runs `fut` while dropping whatever the app sends (media during an outage is not kept);
/// `None` when the app stopped meanwhile.
async fn drain_until<F: Future>(fut: F, rx: &mut mpsc::Receiver<ToBot>) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            msg = rx.recv() => match msg {
                None | Some(ToBot::Stop) => return None,
                Some(_) => {}
            },
        }
    }
}

/// Sends one frame; an error when the socket failed or the bot did not take it before
/// `deadline` (its keep-alive deadline: it is not reading).
async fn send(ws: &mut Ws, frame: Frame, deadline: Instant) -> Result<(), ()> {
    let msg = match frame {
        Frame::Text(t) => Message::text(t),
        Frame::Binary(b) => Message::binary(b),
    };
    match tokio::time::timeout_at(deadline, ws.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Closes with 4010 after a keep-alive timeout (the frame best effort within a second),
/// then waits up to one `interval` (a second at most: the caller is waiting for a new
/// stream) for the bot's close reply, so a late bot's pongs do not meet a reset that can
/// cost it our close frame.
async fn close_dead(ws: &mut Ws, interval: Duration, stream_sid: &str) {
    tracing::warn!(
        stream_sid,
        "fork: the bot answered no ping for two keep-alive intervals; closing"
    );
    let frame = CloseFrame {
        code: CloseCode::from(CLOSE_KEEPALIVE_TIMEOUT),
        reason: "keep-alive timeout".into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
    let _ = tokio::time::timeout(interval.min(Duration::from_secs(1)), async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Close(_) = msg {
                break;
            }
        }
    })
    .await;
}

/// One connection: `connected` + `start`, then media both ways until it ends.
async fn session(
    cfg: &ForkConfig,
    mut ws: Ws,
    rx: &mut mpsc::Receiver<ToBot>,
    tx: &mpsc::Sender<FromBot>,
) -> End {
    let mut codec = TwilioCarrierCodec::new();
    let stream_sid = new_stream_sid();
    let start = StreamStart {
        stream_id: stream_sid.clone(),
        call_id: cfg.call_sid.clone(),
        account_id: cfg.account_sid.clone(),
        tracks: vec![Track::Inbound],
        custom_parameters: cfg.custom_parameters.clone(),
        media_format: MediaFormat {
            encoding: Encoding::Pcmu,
            sample_rate: 8000,
            channels: 1,
        },
    };
    let mut keep = KeepAlive::new(cfg.settings.ping_interval, Instant::now().into_std());
    let deadline = |k: &KeepAlive| Instant::from_std(k.deadline());
    let hello = [
        Event::Connected {
            protocol: None,
            version: None,
        },
        Event::Start(start),
    ];
    for ev in &hello {
        let Ok(frame) = codec.encode(ev) else {
            return End::Lost;
        };
        if send(&mut ws, frame, deadline(&keep)).await.is_err() {
            return End::Lost;
        }
    }
    tracing::info!(url = %cfg.url, stream_sid, call_sid = %cfg.call_sid, "fork: stream started");
    if tx
        .send(FromBot::Started {
            stream_sid: stream_sid.clone(),
        })
        .await
        .is_err()
    {
        return End::Stopped;
    }
    let mut chunk = 0u64;
    let mut first_tick: Option<u64> = None;
    let mut drops = DropCounters::default();
    let mut told_full = false;
    let end = loop {
        let wake = Instant::from_std(keep.next_wakeup());
        tokio::select! {
            msg = rx.recv() => {
                let ev = match msg {
                    None | Some(ToBot::Stop) => {
                        if let Ok(frame) = codec.encode(&Event::Stop) {
                            let _ = send(&mut ws, frame, deadline(&keep)).await;
                        }
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                        break End::Stopped;
                    }
                    Some(ToBot::Media { tick, payload }) => {
                        chunk += 1;
                        let t0 = *first_tick.get_or_insert(tick);
                        Event::Media(MediaChunk {
                            track: Track::Inbound,
                            chunk,
                            timestamp_ms: tick.saturating_sub(t0) * 20,
                            sequence: 0,
                            payload,
                        })
                    }
                    Some(ToBot::Dtmf(digit)) => Event::Dtmf { digit, track: Some(Track::Inbound), duration_ms: None },
                    Some(ToBot::Mark(name)) => Event::Mark { name },
                    Some(ToBot::BufferFull { max_buffered_s }) => {
                        if std::mem::replace(&mut told_full, true) {
                            continue;
                        }
                        tracing::error!(stream_sid, max_buffered_s,
                            "fork: the bot sent more than the buffer cap ahead of real time; extra audio dropped");
                        Event::Error {
                            code: Some(ERROR_BUFFER_FULL),
                            title: Some("audio_buffer_full".into()),
                            detail: Some(format!(
                                "more than {max_buffered_s} s of audio queued ahead of real time; extra media is dropped"
                            )),
                        }
                    }
                };
                let Ok(frame) = codec.encode(&ev) else { continue };
                if send(&mut ws, frame, deadline(&keep)).await.is_err() {
                    break End::Lost;
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                match keep.poll(Instant::now().into_std()) {
                    KeepAliveAction::Wait => {}
                    KeepAliveAction::Ping => {
                        let ping = tokio::time::timeout_at(deadline(&keep), ws.send(Message::Ping(Vec::new().into())));
                        if !matches!(ping.await, Ok(Ok(()))) {
                            close_dead(&mut ws, keep.interval(), &stream_sid).await;
                            break End::Lost;
                        }
                    }
                    KeepAliveAction::Dead => {
                        close_dead(&mut ws, keep.interval(), &stream_sid).await;
                        break End::Lost;
                    }
                }
            }
            msg = ws.next() => {
                let msg = match msg {
                    None | Some(Err(_)) => break End::Lost,
                    Some(Ok(m)) => m,
                };
                keep.heard(Instant::now().into_std());
                let decoded = match &msg {
                    Message::Text(t) => codec.decode(FrameRef::Text(t.as_str())),
                    Message::Binary(b) => codec.decode(FrameRef::Binary(b)),
                    Message::Close(frame) => {
                        let normal = frame.as_ref().is_some_and(|f| f.code == CloseCode::Normal);
                        tracing::info!(stream_sid, ?frame, "fork: the bot closed the socket");
                        break if normal { End::BotClosed } else { End::Lost };
                    }
                    // Pings are answered by tungstenite on the next write/flush.
                    _ => continue,
                };
                let out = match decoded {
                    Ok(super::stream::Command::Media { payload }) => FromBot::Media(payload),
                    Ok(super::stream::Command::Mark { name }) => FromBot::Mark(name),
                    Ok(super::stream::Command::Clear) => FromBot::Clear,
                    Err(e) => {
                        let reason = drops.record(&e);
                        metrics::counter!(crate::telemetry::metrics::STREAM_FRAMES_DROPPED, "dialect" => "fork", "reason" => reason.name())
                            .increment(1);
                        let n = drops.total();
                        if n <= 10 || n.is_power_of_two() {
                            tracing::warn!(stream_sid, error = %e, reason = reason.name(), bad_frames = n, "fork: bad frame from the bot dropped");
                        }
                        continue;
                    }
                };
                // The media thread drains this every 20 ms (up to 512 messages a tick):
                // waiting here briefly is the backpressure on a bot that floods us; the
                // media thread itself never waits.
                if tx.send(out).await.is_err() {
                    break End::Stopped;
                }
            }
        }
    };
    tracing::info!(stream_sid, call_sid = %cfg.call_sid, media_sent = chunk, dropped_frames = drops.total(), drops = %drops, "fork: stream ended");
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_sids_look_like_twilio_ones() {
        let a = new_stream_sid();
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("MZ"));
        assert!(a[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_stream_sid());
    }
}
