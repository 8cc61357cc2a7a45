//! Streaming mono resampling between the internal rates (8, 16, 24 and 48 kHz) in 20 ms
//! frames, with rubato's synchronous FFT resampler: one FFT block per frame, so every input
//! frame yields exactly one output frame, delayed by a fixed 10 ms, and nothing is allocated
//! after construction.

use super::CodecError;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _, WindowFunction};

/// Rates the resampler converts between.
pub const RATES: [u32; 4] = [8000, 16000, 24000, 48000];

/// A stateful resampler for one direction of one leg: 20 ms in, 20 ms out.
pub struct Resampler {
    from_rate: u32,
    to_rate: u32,
    /// `None` when the rates are equal (frames pass through).
    fft: Option<Box<Fft<f32>>>,
    /// The input frame as f32, kept to avoid allocating per call.
    input: Vec<f32>,
    /// rubato's output for one frame, before conversion back to i16.
    output: Vec<f32>,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from_rate", &self.from_rate)
            .field("to_rate", &self.to_rate)
            .finish_non_exhaustive()
    }
}

fn check_rate(rate: u32) -> Result<usize, CodecError> {
    if RATES.contains(&rate) {
        Ok(rate as usize / 50)
    } else {
        Err(CodecError::UnsupportedRate(rate))
    }
}

impl Resampler {
    /// A resampler from `from_rate` to `to_rate`, each one of [`RATES`].
    pub fn new(from_rate: u32, to_rate: u32) -> Result<Resampler, CodecError> {
        let frame_in = check_rate(from_rate)?;
        let frame_out = check_rate(to_rate)?;
        let fft = if from_rate == to_rate {
            None
        } else {
            // One FFT block per 20 ms frame. BlackmanHarris2 (rubato's default window) keeps
            // the passband flat to ~0.9 of the lower Nyquist rate at these block sizes.
            let fft = Fft::<f32>::new_custom(
                from_rate as usize,
                to_rate as usize,
                frame_in,
                1,
                1,
                WindowFunction::BlackmanHarris2,
                FixedSync::Both,
            )
            .map_err(|e| CodecError::Resample(e.to_string()))?;
            if fft.input_frames_next() != frame_in || fft.output_frames_next() != frame_out {
                return Err(CodecError::Resample("unexpected FFT block size".into()));
            }
            Some(Box::new(fft))
        };
        Ok(Resampler {
            from_rate,
            to_rate,
            fft,
            input: vec![0.0; frame_in],
            output: vec![0.0; frame_out],
        })
    }

    /// Samples in one input frame (20 ms at `from_rate`).
    pub fn input_frame(&self) -> usize {
        self.input.len()
    }

    /// Samples in one output frame (20 ms at `to_rate`).
    pub fn output_frame(&self) -> usize {
        self.output.len()
    }

    /// Delay the resampler adds, in output samples (10 ms; 0 when the rates are equal).
    pub fn delay(&self) -> usize {
        self.fft.as_ref().map_or(0, |f| f.output_delay())
    }

    /// Resamples one 20 ms frame into `out` (cleared first; one 20 ms frame at `to_rate`).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> Result<(), CodecError> {
        out.clear();
        if input.len() != self.input.len() {
            return Err(CodecError::FrameSize {
                expected: self.input.len(),
                got: input.len(),
            });
        }
        let Some(fft) = self.fft.as_mut() else {
            out.extend_from_slice(input);
            return Ok(());
        };
        for (f, &s) in self.input.iter_mut().zip(input) {
            *f = f32::from(s);
        }
        let frames_in = self.input.len();
        let frames_out = self.output.len();
        let adapter_in = InterleavedSlice::new(&self.input[..], 1, frames_in)
            .map_err(|e| CodecError::Resample(e.to_string()))?;
        let mut adapter_out = InterleavedSlice::new_mut(&mut self.output[..], 1, frames_out)
            .map_err(|e| CodecError::Resample(e.to_string()))?;
        fft.process_into_buffer(&adapter_in, &mut adapter_out, None)
            .map_err(|e| CodecError::Resample(e.to_string()))?;
        out.extend(
            self.output
                .iter()
                .map(|&f| f.round().clamp(-32768.0, 32767.0) as i16),
        );
        Ok(())
    }

    /// Forgets the signal history (call between unrelated streams).
    pub fn reset(&mut self) {
        if let Some(fft) = self.fft.as_mut() {
            fft.reset();
        }
    }
}

/// Resamples a whole clip (e.g. a prompt file) from `from` to `to` Hz, both in [`RATES`]:
/// the delay is trimmed and the result holds `len * to / from` samples (rounded up).
pub fn resample_all(input: &[i16], from: u32, to: u32) -> Result<Vec<i16>, CodecError> {
    let mut r = Resampler::new(from, to)?;
    if from == to {
        return Ok(input.to_vec());
    }
    let (fin, fout, delay) = (r.input_frame(), r.output_frame(), r.delay());
    let wanted = (input.len() * to as usize).div_ceil(from as usize);
    let mut result = Vec::with_capacity(wanted + delay + fout);
    let mut frame = vec![0i16; fin];
    let mut out = Vec::with_capacity(fout);
    let mut pos = 0;
    while result.len() < wanted + delay {
        let end = (pos + fin).min(input.len());
        let take = end.saturating_sub(pos);
        frame[..take].copy_from_slice(&input[pos.min(end)..end]);
        frame[take..].fill(0);
        pos = end;
        r.process(&frame, &mut out)?;
        result.extend_from_slice(&out);
    }
    result.drain(..delay);
    result.truncate(wanted);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn tone(rate: u32, freq: f64, amp: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|i| (amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as i16)
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Frequency from the rising zero crossings, interpolated between samples.
    fn frequency(x: &[i16], rate: u32) -> f64 {
        let crossings: Vec<f64> = x
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] < 0 && w[1] >= 0)
            .map(|(i, w)| {
                let (a, b) = (f64::from(w[0]), f64::from(w[1]));
                i as f64 + a / (a - b)
            })
            .collect();
        let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
        (crossings.len() - 1) as f64 * f64::from(rate) / (last - first)
    }

    fn stream(r: &mut Resampler, input: &[i16]) -> Vec<i16> {
        let mut all = Vec::new();
        let mut out = Vec::new();
        for frame in input.chunks(r.input_frame()) {
            r.process(frame, &mut out).unwrap();
            assert_eq!(out.len(), r.output_frame());
            all.extend_from_slice(&out);
        }
        all
    }

    #[test]
    fn tones_keep_frequency_and_level_across_every_pair() {
        for from in RATES {
            for to in RATES {
                let mut r = Resampler::new(from, to).unwrap();
                let band = f64::from(from.min(to)) / 2.0;
                for freq in [440.0, 1000.0, 0.8 * band] {
                    let input = tone(from, freq, 10_000.0, from as usize); // 1 s
                    let output = stream(&mut r, &input);
                    assert_eq!(output.len(), to as usize);
                    // Skip the delay and the first 100 ms.
                    let steady = &output[to as usize / 10..];
                    let gain_db = 20.0 * (rms(steady) / rms(&input)).log10();
                    let f = frequency(steady, to);
                    assert!(
                        gain_db.abs() < 1.0,
                        "{from}->{to} {freq} Hz: {gain_db:.2} dB"
                    );
                    assert!(
                        (f / freq - 1.0).abs() < 0.002,
                        "{from}->{to} {freq} Hz: {f:.1} Hz"
                    );
                    r.reset();
                }
            }
        }
    }

    #[test]
    fn downsampling_rejects_what_the_lower_rate_cannot_carry() {
        for (from, to, freq) in [
            (16000, 8000, 6000.0),
            (48000, 8000, 5000.0),
            (48000, 16000, 12000.0),
        ] {
            let mut r = Resampler::new(from, to).unwrap();
            let output = stream(&mut r, &tone(from, freq, 10_000.0, from as usize));
            let level_db =
                20.0 * (rms(&output[to as usize / 10..]) / (10_000.0 / 2f64.sqrt())).log10();
            assert!(
                level_db < -60.0,
                "{from}->{to} {freq} Hz alias at {level_db:.1} dB"
            );
        }
    }

    #[test]
    fn every_frame_gives_one_frame_after_a_fixed_delay() {
        for (from, to) in [(8000, 16000), (16000, 8000), (24000, 8000), (48000, 16000)] {
            let mut r = Resampler::new(from, to).unwrap();
            assert_eq!(r.delay(), to as usize / 100, "{from}->{to}");
            // A click at the start of frame 3 comes out `delay` samples after its place.
            let fin = r.input_frame();
            let mut input = vec![0i16; fin * 500];
            input[3 * fin] = 20_000;
            let out = stream(&mut r, &input);
            assert_eq!(out.len(), 500 * r.output_frame());
            let peak = (0..out.len())
                .max_by_key(|&i| out[i].unsigned_abs())
                .unwrap();
            assert_eq!(peak, 3 * r.output_frame() + r.delay(), "{from}->{to}");
        }
        let mut same = Resampler::new(16000, 16000).unwrap();
        let mut out = Vec::new();
        same.process(&[7; 320], &mut out).unwrap();
        assert_eq!((out.len(), out[0], same.delay()), (320, 7, 0));
    }

    #[test]
    fn steady_state_reuses_buffers() {
        let mut r = Resampler::new(8000, 48000).unwrap();
        let input = tone(8000, 440.0, 8000.0, 160);
        let mut out = Vec::new();
        r.process(&input, &mut out).unwrap();
        let (ptr, cap) = (out.as_ptr(), out.capacity());
        for _ in 0..100 {
            r.process(&input, &mut out).unwrap();
        }
        assert_eq!((out.as_ptr(), out.capacity()), (ptr, cap));
    }

    #[test]
    fn bad_rates_and_frames_are_errors() {
        assert!(matches!(
            Resampler::new(44100, 8000),
            Err(CodecError::UnsupportedRate(44100))
        ));
        assert!(Resampler::new(8000, 12000).is_err());
        let mut r = Resampler::new(8000, 16000).unwrap();
        let mut out = Vec::new();
        let err = r.process(&[0; 159], &mut out).unwrap_err();
        assert!(matches!(
            err,
            CodecError::FrameSize {
                expected: 160,
                got: 159
            }
        ));
        assert!(resample_all(&[0; 10], 8000, 11025).is_err());
    }

    #[test]
    fn whole_clips_have_exact_length_and_no_delay() {
        for (from, to) in [(8000, 48000), (48000, 8000), (24000, 16000), (16000, 16000)] {
            // 1.234 s: not a whole number of frames.
            let n = from as usize * 1234 / 1000;
            let input = tone(from, 440.0, 10_000.0, n);
            let out = resample_all(&input, from, to).unwrap();
            assert_eq!(out.len(), n * to as usize / from as usize, "{from}->{to}");
            // No leading delay: the output is in phase with the input from the start.
            let expected = tone(to, 440.0, 10_000.0, out.len());
            let mid = &out[out.len() / 4..out.len() * 3 / 4];
            let exp_mid = &expected[out.len() / 4..out.len() * 3 / 4];
            let err: Vec<i16> = mid.iter().zip(exp_mid).map(|(a, b)| a - b).collect();
            assert!(
                rms(&err) < 0.01 * rms(exp_mid),
                "{from}->{to}: {}",
                rms(&err)
            );
        }
        assert!(resample_all(&[], 8000, 16000).unwrap().is_empty());
    }
}
