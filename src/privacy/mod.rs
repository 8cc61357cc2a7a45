//! Privacy jobs: retention purges, account-closure purges and data-subject requests (export,
//! erasure), over the store and the recording storage.
//!
//! Every job takes the clock as a parameter (`now_ms`) so tests run it at any simulated time,
//! writes its own audit entry (`key_id` none, status 0) whenever it changed something, and is
//! idempotent: running it twice removes nothing the second time. [`spawn_purges`] runs the two
//! purges on a timer inside `serve`. What is deleted when: `docs/privacy.md`.

pub mod closure;
pub mod dsr;
pub mod export;
mod files;
pub mod retention;
mod rows;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::leads::phone::PhoneError;
use crate::media::storage::{RecordingStorage, StorageError};
use crate::store::audit::AuditEntry;
use crate::store::{AccountId, Store, StoreError};

pub use closure::{ClosureReport, purge_closed};
pub use dsr::{ErasureReport, Subject, erase};
pub use export::{Export, export};
pub use retention::{PurgeReport, purge_expired};

/// Milliseconds in a day, for retention periods given in days.
pub const DAY_MS: i64 = 86_400_000;

/// Why a privacy job or request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivacyError {
    /// No lead or call of the account matches the data subject.
    #[error("no such data subject in this account")]
    NotFound,
    /// The phone number given for a data subject is not a valid number.
    #[error("phone: {0}")]
    Phone(PhoneError),
    /// Recordings must be read or deleted but no recording storage is configured.
    #[error("recordings exist but no recording storage is configured")]
    NoStorage,
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
    /// The recording storage failed (the message names the recording's key, never a number).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Building the export archive failed.
    #[error("export archive: {0}")]
    Archive(String),
}

impl From<StoreError> for PrivacyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            other => Self::Store(other),
        }
    }
}

impl From<sqlx::Error> for PrivacyError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// Appends a background job's audit entry (no key, no address, status 0) to `account`'s log.
pub(crate) async fn audit_job(
    store: &Store,
    account: &AccountId,
    action: &str,
    target: String,
    now_ms: i64,
) -> Result<(), StoreError> {
    store
        .audit(
            account,
            &AuditEntry {
                id: String::new(),
                key_id: None,
                action: action.to_owned(),
                target,
                source_ip: None,
                status: 0,
                at: now_ms,
            },
        )
        .await
}

/// Runs the retention and closure purges every `every` (the first run at once) until
/// `shutdown` turns true or closes; failures are logged and retried at the next run.
pub fn spawn_purges(
    store: Store,
    storage: Arc<dyn RecordingStorage>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = timer.tick() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                    continue;
                }
            }
            let now = crate::store::now_ms();
            match purge_expired(&store, &storage, now).await {
                Ok(r) if r.removed_anything() => tracing::info!(
                    recordings = r.recordings,
                    transcript_turns = r.transcript_turns,
                    failed = r.failed,
                    "privacy: retention purge"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "privacy: retention purge failed"),
            }
            match purge_closed(&store, &storage, now).await {
                Ok(r) if !r.accounts.is_empty() => tracing::info!(
                    accounts = r.accounts.len(),
                    rows = r.rows,
                    "privacy: closed accounts purged"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "privacy: closure purge failed"),
            }
        }
    })
}
