//! One call's run through a [`Flow`]: a sans-IO state machine from caller input to actions.
//!
//! The driver calls [`FlowSession::start`] when the call is answered, then one `on_*` method
//! per caller turn (recognized text, a DTMF key, or silence), and carries out the returned
//! actions in order. Within one response, side-effect tools come first (so a do-not-call is
//! recorded even if the caller hangs up during the confirmation), then the speech, then
//! either `Listen` or the end (`Tool(Transfer)` or `Hangup`, both after the speech has played).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::matcher::{Recognition, recognize};
use super::template::{Template, Values};
use super::{Flow, Transition};
use crate::agent::tools::ToolCall;

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Speak this text.
    Say(String),
    /// Carry out this tool call.
    Tool(ToolCall),
    /// Hang up once the queued speech has played.
    Hangup,
    /// Listen for the caller's reply; a constrained recognizer should expect these phrases.
    Listen {
        /// Normalised phrases (and slot words) the current state understands.
        expected_phrases: Vec<String>,
    },
}

/// The state of one call in a flow.
#[derive(Debug, Clone)]
pub struct FlowSession {
    /// The flow (shared by all calls).
    flow: Arc<Flow>,
    /// Lead fields for `{lead.*}` placeholders.
    lead: BTreeMap<String, String>,
    /// The current state.
    state: String,
    /// Slots captured so far.
    slots: BTreeMap<String, String>,
    /// Reprompts spent in the current state.
    reprompts: u32,
    /// The call has ended (hang-up or transfer): further input is ignored.
    finished: bool,
    /// What the last reply was recognized as (for logs and the call record).
    last: Option<Recognition>,
}

impl FlowSession {
    /// A session of `flow` for a lead with these fields (`first_name`...).
    pub fn new(flow: Arc<Flow>, lead: BTreeMap<String, String>) -> Self {
        let state = flow.start.clone();
        Self {
            flow,
            lead,
            state,
            slots: BTreeMap::new(),
            reprompts: 0,
            finished: false,
            last: None,
        }
    }

    /// The greeting: the start state's prompt, then `Listen`.
    pub fn start(&mut self) -> Vec<Action> {
        if self.finished {
            return Vec::new();
        }
        let start = self.flow.start.clone();
        let mut said = Vec::new();
        self.enter(&start, &mut said);
        self.respond(Vec::new(), said, None)
    }

    /// The transfer the flow asked for failed before the target answered: the call goes on
    /// with the flow's `transfer_failed` transition (by default an apology, then the state's
    /// question again).
    pub fn on_transfer_failed(&mut self) -> Vec<Action> {
        self.finished = false;
        let flow = Arc::clone(&self.flow);
        self.take(&flow.settings.transfer_failed)
    }

    /// The caller said `text` (recognizer confidence 0.0 to 1.0).
    pub fn on_user_text(&mut self, text: &str, confidence: f32) -> Vec<Action> {
        if self.finished {
            return Vec::new();
        }
        let recognition = recognize(&self.flow, &self.state, text, confidence);
        self.last = Some(recognition.clone());
        match recognition {
            Recognition::Intent { intent, slots, .. } => {
                self.slots.extend(slots);
                self.take_intent(&intent)
            }
            Recognition::Unsure(_) => self.reprompt(),
        }
    }

    /// The caller pressed a key.
    pub fn on_dtmf(&mut self, digit: char) -> Vec<Action> {
        if self.finished {
            return Vec::new();
        }
        let digit = digit.to_ascii_uppercase();
        let intent = self
            .flow
            .states
            .get(&self.state)
            .and_then(|s| s.handlers.dtmf.get(&digit))
            .or_else(|| self.flow.global.dtmf.get(&digit))
            .cloned();
        match intent {
            Some(intent) => {
                self.last = Some(Recognition::Intent {
                    intent: intent.clone(),
                    confidence: 1.0,
                    slots: BTreeMap::new(),
                });
                self.take_intent(&intent)
            }
            None => self.reprompt(),
        }
    }

    /// The caller said nothing before the no-input timeout.
    pub fn on_no_input(&mut self) -> Vec<Action> {
        if self.finished {
            return Vec::new();
        }
        self.last = None;
        self.reprompt()
    }

    /// How `text` would be recognized in the current state, without acting on it.
    pub fn recognize(&self, text: &str, confidence: f32) -> Recognition {
        recognize(&self.flow, &self.state, text, confidence)
    }

    /// The current state's name.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// Slots captured so far.
    pub fn slots(&self) -> &BTreeMap<String, String> {
        &self.slots
    }

    /// Whether the call has ended (no more input is taken).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// What the last reply or key was recognized as.
    pub fn last_recognition(&self) -> Option<&Recognition> {
        self.last.as_ref()
    }

    /// The phrases the current state expects (what `Listen` carries).
    pub fn expected_phrases(&self) -> Vec<String> {
        let mut out = Vec::new();
        for name in self.flow.allowed_intents(&self.state) {
            let Some(intent) = self.flow.intents.get(name) else {
                continue;
            };
            out.extend(intent.phrases.iter().map(|p| p.joined()));
            for slot in &intent.slots {
                if let Some(kind) = self.flow.slots.get(slot) {
                    out.extend(kind.vocabulary());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn take_intent(&mut self, intent: &str) -> Vec<Action> {
        let flow = Arc::clone(&self.flow);
        match flow.transition(&self.state, intent) {
            Some(t) => self.take(t),
            // The matcher only offers handled intents; be safe anyway.
            None => self.reprompt(),
        }
    }

    fn take(&mut self, t: &Transition) -> Vec<Action> {
        let mut said = Vec::new();
        if let Some(say) = &t.say {
            said.push(self.render(say));
        }
        let mut tools = Vec::new();
        let mut end = None;
        for tool in &t.tools {
            let fields: BTreeMap<String, String> = tool
                .args
                .iter()
                .map(|(k, v)| (k.clone(), self.render(v)))
                .collect();
            match ToolCall::from_fields(&tool.name, &fields) {
                Ok(ToolCall::EndCall) => end = Some(Action::Hangup),
                Ok(call @ ToolCall::Transfer { .. }) => end = Some(Action::Tool(call)),
                Ok(call) => tools.push(call),
                // Only templated arguments can fail here (literal ones were checked at load).
                Err(e) => {
                    tracing::warn!(flow = %self.flow.name, state = %self.state, "flow tool call skipped: {e}")
                }
            }
        }
        if end.is_none() {
            match &t.goto {
                Some(next) => self.enter(next, &mut said),
                None => said.push(self.reask()),
            }
        }
        self.respond(tools, said, end)
    }

    fn reprompt(&mut self) -> Vec<Action> {
        self.reprompts += 1;
        let limit = self
            .flow
            .states
            .get(&self.state)
            .and_then(|s| s.max_reprompts)
            .unwrap_or(self.flow.settings.max_reprompts);
        if self.reprompts > limit {
            let flow = Arc::clone(&self.flow);
            return self.take(&flow.settings.give_up);
        }
        let flow = Arc::clone(&self.flow);
        let text = flow
            .states
            .get(&self.state)
            .and_then(|s| s.reprompt.as_ref())
            .unwrap_or(&flow.settings.reprompt);
        let said = vec![self.render(text), self.reask()];
        self.respond(Vec::new(), said, None)
    }

    fn enter(&mut self, state: &str, said: &mut Vec<String>) {
        self.state = state.to_owned();
        self.reprompts = 0;
        let flow = Arc::clone(&self.flow);
        if let Some(s) = flow.states.get(state) {
            said.push(self.render(&s.say));
        }
    }

    fn reask(&self) -> String {
        match self.flow.states.get(&self.state) {
            Some(s) => self.render(s.reask.as_ref().unwrap_or(&s.say)),
            None => String::new(),
        }
    }

    fn respond(
        &mut self,
        tools: Vec<ToolCall>,
        said: Vec<String>,
        end: Option<Action>,
    ) -> Vec<Action> {
        let mut actions: Vec<Action> = tools.into_iter().map(Action::Tool).collect();
        let text = said
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() {
            actions.push(Action::Say(text));
        }
        match end {
            Some(end) => {
                self.finished = true;
                actions.push(end);
            }
            None => actions.push(Action::Listen {
                expected_phrases: self.expected_phrases(),
            }),
        }
        actions
    }

    fn render(&self, t: &Template) -> String {
        t.render(&Values {
            vars: &self.flow.vars,
            slots: &self.slots,
            lead: &self.lead,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESK: &str = r#"
[flow]
name = "desk"
start = "greeting"

[intents.human]
phrases = ["a person"]

[states.greeting]
say = "Press 1 for a person."
dtmf = { "1" = "human" }

[states.greeting.on.human]
say = "Connecting you."
tools = [{ name = "transfer", target = "sip:desk@example.com" }]
"#;

    fn session(src: &str) -> FlowSession {
        let flow = Arc::new(Flow::parse(src, "desk.toml").unwrap());
        FlowSession::new(flow, BTreeMap::new())
    }

    fn said(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Say(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_failed_transfer_apologises_and_asks_again_by_default() {
        let mut s = session(DESK);
        s.start();
        let a = s.on_dtmf('1');
        assert!(matches!(
            a.last(),
            Some(Action::Tool(ToolCall::Transfer { .. }))
        ));
        assert!(s.is_finished());
        let a = s.on_transfer_failed();
        assert!(!s.is_finished());
        let expected = format!(
            "{} Press 1 for a person.",
            crate::agent::flow::load::DEFAULT_TRANSFER_FAILED
        );
        assert_eq!(said(&a), [expected.as_str()]);
        assert!(matches!(a.last(), Some(Action::Listen { .. })), "{a:?}");
        // The caller can ask again.
        let a = s.on_dtmf('1');
        assert!(matches!(
            a.last(),
            Some(Action::Tool(ToolCall::Transfer { .. }))
        ));
    }

    #[test]
    fn the_flows_transfer_failed_transition_is_taken() {
        let src = DESK.replace(
            "start = \"greeting\"",
            "start = \"greeting\"\ntransfer_failed = { say = \"Nobody is free. Goodbye.\", tools = [{ name = \"end_call\" }] }",
        );
        let mut s = session(&src);
        s.start();
        s.on_dtmf('1');
        let a = s.on_transfer_failed();
        assert_eq!(said(&a), ["Nobody is free. Goodbye."]);
        assert!(matches!(a.last(), Some(Action::Hangup)), "{a:?}");
    }
}
