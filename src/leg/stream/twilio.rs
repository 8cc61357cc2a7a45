//! Twilio Media Streams: [`TwilioCodec`] is our server facing Twilio (decodes `connected`,
//! `start`, `media`, `dtmf`, `mark`, `stop`; encodes `media`, `mark`, `clear`), and
//! [`TwilioCarrierCodec`] is the same protocol from Twilio's side, for forking a call to a
//! customer's bot. `sequenceNumber`, `chunk` and `timestamp` travel as JSON strings.

use super::wire::{self, DtmfIn, MediaIn, Num};
use super::{
    Command, Dialect, Encoding, Event, Frame, FrameRef, MediaFormat, StreamError, StreamStart,
    Track,
};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Decodes what Twilio sends and encodes what we send back, for one stream.
#[derive(Debug, Default)]
pub struct TwilioCodec {
    /// The `streamSid` from `start`; every message we send must carry it.
    stream_sid: Option<String>,
}

impl TwilioCodec {
    /// A codec waiting for `connected` and `start`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stream's `streamSid`, once `start` has arrived.
    pub fn stream_sid(&self) -> Option<&str> {
        self.stream_sid.as_deref()
    }
}

impl Dialect for TwilioCodec {
    fn decode(&mut self, frame: FrameRef<'_>) -> Result<Vec<Event>, StreamError> {
        let FrameRef::Text(text) = frame else {
            return Err(StreamError::BinaryOnJsonDialect);
        };
        let msg: Inbound<'_> = wire::parse_json(text)?;
        let event = match wire::required(msg.event.as_deref(), "event")? {
            "connected" => Event::Connected {
                protocol: msg.protocol,
                version: msg.version,
            },
            "start" => {
                let start = decode_start(wire::required(msg.start, "start")?)?;
                self.stream_sid = Some(start.stream_id.clone());
                Event::Start(start)
            }
            "media" => {
                if self.stream_sid.is_none() {
                    return Err(StreamError::MediaBeforeStart);
                }
                let sequence = wire::num(msg.sequence_number, "sequenceNumber")?;
                let media = wire::required(msg.media, "media")?;
                Event::Media(wire::media_chunk(media, sequence, decode_payload)?)
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
            "mark" => {
                let mark = wire::required(msg.mark, "mark")?;
                Event::Mark {
                    name: wire::required(mark.name, "mark.name")?,
                }
            }
            "stop" => Event::Stop,
            other => return Err(StreamError::unknown_event(other)),
        };
        Ok(vec![event])
    }

    fn encode(&mut self, command: &Command) -> Result<Frame, StreamError> {
        let stream_sid = self.stream_sid.as_deref().ok_or(StreamError::NotStarted)?;
        Ok(Frame::Text(encode_command(stream_sid, command)))
    }
}

/// Speaks Twilio's side of the protocol to a customer's bot: encodes our events exactly as
/// Twilio sends them and decodes the bot's `media`, `mark` and `clear`.
#[derive(Debug, Default)]
pub struct TwilioCarrierCodec {
    /// The `start` we sent: its ids go into every later message.
    start: Option<StreamStart>,
    /// The last `sequenceNumber` we sent (`start` is 1).
    sequence: u64,
}

impl TwilioCarrierCodec {
    /// A codec for one connection to the bot (a reconnect starts a fresh one).
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes one event as Twilio would send it. The `sequenceNumber` is ours to count:
    /// a [`MediaChunk::sequence`] given here is ignored; `chunk` and `timestamp_ms` are sent
    /// as given. `Cleared` has no Twilio form and is refused; `Error` is our own extension
    /// (`{"event":"error","sequenceNumber","streamSid","error":{"code","title","detail"}}`).
    pub fn encode(&mut self, event: &Event) -> Result<Frame, StreamError> {
        if let Event::Connected { protocol, version } = event {
            let msg = ConnectedOut {
                event: "connected",
                protocol: protocol.as_deref().unwrap_or("Call"),
                version: version.as_deref().unwrap_or("1.0.0"),
            };
            return Ok(Frame::Text(wire::to_text(&msg)));
        }
        if let Event::Start(start) = event {
            self.start = Some(start.clone());
            self.sequence = 0;
        }
        let start = self.start.as_ref().ok_or(StreamError::NotStarted)?;
        let seq = StrNum(self.sequence + 1);
        let sid = start.stream_id.as_str();
        let text = match event {
            Event::Start(s) => wire::to_text(&StartOut {
                event: "start",
                sequence_number: seq,
                start: StartBodyOut {
                    account_sid: s.account_id.as_deref().unwrap_or_default(),
                    stream_sid: sid,
                    call_sid: &s.call_id,
                    tracks: s.tracks.iter().map(|t| track_name(*t)).collect(),
                    custom_parameters: &s.custom_parameters,
                    media_format: MediaFormatOut {
                        encoding: encoding_name(&s.media_format.encoding),
                        sample_rate: s.media_format.sample_rate,
                        channels: s.media_format.channels,
                    },
                },
                stream_sid: sid,
            }),
            Event::Media(m) => wire::to_text(&MediaOut {
                event: "media",
                sequence_number: seq,
                media: MediaBodyOut {
                    track: track_name(m.track),
                    chunk: StrNum(m.chunk),
                    timestamp: StrNum(m.timestamp_ms),
                    payload: wire::b64_encode(&m.payload),
                },
                stream_sid: sid,
            }),
            Event::Dtmf { digit, track, .. } => wire::to_text(&DtmfOut {
                event: "dtmf",
                stream_sid: sid,
                sequence_number: seq,
                dtmf: DtmfBodyOut {
                    track: match track.unwrap_or(Track::Inbound) {
                        Track::Inbound => "inbound_track",
                        Track::Outbound => "outbound_track",
                    },
                    digit: digit.to_string(),
                },
            }),
            Event::Mark { name } => wire::to_text(&MarkOut {
                event: "mark",
                sequence_number: seq,
                stream_sid: sid,
                mark: NameOut { name },
            }),
            Event::Error {
                code,
                title,
                detail,
            } => wire::to_text(&ErrorOut {
                event: "error",
                sequence_number: seq,
                stream_sid: sid,
                error: ErrorBodyOut {
                    code: *code,
                    title: title.as_deref(),
                    detail: detail.as_deref(),
                },
            }),
            Event::Stop => wire::to_text(&StopOut {
                event: "stop",
                sequence_number: seq,
                stream_sid: sid,
                stop: StopBodyOut {
                    account_sid: start.account_id.as_deref().unwrap_or_default(),
                    call_sid: &start.call_id,
                },
            }),
            _ => return Err(StreamError::InvalidField("event")),
        };
        self.sequence += 1;
        Ok(Frame::Text(text))
    }

    /// Decodes one message from the bot: `media`, `mark` or `clear`.
    pub fn decode(&mut self, frame: FrameRef<'_>) -> Result<Command, StreamError> {
        let FrameRef::Text(text) = frame else {
            return Err(StreamError::BinaryOnJsonDialect);
        };
        let msg: BotInbound<'_> = wire::parse_json(text)?;
        let event = wire::required(msg.event.as_deref(), "event")?;
        let known = matches!(event, "media" | "mark" | "clear");
        if !known {
            return Err(StreamError::unknown_event(event));
        }
        let Some(start) = &self.start else {
            return Err(StreamError::MediaBeforeStart);
        };
        // Twilio routes by streamSid; a bot answering for another stream is confused.
        if msg.stream_sid.is_some_and(|s| s != start.stream_id) {
            return Err(StreamError::InvalidField("streamSid"));
        }
        match event {
            "media" => {
                let media = wire::required(msg.media, "media")?;
                let payload = decode_payload(media.payload.as_deref())?;
                Ok(Command::Media { payload })
            }
            "mark" => {
                let mark = wire::required(msg.mark, "mark")?;
                Ok(Command::Mark {
                    name: wire::required(mark.name, "mark.name")?,
                })
            }
            _ => Ok(Command::Clear),
        }
    }

    /// The last `sequenceNumber` sent.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
}

fn decode_start(s: StartIn) -> Result<StreamStart, StreamError> {
    let format = wire::required(s.media_format, "start.mediaFormat")?;
    let encoding = wire::required(format.encoding, "start.mediaFormat.encoding")?;
    let tracks = s
        .tracks
        .unwrap_or_default()
        .iter()
        .map(|t| wire::track(t, "start.tracks"))
        .collect::<Result<_, _>>()?;
    Ok(StreamStart {
        stream_id: wire::required(s.stream_sid, "start.streamSid")?,
        call_id: wire::required(s.call_sid, "start.callSid")?,
        account_id: s.account_sid,
        tracks,
        custom_parameters: wire::string_map(s.custom_parameters),
        media_format: MediaFormat {
            encoding: wire::encoding(&encoding),
            sample_rate: num_u32(format.sample_rate, "start.mediaFormat.sampleRate")?,
            channels: match format.channels {
                None => 1,
                Some(c) => u8::try_from(wire::num(Some(c), "start.mediaFormat.channels")?)
                    .map_err(|_| StreamError::InvalidField("start.mediaFormat.channels"))?,
            },
        },
    })
}

fn num_u32(field: Option<Num>, name: &'static str) -> Result<u32, StreamError> {
    u32::try_from(wire::num(field, name)?).map_err(|_| StreamError::InvalidField(name))
}

fn decode_payload(payload: Option<&str>) -> Result<Vec<u8>, StreamError> {
    let bytes = wire::b64_decode(wire::required(payload, "media.payload")?)?;
    if bytes.is_empty() {
        return Err(StreamError::PayloadSize {
            len: 0,
            expected: 1,
            exact: false,
        });
    }
    Ok(bytes)
}

fn encode_command(stream_sid: &str, command: &Command) -> String {
    match command {
        Command::Media { payload } => wire::to_text(&CommandOut::Media {
            stream_sid,
            media: PayloadOut {
                payload: wire::b64_encode(payload),
            },
        }),
        Command::Mark { name } => wire::to_text(&CommandOut::Mark {
            stream_sid,
            mark: NameOut { name },
        }),
        Command::Clear => wire::to_text(&CommandOut::Clear { stream_sid }),
    }
}

fn track_name(track: Track) -> &'static str {
    match track {
        Track::Inbound => "inbound",
        Track::Outbound => "outbound",
    }
}

fn encoding_name(encoding: &Encoding) -> &str {
    match encoding {
        Encoding::Pcmu => "audio/x-mulaw",
        Encoding::Pcma => "audio/x-alaw",
        Encoding::L16 => "audio/x-l16",
        Encoding::Other(name) => name,
    }
}

/// A number Twilio sends as a JSON string.
#[derive(Debug, Clone, Copy)]
struct StrNum(u64);

impl Serialize for StrNum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[derive(Deserialize)]
struct Inbound<'a> {
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(rename = "sequenceNumber")]
    sequence_number: Option<Num>,
    protocol: Option<String>,
    version: Option<String>,
    start: Option<StartIn>,
    #[serde(borrow)]
    media: Option<MediaIn<'a>>,
    #[serde(borrow)]
    dtmf: Option<DtmfIn<'a>>,
    mark: Option<NameIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartIn {
    stream_sid: Option<String>,
    account_sid: Option<String>,
    call_sid: Option<String>,
    tracks: Option<Vec<String>>,
    custom_parameters: Option<serde_json::Map<String, serde_json::Value>>,
    media_format: Option<MediaFormatIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormatIn {
    encoding: Option<String>,
    sample_rate: Option<Num>,
    channels: Option<Num>,
}

#[derive(Deserialize)]
struct NameIn {
    name: Option<String>,
}

#[derive(Deserialize)]
struct BotInbound<'a> {
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(rename = "streamSid", borrow)]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    media: Option<BotMediaIn<'a>>,
    mark: Option<NameIn>,
}

#[derive(Deserialize)]
struct BotMediaIn<'a> {
    #[serde(borrow)]
    payload: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum CommandOut<'a> {
    Media {
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
        media: PayloadOut,
    },
    Mark {
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
        mark: NameOut<'a>,
    },
    Clear {
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
    },
}

#[derive(Serialize)]
struct PayloadOut {
    payload: String,
}

#[derive(Serialize)]
struct NameOut<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct ConnectedOut<'a> {
    event: &'static str,
    protocol: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartOut<'a> {
    event: &'static str,
    sequence_number: StrNum,
    start: StartBodyOut<'a>,
    stream_sid: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartBodyOut<'a> {
    account_sid: &'a str,
    stream_sid: &'a str,
    call_sid: &'a str,
    tracks: Vec<&'static str>,
    custom_parameters: &'a BTreeMap<String, String>,
    media_format: MediaFormatOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormatOut<'a> {
    encoding: &'a str,
    sample_rate: u32,
    channels: u8,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaOut<'a> {
    event: &'static str,
    sequence_number: StrNum,
    media: MediaBodyOut,
    stream_sid: &'a str,
}

#[derive(Serialize)]
struct MediaBodyOut {
    track: &'static str,
    chunk: StrNum,
    timestamp: StrNum,
    payload: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DtmfOut<'a> {
    event: &'static str,
    stream_sid: &'a str,
    sequence_number: StrNum,
    dtmf: DtmfBodyOut,
}

#[derive(Serialize)]
struct DtmfBodyOut {
    track: &'static str,
    digit: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MarkOut<'a> {
    event: &'static str,
    sequence_number: StrNum,
    stream_sid: &'a str,
    mark: NameOut<'a>,
}

/// Our own `error` event to a bot (Twilio has none; the shape follows Telnyx's `error`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorOut<'a> {
    event: &'static str,
    sequence_number: StrNum,
    stream_sid: &'a str,
    error: ErrorBodyOut<'a>,
}

#[derive(Serialize)]
struct ErrorBodyOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StopOut<'a> {
    event: &'static str,
    sequence_number: StrNum,
    stream_sid: &'a str,
    stop: StopBodyOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StopBodyOut<'a> {
    account_sid: &'a str,
    call_sid: &'a str,
}

#[cfg(test)]
mod tests {
    use super::super::MediaChunk;
    use super::*;
    use serde_json::Value;

    // Captured-style messages in the shapes of Twilio's "Media Streams - WebSocket Messages".
    const CONNECTED: &str = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
    const START: &str = r#"{
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC0123456789abcdef0123456789abcdef",
            "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0",
            "callSid": "CA0123456789abcdef0123456789abcdef",
            "tracks": ["inbound"],
            "customParameters": {"token": "v1.abc.def", "campaign": "spring"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        },
        "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0"
    }"#;
    const MEDIA: &str = r#"{
        "event": "media",
        "sequenceNumber": "3",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "/35+fw=="},
        "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0"
    }"#;
    const DTMF: &str = r#"{
        "event": "dtmf",
        "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0",
        "sequenceNumber": "5",
        "dtmf": {"track": "inbound_track", "digit": "1"}
    }"#;
    const MARK: &str = r#"{
        "event": "mark",
        "sequenceNumber": "4",
        "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0",
        "mark": {"name": "my label"}
    }"#;
    const STOP: &str = r#"{
        "event": "stop",
        "sequenceNumber": "5",
        "stop": {
            "accountSid": "AC0123456789abcdef0123456789abcdef",
            "callSid": "CA0123456789abcdef0123456789abcdef"
        },
        "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0"
    }"#;
    const SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

    fn started() -> TwilioCodec {
        let mut codec = TwilioCodec::new();
        codec.decode(FrameRef::Text(START)).unwrap();
        codec
    }

    fn expected_start() -> StreamStart {
        StreamStart {
            stream_id: SID.into(),
            call_id: "CA0123456789abcdef0123456789abcdef".into(),
            account_id: Some("AC0123456789abcdef0123456789abcdef".into()),
            tracks: vec![Track::Inbound],
            custom_parameters: [("campaign", "spring"), ("token", "v1.abc.def")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            media_format: MediaFormat {
                encoding: Encoding::Pcmu,
                sample_rate: 8000,
                channels: 1,
            },
        }
    }

    fn json(frame: &Frame) -> Value {
        let Frame::Text(t) = frame else {
            panic!("expected text, got {frame:?}")
        };
        serde_json::from_str(t).unwrap()
    }

    #[test]
    fn decodes_every_documented_message() {
        let table: [(&str, Event); 6] = [
            (
                CONNECTED,
                Event::Connected {
                    protocol: Some("Call".into()),
                    version: Some("1.0.0".into()),
                },
            ),
            (START, Event::Start(expected_start())),
            (
                MEDIA,
                Event::Media(MediaChunk {
                    track: Track::Inbound,
                    chunk: 1,
                    timestamp_ms: 5,
                    sequence: 3,
                    payload: vec![0xff, 0x7e, 0x7e, 0x7f],
                }),
            ),
            (
                DTMF,
                Event::Dtmf {
                    digit: '1',
                    track: Some(Track::Inbound),
                    duration_ms: None,
                },
            ),
            (
                MARK,
                Event::Mark {
                    name: "my label".into(),
                },
            ),
            (STOP, Event::Stop),
        ];
        let mut codec = TwilioCodec::new();
        for (text, want) in table {
            assert_eq!(codec.decode(FrameRef::Text(text)), Ok(vec![want]), "{text}");
        }
        assert_eq!(codec.stream_sid(), Some(SID));
    }

    #[test]
    fn encodes_our_commands_as_twilio_expects() {
        let mut codec = started();
        let table = [
            (
                Command::Media {
                    payload: vec![0xff, 0x7e],
                },
                serde_json::json!({"event": "media", "streamSid": SID, "media": {"payload": "/34="}}),
            ),
            (
                Command::Mark {
                    name: "turn-3".into(),
                },
                serde_json::json!({"event": "mark", "streamSid": SID, "mark": {"name": "turn-3"}}),
            ),
            (
                Command::Clear,
                serde_json::json!({"event": "clear", "streamSid": SID}),
            ),
        ];
        for (command, want) in table {
            assert_eq!(json(&codec.encode(&command).unwrap()), want, "{command:?}");
        }
    }

    #[test]
    fn encoding_before_start_is_refused() {
        let mut codec = TwilioCodec::new();
        assert_eq!(codec.encode(&Command::Clear), Err(StreamError::NotStarted));
    }

    #[test]
    fn every_bad_input_has_its_error() {
        let table: [(FrameRef<'_>, StreamError); 12] = [
            (
                FrameRef::Binary(&[1, 2, 3]),
                StreamError::BinaryOnJsonDialect,
            ),
            (
                FrameRef::Text(r#"{"event":"media","#),
                StreamError::InvalidJson(String::new()),
            ),
            (
                FrameRef::Text(r#"{"event":"hello"}"#),
                StreamError::UnknownEvent("hello".into()),
            ),
            (FrameRef::Text(r#"{}"#), StreamError::MissingField("event")),
            (
                FrameRef::Text(r#"{"event":"media","media":7}"#),
                StreamError::Malformed(String::new()),
            ),
            (
                FrameRef::Text(
                    r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"@@@"}}"#,
                ),
                StreamError::BadBase64,
            ),
            (
                FrameRef::Text(
                    r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":""}}"#,
                ),
                StreamError::PayloadSize {
                    len: 0,
                    expected: 1,
                    exact: false,
                },
            ),
            (
                FrameRef::Text(
                    r#"{"event":"media","sequenceNumber":"x3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"AA=="}}"#,
                ),
                StreamError::InvalidField("sequenceNumber"),
            ),
            (
                FrameRef::Text(
                    r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","payload":"AA=="}}"#,
                ),
                StreamError::MissingField("media.timestamp"),
            ),
            (
                FrameRef::Text(
                    r#"{"event":"media","sequenceNumber":"3","media":{"track":"sideways","chunk":"1","timestamp":"5","payload":"AA=="}}"#,
                ),
                StreamError::InvalidField("media.track"),
            ),
            (
                FrameRef::Text(r#"{"event":"dtmf","dtmf":{"digit":"12"}}"#),
                StreamError::InvalidField("dtmf.digit"),
            ),
            (
                FrameRef::Text(r#"{"event":"mark","mark":{}}"#),
                StreamError::MissingField("mark.name"),
            ),
        ];
        for (frame, want) in table {
            let got = started().decode(frame).unwrap_err();
            // Parser messages vary; compare the kind for those two.
            match (&got, &want) {
                (StreamError::InvalidJson(_), StreamError::InvalidJson(_))
                | (StreamError::Malformed(_), StreamError::Malformed(_)) => {}
                _ => assert_eq!(got, want, "{frame:?}"),
            }
        }
    }

    #[test]
    fn media_before_start_is_refused_and_state_kept() {
        let mut codec = TwilioCodec::new();
        codec.decode(FrameRef::Text(CONNECTED)).unwrap();
        assert_eq!(
            codec.decode(FrameRef::Text(MEDIA)),
            Err(StreamError::MediaBeforeStart)
        );
        codec.decode(FrameRef::Text(START)).unwrap();
        assert!(codec.decode(FrameRef::Text(MEDIA)).is_ok());
    }

    #[test]
    fn start_without_its_ids_is_refused() {
        let no_sid = START.replace(
            "\"streamSid\": \"MZ18ad3ab5a668481ce02b83e7395059f0\",\n            \"callSid\"",
            "\"callSid\"",
        );
        assert_eq!(
            TwilioCodec::new().decode(FrameRef::Text(&no_sid)),
            Err(StreamError::MissingField("start.streamSid"))
        );
    }

    #[test]
    fn carrier_side_encodes_exactly_what_twilio_sends() {
        let mut carrier = TwilioCarrierCodec::new();
        let mut server = TwilioCodec::new();
        let events = [
            Event::Connected {
                protocol: None,
                version: None,
            },
            Event::Start(expected_start()),
            Event::Media(MediaChunk {
                track: Track::Inbound,
                chunk: 1,
                timestamp_ms: 5,
                sequence: 0,
                payload: vec![0xff, 0x7e, 0x7e, 0x7f],
            }),
            Event::Mark {
                name: "my label".into(),
            },
            Event::Dtmf {
                digit: '1',
                track: None,
                duration_ms: None,
            },
            Event::Stop,
        ];
        // The carrier's frames equal Twilio's documented messages field for field...
        let fixtures = [CONNECTED, START, MEDIA, MARK, DTMF, STOP];
        for (i, (event, fixture)) in events.iter().zip(fixtures).enumerate() {
            let frame = carrier.encode(event).unwrap();
            let mut want: Value = serde_json::from_str(fixture).unwrap();
            if i >= 2 {
                // ...except our sequence numbers count up without gaps.
                want["sequenceNumber"] = Value::String((i as u64).to_string());
            }
            assert_eq!(json(&frame), want, "{event:?}");
            // ...and our own server decodes them back to the same events.
            let mut back = server.decode(frame.as_ref()).unwrap();
            let Some(mut got) = back.pop() else {
                panic!("no event")
            };
            if let Event::Media(m) = &mut got {
                assert_eq!(m.sequence, 2);
                m.sequence = 0;
            }
            if let (Event::Dtmf { track, .. }, Event::Dtmf { .. }) = (&mut got, event) {
                assert_eq!(*track, Some(Track::Inbound));
                *track = None;
            }
            if let (Event::Connected { .. }, Event::Connected { .. }) = (&got, event) {
                continue;
            }
            assert_eq!(&got, event);
        }
        assert_eq!(carrier.sequence(), 5);
    }

    #[test]
    fn carrier_side_decodes_what_a_bot_sends() {
        let mut carrier = TwilioCarrierCodec::new();
        let bot_media =
            format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"/34="}}}}"#);
        assert_eq!(
            carrier.decode(FrameRef::Text(&bot_media)),
            Err(StreamError::MediaBeforeStart)
        );
        carrier.encode(&Event::Start(expected_start())).unwrap();
        let mut bot = TwilioCodec::new();
        bot.decode(FrameRef::Text(START)).unwrap();
        let table = [
            Command::Media {
                payload: vec![0xff, 0x7e],
            },
            Command::Mark { name: "m1".into() },
            Command::Clear,
        ];
        for command in table {
            // A bot speaking our server's encoder is a Twilio-compatible bot.
            let frame = bot.encode(&command).unwrap();
            assert_eq!(carrier.decode(frame.as_ref()), Ok(command));
        }
        let table: [(&str, StreamError); 5] = [
            (
                r#"{"event":"media","streamSid":"MZother","media":{"payload":"AA=="}}"#,
                StreamError::InvalidField("streamSid"),
            ),
            (
                r#"{"event":"media","media":{"payload":"%%"}}"#,
                StreamError::BadBase64,
            ),
            (r#"{"event":"media"}"#, StreamError::MissingField("media")),
            (
                r#"{"event":"start"}"#,
                StreamError::UnknownEvent("start".into()),
            ),
            (
                r#"{"event":"mark","mark":{}}"#,
                StreamError::MissingField("mark.name"),
            ),
        ];
        for (text, want) in table {
            assert_eq!(carrier.decode(FrameRef::Text(text)), Err(want), "{text}");
        }
        assert_eq!(
            carrier.decode(FrameRef::Binary(b"\xff")),
            Err(StreamError::BinaryOnJsonDialect)
        );
    }

    #[test]
    fn carrier_side_refuses_events_before_start_and_without_twilio_form() {
        let mut carrier = TwilioCarrierCodec::new();
        assert_eq!(carrier.encode(&Event::Stop), Err(StreamError::NotStarted));
        carrier.encode(&Event::Start(expected_start())).unwrap();
        assert_eq!(
            carrier.encode(&Event::Cleared),
            Err(StreamError::InvalidField("event"))
        );
        assert_eq!(carrier.sequence(), 1);
    }

    #[test]
    fn carrier_side_encodes_our_error_event() {
        let mut carrier = TwilioCarrierCodec::new();
        carrier.encode(&Event::Start(expected_start())).unwrap();
        let Frame::Text(t) = carrier
            .encode(&Event::Error {
                code: Some(4100),
                title: Some("audio_buffer_full".into()),
                detail: Some("more than 600 s queued".into()),
            })
            .unwrap()
        else {
            panic!("text expected")
        };
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "event": "error",
                "sequenceNumber": "2",
                "streamSid": expected_start().stream_id,
                "error": {"code": 4100, "title": "audio_buffer_full", "detail": "more than 600 s queued"}
            })
        );
    }
}
