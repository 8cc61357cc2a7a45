//! `energy`: a VAD by RMS level against a threshold, debounced into speech edges.
//!
//! It is the simplest detector that works on quiet lines and needs no model; noisy lines
//! want a trained one (earshot), registered under its own name.

use super::registry::{BuildError, StageParams};
use super::stages::{StageError, Vad, VadEvent, VadFrame};

/// Energy-threshold voice-activity detector.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    /// Level (dBFS) at which a frame counts as speech.
    threshold_dbfs: f64,
    /// Turns per-frame decisions into debounced speech edges.
    edges: SpeechEdges,
}

/// Debounces per-frame speech/non-speech decisions into `SpeechStart`/`SpeechEnd` edges:
/// speech must last `start_ms` to start (ignores clicks), silence `end_ms` to end (bridges
/// pauses). Shared by the `energy` and `earshot` VADs.
#[derive(Debug, Clone)]
pub struct SpeechEdges {
    /// Speech needed in a row before `SpeechStart`, in ms.
    start_ms: f64,
    /// Silence needed in a row after speech before `SpeechEnd`, in ms.
    end_ms: f64,
    /// Whether the caller is currently speaking (after debouncing).
    speaking: bool,
    /// Consecutive ms on the other side of the threshold from `speaking`.
    run_ms: f64,
}

impl SpeechEdges {
    /// Edges after `start_ms` of speech and `end_ms` of silence.
    pub fn new(start_ms: f64, end_ms: f64) -> Self {
        Self {
            start_ms,
            end_ms,
            speaking: false,
            run_ms: 0.0,
        }
    }

    /// One frame of `frame_ms` judged speech or not; returns the edge it completes.
    pub fn step(&mut self, is_speech: bool, frame_ms: f64) -> Option<VadEvent> {
        if is_speech == self.speaking {
            self.run_ms = 0.0;
            return None;
        }
        self.run_ms += frame_ms;
        let needed = if self.speaking {
            self.end_ms
        } else {
            self.start_ms
        };
        if self.run_ms < needed {
            return None;
        }
        self.speaking = is_speech;
        self.run_ms = 0.0;
        Some(if is_speech {
            VadEvent::SpeechStart
        } else {
            VadEvent::SpeechEnd
        })
    }

    /// Forgets the current state (not speaking).
    pub fn reset(&mut self) {
        self.speaking = false;
        self.run_ms = 0.0;
    }
}

impl EnergyVad {
    /// A detector with the given threshold and debounce times.
    pub fn new(threshold_dbfs: f64, start_ms: f64, end_ms: f64) -> Self {
        Self {
            threshold_dbfs,
            edges: SpeechEdges::new(start_ms, end_ms),
        }
    }

    /// Reads `threshold_dbfs` (-35), `start_ms` (60) and `end_ms` (400).
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        Ok(Self::new(
            p.number("threshold_dbfs", -35.0, -96.0..=0.0)?,
            p.number("start_ms", 60.0, 0.0..=5_000.0)?,
            p.number("end_ms", 400.0, 0.0..=10_000.0)?,
        ))
    }
}

impl Default for EnergyVad {
    fn default() -> Self {
        Self::new(-35.0, 60.0, 400.0)
    }
}

/// RMS level of `samples` in dBFS (-96 for digital silence).
pub fn level_dbfs(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return -96.0;
    }
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (energy / samples.len() as f64).sqrt() / 32768.0;
    (20.0 * rms.log10()).max(-96.0)
}

impl Vad for EnergyVad {
    fn push(&mut self, samples: &[i16], rate: u32) -> Result<VadFrame, StageError> {
        if !(1_000..=192_000).contains(&rate) {
            return Err(StageError::Unsupported {
                stage: "vad energy".to_owned(),
                reason: format!("sample rate {rate}"),
            });
        }
        let frame_ms = samples.len() as f64 * 1000.0 / f64::from(rate);
        let level = level_dbfs(samples);
        // A soft step 3 dB wide, so the probability says how clear the decision was.
        let probability = 1.0 / (1.0 + (-(level - self.threshold_dbfs) / 3.0).exp());
        let event = self.edges.step(level >= self.threshold_dbfs, frame_ms);
        Ok(VadFrame {
            probability: probability as f32,
            event,
        })
    }

    fn reset(&mut self) {
        self.edges.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amplitude: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amplitude * (i as f64 * 0.3).sin()) as i16)
            .collect()
    }

    /// Runs 20 ms frames at 8 kHz and returns (frame index, event) pairs.
    fn events(vad: &mut EnergyVad, frames: &[Vec<i16>]) -> Vec<(usize, VadEvent)> {
        frames
            .iter()
            .enumerate()
            .filter_map(|(i, f)| vad.push(f, 8000).unwrap().event.map(|e| (i, e)))
            .collect()
    }

    #[test]
    fn levels() {
        assert_eq!(level_dbfs(&[]), -96.0);
        assert_eq!(level_dbfs(&[0; 160]), -96.0);
        let full = level_dbfs(&[i16::MIN; 160]);
        assert!(full.abs() < 0.01, "{full}");
        let quiet = level_dbfs(&tone(100.0, 160));
        assert!(quiet < -45.0, "{quiet}");
    }

    #[test]
    fn debounced_edges() {
        let loud = tone(8000.0, 160);
        let quiet = vec![0i16; 160];
        let mut frames = vec![quiet.clone(); 5];
        frames.push(loud.clone()); // a 20 ms click: no start
        frames.extend(vec![quiet.clone(); 5]);
        frames.extend(vec![loud.clone(); 10]); // starts after 60 ms = 3rd frame (index 13)
        frames.extend(vec![quiet.clone(); 5]); // 100 ms pause: bridged
        frames.extend(vec![loud; 5]);
        frames.extend(vec![quiet; 25]); // ends after 400 ms = 20th frame
        let mut vad = EnergyVad::default();
        assert_eq!(
            events(&mut vad, &frames),
            [(13, VadEvent::SpeechStart), (50, VadEvent::SpeechEnd)]
        );
    }

    #[test]
    fn probability_follows_level_and_bad_rate_is_an_error() {
        let mut vad = EnergyVad::default();
        let p_loud = vad.push(&tone(8000.0, 160), 8000).unwrap().probability;
        let p_quiet = vad.push(&[0; 160], 8000).unwrap().probability;
        assert!(p_loud > 0.99 && p_quiet < 0.01, "{p_loud} {p_quiet}");
        assert!(vad.push(&[0; 160], 0).is_err());
        assert!(vad.push(&[], 16000).is_ok());
    }
}
