//! Webhook signatures, sans-IO: `LeadsCaller-Signature: t=<unix seconds>,v1=<hex HMAC>`.
//!
//! The MAC is HMAC-SHA256 keyed with the endpoint's signing secret (the whole `whsec_...` text
//! as UTF-8 bytes) over `"<t>.<raw request body>"`, written as lower-case hex. A receiver
//! recomputes it over the exact bytes it received, compares in constant time, and refuses a
//! timestamp outside its tolerance window so a captured request cannot be replayed later.
//! Several `v1=` entries may appear (one per valid secret); any match is accepted.
//!
//! This file has no dependency on the rest of the server beyond `ring`: customers can copy it.

use ring::hmac;

/// The request header carrying the signature.
pub const SIGNATURE_HEADER: &str = "LeadsCaller-Signature";
/// The request header carrying the event id (the same on every retry: deduplicate on it).
pub const EVENT_ID_HEADER: &str = "LeadsCaller-Event-Id";
/// The request header carrying the delivery id.
pub const DELIVERY_ID_HEADER: &str = "LeadsCaller-Delivery-Id";
/// The tolerance we recommend to receivers, in seconds.
pub const DEFAULT_TOLERANCE_S: i64 = 300;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header is not `t=<integer>,v1=<hex>[,v1=<hex>...]`.
    #[error("malformed signature header")]
    Malformed,
    /// The header has no `v1=` entry.
    #[error("no v1 signature in the header")]
    NoSignature,
    /// The timestamp is further from now than the tolerance.
    #[error("timestamp outside the tolerance window")]
    Expired,
    /// No `v1=` entry matches the body and secret.
    #[error("signature does not match")]
    Mismatch,
}

/// The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
pub fn compute(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    hex(ctx.sign().as_ref())
}

/// The `LeadsCaller-Signature` header value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    sign_all(&[secret], timestamp, body)
}

/// The header value with one `v1=` per secret (during a rotation: the new one, then the old).
pub fn sign_all(secrets: &[&[u8]], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&compute(secret, timestamp, body));
    }
    header
}

/// Checks `header` against `body` and `secret` at `now` (unix seconds), accepting timestamps
/// at most `tolerance_s` away from `now`.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        let (k, v) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => {
                let t: i64 = v.parse().map_err(|_| SignatureError::Malformed)?;
                if timestamp.replace(t).is_some() {
                    return Err(SignatureError::Malformed);
                }
            }
            "v1" => candidates.push(unhex(v).ok_or(SignatureError::Malformed)?),
            _ => {} // future schemes are ignored
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    if now.abs_diff(t) > tolerance_s.unsigned_abs() {
        return Err(SignatureError::Expired);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut signed = t.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    if candidates
        .iter()
        .any(|mac| hmac::verify(&key, &signed, mac).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"call.ended"}"#;

    #[test]
    fn matches_a_known_vector() {
        // The MAC is plain HMAC-SHA256 over "<t>.<body>"; the well-known vector checks the hex.
        let mac = compute(b"key", 42, b"x");
        assert_eq!(mac.len(), 64);
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"key");
        assert_eq!(mac, hex(hmac::sign(&key, b"42.x").as_ref()));
        assert_eq!(
            hex(hmac::sign(&key, b"The quick brown fox jumps over the lazy dog").as_ref()),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn matches_the_documented_python() {
        // hmac.new(b"whsec_test", b"1700000000." + BODY, hashlib.sha256).hexdigest()
        assert_eq!(
            sign(SECRET, 1_700_000_000, BODY),
            "t=1700000000,v1=a6c5a6fcfd4d0d407ff2acfb10098822777004749a25a293c030973d9d296ced"
        );
    }

    #[test]
    fn a_signed_body_verifies() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(verify(SECRET, &header, BODY, 1_700_000_010, 300), Ok(()));
    }

    #[test]
    fn a_changed_body_or_secret_is_refused() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert_eq!(
            verify(SECRET, &header, b"{}", 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"whsec_other", &header, BODY, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        // Moving the timestamp breaks the MAC too.
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify(SECRET, &moved, BODY, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn old_or_future_timestamps_are_refused() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert_eq!(
            verify(SECRET, &header, BODY, 1_700_000_301, 300),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(SECRET, &header, BODY, 1_699_999_699, 300),
            Err(SignatureError::Expired)
        );
        assert_eq!(verify(SECRET, &header, BODY, 1_700_000_300, 300), Ok(()));
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let good = compute(SECRET, 7, BODY);
        let header = format!("t=7,v1={},v1={good},v0=legacy", "00".repeat(32));
        assert_eq!(verify(SECRET, &header, BODY, 7, 300), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        for h in [
            "",
            "t=abc,v1=00",
            "v1=00",
            "t=1,v1=0g",
            "t=1,v1=abc",
            "t=1,t=1,v1=00",
            "garbage",
            "t=1,v1=é",
        ] {
            assert_eq!(
                verify(SECRET, h, BODY, 1, 300),
                Err(SignatureError::Malformed),
                "{h:?}"
            );
        }
        assert_eq!(
            verify(SECRET, "t=1", BODY, 1, 300),
            Err(SignatureError::NoSignature)
        );
    }
}
