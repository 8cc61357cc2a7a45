//! Outbound playout queue: one per call leg, paced by the driver's clock.
//!
//! "Playout owns the clock." Agent audio (TTS output, prompts, ...) is pushed
//! here in chunks of any length; the media driver calls
//! [`PlayoutQueue::next_frame`] exactly once per packetization tick (20 ms)
//! and sends whatever it returns. The queue itself is sans-IO: it never reads
//! a clock, sleeps, or touches a socket.
//!
//! # Marks
//!
//! Every pushed chunk may carry a caller-chosen [`Mark`]. A mark is reported
//! exactly once, either
//!
//! * as played (in [`Frame::played`]) in the frame that carries the chunk's
//!   **last sample** (the driver sends that frame right away, so "reported" means
//!   "has left for the network"), or
//! * as cleared (in [`ClearReport::cleared`]) when [`PlayoutQueue::clear`]
//!   drops the chunk before its last sample went out.
//!
//! Marks are reported in push order, across both kinds. A mark on an *empty*
//! chunk is a pure position marker: it is reported played in the frame in
//! which all audio queued before it has been sent, or on the very next
//! `next_frame` call when nothing is queued ahead of it.
//!
//! # Barge-in
//!
//! When the caller starts talking, the agent calls [`PlayoutQueue::clear`].
//! The next frame is already silence. The returned [`ClearReport`] tells the
//! agent what the caller actually heard:
//!
//! * [`ClearReport::last_played`]: the last mark fully played since the
//!   previous clear ("heard everything up to mark k"),
//! * [`ClearReport::interrupted`]: the chunk that was cut off mid-way, with
//!   how many of its samples went out ([`ChunkProgress`]), so a text-aligned
//!   TTS chunk can be truncated to the words actually heard,
//! * [`ClearReport::cleared`]: every mark that will now never play.
//!
//! # Allocation
//!
//! Sample storage is a ring buffer pre-allocated to `max_samples`, so `push`
//! never reallocates sample storage. `next_frame` writes into an internal frame
//! buffer of `frame_samples` samples and collects played marks into an
//! internal `Vec<Mark>` that is cleared (not freed) every tick; the returned
//! [`Frame`] borrows both. In steady state `next_frame` therefore performs no
//! allocation. `clear` (rare, barge-in only) allocates the list of cleared
//! marks. Chunk metadata lives in a `VecDeque` whose capacity is kept and
//! reused.

use std::collections::VecDeque;

/// Caller-chosen identifier attached to a pushed chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mark(pub u64);

/// A mark outcome; every mark produces exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkEvent {
    /// The chunk's last sample was sent.
    Played(Mark),
    /// The chunk was dropped by [`PlayoutQueue::clear`] before it finished.
    Cleared(Mark),
}

/// What [`PlayoutQueue::next_frame`] produces when nothing is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SilenceMode {
    /// Return a frame of zero samples (keeps RTP flowing; the default).
    #[default]
    Zeros,
    /// Return no samples; the driver may skip sending (e.g. DTX, or it
    /// generates comfort noise itself).
    Nothing,
}

/// Errors from [`PlayoutQueue::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlayoutError {
    /// Pushing would exceed `max_samples`; nothing was queued.
    #[error("playout queue full: {requested} samples requested, {available} available")]
    Full {
        /// Length of the rejected chunk.
        requested: usize,
        /// Free space at the time of the push.
        available: usize,
    },
}

/// One tick's output. Borrows the queue's internal buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// At least one queued sample is in this frame. `samples` always has
    /// exactly `frame_samples` entries; the tail after the last queued
    /// sample is zero-padded.
    Audio {
        /// Exactly `frame_samples` samples.
        samples: &'a [i16],
        /// Marks whose chunk's last sample is in this frame, in push order.
        played: &'a [Mark],
    },
    /// Nothing was queued. `samples` is `Some(zeros)` with
    /// [`SilenceMode::Zeros`], `None` with [`SilenceMode::Nothing`].
    Silence {
        /// `frame_samples` zeros, or `None`.
        samples: Option<&'a [i16]>,
        /// Marks of empty (marker-only) chunks that became due, in push order.
        played: &'a [Mark],
    },
}

impl<'a> Frame<'a> {
    /// Samples to send, if any (`None` only for [`SilenceMode::Nothing`]).
    pub fn samples(&self) -> Option<&'a [i16]> {
        match *self {
            Frame::Audio { samples, .. } => Some(samples),
            Frame::Silence { samples, .. } => samples,
        }
    }

    /// Marks that completed with this frame, in push order.
    pub fn played(&self) -> &'a [Mark] {
        match *self {
            Frame::Audio { played, .. } | Frame::Silence { played, .. } => played,
        }
    }

    /// True for [`Frame::Audio`].
    pub fn is_audio(&self) -> bool {
        matches!(self, Frame::Audio { .. })
    }

    /// The played marks as [`MarkEvent::Played`] events.
    pub fn events(&self) -> impl Iterator<Item = MarkEvent> + 'a {
        self.played().iter().map(|&m| MarkEvent::Played(m))
    }
}

/// How far playout got into one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkProgress {
    /// The chunk's mark, if it had one.
    pub mark: Option<Mark>,
    /// Samples of this chunk already sent (`0 < heard_samples < chunk_samples`
    /// when reported by [`PlayoutQueue::clear`]).
    pub heard_samples: usize,
    /// Total length of the chunk as pushed.
    pub chunk_samples: usize,
}

impl ChunkProgress {
    /// Heard duration in milliseconds at `rate` Hz (rounded down).
    pub fn heard_ms(&self, rate: u32) -> u64 {
        samples_to_ms(self.heard_samples, rate)
    }

    /// Fraction of the chunk heard, in `[0, 1]` (1.0 for an empty chunk).
    pub fn heard_fraction(&self) -> f64 {
        if self.chunk_samples == 0 {
            1.0
        } else {
            self.heard_samples as f64 / self.chunk_samples as f64
        }
    }
}

/// Result of [`PlayoutQueue::clear`]: what the caller did and did not hear.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClearReport {
    /// Marks of every dropped chunk, in push order, including the
    /// interrupted chunk's mark (its last sample never went out).
    pub cleared: Vec<Mark>,
    /// The chunk that was cut off part-way (at least one but not all of its
    /// samples sent). `None` if the last sent frame ended exactly on a chunk
    /// boundary or nothing was queued.
    pub interrupted: Option<ChunkProgress>,
    /// The most recent mark reported played since the previous `clear` (or
    /// since creation): everything up to and including it was heard.
    pub last_played: Option<Mark>,
    /// Queued samples that were discarded without being sent.
    pub samples_dropped: usize,
}

impl ClearReport {
    /// The cleared marks as [`MarkEvent::Cleared`] events, in push order.
    pub fn events(&self) -> impl Iterator<Item = MarkEvent> + '_ {
        self.cleared.iter().map(|&m| MarkEvent::Cleared(m))
    }
}

/// Counters since creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlayoutStats {
    /// Frames that carried queued audio.
    pub frames_audio: u64,
    /// Frames produced with nothing queued.
    pub frames_silence: u64,
    /// Queued samples sent (padding not counted).
    pub samples_played: u64,
    /// Samples dropped by `clear`.
    pub samples_cleared: u64,
    /// Marks reported played.
    pub marks_played: u64,
    /// Marks reported cleared.
    pub marks_cleared: u64,
    /// Pushes rejected with [`PlayoutError::Full`].
    pub pushes_rejected: u64,
}

#[derive(Debug, Clone, Copy)]
struct Chunk {
    len: usize,
    mark: Option<Mark>,
}

/// Real-time paced outbound audio queue for one leg (16-bit PCM at the leg's
/// rate). See the module docs for the mark and barge-in contract.
#[derive(Debug)]
pub struct PlayoutQueue {
    frame_samples: usize,
    max_samples: usize,
    silence: SilenceMode,
    samples: VecDeque<i16>,
    chunks: VecDeque<Chunk>,
    /// Samples of `chunks.front()` already sent.
    head_sent: usize,
    frame_buf: Vec<i16>,
    played_buf: Vec<Mark>,
    last_played: Option<Mark>,
    stats: PlayoutStats,
}

fn samples_to_ms(samples: usize, rate: u32) -> u64 {
    if rate == 0 {
        return 0;
    }
    samples as u64 * 1000 / u64::from(rate)
}

impl PlayoutQueue {
    /// New queue producing frames of `frame_samples` samples (e.g. 160 for
    /// 20 ms at 8 kHz) and holding at most `max_samples` queued samples.
    ///
    /// # Panics
    ///
    /// If `frame_samples` is zero.
    pub fn new(frame_samples: usize, max_samples: usize) -> Self {
        assert!(frame_samples > 0, "frame_samples must be non-zero");
        Self {
            frame_samples,
            max_samples,
            silence: SilenceMode::default(),
            samples: VecDeque::with_capacity(max_samples),
            chunks: VecDeque::with_capacity(32),
            head_sent: 0,
            frame_buf: vec![0; frame_samples],
            played_buf: Vec::with_capacity(8),
            last_played: None,
            stats: PlayoutStats::default(),
        }
    }

    /// Builder: choose what an idle tick returns.
    pub fn with_silence_mode(mut self, mode: SilenceMode) -> Self {
        self.silence = mode;
        self
    }

    /// Change what an idle tick returns.
    pub fn set_silence_mode(&mut self, mode: SilenceMode) {
        self.silence = mode;
    }

    /// Samples per frame.
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Capacity in samples.
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }

    /// Queue a chunk (any length, not necessarily frame-aligned), optionally
    /// marked. An empty chunk with a mark is a position marker; an empty
    /// chunk without a mark is a no-op.
    ///
    /// # Errors
    ///
    /// [`PlayoutError::Full`] if the chunk does not fit in the remaining
    /// capacity; nothing is queued in that case (backpressure: retry later).
    pub fn push(&mut self, samples: &[i16], mark: Option<Mark>) -> Result<(), PlayoutError> {
        let available = self.max_samples.saturating_sub(self.samples.len());
        if samples.len() > available {
            self.stats.pushes_rejected += 1;
            return Err(PlayoutError::Full {
                requested: samples.len(),
                available,
            });
        }
        if samples.is_empty() && mark.is_none() {
            return Ok(());
        }
        self.samples.extend(samples.iter().copied());
        self.chunks.push_back(Chunk {
            len: samples.len(),
            mark,
        });
        Ok(())
    }

    /// Produce the next frame. Call exactly once per tick and send the
    /// result immediately: marks in [`Frame::played`] are considered heard.
    pub fn next_frame(&mut self) -> Frame<'_> {
        self.played_buf.clear();
        let n = self.frame_samples;
        let mut filled = 0;
        while let Some(front) = self.chunks.front().copied() {
            if self.head_sent == front.len {
                self.chunks.pop_front();
                self.head_sent = 0;
                if let Some(m) = front.mark {
                    self.played_buf.push(m);
                    self.last_played = Some(m);
                    self.stats.marks_played += 1;
                }
                continue;
            }
            if filled == n {
                break;
            }
            let take = (n - filled).min(front.len - self.head_sent);
            for (dst, src) in self.frame_buf[filled..filled + take]
                .iter_mut()
                .zip(self.samples.drain(..take))
            {
                *dst = src;
            }
            filled += take;
            self.head_sent += take;
        }
        if filled > 0 {
            self.frame_buf[filled..].fill(0);
            self.stats.frames_audio += 1;
            self.stats.samples_played += filled as u64;
            Frame::Audio {
                samples: &self.frame_buf,
                played: &self.played_buf,
            }
        } else {
            self.stats.frames_silence += 1;
            let samples = match self.silence {
                SilenceMode::Zeros => {
                    self.frame_buf.fill(0);
                    Some(&self.frame_buf[..])
                }
                SilenceMode::Nothing => None,
            };
            Frame::Silence {
                samples,
                played: &self.played_buf,
            }
        }
    }

    /// Drop everything queued (barge-in). Takes effect on the very next
    /// frame. Every pending mark is reported in [`ClearReport::cleared`];
    /// see [`ClearReport`] for the "what was heard" accounting.
    pub fn clear(&mut self) -> ClearReport {
        let interrupted = self.in_progress();
        let samples_dropped = self.samples.len();
        let cleared: Vec<Mark> = self.chunks.drain(..).filter_map(|c| c.mark).collect();
        self.samples.clear();
        self.head_sent = 0;
        self.stats.samples_cleared += samples_dropped as u64;
        self.stats.marks_cleared += cleared.len() as u64;
        ClearReport {
            cleared,
            interrupted,
            last_played: self.last_played.take(),
            samples_dropped,
        }
    }

    /// The chunk currently being played, if it has started but not finished
    /// (the value `clear` would report as `interrupted` right now).
    pub fn in_progress(&self) -> Option<ChunkProgress> {
        let front = self.chunks.front()?;
        (self.head_sent > 0).then_some(ChunkProgress {
            mark: front.mark,
            heard_samples: self.head_sent,
            chunk_samples: front.len,
        })
    }

    /// Samples of the current chunk already sent (0 if none in progress).
    pub fn heard_samples_of_current(&self) -> usize {
        self.in_progress().map_or(0, |p| p.heard_samples)
    }

    /// The most recent mark played since the last `clear` (or creation).
    pub fn last_played(&self) -> Option<Mark> {
        self.last_played
    }

    /// Samples queued and not yet sent.
    pub fn queued_samples(&self) -> usize {
        self.samples.len()
    }

    /// Queued duration in milliseconds at `rate` Hz (rounded down).
    pub fn queued_ms(&self, rate: u32) -> u64 {
        samples_to_ms(self.samples.len(), rate)
    }

    /// Marks (played-or-cleared not yet reported) still pending.
    pub fn pending_marks(&self) -> usize {
        self.chunks.iter().filter(|c| c.mark.is_some()).count()
    }

    /// True when no samples and no marker chunks are pending.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Counters since creation.
    pub fn stats(&self) -> PlayoutStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(start: i16, len: usize) -> Vec<i16> {
        (0..len).map(|i| start.wrapping_add(i as i16)).collect()
    }

    /// Returns (samples or None, played marks).
    fn tick(q: &mut PlayoutQueue) -> (bool, Option<Vec<i16>>, Vec<u64>) {
        let f = q.next_frame();
        (
            f.is_audio(),
            f.samples().map(<[i16]>::to_vec),
            f.played().iter().map(|m| m.0).collect(),
        )
    }

    #[test]
    fn silence_when_empty() {
        let mut q = PlayoutQueue::new(4, 100);
        let (audio, s, m) = tick(&mut q);
        assert!(!audio);
        assert_eq!(s, Some(vec![0; 4]));
        assert!(m.is_empty());
        q.set_silence_mode(SilenceMode::Nothing);
        let (audio, s, _) = tick(&mut q);
        assert!(!audio);
        assert_eq!(s, None);
        assert_eq!(q.stats().frames_silence, 2);
        assert!(q.is_empty());
    }

    #[test]
    fn mark_mid_frame_boundary() {
        let mut q = PlayoutQueue::new(4, 100);
        q.push(&[1, 2, 3], Some(Mark(1))).unwrap();
        q.push(&[4, 5, 6], Some(Mark(2))).unwrap();
        let (a, s, m) = tick(&mut q);
        assert!(a);
        assert_eq!(s.unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(m, vec![1]);
        assert_eq!(q.heard_samples_of_current(), 1);
        let (a, s, m) = tick(&mut q);
        assert!(a);
        assert_eq!(s.unwrap(), vec![5, 6, 0, 0]);
        assert_eq!(m, vec![2]);
        let (a, _, m) = tick(&mut q);
        assert!(!a);
        assert!(m.is_empty());
        let st = q.stats();
        assert_eq!(st.frames_audio, 2);
        assert_eq!(st.samples_played, 6);
        assert_eq!(st.marks_played, 2);
    }

    #[test]
    fn chunk_exactly_one_frame() {
        let mut q = PlayoutQueue::new(4, 100);
        q.push(&[1, 2, 3, 4], Some(Mark(7))).unwrap();
        q.push(&[5, 6, 7, 8], Some(Mark(8))).unwrap();
        let (_, s, m) = tick(&mut q);
        assert_eq!(s.unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(m, vec![7]);
        assert_eq!(q.in_progress(), None);
        let (_, s, m) = tick(&mut q);
        assert_eq!(s.unwrap(), vec![5, 6, 7, 8]);
        assert_eq!(m, vec![8]);
        assert!(q.is_empty());
    }

    #[test]
    fn chunk_spanning_many_frames() {
        let mut q = PlayoutQueue::new(160, 10_000);
        let data = ramp(0, 1000);
        q.push(&data, Some(Mark(3))).unwrap();
        assert_eq!(q.queued_ms(8000), 125);
        let mut out = Vec::new();
        for i in 0..6 {
            let (a, s, m) = tick(&mut q);
            assert!(a);
            assert!(m.is_empty(), "frame {i}");
            out.extend(s.unwrap());
        }
        let (a, s, m) = tick(&mut q);
        assert!(a);
        assert_eq!(m, vec![3]);
        let s = s.unwrap();
        assert_eq!(s.len(), 160);
        out.extend(&s[..40]);
        assert!(s[40..].iter().all(|&x| x == 0));
        assert_eq!(out, data);
    }

    #[test]
    fn empty_chunk_marks() {
        let mut q = PlayoutQueue::new(4, 100);
        // Alone: reported at the very next frame, which is silence.
        q.push(&[], Some(Mark(1))).unwrap();
        q.push(&[], None).unwrap(); // no-op
        assert!(!q.is_empty());
        let (a, s, m) = tick(&mut q);
        assert!(!a);
        assert_eq!(s, Some(vec![0; 4]));
        assert_eq!(m, vec![1]);
        assert!(q.is_empty());
        // After audio ending mid-frame: same frame as that audio's last sample.
        q.push(&[1, 2, 3, 4, 5], None).unwrap();
        q.push(&[], Some(Mark(2))).unwrap();
        q.push(&[6], Some(Mark(3))).unwrap();
        let (_, _, m) = tick(&mut q);
        assert!(m.is_empty());
        let (_, s, m) = tick(&mut q);
        assert_eq!(s.unwrap(), vec![5, 6, 0, 0]);
        assert_eq!(m, vec![2, 3]);
        // After audio ending exactly on a frame boundary: same frame.
        q.push(&[1, 2, 3, 4], Some(Mark(4))).unwrap();
        q.push(&[], Some(Mark(5))).unwrap();
        q.push(&[9], None).unwrap();
        let (_, _, m) = tick(&mut q);
        assert_eq!(m, vec![4, 5]);
        let (_, s, m) = tick(&mut q);
        assert_eq!(s.unwrap(), vec![9, 0, 0, 0]);
        assert!(m.is_empty());
    }

    #[test]
    fn clear_reports_and_silences_next_frame() {
        let mut q = PlayoutQueue::new(4, 100);
        q.push(&[1, 2], Some(Mark(1))).unwrap();
        q.push(&ramp(10, 10), Some(Mark(2))).unwrap();
        q.push(&[], Some(Mark(3))).unwrap();
        q.push(&[7, 7, 7], None).unwrap();
        q.push(&[8], Some(Mark(4))).unwrap();
        let (_, _, m) = tick(&mut q); // 1,2,10,11
        assert_eq!(m, vec![1]);
        let r = q.clear();
        assert_eq!(r.cleared, vec![Mark(2), Mark(3), Mark(4)]);
        assert_eq!(
            r.events().collect::<Vec<_>>(),
            vec![
                MarkEvent::Cleared(Mark(2)),
                MarkEvent::Cleared(Mark(3)),
                MarkEvent::Cleared(Mark(4))
            ]
        );
        assert_eq!(
            r.interrupted,
            Some(ChunkProgress {
                mark: Some(Mark(2)),
                heard_samples: 2,
                chunk_samples: 10
            })
        );
        assert_eq!(r.last_played, Some(Mark(1)));
        assert_eq!(r.samples_dropped, 8 + 3 + 1);
        assert!(q.is_empty());
        assert_eq!(q.queued_samples(), 0);
        let (a, s, m) = tick(&mut q);
        assert!(!a);
        assert_eq!(s, Some(vec![0; 4]));
        assert!(m.is_empty());
        let st = q.stats();
        assert_eq!(st.marks_cleared, 3);
        assert_eq!(st.samples_cleared, 12);
        // A second clear with nothing played in between reports nothing heard.
        let r2 = q.clear();
        assert_eq!(r2, ClearReport::default());
    }

    #[test]
    fn clear_on_chunk_boundary_has_no_interrupted() {
        let mut q = PlayoutQueue::new(4, 100);
        q.push(&[1, 2, 3, 4], Some(Mark(1))).unwrap();
        q.push(&[5, 6], Some(Mark(2))).unwrap();
        tick(&mut q);
        let r = q.clear();
        assert_eq!(r.interrupted, None);
        assert_eq!(r.last_played, Some(Mark(1)));
        assert_eq!(r.cleared, vec![Mark(2)]);
        // Clear with nothing ever queued.
        let r = q.clear();
        assert_eq!(r.interrupted, None);
        assert!(r.cleared.is_empty());
    }

    #[test]
    fn heard_samples_across_partial_frames() {
        let mut q = PlayoutQueue::new(160, 10_000);
        q.push(&ramp(0, 100), Some(Mark(1))).unwrap();
        q.push(&ramp(0, 500), Some(Mark(2))).unwrap();
        assert_eq!(q.in_progress(), None);
        tick(&mut q); // 100 of #1 + 60 of #2
        assert_eq!(q.heard_samples_of_current(), 60);
        tick(&mut q);
        assert_eq!(q.heard_samples_of_current(), 220);
        tick(&mut q);
        let p = q.in_progress().unwrap();
        assert_eq!(p.mark, Some(Mark(2)));
        assert_eq!(p.heard_samples, 380);
        assert_eq!(p.chunk_samples, 500);
        assert_eq!(p.heard_ms(8000), 47);
        assert!((p.heard_fraction() - 0.76).abs() < 1e-9);
        let r = q.clear();
        assert_eq!(r.interrupted, Some(p));
        assert_eq!(r.samples_dropped, 120);
        assert_eq!(r.cleared, vec![Mark(2)]);
    }

    #[test]
    fn full_backpressure() {
        let mut q = PlayoutQueue::new(4, 10);
        q.push(&[1; 6], Some(Mark(1))).unwrap();
        assert_eq!(
            q.push(&[2; 5], Some(Mark(2))),
            Err(PlayoutError::Full {
                requested: 5,
                available: 4
            })
        );
        assert_eq!(q.queued_samples(), 6);
        assert_eq!(q.pending_marks(), 1);
        assert_eq!(q.stats().pushes_rejected, 1);
        q.push(&[3; 4], Some(Mark(3))).unwrap();
        assert!(q.push(&[4], None).is_err());
        // Marker-only chunks always fit.
        q.push(&[], Some(Mark(4))).unwrap();
        tick(&mut q);
        q.push(&[4; 4], None).unwrap();
        assert_eq!(q.queued_samples(), 10);
        let e = PlayoutError::Full {
            requested: 5,
            available: 4,
        };
        assert!(e.to_string().contains("full"));
    }

    #[test]
    fn buffers_are_reused() {
        let mut q = PlayoutQueue::new(160, 16_000);
        for i in 0..50u64 {
            q.push(&ramp(0, 100), Some(Mark(i))).unwrap();
        }
        let p1 = q.next_frame().samples().unwrap().as_ptr();
        for _ in 0..10 {
            q.next_frame();
        }
        let p2 = q.next_frame().samples().unwrap().as_ptr();
        assert_eq!(p1, p2);
    }

    /// xorshift64* — deterministic, no deps.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn random_sequence_every_mark_once_in_order() {
        const FRAME: usize = 7;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut q = PlayoutQueue::new(FRAME, 200);
        // Reference model: queued (start_pos, end_pos, mark) in absolute
        // sample positions of the pushed stream; `sent` = position sent.
        let mut model: VecDeque<(u64, u64, Option<u64>)> = VecDeque::new();
        let mut pushed_pos: u64 = 0; // absolute position of next pushed sample
        let mut sent_pos: u64 = 0; // absolute position of next sample to send
        let mut next_mark = 0u64;
        let mut events: Vec<MarkEvent> = Vec::new();
        let mut issued: Vec<u64> = Vec::new();
        for _ in 0..20_000 {
            match rng.below(10) {
                0..=4 => {
                    let len = match rng.below(4) {
                        0 => 0,
                        1 => FRAME * (1 + rng.below(3) as usize),
                        _ => rng.below(40) as usize,
                    };
                    let mark = (rng.below(3) != 0).then(|| {
                        next_mark += 1;
                        next_mark
                    });
                    // Sample values encode absolute position (wrapping).
                    let data: Vec<i16> = (0..len as u64)
                        .map(|i| ((pushed_pos + i) % 30_000) as i16 + 1)
                        .collect();
                    let before = q.queued_samples();
                    match q.push(&data, mark.map(Mark)) {
                        Ok(()) => {
                            if len > 0 || mark.is_some() {
                                model.push_back((pushed_pos, pushed_pos + len as u64, mark));
                            }
                            pushed_pos += len as u64;
                            if let Some(m) = mark {
                                issued.push(m);
                            }
                        }
                        Err(PlayoutError::Full {
                            requested,
                            available,
                        }) => {
                            assert_eq!(requested, len);
                            assert!(before + len > 200);
                            assert_eq!(available, 200 - before);
                            assert_eq!(q.queued_samples(), before);
                            if mark.is_some() {
                                next_mark -= 1; // reuse id so ids stay dense
                            }
                        }
                    }
                }
                5..=8 => {
                    let f = q.next_frame();
                    let played: Vec<u64> = f.played().iter().map(|m| m.0).collect();
                    let is_audio = f.is_audio();
                    let samples = f.samples().unwrap().to_vec();
                    events.extend(played.iter().map(|&m| MarkEvent::Played(Mark(m))));
                    assert_eq!(samples.len(), FRAME);
                    // Model: send up to FRAME samples.
                    let avail = pushed_pos - sent_pos;
                    let n = avail.min(FRAME as u64);
                    assert_eq!(is_audio, n > 0);
                    for (i, &s) in samples.iter().enumerate() {
                        if (i as u64) < n {
                            assert_eq!(s, ((sent_pos + i as u64) % 30_000) as i16 + 1);
                        } else {
                            assert_eq!(s, 0);
                        }
                    }
                    sent_pos += n;
                    let mut expect = Vec::new();
                    while let Some(&(_, end, mark)) = model.front() {
                        if end <= sent_pos {
                            model.pop_front();
                            expect.extend(mark);
                        } else {
                            break;
                        }
                    }
                    assert_eq!(played, expect);
                }
                _ => {
                    let r = q.clear();
                    events.extend(r.events());
                    let expect: Vec<Mark> = model.iter().filter_map(|c| c.2).map(Mark).collect();
                    assert_eq!(r.cleared, expect);
                    let expect_int = model.front().and_then(|&(start, end, mark)| {
                        (sent_pos > start).then_some(ChunkProgress {
                            mark: mark.map(Mark),
                            heard_samples: (sent_pos - start) as usize,
                            chunk_samples: (end - start) as usize,
                        })
                    });
                    assert_eq!(r.interrupted, expect_int);
                    assert_eq!(r.samples_dropped as u64, pushed_pos - sent_pos);
                    model.clear();
                    pushed_pos = sent_pos;
                    assert!(q.is_empty());
                }
            }
            assert_eq!(q.queued_samples() as u64, pushed_pos - sent_pos);
        }
        // Drain and clear the rest.
        while !q.is_empty() {
            let f = q.next_frame();
            events.extend(f.events());
        }
        events.extend(q.clear().events());
        let ids: Vec<u64> = events
            .iter()
            .map(|e| match e {
                MarkEvent::Played(m) | MarkEvent::Cleared(m) => m.0,
            })
            .collect();
        assert_eq!(ids, issued, "every mark exactly once, in push order");
        assert!(issued.len() > 1000);
        let st = q.stats();
        let played = events
            .iter()
            .filter(|e| matches!(e, MarkEvent::Played(_)))
            .count() as u64;
        assert_eq!(st.marks_played, played);
        assert_eq!(st.marks_cleared, issued.len() as u64 - played);
        assert!(st.marks_cleared > 0 && st.marks_played > 0);
    }
}
