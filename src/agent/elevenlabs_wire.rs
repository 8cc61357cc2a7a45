//! ElevenLabs' streaming-input WebSocket (`/v1/text-to-speech/{voice_id}/stream-input`),
//! sans-IO: the messages the client sends, the parse of what the server sends, and
//! [`SpokenText`], which turns the server's character alignment into "bytes of the pushed
//! text spoken by this point of the audio", word by word.
//!
//! The flow (ElevenLabs API reference, "WebSocket"): the client sends an initial message
//! `{"text": " ", "voice_settings": {..}, "generation_config": {"chunk_length_schedule": [..]}}`,
//! then text messages (`{"text": "Hello. ", "flush": true}`: text ends with a space, `flush`
//! forces generation of what is buffered), then `{"text": ""}` to end the input. The server
//! answers `{"audio": "<base64>", "isFinal": null, "normalizedAlignment": {..}, "alignment":
//! {"chars": [..], "charStartTimesMs": [..], "charDurationsMs": [..]}}` per audio chunk, the
//! times relative to the start of that chunk, and finally `{"isFinal": true}`. Errors come as
//! `{"message": .., "error": .., "code": ..}` and/or a close frame (1008 policy violation for a
//! bad key or an input timeout).

use std::collections::VecDeque;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

/// Why a server message could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Not JSON, or not an object.
    #[error("malformed message: {0}")]
    Json(String),
    /// The `audio` field is not valid base64.
    #[error("audio is not valid base64")]
    Base64,
}

/// Voice settings sent once, in the first message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiceSettings {
    /// 0.0 (more variable) to 1.0 (more stable).
    pub stability: f64,
    /// How closely to match the original voice, 0.0 to 1.0.
    pub similarity_boost: f64,
    /// Speaking speed (0.7 to 1.2), when set.
    pub speed: Option<f64>,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        Self {
            stability: 0.5,
            similarity_boost: 0.8,
            speed: None,
        }
    }
}

/// The default `chunk_length_schedule` (ElevenLabs' documented default).
pub const DEFAULT_SCHEDULE: [u32; 4] = [120, 160, 250, 290];

/// The handshake URL: `{base}/v1/text-to-speech/{voice_id}/stream-input?model_id=..&output_format=..`.
pub fn url(base: &str, voice_id: &str, model_id: &str, output_format: &str) -> String {
    format!(
        "{}/v1/text-to-speech/{voice_id}/stream-input?model_id={model_id}&output_format={output_format}",
        base.trim_end_matches('/')
    )
}

/// The first message: a single space, the voice settings and the chunk schedule.
pub fn init_message(settings: &VoiceSettings, schedule: &[u32]) -> String {
    let mut voice = json!({
        "stability": settings.stability,
        "similarity_boost": settings.similarity_boost,
    });
    if let Some(speed) = settings.speed {
        voice["speed"] = json!(speed);
    }
    json!({
        "text": " ",
        "voice_settings": voice,
        "generation_config": {"chunk_length_schedule": schedule},
    })
    .to_string()
}

/// A text message that is generated at once (`flush`), ending with a space as required.
pub fn text_message(text: &str) -> String {
    let mut t = text.to_owned();
    if !t.ends_with(char::is_whitespace) {
        t.push(' ');
    }
    json!({"text": t, "flush": true}).to_string()
}

/// The end-of-input message.
pub const END_MESSAGE: &str = r#"{"text":""}"#;

/// A single space: keeps the socket open through a pause without adding speech.
pub const KEEPALIVE_MESSAGE: &str = r#"{"text":" "}"#;

/// Character timings of one audio chunk, relative to the chunk's start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alignment {
    /// The characters spoken in this chunk, one string each.
    #[serde(default)]
    pub chars: Vec<String>,
    /// When each character starts, in ms from the chunk's start.
    #[serde(default, deserialize_with = "millis")]
    pub char_start_times_ms: Vec<u32>,
    /// How long each character lasts, in ms.
    #[serde(default, deserialize_with = "millis")]
    pub char_durations_ms: Vec<u32>,
}

/// Millisecond lists as the server sends them (integers, sometimes floats; never negative).
fn millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    let v: Option<Vec<f64>> = Option::deserialize(d)?;
    Ok(v.unwrap_or_default()
        .into_iter()
        .map(|x| {
            if x.is_finite() {
                x.clamp(0.0, f64::from(u32::MAX)) as u32
            } else {
                0
            }
        })
        .collect())
}

/// One parsed server message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerMessage {
    /// Audio (possibly empty) with its alignment; `is_final` on the last message.
    Audio {
        /// The decoded audio bytes (µ-law or PCM, per `output_format`).
        audio: Vec<u8>,
        /// Timings of the original text's characters in this chunk.
        alignment: Option<Alignment>,
        /// This is the last message of the stream.
        is_final: bool,
    },
    /// The server reports an error.
    Error {
        /// The human message.
        message: String,
        /// The error kind, when given.
        error: Option<String>,
        /// The code (often a close code such as 1008), when given.
        code: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessage {
    audio: Option<String>,
    is_final: Option<bool>,
    alignment: Option<Alignment>,
    message: Option<String>,
    error: Option<serde_json::Value>,
    code: Option<serde_json::Value>,
}

fn text_of(v: serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// Parses one text frame from the server.
pub fn parse(text: &str) -> Result<ServerMessage, WireError> {
    let raw: RawMessage = serde_json::from_str(text).map_err(|e| WireError::Json(e.to_string()))?;
    let error = raw.error.and_then(text_of);
    if raw.audio.is_none() && (raw.message.is_some() || error.is_some()) {
        return Ok(ServerMessage::Error {
            message: raw.message.unwrap_or_default(),
            error,
            code: raw.code.and_then(text_of),
        });
    }
    let audio = match raw.audio {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| WireError::Base64)?,
        None => Vec::new(),
    };
    Ok(ServerMessage::Audio {
        audio,
        alignment: raw.alignment,
        is_final: raw.is_final == Some(true),
    })
}

/// A point in a chunk's audio by which more of the pushed text has been spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpokenMark {
    /// Milliseconds from the chunk's start.
    pub at_ms: u32,
    /// Bytes of the pushed text fully spoken by then.
    pub text_done: usize,
}

/// How far ahead (non-blank characters) an unexpected aligned character is looked for.
const RESYNC_WINDOW: usize = 16;

/// The pushed text and how much of it the audio so far has spoken.
#[derive(Debug, Clone, Default)]
pub struct SpokenText {
    /// Everything pushed, in order.
    text: String,
    /// Bytes of `text` matched by alignment so far.
    cursor: usize,
    /// Ends of pushed pieces not yet fully spoken.
    piece_ends: VecDeque<usize>,
    /// The last `text_done` reported.
    reported: usize,
}

impl SpokenText {
    /// An empty text.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a piece; returns its end at once when it is blank and everything before it is
    /// already spoken (no audio will come for it).
    pub fn push(&mut self, piece: &str) -> Option<usize> {
        self.text.push_str(piece);
        let end = self.text.len();
        if self.piece_ends.is_empty() && self.text[self.cursor..].trim().is_empty() {
            self.cursor = end;
            self.reported = end;
            return Some(end);
        }
        self.piece_ends.push_back(end);
        None
    }

    /// Pieces pushed whose audio has not all come.
    pub fn unspoken_pieces(&self) -> usize {
        self.piece_ends.len()
    }

    /// Everything pushed counts as spoken (the final message came); returns its length.
    pub fn finish_all(&mut self) -> usize {
        self.cursor = self.text.len();
        self.piece_ends.clear();
        self.reported = self.text.len();
        self.reported
    }

    /// Matches one chunk's alignment against the text: a mark at the end of every word it
    /// completes (the end of a piece including its trailing blanks), in order.
    pub fn align(&mut self, a: &Alignment) -> Vec<SpokenMark> {
        let mut marks = Vec::new();
        let n = a
            .chars
            .len()
            .min(a.char_start_times_ms.len())
            .min(a.char_durations_ms.len());
        for i in 0..n {
            let at_ms = a.char_start_times_ms[i].saturating_add(a.char_durations_ms[i]);
            for c in a.chars[i].chars().filter(|c| !c.is_whitespace()) {
                if !self.consume(c) {
                    break;
                }
            }
            let done = self.done_at_cursor();
            if done > self.reported {
                self.reported = done;
                marks.push(SpokenMark {
                    at_ms,
                    text_done: done,
                });
            }
        }
        marks
    }

    /// Advances the cursor over the text's next non-blank character, which should be `c`;
    /// false when the text is used up.
    fn consume(&mut self, c: char) -> bool {
        let rest = &self.text[self.cursor..];
        let mut upcoming = rest
            .char_indices()
            .filter(|(_, x)| !x.is_whitespace())
            .take(RESYNC_WINDOW);
        let Some((first_at, first)) = upcoming.next() else {
            return false;
        };
        let (at, found) = if first == c {
            (first_at, first)
        } else {
            // The service dropped or changed a character: jump to the next `c` if it is
            // close, else take the text's character as the one spoken.
            upcoming.find(|&(_, x)| x == c).unwrap_or((first_at, first))
        };
        self.cursor += at + found.len_utf8();
        true
    }

    /// `text_done` for the cursor: the end of the last whole piece or word before it.
    fn done_at_cursor(&mut self) -> usize {
        let mut done = None;
        while let Some(&end) = self.piece_ends.front() {
            if end <= self.cursor || self.text[self.cursor..end].trim().is_empty() {
                self.piece_ends.pop_front();
                self.cursor = self.cursor.max(end);
                done = Some(end);
            } else {
                break;
            }
        }
        if let Some(end) = done {
            return end;
        }
        let next = self.text[self.cursor..].chars().next();
        match next {
            Some(c) if c.is_whitespace() => self.cursor,
            None => self.cursor,
            // Mid-word: the word is not heard yet.
            Some(_) => self.reported,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alignment(text: &str, ms_per_char: u32) -> Alignment {
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let n = chars.len() as u32;
        Alignment {
            chars,
            char_start_times_ms: (0..n).map(|i| i * ms_per_char).collect(),
            char_durations_ms: vec![ms_per_char; n as usize],
        }
    }

    #[test]
    fn client_messages_follow_the_documented_shapes() {
        let init: serde_json::Value =
            serde_json::from_str(&init_message(&VoiceSettings::default(), &[50, 120])).unwrap();
        assert_eq!(
            init,
            json!({"text": " ", "voice_settings": {"stability": 0.5, "similarity_boost": 0.8},
                "generation_config": {"chunk_length_schedule": [50, 120]}})
        );
        assert_eq!(
            text_message("Hello."),
            r#"{"flush":true,"text":"Hello. "}"#.to_owned()
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text_message("a \"b\"\n")).unwrap()["text"],
            "a \"b\"\n"
        );
        assert_eq!(
            url(
                "wss://api.elevenlabs.io/",
                "v1d",
                "eleven_flash_v2_5",
                "ulaw_8000"
            ),
            "wss://api.elevenlabs.io/v1/text-to-speech/v1d/stream-input?model_id=eleven_flash_v2_5&output_format=ulaw_8000"
        );
    }

    #[test]
    fn server_messages_parse() {
        let m = parse(r#"{"audio":"AAEC","isFinal":null,"normalizedAlignment":{"chars":["H"],"charStartTimesMs":[0],"charDurationsMs":[50]},"alignment":{"chars":["H","i"],"charStartTimesMs":[0,50.0],"charDurationsMs":[50,60]}}"#).unwrap();
        assert_eq!(
            m,
            ServerMessage::Audio {
                audio: vec![0, 1, 2],
                alignment: Some(Alignment {
                    chars: vec!["H".into(), "i".into()],
                    char_start_times_ms: vec![0, 50],
                    char_durations_ms: vec![50, 60],
                }),
                is_final: false,
            }
        );
        assert_eq!(
            parse(r#"{"isFinal":true}"#).unwrap(),
            ServerMessage::Audio {
                audio: vec![],
                alignment: None,
                is_final: true
            }
        );
        assert_eq!(
            parse(r#"{"audio":null,"isFinal":true,"alignment":null}"#).unwrap(),
            ServerMessage::Audio {
                audio: vec![],
                alignment: None,
                is_final: true
            }
        );
        assert_eq!(
            parse(r#"{"message":"Invalid API key","error":"invalid_api_key","code":1008}"#)
                .unwrap(),
            ServerMessage::Error {
                message: "Invalid API key".into(),
                error: Some("invalid_api_key".into()),
                code: Some("1008".into()),
            }
        );
        assert!(matches!(parse("{\"audio\":"), Err(WireError::Json(_))));
        assert!(matches!(parse("[1]"), Err(WireError::Json(_))));
        assert_eq!(parse(r#"{"audio":"!!"}"#), Err(WireError::Base64));
    }

    #[test]
    fn alignment_reports_whole_words_and_piece_ends() {
        let mut t = SpokenText::new();
        let a = "Hello there. ";
        let b = "How are you?";
        assert_eq!(t.push(a), None);
        assert_eq!(t.push(b), None);
        // The first chunk stops mid-word ("Hello th").
        let m = t.align(&alignment(" Hello th", 10));
        assert_eq!(
            m,
            [SpokenMark {
                at_ms: 60,
                text_done: 5
            }]
        );
        // The rest of the first piece (the service appends the space we sent).
        let m = t.align(&alignment("ere. ", 10));
        assert_eq!(
            m,
            [SpokenMark {
                at_ms: 40,
                text_done: a.len()
            }]
        );
        assert_eq!(t.unspoken_pieces(), 1);
        let m = t.align(&alignment("How are you? ", 20));
        let done: Vec<usize> = m.iter().map(|m| m.text_done).collect();
        assert_eq!(done, [a.len() + 3, a.len() + 7, a.len() + b.len()]);
        assert_eq!(m[2].at_ms, 240);
        assert_eq!(t.unspoken_pieces(), 0);
        // Extra characters beyond the text are ignored.
        assert!(t.align(&alignment("zz", 10)).is_empty());
        assert_eq!(t.push("  "), Some(a.len() + b.len() + 2));
    }

    #[test]
    fn alignment_survives_changed_and_dropped_characters() {
        let mut t = SpokenText::new();
        t.push("It costs $5, ok?");
        // "$" and "," dropped by the service: "$5," is never whole, but "ok?" lines up.
        let m = t.align(&alignment("It costs 5 ok?", 10));
        let done: Vec<usize> = m.iter().map(|m| m.text_done).collect();
        assert_eq!(done, [2, 8, 16]);
        // Mismatched lengths in a hostile message: shortest list wins, no panic.
        let mut t = SpokenText::new();
        t.push("ab cd");
        let a = Alignment {
            chars: vec!["a".into(), "b".into(), " ".into()],
            char_start_times_ms: vec![0, 10],
            char_durations_ms: vec![10, 10, 10],
        };
        assert_eq!(
            t.align(&a),
            [SpokenMark {
                at_ms: 20,
                text_done: 2
            }]
        );
        assert_eq!(t.finish_all(), 5);
    }
}
