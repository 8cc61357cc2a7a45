//! A small sans-IO reorder buffer: items tagged with sequence numbers come out in order,
//! waiting at most `window` numbers for a missing one before giving up on it.

use std::collections::BTreeMap;

/// What the buffer did with the items it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Items handed out in order.
    pub delivered: u64,
    /// Items that arrived ahead of a missing one and were held.
    pub held: u64,
    /// Items that arrived after their place had been given up (dropped).
    pub late: u64,
    /// Items whose number was already delivered or held (dropped).
    pub duplicates: u64,
    /// Numbers given up on because they did not arrive within the window.
    pub missing: u64,
}

/// Puts sequence-numbered items back in order within a bounded window.
#[derive(Debug)]
pub struct ReorderBuffer<T> {
    /// How far ahead of the next expected number an item may be before we stop waiting.
    window: u64,
    /// The next number to hand out; set by the first item.
    next: Option<u64>,
    /// Held items, keyed by number, all in `next + 1 .. next + window`.
    pending: BTreeMap<u64, T>,
    /// Bit `i` set: number `next - 1 - i` was delivered (tells duplicates from late items).
    history: u128,
    stats: ReorderStats,
}

impl<T> ReorderBuffer<T> {
    /// A buffer that waits for at most `window` numbers (at least 1: no waiting).
    pub fn new(window: u64) -> Self {
        ReorderBuffer {
            window: window.max(1),
            next: None,
            pending: BTreeMap::new(),
            history: 0,
            stats: ReorderStats::default(),
        }
    }

    /// Takes one item and appends to `out` every item now ready, in order.
    pub fn push(&mut self, seq: u64, item: T, out: &mut Vec<T>) {
        let next = *self.next.get_or_insert(seq);
        if seq < next {
            let back = next - seq - 1;
            if back < 128 && self.history >> back & 1 == 1 {
                self.stats.duplicates += 1;
            } else {
                self.stats.late += 1;
            }
            return;
        }
        if self.pending.contains_key(&seq) {
            self.stats.duplicates += 1;
            return;
        }
        if seq - next >= self.window {
            // Too far ahead: give up on the oldest gaps so that `seq` fits in the window.
            let base = seq - (self.window - 1);
            while let Some(entry) = self.pending.first_entry() {
                if *entry.key() >= base {
                    break;
                }
                let (k, v) = entry.remove_entry();
                self.skip_to(k);
                self.deliver(v, out);
            }
            if self.next.is_some_and(|n| n < base) {
                self.skip_to(base);
            }
        }
        if Some(seq) == self.next {
            self.deliver(item, out);
        } else {
            self.stats.held += 1;
            self.pending.insert(seq, item);
        }
        self.drain(out);
    }

    /// Hands out everything held, in order, giving up on the gaps (end of stream).
    pub fn flush(&mut self, out: &mut Vec<T>) {
        while let Some((k, v)) = self.pending.pop_first() {
            self.skip_to(k);
            self.deliver(v, out);
        }
    }

    /// Items held, waiting for a missing one.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// The counters so far.
    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    fn drain(&mut self, out: &mut Vec<T>) {
        while let Some(next) = self.next {
            let Some(v) = self.pending.remove(&next) else {
                break;
            };
            self.deliver(v, out);
        }
    }

    fn skip_to(&mut self, target: u64) {
        let next = self.next.unwrap_or(target);
        let gap = target.saturating_sub(next);
        self.stats.missing += gap;
        self.history = if gap >= 128 { 0 } else { self.history << gap };
        self.next = Some(target.max(next));
    }

    fn deliver(&mut self, item: T, out: &mut Vec<T>) {
        out.push(item);
        self.stats.delivered += 1;
        self.history = self.history << 1 | 1;
        // At u64::MAX the stream cannot go further; later numbers count as late.
        self.next = self.next.map(|n| n.saturating_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(window: u64, seqs: &[u64]) -> (Vec<u64>, ReorderBuffer<u64>) {
        let mut buf = ReorderBuffer::new(window);
        let mut out = Vec::new();
        for &s in seqs {
            buf.push(s, s, &mut out);
        }
        (out, buf)
    }

    #[test]
    fn in_order_passes_straight_through() {
        let (out, buf) = run(4, &[1, 2, 3, 4, 5]);
        assert_eq!(out, [1, 2, 3, 4, 5]);
        assert_eq!(buf.held(), 0);
        assert_eq!(buf.stats().delivered, 5);
    }

    #[test]
    fn a_shuffled_window_comes_out_in_order() {
        let (out, buf) = run(8, &[1, 3, 2, 6, 5, 4, 8, 9, 7, 10]);
        assert_eq!(out, (1..=10).collect::<Vec<_>>());
        let s = buf.stats();
        assert_eq!((s.missing, s.late, s.duplicates), (0, 0, 0));
        assert_eq!(s.held, 5);
    }

    #[test]
    fn duplicates_are_counted_and_dropped() {
        // 3 twice while held, 1 again after delivery.
        let (out, buf) = run(8, &[1, 3, 3, 2, 1, 2]);
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(buf.stats().duplicates, 3);
        assert_eq!(buf.stats().late, 0);
    }

    #[test]
    fn a_gap_older_than_the_window_is_given_up_and_late_arrivals_dropped() {
        // 2 never comes in time: once 6 arrives with a window of 4, we stop waiting for it.
        let (out, buf) = run(4, &[1, 3, 4, 5, 6, 2, 7]);
        assert_eq!(out, [1, 3, 4, 5, 6, 7]);
        let s = buf.stats();
        assert_eq!(s.missing, 1);
        assert_eq!(s.late, 1);
        assert_eq!(s.duplicates, 0);
    }

    #[test]
    fn a_huge_jump_skips_without_looping() {
        let (mut out, mut buf) = run(4, &[1, u64::MAX - 1, u64::MAX, u64::MAX, 2]);
        assert_eq!(out, [1]);
        assert_eq!(buf.held(), 2);
        buf.flush(&mut out);
        assert_eq!(out, [1, u64::MAX - 1, u64::MAX]);
        let s = buf.stats();
        assert_eq!(s.missing, u64::MAX - 3);
        assert_eq!(s.late + s.duplicates, 2);
    }

    #[test]
    fn window_of_one_never_holds() {
        let (out, buf) = run(1, &[5, 7, 6, 8]);
        assert_eq!(out, [5, 7, 8]);
        assert_eq!(buf.stats().late, 1);
        assert_eq!(buf.stats().missing, 1);
    }

    #[test]
    fn flush_hands_out_what_is_held() {
        let (mut out, mut buf) = run(8, &[1, 4, 3]);
        assert_eq!(out, [1]);
        buf.flush(&mut out);
        assert_eq!(out, [1, 3, 4]);
        assert_eq!(buf.stats().missing, 1);
        assert_eq!(buf.held(), 0);
    }
}
