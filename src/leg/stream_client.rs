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

use super::stream::twilio::TwilioCarrierCodec;
use super::stream::{
    Encoding, Event, Frame, FrameRef, MediaChunk, MediaFormat, StreamStart, Track,
};
use futures_util::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
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
pub fn spawn(cfg: ForkConfig) -> ForkChannels {
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
                tokio_tungstenite::connect_async_with_config(cfg.url.as_str(), None, true),
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

async fn send(ws: &mut Ws, frame: Frame) -> Result<(), ()> {
    let msg = match frame {
        Frame::Text(t) => Message::text(t),
        Frame::Binary(b) => Message::binary(b),
    };
    ws.send(msg).await.map_err(|_| ())
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
        if send(&mut ws, frame).await.is_err() {
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
    let mut bad_frames = 0u64;
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let ev = match msg {
                    None | Some(ToBot::Stop) => {
                        if let Ok(frame) = codec.encode(&Event::Stop) {
                            let _ = send(&mut ws, frame).await;
                        }
                        let _ = ws.close(None).await;
                        return End::Stopped;
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
                };
                let Ok(frame) = codec.encode(&ev) else { continue };
                if send(&mut ws, frame).await.is_err() {
                    return End::Lost;
                }
            }
            msg = ws.next() => {
                let msg = match msg {
                    None | Some(Err(_)) => return End::Lost,
                    Some(Ok(m)) => m,
                };
                let decoded = match &msg {
                    Message::Text(t) => codec.decode(FrameRef::Text(t.as_str())),
                    Message::Binary(b) => codec.decode(FrameRef::Binary(b)),
                    Message::Close(frame) => {
                        let normal = frame.as_ref().is_some_and(|f| f.code == CloseCode::Normal);
                        tracing::info!(stream_sid, ?frame, "fork: the bot closed the socket");
                        return if normal { End::BotClosed } else { End::Lost };
                    }
                    // Pings are answered by tungstenite on the next write/flush.
                    _ => continue,
                };
                let out = match decoded {
                    Ok(super::stream::Command::Media { payload }) => FromBot::Media(payload),
                    Ok(super::stream::Command::Mark { name }) => FromBot::Mark(name),
                    Ok(super::stream::Command::Clear) => FromBot::Clear,
                    Err(e) => {
                        bad_frames += 1;
                        if bad_frames <= 10 || bad_frames.is_power_of_two() {
                            tracing::warn!(stream_sid, error = %e, bad_frames, "fork: bad frame from the bot dropped");
                        }
                        continue;
                    }
                };
                // The media thread drains this every 20 ms; waiting here is the backpressure
                // on a bot that sends faster than the app can queue.
                if tx.send(out).await.is_err() {
                    return End::Stopped;
                }
            }
        }
    }
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
