//! The WebSocket endpoint carriers stream calls to: `/media-stream` speaks Twilio Media
//! Streams, `/media-stream/{telnyx,vonage,plivo,twilio}` the other dialects. Each socket
//! becomes a [`StreamLeg`] on the media workers; this task only reads frames, decodes them
//! with the dialect codec, and encodes and writes what the leg sends.
//!
//! Close codes: 1000 when the stream or the app ends; 1003 when the peer is not speaking
//! the dialect or announces audio we cannot carry; 1008 when the stream's token is
//! missing, expired or forged; 4010 when the peer answered no ping for two keep-alive
//! intervals (`docs/streams.md`).
//!
//! Nothing here waits on the media workers: the leg takes events through a bounded channel
//! (`try_send`; a full queue drops the frame and counts it), and a peer that stops reading
//! blocks only this task, whose writes give up at the keep-alive deadline.

use super::stream::drops::{DropCounters, DropReason};
use super::stream::error::{CLOSE_KEEPALIVE_TIMEOUT, StreamError};
use super::stream::keepalive::{KeepAlive, KeepAliveAction};
use super::stream::{DialectKind, Event, Frame, FrameRef, WS_READ_BUFFER};
use super::stream_auth::{StreamAuth, presented_token, unix_now};
use super::stream_leg::{StreamAudio, StreamLeg, StreamLegChannels};
use super::worker::MediaEngine;
use super::{LegCommand, LegEvent, MediaApp};
use crate::telemetry::metrics as m;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Consecutive undecodable frames after which a stream is closed.
const MAX_BAD_FRAMES_IN_A_ROW: u32 = 20;

/// Builds the app that runs on a stream, at the stream's PCM rate.
pub type StreamAppFactory = Arc<dyn Fn(u32) -> Box<dyn MediaApp> + Send + Sync>;

/// What every stream socket needs.
pub struct StreamContext {
    pub engine: Arc<MediaEngine>,
    /// `None` accepts unauthenticated streams (development only; logged at start).
    pub auth: Option<StreamAuth>,
    pub app: StreamAppFactory,
    /// `[streams] ping_interval_s`: keep-alive ping period.
    pub ping_interval: Duration,
    /// `[streams] max_buffered_s`: most audio queued for the carrier ahead of real time.
    pub max_buffered: Duration,
}

/// The stream routes, to merge into the HTTP server.
pub fn routes(ctx: Arc<StreamContext>) -> Router {
    Router::new()
        .route("/media-stream", get(twilio_upgrade))
        .route("/media-stream/{dialect}", get(dialect_upgrade))
        .with_state(ctx)
}

/// The stream URL's query: `?token=` for the dialects whose carriers allow one.
#[derive(serde::Deserialize, Default)]
struct StreamQuery {
    token: Option<String>,
}

async fn twilio_upgrade(ws: WebSocketUpgrade, State(ctx): State<Arc<StreamContext>>) -> Response {
    ws.read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(move |s| run(s, DialectKind::Twilio, None, ctx))
}

/// The HTTP header Telnyx puts Call Control's `stream_auth_token` in on the WebSocket upgrade
/// (it also sends it in the `connected` frame).
const TELNYX_TOKEN_HEADER: &str = "x-telnyx-streaming-auth-token";

async fn dialect_upgrade(
    ws: WebSocketUpgrade,
    Path(dialect): Path<String>,
    Query(query): Query<StreamQuery>,
    headers: axum::http::HeaderMap,
    State(ctx): State<Arc<StreamContext>>,
) -> Response {
    let kind = match dialect.as_str() {
        "twilio" => DialectKind::Twilio,
        "telnyx" => DialectKind::Telnyx,
        "vonage" => DialectKind::Vonage,
        "plivo" => DialectKind::Plivo,
        _ => {
            return axum::response::IntoResponse::into_response((
                axum::http::StatusCode::NOT_FOUND,
                "unknown stream dialect",
            ));
        }
    };
    // A token that came with the upgrade: the URL's `?token=`, or Telnyx's header.
    let upgrade_token = query.token.or_else(|| {
        (kind == DialectKind::Telnyx)
            .then(|| headers.get(TELNYX_TOKEN_HEADER)?.to_str().ok())
            .flatten()
            .map(str::to_owned)
    });
    ws.read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(move |s| run(s, kind, upgrade_token, ctx))
}

fn as_frame(msg: &Message) -> Option<FrameRef<'_>> {
    match msg {
        Message::Text(t) => Some(FrameRef::Text(t.as_str())),
        Message::Binary(b) => Some(FrameRef::Binary(b)),
        _ => None,
    }
}

/// Sends a close frame, giving up at `deadline` (a peer that stopped reading).
async fn close(socket: &mut WebSocket, code: u16, reason: &str, deadline: Instant) {
    let msg = Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    }));
    let _ = tokio::time::timeout_at(deadline.into(), socket.send(msg)).await;
}

/// Sends one frame; false when the socket failed or the peer did not take it before
/// `deadline` (its keep-alive deadline: it is not reading).
async fn send_msg(socket: &mut WebSocket, msg: Message, deadline: Instant) -> bool {
    matches!(
        tokio::time::timeout_at(deadline.into(), socket.send(msg)).await,
        Ok(Ok(()))
    )
}

fn frame_msg(frame: Frame) -> Message {
    match frame {
        Frame::Text(t) => Message::Text(t.into()),
        Frame::Binary(b) => Message::Binary(b.into()),
    }
}

/// The next message, or `None` when the socket ended or keep-alive says the peer is dead
/// (then it has been closed with 4010). Pings go out meanwhile; any frame counts as life.
async fn recv(socket: &mut WebSocket, keep: &mut KeepAlive, id: &str) -> Option<Message> {
    loop {
        let wake = keep.next_wakeup();
        tokio::select! {
            msg = socket.recv() => {
                let msg = msg?.ok()?;
                keep.heard(Instant::now());
                return Some(msg);
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if !keep_alive(socket, keep, id).await {
                    return None;
                }
            }
        }
    }
}

/// Runs the keep-alive due now; false when the peer is dead (the socket is closed).
async fn keep_alive(socket: &mut WebSocket, keep: &mut KeepAlive, id: &str) -> bool {
    let now = Instant::now();
    match keep.poll(now) {
        KeepAliveAction::Wait => true,
        KeepAliveAction::Ping => {
            // A ping we cannot even hand to the socket before the deadline is a dead peer.
            send_msg(socket, Message::Ping(Vec::new().into()), keep.deadline()).await
                || dead(socket, keep.interval(), id).await
        }
        KeepAliveAction::Dead => dead(socket, keep.interval(), id).await,
    }
}

async fn dead(socket: &mut WebSocket, interval: Duration, id: &str) -> bool {
    tracing::warn!(stream = %id, "stream peer answered no ping for two keep-alive intervals; closing");
    let soon = Instant::now() + Duration::from_secs(1);
    close(socket, CLOSE_KEEPALIVE_TIMEOUT, "keep-alive timeout", soon).await;
    // Wait one more interval for the close reply (RFC 6455 §7.1.1: the server closes TCP
    // after the handshake): dropping the socket at once would answer a late peer's pongs
    // with a reset that can cost it our close frame.
    let _ = tokio::time::timeout(interval, async {
        while let Some(Ok(msg)) = socket.recv().await {
            if let Message::Close(_) = msg {
                break;
            }
        }
    })
    .await;
    false
}

/// Counts a dropped frame in the stream's counters and in the metrics.
fn count_drop(drops: &mut DropCounters, kind: DialectKind, e: &StreamError) -> DropReason {
    let reason = drops.record(e);
    metrics::counter!(m::STREAM_FRAMES_DROPPED, "dialect" => kind.name(), "reason" => reason.name())
        .increment(1);
    reason
}

/// Counts a good frame dropped because the leg's queue was full.
fn count_queue_full(drops: &mut DropCounters, kind: DialectKind) {
    drops.add(DropReason::QueueFull);
    let reason = DropReason::QueueFull.name();
    metrics::counter!(m::STREAM_FRAMES_DROPPED, "dialect" => kind.name(), "reason" => reason)
        .increment(1);
}

fn count_rejected(reason: &'static str) {
    metrics::counter!(m::STREAMS_REJECTED, "reason" => reason).increment(1);
}

/// Counts a stream in `leadscaller_streams_active` for as long as it runs.
struct ActiveStream(DialectKind);

impl ActiveStream {
    fn start(kind: DialectKind) -> ActiveStream {
        metrics::gauge!(m::STREAMS_ACTIVE, "dialect" => kind.name()).increment(1.0);
        ActiveStream(kind)
    }
}

impl Drop for ActiveStream {
    fn drop(&mut self) {
        metrics::gauge!(m::STREAMS_ACTIVE, "dialect" => self.0.name()).decrement(1.0);
    }
}

/// Runs one stream socket to its end; `query_token` came with the upgrade (the URL's `?token=`,
/// or Telnyx's auth header).
async fn run(
    mut socket: WebSocket,
    kind: DialectKind,
    query_token: Option<String>,
    ctx: Arc<StreamContext>,
) {
    let mut codec = kind.codec();
    let mut early: Vec<Event> = Vec::new();
    let mut keep = KeepAlive::new(ctx.ping_interval, Instant::now());
    let mut drops = DropCounters::default();
    let soon = || Instant::now() + Duration::from_secs(1);
    // Until `start`: `connected` and the like are fine; anything broken is dropped.
    let start = loop {
        let Some(msg) = recv(&mut socket, &mut keep, "(before start)").await else {
            return;
        };
        if let Message::Close(_) = msg {
            return;
        }
        let Some(frame) = as_frame(&msg) else {
            continue;
        };
        match codec.decode(frame) {
            Ok(events) => {
                let mut start = None;
                for ev in events {
                    match ev {
                        Event::Start(s) if start.is_none() => start = Some(s),
                        Event::Connected { .. } => {}
                        other => early.push(other),
                    }
                }
                if let Some(s) = start {
                    break s;
                }
            }
            Err(e) => {
                let reason = count_drop(&mut drops, kind, &e);
                tracing::warn!(dialect = ?kind, error = %e, reason = reason.name(), "stream frame dropped before start");
                if e.is_fatal() {
                    count_rejected("not_speaking_dialect");
                    close(
                        &mut socket,
                        e.close_code(),
                        "not speaking the dialect",
                        soon(),
                    )
                    .await;
                    return;
                }
            }
        }
    };
    let stream_id = start.stream_id.clone();
    if let Some(auth) = &ctx.auth
        && let Err(e) = auth.verify(
            presented_token(kind, &start.custom_parameters, query_token.as_deref()),
            unix_now(),
        )
    {
        tracing::warn!(stream = %stream_id, call = %start.call_id, dialect = kind.name(), error = %e, "stream refused");
        count_rejected("unauthenticated");
        close(&mut socket, 1008, "unauthenticated stream", soon()).await;
        return;
    }
    let Some(audio) = StreamAudio::from_format(&start.media_format) else {
        tracing::warn!(stream = %stream_id, format = ?start.media_format, "unsupported stream audio");
        count_rejected("unsupported_audio");
        close(&mut socket, 1003, "unsupported audio format", soon()).await;
        return;
    };
    tracing::info!(stream = %stream_id, call = %start.call_id, dialect = ?kind, ?audio, "stream started");
    metrics::counter!(m::STREAMS_TOTAL, "dialect" => kind.name()).increment(1);
    let _active = ActiveStream::start(kind);

    let (in_tx, in_rx) = mpsc::channel(512);
    let (out_tx, mut out_rx) = mpsc::channel(512);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let leg = StreamLeg::new(
        audio,
        StreamLegChannels {
            inbound: in_rx,
            outbound: out_tx,
            commands: cmd_rx,
            events: ev_tx,
        },
        (ctx.app)(audio.rate()),
        None,
        Instant::now(),
    )
    .with_max_buffered(ctx.max_buffered, &stream_id);
    ctx.engine.attach_paced(Box::new(leg));
    for ev in early {
        if in_tx.try_send(ev).is_err() {
            count_queue_full(&mut drops, kind);
        }
    }
    let mut bad_in_a_row = 0u32;
    let mut digits = String::new();
    let mut close_code = None;
    loop {
        let wake = keep.next_wakeup();
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { break };
                keep.heard(Instant::now());
                if let Message::Close(_) = msg { break; }
                let Some(frame) = as_frame(&msg) else { continue };
                match codec.decode(frame) {
                    Ok(events) => {
                        bad_in_a_row = 0;
                        for ev in events {
                            if in_tx.try_send(ev).is_err() {
                                count_queue_full(&mut drops, kind);
                            }
                        }
                    }
                    Err(e) => {
                        // After a good start one bad frame is dropped and counted; a peer
                        // that sends nothing but garbage is not speaking the dialect.
                        let reason = count_drop(&mut drops, kind, &e);
                        bad_in_a_row += 1;
                        tracing::warn!(stream = %stream_id, error = %e, reason = reason.name(), dropped_frames = drops.total(), "stream frame dropped");
                        if bad_in_a_row >= MAX_BAD_FRAMES_IN_A_ROW {
                            close(&mut socket, e.close_code(), "not speaking the dialect", soon()).await;
                            close_code = Some(e.close_code());
                            break;
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if !keep_alive(&mut socket, &mut keep, &stream_id).await {
                    close_code = Some(CLOSE_KEEPALIVE_TIMEOUT);
                    break;
                }
            }
            cmd = out_rx.recv() => {
                let Some(cmd) = cmd else { break };
                match codec.encode(&cmd) {
                    Ok(frame) => {
                        if !send_msg(&mut socket, frame_msg(frame), keep.deadline()).await {
                            tracing::warn!(stream = %stream_id, "stream peer is not reading; closing");
                            close_code = Some(CLOSE_KEEPALIVE_TIMEOUT);
                            break;
                        }
                    }
                    Err(e) => tracing::warn!(stream = %stream_id, error = %e, "cannot encode for the stream"),
                }
            }
            ev = ev_rx.recv() => match ev {
                Some(LegEvent::Dtmf { digit, .. }) => {
                    tracing::info!(stream = %stream_id, %digit, "DTMF");
                    digits.push(digit);
                }
                Some(LegEvent::AppFinished(why)) => {
                    tracing::info!(stream = %stream_id, reason = %why, "stream app finished");
                    // Flush what the leg already queued for the carrier, then close.
                    let deadline = soon() + Duration::from_secs(1);
                    while let Ok(cmd) = out_rx.try_recv() {
                        if let Ok(frame) = codec.encode(&cmd)
                            && !send_msg(&mut socket, frame_msg(frame), deadline).await
                        {
                            break;
                        }
                    }
                    close(&mut socket, 1000, "done", deadline).await;
                    close_code = Some(1000);
                    break;
                }
                Some(LegEvent::Stopped(_)) | None => break,
                Some(_) => {}
            },
        }
    }
    let _ = cmd_tx.send(LegCommand::Stop);
    let stats = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(ev) = ev_rx.recv().await {
            if let LegEvent::Stopped(s) = ev {
                return Some(s);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    tracing::info!(
        stream = %stream_id,
        frames_in = stats.as_ref().map_or(0, |s| s.frames_decoded),
        frames_out = stats.as_ref().map_or(0, |s| s.frames_sent_audio),
        out_dropped = stats.as_ref().map_or(0, |s| s.send_errors),
        dropped_frames = drops.total(),
        drops = %drops,
        close_code,
        dtmf = %digits,
        "stream ended"
    );
}
