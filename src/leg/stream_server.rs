//! The WebSocket endpoint carriers stream calls to: `/media-stream` speaks Twilio Media
//! Streams, `/media-stream/{telnyx,vonage,plivo,twilio}` the other dialects. Each socket
//! becomes a [`StreamLeg`] on the media workers; this task only reads frames, decodes them
//! with the dialect codec, and encodes and writes what the leg sends.
//!
//! Close codes: 1000 when the stream or the app ends; 1003 when the peer is not speaking
//! the dialect or announces audio we cannot carry; 1008 when the stream's token is
//! missing, expired or forged (`docs/streams.md`).

use super::stream::{DialectKind, Event, Frame, FrameRef};
use super::stream_auth::{StreamAuth, unix_now};
use super::stream_leg::{StreamAudio, StreamLeg, StreamLegChannels};
use super::worker::MediaEngine;
use super::{LegCommand, LegEvent, MediaApp};
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
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
}

/// The stream routes, to merge into the HTTP server.
pub fn routes(ctx: Arc<StreamContext>) -> Router {
    Router::new()
        .route("/media-stream", get(twilio_upgrade))
        .route("/media-stream/{dialect}", get(dialect_upgrade))
        .with_state(ctx)
}

async fn twilio_upgrade(ws: WebSocketUpgrade, State(ctx): State<Arc<StreamContext>>) -> Response {
    ws.on_upgrade(move |s| run(s, DialectKind::Twilio, ctx))
}

async fn dialect_upgrade(
    ws: WebSocketUpgrade,
    Path(dialect): Path<String>,
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
    ws.on_upgrade(move |s| run(s, kind, ctx))
}

fn as_frame(msg: &Message) -> Option<FrameRef<'_>> {
    match msg {
        Message::Text(t) => Some(FrameRef::Text(t.as_str())),
        Message::Binary(b) => Some(FrameRef::Binary(b)),
        _ => None,
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        })))
        .await;
}

async fn send_frame(socket: &mut WebSocket, frame: Frame) -> bool {
    let msg = match frame {
        Frame::Text(t) => Message::Text(t.into()),
        Frame::Binary(b) => Message::Binary(b.into()),
    };
    socket.send(msg).await.is_ok()
}

/// Runs one stream socket to its end.
async fn run(mut socket: WebSocket, kind: DialectKind, ctx: Arc<StreamContext>) {
    let mut codec = kind.codec();
    let mut early: Vec<Event> = Vec::new();
    // Until `start`: `connected` and the like are fine; anything broken is dropped.
    let start = loop {
        let Some(Ok(msg)) = socket.recv().await else {
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
                tracing::warn!(dialect = ?kind, error = %e, "stream frame dropped before start");
                if e.is_fatal() {
                    close(&mut socket, e.close_code(), "not speaking the dialect").await;
                    return;
                }
            }
        }
    };
    let stream_id = start.stream_id.clone();
    if let Some(auth) = &ctx.auth
        && let Err(e) = auth.verify(
            start.custom_parameters.get("token").map(String::as_str),
            unix_now(),
        )
    {
        tracing::warn!(stream = %stream_id, call = %start.call_id, error = %e, "stream refused");
        close(&mut socket, 1008, "unauthenticated stream").await;
        return;
    }
    let Some(audio) = StreamAudio::from_format(&start.media_format) else {
        tracing::warn!(stream = %stream_id, format = ?start.media_format, "unsupported stream audio");
        close(&mut socket, 1003, "unsupported audio format").await;
        return;
    };
    tracing::info!(stream = %stream_id, call = %start.call_id, dialect = ?kind, ?audio, "stream started");

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
    );
    ctx.engine.attach_paced(Box::new(leg));
    for ev in early {
        let _ = in_tx.try_send(ev);
    }
    let mut dropped_frames = 0u64;
    let mut bad_in_a_row = 0u32;
    let mut digits = String::new();
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { break };
                if let Message::Close(_) = msg { break; }
                let Some(frame) = as_frame(&msg) else { continue };
                match codec.decode(frame) {
                    Ok(events) => {
                        bad_in_a_row = 0;
                        for ev in events {
                            if in_tx.try_send(ev).is_err() {
                                dropped_frames += 1;
                            }
                        }
                    }
                    Err(e) => {
                        // After a good start one bad frame is dropped and counted; a peer
                        // that sends nothing but garbage is not speaking the dialect.
                        dropped_frames += 1;
                        bad_in_a_row += 1;
                        tracing::warn!(stream = %stream_id, error = %e, dropped_frames, "stream frame dropped");
                        if bad_in_a_row >= MAX_BAD_FRAMES_IN_A_ROW {
                            close(&mut socket, e.close_code(), "not speaking the dialect").await;
                            break;
                        }
                    }
                }
            }
            cmd = out_rx.recv() => {
                let Some(cmd) = cmd else { break };
                match codec.encode(&cmd) {
                    Ok(frame) => {
                        if !send_frame(&mut socket, frame).await { break; }
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
                    while let Ok(cmd) = out_rx.try_recv() {
                        if let Ok(frame) = codec.encode(&cmd) {
                            let _ = send_frame(&mut socket, frame).await;
                        }
                    }
                    close(&mut socket, 1000, "done").await;
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
        dropped_frames,
        dtmf = %digits,
        "stream ended"
    );
}
