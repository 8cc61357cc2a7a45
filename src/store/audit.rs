//! The audit log: one row per mutating API call (who, what, on what, from where, result).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::ids::new_id;
use super::{AccountId, Page, PageRequest, Store, StoreError, list_page};

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Its id.
    pub id: String,
    /// The API key that acted (`None` for the operator CLI and background jobs).
    pub key_id: Option<String>,
    /// What was done: `POST /v1/leads`, `privacy.purge`, ...
    pub action: String,
    /// What it was done to (a path or resource id).
    pub target: String,
    /// The client's address.
    pub source_ip: Option<String>,
    /// The HTTP status of the answer (0 for jobs).
    pub status: i32,
    /// When, epoch ms.
    pub at: i64,
}

const COLUMNS: &str = "id, key_id, action, target, source_ip, status, at";

fn from_row(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        key_id: row.try_get("key_id")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        source_ip: row.try_get("source_ip")?,
        status: row.try_get("status")?,
        at: row.try_get("at")?,
    })
}

impl Store {
    /// Appends an entry to `account`'s audit log.
    pub async fn audit(&self, account: &AccountId, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, account_id, key_id, action, target, source_ip, status, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(if entry.id.is_empty() {
            new_id("aud", entry.at)
        } else {
            entry.id.clone()
        })
        .bind(account.as_str())
        .bind(entry.key_id.clone())
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(entry.source_ip.clone())
        .bind(entry.status)
        .bind(entry.at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The account's audit log, newest first.
    pub async fn list_audit(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let rows = list_page(self, "audit_log", COLUMNS, account, page, None, None).await?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit(), |e| &e.id))
    }
}
