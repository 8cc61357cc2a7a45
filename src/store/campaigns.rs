//! Campaigns: which agent calls which leads over which trunk, when and how fast. Stored now; the
//! dialer executes them.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::accounts::json;
use super::ids::new_id;
use super::{AccountId, Page, PageRequest, Store, StoreError, corrupt, list_page, now_ms};

/// A campaign's lifecycle state.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Being set up; not dialled.
    Draft,
    /// Dialled within its windows.
    Active,
    /// Stopped for now.
    Paused,
    /// Finished; not dialled again.
    Completed,
}

impl CampaignStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Completed => "completed",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Draft, Self::Active, Self::Paused, Self::Completed]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// A daily window in the lead's local time during which calls may be placed.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallingWindow {
    /// Days of week, `mon`..`sun`.
    pub days: Vec<String>,
    /// Start, `HH:MM` local time.
    pub start: String,
    /// End (exclusive), `HH:MM` local time.
    pub end: String,
}

/// Dialling rules of a campaign.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignSettings {
    /// When calls may be placed, in each lead's local time.
    pub calling_windows: Vec<CallingWindow>,
    /// Most attempts per lead.
    pub max_attempts: u32,
    /// Minimum minutes between two attempts on one lead.
    pub retry_delay_minutes: u32,
    /// Most calls in progress at once.
    pub max_concurrent_calls: u32,
    /// Most new calls per minute.
    pub calls_per_minute: u32,
    /// Overrides the account's recording setting when set.
    pub recording_enabled: Option<bool>,
    /// Fork the call's audio to this customer bot (wss URL) instead of running the agent.
    pub fork_url: Option<String>,
}

impl Default for CampaignSettings {
    fn default() -> Self {
        Self {
            calling_windows: vec![CallingWindow {
                days: ["mon", "tue", "wed", "thu", "fri"]
                    .map(String::from)
                    .to_vec(),
                start: "09:00".to_owned(),
                end: "20:00".to_owned(),
            }],
            max_attempts: 3,
            retry_delay_minutes: 240,
            max_concurrent_calls: 10,
            calls_per_minute: 30,
            recording_enabled: None,
            fork_url: None,
        }
    }
}

impl CampaignSettings {
    /// Checks every field; the first bad one is returned as (field, reason).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let hhmm = |s: &str| -> Option<u32> {
            let (h, m) = s.split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
        };
        for w in &self.calling_windows {
            if let Some(d) = w.days.iter().find(|d| !DAYS.contains(&d.as_str())) {
                return Err(("calling_windows", format!("{d:?} is not mon..sun")));
            }
            match (hhmm(&w.start), hhmm(&w.end)) {
                (Some(s), Some(e)) if s < e => {}
                _ => {
                    return Err((
                        "calling_windows",
                        format!("{}-{} is not an HH:MM range", w.start, w.end),
                    ));
                }
            }
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err(("max_attempts", "must be 1 to 20".to_owned()));
        }
        if !(1..=10_000).contains(&self.max_concurrent_calls) {
            return Err(("max_concurrent_calls", "must be 1 to 10000".to_owned()));
        }
        if !(1..=10_000).contains(&self.calls_per_minute) {
            return Err(("calls_per_minute", "must be 1 to 10000".to_owned()));
        }
        if let Some(u) = &self.fork_url
            && !(u.starts_with("ws://") || u.starts_with("wss://"))
        {
            return Err(("fork_url", "must be a ws:// or wss:// URL".to_owned()));
        }
        Ok(())
    }
}

/// A campaign row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    /// Its id.
    pub id: String,
    /// A label.
    pub name: String,
    /// The agent that talks (an agent of the same account).
    pub agent_id: Option<String>,
    /// The sip-config trunk name used to dial.
    pub trunk: Option<String>,
    /// The caller ID presented (E.164).
    pub caller_id: Option<String>,
    /// Lifecycle state.
    pub status: CampaignStatus,
    /// Dialling rules.
    pub settings: CampaignSettings,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Last change, epoch ms.
    pub updated_at: i64,
}

const COLUMNS: &str =
    "id, name, agent_id, trunk, caller_id, status, settings, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Campaign, StoreError> {
    let status: String = row.try_get("status")?;
    let settings: String = row.try_get("settings")?;
    Ok(Campaign {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        agent_id: row.try_get("agent_id")?,
        trunk: row.try_get("trunk")?,
        caller_id: row.try_get("caller_id")?,
        status: CampaignStatus::parse(&status).ok_or_else(|| corrupt("campaigns", "status"))?,
        settings: serde_json::from_str(&settings).map_err(|e| corrupt("campaigns", e))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Creates a campaign; `agent_id`, when given, must be an agent of the same account.
    pub async fn create_campaign(
        &self,
        account: &AccountId,
        c: &Campaign,
    ) -> Result<Campaign, StoreError> {
        if let Some(agent) = &c.agent_id {
            self.agent(account, agent).await?;
        }
        let now = now_ms();
        let id = new_id("cmp", now);
        sqlx::query(
            "INSERT INTO campaigns (id, account_id, name, agent_id, trunk, caller_id, status, settings, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(&id)
        .bind(account.as_str())
        .bind(&c.name)
        .bind(c.agent_id.clone())
        .bind(c.trunk.clone())
        .bind(c.caller_id.clone())
        .bind(c.status.as_str())
        .bind(json(&c.settings))
        .bind(now)
        .execute(self.pool())
        .await?;
        self.campaign(account, &id).await
    }

    /// The campaign `id` of `account`.
    pub async fn campaign(&self, account: &AccountId, id: &str) -> Result<Campaign, StoreError> {
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM campaigns WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        from_row(&row)
    }

    /// The account's campaigns, newest first (filter: status).
    pub async fn list_campaigns(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Campaign>, StoreError> {
        let rows = list_page(
            self,
            "campaigns",
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

    /// Replaces a campaign's fields.
    pub async fn update_campaign(
        &self,
        account: &AccountId,
        c: &Campaign,
    ) -> Result<Campaign, StoreError> {
        if let Some(agent) = &c.agent_id {
            self.agent(account, agent).await?;
        }
        let done = sqlx::query(
            "UPDATE campaigns SET name = $1, agent_id = $2, trunk = $3, caller_id = $4, status = $5, \
             settings = $6, updated_at = $7 WHERE account_id = $8 AND id = $9",
        )
        .bind(&c.name)
        .bind(c.agent_id.clone())
        .bind(c.trunk.clone())
        .bind(c.caller_id.clone())
        .bind(c.status.as_str())
        .bind(json(&c.settings))
        .bind(now_ms())
        .bind(account.as_str())
        .bind(&c.id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.campaign(account, &c.id).await
    }
}
