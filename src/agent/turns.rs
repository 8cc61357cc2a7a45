//! The LLM-mode turn engine, sans-IO: fed events (caller text, DTMF, LLM deltas, TTS audio,
//! playout marks, barge-in, stage failures), it keeps the conversation history and returns
//! the actions a driver carries out (start/cancel the LLM and TTS, push sentences, play audio
//! with marks, run tools, hang up). It never reads the clock or touches I/O.
//!
//! - The reply is split into sentences as it streams, each pushed to TTS at once.
//! - History holds only what the caller heard: every audio chunk gets a mark tied to the
//!   bytes of reply text it completes (`TtsAudio::text_done`, else the end of the session),
//!   and on barge-in each assistant message is cut to the text of the last mark played.
//! - Tool calls run, their results go back as `tool` messages and the model is called again
//!   (up to `max_tool_rounds`); `end_call` hangs up once the speech is out.
//! - A stage failure says the fallback line (embedded voice) and retries the turn once; a
//!   second failure in a row ends the call with outcome [`AGENT_ERROR`].

use std::collections::VecDeque;

use serde_json::Value;

use super::config::LlmMode;
use super::registry::StageKind;
use super::sentences::SentenceSplitter;
use super::stages::{ChatMessage, ChatRequest, LlmDelta, LlmReply, Role, StageError, TtsAudio};
use super::tools::{ToolCall, failure_text, tool_spec};
use crate::media::playout::Mark;

/// The outcome of a call ended by repeated provider failures.
pub const AGENT_ERROR: &str = "agent_error";
/// The outcome of a call the model ended without `set_outcome`.
pub const DEFAULT_OUTCOME: &str = "completed";
/// The outcome of a call ended because the caller stayed silent.
pub const NO_RESPONSE: &str = "no_response";

/// An input to the engine.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TurnEvent {
    /// The call is up: greet.
    Start,
    /// The recognizer's final for one caller utterance.
    UserText(String),
    /// The caller pressed a key.
    Dtmf(char),
    /// Nothing was said or played for the settings' `no_input_ms`.
    NoInput,
    /// A delta of the running completion.
    Llm(LlmDelta),
    /// The running completion's stream ended.
    LlmEnded,
    /// Audio of the open synthesis session.
    TtsAudio(TtsAudio),
    /// The open synthesis session has delivered all its audio.
    TtsEnded,
    /// The chunk carrying this mark has been sent in full.
    MarkPlayed(Mark),
    /// The caller talked over the agent; the driver has cleared the playout, and
    /// `last_played` is the last mark that went out before the clear.
    BargeIn {
        /// The clear report's last played mark.
        last_played: Option<Mark>,
    },
    /// The transfer the model asked for failed before the target answered (busy, no
    /// answer): the caller is still on the line and the conversation goes on.
    TransferFailed(String),
    /// A stage failed.
    Failed {
        /// Which stage.
        stage: StageKind,
        /// What it said (never holds secrets).
        error: StageError,
    },
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TurnAction {
    /// Start a completion (cancelling none: the engine cancels first when needed).
    StartLlm(ChatRequest),
    /// Abandon the running completion.
    CancelLlm,
    /// Open a synthesis session.
    StartTts,
    /// Push text to the open session.
    PushTts(String),
    /// No more text for the open session.
    FinishTts,
    /// Abandon the open session.
    CancelTts,
    /// Queue audio with this mark.
    Play {
        /// The samples.
        samples: Vec<i16>,
        /// Reported back as [`TurnEvent::MarkPlayed`] once sent.
        mark: Mark,
    },
    /// Say this line with the embedded voice after what is queued (not part of history).
    SayFallback(String),
    /// Carry out a tool call (end_call is reported too, and followed by [`Self::Hangup`]).
    Tool(ToolCall),
    /// Hang up once everything queued has played, recording this outcome.
    Hangup {
        /// The call's disposition (`set_outcome`, [`DEFAULT_OUTCOME`] or [`AGENT_ERROR`]).
        outcome: String,
    },
}

/// What a retried turn redoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TurnKind {
    /// The greeting.
    Greeting,
    /// A completion from the history.
    Reply,
}

/// Reply text pushed to TTS that belongs to one assistant message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// The message in history, once committed.
    message: Option<usize>,
    /// Start in `spoken` (bytes).
    start: usize,
    /// End in `spoken`; grows while the round streams.
    end: usize,
}

/// The LLM conversation of one call.
#[derive(Debug)]
pub struct TurnEngine {
    /// Prompts, tools and limits.
    settings: LlmMode,
    /// The `tools` array sent with each request.
    tool_defs: Value,
    /// The conversation, system prompt first.
    history: Vec<ChatMessage>,
    /// History length when the current turn began (a retry starts over from here).
    turn_base: usize,
    /// What the current turn is.
    turn_kind: TurnKind,
    /// Whether a completion is running.
    llm_running: bool,
    /// The running completion, accumulated.
    reply: LlmReply,
    /// Splits the running completion's text into sentences.
    splitter: SentenceSplitter,
    /// Whether a synthesis session is open, and where its text starts in `spoken`.
    tts_base: Option<usize>,
    /// Every byte of reply text pushed to TTS in this call.
    spoken: String,
    /// Bytes of `spoken` the caller has heard (last played mark).
    heard: usize,
    /// Reply text segments not yet fully heard.
    segments: Vec<Segment>,
    /// Marks queued and not yet played, with the `spoken` bytes complete once each plays.
    marks: VecDeque<(u64, usize)>,
    /// Next mark number.
    next_mark: u64,
    /// Stage failures in a row.
    failures: u32,
    /// LLM calls in this turn that ran tools.
    tool_rounds: u32,
    /// The disposition from `set_outcome`.
    outcome: Option<String>,
    /// Set once the call is ending, with its outcome.
    ending: Option<String>,
    /// Whether [`TurnAction::Hangup`] was returned.
    hangup_sent: bool,
    /// Reprompts since the caller last said something.
    reprompts: u32,
}

impl TurnEngine {
    /// An engine for `settings`; marks are numbered from `first_mark`.
    pub fn new(settings: LlmMode, first_mark: u64) -> Self {
        let tool_defs = Value::Array(
            settings
                .tools
                .iter()
                .filter_map(|t| tool_spec(t))
                .map(|s| s.definition())
                .collect(),
        );
        let history = vec![ChatMessage::text(Role::System, &settings.system_prompt)];
        Self {
            settings,
            tool_defs,
            turn_base: history.len(),
            history,
            turn_kind: TurnKind::Greeting,
            llm_running: false,
            reply: LlmReply::default(),
            splitter: SentenceSplitter::default(),
            tts_base: None,
            spoken: String::new(),
            heard: 0,
            segments: Vec::new(),
            marks: VecDeque::new(),
            next_mark: first_mark,
            failures: 0,
            tool_rounds: 0,
            outcome: None,
            ending: None,
            hangup_sent: false,
            reprompts: 0,
        }
    }

    /// Silence (ms) after which the driver reports [`TurnEvent::NoInput`].
    pub fn no_input_ms(&self) -> u64 {
        self.settings.no_input_ms
    }

    /// The conversation so far.
    pub fn history(&self) -> &[ChatMessage] {
        &self.history
    }

    /// The outcome the call is ending with, once it is ending.
    pub fn ending(&self) -> Option<&str> {
        self.ending.as_deref()
    }

    /// Whether the agent has anything in flight (a completion or a synthesis session).
    pub fn is_busy(&self) -> bool {
        self.llm_running || self.tts_base.is_some()
    }

    /// The request a caller turn saying `text` would start now (history plus `text` as the
    /// user message): what an early LLM start sends before the recognizer's final.
    pub fn request_for(&self, text: &str) -> ChatRequest {
        let mut messages = self.history.clone();
        messages.push(ChatMessage::text(Role::User, text.trim()));
        ChatRequest {
            messages,
            tools: self.tool_defs.clone(),
        }
    }

    /// Feeds one event; returns what to do, in order.
    pub fn handle(&mut self, event: TurnEvent) -> Vec<TurnAction> {
        let mut out = Vec::new();
        if let (Some(_), TurnEvent::TransferFailed(why)) = (&self.ending, &event) {
            self.transfer_failed(why, &mut out);
            return out;
        }
        if self.ending.is_some() {
            // Only the speech still going out matters now.
            match event {
                TurnEvent::TtsAudio(a) => self.on_audio(a, &mut out),
                TurnEvent::TtsEnded => self.on_tts_ended(&mut out),
                TurnEvent::MarkPlayed(m) => self.on_played(m),
                TurnEvent::Failed {
                    stage: StageKind::Tts,
                    ..
                } => {
                    self.tts_base = None;
                    self.maybe_hang_up(&mut out);
                }
                _ => {}
            }
            return out;
        }
        match event {
            TurnEvent::Start => self.greet(&mut out),
            TurnEvent::UserText(text) => {
                if !text.trim().is_empty() {
                    self.reprompts = 0;
                    self.user_turn(text.trim().to_owned(), &mut out);
                }
            }
            TurnEvent::Dtmf(d) => {
                self.reprompts = 0;
                self.user_turn(format!("(the caller pressed the key {d})"), &mut out)
            }
            TurnEvent::NoInput => self.no_input(&mut out),
            TurnEvent::Llm(delta) => self.on_delta(delta, &mut out),
            TurnEvent::LlmEnded => {
                if self.llm_running {
                    self.finish_round(&mut out);
                }
            }
            TurnEvent::TtsAudio(a) => self.on_audio(a, &mut out),
            TurnEvent::TtsEnded => self.on_tts_ended(&mut out),
            TurnEvent::MarkPlayed(m) => self.on_played(m),
            TurnEvent::BargeIn { last_played } => {
                if let Some(m) = last_played {
                    self.on_played(m);
                }
                self.interrupt(&mut out);
            }
            TurnEvent::Failed { stage, error } => self.on_failure(stage, &error, &mut out),
            // Not ending: no transfer was under way.
            TurnEvent::TransferFailed(_) => {}
        }
        out
    }

    /// The call goes on after a failed transfer: the model hears why (a system note after
    /// its transfer call) and speaks next.
    fn transfer_failed(&mut self, why: &str, out: &mut Vec<TurnAction>) {
        self.ending = None;
        self.hangup_sent = false;
        self.history.push(ChatMessage::text(
            Role::System,
            format!(
                "The transfer failed: {why}. The caller is still on the line: tell them, and offer another way to help."
            ),
        ));
        self.turn_kind = TurnKind::Reply;
        self.turn_base = self.history.len();
        self.tool_rounds = 0;
        self.start_llm(out);
    }

    fn greet(&mut self, out: &mut Vec<TurnAction>) {
        self.turn_kind = TurnKind::Greeting;
        self.turn_base = self.history.len();
        let Some(greeting) = self.settings.greeting.clone() else {
            return;
        };
        self.history
            .push(ChatMessage::text(Role::Assistant, greeting.clone()));
        let message = Some(self.history.len() - 1);
        self.speak(&greeting, message, out);
        self.finish_tts(out);
    }

    /// The caller said nothing: reprompt, or after `max_reprompts` say the hang-up line and
    /// end the call with [`NO_RESPONSE`]. Ignored while the agent is busy.
    fn no_input(&mut self, out: &mut Vec<TurnAction>) {
        if self.is_busy() {
            return;
        }
        let line = if self.reprompts < self.settings.max_reprompts {
            self.reprompts += 1;
            self.settings.reprompt.clone()
        } else {
            self.ending = Some(NO_RESPONSE.to_owned());
            self.settings.silence_hangup.clone()
        };
        self.history
            .push(ChatMessage::text(Role::Assistant, line.clone()));
        let message = Some(self.history.len() - 1);
        self.speak(&line, message, out);
        self.finish_tts(out);
        self.maybe_hang_up(out);
    }

    fn user_turn(&mut self, text: String, out: &mut Vec<TurnAction>) {
        if self.is_busy() {
            // The caller spoke again before the reply was out: it is stale.
            self.interrupt(out);
        }
        self.history.push(ChatMessage::text(Role::User, text));
        self.turn_kind = TurnKind::Reply;
        self.turn_base = self.history.len();
        self.tool_rounds = 0;
        self.start_llm(out);
    }

    fn start_llm(&mut self, out: &mut Vec<TurnAction>) {
        self.reply = LlmReply::default();
        self.splitter.clear();
        self.llm_running = true;
        out.push(TurnAction::StartLlm(ChatRequest {
            messages: self.history.clone(),
            tools: self.tool_defs.clone(),
        }));
    }

    fn on_delta(&mut self, delta: LlmDelta, out: &mut Vec<TurnAction>) {
        if !self.llm_running {
            return;
        }
        self.reply.apply(&delta);
        match delta {
            LlmDelta::Text(t) => {
                for sentence in self.splitter.push(&t) {
                    self.speak(&sentence, None, out);
                }
            }
            LlmDelta::Done { .. } => self.finish_round(out),
            _ => {}
        }
    }

    /// Pushes `text` to TTS (opening a session if needed) as part of `message`'s segment.
    fn speak(&mut self, text: &str, message: Option<usize>, out: &mut Vec<TurnAction>) {
        if self.tts_base.is_none() {
            self.tts_base = Some(self.spoken.len());
            out.push(TurnAction::StartTts);
        }
        let piece = format!("{text} ");
        let start = self.spoken.len();
        self.spoken.push_str(&piece);
        let end = self.spoken.len();
        match self.segments.last_mut() {
            Some(s) if s.message == message && s.end == start => s.end = end,
            _ => self.segments.push(Segment {
                message,
                start,
                end,
            }),
        }
        out.push(TurnAction::PushTts(piece));
    }

    fn finish_tts(&mut self, out: &mut Vec<TurnAction>) {
        if self.tts_base.is_some() {
            out.push(TurnAction::FinishTts);
        }
    }

    /// The completion is over: commit it, run its tools, and call the model again or stop.
    fn finish_round(&mut self, out: &mut Vec<TurnAction>) {
        self.llm_running = false;
        if let Some(rest) = self.splitter.finish() {
            self.speak(&rest, None, out);
        }
        let reply = std::mem::take(&mut self.reply);
        let calls: Vec<_> = reply
            .tool_calls
            .into_iter()
            .filter(|c| !c.name.is_empty())
            .collect();
        let text = reply.text.trim().to_owned();
        if text.is_empty() && calls.is_empty() {
            self.finish_tts(out);
            return;
        }
        let mut message = ChatMessage::text(Role::Assistant, text);
        message.tool_calls = calls.clone();
        self.history.push(message);
        let index = self.history.len() - 1;
        for s in self.segments.iter_mut().filter(|s| s.message.is_none()) {
            s.message = Some(index);
        }
        let mut end_call = false;
        for call in &calls {
            let result = match self.run_tool(&call.name, &call.arguments) {
                Ok(tool) => {
                    let text = tool.result_text();
                    // A transfer ends our part of the call once its line has been said.
                    end_call |=
                        tool == ToolCall::EndCall || matches!(tool, ToolCall::Transfer { .. });
                    out.push(TurnAction::Tool(tool));
                    text
                }
                Err(reason) => failure_text(&call.name, &reason),
            };
            self.history
                .push(ChatMessage::tool_result(call.id.clone(), result));
        }
        if end_call {
            self.finish_tts(out);
            self.ending = Some(
                self.outcome
                    .clone()
                    .unwrap_or_else(|| DEFAULT_OUTCOME.to_owned()),
            );
            self.maybe_hang_up(out);
        } else if !calls.is_empty() && self.tool_rounds + 1 < self.settings.max_tool_rounds {
            // Keep the session open: the next round's words follow in the same voice stream.
            self.tool_rounds += 1;
            self.start_llm(out);
        } else {
            self.finish_tts(out);
        }
    }

    fn run_tool(&mut self, name: &str, arguments: &str) -> Result<ToolCall, String> {
        if !self.settings.tools.contains(&name) {
            return Err("this tool is not available on this call".to_owned());
        }
        let tool = ToolCall::from_json(name, arguments).map_err(|e| e.to_string())?;
        if let ToolCall::SetOutcome { disposition, .. } = &tool {
            self.outcome = Some(disposition.clone());
        }
        Ok(tool)
    }

    fn on_audio(&mut self, audio: TtsAudio, out: &mut Vec<TurnAction>) {
        let Some(base) = self.tts_base else {
            return;
        };
        let previous = self.marks.back().map_or(self.heard.max(base), |m| m.1);
        let done = audio.text_done.map_or(previous, |n| {
            (base + n).min(self.spoken.len()).max(previous)
        });
        let mark = self.next_mark;
        self.next_mark += 1;
        self.marks.push_back((mark, done));
        out.push(TurnAction::Play {
            samples: audio.samples,
            mark: Mark(mark),
        });
    }

    fn on_tts_ended(&mut self, out: &mut Vec<TurnAction>) {
        let Some(base) = self.tts_base.take() else {
            return;
        };
        // All of the session's audio is queued: its last chunk completes all its text.
        if let Some(last) = self.marks.back_mut().filter(|m| m.1 >= base) {
            last.1 = self.spoken.len();
        }
        if !self.llm_running {
            self.failures = 0;
        }
        self.maybe_hang_up(out);
    }

    fn on_played(&mut self, mark: Mark) {
        while let Some(&(m, done)) = self.marks.front() {
            if m > mark.0 {
                break;
            }
            self.marks.pop_front();
            self.heard = self.heard.max(done);
        }
        let heard = self.heard;
        self.segments.retain(|s| s.end > heard);
    }

    /// Barge-in: stop everything and cut each message to what the caller heard.
    fn interrupt(&mut self, out: &mut Vec<TurnAction>) {
        if self.llm_running {
            self.llm_running = false;
            out.push(TurnAction::CancelLlm);
        }
        if self.tts_base.take().is_some() {
            out.push(TurnAction::CancelTts);
        }
        self.marks.clear();
        let mut uncommitted = String::new();
        for s in std::mem::take(&mut self.segments) {
            let heard = heard_text(&self.spoken, s.start, s.end.min(self.heard.max(s.start)));
            match s.message {
                Some(i) => {
                    if let Some(m) = self.history.get_mut(i) {
                        m.content = heard;
                    }
                }
                None => uncommitted.push_str(&heard),
            }
        }
        if !uncommitted.trim().is_empty() {
            self.history
                .push(ChatMessage::text(Role::Assistant, uncommitted.trim()));
        }
        self.heard = self.spoken.len();
        self.reply = LlmReply::default();
        self.splitter.clear();
    }

    fn on_failure(&mut self, stage: StageKind, error: &StageError, out: &mut Vec<TurnAction>) {
        tracing::warn!(%stage, %error, failures = self.failures + 1, "agent stage failed");
        if self.llm_running {
            self.llm_running = false;
            out.push(TurnAction::CancelLlm);
        }
        if self.tts_base.take().is_some() {
            out.push(TurnAction::CancelTts);
        }
        self.failures += 1;
        if self.failures >= 2 {
            self.ending = Some(AGENT_ERROR.to_owned());
            self.maybe_hang_up(out);
            return;
        }
        // Forget the failed turn's unfinished work; what is queued still plays.
        self.history.truncate(self.turn_base);
        let base = self.turn_base;
        self.segments
            .retain(|s| s.message.is_some_and(|m| m < base));
        self.reply = LlmReply::default();
        self.splitter.clear();
        out.push(TurnAction::SayFallback(self.settings.fallback_line.clone()));
        match (stage, self.turn_kind) {
            // The caller's words were lost: listen again.
            (StageKind::Stt, _) => {}
            (_, TurnKind::Greeting) => {
                if self.history.last().is_some_and(|m| m.role == Role::System) {
                    self.greet(out);
                }
            }
            (_, TurnKind::Reply) => self.start_llm(out),
        }
    }

    fn maybe_hang_up(&mut self, out: &mut Vec<TurnAction>) {
        if self.hangup_sent || self.tts_base.is_some() {
            return;
        }
        if let Some(outcome) = &self.ending {
            self.hangup_sent = true;
            out.push(TurnAction::Hangup {
                outcome: outcome.clone(),
            });
        }
    }
}

/// `spoken[start..end]` on character boundaries, trimmed.
fn heard_text(spoken: &str, start: usize, end: usize) -> String {
    let mut end = end.min(spoken.len());
    while !spoken.is_char_boundary(end) {
        end -= 1;
    }
    let mut start = start.min(end);
    while !spoken.is_char_boundary(start) {
        start -= 1;
    }
    spoken[start..end].trim().to_owned()
}

pub mod early;
#[cfg(test)]
mod flite_tests;
pub mod listener;
pub mod outbox;
pub mod segments;
pub mod settings;
#[cfg(test)]
mod tests;
