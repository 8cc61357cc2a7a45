//! In-process test doubles for the STT, LLM and TTS stages (`scripted`, `echo`, `silence`).
//!
//! They answer synchronously: output becomes ready on input, so `poll_*` returns `Pending`
//! only when nothing was asked for yet (the driver polls again after its next input).

use std::collections::VecDeque;
use std::task::{Context, Poll};

use super::registry::{BuildError, StageParams};
use super::stages::{
    ChatRequest, Llm, LlmDelta, LlmStream, Role, StageError, Stt, SttEvent, SttSession, Tts,
    TtsAudio, TtsSession,
};

/// `scripted` STT: each ended utterance is recognized as the next line of a script.
#[derive(Debug, Clone, Default)]
pub struct ScriptedStt {
    /// What the caller "says", one entry per utterance.
    utterances: VecDeque<String>,
    /// Confidence reported with every final.
    confidence: f32,
}

impl ScriptedStt {
    /// A recognizer that hears `utterances` in order with `confidence`.
    pub fn new(utterances: impl IntoIterator<Item = String>, confidence: f32) -> Self {
        Self {
            utterances: utterances.into_iter().collect(),
            confidence,
        }
    }

    /// Reads `utterances` (list of strings) and `confidence` (0.9).
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        let confidence = p.number("confidence", 0.9, 0.0..=1.0)? as f32;
        let utterances = string_list(p, "utterances")?;
        Ok(Self::new(utterances, confidence))
    }
}

impl Stt for ScriptedStt {
    fn start(
        &mut self,
        _rate: u32,
        _expected: &[String],
    ) -> Result<Box<dyn SttSession>, StageError> {
        Ok(Box::new(ScriptedSttSession {
            script: std::mem::take(&mut self.utterances),
            confidence: self.confidence,
            heard_audio: false,
            events: VecDeque::new(),
        }))
    }
}

/// A session of [`ScriptedStt`].
#[derive(Debug)]
struct ScriptedSttSession {
    /// Remaining script.
    script: VecDeque<String>,
    /// Confidence of every final.
    confidence: f32,
    /// Whether audio came since the last utterance end (for `SpeechStarted`).
    heard_audio: bool,
    /// Events ready to be polled.
    events: VecDeque<SttEvent>,
}

impl SttSession for ScriptedSttSession {
    fn push_audio(&mut self, samples: &[i16]) -> Result<(), StageError> {
        if !self.heard_audio && !samples.is_empty() {
            self.heard_audio = true;
            self.events.push_back(SttEvent::SpeechStarted);
        }
        Ok(())
    }

    fn end_utterance(&mut self) -> Result<(), StageError> {
        self.heard_audio = false;
        let text = self.script.pop_front().unwrap_or_default();
        self.events.push_back(SttEvent::Final {
            text,
            words: None,
            confidence: self.confidence,
        });
        Ok(())
    }

    fn poll_event(&mut self, _cx: &mut Context<'_>) -> Poll<Option<Result<SttEvent, StageError>>> {
        match self.events.pop_front() {
            Some(e) => Poll::Ready(Some(Ok(e))),
            None => Poll::Pending,
        }
    }
}

/// `echo` LLM: replies "You said: <last user message>", streamed word by word.
#[derive(Debug, Clone, Default)]
pub struct EchoLlm;

impl EchoLlm {
    /// Takes no parameters.
    pub fn from_params(_p: &StageParams<'_>) -> Result<Self, BuildError> {
        Ok(Self)
    }
}

impl Llm for EchoLlm {
    fn start(&mut self, request: &ChatRequest) -> Result<Box<dyn LlmStream>, StageError> {
        let last = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map_or("", |m| m.content.as_str());
        Ok(Box::new(QueuedStream::text(&format!("You said: {last}"))))
    }
}

/// One reply of [`ScriptedLlm`]: text, then tool calls `(name, JSON arguments)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptedReply {
    /// The reply text.
    pub text: String,
    /// Tool calls after the text.
    pub tools: Vec<(String, String)>,
}

/// `scripted` LLM: answers each request with the next reply of a script.
#[derive(Debug, Clone, Default)]
pub struct ScriptedLlm {
    /// Replies still to give; an exhausted script answers with empty text.
    replies: VecDeque<ScriptedReply>,
}

impl ScriptedLlm {
    /// A model that gives `replies` in order.
    pub fn new(replies: impl IntoIterator<Item = ScriptedReply>) -> Self {
        Self {
            replies: replies.into_iter().collect(),
        }
    }

    /// Reads `replies`: strings, or tables `{ text = "...", tools = [{ name, arguments }] }`.
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        let bad = |reason: &str| BuildError::BadParam {
            stage: "llm scripted".to_owned(),
            key: "replies".to_owned(),
            reason: reason.to_owned(),
        };
        let mut replies = Vec::new();
        let items = match p.value("replies") {
            None => &[][..],
            Some(toml::Value::Array(items)) => &items[..],
            Some(_) => return Err(bad("expected an array")),
        };
        for item in items {
            let reply = match item {
                toml::Value::String(s) => ScriptedReply {
                    text: s.clone(),
                    tools: Vec::new(),
                },
                toml::Value::Table(t) => {
                    let text = t.get("text").and_then(toml::Value::as_str).unwrap_or("");
                    let mut tools = Vec::new();
                    let calls = t.get("tools").and_then(toml::Value::as_array);
                    for call in calls.map_or(&[][..], |c| &c[..]) {
                        let name = call.get("name").and_then(toml::Value::as_str);
                        let args = call.get("arguments").and_then(toml::Value::as_str);
                        let name = name.ok_or_else(|| bad("a tool call needs a name"))?;
                        tools.push((name.to_owned(), args.unwrap_or("{}").to_owned()));
                    }
                    ScriptedReply {
                        text: text.to_owned(),
                        tools,
                    }
                }
                _ => return Err(bad("each reply is a string or a table")),
            };
            replies.push(reply);
        }
        Ok(Self::new(replies))
    }
}

impl Llm for ScriptedLlm {
    fn start(&mut self, _request: &ChatRequest) -> Result<Box<dyn LlmStream>, StageError> {
        let reply = self.replies.pop_front().unwrap_or_default();
        let mut stream = QueuedStream::text(&reply.text);
        // Put the tool calls before `Done`, split in two fragments like real servers do.
        let done = stream.deltas.pop_back();
        for (index, (name, args)) in reply.tools.iter().enumerate() {
            let mid = (0..=args.len() / 2)
                .rev()
                .find(|&i| args.is_char_boundary(i))
                .unwrap_or(0);
            stream.deltas.push_back(LlmDelta::ToolCall {
                index,
                id: Some(format!("call_{index}")),
                name: Some(name.clone()),
                arguments: args[..mid].to_owned(),
            });
            stream.deltas.push_back(LlmDelta::ToolCall {
                index,
                id: None,
                name: None,
                arguments: args[mid..].to_owned(),
            });
        }
        if let Some(LlmDelta::Done { .. }) = done {
            let reason = if reply.tools.is_empty() {
                "stop"
            } else {
                "tool_calls"
            };
            stream.deltas.push_back(LlmDelta::Done {
                reason: reason.to_owned(),
            });
        }
        Ok(Box::new(stream))
    }
}

/// A completion whose deltas are all known in advance.
#[derive(Debug)]
struct QueuedStream {
    /// Deltas still to hand out.
    deltas: VecDeque<LlmDelta>,
}

impl QueuedStream {
    /// `text` as one delta per word (spaces kept), then `Done`.
    fn text(text: &str) -> Self {
        let mut deltas: VecDeque<LlmDelta> = text
            .split_inclusive(' ')
            .map(|w| LlmDelta::Text(w.to_owned()))
            .collect();
        deltas.push_back(LlmDelta::Done {
            reason: "stop".to_owned(),
        });
        Self { deltas }
    }
}

impl LlmStream for QueuedStream {
    fn poll_delta(&mut self, _cx: &mut Context<'_>) -> Poll<Option<Result<LlmDelta, StageError>>> {
        Poll::Ready(self.deltas.pop_front().map(Ok))
    }

    fn cancel(&mut self) {
        self.deltas.clear();
    }
}

/// `silence` TTS: 20 ms frames of silence, `ms_per_char` per character of text.
#[derive(Debug, Clone)]
pub struct SilenceTts {
    /// Speech duration per character, to make playout take a realistic time.
    ms_per_char: f64,
}

impl SilenceTts {
    /// Reads `ms_per_char` (60).
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        Ok(Self {
            ms_per_char: p.number("ms_per_char", 60.0, 0.0..=1_000.0)?,
        })
    }
}

impl Tts for SilenceTts {
    fn start(&mut self, rate: u32) -> Result<Box<dyn TtsSession>, StageError> {
        if !(1_000..=192_000).contains(&rate) {
            return Err(StageError::Unsupported {
                stage: "tts silence".to_owned(),
                reason: format!("sample rate {rate}"),
            });
        }
        Ok(Box::new(SilenceSession {
            frame: (rate / 50) as usize,
            ms_per_char: self.ms_per_char,
            text_len: 0,
            chunks: VecDeque::new(),
            finished: false,
            closed: false,
        }))
    }
}

/// A session of [`SilenceTts`].
#[derive(Debug)]
struct SilenceSession {
    /// Samples per 20 ms frame.
    frame: usize,
    /// Speech duration per character.
    ms_per_char: f64,
    /// Bytes of text pushed so far (for `text_done`).
    text_len: usize,
    /// Audio ready to be polled.
    chunks: VecDeque<TtsAudio>,
    /// `finish` was called: end once the queue drains.
    finished: bool,
    /// `cancel` was called.
    closed: bool,
}

impl TtsSession for SilenceSession {
    fn push_text(&mut self, text: &str) -> Result<(), StageError> {
        if self.finished || self.closed {
            return Err(StageError::Closed {
                stage: "tts silence".to_owned(),
            });
        }
        let frames = ((text.chars().count() as f64 * self.ms_per_char) / 20.0).ceil() as usize;
        self.text_len += text.len();
        for i in 0..frames.max(1) {
            let last = i + 1 == frames.max(1);
            self.chunks.push_back(TtsAudio {
                samples: vec![0; self.frame],
                text_done: last.then_some(self.text_len),
            });
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StageError> {
        self.finished = true;
        Ok(())
    }

    fn cancel(&mut self) {
        self.closed = true;
        self.chunks.clear();
    }

    fn poll_audio(&mut self, _cx: &mut Context<'_>) -> Poll<Option<Result<TtsAudio, StageError>>> {
        if self.closed {
            return Poll::Ready(None);
        }
        match self.chunks.pop_front() {
            Some(chunk) => Poll::Ready(Some(Ok(chunk))),
            None if self.finished => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

fn string_list(p: &StageParams<'_>, key: &str) -> Result<Vec<String>, BuildError> {
    let bad = || BuildError::BadParam {
        stage: "stt scripted".to_owned(),
        key: key.to_owned(),
        reason: "expected an array of strings".to_owned(),
    };
    match p.value(key) {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;
    use crate::agent::registry::{StageConfig, StageKind};
    use crate::agent::stages::{ChatMessage, LlmReply};
    use crate::agent::tools::ToolCall;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn drain_llm(stream: &mut dyn LlmStream) -> LlmReply {
        let mut reply = LlmReply::default();
        while let Poll::Ready(Some(d)) = stream.poll_delta(&mut cx()) {
            reply.apply(&d.unwrap());
        }
        reply
    }

    #[test]
    fn echo_repeats_the_last_user_message() {
        let req = ChatRequest {
            messages: vec![
                ChatMessage::text(Role::System, "be brief"),
                ChatMessage::text(Role::User, "hello there"),
            ],
            tools: serde_json::Value::Null,
        };
        let mut stream = EchoLlm.start(&req).unwrap();
        let reply = drain_llm(stream.as_mut());
        assert_eq!(reply.text, "You said: hello there");
        assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn scripted_llm_streams_text_and_tool_calls() {
        let config: StageConfig = toml::from_str(
            r#"
            name = "scripted"
            replies = [
                "Hello, how can I help?",
                { text = "Goodbye.", tools = [{ name = "set_outcome", arguments = '{"disposition":"done"}' }, { name = "end_call" }] },
            ]
            "#,
        )
        .unwrap();
        let params = StageParams::new(StageKind::Llm, &config, &no_env);
        let mut llm = ScriptedLlm::from_params(&params).unwrap();
        params.finish().unwrap();
        let req = ChatRequest::default();
        let first = drain_llm(llm.start(&req).unwrap().as_mut());
        assert_eq!(first.text, "Hello, how can I help?");
        let second = drain_llm(llm.start(&req).unwrap().as_mut());
        assert_eq!(second.text, "Goodbye.");
        assert_eq!(second.finish_reason.as_deref(), Some("tool_calls"));
        let calls: Vec<ToolCall> = second
            .tool_calls
            .iter()
            .map(|c| ToolCall::from_json(&c.name, &c.arguments).unwrap())
            .collect();
        assert_eq!(
            calls,
            [
                ToolCall::SetOutcome {
                    disposition: "done".into(),
                    notes: None
                },
                ToolCall::EndCall
            ]
        );
        let third = drain_llm(llm.start(&req).unwrap().as_mut());
        assert_eq!(third.text, "");
    }

    #[test]
    fn scripted_stt_finalizes_each_utterance() {
        let mut stt = ScriptedStt::new(["yes please".to_owned()], 0.8);
        let mut s = stt.start(8000, &[]).unwrap();
        assert!(s.poll_event(&mut cx()).is_pending());
        s.push_audio(&[1; 160]).unwrap();
        s.push_audio(&[1; 160]).unwrap();
        s.end_utterance().unwrap();
        let mut events = Vec::new();
        while let Poll::Ready(Some(e)) = s.poll_event(&mut cx()) {
            events.push(e.unwrap());
        }
        assert_eq!(
            events,
            [
                SttEvent::SpeechStarted,
                SttEvent::Final {
                    text: "yes please".into(),
                    words: None,
                    confidence: 0.8
                }
            ]
        );
    }

    #[test]
    fn silence_tts_paces_text_and_cancels() {
        let mut tts = SilenceTts { ms_per_char: 20.0 };
        let mut s = tts.start(8000).unwrap();
        s.push_text("Hi.").unwrap();
        let mut chunks = Vec::new();
        while let Poll::Ready(Some(c)) = s.poll_audio(&mut cx()) {
            chunks.push(c.unwrap());
        }
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.samples.len() == 160));
        assert_eq!(chunks[2].text_done, Some(3));
        s.push_text("More words.").unwrap();
        s.cancel();
        assert_eq!(s.poll_audio(&mut cx()), Poll::Ready(None));
        assert!(s.push_text("x").is_err());
        assert!(tts.start(0).is_err());
    }
}
