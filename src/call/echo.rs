//! The echo app: the caller hears their own audio back after the jitter buffer's delay.

use crate::leg::{AppIo, MediaApp};

/// Sends every caller frame straight back.
#[derive(Debug, Default)]
pub struct EchoApp;

impl MediaApp for EchoApp {
    fn on_tick(&mut self, io: &mut AppIo<'_>) {
        if let Some(frame) = io.caller {
            // A full queue only happens if the far end never lets us send; drop the frame.
            let _ = io.play(frame, None);
        }
    }
}
