//! Webhook endpoints (URL, subscribed event types, sealed signing secret) and their deliveries:
//! the delivery log, and the claim/record cycle the dispatcher runs.
//!
//! A delivery is `pending` until due, `sending` while a dispatcher holds it (the claim is a lease:
//! `next_attempt_at` is pushed to the lease's end, so a crashed node's claims become due again),
//! then `delivered`, back to `pending` for a retry, or `failed` for good. On PostgreSQL the claim
//! uses `FOR UPDATE SKIP LOCKED`, so several nodes can run dispatchers on one queue.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::accounts::json;
use super::events::{
    EVENT_COLUMNS, Event, EventType, event_from_row, insert_delivery, insert_event,
};
use super::ids::new_id;
use super::{AccountId, Engine, Page, PageRequest, Store, StoreError, corrupt, list_page, now_ms};

/// A webhook endpoint (its secret sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id (`wh_...`).
    pub id: String,
    /// Where events are POSTed (http or https).
    pub url: String,
    /// The event types it receives.
    pub event_types: Vec<EventType>,
    /// The signing secret, sealed with the master key ring.
    pub sealed_secret: String,
    /// Whether events are sent to it.
    pub enabled: bool,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Last change, epoch ms.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, url, event_types, secret, \
    CAST(CASE WHEN enabled THEN 1 ELSE 0 END AS BIGINT) AS enabled, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Webhook, StoreError> {
    let types: String = row.try_get("event_types")?;
    let types: Vec<String> = serde_json::from_str(&types).map_err(|e| corrupt("webhooks", e))?;
    Ok(Webhook {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        event_types: types
            .iter()
            .map(|t| t.parse().map_err(|e| corrupt("webhooks", e)))
            .collect::<Result<_, _>>()?,
        sealed_secret: row.try_get("secret")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn type_names(types: &[EventType]) -> String {
    json(&types.iter().map(|t| t.as_str()).collect::<Vec<_>>())
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// Held by a dispatcher right now.
    Sending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl DeliveryStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Pending, Self::Sending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown delivery status {s:?}"))
    }
}

/// One delivery of one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id (`whd_...`).
    pub id: String,
    /// The endpoint.
    pub webhook_id: String,
    /// The event.
    pub event_id: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made (or in flight).
    pub attempts: u32,
    /// When the next attempt is due (or the current claim ends), epoch ms.
    pub next_attempt_at: i64,
    /// The HTTP status of the last attempt, if one came back.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Last change, epoch ms.
    pub updated_at: i64,
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, status, \
    CAST(attempts AS BIGINT) AS attempts, next_attempt_at, \
    CAST(last_status AS BIGINT) AS last_status, last_error, created_at, updated_at";

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, StoreError> {
    let status: String = row.try_get("status")?;
    let attempts: i64 = row.try_get("attempts")?;
    let last_status: Option<i64> = row.try_get("last_status")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        event_id: row.try_get("event_id")?,
        status: status
            .parse()
            .map_err(|e| corrupt("webhook_deliveries", e))?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status: last_status.and_then(|s| u16::try_from(s).ok()),
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A delivery a dispatcher holds: everything needed to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// The delivery's id.
    pub id: String,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// The endpoint's id.
    pub webhook_id: String,
    /// Where to POST.
    pub url: String,
    /// The endpoint's sealed signing secret.
    pub sealed_secret: String,
    /// The secret it replaced, while that one still signs too (sealed).
    pub sealed_previous_secret: Option<String>,
    /// The event to send.
    pub event: Event,
}

/// How an attempt ended, as the dispatcher decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx: done.
    Delivered {
        /// The status received.
        status: u16,
    },
    /// Failed; try again at `next_attempt_at` (epoch ms).
    Retry {
        /// The status received, if any.
        status: Option<u16>,
        /// Why it failed.
        error: String,
        /// When to try again.
        next_attempt_at: i64,
    },
    /// Failed for good.
    Failed {
        /// The status received, if any.
        status: Option<u16>,
        /// Why it failed.
        error: String,
    },
}

/// A new id for a webhook (the id is bound into its sealed secret, so it exists before the row).
pub fn new_webhook_id() -> String {
    new_id("wh", now_ms())
}

impl Store {
    /// Creates webhook `id` (from [`new_webhook_id`]).
    pub async fn create_webhook(
        &self,
        account: &AccountId,
        id: &str,
        url: &str,
        event_types: &[EventType],
        sealed_secret: &str,
        enabled: bool,
    ) -> Result<Webhook, StoreError> {
        sqlx::query(
            "INSERT INTO webhooks (id, account_id, url, event_types, secret, enabled, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(id)
        .bind(account.as_str())
        .bind(url)
        .bind(type_names(event_types))
        .bind(sealed_secret)
        .bind(enabled)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        self.webhook(account, id).await
    }

    /// The webhook `id` of `account`.
    pub async fn webhook(&self, account: &AccountId, id: &str) -> Result<Webhook, StoreError> {
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM webhooks WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        from_row(&row)
    }

    /// The account's webhooks, newest first.
    pub async fn list_webhooks(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Webhook>, StoreError> {
        let rows = list_page(self, "webhooks", COLUMNS, account, page, None, None).await?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit(), |w| &w.id))
    }

    /// Gives the webhook a new sealed signing secret. With `previous_until` (epoch ms) the old
    /// secret keeps signing beside the new one until then; without, it stops at once.
    pub async fn rotate_webhook_secret(
        &self,
        account: &AccountId,
        id: &str,
        sealed_secret: &str,
        previous_until: Option<i64>,
    ) -> Result<Webhook, StoreError> {
        let now = now_ms();
        let done = match previous_until {
            Some(until) => sqlx::query(
                "UPDATE webhooks SET previous_secret = secret, previous_secret_expires_at = $1, \
                     secret = $2, updated_at = $3 WHERE account_id = $4 AND id = $5",
            )
            .bind(until)
            .bind(sealed_secret)
            .bind(now)
            .bind(account.as_str())
            .bind(id)
            .execute(self.pool())
            .await?,
            None => sqlx::query(
                "UPDATE webhooks SET previous_secret = NULL, previous_secret_expires_at = NULL, \
                     secret = $1, updated_at = $2 WHERE account_id = $3 AND id = $4",
            )
            .bind(sealed_secret)
            .bind(now)
            .bind(account.as_str())
            .bind(id)
            .execute(self.pool())
            .await?,
        };
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.webhook(account, id).await
    }

    /// Replaces a webhook's url, event types and enabled flag (the secret never changes here).
    pub async fn update_webhook(
        &self,
        account: &AccountId,
        hook: &Webhook,
    ) -> Result<Webhook, StoreError> {
        let done = sqlx::query(
            "UPDATE webhooks SET url = $1, event_types = $2, enabled = $3, updated_at = $4 \
             WHERE account_id = $5 AND id = $6",
        )
        .bind(&hook.url)
        .bind(type_names(&hook.event_types))
        .bind(hook.enabled)
        .bind(now_ms())
        .bind(account.as_str())
        .bind(&hook.id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.webhook(account, &hook.id).await
    }

    /// Deletes a webhook and its delivery log (pending deliveries are dropped).
    pub async fn delete_webhook(&self, account: &AccountId, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE account_id = $1 AND id = $2")
            .bind(account.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM webhook_deliveries WHERE account_id = $1 AND webhook_id = $2")
            .bind(account.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a `webhook.test` event and one delivery of it to webhook `id` only.
    pub async fn emit_test_event(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<(Event, Delivery), StoreError> {
        let hook = self.webhook(account, id).await?;
        let now = now_ms();
        let event = Event {
            id: new_id("evt", now),
            account_id: account.clone(),
            event_type: EventType::WebhookTest,
            call_id: None,
            lead_id: None,
            payload: serde_json::json!({"webhook_id": hook.id, "message": "test event"}),
            created_at: now,
        };
        let mut tx = self.pool().begin().await?;
        insert_event(&mut tx, &event).await?;
        let delivery = insert_delivery(&mut tx, account, &hook.id, &event.id, now).await?;
        tx.commit().await?;
        let delivery = self.delivery(account, &delivery).await?;
        Ok((event, delivery))
    }

    /// The delivery `id` of `account`.
    pub async fn delivery(&self, account: &AccountId, id: &str) -> Result<Delivery, StoreError> {
        let row = sqlx::query(sql!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        delivery_from_row(&row)
    }

    /// The delivery log of webhook `id`, newest first (the page's status filter applies).
    pub async fn list_deliveries(
        &self,
        account: &AccountId,
        webhook_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        self.webhook(account, webhook_id).await?;
        let rows = list_page(
            self,
            "webhook_deliveries",
            DELIVERY_COLUMNS,
            account,
            page,
            Some("status"),
            Some(("webhook_id", webhook_id)),
        )
        .await?;
        let rows = rows
            .iter()
            .map(delivery_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit(), |d| &d.id))
    }

    /// Claims up to `limit` deliveries due at `now` (of enabled endpoints, any account) until
    /// `now + lease_ms`, counting the attempt; returns them ready to send.
    pub async fn claim_deliveries(
        &self,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        // Rows another node holds are skipped, not waited for (PostgreSQL); SQLite serialises
        // writers, so the plain UPDATE is already atomic there.
        let lock = match self.engine() {
            Engine::Postgres => " FOR UPDATE OF d SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let ids: Vec<String> = sqlx::query_scalar(sql!(
            "UPDATE webhook_deliveries SET status = 'sending', attempts = attempts + 1, \
             next_attempt_at = $1, updated_at = $2 WHERE id IN (\
               SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
               WHERE d.status IN ('pending', 'sending') AND d.next_attempt_at <= $2 \
               AND w.enabled = $3 ORDER BY d.next_attempt_at LIMIT $4{lock}) \
             RETURNING id"
        ))
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .bind(true)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(
                "SELECT d.id, CAST(d.attempts AS BIGINT) AS attempts, d.webhook_id, w.url, \
                 w.secret, w.previous_secret, w.previous_secret_expires_at, d.event_id \
                 FROM webhook_deliveries d \
                 JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = $1",
            )
            .bind(&id)
            .fetch_optional(self.pool())
            .await?;
            let event = match &row {
                Some(row) => {
                    let event_id: String = row.try_get("event_id")?;
                    sqlx::query(sql!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"))
                        .bind(&event_id)
                        .fetch_optional(self.pool())
                        .await?
                }
                None => None,
            };
            let (Some(row), Some(event)) = (row, event) else {
                // Purged or deleted meanwhile: nothing left to send, close the delivery.
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'failed', \
                     last_error = 'the event or endpoint no longer exists', updated_at = $1 \
                     WHERE id = $2",
                )
                .bind(now)
                .bind(&id)
                .execute(self.pool())
                .await?;
                continue;
            };
            let attempts: i64 = row.try_get("attempts")?;
            let previous_until: Option<i64> = row.try_get("previous_secret_expires_at")?;
            let sealed_previous_secret = match previous_until {
                Some(until) if until > now => row.try_get("previous_secret")?,
                _ => None,
            };
            claimed.push(ClaimedDelivery {
                id,
                attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                webhook_id: row.try_get("webhook_id")?,
                url: row.try_get("url")?,
                sealed_secret: row.try_get("secret")?,
                sealed_previous_secret,
                event: event_from_row(&event)?,
            });
        }
        Ok(claimed)
    }

    /// Records how attempt `attempt` of delivery `id` ended. Returns false when the claim was
    /// lost (the lease ran out and another dispatcher took the delivery): nothing is written.
    pub async fn record_attempt(
        &self,
        id: &str,
        attempt: u32,
        outcome: &AttemptOutcome,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (status, code, error, next) = match outcome {
            AttemptOutcome::Delivered { status } => {
                (DeliveryStatus::Delivered, Some(*status), None, now)
            }
            AttemptOutcome::Retry {
                status,
                error,
                next_attempt_at,
            } => (
                DeliveryStatus::Pending,
                *status,
                Some(error.clone()),
                *next_attempt_at,
            ),
            AttemptOutcome::Failed { status, error } => {
                (DeliveryStatus::Failed, *status, Some(error.clone()), now)
            }
        };
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, last_status = $2, last_error = $3, \
             next_attempt_at = $4, updated_at = $5 \
             WHERE id = $6 AND status = 'sending' AND attempts = $7",
        )
        .bind(status.as_str())
        .bind(code.map(i32::from))
        .bind(error)
        .bind(next)
        .bind(now)
        .bind(id)
        .bind(i64::from(attempt))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
