//! The embedded voice activity detector: earshot (pure Rust, weights inside the crate), which
//! scores 16 ms frames of 16 kHz audio. Call audio arrives in 20 ms frames at 8 or 16 kHz, so
//! frames are resampled to 16 kHz and re-cut into earshot's 256-sample blocks.

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
