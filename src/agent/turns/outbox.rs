//! The agent's speech on its way to the playout queue, held by the app so it can be paused
//! and resumed (a possible backchannel over the agent) as well as cleared (barge-in).
//!
//! The outbox keeps the playout queue topped up to a short lead (two 20 ms frames) and holds
//! the rest. Pausing stops the topping up, so the wire goes quiet once the lead has played
//! (≤ 40 ms) and the agent resumes where it stopped; a mark is pushed with the last piece of
//! its chunk, so it is reported played exactly when the chunk's last sample goes out.
//! [`Outbox::clear`] reports what was heard in terms of the chunks as pushed to the outbox.

use std::collections::VecDeque;

use crate::leg::AppIo;
use crate::media::playout::{ChunkProgress, ClearReport, Mark, PlayoutError, PlayoutQueue};

/// Frames of audio kept in the playout queue ahead of the wire.
pub const LEAD_FRAMES: usize = 1;

/// Where the outbox's pieces go: the leg's playout queue.
pub trait PlayoutSink {
    /// Queues a piece.
    fn push_piece(&mut self, samples: &[i16], mark: Option<Mark>) -> Result<(), PlayoutError>;
    /// Samples queued and not yet sent.
    fn queued(&self) -> usize;
    /// Drops everything queued.
    fn clear_all(&mut self) -> ClearReport;
}

impl PlayoutSink for AppIo<'_> {
    fn push_piece(&mut self, samples: &[i16], mark: Option<Mark>) -> Result<(), PlayoutError> {
        self.play(samples, mark)
    }
    fn queued(&self) -> usize {
        self.queued_samples()
    }
    fn clear_all(&mut self) -> ClearReport {
        self.clear()
    }
}

impl PlayoutSink for PlayoutQueue {
    fn push_piece(&mut self, samples: &[i16], mark: Option<Mark>) -> Result<(), PlayoutError> {
        self.push(samples, mark)
    }
    fn queued(&self) -> usize {
        self.queued_samples()
    }
    fn clear_all(&mut self) -> ClearReport {
        self.clear()
    }
}

/// One chunk as pushed, placed on the outbox's sample timeline.
#[derive(Debug)]
struct Chunk {
    mark: Option<Mark>,
    /// Offset of its first sample.
    start: u64,
    len: usize,
    /// Whether its last piece went to the playout queue.
    handed: bool,
}

/// The app-side speech queue in front of the playout queue.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Chunks not yet played to the end, in order.
    chunks: VecDeque<Chunk>,
    /// Samples not yet handed to the playout queue.
    data: VecDeque<i16>,
    /// Samples pushed into the outbox so far (the timeline's end).
    pushed: u64,
    /// Samples handed to the playout queue so far.
    handed: u64,
    /// When the outbox was paused (ms on the leg's clock), while it is.
    paused_at_ms: Option<u64>,
}

impl Outbox {
    /// Queues a chunk (an empty chunk with a mark is a position marker).
    pub fn push(&mut self, samples: &[i16], mark: Option<Mark>) {
        if samples.is_empty() && mark.is_none() {
            return;
        }
        self.chunks.push_back(Chunk {
            mark,
            start: self.pushed,
            len: samples.len(),
            handed: false,
        });
        self.data.extend(samples.iter().copied());
        self.pushed += samples.len() as u64;
    }

    /// Samples held here (not yet handed to the playout queue).
    pub fn held(&self) -> usize {
        self.data.len()
    }

    /// Samples still to be heard: held here plus queued in the playout.
    pub fn pending(&self, sink: &impl PlayoutSink) -> usize {
        self.data.len() + sink.queued()
    }

    /// Whether anything (audio or a marker) is still to go out.
    pub fn is_idle(&self, sink: &impl PlayoutSink) -> bool {
        self.chunks.iter().all(|c| c.handed) && sink.queued() == 0
    }

    /// Stops handing audio to the playout queue at `now_ms` (what is there still plays).
    pub fn pause(&mut self, now_ms: u64) {
        self.paused_at_ms.get_or_insert(now_ms);
    }

    /// Hands audio again, from where it stopped.
    pub fn resume(&mut self) {
        self.paused_at_ms = None;
    }

    /// Whether the outbox is paused.
    pub fn is_paused(&self) -> bool {
        self.paused_at_ms.is_some()
    }

    /// When the pause began (what the caller heard ends there), while paused.
    pub fn paused_at(&self) -> Option<u64> {
        self.paused_at_ms
    }

    /// How long it has been paused at `now_ms`, while paused.
    pub fn paused_for_ms(&self, now_ms: u64) -> Option<u64> {
        self.paused_at_ms.map(|at| now_ms.saturating_sub(at))
    }

    /// Tops the playout queue up to `lead` samples (unless paused); call once per tick
    /// before the frame is taken.
    pub fn feed(&mut self, sink: &mut impl PlayoutSink, lead: usize) {
        let played = self.handed.saturating_sub(sink.queued() as u64);
        while self
            .chunks
            .front()
            .is_some_and(|c| c.handed && c.start + c.len as u64 <= played)
        {
            self.chunks.pop_front();
        }
        if self.is_paused() {
            return;
        }
        for c in self.chunks.iter_mut().filter(|c| !c.handed) {
            let room = lead.saturating_sub(sink.queued());
            let remaining = (c.start + c.len as u64 - self.handed) as usize;
            if room == 0 && remaining > 0 {
                return;
            }
            let n = remaining.min(room);
            let piece: Vec<i16> = self.data.iter().take(n).copied().collect();
            let last = n == remaining;
            if sink
                .push_piece(&piece, if last { c.mark } else { None })
                .is_err()
            {
                return;
            }
            self.data.drain(..n);
            self.handed += n as u64;
            if !last {
                return;
            }
            c.handed = true;
        }
    }

    /// Drops everything (barge-in): the playout queue and what is held here. The report
    /// describes the chunks as pushed here: the last one played, the one cut part-way and
    /// how much of it went out, every mark dropped, and the samples never sent.
    pub fn clear(&mut self, sink: &mut impl PlayoutSink) -> ClearReport {
        let r = sink.clear_all();
        let played = self.handed.saturating_sub(r.samples_dropped as u64);
        let mut report = ClearReport {
            cleared: Vec::new(),
            interrupted: None,
            last_played: r.last_played,
            samples_dropped: (self.pushed - played) as usize,
        };
        for c in &self.chunks {
            let end = c.start + c.len as u64;
            if end <= played && c.handed {
                continue;
            }
            if c.start < played {
                report.interrupted = Some(ChunkProgress {
                    mark: c.mark,
                    heard_samples: (played - c.start) as usize,
                    chunk_samples: c.len,
                });
            }
            report.cleared.extend(c.mark);
        }
        self.chunks.clear();
        self.data.clear();
        self.pushed = played;
        self.handed = played;
        self.paused_at_ms = None;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 160;

    /// Runs `ticks` ticks: feed, then take a frame; returns (audio frames, played marks).
    fn run(o: &mut Outbox, q: &mut PlayoutQueue, ticks: usize) -> (usize, Vec<u64>) {
        let (mut audio, mut marks) = (0, Vec::new());
        for _ in 0..ticks {
            o.feed(q, LEAD_FRAMES * FRAME);
            let f = q.next_frame();
            audio += usize::from(f.is_audio());
            marks.extend(f.played().iter().map(|m| m.0));
        }
        (audio, marks)
    }

    #[test]
    fn plays_everything_in_order_with_marks_at_chunk_ends() {
        let mut o = Outbox::default();
        let mut q = PlayoutQueue::new(FRAME, 8000 * 60);
        o.push(&[1; 400], Some(Mark(1)));
        o.push(&[2; 160], Some(Mark(2)));
        o.push(&[], Some(Mark(3)));
        assert_eq!(o.held(), 560);
        let (_, m) = run(&mut o, &mut q, 2);
        assert!(m.is_empty(), "mark 1 ends in the third frame: {m:?}");
        let (audio, m) = run(&mut o, &mut q, 3);
        assert_eq!(m, [1, 2, 3]);
        assert_eq!(audio, 2, "560 samples = 4 frames in all");
        assert!(o.is_idle(&q) && o.held() == 0);
    }

    #[test]
    fn pause_goes_quiet_within_the_lead_and_resume_continues_where_it_stopped() {
        let mut o = Outbox::default();
        let mut q = PlayoutQueue::new(FRAME, 8000 * 60);
        let speech: Vec<i16> = (0..FRAME * 20).map(|i| (i / FRAME + 1) as i16).collect();
        o.push(&speech, Some(Mark(7)));
        run(&mut o, &mut q, 5);
        o.pause(0);
        let mut sent = Vec::new();
        for _ in 0..10 {
            o.feed(&mut q, LEAD_FRAMES * FRAME);
            sent.push(q.next_frame().samples().map(|s| s[0]).unwrap_or(0));
        }
        // What was left of the lead plays (paused before the tick's feed: LEAD_FRAMES - 1
        // frames), then silence.
        let lead: Vec<i16> = (6..5 + LEAD_FRAMES as i16).collect();
        assert_eq!(&sent[..lead.len()], lead.as_slice());
        assert!(sent[lead.len()..].iter().all(|&v| v == 0), "{sent:?}");
        o.resume();
        o.feed(&mut q, LEAD_FRAMES * FRAME);
        let next = q.next_frame().samples().unwrap()[0];
        assert_eq!(next, 5 + LEAD_FRAMES as i16, "no frame lost");
        let (audio, m) = run(&mut o, &mut q, 20);
        assert_eq!((audio, m), (20 - 5 - LEAD_FRAMES, vec![7]));
    }

    #[test]
    fn clear_reports_in_terms_of_the_pushed_chunks() {
        let mut o = Outbox::default();
        let mut q = PlayoutQueue::new(FRAME, 8000 * 60);
        o.push(&[1; 480], Some(Mark(1)));
        o.push(&[2; 1600], Some(Mark(2)));
        o.push(&[3; 800], Some(Mark(3)));
        // 3 frames play chunk 1; 2 more frames play 320 samples of chunk 2.
        let (_, m) = run(&mut o, &mut q, 5);
        assert_eq!(m, [1]);
        let r = o.clear(&mut q);
        assert_eq!(r.last_played, Some(Mark(1)));
        assert_eq!(r.cleared, [Mark(2), Mark(3)]);
        assert_eq!(
            r.interrupted,
            Some(ChunkProgress {
                mark: Some(Mark(2)),
                heard_samples: 320,
                chunk_samples: 1600,
            })
        );
        assert_eq!(r.samples_dropped, 1280 + 800);
        assert!(o.is_idle(&q) && o.held() == 0 && !o.is_paused());
        // Later speech plays normally.
        o.push(&[4; 160], Some(Mark(4)));
        assert_eq!(run(&mut o, &mut q, 2).1, [4]);
    }
}
