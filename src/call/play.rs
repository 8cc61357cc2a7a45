//! The play app: streams a prompt into the playout queue a few frames ahead of the wire,
//! then hangs up or starts again once its last sample has been sent.

use crate::leg::{AppIo, LegEvent, MediaApp};
use crate::media::playout::{Mark, MarkEvent};
use crate::media::prompt::Prompt;
use std::sync::Arc;

/// How far ahead of the wire the prompt is queued (frames).
const LEAD_FRAMES: usize = 5;
/// The mark on a pass's last chunk.
const END_OF_PROMPT: Mark = Mark(u64::MAX);

/// What to do once the prompt has been played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPlay {
    Hangup,
    Loop,
}

/// Plays a prompt decoded at the leg's rate.
pub struct PlayApp {
    prompt: Arc<Prompt>,
    pos: usize,
    after: AfterPlay,
    /// Times the prompt was played to the end.
    pub passes: u32,
}

impl PlayApp {
    /// Plays `prompt` (already at the leg's rate).
    pub fn new(prompt: Arc<Prompt>, after: AfterPlay) -> PlayApp {
        PlayApp {
            prompt,
            pos: 0,
            after,
            passes: 0,
        }
    }
}

impl MediaApp for PlayApp {
    fn on_tick(&mut self, io: &mut AppIo<'_>) {
        let frame = (io.rate as usize / 50).max(1);
        let samples = self.prompt.samples();
        while self.pos < samples.len() && io.queued_samples() < LEAD_FRAMES * frame {
            let end = (self.pos + frame).min(samples.len());
            let last = end == samples.len();
            let mark = last.then_some(END_OF_PROMPT);
            if io.play(&samples[self.pos..end], mark).is_err() {
                return;
            }
            self.pos = end;
        }
        if samples.is_empty() && self.pos == 0 {
            self.pos = 1;
            io.finish("prompt is empty");
        }
    }

    fn on_event(&mut self, event: &LegEvent, io: &mut AppIo<'_>) {
        if *event != LegEvent::Mark(MarkEvent::Played(END_OF_PROMPT)) {
            return;
        }
        self.passes += 1;
        match self.after {
            AfterPlay::Hangup => io.finish("prompt played"),
            AfterPlay::Loop => self.pos = 0,
        }
    }
}
