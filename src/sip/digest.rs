//! SIP HTTP Digest authentication (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).
//!
//! Sans-IO: nothing here touches sockets or clocks. Callers hand in header
//! *values* (the text after `WWW-Authenticate:` / `Authorization:` etc.) and,
//! where freshness matters, the current time as seconds.
//!
//! * UAC side: [`Challenge::parse`] / [`Challenge::parse_all`], [`pick_best`],
//!   then [`DigestClient::authorize`] to build the `Authorization` /
//!   `Proxy-Authorization` value. [`DigestClient::is_repeat_failure`] stops
//!   wrong-password retry loops.
//! * UAS / registrar side: [`DigestServer::challenge`] issues self-validating
//!   nonces (no per-nonce state) and [`DigestServer::verify`] checks answers.

use std::fmt;
use std::str::FromStr;

use md5::Md5;
use sha2::{Digest, Sha256};

/// Upper bound on parameters per challenge, so hostile headers cost bounded work.
const MAX_PARAMS: usize = 64;
/// Upper bound on challenges in one header value, for the same reason.
const MAX_CHALLENGES: usize = 16;
/// Default nonce lifetime for [`DigestServer`].
pub const DEFAULT_NONCE_MAX_AGE_SECS: u64 = 300;
/// Nonces stamped further than this in the future are treated as forged or
/// as coming from a badly stepped clock.
const MAX_CLOCK_SKEW_SECS: u64 = 60;
/// How many realms a [`DigestClient`] remembers nonce counts for.
const CLIENT_REALM_SLOTS: usize = 8;
/// Bytes of the HMAC kept in a server nonce (128 bits is ample for a MAC).
const NONCE_MAC_BYTES: usize = 16;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Errors from parsing digest headers or computing credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The `algorithm` parameter names an algorithm this module does not implement.
    #[error("unknown digest algorithm {0:?}")]
    UnknownAlgorithm(String),
    /// The `qop` value is not `auth` or `auth-int`.
    #[error("unsupported qop {0:?}")]
    UnsupportedQop(String),
    /// The authentication scheme is not `Digest` (e.g. `Basic`).
    #[error("unsupported authentication scheme {0:?}")]
    UnsupportedScheme(String),
    /// The header value is not syntactically valid.
    #[error("malformed digest header: {0}")]
    Malformed(&'static str),
    /// A required parameter is absent.
    #[error("missing digest parameter {0}")]
    MissingParam(&'static str),
    /// The credentials are bound to a different realm than the challenge.
    #[error("credentials are for realm {expected:?} but challenge is for {got:?}")]
    RealmMismatch {
        /// Realm configured in the credentials.
        expected: String,
        /// Realm the challenge asked for.
        got: String,
    },
    /// A value to be sent contains control characters (header injection guard).
    #[error("control character in {0}")]
    InvalidCharacter(&'static str),
    /// The nonce count for this nonce would wrap around.
    #[error("nonce count exhausted for this nonce")]
    NonceCountExhausted,
}

// ---------------------------------------------------------------------------
// Algorithm / qop
// ---------------------------------------------------------------------------

/// Digest hash algorithm (RFC 7616 §3.3, RFC 8760 for SIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// `MD5` — the RFC 3261 default when `algorithm` is absent.
    #[default]
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 8760).
    Sha256,
    /// `SHA-256-sess` (RFC 8760).
    Sha256Sess,
}

impl Algorithm {
    /// Every supported algorithm, strongest first.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Md5,
        Algorithm::Md5Sess,
    ];

    /// Canonical wire spelling ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess").
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// True for the `-sess` variants, whose HA1 also binds nonce and cnonce.
    pub fn is_session(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Relative hash strength used by [`pick_best`] (SHA-256 family > MD5 family).
    pub fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
        }
    }

    /// Lowercase hex of H(parts joined by ':'), the building block of RFC 7616.
    fn hash(self, parts: &[&[u8]]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => join_hash::<Md5>(parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => join_hash::<Sha256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| DigestError::UnknownAlgorithm(s.to_owned()))
    }
}

/// Quality-of-protection option (`qop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: authenticate method and URI.
    Auth,
    /// `auth-int`: additionally authenticate the message body.
    AuthInt,
}

impl Qop {
    /// Wire spelling ("auth" or "auth-int").
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Qop {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auth") {
            Ok(Qop::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Ok(Qop::AuthInt)
        } else {
            Err(DigestError::UnsupportedQop(s.to_owned()))
        }
    }
}

// ---------------------------------------------------------------------------
// Challenge (UAC side parsing)
// ---------------------------------------------------------------------------

/// A parsed `Digest` challenge from a `WWW-Authenticate` / `Proxy-Authenticate` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space; credentials are looked up by it.
    pub realm: String,
    /// Server nonce, echoed back verbatim.
    pub nonce: String,
    /// Hash algorithm; `MD5` when the server omitted the parameter.
    pub algorithm: Algorithm,
    /// Offered qop options in server order; empty means RFC 2069 compatibility mode.
    pub qop: Vec<Qop>,
    /// Opaque server data, echoed back verbatim when present.
    pub opaque: Option<String>,
    /// True when the server says the previous nonce merely expired (retry without reprompting).
    pub stale: bool,
}

impl Challenge {
    /// Parse one header value; the first challenge in it must be a supported `Digest` one.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let list = parse_auth_list(value)?;
        let first = list
            .first()
            .ok_or(DigestError::Malformed("empty header value"))?;
        Self::from_raw(first)
    }

    /// Collect every supported `Digest` challenge from one or more header values.
    ///
    /// Values may each hold several comma-joined challenges. Non-Digest schemes,
    /// unknown algorithms and malformed values are skipped rather than failing the
    /// whole set, because one exotic challenge must not hide a usable one.
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
        values
            .into_iter()
            .filter_map(|v| parse_auth_list(v).ok())
            .flatten()
            .filter_map(|raw| Self::from_raw(&raw).ok())
            .collect()
    }

    fn from_raw(raw: &RawAuth) -> Result<Self, DigestError> {
        if !raw.scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::UnsupportedScheme(raw.scheme.clone()));
        }
        let realm = raw.get("realm").ok_or(DigestError::MissingParam("realm"))?;
        let nonce = raw.get("nonce").ok_or(DigestError::MissingParam("nonce"))?;
        if nonce.is_empty() {
            return Err(DigestError::MissingParam("nonce"));
        }
        let algorithm = match raw.get("algorithm") {
            Some(a) => a.parse()?,
            None => Algorithm::Md5,
        };
        let qop = match raw.get("qop") {
            None => Vec::new(),
            Some(v) => {
                let mut opts = Vec::new();
                // Unknown options are ignored (RFC 7616 §3.3); only fail if none is usable.
                for q in v.split(',').filter_map(|t| t.parse::<Qop>().ok()) {
                    if !opts.contains(&q) {
                        opts.push(q);
                    }
                }
                if opts.is_empty() {
                    return Err(DigestError::UnsupportedQop(v.to_owned()));
                }
                opts
            }
        };
        Ok(Challenge {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            algorithm,
            qop,
            opaque: raw.get("opaque").map(str::to_owned),
            stale: raw
                .get("stale")
                .is_some_and(|s| s.trim().eq_ignore_ascii_case("true")),
        })
    }
}

impl FromStr for Challenge {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Challenge::parse(s)
    }
}

impl fmt::Display for Challenge {
    /// Formats as a header value; control characters in quoted fields are dropped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("Digest ");
        push_quoted(&mut out, "realm", &self.realm);
        out.push_str(", ");
        push_quoted(&mut out, "nonce", &self.nonce);
        out.push_str(", algorithm=");
        out.push_str(self.algorithm.as_str());
        if !self.qop.is_empty() {
            let list: Vec<&str> = self.qop.iter().map(|q| q.as_str()).collect();
            out.push_str(", ");
            push_quoted(&mut out, "qop", &list.join(","));
        }
        if let Some(opaque) = &self.opaque {
            out.push_str(", ");
            push_quoted(&mut out, "opaque", opaque);
        }
        if self.stale {
            out.push_str(", stale=true");
        }
        f.write_str(&out)
    }
}

/// Choose the challenge to answer: strongest hash first, then one offering qop,
/// then the earliest listed.
///
/// RFC 8760 §2.4 tells a UAC to answer the first supported challenge in the
/// order listed. We instead prefer the strongest hash so a server that lists
/// MD5 first cannot downgrade us; ties keep the listed order, so for servers
/// that list SHA-256 first (as RFC 8760 recommends) the result is identical.
pub fn pick_best(challenges: &[Challenge]) -> Option<&Challenge> {
    let rank = |c: &Challenge| (c.algorithm.strength(), !c.qop.is_empty());
    challenges
        .iter()
        .fold(None, |best: Option<&Challenge>, c| match best {
            Some(b) if rank(b) >= rank(c) => Some(b),
            _ => Some(c),
        })
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// Username/password used to answer challenges.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Authentication username (often differs from the From user).
    pub username: String,
    /// Cleartext password.
    pub password: String,
    /// If set, only challenges for exactly this realm are answered.
    pub realm: Option<String>,
}

impl Credentials {
    /// Credentials valid for any realm.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
            realm: None,
        }
    }

    /// Restrict these credentials to one realm, so they are never sent elsewhere.
    pub fn with_realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }
}

impl fmt::Debug for Credentials {
    // Manual impl so passwords never land in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("realm", &self.realm)
            .finish()
    }
}

/// UAC digest state: nonce counts and the last nonce answered, per realm.
#[derive(Debug, Clone, Default)]
pub struct DigestClient {
    slots: Vec<NonceSlot>,
}

#[derive(Debug, Clone)]
struct NonceSlot {
    realm: String,
    nonce: String,
    nc: u32,
}

impl DigestClient {
    /// A client with no remembered nonces.
    pub fn new() -> Self {
        Self::default()
    }

    /// Build an `Authorization` / `Proxy-Authorization` header value answering `challenge`.
    ///
    /// Uses qop=auth when offered, auth-int only when that is all that is offered
    /// (hashing `body`), and the RFC 2069 form when no qop is offered. The nonce
    /// count increments per nonce and restarts at 1 when the nonce changes.
    pub fn authorize(
        &mut self,
        challenge: &Challenge,
        method: &str,
        uri: &str,
        body: &[u8],
        creds: &Credentials,
    ) -> Result<String, DigestError> {
        let cnonce = random_hex_128();
        self.authorize_with_cnonce(challenge, method, uri, body, creds, &cnonce)
    }

    /// True when the previous answer for this realm used this same nonce and the
    /// server did not flag it stale, i.e. the credentials were wrong: stop retrying.
    ///
    /// Only meaningful for a challenge answering a request that carried this
    /// client's credentials; call [`DigestClient::reset`] after a success if the
    /// client is reused for later transactions with a server that reuses nonces.
    pub fn is_repeat_failure(&self, challenge: &Challenge) -> bool {
        !challenge.stale
            && self
                .slots
                .iter()
                .any(|s| s.realm == challenge.realm && s.nonce == challenge.nonce)
    }

    /// Forget all remembered nonces and counts.
    pub fn reset(&mut self) {
        self.slots.clear();
    }

    /// Deterministic core of [`DigestClient::authorize`]; the cnonce is supplied
    /// so published test vectors can be reproduced.
    fn authorize_with_cnonce(
        &mut self,
        challenge: &Challenge,
        method: &str,
        uri: &str,
        body: &[u8],
        creds: &Credentials,
        cnonce: &str,
    ) -> Result<String, DigestError> {
        if let Some(realm) = &creds.realm
            && realm != &challenge.realm
        {
            return Err(DigestError::RealmMismatch {
                expected: realm.clone(),
                got: challenge.realm.clone(),
            });
        }
        // Everything echoed into a quoted-string is checked first: a hostile
        // challenge must not be able to smuggle CR/LF into our request.
        check_quotable("username", &creds.username)?;
        check_quotable("realm", &challenge.realm)?;
        check_quotable("nonce", &challenge.nonce)?;
        check_quotable("uri", uri)?;
        check_quotable("cnonce", cnonce)?;
        if let Some(opaque) = &challenge.opaque {
            check_quotable("opaque", opaque)?;
        }

        let qop = if challenge.qop.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else if challenge.qop.contains(&Qop::AuthInt) {
            Some(Qop::AuthInt)
        } else {
            None
        };
        let nc = self.next_nc(&challenge.realm, &challenge.nonce)?;
        let nc = format!("{nc:08x}");
        // -sess needs a cnonce for HA1 even in RFC 2069 mode (as curl does).
        let send_cnonce = qop.is_some() || challenge.algorithm.is_session();

        let alg = challenge.algorithm;
        let ha1 = base_ha1(alg, &creds.username, &challenge.realm, &creds.password);
        let response = compute_response(&ResponseInput {
            algorithm: alg,
            base_ha1: &ha1,
            nonce: &challenge.nonce,
            cnonce,
            nc: &nc,
            qop,
            method,
            uri,
            body,
        });

        let mut out = String::from("Digest ");
        push_quoted(&mut out, "username", &creds.username);
        out.push_str(", ");
        push_quoted(&mut out, "realm", &challenge.realm);
        out.push_str(", ");
        push_quoted(&mut out, "nonce", &challenge.nonce);
        out.push_str(", ");
        push_quoted(&mut out, "uri", uri);
        out.push_str(", ");
        push_quoted(&mut out, "response", &response);
        out.push_str(", algorithm=");
        out.push_str(alg.as_str());
        if send_cnonce {
            out.push_str(", ");
            push_quoted(&mut out, "cnonce", cnonce);
        }
        if let Some(opaque) = &challenge.opaque {
            out.push_str(", ");
            push_quoted(&mut out, "opaque", opaque);
        }
        if let Some(qop) = qop {
            // qop and nc are unquoted tokens in credentials (RFC 3261 §25.1).
            out.push_str(", qop=");
            out.push_str(qop.as_str());
            out.push_str(", nc=");
            out.push_str(&nc);
        }
        Ok(out)
    }

    /// Next nonce count for (realm, nonce), restarting at 1 on a new nonce.
    fn next_nc(&mut self, realm: &str, nonce: &str) -> Result<u32, DigestError> {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.realm == realm) {
            if slot.nonce == nonce {
                slot.nc = slot
                    .nc
                    .checked_add(1)
                    .ok_or(DigestError::NonceCountExhausted)?;
            } else {
                slot.nonce = nonce.to_owned();
                slot.nc = 1;
            }
            return Ok(slot.nc);
        }
        if self.slots.len() >= CLIENT_REALM_SLOTS {
            // Oldest realm first out; losing its count only costs a fresh challenge.
            self.slots.remove(0);
        }
        self.slots.push(NonceSlot {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            nc: 1,
        });
        Ok(1)
    }
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// What a user lookup returns for [`DigestServer::verify`].
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// Cleartext password.
    Password(String),
    /// Precomputed hex H(username:realm:password) with MD5 (serves MD5 and MD5-sess).
    Ha1Md5(String),
    /// Precomputed hex H(username:realm:password) with SHA-256 (serves SHA-256 and SHA-256-sess).
    Ha1Sha256(String),
}

impl From<String> for Secret {
    fn from(password: String) -> Self {
        Secret::Password(password)
    }
}

impl From<&str> for Secret {
    fn from(password: &str) -> Self {
        Secret::Password(password.to_owned())
    }
}

impl fmt::Debug for Secret {
    // Manual impl so secrets never land in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Secret::Password(_) => "Password",
            Secret::Ha1Md5(_) => "Ha1Md5",
            Secret::Ha1Sha256(_) => "Ha1Sha256",
        };
        write!(f, "Secret::{kind}(<redacted>)")
    }
}

/// Hex HA1 = H(username:realm:password), for provisioning [`Secret::Ha1Md5`] / [`Secret::Ha1Sha256`].
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    base_ha1(algorithm, username, realm, password)
}

/// Why a [`DigestServer`] rejected credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The Authorization value could not be parsed.
    #[error("malformed credentials: {0}")]
    Malformed(DigestError),
    /// The scheme is not `Digest`.
    #[error("unsupported authentication scheme {0:?}")]
    UnsupportedScheme(String),
    /// A required parameter is absent.
    #[error("missing parameter {0}")]
    MissingParam(&'static str),
    /// The realm is not this server's realm.
    #[error("realm mismatch")]
    RealmMismatch,
    /// The `uri` parameter differs from the request URI.
    #[error("uri parameter does not match the request URI")]
    UriMismatch,
    /// The algorithm is unknown.
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The qop is unknown, or auth-int without a body to check.
    #[error("unsupported qop {0:?}")]
    UnsupportedQop(String),
    /// `nc` is not 1–8 hex digits.
    #[error("invalid nonce count")]
    BadNonceCount,
    /// The nonce was not issued by this server (for this realm and algorithm).
    #[error("nonce not issued by this server")]
    BadNonce,
    /// The lookup returned nothing for the username.
    #[error("unknown user")]
    UnknownUser,
    /// The stored HA1 was computed with a different hash than the one used.
    #[error("no stored credential for this algorithm")]
    NoCredentialForAlgorithm,
    /// The response hash is wrong (typically a wrong password).
    #[error("response does not match")]
    BadResponse,
}

/// Outcome of [`DigestServer::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Credentials are valid and the nonce is fresh.
    Ok {
        /// Authenticated username.
        username: String,
    },
    /// Credentials are valid but the nonce expired: re-challenge with `stale=true`.
    Stale,
    /// Credentials are invalid: re-challenge (or 403) without `stale`.
    Rejected(RejectReason),
}

/// Stateless digest verifier for one realm.
///
/// Nonces are `hex(timestamp) ‖ hex(salt) ‖ hex(HMAC-SHA256(key, …)[..16])`, so
/// any nonce can be validated with the key alone. The flip side of keeping no
/// state is that nonce counts are not tracked: a captured request can be
/// replayed until its nonce ages out (`max_age_secs`). Callers needing strict
/// replay protection must remember (nonce, cnonce, nc) themselves.
#[derive(Clone)]
pub struct DigestServer {
    realm: String,
    key: Vec<u8>,
    max_age_secs: u64,
}

impl fmt::Debug for DigestServer {
    // Manual impl so the nonce key never lands in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("key", &"<redacted>")
            .field("max_age_secs", &self.max_age_secs)
            .finish()
    }
}

enum NonceStatus {
    Fresh,
    Expired,
    Invalid,
}

impl DigestServer {
    /// A server for `realm` whose nonces are signed with `key` (share it across instances).
    pub fn new(realm: impl Into<String>, key: impl Into<Vec<u8>>) -> Self {
        DigestServer {
            realm: realm.into(),
            key: key.into(),
            max_age_secs: DEFAULT_NONCE_MAX_AGE_SECS,
        }
    }

    /// A server with a fresh random 256-bit key (nonces die with the process).
    pub fn with_random_key(realm: impl Into<String>) -> Self {
        let mut key = Vec::with_capacity(32);
        for _ in 0..4 {
            key.extend_from_slice(&rand::random::<u64>().to_le_bytes());
        }
        Self::new(realm, key)
    }

    /// Set how long a nonce stays fresh before answers get [`Verification::Stale`].
    pub fn with_max_age(mut self, secs: u64) -> Self {
        self.max_age_secs = secs;
        self
    }

    /// The realm this server challenges for.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Build a `WWW-Authenticate` / `Proxy-Authenticate` value offering qop=auth.
    ///
    /// To offer several algorithms, call once per algorithm and send each value
    /// in its own header, strongest first (RFC 8760 §2.4).
    pub fn challenge(&self, now_secs: u64, stale: bool, algorithm: Algorithm) -> String {
        Challenge {
            realm: self.realm.clone(),
            nonce: self.make_nonce(now_secs, rand::random::<u64>(), algorithm),
            algorithm,
            qop: vec![Qop::Auth],
            opaque: None,
            stale,
        }
        .to_string()
    }

    /// Verify an `Authorization` / `Proxy-Authorization` value for a request without
    /// body integrity (qop=auth-int answers are rejected; see [`DigestServer::verify_with_body`]).
    pub fn verify<S: Into<Secret>>(
        &self,
        authorization: &str,
        method: &str,
        uri: &str,
        now_secs: u64,
        lookup: impl Fn(&str) -> Option<S>,
    ) -> Verification {
        self.verify_inner(authorization, method, uri, None, now_secs, &lookup)
    }

    /// Like [`DigestServer::verify`] but also accepts qop=auth-int, checked against `body`.
    pub fn verify_with_body<S: Into<Secret>>(
        &self,
        authorization: &str,
        method: &str,
        uri: &str,
        body: &[u8],
        now_secs: u64,
        lookup: impl Fn(&str) -> Option<S>,
    ) -> Verification {
        self.verify_inner(authorization, method, uri, Some(body), now_secs, &lookup)
    }

    fn verify_inner<S: Into<Secret>>(
        &self,
        authorization: &str,
        method: &str,
        uri: &str,
        body: Option<&[u8]>,
        now_secs: u64,
        lookup: &dyn Fn(&str) -> Option<S>,
    ) -> Verification {
        match self.check(authorization, method, uri, body, now_secs, lookup) {
            Ok(v) => v,
            Err(reason) => Verification::Rejected(reason),
        }
    }

    fn check<S: Into<Secret>>(
        &self,
        authorization: &str,
        method: &str,
        uri: &str,
        body: Option<&[u8]>,
        now_secs: u64,
        lookup: &dyn Fn(&str) -> Option<S>,
    ) -> Result<Verification, RejectReason> {
        let list = parse_auth_list(authorization).map_err(RejectReason::Malformed)?;
        let raw = list
            .first()
            .ok_or(RejectReason::Malformed(DigestError::Malformed(
                "empty header value",
            )))?;
        if !raw.scheme.eq_ignore_ascii_case("Digest") {
            return Err(RejectReason::UnsupportedScheme(raw.scheme.clone()));
        }
        let require = |name: &'static str| raw.get(name).ok_or(RejectReason::MissingParam(name));
        let username = require("username")?;
        let realm = require("realm")?;
        let nonce = require("nonce")?;
        let auth_uri = require("uri")?;
        let response = require("response")?;

        if realm != self.realm {
            return Err(RejectReason::RealmMismatch);
        }
        // Exact comparison: RFC 3261 URI equivalence is not needed because a
        // conforming UAC copies the Request-URI verbatim.
        if auth_uri != uri {
            return Err(RejectReason::UriMismatch);
        }
        let algorithm = match raw.get("algorithm") {
            Some(a) => a
                .parse::<Algorithm>()
                .map_err(|_| RejectReason::UnsupportedAlgorithm(a.to_owned()))?,
            None => Algorithm::Md5,
        };
        let status = self.check_nonce(nonce, algorithm, now_secs);
        if matches!(status, NonceStatus::Invalid) {
            return Err(RejectReason::BadNonce);
        }
        // Our challenges always offer qop, so an RFC 2069 answer (no cnonce, no
        // nc) would be a downgrade and is refused.
        let qop_raw = require("qop")?;
        let qop = qop_raw
            .parse::<Qop>()
            .map_err(|_| RejectReason::UnsupportedQop(qop_raw.to_owned()))?;
        let body = match (qop, body) {
            (Qop::AuthInt, None) => return Err(RejectReason::UnsupportedQop(qop_raw.to_owned())),
            (_, b) => b.unwrap_or(&[]),
        };
        let cnonce = require("cnonce")?;
        let nc = require("nc")?;
        if nc.is_empty() || nc.len() > 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RejectReason::BadNonceCount);
        }

        let secret: Secret = lookup(username).ok_or(RejectReason::UnknownUser)?.into();
        let stored_ha1 = match (secret, algorithm.strength()) {
            (Secret::Password(p), _) => base_ha1(algorithm, username, realm, &p),
            (Secret::Ha1Md5(h), 1) | (Secret::Ha1Sha256(h), 2) => h.to_ascii_lowercase(),
            _ => return Err(RejectReason::NoCredentialForAlgorithm),
        };
        let expected = compute_response(&ResponseInput {
            algorithm,
            base_ha1: &stored_ha1,
            nonce,
            cnonce,
            nc,
            qop: Some(qop),
            method,
            uri,
            body,
        });
        if !ct_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(RejectReason::BadResponse);
        }
        // Stale only after the digest checked out: RFC 2617 §3.2.1 reserves
        // stale=true for clients that demonstrably know the password.
        Ok(match status {
            NonceStatus::Expired => Verification::Stale,
            _ => Verification::Ok {
                username: username.to_owned(),
            },
        })
    }

    fn nonce_mac(&self, prefix: &str, algorithm: Algorithm) -> String {
        // Binding realm and algorithm stops a nonce minted for one being replayed
        // against the other.
        let msg = format!("{prefix}:{}:{}", self.realm, algorithm.as_str());
        let mac = hmac_sha256(&self.key, msg.as_bytes());
        hex(&mac[..NONCE_MAC_BYTES])
    }

    fn make_nonce(&self, now_secs: u64, salt: u64, algorithm: Algorithm) -> String {
        let prefix = format!("{now_secs:016x}{salt:016x}");
        let mac = self.nonce_mac(&prefix, algorithm);
        prefix + &mac
    }

    fn check_nonce(&self, nonce: &str, algorithm: Algorithm, now_secs: u64) -> NonceStatus {
        // ASCII-hex check first makes the byte-offset slicing below char-safe.
        if nonce.len() != 32 + 2 * NONCE_MAC_BYTES || !nonce.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return NonceStatus::Invalid;
        }
        let (Some(prefix), Some(mac), Some(ts_hex)) =
            (nonce.get(..32), nonce.get(32..), nonce.get(..16))
        else {
            return NonceStatus::Invalid;
        };
        if !ct_eq(self.nonce_mac(prefix, algorithm).as_bytes(), mac.as_bytes()) {
            return NonceStatus::Invalid;
        }
        let Ok(ts) = u64::from_str_radix(ts_hex, 16) else {
            return NonceStatus::Invalid;
        };
        if ts > now_secs.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return NonceStatus::Invalid;
        }
        if now_secs.saturating_sub(ts) > self.max_age_secs {
            NonceStatus::Expired
        } else {
            NonceStatus::Fresh
        }
    }
}

// ---------------------------------------------------------------------------
// Digest computation (RFC 7616 §3.4.1–3.4.3)
// ---------------------------------------------------------------------------

struct ResponseInput<'a> {
    algorithm: Algorithm,
    /// H(username:realm:password), before any -sess transformation.
    base_ha1: &'a str,
    nonce: &'a str,
    cnonce: &'a str,
    nc: &'a str,
    qop: Option<Qop>,
    method: &'a str,
    uri: &'a str,
    body: &'a [u8],
}

fn base_ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

fn compute_response(p: &ResponseInput<'_>) -> String {
    let alg = p.algorithm;
    let ha1 = if alg.is_session() {
        alg.hash(&[
            p.base_ha1.as_bytes(),
            p.nonce.as_bytes(),
            p.cnonce.as_bytes(),
        ])
    } else {
        p.base_ha1.to_owned()
    };
    let ha2 = match p.qop {
        Some(Qop::AuthInt) => {
            let body_hash = alg.hash(&[p.body]);
            alg.hash(&[p.method.as_bytes(), p.uri.as_bytes(), body_hash.as_bytes()])
        }
        _ => alg.hash(&[p.method.as_bytes(), p.uri.as_bytes()]),
    };
    match p.qop {
        Some(qop) => alg.hash(&[
            ha1.as_bytes(),
            p.nonce.as_bytes(),
            p.nc.as_bytes(),
            p.cnonce.as_bytes(),
            qop.as_str().as_bytes(),
            ha2.as_bytes(),
        ]),
        // RFC 2069 compatibility form.
        None => alg.hash(&[ha1.as_bytes(), p.nonce.as_bytes(), ha2.as_bytes()]),
    }
}

fn join_hash<D: Digest>(parts: &[&[u8]]) -> String {
    let mut h = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(part);
    }
    hex(&h.finalize())
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        for (dst, src) in block_key.iter_mut().zip(Sha256::digest(key).iter()) {
            *dst = *src;
        }
    } else {
        for (dst, src) in block_key.iter_mut().zip(key) {
            *dst = *src;
        }
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(block_key) {
        *i ^= k;
        *o ^= k;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize();
    let mut out = [0u8; 32];
    for (dst, src) in out.iter_mut().zip(outer.iter()) {
        *dst = *src;
    }
    out
}

/// Constant-time equality (length is not secret; content is).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn random_hex_128() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

// ---------------------------------------------------------------------------
// Header syntax (RFC 3261 §25.1 challenge / credentials, RFC 7235 #auth-param)
// ---------------------------------------------------------------------------

fn check_quotable(field: &'static str, value: &str) -> Result<(), DigestError> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        Err(DigestError::InvalidCharacter(field))
    } else {
        Ok(())
    }
}

/// Append `name="value"`, escaping `"` and `\`; control characters are dropped
/// (callers that echo untrusted data validate with `check_quotable` first).
fn push_quoted(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One challenge or credentials: scheme plus lowercase-named parameters.
struct RawAuth {
    scheme: String,
    params: Vec<(String, String)>,
}

impl RawAuth {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '!' | '%' | '*' | '_' | '+' | '`' | '\'' | '~'
        )
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos..).and_then(|r| r.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn at_end(&self) -> bool {
        self.peek().is_none()
    }

    /// Skip linear white space, including CRLF of unfolded continuation lines.
    fn skip_lws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r' | '\n')) {
            self.bump();
        }
    }

    /// Skip LWS and empty list elements (`a=1, , b=2` is legal #rule syntax).
    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r' | '\n' | ',')) {
            self.bump();
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek()
            && is_token_char(c)
        {
            self.bump();
        }
        self.s.get(start..self.pos).unwrap_or("")
    }

    /// Body of a quoted-string; the opening quote is already consumed.
    fn quoted(&mut self) -> Result<String, DigestError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(DigestError::Malformed("unterminated quoted string")),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    None => return Err(DigestError::Malformed("unterminated quoted string")),
                    Some(c) if c.is_control() && c != '\t' => {
                        return Err(DigestError::Malformed("control character in quoted string"));
                    }
                    Some(c) => out.push(c),
                },
                Some(c) if c.is_control() && c != '\t' => {
                    return Err(DigestError::Malformed("control character in quoted string"));
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// Unquoted value: lenient (anything up to a separator) because real servers
    /// send e.g. unquoted nonces containing `/` or `=`.
    fn unquoted(&mut self) -> Result<String, DigestError> {
        let start = self.pos;
        while let Some(c) = self.peek()
            && !(c.is_whitespace() || c.is_control() || c == ',' || c == '"')
        {
            self.bump();
        }
        match self.s.get(start..self.pos) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(DigestError::Malformed("empty parameter value")),
        }
    }
}

/// Split a header value into challenges/credentials.
///
/// A new challenge starts where a list element is a token *not* followed by
/// `=`, which is how `Digest a=1, Basic b=2` is told apart from parameters.
fn parse_auth_list(s: &str) -> Result<Vec<RawAuth>, DigestError> {
    let mut cur = Cursor { s, pos: 0 };
    let mut out = Vec::new();
    loop {
        cur.skip_separators();
        if cur.at_end() {
            break;
        }
        if out.len() >= MAX_CHALLENGES {
            return Err(DigestError::Malformed("too many challenges"));
        }
        let scheme = cur.token();
        if scheme.is_empty() {
            return Err(DigestError::Malformed("expected authentication scheme"));
        }
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            cur.skip_separators();
            if cur.at_end() {
                break;
            }
            let mark = cur.pos;
            let name = cur.token();
            if name.is_empty() {
                return Err(DigestError::Malformed("expected parameter name"));
            }
            cur.skip_lws();
            if cur.peek() != Some('=') {
                // Not a parameter: the next challenge's scheme.
                cur.pos = mark;
                break;
            }
            cur.bump();
            cur.skip_lws();
            let value = if cur.peek() == Some('"') {
                cur.bump();
                cur.quoted()?
            } else {
                cur.unquoted()?
            };
            let name = name.to_ascii_lowercase();
            // Duplicates are ambiguous (which one did the hash use?), so refuse.
            if params.iter().any(|(n, _)| *n == name) {
                return Err(DigestError::Malformed("duplicate parameter"));
            }
            if params.len() >= MAX_PARAMS {
                return Err(DigestError::Malformed("too many parameters"));
            }
            params.push((name, value));
            cur.skip_lws();
            if !matches!(cur.peek(), None | Some(',')) {
                return Err(DigestError::Malformed("expected ',' between parameters"));
            }
        }
        out.push(RawAuth {
            scheme: scheme.to_owned(),
            params,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    /// Value of one parameter of the first challenge/credentials in `header`.
    fn param(header: &str, name: &str) -> Option<String> {
        let list = parse_auth_list(header).ok()?;
        list.first()?.get(name).map(str::to_owned)
    }

    fn server() -> DigestServer {
        DigestServer::new("sip.example.com", b"test-key-0123456789".to_vec())
    }

    fn lookup_alice(user: &str) -> Option<String> {
        (user == "alice").then(|| "s3cr3t".to_owned())
    }

    #[test]
    fn algorithm_parse_and_display() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        assert_eq!("md5-SESS".parse::<Algorithm>(), Ok(Algorithm::Md5Sess));
        assert_eq!("sha-256".parse::<Algorithm>(), Ok(Algorithm::Sha256));
        assert_eq!(
            "SHA-512-256".parse::<Algorithm>(),
            Err(DigestError::UnknownAlgorithm("SHA-512-256".into()))
        );
        assert_eq!(Algorithm::default(), Algorithm::Md5);
    }

    #[test]
    fn qop_parse() {
        assert_eq!("AUTH".parse::<Qop>(), Ok(Qop::Auth));
        assert_eq!(" auth-int ".parse::<Qop>(), Ok(Qop::AuthInt));
        assert!("auth-conf".parse::<Qop>().is_err());
    }

    #[test]
    fn hmac_sha256_rfc4231_case2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Case 6: key longer than the block size is hashed first.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex(&mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn parse_twilio_style_challenge() {
        let c = Challenge::parse(
            r#"Digest realm="sip.twilio.com", nonce="abc", algorithm=MD5, qop="auth,auth-int", opaque="x", stale=TRUE"#,
        )
        .expect("valid challenge");
        assert_eq!(c.realm, "sip.twilio.com");
        assert_eq!(c.nonce, "abc");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.qop, vec![Qop::Auth, Qop::AuthInt]);
        assert_eq!(c.opaque.as_deref(), Some("x"));
        assert!(c.stale);
    }

    #[test]
    fn parse_lenient_forms() {
        // Lowercase scheme, folded whitespace, quoted algorithm, unknown params,
        // empty list elements, no algorithm (defaults to MD5), no qop.
        let c = Challenge::parse(
            "digest  realm = \"r\" ,\r\n\tdomain=\"sip:a\", , nonce=n0/+==, algorithm=\"sha-256-SESS\", foo=bar",
        )
        .expect("valid challenge");
        assert_eq!(c.realm, "r");
        assert_eq!(c.nonce, "n0/+==");
        assert_eq!(c.algorithm, Algorithm::Sha256Sess);
        assert!(c.qop.is_empty());
        assert!(!c.stale);
        let c = Challenge::parse(r#"Digest realm="r", nonce="n""#).expect("valid");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.opaque, None);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            Challenge::parse(r#"Digest nonce="n""#),
            Err(DigestError::MissingParam("realm"))
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="r""#),
            Err(DigestError::MissingParam("nonce"))
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="r""#),
            Err(DigestError::UnsupportedScheme("Basic".into()))
        );
        assert!(matches!(
            Challenge::parse(r#"Digest realm="r, nonce="n""#),
            Err(DigestError::Malformed(_))
        ));
        assert!(matches!(
            Challenge::parse(r#"Digest realm="r", realm="s", nonce="n""#),
            Err(DigestError::Malformed(_))
        ));
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-conf""#),
            Err(DigestError::UnsupportedQop("auth-conf".into()))
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=SHA-512"#),
            Err(DigestError::UnknownAlgorithm("SHA-512".into()))
        );
        assert!(Challenge::parse("").is_err());
        assert!(Challenge::parse("   ").is_err());
        assert!(Challenge::parse(r#"Digest realm="a\"#).is_err());
        assert!(Challenge::parse("Digest realm=\"a\rb\", nonce=\"n\"").is_err());
    }

    #[test]
    fn quoted_string_escapes() {
        let c = Challenge::parse(r#"Digest realm="a\"b\\c", nonce="n\,1\x""#).expect("valid");
        assert_eq!(c.realm, "a\"b\\c");
        assert_eq!(c.nonce, "n,1x");
        // Re-serialising escapes again and parses back to the same values.
        let again = Challenge::parse(&c.to_string()).expect("roundtrip");
        assert_eq!(again, c);
        // Client output escapes the username and realm too.
        let creds = Credentials::new("bo\"b", "pw");
        let hdr = DigestClient::new()
            .authorize(&c, "REGISTER", "sip:x", b"", &creds)
            .expect("authorize");
        assert!(hdr.contains(r#"username="bo\"b""#), "{hdr}");
        assert_eq!(param(&hdr, "username").as_deref(), Some("bo\"b"));
        assert_eq!(param(&hdr, "realm").as_deref(), Some("a\"b\\c"));
    }

    #[test]
    fn rfc2617_section_3_5_example() {
        let c = Challenge::parse(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .expect("valid");
        let creds = Credentials::new("Mufasa", "Circle Of Life");
        let hdr = DigestClient::new()
            .authorize_with_cnonce(&c, "GET", "/dir/index.html", b"", &creds, "0a4f113b")
            .expect("authorize");
        assert_eq!(
            param(&hdr, "response").as_deref(),
            Some("6629fae49393a05397450978507c4ef1")
        );
        assert_eq!(
            hdr,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, \
             cnonce=\"0a4f113b\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", \
             qop=auth, nc=00000001"
        );
    }

    #[test]
    fn rfc7616_section_3_9_1_example() {
        let base = r#"realm="http-auth@example.org", qop="auth, auth-int", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let creds = Credentials::new("Mufasa", "Circle of Life");
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (alg, expected) in [
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let c = Challenge::parse(&format!("Digest {base}, algorithm={alg}")).expect("valid");
            let hdr = DigestClient::new()
                .authorize_with_cnonce(&c, "GET", "/dir/index.html", b"", &creds, cnonce)
                .expect("authorize");
            assert_eq!(param(&hdr, "response").as_deref(), Some(expected), "{alg}");
            assert_eq!(param(&hdr, "algorithm").as_deref(), Some(alg));
            assert_eq!(param(&hdr, "qop").as_deref(), Some("auth"));
            assert_eq!(param(&hdr, "nc").as_deref(), Some("00000001"));
        }
    }

    #[test]
    fn sip_register_vectors() {
        // Expected values computed independently (Python hashlib).
        let creds = Credentials::new("alice", "s3cr3t").with_realm("sip.example.com");
        let cn = "deadbeefcafebabe";
        let uri = "sip:sip.example.com";
        let cases = [
            (
                r#"Digest realm="sip.example.com", nonce="4b6a1c2f9d0e8a7b", algorithm=MD5, qop="auth""#,
                "738c756bd1be2afdb06f0ada1cae1313",
            ),
            (
                r#"Digest realm="sip.example.com", nonce="4b6a1c2f9d0e8a7b", algorithm=SHA-256, qop="auth""#,
                "c14993e0eaec0dcda79515bc9f083233be6bdcfd9d7f12a40aacb896d4801565",
            ),
            // RFC 2069 form: no qop offered.
            (
                r#"Digest realm="sip.example.com", nonce="4b6a1c2f9d0e8a7b""#,
                "e8e46143e6f5b357aca0070788a20b5f",
            ),
        ];
        for (challenge, expected) in cases {
            let c = Challenge::parse(challenge).expect("valid");
            let hdr = DigestClient::new()
                .authorize_with_cnonce(&c, "REGISTER", uri, b"", &creds, cn)
                .expect("authorize");
            assert_eq!(param(&hdr, "response").as_deref(), Some(expected), "{hdr}");
            assert_eq!(param(&hdr, "uri").as_deref(), Some(uri));
            if c.qop.is_empty() {
                assert_eq!(param(&hdr, "qop"), None);
                assert_eq!(param(&hdr, "nc"), None);
                assert_eq!(param(&hdr, "cnonce"), None);
            }
        }
    }

    #[test]
    fn sess_auth_int_vectors() {
        let creds = Credentials::new("alice", "s3cr3t");
        let body = b"v=0\r\n";
        for (alg, expected) in [
            ("MD5-sess", "b5da3d404c386c7895a3b0650973cfab"),
            (
                "SHA-256-sess",
                "5c9bb7a9cf25d20bba5423b14640c88a106f38173fec82aed7d175d09c4054f9",
            ),
        ] {
            let c = Challenge::parse(&format!(
                r#"Digest realm="sip.example.com", nonce="4b6a1c2f9d0e8a7b", algorithm={alg}, qop="auth-int""#
            ))
            .expect("valid");
            let hdr = DigestClient::new()
                .authorize_with_cnonce(
                    &c,
                    "INVITE",
                    "sip:bob@example.com",
                    body,
                    &creds,
                    "deadbeefcafebabe",
                )
                .expect("authorize");
            assert_eq!(param(&hdr, "qop").as_deref(), Some("auth-int"));
            assert_eq!(param(&hdr, "response").as_deref(), Some(expected), "{alg}");
        }
    }

    #[test]
    fn cnonce_is_random_hex() {
        let c = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth""#).expect("valid");
        let creds = Credentials::new("u", "p");
        let mut client = DigestClient::new();
        let a = client
            .authorize(&c, "OPTIONS", "sip:r", b"", &creds)
            .expect("ok");
        let b = client
            .authorize(&c, "OPTIONS", "sip:r", b"", &creds)
            .expect("ok");
        let (ca, cb) = (
            param(&a, "cnonce").expect("cnonce"),
            param(&b, "cnonce").expect("cnonce"),
        );
        assert!(ca.len() >= 16 && ca.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(ca, cb);
    }

    #[test]
    fn round_trip_every_algorithm() {
        let srv = server();
        let creds = Credentials::new("alice", "s3cr3t");
        for alg in Algorithm::ALL {
            let value = srv.challenge(NOW, false, alg);
            let c = Challenge::parse(&value).expect("own challenge parses");
            assert_eq!(c.algorithm, alg);
            assert_eq!(c.qop, vec![Qop::Auth]);
            assert!(!c.stale);
            let mut client = DigestClient::new();
            for _ in 0..3 {
                let hdr = client
                    .authorize(&c, "REGISTER", "sip:sip.example.com", b"", &creds)
                    .expect("authorize");
                assert_eq!(
                    srv.verify(
                        &hdr,
                        "REGISTER",
                        "sip:sip.example.com",
                        NOW + 10,
                        lookup_alice
                    ),
                    Verification::Ok {
                        username: "alice".into()
                    },
                    "{alg}"
                );
            }
        }
    }

    #[test]
    fn round_trip_with_stored_ha1() {
        let srv = server();
        let creds = Credentials::new("alice", "s3cr3t");
        let md5 = ha1(Algorithm::Md5, "alice", "sip.example.com", "s3cr3t");
        let sha = ha1(Algorithm::Sha256, "alice", "sip.example.com", "s3cr3t");
        for alg in Algorithm::ALL {
            let c = Challenge::parse(&srv.challenge(NOW, false, alg)).expect("valid");
            let hdr = DigestClient::new()
                .authorize(&c, "INVITE", "sip:bob@x", b"", &creds)
                .expect("authorize");
            let both = |_: &str| -> Option<Secret> {
                Some(if alg.strength() == 2 {
                    Secret::Ha1Sha256(sha.clone())
                } else {
                    Secret::Ha1Md5(md5.to_uppercase())
                })
            };
            assert!(matches!(
                srv.verify(&hdr, "INVITE", "sip:bob@x", NOW, both),
                Verification::Ok { .. }
            ));
            let wrong_kind = |_: &str| -> Option<Secret> {
                Some(if alg.strength() == 2 {
                    Secret::Ha1Md5(md5.clone())
                } else {
                    Secret::Ha1Sha256(sha.clone())
                })
            };
            assert_eq!(
                srv.verify(&hdr, "INVITE", "sip:bob@x", NOW, wrong_kind),
                Verification::Rejected(RejectReason::NoCredentialForAlgorithm)
            );
        }
    }

    #[test]
    fn auth_int_round_trip() {
        let srv = server();
        let value = srv.challenge(NOW, false, Algorithm::Sha256);
        // Pretend the server offered only auth-int to force the client into it.
        let mut c = Challenge::parse(&value).expect("valid");
        c.qop = vec![Qop::AuthInt];
        let creds = Credentials::new("alice", "s3cr3t");
        let body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";
        let hdr = DigestClient::new()
            .authorize(&c, "INVITE", "sip:bob@x", body, &creds)
            .expect("authorize");
        assert_eq!(param(&hdr, "qop").as_deref(), Some("auth-int"));
        assert!(matches!(
            srv.verify_with_body(&hdr, "INVITE", "sip:bob@x", body, NOW, lookup_alice),
            Verification::Ok { .. }
        ));
        assert_eq!(
            srv.verify_with_body(&hdr, "INVITE", "sip:bob@x", b"tampered", NOW, lookup_alice),
            Verification::Rejected(RejectReason::BadResponse)
        );
        // Plain verify cannot check a body, so it refuses auth-int.
        assert_eq!(
            srv.verify(&hdr, "INVITE", "sip:bob@x", NOW, lookup_alice),
            Verification::Rejected(RejectReason::UnsupportedQop("auth-int".into()))
        );
    }

    #[test]
    fn stale_nonce() {
        let srv = server().with_max_age(300);
        let creds = Credentials::new("alice", "s3cr3t");
        let c = Challenge::parse(&srv.challenge(NOW, false, Algorithm::Md5)).expect("valid");
        let mut client = DigestClient::new();
        let hdr = client
            .authorize(&c, "REGISTER", "sip:sip.example.com", b"", &creds)
            .expect("authorize");
        let verify = |now| srv.verify(&hdr, "REGISTER", "sip:sip.example.com", now, lookup_alice);
        assert!(matches!(verify(NOW + 300), Verification::Ok { .. }));
        assert_eq!(verify(NOW + 301), Verification::Stale);
        // Wrong password with an expired nonce must not earn stale=true.
        let bad = DigestClient::new()
            .authorize(
                &c,
                "REGISTER",
                "sip:sip.example.com",
                b"",
                &Credentials::new("alice", "nope"),
            )
            .expect("authorize");
        assert_eq!(
            srv.verify(
                &bad,
                "REGISTER",
                "sip:sip.example.com",
                NOW + 301,
                lookup_alice
            ),
            Verification::Rejected(RejectReason::BadResponse)
        );
        // Nonce from the far future (clock stepped back or forged timestamp).
        assert_eq!(
            verify(NOW - 120),
            Verification::Rejected(RejectReason::BadNonce)
        );
        // The re-challenge says stale, so the client must not treat it as a failure.
        let again =
            Challenge::parse(&srv.challenge(NOW + 301, true, Algorithm::Md5)).expect("valid");
        assert!(again.stale);
        assert!(!client.is_repeat_failure(&again));
        let mut same_nonce_stale = c.clone();
        same_nonce_stale.stale = true;
        assert!(!client.is_repeat_failure(&same_nonce_stale));
    }

    #[test]
    fn wrong_password_and_unknown_user_rejected() {
        let srv = server();
        let c = Challenge::parse(&srv.challenge(NOW, false, Algorithm::Sha256)).expect("valid");
        let hdr = DigestClient::new()
            .authorize(
                &c,
                "REGISTER",
                "sip:sip.example.com",
                b"",
                &Credentials::new("alice", "wrong"),
            )
            .expect("authorize");
        assert_eq!(
            srv.verify(&hdr, "REGISTER", "sip:sip.example.com", NOW, lookup_alice),
            Verification::Rejected(RejectReason::BadResponse)
        );
        let hdr = DigestClient::new()
            .authorize(
                &c,
                "REGISTER",
                "sip:sip.example.com",
                b"",
                &Credentials::new("mallory", "s3cr3t"),
            )
            .expect("authorize");
        assert_eq!(
            srv.verify(&hdr, "REGISTER", "sip:sip.example.com", NOW, lookup_alice),
            Verification::Rejected(RejectReason::UnknownUser)
        );
    }

    #[test]
    fn server_rejects_mismatches_and_forgeries() {
        let srv = server();
        let creds = Credentials::new("alice", "s3cr3t");
        let c = Challenge::parse(&srv.challenge(NOW, false, Algorithm::Md5)).expect("valid");
        let hdr = DigestClient::new()
            .authorize(&c, "REGISTER", "sip:sip.example.com", b"", &creds)
            .expect("authorize");
        let uri = "sip:sip.example.com";
        assert_eq!(
            srv.verify(&hdr, "REGISTER", "sip:other.example.com", NOW, lookup_alice),
            Verification::Rejected(RejectReason::UriMismatch)
        );
        // Right uri param but a different method: hash mismatch.
        assert_eq!(
            srv.verify(&hdr, "INVITE", uri, NOW, lookup_alice),
            Verification::Rejected(RejectReason::BadResponse)
        );
        // Another realm's server (same key) refuses.
        let other = DigestServer::new("other", b"test-key-0123456789".to_vec());
        assert_eq!(
            other.verify(&hdr, "REGISTER", uri, NOW, lookup_alice),
            Verification::Rejected(RejectReason::RealmMismatch)
        );
        // A server with another key does not accept our nonce.
        let rekeyed = DigestServer::new("sip.example.com", b"different".to_vec());
        assert_eq!(
            rekeyed.verify(&hdr, "REGISTER", uri, NOW, lookup_alice),
            Verification::Rejected(RejectReason::BadNonce)
        );
        // A nonce minted for MD5 cannot be answered with SHA-256.
        let mut downgraded = c.clone();
        downgraded.algorithm = Algorithm::Sha256;
        let hdr2 = DigestClient::new()
            .authorize(&downgraded, "REGISTER", uri, b"", &creds)
            .expect("authorize");
        assert_eq!(
            srv.verify(&hdr2, "REGISTER", uri, NOW, lookup_alice),
            Verification::Rejected(RejectReason::BadNonce)
        );
        // Tampered timestamp in the nonce (extend its lifetime) breaks the MAC.
        let mut forged = c.clone();
        forged
            .nonce
            .replace_range(0..16, &format!("{:016x}", NOW + 1000));
        let hdr3 = DigestClient::new()
            .authorize(&forged, "REGISTER", uri, b"", &creds)
            .expect("authorize");
        assert_eq!(
            srv.verify(&hdr3, "REGISTER", uri, NOW + 1000, lookup_alice),
            Verification::Rejected(RejectReason::BadNonce)
        );
        // RFC 2069 answer (no qop) is a downgrade and refused.
        let mut no_qop = c.clone();
        no_qop.qop.clear();
        let hdr4 = DigestClient::new()
            .authorize(&no_qop, "REGISTER", uri, b"", &creds)
            .expect("authorize");
        assert_eq!(
            srv.verify(&hdr4, "REGISTER", uri, NOW, lookup_alice),
            Verification::Rejected(RejectReason::MissingParam("qop"))
        );
        // Other schemes and garbage.
        assert_eq!(
            srv.verify("Basic YWxpY2U6czNjcjN0", "REGISTER", uri, NOW, lookup_alice),
            Verification::Rejected(RejectReason::UnsupportedScheme("Basic".into()))
        );
        let bad_nc = hdr.replace("nc=00000001", "nc=zz");
        assert_eq!(
            srv.verify(&bad_nc, "REGISTER", uri, NOW, lookup_alice),
            Verification::Rejected(RejectReason::BadNonceCount)
        );
        let bad_alg = hdr.replace("algorithm=MD5", "algorithm=SHA-1");
        assert_eq!(
            srv.verify(&bad_alg, "REGISTER", uri, NOW, lookup_alice),
            Verification::Rejected(RejectReason::UnsupportedAlgorithm("SHA-1".into()))
        );
        let no_user = hdr.replace("username=", "user=");
        assert_eq!(
            srv.verify(&no_user, "REGISTER", uri, NOW, lookup_alice),
            Verification::Rejected(RejectReason::MissingParam("username"))
        );
        // Uppercase hex response is tolerated.
        let resp = param(&hdr, "response").expect("response");
        let upper = hdr.replace(&resp, &resp.to_uppercase());
        assert!(matches!(
            srv.verify(&upper, "REGISTER", uri, NOW, lookup_alice),
            Verification::Ok { .. }
        ));
    }

    #[test]
    fn repeat_failure_detection() {
        let srv = server();
        let c = Challenge::parse(&srv.challenge(NOW, false, Algorithm::Sha256)).expect("valid");
        let mut client = DigestClient::new();
        assert!(!client.is_repeat_failure(&c));
        let creds = Credentials::new("alice", "wrong");
        client
            .authorize(&c, "REGISTER", "sip:sip.example.com", b"", &creds)
            .expect("authorize");
        // Server answers the failed attempt with the same nonce, not stale.
        assert!(client.is_repeat_failure(&c));
        // A fresh nonce is a legitimate new challenge.
        let fresh =
            Challenge::parse(&srv.challenge(NOW + 1, false, Algorithm::Sha256)).expect("valid");
        assert!(!client.is_repeat_failure(&fresh));
        // Same nonce but another realm is unrelated.
        let mut other_realm = c.clone();
        other_realm.realm = "proxy.example.com".into();
        assert!(!client.is_repeat_failure(&other_realm));
        client.reset();
        assert!(!client.is_repeat_failure(&c));
    }

    #[test]
    fn nonce_count_increments_and_resets() {
        let creds = Credentials::new("u", "p");
        let a = Challenge::parse(r#"Digest realm="r", nonce="A", qop="auth""#).expect("valid");
        let b = Challenge::parse(r#"Digest realm="r", nonce="B", qop="auth""#).expect("valid");
        let p = Challenge::parse(r#"Digest realm="proxy", nonce="P", qop="auth""#).expect("valid");
        let mut client = DigestClient::new();
        let mut nc = |c: &Challenge| {
            let hdr = client
                .authorize(c, "INVITE", "sip:x", b"", &creds)
                .expect("ok");
            param(&hdr, "nc").expect("nc")
        };
        assert_eq!(nc(&a), "00000001");
        assert_eq!(nc(&a), "00000002");
        // A second realm (e.g. proxy + UAS) keeps its own count.
        assert_eq!(nc(&p), "00000001");
        assert_eq!(nc(&a), "00000003");
        assert_eq!(nc(&b), "00000001");
        assert_eq!(nc(&b), "00000002");
        assert_eq!(nc(&a), "00000001");
        for _ in 0..14 {
            nc(&a);
        }
        assert_eq!(nc(&a), "00000010");
    }

    #[test]
    fn credentials_realm_and_injection_guards() {
        let c = Challenge::parse(r#"Digest realm="evil", nonce="n""#).expect("valid");
        let creds = Credentials::new("u", "p").with_realm("good");
        let mut client = DigestClient::new();
        assert_eq!(
            client.authorize(&c, "INVITE", "sip:x", b"", &creds),
            Err(DigestError::RealmMismatch {
                expected: "good".into(),
                got: "evil".into()
            })
        );
        // A failed attempt does not consume a nonce count.
        assert!(!client.is_repeat_failure(&c));
        let creds = Credentials::new("u", "p");
        assert_eq!(
            client.authorize(&c, "INVITE", "sip:x\r\nVia: evil", b"", &creds),
            Err(DigestError::InvalidCharacter("uri"))
        );
        let mut hostile = c.clone();
        hostile.opaque = Some("a\r\nX: y".into());
        assert_eq!(
            client.authorize(&hostile, "INVITE", "sip:x", b"", &creds),
            Err(DigestError::InvalidCharacter("opaque"))
        );
        assert!(!format!("{:?}", Credentials::new("u", "hunter2")).contains("hunter2"));
        assert!(format!("{:?}", server()).contains("<redacted>"));
        assert!(!format!("{:?}", Secret::from("hunter2")).contains("hunter2"));
    }

    #[test]
    fn pick_best_prefers_strongest_then_order() {
        let header_values = [
            r#"Digest realm="r", nonce="1", algorithm=MD5, qop="auth""#,
            r#"Digest realm="r", nonce="2", algorithm=SHA-256, qop="auth", Basic realm="r""#,
            r#"Digest realm="r", nonce="3", algorithm=SHA-256-sess, qop="auth""#,
            r#"Digest realm="r", nonce="4", algorithm=SHA-512-256"#,
            "Digest garbage \"",
        ];
        let all = Challenge::parse_all(header_values);
        assert_eq!(all.len(), 3);
        assert_eq!(pick_best(&all).map(|c| c.nonce.as_str()), Some("2"));
        assert_eq!(pick_best(&all[..1]).map(|c| c.nonce.as_str()), Some("1"));
        assert_eq!(pick_best(&[]), None);
        // Same strength: one offering qop beats RFC 2069-only.
        let pair = Challenge::parse_all([
            r#"Digest realm="r", nonce="a", algorithm=SHA-256"#,
            r#"Digest realm="r", nonce="b", algorithm=SHA-256-sess, qop="auth""#,
        ]);
        assert_eq!(pick_best(&pair).map(|c| c.nonce.as_str()), Some("b"));
        // Several challenges joined in one value.
        let joined = Challenge::parse_all([
            r#"Digest realm="r", nonce="x", algorithm=SHA-256, Digest realm="r", nonce="y", algorithm=MD5"#,
        ]);
        assert_eq!(joined.len(), 2);
        assert_eq!(joined[1].nonce, "y");
    }

    #[test]
    fn garbage_never_panics() {
        let srv = server();
        let creds = Credentials::new("alice", "s3cr3t");
        let good_challenge = srv.challenge(NOW, true, Algorithm::Sha256Sess);
        let c = Challenge::parse(&good_challenge).expect("valid");
        let good_auth = DigestClient::new()
            .authorize(&c, "REGISTER", "sip:sip.example.com", b"", &creds)
            .expect("authorize");
        let samples = [
            good_challenge.as_str(),
            good_auth.as_str(),
            r#"Digest realm="a\"b", nonce="ü€😀", qop="auth,auth-int", Basic x=y, NTLM TlRM=="#,
        ];
        let exercise = |s: &str| {
            let _ = Challenge::parse(s);
            let _ = Challenge::parse_all([s]);
            let _ = srv.verify(s, "REGISTER", "sip:sip.example.com", NOW, lookup_alice);
            let _ = srv.verify_with_body(s, "INVITE", "sip:x", b"b", NOW, |_: &str| {
                Some(Secret::Ha1Md5("zz".into()))
            });
            if let Ok(c) = Challenge::parse(s) {
                let _ = DigestClient::new().authorize(&c, "REGISTER", "sip:x", b"", &creds);
            }
        };
        for s in samples {
            for (i, _) in s.char_indices() {
                exercise(&s[..i]);
                exercise(&s[i..]);
            }
        }
        // Deterministic xorshift so failures are reproducible.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet =
            b"Digest realm=nonce\"\\,= \t\r\nqop=auth-int;algorithm=SHA-256-sess\x00\xff";
        for round in 0..3000 {
            let len = (next() % 96) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if round % 2 == 0 {
                        alphabet[(r as usize) % alphabet.len()]
                    } else {
                        r as u8
                    }
                })
                .collect();
            exercise(&String::from_utf8_lossy(&bytes));
            // Splice random bytes into a valid header too.
            let mut mutated = good_auth.clone().into_bytes();
            if !mutated.is_empty() {
                let at = (next() as usize) % mutated.len();
                mutated[at] = next() as u8;
            }
            exercise(&String::from_utf8_lossy(&mutated));
        }
        // Pathological sizes stay bounded.
        let many = format!("Digest {}", "a=b, ".repeat(10_000));
        assert!(Challenge::parse(&many).is_err());
        let many_schemes = "X, ".repeat(10_000);
        assert!(Challenge::parse(&many_schemes).is_err());
    }
}
