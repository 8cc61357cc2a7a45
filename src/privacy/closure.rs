//! The closure purge: an account closed more than `closure_purge_days` ago loses every row
//! (and recording file); its account row stays, with status `purged`, so its name is never
//! reused by accident.

use std::sync::Arc;

use sqlx::Row;

use super::files::{Deleted, delete_files};
use super::{DAY_MS, PrivacyError, audit_job};
use crate::media::storage::RecordingStorage;
use crate::store::accounts::AccountSettings;
use crate::store::{AccountId, Store, StoreError};

/// The account's tables, in deletion order (children before the rows they reference). The
/// audit log is kept: it holds no personal data and records the purge itself.
const TABLES: &[&str] = &[
    "webhook_deliveries",
    "webhooks",
    "events",
    "transcript_turns",
    "callbacks",
    "recordings",
    "calls",
    "consent_events",
    "leads",
    "dnc",
    "suppression",
    "campaigns",
    "agents",
    "api_keys",
];

/// Recording files deleted per batch.
const BATCH: i64 = 200;

/// What one closure run purged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClosureReport {
    /// Accounts purged in this run.
    pub accounts: Vec<AccountId>,
    /// Rows deleted over all of them.
    pub rows: u64,
    /// Recording files deleted.
    pub files: u64,
    /// Accounts left for the next run because a recording file could not be deleted.
    pub deferred: Vec<AccountId>,
}

/// Purges every account closed at least `closure_purge_days` before `now_ms`, writing a
/// `privacy.closure_purge` audit entry for each.
pub async fn purge_closed(
    store: &Store,
    storage: &Arc<dyn RecordingStorage>,
    now_ms: i64,
) -> Result<ClosureReport, PrivacyError> {
    let rows = sqlx::query(
        "SELECT id, settings, closed_at FROM accounts WHERE status = 'closed' ORDER BY id",
    )
    .fetch_all(store.pool())
    .await?;
    let mut report = ClosureReport::default();
    for row in &rows {
        let account = AccountId(row.try_get("id")?);
        let settings: String = row.try_get("settings")?;
        let settings: AccountSettings =
            serde_json::from_str(&settings).map_err(|e| StoreError::Corrupt {
                table: "accounts",
                reason: e.to_string(),
            })?;
        let closed_at: Option<i64> = row.try_get("closed_at")?;
        let due = closed_at
            .is_some_and(|at| at + i64::from(settings.closure_purge_days) * DAY_MS <= now_ms);
        if !due {
            continue;
        }
        let Some(files) = delete_all_recording_files(store, storage, &account).await? else {
            report.deferred.push(account);
            continue;
        };
        let deleted = delete_rows(store, &account).await?;
        report.rows += deleted;
        report.files += files;
        let target = format!("account purged: rows={deleted} recording_files={files}");
        audit_job(store, &account, "privacy.closure_purge", target, now_ms).await?;
        report.accounts.push(account);
    }
    Ok(report)
}

/// Deletes every recording file of the account; `None` if one could not be deleted.
async fn delete_all_recording_files(
    store: &Store,
    storage: &Arc<dyn RecordingStorage>,
    account: &AccountId,
) -> Result<Option<u64>, PrivacyError> {
    let (mut files, mut ok) = (0, true);
    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            "SELECT id, storage_key FROM recordings WHERE account_id = $1 AND id > $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(account.as_str())
        .bind(&after)
        .bind(BATCH)
        .fetch_all(store.pool())
        .await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.try_get("id")?;
        let keys = rows
            .iter()
            .map(|r| r.try_get::<String, _>("storage_key"))
            .collect::<Result<Vec<_>, _>>()?;
        for outcome in delete_files(storage, keys).await {
            match outcome {
                Deleted::Removed => files += 1,
                Deleted::Missing => {}
                Deleted::Failed(e) => {
                    tracing::warn!(account = %account, error = %e,
                        "privacy: recording file not deleted; account purge deferred");
                    ok = false;
                }
            }
        }
    }
    Ok(ok.then_some(files))
}

/// Deletes every row of the account in one transaction and marks it `purged`.
async fn delete_rows(store: &Store, account: &AccountId) -> Result<u64, PrivacyError> {
    let mut tx = store.pool().begin().await?;
    let mut deleted = 0;
    for table in TABLES {
        deleted += sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE account_id = $1"
        )))
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    sqlx::query("UPDATE accounts SET status = 'purged' WHERE id = $1 AND status = 'closed'")
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted)
}
