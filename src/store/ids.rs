//! Row identifiers: a type prefix, the creation time and randomness (`lead_0192f3a4b5c6d7e8...`).
//!
//! The time part (48-bit milliseconds, hex) makes ids sort by creation, so pagination is a simple
//! `id < cursor` on an index and needs no second column.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The account (tenant) every repository call is scoped to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub String);

impl AccountId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new id `<prefix>_<12 hex ms><16 hex random>` created at `now_ms`.
pub fn new_id(prefix: &str, now_ms: i64) -> String {
    let mut rnd = [0u8; 8];
    rand::rng().fill_bytes(&mut rnd);
    let ms = (now_ms.max(0) as u64) & 0xffff_ffff_ffff;
    format!("{prefix}_{ms:012x}{}", hex(&rnd))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_time() {
        let a = new_id("lead", 1_000);
        let b = new_id("lead", 1_001);
        assert!(a < b, "{a} {b}");
        assert!(a.starts_with("lead_0000000003e8"));
        assert_eq!(a.len(), "lead_".len() + 28);
        assert_ne!(new_id("x", 5), new_id("x", 5));
    }
}
