//! SRTP and SRTCP protection for one leg (RFC 3711, RFC 6188, RFC 7714) keyed by SDES
//! (RFC 4568); sans-IO: bytes in, bytes out.
//!
//! The cryptography and the per-SSRC rollover/replay state come from `rtc-srtp`. This file
//! wraps it to close gaps that matter on a telephone network:
//! - the RTP header length is computed here (RFC 3550 §5.1) rather than from `rtc-rtp`'s
//!   parsed-and-re-sized header, which can disagree with the wire for odd extensions;
//! - SRTCP packets with the E bit clear are refused, because `rtc-srtp` returns them
//!   *without checking the authentication tag*;
//! - the replay window is our own: `rtc-srtp`'s arms itself on the first packet *checked*,
//!   so one forged packet ahead of a new stream could make its genuine packets look old;
//! - an unauthenticated packet never creates long-lived state: `rtc-srtp` allocates per-SSRC
//!   state before it verifies a packet, so unknown SSRCs are tried on a bounded probe context
//!   and only promoted once a packet authenticates (at most `MAX_INBOUND_SSRCS` of them);
//! - the MKI (RFC 3711 §3.1) is added and checked here (it is not authenticated, so it can be
//!   spliced in and out around the backend).
//!
//! Cost: `rtc-srtp` returns a fresh buffer per packet, so each call makes one allocation
//! inside the backend; `out` itself is reused.

use rtc_rtp::header::Header as BackendHeader;
use rtc_shared::error::Error as BackendError;
use rtc_shared::replay_detector::ReplayDetector;
use rtc_srtp::context::Context;
use rtc_srtp::crypto::providers::RingCrypto;
use rtc_srtp::protection_profile::ProtectionProfile;

/// Replay window for inbound SRTP and SRTCP, in packets (libsrtp's default); one `u128`.
const REPLAY_WINDOW: u64 = 128;
/// SRTP's replay check runs on the 16-bit sequence number.
const RTP_SEQ_MODULUS: u64 = 1 << 16;
/// SRTCP's on the 31-bit index.
const SRTCP_INDEX_MODULUS: u64 = 1 << 31;
/// Inbound SSRCs tracked per session. Never evicted, since a forgotten SSRC would accept
/// replays of its old packets; a peer that needs more must be re-keyed.
const MAX_INBOUND_SSRCS: usize = 32;
/// Failed packets a probe context absorbs before it is rebuilt, bounding its junk state.
const PROBE_FAILURE_LIMIT: u32 = 32;
/// Length of the SRTCP E-flag + index word.
const SRTCP_INDEX_LEN: usize = 4;

/// An SRTP crypto suite as named in SDES `a=crypto` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80` (RFC 4568): AES-128 counter mode, 80-bit HMAC-SHA1 tag.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32` (RFC 4568): as above with a 32-bit SRTP tag (SRTCP keeps 80).
    AesCm128HmacSha1_32,
    /// `AES_256_CM_HMAC_SHA1_80` (RFC 6188): AES-256 counter mode, 80-bit HMAC-SHA1 tag.
    AesCm256HmacSha1_80,
    /// `AES_256_CM_HMAC_SHA1_32` (RFC 6188): AES-256 counter mode, 32-bit SRTP tag.
    AesCm256HmacSha1_32,
    /// `AEAD_AES_128_GCM` (RFC 7714): AES-128-GCM with a 16-byte tag.
    AeadAes128Gcm,
    /// `AEAD_AES_256_GCM` (RFC 7714): AES-256-GCM with a 16-byte tag.
    AeadAes256Gcm,
}

impl SrtpSuite {
    /// Every suite this module implements.
    pub const ALL: [SrtpSuite; 6] = [
        SrtpSuite::AeadAes256Gcm,
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AesCm256HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm256HmacSha1_32,
        SrtpSuite::AesCm128HmacSha1_32,
    ];

    /// The suite's name in an `a=crypto` line.
    pub fn sdp_name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpSuite::AesCm256HmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            SrtpSuite::AesCm256HmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Looks a suite up by its `a=crypto` name (ABNF literals are case-insensitive).
    pub fn from_sdp_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.sdp_name().eq_ignore_ascii_case(name))
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        self.profile().key_len()
    }

    /// Master salt length in bytes.
    pub fn salt_len(self) -> usize {
        self.profile().salt_len()
    }

    /// Bytes SRTP adds to an RTP packet, not counting an MKI.
    pub fn rtp_overhead(self) -> usize {
        let p = self.profile();
        p.rtp_auth_tag_len() + p.aead_auth_tag_len()
    }

    /// Bytes SRTCP adds to an RTCP packet (index word and tag), not counting an MKI.
    pub fn rtcp_overhead(self) -> usize {
        let p = self.profile();
        SRTCP_INDEX_LEN + p.rtcp_auth_tag_len() + p.aead_auth_tag_len()
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            SrtpSuite::AesCm256HmacSha1_80 => ProtectionProfile::Aes256CmHmacSha1_80,
            SrtpSuite::AesCm256HmacSha1_32 => ProtectionProfile::Aes256CmHmacSha1_32,
            SrtpSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            SrtpSuite::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
        }
    }

    /// The HMAC tag that trails the packet (after the MKI); GCM's tag sits inside instead.
    fn trailing_tag_len(self, rtcp: bool) -> usize {
        let p = self.profile();
        if rtcp {
            p.rtcp_auth_tag_len()
        } else {
            p.rtp_auth_tag_len()
        }
    }
}

impl std::fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.sdp_name())
    }
}

/// A master key and salt for one direction; `Debug` never shows the key material.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    suite: SrtpSuite,
    master_key: Vec<u8>,
    master_salt: Vec<u8>,
}

impl SrtpKeys {
    /// Checks the lengths against the suite and keeps copies.
    pub fn new(suite: SrtpSuite, master_key: &[u8], master_salt: &[u8]) -> Result<Self, SrtpError> {
        if master_key.len() != suite.key_len() || master_salt.len() != suite.salt_len() {
            return Err(SrtpError::KeyLength {
                suite,
                expected: suite.key_len() + suite.salt_len(),
                actual: master_key.len() + master_salt.len(),
            });
        }
        Ok(SrtpKeys {
            suite,
            master_key: master_key.to_vec(),
            master_salt: master_salt.to_vec(),
        })
    }

    /// Splits SDES's concatenated `key || salt`.
    pub fn from_key_salt(suite: SrtpSuite, key_salt: &[u8]) -> Result<Self, SrtpError> {
        if key_salt.len() != suite.key_len() + suite.salt_len() {
            return Err(SrtpError::KeyLength {
                suite,
                expected: suite.key_len() + suite.salt_len(),
                actual: key_salt.len(),
            });
        }
        let (key, salt) = key_salt.split_at(suite.key_len());
        Self::new(suite, key, salt)
    }

    /// Fresh random keys from the thread-local CSPRNG.
    pub fn generate(suite: SrtpSuite) -> Self {
        use rand::RngCore;
        let mut rng = rand::rng();
        let mut master_key = vec![0; suite.key_len()];
        let mut master_salt = vec![0; suite.salt_len()];
        rng.fill_bytes(&mut master_key);
        rng.fill_bytes(&mut master_salt);
        SrtpKeys {
            suite,
            master_key,
            master_salt,
        }
    }

    /// The suite these keys are for.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// The master key.
    pub fn master_key(&self) -> &[u8] {
        &self.master_key
    }

    /// The master salt.
    pub fn master_salt(&self) -> &[u8] {
        &self.master_salt
    }

    /// `key || salt`, as SDES carries it.
    pub fn key_salt(&self) -> Vec<u8> {
        [self.master_key.as_slice(), &self.master_salt].concat()
    }
}

impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("suite", &self.suite)
            .field("master_key", &"<redacted>")
            .field("master_salt", &"<redacted>")
            .finish()
    }
}

impl Drop for SrtpKeys {
    fn drop(&mut self) {
        // Best effort: black_box keeps the wipe from being optimised away.
        self.master_key.fill(0);
        self.master_salt.fill(0);
        std::hint::black_box((&self.master_key, &self.master_salt));
    }
}

/// A master key identifier (RFC 3711 §3.1): `value` sent big-endian in `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mki {
    value: u32,
    len: u8,
}

impl Mki {
    /// Largest MKI length RFC 4568 allows, in bytes.
    pub const MAX_LEN: u8 = 128;

    /// Checks `len` is 1..=128 and that `value` fits in it.
    pub fn new(value: u32, len: u8) -> Result<Self, SrtpError> {
        let fits = len >= 4 || u64::from(value) < 1u64 << (8 * u32::from(len));
        if len == 0 || len > Self::MAX_LEN || !fits {
            return Err(SrtpError::InvalidMki { value, len });
        }
        Ok(Mki { value, len })
    }

    /// The identifier.
    pub fn value(self) -> u32 {
        self.value
    }

    /// Its length on the wire, in bytes.
    pub fn length(self) -> u8 {
        self.len
    }

    fn wire_len(self) -> usize {
        usize::from(self.len)
    }

    fn write(self, out: &mut Vec<u8>) {
        let bytes = self.value.to_be_bytes();
        let n = self.wire_len();
        if n >= 4 {
            out.resize(out.len() + n - 4, 0);
            out.extend_from_slice(&bytes);
        } else {
            out.extend_from_slice(&bytes[4 - n..]);
        }
    }

    fn matches(self, wire: &[u8]) -> bool {
        let n = self.wire_len();
        let bytes = self.value.to_be_bytes();
        if n >= 4 {
            wire.len() == n && wire[..n - 4].iter().all(|&b| b == 0) && wire[n - 4..] == bytes
        } else {
            wire == &bytes[4 - n..]
        }
    }
}

/// Why a packet or a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// Key material of the wrong size for the suite (key and salt together).
    #[error("{suite} needs {expected} bytes of key and salt, got {actual}")]
    KeyLength {
        suite: SrtpSuite,
        expected: usize,
        actual: usize,
    },
    /// The two directions were keyed for different suites.
    #[error("local keys are {local}, remote keys are {remote}")]
    SuiteMismatch { local: SrtpSuite, remote: SrtpSuite },
    /// An MKI whose value does not fit its length, or a length outside 1..=128.
    #[error("MKI {value} does not fit in {len} bytes (1..=128)")]
    InvalidMki { value: u32, len: u8 },
    /// Not a well-formed (S)RTP or (S)RTCP packet.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// An SRTCP packet with the E flag clear; we only accept encrypted SRTCP.
    #[error("unencrypted SRTCP packet refused")]
    UnencryptedSrtcp,
    /// The packet carries an MKI other than the one negotiated.
    #[error("unknown MKI")]
    UnknownMki,
    /// The authentication tag did not verify.
    #[error("SRTP authentication failed")]
    AuthenticationFailed,
    /// The packet index was already received or is older than the replay window.
    #[error("replayed or too old SRTP packet")]
    Replayed,
    /// The peer used more SSRCs than one session tracks: re-key.
    #[error("too many inbound SSRCs for one SRTP session")]
    TooManySsrcs,
    /// 2^48 SRTP packets were sent with this key (RFC 3711 §9.2): re-key.
    #[error("SRTP key exhausted; re-key the session")]
    KeyExhausted,
    /// Any other failure reported by the SRTP backend.
    #[error("SRTP backend: {0}")]
    Backend(String),
}

impl From<BackendError> for SrtpError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::SrtpSsrcDuplicated(..) | BackendError::SrtcpSsrcDuplicated(..) => {
                SrtpError::Replayed
            }
            BackendError::RtpFailedToVerifyAuthTag
            | BackendError::RtcpFailedToVerifyAuthTag
            | BackendError::ErrFailedToVerifyAuthTag => SrtpError::AuthenticationFailed,
            BackendError::ErrTooShortRtp
            | BackendError::ErrTooShortRtcp
            | BackendError::SrtpTooSmall(..)
            | BackendError::SrtcpTooSmall(..)
            | BackendError::RtcpInvalidLengthAuthTag(..) => SrtpError::Malformed("too short"),
            BackendError::ErrExceededMaxPackets => SrtpError::KeyExhausted,
            other => SrtpError::Backend(other.to_string()),
        }
    }
}

/// The SRTP/SRTCP contexts of one leg: we protect with our keys, unprotect with the peer's.
pub struct SrtpSession {
    suite: SrtpSuite,
    outbound: Context,
    inbound: Inbound,
    local_mki: Option<Mki>,
    remote_mki: Option<Mki>,
    /// Reused to splice the MKI out of inbound packets.
    scratch: Vec<u8>,
}

impl SrtpSession {
    /// Builds both directions; the two key sets must be for the same suite.
    pub fn new(local: &SrtpKeys, remote: &SrtpKeys) -> Result<Self, SrtpError> {
        if local.suite != remote.suite {
            return Err(SrtpError::SuiteMismatch {
                local: local.suite,
                remote: remote.suite,
            });
        }
        // Outbound never sees replays; its per-SSRC state only tracks our own ROC/index.
        let outbound = Context::new(
            &local.master_key,
            &local.master_salt,
            local.suite.profile(),
            None,
            None,
            &RingCrypto,
        )?;
        let inbound = Inbound {
            keys: remote.clone(),
            streams: Vec::new(),
            probe: Some(Probe {
                ctx: inbound_context(remote)?,
                failures: 0,
            }),
        };
        Ok(SrtpSession {
            suite: local.suite,
            outbound,
            inbound,
            local_mki: None,
            remote_mki: None,
            scratch: Vec::new(),
        })
    }

    /// Sets the MKIs each side announced (`None` = no MKI field in packets).
    pub fn with_mki(mut self, local: Option<Mki>, remote: Option<Mki>) -> Self {
        self.local_mki = local;
        self.remote_mki = remote;
        self
    }

    /// The negotiated suite.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// Encrypts and tags one RTP packet into `out` (cleared first).
    pub fn protect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let fields = RtpFields::parse(packet)?;
        let protected = self
            .outbound
            .encrypt_rtp_with_header(packet, &fields.backend_header())?;
        splice_mki_in(
            &protected,
            self.local_mki,
            self.suite.trailing_tag_len(false),
            out,
        );
        Ok(())
    }

    /// Verifies, replay-checks and decrypts one SRTP packet into `out` (cleared first).
    pub fn unprotect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let fields = RtpFields::parse(packet)?;
        let mki_len = self.remote_mki.map_or(0, Mki::wire_len);
        if packet.len() < fields.header_len + self.suite.rtp_overhead() + mki_len {
            return Err(SrtpError::Malformed(
                "SRTP packet shorter than header and tag",
            ));
        }
        let tag = self.suite.trailing_tag_len(false);
        let wire = splice_mki_out(packet, self.remote_mki, tag, &mut self.scratch)?;
        let header = fields.backend_header();
        let plain = self.inbound.run(fields.ssrc, |ctx| {
            ctx.decrypt_rtp_with_header(wire, &header)
        })?;
        out.clear();
        out.extend_from_slice(&plain);
        Ok(())
    }

    /// Encrypts and tags one (compound) RTCP packet into `out` (cleared first).
    pub fn protect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        if packet.len() < 8 || packet[0] >> 6 != 2 {
            return Err(SrtpError::Malformed(
                "RTCP packet shorter than 8 bytes or not v2",
            ));
        }
        let protected = self.outbound.encrypt_rtcp(packet)?;
        splice_mki_in(
            &protected,
            self.local_mki,
            self.suite.trailing_tag_len(true),
            out,
        );
        Ok(())
    }

    /// Verifies, replay-checks and decrypts one SRTCP packet into `out` (cleared first).
    pub fn unprotect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let mki_len = self.remote_mki.map_or(0, Mki::wire_len);
        let tag = self.suite.trailing_tag_len(true);
        if packet.len() < 8 + self.suite.rtcp_overhead() + mki_len || packet[0] >> 6 != 2 {
            return Err(SrtpError::Malformed("SRTCP packet too short or not v2"));
        }
        let e_flag_at = packet.len() - tag - mki_len - SRTCP_INDEX_LEN;
        if packet[e_flag_at] & 0x80 == 0 {
            return Err(SrtpError::UnencryptedSrtcp);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let wire = splice_mki_out(packet, self.remote_mki, tag, &mut self.scratch)?;
        let plain = self.inbound.run(ssrc, |ctx| ctx.decrypt_rtcp(wire))?;
        out.clear();
        out.extend_from_slice(&plain);
        Ok(())
    }
}

impl std::fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSession")
            .field("suite", &self.suite)
            .field("inbound_ssrcs", &self.inbound.streams.len())
            .field("local_mki", &self.local_mki)
            .field("remote_mki", &self.remote_mki)
            .finish_non_exhaustive()
    }
}

/// The RTP header fields SRTP needs, read straight off the wire (RFC 3550 §5.1).
struct RtpFields {
    sequence: u16,
    ssrc: u32,
    header_len: usize,
}

impl RtpFields {
    fn parse(packet: &[u8]) -> Result<Self, SrtpError> {
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            return Err(SrtpError::Malformed(
                "RTP packet shorter than 12 bytes or not v2",
            ));
        }
        let mut header_len = 12 + 4 * usize::from(packet[0] & 0x0f);
        if packet[0] & 0x10 != 0 {
            let Some(ext) = packet.get(header_len + 2..header_len + 4) else {
                return Err(SrtpError::Malformed("RTP extension header truncated"));
            };
            header_len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        }
        if header_len > packet.len() {
            return Err(SrtpError::Malformed("RTP header longer than packet"));
        }
        Ok(RtpFields {
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            header_len,
        })
    }

    /// The backend only reads SSRC, sequence and the header's size, so the CSRC list stands
    /// in for everything past the fixed 12 bytes: always whole 32-bit words.
    fn backend_header(&self) -> BackendHeader {
        BackendHeader {
            version: 2,
            sequence_number: self.sequence,
            ssrc: self.ssrc,
            csrc: vec![0; (self.header_len - 12) / 4],
            ..BackendHeader::default()
        }
    }
}

/// Inbound contexts, one per authenticated SSRC, plus a probe for SSRCs not yet seen.
struct Inbound {
    keys: SrtpKeys,
    streams: Vec<InboundStream>,
    probe: Option<Probe>,
}

struct InboundStream {
    ssrc: u32,
    ctx: Context,
}

/// A context that tries packets from unknown SSRCs; it becomes a stream on first success.
struct Probe {
    ctx: Context,
    failures: u32,
}

impl Inbound {
    fn run<F>(&mut self, ssrc: u32, op: F) -> Result<bytes::BytesMut, SrtpError>
    where
        F: FnOnce(&mut Context) -> Result<bytes::BytesMut, BackendError>,
    {
        if let Some(stream) = self.streams.iter_mut().find(|s| s.ssrc == ssrc) {
            return Ok(op(&mut stream.ctx)?);
        }
        if self.streams.len() >= MAX_INBOUND_SSRCS {
            return Err(SrtpError::TooManySsrcs);
        }
        let mut probe = match self.probe.take() {
            Some(p) if p.failures < PROBE_FAILURE_LIMIT => p,
            _ => Probe {
                ctx: inbound_context(&self.keys)?,
                failures: 0,
            },
        };
        match op(&mut probe.ctx) {
            Ok(plain) => {
                self.streams.push(InboundStream {
                    ssrc,
                    ctx: probe.ctx,
                });
                Ok(plain)
            }
            Err(e) => {
                probe.failures += 1;
                self.probe = Some(probe);
                Err(e.into())
            }
        }
    }
}

fn inbound_context(keys: &SrtpKeys) -> Result<Context, SrtpError> {
    Ok(Context::new(
        &keys.master_key,
        &keys.master_salt,
        keys.suite.profile(),
        Some(Box::new(|| Box::new(ReplayWindow::new(RTP_SEQ_MODULUS)))),
        Some(Box::new(|| {
            Box::new(ReplayWindow::new(SRTCP_INDEX_MODULUS))
        })),
        &RingCrypto,
    )?)
}

/// A sliding replay window over a wrapping counter (RFC 3711 §3.3.2). The backend calls
/// `check` before authenticating and `accept` after, so only `accept` may change state.
struct ReplayWindow {
    modulus: u64,
    /// Highest accepted counter and the bitmap of the `REPLAY_WINDOW` below it (bit 0 = it).
    latest: Option<(u64, u128)>,
    /// The counter that passed `check`, waiting for `accept`.
    pending: Option<u64>,
}

impl ReplayWindow {
    fn new(modulus: u64) -> Self {
        ReplayWindow {
            modulus,
            latest: None,
            pending: None,
        }
    }

    /// How far `seq` is behind `latest` if it is older (or equal), `None` if newer.
    fn behind(&self, latest: u64, seq: u64) -> Option<u64> {
        let back = (latest + self.modulus - seq) % self.modulus;
        (back < self.modulus / 2).then_some(back)
    }
}

impl ReplayDetector for ReplayWindow {
    fn check(&mut self, seq: u64) -> bool {
        self.pending = None;
        if seq >= self.modulus {
            return false;
        }
        if let Some((latest, mask)) = self.latest
            && let Some(back) = self.behind(latest, seq)
            && (back >= REPLAY_WINDOW || mask & (1 << back) != 0)
        {
            return false;
        }
        self.pending = Some(seq);
        true
    }

    fn accept(&mut self) {
        let Some(seq) = self.pending.take() else {
            return;
        };
        self.latest = Some(match self.latest {
            None => (seq, 1),
            Some((latest, mask)) => match self.behind(latest, seq) {
                Some(back) => (latest, mask | 1 << back),
                None => {
                    let ahead = (seq + self.modulus - latest) % self.modulus;
                    let shifted = if ahead >= REPLAY_WINDOW {
                        0
                    } else {
                        mask << ahead
                    };
                    (seq, shifted | 1)
                }
            },
        });
    }
}

/// Copies `protected` into `out`, inserting the MKI just before the trailing tag.
fn splice_mki_in(protected: &[u8], mki: Option<Mki>, trailing_tag: usize, out: &mut Vec<u8>) {
    out.clear();
    match mki {
        None => out.extend_from_slice(protected),
        Some(mki) => {
            let (body, tag) = protected.split_at(protected.len() - trailing_tag);
            out.extend_from_slice(body);
            mki.write(out);
            out.extend_from_slice(tag);
        }
    }
}

/// Checks and removes the MKI that sits just before the trailing tag; the caller has
/// already checked the packet is long enough to hold it.
fn splice_mki_out<'a>(
    packet: &'a [u8],
    mki: Option<Mki>,
    trailing_tag: usize,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], SrtpError> {
    let Some(mki) = mki else {
        return Ok(packet);
    };
    let end = packet.len() - trailing_tag;
    let start = end - mki.wire_len();
    if !mki.matches(&packet[start..end]) {
        return Err(SrtpError::UnknownMki);
    }
    scratch.clear();
    scratch.extend_from_slice(&packet[..start]);
    scratch.extend_from_slice(&packet[end..]);
    Ok(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors: libsrtp `srtp_driver.c` (AES-CM), pion/srtp (AES-128-GCM), and the rest from
    // `tests/data/srtp_kat.py`, an independent implementation that first reproduces
    // RFC 3711 B.2/B.3, RFC 6188 §7.2 and those two published sets.
    const MK: &str = "e1f97a0d3e018be0d64fa32c06de4139"; // RFC 3711 B.3
    const MS: &str = "0ec675ad498afeebb6960b3aabe6";
    const MK256: &str = "f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6"; // RFC 6188
    const MS256: &str = "3b04803de51ee7c96423ab5b78d2";
    const GK: &str = "000102030405060708090a0b0c0d0e0f";
    const GS: &str = "a0a1a2a3a4a5a6a7a8a9aaab";
    const RTP: &str = "800f1234decafbadcafebabeabababababababababababababababab";
    const RTP_SEQ0: &str = "800f0000decafbadcafebabeabababababababababababababababab";
    const RTCP: &str = "81c8000bcafebabeabababababababababababababababab";
    const RTP_CSRC_EXT: &str =
        "910f1234decafbadcafebabe11223344bede000110aa0000abababababababababababababababab";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn keys(suite: SrtpSuite, key: &str, salt: &str) -> SrtpKeys {
        SrtpKeys::new(suite, &hex(key), &hex(&salt[..2 * suite.salt_len()])).unwrap()
    }

    /// A session whose both directions use `k`, so it can unprotect what it protects.
    fn loopback(k: &SrtpKeys) -> SrtpSession {
        SrtpSession::new(k, k).unwrap()
    }

    fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn rtcp_sr(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 200, 0x00, 0x06];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0x5a; 20]);
        p
    }

    /// Protects `plain` (RTP), checks it against `expected`, then unprotects it back.
    fn check_rtp_kat(k: &SrtpKeys, plains: &[&str], expected_last: &str) {
        let mut tx = loopback(k);
        let mut rx = loopback(k);
        let (mut wire, mut back) = (Vec::new(), Vec::new());
        for p in plains {
            tx.protect_rtp(&hex(p), &mut wire).unwrap();
            rx.unprotect_rtp(&wire, &mut back).unwrap();
            assert_eq!(back, hex(p));
        }
        assert_eq!(wire, hex(expected_last), "{}", k.suite());
    }

    #[test]
    fn aes_cm_128_80_matches_libsrtp_reference_packet() {
        let k = keys(SrtpSuite::AesCm128HmacSha1_80, MK, MS);
        check_rtp_kat(
            &k,
            &[RTP],
            "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb",
        );
    }

    #[test]
    fn aes_cm_128_32_truncates_the_rtp_tag() {
        let k = keys(SrtpSuite::AesCm128HmacSha1_32, MK, MS);
        check_rtp_kat(
            &k,
            &[RTP],
            "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc",
        );
    }

    #[test]
    fn aes_256_cm_80_known_answer() {
        let k = keys(SrtpSuite::AesCm256HmacSha1_80, MK256, MS256);
        check_rtp_kat(
            &k,
            &[RTP],
            "800f1234decafbadcafebabef1d9de17ff251ff1aa007774b0b4b40da08d9d9a5b3a55d8873b",
        );
    }

    #[test]
    fn aead_aes_128_gcm_matches_pion_reference_packet() {
        let k = keys(SrtpSuite::AeadAes128Gcm, GK, GS);
        check_rtp_kat(
            &k,
            &[RTP],
            "800f1234decafbadcafebabec5002ede04cfdd2eb91159e0880aa06ed2976826f796b201df3131a127e8a392",
        );
    }

    #[test]
    fn aead_aes_256_gcm_known_answer() {
        let k = keys(SrtpSuite::AeadAes256Gcm, MK256, MS256);
        check_rtp_kat(
            &k,
            &[RTP],
            "800f1234decafbadcafebabe2cc10892493f417e12ed328ba7064f1ea0d0a64556bb077ee8e0fbd9927cb791",
        );
    }

    #[test]
    fn rollover_counter_enters_iv_and_tag_after_seq_65535() {
        let ffff = "800fffffdecafbadcafebabeabababababababababababababababab";
        let cases = [
            (
                keys(SrtpSuite::AesCm128HmacSha1_80, MK, MS),
                "800f0000decafbadcafebabe24ecf92d9c97bf2ac679b796fdfd365a267beecdc56456590e62",
            ),
            (
                keys(SrtpSuite::AeadAes128Gcm, GK, GS),
                "800f0000decafbadcafebabebf6c6dfe17cc151e899f772b46409248441b38fe472d11f34b9c6eab595d256f",
            ),
            (
                keys(SrtpSuite::AeadAes256Gcm, MK256, MS256),
                "800f0000decafbadcafebabef7575d8ceaf4389413e0dc852162a90a3dcdcf660e93a2559505f99fe722e324",
            ),
        ];
        for (k, expected) in &cases {
            check_rtp_kat(k, &[ffff, RTP_SEQ0], expected);
        }
    }

    #[test]
    fn csrc_and_extension_stay_in_the_clear() {
        let k = keys(SrtpSuite::AesCm128HmacSha1_80, MK, MS);
        check_rtp_kat(
            &k,
            &[RTP_CSRC_EXT],
            "910f1234decafbadcafebabe11223344bede000110aa00004e55dc4ce79978d88ca4d215949d2402d61a8bfba7d27191b225",
        );
        let k = keys(SrtpSuite::AeadAes256Gcm, MK256, MS256);
        check_rtp_kat(
            &k,
            &[RTP_CSRC_EXT],
            "910f1234decafbadcafebabe11223344bede000110aa00002cc10892493f417e12ed328ba7064f1ec85e9ca1e0f800aada8a9dd6c4690c90",
        );
    }

    #[test]
    fn srtcp_known_answers_carry_e_flag_and_index() {
        let cases = [
            (
                keys(SrtpSuite::AesCm128HmacSha1_80, MK, MS),
                "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798",
            ),
            // The _32 suite still uses an 80-bit SRTCP tag (RFC 4568 §6.2).
            (
                keys(SrtpSuite::AesCm128HmacSha1_32, MK, MS),
                "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798",
            ),
            (
                keys(SrtpSuite::AeadAes128Gcm, GK, GS),
                "81c8000bcafebabec98b8b5df0392a55852b6c21ac8e7025c52c6fbea2b3b446ea31123ba88ce61e80000001",
            ),
            (
                keys(SrtpSuite::AeadAes256Gcm, MK256, MS256),
                "81c8000bcafebabeaecfd5bbf06f399b51838f4962ba4da8325d28a3e82171e0991fd3975a1d529d80000001",
            ),
        ];
        for (k, expected) in &cases {
            let (mut tx, mut rx) = (loopback(k), loopback(k));
            let (mut wire, mut back) = (Vec::new(), Vec::new());
            tx.protect_rtcp(&hex(RTCP), &mut wire).unwrap();
            assert_eq!(wire, hex(expected), "{}", k.suite());
            rx.unprotect_rtcp(&wire, &mut back).unwrap();
            assert_eq!(back, hex(RTCP));
            // The next packet of the same SSRC has index 2, E flag still set.
            tx.protect_rtcp(&hex(RTCP), &mut wire).unwrap();
            let tag = k.suite().trailing_tag_len(true);
            let word = &wire[wire.len() - tag - 4..wire.len() - tag];
            assert_eq!(word, [0x80, 0, 0, 2], "{}", k.suite());
            rx.unprotect_rtcp(&wire, &mut back).unwrap();
        }
    }

    #[test]
    fn every_suite_round_trips_both_directions() {
        for suite in SrtpSuite::ALL {
            let (ka, kb) = (SrtpKeys::generate(suite), SrtpKeys::generate(suite));
            let mut a = SrtpSession::new(&ka, &kb).unwrap();
            let mut b = SrtpSession::new(&kb, &ka).unwrap();
            let (mut wire, mut back) = (Vec::new(), Vec::new());
            for seq in 0..50u16 {
                let plain = rtp(seq, 0xa, &[seq as u8; 160]);
                a.protect_rtp(&plain, &mut wire).unwrap();
                assert_eq!(wire.len(), plain.len() + suite.rtp_overhead());
                assert_ne!(wire[12..172], plain[12..]);
                b.unprotect_rtp(&wire, &mut back).unwrap();
                assert_eq!(back, plain);
                let plain = rtp(seq, 0xb, &[!seq as u8; 80]);
                b.protect_rtp(&plain, &mut wire).unwrap();
                a.unprotect_rtp(&wire, &mut back).unwrap();
                assert_eq!(back, plain);
                // Our own keys do not open the peer's packets.
                assert_eq!(
                    b.unprotect_rtp(&wire, &mut back),
                    Err(SrtpError::AuthenticationFailed)
                );
            }
            for ssrc in [0xa, 0xb] {
                let plain = rtcp_sr(ssrc);
                a.protect_rtcp(&plain, &mut wire).unwrap();
                assert_eq!(wire.len(), plain.len() + suite.rtcp_overhead());
                b.unprotect_rtcp(&wire, &mut back).unwrap();
                assert_eq!(back, plain);
                b.protect_rtcp(&plain, &mut wire).unwrap();
                a.unprotect_rtcp(&wire, &mut back).unwrap();
                assert_eq!(back, plain);
            }
        }
    }

    #[test]
    fn any_flipped_bit_is_rejected() {
        for suite in SrtpSuite::ALL {
            let k = SrtpKeys::generate(suite);
            let (mut tx, mut rx) = (loopback(&k), loopback(&k));
            let (mut wire, mut back) = (Vec::new(), Vec::new());
            tx.protect_rtp(&rtp(7, 0x1234, &[1; 40]), &mut wire)
                .unwrap();
            for i in 0..wire.len() {
                let mut bad = wire.clone();
                bad[i] ^= 0x04;
                assert!(
                    rx.unprotect_rtp(&bad, &mut back).is_err(),
                    "{suite} byte {i}"
                );
            }
            rx.unprotect_rtp(&wire, &mut back).unwrap();
            tx.protect_rtcp(&rtcp_sr(0x1234), &mut wire).unwrap();
            for i in 0..wire.len() {
                let mut bad = wire.clone();
                bad[i] ^= 0x04;
                assert!(
                    rx.unprotect_rtcp(&bad, &mut back).is_err(),
                    "{suite} byte {i}"
                );
            }
            rx.unprotect_rtcp(&wire, &mut back).unwrap();
        }
    }

    #[test]
    fn replays_and_packets_older_than_the_window_are_rejected() {
        for suite in SrtpSuite::ALL {
            let k = SrtpKeys::generate(suite);
            let (mut tx, mut rx) = (loopback(&k), loopback(&k));
            let mut back = Vec::new();
            let sent: Vec<Vec<u8>> = (0..300u16)
                .map(|seq| {
                    let mut w = Vec::new();
                    tx.protect_rtp(&rtp(seq, 9, &[3; 20]), &mut w).unwrap();
                    w
                })
                .collect();
            rx.unprotect_rtp(&sent[0], &mut back).unwrap();
            assert_eq!(
                rx.unprotect_rtp(&sent[0], &mut back),
                Err(SrtpError::Replayed)
            );
            rx.unprotect_rtp(&sent[299], &mut back).unwrap();
            // Late but inside the window, once only.
            rx.unprotect_rtp(&sent[250], &mut back).unwrap();
            assert_eq!(
                rx.unprotect_rtp(&sent[250], &mut back),
                Err(SrtpError::Replayed)
            );
            assert_eq!(
                rx.unprotect_rtp(&sent[100], &mut back),
                Err(SrtpError::Replayed)
            );

            let mut w = Vec::new();
            tx.protect_rtcp(&rtcp_sr(9), &mut w).unwrap();
            rx.unprotect_rtcp(&w, &mut back).unwrap();
            assert_eq!(rx.unprotect_rtcp(&w, &mut back), Err(SrtpError::Replayed));
        }
    }

    #[test]
    fn receiver_follows_the_rollover_and_reordering_around_it() {
        let k = SrtpKeys::generate(SrtpSuite::AesCm128HmacSha1_80);
        let (mut tx, mut rx) = (loopback(&k), loopback(&k));
        let seqs: Vec<u16> = (65500..=65535).chain(0..40).collect();
        let sent: Vec<(u16, Vec<u8>)> = seqs
            .iter()
            .map(|&s| {
                let mut w = Vec::new();
                tx.protect_rtp(&rtp(s, 5, &[s as u8; 10]), &mut w).unwrap();
                (s, w)
            })
            .collect();
        let mut back = Vec::new();
        // Deliver with every 5th packet held back two slots, across the wrap.
        let mut order: Vec<usize> = (0..sent.len()).collect();
        for i in (0..order.len() - 2).step_by(5) {
            order.swap(i, i + 2);
        }
        for i in order {
            let (s, w) = &sent[i];
            rx.unprotect_rtp(w, &mut back).unwrap();
            assert_eq!(back, rtp(*s, 5, &[*s as u8; 10]));
        }
        // A second pass is all replays (the late pre-wrap ones included).
        for (_, w) in &sent[sent.len() - 60..] {
            assert_eq!(rx.unprotect_rtp(w, &mut back), Err(SrtpError::Replayed));
        }
    }

    #[test]
    fn srtcp_with_the_e_flag_cleared_is_refused() {
        for suite in SrtpSuite::ALL {
            let k = SrtpKeys::generate(suite);
            let (mut tx, mut rx) = (loopback(&k), loopback(&k));
            let (mut wire, mut back) = (Vec::new(), Vec::new());
            tx.protect_rtcp(&rtcp_sr(1), &mut wire).unwrap();
            let at = wire.len() - suite.trailing_tag_len(true) - 4;
            wire[at] &= 0x7f;
            assert_eq!(
                rx.unprotect_rtcp(&wire, &mut back),
                Err(SrtpError::UnencryptedSrtcp)
            );
        }
    }

    #[test]
    fn short_and_malformed_input_is_an_error() {
        for suite in SrtpSuite::ALL {
            let k = SrtpKeys::generate(suite);
            let (mut tx, mut rx) = (loopback(&k), loopback(&k));
            let (mut wire, mut back) = (Vec::new(), Vec::new());
            tx.protect_rtp(&rtp(1, 2, &[9; 4]), &mut wire).unwrap();
            for n in 0..wire.len() {
                assert!(
                    rx.unprotect_rtp(&wire[..n], &mut back).is_err(),
                    "{suite} {n}"
                );
            }
            tx.protect_rtcp(&rtcp_sr(2), &mut wire).unwrap();
            for n in 0..wire.len() {
                assert!(
                    rx.unprotect_rtcp(&wire[..n], &mut back).is_err(),
                    "{suite} {n}"
                );
            }
            // Not version 2; extension or CSRC list running past the end.
            let mut v1 = rtp(1, 2, &[0; 40]);
            v1[0] = 0x40;
            assert!(matches!(
                rx.unprotect_rtp(&v1, &mut back),
                Err(SrtpError::Malformed(_))
            ));
            assert!(matches!(
                tx.protect_rtp(&v1, &mut back),
                Err(SrtpError::Malformed(_))
            ));
            let mut ext = rtp(1, 2, &[0; 40]);
            ext[0] = 0x90;
            ext[14..16].copy_from_slice(&[0xff, 0xff]);
            assert!(matches!(
                rx.unprotect_rtp(&ext, &mut back),
                Err(SrtpError::Malformed(_))
            ));
            let mut cc = rtp(1, 2, &[0; 8]);
            cc[0] = 0x8f;
            assert!(matches!(
                tx.protect_rtp(&cc, &mut back),
                Err(SrtpError::Malformed(_))
            ));
            assert!(tx.protect_rtp(&[0x80; 11], &mut back).is_err());
            assert!(tx.protect_rtcp(&[0x80; 7], &mut back).is_err());
            assert!(tx.protect_rtcp(&[0x40; 8], &mut back).is_err());
        }
    }

    #[test]
    fn forged_ssrcs_do_not_accumulate_state() {
        let k = SrtpKeys::generate(SrtpSuite::AesCm128HmacSha1_80);
        let (mut tx, mut rx) = (loopback(&k), loopback(&k));
        let (mut wire, mut back) = (Vec::new(), Vec::new());
        for ssrc in 0..1000u32 {
            let forged = rtp(1, ssrc, &[0; 30]);
            assert_eq!(
                rx.unprotect_rtp(&forged, &mut back),
                Err(SrtpError::AuthenticationFailed)
            );
        }
        assert!(rx.inbound.streams.is_empty());
        assert!(rx.inbound.probe.as_ref().unwrap().failures < PROBE_FAILURE_LIMIT);
        // Genuine streams are admitted up to the cap, then refused rather than forgotten
        // (forgetting one would let its old packets replay).
        let mut first = Vec::new();
        for ssrc in 0..MAX_INBOUND_SSRCS as u32 {
            tx.protect_rtp(&rtp(1, ssrc, &[1; 8]), &mut wire).unwrap();
            rx.unprotect_rtp(&wire, &mut back).unwrap();
            if ssrc == 0 {
                first = wire.clone();
            }
        }
        tx.protect_rtp(&rtp(1, 999, &[1; 8]), &mut wire).unwrap();
        assert_eq!(
            rx.unprotect_rtp(&wire, &mut back),
            Err(SrtpError::TooManySsrcs)
        );
        assert_eq!(
            rx.unprotect_rtp(&first, &mut back),
            Err(SrtpError::Replayed)
        );
        assert_eq!(rx.inbound.streams.len(), MAX_INBOUND_SSRCS);
    }

    #[test]
    fn mki_sits_before_the_trailing_tag_and_is_checked() {
        for suite in SrtpSuite::ALL {
            let (ka, kb) = (SrtpKeys::generate(suite), SrtpKeys::generate(suite));
            let (ma, mb) = (Mki::new(1, 4).unwrap(), Mki::new(0x0203, 2).unwrap());
            let mut a = SrtpSession::new(&ka, &kb)
                .unwrap()
                .with_mki(Some(ma), Some(mb));
            let mut b = SrtpSession::new(&kb, &ka)
                .unwrap()
                .with_mki(Some(mb), Some(ma));
            let (mut wire, mut back) = (Vec::new(), Vec::new());
            let plain = rtp(3, 4, &[7; 30]);
            a.protect_rtp(&plain, &mut wire).unwrap();
            assert_eq!(wire.len(), plain.len() + suite.rtp_overhead() + 4);
            let tag = suite.trailing_tag_len(false);
            assert_eq!(wire[wire.len() - tag - 4..wire.len() - tag], [0, 0, 0, 1]);
            b.unprotect_rtp(&wire, &mut back).unwrap();
            assert_eq!(back, plain);

            let plain = rtcp_sr(4);
            b.protect_rtcp(&plain, &mut wire).unwrap();
            let tag = suite.trailing_tag_len(true);
            assert_eq!(wire[wire.len() - tag - 2..wire.len() - tag], [2, 3]);
            a.unprotect_rtcp(&wire, &mut back).unwrap();
            assert_eq!(back, plain);

            // Another MKI value is refused before any crypto.
            b.protect_rtp(&rtp(4, 4, &[7; 30]), &mut wire).unwrap();
            let at = wire.len() - suite.trailing_tag_len(false) - 1;
            wire[at] ^= 1;
            assert_eq!(
                a.unprotect_rtp(&wire, &mut back),
                Err(SrtpError::UnknownMki)
            );
        }
    }

    #[test]
    fn a_forged_packet_cannot_arm_the_replay_window_of_a_new_stream() {
        let k = SrtpKeys::generate(SrtpSuite::AeadAes128Gcm);
        let (mut tx, mut rx) = (loopback(&k), loopback(&k));
        let (mut wire, mut back) = (Vec::new(), Vec::new());
        // Forged, far ahead of where the genuine stream starts.
        let forged = rtp(20_000, 77, &[0; 40]);
        assert_eq!(
            rx.unprotect_rtp(&forged, &mut back),
            Err(SrtpError::AuthenticationFailed)
        );
        tx.protect_rtp(&rtp(10, 77, &[1; 8]), &mut wire).unwrap();
        rx.unprotect_rtp(&wire, &mut back).unwrap();
    }

    #[test]
    fn replay_window_tracks_wrap_and_width() {
        let mut w = ReplayWindow::new(RTP_SEQ_MODULUS);
        let mut take = |seq: u64| {
            let ok = w.check(seq);
            if ok {
                w.accept();
            }
            ok
        };
        assert!(take(65_530));
        assert!(take(3)); // across the wrap
        assert!(!take(65_530));
        assert!(take(65_531)); // late, inside the window
        assert!(!take(65_531));
        assert!(take(122)); // slides: 65_530 is now 128 behind, 65_531 127
        assert!(!take(65_531)); // still remembered
        assert!(!take(65_529)); // never seen, but outside the window
        assert!(take(100)); // never seen, inside
        assert!(!take(65_536)); // not a 16-bit value
        let mut w = ReplayWindow::new(SRTCP_INDEX_MODULUS);
        assert!(w.check(5));
        assert!(w.check(5)); // nothing accepted yet
        w.accept();
        assert!(!w.check(5));
    }

    #[test]
    fn mki_values_must_fit_their_length() {
        assert!(Mki::new(255, 1).is_ok());
        assert!(Mki::new(u32::MAX, 128).is_ok());
        for (v, l) in [(256, 1), (0x1_0000, 2), (1, 0), (1, 129)] {
            assert_eq!(
                Mki::new(v, l),
                Err(SrtpError::InvalidMki { value: v, len: l })
            );
        }
        let mut wire = Vec::new();
        Mki::new(0x0102, 6).unwrap().write(&mut wire);
        assert_eq!(wire, [0, 0, 0, 0, 1, 2]);
        assert!(Mki::new(0x0102, 6).unwrap().matches(&wire));
        assert!(!Mki::new(0x0102, 6).unwrap().matches(&[1, 0, 0, 0, 1, 2]));
    }

    #[test]
    fn keys_check_lengths_and_never_print_material() {
        for suite in SrtpSuite::ALL {
            assert_eq!(SrtpSuite::from_sdp_name(suite.sdp_name()), Some(suite));
            let k = SrtpKeys::generate(suite);
            assert_eq!(k.master_key().len(), suite.key_len());
            assert_eq!(k.master_salt().len(), suite.salt_len());
            assert_ne!(k, SrtpKeys::generate(suite));
            assert_eq!(SrtpKeys::from_key_salt(suite, &k.key_salt()).unwrap(), k);
            let shown = format!("{k:?}");
            assert!(!shown.contains(&format!("{:?}", k.master_key())), "{shown}");
            assert!(shown.contains("redacted"));
            assert!(SrtpKeys::from_key_salt(suite, &k.key_salt()[1..]).is_err());
            assert!(SrtpKeys::new(suite, k.master_salt(), k.master_key()).is_err());
        }
        assert_eq!(
            SrtpSuite::from_sdp_name("aes_cm_128_hmac_sha1_80"),
            Some(SrtpSuite::AesCm128HmacSha1_80)
        );
        assert_eq!(SrtpSuite::from_sdp_name("F8_128_HMAC_SHA1_80"), None);
        let a = SrtpKeys::generate(SrtpSuite::AesCm128HmacSha1_80);
        let b = SrtpKeys::generate(SrtpSuite::AesCm128HmacSha1_32);
        assert!(matches!(
            SrtpSession::new(&a, &b),
            Err(SrtpError::SuiteMismatch { .. })
        ));
    }
}
