//! `/v1/calls` (CDRs and transcripts) and `/v1/recordings` (metadata and decrypted audio).

use std::io::Read;

use axum::body::Body as RawBody;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use serde_json::{Value, json};

use super::auth::Caller;
use super::extract::List;
use super::{ApiError, ApiState};
use crate::store::calls::{CallRecordRow, RecordingRow};
use crate::store::rfc3339;

fn call_view(c: &CallRecordRow) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    for key in ["setup_at", "ring_at", "answer_at", "end_at"] {
        if let Some(ms) = v[key].as_i64() {
            v[key] = json!(rfc3339(ms));
        }
    }
    v
}

fn recording_view(r: &RecordingRow) -> Value {
    json!({
        "id": r.id, "call_id": r.call_id, "format": r.format, "bytes": r.bytes,
        "duration_ms": r.duration_ms, "key_id": r.key_id, "created_at": rfc3339(r.created_at),
    })
}

#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(super::extract::ListQuery), responses((status = 200, body = super::openapi::CallPage)))]
pub async fn list(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    List(q): List,
) -> Result<Json<Value>, ApiError> {
    let page = s.store.list_calls(&c.account, &q.page()?).await?;
    Ok(Json(json!(page.map(|c| call_view(&c)))))
}

#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls", params(("id" = String, Path)), responses((status = 200, body = super::openapi::CallView), (status = 404, description = "Not in this account")))]
pub async fn get_one(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(call_view(&s.store.call(&c.account, &id).await?)))
}

#[utoipa::path(get, path = "/v1/calls/{id}/transcript", tag = "calls", params(("id" = String, Path)), responses((status = 200, body = super::openapi::TranscriptView), (status = 404, description = "Not in this account")))]
pub async fn transcript(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let turns = s.store.transcript(&c.account, &id).await?;
    Ok(Json(json!({ "call_id": id, "turns": turns })))
}

#[utoipa::path(get, path = "/v1/recordings", tag = "recordings", params(super::extract::ListQuery), responses((status = 200, body = super::openapi::RecordingPage)))]
pub async fn list_recordings(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    List(q): List,
) -> Result<Json<Value>, ApiError> {
    let page = s.store.list_recordings(&c.account, &q.page()?).await?;
    Ok(Json(json!(page.map(|r| recording_view(&r)))))
}

#[utoipa::path(get, path = "/v1/recordings/{id}", tag = "recordings", params(("id" = String, Path)), responses((status = 200, body = super::openapi::RecordingView), (status = 404, description = "Not in this account")))]
pub async fn get_recording(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(recording_view(
        &s.store.recording(&c.account, &id).await?,
    )))
}

/// Streams the decrypted audio: every chunk is authenticated before it is sent, and a
/// tampered or truncated file ends the stream with an error rather than sending bad audio.
#[utoipa::path(get, path = "/v1/recordings/{id}/audio", tag = "recordings", params(("id" = String, Path)), responses((status = 200, description = "The decrypted audio", content((super::openapi::Binary = "audio/wav"), (super::openapi::Binary = "audio/ogg"))), (status = 404, description = "Not in this account")))]
pub async fn recording_audio(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rec = s.store.recording(&c.account, &id).await?;
    let Some(storage) = s.storage.clone() else {
        return Err(ApiError::not_found());
    };
    let key = rec.storage_key.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut reader = match storage.open(&key) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "api: recording cannot be opened");
                let _ = tx.blocking_send(Err(std::io::Error::other("recording unavailable")));
                return;
            }
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "api: recording failed verification");
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mime = if rec.format == "wav" {
        "audio/wav"
    } else {
        "audio/ogg"
    };
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (header::CONTENT_LENGTH, rec.bytes.to_string()),
        ],
        RawBody::from_stream(stream),
    )
        .into_response())
}
