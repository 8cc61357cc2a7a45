//! Early LLM start, sans-IO: fed a streaming recognizer's partials (with times), the final
//! and the speculative completion's deltas, it says when to start the LLM on a partial that
//! has stayed the same for `early_llm_ms`, when to cancel it (the partial changed, the final
//! differs, the speech was dropped) and when to adopt it (the final says the same thing).
//! The deltas of a speculation are buffered here, never spoken, until it is adopted.

use crate::agent::stages::LlmDelta;

/// What the driver must do about the speculative completion.
#[derive(Debug, Clone, PartialEq)]
pub enum EarlyAction {
    /// Start a completion with this text as the caller's message (deltas go to [`EarlyStart::delta`]).
    Start(String),
    /// Abandon the running speculative completion.
    Cancel,
    /// The final matches: the running completion becomes the reply.
    Adopt(Adopted),
}

/// A speculation whose text the final confirmed.
#[derive(Debug, Clone, PartialEq)]
pub struct Adopted {
    /// The text the completion was started with.
    pub text: String,
    /// Its deltas so far, in order.
    pub deltas: Vec<LlmDelta>,
    /// Whether its stream already ended.
    pub ended: bool,
}

/// The partial currently being timed.
#[derive(Debug, Clone)]
struct Candidate {
    text: String,
    normalized: String,
    since_ms: u64,
    /// A speculation was already started on this text (one try per stable text).
    tried: bool,
}

/// A speculative completion in flight.
#[derive(Debug, Clone)]
struct Speculation {
    text: String,
    normalized: String,
    deltas: Vec<LlmDelta>,
    ended: bool,
}

/// The early-start decision for one call.
#[derive(Debug, Clone)]
pub struct EarlyStart {
    /// How long a partial must stay the same (ms); 0: off.
    after_ms: u64,
    candidate: Option<Candidate>,
    running: Option<Speculation>,
}

impl EarlyStart {
    /// A decider that starts after `after_ms` of a stable partial (0: never).
    pub fn new(after_ms: u64) -> Self {
        Self {
            after_ms,
            candidate: None,
            running: None,
        }
    }

    /// Whether early starts are on.
    pub fn enabled(&self) -> bool {
        self.after_ms > 0
    }

    /// Whether a speculative completion is in flight.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// A partial hypothesis of the open utterance at `now_ms`; a different text cancels the
    /// running speculation.
    pub fn partial(&mut self, text: &str, now_ms: u64) -> Option<EarlyAction> {
        if !self.enabled() {
            return None;
        }
        let normalized = normalize(text);
        if normalized.is_empty() {
            return None;
        }
        if self
            .candidate
            .as_ref()
            .is_some_and(|c| c.normalized == normalized)
        {
            return None;
        }
        self.candidate = Some(Candidate {
            text: text.trim().to_owned(),
            normalized: normalized.clone(),
            since_ms: now_ms,
            tried: false,
        });
        match &self.running {
            Some(s) if s.normalized != normalized => {
                self.running = None;
                Some(EarlyAction::Cancel)
            }
            _ => None,
        }
    }

    /// Called every tick: starts a speculation when the partial has been stable long enough
    /// and `listening` (the caller is in the utterance or its endpoint silence is running).
    pub fn poll_start(&mut self, now_ms: u64, listening: bool) -> Option<EarlyAction> {
        if !self.enabled() || !listening || self.running.is_some() {
            return None;
        }
        let c = self.candidate.as_mut()?;
        if c.tried || now_ms.saturating_sub(c.since_ms) < self.after_ms {
            return None;
        }
        c.tried = true;
        self.running = Some(Speculation {
            text: c.text.clone(),
            normalized: c.normalized.clone(),
            deltas: Vec::new(),
            ended: false,
        });
        Some(EarlyAction::Start(c.text.clone()))
    }

    /// A delta of the speculative completion (buffered, never spoken).
    pub fn delta(&mut self, delta: LlmDelta) {
        if let Some(s) = self.running.as_mut() {
            s.deltas.push(delta);
        }
    }

    /// The speculative completion's stream ended.
    pub fn stream_ended(&mut self) {
        if let Some(s) = self.running.as_mut() {
            s.ended = true;
        }
    }

    /// The recognizer's final for the utterance: adopt the speculation when it says the same
    /// thing (normalized), else cancel it. `None`: nothing was running.
    pub fn final_text(&mut self, text: &str) -> Option<EarlyAction> {
        self.candidate = None;
        let s = self.running.take()?;
        if s.normalized == normalize(text) {
            Some(EarlyAction::Adopt(Adopted {
                text: s.text,
                deltas: s.deltas,
                ended: s.ended,
            }))
        } else {
            Some(EarlyAction::Cancel)
        }
    }

    /// The utterance was dropped (too short, a backchannel, the stream failed): forget it,
    /// cancelling the running speculation if any.
    pub fn abandon(&mut self) -> Option<EarlyAction> {
        self.candidate = None;
        self.running.take().map(|_| EarlyAction::Cancel)
    }
}

/// Text compared between a partial and the final: lowercase words, punctuation dropped,
/// single spaces ("Yes, I'm in." → "yes im in").
pub fn normalize(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> LlmDelta {
        LlmDelta::Text(t.into())
    }

    #[test]
    fn a_partial_stable_for_the_delay_starts_once() {
        let mut e = EarlyStart::new(200);
        assert_eq!(e.partial("yes I am", 1000), None);
        assert_eq!(e.poll_start(1100, true), None);
        // The same words again (other punctuation) do not restart the clock.
        assert_eq!(e.partial("Yes, I am.", 1150), None);
        assert_eq!(e.poll_start(1199, true), None);
        assert_eq!(
            e.poll_start(1200, true),
            Some(EarlyAction::Start("yes I am".into()))
        );
        assert!(e.is_running());
        assert_eq!(e.poll_start(1400, true), None, "one start per text");
    }

    #[test]
    fn no_start_once_the_utterance_is_no_longer_being_listened_to() {
        let mut e = EarlyStart::new(100);
        e.partial("yes", 0);
        assert_eq!(e.poll_start(500, false), None);
        assert!(!e.is_running());
    }

    #[test]
    fn a_changed_partial_cancels_and_the_new_text_is_timed_afresh() {
        let mut e = EarlyStart::new(100);
        e.partial("yes I am", 0);
        assert!(matches!(
            e.poll_start(100, true),
            Some(EarlyAction::Start(_))
        ));
        e.delta(text("Great"));
        assert_eq!(
            e.partial("yes I am interested", 150),
            Some(EarlyAction::Cancel)
        );
        assert!(!e.is_running());
        assert_eq!(e.poll_start(200, true), None);
        assert_eq!(
            e.poll_start(250, true),
            Some(EarlyAction::Start("yes I am interested".into()))
        );
        // The cancelled speculation's deltas are gone.
        let Some(EarlyAction::Adopt(a)) = e.final_text("Yes, I am interested.") else {
            panic!("expected adoption");
        };
        assert!(a.deltas.is_empty(), "{:?}", a.deltas);
    }

    #[test]
    fn a_matching_final_adopts_with_the_buffered_deltas() {
        let mut e = EarlyStart::new(100);
        e.partial("yes i am interested", 0);
        e.poll_start(100, true);
        e.delta(text("Great, "));
        e.delta(text("booked."));
        e.stream_ended();
        assert_eq!(
            e.final_text("Yes, I'm... interested!")
                .map(|a| matches!(a, EarlyAction::Cancel)),
            Some(true),
            "\"I'm\" is not \"i am\""
        );
        e.partial("yes i am interested", 200);
        e.poll_start(300, true);
        e.delta(text("Great."));
        e.stream_ended();
        assert_eq!(
            e.final_text("Yes, I am  interested."),
            Some(EarlyAction::Adopt(Adopted {
                text: "yes i am interested".into(),
                deltas: vec![text("Great.")],
                ended: true,
            }))
        );
        assert!(!e.is_running());
    }

    #[test]
    fn a_differing_final_cancels_and_the_next_utterance_starts_clean() {
        let mut e = EarlyStart::new(100);
        e.partial("yes i am", 0);
        e.poll_start(100, true);
        assert_eq!(e.final_text("No, I am not."), Some(EarlyAction::Cancel));
        assert_eq!(e.final_text("No, I am not."), None, "nothing running");
        // The next utterance times its own partials.
        assert_eq!(e.poll_start(1000, true), None);
        e.partial("yes i am", 1000);
        assert_eq!(e.poll_start(1050, true), None);
        assert!(matches!(
            e.poll_start(1100, true),
            Some(EarlyAction::Start(_))
        ));
        assert_eq!(e.abandon(), Some(EarlyAction::Cancel));
        assert_eq!(e.abandon(), None);
    }

    #[test]
    fn off_when_zero() {
        let mut e = EarlyStart::new(0);
        assert!(!e.enabled());
        assert_eq!(e.partial("yes", 0), None);
        assert_eq!(e.poll_start(10_000, true), None);
        assert_eq!(e.final_text("yes"), None);
    }

    #[test]
    fn normalization_drops_case_punctuation_and_extra_spaces() {
        assert_eq!(
            normalize("  Yes,  I AM interested. "),
            "yes i am interested"
        );
        assert_eq!(normalize("Friday?!"), "friday");
        assert_eq!(normalize("..."), "");
    }
}
