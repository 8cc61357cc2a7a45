//! Encryption at rest: AES-256-GCM (ring) under a ring of master keys, for recordings (a
//! streaming chunked format) and for small secrets stored in the database.
//!
//! # Master keys
//!
//! A [`MasterKeyRing`] maps a key id to a 32-byte key and names the current key, used for new
//! data. Its text form is `id:BASE64,id:BASE64` (commas or newlines between entries; the last
//! entry is current), e.g. `k2026a:…,k2026b:…`. Ids are 1 to 64 characters of
//! `[A-Za-z0-9_-]`. Rotation = append a new entry; older entries stay to open older data.
//! Errors name the key id or the entry's position, never key material.
//!
//! # Object format (`LCENC1`)
//!
//! Every object gets its own random 256-bit data key, wrapped under the current master key.
//!
//! ```text
//! header:
//!   6   magic "LCENC1"
//!   1   version = 1
//!   1   n = length of the master key id
//!   n   master key id (ASCII)
//!   7   nonce prefix (random)
//!   12  wrap nonce (random)
//!   48  data key sealed with AES-256-GCM under the master key
//!       (AAD = every header byte before it, so any header change fails to unwrap)
//! chunks, until end of file:
//!   AES-256-GCM(data key, nonce = prefix(7) || counter(u32 BE) || last(1 byte: 0 or 1),
//!               AAD = empty) of 64 KiB of plaintext, + 16-byte tag
//! ```
//!
//! Every chunk but the last holds exactly [`CHUNK_LEN`] bytes of plaintext; the last holds 0 to
//! [`CHUNK_LEN`] and is sealed with last = 1. The counter starts at 0. A reader therefore
//! detects truncation (no chunk with last = 1, or a cut inside a chunk), reordering or
//! duplication (counter mismatch), appended data (nothing may follow the last chunk) and any
//! bit flip (tag), and it returns a chunk's bytes only after its tag verified.
//!
//! Formats whose header is final only at the end (WAV sizes) use
//! [`EncryptingWriter::new_patchable`]: chunk 0 stays in memory (zeros are written in its
//! place), and [`EncryptingWriter::finish_with_prefix`] overwrites the start of the plaintext,
//! seals chunk 0 once and seeks back to write it. Plaintext never reaches the disk.
//!
//! # Secrets
//!
//! [`seal_secret`] / [`open_secret`] encrypt small values (provider API keys) directly under the
//! current master key: `lcs1:<key id>:<base64url(nonce(12) || ciphertext || tag)>`. The AAD is
//! `lcs1:<key id>:` followed by the caller's AAD; build it with [`secret_aad`] from the tenant
//! and the field, so a sealed value copied to another tenant or column does not open.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;

/// Plaintext bytes in every chunk but the last.
pub const CHUNK_LEN: usize = 64 * 1024;

/// First bytes of every encrypted object.
pub const MAGIC: &[u8; 6] = b"LCENC1";

/// Format version written after the magic.
pub const VERSION: u8 = 1;

/// Suffix of an encrypted file on disk (`call-1.wav` is stored as `call-1.wav.enc`).
pub const ENC_SUFFIX: &str = ".enc";

/// Length of a master or data key.
pub const KEY_LEN: usize = 32;

/// Longest master key id.
pub const MAX_KEY_ID_LEN: usize = 64;

/// AES-GCM tag length.
const TAG_LEN: usize = 16;
/// Random part of every chunk nonce.
const PREFIX_LEN: usize = 7;
/// A sealed chunk of full size.
const SEALED_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;
/// Prefix of a sealed secret.
const SECRET_TAG: &str = "lcs1";

/// Why an at-rest operation failed; never carries key material.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AtRestError {
    /// A key ring entry is malformed.
    #[error("master key entry {index} ({id}): {reason}")]
    BadKeyEntry {
        /// 1-based position of the entry.
        index: usize,
        /// The entry's key id, or `no id` when it has none.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two entries share a key id.
    #[error("master key id {0:?} appears twice in the key ring")]
    DuplicateKeyId(String),
    /// The key ring text holds no key.
    #[error("the master key ring from {0} holds no key")]
    EmptyKeyRing(String),
    /// The key ring could not be read from its source.
    #[error("cannot read the master key ring from {what}: {reason}")]
    KeySource {
        /// The env var or file.
        what: String,
        /// Why.
        reason: String,
    },
    /// The object was encrypted under a master key id the ring does not hold.
    #[error(
        "encrypted under master key id {id:?}, which is not in the key ring (it holds {known})"
    )]
    UnknownKeyId {
        /// The id named by the object.
        id: String,
        /// The ids the ring holds, comma-separated.
        known: String,
    },
    /// The data does not start with the `LCENC1` magic.
    #[error("not an LCENC1 encrypted object")]
    NotEncrypted,
    /// The object uses a format version this build cannot read.
    #[error("unsupported LCENC1 version {0}")]
    UnsupportedVersion(u8),
    /// The object or secret is cut short or malformed.
    #[error("encrypted data is truncated or malformed: {0}")]
    Malformed(&'static str),
    /// Authentication failed: tampering, truncation, reordering or a wrong key.
    #[error("authentication failed on {0} (tampered, truncated, reordered or wrong key)")]
    Tampered(String),
    /// The object holds more chunks than the 32-bit counter can number.
    #[error("encrypted object too large (chunk counter exhausted)")]
    TooLarge,
    /// `finish_with_prefix` cannot apply its patch.
    #[error("header patch of {patch} bytes does not fit: {reason}")]
    BadPatch {
        /// Patch length.
        patch: usize,
        /// Why.
        reason: &'static str,
    },
    /// The system random generator failed.
    #[error("system random generator failed")]
    Random,
    /// Reading or writing the underlying stream failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<AtRestError> for io::Error {
    fn from(e: AtRestError) -> io::Error {
        match e {
            AtRestError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// One master key: its id and the AEAD key.
struct MasterKey {
    /// Id stored in every object sealed under this key.
    id: String,
    /// The AES-256-GCM key.
    key: LessSafeKey,
}

/// Master keys by id, the last one current; `Debug` shows ids only.
pub struct MasterKeyRing {
    /// Entries in file order; never empty; the last is current.
    keys: Vec<MasterKey>,
}

impl fmt::Debug for MasterKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeyRing")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .field("current", &self.current_id())
            .finish()
    }
}

impl MasterKeyRing {
    /// Parses `id:BASE64` entries separated by commas or newlines, `#` comments allowed (last
    /// entry = current); `source` names where the text came from, for the empty-ring error.
    pub fn parse(text: &str, source: &str) -> Result<MasterKeyRing, AtRestError> {
        let mut keys: Vec<MasterKey> = Vec::new();
        // `#` starts a comment to the end of its line (base64 never holds `#`).
        let entries = text
            .lines()
            .flat_map(|line| line.split('#').next().unwrap_or("").split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty());
        for (i, entry) in entries.enumerate() {
            let index = i + 1;
            let bad = |id: &str, reason| AtRestError::BadKeyEntry {
                index,
                id: id.to_string(),
                reason,
            };
            let Some((id, b64)) = entry.split_once(':') else {
                return Err(bad("no id", "expected id:BASE64"));
            };
            let id = id.trim();
            if !valid_key_id(id) {
                let shown = if id.len() <= MAX_KEY_ID_LEN && id.is_ascii() {
                    id
                } else {
                    "invalid id"
                };
                return Err(bad(
                    shown,
                    "key id must be 1-64 characters of A-Z a-z 0-9 _ -",
                ));
            }
            let mut bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| bad(id, "key is not valid base64"))?;
            if bytes.len() != KEY_LEN {
                bytes.fill(0);
                return Err(bad(id, "key must be 32 bytes (44 base64 characters)"));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(AtRestError::DuplicateKeyId(id.to_string()));
            }
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| bad(id, "key rejected by AES-256-GCM"))?;
            bytes.fill(0);
            keys.push(MasterKey {
                id: id.to_string(),
                key: LessSafeKey::new(key),
            });
        }
        if keys.is_empty() {
            return Err(AtRestError::EmptyKeyRing(source.to_string()));
        }
        Ok(MasterKeyRing { keys })
    }

    /// Reads the ring from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<MasterKeyRing, AtRestError> {
        let what = format!("environment variable {var}");
        let text = std::env::var(var).map_err(|e| AtRestError::KeySource {
            what: what.clone(),
            reason: match e {
                std::env::VarError::NotPresent => "not set".into(),
                std::env::VarError::NotUnicode(_) => "not valid UTF-8".into(),
            },
        })?;
        MasterKeyRing::parse(&text, &what)
    }

    /// Reads the ring from a key file.
    pub fn from_file(path: &Path) -> Result<MasterKeyRing, AtRestError> {
        let what = format!("file {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| AtRestError::KeySource {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        MasterKeyRing::parse(&text, &what)
    }

    /// Id of the key used for new data.
    pub fn current_id(&self) -> &str {
        &self.current().id
    }

    /// Every key id, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    fn current(&self) -> &MasterKey {
        // `parse` never builds an empty ring.
        &self.keys[self.keys.len() - 1]
    }

    fn get(&self, id: &str) -> Result<&LessSafeKey, AtRestError> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .map(|k| &k.key)
            .ok_or_else(|| AtRestError::UnknownKeyId {
                id: id.to_string(),
                known: self.ids().collect::<Vec<_>>().join(", "),
            })
    }
}

/// Whether `id` is a valid master key id.
fn valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A new random key ring entry `k<unix seconds>-<6 hex>:BASE64`, to append when rotating.
pub fn generate_key_entry() -> Result<String, AtRestError> {
    let rng = SystemRandom::new();
    let mut key = [0u8; KEY_LEN];
    let mut tag = [0u8; 3];
    rng.fill(&mut key).map_err(|_| AtRestError::Random)?;
    rng.fill(&mut tag).map_err(|_| AtRestError::Random)?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Time orders ids for humans; the random tag keeps two keys made in one second apart.
    let tag = tag.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let entry = format!("k{secs}-{tag}:{}", STANDARD.encode(key));
    key.fill(0);
    Ok(entry)
}

/// Creates `path` (mode 0600, never overwriting) holding one new random key; returns its ring.
pub fn generate_key_file(path: &Path) -> Result<MasterKeyRing, AtRestError> {
    let what = format!("file {}", path.display());
    let source = |e: io::Error| AtRestError::KeySource {
        what: what.clone(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(source)?;
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(source)?;
    let entry = generate_key_entry()?;
    let text = format!(
        "# LeadsCaller master key ring: id:BASE64 entries, the last one is current.\n{entry}\n"
    );
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(source)?;
    MasterKeyRing::parse(&text, &what)
}

/// 7 random bytes, a chunk counter and the last flag, as a GCM nonce.
fn chunk_nonce(prefix: &[u8; PREFIX_LEN], counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&counter.to_be_bytes());
    n[NONCE_LEN - 1] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Streams plaintext into an `LCENC1` object; call [`finish`](Self::finish) (or
/// [`finish_with_prefix`](Self::finish_with_prefix)) or the object stays truncated.
pub struct EncryptingWriter<W: Write> {
    /// Where the encrypted object goes.
    inner: W,
    /// This object's data key.
    key: LessSafeKey,
    /// Random nonce prefix of this object.
    prefix: [u8; PREFIX_LEN],
    /// Number of the chunk being filled.
    counter: u32,
    /// Plaintext of the chunk being filled (sealed in place).
    buf: Vec<u8>,
    /// Length of the header, i.e. where chunk 0 starts.
    header_len: u64,
    /// Chunk 0 may still be patched: it is kept in memory until the end.
    patchable: bool,
    /// Plaintext of chunk 0 once full, when patchable.
    first: Option<Vec<u8>>,
}

impl<W: Write> fmt::Debug for EncryptingWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptingWriter")
            .field("counter", &self.counter)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write> EncryptingWriter<W> {
    /// Writes the header under the ring's current key; plaintext follows through `Write`.
    pub fn new(inner: W, ring: &MasterKeyRing) -> Result<EncryptingWriter<W>, AtRestError> {
        EncryptingWriter::with_mode(inner, ring, false)
    }

    fn with_mode(
        mut inner: W,
        ring: &MasterKeyRing,
        patchable: bool,
    ) -> Result<EncryptingWriter<W>, AtRestError> {
        let rng = SystemRandom::new();
        let master = ring.current();
        let mut data_key = vec![0u8; KEY_LEN];
        let mut prefix = [0u8; PREFIX_LEN];
        let mut wrap_nonce = [0u8; NONCE_LEN];
        for buf in [&mut data_key[..], &mut prefix[..], &mut wrap_nonce[..]] {
            rng.fill(buf).map_err(|_| AtRestError::Random)?;
        }
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &data_key).map_err(|_| AtRestError::Random)?,
        );
        let mut header = Vec::with_capacity(8 + MAX_KEY_ID_LEN + PREFIX_LEN + NONCE_LEN + 48);
        header.extend_from_slice(MAGIC);
        header.push(VERSION);
        header.push(master.id.len() as u8);
        header.extend_from_slice(master.id.as_bytes());
        header.extend_from_slice(&prefix);
        header.extend_from_slice(&wrap_nonce);
        master
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(wrap_nonce),
                Aad::from(&header),
                &mut data_key,
            )
            .map_err(|_| AtRestError::Random)?;
        header.extend_from_slice(&data_key);
        inner.write_all(&header)?;
        Ok(EncryptingWriter {
            inner,
            key,
            prefix,
            counter: 0,
            buf: Vec::with_capacity(SEALED_CHUNK_LEN),
            header_len: header.len() as u64,
            patchable,
            first: None,
        })
    }

    /// Seals the buffered chunk (not the last one) and writes it, or keeps chunk 0 aside when
    /// patchable.
    fn seal_full_chunk(&mut self) -> io::Result<()> {
        if self.patchable && self.counter == 0 {
            let first = std::mem::replace(&mut self.buf, Vec::with_capacity(SEALED_CHUNK_LEN));
            self.first = Some(first);
            // Zeros hold chunk 0's place until the final header is known.
            static ZEROS: [u8; SEALED_CHUNK_LEN] = [0; SEALED_CHUNK_LEN];
            self.inner.write_all(&ZEROS)?;
        } else {
            self.seal_buf(false)?;
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.counter = self.counter.checked_add(1).ok_or(AtRestError::TooLarge)?;
        Ok(())
    }

    /// Seals `self.buf` in place as chunk `self.counter`.
    fn seal_buf(&mut self, last: bool) -> Result<(), AtRestError> {
        seal_chunk(&self.key, &self.prefix, self.counter, last, &mut self.buf)
    }

    /// Seals the last chunk and returns the inner writer (flushed).
    pub fn finish(mut self) -> Result<W, AtRestError> {
        if self.first.is_some() {
            return Err(AtRestError::BadPatch {
                patch: 0,
                reason: "a patchable writer must end with finish_with_prefix",
            });
        }
        self.seal_buf(true)?;
        self.inner.write_all(&self.buf)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

fn seal_chunk(
    key: &LessSafeKey,
    prefix: &[u8; PREFIX_LEN],
    counter: u32,
    last: bool,
    buf: &mut Vec<u8>,
) -> Result<(), AtRestError> {
    key.seal_in_place_append_tag(chunk_nonce(prefix, counter, last), Aad::empty(), buf)
        .map_err(|_| AtRestError::TooLarge)
}

impl<W: Write + Seek> EncryptingWriter<W> {
    /// Like [`new`](Self::new), but the first bytes of the plaintext can be replaced at the end
    /// with [`finish_with_prefix`](Self::finish_with_prefix) (chunk 0 is kept in memory).
    pub fn new_patchable(
        inner: W,
        ring: &MasterKeyRing,
    ) -> Result<EncryptingWriter<W>, AtRestError> {
        EncryptingWriter::with_mode(inner, ring, true)
    }

    /// Replaces the first `prefix.len()` plaintext bytes with `prefix`, seals the last chunk,
    /// writes chunk 0 in its place and returns the inner writer (flushed, at the end).
    pub fn finish_with_prefix(mut self, prefix: &[u8]) -> Result<W, AtRestError> {
        let bad = |reason| AtRestError::BadPatch {
            patch: prefix.len(),
            reason,
        };
        if !self.patchable {
            return Err(bad("the writer was not created with new_patchable"));
        }
        let target = self.first.as_mut().unwrap_or(&mut self.buf);
        if target.len() < prefix.len() {
            return Err(bad("longer than the data written"));
        }
        target[..prefix.len()].copy_from_slice(prefix);
        self.seal_buf(true)?;
        self.inner.write_all(&self.buf)?;
        if let Some(mut first) = self.first.take() {
            seal_chunk(&self.key, &self.prefix, 0, false, &mut first)?;
            self.inner.seek(SeekFrom::Start(self.header_len))?;
            self.inner.write_all(&first)?;
            self.inner.seek(SeekFrom::End(0))?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            // A full chunk is sealed only when more data arrives: the last one, even if full,
            // is sealed by `finish` with the last flag.
            if self.buf.len() == CHUNK_LEN {
                self.seal_full_chunk()?;
            }
            let take = (CHUNK_LEN - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads an `LCENC1` object, returning each chunk's plaintext only after it verified; any
/// tampering or truncation is an `InvalidData` error wrapping [`AtRestError`].
pub struct DecryptingReader<R: Read> {
    /// The encrypted object.
    inner: R,
    /// This object's data key.
    key: LessSafeKey,
    /// Nonce prefix from the header.
    prefix: [u8; PREFIX_LEN],
    /// Number of the next chunk to read.
    counter: u32,
    /// The current chunk: ciphertext, then plaintext in `buf[pos..end]`.
    buf: Vec<u8>,
    /// Next plaintext byte to return.
    pos: usize,
    /// End of the plaintext in `buf`.
    end: usize,
    /// A byte read past the current chunk, which proves it was not the last.
    peek: Option<u8>,
    /// The last chunk verified: nothing more to read.
    done: bool,
    /// A chunk failed: every later read fails too.
    failed: bool,
}

impl<R: Read> fmt::Debug for DecryptingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptingReader")
            .field("counter", &self.counter)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R: Read> DecryptingReader<R> {
    /// Reads and authenticates the header, unwrapping the data key with the ring.
    pub fn new(mut inner: R, ring: &MasterKeyRing) -> Result<DecryptingReader<R>, AtRestError> {
        let mut fixed = [0u8; 8];
        read_exact_or(&mut inner, &mut fixed, "header")?;
        if &fixed[..6] != MAGIC {
            return Err(AtRestError::NotEncrypted);
        }
        if fixed[6] != VERSION {
            return Err(AtRestError::UnsupportedVersion(fixed[6]));
        }
        let id_len = usize::from(fixed[7]);
        let mut header = fixed.to_vec();
        header.resize(8 + id_len + PREFIX_LEN + NONCE_LEN, 0);
        read_exact_or(&mut inner, &mut header[8..], "header")?;
        let id = std::str::from_utf8(&header[8..8 + id_len])
            .ok()
            .filter(|id| valid_key_id(id))
            .ok_or(AtRestError::Malformed("bad master key id in header"))?;
        let master = ring.get(id)?;
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&header[8 + id_len..8 + id_len + PREFIX_LEN]);
        let mut wrap_nonce = [0u8; NONCE_LEN];
        wrap_nonce.copy_from_slice(&header[8 + id_len + PREFIX_LEN..]);
        let mut wrapped = [0u8; KEY_LEN + TAG_LEN];
        read_exact_or(&mut inner, &mut wrapped, "header")?;
        let data_key = master
            .open_in_place(
                Nonce::assume_unique_for_key(wrap_nonce),
                Aad::from(&header),
                &mut wrapped,
            )
            .map_err(|_| AtRestError::Tampered("the header (wrapped data key)".into()))?;
        let key = UnboundKey::new(&AES_256_GCM, data_key)
            .map_err(|_| AtRestError::Malformed("bad data key"))?;
        wrapped.fill(0);
        Ok(DecryptingReader {
            inner,
            key: LessSafeKey::new(key),
            prefix,
            counter: 0,
            buf: Vec::with_capacity(SEALED_CHUNK_LEN + 1),
            pos: 0,
            end: 0,
            peek: None,
            done: false,
            failed: false,
        })
    }

    /// Reads, verifies and decrypts the next chunk into `buf`.
    fn next_chunk(&mut self) -> Result<(), AtRestError> {
        self.buf.clear();
        self.buf.extend(self.peek.take());
        let want = (SEALED_CHUNK_LEN + 1 - self.buf.len()) as u64;
        (&mut self.inner).take(want).read_to_end(&mut self.buf)?;
        let last = self.buf.len() <= SEALED_CHUNK_LEN;
        if !last {
            self.peek = self.buf.pop();
        }
        if self.buf.len() < TAG_LEN {
            return Err(AtRestError::Tampered(format!(
                "chunk {} (object truncated)",
                self.counter
            )));
        }
        let nonce = chunk_nonce(&self.prefix, self.counter, last);
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut self.buf)
            .map_err(|_| AtRestError::Tampered(format!("chunk {}", self.counter)))?;
        self.pos = 0;
        self.end = plain.len();
        self.done = last;
        self.counter = self.counter.checked_add(1).ok_or(AtRestError::TooLarge)?;
        Ok(())
    }
}

impl<R: Read> Read for DecryptingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.end {
            if self.failed {
                return Err(AtRestError::Tampered("an earlier chunk".into()).into());
            }
            if self.done || out.is_empty() {
                return Ok(0);
            }
            if let Err(e) = self.next_chunk() {
                self.failed = true;
                return Err(e.into());
            }
        }
        let n = (self.end - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `read_exact` whose early end of file is a "truncated" error naming `what`.
fn read_exact_or(r: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), AtRestError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => AtRestError::Malformed(what),
        _ => AtRestError::Io(e),
    })
}

/// Whether `data` starts like an `LCENC1` object.
pub fn is_encrypted(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

/// Encrypts `plaintext` into a new `LCENC1` object in memory.
pub fn encrypt_to_vec(ring: &MasterKeyRing, plaintext: &[u8]) -> Result<Vec<u8>, AtRestError> {
    let mut w = EncryptingWriter::new(Vec::new(), ring)?;
    w.write_all(plaintext)?;
    w.finish()
}

/// Decrypts a whole `LCENC1` object held in memory.
pub fn decrypt_to_vec(ring: &MasterKeyRing, object: &[u8]) -> Result<Vec<u8>, AtRestError> {
    let mut out = Vec::new();
    DecryptingReader::new(object, ring)?
        .read_to_end(&mut out)
        .map_err(unwrap_io)?;
    Ok(out)
}

/// Recovers the [`AtRestError`] a `Read` error carries.
pub fn unwrap_io(e: io::Error) -> AtRestError {
    if e.get_ref().is_some_and(|inner| inner.is::<AtRestError>()) {
        if let Some(inner) = e.into_inner()
            && let Ok(at_rest) = inner.downcast::<AtRestError>()
        {
            return *at_rest;
        }
        return AtRestError::Malformed("unreadable error");
    }
    AtRestError::Io(e)
}

/// The AAD that binds a sealed secret to its tenant and field (length-prefixed, unambiguous).
pub fn secret_aad(tenant: &str, field: &str) -> Vec<u8> {
    format!("{}:{tenant}:{field}", tenant.len()).into_bytes()
}

/// The AAD actually given to GCM: the format tag and key id, then the caller's.
fn full_secret_aad(key_id: &str, aad: &[u8]) -> Vec<u8> {
    let mut v = format!("{SECRET_TAG}:{key_id}:").into_bytes();
    v.extend_from_slice(aad);
    v
}

/// Seals a small secret under the current master key: `lcs1:<key id>:<base64url>`.
pub fn seal_secret(
    ring: &MasterKeyRing,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<String, AtRestError> {
    let master = ring.current();
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| AtRestError::Random)?;
    let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    buf.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    master
        .key
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(full_secret_aad(&master.id, aad)),
            &mut body,
        )
        .map_err(|_| AtRestError::TooLarge)?;
    buf.extend_from_slice(&body);
    Ok(format!(
        "{SECRET_TAG}:{}:{}",
        master.id,
        URL_SAFE_NO_PAD.encode(&buf)
    ))
}

/// Opens a secret sealed by [`seal_secret`] with the same `aad`.
pub fn open_secret(ring: &MasterKeyRing, aad: &[u8], sealed: &str) -> Result<Vec<u8>, AtRestError> {
    let mut parts = sealed.splitn(3, ':');
    let (Some(SECRET_TAG), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AtRestError::Malformed("not an lcs1:<key id>:<data> secret"));
    };
    let key = ring.get(id)?;
    let raw = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| AtRestError::Malformed("secret is not base64url"))?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(AtRestError::Malformed("secret too short"));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&raw[..NONCE_LEN]);
    let mut body = raw[NONCE_LEN..].to_vec();
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(full_secret_aad(id, aad)),
            &mut body,
        )
        .map_err(|_| AtRestError::Tampered("the secret (or its tenant/field)".into()))?;
    let n = plain.len();
    body.truncate(n);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "old:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "new:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    fn ring() -> MasterKeyRing {
        MasterKeyRing::parse(K1, "test").unwrap()
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 7) as u8).collect()
    }

    fn header_len(id: &str) -> usize {
        8 + id.len() + PREFIX_LEN + NONCE_LEN + KEY_LEN + TAG_LEN
    }

    fn open_err(ring: &MasterKeyRing, obj: &[u8]) -> AtRestError {
        decrypt_to_vec(ring, obj).expect_err("tampered object opened")
    }

    #[test]
    fn round_trips_at_chunk_boundaries() {
        let r = ring();
        for n in [
            0,
            1,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            3 * CHUNK_LEN,
            5 * 1024 * 1024 + 7,
        ] {
            let plain = data(n);
            let obj = encrypt_to_vec(&r, &plain).unwrap();
            let chunks = n.div_ceil(CHUNK_LEN).max(1);
            assert_eq!(
                obj.len(),
                header_len("old") + n + chunks * TAG_LEN,
                "size {n}"
            );
            assert!(is_encrypted(&obj));
            assert_eq!(decrypt_to_vec(&r, &obj).unwrap(), plain, "size {n}");
        }
    }

    #[test]
    fn writes_in_odd_pieces_match_one_write() {
        let r = ring();
        let plain = data(3 * CHUNK_LEN + 100);
        let mut w = EncryptingWriter::new(Vec::new(), &r).unwrap();
        for piece in plain.chunks(7777) {
            w.write_all(piece).unwrap();
        }
        let obj = w.finish().unwrap();
        let mut reader = DecryptingReader::new(&obj[..], &r).unwrap();
        let mut out = Vec::new();
        let mut small = [0u8; 1000];
        loop {
            let n = reader.read(&mut small).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&small[..n]);
        }
        assert_eq!(out, plain);
    }

    #[test]
    fn ciphertext_hides_the_plaintext_and_objects_differ() {
        let r = ring();
        let plain = vec![b'A'; 1000];
        let a = encrypt_to_vec(&r, &plain).unwrap();
        let b = encrypt_to_vec(&r, &plain).unwrap();
        assert_ne!(a, b, "one random data key and nonce prefix per object");
        assert!(!a.windows(16).any(|w| w == [b'A'; 16]));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let r = ring();
        let obj = encrypt_to_vec(&r, &data(40)).unwrap();
        for byte in 0..obj.len() {
            for bit in 0..8 {
                let mut bad = obj.clone();
                bad[byte] ^= 1 << bit;
                let _ = open_err(&r, &bad);
            }
        }
    }

    #[test]
    fn truncation_is_detected_at_and_inside_chunk_boundaries() {
        let r = ring();
        let obj = encrypt_to_vec(&r, &data(2 * CHUNK_LEN + 10)).unwrap();
        let h = header_len("old");
        for cut in [
            obj.len() - 1,
            h + SEALED_CHUNK_LEN,       // right after chunk 0
            h + 2 * SEALED_CHUNK_LEN,   // right after chunk 1
            h + SEALED_CHUNK_LEN + 100, // inside chunk 1
            h + SEALED_CHUNK_LEN - 1,   // inside chunk 0
            h,                          // header only
            h - 1,                      // inside the header
            3,
        ] {
            let err = open_err(&r, &obj[..cut]);
            assert!(
                matches!(err, AtRestError::Tampered(_) | AtRestError::Malformed(_)),
                "cut at {cut}: {err}"
            );
        }
        // A full-size last chunk cut off exactly at its boundary is detected too.
        let obj = encrypt_to_vec(&r, &data(2 * CHUNK_LEN)).unwrap();
        let err = open_err(&r, &obj[..h + SEALED_CHUNK_LEN]);
        assert!(matches!(err, AtRestError::Tampered(_)), "{err}");
        // Appended bytes are refused as well.
        let mut longer = obj.clone();
        longer.push(0);
        let _ = open_err(&r, &longer);
    }

    #[test]
    fn swapped_and_duplicated_chunks_are_detected() {
        let r = ring();
        let obj = encrypt_to_vec(&r, &data(3 * CHUNK_LEN + 5)).unwrap();
        let h = header_len("old");
        let chunk = |i: usize| &obj[h + i * SEALED_CHUNK_LEN..h + (i + 1) * SEALED_CHUNK_LEN];
        let tail = &obj[h + 3 * SEALED_CHUNK_LEN..];
        let mut swapped = obj[..h].to_vec();
        for i in [1, 0, 2] {
            swapped.extend_from_slice(chunk(i));
        }
        swapped.extend_from_slice(tail);
        assert!(matches!(open_err(&r, &swapped), AtRestError::Tampered(m) if m == "chunk 0"));
        let mut duplicated = obj[..h].to_vec();
        for i in [0, 1, 1, 2] {
            duplicated.extend_from_slice(chunk(i));
        }
        duplicated.extend_from_slice(tail);
        assert!(matches!(open_err(&r, &duplicated), AtRestError::Tampered(m) if m == "chunk 2"));
        // A chunk spliced in from another object of the same key does not open either.
        let other = encrypt_to_vec(&r, &data(3 * CHUNK_LEN + 5)).unwrap();
        let mut spliced = obj.clone();
        spliced[h..h + SEALED_CHUNK_LEN].copy_from_slice(&other[h..h + SEALED_CHUNK_LEN]);
        let _ = open_err(&r, &spliced);
    }

    #[test]
    fn unknown_key_id_is_named_and_rotation_keeps_old_data_readable() {
        let old = ring();
        let obj = encrypt_to_vec(&old, b"call audio").unwrap();
        let only_new = MasterKeyRing::parse(K2, "test").unwrap();
        let err = open_err(&only_new, &obj);
        assert!(
            matches!(&err, AtRestError::UnknownKeyId { id, .. } if id == "old"),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("\"old\"") && msg.contains("new"), "{msg}");
        let rotated = MasterKeyRing::parse(&format!("{K1},{K2}"), "test").unwrap();
        assert_eq!(rotated.current_id(), "new");
        assert_eq!(decrypt_to_vec(&rotated, &obj).unwrap(), b"call audio");
        let fresh = encrypt_to_vec(&rotated, b"later call").unwrap();
        assert_eq!(&fresh[8..11], b"new", "new data uses the current key");
        assert_eq!(decrypt_to_vec(&rotated, &fresh).unwrap(), b"later call");
        assert!(matches!(
            open_err(&old, &fresh),
            AtRestError::UnknownKeyId { .. }
        ));
    }

    #[test]
    fn not_encrypted_and_future_versions_are_refused() {
        let r = ring();
        assert!(matches!(
            open_err(&r, b"RIFF....WAVEfmt "),
            AtRestError::NotEncrypted
        ));
        let mut obj = encrypt_to_vec(&r, b"x").unwrap();
        obj[6] = 2;
        assert!(matches!(
            open_err(&r, &obj),
            AtRestError::UnsupportedVersion(2)
        ));
    }

    #[test]
    fn key_ring_errors_name_the_id_never_the_key() {
        let secret_part = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        for (text, want) in [
            (format!("good:{secret_part}=,short:AAAA"), "short"),
            (format!("k1:{secret_part}!"), "k1"),
            ("nocolon".to_string(), "entry 1"),
            (format!("bad id:{secret_part}="), "1-64 characters"),
        ] {
            let err = MasterKeyRing::parse(&text, "test").unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains(secret_part), "key material in {err}");
        }
        assert!(matches!(
            MasterKeyRing::parse(&format!("{K1}\n{K1}"), "t"),
            Err(AtRestError::DuplicateKeyId(id)) if id == "old"
        ));
        assert!(matches!(
            MasterKeyRing::parse(" \n# only a comment\n", "env X"),
            Err(AtRestError::EmptyKeyRing(_))
        ));
        let dbg = format!("{:?}", ring());
        assert!(dbg.contains("old") && !dbg.contains("AAEC"), "{dbg}");
        let err = MasterKeyRing::from_env("LEADSCALLER_TEST_UNSET_KEYS_VAR").unwrap_err();
        assert!(
            err.to_string()
                .contains("LEADSCALLER_TEST_UNSET_KEYS_VAR: not set")
        );
    }

    #[test]
    fn generated_key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let r = generate_key_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = MasterKeyRing::from_file(&path).unwrap();
        assert_eq!(again.current_id(), r.current_id());
        let obj = encrypt_to_vec(&r, b"abc").unwrap();
        assert_eq!(decrypt_to_vec(&again, &obj).unwrap(), b"abc");
        assert!(generate_key_file(&path).is_err(), "never overwrites a key");
        // Rotation by appending an entry to the file.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!("{K2}\n"));
        std::fs::write(&path, text).unwrap();
        let rotated = MasterKeyRing::from_file(&path).unwrap();
        assert_eq!(rotated.current_id(), "new");
        assert_eq!(decrypt_to_vec(&rotated, &obj).unwrap(), b"abc");
    }

    #[test]
    fn patched_prefix_replaces_the_start_without_plaintext_on_disk() {
        let r = ring();
        for n in [10, CHUNK_LEN, CHUNK_LEN + 1, 3 * CHUNK_LEN + 9] {
            let mut plain = data(n);
            plain[..4].copy_from_slice(b"TMP!");
            let mut w = EncryptingWriter::new_patchable(io::Cursor::new(Vec::new()), &r).unwrap();
            w.write_all(&plain).unwrap();
            let obj = w.finish_with_prefix(b"HDR:").unwrap().into_inner();
            plain[..4].copy_from_slice(b"HDR:");
            assert_eq!(decrypt_to_vec(&r, &obj).unwrap(), plain, "size {n}");
        }
        let mut w = EncryptingWriter::new_patchable(io::Cursor::new(Vec::new()), &r).unwrap();
        w.write_all(b"ab").unwrap();
        assert!(matches!(
            w.finish_with_prefix(b"abc"),
            Err(AtRestError::BadPatch { patch: 3, .. })
        ));
        // While chunk 0 is held back, the stream holds zeros where it goes.
        let mut w = EncryptingWriter::new_patchable(io::Cursor::new(Vec::new()), &r).unwrap();
        w.write_all(&vec![b'P'; 2 * CHUNK_LEN + 1]).unwrap();
        let h = header_len("old");
        let pending = w.inner.get_ref();
        assert!(pending[h..h + SEALED_CHUNK_LEN].iter().all(|&b| b == 0));
        assert!(!pending.windows(32).any(|x| x == [b'P'; 32]));
    }

    #[test]
    fn secrets_are_bound_to_tenant_and_field() {
        let r = MasterKeyRing::parse(&format!("{K1},{K2}"), "t").unwrap();
        let aad = secret_aad("tenant-1", "providers.openai.api_key");
        let sealed = seal_secret(&r, &aad, b"sk-test-123").unwrap();
        assert!(sealed.starts_with("lcs1:new:"), "{sealed}");
        assert!(!sealed.contains("sk-test"));
        assert_eq!(open_secret(&r, &aad, &sealed).unwrap(), b"sk-test-123");
        assert_ne!(sealed, seal_secret(&r, &aad, b"sk-test-123").unwrap());
        for other in [
            secret_aad("tenant-2", "providers.openai.api_key"),
            secret_aad("tenant-1", "providers.deepgram.api_key"),
            secret_aad("tenant-1:providers.openai", "api_key"),
        ] {
            assert!(matches!(
                open_secret(&r, &other, &sealed),
                Err(AtRestError::Tampered(_))
            ));
        }
        let mut chars: Vec<char> = sealed.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let flipped: String = chars.into_iter().collect();
        assert!(open_secret(&r, &aad, &flipped).is_err());
        let old_only = ring();
        assert!(matches!(
            open_secret(&old_only, &aad, &sealed),
            Err(AtRestError::UnknownKeyId { .. })
        ));
        assert!(matches!(
            open_secret(&r, &aad, "plain-text-key"),
            Err(AtRestError::Malformed(_))
        ));
        let renamed = sealed.replacen("lcs1:new:", "lcs1:old:", 1);
        assert!(open_secret(&r, &aad, &renamed).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn proptest_round_trip(
            plain in proptest::collection::vec(proptest::num::u8::ANY, 0..3 * CHUNK_LEN),
            piece in 1usize..100_000,
        ) {
            let r = ring();
            let mut w = EncryptingWriter::new(Vec::new(), &r).unwrap();
            for p in plain.chunks(piece) {
                w.write_all(p).unwrap();
            }
            let obj = w.finish().unwrap();
            proptest::prop_assert_eq!(decrypt_to_vec(&r, &obj).unwrap(), plain);
        }
    }
}
