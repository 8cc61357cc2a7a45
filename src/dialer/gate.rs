//! The compliance gate every outbound number passes before it is dialled: the account's
//! do-not-call list (API, CSV import and opt-outs captured during calls) and the suppression
//! list that erasure leaves behind (a salted hash: the number itself is gone).

use std::io;

use crate::config::ServerConfig;
use crate::store::suppression::SuppressionSalt;
use crate::store::{AccountId, Store, StoreError};

/// Why a number must not be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// On the account's do-not-call list.
    DoNotCall,
    /// Erased by a data-subject request: its salted hash is on the suppression list.
    Erased,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::DoNotCall => "it is on the account's do-not-call list",
            Self::Erased => {
                "it was erased by a data-subject request and is on the suppression list"
            }
        })
    }
}

/// `Some(reason)` when `phone` (E.164) must not be dialled for `account`.
pub async fn refusal(
    store: &Store,
    account: &AccountId,
    salt: &SuppressionSalt,
    phone: &str,
) -> Result<Option<Refusal>, StoreError> {
    if store.is_dnc(account, phone).await? {
        return Ok(Some(Refusal::DoNotCall));
    }
    if store.is_suppressed(account, salt, phone).await? {
        return Ok(Some(Refusal::Erased));
    }
    Ok(None)
}

/// The server's suppression salt: `[privacy] suppression_salt`, else the random salt kept in
/// `<data_dir>/suppression.salt` (created on first use).
pub fn suppression_salt(s: &ServerConfig) -> io::Result<SuppressionSalt> {
    match &s.privacy.suppression_salt {
        Some(secret) => Ok(SuppressionSalt::new(secret.expose().as_bytes())),
        None => SuppressionSalt::load_or_create(&s.data_dir.join("suppression.salt")),
    }
}
