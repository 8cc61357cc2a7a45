//! Where recordings are written: a storage trait with a forward-only sink, and the filesystem
//! backend.
//!
//! A sink receives the body as a forward-only stream of bytes, so a backend may encrypt it in
//! chunks or upload it in parts. Formats whose header holds final sizes (WAV) reserve the header
//! when the sink is created ([`RecordingStorage::create`] takes a provisional header) and hand
//! the final header of the same length to [`RecordingSink::finish`]: the filesystem backend
//! seeks back and overwrites it, an encrypting backend would store it as a last chunk. A
//! recording becomes visible under its key only when `finish` succeeds; until then readers get
//! [`StorageError::NotFound`].
//!
//! [`FsStorage::encrypted`] stores every recording encrypted at rest (AES-256-GCM, the
//! `LCENC1` format of [`crate::store::at_rest`]) as `<key>.enc`; `open` decrypts and verifies
//! it as it reads. The provisional header is encrypted with the body; the final one replaces it
//! inside the first chunk, which is kept in memory until `finish`, so no plaintext is ever
//! written to disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::store::at_rest::{
    AtRestError, DecryptingReader, ENC_SUFFIX, EncryptingWriter, MasterKeyRing,
};

use thiserror::Error;

/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 200;

/// Suffix of a recording that is still being written.
const PART_SUFFIX: &str = ".part";

/// Why a storage operation failed; every variant names the key.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The key is not a safe relative name.
    #[error("recording key {key:?} is invalid: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No finished recording has this key.
    #[error("recording {key:?} not found")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// A recording (finished or in progress) already has this key.
    #[error("recording {key:?} already exists")]
    AlreadyExists {
        /// The key asked for.
        key: String,
    },
    /// The final header is not the length of the provisional one reserved at creation.
    #[error("recording {key:?}: final header is {got} bytes, {reserved} were reserved")]
    HeaderSize {
        /// The recording's key.
        key: String,
        /// Length of the provisional header.
        reserved: usize,
        /// Length of the header passed to `finish`.
        got: usize,
    },
    /// Recording is not set up (no master key): nothing can be written.
    #[error("recording {key:?}: recording is not enabled and no master key is configured")]
    Unavailable {
        /// The key asked for.
        key: String,
    },
    /// Encryption or decryption failed (unknown key id, tampering, truncation).
    #[error("recording {key:?}: {source}")]
    Crypto {
        /// The recording's key.
        key: String,
        /// What the at-rest layer reported.
        source: AtRestError,
    },
    /// The backend failed.
    #[error("recording {key:?}: {op} failed: {source}")]
    Io {
        /// The recording's key.
        key: String,
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

/// A place recordings are written to and read back from.
pub trait RecordingStorage: Send + Sync {
    /// Starts a new recording under `key`, reserving `provisional_header` at its start.
    fn create(
        &self,
        key: &str,
        provisional_header: &[u8],
    ) -> Result<Box<dyn RecordingSink>, StorageError>;

    /// Reads a finished recording, final header first.
    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, StorageError>;

    /// Removes a finished recording.
    fn delete(&self, key: &str) -> Result<(), StorageError>;
}

/// A recording being written: a forward-only body, then the final header.
///
/// Dropping a sink without [`finish`](RecordingSink::finish) leaves an unfinished recording that
/// never shows up under its key (the filesystem backend keeps it as `<key>.part` for recovery).
pub trait RecordingSink: Send {
    /// The key this recording will be stored under.
    fn key(&self) -> &str;

    /// Appends body bytes after everything written so far.
    fn write(&mut self, body: &[u8]) -> Result<(), StorageError>;

    /// Replaces the provisional header with `header` (same length), makes the recording durable
    /// and visible under its key, and returns its total size in bytes.
    fn finish(self: Box<Self>, header: &[u8]) -> Result<u64, StorageError>;

    /// Throws the unfinished recording away.
    fn abort(self: Box<Self>) -> Result<(), StorageError>;
}

/// Checks that `key` is a safe relative name: `/`-separated segments of `[A-Za-z0-9._-]`, none
/// empty or starting with `.`, not ending in `.part`.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let bad = |reason| {
        Err(StorageError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("too long");
    }
    if key.ends_with(PART_SUFFIX) {
        return bad("ends in .part");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return bad("empty path segment (absolute path or `//`)");
        }
        if segment.starts_with('.') {
            return bad("segment starts with `.`");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return bad("only A-Z a-z 0-9 . _ - and / are allowed");
        }
    }
    Ok(())
}

/// Recordings as files under a root directory: `<root>/<key>`, written as `<root>/<key>.part`
/// (encrypted: `<root>/<key>.enc`, written as `<root>/<key>.enc.part`).
#[derive(Debug, Clone)]
pub struct FsStorage {
    /// Directory that holds every recording; keys are paths below it.
    root: PathBuf,
    /// Master keys when recordings are encrypted at rest.
    keys: Option<Arc<MasterKeyRing>>,
}

impl FsStorage {
    /// A store of plain files rooted at `root` (created on first write if missing).
    pub fn new(root: impl Into<PathBuf>) -> FsStorage {
        FsStorage {
            root: root.into(),
            keys: None,
        }
    }

    /// A store rooted at `root` that encrypts every recording under the ring's current key.
    pub fn encrypted(root: impl Into<PathBuf>, keys: Arc<MasterKeyRing>) -> FsStorage {
        FsStorage {
            root: root.into(),
            keys: Some(keys),
        }
    }

    /// Where the recording stored under `key` lives on disk (whether or not it exists).
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.final_path(key))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `.enc` when encrypting, nothing otherwise.
    fn suffix(&self) -> &'static str {
        if self.keys.is_some() { ENC_SUFFIX } else { "" }
    }

    /// Path of the finished file for a validated key.
    fn final_path(&self, key: &str) -> PathBuf {
        self.root.join(format!("{key}{}", self.suffix()))
    }

    /// Path of the in-progress file for a validated key.
    fn part_path(&self, key: &str) -> PathBuf {
        self.root
            .join(format!("{key}{}{PART_SUFFIX}", self.suffix()))
    }
}

impl RecordingStorage for FsStorage {
    fn create(
        &self,
        key: &str,
        provisional_header: &[u8],
    ) -> Result<Box<dyn RecordingSink>, StorageError> {
        validate_key(key)?;
        let io_err = |op| {
            move |source| StorageError::Io {
                key: key.to_string(),
                op,
                source,
            }
        };
        let final_path = self.final_path(key);
        if final_path.exists() {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let part_path = self.part_path(key);
        if let Some(parent) = part_path.parent() {
            fs::create_dir_all(parent).map_err(io_err("create directory"))?;
        }
        let file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part_path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StorageError::AlreadyExists {
                    key: key.to_string(),
                });
            }
            Err(e) => return Err(io_err("create")(e)),
        };
        let crypto_err = |source| StorageError::Crypto {
            key: key.to_string(),
            source,
        };
        let mut out = match &self.keys {
            None => Output::Plain(file),
            Some(keys) => Output::Encrypted(Box::new(
                EncryptingWriter::new_patchable(file, keys).map_err(crypto_err)?,
            )),
        };
        out.write_all(provisional_header)
            .map_err(io_err("write header"))?;
        Ok(Box::new(FsSink {
            key: key.to_string(),
            out,
            part_path,
            final_path,
            header_len: provisional_header.len(),
            bytes: provisional_header.len() as u64,
        }))
    }

    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        validate_key(key)?;
        match File::open(self.final_path(key)) {
            Ok(file) => match &self.keys {
                None => Ok(Box::new(file)),
                Some(keys) => DecryptingReader::new(BufReader::new(file), keys)
                    .map(|r| Box::new(r) as Box<dyn Read + Send>)
                    .map_err(|source| StorageError::Crypto {
                        key: key.to_string(),
                        source,
                    }),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StorageError::NotFound {
                key: key.to_string(),
            }),
            Err(source) => Err(StorageError::Io {
                key: key.to_string(),
                op: "open",
                source,
            }),
        }
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        match fs::remove_file(self.final_path(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StorageError::NotFound {
                key: key.to_string(),
            }),
            Err(source) => Err(StorageError::Io {
                key: key.to_string(),
                op: "delete",
                source,
            }),
        }
    }
}

/// A store that holds nothing and refuses to record: used when no recording can happen (no
/// master key configured, recording off), so nothing is ever written unencrypted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unavailable;

impl RecordingStorage for Unavailable {
    fn create(&self, key: &str, _: &[u8]) -> Result<Box<dyn RecordingSink>, StorageError> {
        Err(StorageError::Unavailable {
            key: key.to_string(),
        })
    }

    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        Err(StorageError::NotFound {
            key: key.to_string(),
        })
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        Err(StorageError::NotFound {
            key: key.to_string(),
        })
    }
}

/// The `.part` file of a sink, plain or behind the encrypting writer.
#[derive(Debug)]
enum Output {
    /// Plain file, positioned at the end of the body.
    Plain(File),
    /// Encrypted file; the plaintext start stays patchable until `finish`.
    Encrypted(Box<EncryptingWriter<File>>),
}

impl Output {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::Plain(f) => f.write_all(bytes),
            Output::Encrypted(w) => w.write_all(bytes),
        }
    }

    /// Puts the final header in place and returns the file, with everything written.
    fn finish(self, header: &[u8]) -> Result<File, AtRestError> {
        match self {
            Output::Plain(mut f) => {
                f.seek(SeekFrom::Start(0))?;
                f.write_all(header)?;
                Ok(f)
            }
            Output::Encrypted(w) => w.finish_with_prefix(header),
        }
    }
}

/// An open `<key>.part` file of [`FsStorage`].
#[derive(Debug)]
struct FsSink {
    /// The recording's key, for errors and [`RecordingSink::key`].
    key: String,
    /// The `.part` file.
    out: Output,
    /// Where the file is being written.
    part_path: PathBuf,
    /// Where it goes on `finish`.
    final_path: PathBuf,
    /// Length of the provisional header, which the final one must match.
    header_len: usize,
    /// Bytes written so far, header included.
    bytes: u64,
}

impl FsSink {
    /// Wraps an I/O error with this sink's key.
    fn err(&self, op: &'static str) -> impl FnOnce(io::Error) -> StorageError + '_ {
        move |source| StorageError::Io {
            key: self.key.clone(),
            op,
            source,
        }
    }
}

impl RecordingSink for FsSink {
    fn key(&self) -> &str {
        &self.key
    }

    fn write(&mut self, body: &[u8]) -> Result<(), StorageError> {
        let result = self.out.write_all(body);
        result.map_err(self.err("write"))?;
        self.bytes += body.len() as u64;
        Ok(())
    }

    fn finish(self: Box<Self>, header: &[u8]) -> Result<u64, StorageError> {
        if header.len() != self.header_len {
            return Err(StorageError::HeaderSize {
                key: self.key.clone(),
                reserved: self.header_len,
                got: header.len(),
            });
        }
        let FsSink {
            key,
            out,
            part_path,
            final_path,
            bytes,
            ..
        } = *self;
        let io_err = |op| {
            let key = key.clone();
            move |source| StorageError::Io { key, op, source }
        };
        let file = out.finish(header).map_err(|e| match e {
            AtRestError::Io(source) => io_err("write final header")(source),
            source => StorageError::Crypto {
                key: key.clone(),
                source,
            },
        })?;
        // Data on disk before the name: a crash never leaves a complete-looking broken file.
        file.sync_all().map_err(io_err("sync"))?;
        if final_path.exists() {
            return Err(StorageError::AlreadyExists { key });
        }
        fs::rename(&part_path, &final_path).map_err(io_err("rename"))?;
        if let Some(dir) = final_path.parent() {
            // Best effort: persists the rename; not every platform can sync a directory.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(bytes)
    }

    fn abort(self: Box<Self>) -> Result<(), StorageError> {
        fs::remove_file(&self.part_path).map_err(self.err("remove"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(storage: &dyn RecordingStorage, key: &str) -> Vec<u8> {
        let mut out = Vec::new();
        storage.open(key).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn write_finish_read_delete() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let mut sink = storage.create("2026/11/27/call-1.wav", b"HHHH").unwrap();
        assert_eq!(sink.key(), "2026/11/27/call-1.wav");
        sink.write(b"body").unwrap();
        sink.write(b"-more").unwrap();
        let part = dir.path().join("2026/11/27/call-1.wav.part");
        assert!(part.exists());
        assert!(matches!(
            storage.open("2026/11/27/call-1.wav"),
            Err(StorageError::NotFound { .. })
        ));
        assert_eq!(sink.finish(b"hdr!").unwrap(), 13);
        assert!(!part.exists());
        assert_eq!(
            read_all(&storage, "2026/11/27/call-1.wav"),
            b"hdr!body-more"
        );
        storage.delete("2026/11/27/call-1.wav").unwrap();
        assert!(matches!(
            storage.open("2026/11/27/call-1.wav"),
            Err(StorageError::NotFound { .. })
        ));
        assert!(matches!(
            storage.delete("2026/11/27/call-1.wav"),
            Err(StorageError::NotFound { .. })
        ));
    }

    #[test]
    fn header_must_keep_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let sink = storage.create("a.wav", b"1234").unwrap();
        let err = sink.finish(b"12345").unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::HeaderSize {
                    reserved: 4,
                    got: 5,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(dir.path().join("a.wav.part").exists());
        assert!(!dir.path().join("a.wav").exists());
    }

    #[test]
    fn dropped_sink_leaves_only_a_part_and_abort_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let mut sink = storage.create("x.wav", b"h").unwrap();
        sink.write(b"data").unwrap();
        drop(sink);
        assert_eq!(fs::read(dir.path().join("x.wav.part")).unwrap(), b"hdata");
        assert!(matches!(
            storage.open("x.wav"),
            Err(StorageError::NotFound { .. })
        ));
        let sink = storage.create("y.wav", b"h").unwrap();
        sink.abort().unwrap();
        assert!(!dir.path().join("y.wav.part").exists());
    }

    #[test]
    fn keys_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let sink = storage.create("k.wav", b"").unwrap();
        assert!(matches!(
            storage.create("k.wav", b""),
            Err(StorageError::AlreadyExists { .. })
        ));
        sink.finish(b"").unwrap();
        assert!(matches!(
            storage.create("k.wav", b""),
            Err(StorageError::AlreadyExists { .. })
        ));
    }

    fn test_keys() -> Arc<MasterKeyRing> {
        Arc::new(
            MasterKeyRing::parse("t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "test")
                .unwrap(),
        )
    }

    #[test]
    fn encrypted_storage_never_writes_plaintext_and_reads_back_the_final_header() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::encrypted(dir.path(), test_keys());
        let mut sink = storage
            .create("day/call-1.wav", b"RIFF-provisional")
            .unwrap();
        let body: Vec<u8> = b"audio-sample-bytes-".repeat(10_000);
        for piece in body.chunks(32_000) {
            sink.write(piece).unwrap();
        }
        let part = dir.path().join("day/call-1.wav.enc.part");
        let on_disk = fs::read(&part).unwrap();
        assert!(on_disk.starts_with(b"LCENC1"));
        assert!(!on_disk.windows(19).any(|w| w == b"audio-sample-bytes-"));
        assert!(!on_disk.windows(4).any(|w| w == b"RIFF"));
        assert!(matches!(
            storage.open("day/call-1.wav"),
            Err(StorageError::NotFound { .. })
        ));
        let bytes = sink.finish(b"RIFF-final-hdr!!").unwrap();
        assert_eq!(bytes, 16 + body.len() as u64);
        assert!(!part.exists());
        let path = dir.path().join("day/call-1.wav.enc");
        assert_eq!(storage.path_of("day/call-1.wav").unwrap(), path);
        let on_disk = fs::read(&path).unwrap();
        assert!(
            !on_disk.windows(4).any(|w| w == b"RIFF"),
            "header encrypted"
        );
        assert!(!dir.path().join("day/call-1.wav").exists());
        let mut expected = b"RIFF-final-hdr!!".to_vec();
        expected.extend_from_slice(&body);
        assert_eq!(read_all(&storage, "day/call-1.wav"), expected);
        // A plain store does not see it; one with another key cannot read it.
        assert!(matches!(
            FsStorage::new(dir.path()).open("day/call-1.wav"),
            Err(StorageError::NotFound { .. })
        ));
        let other =
            MasterKeyRing::parse("t2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=", "t").unwrap();
        let err = FsStorage::encrypted(dir.path(), Arc::new(other))
            .open("day/call-1.wav")
            .err()
            .unwrap();
        assert!(err.to_string().contains("\"t1\""), "{err}");
        storage.delete("day/call-1.wav").unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn tampered_encrypted_recording_fails_to_read() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::encrypted(dir.path(), test_keys());
        let mut sink = storage.create("t.wav", b"HDR").unwrap();
        sink.write(&[7u8; 100_000]).unwrap();
        sink.finish(b"hdr").unwrap();
        let path = dir.path().join("t.wav.enc");
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 30] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let mut out = Vec::new();
        let err = storage
            .open("t.wav")
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(out.len() < 100_003, "unverified bytes returned");
        bytes[n - 30] ^= 1;
        fs::write(&path, &bytes[..n - 1]).unwrap();
        assert!(
            storage
                .open("t.wav")
                .unwrap()
                .read_to_end(&mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn unsafe_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path().join("root"));
        for key in [
            "",
            "/etc/passwd",
            "../escape.wav",
            "a/../../b.wav",
            "a/./b.wav",
            "a//b.wav",
            "trailing/",
            ".hidden",
            "x.wav.part",
            "back\\slash.wav",
            "sp ace.wav",
            "nul\0.wav",
            "ünïcode.wav",
        ] {
            let err = storage
                .create(key, b"")
                .err()
                .unwrap_or_else(|| panic!("{key:?} accepted"));
            assert!(
                matches!(err, StorageError::InvalidKey { .. }),
                "{key:?}: {err:?}"
            );
            assert!(matches!(
                storage.open(key),
                Err(StorageError::InvalidKey { .. })
            ));
            assert!(matches!(
                storage.delete(key),
                Err(StorageError::InvalidKey { .. })
            ));
        }
        assert!(validate_key(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
        validate_key("tenant-1/2026-11-27/call_42.v2.wav").unwrap();
        assert!(!dir.path().join("escape.wav").exists());
    }
}
