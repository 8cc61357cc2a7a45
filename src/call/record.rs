//! The record app: records what the caller says until `#`, a stretch of silence after
//! they spoke, or the time limit, then hangs up. The caller is on the left channel.

use super::recording::RecordingTap;
use crate::leg::{AppIo, LegEvent, LegTap, MediaApp};

/// A frame louder than this (RMS, 16-bit scale; about -40 dBFS) counts as speech.
const SPEECH_RMS: f64 = 330.0;

/// Records the caller.
pub struct RecordApp {
    tap: RecordingTap,
    max_ticks: u64,
    silence_ticks: u64,
    heard_speech: bool,
    silent_run: u64,
    started_at: Option<u64>,
}

impl RecordApp {
    /// Records into `tap` for at most `max_ms`, ending after `silence_ms` of silence once
    /// the caller has spoken.
    pub fn new(tap: RecordingTap, max_ms: u64, silence_ms: u64) -> RecordApp {
        RecordApp {
            tap,
            max_ticks: max_ms.div_ceil(20),
            silence_ticks: silence_ms.div_ceil(20),
            heard_speech: false,
            silent_run: 0,
            started_at: None,
        }
    }
}

fn rms(frame: &[i16]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / frame.len() as f64).sqrt()
}

impl MediaApp for RecordApp {
    fn on_tick(&mut self, io: &mut AppIo<'_>) {
        let start = *self.started_at.get_or_insert(io.tick);
        let tick = io.tick - start;
        if tick >= self.max_ticks {
            io.finish("recording reached its time limit");
            return;
        }
        self.tap.push_caller(tick, io.caller);
        let loud = io.caller.is_some_and(|f| rms(f) >= SPEECH_RMS);
        if loud {
            self.heard_speech = true;
            self.silent_run = 0;
        } else {
            self.silent_run += 1;
            if self.heard_speech && self.silent_run >= self.silence_ticks {
                io.finish("recording ended by silence");
            }
        }
    }

    fn on_event(&mut self, event: &LegEvent, io: &mut AppIo<'_>) {
        if let LegEvent::Dtmf { digit: '#', .. } = event {
            io.finish("recording ended by #");
        }
    }

    fn on_stop(&mut self) -> Option<String> {
        self.tap.finish()
    }
}
