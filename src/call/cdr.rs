//! Writes the record of every finished call (CDR, media stats, recording) to the store, and
//! the `call.started` / `call.answered` events as calls go.
//!
//! The call layer only sends [`CallUpdate`]s on a channel; this task does the database work,
//! so a slow database never holds up signalling or media. A call's CDR id is chosen when it
//! starts, so its events name the record that is written when it ends.

use std::io::Read;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;

use std::collections::HashMap;

use super::{CallId, CallRecord, CallUpdate};
use crate::media::storage::RecordingStorage;
use crate::store::calls::{CallRecordRow, Direction, RecordingRow};
use crate::store::events::EventType;
use crate::store::ids::new_id;
use crate::store::{AccountId, Store};

/// Turns true when the writer has stored every record it was sent and all senders are gone.
pub type WriterDone = tokio::sync::watch::Receiver<bool>;

/// Starts the writer; returns the sender the call layer reports calls on, and a signal that
/// the writer has drained. Each ended call's record is also forwarded to `forward` (the demo
/// and tests read it) after it is stored.
pub fn spawn_writer(
    store: Store,
    account: AccountId,
    recordings: Arc<dyn RecordingStorage>,
    key_id: Option<String>,
    forward: Option<mpsc::UnboundedSender<CallRecord>>,
) -> (mpsc::UnboundedSender<CallUpdate>, WriterDone) {
    let (tx, mut rx) = mpsc::unbounded_channel::<CallUpdate>();
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _done = DoneOnDrop(done_tx);
        // CDR ids of the calls in progress.
        let mut ids: HashMap<CallId, String> = HashMap::new();
        while let Some(update) = rx.recv().await {
            let record = match update {
                CallUpdate::Started {
                    call,
                    from,
                    to,
                    sip_call_id,
                    trunk,
                    at_ms,
                } => {
                    let id = new_id("call", at_ms);
                    let payload = json!({
                        "id": id, "direction": "inbound", "from": from, "to": to,
                        "sip_call_id": sip_call_id, "trunk": trunk,
                        "setup_at": crate::store::rfc3339(at_ms),
                    });
                    emit(&store, &account, EventType::CallStarted, &id, payload).await;
                    ids.insert(call, id);
                    continue;
                }
                CallUpdate::Answered {
                    call,
                    sip_call_id,
                    at_ms,
                } => {
                    if let Some(id) = ids.get(&call) {
                        let payload = json!({
                            "id": id, "sip_call_id": sip_call_id,
                            "answer_at": crate::store::rfc3339(at_ms),
                        });
                        emit(&store, &account, EventType::CallAnswered, id, payload).await;
                    }
                    continue;
                }
                CallUpdate::Ended(record) => *record,
            };
            let mut cdr = row(&record);
            if let Some(id) = ids.remove(&record.call) {
                cdr.id = id;
            }
            if let Some(agent) = &record.agent {
                super::agent_record::fill_row(agent, &mut cdr);
            }
            match store.insert_call(&account, &cdr).await {
                Ok(id) => {
                    tracing::info!(call = %record.call, cdr = %id, "call record stored");
                    let mut payload = serde_json::to_value(&cdr).unwrap_or_default();
                    payload["id"] = json!(id);
                    emit(&store, &account, EventType::CallEnded, &id, payload).await;
                    if let Some(agent) = &record.agent {
                        super::agent_record::store(&store, &account, &id, &record.from, agent)
                            .await;
                    }
                    if let Some(key) = record.media.as_ref().and_then(|m| m.recording.clone()) {
                        store_recording(&store, &account, &recordings, &id, &key, &key_id, &record)
                            .await;
                    }
                }
                Err(e) => {
                    tracing::error!(call = %record.call, error = %e, "call record not stored")
                }
            }
            if let Some(f) = &forward {
                let _ = f.send(record);
            }
        }
    });
    (tx, done_rx)
}

/// Stores a call event (and queues its webhooks); a failure is logged, never fatal.
async fn emit(
    store: &Store,
    account: &AccountId,
    kind: EventType,
    call_id: &str,
    payload: serde_json::Value,
) {
    if let Err(e) = store
        .emit_event(account, kind, Some(call_id), None, payload)
        .await
    {
        tracing::error!(call = %call_id, event = ?kind, error = %e, "call event not stored");
    }
}

/// Signals `true` when dropped, even if the writer task panicked.
struct DoneOnDrop(tokio::sync::watch::Sender<bool>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

fn row(r: &CallRecord) -> CallRecordRow {
    let media = r.media.as_ref().map_or(json!(null), |m| {
        json!({
            "frames_sent_audio": m.frames_sent_audio,
            "frames_sent_silence": m.frames_sent_silence,
            "frames_decoded": m.frames_decoded,
            "frames_concealed": m.frames_concealed,
            "decode_errors": m.decode_errors,
            "srtp_rejected": m.srtp_rejected,
            "mos": m.mos,
            "duration_ms": m.duration.as_millis() as u64,
            "dtmf": r.dtmf,
        })
    });
    CallRecordRow {
        id: String::new(),
        direction: Direction::Inbound,
        from: r.from.clone(),
        to: r.to.clone(),
        trunk: r.trunk.clone(),
        campaign_id: None,
        lead_id: None,
        sip_call_id: r.sip_call_id.clone(),
        status: "ended".to_owned(),
        setup_at: r.setup_at_ms,
        ring_at: r.ring_at_ms,
        answer_at: r.answer_at_ms,
        end_at: Some(r.end_at_ms),
        duration_ms: r.answer_at_ms.map(|a| (r.end_at_ms - a).max(0)),
        outcome: Some(
            r.app_result
                .clone()
                .unwrap_or_else(|| "completed".to_owned()),
        ),
        disposition: None,
        notes: None,
        hangup_cause: Some(format!("{:?}", r.reason)),
        sip_code: None,
        media_stats: media,
        latency: json!([]),
        tool_calls: json!([]),
    }
}

async fn store_recording(
    store: &Store,
    account: &AccountId,
    recordings: &Arc<dyn RecordingStorage>,
    call_id: &str,
    key: &str,
    key_id: &Option<String>,
    record: &CallRecord,
) {
    // The plain size is what a download serves; counting it verifies the file once, too.
    let storage = recordings.clone();
    let k = key.to_owned();
    let bytes = tokio::task::spawn_blocking(move || -> Option<i64> {
        let mut reader = storage.open(&k).ok()?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0i64;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Some(total),
                Ok(n) => total += n as i64,
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    let Some(bytes) = bytes else {
        tracing::error!(call = %record.call, %key, "recording unreadable; not indexed");
        return;
    };
    let row = RecordingRow {
        id: String::new(),
        call_id: call_id.to_owned(),
        storage_key: key.to_owned(),
        format: if key.ends_with(".ogg") { "ogg" } else { "wav" }.to_owned(),
        bytes,
        duration_ms: record
            .media
            .as_ref()
            .map_or(0, |m| m.duration.as_millis() as i64),
        key_id: key_id.clone().unwrap_or_default(),
        created_at: record.end_at_ms,
    };
    match store.insert_recording(account, &row).await {
        Ok(rec_id) => {
            let payload = json!({"call_id": call_id, "recording_id": rec_id,
                                 "duration_ms": row.duration_ms, "format": row.format});
            if let Err(e) = store
                .emit_event(
                    account,
                    EventType::RecordingReady,
                    Some(call_id),
                    None,
                    payload,
                )
                .await
            {
                tracing::error!(call = %record.call, error = %e, "recording.ready event not stored");
            }
        }
        Err(e) => tracing::error!(call = %record.call, error = %e, "recording not indexed"),
    }
}
