//! The erasure suppression list: salted hashes of erased numbers, which are never dialled again.
//!
//! Erasing a data subject removes their number from every table, yet the number must stay
//! blocked. The list therefore holds `HMAC-SHA256(salt, account id || 0x00 || E.164 number)`
//! in hex: the database alone cannot be turned back into numbers (the salt lives outside it),
//! and the same number erased in two accounts gives two unrelated hashes.
//!
//! The salt is a per-server secret ([`SuppressionSalt`]): `[privacy] suppression_salt` in the
//! config (every node of a cluster must share it), else a random 32-byte file
//! `<data_dir>/suppression.salt` created on first start. Changing or losing the salt makes
//! every existing entry unmatchable, so back it up with the master key ring. It is not derived
//! from the recording key ring because that ring rotates and retired keys may be dropped.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::ids::hex;
use super::{AccountId, Store, StoreError};

/// Bytes of a generated salt.
const SALT_LEN: usize = 32;

/// The per-server secret that salts suppression hashes; `Debug` never shows it.
#[derive(Clone)]
pub struct SuppressionSalt {
    /// HMAC-SHA256 key made from the secret.
    key: hmac::Key,
}

impl fmt::Debug for SuppressionSalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SuppressionSalt(***)")
    }
}

impl SuppressionSalt {
    /// A salt from secret bytes (config text or a salt file's decoded content).
    pub fn new(secret: &[u8]) -> SuppressionSalt {
        SuppressionSalt {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// Reads the base64 salt file at `path`, creating it (mode 0600, 32 random bytes) if absent.
    pub fn load_or_create(path: &Path) -> io::Result<SuppressionSalt> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = STANDARD.decode(text.trim()).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: not base64", path.display()),
                    )
                })?;
                if bytes.len() < 16 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: salt shorter than 16 bytes", path.display()),
                    ));
                }
                Ok(SuppressionSalt::new(&bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut bytes = [0u8; SALT_LEN];
                SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(|_| io::Error::other("no system randomness"))?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let mut opts = OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt as _;
                    opts.mode(0o600);
                }
                let mut file = opts.open(path)?;
                file.write_all(format!("{}\n", STANDARD.encode(bytes)).as_bytes())?;
                file.sync_all()?;
                let salt = SuppressionSalt::new(&bytes);
                bytes.fill(0);
                Ok(salt)
            }
            Err(e) => Err(e),
        }
    }

    /// The hex hash stored for `phone` (E.164) in `account`.
    pub fn hash(&self, account: &AccountId, phone: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(account.as_str().as_bytes());
        ctx.update(&[0]);
        ctx.update(phone.as_bytes());
        hex(ctx.sign().as_ref())
    }
}

impl Store {
    /// Adds `phone` (E.164) to the account's suppression list; true if it was not there yet.
    pub async fn suppress(
        &self,
        account: &AccountId,
        salt: &SuppressionSalt,
        phone: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO suppression (account_id, phone_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, phone_hash) DO NOTHING",
        )
        .bind(account.as_str())
        .bind(salt.hash(account, phone))
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether `phone` (E.164) was erased from the account and must never be dialled again.
    pub async fn is_suppressed(
        &self,
        account: &AccountId,
        salt: &SuppressionSalt,
        phone: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS hit FROM suppression WHERE account_id = $1 AND phone_hash = $2",
        )
        .bind(account.as_str())
        .bind(salt.hash(account, phone))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_depend_on_salt_account_and_number() {
        let a = SuppressionSalt::new(b"salt-one-salt-one-salt-one-salt!");
        let b = SuppressionSalt::new(b"salt-two-salt-two-salt-two-salt!");
        let acc = AccountId("acc_1".into());
        let other = AccountId("acc_2".into());
        let h = a.hash(&acc, "+14155552671");
        assert_eq!(h.len(), 64);
        assert_eq!(h, a.hash(&acc, "+14155552671"));
        assert!(!h.contains("4155552671"));
        assert_ne!(h, b.hash(&acc, "+14155552671"));
        assert_ne!(h, a.hash(&other, "+14155552671"));
        assert_ne!(h, a.hash(&acc, "+14155552672"));
        assert_eq!(format!("{a:?}"), "SuppressionSalt(***)");
    }

    #[test]
    fn salt_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/suppression.salt");
        let first = SuppressionSalt::load_or_create(&path).unwrap();
        let again = SuppressionSalt::load_or_create(&path).unwrap();
        let acc = AccountId("acc_1".into());
        assert_eq!(first.hash(&acc, "+1"), again.hash(&acc, "+1"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not base64!").unwrap();
        assert!(SuppressionSalt::load_or_create(&path).is_err());
    }
}
