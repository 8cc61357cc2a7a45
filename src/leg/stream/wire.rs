//! Helpers the dialect codecs share: JSON parsing with typed errors, numbers that arrive as
//! strings, base64, digits, tracks and encodings by name.

use super::{Encoding, MediaChunk, StreamError, Track};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// Standard base64 that accepts payloads with or without their `=` padding.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A non-negative integer sent as a JSON number or a JSON string (Twilio sends strings);
/// `Num(None)` when the field was present but held something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Num(pub(crate) Option<u64>);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, or a string holding one")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(u64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Num, E> {
                Ok(Num(None))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
                Ok(Num(if digits { v.parse().ok() } else { None }))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Num, E> {
                Ok(Num(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Num, E> {
                Ok(Num(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number field that must be there and be a non-negative integer.
pub(crate) fn num(field: Option<Num>, name: &'static str) -> Result<u64, StreamError> {
    match field {
        None => Err(StreamError::MissingField(name)),
        Some(Num(None)) => Err(StreamError::InvalidField(name)),
        Some(Num(Some(v))) => Ok(v),
    }
}

/// A field that must be there.
pub(crate) fn required<T>(field: Option<T>, name: &'static str) -> Result<T, StreamError> {
    field.ok_or(StreamError::MissingField(name))
}

/// Parses a text frame, telling "not JSON" (fatal) from "JSON of the wrong shape".
pub(crate) fn parse_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, StreamError> {
    serde_json::from_str(text).map_err(|e| {
        let mut msg = e.to_string();
        msg.truncate(200);
        match e.classify() {
            serde_json::error::Category::Data => StreamError::Malformed(msg),
            _ => StreamError::InvalidJson(msg),
        }
    })
}

/// Serializes an outbound message (our own types cannot fail to serialize).
pub(crate) fn to_text<T: serde::Serialize>(msg: &T) -> String {
    serde_json::to_string(msg).unwrap_or_default()
}

/// Decodes a base64 audio payload.
pub(crate) fn b64_decode(text: &str) -> Result<Vec<u8>, StreamError> {
    B64.decode(text).map_err(|_| StreamError::BadBase64)
}

/// Encodes an audio payload as padded standard base64.
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One DTMF key (`0`-`9`, `*`, `#`, `A`-`D`).
pub(crate) fn digit(text: &str, name: &'static str) -> Result<char, StreamError> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') => Ok(c),
        (Some(c), None) if matches!(c, 'a'..='d') => Ok(c.to_ascii_uppercase()),
        _ => Err(StreamError::InvalidField(name)),
    }
}

/// A track by any of the names the dialects use.
pub(crate) fn track(text: &str, name: &'static str) -> Result<Track, StreamError> {
    match text {
        "inbound" | "inbound_track" => Ok(Track::Inbound),
        "outbound" | "outbound_track" => Ok(Track::Outbound),
        _ => Err(StreamError::InvalidField(name)),
    }
}

/// An encoding by any of the names the dialects use (MIME type or RTP name).
pub(crate) fn encoding(text: &str) -> Encoding {
    let lower = text.to_ascii_lowercase();
    match lower.split(';').next().unwrap_or_default().trim() {
        "audio/x-mulaw" | "audio/mulaw" | "audio/pcmu" | "pcmu" => Encoding::Pcmu,
        "audio/x-alaw" | "audio/alaw" | "audio/pcma" | "pcma" => Encoding::Pcma,
        "audio/x-l16" | "audio/l16" | "l16" => Encoding::L16,
        _ => Encoding::Other(text.chars().take(64).collect()),
    }
}

/// A JSON object of parameters as strings (non-string values keep their JSON text).
pub(crate) fn string_map(map: Option<serde_json::Map<String, Value>>) -> BTreeMap<String, String> {
    map.into_iter()
        .flatten()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

/// The `media` object of the JSON dialects (Twilio, Telnyx, Plivo name its fields alike).
#[derive(serde::Deserialize)]
pub(crate) struct MediaIn<'a> {
    #[serde(borrow)]
    pub(crate) track: Option<Cow<'a, str>>,
    pub(crate) chunk: Option<Num>,
    pub(crate) timestamp: Option<Num>,
    #[serde(borrow)]
    pub(crate) payload: Option<Cow<'a, str>>,
}

/// The `dtmf` object of the JSON dialects (`track` where the dialect sends one).
#[derive(serde::Deserialize)]
pub(crate) struct DtmfIn<'a> {
    #[serde(borrow)]
    pub(crate) digit: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) track: Option<Cow<'a, str>>,
}

/// A media chunk from a `media` object; `payload` turns its base64 text into audio the
/// dialect's way.
pub(crate) fn media_chunk(
    media: MediaIn<'_>,
    sequence: u64,
    payload: impl FnOnce(Option<&str>) -> Result<Vec<u8>, StreamError>,
) -> Result<MediaChunk, StreamError> {
    let track = required(media.track.as_deref(), "media.track")?;
    Ok(MediaChunk {
        track: self::track(track, "media.track")?,
        chunk: num(media.chunk, "media.chunk")?,
        timestamp_ms: num(media.timestamp, "media.timestamp")?,
        sequence,
        payload: payload(media.payload.as_deref())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_come_as_strings_or_numbers() {
        let table: [(&str, Option<u64>); 8] = [
            ("\"42\"", Some(42)),
            ("42", Some(42)),
            ("\"\"", None),
            ("\"+4\"", None),
            ("\"-4\"", None),
            ("-4", None),
            ("4.5", None),
            ("\"99999999999999999999999\"", None),
        ];
        for (json, want) in table {
            let n: Num = serde_json::from_str(json).unwrap();
            assert_eq!(n.0, want, "{json}");
        }
        assert_eq!(num(None, "x"), Err(StreamError::MissingField("x")));
        assert_eq!(
            num(Some(Num(None)), "x"),
            Err(StreamError::InvalidField("x"))
        );
    }

    #[test]
    fn base64_with_or_without_padding() {
        assert_eq!(b64_decode("AAE=").unwrap(), [0, 1]);
        assert_eq!(b64_decode("AAE").unwrap(), [0, 1]);
        assert_eq!(b64_decode("A$E="), Err(StreamError::BadBase64));
        assert_eq!(b64_encode(&[0, 1]), "AAE=");
    }

    #[test]
    fn digits_tracks_and_encodings_by_name() {
        assert_eq!(digit("7", "d"), Ok('7'));
        assert_eq!(digit("#", "d"), Ok('#'));
        assert_eq!(digit("b", "d"), Ok('B'));
        assert_eq!(digit("12", "d"), Err(StreamError::InvalidField("d")));
        assert_eq!(digit("", "d"), Err(StreamError::InvalidField("d")));
        assert_eq!(track("inbound_track", "t"), Ok(Track::Inbound));
        assert_eq!(track("outbound", "t"), Ok(Track::Outbound));
        assert!(track("both", "t").is_err());
        assert_eq!(encoding("audio/x-mulaw"), Encoding::Pcmu);
        assert_eq!(encoding("PCMA"), Encoding::Pcma);
        assert_eq!(encoding("audio/l16;rate=16000"), Encoding::L16);
        assert_eq!(encoding("OPUS"), Encoding::Other("OPUS".into()));
    }

    #[test]
    fn not_json_is_told_from_wrong_shape() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct S {
            a: Option<String>,
        }
        assert!(matches!(
            parse_json::<S>("{nope"),
            Err(StreamError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_json::<S>(r#"{"a": 5}"#),
            Err(StreamError::Malformed(_))
        ));
        assert!(matches!(
            parse_json::<S>("[1]"),
            Err(StreamError::Malformed(_))
        ));
    }
}
