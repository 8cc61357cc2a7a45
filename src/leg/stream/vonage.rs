//! Vonage Voice API WebSockets: the first text frame is JSON `websocket:connected` with the
//! audio `content-type` (`audio/l16;rate=16000`) and the NCCO's headers; audio then flows both
//! ways as binary frames of 20 ms of 16-bit little-endian linear PCM. DTMF, `notify`
//! (our marks) and `clear` travel as JSON text frames.

use super::wire;
use super::{
    Command, Dialect, Encoding, Event, Frame, FrameRef, MediaChunk, MediaFormat, StreamError,
    StreamStart, Track,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// Decodes what Vonage sends and encodes what we send back, for one call leg.
#[derive(Debug, Default)]
pub struct VonageCodec {
    /// The sample rate from `websocket:connected`; it fixes the frame size both ways.
    rate: Option<u32>,
    /// Binary frames received so far (numbers the chunks).
    received: u64,
}

impl VonageCodec {
    /// A codec waiting for `websocket:connected`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes in one 20 ms frame at the connected rate, once connected.
    pub fn frame_bytes(&self) -> Option<usize> {
        self.rate.map(frame_bytes)
    }

    fn decode_text(&mut self, text: &str) -> Result<Vec<Event>, StreamError> {
        let mut msg: Map<String, Value> = wire::parse_json(text)?;
        let event = match msg.remove("event") {
            Some(Value::String(e)) => e,
            Some(_) => return Err(StreamError::InvalidField("event")),
            None => return Err(StreamError::MissingField("event")),
        };
        Ok(match event.as_str() {
            "websocket:connected" => {
                let content_type = match msg.remove("content-type") {
                    Some(Value::String(c)) => c,
                    Some(_) => return Err(StreamError::InvalidField("content-type")),
                    None => return Err(StreamError::MissingField("content-type")),
                };
                let rate = parse_content_type(&content_type)?;
                self.rate = Some(rate);
                self.received = 0;
                let start = StreamStart {
                    stream_id: String::new(),
                    call_id: String::new(),
                    account_id: None,
                    tracks: vec![Track::Inbound],
                    custom_parameters: wire::string_map(Some(msg)),
                    media_format: MediaFormat {
                        encoding: Encoding::L16,
                        sample_rate: rate,
                        channels: 1,
                    },
                };
                vec![
                    Event::Connected {
                        protocol: None,
                        version: None,
                    },
                    Event::Start(start),
                ]
            }
            "websocket:dtmf" => {
                // Documented with `digit` (and `duration`) at the top level; some captures nest
                // them under `dtmf`, so both are read.
                let body = match msg.get("dtmf") {
                    Some(Value::Object(inner)) => inner,
                    _ => &msg,
                };
                let digit = match body.get("digit") {
                    Some(Value::String(d)) => wire::digit(d, "digit")?,
                    Some(_) => return Err(StreamError::InvalidField("digit")),
                    None => return Err(StreamError::MissingField("digit")),
                };
                let duration_ms = body
                    .get("duration")
                    .and_then(Value::as_u64)
                    .and_then(|d| u32::try_from(d).ok());
                vec![Event::Dtmf {
                    digit,
                    track: Some(Track::Inbound),
                    duration_ms,
                }]
            }
            "websocket:notify" => {
                let name = msg
                    .get("payload")
                    .and_then(|p| p.get("name"))
                    .ok_or(StreamError::MissingField("payload.name"))?;
                let Value::String(name) = name else {
                    return Err(StreamError::InvalidField("payload.name"));
                };
                vec![Event::Mark { name: name.clone() }]
            }
            "websocket:cleared" => vec![Event::Cleared],
            other => return Err(StreamError::unknown_event(other)),
        })
    }
}

impl Dialect for VonageCodec {
    fn decode(&mut self, frame: FrameRef<'_>) -> Result<Vec<Event>, StreamError> {
        let audio = match frame {
            FrameRef::Text(text) => return self.decode_text(text),
            FrameRef::Binary(audio) => audio,
        };
        let rate = self.rate.ok_or(StreamError::MediaBeforeStart)?;
        check_frame(rate, audio.len())?;
        self.received += 1;
        Ok(vec![Event::Media(MediaChunk {
            track: Track::Inbound,
            chunk: self.received,
            timestamp_ms: (self.received - 1) * 20,
            sequence: self.received,
            payload: audio.to_vec(),
        })])
    }

    fn encode(&mut self, command: &Command) -> Result<Frame, StreamError> {
        Ok(match command {
            Command::Media { payload } => {
                let rate = self.rate.ok_or(StreamError::NotStarted)?;
                check_frame(rate, payload.len())?;
                Frame::Binary(payload.clone())
            }
            Command::Mark { name } => Frame::Text(wire::to_text(&ActionOut {
                action: "notify",
                payload: Some(NameOut { name }),
            })),
            Command::Clear => Frame::Text(wire::to_text(&ActionOut {
                action: "clear",
                payload: None,
            })),
        })
    }
}

/// The rate out of `audio/l16;rate=16000` (Vonage streams L16 at 8, 16 or 24 kHz).
fn parse_content_type(text: &str) -> Result<u32, StreamError> {
    let mut parts = text.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|mime| mime.eq_ignore_ascii_case("audio/l16"))
    {
        return Err(StreamError::InvalidField("content-type"));
    }
    let rate = parts
        .find_map(|p| p.strip_prefix("rate="))
        .and_then(|r| r.parse::<u32>().ok());
    match rate {
        Some(r @ (8000 | 16000 | 24000)) => Ok(r),
        _ => Err(StreamError::InvalidField("content-type")),
    }
}

fn frame_bytes(rate: u32) -> usize {
    rate as usize / 50 * 2
}

fn check_frame(rate: u32, len: usize) -> Result<(), StreamError> {
    let expected = frame_bytes(rate);
    if len != expected {
        return Err(StreamError::PayloadSize {
            len,
            expected,
            exact: true,
        });
    }
    Ok(())
}

#[derive(Serialize)]
struct ActionOut<'a> {
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<NameOut<'a>>,
}

#[derive(Serialize)]
struct NameOut<'a> {
    name: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Shapes from Vonage's "WebSockets in the Vonage Voice API" guide.
    const CONNECTED_16K: &str = r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000","caller":"447700900123","token":"v1.abc"}"#;
    const CONNECTED_8K: &str =
        r#"{"event":"websocket:connected","content-type":"audio/l16;rate=8000"}"#;
    const DTMF: &str = r#"{"event":"websocket:dtmf","digit":"5","duration":260}"#;

    fn connected(text: &str) -> VonageCodec {
        let mut codec = VonageCodec::new();
        codec.decode(FrameRef::Text(text)).unwrap();
        codec
    }

    #[test]
    fn connected_is_the_start_with_format_and_headers() {
        let mut codec = VonageCodec::new();
        let events = codec.decode(FrameRef::Text(CONNECTED_16K)).unwrap();
        let [Event::Connected { .. }, Event::Start(start)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(start.media_format.sample_rate, 16000);
        assert_eq!(start.media_format.encoding, Encoding::L16);
        assert_eq!(start.custom_parameters["caller"], "447700900123");
        assert_eq!(start.custom_parameters["token"], "v1.abc");
        assert_eq!(codec.frame_bytes(), Some(640));
    }

    #[test]
    fn frame_sizes_at_8_and_16_khz() {
        for (text, bytes) in [(CONNECTED_8K, 320), (CONNECTED_16K, 640)] {
            let mut codec = connected(text);
            for n in 1..=3u64 {
                let audio: Vec<u8> = (0..bytes).map(|i| i as u8).collect();
                let events = codec.decode(FrameRef::Binary(&audio)).unwrap();
                assert_eq!(
                    events,
                    [Event::Media(MediaChunk {
                        track: Track::Inbound,
                        chunk: n,
                        timestamp_ms: (n - 1) * 20,
                        sequence: n,
                        payload: audio.clone(),
                    })]
                );
                assert_eq!(
                    codec.encode(&Command::Media { payload: audio }),
                    Ok(Frame::Binary((0..bytes).map(|i| i as u8).collect()))
                );
            }
            for wrong in [0, 1, bytes - 2, bytes + 2, bytes * 2] {
                let err = StreamError::PayloadSize {
                    len: wrong,
                    expected: bytes,
                    exact: true,
                };
                assert_eq!(
                    codec.decode(FrameRef::Binary(&vec![0; wrong])),
                    Err(err.clone())
                );
                assert_eq!(
                    codec.encode(&Command::Media {
                        payload: vec![0; wrong]
                    }),
                    Err(err)
                );
            }
        }
    }

    #[test]
    fn dtmf_notify_and_cleared_are_text_events() {
        let mut codec = connected(CONNECTED_16K);
        let table: [(&str, Event); 4] = [
            (
                DTMF,
                Event::Dtmf {
                    digit: '5',
                    track: Some(Track::Inbound),
                    duration_ms: Some(260),
                },
            ),
            (
                r##"{"event":"websocket:dtmf","dtmf":{"digit":"#","duration":100}}"##,
                Event::Dtmf {
                    digit: '#',
                    track: Some(Track::Inbound),
                    duration_ms: Some(100),
                },
            ),
            (
                r#"{"event":"websocket:notify","payload":{"name":"turn-2"}}"#,
                Event::Mark {
                    name: "turn-2".into(),
                },
            ),
            (r#"{"event":"websocket:cleared"}"#, Event::Cleared),
        ];
        for (text, want) in table {
            assert_eq!(codec.decode(FrameRef::Text(text)), Ok(vec![want]), "{text}");
        }
    }

    #[test]
    fn marks_and_clear_encode_as_actions() {
        let mut codec = VonageCodec::new();
        let table = [
            (
                Command::Mark {
                    name: "turn-2".into(),
                },
                json!({"action": "notify", "payload": {"name": "turn-2"}}),
            ),
            (Command::Clear, json!({"action": "clear"})),
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
        assert_eq!(
            VonageCodec::new().decode(FrameRef::Binary(&[0; 640])),
            Err(StreamError::MediaBeforeStart)
        );
        assert_eq!(
            VonageCodec::new().encode(&Command::Media {
                payload: vec![0; 640]
            }),
            Err(StreamError::NotStarted)
        );
        let table: [(&str, StreamError); 8] = [
            (
                r#"{"event":"websocket:media"}"#,
                StreamError::UnknownEvent("websocket:media".into()),
            ),
            (
                r#"{"content-type":"audio/l16;rate=16000"}"#,
                StreamError::MissingField("event"),
            ),
            (r#"{"event":5}"#, StreamError::InvalidField("event")),
            (
                r#"{"event":"websocket:connected"}"#,
                StreamError::MissingField("content-type"),
            ),
            (
                r#"{"event":"websocket:connected","content-type":"audio/l16;rate=44100"}"#,
                StreamError::InvalidField("content-type"),
            ),
            (
                r#"{"event":"websocket:connected","content-type":"audio/pcmu;rate=8000"}"#,
                StreamError::InvalidField("content-type"),
            ),
            (
                r#"{"event":"websocket:dtmf","digit":"55"}"#,
                StreamError::InvalidField("digit"),
            ),
            (
                r#"{"event":"websocket:notify","payload":{}}"#,
                StreamError::MissingField("payload.name"),
            ),
        ];
        for (text, want) in table {
            assert_eq!(
                connected(CONNECTED_8K).decode(FrameRef::Text(text)),
                Err(want),
                "{text}"
            );
        }
        assert!(matches!(
            connected(CONNECTED_8K).decode(FrameRef::Text("\u{0}")),
            Err(StreamError::InvalidJson(_))
        ));
        assert!(matches!(
            connected(CONNECTED_8K).decode(FrameRef::Text("[]")),
            Err(StreamError::Malformed(_))
        ));
    }
}
