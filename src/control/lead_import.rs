//! Streams a leads CSV into the store: the sans-IO importer of `crate::leads` fed chunk by
//! chunk, good rows inserted in batches, bad rows reported by line and column. Shared by
//! `POST /v1/leads/import` and `leadscaller leads import`.

use std::fmt;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use crate::leads::csv_import::{ColumnMapping, ConsentAt, LeadCsvImporter, LeadRecord};
use crate::leads::import::{ImportError, ImportOptions, RowError};
use crate::leads::timezone::TimeZoneSource;
use crate::store::accounts::Account;
use crate::store::leads::LeadFields;
use crate::store::{AccountId, Store, StoreError, parse_time};
use tokio::sync::mpsc;

/// Rows inserted per transaction.
const BATCH: usize = 1000;
/// Parsed batches waiting for the inserter (bounds memory when parsing is faster): at most
/// `(QUEUE + 2) * BATCH` rows are held, one being parsed, `QUEUE` waiting, one inserting.
/// Parsing and inserting run at similar speeds but unevenly (a commit, a WAL checkpoint);
/// with 2 waiting batches each side idled a quarter of the time, with 8 the import ran 35 %
/// faster (benches/load/leads-import.sh).
const QUEUE: usize = 8;
/// Row failures and skips kept for the report (the counts cover all of them).
pub const MAX_REPORTED: usize = 1000;

/// A row that was not imported because its number is already there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedRow {
    /// Physical line in the file.
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Bytes of the file read so far.
    pub bytes_read: u64,
    /// Rows inserted.
    pub imported: u64,
    /// Rows skipped as duplicates (in the file or already in the campaign).
    pub skipped: u64,
    /// Rows that failed validation.
    pub failed: u64,
    /// The first failures, by line and column.
    pub errors: Vec<RowError>,
    /// The first skips.
    pub skipped_rows: Vec<SkippedRow>,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum LeadImportError {
    /// The input could not be read.
    #[error("reading the file: {0}")]
    Read(String),
    /// The file as a whole is unusable (a mapped column is missing from the header...).
    #[error("{0}")]
    File(#[from] ImportError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lead to store for an imported row.
pub fn record_to_fields(r: LeadRecord, campaign: Option<&str>, account: &Account) -> LeadFields {
    let (timezone, timezone_source) = match r.timezone {
        Some(tz) => (
            tz.name.as_str().to_owned(),
            match tz.source {
                TimeZoneSource::Explicit => "explicit",
                _ => "inferred",
            },
        ),
        None => (account.settings.default_timezone.clone(), "account_default"),
    };
    LeadFields {
        campaign_id: campaign.map(str::to_owned),
        phone: r.phone.as_str().to_owned(),
        first_name: r.first_name,
        last_name: r.last_name,
        email: r.email,
        timezone: Some(timezone),
        timezone_source: Some(timezone_source.to_owned()),
        consent_status: r.consent_status,
        consent_source: r.consent_source.or_else(|| Some("import".to_owned())),
        consent_at: match r.consent_at {
            // What `parse_time` gives for the instant's RFC 3339 text, without the round trip.
            Some(ConsentAt::Instant(t)) => Some(t.as_millisecond()),
            Some(at) => parse_time(&at.to_string()),
            None => None,
        },
        consent_text: r.consent_text,
        external_id: r.external_id,
        custom: r.custom,
    }
}

/// Good rows waiting for the database, in file order.
#[derive(Default)]
struct Pending {
    lines: Vec<u64>,
    fields: Vec<LeadFields>,
}

/// What the inserter did with one batch.
struct Inserted {
    imported: u64,
    skipped: u64,
    /// The first `MAX_REPORTED` rows skipped as already in the campaign.
    skipped_rows: Vec<SkippedRow>,
}

/// Aborts the inserter task if the import is dropped (an HTTP client went away): committed
/// batches stay, the batch in flight may still commit, no later batch is inserted.
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), StoreError>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Imports `chunks` (the CSV bytes) into `account`, optionally into `campaign` (checked by the
/// caller); `progress` sees the running report after every chunk.
///
/// Parsing runs in the caller's task while a spawned task inserts the previous batches
/// (`BATCH` rows a transaction, at most `QUEUE` batches waiting), so memory stays flat
/// whatever the file size. `report.skipped_rows` holds the first skips by line.
pub async fn import_leads<S, E>(
    store: &Store,
    account: &Account,
    campaign: Option<&str>,
    mapping: ColumnMapping,
    mut chunks: S,
    mut progress: impl FnMut(&ImportReport),
) -> Result<ImportReport, LeadImportError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: fmt::Display,
{
    let options = ImportOptions {
        default_region: account.settings.default_region.parse().ok(),
        ..ImportOptions::default()
    };
    let mut importer = LeadCsvImporter::new(mapping, options);
    let mut report = ImportReport::default();
    let mut pending = Pending::default();
    let (batches, results, inserter) = spawn_inserter(store.clone(), account.id.clone());
    let mut results = results;
    let mut inserter = AbortOnDrop(inserter);
    let mut done = false;
    let mut failure = None;
    while !done {
        let batch = match chunks.next().await {
            Some(Ok(bytes)) => {
                report.bytes_read += bytes.len() as u64;
                importer.push(&bytes)
            }
            Some(Err(e)) => {
                failure = Some(LeadImportError::Read(e.to_string()));
                break;
            }
            None => {
                done = true;
                importer.finish()
            }
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        };
        report.failed += batch.errors.len() as u64;
        report.errors.extend(batch.errors);
        report.errors.truncate(MAX_REPORTED);
        for r in &batch.skipped {
            report.skipped += 1;
            report.skipped_rows.push(SkippedRow {
                line: r.line,
                reason: format!("duplicate of line {}", r.first_line),
            });
        }
        for r in batch.records {
            pending.lines.push(r.line);
            pending.fields.push(record_to_fields(r, campaign, account));
        }
        if pending.lines.len() >= BATCH || (done && !pending.lines.is_empty()) {
            let full = std::mem::take(&mut pending);
            if batches.send(full).await.is_err() {
                // The inserter stopped: its result says why.
                break;
            }
        }
        while let Ok(r) = results.try_recv() {
            add_inserted(&mut report, r);
        }
        keep_first_skips(&mut report.skipped_rows);
        progress(&report);
    }
    // Let the inserter finish the batches it has (as a sequential import would have
    // committed them), then take its verdict.
    drop(batches);
    let outcome = (&mut inserter.0).await;
    while let Ok(r) = results.try_recv() {
        add_inserted(&mut report, r);
    }
    keep_first_skips(&mut report.skipped_rows);
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => return Err(StoreError::Db(sqlx::Error::WorkerCrashed).into()),
    }
    if let Some(e) = failure {
        return Err(e);
    }
    report.skipped_rows.sort_by_key(|s| s.line);
    report.skipped_rows.truncate(MAX_REPORTED);
    progress(&report);
    Ok(report)
}

/// Starts the task that inserts batches as they come; it stops at the first store error.
#[allow(clippy::type_complexity)]
fn spawn_inserter(
    store: Store,
    account: AccountId,
) -> (
    mpsc::Sender<Pending>,
    mpsc::UnboundedReceiver<Inserted>,
    tokio::task::JoinHandle<Result<(), StoreError>>,
) {
    let (tx, mut rx) = mpsc::channel::<Pending>(QUEUE);
    let (result_tx, result_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut writer = store.lead_writer(account);
        while let Some(batch) = rx.recv().await {
            let out = writer.insert(batch.fields).await?;
            let skipped_rows = out
                .duplicates
                .iter()
                .take(MAX_REPORTED)
                .map(|&i| SkippedRow {
                    line: batch.lines[i],
                    reason: "already a lead of this campaign".to_owned(),
                })
                .collect();
            let _ = result_tx.send(Inserted {
                imported: out.imported as u64,
                skipped: out.duplicates.len() as u64,
                skipped_rows,
            });
        }
        Ok(())
    });
    (tx, result_rx, task)
}

fn add_inserted(report: &mut ImportReport, r: Inserted) {
    report.imported += r.imported;
    report.skipped += r.skipped;
    report.skipped_rows.extend(r.skipped_rows);
}

/// Keeps the skips list bounded: once it holds twice `MAX_REPORTED`, only the first
/// `MAX_REPORTED` by line stay (skips arrive from the parser and the inserter out of order).
fn keep_first_skips(rows: &mut Vec<SkippedRow>) {
    if rows.len() > 2 * MAX_REPORTED {
        rows.sort_by_key(|s| s.line);
        rows.truncate(MAX_REPORTED);
    }
}
