//! Accounts (tenants) and their settings.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::ids::new_id;
use super::{AccountId, Store, StoreError, corrupt, now_ms};

/// Whether an account may use the service.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// In use.
    Active,
    /// Closed: its keys no longer work and its data is purged after the closure period.
    Closed,
    /// Closed and purged: every row of it is gone; the row stays so the name is not reused.
    Purged,
}

impl AccountStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Closed => "closed",
            Self::Purged => "purged",
        }
    }
}

/// What an account decides about its own data.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountSettings {
    /// Record calls (stereo, encrypted at rest). Off unless the customer turns it on.
    pub recording_enabled: bool,
    /// Days a recording is kept before the retention job deletes it.
    pub recording_retention_days: u32,
    /// Days a transcript is kept.
    pub transcript_retention_days: u32,
    /// IANA time zone for leads whose own zone is unknown.
    pub default_timezone: String,
    /// ISO 3166 region for numbers written without a country code.
    pub default_region: String,
    /// What the agent says first so the lead knows it is an AI.
    pub ai_disclosure_text: String,
    /// What the lead hears when the call is recorded.
    pub recording_notice_text: String,
    /// Days between closing the account and purging all its data.
    pub closure_purge_days: u32,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            recording_enabled: false,
            recording_retention_days: 90,
            transcript_retention_days: 90,
            default_timezone: "America/New_York".to_owned(),
            default_region: "US".to_owned(),
            ai_disclosure_text: "Hi, this is an automated assistant calling on behalf of our team."
                .to_owned(),
            recording_notice_text: "This call is recorded.".to_owned(),
            closure_purge_days: 90,
        }
    }
}

/// A settings field that fails validation: (field, reason).
pub type SettingsError = (&'static str, String);

impl AccountSettings {
    /// Checks every field; the first bad one is returned with its reason.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (field, days) in [
            ("recording_retention_days", self.recording_retention_days),
            ("transcript_retention_days", self.transcript_retention_days),
            ("closure_purge_days", self.closure_purge_days),
        ] {
            if !(1..=3650).contains(&days) {
                return Err((field, format!("{days} is not between 1 and 3650")));
            }
        }
        if self.closure_purge_days > 90 {
            return Err((
                "closure_purge_days",
                "a closed account is purged within 90 days".to_owned(),
            ));
        }
        if jiff::tz::TimeZone::get(&self.default_timezone).is_err() {
            return Err((
                "default_timezone",
                format!("{:?} is not an IANA time zone", self.default_timezone),
            ));
        }
        let r = &self.default_region;
        if r.len() != 2 || !r.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err((
                "default_region",
                format!("{r:?} is not a two-letter ISO 3166 region"),
            ));
        }
        for (field, text) in [
            ("ai_disclosure_text", &self.ai_disclosure_text),
            ("recording_notice_text", &self.recording_notice_text),
        ] {
            if text.trim().is_empty() || text.len() > 1000 {
                return Err((field, "must be 1 to 1000 characters".to_owned()));
            }
        }
        Ok(())
    }
}

/// An account row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// Unique operator-facing name.
    pub name: String,
    /// Active or closed.
    pub status: AccountStatus,
    /// Its settings.
    pub settings: AccountSettings,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// When it was closed, epoch ms.
    pub closed_at: Option<i64>,
}

const COLUMNS: &str = "id, name, status, settings, created_at, closed_at";

fn from_row(row: &AnyRow) -> Result<Account, StoreError> {
    let status: String = row.try_get("status")?;
    let settings: String = row.try_get("settings")?;
    Ok(Account {
        id: AccountId(row.try_get("id")?),
        name: row.try_get("name")?,
        status: match status.as_str() {
            "active" => AccountStatus::Active,
            "closed" => AccountStatus::Closed,
            "purged" => AccountStatus::Purged,
            other => return Err(corrupt("accounts", format!("status {other:?}"))),
        },
        settings: serde_json::from_str(&settings).map_err(|e| corrupt("accounts", e))?,
        created_at: row.try_get("created_at")?,
        closed_at: row.try_get("closed_at")?,
    })
}

impl Store {
    /// Creates an active account with default settings.
    pub async fn create_account(&self, name: &str) -> Result<Account, StoreError> {
        let now = now_ms();
        let account = Account {
            id: AccountId(new_id("acc", now)),
            name: name.to_owned(),
            status: AccountStatus::Active,
            settings: AccountSettings::default(),
            created_at: now,
            closed_at: None,
        };
        sqlx::query(
            "INSERT INTO accounts (id, name, status, settings, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(account.id.as_str())
        .bind(name)
        .bind(account.status.as_str())
        .bind(json(&account.settings))
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(account)
    }

    /// The account `id`.
    pub async fn account(&self, id: &AccountId) -> Result<Account, StoreError> {
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM accounts WHERE id = $1"))
            .bind(id.as_str())
            .fetch_one(self.pool())
            .await?;
        from_row(&row)
    }

    /// The account called `name`.
    pub async fn account_by_name(&self, name: &str) -> Result<Account, StoreError> {
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM accounts WHERE name = $1"))
            .bind(name)
            .fetch_one(self.pool())
            .await?;
        from_row(&row)
    }

    /// Replaces the account's settings (validated by the caller).
    pub async fn update_account_settings(
        &self,
        id: &AccountId,
        settings: &AccountSettings,
    ) -> Result<Account, StoreError> {
        let done = sqlx::query("UPDATE accounts SET settings = $1 WHERE id = $2")
            .bind(json(settings))
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.account(id).await
    }

    /// Closes the account now: its keys stop working at once; data is purged later.
    pub async fn close_account(&self, id: &AccountId, at_ms: i64) -> Result<Account, StoreError> {
        sqlx::query(
            "UPDATE accounts SET status = 'closed', closed_at = $1 WHERE id = $2 AND status = 'active'",
        )
        .bind(at_ms)
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        self.account(id).await
    }
}

/// `value` as JSON text (our own types always serialize).
pub(crate) fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validation_names_the_field() {
        assert_eq!(AccountSettings::default().validate(), Ok(()));
        let bad = |s: AccountSettings| s.validate().unwrap_err().0;
        let d = AccountSettings::default;
        assert_eq!(
            bad(AccountSettings {
                default_timezone: "Mars/Olympus".into(),
                ..d()
            }),
            "default_timezone"
        );
        assert_eq!(
            bad(AccountSettings {
                closure_purge_days: 120,
                ..d()
            }),
            "closure_purge_days"
        );
        let s = AccountSettings {
            default_region: "usa".into(),
            ..d()
        };
        assert_eq!(s.validate().unwrap_err().0, "default_region");
    }
}
