//! The SDES `a=crypto` attribute (RFC 4568 §9.1): parse, format, and pick one from an offer.
//!
//! Only what `SrtpSession` can honour parses: one `inline:` key per line (several keys need
//! MKI-based switching we do not do), no key-derivation rate and no unencrypted or
//! unauthenticated modes. Optional session parameters (`-name`) and the window-size hint
//! (`WSH=`) are kept and ignored. The lifetime is informational: the caller re-keys.

use std::fmt;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

use crate::rtp::srtp::{Mki, SrtpError, SrtpKeys, SrtpSession, SrtpSuite};

/// Peers differ on whether they pad `inline:` keys, so decoding accepts both.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The value of one `a=crypto` attribute (everything after `a=crypto:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// Identifies this line within the media section; the answer echoes it (1 to 9 digits).
    pub tag: u32,
    /// The suite and the master key and salt for the sender of this line.
    pub keys: SrtpKeys,
    /// Master key lifetime in packets, if announced.
    pub lifetime: Option<u64>,
    /// The MKI that the sender puts in every packet, if any.
    pub mki: Option<Mki>,
    /// Session parameters we accepted (`WSH=` and `-`-prefixed optional ones), in order.
    pub session_params: Vec<String>,
}

/// Why an `a=crypto` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoAttrError {
    /// The tag, suite or key parameter is missing.
    #[error("a=crypto: missing {0}")]
    Missing(&'static str),
    /// The tag is not 1 to 9 decimal digits.
    #[error("a=crypto: bad tag {0:?}")]
    BadTag(String),
    /// A suite we do not implement; skip this line and consider the next.
    #[error("a=crypto: unsupported suite {0}")]
    UnsupportedSuite(String),
    /// A key method other than `inline`.
    #[error("a=crypto: unsupported key method {0:?}")]
    UnsupportedKeyMethod(String),
    /// More than one master key on the line.
    #[error("a=crypto: several master keys on one line are not supported")]
    MultipleKeys,
    /// The key is not valid base64.
    #[error("a=crypto: key is not valid base64")]
    BadBase64,
    /// The decoded key and salt have the wrong length for the suite.
    #[error("a=crypto: {suite} needs {expected} bytes of key and salt, got {actual}")]
    KeyLength {
        suite: SrtpSuite,
        expected: usize,
        actual: usize,
    },
    /// The lifetime is not `N` or `2^N` within 1..2^64.
    #[error("a=crypto: bad lifetime {0:?}")]
    BadLifetime(String),
    /// The MKI is not `value:length` with length 1..=128 and the value fitting in it.
    #[error("a=crypto: bad or unsupported MKI {0:?}")]
    BadMki(String),
    /// A session parameter we cannot honour (KDR, UNENCRYPTED_*, FEC_*, unknown).
    #[error("a=crypto: unsupported session parameter {0:?}")]
    UnsupportedSessionParam(String),
}

impl CryptoAttribute {
    /// A plain line: this tag and these keys, no lifetime, MKI or session parameters.
    pub fn new(tag: u32, keys: SrtpKeys) -> Self {
        CryptoAttribute {
            tag,
            keys,
            lifetime: None,
            mki: None,
            session_params: Vec::new(),
        }
    }

    /// The line's crypto suite.
    pub fn suite(&self) -> SrtpSuite {
        self.keys.suite()
    }

    /// Our answer to this offered line: same tag and suite, fresh random keys.
    pub fn answer(&self) -> CryptoAttribute {
        CryptoAttribute::new(self.tag, SrtpKeys::generate(self.suite()))
    }

    /// The SRTP session for a leg where `self` is our line and `remote` the peer's.
    pub fn session_with(&self, remote: &CryptoAttribute) -> Result<SrtpSession, SrtpError> {
        Ok(SrtpSession::new(&self.keys, &remote.keys)?.with_mki(self.mki, remote.mki))
    }

    /// Parses an attribute value such as
    /// `1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32`.
    pub fn parse(value: &str) -> Result<Self, CryptoAttrError> {
        let mut fields = value.split_ascii_whitespace();
        let tag_text = fields.next().ok_or(CryptoAttrError::Missing("tag"))?;
        let tag = parse_digits(tag_text, 9)
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| CryptoAttrError::BadTag(tag_text.to_string()))?;
        let suite_text = fields
            .next()
            .ok_or(CryptoAttrError::Missing("crypto suite"))?;
        let suite = SrtpSuite::from_sdp_name(suite_text)
            .ok_or_else(|| CryptoAttrError::UnsupportedSuite(suite_text.to_string()))?;
        let key_params = fields
            .next()
            .ok_or(CryptoAttrError::Missing("key parameters"))?;
        if key_params.contains(';') {
            return Err(CryptoAttrError::MultipleKeys);
        }
        let (method, key_info) = key_params
            .split_once(':')
            .ok_or(CryptoAttrError::Missing("key method"))?;
        if !method.eq_ignore_ascii_case("inline") {
            return Err(CryptoAttrError::UnsupportedKeyMethod(method.to_string()));
        }
        let (keys, lifetime, mki) = parse_key_info(suite, key_info)?;
        let session_params = fields
            .map(|p| {
                if accepted_session_param(p) {
                    Ok(p.to_string())
                } else {
                    Err(CryptoAttrError::UnsupportedSessionParam(p.to_string()))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(CryptoAttribute {
            tag,
            keys,
            lifetime,
            mki,
            session_params,
        })
    }
}

impl fmt::Display for CryptoAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = STANDARD.encode(self.keys.key_salt());
        write!(f, "{} {} inline:{key}", self.tag, self.suite())?;
        match self.lifetime {
            Some(n) if n.is_power_of_two() => write!(f, "|2^{}", n.trailing_zeros())?,
            Some(n) => write!(f, "|{n}")?,
            None => {}
        }
        if let Some(mki) = self.mki {
            write!(f, "|{}:{}", mki.value(), mki.length())?;
        }
        for p in &self.session_params {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

/// The first offered line whose suite is in `supported`, in offer order (RFC 4568 §6.1).
pub fn choose<'a>(
    offered: &'a [CryptoAttribute],
    supported: &[SrtpSuite],
) -> Option<&'a CryptoAttribute> {
    offered.iter().find(|a| supported.contains(&a.suite()))
}

type KeyInfo = (SrtpKeys, Option<u64>, Option<Mki>);

/// `key-salt ["|" lifetime] ["|" mki]`.
fn parse_key_info(suite: SrtpSuite, key_info: &str) -> Result<KeyInfo, CryptoAttrError> {
    let mut parts = key_info.split('|');
    let key_text = parts.next().unwrap_or_default();
    let key_salt = LENIENT_BASE64
        .decode(key_text)
        .map_err(|_| CryptoAttrError::BadBase64)?;
    let keys = SrtpKeys::from_key_salt(suite, &key_salt).map_err(|e| match e {
        SrtpError::KeyLength {
            suite,
            expected,
            actual,
        } => CryptoAttrError::KeyLength {
            suite,
            expected,
            actual,
        },
        _ => CryptoAttrError::BadBase64,
    })?;
    let mut lifetime = None;
    let mut mki = None;
    for part in parts {
        // The MKI is the only part with a colon, and it comes last.
        if mki.is_some() {
            return Err(CryptoAttrError::BadMki(part.to_string()));
        }
        if part.contains(':') {
            mki = Some(parse_mki(part)?);
        } else if lifetime.is_none() {
            lifetime = Some(parse_lifetime(part)?);
        } else {
            return Err(CryptoAttrError::BadLifetime(part.to_string()));
        }
    }
    Ok((keys, lifetime, mki))
}

/// `["2^"] 1*DIGIT`, at least 1.
fn parse_lifetime(text: &str) -> Result<u64, CryptoAttrError> {
    let bad = || CryptoAttrError::BadLifetime(text.to_string());
    let n = match text.strip_prefix("2^") {
        Some(exp) => {
            let exp = parse_digits(exp, 2).ok_or_else(bad)?;
            1u64.checked_shl(u32::try_from(exp).map_err(|_| bad())?)
                .filter(|_| exp < 64)
                .ok_or_else(bad)?
        }
        None => parse_digits(text, 20).ok_or_else(bad)?,
    };
    if n == 0 {
        return Err(bad());
    }
    Ok(n)
}

/// `mki-value ":" mki-length`.
fn parse_mki(text: &str) -> Result<Mki, CryptoAttrError> {
    let bad = || CryptoAttrError::BadMki(text.to_string());
    let (value, len) = text.split_once(':').ok_or_else(bad)?;
    let value = parse_digits(value, 10)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(bad)?;
    let len = parse_digits(len, 3)
        .and_then(|l| u8::try_from(l).ok())
        .ok_or_else(bad)?;
    Mki::new(value, len).map_err(|_| bad())
}

/// 1 to `max` ASCII digits as a number; `None` otherwise or on overflow.
fn parse_digits(text: &str, max: usize) -> Option<u64> {
    if text.is_empty() || text.len() > max || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// RFC 4568 §6.3: unknown mandatory parameters reject the line; `-` marks an optional one.
fn accepted_session_param(param: &str) -> bool {
    if param.starts_with('-') {
        return true;
    }
    match param.split_once('=') {
        Some((name, value)) => {
            name.eq_ignore_ascii_case("WSH") && parse_digits(value, 10).is_some_and(|w| w >= 64)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4568 §5.1 offer and answer.
    const OFFER_1: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32";
    const OFFER_2: &str = "2 F8_128_HMAC_SHA1_80 \
        inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;\
        inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP";
    const ANSWER: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:32";

    fn key_of(line: &str) -> &str {
        let start = line.find("inline:").unwrap() + 7;
        let end = line[start..].find('|').map_or(line.len(), |i| start + i);
        &line[start..end]
    }

    #[test]
    fn parses_the_rfc_4568_offer_line() {
        let a = CryptoAttribute::parse(OFFER_1).unwrap();
        assert_eq!(a.tag, 1);
        assert_eq!(a.suite(), SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(a.lifetime, Some(1 << 20));
        assert_eq!(a.mki, Some(Mki::new(1, 32).unwrap()));
        assert_eq!(STANDARD.encode(a.keys.key_salt()), key_of(OFFER_1));
        assert_eq!(
            a.keys.master_key(),
            &STANDARD.decode(key_of(OFFER_1)).unwrap()[..16]
        );
        assert!(a.session_params.is_empty());
        assert_eq!(a.to_string(), OFFER_1);
        let answer = CryptoAttribute::parse(ANSWER).unwrap();
        assert_eq!(answer.to_string(), ANSWER);
    }

    #[test]
    fn answerer_picks_the_first_supported_offer_in_offer_order() {
        assert_eq!(
            CryptoAttribute::parse(OFFER_2),
            Err(CryptoAttrError::UnsupportedSuite(
                "F8_128_HMAC_SHA1_80".into()
            ))
        );
        let gcm = CryptoAttribute::new(9, SrtpKeys::generate(SrtpSuite::AeadAes256Gcm));
        let cm32 = CryptoAttribute::new(3, SrtpKeys::generate(SrtpSuite::AesCm128HmacSha1_32));
        let offered: Vec<_> = [OFFER_2, OFFER_1]
            .iter()
            .filter_map(|l| CryptoAttribute::parse(l).ok())
            .chain([cm32, gcm])
            .collect();
        assert_eq!(choose(&offered, &SrtpSuite::ALL).map(|a| a.tag), Some(1));
        let only_gcm = [SrtpSuite::AeadAes256Gcm];
        assert_eq!(choose(&offered, &only_gcm).map(|a| a.tag), Some(9));
        assert_eq!(choose(&offered, &[SrtpSuite::AeadAes128Gcm]), None);
        assert_eq!(choose(&[], &SrtpSuite::ALL), None);
    }

    #[test]
    fn an_answer_keys_a_working_session_in_both_directions() {
        let offer = CryptoAttribute::parse(OFFER_1).unwrap();
        let answer = offer.answer();
        assert_eq!((answer.tag, answer.suite()), (1, offer.suite()));
        assert_ne!(answer.keys, offer.keys);
        let reparsed = CryptoAttribute::parse(&answer.to_string()).unwrap();
        assert_eq!(reparsed, answer);
        // The offerer's side honours the 32-byte MKI it announced.
        let mut offerer = offer.session_with(&reparsed).unwrap();
        let mut answerer = reparsed.session_with(&offer).unwrap();
        let mut plain = vec![0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7];
        plain.extend_from_slice(&[0x55; 160]);
        let (mut wire, mut back) = (Vec::new(), Vec::new());
        offerer.protect_rtp(&plain, &mut wire).unwrap();
        assert_eq!(wire.len(), plain.len() + 10 + 32);
        answerer.unprotect_rtp(&wire, &mut back).unwrap();
        assert_eq!(back, plain);
        answerer.protect_rtp(&plain, &mut wire).unwrap();
        assert_eq!(wire.len(), plain.len() + 10);
        offerer.unprotect_rtp(&wire, &mut back).unwrap();
        assert_eq!(back, plain);
    }

    #[test]
    fn every_suite_round_trips_through_text() {
        for suite in SrtpSuite::ALL {
            let mut a = CryptoAttribute::new(123_456_789, SrtpKeys::generate(suite));
            assert_eq!(CryptoAttribute::parse(&a.to_string()).unwrap(), a);
            a.lifetime = Some(1_000_000);
            a.mki = Some(Mki::new(7, 1).unwrap());
            a.session_params = vec!["WSH=128".into(), "-X_VENDOR=1".into()];
            let text = a.to_string();
            assert!(text.ends_with("|1000000|7:1 WSH=128 -X_VENDOR=1"), "{text}");
            assert_eq!(CryptoAttribute::parse(&text).unwrap(), a);
        }
    }

    #[test]
    fn accepts_unpadded_keys_case_and_extra_spaces() {
        let keys = SrtpKeys::generate(SrtpSuite::AeadAes128Gcm); // 28 bytes: "==" padding
        let padded = STANDARD.encode(keys.key_salt());
        assert!(padded.ends_with('='));
        let line = format!(
            "  5   aead_aes_128_gcm  INLINE:{}|2^31 ",
            padded.trim_end_matches('=')
        );
        let a = CryptoAttribute::parse(&line).unwrap();
        assert_eq!((a.tag, &a.keys, a.lifetime), (5, &keys, Some(1 << 31)));
        assert_eq!(
            a.to_string(),
            format!("5 AEAD_AES_128_GCM inline:{padded}|2^31")
        );
        // A lone MKI without a lifetime.
        let a = CryptoAttribute::parse(&format!("1 AEAD_AES_128_GCM inline:{padded}|3:2")).unwrap();
        assert_eq!((a.lifetime, a.mki), (None, Some(Mki::new(3, 2).unwrap())));
    }

    #[test]
    fn every_error_path_is_typed() {
        let key30 = key_of(OFFER_1);
        let cases: Vec<(String, CryptoAttrError)> = vec![
            ("".into(), CryptoAttrError::Missing("tag")),
            ("1".into(), CryptoAttrError::Missing("crypto suite")),
            (
                "1 AES_CM_128_HMAC_SHA1_80".into(),
                CryptoAttrError::Missing("key parameters"),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline".into(),
                CryptoAttrError::Missing("key method"),
            ),
            (
                format!("x AES_CM_128_HMAC_SHA1_80 inline:{key30}"),
                CryptoAttrError::BadTag("x".into()),
            ),
            (
                format!("1234567890 AES_CM_128_HMAC_SHA1_80 inline:{key30}"),
                CryptoAttrError::BadTag("1234567890".into()),
            ),
            (
                format!("-1 AES_CM_128_HMAC_SHA1_80 inline:{key30}"),
                CryptoAttrError::BadTag("-1".into()),
            ),
            (
                format!("1 NULL_HMAC_SHA1_80 inline:{key30}"),
                CryptoAttrError::UnsupportedSuite("NULL_HMAC_SHA1_80".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 uri:{key30}"),
                CryptoAttrError::UnsupportedKeyMethod("uri".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|1:4;inline:{key30}|2:4"),
                CryptoAttrError::MultipleKeys,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64!!".into(),
                CryptoAttrError::BadBase64,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:".into(),
                CryptoAttrError::KeyLength {
                    suite: SrtpSuite::AesCm128HmacSha1_80,
                    expected: 30,
                    actual: 0,
                },
            ),
            (
                format!("1 AEAD_AES_256_GCM inline:{key30}"),
                CryptoAttrError::KeyLength {
                    suite: SrtpSuite::AeadAes256Gcm,
                    expected: 44,
                    actual: 30,
                },
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|2^64"),
                CryptoAttrError::BadLifetime("2^64".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|2^"),
                CryptoAttrError::BadLifetime("2^".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|0"),
                CryptoAttrError::BadLifetime("0".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|99999999999999999999"),
                CryptoAttrError::BadLifetime("99999999999999999999".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|2^20|2^10"),
                CryptoAttrError::BadLifetime("2^10".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|1:4|2^20"),
                CryptoAttrError::BadMki("2^20".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|256:1"),
                CryptoAttrError::BadMki("256:1".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|1:0"),
                CryptoAttrError::BadMki("1:0".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|1:129"),
                CryptoAttrError::BadMki("1:129".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|4294967296:8"),
                CryptoAttrError::BadMki("4294967296:8".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|1:"),
                CryptoAttrError::BadMki("1:".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30} KDR=1"),
                CryptoAttrError::UnsupportedSessionParam("KDR=1".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30} UNENCRYPTED_SRTCP"),
                CryptoAttrError::UnsupportedSessionParam("UNENCRYPTED_SRTCP".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30} WSH=32"),
                CryptoAttrError::UnsupportedSessionParam("WSH=32".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30} FEC_ORDER=FEC_SRTP"),
                CryptoAttrError::UnsupportedSessionParam("FEC_ORDER=FEC_SRTP".into()),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(CryptoAttribute::parse(&line), Err(expected), "{line:?}");
        }
    }

    #[test]
    fn arbitrary_text_never_panics() {
        let seeds = [OFFER_1, OFFER_2, ANSWER, "1 AEAD_AES_256_GCM inline:|||: -"];
        for seed in seeds {
            for cut in 0..=seed.len() {
                if seed.is_char_boundary(cut) {
                    let _ = CryptoAttribute::parse(&seed[..cut]);
                }
            }
        }
        for s in [
            "\u{1F600} AES_CM_128_HMAC_SHA1_80 inline:é",
            "1 \u{0} inline:\u{0}",
        ] {
            assert!(CryptoAttribute::parse(s).is_err());
        }
    }
}
