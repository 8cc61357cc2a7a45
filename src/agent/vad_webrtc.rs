//! The `webrtc` VAD stage: libfvad (the WebRTC project's voice detector, a Gaussian mixture
//! over six sub-bands; C under a BSD licence) through the `webrtc-vad` crate. It decides
//! speech or not for each 10, 20 or 30 ms frame at 8, 16, 32 or 48 kHz, with an
//! aggressiveness `mode` 0..=3 (higher: fewer frames called speech); the decisions are
//! debounced into edges like the `energy` VAD.

use super::energy_vad::SpeechEdges;
use super::registry::{BuildError, StageParams};
use super::stages::{StageError, Vad, VadFrame};
use webrtc_vad::{SampleRate, VadMode};

/// A libfvad instance that may move between threads.
struct Detector(webrtc_vad::Vad);

// SAFETY: libfvad keeps all of an instance's state in the allocation behind its pointer (no
// global or thread-local state, no callbacks), and `webrtc_vad::Vad` reaches it only
// through `&mut self`; moving the owner to another thread is therefore sound. It is not
// `Sync` (no shared access is offered).
unsafe impl Send for Detector {}

/// The `webrtc` VAD as a pipeline [`Vad`] stage.
pub struct WebrtcStage {
    detector: Detector,
    mode: u8,
    /// The rate the detector is set to.
    rate: u32,
    edges: SpeechEdges,
}

impl std::fmt::Debug for WebrtcStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebrtcStage")
            .field("mode", &self.mode)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

fn vad_mode(mode: u8) -> VadMode {
    match mode {
        0 => VadMode::Quality,
        1 => VadMode::LowBitrate,
        2 => VadMode::Aggressive,
        _ => VadMode::VeryAggressive,
    }
}

fn sample_rate(rate: u32) -> Option<SampleRate> {
    match rate {
        8000 => Some(SampleRate::Rate8kHz),
        16000 => Some(SampleRate::Rate16kHz),
        32000 => Some(SampleRate::Rate32kHz),
        48000 => Some(SampleRate::Rate48kHz),
        _ => None,
    }
}

impl WebrtcStage {
    /// A stage with aggressiveness `mode` (0..=3, clamped) and the debounce times.
    pub fn new(mode: u8, start_ms: f64, end_ms: f64) -> Self {
        let mode = mode.min(3);
        WebrtcStage {
            detector: Detector(webrtc_vad::Vad::new_with_rate_and_mode(
                SampleRate::Rate8kHz,
                vad_mode(mode),
            )),
            mode,
            rate: 8000,
            edges: SpeechEdges::new(start_ms, end_ms),
        }
    }

    /// Reads `mode` (2), `start_ms` (60) and `end_ms` (400).
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        let mode = p.number("mode", 2.0, 0.0..=3.0)?;
        if mode.fract() != 0.0 {
            return Err(p.bad("mode", "expected a whole number 0..=3"));
        }
        Ok(Self::new(
            mode as u8,
            p.number("start_ms", 60.0, 0.0..=5_000.0)?,
            p.number("end_ms", 400.0, 0.0..=10_000.0)?,
        ))
    }

    fn unsupported(reason: String) -> StageError {
        StageError::Unsupported {
            stage: "vad webrtc".to_owned(),
            reason,
        }
    }
}

impl Default for WebrtcStage {
    fn default() -> Self {
        Self::new(2, 60.0, 400.0)
    }
}

impl Vad for WebrtcStage {
    fn push(&mut self, samples: &[i16], rate: u32) -> Result<VadFrame, StageError> {
        let Some(sr) = sample_rate(rate) else {
            return Err(Self::unsupported(format!(
                "{rate} Hz (known: 8000, 16000, 32000, 48000)"
            )));
        };
        let per_10ms = rate as usize / 100;
        if samples.is_empty()
            || !samples.len().is_multiple_of(per_10ms)
            || samples.len() > 3 * per_10ms
        {
            return Err(Self::unsupported(format!(
                "a frame of {} samples at {rate} Hz (10, 20 or 30 ms)",
                samples.len()
            )));
        }
        if rate != self.rate {
            self.detector.0.set_sample_rate(sr);
            self.rate = rate;
        }
        let speech = self
            .detector
            .0
            .is_voice_segment(samples)
            .map_err(|()| Self::unsupported("libfvad refused the frame".into()))?;
        let frame_ms = samples.len() as f64 * 1000.0 / f64::from(rate);
        Ok(VadFrame {
            probability: if speech { 1.0 } else { 0.0 },
            event: self.edges.step(speech, frame_ms),
        })
    }

    fn reset(&mut self) {
        // libfvad's reset also puts the mode and rate back to its defaults.
        self.detector.0.reset();
        self.detector.0.set_mode(vad_mode(self.mode));
        if let Some(sr) = sample_rate(self.rate) {
            self.detector.0.set_sample_rate(sr);
        }
        self.edges.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::stages::VadEvent;

    fn tone(rate: u32, n: usize, amp: f32) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                // A voiced-like buzz: 150 Hz fundamental with harmonics.
                let s: f32 = (1..=8)
                    .map(|h| (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin() / h as f32)
                    .sum();
                (s * amp) as i16
            })
            .collect()
    }

    #[test]
    fn silence_is_not_speech_and_a_loud_buzz_starts_and_ends_speech() {
        for rate in [8000, 16000] {
            let mut vad = WebrtcStage::default();
            let frame = rate as usize / 50;
            let silence = vec![0i16; frame];
            for _ in 0..25 {
                let f = vad.push(&silence, rate).unwrap();
                assert_eq!((f.probability, f.event), (0.0, None), "{rate}");
            }
            let buzz = tone(rate, frame * 50, 6000.0);
            let mut events = Vec::new();
            for chunk in buzz.chunks(frame) {
                events.extend(vad.push(chunk, rate).unwrap().event);
            }
            for _ in 0..50 {
                events.extend(vad.push(&silence, rate).unwrap().event);
            }
            assert_eq!(
                events,
                [VadEvent::SpeechStart, VadEvent::SpeechEnd],
                "{rate} Hz"
            );
        }
    }

    #[test]
    fn odd_frames_and_rates_are_stage_errors_not_panics() {
        let mut vad = WebrtcStage::default();
        assert!(vad.push(&[], 8000).is_err());
        assert!(vad.push(&[0; 100], 8000).is_err());
        assert!(vad.push(&[0; 320], 8000).is_err(), "40 ms");
        assert!(vad.push(&[0; 441], 44100).is_err());
        assert!(vad.push(&[0; 80], 8000).is_ok(), "10 ms");
        assert!(vad.push(&[0; 240], 8000).is_ok(), "30 ms");
    }

    #[test]
    fn reset_keeps_the_mode_and_rate() {
        let mut vad = WebrtcStage::new(3, 60.0, 400.0);
        vad.push(&[0; 320], 16000).unwrap();
        vad.reset();
        assert_eq!((vad.mode, vad.rate), (3, 16000));
        assert!(vad.push(&[0; 320], 16000).is_ok());
    }
}
