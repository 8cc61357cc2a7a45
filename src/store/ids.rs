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
///
/// The 64 bits after the time are a process-wide counter (40 bits, from a random start) then
/// 24 random bits, so ids of one millisecond made by one process sort in the order they were
/// made: events of one call written in the same millisecond (`call.started`,
/// `call.answered`) list in order. Across processes the random start and bits keep ids
/// distinct.
pub fn new_id(prefix: &str, now_ms: i64) -> String {
    static COUNTER: std::sync::OnceLock<std::sync::atomic::AtomicU64> = std::sync::OnceLock::new();
    let counter = COUNTER.get_or_init(|| std::sync::atomic::AtomicU64::new(rand::rng().next_u64()));
    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0xff_ffff_ffff;
    let low = u64::from(rand::rng().next_u32() & 0xff_ffff);
    let ms = (now_ms.max(0) as u64) & 0xffff_ffff_ffff;
    let mut id = String::with_capacity(prefix.len() + 1 + 28);
    id.push_str(prefix);
    id.push('_');
    push_hex(&mut id, &ms.to_be_bytes()[2..]);
    push_hex(&mut id, &((n << 24) | low).to_be_bytes());
    id
}

/// Ids of one batch created at the same time: the random part starts at a random value and
/// counts up, so a batch's ids are distinct, sort in creation order (a B-tree appends them
/// instead of splitting pages at random places) and cost no formatting machinery.
pub struct IdSequence {
    /// `<prefix>_<12 hex ms>`.
    head: String,
    next: u64,
}

impl IdSequence {
    /// A sequence for ids of type `prefix` created at `now_ms`.
    pub fn new(prefix: &str, now_ms: i64) -> Self {
        let mut rnd = [0u8; 8];
        rand::rng().fill_bytes(&mut rnd);
        let ms = (now_ms.max(0) as u64) & 0xffff_ffff_ffff;
        let mut head = String::with_capacity(prefix.len() + 1 + 12);
        head.push_str(prefix);
        head.push('_');
        push_hex(&mut head, &ms.to_be_bytes()[2..]);
        IdSequence {
            head,
            next: u64::from_be_bytes(rnd),
        }
    }

    /// The next id.
    pub fn next_id(&mut self) -> String {
        let mut id = String::with_capacity(self.head.len() + 16);
        id.push_str(&self.head);
        push_hex(&mut id, &self.next.to_be_bytes());
        self.next = self.next.wrapping_add(1);
        id
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

/// Appends the lower-case hex of `bytes` to `out`.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
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

    #[test]
    fn ids_made_in_one_millisecond_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1000).map(|_| new_id("evt", 7_000)).collect();
        // In order, unless the counter wrapped (once in 2^40 ids).
        let descents = ids.windows(2).filter(|w| w[0] >= w[1]).count();
        assert!(descents <= 1, "{descents} descents");
        // The time still comes first.
        assert!(new_id("evt", 6_999) < ids[0]);
        assert!(ids.iter().all(|i| i.starts_with("evt_000000001b58")));
    }

    #[test]
    fn a_sequence_counts_up_in_sort_order() {
        let mut seq = IdSequence::new("lead", 0x0192_f3a4_b5c6);
        let ids: Vec<String> = (0..1000).map(|_| seq.next_id()).collect();
        assert!(ids[0].starts_with("lead_0192f3a4b5c6"), "{}", ids[0]);
        assert!(ids.iter().all(|i| i.len() == "lead_".len() + 28));
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // Sorted, unless the random start was within 1000 of the top (then it wraps once).
        let descents = ids.windows(2).filter(|w| w[0] >= w[1]).count();
        assert!(descents <= 1, "{descents} descents");
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }
}
