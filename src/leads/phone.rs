//! Phone numbers from lead files, normalized to E.164 with the `phonenumber` crate.
//!
//! Accepts what people type into spreadsheets: `(415) 555-2671` with a default region,
//! `+44 20 7946 0958`, `00 33 1 42 68 53 00`, `tel:+1-415-555-2671`. Rejects anything that is
//! not a valid, dialable number for its country, with a reason that never echoes the number.

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id;

mod nanp;

/// Longest raw input considered; longer cells are rejected before any parsing work.
const MAX_RAW_LEN: usize = 64;

/// A phone number in E.164 form (`+` then 8 to 15 digits), valid for its country.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct E164 {
    text: String,
    region: Option<Region>,
}

impl E164 {
    /// The E.164 text, e.g. `+14155552671`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The country (ISO 3166 region) the number belongs to, when the numbering plan says.
    pub fn region(&self) -> Option<Region> {
        self.region
    }

    /// A number that identifies this E.164 number among all others: its digits as an integer
    /// with the digit count in the top byte (E.164 has at most 15 digits, so no two differ).
    pub fn dedupe_key(&self) -> u64 {
        let digits = self.text.as_bytes().get(1..).unwrap_or_default();
        let value = digits.iter().fold(0u64, |v, &b| {
            v.wrapping_mul(10)
                .wrapping_add(u64::from(b.wrapping_sub(b'0')))
        });
        value | ((digits.len() as u64) << 56)
    }

    /// The NANP area code (`415` for `+14155552671`), for numbers under country code 1.
    pub fn nanp_area_code(&self) -> Option<u16> {
        let rest = self.text.strip_prefix("+1")?;
        rest.get(..3)?.parse().ok()
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for E164 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for E164 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        normalize_phone(&text, None).map_err(serde::de::Error::custom)
    }
}

/// An ISO 3166-1 alpha-2 region known to the phone number metadata (`US`, `GB`, `FR`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region {
    code: [u8; 2],
    id: Id,
}

impl Region {
    /// The two-letter code, upper case.
    pub fn as_str(&self) -> &str {
        // Built only from two ASCII upper-case letters in `from_id`/`from_str`.
        std::str::from_utf8(&self.code).unwrap_or("ZZ")
    }

    fn from_id(id: Id) -> Option<Region> {
        let name: &str = id.as_ref();
        let b = name.as_bytes();
        (b.len() == 2 && b.iter().all(u8::is_ascii_uppercase)).then(|| Region {
            code: [b[0], b[1]],
            id,
        })
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Region {
    type Err = PhoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        if upper.len() != 2 {
            return Err(PhoneError::UnknownRegion);
        }
        let id = upper.parse::<Id>().map_err(|_| PhoneError::UnknownRegion)?;
        Region::from_id(id).ok_or(PhoneError::UnknownRegion)
    }
}

impl<'de> serde::Deserialize<'de> for Region {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Region {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Why a phone number was rejected. Messages never contain the number itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// The cell was empty.
    #[error("phone number is empty")]
    Empty,
    /// The cell is longer than any phone number could be.
    #[error("phone number is longer than {MAX_RAW_LEN} characters")]
    InputTooLong,
    /// No digits that could form a number.
    #[error("not a phone number")]
    NotANumber,
    /// The number has no `+`/international prefix and no default region was given.
    #[error("number has no country code (start it with + or set a default region)")]
    NoCountryCode,
    /// The country calling code does not exist.
    #[error("unknown country calling code")]
    InvalidCountryCode,
    /// Too few digits for any number.
    #[error("number is too short")]
    TooShort,
    /// Too many digits for any number.
    #[error("number is too long")]
    TooLong,
    /// The digits do not form a valid number in its country's numbering plan.
    #[error("not a valid number for its country")]
    Invalid,
    /// The number carries an extension, which cannot be dialed as E.164.
    #[error("extensions are not supported")]
    Extension,
    /// A default region that is not an ISO 3166 two-letter code known to the metadata.
    #[error("unknown region code")]
    UnknownRegion,
}

/// Normalizes a phone number as typed to E.164; `default_region` applies to numbers without
/// a country code (national format, e.g. `(415) 555-2671` with `US`).
pub fn normalize_phone(raw: &str, default_region: Option<Region>) -> Result<E164, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    if trimmed.len() > MAX_RAW_LEN {
        return Err(PhoneError::InputTooLong);
    }
    if let Some(fast) = nanp::normalize(trimmed, default_region) {
        return fast;
    }
    normalize_with_crate(trimmed, default_region)
}

/// The general path: `phonenumber::parse`, then its validity check and E.164 formatting.
/// `trimmed` is non-empty, trimmed and at most `MAX_RAW_LEN` bytes.
fn normalize_with_crate(trimmed: &str, default_region: Option<Region>) -> Result<E164, PhoneError> {
    let prepared = international_prefix_to_plus(trimmed);
    let text = prepared.as_deref().unwrap_or(trimmed);
    let has_plus = text.starts_with('+') || text.starts_with("tel:+");
    if !has_plus && default_region.is_none() {
        if !text.bytes().any(|b| b.is_ascii_digit()) {
            return Err(PhoneError::NotANumber);
        }
        return Err(PhoneError::NoCountryCode);
    }
    let region = if has_plus {
        None
    } else {
        default_region.map(|r| r.id)
    };
    let number = phonenumber::parse(region, text).map_err(|e| match e {
        phonenumber::ParseError::NoNumber => PhoneError::NotANumber,
        phonenumber::ParseError::InvalidCountryCode => PhoneError::InvalidCountryCode,
        phonenumber::ParseError::TooShortAfterIdd | phonenumber::ParseError::TooShortNsn => {
            PhoneError::TooShort
        }
        phonenumber::ParseError::TooLong => PhoneError::TooLong,
        _ => PhoneError::NotANumber,
    })?;
    if number.extension().is_some() {
        return Err(PhoneError::Extension);
    }
    if !number.is_valid() {
        return Err(PhoneError::Invalid);
    }
    let text = number.format().mode(phonenumber::Mode::E164).to_string();
    Ok(E164 {
        text,
        region: number.country().id().and_then(Region::from_id),
    })
}

/// Rewrites a leading `00` (the international prefix of most of the world) to `+`, so
/// `00 33 1 ...` parses whatever the default region's own international prefix is.
/// NANP's `011` is left to the parser, which knows it from the region metadata.
fn international_prefix_to_plus(text: &str) -> Option<String> {
    let mut digits_seen = 0;
    for (i, c) in text.char_indices() {
        match c {
            '0' if digits_seen < 2 => digits_seen += 1,
            ' ' | '-' | '.' | '(' | ')' if digits_seen < 2 => {}
            _ if digits_seen == 2 => return Some(format!("+{}", &text[i..])),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> Option<Region> {
        Some("US".parse().unwrap())
    }

    #[test]
    fn national_us_format_with_default_region() {
        let n = normalize_phone("(415) 555-2671", us()).unwrap();
        assert_eq!(n.as_str(), "+14155552671");
        assert_eq!(n.region().unwrap().as_str(), "US");
        assert_eq!(n.nanp_area_code(), Some(415));
    }

    #[test]
    fn international_formats() {
        assert_eq!(
            normalize_phone("+44 20 7946 0958", us()).unwrap().as_str(),
            "+442079460958"
        );
        assert_eq!(
            normalize_phone("00 33 1 42 68 53 00", us())
                .unwrap()
                .as_str(),
            "+33142685300"
        );
        assert_eq!(
            normalize_phone("0033142685300", None).unwrap().as_str(),
            "+33142685300"
        );
        assert_eq!(
            normalize_phone("011 44 20 7946 0958", us())
                .unwrap()
                .as_str(),
            "+442079460958"
        );
        assert_eq!(
            normalize_phone("+1-415-555-2671", None).unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            normalize_phone("  4155552671 ", us()).unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            normalize_phone("1 415 555 2671", us()).unwrap().as_str(),
            "+14155552671"
        );
    }

    #[test]
    fn national_format_of_other_region() {
        let gb: Region = "gb".parse().unwrap();
        let n = normalize_phone("020 7946 0958", Some(gb)).unwrap();
        assert_eq!(n.as_str(), "+442079460958");
        assert_eq!(n.region().unwrap().as_str(), "GB");
        assert_eq!(n.nanp_area_code(), None);
    }

    #[test]
    fn rejects_with_reasons() {
        assert_eq!(normalize_phone("", us()), Err(PhoneError::Empty));
        assert_eq!(normalize_phone("   ", us()), Err(PhoneError::Empty));
        assert_eq!(normalize_phone("n/a", us()), Err(PhoneError::NotANumber));
        assert_eq!(
            normalize_phone("4155552671", None),
            Err(PhoneError::NoCountryCode)
        );
        assert_eq!(normalize_phone("12", us()), Err(PhoneError::TooShort));
        // 555-01xx style fictional and unassigned area codes are not valid numbers.
        assert_eq!(
            normalize_phone("(099) 555-2671", us()),
            Err(PhoneError::Invalid)
        );
        assert_eq!(
            normalize_phone("+999 1234 5678", None),
            Err(PhoneError::InvalidCountryCode)
        );
        assert_eq!(
            normalize_phone(&"1".repeat(80), us()),
            Err(PhoneError::InputTooLong)
        );
        assert_eq!(
            normalize_phone("+1 415 555 2671 ext. 22", None),
            Err(PhoneError::Extension)
        );
        assert!(normalize_phone("+1 415 555 26711234567", None).is_err());
    }

    #[test]
    fn error_messages_do_not_echo_the_number() {
        let e = normalize_phone("(099) 555-2671", us()).unwrap_err();
        assert!(!e.to_string().contains("555"));
    }

    #[test]
    fn region_parsing() {
        assert_eq!("us".parse::<Region>().unwrap().as_str(), "US");
        assert_eq!(" FR ".parse::<Region>().unwrap().to_string(), "FR");
        assert_eq!("USA".parse::<Region>(), Err(PhoneError::UnknownRegion));
        assert_eq!("QQ".parse::<Region>(), Err(PhoneError::UnknownRegion));
    }

    /// Default regions for the fast-path comparisons: NANP ones, others, none.
    fn region(i: usize) -> Option<Region> {
        ["US", "CA", "JM", "PR", "GB", "FR", ""][i % 7].parse().ok()
    }

    /// The fast path either declines or gives exactly what the crate's path gives.
    fn agree(text: &str, r: Option<Region>) -> bool {
        let text = text.trim();
        if text.is_empty() || text.len() > MAX_RAW_LEN {
            return false;
        }
        match nanp::normalize(text, r) {
            Some(fast) => {
                assert_eq!(fast, normalize_with_crate(text, r), "{text:?} with {r:?}");
                true
            }
            None => false,
        }
    }

    /// A NANP number in a spreadsheet shape; `seps` picks separators (including none and
    /// doubled ones, which the fast path must leave to the crate).
    fn shaped(prefix: usize, paren: bool, digits: &str, seps: [usize; 3]) -> String {
        const SEPS: [&str; 6] = ["", " ", "-", ".", "  ", "/"];
        let (a, x, l) = (&digits[..3], &digits[3..6], &digits[6..]);
        let area = if paren {
            format!("({a})")
        } else {
            a.to_owned()
        };
        let pre = ["", "1", "+1", "+", "011 1", "001"][prefix % 6];
        let s0 = if pre.is_empty() {
            ""
        } else {
            SEPS[seps[0] % 6]
        };
        format!(
            "{pre}{s0}{area}{}{x}{}{l}",
            SEPS[seps[1] % 6],
            SEPS[seps[2] % 6]
        )
    }

    #[test]
    fn nanp_fast_path_matches_the_crate_on_every_area_code() {
        // Every area code 000-999 with exchanges that are valid, N11, 555, 0xx/1xx, in the
        // main shapes and default regions: valid, invalid and other-region (CA, JM...) numbers.
        let mut fast = 0;
        for area in 0..1000 {
            for (k, exch) in ["555", "200", "911", "011", "123", "867", "234"]
                .iter()
                .enumerate()
            {
                let digits = format!("{area:03}{exch}{:04}", (area * 7 + k * 1301) % 10_000);
                let text = shaped(area + k, (area + k) % 2 == 0, &digits, [k, area, k + area]);
                fast += usize::from(agree(&text, region(area + k)));
            }
        }
        // Most generated shapes (011/001/+ prefixes, doubled or `/` separators) are declined.
        assert!(fast > 700, "the fast path took only {fast} of 7000");
    }

    #[test]
    fn nanp_fast_path_leaves_other_shapes_to_the_crate() {
        for (text, r) in [
            ("415 555 2671 ext. 22", us()),
            ("tel:+1-415-555-2671", us()),
            ("(415)555-267", us()),
            ("415-555-26711", us()),
            ("+44 20 7946 0958", us()),
            ("020 7946 0958", "GB".parse().ok()),
            ("4155552671", None),
            ("415--555-2671", us()),
            ("+1415-555-2671", us()),
            ("+1(415) 555-2671", None),
            ("(415 555-2671", us()),
            ("１４１５５５５２６７１", us()),
        ] {
            assert!(nanp::normalize(text, r).is_none(), "{text:?}");
        }
        assert!(nanp::normalize("(415) 555-2671", us()).is_some());
        assert!(nanp::normalize("+1 415 555 2671", None).is_some());
        assert!(
            nanp::normalize("(099) 555-2671", us()).is_none(),
            "area codes starting 0/1 go to the crate"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        #[test]
        fn nanp_fast_path_matches_the_crate_on_random_numbers(
            prefix in 0usize..6,
            paren in proptest::bool::ANY,
            digits in "[0-9]{10}",
            seps in proptest::array::uniform3(0usize..6),
            r in 0usize..7,
        ) {
            agree(&shaped(prefix, paren, &digits, seps), region(r));
        }

        #[test]
        fn nanp_fast_path_matches_the_crate_on_random_text(
            text in "[0-9 ().+/x#-]{0,20}",
            r in 0usize..7,
        ) {
            agree(&text, region(r));
        }
    }

    #[test]
    fn dedupe_keys_tell_numbers_apart() {
        let key = |s: &str| normalize_phone(s, us()).unwrap().dedupe_key();
        assert_eq!(key("(415) 555-2671"), key("+1 415 555 2671"));
        assert_ne!(key("(415) 555-2671"), key("(415) 555-2672"));
        assert_ne!(key("+442079460958"), key("+14155552671"));
        // Same digit value, different length cannot happen in E.164, but the key tells anyway.
        let a = E164 {
            text: "+12".into(),
            region: None,
        };
        let b = E164 {
            text: "+012".into(),
            region: None,
        };
        assert_ne!(a.dedupe_key(), b.dedupe_key());
    }

    #[test]
    fn serde_round_trip() {
        let n = normalize_phone("+14155552671", None).unwrap();
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"+14155552671\"");
        let back: E164 = serde_json::from_str(&json).unwrap();
        assert_eq!(back, n);
        assert!(serde_json::from_str::<E164>("\"hello\"").is_err());
    }
}
