//! The data-subject export: one zip archive, built in an unnamed temporary file, holding every
//! row about the subject as JSON and their call recordings decrypted.
//!
//! Members: `lead.json` (every lead with the number), `consent_history.json`, `calls.json`,
//! `transcripts.json`, `events.json`, `recordings.json` (metadata, and which file holds each
//! recording) and `recordings/<recording id>.<format>`. Recordings are copied from the storage
//! in 64 KiB steps, so memory stays bounded whatever their size.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::Arc;

use serde_json::{Value, json};
use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, ZipWriter};

use super::dsr::{Resolved, Subject, resolve};
use super::rows::{Col, IN_CHUNK, placeholders, select_list, to_json};
use super::{PrivacyError, audit_job};
use crate::media::storage::{RecordingStorage, StorageError};
use crate::store::{AccountId, Store};

/// A finished export: the archive (an unnamed temporary file, rewound) and what it holds.
#[derive(Debug)]
pub struct Export {
    /// The zip archive, positioned at its start; deleted when dropped.
    pub file: File,
    /// Its size in bytes.
    pub bytes: u64,
    /// Leads included.
    pub leads: usize,
    /// Calls included.
    pub calls: usize,
    /// Recording files included.
    pub recordings: usize,
}

const CALL_COLS: &[Col] = &[
    Col::Text("id"),
    Col::Text("direction"),
    Col::Text("from_number"),
    Col::Text("to_number"),
    Col::Text("trunk"),
    Col::Text("campaign_id"),
    Col::Text("lead_id"),
    Col::Text("status"),
    Col::Int("setup_at"),
    Col::Int("ring_at"),
    Col::Int("answer_at"),
    Col::Int("end_at"),
    Col::Int("duration_ms"),
    Col::Text("outcome"),
    Col::Text("disposition"),
    Col::Text("notes"),
    Col::Text("hangup_cause"),
    Col::Int("sip_code"),
    Col::Json("tool_calls"),
    Col::Int("created_at"),
];

const TURN_COLS: &[Col] = &[
    Col::Text("id"),
    Col::Text("call_id"),
    Col::Int("seq"),
    Col::Text("speaker"),
    Col::Text("text"),
    Col::Int("start_ms"),
    Col::Int("end_ms"),
    Col::Int("interrupted_i"),
    Col::Int("created_at"),
];

const EVENT_COLS: &[Col] = &[
    Col::Text("id"),
    Col::Text("type"),
    Col::Text("call_id"),
    Col::Text("lead_id"),
    Col::Json("payload"),
    Col::Int("created_at"),
];

const RECORDING_COLS: &[Col] = &[
    Col::Text("id"),
    Col::Text("call_id"),
    Col::Text("storage_key"),
    Col::Text("format"),
    Col::Int("bytes"),
    Col::Int("duration_ms"),
    Col::Int("created_at"),
];

const CALLBACK_COLS: &[Col] = &[
    Col::Text("id"),
    Col::Text("call_id"),
    Col::Text("lead_id"),
    Col::Text("phone"),
    Col::Text("requested"),
    Col::Text("note"),
    Col::Text("status"),
    Col::Int("created_at"),
];

/// Builds the subject's export archive and writes a `privacy.export` audit entry (counts only).
/// Recordings are read through `storage` (decrypted); without one they are listed but absent.
pub async fn export(
    store: &Store,
    storage: Option<&Arc<dyn RecordingStorage>>,
    account: &AccountId,
    subject: &Subject,
    now_ms: i64,
) -> Result<Export, PrivacyError> {
    let subject = resolve(store, account, subject).await?;
    let docs = collect(store, account, &subject).await?;
    let storage = storage.cloned();
    let mut export = tokio::task::spawn_blocking(move || write_archive(docs, storage))
        .await
        .map_err(|e| PrivacyError::Archive(e.to_string()))??;
    export.leads = subject.lead_ids.len();
    export.calls = subject.call_ids.len();
    let target = format!(
        "leads={} calls={} recordings={}",
        export.leads, export.calls, export.recordings
    );
    audit_job(store, account, "privacy.export", target, now_ms).await?;
    Ok(export)
}

/// The JSON documents of the archive, read from the store.
struct Docs {
    leads: Vec<Value>,
    consent: Vec<Value>,
    calls: Vec<Value>,
    turns: Vec<Value>,
    events: Vec<Value>,
    recordings: Vec<Value>,
    callbacks: Vec<Value>,
}

async fn collect(
    store: &Store,
    account: &AccountId,
    subject: &Resolved,
) -> Result<Docs, PrivacyError> {
    let mut leads = Vec::new();
    let mut consent = Vec::new();
    for id in &subject.lead_ids {
        let lead = store.lead(account, id).await?;
        let mut v = serde_json::to_value(&lead.fields).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("id".into(), json!(lead.id));
            m.insert("status".into(), json!(lead.status));
            m.insert("created_at".into(), json!(lead.created_at));
            m.insert("updated_at".into(), json!(lead.updated_at));
        }
        leads.push(v);
        for e in store.consent_history(account, id).await? {
            consent.push(serde_json::to_value(e).unwrap_or(Value::Null));
        }
    }
    let calls_ids = &subject.call_ids;
    let calls = select_in(store, account, "calls", CALL_COLS, "id", calls_ids, "id").await?;
    let turns = select_in(
        store,
        account,
        "transcript_turns",
        TURN_COLS,
        "call_id",
        calls_ids,
        "call_id, seq",
    )
    .await?;
    let mut events = select_in(
        store,
        account,
        "events",
        EVENT_COLS,
        "lead_id",
        &subject.lead_ids,
        "id",
    )
    .await?;
    for e in select_in(
        store, account, "events", EVENT_COLS, "call_id", calls_ids, "id",
    )
    .await?
    {
        if !events.iter().any(|known| known["id"] == e["id"]) {
            events.push(e);
        }
    }
    let recordings = select_in(
        store,
        account,
        "recordings",
        RECORDING_COLS,
        "call_id",
        calls_ids,
        "id",
    )
    .await?;
    let callbacks = select_in(
        store,
        account,
        "callbacks",
        CALLBACK_COLS,
        "call_id",
        calls_ids,
        "id",
    )
    .await?;
    Ok(Docs {
        leads,
        consent,
        calls,
        turns,
        events,
        recordings,
        callbacks,
    })
}

/// Rows of `table` in the account whose `column` is in `ids`, as JSON, ordered by `order`.
async fn select_in(
    store: &Store,
    account: &AccountId,
    table: &'static str,
    cols: &[Col],
    column: &'static str,
    ids: &[String],
    order: &'static str,
) -> Result<Vec<Value>, PrivacyError> {
    let mut list = select_list(cols);
    if table == "transcript_turns" {
        // BOOLEAN reads differently per engine through `Any`; an integer reads the same.
        list = list.replace(
            "interrupted_i",
            "CASE WHEN interrupted THEN 1 ELSE 0 END AS interrupted_i",
        );
    }
    let mut out = Vec::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT {list} FROM {table} WHERE account_id = $1 AND {column} IN ({}) ORDER BY {order}",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account.as_str());
        for id in chunk {
            q = q.bind(id);
        }
        for row in q.fetch_all(store.pool()).await? {
            let mut v = to_json(&row, cols)?;
            if let Some(flag) = v.as_object_mut().and_then(|m| m.remove("interrupted_i")) {
                v["interrupted"] = json!(flag.as_i64().unwrap_or(0) != 0);
            }
            out.push(v);
        }
    }
    Ok(out)
}

/// Writes the archive into a new temporary file (blocking I/O).
fn write_archive(
    mut docs: Docs,
    storage: Option<Arc<dyn RecordingStorage>>,
) -> Result<Export, PrivacyError> {
    let arch = |e: zip::result::ZipError| PrivacyError::Archive(e.to_string());
    let io_err = |e: io::Error| PrivacyError::Archive(e.to_string());
    let file = tempfile::tempfile().map_err(io_err)?;
    let mut zip = ZipWriter::new(file);
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let stored = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(true);
    let mut included = 0;
    for rec in &mut docs.recordings {
        let key = rec["storage_key"].as_str().unwrap_or_default().to_owned();
        let name = format!(
            "recordings/{}.{}",
            rec["id"].as_str().unwrap_or("recording"),
            rec["format"].as_str().unwrap_or("bin")
        );
        let opened = match &storage {
            Some(s) => s.open(&key),
            None => Err(StorageError::Unavailable { key: key.clone() }),
        };
        let file_entry = match opened {
            Ok(mut reader) => {
                zip.start_file(&name, stored).map_err(arch)?;
                io::copy(&mut reader, &mut zip).map_err(io_err)?;
                included += 1;
                json!(name)
            }
            Err(StorageError::NotFound { .. }) => {
                rec["missing"] = json!("the file no longer exists");
                Value::Null
            }
            Err(StorageError::Unavailable { .. }) => {
                rec["missing"] = json!("recording storage is not configured");
                Value::Null
            }
            Err(e) => return Err(e.into()),
        };
        if let Value::Object(m) = rec {
            m.remove("storage_key");
            m.insert("file".into(), file_entry);
        }
    }
    for (name, doc) in [
        ("lead.json", &docs.leads),
        ("consent_history.json", &docs.consent),
        ("calls.json", &docs.calls),
        ("transcripts.json", &docs.turns),
        ("events.json", &docs.events),
        ("recordings.json", &docs.recordings),
        ("callbacks.json", &docs.callbacks),
    ] {
        zip.start_file(name, deflated).map_err(arch)?;
        serde_json::to_writer_pretty(&mut zip, doc).map_err(|e| io_err(e.into()))?;
        zip.write_all(b"\n").map_err(io_err)?;
    }
    let mut file = zip.finish().map_err(arch)?;
    file.flush().map_err(io_err)?;
    let bytes = file.seek(SeekFrom::End(0)).map_err(io_err)?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    Ok(Export {
        file,
        bytes,
        leads: 0,
        calls: 0,
        recordings: included,
    })
}
