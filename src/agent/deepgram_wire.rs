//! Deepgram live streaming (`/v1/listen` over WebSocket), sans-IO: the listen URL, the
//! client's control messages, the server's messages, and the assembler that turns `Results`
//! into one [`SttEvent::Final`] per utterance.
//!
//! Wire facts used (developers.deepgram.com, "Live Audio", "Endpointing & Interim Results",
//! "Utterance End", "Finalize", "KeepAlive", "CloseStream"): `Results` carry
//! `channel.alternatives[0].{transcript, confidence, words[{word, start, end,
//! punctuated_word}]}` with times in seconds from the stream start, `is_final` marks a segment
//! that will not change, `speech_final` marks an endpoint (pause of `endpointing` ms),
//! `from_finalize` answers our `Finalize`; `UtteranceEnd` (needs `interim_results`) reports a
//! word gap of `utterance_end_ms`; `SpeechStarted` comes with `vad_events=true`.

use std::collections::VecDeque;

use serde::Deserialize;

use super::stages::{SttEvent, Word};

/// Asks the server to flush: pending audio is transcribed and answered with `from_finalize`.
pub const FINALIZE: &str = r#"{"type":"Finalize"}"#;
/// Keeps the stream open while no audio flows (the server closes after ~10 s of nothing).
pub const KEEP_ALIVE: &str = r#"{"type":"KeepAlive"}"#;
/// Ends the stream: the server answers what remains, sends `Metadata` and closes.
pub const CLOSE_STREAM: &str = r#"{"type":"CloseStream"}"#;

/// Most expected phrases sent as key terms (the API bounds the prompt size).
const MAX_KEYTERMS: usize = 100;

/// What the listen URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    /// The model (`nova-3`, `nova-2-phonecall`...).
    pub model: String,
    /// BCP-47 language (`en`, `en-US`), or the model's default.
    pub language: Option<String>,
    /// Sample rate of the linear16 audio sent.
    pub sample_rate: u32,
    /// Silence (ms) after which a segment is `speech_final`; `None` keeps the server default.
    pub endpointing_ms: Option<u32>,
    /// Word gap (ms) that triggers `UtteranceEnd`; `None` disables it.
    pub utterance_end_ms: Option<u32>,
    /// Punctuation and number formatting.
    pub smart_format: bool,
    /// Phrases to boost (`keyterm` on Nova-3, `keywords` otherwise).
    pub phrases: Vec<String>,
}

/// The WebSocket URL of a live transcription under `base_url` (`wss://api.deepgram.com`).
pub fn listen_url(base_url: &str, o: &ListenOptions) -> String {
    let mut q: Vec<(&str, String)> = vec![
        ("model", o.model.clone()),
        ("encoding", "linear16".into()),
        ("sample_rate", o.sample_rate.to_string()),
        ("channels", "1".into()),
        ("interim_results", "true".into()),
        ("vad_events", "true".into()),
        ("smart_format", o.smart_format.to_string()),
    ];
    if let Some(lang) = &o.language {
        q.push(("language", lang.clone()));
    }
    if let Some(ms) = o.endpointing_ms {
        q.push(("endpointing", ms.to_string()));
    }
    if let Some(ms) = o.utterance_end_ms {
        q.push(("utterance_end_ms", ms.to_string()));
    }
    // Nova-3 takes whole phrases as key terms; older models take single boosted words.
    if o.model.starts_with("nova-3") {
        for p in o.phrases.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            q.push(("keyterm", p.to_owned()));
        }
    } else {
        let mut words: Vec<String> = Vec::new();
        for w in o.phrases.iter().flat_map(|p| p.split_whitespace()) {
            let w: String = w
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect();
            if !w.is_empty() && !words.contains(&w) {
                words.push(w);
            }
        }
        q.extend(words.into_iter().map(|w| ("keywords", w)));
    }
    let mut keyterms = 0;
    q.retain(|(k, _)| {
        if *k == "keyterm" || *k == "keywords" {
            keyterms += 1;
            keyterms <= MAX_KEYTERMS
        } else {
            true
        }
    });
    let query: Vec<String> = q
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    format!(
        "{}/v1/listen?{}",
        base_url.trim_end_matches('/'),
        query.join("&")
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Appends `samples` as linear16 little-endian bytes (the audio frame payload).
pub fn encode_linear16(samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len() * 2);
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// One word of a `Results` message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResultWord {
    /// The word as recognized (lower case).
    pub word: String,
    /// Start, seconds from the stream start.
    pub start: f64,
    /// End, seconds from the stream start.
    pub end: f64,
    /// The word with punctuation and capitals (`smart_format` / `punctuate`).
    #[serde(default)]
    pub punctuated_word: Option<String>,
}

/// The first alternative of a `Results` message.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Alternative {
    /// The segment's text.
    #[serde(default)]
    pub transcript: String,
    /// 0..1.
    #[serde(default)]
    pub confidence: f64,
    /// Word timings.
    #[serde(default)]
    pub words: Vec<ResultWord>,
}

/// A `Results` message: one segment, interim or final.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// The best alternative.
    pub alternative: Alternative,
    /// The segment will not change.
    pub is_final: bool,
    /// An endpoint follows this segment.
    pub speech_final: bool,
    /// This answers our `Finalize`.
    pub from_finalize: bool,
    /// Segment start, seconds.
    pub start: f64,
    /// Segment length, seconds.
    pub duration: f64,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerMessage {
    /// A transcript segment.
    Results(Results),
    /// Speech began at `timestamp` seconds.
    SpeechStarted {
        /// Seconds from the stream start.
        timestamp: f64,
    },
    /// A gap of `utterance_end_ms` followed the last word.
    UtteranceEnd {
        /// End of the last word, seconds.
        last_word_end: f64,
    },
    /// Stream summary (sent before the server closes).
    Metadata {
        /// The request id, for support.
        request_id: String,
    },
    /// The server reported an error.
    Error {
        /// The provider's description.
        message: String,
    },
    /// A message type this client does not use.
    Other {
        /// Its `type` field.
        kind: String,
    },
}

/// A server message that is not the JSON documented.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Deepgram message: {0}")]
pub struct WireError(String);

#[derive(Deserialize)]
struct RawMessage {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    channel: Option<serde_json::Value>,
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
    #[serde(default)]
    from_finalize: bool,
    #[serde(default)]
    start: f64,
    #[serde(default)]
    duration: f64,
    #[serde(default)]
    timestamp: f64,
    #[serde(default)]
    last_word_end: f64,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    err_code: Option<String>,
    #[serde(default)]
    err_msg: Option<String>,
}

#[derive(Deserialize)]
struct RawChannel {
    #[serde(default)]
    alternatives: Vec<Alternative>,
}

/// Parses one text frame from the server.
pub fn parse_server_message(text: &str) -> Result<ServerMessage, WireError> {
    let raw: RawMessage =
        serde_json::from_str(text).map_err(|e| WireError(format!("{e} (at {})", e.column())))?;
    // The handshake-failure body and some stream errors have no `type`, only err_code/err_msg.
    if raw.err_code.is_some() || raw.err_msg.is_some() {
        return Ok(ServerMessage::Error {
            message: error_text(raw.err_code, raw.err_msg),
        });
    }
    let kind = raw
        .kind
        .ok_or_else(|| WireError("no \"type\" field".into()))?;
    Ok(match kind.as_str() {
        "Results" => {
            let channel = raw
                .channel
                .ok_or_else(|| WireError("Results without \"channel\"".into()))?;
            let channel: RawChannel =
                serde_json::from_value(channel).map_err(|e| WireError(e.to_string()))?;
            ServerMessage::Results(Results {
                alternative: channel.alternatives.into_iter().next().unwrap_or_default(),
                is_final: raw.is_final,
                speech_final: raw.speech_final,
                from_finalize: raw.from_finalize,
                start: raw.start,
                duration: raw.duration,
            })
        }
        "SpeechStarted" => ServerMessage::SpeechStarted {
            timestamp: raw.timestamp,
        },
        "UtteranceEnd" => ServerMessage::UtteranceEnd {
            last_word_end: raw.last_word_end,
        },
        "Metadata" => ServerMessage::Metadata {
            request_id: raw.request_id.unwrap_or_default(),
        },
        "Error" => ServerMessage::Error {
            message: match (raw.description, raw.message) {
                (Some(d), Some(m)) if d != m => format!("{d}: {m}"),
                (Some(d), _) => d,
                (None, Some(m)) => m,
                (None, None) => "unspecified error".into(),
            },
        },
        _ => ServerMessage::Other { kind },
    })
}

/// The reason of an `err_code`/`err_msg` body (handshake failures).
pub fn error_text(code: Option<String>, msg: Option<String>) -> String {
    match (code, msg) {
        (Some(c), Some(m)) => format!("{m} ({c})"),
        (Some(c), None) => c,
        (None, Some(m)) => m,
        (None, None) => "unspecified error".into(),
    }
}

/// Parses a failed handshake's body (`{"err_code","err_msg","request_id"}`), if it is one.
pub fn parse_handshake_error(body: &[u8]) -> Option<String> {
    match parse_server_message(std::str::from_utf8(body).ok()?) {
        Ok(ServerMessage::Error { message }) => Some(message),
        _ => None,
    }
}

/// Joins `Results` segments into utterances.
///
/// Interim results become [`SttEvent::Partial`] (committed text plus the interim). Final
/// segments are committed; the utterance is emitted as one [`SttEvent::Final`] when a segment
/// is `speech_final`, on `UtteranceEnd`, or when the answer to our `Finalize` arrives (or its
/// wait expires). Every [`UtteranceAssembler::finalize_requested`] is answered by at least one
/// `Final` since the previous one, empty when nothing was heard.
#[derive(Debug, Default)]
pub struct UtteranceAssembler {
    /// Final segments' texts of the open utterance.
    texts: Vec<String>,
    /// Their words, times in ms.
    words: Vec<Word>,
    /// Their confidences, for the mean.
    confidences: Vec<f64>,
    /// A `Finalize` was sent and not answered yet.
    finalize_pending: bool,
    /// Finals emitted since the last answered `Finalize`.
    finals_since_finalize: usize,
    /// Events ready for the session.
    events: VecDeque<SttEvent>,
}

impl UtteranceAssembler {
    /// An assembler with no open utterance.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one server message.
    pub fn on_message(&mut self, msg: &ServerMessage) {
        match msg {
            ServerMessage::Results(r) => self.on_results(r),
            ServerMessage::SpeechStarted { .. } => self.events.push_back(SttEvent::SpeechStarted),
            ServerMessage::UtteranceEnd { .. } => {
                self.flush();
            }
            _ => {}
        }
    }

    fn on_results(&mut self, r: &Results) {
        let text = r.alternative.transcript.trim();
        if !r.is_final {
            if !text.is_empty() {
                let mut partial = self.texts.join(" ");
                if !partial.is_empty() {
                    partial.push(' ');
                }
                partial.push_str(text);
                self.events.push_back(SttEvent::Partial { text: partial });
            }
            return;
        }
        if !text.is_empty() {
            self.texts.push(text.to_owned());
            self.confidences.push(r.alternative.confidence);
            self.words.extend(r.alternative.words.iter().map(|w| Word {
                text: w.punctuated_word.clone().unwrap_or_else(|| w.word.clone()),
                start_ms: seconds_to_ms(w.start),
                end_ms: seconds_to_ms(w.end),
            }));
        }
        if r.from_finalize && self.finalize_pending {
            self.answer_finalize();
        } else if r.speech_final {
            self.flush();
        } else if !text.is_empty() {
            self.events.push_back(SttEvent::Partial {
                text: self.texts.join(" "),
            });
        }
    }

    /// Our `Finalize` was sent (the caller's endpoint was decided).
    pub fn finalize_requested(&mut self) {
        self.finalize_pending = true;
    }

    /// Whether a `Finalize` awaits its answer (the driver's timer is armed).
    pub fn finalize_pending(&self) -> bool {
        self.finalize_pending
    }

    /// The wait for the `Finalize` answer expired: emit what was committed.
    pub fn finalize_expired(&mut self) {
        if self.finalize_pending {
            self.answer_finalize();
        }
    }

    fn answer_finalize(&mut self) {
        let emitted = self.flush();
        if !emitted && self.finals_since_finalize == 0 {
            self.events.push_back(SttEvent::Final {
                text: String::new(),
                words: None,
                confidence: 0.0,
            });
        }
        self.finalize_pending = false;
        self.finals_since_finalize = 0;
    }

    /// Emits the open utterance as a `Final`, if it has text.
    fn flush(&mut self) -> bool {
        if self.texts.is_empty() {
            return false;
        }
        let confidence = self.confidences.iter().sum::<f64>() / self.confidences.len() as f64;
        self.events.push_back(SttEvent::Final {
            text: std::mem::take(&mut self.texts).join(" "),
            words: Some(std::mem::take(&mut self.words)),
            confidence: confidence.clamp(0.0, 1.0) as f32,
        });
        self.confidences.clear();
        self.finals_since_finalize += 1;
        true
    }

    /// The next event for the session.
    pub fn poll_event(&mut self) -> Option<SttEvent> {
        self.events.pop_front()
    }
}

/// Seconds (as the API gives them) to whole milliseconds, saturating; garbage becomes 0.
fn seconds_to_ms(s: f64) -> u32 {
    if s.is_finite() && s > 0.0 {
        (s * 1000.0).round().min(u32::MAX as f64) as u32
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(
        text: &str,
        is_final: bool,
        speech_final: bool,
        words: &[(&str, f64, f64)],
    ) -> String {
        let words: Vec<serde_json::Value> = words
            .iter()
            .map(|(w, s, e)| {
                serde_json::json!({"word": w.to_lowercase(), "start": s, "end": e,
                    "confidence": 0.9, "punctuated_word": w})
            })
            .collect();
        serde_json::json!({
            "type": "Results", "channel_index": [0, 1], "duration": 1.0, "start": 0.0,
            "is_final": is_final, "speech_final": speech_final,
            "channel": {"alternatives": [{"transcript": text, "confidence": 0.8, "words": words}]},
            "metadata": {"request_id": "r", "model_info": {"name": "general-nova-3"}}
        })
        .to_string()
    }

    fn feed(a: &mut UtteranceAssembler, json: &str) {
        a.on_message(&parse_server_message(json).unwrap());
    }

    fn drain(a: &mut UtteranceAssembler) -> Vec<SttEvent> {
        std::iter::from_fn(|| a.poll_event()).collect()
    }

    #[test]
    fn url_has_the_documented_query() {
        let o = ListenOptions {
            model: "nova-3".into(),
            language: Some("en-US".into()),
            sample_rate: 8000,
            endpointing_ms: Some(300),
            utterance_end_ms: Some(1000),
            smart_format: true,
            phrases: vec!["Yes, I am interested".into(), " ".into()],
        };
        assert_eq!(
            listen_url("wss://api.deepgram.com/", &o),
            "wss://api.deepgram.com/v1/listen?model=nova-3&encoding=linear16&sample_rate=8000\
             &channels=1&interim_results=true&vad_events=true&smart_format=true&language=en-US\
             &endpointing=300&utterance_end_ms=1000&keyterm=Yes%2C%20I%20am%20interested"
        );
        let o = ListenOptions {
            model: "nova-2-phonecall".into(),
            language: None,
            endpointing_ms: None,
            utterance_end_ms: None,
            smart_format: false,
            phrases: vec!["stop calling".into(), "stop it".into()],
            ..o
        };
        assert!(
            listen_url("ws://h", &o)
                .ends_with("smart_format=false&keywords=stop&keywords=calling&keywords=it"),
            "{}",
            listen_url("ws://h", &o)
        );
    }

    #[test]
    fn interims_then_finals_make_one_utterance() {
        let mut a = UtteranceAssembler::new();
        feed(
            &mut a,
            r#"{"type":"SpeechStarted","channel":[0],"timestamp":0.42}"#,
        );
        feed(&mut a, &results("yes", false, false, &[("yes", 0.5, 0.8)]));
        feed(&mut a, &results("Yes,", true, false, &[("Yes,", 0.5, 0.8)]));
        feed(&mut a, &results("i am", false, false, &[]));
        feed(&mut a, &results("", false, false, &[]));
        feed(
            &mut a,
            &results(
                "I am interested.",
                true,
                true,
                &[("I", 0.9, 1.0), ("am", 1.0, 1.2), ("interested.", 1.2, 1.9)],
            ),
        );
        let events = drain(&mut a);
        assert_eq!(
            events[..4],
            [
                SttEvent::SpeechStarted,
                SttEvent::Partial { text: "yes".into() },
                SttEvent::Partial {
                    text: "Yes,".into()
                },
                SttEvent::Partial {
                    text: "Yes, i am".into()
                },
            ]
        );
        let SttEvent::Final {
            text,
            words,
            confidence,
        } = &events[4]
        else {
            panic!("{events:?}");
        };
        assert_eq!(text, "Yes, I am interested.");
        assert!((confidence - 0.8).abs() < 1e-6);
        let words = words.as_ref().unwrap();
        assert_eq!(words.len(), 4);
        assert_eq!(
            words[3],
            Word {
                text: "interested.".into(),
                start_ms: 1200,
                end_ms: 1900
            }
        );
        assert_eq!(events.len(), 5);
    }

    #[test]
    fn utterance_end_flushes_and_empty_finalize_answers_once() {
        let mut a = UtteranceAssembler::new();
        feed(
            &mut a,
            &results("No thanks.", true, false, &[("No", 0.1, 0.3)]),
        );
        feed(
            &mut a,
            r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":0.3}"#,
        );
        // Our endpoint came after the provider's: no second, empty Final.
        a.finalize_requested();
        feed(
            &mut a,
            r#"{"type":"Results","channel":{"alternatives":[{"transcript":""}]},"is_final":true,"from_finalize":true}"#,
        );
        let events = drain(&mut a);
        assert!(
            matches!(&events[..], [SttEvent::Partial { .. }, SttEvent::Final { text, .. }] if text == "No thanks."),
            "{events:?}"
        );
        // Nothing heard at all: the Finalize is still answered, with an empty Final.
        a.finalize_requested();
        a.finalize_expired();
        assert_eq!(
            drain(&mut a),
            [SttEvent::Final {
                text: String::new(),
                words: None,
                confidence: 0.0
            }]
        );
        assert!(!a.finalize_pending());
    }

    #[test]
    fn errors_and_garbage_are_typed() {
        assert_eq!(
            parse_server_message(
                r#"{"type":"Error","description":"Bad audio","message":"DATA-0000","variant":"x"}"#
            ),
            Ok(ServerMessage::Error {
                message: "Bad audio: DATA-0000".into()
            })
        );
        assert_eq!(
            parse_handshake_error(
                br#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":"1"}"#
            ),
            Some("Invalid credentials. (INVALID_AUTH)".into())
        );
        assert!(parse_server_message("{\"type\":\"Results\"").is_err());
        assert!(parse_server_message(r#"{"type":"Results"}"#).is_err());
        assert!(
            parse_server_message(r#"{"type":"Results","channel":{"alternatives":"x"}}"#).is_err()
        );
        assert!(parse_server_message("[]").is_err());
        assert_eq!(
            parse_server_message(r#"{"type":"Metadata","request_id":"abc","duration":1.5}"#),
            Ok(ServerMessage::Metadata {
                request_id: "abc".into()
            })
        );
        assert_eq!(seconds_to_ms(f64::NAN), 0);
        assert_eq!(seconds_to_ms(1e12), u32::MAX);
        let mut out = Vec::new();
        encode_linear16(&[1, -2], &mut out);
        assert_eq!(out, [1, 0, 0xfe, 0xff]);
    }
}
