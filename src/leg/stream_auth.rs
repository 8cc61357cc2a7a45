//! Stream authentication: a signed, expiring token,
//! `v1.<expiry unix seconds>.<hex HMAC-SHA256(secret, "v1.<expiry>")>`. Each dialect's codec
//! puts the token its carrier delivers into the start's `token` parameter (Twilio
//! `customParameters`, Telnyx `custom_parameters`/`stream_auth_token`/`client_state`, Plivo
//! `extraHeaders`, Vonage `headers`); Telnyx, Plivo and Vonage may also put it in the stream
//! URL's query (`?token=`). Twilio forbids query strings in a `<Stream url>`, so a Twilio
//! stream's token is only ever its `customParameters`.

use super::stream::DialectKind;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a stream token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token in the stream's start parameters or URL query")]
    Missing,
    #[error("token is not of the form v1.<expiry>.<signature>")]
    Malformed,
    #[error("token expired")]
    Expired,
    #[error("token signature does not match")]
    BadSignature,
}

/// Signs and checks stream tokens with one secret.
#[derive(Clone)]
pub struct StreamAuth {
    secret: Vec<u8>,
}

impl std::fmt::Debug for StreamAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamAuth(<redacted>)")
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // RFC 2104 with a 64-byte block.
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl StreamAuth {
    /// Tokens signed with `secret`.
    pub fn new(secret: impl Into<Vec<u8>>) -> StreamAuth {
        StreamAuth {
            secret: secret.into(),
        }
    }

    /// A token valid until `expiry` (Unix seconds).
    pub fn sign(&self, expiry: u64) -> String {
        let head = format!("v1.{expiry}");
        format!(
            "{head}.{}",
            hex(&hmac_sha256(&self.secret, head.as_bytes()))
        )
    }

    /// A token valid for `ttl_s` seconds from now.
    pub fn sign_for(&self, ttl_s: u64) -> String {
        self.sign(unix_now() + ttl_s)
    }

    /// Checks a token at `now` (Unix seconds); the comparison takes the same time whatever
    /// the signature.
    pub fn verify(&self, token: Option<&str>, now: u64) -> Result<(), TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        let (head, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let expiry: u64 = head
            .strip_prefix("v1.")
            .and_then(|e| e.parse().ok())
            .ok_or(TokenError::Malformed)?;
        let want = hex(&hmac_sha256(&self.secret, head.as_bytes()));
        if sig.len() != want.len() {
            return Err(TokenError::BadSignature);
        }
        let diff = sig
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(TokenError::BadSignature);
        }
        if expiry < now {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

/// The token a stream presents: its start's `token` parameter, or else, for the dialects
/// whose carriers allow a query string in the stream URL (all but Twilio), the URL's
/// `?token=`.
pub fn presented_token<'a>(
    kind: DialectKind,
    start_params: &'a BTreeMap<String, String>,
    query_token: Option<&'a str>,
) -> Option<&'a str> {
    let from_query = match kind {
        DialectKind::Twilio => None,
        DialectKind::Telnyx | DialectKind::Vonage | DialectKind::Plivo => query_token,
    };
    start_params.get("token").map(String::as_str).or(from_query)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tokens_verify_until_they_expire() {
        let auth = StreamAuth::new("s3cret");
        let t = auth.sign(1000);
        assert_eq!(auth.verify(Some(&t), 999), Ok(()));
        assert_eq!(auth.verify(Some(&t), 1001), Err(TokenError::Expired));
        assert_eq!(auth.verify(None, 0), Err(TokenError::Missing));
        assert_eq!(auth.verify(Some("v1.1000"), 0), Err(TokenError::Malformed));
        assert_eq!(auth.verify(Some("x.y.z"), 0), Err(TokenError::Malformed));
        let forged = t.replace("v1.1000", "v1.9999");
        assert_eq!(auth.verify(Some(&forged), 0), Err(TokenError::BadSignature));
        let other = StreamAuth::new("other").sign(1000);
        assert_eq!(auth.verify(Some(&other), 0), Err(TokenError::BadSignature));
        assert!(!format!("{auth:?}").contains("s3cret"));
    }

    #[test]
    fn the_query_token_counts_for_every_dialect_but_twilio() {
        let with: BTreeMap<String, String> = [("token".to_string(), "start".to_string())].into();
        let without = BTreeMap::new();
        for kind in DialectKind::ALL {
            assert_eq!(presented_token(kind, &with, Some("query")), Some("start"));
            assert_eq!(presented_token(kind, &without, None), None);
            let want = (kind != DialectKind::Twilio).then_some("query");
            assert_eq!(
                presented_token(kind, &without, Some("query")),
                want,
                "{kind:?}"
            );
        }
    }
}
