//! The per-account do-not-call list: numbers never dialled, from the API, a CSV or a call.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::ids::new_id;
use super::{AccountId, Page, PageRequest, Store, StoreError, list_page, now_ms};

/// One blocked number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DncEntry {
    /// Its id.
    pub id: String,
    /// E.164 number.
    pub phone: String,
    /// Why (free text).
    pub reason: Option<String>,
    /// `api`, `csv` or `call`.
    pub source: String,
    /// The call in which the lead opted out.
    pub call_id: Option<String>,
    /// When, epoch ms.
    pub created_at: i64,
}

const COLUMNS: &str = "id, phone, reason, source, call_id, created_at";

fn from_row(row: &AnyRow) -> Result<DncEntry, StoreError> {
    Ok(DncEntry {
        id: row.try_get("id")?,
        phone: row.try_get("phone")?,
        reason: row.try_get("reason")?,
        source: row.try_get("source")?,
        call_id: row.try_get("call_id")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Adds `phone` to the account's DNC list (idempotent: an existing entry is returned).
    pub async fn add_dnc(
        &self,
        account: &AccountId,
        phone: &str,
        reason: Option<&str>,
        source: &str,
        call_id: Option<&str>,
    ) -> Result<DncEntry, StoreError> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO dnc (id, account_id, phone, reason, source, call_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (account_id, phone) DO NOTHING",
        )
        .bind(new_id("dnc", now))
        .bind(account.as_str())
        .bind(phone)
        .bind(reason.map(str::to_owned))
        .bind(source)
        .bind(call_id.map(str::to_owned))
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected()
            > 0;
        // An opt-out also marks every lead with that number so the dialler skips it.
        sqlx::query(
            "UPDATE leads SET status = 'dnc', updated_at = $1 WHERE account_id = $2 AND phone = $3",
        )
        .bind(now)
        .bind(account.as_str())
        .bind(phone)
        .execute(self.pool())
        .await?;
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM dnc WHERE account_id = $1 AND phone = $2"
        ))
        .bind(account.as_str())
        .bind(phone)
        .fetch_one(self.pool())
        .await?;
        let entry = from_row(&row)?;
        if inserted && source == "call" {
            self.emit_opted_out(account, &entry).await?;
        }
        Ok(entry)
    }

    /// Whether `phone` is on the account's DNC list.
    pub async fn is_dnc(&self, account: &AccountId, phone: &str) -> Result<bool, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM dnc WHERE account_id = $1 AND phone = $2")
                .bind(account.as_str())
                .bind(phone)
                .fetch_one(self.pool())
                .await?;
        Ok(n > 0)
    }

    /// The entry `id`.
    pub async fn dnc_entry(&self, account: &AccountId, id: &str) -> Result<DncEntry, StoreError> {
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM dnc WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        from_row(&row)
    }

    /// The account's DNC list, newest first.
    pub async fn list_dnc(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<DncEntry>, StoreError> {
        let rows = list_page(self, "dnc", COLUMNS, account, page, None, None).await?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit(), |e| &e.id))
    }

    /// Removes entry `id` (a number added by mistake).
    pub async fn delete_dnc(&self, account: &AccountId, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM dnc WHERE account_id = $1 AND id = $2")
            .bind(account.as_str())
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
