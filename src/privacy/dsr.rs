//! Data-subject requests: finding everything about one person (by lead id or phone number)
//! and erasing it.
//!
//! A subject is a phone number: a lead id resolves to its lead's number, and the request then
//! covers every lead of the account with that number, every call placed to or received from
//! it or linked to one of those leads, and what hangs off those calls.

use std::sync::Arc;

use serde::Serialize;
use sqlx::Row;

use super::files::{Deleted, delete_files};
use super::rows::{IN_CHUNK, placeholders};
use super::{PrivacyError, audit_job};
use crate::leads::phone::{Region, normalize_phone};
use crate::media::storage::RecordingStorage;
use crate::store::suppression::SuppressionSalt;
use crate::store::{AccountId, Store};

/// Whom a data-subject request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The person behind this lead (and every other lead with the same number).
    LeadId(String),
    /// The person with this number, as typed (normalised with the account's default region).
    Phone(String),
}

/// The rows a subject's request covers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    /// The subject's E.164 number.
    pub phone: String,
    /// Leads with that number, oldest first.
    pub lead_ids: Vec<String>,
    /// Calls to or from that number or linked to one of the leads, oldest first.
    pub call_ids: Vec<String>,
}

/// Finds the subject's number, leads and calls in `account`; [`PrivacyError::NotFound`] when
/// the account has neither a lead nor a call for it.
pub(crate) async fn resolve(
    store: &Store,
    account: &AccountId,
    subject: &Subject,
) -> Result<Resolved, PrivacyError> {
    let phone = match subject {
        Subject::LeadId(id) => store.lead(account, id).await?.fields.phone,
        Subject::Phone(raw) => {
            let settings = store.account(account).await?.settings;
            let region = settings.default_region.parse::<Region>().ok();
            normalize_phone(raw, region)
                .map_err(PrivacyError::Phone)?
                .as_str()
                .to_owned()
        }
    };
    let lead_ids = ids(
        store,
        "SELECT id FROM leads WHERE account_id = $1 AND phone = $2 ORDER BY id",
        account,
        &phone,
    )
    .await?;
    let mut call_ids = ids(
        store,
        "SELECT id FROM calls WHERE account_id = $1 AND (from_number = $2 OR to_number = $2) \
         ORDER BY id",
        account,
        &phone,
    )
    .await?;
    for chunk in lead_ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT id FROM calls WHERE account_id = $1 AND lead_id IN ({}) ORDER BY id",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account.as_str());
        for id in chunk {
            q = q.bind(id);
        }
        for row in q.fetch_all(store.pool()).await? {
            call_ids.push(row.try_get("id")?);
        }
    }
    call_ids.sort();
    call_ids.dedup();
    if lead_ids.is_empty() && call_ids.is_empty() {
        return Err(PrivacyError::NotFound);
    }
    Ok(Resolved {
        phone,
        lead_ids,
        call_ids,
    })
}

/// The `id` column of a query bound with the account and the number.
async fn ids(
    store: &Store,
    sql: &'static str,
    account: &AccountId,
    phone: &str,
) -> Result<Vec<String>, PrivacyError> {
    let rows = sqlx::query(sql)
        .bind(account.as_str())
        .bind(phone)
        .fetch_all(store.pool())
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?)
}

/// Runs `sql_head` (ending in `IN`, the account bound as `$1`) followed by a placeholder list
/// for every chunk of `ids`; returns the rows affected.
pub(crate) async fn exec_in(
    exec: &mut sqlx::AnyConnection,
    sql_head: &str,
    account: &AccountId,
    ids: &[String],
) -> Result<u64, PrivacyError> {
    let mut n = 0;
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!("{sql_head} ({})", placeholders(2, chunk.len()));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account.as_str());
        for id in chunk {
            q = q.bind(id);
        }
        n += q.execute(&mut *exec).await?.rows_affected();
    }
    Ok(n)
}

/// What an erasure removed.
#[derive(utoipa::ToSchema, Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    /// Leads deleted.
    pub leads: u64,
    /// Consent events deleted.
    pub consent_events: u64,
    /// Calls whose numbers, notes and tool calls were blanked (the CDR rows stay).
    pub calls: u64,
    /// Transcript turns deleted.
    pub transcript_turns: u64,
    /// Recordings deleted (rows and files).
    pub recordings: u64,
    /// Events deleted (and their webhook deliveries).
    pub events: u64,
    /// Do-not-call entries for the number deleted (the suppression list replaces them).
    pub dnc: u64,
    /// Callback requests deleted.
    pub callbacks: u64,
    /// Whether the number's hash was newly added to the suppression list.
    pub suppressed: bool,
}

/// Erases the subject from `account`: deletes their leads and consent history, the
/// transcripts, recordings (files too) and events of their calls, blanks the numbers in those
/// calls' CDR (`erased`), removes the number from the DNC list and adds its salted hash to the
/// suppression list; writes a `privacy.erase` audit entry (counts only, never the number).
pub async fn erase(
    store: &Store,
    storage: Option<&Arc<dyn RecordingStorage>>,
    salt: &SuppressionSalt,
    account: &AccountId,
    subject: &Subject,
    now_ms: i64,
) -> Result<ErasureReport, PrivacyError> {
    let subject = resolve(store, account, subject).await?;
    let mut report = ErasureReport::default();
    // Files first: if one cannot be deleted nothing else changes and the request can be retried.
    let mut recording_keys = Vec::new();
    for chunk in subject.call_ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT storage_key FROM recordings WHERE account_id = $1 AND call_id IN ({})",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account.as_str());
        for id in chunk {
            q = q.bind(id);
        }
        for row in q.fetch_all(store.pool()).await? {
            recording_keys.push(row.try_get::<String, _>("storage_key")?);
        }
    }
    if !recording_keys.is_empty() {
        let storage = storage.ok_or(PrivacyError::NoStorage)?;
        for outcome in delete_files(storage, recording_keys).await {
            if let Deleted::Failed(e) = outcome {
                return Err(e.into());
            }
        }
    }

    let (leads, calls) = (&subject.lead_ids, &subject.call_ids);
    let mut tx = store.pool().begin().await?;
    report.recordings = exec_in(
        &mut tx,
        "DELETE FROM recordings WHERE account_id = $1 AND call_id IN",
        account,
        calls,
    )
    .await?;
    report.transcript_turns = exec_in(
        &mut tx,
        "DELETE FROM transcript_turns WHERE account_id = $1 AND call_id IN",
        account,
        calls,
    )
    .await?;
    for (column, ids) in [("lead_id", leads), ("call_id", calls)] {
        let select = format!("SELECT id FROM events WHERE account_id = $1 AND {column} IN");
        let events = event_ids(&mut tx, &select, account, ids).await?;
        exec_in(
            &mut tx,
            "DELETE FROM webhook_deliveries WHERE account_id = $1 AND event_id IN",
            account,
            &events,
        )
        .await?;
        report.events += exec_in(
            &mut tx,
            &format!("DELETE FROM events WHERE account_id = $1 AND {column} IN"),
            account,
            ids,
        )
        .await?;
    }
    report.callbacks = exec_in(
        &mut tx,
        "DELETE FROM callbacks WHERE account_id = $1 AND call_id IN",
        account,
        calls,
    )
    .await?;
    report.callbacks += sqlx::query("DELETE FROM callbacks WHERE account_id = $1 AND phone = $2")
        .bind(account.as_str())
        .bind(&subject.phone)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    report.calls = exec_in(
        &mut tx,
        "UPDATE calls SET from_number = 'erased', to_number = 'erased', notes = NULL, \
         tool_calls = '[]' WHERE account_id = $1 AND id IN",
        account,
        calls,
    )
    .await?;
    report.consent_events = exec_in(
        &mut tx,
        "DELETE FROM consent_events WHERE account_id = $1 AND lead_id IN",
        account,
        leads,
    )
    .await?;
    report.leads = exec_in(
        &mut tx,
        "DELETE FROM leads WHERE account_id = $1 AND id IN",
        account,
        leads,
    )
    .await?;
    report.dnc = sqlx::query("DELETE FROM dnc WHERE account_id = $1 AND phone = $2")
        .bind(account.as_str())
        .bind(&subject.phone)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    report.suppressed = store
        .suppress(account, salt, &subject.phone, now_ms)
        .await?;
    let target = format!(
        "leads={} calls={} recordings={} transcript_turns={} events={}",
        report.leads, report.calls, report.recordings, report.transcript_turns, report.events
    );
    audit_job(store, account, "privacy.erase", target, now_ms).await?;
    Ok(report)
}

/// Ids of the events whose `select`ed column is in `ids`.
async fn event_ids(
    exec: &mut sqlx::AnyConnection,
    select: &str,
    account: &AccountId,
    ids: &[String],
) -> Result<Vec<String>, PrivacyError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!("{select} ({})", placeholders(2, chunk.len()));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account.as_str());
        for id in chunk {
            q = q.bind(id);
        }
        for row in q.fetch_all(&mut *exec).await? {
            out.push(row.try_get("id")?);
        }
    }
    Ok(out)
}
