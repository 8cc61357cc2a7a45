//! Call recorder: one two-channel file per call, left = caller, right = agent (our side),
//! time-aligned to the media worker's 20 ms ticks; PCM16 WAV, or Ogg/Opus (RFC 7845).
//!
//! The media worker calls [`Recorder::push`] once per tick with whatever each side produced;
//! ticks it skips and `None` frames become silence, so both channels always stay on the call's
//! timeline; the recording ends with the last tick pushed. Output is buffered and handed to the
//! [`RecordingSink`] about once a second. A WAV header is reserved at creation with "unknown
//! length" sizes (readable by tolerant tools if the process dies) and replaced by the exact one
//! in [`Recorder::finish`]; Ogg/Opus needs no rewrite (its header pages are final from the
//! start, and each second ends on a page boundary). Dropping a recorder finishes it too,
//! ignoring errors. Writes are blocking: one write a second, of a few KB (Opus) to 64 KB
//! (16 kHz WAV).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use audiopus::coder::Encoder as OpusEncoder;
use audiopus::{Application, Bitrate, Channels, SampleRate};
use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use thiserror::Error;

use super::storage::{RecordingSink, RecordingStorage, StorageError};

/// Length of the canonical PCM WAV header this recorder writes.
pub const WAV_HEADER_LEN: usize = 44;

/// Longest recording in any format (24 hours of ticks); WAV is further limited to 4 GiB.
pub const MAX_TICKS: u64 = 24 * 3600 * 50;

/// Channels in a recording: caller (left) and agent (right).
const CHANNELS: u16 = 2;

/// Bytes per sample frame (two channels of PCM16).
const FRAME_BYTES: usize = 2 * CHANNELS as usize;

/// Ticks buffered before a write to storage (one second of audio).
const FLUSH_TICKS: usize = 50;

/// Largest data chunk a WAV header can describe, rounded down to whole sample frames.
const MAX_DATA_BYTES: u64 = (u32::MAX as u64 - 36) / FRAME_BYTES as u64 * FRAME_BYTES as u64;

/// Opus samples per 20 ms tick: Ogg/Opus granule positions count at 48 kHz whatever the input.
const OPUS_TICK_48K: u64 = 960;

/// Opus bit rate for the two channels together; speech stays clean and channels separate.
const OPUS_BITRATE: i32 = 48_000;

/// Largest Opus packet we accept from the encoder (the format's maximum is 1275 bytes a frame).
const OPUS_MAX_PACKET: usize = 1500;

/// File format of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RecordingFormat {
    /// PCM16 WAV: lossless, 32 KB/s at 8 kHz, 64 KB/s at 16 kHz.
    #[default]
    Wav,
    /// Ogg/Opus at 48 kbit/s; the leg rate must be 8, 12, 16, 24 or 48 kHz.
    OggOpus,
}

impl RecordingFormat {
    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            RecordingFormat::Wav => "wav",
            RecordingFormat::OggOpus => "opus",
        }
    }
}

/// Why recording failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// The rate does not divide into 20 ms frames (or, for Opus, is not an Opus rate).
    #[error("recording rate {0} Hz is not supported by the recording format")]
    BadRate(u32),
    /// The storage backend failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The Opus encoder failed.
    #[error("recording {key:?}: opus encoder: {reason}")]
    Encoder {
        /// The recording's key.
        key: String,
        /// What libopus reported.
        reason: String,
    },
    /// The recording would exceed [`MAX_TICKS`] or the 4 GiB a WAV file can describe.
    #[error("recording {key:?} reached its size limit")]
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
    /// Sample rate of both channels (the leg rate; Opus decodes at any rate).
    pub sample_rate: u32,
    /// File format.
    pub format: RecordingFormat,
    /// Frames dropped because their tick was already written.
    pub late_frames: u64,
}

/// Records one call as a stereo file; see the module docs for the timing rules.
pub struct Recorder {
    /// Open sink; `None` once finished.
    sink: Option<Box<dyn RecordingSink>>,
    /// Storage key, for errors and the final info.
    key: String,
    /// Sample rate of both channels.
    sample_rate: u32,
    /// Samples per channel in one 20 ms tick.
    frame_samples: usize,
    /// The first tick not yet written or buffered; earlier ticks are late.
    next_tick: u64,
    /// Ticks the sink has accepted, which is what a WAV header describes after an error.
    flushed_ticks: u64,
    /// Ticks buffered since the last write to the sink.
    pending_ticks: usize,
    /// Ticks this format can hold.
    max_ticks: u64,
    /// One interleaved tick, reused so steady-state pushes do not allocate.
    frame: Vec<i16>,
    /// The format-specific encoder and output buffer.
    body: Body,
    /// Channel frames dropped as late.
    late_frames: u64,
    /// Set after a storage error; later pushes are refused.
    broken: bool,
}

impl Recorder {
    /// Starts a WAV recording under `key` at `sample_rate` (the leg rate, e.g. 8000 or 16000).
    pub fn create(
        storage: &dyn RecordingStorage,
        key: &str,
        sample_rate: u32,
    ) -> Result<Recorder, RecorderError> {
        Recorder::create_with_format(storage, key, sample_rate, RecordingFormat::Wav)
    }

    /// Starts a recording in `format` under `key` at `sample_rate`.
    pub fn create_with_format(
        storage: &dyn RecordingStorage,
        key: &str,
        sample_rate: u32,
        format: RecordingFormat,
    ) -> Result<Recorder, RecorderError> {
        if sample_rate == 0 || !sample_rate.is_multiple_of(50) {
            return Err(RecorderError::BadRate(sample_rate));
        }
        let frame_samples = (sample_rate / 50) as usize;
        let tick_bytes = (frame_samples * FRAME_BYTES) as u64;
        let (body, header, max_ticks) = match format {
            RecordingFormat::Wav => {
                let buf = Vec::with_capacity(FLUSH_TICKS * tick_bytes as usize);
                let header = wav_header(sample_rate, CHANNELS, u32::MAX).to_vec();
                (
                    Body::Wav(buf),
                    header,
                    MAX_TICKS.min(MAX_DATA_BYTES / tick_bytes),
                )
            }
            RecordingFormat::OggOpus => {
                let (stream, header) = OpusStream::new(key, sample_rate)?;
                (Body::Opus(Box::new(stream)), header, MAX_TICKS)
            }
        };
        let sink = storage.create(key, &header)?;
        Ok(Recorder {
            sink: Some(sink),
            key: key.to_string(),
            sample_rate,
            frame_samples,
            next_tick: 0,
            flushed_ticks: 0,
            pending_ticks: 0,
            max_ticks,
            frame: vec![0; frame_samples * CHANNELS as usize],
            body,
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
        if tick >= self.max_ticks {
            return Err(RecorderError::TooLong {
                key: self.key.clone(),
            });
        }
        while self.next_tick < tick {
            // Silence goes through the buffer a second at most at a time, whatever the gap.
            let room = (FLUSH_TICKS - self.pending_ticks.min(FLUSH_TICKS - 1)) as u64;
            let n = (tick - self.next_tick).min(room) as usize;
            let ends_page = self.pending_ticks + n >= FLUSH_TICKS;
            self.frame.fill(0);
            self.encode(n, ends_page)?;
        }
        let caller = caller.unwrap_or(&[]);
        let agent = agent.unwrap_or(&[]);
        for (i, pair) in self.frame.chunks_exact_mut(2).enumerate() {
            pair[0] = caller.get(i).copied().unwrap_or(0);
            pair[1] = agent.get(i).copied().unwrap_or(0);
        }
        let ends_page = self.pending_ticks + 1 >= FLUSH_TICKS;
        self.encode(1, ends_page)
    }

    /// Writes buffered output to storage now (Opus: only pages already complete).
    pub fn flush(&mut self) -> Result<(), RecorderError> {
        if self.broken {
            return Err(RecorderError::Broken {
                key: self.key.clone(),
            });
        }
        let Some(sink) = self.sink.as_mut() else {
            return Err(RecorderError::Broken {
                key: self.key.clone(),
            });
        };
        let bytes = self.body.bytes();
        let result = if bytes.is_empty() {
            Ok(())
        } else {
            sink.write(bytes)
        };
        self.body.clear();
        self.pending_ticks = 0;
        match result {
            Ok(()) => {
                self.flushed_ticks = self.next_tick;
                Ok(())
            }
            Err(e) => {
                self.broken = true;
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

    /// File format.
    pub fn format(&self) -> RecordingFormat {
        match self.body {
            Body::Wav(_) => RecordingFormat::Wav,
            Body::Opus(_) => RecordingFormat::OggOpus,
        }
    }

    /// Recorded time so far, buffered audio included.
    pub fn duration(&self) -> Duration {
        ticks_to_duration(self.next_tick)
    }

    /// Channel frames dropped because their tick was already written.
    pub fn late_frames(&self) -> u64 {
        self.late_frames
    }

    /// Encodes `self.frame` `n` times, then writes a second's worth once it is complete.
    fn encode(&mut self, n: usize, ends_page: bool) -> Result<(), RecorderError> {
        if let Err(e) = self.body.push(&self.frame, n, ends_page, &self.key) {
            // Part of the ticks may be in the stream already: stop rather than misalign.
            self.broken = true;
            return Err(e);
        }
        self.next_tick += n as u64;
        self.pending_ticks += n;
        if self.pending_ticks >= FLUSH_TICKS {
            self.flush()?;
        }
        Ok(())
    }

    /// Shared by `finish` and `Drop`: flush, final header, hand over to storage.
    fn finalize(&mut self) -> Result<RecordingInfo, RecorderError> {
        let mut first_err = None;
        if !self.broken {
            if let Err(e) = self.body.end(self.next_tick, &self.key) {
                first_err = Some(e);
            } else if let Err(e) = self.flush() {
                first_err = Some(e);
            }
        }
        let Some(sink) = self.sink.take() else {
            return Err(RecorderError::Broken {
                key: self.key.clone(),
            });
        };
        let tick_bytes = (self.frame_samples * FRAME_BYTES) as u64;
        let header = self
            .body
            .final_header(self.sample_rate, self.flushed_ticks * tick_bytes);
        let bytes = sink.finish(&header)?;
        if let Some(e) = first_err {
            return Err(e);
        }
        if self.broken {
            return Err(RecorderError::Broken {
                key: self.key.clone(),
            });
        }
        Ok(RecordingInfo {
            key: self.key.clone(),
            duration: ticks_to_duration(self.flushed_ticks),
            bytes,
            sample_rate: self.sample_rate,
            format: self.format(),
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
            .field("format", &self.format())
            .field("sample_rate", &self.sample_rate)
            .field("next_tick", &self.next_tick)
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

/// Playing time of `ticks` 20 ms ticks.
fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks.saturating_mul(20))
}

/// The format-specific half of a recorder: encodes ticks into bytes waiting for the sink.
enum Body {
    /// Interleaved little-endian PCM16.
    Wav(Vec<u8>),
    /// Opus packets in Ogg pages.
    Opus(Box<OpusStream>),
}

impl Body {
    /// Appends `n` copies of the interleaved tick `frame`; `ends_page` closes the Ogg page.
    fn push(
        &mut self,
        frame: &[i16],
        n: usize,
        ends_page: bool,
        key: &str,
    ) -> Result<(), RecorderError> {
        match self {
            Body::Wav(buf) => {
                if frame.iter().all(|&s| s == 0) {
                    buf.resize(buf.len() + n * frame.len() * 2, 0);
                } else {
                    for _ in 0..n {
                        buf.extend(frame.iter().flat_map(|s| s.to_le_bytes()));
                    }
                }
                Ok(())
            }
            Body::Opus(stream) => {
                for i in 0..n {
                    stream.encode(frame, ends_page && i + 1 == n, key)?;
                }
                Ok(())
            }
        }
    }

    /// Closes the stream after `ticks` real ticks (Opus: flush the encoder, trim the end).
    fn end(&mut self, ticks: u64, key: &str) -> Result<(), RecorderError> {
        match self {
            Body::Wav(_) => Ok(()),
            Body::Opus(stream) => stream.end(ticks, key),
        }
    }

    /// Bytes waiting for the sink.
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Wav(buf) => buf,
            Body::Opus(stream) => stream.pages.inner(),
        }
    }

    /// Forgets the bytes handed to the sink.
    fn clear(&mut self) {
        match self {
            Body::Wav(buf) => buf.clear(),
            Body::Opus(stream) => stream.pages.inner_mut().clear(),
        }
    }

    /// The header to store on finish, the same length as the provisional one.
    fn final_header(&self, sample_rate: u32, data_bytes: u64) -> Vec<u8> {
        match self {
            Body::Wav(_) => {
                let data = u32::try_from(data_bytes).unwrap_or(u32::MAX);
                wav_header(sample_rate, CHANNELS, data).to_vec()
            }
            Body::Opus(stream) => stream.header.clone(),
        }
    }
}

/// An Ogg/Opus stream being written (RFC 7845).
struct OpusStream {
    /// Stereo encoder at the leg rate.
    encoder: OpusEncoder,
    /// Page writer over the bytes waiting for the sink.
    pages: PacketWriter<'static, Vec<u8>>,
    /// Ogg logical stream serial number.
    serial: u32,
    /// Samples (at 48 kHz) the decoder discards at the start: the encoder's lookahead.
    pre_skip: u64,
    /// Audio packets written so far.
    packets: u64,
    /// Encoder output buffer, reused.
    packet: Vec<u8>,
    /// Interleaved samples in one tick.
    frame_len: usize,
    /// The OpusHead and OpusTags pages, the stream's fixed header.
    header: Vec<u8>,
}

impl OpusStream {
    /// A new stream and its header pages.
    fn new(key: &str, sample_rate: u32) -> Result<(OpusStream, Vec<u8>), RecorderError> {
        let enc_err = |e: audiopus::Error| RecorderError::Encoder {
            key: key.to_string(),
            reason: e.to_string(),
        };
        let opus_rate = match sample_rate {
            8000 => SampleRate::Hz8000,
            12_000 => SampleRate::Hz12000,
            16_000 => SampleRate::Hz16000,
            24_000 => SampleRate::Hz24000,
            48_000 => SampleRate::Hz48000,
            _ => return Err(RecorderError::BadRate(sample_rate)),
        };
        let mut encoder =
            OpusEncoder::new(opus_rate, Channels::Stereo, Application::Audio).map_err(enc_err)?;
        encoder
            .set_bitrate(Bitrate::BitsPerSecond(OPUS_BITRATE))
            .map_err(enc_err)?;
        let lookahead = u64::from(encoder.lookahead().map_err(enc_err)?);
        let pre_skip = lookahead * 48_000 / u64::from(sample_rate);
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let serial = hasher.finish() as u32;

        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(CHANNELS as u8);
        head.extend_from_slice(&(pre_skip as u16).to_le_bytes());
        head.extend_from_slice(&sample_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // mapping family 0: mono or stereo, no table
        let vendor = concat!("leadscaller ", env!("CARGO_PKG_VERSION"));
        let mut tags = Vec::with_capacity(16 + vendor.len());
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor.as_bytes());
        tags.extend_from_slice(&0u32.to_le_bytes()); // no user comments

        let mut pages = PacketWriter::new(Vec::new());
        let io_err = |e: std::io::Error| RecorderError::Encoder {
            key: key.to_string(),
            reason: e.to_string(),
        };
        pages
            .write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)
            .map_err(io_err)?;
        pages
            .write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)
            .map_err(io_err)?;
        let header = std::mem::take(pages.inner_mut());
        let stream = OpusStream {
            encoder,
            pages,
            serial,
            pre_skip,
            packets: 0,
            packet: vec![0; OPUS_MAX_PACKET],
            frame_len: (sample_rate / 50) as usize * CHANNELS as usize,
            header: header.clone(),
        };
        Ok((stream, header))
    }

    /// Encodes one interleaved tick as one packet.
    fn encode(&mut self, frame: &[i16], ends_page: bool, key: &str) -> Result<(), RecorderError> {
        let info = if ends_page {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        self.packets += 1;
        self.write(frame, info, self.packets * OPUS_TICK_48K, key)
    }

    /// Encodes one more (silent) packet so the lookahead drains, with the end-trimming granule.
    fn end(&mut self, ticks: u64, key: &str) -> Result<(), RecorderError> {
        let silence = vec![0i16; self.frame_len];
        let granule = self.pre_skip + ticks * OPUS_TICK_48K;
        self.packets += 1;
        self.write(&silence, PacketWriteEndInfo::EndStream, granule, key)
    }

    /// Encodes `frame` and writes the packet with `granule`.
    fn write(
        &mut self,
        frame: &[i16],
        info: PacketWriteEndInfo,
        granule: u64,
        key: &str,
    ) -> Result<(), RecorderError> {
        let len =
            self.encoder
                .encode(frame, &mut self.packet)
                .map_err(|e| RecorderError::Encoder {
                    key: key.to_string(),
                    reason: e.to_string(),
                })?;
        let packet = self.packet[..len].to_vec();
        self.pages
            .write_packet(packet, self.serial, info, granule)
            .map_err(|e| RecorderError::Encoder {
                key: key.to_string(),
                reason: e.to_string(),
            })
    }
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
        assert!(rec.body.bytes().len() < FLUSH_TICKS * 320 * FRAME_BYTES);
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

    /// Decoded Ogg/Opus recording: header fields, page granules and 48 kHz stereo samples.
    struct OpusFile {
        /// Pre-skip from OpusHead.
        pre_skip: u64,
        /// Input rate from OpusHead.
        input_rate: u32,
        /// Granule of the last page.
        last_granule: u64,
        /// Left channel at 48 kHz, pre-skip and end trimming applied.
        left: Vec<i16>,
        /// Right channel likewise.
        right: Vec<i16>,
    }

    /// Reads an Ogg/Opus file back with the ogg crate and decodes it with libopus.
    fn read_opus(path: &Path) -> OpusFile {
        let file = std::fs::File::open(path).unwrap();
        let mut reader = ogg::reading::PacketReader::new(std::io::BufReader::new(file));
        let head = reader.read_packet_expected().unwrap();
        assert!(head.first_in_stream() && head.last_in_page());
        assert_eq!(&head.data[..8], b"OpusHead");
        assert_eq!((head.data[8], head.data[9], head.data[18]), (1, 2, 0));
        let pre_skip = u64::from(u16::from_le_bytes([head.data[10], head.data[11]]));
        let input_rate = u32::from_le_bytes(head.data[12..16].try_into().unwrap());
        let tags = reader.read_packet_expected().unwrap();
        assert_eq!(&tags.data[..8], b"OpusTags");
        assert!(tags.last_in_page());
        let mut dec = audiopus::coder::Decoder::new(SampleRate::Hz48000, Channels::Stereo).unwrap();
        let mut pcm = Vec::new();
        let mut out = vec![0i16; 5760 * 2];
        let mut last_granule = 0;
        let mut ended = false;
        while let Some(packet) = reader.read_packet().unwrap() {
            assert!(!ended, "packets after end of stream");
            let n = dec
                .decode(Some(&packet.data[..]), &mut out[..], false)
                .unwrap();
            assert_eq!(n, 960, "one 20 ms packet per tick");
            pcm.extend_from_slice(&out[..n * 2]);
            if packet.last_in_page() {
                last_granule = packet.absgp_page();
                assert!(
                    last_granule <= (pcm.len() / 2) as u64,
                    "granule beyond decoded audio"
                );
            }
            ended = packet.last_in_stream();
        }
        assert!(ended, "stream has no end-of-stream page");
        let frames = &pcm[pre_skip as usize * 2..last_granule as usize * 2];
        let left = frames.iter().step_by(2).copied().collect();
        let right = frames.iter().skip(1).step_by(2).copied().collect();
        OpusFile {
            pre_skip,
            input_rate,
            last_granule,
            left,
            right,
        }
    }

    /// Mean square of a slice.
    fn power(x: &[i16]) -> f64 {
        x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64
    }

    #[test]
    fn ogg_opus_reads_back_aligned_and_separated() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let mut rec =
            Recorder::create_with_format(&storage, "c.opus", 16000, RecordingFormat::OggOpus)
                .unwrap();
        assert_eq!(rec.format(), RecordingFormat::OggOpus);
        for tick in 0..150u64 {
            match tick {
                0..60 => rec
                    .push(tick, Some(&tone(tick, 16000, 1000.0)), None)
                    .unwrap(),
                60..90 => {}
                _ => rec
                    .push(tick, None, Some(&tone(tick, 16000, 600.0)))
                    .unwrap(),
            }
        }
        let info = rec.finish().unwrap();
        assert_eq!(info.duration, Duration::from_secs(3));
        assert_eq!(info.format, RecordingFormat::OggOpus);
        let path = dir.path().join("c.opus");
        assert_eq!(info.bytes, std::fs::metadata(&path).unwrap().len());
        assert!(
            info.bytes < 3 * 48_000 / 8 * 12 / 10,
            "about 48 kbit/s: {}",
            info.bytes
        );
        assert!(!dir.path().join("c.opus.part").exists());
        let f = read_opus(&path);
        assert_eq!(f.input_rate, 16000);
        assert!(
            f.pre_skip > 0 && f.pre_skip < 960,
            "pre-skip {}",
            f.pre_skip
        );
        assert_eq!(f.last_granule, f.pre_skip + 150 * 960);
        assert_eq!((f.left.len(), f.right.len()), (144_000, 144_000));
        let ms = |t: usize| t * 48;
        let caller = &f.left[ms(100)..ms(1100)];
        assert!(
            share(caller, 48_000, 1000.0) > 0.95,
            "caller tone on the left"
        );
        let tone_power = AMP * AMP / 2.0;
        assert!(
            (power(caller) / tone_power - 1.0).abs() < 0.2,
            "caller level"
        );
        let agent = &f.right[ms(1900)..ms(2900)];
        assert!(
            share(agent, 48_000, 600.0) > 0.95,
            "agent tone on the right"
        );
        assert!((power(agent) / tone_power - 1.0).abs() < 0.2, "agent level");
        // Crosstalk at least 30 dB down, and the gap is silent on both sides.
        assert!(
            power(&f.right[ms(100)..ms(1100)]) < tone_power / 1000.0,
            "caller leaks right"
        );
        assert!(
            power(&f.left[ms(1900)..ms(2900)]) < tone_power / 1000.0,
            "agent leaks left"
        );
        let gap = ms(1300)..ms(1700);
        assert!(power(&f.left[gap.clone()]) + power(&f.right[gap]) < tone_power / 10_000.0);
    }

    #[test]
    fn ogg_opus_is_accepted_by_opusdec() {
        let opusdec = std::process::Command::new("sh")
            .args(["-c", "command -v opusdec"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| {
                panic!("`opusdec` is required by this test; run scripts/setup.sh (opus-tools)")
            });
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let mut rec =
            Recorder::create_with_format(&storage, "d.opus", 8000, RecordingFormat::OggOpus)
                .unwrap();
        for tick in 0..100u64 {
            rec.push(
                tick,
                Some(&tone(tick, 8000, 1000.0)),
                Some(&tone(tick, 8000, 400.0)),
            )
            .unwrap();
        }
        drop(rec);
        let wav = dir.path().join("d.wav");
        let out = std::process::Command::new(opusdec)
            .args(["--rate", "8000", "--force-wav"])
            .arg(dir.path().join("d.opus"))
            .arg(&wav)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "opusdec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (left, right, spec) = read_wav(&wav);
        assert_eq!((spec.channels, spec.sample_rate), (2, 8000));
        assert_eq!(
            left.len(),
            16_000,
            "2 s exactly, pre-skip and padding trimmed"
        );
        assert!(share(&left[800..15_200], 8000, 1000.0) > 0.9);
        assert!(share(&right[800..15_200], 8000, 400.0) > 0.9);
    }

    #[test]
    fn recorder_can_move_to_a_media_task() {
        fn assert_send<T: Send>() {}
        assert_send::<Recorder>();
    }

    #[test]
    fn ogg_opus_needs_an_opus_rate() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let r = Recorder::create_with_format(&storage, "x.opus", 32_000, RecordingFormat::OggOpus);
        assert!(matches!(r, Err(RecorderError::BadRate(32_000))));
        assert!(!dir.path().join("x.opus.part").exists());
    }
}
