//! Allocation of RTP/RTCP port pairs from the configured range (even RTP port, RTCP = +1).

use std::collections::BTreeSet;

/// Hands out even RTP ports (RTCP on the next odd one, both in `[min, max)`) round-robin so a just-freed port is not
/// immediately reused (late packets of the old call would leak into the new one).
#[derive(Debug)]
pub struct PortAllocator {
    min: u16,
    max: u16,
    next: u16,
    in_use: BTreeSet<u16>,
}

impl PortAllocator {
    /// An allocator over `[min, max)`; `min` is rounded up to even.
    pub fn new(min: u16, max: u16) -> PortAllocator {
        let min = min + (min % 2);
        PortAllocator {
            min,
            max,
            next: min,
            in_use: BTreeSet::new(),
        }
    }

    /// How many pairs the range holds.
    pub fn capacity(&self) -> usize {
        (self.max.saturating_sub(self.min) / 2) as usize
    }

    /// The next free even port, or `None` when the range is exhausted.
    pub fn allocate(&mut self) -> Option<u16> {
        let cap = self.capacity();
        for _ in 0..cap {
            let p = self.next;
            // The next pair (p+2, p+3) must fit below `max`.
            self.next = if u32::from(p) + 3 >= u32::from(self.max) {
                self.min
            } else {
                p + 2
            };
            if self.in_use.insert(p) {
                return Some(p);
            }
        }
        None
    }

    /// Returns a port to the pool.
    pub fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
    }

    /// Marks a port as unusable for now (bind failed: someone else holds it).
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_round_robin_and_exhaustion() {
        let mut a = PortAllocator::new(10001, 10007);
        assert_eq!(a.capacity(), 2);
        assert_eq!(a.allocate(), Some(10002));
        assert_eq!(a.allocate(), Some(10004));
        assert_eq!(a.allocate(), None);
        a.release(10002);
        assert_eq!(a.allocate(), Some(10002));
        assert_eq!(a.in_use(), 2);
    }
}
