//! Call recorder: a two-channel PCM16 WAV per call, left = caller, right = agent (our side),
//! time-aligned to the media worker's 20 ms ticks.
//!
//! The media worker calls [`Recorder::push`] once per tick with whatever each side produced;
//! ticks it skips and `None` frames become silence, so both channels always stay on the call's
//! timeline. Samples are buffered and handed to the [`RecordingSink`] about once a second. The
//! WAV header is reserved at creation with "unknown length" sizes (readable by tolerant tools if
//! the process dies) and replaced by the exact one in [`Recorder::finish`]; dropping a recorder
//! finishes it too, ignoring errors. Writes are blocking (one ~32-64 KB write per second).

use std::time::Duration;

use thiserror::Error;

use super::storage::{RecordingSink, RecordingStorage, StorageError};

/// Length of the canonical PCM WAV header this recorder writes.
pub const WAV_HEADER_LEN: usize = 44;

/// Channels in a recording: caller (left) and agent (right).
const CHANNELS: u16 = 2;

/// Bytes per sample frame (two channels of PCM16).
const FRAME_BYTES: usize = 2 * CHANNELS as usize;

/// Ticks buffered before a write to storage (one second of audio).
const FLUSH_TICKS: usize = 50;

/// Largest data chunk a WAV header can describe, rounded down to whole sample frames.
const MAX_DATA_BYTES: u64 = (u32::MAX as u64 - 36) / FRAME_BYTES as u64 * FRAME_BYTES as u64;

/// Why recording failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// The rate does not divide into 20 ms frames.
    #[error("recording rate {0} Hz is not a positive multiple of 50 Hz")]
    BadRate(u32),
    /// The storage backend failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The recording would exceed the 4 GiB a WAV file can describe.
    #[error("recording {key:?} reached the WAV size limit")]
    TooLong {
        /// The recording's key.
        key: String,
    },
    /// An earlier write failed; nothing more is written so the file stays time-aligned.
    #[error("recording {key:?} stopped after an earlier storage error")]
    Broken {
        /// The recording's key.
        key: String,
    },
}

/// What a finished recording is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordingInfo {
    /// Storage key of the file.
    pub key: String,
    /// Playing time.
    pub duration: Duration,
    /// File size, header included.
    pub bytes: u64,
    /// Sample rate of both channels.
    pub sample_rate: u32,
    /// Frames dropped because their tick was already written.
    pub late_frames: u64,
}

/// Records one call as a stereo WAV; see the module docs for the timing rules.
pub struct Recorder {
    /// Open sink; `None` once finished.
    sink: Option<Box<dyn RecordingSink>>,
    /// Storage key, for errors and the final info.
    key: String,
    /// Sample rate of both channels.
    sample_rate: u32,
    /// Samples per channel in one 20 ms tick.
    frame_samples: usize,
    /// The first tick not yet written; earlier ticks are late.
    next_tick: u64,
    /// Interleaved little-endian samples waiting to be written.
    buf: Vec<u8>,
    /// Body bytes written or buffered; bounded by [`MAX_DATA_BYTES`].
    body_bytes: u64,
    /// Body bytes the sink accepted, which is what the final header describes.
    flushed_bytes: u64,
    /// Channel frames dropped as late.
    late_frames: u64,
    /// Set after a storage error; later pushes are refused.
    broken: bool,
}

impl Recorder {
    /// Starts recording under `key` at `sample_rate` (the leg rate, e.g. 8000 or 16000).
    pub fn create(
        storage: &dyn RecordingStorage,
        key: &str,
        sample_rate: u32,
    ) -> Result<Recorder, RecorderError> {
        if sample_rate == 0 || !sample_rate.is_multiple_of(50) {
            return Err(RecorderError::BadRate(sample_rate));
        }
        let sink = storage.create(key, &wav_header(sample_rate, CHANNELS, u32::MAX))?;
        let frame_samples = (sample_rate / 50) as usize;
        Ok(Recorder {
            sink: Some(sink),
            key: key.to_string(),
            sample_rate,
            frame_samples,
            next_tick: 0,
            buf: Vec::with_capacity(FLUSH_TICKS * frame_samples * FRAME_BYTES),
            body_bytes: 0,
            flushed_bytes: 0,
            late_frames: 0,
            broken: false,
        })
    }

    /// Records tick `tick` (counted from the call's start): `None` or a skipped tick is silence,
    /// short frames are padded with silence, extra samples are ignored, and frames for a tick
    /// already written are dropped and counted in [`Recorder::late_frames`].
    pub fn push(
        &mut self,
        tick: u64,
        caller: Option<&[i16]>,
        agent: Option<&[i16]>,
    ) -> Result<(), RecorderError> {
        if self.broken || self.sink.is_none() {
            return Err(RecorderError::Broken {
                key: self.key.clone(),
            });
        }
        if tick < self.next_tick {
            self.late_frames += u64::from(caller.is_some()) + u64::from(agent.is_some());
            return Ok(());
        }
        let tick_bytes = (self.frame_samples * FRAME_BYTES) as u64;
        let needed = (tick - self.next_tick)
            .saturating_add(1)
            .saturating_mul(tick_bytes);
        if self.body_bytes.saturating_add(needed) > MAX_DATA_BYTES {
            return Err(RecorderError::TooLong {
                key: self.key.clone(),
            });
        }
        let flush_ticks = FLUSH_TICKS as u64;
        while self.next_tick < tick {
            // Silence goes through the buffer a second at most at a time, whatever the gap.
            let buffered_ticks = self.buf.len() as u64 / tick_bytes;
            let n = (tick - self.next_tick).min(flush_ticks.saturating_sub(buffered_ticks).max(1));
            self.buf
                .resize(self.buf.len() + (n * tick_bytes) as usize, 0);
            self.next_tick += n;
            self.body_bytes += n * tick_bytes;
            self.flush_if_full()?;
        }
        let caller = caller.unwrap_or(&[]);
        let agent = agent.unwrap_or(&[]);
        for i in 0..self.frame_samples {
            self.buf
                .extend_from_slice(&caller.get(i).copied().unwrap_or(0).to_le_bytes());
            self.buf
                .extend_from_slice(&agent.get(i).copied().unwrap_or(0).to_le_bytes());
        }
        self.next_tick = tick + 1;
        self.body_bytes += tick_bytes;
        self.flush_if_full()
    }

    /// Writes buffered audio to storage now.
    pub fn flush(&mut self) -> Result<(), RecorderError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(sink) = self.sink.as_mut() else {
            return Err(RecorderError::Broken {
                key: self.key.clone(),
            });
        };
        if self.broken {
            return Err(RecorderError::Broken {
                key: self.key.clone(),
            });
        }
        match sink.write(&self.buf) {
            Ok(()) => {
                self.flushed_bytes += self.buf.len() as u64;
                self.buf.clear();
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                self.buf.clear();
                Err(e.into())
            }
        }
    }

    /// Writes the rest and the final header and makes the recording visible under its key.
    ///
    /// After a storage error the file is still finished (describing what was written) when the
    /// backend allows, and the first error is returned.
    pub fn finish(mut self) -> Result<RecordingInfo, RecorderError> {
        self.finalize()
    }

    /// The storage key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Sample rate of both channels.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Recorded time so far, buffered audio included.
    pub fn duration(&self) -> Duration {
        bytes_to_duration(self.body_bytes, self.sample_rate)
    }

    /// Channel frames dropped because their tick was already written.
    pub fn late_frames(&self) -> u64 {
        self.late_frames
    }

    /// Flushes when a second of audio is buffered.
    fn flush_if_full(&mut self) -> Result<(), RecorderError> {
        if self.buf.len() >= FLUSH_TICKS * self.frame_samples * FRAME_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Shared by `finish` and `Drop`: flush, final header, hand over to storage.
    fn finalize(&mut self) -> Result<RecordingInfo, RecorderError> {
        let flushed = if self.broken { Ok(()) } else { self.flush() };
        let Some(sink) = self.sink.take() else {
            return Err(RecorderError::Broken {
                key: self.key.clone(),
            });
        };
        // The header sizes were checked against MAX_DATA_BYTES on every push.
        let data = u32::try_from(self.flushed_bytes).unwrap_or(u32::MAX);
        let bytes = sink.finish(&wav_header(self.sample_rate, CHANNELS, data))?;
        flushed?;
        if self.broken {
            return Err(RecorderError::Broken {
                key: self.key.clone(),
            });
        }
        Ok(RecordingInfo {
            key: self.key.clone(),
            duration: bytes_to_duration(self.flushed_bytes, self.sample_rate),
            bytes,
            sample_rate: self.sample_rate,
            late_frames: self.late_frames,
        })
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.sink.is_some() {
            let _ = self.finalize();
        }
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("key", &self.key)
            .field("sample_rate", &self.sample_rate)
            .field("next_tick", &self.next_tick)
            .field("body_bytes", &self.body_bytes)
            .field("late_frames", &self.late_frames)
            .field("broken", &self.broken)
            .field("finished", &self.sink.is_none())
            .finish()
    }
}

/// A canonical 44-byte PCM16 WAV header; `data_bytes = u32::MAX` means "length unknown".
pub fn wav_header(sample_rate: u32, channels: u16, data_bytes: u32) -> [u8; WAV_HEADER_LEN] {
    let block_align = channels.saturating_mul(2);
    let byte_rate = sample_rate.saturating_mul(u32::from(block_align));
    let mut h = [0u8; WAV_HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_bytes.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// Playing time of `bytes` of stereo PCM16 body at `rate`.
fn bytes_to_duration(bytes: u64, rate: u32) -> Duration {
    let frames = bytes / FRAME_BYTES as u64;
    let rate = u64::from(rate.max(1));
    Duration::from_secs(frames / rate)
        + Duration::from_nanos((frames % rate) * 1_000_000_000 / rate)
}

#[cfg(test)]
mod tests {
    use super::super::storage::FsStorage;
    use super::*;
    use std::io::Read;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    const AMP: f64 = 8000.0;

    /// Frame `tick` of a continuous sine at `freq` Hz.
    fn tone(tick: u64, rate: u32, freq: f64) -> Vec<i16> {
        let n = (rate / 50) as u64;
        (tick * n..(tick + 1) * n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (AMP * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect()
    }

    /// Goertzel power share at `freq` (1.0 = a pure tone at `freq`).
    fn share(samples: &[i16], rate: u32, freq: f64) -> f64 {
        let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / f64::from(rate)).cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in samples {
            let s0 = f64::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        let energy: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
        if energy == 0.0 {
            0.0
        } else {
            power / (energy * samples.len() as f64 / 2.0)
        }
    }

    /// Reads a stereo WAV back into (left, right, spec).
    fn read_wav(path: &Path) -> (Vec<i16>, Vec<i16>, hound::WavSpec) {
        let reader = hound::WavReader::open(path).unwrap();
        let spec = reader.spec();
        let all: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
        let left = all.iter().step_by(2).copied().collect();
        let right = all.iter().skip(1).step_by(2).copied().collect();
        (left, right, spec)
    }

    /// 3 s call: caller talks 0-1.2 s, nothing at all arrives 1.2-1.8 s, agent talks 1.8-3 s,
    /// and the caller's channel is `None` while the agent talks.
    fn record_call(storage: &FsStorage, key: &str, rate: u32) -> Recorder {
        let mut rec = Recorder::create(storage, key, rate).unwrap();
        for tick in 0..150u64 {
            match tick {
                0..60 => rec
                    .push(tick, Some(&tone(tick, rate, 1000.0)), None)
                    .unwrap(),
                60..90 => {}
                _ => rec
                    .push(tick, None, Some(&tone(tick, rate, 600.0)))
                    .unwrap(),
            }
        }
        rec
    }

    #[test]
    fn three_seconds_with_a_gap_read_back_aligned() {
        for rate in [8000u32, 16000] {
            let dir = tempfile::tempdir().unwrap();
            let storage = FsStorage::new(dir.path());
            let rec = record_call(&storage, "calls/c1.wav", rate);
            assert_eq!(rec.duration(), Duration::from_secs(3));
            let info = rec.finish().unwrap();
            let n = rate as usize * 3;
            assert_eq!(info.duration, Duration::from_secs(3));
            assert_eq!(info.bytes, (WAV_HEADER_LEN + n * 4) as u64);
            assert_eq!(info.sample_rate, rate);
            let (left, right, spec) = read_wav(&dir.path().join("calls/c1.wav"));
            assert_eq!(
                (spec.channels, spec.sample_rate, spec.bits_per_sample),
                (2, rate, 16)
            );
            assert_eq!((left.len(), right.len()), (n, n));
            let s = |ms: usize| ms * rate as usize / 1000;
            let talk = &left[..s(1200)];
            assert!(share(talk, rate, 1000.0) > 0.99, "caller tone on the left");
            assert_eq!(talk, &tone_run(0, 60, rate, 1000.0)[..]);
            assert!(
                right[..s(1800)].iter().all(|&x| x == 0),
                "agent silent until 1.8 s"
            );
            assert!(
                left[s(1200)..].iter().all(|&x| x == 0),
                "caller silent after 1.2 s"
            );
            let agent = &right[s(1800)..];
            assert!(share(agent, rate, 600.0) > 0.99, "agent tone on the right");
            assert!(
                share(agent, rate, 1000.0) < 0.001,
                "no caller tone on the right"
            );
            assert_eq!(agent, &tone_run(90, 150, rate, 600.0)[..]);
            assert!(!dir.path().join("calls/c1.wav.part").exists());
        }
    }

    /// Ticks `from..to` of a tone, concatenated.
    fn tone_run(from: u64, to: u64, rate: u32, freq: f64) -> Vec<i16> {
        (from..to).flat_map(|t| tone(t, rate, freq)).collect()
    }

    #[test]
    fn dropped_recorder_still_yields_a_wav() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        drop(record_call(&storage, "dropped.wav", 8000));
        let (left, right, spec) = read_wav(&dir.path().join("dropped.wav"));
        assert_eq!(spec.channels, 2);
        assert_eq!((left.len(), right.len()), (24_000, 24_000));
        assert!(!dir.path().join("dropped.wav.part").exists());
    }

    #[test]
    fn only_a_part_file_exists_while_recording() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let mut rec = record_call(&storage, "live.wav", 8000);
        rec.push(150, Some(&[3; 160]), None).unwrap();
        let part = dir.path().join("live.wav.part");
        // Three whole seconds were flushed, the last tick is still buffered; the provisional
        // header says "unknown length".
        let bytes = std::fs::read(&part).unwrap();
        assert_eq!(bytes.len(), WAV_HEADER_LEN + 3 * 8000 * 4);
        assert_eq!(&bytes[40..44], &u32::MAX.to_le_bytes());
        assert!(!dir.path().join("live.wav").exists());
        assert!(storage.open("live.wav").is_err());
        rec.finish().unwrap();
        assert!(!part.exists());
        let mut back = Vec::new();
        storage
            .open("live.wav")
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back.len(), WAV_HEADER_LEN + 151 * 160 * 4);
    }

    #[test]
    fn late_frames_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let mut rec = Recorder::create(&storage, "late.wav", 8000).unwrap();
        let loud = [1000i16; 160];
        rec.push(5, Some(&loud), Some(&loud)).unwrap();
        rec.push(5, Some(&loud), None).unwrap();
        rec.push(2, None, Some(&loud)).unwrap();
        rec.push(3, None, None).unwrap();
        assert_eq!(rec.late_frames(), 2);
        rec.push(6, Some(&[7; 10]), Some(&[9; 400])).unwrap();
        let info = rec.finish().unwrap();
        assert_eq!(info.late_frames, 2);
        assert_eq!(info.duration, Duration::from_millis(140));
        let (left, right, _) = read_wav(&dir.path().join("late.wav"));
        assert_eq!(left.len(), 7 * 160);
        assert!(left[..800].iter().chain(&right[..800]).all(|&x| x == 0));
        assert!(
            left[800..960]
                .iter()
                .chain(&right[800..960])
                .all(|&x| x == 1000)
        );
        assert!(left[960..970].iter().all(|&x| x == 7), "short frame kept");
        assert!(left[970..].iter().all(|&x| x == 0), "short frame padded");
        assert!(
            right[960..].iter().all(|&x| x == 9),
            "long frame cut to 160"
        );
    }

    #[test]
    fn long_gap_is_written_in_bounded_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let mut rec = Recorder::create(&storage, "gap.wav", 16000).unwrap();
        rec.push(0, Some(&[1; 320]), None).unwrap();
        rec.push(500, None, Some(&[2; 320])).unwrap();
        assert!(rec.buf.capacity() <= 2 * FLUSH_TICKS * 320 * FRAME_BYTES);
        let info = rec.finish().unwrap();
        assert_eq!(info.duration, Duration::from_millis(501 * 20));
        let (left, right, _) = read_wav(&dir.path().join("gap.wav"));
        assert_eq!(right.len(), 501 * 320);
        assert!(
            left[320..]
                .iter()
                .chain(&right[..500 * 320])
                .all(|&x| x == 0)
        );
        assert!(right[500 * 320..].iter().all(|&x| x == 2));
    }

    #[test]
    fn absurd_tick_is_refused_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let mut rec = Recorder::create(&storage, "huge.wav", 8000).unwrap();
        let err = rec.push(u64::MAX, None, None).unwrap_err();
        assert!(matches!(err, RecorderError::TooLong { .. }), "{err:?}");
        let err = rec.push(1 << 40, None, None).unwrap_err();
        assert!(matches!(err, RecorderError::TooLong { .. }), "{err:?}");
        rec.push(0, Some(&[1; 160]), None).unwrap();
        assert_eq!(rec.finish().unwrap().duration, Duration::from_millis(20));
    }

    #[test]
    fn bad_rates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        for rate in [0, 8001, 44_110] {
            assert!(matches!(
                Recorder::create(&storage, "r.wav", rate),
                Err(RecorderError::BadRate(_))
            ));
        }
        assert!(matches!(
            Recorder::create(&storage, "../r.wav", 8000),
            Err(RecorderError::Storage(StorageError::InvalidKey { .. }))
        ));
    }

    #[test]
    fn header_matches_hound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..100 {
            w.write_sample(i as i16).unwrap();
        }
        w.finalize().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..WAV_HEADER_LEN], &wav_header(16000, 2, 200));
    }

    /// What a [`FlakySink`] received.
    #[derive(Default)]
    struct SinkLog {
        /// Body bytes accepted.
        body: Vec<u8>,
        /// Header passed to `finish`.
        header: Option<Vec<u8>>,
    }

    /// In-memory backend that fails writes after `fail_after` body bytes.
    struct FlakyStorage {
        /// What the sink received: (body, final header).
        log: Arc<Mutex<SinkLog>>,
        /// Body bytes accepted before writes fail.
        fail_after: usize,
    }

    struct FlakySink {
        log: Arc<Mutex<SinkLog>>,
        fail_after: usize,
    }

    impl RecordingStorage for FlakyStorage {
        fn create(&self, _: &str, _: &[u8]) -> Result<Box<dyn RecordingSink>, StorageError> {
            Ok(Box::new(FlakySink {
                log: Arc::clone(&self.log),
                fail_after: self.fail_after,
            }))
        }
        fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, StorageError> {
            Err(StorageError::NotFound { key: key.into() })
        }
        fn delete(&self, key: &str) -> Result<(), StorageError> {
            Err(StorageError::NotFound { key: key.into() })
        }
    }

    impl RecordingSink for FlakySink {
        fn key(&self) -> &str {
            "flaky"
        }
        fn write(&mut self, body: &[u8]) -> Result<(), StorageError> {
            let mut log = self.log.lock().unwrap();
            if log.body.len() + body.len() > self.fail_after {
                let source = std::io::Error::other("disk full");
                return Err(StorageError::Io {
                    key: "flaky".into(),
                    op: "write",
                    source,
                });
            }
            log.body.extend_from_slice(body);
            Ok(())
        }
        fn finish(self: Box<Self>, header: &[u8]) -> Result<u64, StorageError> {
            let mut log = self.log.lock().unwrap();
            log.header = Some(header.to_vec());
            Ok((log.body.len() + header.len()) as u64)
        }
        fn abort(self: Box<Self>) -> Result<(), StorageError> {
            Ok(())
        }
    }

    #[test]
    fn storage_failure_stops_recording_and_finishes_what_was_written() {
        let log = Arc::new(Mutex::new(SinkLog::default()));
        let storage = FlakyStorage {
            log: Arc::clone(&log),
            fail_after: 8000 * 4 + 100,
        };
        let mut rec = Recorder::create(&storage, "flaky", 8000).unwrap();
        let mut first_err = None;
        for tick in 0..150 {
            if let Err(e) = rec.push(tick, Some(&[5; 160]), None) {
                first_err.get_or_insert(tick);
                assert!(matches!(
                    e,
                    RecorderError::Storage(_) | RecorderError::Broken { .. }
                ));
            }
        }
        assert_eq!(first_err, Some(99), "the second one-second flush fails");
        assert!(matches!(rec.finish(), Err(RecorderError::Broken { .. })));
        let log = log.lock().unwrap();
        assert_eq!(log.body.len(), 8000 * 4);
        assert_eq!(
            log.header.as_deref(),
            Some(&wav_header(8000, 2, 8000 * 4)[..])
        );
    }
}
