//! Callbacks a lead asked for during a call (the agent's `schedule_callback`), kept as said
//! ("tomorrow morning") with the call, the lead and the number, for the dialer and for people.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::ids::new_id;
use super::{AccountId, Page, PageRequest, Store, StoreError, list_page, now_ms};

/// One requested callback.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Callback {
    /// Its id.
    pub id: String,
    /// The call in which it was asked for.
    pub call_id: String,
    /// The lead, when the call was a campaign call.
    pub lead_id: Option<String>,
    /// The number to call back (E.164), when known.
    pub phone: Option<String>,
    /// The time as the lead said it.
    pub requested: String,
    /// A note for whoever calls back.
    pub note: Option<String>,
    /// `requested` until the dialer or a person acts on it.
    pub status: String,
    /// When it was asked for, epoch ms.
    pub created_at: i64,
}

/// A callback to store: everything but the id, status and time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewCallback {
    pub call_id: String,
    pub lead_id: Option<String>,
    pub phone: Option<String>,
    pub requested: String,
    pub note: Option<String>,
}

const COLUMNS: &str = "id, call_id, lead_id, phone, requested, note, status, created_at";

fn from_row(row: &AnyRow) -> Result<Callback, StoreError> {
    Ok(Callback {
        id: row.try_get("id")?,
        call_id: row.try_get("call_id")?,
        lead_id: row.try_get("lead_id")?,
        phone: row.try_get("phone")?,
        requested: row.try_get("requested")?,
        note: row.try_get("note")?,
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Stores a callback request with status `requested`.
    pub async fn add_callback(
        &self,
        account: &AccountId,
        c: &NewCallback,
    ) -> Result<Callback, StoreError> {
        let now = now_ms();
        let id = new_id("cb", now);
        sqlx::query(
            "INSERT INTO callbacks (id, account_id, call_id, lead_id, phone, requested, note, \
             status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'requested', $8)",
        )
        .bind(&id)
        .bind(account.as_str())
        .bind(&c.call_id)
        .bind(c.lead_id.clone())
        .bind(c.phone.clone())
        .bind(&c.requested)
        .bind(c.note.clone())
        .bind(now)
        .execute(self.pool())
        .await?;
        self.callback(account, &id).await
    }

    /// The callback `id`.
    pub async fn callback(&self, account: &AccountId, id: &str) -> Result<Callback, StoreError> {
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM callbacks WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        from_row(&row)
    }

    /// The account's callbacks, newest first (the page's `status` filters).
    pub async fn list_callbacks(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Callback>, StoreError> {
        let rows = list_page(
            self,
            "callbacks",
            COLUMNS,
            account,
            page,
            Some("status"),
            None,
        )
        .await?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit(), |c| &c.id))
    }
}
