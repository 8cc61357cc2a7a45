//! Agents: a named agent config (stages, providers, flow or prompt, voice, barge-in) per account.
//!
//! Provider secrets are write-only: the column holds a JSON map from secret name to a value the
//! caller sealed with the at-rest key ring; reads return only the names.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::accounts::json;
use super::ids::new_id;
use super::{AccountId, Page, PageRequest, Store, StoreError, corrupt, list_page, now_ms};

/// An agent row (secrets sealed).
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// Its id.
    pub id: String,
    /// A label.
    pub name: String,
    /// The agent config (JSON object).
    pub config: serde_json::Value,
    /// Secret name -> sealed value.
    pub sealed_secrets: BTreeMap<String, String>,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Last change, epoch ms.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, name, config, secrets, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Agent, StoreError> {
    let config: String = row.try_get("config")?;
    let secrets: String = row.try_get("secrets")?;
    Ok(Agent {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        config: serde_json::from_str(&config).map_err(|e| corrupt("agents", e))?,
        sealed_secrets: serde_json::from_str(&secrets).map_err(|e| corrupt("agents", e))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Creates an agent.
    pub async fn create_agent(
        &self,
        account: &AccountId,
        name: &str,
        config: &serde_json::Value,
        sealed_secrets: &BTreeMap<String, String>,
    ) -> Result<Agent, StoreError> {
        let now = now_ms();
        let id = new_id("agt", now);
        sqlx::query(
            "INSERT INTO agents (id, account_id, name, config, secrets, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(account.as_str())
        .bind(name)
        .bind(json(config))
        .bind(json(sealed_secrets))
        .bind(now)
        .execute(self.pool())
        .await?;
        self.agent(account, &id).await
    }

    /// The agent `id` of `account`.
    pub async fn agent(&self, account: &AccountId, id: &str) -> Result<Agent, StoreError> {
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM agents WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        from_row(&row)
    }

    /// The account's agents, newest first.
    pub async fn list_agents(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Agent>, StoreError> {
        let rows = list_page(self, "agents", COLUMNS, account, page, None, None).await?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit(), |a| &a.id))
    }

    /// Replaces an agent's name, config and sealed secrets.
    pub async fn update_agent(
        &self,
        account: &AccountId,
        agent: &Agent,
    ) -> Result<Agent, StoreError> {
        let done = sqlx::query(
            "UPDATE agents SET name = $1, config = $2, secrets = $3, updated_at = $4 \
             WHERE account_id = $5 AND id = $6",
        )
        .bind(&agent.name)
        .bind(json(&agent.config))
        .bind(json(&agent.sealed_secrets))
        .bind(now_ms())
        .bind(account.as_str())
        .bind(&agent.id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.agent(account, &agent.id).await
    }

    /// Deletes an agent (campaigns that use it must be changed first).
    pub async fn delete_agent(&self, account: &AccountId, id: &str) -> Result<(), StoreError> {
        let used: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM campaigns WHERE account_id = $1 AND agent_id = $2",
        )
        .bind(account.as_str())
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        if used > 0 {
            return Err(StoreError::Conflict(format!(
                "agent is used by {used} campaign(s)"
            )));
        }
        let done = sqlx::query("DELETE FROM agents WHERE account_id = $1 AND id = $2")
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
