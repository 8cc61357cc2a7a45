//! Plivo audio streaming: JSON text frames with camelCase names. Plivo sends `start`,
//! `media`, `dtmf`, and answers our `checkpoint` with `playedStream` and our `clearAudio`
//! with `clearedAudio`; we play audio with `playAudio`. The stream's end is reported by
//! Plivo's HTTP status callback, not on the socket (the socket closing is our stop).

use super::wire::{self, DtmfIn, MediaIn, Num};
use super::{
    Command, Dialect, Encoding, Event, Frame, FrameRef, MediaFormat, StreamError, StreamStart,
};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Decodes what Plivo sends and encodes what we send back, for one stream.
#[derive(Debug, Default)]
pub struct PlivoCodec {
    /// `streamId` and media format from `start`: every message we send names the stream and
    /// our audio must be in the format Plivo announced.
    stream: Option<(String, MediaFormat)>,
}

impl PlivoCodec {
    /// A codec waiting for `start`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Dialect for PlivoCodec {
    fn decode(&mut self, frame: FrameRef<'_>) -> Result<Vec<Event>, StreamError> {
        let FrameRef::Text(text) = frame else {
            return Err(StreamError::BinaryOnJsonDialect);
        };
        let msg: Inbound<'_> = wire::parse_json(text)?;
        let event = match wire::required(msg.event.as_deref(), "event")? {
            "start" => {
                let start = decode_start(wire::required(msg.start, "start")?, msg.extra_headers)?;
                self.stream = Some((start.stream_id.clone(), start.media_format.clone()));
                Event::Start(start)
            }
            "media" => {
                let Some((_, format)) = &self.stream else {
                    return Err(StreamError::MediaBeforeStart);
                };
                let sequence = wire::num(msg.sequence_number, "sequenceNumber")?;
                let media = wire::required(msg.media, "media")?;
                let chunk = wire::media_chunk(media, sequence, |p| {
                    wire::b64_decode(wire::required(p, "media.payload")?)
                })?;
                format.check_payload(chunk.payload.len())?;
                Event::Media(chunk)
            }
            "dtmf" => {
                let dtmf = wire::required(msg.dtmf, "dtmf")?;
                let digit = wire::required(dtmf.digit.as_deref(), "dtmf.digit")?;
                let track = match dtmf.track.as_deref() {
                    Some(t) => Some(wire::track(t, "dtmf.track")?),
                    None => None,
                };
                Event::Dtmf {
                    digit: wire::digit(digit, "dtmf.digit")?,
                    track,
                    duration_ms: None,
                }
            }
            "playedStream" => Event::Mark {
                name: wire::required(msg.name, "name")?,
            },
            "clearedAudio" => Event::Cleared,
            other => return Err(StreamError::unknown_event(other)),
        };
        Ok(vec![event])
    }

    fn encode(&mut self, command: &Command) -> Result<Frame, StreamError> {
        let (stream_id, format) = self.stream.as_ref().ok_or(StreamError::NotStarted)?;
        let msg = match command {
            Command::Media { payload } => {
                format.check_payload(payload.len())?;
                CommandOut::PlayAudio {
                    media: PlayMediaOut {
                        content_type: match format.encoding {
                            Encoding::L16 => "audio/x-l16",
                            _ => "audio/x-mulaw",
                        },
                        sample_rate: format.sample_rate,
                        payload: wire::b64_encode(payload),
                    },
                    stream_id,
                }
            }
            Command::Mark { name } => CommandOut::Checkpoint { stream_id, name },
            Command::Clear => CommandOut::ClearAudio { stream_id },
        };
        Ok(Frame::Text(wire::to_text(&msg)))
    }
}

fn decode_start(s: StartIn, extra_headers: Option<String>) -> Result<StreamStart, StreamError> {
    let format = wire::required(s.media_format, "start.mediaFormat")?;
    let encoding = wire::required(format.encoding, "start.mediaFormat.encoding")?;
    let rate = wire::num(format.sample_rate, "start.mediaFormat.sampleRate")?;
    let encoding = wire::encoding(&encoding);
    // Plivo streams µ-law at 8 kHz or L16 at 8/16 kHz; anything else we could not answer in.
    if !matches!(encoding, Encoding::Pcmu | Encoding::L16) {
        return Err(StreamError::InvalidField("start.mediaFormat.encoding"));
    }
    let tracks = s
        .tracks
        .unwrap_or_default()
        .iter()
        .map(|t| wire::track(t, "start.tracks"))
        .collect::<Result<_, _>>()?;
    Ok(StreamStart {
        stream_id: wire::required(s.stream_id, "start.streamId")?,
        call_id: wire::required(s.call_id, "start.callId")?,
        account_id: s.account_id,
        tracks,
        custom_parameters: extra_headers
            .as_deref()
            .map(parse_headers)
            .unwrap_or_default(),
        media_format: MediaFormat {
            encoding,
            sample_rate: match rate {
                8000 | 16000 => rate as u32,
                _ => return Err(StreamError::InvalidField("start.mediaFormat.sampleRate")),
            },
            channels: 1,
        },
    })
}

/// `extraHeaders` as Plivo passes them: `k1=v1,k2=v2` in the XML, `k1=v1;k2=v2` in examples.
/// Plivo allows only letters and digits in them, so a stream token travels in two parts,
/// `tokenExpiry=<expiry>,tokenSig=<hex signature>`, put back together as `token`
/// (`v1.<expiry>.<signature>`); a `token` header as such is taken as it is.
fn parse_headers(text: &str) -> BTreeMap<String, String> {
    let mut headers: BTreeMap<String, String> = text
        .split([',', ';'])
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), v.trim().to_string()))
        })
        .collect();
    if !headers.contains_key("token")
        && let (Some(expiry), Some(sig)) = (headers.get("tokenExpiry"), headers.get("tokenSig"))
    {
        let token = format!("v1.{expiry}.{sig}");
        headers.insert("token".into(), token);
    }
    headers
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inbound<'a> {
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    sequence_number: Option<Num>,
    start: Option<StartIn>,
    #[serde(borrow)]
    media: Option<MediaIn<'a>>,
    #[serde(borrow)]
    dtmf: Option<DtmfIn<'a>>,
    name: Option<String>,
    #[serde(rename = "extra_headers")]
    extra_headers: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartIn {
    call_id: Option<String>,
    stream_id: Option<String>,
    account_id: Option<String>,
    tracks: Option<Vec<String>>,
    media_format: Option<MediaFormatIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormatIn {
    encoding: Option<String>,
    sample_rate: Option<Num>,
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
enum CommandOut<'a> {
    PlayAudio {
        media: PlayMediaOut,
        #[serde(rename = "streamId")]
        stream_id: &'a str,
    },
    Checkpoint {
        #[serde(rename = "streamId")]
        stream_id: &'a str,
        name: &'a str,
    },
    ClearAudio {
        #[serde(rename = "streamId")]
        stream_id: &'a str,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlayMediaOut {
    content_type: &'static str,
    sample_rate: u32,
    payload: String,
}

#[cfg(test)]
mod tests {
    use super::super::{MediaChunk, Track};
    use super::*;
    use serde_json::{Value, json};

    // Shapes from Plivo's "Stream Event Protocol" and "Audio Streaming Protocol Reference".
    const START: &str = r#"{
        "event": "start",
        "sequenceNumber": 1,
        "start": {
            "callId": "12345678-1234-1234-1234-123456789abc",
            "streamId": "87654321-4321-4321-4321-cba987654321",
            "accountId": "MAXXXXXXXXXXXXXXXXXX",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}
        },
        "extra_headers": "userId=12345;sessionId=abc-xyz"
    }"#;
    const MEDIA: &str = r#"{
        "event": "media",
        "sequenceNumber": 42,
        "streamId": "87654321-4321-4321-4321-cba987654321",
        "media": {"track": "inbound", "timestamp": "1705312200000", "chunk": 41, "payload": "/35+fw=="},
        "extra_headers": "userId=12345;sessionId=abc-xyz"
    }"#;
    const DTMF: &str = r#"{
        "event": "dtmf",
        "sequenceNumber": 43,
        "streamId": "87654321-4321-4321-4321-cba987654321",
        "dtmf": {"digit": "5", "track": "inbound"},
        "extra_headers": "userId=12345;sessionId=abc-xyz"
    }"#;
    const PLAYED: &str = r#"{
        "event": "playedStream",
        "sequenceNumber": 44,
        "streamId": "87654321-4321-4321-4321-cba987654321",
        "name": "customer greeting audio"
    }"#;
    const CLEARED: &str = r#"{
        "event": "clearedAudio",
        "sequenceNumber": 45,
        "streamId": "87654321-4321-4321-4321-cba987654321"
    }"#;
    const SID: &str = "87654321-4321-4321-4321-cba987654321";

    fn started(start: &str) -> PlivoCodec {
        let mut codec = PlivoCodec::new();
        codec.decode(FrameRef::Text(start)).unwrap();
        codec
    }

    #[test]
    fn decodes_every_documented_message() {
        let mut codec = PlivoCodec::new();
        let table: [(&str, Event); 5] = [
            (
                START,
                Event::Start(StreamStart {
                    stream_id: SID.into(),
                    call_id: "12345678-1234-1234-1234-123456789abc".into(),
                    account_id: Some("MAXXXXXXXXXXXXXXXXXX".into()),
                    tracks: vec![Track::Inbound],
                    custom_parameters: [("sessionId", "abc-xyz"), ("userId", "12345")]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    media_format: MediaFormat {
                        encoding: Encoding::Pcmu,
                        sample_rate: 8000,
                        channels: 1,
                    },
                }),
            ),
            (
                MEDIA,
                Event::Media(MediaChunk {
                    track: Track::Inbound,
                    chunk: 41,
                    timestamp_ms: 1_705_312_200_000,
                    sequence: 42,
                    payload: vec![0xff, 0x7e, 0x7e, 0x7f],
                }),
            ),
            (
                DTMF,
                Event::Dtmf {
                    digit: '5',
                    track: Some(Track::Inbound),
                    duration_ms: None,
                },
            ),
            (
                PLAYED,
                Event::Mark {
                    name: "customer greeting audio".into(),
                },
            ),
            (CLEARED, Event::Cleared),
        ];
        for (text, want) in table {
            assert_eq!(codec.decode(FrameRef::Text(text)), Ok(vec![want]), "{text}");
        }
    }

    #[test]
    fn encodes_play_checkpoint_and_clear_in_the_stream_format() {
        let l16 = START
            .replace("audio/x-mulaw", "audio/x-l16")
            .replace("8000", "16000");
        let table = [
            (
                START.to_string(),
                Command::Media {
                    payload: vec![0xff, 0x7e],
                },
                json!({"event": "playAudio", "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": "/34="}, "streamId": SID}),
            ),
            (
                l16,
                Command::Media {
                    payload: vec![0, 1, 2, 3],
                },
                json!({"event": "playAudio", "media": {"contentType": "audio/x-l16", "sampleRate": 16000, "payload": "AAECAw=="}, "streamId": SID}),
            ),
            (
                START.to_string(),
                Command::Mark {
                    name: "customer greeting audio".into(),
                },
                json!({"event": "checkpoint", "streamId": SID, "name": "customer greeting audio"}),
            ),
            (
                START.to_string(),
                Command::Clear,
                json!({"event": "clearAudio", "streamId": SID}),
            ),
        ];
        for (start, command, want) in table {
            let Frame::Text(text) = started(&start).encode(&command).unwrap() else {
                panic!("binary")
            };
            assert_eq!(
                serde_json::from_str::<Value>(&text).unwrap(),
                want,
                "{command:?}"
            );
        }
    }

    #[test]
    fn every_bad_input_has_its_error() {
        let table: [(&str, StreamError); 6] = [
            (
                r#"{"event":"stop"}"#,
                StreamError::UnknownEvent("stop".into()),
            ),
            (
                r#"{"event":"media","sequenceNumber":2,"media":{"track":"inbound","timestamp":"1","chunk":1,"payload":"*"}}"#,
                StreamError::BadBase64,
            ),
            (
                r#"{"event":"media","sequenceNumber":2,"media":{"track":"inbound","timestamp":"1","payload":"AA=="}}"#,
                StreamError::MissingField("media.chunk"),
            ),
            (
                r#"{"event":"playedStream"}"#,
                StreamError::MissingField("name"),
            ),
            (
                r#"{"event":"dtmf","dtmf":{"digit":"55"}}"#,
                StreamError::InvalidField("dtmf.digit"),
            ),
            (
                &START.replace("8000", "44100"),
                StreamError::InvalidField("start.mediaFormat.sampleRate"),
            ),
        ];
        for (text, want) in table {
            assert_eq!(
                started(START).decode(FrameRef::Text(text)),
                Err(want),
                "{text}"
            );
        }
        assert_eq!(
            started(START).decode(FrameRef::Binary(&[0; 160])),
            Err(StreamError::BinaryOnJsonDialect)
        );
        assert!(matches!(
            started(START).decode(FrameRef::Text("{\"event\":")),
            Err(StreamError::InvalidJson(_))
        ));
        assert_eq!(
            PlivoCodec::new().decode(FrameRef::Text(MEDIA)),
            Err(StreamError::MediaBeforeStart)
        );
        assert_eq!(
            PlivoCodec::new().encode(&Command::Clear),
            Err(StreamError::NotStarted)
        );
        let l16 = started(&START.replace("audio/x-mulaw", "audio/x-l16"));
        let odd = MEDIA.replace("/35+fw==", "AAEC");
        assert_eq!(
            { l16 }.decode(FrameRef::Text(&odd)),
            Err(StreamError::PayloadSize {
                len: 3,
                expected: 2,
                exact: false
            })
        );
        let mut l16 = started(&START.replace("audio/x-mulaw", "audio/x-l16"));
        assert_eq!(
            l16.encode(&Command::Media { payload: vec![1] }),
            Err(StreamError::PayloadSize {
                len: 1,
                expected: 2,
                exact: false
            })
        );
    }

    #[test]
    fn extra_headers_split_on_commas_or_semicolons() {
        let h = parse_headers("a=1,b=2;c=x=y, =skip,novalue");
        assert_eq!(h.len(), 3);
        assert_eq!(h["c"], "x=y");
    }

    /// The token from `extraHeaders`: split in letters-and-digits parts, or whole.
    #[test]
    fn the_token_comes_from_extra_headers() {
        let table = [
            (
                "tokenExpiry=1795000000,tokenSig=5f0c9a",
                Some("v1.1795000000.5f0c9a"),
            ),
            (
                "userId=1;tokenSig=5f0c9a;tokenExpiry=1795000000",
                Some("v1.1795000000.5f0c9a"),
            ),
            ("token=v1.1795000000.5f0c9a", Some("v1.1795000000.5f0c9a")),
            ("tokenSig=5f0c9a", None),
            ("userId=12345", None),
            ("", None),
        ];
        for (headers, want) in table {
            let start = START.replace("userId=12345;sessionId=abc-xyz", headers);
            let mut codec = PlivoCodec::new();
            let evs = codec.decode(FrameRef::Text(&start)).unwrap();
            let Event::Start(s) = &evs[0] else {
                panic!("{evs:?}")
            };
            assert_eq!(
                s.custom_parameters.get("token").map(String::as_str),
                want,
                "{headers}"
            );
        }
    }
}
