//! Prompt player: audio files (WAV, FLAC, MP3, Ogg/Vorbis) decoded once into mono PCM16 at a
//! leg's rate, cut into frames for the playout queue, and shared between calls by a cache.
//!
//! Decoding is blocking file I/O plus CPU work (a few ms per second of audio): async callers
//! run [`Prompt::load`] / [`PromptCache::get`] on a blocking thread. Decoding is strict: a file
//! whose container or any packet is damaged is refused with a [`PromptError`] rather than played
//! with holes, so a bad upload is caught when it is loaded, not heard on a call. (An MP3 without
//! a Xing/LAME length tag cut at a frame boundary cannot be told from a shorter file.)

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use thiserror::Error;

/// Longest prompt accepted, so a huge or hostile file cannot exhaust memory while decoding.
pub const MAX_PROMPT_SECONDS: u64 = 20 * 60;

/// Highest leg or source rate accepted.
const MAX_RATE: u32 = 384_000;

/// Why a prompt could not be loaded; every variant names the file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The file does not exist.
    #[error("prompt {}: file not found", path.display())]
    NotFound {
        /// The file asked for.
        path: PathBuf,
    },
    /// The file exists but could not be opened or read.
    #[error("prompt {}: cannot read: {source}", path.display())]
    Io {
        /// The file asked for.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The container or codec is not one we decode (or the file is not audio at all).
    #[error("prompt {}: unsupported format: {reason}", path.display())]
    Unsupported {
        /// The file asked for.
        path: PathBuf,
        /// What was not recognised.
        reason: String,
    },
    /// The file is truncated or corrupt.
    #[error("prompt {}: decode error: {reason}", path.display())]
    Decode {
        /// The file asked for.
        path: PathBuf,
        /// What the demuxer or decoder reported.
        reason: String,
    },
    /// The file decodes to no samples at all.
    #[error("prompt {}: contains no audio", path.display())]
    Empty {
        /// The file asked for.
        path: PathBuf,
    },
    /// The file is longer than [`MAX_PROMPT_SECONDS`].
    #[error("prompt {}: longer than {MAX_PROMPT_SECONDS} s", path.display())]
    TooLong {
        /// The file asked for.
        path: PathBuf,
    },
    /// The requested leg rate (or the file's own rate) is zero or absurdly high.
    #[error("prompt {}: unsupported sample rate {rate} Hz", path.display())]
    BadRate {
        /// The file asked for.
        path: PathBuf,
        /// The offending rate.
        rate: u32,
    },
    /// The resampler refused the conversion.
    #[error("prompt {}: resampling {from} Hz to {to} Hz failed: {reason}", path.display())]
    Resample {
        /// The file asked for.
        path: PathBuf,
        /// The file's rate.
        from: u32,
        /// The leg rate.
        to: u32,
        /// What rubato reported.
        reason: String,
    },
}

/// A decoded prompt: mono PCM16 at one leg rate, cheap to clone and share between calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Sample rate of `samples`, the rate of the legs this prompt is played on.
    rate: u32,
    /// The whole prompt, shared so that many calls playing it hold one copy.
    samples: Arc<[i16]>,
}

impl Prompt {
    /// Decodes an audio file, downmixes it to mono and resamples it to `rate` Hz.
    pub fn load(path: &Path, rate: u32) -> Result<Prompt, PromptError> {
        if rate == 0 || rate > MAX_RATE {
            return Err(PromptError::BadRate {
                path: path.to_path_buf(),
                rate,
            });
        }
        let (mono, source_rate) = decode_mono(path)?;
        if mono.is_empty() {
            return Err(PromptError::Empty {
                path: path.to_path_buf(),
            });
        }
        let resampled = if source_rate == rate {
            mono
        } else {
            resample(&mono, source_rate, rate).map_err(|reason| PromptError::Resample {
                path: path.to_path_buf(),
                from: source_rate,
                to: rate,
                reason,
            })?
        };
        let samples: Arc<[i16]> = resampled.iter().map(|&s| f32_to_i16(s)).collect();
        Ok(Prompt { rate, samples })
    }

    /// Wraps mono PCM16 that is already at `rate` Hz (e.g. TTS output or generated tones).
    pub fn from_pcm(samples: impl Into<Arc<[i16]>>, rate: u32) -> Prompt {
        Prompt {
            rate,
            samples: samples.into(),
        }
    }

    /// Sample rate of the prompt in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// All samples of the prompt.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Playing time of the prompt.
    pub fn duration(&self) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let n = self.samples.len() as u64;
        let rate = u64::from(self.rate);
        Duration::from_secs(n / rate) + Duration::from_nanos((n % rate) * 1_000_000_000 / rate)
    }

    /// Number of samples in one 20 ms frame at the prompt's rate.
    pub fn frame_samples_20ms(&self) -> usize {
        (self.rate / 50) as usize
    }

    /// The prompt cut into frames of `frame_samples`; the last frame is shorter (not padded) when
    /// the length is not a multiple, and `frame_samples == 0` yields nothing.
    pub fn frames(&self, frame_samples: usize) -> impl Iterator<Item = &[i16]> + '_ {
        let usable = if frame_samples == 0 {
            0
        } else {
            self.samples.len()
        };
        self.samples[..usable].chunks(frame_samples.max(1))
    }
}

/// Decoded prompts by file and rate, so many calls playing one file share one decode.
///
/// Concurrent first requests for the same file and rate wait for a single decode. Failures are
/// not cached (the next request tries again). Entries live until [`PromptCache::invalidate`] or
/// [`PromptCache::clear`]: the cache is meant for an operator-managed set of prompt files.
#[derive(Debug, Default)]
pub struct PromptCache {
    /// One slot per (path, rate); the slot's own lock serialises decoding of that key only.
    slots: Mutex<HashMap<(PathBuf, u32), Arc<CacheSlot>>>,
}

/// One cache entry: empty until the first successful decode.
#[derive(Debug, Default)]
struct CacheSlot(Mutex<Option<Arc<Prompt>>>);

impl PromptCache {
    /// An empty cache.
    pub fn new() -> PromptCache {
        PromptCache::default()
    }

    /// The prompt for `path` at `rate`, decoding it on first use.
    pub fn get(&self, path: &Path, rate: u32) -> Result<Arc<Prompt>, PromptError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(slots.entry((path.to_path_buf(), rate)).or_default())
        };
        let mut entry = slot.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(prompt) = entry.as_ref() {
            return Ok(Arc::clone(prompt));
        }
        let prompt = Arc::new(Prompt::load(path, rate)?);
        *entry = Some(Arc::clone(&prompt));
        Ok(prompt)
    }

    /// Forgets every rate of `path`, e.g. after the file was replaced.
    pub fn invalidate(&self, path: &Path) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.retain(|(p, _), _| p != path);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Number of (file, rate) entries, including ones whose decode failed or is in progress.
    pub fn len(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decodes the first audio track of `path` into mono f32 samples at the file's own rate.
fn decode_mono(path: &Path) -> Result<(Vec<f32>, u32), PromptError> {
    let file = File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => PromptError::NotFound {
            path: path.to_path_buf(),
        },
        _ => PromptError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let sym_err = |e: SymError| classify(path, e);
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(sym_err)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| PromptError::Unsupported {
            path: path.to_path_buf(),
            reason: "no audio track".into(),
        })?;
    let track_id = track.id;
    // Containers that state their length let us tell a truncated file from a short one.
    let expected_frames = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| PromptError::Unsupported {
            path: path.to_path_buf(),
            reason: "not an audio codec".into(),
        })?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| PromptError::Unsupported {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;

    let mut mono: Vec<f32> = Vec::new();
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut source_rate: Option<u32> = None;
    let mut max_samples = usize::MAX;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A chained Ogg stream starts a new logical stream: the prompt is the first one.
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(sym_err(e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = decoder.decode(&packet).map_err(sym_err)?;
        if buf.frames() == 0 {
            continue;
        }
        let rate = buf.spec().rate();
        match source_rate {
            None => {
                if rate == 0 || rate > MAX_RATE {
                    return Err(PromptError::BadRate {
                        path: path.to_path_buf(),
                        rate,
                    });
                }
                source_rate = Some(rate);
                max_samples = (MAX_PROMPT_SECONDS as usize).saturating_mul(rate as usize);
            }
            Some(r) if r != rate => {
                return Err(PromptError::Decode {
                    path: path.to_path_buf(),
                    reason: format!("sample rate changes from {r} Hz to {rate} Hz"),
                });
            }
            Some(_) => {}
        }
        buf.copy_to_vecs_planar::<f32>(&mut planes);
        downmix_into(&planes, buf.frames(), &mut mono);
        if mono.len() > max_samples {
            return Err(PromptError::TooLong {
                path: path.to_path_buf(),
            });
        }
    }
    if let Some(expected) = expected_frames
        && (mono.len() as u64) < expected
    {
        return Err(PromptError::Decode {
            path: path.to_path_buf(),
            reason: format!("truncated: {} of {expected} frames present", mono.len()),
        });
    }
    Ok((mono, source_rate.unwrap_or(0)))
}

/// Maps a symphonia error to ours: unsupported stays unsupported, anything else is corruption.
fn classify(path: &Path, err: SymError) -> PromptError {
    let path = path.to_path_buf();
    match err {
        SymError::Unsupported(what) => PromptError::Unsupported {
            path,
            reason: what.into(),
        },
        SymError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => PromptError::Decode {
            path,
            reason: "truncated (unexpected end of file)".into(),
        },
        SymError::IoError(source) => PromptError::Io { path, source },
        SymError::LimitError(what) => PromptError::Decode {
            path,
            reason: format!("limit reached: {what}"),
        },
        other => PromptError::Decode {
            path,
            reason: other.to_string(),
        },
    }
}

/// Appends the average of `planes` (first `frames` samples of each) to `out`.
fn downmix_into(planes: &[Vec<f32>], frames: usize, out: &mut Vec<f32>) {
    let Some(first) = planes.first() else { return };
    let frames = planes.iter().map(Vec::len).min().unwrap_or(0).min(frames);
    if planes.len() == 1 {
        out.extend_from_slice(&first[..frames]);
        return;
    }
    let scale = 1.0 / planes.len() as f32;
    out.extend((0..frames).map(|i| planes.iter().map(|p| p[i]).sum::<f32>() * scale));
}

/// One-shot resample of a whole mono clip (delay trimmed, length = ceil(len * ratio)).
fn resample(mono: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| e.to_string())?;
    let input = InterleavedSlice::new(mono, 1, mono.len()).map_err(|e| e.to_string())?;
    let out = resampler
        .process_all(&input, mono.len(), None)
        .map_err(|e| e.to_string())?;
    Ok(out.take_data())
}

/// Converts a float sample in [-1, 1) to PCM16, clipping out-of-range values.
fn f32_to_i16(s: f32) -> i16 {
    let scaled = (s * 32768.0).round();
    if scaled.is_nan() {
        0
    } else {
        scaled.clamp(-32768.0, 32767.0) as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Amplitude of the generated test tones (half of full scale, -6 dBFS).
    const AMP: f64 = 0.5;
    const TONE_HZ: f64 = 1000.0;

    /// Path to a command-line tool, failing the test loudly when it is missing.
    fn tool(name: &str) -> PathBuf {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {name}"))
            .output();
        match out {
            Ok(o) if o.status.success() => {
                PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string())
            }
            _ => panic!(
                "`{name}` is required by this test but is not installed; \
                 run scripts/setup.sh (Debian packages sox, libsox-fmt-mp3, lame)"
            ),
        }
    }

    /// Runs sox to synthesise a 1 kHz tone file; the format follows the file extension.
    fn sox_tone(path: &Path, rate: u32, channels: u32, seconds: f64) {
        let sox = tool("sox");
        let status = Command::new(sox)
            .args(["-n", "-r", &rate.to_string(), "-c", &channels.to_string()])
            .arg(path)
            .args(["synth", &seconds.to_string(), "sine", &TONE_HZ.to_string()])
            .args(["vol", &AMP.to_string()])
            .status()
            .expect("run sox");
        assert!(status.success(), "sox failed to write {}", path.display());
    }

    /// Writes a PCM16 WAV tone with hound; `right_amp` scales the right channel.
    fn wav_tone(path: &Path, rate: u32, channels: u16, seconds: f64, right_amp: f64) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).expect("create wav");
        let n = (seconds * f64::from(rate)).round() as usize;
        for i in 0..n {
            let v = AMP * (2.0 * std::f64::consts::PI * TONE_HZ * i as f64 / f64::from(rate)).sin();
            w.write_sample((v * 32767.0) as i16).expect("write");
            if channels == 2 {
                w.write_sample((v * right_amp * 32767.0) as i16)
                    .expect("write");
            }
        }
        w.finalize().expect("finalize wav");
    }

    /// Share of the signal's energy at `freq` (Goertzel power over total power, in 0..=1).
    fn tone_share(samples: &[i16], rate: u32, freq: f64) -> f64 {
        let n = samples.len() as f64;
        let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in samples {
            let s0 = f64::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        let energy: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
        // A pure tone of energy E gives Goertzel power E * n / 2.
        power / (energy * n / 2.0)
    }

    /// RMS level relative to full scale.
    fn rms(samples: &[i16]) -> f64 {
        let e: f64 = samples
            .iter()
            .map(|&x| (f64::from(x) / 32768.0).powi(2))
            .sum();
        (e / samples.len() as f64).sqrt()
    }

    /// Checks a loaded 1 s tone: rate, length (within `slack_ms`), frequency and level.
    fn check_tone(prompt: &Prompt, rate: u32, slack_ms: f64, what: &str) {
        assert_eq!(prompt.rate(), rate);
        let got_ms = prompt.samples().len() as f64 * 1000.0 / f64::from(rate);
        assert!(
            (got_ms - 1000.0).abs() <= 20.0 + slack_ms,
            "{what} @ {rate}: {got_ms} ms"
        );
        // Skip the edges, where codecs and the resampler ramp.
        let edge = (rate / 20) as usize;
        let body = &prompt.samples()[edge..prompt.samples().len() - edge];
        let share = tone_share(body, rate, TONE_HZ);
        assert!(share > 0.95, "{what} @ {rate}: 1 kHz share {share}");
        let off = tone_share(body, rate, 1500.0);
        assert!(off < 0.01, "{what} @ {rate}: 1.5 kHz share {off}");
        let level = rms(body);
        let want = AMP / 2f64.sqrt();
        assert!(
            (level / want - 1.0).abs() < 0.06,
            "{what} @ {rate}: rms {level}, want {want}"
        );
    }

    #[test]
    fn wav_44k1_stereo_to_8k_and_16k_mono() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        wav_tone(&path, 44_100, 2, 1.0, 1.0);
        for rate in [8000, 16000] {
            let p = Prompt::load(&path, rate).unwrap();
            check_tone(&p, rate, 0.0, "wav");
            assert_eq!(p.samples().len(), rate as usize, "wav length is exact");
        }
    }

    #[test]
    fn stereo_is_averaged_not_summed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("left-only.wav");
        wav_tone(&path, 8000, 2, 0.5, 0.0);
        let p = Prompt::load(&path, 8000).unwrap();
        let level = rms(&p.samples()[400..3600]);
        let want = AMP / 2.0 / 2f64.sqrt();
        assert!(
            (level / want - 1.0).abs() < 0.02,
            "rms {level}, want {want}"
        );
    }

    #[test]
    fn flac_48k_to_8k_and_16k() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.flac");
        sox_tone(&path, 48_000, 2, 1.0);
        for rate in [8000, 16000] {
            check_tone(&Prompt::load(&path, rate).unwrap(), rate, 0.0, "flac");
        }
    }

    #[test]
    fn mp3_to_8k_and_16k() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.mp3");
        sox_tone(&path, 44_100, 2, 1.0);
        for rate in [8000, 16000] {
            // Without a gapless tag MP3 adds up to two granules of delay and padding.
            check_tone(
                &Prompt::load(&path, rate).unwrap(),
                rate,
                2.0 * 1152.0 / 44.1,
                "mp3",
            );
        }
    }

    #[test]
    fn ogg_vorbis_to_8k_and_16k() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.ogg");
        sox_tone(&path, 48_000, 2, 1.0);
        for rate in [8000, 16000] {
            check_tone(
                &Prompt::load(&path, rate).unwrap(),
                rate,
                2048.0 / 48.0,
                "ogg",
            );
        }
    }

    #[test]
    fn mono_at_leg_rate_is_not_resampled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mono8k.wav");
        wav_tone(&path, 8000, 1, 0.1, 1.0);
        let p = Prompt::load(&path, 8000).unwrap();
        let reader = hound::WavReader::open(&path).unwrap();
        let want: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(p.samples(), &want[..]);
    }

    #[test]
    fn missing_file_is_not_found() {
        let err = Prompt::load(Path::new("/nonexistent/prompt.wav"), 8000).unwrap_err();
        assert!(matches!(err, PromptError::NotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "prompt /nonexistent/prompt.wav: file not found"
        );
    }

    #[test]
    fn non_audio_file_is_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.wav");
        std::fs::write(
            &path,
            b"this is not audio at all, just some text\n".repeat(50),
        )
        .unwrap();
        let err = Prompt::load(&path, 8000).unwrap_err();
        assert!(matches!(err, PromptError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("notes.wav"), "{err}");
    }

    #[test]
    fn truncated_files_give_decode_errors() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("tone.wav");
        wav_tone(&wav, 44_100, 2, 1.0, 1.0);
        let flac = dir.path().join("tone.flac");
        sox_tone(&flac, 48_000, 2, 1.0);
        let ogg = dir.path().join("tone.ogg");
        sox_tone(&ogg, 48_000, 2, 1.0);
        for src in [&wav, &flac, &ogg] {
            let bytes = std::fs::read(src).unwrap();
            let cut = dir.path().join(format!(
                "cut-{}",
                src.file_name().unwrap().to_str().unwrap()
            ));
            std::fs::write(&cut, &bytes[..bytes.len() / 2 + 3]).unwrap();
            let err = Prompt::load(&cut, 8000).unwrap_err();
            assert!(
                matches!(err, PromptError::Decode { .. }),
                "{}: {err:?}",
                cut.display()
            );
            assert!(err.to_string().contains("cut-"), "{err}");
        }
    }

    #[test]
    fn truncated_mp3_with_length_tag_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("tone.wav");
        wav_tone(&wav, 44_100, 2, 1.0, 1.0);
        let mp3 = dir.path().join("tone.mp3");
        let status = Command::new(tool("lame"))
            .arg("--quiet")
            .arg(&wav)
            .arg(&mp3)
            .status();
        assert!(status.expect("run lame").success(), "lame failed");
        // LAME's Info tag carries the exact length, so gapless trimming gives exactly 1 s.
        assert_eq!(Prompt::load(&mp3, 8000).unwrap().samples().len(), 8000);
        let bytes = std::fs::read(&mp3).unwrap();
        let cut = dir.path().join("cut.mp3");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = Prompt::load(&cut, 8000).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn header_only_wav_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("tone.wav");
        wav_tone(&wav, 8000, 1, 1.0, 1.0);
        let bytes = std::fs::read(&wav).unwrap();
        for len in [0, 10, 30, 44] {
            let cut = dir.path().join(format!("cut{len}.wav"));
            std::fs::write(&cut, &bytes[..len]).unwrap();
            let err = Prompt::load(&cut, 8000).unwrap_err();
            assert!(
                !matches!(err, PromptError::NotFound { .. }),
                "{len}: {err:?}"
            );
        }
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = Vec::new();
        for (name, rate) in [("t.flac", 48_000), ("t.mp3", 44_100), ("t.ogg", 48_000)] {
            let p = dir.path().join(name);
            sox_tone(&p, rate, 1, 0.3);
            sources.push(p);
        }
        let wav = dir.path().join("t.wav");
        wav_tone(&wav, 44_100, 2, 0.3, 1.0);
        sources.push(wav);
        let mut x: u32 = 12345;
        for src in &sources {
            let bytes = std::fs::read(src).unwrap();
            for round in 0..20 {
                let mut b = bytes.clone();
                for _ in 0..(1 + round) {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let i = (x as usize >> 8) % b.len();
                    b[i] ^= (x >> 3) as u8 | 1;
                }
                let p = dir.path().join(format!(
                    "c{round}.{}",
                    src.extension().unwrap().to_str().unwrap()
                ));
                std::fs::write(&p, &b).unwrap();
                // Either outcome is fine; what matters is no panic and no hang.
                let _ = Prompt::load(&p, 8000);
            }
        }
    }

    #[test]
    fn bad_rate_is_rejected() {
        let err = Prompt::load(Path::new("/whatever.wav"), 0).unwrap_err();
        assert!(
            matches!(err, PromptError::BadRate { rate: 0, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn frames_last_is_shorter() {
        let p = Prompt::from_pcm((0..350).map(|i| i as i16).collect::<Vec<_>>(), 8000);
        assert_eq!(p.frame_samples_20ms(), 160);
        let frames: Vec<&[i16]> = p.frames(160).collect();
        assert_eq!(
            frames.iter().map(|f| f.len()).collect::<Vec<_>>(),
            [160, 160, 30]
        );
        assert_eq!(frames[2][0], 320);
        assert_eq!(p.frames(0).count(), 0);
        assert_eq!(p.duration(), Duration::from_micros(43_750));
        assert_eq!(Prompt::from_pcm(Vec::new(), 8000).frames(160).count(), 0);
    }

    #[test]
    fn cache_shares_one_decode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        wav_tone(&path, 16_000, 1, 0.2, 1.0);
        let cache = Arc::new(PromptCache::new());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (cache, path) = (Arc::clone(&cache), path.clone());
                std::thread::spawn(move || cache.get(&path, 8000).unwrap())
            })
            .collect();
        let got: Vec<Arc<Prompt>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(got.iter().all(|p| Arc::ptr_eq(p, &got[0])));
        let wide = cache.get(&path, 16_000).unwrap();
        assert!(!Arc::ptr_eq(&wide, &got[0]));
        assert_eq!(wide.rate(), 16_000);
        assert_eq!(cache.len(), 2);
        cache.invalidate(&path);
        assert!(cache.is_empty());
        let again = cache.get(&path, 8000).unwrap();
        assert!(!Arc::ptr_eq(&again, &got[0]));
        assert_eq!(*again, *got[0]);
    }

    #[test]
    fn cache_does_not_keep_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later.wav");
        let cache = PromptCache::new();
        assert!(matches!(
            cache.get(&path, 8000),
            Err(PromptError::NotFound { .. })
        ));
        wav_tone(&path, 8000, 1, 0.1, 1.0);
        assert_eq!(cache.get(&path, 8000).unwrap().samples().len(), 800);
    }
}
