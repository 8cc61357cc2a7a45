//! Telnyx media streaming: Twilio's shape with snake_case names (`stream_id`,
//! `sequence_number`, `call_control_id`, `media_format`). Telnyx does not guarantee frame
//! order, so sequenced messages go through a [`ReorderBuffer`] before they are handed out.

use super::reorder::{ReorderBuffer, ReorderStats};
use super::wire::{self, DtmfIn, MediaIn, Num};
use super::{Command, Dialect, Event, Frame, FrameRef, MediaFormat, StreamError, StreamStart};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// How many sequence numbers we wait for a missing frame by default (160 ms of 20 ms media).
pub const DEFAULT_REORDER_WINDOW: u64 = 8;

/// Decodes what Telnyx sends (in sequence order) and encodes what we send back.
#[derive(Debug)]
pub struct TelnyxCodec {
    /// The media format from `start`, checked against every payload.
    format: Option<MediaFormat>,
    reorder: ReorderBuffer<Event>,
    /// `connected.x-telnyx-streaming-auth-token` (Call Control's `stream_auth_token`),
    /// handed to the `start` as its `token` parameter.
    auth_token: Option<String>,
}

impl Default for TelnyxCodec {
    fn default() -> Self {
        Self::with_window(DEFAULT_REORDER_WINDOW)
    }
}

impl TelnyxCodec {
    /// A codec with the default reorder window.
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec that waits at most `window` sequence numbers for a missing frame.
    pub fn with_window(window: u64) -> Self {
        TelnyxCodec {
            format: None,
            reorder: ReorderBuffer::new(window),
            auth_token: None,
        }
    }

    /// What the reorder buffer has done (late, duplicate and missing frames).
    pub fn reorder_stats(&self) -> ReorderStats {
        self.reorder.stats()
    }

    /// Hands out the frames still waiting for a missing one (the socket closed).
    pub fn flush(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        self.reorder.flush(&mut out);
        out
    }

    fn decode_one(&mut self, msg: Inbound<'_>) -> Result<Event, StreamError> {
        Ok(match wire::required(msg.event.as_deref(), "event")? {
            "connected" => {
                if let Some(t) = msg.auth_token {
                    self.auth_token = Some(t);
                }
                Event::Connected {
                    protocol: None,
                    version: msg.version,
                }
            }
            "start" => {
                let start = decode_start(
                    wire::required(msg.start, "start")?,
                    msg.stream_id.map(Cow::into_owned),
                    self.auth_token.as_deref(),
                )?;
                self.format = Some(start.media_format.clone());
                Event::Start(start)
            }
            "media" => {
                let Some(format) = &self.format else {
                    return Err(StreamError::MediaBeforeStart);
                };
                let sequence = wire::num(msg.sequence_number, "sequence_number")?;
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
                Event::Dtmf {
                    digit: wire::digit(digit, "dtmf.digit")?,
                    track: None,
                    duration_ms: None,
                }
            }
            "mark" => {
                let mark = wire::required(msg.mark, "mark")?;
                Event::Mark {
                    name: wire::required(mark.name, "mark.name")?,
                }
            }
            "error" => {
                let p = msg.payload.unwrap_or_default();
                Event::Error {
                    code: p.code.and_then(|c| c.0).and_then(|c| i64::try_from(c).ok()),
                    title: p.title,
                    detail: p.detail,
                }
            }
            "stop" => Event::Stop,
            other => return Err(StreamError::unknown_event(other)),
        })
    }
}

impl Dialect for TelnyxCodec {
    fn decode(&mut self, frame: FrameRef<'_>) -> Result<Vec<Event>, StreamError> {
        let FrameRef::Text(text) = frame else {
            return Err(StreamError::BinaryOnJsonDialect);
        };
        let msg: Inbound<'_> = wire::parse_json(text)?;
        let sequence = match msg.sequence_number {
            Some(n) => Some(wire::num(Some(n), "sequence_number")?),
            None => None,
        };
        let event = self.decode_one(msg)?;
        let mut out = Vec::with_capacity(1);
        let stop = event == Event::Stop;
        match sequence {
            Some(seq) => self.reorder.push(seq, event, &mut out),
            None => out.push(event),
        }
        if stop {
            // Nothing follows a stop: whatever still waits for a gap is handed out now.
            self.reorder.flush(&mut out);
        }
        Ok(out)
    }

    fn encode(&mut self, command: &Command) -> Result<Frame, StreamError> {
        let msg = match command {
            Command::Media { payload } => CommandOut::Media {
                media: PayloadOut {
                    payload: wire::b64_encode(payload),
                },
            },
            Command::Mark { name } => CommandOut::Mark {
                mark: NameOut { name },
            },
            Command::Clear => CommandOut::Clear,
        };
        Ok(Frame::Text(wire::to_text(&msg)))
    }
}

/// Where a Telnyx stream's token may travel, first found wins: `start.custom_parameters`
/// `token` (Call Control `custom_parameters`, TeXML `<Parameter>`), the connected frame's
/// `x-telnyx-streaming-auth-token` (Call Control `stream_auth_token`), or `client_state`
/// holding base64 of the token (`v1.…`).
fn decode_start(
    s: StartIn,
    stream_id: Option<String>,
    auth_token: Option<&str>,
) -> Result<StreamStart, StreamError> {
    let format = wire::required(s.media_format, "start.media_format")?;
    let encoding = wire::required(format.encoding, "start.media_format.encoding")?;
    let sample_rate = wire::num(format.sample_rate, "start.media_format.sample_rate")?;
    let channels = match format.channels {
        None => 1,
        Some(c) => wire::num(Some(c), "start.media_format.channels")?,
    };
    let mut custom_parameters = custom_params(s.custom_parameters);
    if !custom_parameters.contains_key("token") {
        let from_state = s.client_state.as_deref().and_then(client_state_token);
        if let Some(t) = auth_token.map(str::to_string).or(from_state) {
            custom_parameters.insert("token".into(), t);
        }
    }
    if let Some(state) = s.client_state {
        custom_parameters
            .entry("client_state".into())
            .or_insert(state);
    }
    Ok(StreamStart {
        stream_id: wire::required(stream_id, "stream_id")?,
        call_id: wire::required(s.call_control_id, "start.call_control_id")?,
        account_id: s.user_id,
        tracks: Vec::new(),
        custom_parameters,
        media_format: MediaFormat {
            encoding: wire::encoding(&encoding),
            sample_rate: u32::try_from(sample_rate)
                .map_err(|_| StreamError::InvalidField("start.media_format.sample_rate"))?,
            channels: u8::try_from(channels)
                .map_err(|_| StreamError::InvalidField("start.media_format.channels"))?,
        },
    })
}

/// `start.custom_parameters`: an object of names to values, or a list of
/// `{"name":…,"value":…}` as Call Control's `custom_parameters` are written.
fn custom_params(v: Option<serde_json::Value>) -> BTreeMap<String, String> {
    match v {
        Some(serde_json::Value::Object(map)) => wire::string_map(Some(map)),
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| {
                let name = item.get("name")?.as_str()?.to_string();
                let value = match item.get("value")? {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Some((name, value))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A stream token carried in `client_state`: base64 of `v1.<expiry>.<sig>`.
fn client_state_token(state: &str) -> Option<String> {
    let bytes = wire::b64_decode(state.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.starts_with("v1.").then_some(text)
}

#[derive(Deserialize)]
struct Inbound<'a> {
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    sequence_number: Option<Num>,
    #[serde(borrow)]
    stream_id: Option<Cow<'a, str>>,
    version: Option<String>,
    start: Option<StartIn>,
    #[serde(borrow)]
    media: Option<MediaIn<'a>>,
    #[serde(borrow)]
    dtmf: Option<DtmfIn<'a>>,
    mark: Option<NameIn>,
    payload: Option<ErrorIn>,
    #[serde(rename = "x-telnyx-streaming-auth-token")]
    auth_token: Option<String>,
}

#[derive(Deserialize)]
struct StartIn {
    user_id: Option<String>,
    call_control_id: Option<String>,
    client_state: Option<String>,
    custom_parameters: Option<serde_json::Value>,
    media_format: Option<MediaFormatIn>,
}

#[derive(Deserialize)]
struct MediaFormatIn {
    encoding: Option<String>,
    sample_rate: Option<Num>,
    channels: Option<Num>,
}

#[derive(Deserialize)]
struct NameIn {
    name: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorIn {
    code: Option<Num>,
    title: Option<String>,
    detail: Option<String>,
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum CommandOut<'a> {
    Media { media: PayloadOut },
    Mark { mark: NameOut<'a> },
    Clear,
}

#[derive(Serialize)]
struct PayloadOut {
    payload: String,
}

#[derive(Serialize)]
struct NameOut<'a> {
    name: &'a str,
}

#[cfg(test)]
mod tests {
    use super::super::{Encoding, MediaChunk, Track};
    use super::*;
    use serde_json::Value;

    // Shapes from Telnyx's "Stream call media over WebSocket" (AsyncAPI) page.
    const CONNECTED: &str = r#"{"event":"connected","version":"1.0.0"}"#;
    const START: &str = r#"{
        "event": "start",
        "sequence_number": "1",
        "start": {
            "user_id": "3e6f995f-85f7-4705-9741-53b116d28237",
            "call_control_id": "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg",
            "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
            "from": "+13122010094",
            "to": "+13122123456",
            "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}
        },
        "stream_id": "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
    }"#;
    const DTMF: &str = r#"{
        "event": "dtmf",
        "stream_id": "32DE0DEA-53CB-4B21-89A4-9E1819C043BC",
        "occurred_at": "2024-02-01T10:11:12.123Z",
        "sequence_number": "5",
        "dtmf": {"digit": "7"}
    }"#;
    const MARK: &str = r#"{
        "event": "mark",
        "sequence_number": "6",
        "stream_id": "32DE0DEA-53CB-4B21-89A4-9E1819C043BC",
        "mark": {"name": "greeting"}
    }"#;
    const ERROR: &str = r#"{
        "event": "error",
        "sequence_number": "7",
        "stream_id": "32DE0DEA-53CB-4B21-89A4-9E1819C043BC",
        "payload": {"code": 100002, "title": "unknown_error", "detail": "An unknown error has occurred"}
    }"#;
    const STOP: &str = r#"{
        "event": "stop",
        "sequence_number": "8",
        "stop": {
            "user_id": "3e6f995f-85f7-4705-9741-53b116d28237",
            "call_control_id": "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"
        },
        "stream_id": "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
    }"#;

    fn media(seq: u64) -> String {
        format!(
            r#"{{"event":"media","sequence_number":"{seq}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"/35+fw=="}},"stream_id":"32DE0DEA-53CB-4B21-89A4-9E1819C043BC"}}"#,
            seq - 1,
            (seq - 2) * 20
        )
    }

    fn seqs(events: &[Event]) -> Vec<u64> {
        events
            .iter()
            .map(|e| match e {
                Event::Media(m) => m.sequence,
                other => panic!("not media: {other:?}"),
            })
            .collect()
    }

    fn started(window: u64) -> TelnyxCodec {
        let mut codec = TelnyxCodec::with_window(window);
        codec.decode(FrameRef::Text(CONNECTED)).unwrap();
        codec.decode(FrameRef::Text(START)).unwrap();
        codec
    }

    #[test]
    fn decodes_every_documented_message() {
        let mut codec = TelnyxCodec::new();
        let table: [(String, Event); 8] = [
            (
                CONNECTED.into(),
                Event::Connected {
                    protocol: None,
                    version: Some("1.0.0".into()),
                },
            ),
            (
                START.into(),
                Event::Start(StreamStart {
                    stream_id: "32DE0DEA-53CB-4B21-89A4-9E1819C043BC".into(),
                    call_id: "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg".into(),
                    account_id: Some("3e6f995f-85f7-4705-9741-53b116d28237".into()),
                    tracks: vec![],
                    custom_parameters: [(
                        "client_state".to_string(),
                        "aGF2ZSBhIG5pY2UgZGF5ID1d".to_string(),
                    )]
                    .into_iter()
                    .collect(),
                    media_format: MediaFormat {
                        encoding: Encoding::Pcmu,
                        sample_rate: 8000,
                        channels: 1,
                    },
                }),
            ),
            (
                media(2),
                Event::Media(MediaChunk {
                    track: Track::Inbound,
                    chunk: 1,
                    timestamp_ms: 0,
                    sequence: 2,
                    payload: vec![0xff, 0x7e, 0x7e, 0x7f],
                }),
            ),
            (
                media(3),
                Event::Media(MediaChunk {
                    chunk: 2,
                    timestamp_ms: 20,
                    sequence: 3,
                    ..media_chunk()
                }),
            ),
            (
                media(4),
                Event::Media(MediaChunk {
                    chunk: 3,
                    timestamp_ms: 40,
                    sequence: 4,
                    ..media_chunk()
                }),
            ),
            (
                DTMF.into(),
                Event::Dtmf {
                    digit: '7',
                    track: None,
                    duration_ms: None,
                },
            ),
            (
                MARK.into(),
                Event::Mark {
                    name: "greeting".into(),
                },
            ),
            (
                ERROR.into(),
                Event::Error {
                    code: Some(100_002),
                    title: Some("unknown_error".into()),
                    detail: Some("An unknown error has occurred".into()),
                },
            ),
        ];
        for (text, want) in table {
            assert_eq!(
                codec.decode(FrameRef::Text(&text)),
                Ok(vec![want]),
                "{text}"
            );
        }
        assert_eq!(codec.decode(FrameRef::Text(STOP)), Ok(vec![Event::Stop]));
        assert_eq!(codec.reorder_stats().missing, 0);
    }

    fn media_chunk() -> MediaChunk {
        MediaChunk {
            track: Track::Inbound,
            chunk: 1,
            timestamp_ms: 0,
            sequence: 2,
            payload: vec![0xff, 0x7e, 0x7e, 0x7f],
        }
    }

    #[test]
    fn a_shuffled_window_is_delivered_in_order() {
        let mut codec = started(8);
        let mut out = Vec::new();
        for seq in [3, 2, 5, 4, 7, 6, 9, 8, 10] {
            out.extend(codec.decode(FrameRef::Text(&media(seq))).unwrap());
        }
        assert_eq!(seqs(&out), (2..=10).collect::<Vec<_>>());
        let s = codec.reorder_stats();
        assert_eq!((s.late, s.duplicates, s.missing), (0, 0, 0));
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let mut codec = started(8);
        let mut out = Vec::new();
        for seq in [2, 3, 3, 5, 5, 4, 2] {
            out.extend(codec.decode(FrameRef::Text(&media(seq))).unwrap());
        }
        assert_eq!(seqs(&out), [2, 3, 4, 5]);
        assert_eq!(codec.reorder_stats().duplicates, 3);
    }

    #[test]
    fn a_gap_older_than_the_window_is_skipped_and_its_late_frame_dropped() {
        let mut codec = started(4);
        let mut out = Vec::new();
        // 3 is lost in the network for a while; 7 pushes it out of the window.
        for seq in [2, 4, 5, 6] {
            out.extend(codec.decode(FrameRef::Text(&media(seq))).unwrap());
        }
        assert_eq!(seqs(&out), [2]);
        out.extend(codec.decode(FrameRef::Text(&media(7))).unwrap());
        assert_eq!(seqs(&out), [2, 4, 5, 6, 7]);
        assert_eq!(codec.decode(FrameRef::Text(&media(3))), Ok(vec![]));
        let s = codec.reorder_stats();
        assert_eq!((s.missing, s.late), (1, 1));
    }

    #[test]
    fn stop_hands_out_everything_still_waiting() {
        let mut codec = started(8);
        assert_eq!(codec.decode(FrameRef::Text(&media(2))).unwrap().len(), 1);
        assert_eq!(codec.decode(FrameRef::Text(&media(4))), Ok(vec![]));
        let out = codec
            .decode(FrameRef::Text(&STOP.replace("\"8\"", "\"5\"")))
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], Event::Stop);
        assert!(codec.flush().is_empty());
    }

    #[test]
    fn encodes_our_commands_as_telnyx_expects() {
        let mut codec = TelnyxCodec::new();
        let table = [
            (
                Command::Media {
                    payload: vec![0xff, 0x7e],
                },
                serde_json::json!({"event": "media", "media": {"payload": "/34="}}),
            ),
            (
                Command::Mark { name: "m".into() },
                serde_json::json!({"event": "mark", "mark": {"name": "m"}}),
            ),
            (Command::Clear, serde_json::json!({"event": "clear"})),
        ];
        for (command, want) in table {
            let Frame::Text(text) = codec.encode(&command).unwrap() else {
                panic!("binary")
            };
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), want);
        }
    }

    #[test]
    fn every_bad_input_has_its_error() {
        let l16_start = START.replace("PCMU", "L16");
        let table: [(FrameRef<'_>, StreamError); 7] = [
            (
                FrameRef::Binary(b"\x01\x02"),
                StreamError::BinaryOnJsonDialect,
            ),
            (
                FrameRef::Text(r#"{"event":"noise","sequence_number":"2"}"#),
                StreamError::UnknownEvent("noise".into()),
            ),
            (
                FrameRef::Text(
                    r#"{"event":"media","sequence_number":"2","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"~~"}}"#,
                ),
                StreamError::BadBase64,
            ),
            (
                FrameRef::Text(r#"{"event":"media","sequence_number":"two"}"#),
                StreamError::InvalidField("sequence_number"),
            ),
            (
                FrameRef::Text(
                    r#"{"event":"media","sequence_number":"2","media":{"track":"inbound","chunk":"1","timestamp":"0"}}"#,
                ),
                StreamError::MissingField("media.payload"),
            ),
            (
                FrameRef::Text(
                    r#"{"event":"start","sequence_number":"1","start":{"call_control_id":"x","media_format":{"encoding":"PCMU","sample_rate":8000}}}"#,
                ),
                StreamError::MissingField("stream_id"),
            ),
            (
                FrameRef::Text(r#"{"event":"dtmf","dtmf":{"digit":"x"}}"#),
                StreamError::InvalidField("dtmf.digit"),
            ),
        ];
        for (frame, want) in table {
            assert_eq!(started(8).decode(frame), Err(want), "{frame:?}");
        }
        assert!(matches!(
            started(8).decode(FrameRef::Text("not json")),
            Err(StreamError::InvalidJson(_))
        ));
        assert_eq!(
            TelnyxCodec::new().decode(FrameRef::Text(&media(2))),
            Err(StreamError::MediaBeforeStart)
        );
        // An odd number of bytes cannot be 16-bit linear PCM.
        let mut l16 = TelnyxCodec::new();
        l16.decode(FrameRef::Text(&l16_start)).unwrap();
        let odd = media(2).replace("/35+fw==", "AAEC");
        assert_eq!(
            l16.decode(FrameRef::Text(&odd)),
            Err(StreamError::PayloadSize {
                len: 3,
                expected: 2,
                exact: false
            })
        );
    }

    /// The start's `token` parameter from each place Telnyx can carry it.
    #[test]
    fn the_token_comes_from_each_documented_place() {
        let tok = "v1.1795000000.5f0c";
        let start = |start_fields: &str| {
            format!(
                r#"{{"event":"start","sequence_number":"1","stream_id":"S1","start":{{"call_control_id":"v3:c","media_format":{{"encoding":"PCMU","sample_rate":8000,"channels":1}}{start_fields}}}}}"#
            )
        };
        let state = wire::b64_encode(tok.as_bytes());
        let table: [(&str, String, Option<&str>); 8] = [
            // Call Control `custom_parameters` ([{name, value}]) and TeXML `<Parameter>`.
            (
                CONNECTED,
                start(&format!(
                    r#","custom_parameters":[{{"name":"token","value":"{tok}"}}]"#
                )),
                Some(tok),
            ),
            (
                CONNECTED,
                start(&format!(r#","custom_parameters":{{"token":"{tok}"}}"#)),
                Some(tok),
            ),
            // Call Control `stream_auth_token`, echoed in the connected frame.
            (
                r#"{"event":"connected","version":"1.0.0","x-telnyx-streaming-auth-token":"v1.1795000000.5f0c"}"#,
                start(""),
                Some(tok),
            ),
            // `client_state`: base64 of the token.
            (
                CONNECTED,
                start(&format!(r#","client_state":"{state}""#)),
                Some(tok),
            ),
            // A client_state that is not a token (the documented example) is no token.
            (
                CONNECTED,
                start(r#","client_state":"aGF2ZSBhIG5pY2UgZGF5ID1d""#),
                None,
            ),
            (CONNECTED, start(r#","client_state":"!!""#), None),
            (CONNECTED, start(""), None),
            // custom_parameters win over the auth token.
            (
                r#"{"event":"connected","x-telnyx-streaming-auth-token":"v1.1.other"}"#,
                start(&format!(r#","custom_parameters":{{"token":"{tok}"}}"#)),
                Some(tok),
            ),
        ];
        for (connected, start, want) in table {
            let mut codec = TelnyxCodec::new();
            codec.decode(FrameRef::Text(connected)).unwrap();
            let evs = codec.decode(FrameRef::Text(&start)).unwrap();
            let Event::Start(s) = &evs[0] else {
                panic!("{evs:?}")
            };
            assert_eq!(
                s.custom_parameters.get("token").map(String::as_str),
                want,
                "{connected} {start}"
            );
        }
    }
}
