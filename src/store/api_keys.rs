//! API keys: 256-bit random bearer tokens, shown once, stored only as a SHA-256 hash.
//!
//! A token reads `lc_<prefix>_<secret>`: the public prefix finds the row through a unique index,
//! then the hash of the whole token is compared in constant time.

use std::fmt;

use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::ids::{hex, new_id};
use super::{AccountId, Page, PageRequest, Store, StoreError, corrupt, now_ms};

/// What a key may do.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything in its account.
    Admin,
    /// Only reads (GET).
    Read,
}

impl Scope {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Read => "read",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "read" => Some(Self::Read),
            _ => None,
        }
    }
}

/// A key's stored metadata (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: String,
    /// The account it acts for.
    pub account_id: AccountId,
    /// A label chosen by its creator.
    pub name: String,
    /// The token's public prefix (shown in lists to recognise a key).
    pub prefix: String,
    /// Admin or read.
    pub scope: Scope,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Last successful use, epoch ms (updated at most once a minute).
    pub last_used_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

/// A bearer token, redacted in Debug.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Why a presented token was refused (all map to one 401 for the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Not of the `lc_<prefix>_<secret>` shape.
    Malformed,
    /// No key has this prefix, or the secret does not match.
    Unknown,
    /// The key was revoked.
    Revoked,
    /// The key's account is closed.
    AccountClosed,
}

const COLUMNS: &str = "id, account_id, name, prefix, scope, created_at, last_used_at, revoked_at";
const PREFIX_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;
/// How stale `last_used_at` may get before a use writes it again.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

fn from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let scope: String = row.try_get("scope")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        account_id: AccountId(row.try_get("account_id")?),
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        scope: Scope::parse(&scope).ok_or_else(|| corrupt("api_keys", "scope"))?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Splits `lc_<prefix>_<secret>` into its prefix.
fn token_prefix(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("lc_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let ok = prefix.len() == PREFIX_BYTES * 2
        && prefix.bytes().all(|b| b.is_ascii_hexdigit())
        && secret.len() >= 40;
    ok.then_some(prefix)
}

impl Store {
    /// Creates a key for `account`; returns its metadata and the token (shown once).
    pub async fn create_api_key(
        &self,
        account: &AccountId,
        name: &str,
        scope: Scope,
    ) -> Result<(ApiKey, Token), StoreError> {
        let mut prefix = [0u8; PREFIX_BYTES];
        let mut secret = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut prefix);
        rand::rng().fill_bytes(&mut secret);
        let prefix = hex(&prefix);
        let token = format!(
            "lc_{prefix}_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let now = now_ms();
        let key = ApiKey {
            id: new_id("key", now),
            account_id: account.clone(),
            name: name.to_owned(),
            prefix,
            scope,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, name, prefix, token_hash, scope, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.id)
        .bind(account.as_str())
        .bind(name)
        .bind(&key.prefix)
        .bind(token_hash(&token))
        .bind(scope.as_str())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok((key, Token(token)))
    }

    /// Checks a presented bearer token; returns the key it belongs to.
    pub async fn authenticate(
        &self,
        token: &str,
    ) -> Result<Result<ApiKey, AuthFailure>, StoreError> {
        let Some(prefix) = token_prefix(token) else {
            return Ok(Err(AuthFailure::Malformed));
        };
        let row = sqlx::query(sql!(
            "SELECT k.token_hash, a.status AS account_status, {} FROM api_keys k \
             JOIN accounts a ON a.id = k.account_id WHERE k.prefix = $1",
            COLUMNS
                .split(", ")
                .map(|c| format!("k.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(prefix)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(Err(AuthFailure::Unknown));
        };
        let stored: String = row.try_get("token_hash")?;
        if !constant_time_eq(stored.as_bytes(), token_hash(token).as_bytes()) {
            return Ok(Err(AuthFailure::Unknown));
        }
        let key = from_row(&row)?;
        if key.revoked_at.is_some() {
            return Ok(Err(AuthFailure::Revoked));
        }
        let account_status: String = row.try_get("account_status")?;
        if account_status != "active" {
            return Ok(Err(AuthFailure::AccountClosed));
        }
        let now = now_ms();
        if key
            .last_used_at
            .is_none_or(|t| now - t >= LAST_USED_RESOLUTION_MS)
        {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&key.id)
                .execute(self.pool())
                .await?;
        }
        Ok(Ok(key))
    }

    /// The account's keys, newest first.
    pub async fn list_api_keys(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        let rows = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM api_keys WHERE account_id = $1 AND id < $2 \
             AND created_at >= $3 AND created_at < $4 ORDER BY id DESC LIMIT $5"
        ))
        .bind(account.as_str())
        .bind(page.before_id())
        .bind(page.since())
        .bind(page.until())
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(self.pool())
        .await?;
        let keys = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(keys, page.limit(), |k| &k.id))
    }

    /// The key `id` of `account`.
    pub async fn api_key(&self, account: &AccountId, id: &str) -> Result<ApiKey, StoreError> {
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM api_keys WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        from_row(&row)
    }

    /// Revokes the key `id` of `account` (idempotent).
    pub async fn revoke_api_key(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<ApiKey, StoreError> {
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE account_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(account.as_str())
        .bind(id)
        .execute(self.pool())
        .await?;
        self.api_key(account, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape_is_checked_before_any_lookup() {
        let secret = "A".repeat(43);
        assert_eq!(
            token_prefix(&format!("lc_0123456789ab_{secret}")),
            Some("0123456789ab")
        );
        assert_eq!(token_prefix("lc_0123456789ab_short"), None);
        assert_eq!(token_prefix(&format!("lc_zz23456789ab_{secret}")), None);
        assert_eq!(token_prefix("Bearer x"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(format!("{:?}", Token("lc_secret".into())), "Token(***)");
    }
}
