//! Jitter buffer micro-benchmark: the cost of one packet through `JitterBuffer`, i.e. one
//! `push` plus the `pop` of its 20 ms playout tick, for G.711 packets (160-byte payload) on
//! a simulated clock. Run: `cargo bench --bench jitter`; criterion prints packets/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leadscaller::rtp::jitter::{JitterBuffer, JitterConfig};
use std::hint::black_box;
use std::time::{Duration, Instant};

const FRAME: Duration = Duration::from_millis(20);
/// Packets per simulated arrival pattern, repeated for as long as criterion runs.
const CYCLE: usize = 1000;

/// A stream on a simulated clock: packet `k` is sent at `k` × 20 ms and arrives after a
/// per-packet network delay; the playout side pops every 20 ms.
struct Stream {
    jb: JitterBuffer,
    start: Instant,
    /// `(arrival offset within the cycle, index within the cycle)`, in arrival order.
    arrivals: Vec<(Duration, usize)>,
    next: usize,
    cycle: u64,
    next_pop: Instant,
    payload: [u8; 160],
}

impl Stream {
    /// `max_jitter_ms` = 0 gives an in-order stream; otherwise delays are uniform in
    /// 0..max_jitter_ms, so packets arrive reordered.
    fn new(max_jitter_ms: u64) -> Stream {
        let mut seed = 0x2545_F491u32;
        let mut arrivals: Vec<(Duration, usize)> = (0..CYCLE)
            .map(|k| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let delay = if max_jitter_ms == 0 {
                    0
                } else {
                    u64::from(seed >> 8) % max_jitter_ms
                };
                (FRAME * k as u32 + Duration::from_millis(delay), k)
            })
            .collect();
        arrivals.sort();
        let start = Instant::now();
        Stream {
            jb: JitterBuffer::new(JitterConfig::default()),
            start,
            arrivals,
            next: 0,
            cycle: 0,
            next_pop: start,
            payload: [0x55; 160],
        }
    }

    /// Delivers the next packet, then runs the playout ticks that are due by its arrival.
    fn step(&mut self) -> usize {
        let (offset, k) = self.arrivals[self.next];
        let cycle_start = self.start + FRAME * (CYCLE as u32) * self.cycle as u32;
        let now = cycle_start + offset;
        let n = self.cycle * CYCLE as u64 + k as u64;
        let seq = n as u16;
        let ts = (n * 160) as u32;
        black_box(self.jb.push(now, seq, ts, n == 0, &self.payload));
        let mut played = 0;
        while self.next_pop <= now {
            if self.jb.pop(self.next_pop).is_some() {
                played += 1;
            }
            self.next_pop += FRAME;
        }
        self.next += 1;
        if self.next == CYCLE {
            self.next = 0;
            self.cycle += 1;
        }
        played
    }
}

fn jitter(c: &mut Criterion) {
    let mut g = c.benchmark_group("jitter_buffer_packet");
    g.throughput(Throughput::Elements(1));
    for (name, max_jitter_ms) in [("in_order", 0), ("jitter_0_60ms_reordered", 60)] {
        let mut s = Stream::new(max_jitter_ms);
        // Warm up past the first talkspurt so the buffer is in its steady state.
        let played: usize = (0..2 * CYCLE).map(|_| s.step()).sum();
        let stats = s.jb.stats();
        // Make sure the measured path is the normal one: nearly every packet played (the
        // reordered stream loses a few to late arrival and delay adaptation).
        assert!(
            played >= 2 * CYCLE * 95 / 100,
            "{name}: {played} played, {stats:?}"
        );
        eprintln!("{name}: {played} of {} played; {stats:?}", 2 * CYCLE);
        g.bench_function(name, |b| b.iter(|| s.step()));
    }
    g.finish();
}

criterion_group!(benches, jitter);
criterion_main!(benches);
