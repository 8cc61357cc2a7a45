//! Streams a leads CSV into the store: the sans-IO importer of `crate::leads` fed chunk by
//! chunk, good rows inserted in batches, bad rows reported by line and column. Shared by
//! `POST /v1/leads/import` and `leadscaller leads import`.

use std::fmt;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use crate::leads::csv_import::{ColumnMapping, LeadCsvImporter, LeadRecord};
use crate::leads::import::{ImportError, ImportOptions, RowError};
use crate::leads::timezone::TimeZoneSource;
use crate::store::accounts::Account;
use crate::store::leads::LeadFields;
use crate::store::{Store, StoreError, parse_time};

/// Rows inserted per transaction.
const BATCH: usize = 500;
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
        consent_at: r.consent_at.and_then(|at| parse_time(&at.to_string())),
        consent_text: r.consent_text,
        external_id: r.external_id,
        custom: r.custom,
    }
}

/// Imports `chunks` (the CSV bytes) into `account`, optionally into `campaign` (checked by the
/// caller); `progress` sees the running report after every chunk.
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
    let mut pending: Vec<(u64, LeadFields)> = Vec::new();
    let mut done = false;
    while !done {
        let batch = match chunks.next().await {
            Some(Ok(bytes)) => {
                report.bytes_read += bytes.len() as u64;
                importer.push(&bytes)?
            }
            Some(Err(e)) => return Err(LeadImportError::Read(e.to_string())),
            None => {
                done = true;
                importer.finish()?
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
            let line = r.line;
            pending.push((line, record_to_fields(r, campaign, account)));
        }
        if pending.len() >= BATCH || (done && !pending.is_empty()) {
            let fields: Vec<LeadFields> = pending.iter().map(|(_, f)| f.clone()).collect();
            let out = store.insert_leads(&account.id, &fields).await?;
            report.imported += out.imported as u64;
            for i in out.duplicates {
                report.skipped += 1;
                report.skipped_rows.push(SkippedRow {
                    line: pending[i].0,
                    reason: "already a lead of this campaign".to_owned(),
                });
            }
            pending.clear();
        }
        report.skipped_rows.truncate(MAX_REPORTED);
        progress(&report);
    }
    Ok(report)
}
