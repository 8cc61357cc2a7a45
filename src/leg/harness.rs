//! Runs a [`MediaApp`] without any transport, one 20 ms tick at a time, so apps can be
//! tested on a simulated clock: the caller's frame in, the frame the app would send out,
//! and mark events delivered as a leg would.

use std::collections::VecDeque;

use super::{AppIo, LegEvent, MediaApp};
use crate::media::playout::{MarkEvent, PlayoutQueue};

/// A leg stand-in for one app.
pub struct AppHarness {
    /// The PCM rate.
    rate: u32,
    /// Ticks run so far.
    tick: u64,
    /// The app's outgoing audio.
    playout: PlayoutQueue,
    /// Mark events waiting for delivery.
    marks: VecDeque<MarkEvent>,
    /// Digits the app asked to send.
    pub dtmf_out: VecDeque<char>,
    /// Why the app asked to hang up, once it did.
    finish: Option<String>,
    /// Whether the last tick sent audio (not silence).
    pub sent_audio: bool,
    /// The audio the last tick sent, if any.
    pub sent: Option<Vec<i16>>,
    /// Where the app asked to transfer the caller, once it did.
    pub transfer: Option<String>,
}

impl AppHarness {
    /// A harness at `rate` Hz (20 ms frames).
    pub fn new(rate: u32) -> Self {
        let frame = rate as usize / 50;
        Self {
            rate,
            tick: 0,
            playout: PlayoutQueue::new(frame, rate as usize * 120),
            marks: VecDeque::new(),
            dtmf_out: VecDeque::new(),
            finish: None,
            sent_audio: false,
            sent: None,
            transfer: None,
        }
    }

    /// Samples queued for playout and not yet sent.
    pub fn queued(&self) -> usize {
        self.playout.queued_samples()
    }

    /// Delivers `event` (e.g. DTMF) to the app as a leg would.
    pub fn event(&mut self, event: &LegEvent, app: &mut dyn MediaApp) {
        let mut cleared = false;
        let mut io = AppIo {
            caller: None,
            rate: self.rate,
            tick: self.tick,
            playout: &mut self.playout,
            marks: &mut self.marks,
            dtmf_out: &mut self.dtmf_out,
            finish: &mut self.finish,
            cleared: &mut cleared,
            transfer: Some(&mut self.transfer),
        };
        app.on_event(event, &mut io);
    }

    /// One tick: the app sees `caller`, one frame leaves, played marks are delivered.
    /// Returns the app's hang-up reason once it asked to hang up.
    pub fn tick(&mut self, caller: Option<&[i16]>, app: &mut dyn MediaApp) -> Option<String> {
        let mut cleared = false;
        {
            let mut io = AppIo {
                caller,
                rate: self.rate,
                tick: self.tick,
                playout: &mut self.playout,
                marks: &mut self.marks,
                dtmf_out: &mut self.dtmf_out,
                finish: &mut self.finish,
                cleared: &mut cleared,
                transfer: Some(&mut self.transfer),
            };
            app.on_tick(&mut io);
        }
        let frame = self.playout.next_frame();
        self.sent_audio = frame.is_audio();
        self.sent = frame.samples().map(<[i16]>::to_vec);
        self.marks.extend(frame.events());
        while let Some(m) = self.marks.pop_front() {
            self.event(&LegEvent::Mark(m), app);
        }
        self.tick += 1;
        self.finish.clone()
    }
}
