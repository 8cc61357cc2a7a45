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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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

/// Recordings as files under a root directory: `<root>/<key>`, written as `<root>/<key>.part`.
#[derive(Debug, Clone)]
pub struct FsStorage {
    /// Directory that holds every recording; keys are paths below it.
    root: PathBuf,
}

impl FsStorage {
    /// A store rooted at `root` (created on first write if missing).
    pub fn new(root: impl Into<PathBuf>) -> FsStorage {
        FsStorage { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of the finished file for a validated key.
    fn final_path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Path of the in-progress file for a validated key.
    fn part_path(&self, key: &str) -> PathBuf {
        self.root.join(format!("{key}{PART_SUFFIX}"))
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
        let mut file = match OpenOptions::new()
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
        file.write_all(provisional_header)
            .map_err(io_err("write header"))?;
        Ok(Box::new(FsSink {
            key: key.to_string(),
            file,
            part_path,
            final_path,
            header_len: provisional_header.len(),
            bytes: provisional_header.len() as u64,
        }))
    }

    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        validate_key(key)?;
        match File::open(self.final_path(key)) {
            Ok(file) => Ok(Box::new(file)),
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

/// An open `<key>.part` file of [`FsStorage`].
#[derive(Debug)]
struct FsSink {
    /// The recording's key, for errors and [`RecordingSink::key`].
    key: String,
    /// The `.part` file, positioned at the end of the body.
    file: File,
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
        let result = self.file.write_all(body);
        result.map_err(self.err("write"))?;
        self.bytes += body.len() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>, header: &[u8]) -> Result<u64, StorageError> {
        if header.len() != self.header_len {
            return Err(StorageError::HeaderSize {
                key: self.key.clone(),
                reserved: self.header_len,
                got: header.len(),
            });
        }
        let result = self
            .file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.write_all(header));
        result.map_err(self.err("write final header"))?;
        // Data on disk before the name: a crash never leaves a complete-looking broken file.
        self.file.sync_all().map_err(self.err("sync"))?;
        if self.final_path.exists() {
            return Err(StorageError::AlreadyExists {
                key: self.key.clone(),
            });
        }
        fs::rename(&self.part_path, &self.final_path).map_err(self.err("rename"))?;
        if let Some(dir) = self.final_path.parent() {
            // Best effort: persists the rename; not every platform can sync a directory.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(self.bytes)
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
