//! The pipeline's pluggable stages: [`Vad`], [`Stt`], [`Llm`] and [`Tts`].
//!
//! Shape chosen: the VAD is a plain synchronous function of the audio. The other three are
//! *sessions* with non-blocking inputs (`push_*`, `finish`, `cancel`) and one output method
//! shaped like `futures::Stream::poll_next`: `poll_*(&mut self, cx) -> Poll<Option<Result<..>>>`.
//! It needs only `std::task`, no runtime, no `async_trait` and no boxed future per call:
//! - an in-process engine (the test doubles, an embedded recognizer) computes on `push` and
//!   returns `Poll::Ready` at once, ignoring the context, so tests drive it synchronously;
//! - a network adapter keeps its socket in a driver task, and `poll_*` reads that task's
//!   channel and registers the waker, so the call's task can `select!` over several stages
//!   through `std::future::poll_fn`.
//!
//! `Poll::Ready(None)` means the session is over (finished, cancelled or closed).

use std::fmt;
use std::task::{Context, Poll};

/// Why a stage failed while running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StageError {
    /// The stage cannot handle this input (e.g. a sample rate it does not support).
    #[error("{stage}: unsupported: {reason}")]
    Unsupported {
        /// The stage's registered name.
        stage: String,
        /// What is unsupported.
        reason: String,
    },
    /// The provider failed (connection, status code, malformed reply); never holds secrets.
    #[error("{stage}: provider error: {reason}")]
    Provider {
        /// The stage's registered name.
        stage: String,
        /// What went wrong.
        reason: String,
    },
    /// Input after `finish` or `cancel`.
    #[error("{stage}: session is closed")]
    Closed {
        /// The stage's registered name.
        stage: String,
    },
}

/// A voice-activity detector fed 16-bit PCM frames (20 ms at the leg's rate, typically).
pub trait Vad: Send {
    /// Analyses one frame of `rate` Hz mono audio and reports speech probability and edges.
    fn push(&mut self, samples: &[i16], rate: u32) -> Result<VadFrame, StageError>;

    /// Forgets all state (new call, or after the agent's own speech).
    fn reset(&mut self);
}

/// What the VAD concluded from one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadFrame {
    /// Probability that this frame holds speech, 0.0 to 1.0.
    pub probability: f32,
    /// A speech edge decided at this frame (after the detector's debouncing), if any.
    pub event: Option<VadEvent>,
}

/// A speech edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech has started (enough speech frames in a row).
    SpeechStart,
    /// Speech has ended (enough silence after speech).
    SpeechEnd,
}

/// A speech recognizer: opens one streaming session per call (or per utterance).
pub trait Stt: Send {
    /// Opens a session for `rate` Hz mono audio; `expected_phrases` may constrain it (empty: open).
    fn start(
        &mut self,
        rate: u32,
        expected_phrases: &[String],
    ) -> Result<Box<dyn SttSession>, StageError>;
}

/// One streaming recognition session.
pub trait SttSession: Send {
    /// Adds caller audio at the session's rate.
    fn push_audio(&mut self, samples: &[i16]) -> Result<(), StageError>;

    /// Marks the end of the current utterance (endpoint decided): the engine should finalize.
    fn end_utterance(&mut self) -> Result<(), StageError>;

    /// Replaces the phrases the recognizer is constrained to (next flow state); default: ignored.
    fn set_expected_phrases(&mut self, _phrases: &[String]) {}

    /// Whether the engine recognizes audio as it comes (partials while the caller talks): the
    /// driver then streams each utterance during speech and only marks its end; default: no
    /// (the whole utterance is pushed at the endpoint).
    fn streams_audio(&self) -> bool {
        false
    }

    /// The next recognition event, if one is ready.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<SttEvent, StageError>>>;
}

/// What a recognizer reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SttEvent {
    /// The engine heard the start of speech.
    SpeechStarted,
    /// An interim hypothesis that may still change.
    Partial {
        /// The hypothesis so far.
        text: String,
    },
    /// The final text of an utterance.
    Final {
        /// The recognized text.
        text: String,
        /// Word timings relative to the session start, when the engine gives them.
        words: Option<Vec<Word>>,
        /// Engine confidence, 0.0 to 1.0 (1.0 when the engine gives none).
        confidence: f32,
    },
}

/// One recognized word with its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word.
    pub text: String,
    /// Start, milliseconds from the session start.
    pub start_ms: u32,
    /// End, milliseconds from the session start.
    pub end_ms: u32,
}

/// A chat model: one streamed completion per request.
pub trait Llm: Send {
    /// Starts a completion of `request`.
    fn start(&mut self, request: &ChatRequest) -> Result<Box<dyn LlmStream>, StageError>;
}

/// One streamed completion.
pub trait LlmStream: Send {
    /// The next delta, if one is ready.
    fn poll_delta(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<LlmDelta, StageError>>>;

    /// Abandons the completion (barge-in); later polls return `Ready(None)`.
    fn cancel(&mut self);
}

/// A chat completion request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The conversation so far, system prompt first.
    pub messages: Vec<ChatMessage>,
    /// Function definitions (an OpenAI `tools` array, see [`super::tools::tool_definitions`]).
    pub tools: serde_json::Value,
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions.
    System,
    /// The caller.
    User,
    /// The agent.
    Assistant,
    /// A tool result.
    Tool,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// The text (for the agent: only what the caller actually heard).
    pub content: String,
    /// Tool calls the assistant made in this message.
    pub tool_calls: Vec<LlmToolCall>,
    /// For a `Tool` message: the id of the call it answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message with text only.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// A tool result answering call `id`.
    pub fn tool_result(id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: Role::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: Some(id.into()),
        }
    }
}

/// A tool call as the model emitted it (arguments still JSON text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LlmToolCall {
    /// The provider's call id (echoed in the tool result).
    pub id: String,
    /// The function name.
    pub name: String,
    /// The JSON arguments, as accumulated from deltas.
    pub arguments: String,
}

/// A piece of a streamed completion.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LlmDelta {
    /// More reply text.
    Text(String),
    /// A fragment of tool call number `index`; fields arrive in pieces and are appended.
    ToolCall {
        /// Which call of this reply the fragment belongs to.
        index: usize,
        /// The call id, usually in the first fragment only.
        id: Option<String>,
        /// The function name, usually in the first fragment only.
        name: Option<String>,
        /// A piece of the JSON arguments.
        arguments: String,
    },
    /// The model finished, with the provider's reason (`stop`, `tool_calls`, `length`...).
    Done {
        /// The finish reason.
        reason: String,
    },
}

/// Accumulates the deltas of one completion into its text and tool calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LlmReply {
    /// All text deltas joined.
    pub text: String,
    /// Tool calls by index (gaps filled with empty calls).
    pub tool_calls: Vec<LlmToolCall>,
    /// The finish reason, once `Done` arrived.
    pub finish_reason: Option<String>,
}

impl LlmReply {
    /// Folds one delta into the reply.
    pub fn apply(&mut self, delta: &LlmDelta) {
        match delta {
            LlmDelta::Text(t) => self.text.push_str(t),
            LlmDelta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                // A hostile index must not allocate without bound.
                let index = (*index).min(MAX_TOOL_CALLS - 1);
                if self.tool_calls.len() <= index {
                    self.tool_calls.resize_with(index + 1, LlmToolCall::default);
                }
                let call = &mut self.tool_calls[index];
                if let Some(id) = id {
                    call.id.clone_from(id);
                }
                if let Some(name) = name {
                    call.name.push_str(name);
                }
                call.arguments.push_str(arguments);
            }
            LlmDelta::Done { reason } => self.finish_reason = Some(reason.clone()),
        }
    }
}

/// Most tool calls one reply may carry; higher indexes are folded into the last.
pub const MAX_TOOL_CALLS: usize = 16;

/// A speech synthesizer: one streaming session per agent reply.
pub trait Tts: Send {
    /// Opens a session producing `rate` Hz mono audio.
    fn start(&mut self, rate: u32) -> Result<Box<dyn TtsSession>, StageError>;
}

/// One streaming synthesis session: text in (sentence by sentence), audio out.
pub trait TtsSession: Send {
    /// Adds text to speak after what was already pushed.
    fn push_text(&mut self, text: &str) -> Result<(), StageError>;

    /// No more text will come; the session ends once its audio is out.
    fn finish(&mut self) -> Result<(), StageError>;

    /// Stops at once (barge-in); later polls return `Ready(None)`.
    fn cancel(&mut self);

    /// The next chunk of audio, if one is ready.
    fn poll_audio(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<TtsAudio, StageError>>>;
}

/// A chunk of synthesized audio.
#[derive(Clone, PartialEq, Eq)]
pub struct TtsAudio {
    /// Mono 16-bit samples at the session's rate.
    pub samples: Vec<i16>,
    /// Bytes of the pushed text fully spoken once this chunk has played, when the engine knows.
    pub text_done: Option<usize>,
}

impl fmt::Debug for TtsAudio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TtsAudio")
            .field("samples", &self.samples.len())
            .field("text_done", &self.text_done)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(index: usize, id: Option<&str>, name: Option<&str>, args: &str) -> LlmDelta {
        LlmDelta::ToolCall {
            index,
            id: id.map(str::to_owned),
            name: name.map(str::to_owned),
            arguments: args.to_owned(),
        }
    }

    #[test]
    fn reply_accumulates_tool_calls_by_index() {
        let deltas = [
            LlmDelta::Text("One moment".into()),
            frag(0, Some("call_a"), Some("set_outcome"), ""),
            frag(1, Some("call_b"), Some("end_call"), "{"),
            frag(0, None, None, "{\"disposition\":"),
            LlmDelta::Text(".".into()),
            frag(0, None, None, "\"booked\"}"),
            frag(1, None, None, "}"),
            LlmDelta::Done {
                reason: "tool_calls".into(),
            },
        ];
        let mut reply = LlmReply::default();
        for d in &deltas {
            reply.apply(d);
        }
        assert_eq!(reply.text, "One moment.");
        assert_eq!(reply.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            reply.tool_calls,
            [
                LlmToolCall {
                    id: "call_a".into(),
                    name: "set_outcome".into(),
                    arguments: "{\"disposition\":\"booked\"}".into(),
                },
                LlmToolCall {
                    id: "call_b".into(),
                    name: "end_call".into(),
                    arguments: "{}".into(),
                },
            ]
        );
    }

    #[test]
    fn hostile_index_is_bounded() {
        let mut reply = LlmReply::default();
        reply.apply(&frag(usize::MAX, Some("x"), Some("end_call"), "{}"));
        assert_eq!(reply.tool_calls.len(), MAX_TOOL_CALLS);
    }
}
