//! Events: what happened in an account (a call started, a lead opted out...), kept as a log and
//! fanned out to the account's webhooks as pending deliveries in the same transaction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::accounts::json;
use super::ids::new_id;
use super::{AccountId, Page, PageRequest, Store, StoreError, corrupt, list_page, now_ms};

/// The kind of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventType {
    /// A call was placed or received.
    #[serde(rename = "call.started")]
    CallStarted,
    /// A call was answered.
    #[serde(rename = "call.answered")]
    CallAnswered,
    /// A call ended (its CDR is final).
    #[serde(rename = "call.ended")]
    CallEnded,
    /// A call's transcript is stored.
    #[serde(rename = "transcript.ready")]
    TranscriptReady,
    /// A call's recording is stored.
    #[serde(rename = "recording.ready")]
    RecordingReady,
    /// A lead asked not to be called again during a call.
    #[serde(rename = "lead.opted_out")]
    LeadOptedOut,
    /// A test sent on request to one endpoint (never subscribed to).
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

/// Why an event type was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl EventType {
    /// Every type, in documentation order.
    pub const ALL: [EventType; 7] = [
        Self::CallStarted,
        Self::CallAnswered,
        Self::CallEnded,
        Self::TranscriptReady,
        Self::RecordingReady,
        Self::LeadOptedOut,
        Self::WebhookTest,
    ];

    /// The wire name (`call.ended`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallStarted => "call.started",
            Self::CallAnswered => "call.answered",
            Self::CallEnded => "call.ended",
            Self::TranscriptReady => "transcript.ready",
            Self::RecordingReady => "recording.ready",
            Self::LeadOptedOut => "lead.opted_out",
            Self::WebhookTest => "webhook.test",
        }
    }

    /// Whether a webhook may subscribe to it (`webhook.test` is only sent on request).
    pub fn subscribable(self) -> bool {
        self != Self::WebhookTest
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its id (`evt_...`), also sent as `LeadsCaller-Event-Id`.
    pub id: String,
    /// The tenant.
    pub account_id: AccountId,
    /// What happened.
    pub event_type: EventType,
    /// The call it is about.
    pub call_id: Option<String>,
    /// The lead it is about.
    pub lead_id: Option<String>,
    /// Type-specific data (the webhook body's `data`).
    pub payload: serde_json::Value,
    /// When, epoch ms.
    pub created_at: i64,
}

pub(crate) const EVENT_COLUMNS: &str =
    "id, account_id, type, call_id, lead_id, payload, created_at";

pub(crate) fn event_from_row(row: &AnyRow) -> Result<Event, StoreError> {
    let kind: String = row.try_get("type")?;
    let payload: String = row.try_get("payload")?;
    Ok(Event {
        id: row.try_get("id")?,
        account_id: AccountId(row.try_get("account_id")?),
        event_type: kind.parse().map_err(|e| corrupt("events", e))?,
        call_id: row.try_get("call_id")?,
        lead_id: row.try_get("lead_id")?,
        payload: serde_json::from_str(&payload).map_err(|e| corrupt("events", e))?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts the event row on `conn`.
pub(crate) async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    event: &Event,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (id, account_id, type, call_id, lead_id, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&event.id)
    .bind(event.account_id.as_str())
    .bind(event.event_type.as_str())
    .bind(event.call_id.clone())
    .bind(event.lead_id.clone())
    .bind(json(&event.payload))
    .bind(event.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts one pending delivery of `event_id` to `webhook_id`, due at `now`; returns its id.
pub(crate) async fn insert_delivery(
    conn: &mut sqlx::AnyConnection,
    account: &AccountId,
    webhook_id: &str,
    event_id: &str,
    now: i64,
) -> Result<String, StoreError> {
    let id = new_id("whd", now);
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, account_id, webhook_id, event_id, status, attempts, \
         next_attempt_at, last_status, last_error, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, NULL, NULL, $5, $5)",
    )
    .bind(&id)
    .bind(account.as_str())
    .bind(webhook_id)
    .bind(event_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(id)
}

impl Store {
    /// Records an event and, atomically with it, one pending delivery per enabled webhook of
    /// the account subscribed to its type.
    pub async fn emit_event(
        &self,
        account: &AccountId,
        event_type: EventType,
        call_id: Option<&str>,
        lead_id: Option<&str>,
        payload: serde_json::Value,
    ) -> Result<Event, StoreError> {
        let now = now_ms();
        let event = Event {
            id: new_id("evt", now),
            account_id: account.clone(),
            event_type,
            call_id: call_id.map(str::to_owned),
            lead_id: lead_id.map(str::to_owned),
            payload,
            created_at: now,
        };
        let mut tx = self.pool().begin().await?;
        insert_event(&mut tx, &event).await?;
        let hooks = sqlx::query(
            "SELECT id, event_types FROM webhooks WHERE account_id = $1 AND enabled = $2",
        )
        .bind(account.as_str())
        .bind(true)
        .fetch_all(&mut *tx)
        .await?;
        for hook in &hooks {
            let id: String = hook.try_get("id")?;
            let types: String = hook.try_get("event_types")?;
            let types: Vec<String> =
                serde_json::from_str(&types).map_err(|e| corrupt("webhooks", e))?;
            if types.iter().any(|t| t == event_type.as_str()) {
                insert_delivery(&mut tx, account, &id, &event.id, now).await?;
            }
        }
        tx.commit().await?;
        Ok(event)
    }

    /// Emits `lead.opted_out` for a DNC entry added during a call (see [`Store::add_dnc`]).
    pub(crate) async fn emit_opted_out(
        &self,
        account: &AccountId,
        entry: &super::dnc::DncEntry,
    ) -> Result<Event, StoreError> {
        let lead_id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM leads WHERE account_id = $1 AND phone = $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(account.as_str())
        .bind(&entry.phone)
        .fetch_optional(self.pool())
        .await?;
        let payload = serde_json::json!({
            "phone": entry.phone, "reason": entry.reason, "dnc_id": entry.id,
            "call_id": entry.call_id, "lead_id": lead_id,
        });
        self.emit_event(
            account,
            EventType::LeadOptedOut,
            entry.call_id.as_deref(),
            lead_id.as_deref(),
            payload,
        )
        .await
    }

    /// The event `id` of `account`.
    pub async fn event(&self, account: &AccountId, id: &str) -> Result<Event, StoreError> {
        let row = sqlx::query(sql!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        event_from_row(&row)
    }

    /// The account's events, newest first, optionally of one type (the page's since/until
    /// bound their time).
    pub async fn list_events(
        &self,
        account: &AccountId,
        page: &PageRequest,
        event_type: Option<EventType>,
    ) -> Result<Page<Event>, StoreError> {
        let extra = event_type.map(|t| ("type", t.as_str()));
        let rows = list_page(self, "events", EVENT_COLUMNS, account, page, None, extra).await?;
        let rows = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit(), |e| &e.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_and_unknown_ones_are_refused() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert!("call.exploded".parse::<EventType>().is_err());
        assert!(!EventType::WebhookTest.subscribable());
        assert!(EventType::LeadOptedOut.subscribable());
    }
}
