//! The scripted dialogue flow: states, prompts, intents by phrase lists, slots, transitions
//! and tool calls, loaded from a TOML file (format in `docs/agent.md`) and run by the sans-IO
//! [`FlowSession`].
//!
//! Loading validates everything (unknown states, intents, slots, tools, tool arguments and
//! template names) and fails with `file:line: reason`.

mod load;
mod matcher;
mod session;
mod slots;
mod template;

#[cfg(test)]
mod example_tests;

use std::collections::BTreeMap;

pub use matcher::{Recognition, Unsure, Words};
pub use session::{Action, FlowSession};
pub use slots::SlotKind;
pub use template::Template;

/// Default recognizer confidence below which a reply is not trusted.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.5;
/// Default recognizer confidence a sensitive intent (opt-out) needs.
pub const DEFAULT_SENSITIVE_MIN_CONFIDENCE: f32 = 0.75;
/// Default number of reprompts in one state before the flow gives up.
pub const DEFAULT_MAX_REPROMPTS: u32 = 2;

/// Why a flow file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or not a valid flow.
    #[error("{file}:{line}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line of the offending key or value.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A validated flow, shared by every call that runs it.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The flow's name (for logs and records).
    pub name: String,
    /// The state a call starts in.
    start: String,
    /// Thresholds and the fallback prompts.
    settings: Settings,
    /// Named texts usable in templates (`company`, `disclosure`).
    vars: BTreeMap<String, Template>,
    /// Intents by name.
    intents: BTreeMap<String, Intent>,
    /// Slot kinds by slot name.
    slots: BTreeMap<String, SlotKind>,
    /// Handlers that apply in every state unless the state handles the intent itself.
    global: Handlers,
    /// States by name.
    states: BTreeMap<String, State>,
}

/// Flow-wide thresholds and fallback prompts.
#[derive(Debug, Clone)]
struct Settings {
    /// Recognizer confidence below which a reply is not trusted.
    min_confidence: f32,
    /// Recognizer confidence a sensitive intent needs.
    sensitive_min_confidence: f32,
    /// Reprompts per state before giving up.
    max_reprompts: u32,
    /// Said before the question again on no input or an unsure reply.
    reprompt: Template,
    /// Taken when reprompts run out; always ends the call.
    give_up: Transition,
    /// Taken when a `transfer` fails before the target answers (busy, no answer).
    transfer_failed: Transition,
}

/// One intent: what a reply means.
#[derive(Debug, Clone)]
struct Intent {
    /// Normalised phrases, as word lists.
    phrases: Vec<Words>,
    /// Slots captured from a reply with this intent; an intent without phrases matches
    /// when all of them are found.
    slots: Vec<String>,
    /// Fires only on a confident, unambiguous, unnegated match (opt-out).
    sensitive: bool,
}

/// Reactions to intents and keys.
#[derive(Debug, Clone, Default)]
struct Handlers {
    /// Transition per intent.
    on: BTreeMap<String, Transition>,
    /// Intent per DTMF key.
    dtmf: BTreeMap<char, String>,
}

/// One state of the dialogue.
#[derive(Debug, Clone)]
struct State {
    /// Said on entering.
    say: Template,
    /// Said when staying in the state (after a side answer or a reprompt); default `say`.
    reask: Option<Template>,
    /// Overrides the flow's reprompt text.
    reprompt: Option<Template>,
    /// Overrides the flow's reprompt limit.
    max_reprompts: Option<u32>,
    /// This state's handlers.
    handlers: Handlers,
}

/// What happens on an intent.
#[derive(Debug, Clone, Default)]
struct Transition {
    /// Said first.
    say: Option<Template>,
    /// Tool calls, in order (`end_call` ends the call after the speech).
    tools: Vec<ToolTemplate>,
    /// The next state; none: stay and ask again.
    goto: Option<String>,
}

/// A tool call whose arguments are templates.
#[derive(Debug, Clone)]
struct ToolTemplate {
    /// The tool name (validated).
    name: String,
    /// Argument templates by name (validated).
    args: BTreeMap<String, Template>,
}

impl Flow {
    /// Reads and validates the flow file at `path`.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self, FlowError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|source| FlowError::Io {
            file: file.clone(),
            source,
        })?;
        Self::parse(&src, &file)
    }

    /// Parses and validates flow text `src`, naming `file` in errors.
    pub fn parse(src: &str, file: &str) -> Result<Self, FlowError> {
        load::parse(src, file)
    }

    /// The state a call starts in.
    pub fn start_state(&self) -> &str {
        &self.start
    }

    /// State names, sorted.
    pub fn state_names(&self) -> impl Iterator<Item = &str> {
        self.states.keys().map(String::as_str)
    }

    /// Intent names, sorted.
    pub fn intent_names(&self) -> impl Iterator<Item = &str> {
        self.intents.keys().map(String::as_str)
    }

    /// Whether intent `name` is sensitive (fires only on a confident match).
    pub fn is_sensitive(&self, intent: &str) -> bool {
        self.intents.get(intent).is_some_and(|i| i.sensitive)
    }

    /// The handler for `intent` in `state`: the state's own, else the global one.
    fn transition(&self, state: &str, intent: &str) -> Option<&Transition> {
        self.states
            .get(state)
            .and_then(|s| s.handlers.on.get(intent))
            .or_else(|| self.global.on.get(intent))
    }

    /// Intents answerable in `state` (its own and the global ones).
    fn allowed_intents(&self, state: &str) -> Vec<&str> {
        let own = self.states.get(state).map(|s| s.handlers.on.keys());
        let mut names: Vec<&str> = own
            .into_iter()
            .flatten()
            .chain(self.global.on.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}
