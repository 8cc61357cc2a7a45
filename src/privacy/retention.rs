//! The retention purge: recordings and transcript turns older than the account's retention
//! periods are deleted (recording files first, then their rows).

use std::sync::Arc;

use sqlx::Row;

use super::files::{Deleted, delete_files};
use super::{DAY_MS, PrivacyError, audit_job};
use crate::media::storage::RecordingStorage;
use crate::store::accounts::AccountSettings;
use crate::store::{AccountId, Store, StoreError};

/// Recordings examined per query.
const BATCH: i64 = 200;

/// What one retention run removed, over every account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Accounts examined.
    pub accounts: usize,
    /// Recording rows deleted (with their files).
    pub recordings: u64,
    /// Recording files whose deletion failed (their rows are kept for the next run).
    pub failed: u64,
    /// Transcript turns deleted.
    pub transcript_turns: u64,
}

impl PurgeReport {
    /// Whether the run deleted anything.
    pub fn removed_anything(&self) -> bool {
        self.recordings > 0 || self.transcript_turns > 0
    }
}

/// Deletes, in every account not yet purged, the recordings created more than
/// `recording_retention_days` before `now_ms` and the transcript turns older than
/// `transcript_retention_days`; writes a `privacy.retention_purge` audit entry per account
/// that lost something.
pub async fn purge_expired(
    store: &Store,
    storage: &Arc<dyn RecordingStorage>,
    now_ms: i64,
) -> Result<PurgeReport, PrivacyError> {
    let mut report = PurgeReport::default();
    for (account, settings) in live_accounts(store).await? {
        report.accounts += 1;
        let rec_cutoff = now_ms - i64::from(settings.recording_retention_days) * DAY_MS;
        let (recordings, failed) = purge_recordings(store, storage, &account, rec_cutoff).await?;
        let turn_cutoff = now_ms - i64::from(settings.transcript_retention_days) * DAY_MS;
        let turns =
            sqlx::query("DELETE FROM transcript_turns WHERE account_id = $1 AND created_at < $2")
                .bind(account.as_str())
                .bind(turn_cutoff)
                .execute(store.pool())
                .await?
                .rows_affected();
        report.recordings += recordings;
        report.failed += failed;
        report.transcript_turns += turns;
        if recordings > 0 || turns > 0 {
            let target = format!("recordings={recordings} transcript_turns={turns}");
            audit_job(store, &account, "privacy.retention_purge", target, now_ms).await?;
        }
    }
    Ok(report)
}

/// Every account whose data still exists (active or closed), with its settings.
pub(crate) async fn live_accounts(
    store: &Store,
) -> Result<Vec<(AccountId, AccountSettings)>, PrivacyError> {
    let rows =
        sqlx::query("SELECT id, settings FROM accounts WHERE status <> 'purged' ORDER BY id")
            .fetch_all(store.pool())
            .await?;
    rows.iter()
        .map(|row| {
            let settings: String = row.try_get("settings")?;
            let settings = serde_json::from_str(&settings).map_err(|e| StoreError::Corrupt {
                table: "accounts",
                reason: e.to_string(),
            })?;
            Ok((AccountId(row.try_get("id")?), settings))
        })
        .collect()
}

/// Deletes the account's recordings created before `cutoff`: (rows deleted, files failed).
async fn purge_recordings(
    store: &Store,
    storage: &Arc<dyn RecordingStorage>,
    account: &AccountId,
    cutoff: i64,
) -> Result<(u64, u64), PrivacyError> {
    let (mut deleted, mut failed) = (0, 0);
    // Rows whose file could not be deleted stay; the id cursor walks past them.
    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            "SELECT id, storage_key FROM recordings WHERE account_id = $1 AND created_at < $2 \
             AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(account.as_str())
        .bind(cutoff)
        .bind(&after)
        .bind(BATCH)
        .fetch_all(store.pool())
        .await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.try_get("id")?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            ids.push(row.try_get::<String, _>("id")?);
            keys.push(row.try_get::<String, _>("storage_key")?);
        }
        let outcomes = delete_files(storage, keys).await;
        for (id, outcome) in ids.iter().zip(outcomes) {
            if let Deleted::Failed(e) = outcome {
                tracing::warn!(account = %account, recording = %id, error = %e,
                    "privacy: recording file not deleted; retried at the next purge");
                failed += 1;
                continue;
            }
            deleted += sqlx::query("DELETE FROM recordings WHERE account_id = $1 AND id = $2")
                .bind(account.as_str())
                .bind(id)
                .execute(store.pool())
                .await?
                .rows_affected();
        }
    }
    Ok((deleted, failed))
}
