//! The SQLite bulk lead writer: a lead import's batches inserted through one dedicated
//! connection with prepared single-row statements, on a blocking thread.
//!
//! sqlx's `Any` driver copies every bound value twice (into `AnyArguments`, then into the
//! SQLite worker's arguments) and hands each statement to its worker thread and back, which
//! capped the import at ~35,000 rows/s with the worker thread idle a third of the time. Here
//! the same SQL runs through rusqlite on the same `libsqlite3-sys` (one SQLite in the
//! binary), binding borrowed text, in a transaction per batch. The schema and the rules are those of the pooled path
//! (`leads::insert_chunk`): a number already in the campaign is skipped, not an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};

use super::StoreError;
use super::ids::IdSequence;
use super::leads::{BatchOutcome, ConsentStatus, LeadFields};

const INSERT_LEAD: &str = "INSERT INTO leads (id, campaign_id, phone, first_name, last_name, \
    email, timezone, timezone_source, consent_status, consent_source, consent_at, consent_text, \
    external_id, custom, account_id, created_at, updated_at, status) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16, 'new') \
    ON CONFLICT (account_id, campaign_id, phone) DO NOTHING";

const INSERT_CONSENT: &str = "INSERT INTO consent_events (id, account_id, lead_id, status, \
    source, text, at, call_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)";

/// One import's connection to the SQLite file.
pub(crate) struct SqliteLeadWriter {
    conn: Connection,
}

impl SqliteLeadWriter {
    /// Opens `path` (which the store has already created and migrated).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(StoreError::Bulk)?;
        // The pool's settings (WAL is a property of the file; the rest are per connection).
        // SQLite's default 2 MiB page cache is enough: a batch's ids count up and its numbers
        // come in runs, so the pages it touches are few (64 MiB measured no faster).
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(StoreError::Bulk)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(StoreError::Bulk)?;
        Ok(Self { conn })
    }

    /// Inserts `batch` into `account` in one transaction (status `new`, one consent event per
    /// lead with consent), as of `now`; rows whose number is already in their campaign (or
    /// earlier in the batch) are reported in `duplicates`.
    pub fn insert(
        &mut self,
        account: &str,
        batch: &[LeadFields],
        now: i64,
    ) -> Result<BatchOutcome, StoreError> {
        let tx = self.conn.transaction().map_err(StoreError::Bulk)?;
        let mut out = BatchOutcome::default();
        {
            let mut lead = tx.prepare(INSERT_LEAD).map_err(StoreError::Bulk)?;
            let mut consent = tx.prepare(INSERT_CONSENT).map_err(StoreError::Bulk)?;
            let mut lead_ids = IdSequence::new("lead", now);
            let mut consent_ids = IdSequence::new("cns", now);
            for (i, f) in batch.iter().enumerate() {
                let id = lead_ids.next_id();
                let status = f.consent();
                let inserted = lead
                    .execute(params![
                        id,
                        f.campaign_id.as_deref().unwrap_or_default(),
                        f.phone,
                        f.first_name,
                        f.last_name,
                        f.email,
                        f.timezone,
                        f.timezone_source_or_default(),
                        status.as_str(),
                        f.consent_source,
                        f.consent_at,
                        f.consent_text,
                        f.external_id,
                        f.custom_json(),
                        account,
                        now,
                    ])
                    .map_err(StoreError::Bulk)?;
                if inserted == 0 {
                    out.duplicates.push(i);
                    continue;
                }
                out.imported += 1;
                if status != ConsentStatus::None {
                    consent
                        .execute(params![
                            consent_ids.next_id(),
                            account,
                            id,
                            status.as_str(),
                            f.consent_source,
                            f.consent_text,
                            f.consent_at.unwrap_or(now),
                        ])
                        .map_err(StoreError::Bulk)?;
                }
            }
        }
        tx.commit().map_err(StoreError::Bulk)?;
        Ok(out)
    }
}

/// The file behind a `sqlite:` URL's path part, unless it is an in-memory database (which a
/// second connection could not see).
pub(crate) fn sqlite_file(path_and_query: &str) -> Option<PathBuf> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let in_memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
    (!in_memory).then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_but_not_memory_databases_get_a_bulk_writer() {
        assert_eq!(
            sqlite_file("/var/lib/lc/leadscaller.db"),
            Some(PathBuf::from("/var/lib/lc/leadscaller.db"))
        );
        assert_eq!(
            sqlite_file("data/lc.db?mode=rwc"),
            Some(PathBuf::from("data/lc.db"))
        );
        assert_eq!(sqlite_file(":memory:"), None);
        assert_eq!(sqlite_file("x.db?mode=memory&cache=shared"), None);
        assert_eq!(sqlite_file(""), None);
    }
}
