//! Call recording as a leg tap. The media thread only copies each tick's two frames into a
//! batch; once a second the batch goes to the recording writer thread, which owns the
//! [`Recorder`]s and does the encoding and file writes, so disk latency never reaches the
//! media clock. Recordings are finalized when the leg stops and, on shutdown, before the
//! writer thread exits.

use crate::config::RecordingConfig;
use crate::leg::LegTap;
use crate::media::recorder::{Recorder, RecorderError, RecordingFormat};
use crate::media::storage::{FsStorage, RecordingStorage, Unavailable};
use crate::store::at_rest::{AtRestError, MasterKeyRing, generate_key_file};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Ticks per batch sent to the writer (one second).
const BATCH_TICKS: usize = 50;
/// Batches the writer may have queued before taps start dropping (about 80 s of 100 calls).
const QUEUE_BATCHES: usize = 8192;

/// One second (or less, at the end) of a recording's frames.
struct Batch {
    id: u64,
    frame: usize,
    ticks: Vec<u64>,
    caller: Vec<i16>,
    caller_present: Vec<bool>,
    sent: Vec<i16>,
    sent_present: Vec<bool>,
}

enum WriterMsg {
    Start {
        id: u64,
        recorder: Box<Recorder>,
    },
    Frames(Batch),
    Finish {
        id: u64,
    },
    /// Finalize everything open and end the thread.
    Shutdown,
}

/// The thread that writes every recording of the process.
pub struct RecordingWriter {
    tx: Mutex<Option<SyncSender<WriterMsg>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    next_id: AtomicU64,
}

impl RecordingWriter {
    /// Starts the writer thread.
    pub fn start() -> Arc<RecordingWriter> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_BATCHES);
        let thread = std::thread::Builder::new()
            .name("recording-writer".into())
            .spawn(move || run_writer(rx))
            .map_err(|e| tracing::error!(error = %e, "cannot start the recording writer"))
            .ok();
        Arc::new(RecordingWriter {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(thread),
            next_id: AtomicU64::new(1),
        })
    }

    /// Starts a recording under `key` at the leg's PCM rate; the tap feeds it.
    pub fn tap(
        &self,
        storage: &dyn RecordingStorage,
        key: &str,
        rate: u32,
        format: RecordingFormat,
    ) -> Result<RecordingTap, RecorderError> {
        let recorder = Recorder::create_with_format(storage, key, rate, format)?;
        let frame = (rate / 50) as usize;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tx =
            self.tx
                .lock()
                .ok()
                .and_then(|t| t.clone())
                .ok_or_else(|| RecorderError::Broken {
                    key: key.to_string(),
                })?;
        tx.send(WriterMsg::Start {
            id,
            recorder: Box::new(recorder),
        })
        .map_err(|_| RecorderError::Broken {
            key: key.to_string(),
        })?;
        Ok(RecordingTap {
            id,
            key: key.to_string(),
            tx,
            batch: Batch::new(id, frame),
            dropped_batches: 0,
            finished: false,
        })
    }

    /// Finalizes every open recording and waits for the writer thread to end (after the
    /// media workers stopped, so no tap sends any more).
    pub async fn shutdown(&self) {
        // An explicit message, not a closed channel: a tap still alive somewhere (a call
        // that never started its media) must not keep the thread, and its files, open.
        if let Some(tx) = self.tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(WriterMsg::Shutdown);
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Batch {
    fn new(id: u64, frame: usize) -> Batch {
        Batch {
            id,
            frame,
            ticks: Vec::with_capacity(BATCH_TICKS),
            caller: Vec::with_capacity(BATCH_TICKS * frame),
            caller_present: Vec::with_capacity(BATCH_TICKS),
            sent: Vec::with_capacity(BATCH_TICKS * frame),
            sent_present: Vec::with_capacity(BATCH_TICKS),
        }
    }

    fn push(&mut self, tick: u64, caller: Option<&[i16]>, sent: Option<&[i16]>) {
        let f = self.frame;
        self.ticks.push(tick);
        for (pcm, present, frame) in [
            (&mut self.caller, &mut self.caller_present, caller),
            (&mut self.sent, &mut self.sent_present, sent),
        ] {
            present.push(frame.is_some());
            let frame = frame.unwrap_or(&[]);
            pcm.extend((0..f).map(|i| frame.get(i).copied().unwrap_or(0)));
        }
    }
}

fn run_writer(rx: Receiver<WriterMsg>) {
    let mut open: HashMap<u64, Box<Recorder>> = HashMap::new();
    let mut failed: HashSet<u64> = HashSet::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            WriterMsg::Start { id, recorder } => {
                open.insert(id, recorder);
            }
            WriterMsg::Frames(b) => {
                let Some(rec) = open.get_mut(&b.id) else {
                    continue;
                };
                let f = b.frame;
                for (i, &tick) in b.ticks.iter().enumerate() {
                    let caller = b.caller_present[i].then(|| &b.caller[i * f..(i + 1) * f]);
                    let sent = b.sent_present[i].then(|| &b.sent[i * f..(i + 1) * f]);
                    if let Err(e) = rec.push(tick, caller, sent) {
                        if failed.insert(b.id) {
                            tracing::warn!(key = rec.key(), error = %e, "recording stopped");
                        }
                        break;
                    }
                }
            }
            WriterMsg::Finish { id } => {
                failed.remove(&id);
                if let Some(rec) = open.remove(&id) {
                    finish(*rec);
                }
            }
            WriterMsg::Shutdown => break,
        }
    }
    // Shutdown: whatever is still open is finalized, never left truncated.
    for (_, rec) in open.drain() {
        finish(*rec);
    }
}

fn finish(rec: Recorder) {
    let key = rec.key().to_string();
    match rec.finish() {
        Ok(info) => tracing::info!(key = %info.key, duration_ms = info.duration.as_millis() as u64,
            bytes = info.bytes, "recording saved"),
        Err(e) => tracing::warn!(%key, error = %e, "recording could not be finalized"),
    }
}

/// Feeds one recording from a leg: both directions of every tick.
pub struct RecordingTap {
    id: u64,
    key: String,
    tx: SyncSender<WriterMsg>,
    batch: Batch,
    /// Batches the writer could not take (its queue was full): gaps in the file.
    dropped_batches: u64,
    finished: bool,
}

impl RecordingTap {
    /// Records one tick of the caller only (the `record` app).
    pub fn push_caller(&mut self, tick: u64, caller: Option<&[i16]>) {
        self.push(tick, caller, None);
    }

    fn send_batch(&mut self) {
        if self.batch.ticks.is_empty() {
            return;
        }
        let fresh = Batch::new(self.id, self.batch.frame);
        let full = std::mem::replace(&mut self.batch, fresh);
        match self.tx.try_send(WriterMsg::Frames(full)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped_batches += 1;
                if self.dropped_batches == 1 {
                    tracing::warn!(key = %self.key, "recording writer is behind; a second of audio was dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl LegTap for RecordingTap {
    fn push(&mut self, tick: u64, caller: Option<&[i16]>, sent: Option<&[i16]>) {
        if self.finished {
            return;
        }
        self.batch.push(tick, caller, sent);
        if self.batch.ticks.len() >= BATCH_TICKS {
            self.send_batch();
        }
    }

    fn finish(&mut self) -> Option<String> {
        if self.finished {
            return None;
        }
        self.finished = true;
        self.send_batch();
        // The finish message must not be lost: it may wait for room in the queue.
        self.tx.send(WriterMsg::Finish { id: self.id }).ok()?;
        Some(self.key.clone())
    }
}

impl Drop for RecordingTap {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// A storage key for a call's recording: time, call id and a random suffix, so that keys
/// never collide across restarts.
pub fn recording_key(prefix: &str, call: &str, format: RecordingFormat) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let call: String = call
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "{prefix}-{secs}-{call}-{:06x}.{}",
        rand::random::<u32>() & 0xff_ffff,
        format.extension()
    )
}

/// Where the recording master keys came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// `[recording] master_keys_env`.
    Env(String),
    /// `[recording] master_key_file`, or the default key file that already existed.
    File(PathBuf),
    /// The default key file, created now with a new random key.
    Created(PathBuf),
}

/// Loads the recording master key ring from `[recording]`: `master_keys_env`, else
/// `master_key_file`, else the default key file ([`RecordingConfig::default_key_file`]), which
/// is created with a new key when `create` is set. `Ok(None)`: no key configured, none created.
pub fn recording_keys(
    cfg: &RecordingConfig,
    create: bool,
) -> Result<Option<(Arc<MasterKeyRing>, KeySource)>, AtRestError> {
    if let Some(var) = &cfg.master_keys_env {
        let ring = MasterKeyRing::from_env(var)?;
        return Ok(Some((Arc::new(ring), KeySource::Env(var.clone()))));
    }
    if let Some(path) = &cfg.master_key_file {
        let ring = MasterKeyRing::from_file(path)?;
        return Ok(Some((Arc::new(ring), KeySource::File(path.clone()))));
    }
    let path = cfg.default_key_file();
    if path.exists() {
        let ring = MasterKeyRing::from_file(&path)?;
        return Ok(Some((Arc::new(ring), KeySource::File(path))));
    }
    if !create {
        return Ok(None);
    }
    let ring = generate_key_file(&path)?;
    Ok(Some((Arc::new(ring), KeySource::Created(path))))
}

/// The recording store of a server: encrypted files under `[recording] dir`; the default key
/// file is created (with a warning) when recordings may be written and no key is configured.
pub fn recording_storage(
    cfg: &RecordingConfig,
    records: bool,
) -> Result<Arc<dyn RecordingStorage>, AtRestError> {
    match recording_keys(cfg, records)? {
        Some((keys, source)) => {
            match &source {
                KeySource::Created(path) => tracing::warn!(
                    key_file = %path.display(),
                    key_id = keys.current_id(),
                    "no recording master key configured: created a new one; back it up \
                     (recordings cannot be read without it) or set [recording] \
                     master_keys_env / master_key_file"
                ),
                KeySource::Env(var) => {
                    tracing::info!(env = %var, key_id = keys.current_id(), "recording master keys loaded")
                }
                KeySource::File(path) => tracing::info!(key_file = %path.display(),
                    key_id = keys.current_id(), "recording master keys loaded"),
            }
            Ok(Arc::new(FsStorage::encrypted(&cfg.dir, keys)))
        }
        None => Ok(Arc::new(Unavailable)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_recordings_read_back_as_wav_with_the_final_header() {
        let dir = tempfile::tempdir().unwrap();
        let keys = MasterKeyRing::parse("r1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "test")
            .unwrap();
        let storage = FsStorage::encrypted(dir.path(), Arc::new(keys));
        let tone: Vec<i16> = (0..160).map(|i| (i * 150) as i16).collect();
        // 10 ticks fit in chunk 0; 300 ticks (192 KB) make chunk 0 wait for the final header.
        for (key, ticks) in [("short.wav", 10u64), ("long.wav", 300)] {
            let mut rec = Recorder::create(&storage, key, 8000).unwrap();
            for tick in 0..ticks {
                rec.push(tick, Some(&tone), None).unwrap();
            }
            rec.finish().unwrap();
            let on_disk = std::fs::read(dir.path().join(format!("{key}.enc"))).unwrap();
            assert!(on_disk.starts_with(b"LCENC1"));
            assert!(!on_disk.windows(4).any(|w| w == b"RIFF"));
            let wav = hound::WavReader::new(storage.open(key).unwrap()).unwrap();
            assert_eq!(wav.spec().channels, 2);
            assert_eq!(wav.len() as u64, ticks * 160 * 2, "{key}: final sizes");
            let samples: Vec<i16> = wav.into_samples().map(Result::unwrap).collect();
            assert_eq!(samples[2 * 7], tone[7], "{key}");
        }
    }

    #[test]
    fn key_ring_comes_from_the_config_or_a_default_file_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RecordingConfig {
            dir: dir.path().join("recordings"),
            ..RecordingConfig::default()
        };
        // Nothing configured and nothing may record: no key, a store that refuses to write.
        assert!(recording_keys(&cfg, false).unwrap().is_none());
        let none = recording_storage(&cfg, false).unwrap();
        assert!(matches!(
            none.create("a.wav", b""),
            Err(crate::media::storage::StorageError::Unavailable { .. })
        ));
        assert!(!dir.path().join("master.key").exists());
        // Recording on: the default key file is created next to the recordings dir, once.
        let (created, source) = recording_keys(&cfg, true).unwrap().unwrap();
        let key_file = dir.path().join("master.key");
        assert_eq!(source, KeySource::Created(key_file.clone()));
        let (loaded, source) = recording_keys(&cfg, true).unwrap().unwrap();
        assert_eq!(source, KeySource::File(key_file.clone()));
        assert_eq!(loaded.current_id(), created.current_id());
        // An explicit file wins, and a broken one is an error naming it.
        let explicit = dir.path().join("other.key");
        let cfg = RecordingConfig {
            master_key_file: Some(explicit.clone()),
            ..cfg
        };
        let err = recording_keys(&cfg, true).unwrap_err().to_string();
        assert!(err.contains("other.key"), "{err}");
        std::fs::write(
            &explicit,
            "x1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        )
        .unwrap();
        let (ring, _) = recording_keys(&cfg, true).unwrap().unwrap();
        assert_eq!(ring.current_id(), "x1");
        let cfg = RecordingConfig {
            master_key_file: None,
            master_keys_env: Some("LEADSCALLER_TEST_NO_SUCH_VAR".into()),
            ..cfg
        };
        let err = recording_keys(&cfg, true).unwrap_err().to_string();
        assert!(
            err.contains("LEADSCALLER_TEST_NO_SUCH_VAR: not set"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn batches_reach_the_file_and_shutdown_finalizes_open_recordings() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let writer = RecordingWriter::start();
        let mut done = writer
            .tap(&storage, "a.wav", 8000, RecordingFormat::Wav)
            .unwrap();
        let mut open = writer
            .tap(&storage, "b.wav", 8000, RecordingFormat::Wav)
            .unwrap();
        let tone: Vec<i16> = (0..160).map(|i| (i * 100) as i16).collect();
        for tick in 0..120u64 {
            // A gap from tick 60 to 69 on the caller side stays silence.
            let caller = (!(60..70).contains(&tick)).then_some(&tone[..]);
            done.push(tick, caller, None);
            open.push(tick, None, Some(&tone));
        }
        assert_eq!(done.finish().as_deref(), Some("a.wav"));
        assert_eq!(done.finish(), None, "finished once");
        // `open` is still alive and unfinished: shutdown must finalize it anyway.
        writer.shutdown().await;
        drop(open);
        // b.wav got its two whole batches (100 ticks); the 20 ticks its tap still held were
        // never handed over.
        for (name, ticks, left_loud, right_loud) in
            [("a.wav", 120, true, false), ("b.wav", 100, false, true)]
        {
            let mut r = hound::WavReader::open(dir.path().join(name)).unwrap();
            let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
            assert_eq!(s.len(), ticks * 160 * 2, "{name}");
            let left: Vec<i16> = s.iter().step_by(2).copied().collect();
            let right: Vec<i16> = s.iter().skip(1).step_by(2).copied().collect();
            assert_eq!(left.iter().any(|&v| v != 0), left_loud, "{name}");
            assert_eq!(right.iter().any(|&v| v != 0), right_loud, "{name}");
            if left_loud {
                assert!(left[60 * 160..70 * 160].iter().all(|&v| v == 0), "gap kept");
                assert_eq!(&left[..160], &tone[..]);
            }
        }
        assert!(!dir.path().join("b.wav.part").exists());
    }
}
