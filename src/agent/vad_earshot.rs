//! The embedded voice activity detector: earshot (pure Rust, weights inside the crate), which
//! scores 16 ms frames of 16 kHz audio. Call audio arrives in 20 ms frames at 8 or 16 kHz, so
//! frames are resampled to 16 kHz and re-cut into earshot's 256-sample blocks.

use super::energy_vad::SpeechEdges;
use super::registry::{BuildError, StageParams};
use super::stages::{StageError, Vad, VadFrame};
use crate::codec::CodecError;
use crate::codec::resample::Resampler;

/// earshot's block: 16 ms at 16 kHz.
const BLOCK: usize = 256;
const VAD_RATE: u32 = 16000;

/// Speech probability for a stream of 20 ms PCM frames.
pub struct EarshotVad {
    detector: Box<earshot::Detector>,
    /// Converts frames to 16 kHz; rebuilt when the input rate changes.
    resampler: Option<Resampler>,
    /// 16 kHz samples not yet scored (less than one block between calls).
    pending: Vec<i16>,
    /// One resampled frame, kept to avoid allocating per frame.
    frame16: Vec<i16>,
    /// The last block's score, returned while a frame completes no block.
    last: f32,
}

impl std::fmt::Debug for EarshotVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EarshotVad")
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Default for EarshotVad {
    fn default() -> Self {
        Self::new()
    }
}

impl EarshotVad {
    /// A detector with earshot's built-in network.
    pub fn new() -> EarshotVad {
        EarshotVad {
            detector: earshot::Detector::default_boxed(),
            resampler: None,
            pending: Vec::with_capacity(2 * BLOCK + 960),
            frame16: Vec::with_capacity(320),
            last: 0.0,
        }
    }

    /// Scores one 20 ms frame at `rate` (8, 16, 24 or 48 kHz): the highest speech
    /// probability (0..1) of the earshot blocks it completes. Resampling to 16 kHz delays
    /// the score by 10 ms at rates other than 16 kHz.
    pub fn push(&mut self, frame: &[i16], rate: u32) -> Result<f32, CodecError> {
        if rate == VAD_RATE {
            self.pending.extend_from_slice(frame);
        } else {
            let resampler = match &mut self.resampler {
                Some(r) if r.input_frame() == rate as usize / 50 => r,
                slot => slot.insert(Resampler::new(rate, VAD_RATE)?),
            };
            resampler.process(frame, &mut self.frame16)?;
            self.pending.extend_from_slice(&self.frame16);
        }
        let mut best: Option<f32> = None;
        let mut used = 0;
        while self.pending.len() - used >= BLOCK {
            let score = self.detector.predict_i16(&self.pending[used..used + BLOCK]);
            best = Some(best.map_or(score, |b: f32| b.max(score)));
            used += BLOCK;
        }
        self.pending.drain(..used);
        if let Some(b) = best {
            self.last = b;
        }
        Ok(self.last)
    }

    /// Forgets the stream (call between unrelated streams).
    pub fn reset(&mut self) {
        self.detector.reset();
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
        self.pending.clear();
        self.last = 0.0;
    }
}

/// `earshot` as a pipeline [`Vad`] stage: a frame is speech when earshot's probability
/// reaches `threshold`, debounced into edges like the `energy` VAD.
#[derive(Debug)]
pub struct EarshotStage {
    /// The network and its resampler.
    vad: EarshotVad,
    /// Probability at which a frame counts as speech.
    threshold: f32,
    /// Debounced speech edges.
    edges: SpeechEdges,
}

impl EarshotStage {
    /// A stage with the given threshold and debounce times.
    pub fn new(threshold: f32, start_ms: f64, end_ms: f64) -> Self {
        Self {
            vad: EarshotVad::new(),
            threshold,
            edges: SpeechEdges::new(start_ms, end_ms),
        }
    }

    /// Reads `threshold` (0.5), `start_ms` (60) and `end_ms` (400).
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        Ok(Self::new(
            p.number("threshold", 0.5, 0.01..=0.99)? as f32,
            p.number("start_ms", 60.0, 0.0..=5_000.0)?,
            p.number("end_ms", 400.0, 0.0..=10_000.0)?,
        ))
    }
}

impl Default for EarshotStage {
    fn default() -> Self {
        Self::new(0.5, 60.0, 400.0)
    }
}

impl Vad for EarshotStage {
    fn push(&mut self, samples: &[i16], rate: u32) -> Result<VadFrame, StageError> {
        let probability = self
            .vad
            .push(samples, rate)
            .map_err(|e| StageError::Unsupported {
                stage: "vad earshot".to_owned(),
                reason: e.to_string(),
            })?;
        let frame_ms = samples.len() as f64 * 1000.0 / f64::from(rate.max(1));
        let event = self.edges.step(probability >= self.threshold, frame_ms);
        Ok(VadFrame { probability, event })
    }

    fn reset(&mut self) {
        self.vad.reset();
        self.edges.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_scores_low_at_both_rates() {
        for rate in [8000, 16000] {
            let mut vad = EarshotVad::new();
            let frame = vec![0i16; rate as usize / 50];
            for _ in 0..50 {
                let p = vad.push(&frame, rate).unwrap();
                assert!(p < 0.5, "{rate}: {p}");
            }
        }
        assert!(EarshotVad::new().push(&[0; 100], 8000).is_err());
    }
}
