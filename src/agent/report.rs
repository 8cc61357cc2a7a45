//! What an agent learned on a call, collected sans-IO by either agent mode and handed to the
//! call record when the app stops: the transcript (for the agent only what the caller heard),
//! the tool calls it took, the disposition and notes from `set_outcome`, an opt-out from
//! `mark_do_not_call`, a callback request and one latency record per turn.
//!
//! Times are milliseconds since the leg started (the answer, or the 183 with early media).

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;

use super::latency::TurnLatency;
use super::stages::{ChatMessage, Role};
use super::tools::ToolCall;
use crate::media::playout::{ClearReport, Mark};

/// Who said a transcript turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// The agent (text is what the caller heard).
    Agent,
    /// The caller (text is the recognizer's final).
    Caller,
}

impl Speaker {
    /// `agent` or `caller`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Caller => "caller",
        }
    }
}

/// One transcript turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportTurn {
    /// Who spoke.
    pub speaker: Speaker,
    /// What was said (heard, for the agent).
    pub text: String,
    /// Start, ms since the leg started.
    pub start_ms: u64,
    /// End, ms since the leg started.
    pub end_ms: u64,
    /// The agent was cut off by the caller (barge-in).
    pub interrupted: bool,
}

/// A tool call the agent carried out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolRecord {
    /// The tool's function name.
    pub name: String,
    /// Its arguments, as the JSON object an LLM sends.
    pub arguments: Value,
    /// What the agent was told it did.
    pub result: String,
    /// When it ran, ms since the leg started.
    pub at_ms: u64,
}

/// A callback the lead asked for (`schedule_callback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackRequest {
    /// The time as the lead said it.
    pub when: String,
    /// A note for whoever calls back.
    pub note: Option<String>,
}

/// One turn's latency, ms from the end of caller speech to each step (`None`: did not run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LatencyRecord {
    /// The turn's number in the call, from 1.
    pub turn: u32,
    /// The endpoint decision (the VAD's hangover).
    pub endpoint_ms: Option<u64>,
    /// The recognizer's final.
    pub stt_final_ms: Option<u64>,
    /// The model's first token (LLM mode only).
    pub llm_first_token_ms: Option<u64>,
    /// The voice's first audio.
    pub tts_first_audio_ms: Option<u64>,
    /// The first reply frame on the wire: the turn's total.
    pub first_frame_out_ms: Option<u64>,
    /// The reply's completion was started early on a stable partial (`[turns] early_llm_ms`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub llm_early: bool,
}

/// Everything the agent reports about one call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentReport {
    /// `scripted` or `llm`.
    pub mode: &'static str,
    /// Transcript turns in order of their start.
    pub turns: Vec<ReportTurn>,
    /// Tool calls carried out, in order.
    pub tool_calls: Vec<ToolRecord>,
    /// The disposition from the last `set_outcome`.
    pub disposition: Option<String>,
    /// The notes from the last `set_outcome` that had some.
    pub notes: Option<String>,
    /// The caller asked not to be called again (`mark_do_not_call`).
    pub opt_out: bool,
    /// The last callback the caller asked for.
    pub callback: Option<CallbackRequest>,
    /// One record per timed turn.
    pub latency: Vec<LatencyRecord>,
}

impl AgentReport {
    /// An empty report for an agent in `mode`.
    pub fn new(mode: &'static str) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// Records a tool call carried out at `at_ms`, and what it means for the call.
    pub fn tool(&mut self, call: &ToolCall, at_ms: u64) {
        match call {
            ToolCall::SetOutcome { disposition, notes } => {
                self.disposition = Some(disposition.clone());
                if notes.is_some() {
                    self.notes = notes.clone();
                }
            }
            ToolCall::MarkDoNotCall => self.opt_out = true,
            ToolCall::ScheduleCallback { when, note } => {
                self.callback = Some(CallbackRequest {
                    when: when.clone(),
                    note: note.clone(),
                });
            }
            _ => {}
        }
        self.tool_calls.push(ToolRecord {
            name: call.name().to_owned(),
            arguments: call.arguments(),
            result: call.result_text(),
            at_ms,
        });
    }

    /// Records one turn's latency.
    pub fn latency(&mut self, turn: u32, l: &TurnLatency) {
        let [
            endpoint_ms,
            stt_final_ms,
            llm_first_token_ms,
            tts_first_audio_ms,
            out,
        ] = l.steps_ms();
        self.latency.push(LatencyRecord {
            turn,
            endpoint_ms,
            stt_final_ms,
            llm_first_token_ms,
            tts_first_audio_ms,
            first_frame_out_ms: out,
            llm_early: l.llm_early,
        });
    }

    /// Adds a transcript turn (empty text is skipped).
    pub fn say(&mut self, speaker: Speaker, text: &str, span: (u64, u64), interrupted: bool) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        self.turns.push(ReportTurn {
            speaker,
            text: text.to_owned(),
            start_ms: span.0,
            end_ms: span.1.max(span.0),
            interrupted,
        });
    }

    /// Puts the transcript in order of start (stable: equal starts keep their order).
    pub fn sort_turns(&mut self) {
        self.turns.sort_by_key(|t| t.start_ms);
    }
}

/// Pairs the caller's utterances (timed by the VAD) with the recognizer's finals, which
/// arrive later and in the same order.
#[derive(Debug, Default)]
pub struct CallerTurns {
    /// Utterances sent to the recognizer and not yet answered.
    pending: VecDeque<(u64, u64)>,
}

impl CallerTurns {
    /// An utterance from `start_ms` to `end_ms` went to the recognizer.
    pub fn sent(&mut self, start_ms: u64, end_ms: u64) {
        self.pending.push_back((start_ms, end_ms));
    }

    /// The recognizer's final for the oldest pending utterance (`end_ms` when untimed).
    pub fn recognized(&mut self, report: &mut AgentReport, text: &str, now_ms: u64) {
        let span = self.pending.pop_front().unwrap_or((now_ms, now_ms));
        report.say(Speaker::Caller, text, span, false);
    }

    /// The recognizer failed on the oldest pending utterance.
    pub fn lost(&mut self) {
        self.pending.pop_front();
    }
}

/// The scripted agent's lines as they are queued and played: a line is in the transcript
/// once its mark has played, or cut to the share heard when a barge-in clears it.
#[derive(Debug, Default)]
pub struct HeardLines {
    /// Queued lines: mark, text, when their first sample leaves.
    queued: VecDeque<(Mark, String, u64)>,
}

impl HeardLines {
    /// A line with `mark` was queued; its first sample leaves at `start_ms`.
    pub fn queued(&mut self, mark: Mark, text: &str, start_ms: u64) {
        self.queued.push_back((mark, text.to_owned(), start_ms));
    }

    /// `mark` was played at `now_ms`: its line (and any before it) was heard in full.
    pub fn played(&mut self, report: &mut AgentReport, mark: Mark, now_ms: u64) {
        while let Some((m, text, start)) = self.queued.pop_front() {
            if m.0 > mark.0 {
                self.queued.push_front((m, text, start));
                return;
            }
            report.say(Speaker::Agent, &text, (start, now_ms), false);
        }
    }

    /// A barge-in cleared the queue at `now_ms`: the line cut part-way is kept as far as it
    /// was heard (by share of its audio, at a word boundary); unplayed lines are dropped.
    pub fn cleared(&mut self, report: &mut AgentReport, clear: &ClearReport, now_ms: u64) {
        if let Some(m) = clear.last_played {
            self.played(report, m, now_ms);
        }
        if let Some(cut) = clear.interrupted.as_ref()
            && let Some(mark) = cut.mark
            && let Some((_, text, start)) = self.queued.iter().find(|l| l.0 == mark)
        {
            let heard = cut_at_words(text, cut.heard_fraction());
            report.say(Speaker::Agent, &heard, (*start, now_ms), true);
        }
        self.queued.clear();
    }
}

/// The LLM agent's replies as spans of queued audio, each tied to its conversation turn
/// (the number of caller messages before it); the text is taken from the engine's history at
/// the end, where barge-in has already cut every message to what the caller heard.
#[derive(Debug, Default)]
pub struct ReplySpans {
    /// Turn, start, end (last mark played), cut off by barge-in.
    spans: Vec<(usize, u64, u64, bool)>,
    /// Whether the last span is still being played.
    open: bool,
}

impl ReplySpans {
    /// Reply audio of conversation turn `turn` was queued; it starts at `start_ms`.
    pub fn queued(&mut self, turn: usize, start_ms: u64) {
        if self.open && self.spans.last().is_some_and(|s| s.0 == turn) {
            return;
        }
        self.spans.push((turn, start_ms, start_ms, false));
        self.open = true;
    }

    /// A mark of the open reply played at `now_ms`.
    pub fn played(&mut self, now_ms: u64) {
        if let Some(s) = self.spans.last_mut().filter(|_| self.open) {
            s.2 = now_ms.max(s.1);
        }
    }

    /// The caller talked over the open reply at `now_ms`.
    pub fn barge_in(&mut self, now_ms: u64) {
        if let Some(s) = self.spans.last_mut().filter(|_| self.open) {
            s.2 = now_ms.max(s.1);
            s.3 = true;
        }
        self.open = false;
    }

    /// Adds one agent turn per conversation turn that was played, with the assistant text
    /// `history` holds for it.
    pub fn finish(&self, report: &mut AgentReport, history: &[ChatMessage]) {
        let mut texts: Vec<String> = vec![String::new()];
        for m in history {
            match m.role {
                Role::User => texts.push(String::new()),
                Role::Assistant if !m.content.trim().is_empty() => {
                    if let Some(t) = texts.last_mut() {
                        if !t.is_empty() {
                            t.push(' ');
                        }
                        t.push_str(m.content.trim());
                    }
                }
                _ => {}
            }
        }
        let mut merged: Vec<(usize, u64, u64, bool)> = Vec::new();
        for &(turn, start, end, cut) in &self.spans {
            match merged.iter_mut().find(|m| m.0 == turn) {
                Some(m) => {
                    m.1 = m.1.min(start);
                    m.2 = m.2.max(end);
                    m.3 |= cut;
                }
                None => merged.push((turn, start, end, cut)),
            }
        }
        for (turn, start, end, cut) in merged {
            if let Some(text) = texts.get(turn) {
                report.say(Speaker::Agent, text, (start, end), cut);
            }
        }
    }
}

/// The first `fraction` of `text`, ending at a word boundary.
pub fn cut_at_words(text: &str, fraction: f64) -> String {
    let target = (text.len() as f64 * fraction.clamp(0.0, 1.0)) as usize;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        if i > target {
            break;
        }
        if c.is_whitespace() {
            end = i;
        }
    }
    if target >= text.len() {
        end = text.len();
    }
    text[..end].trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::playout::ChunkProgress;

    #[test]
    fn tools_set_disposition_opt_out_and_callback() {
        let mut r = AgentReport::new("llm");
        r.tool(
            &ToolCall::SetOutcome {
                disposition: "booked".into(),
                notes: Some("friday 3pm".into()),
            },
            100,
        );
        r.tool(&ToolCall::MarkDoNotCall, 200);
        r.tool(
            &ToolCall::ScheduleCallback {
                when: "tomorrow".into(),
                note: None,
            },
            300,
        );
        assert_eq!(r.disposition.as_deref(), Some("booked"));
        assert_eq!(r.notes.as_deref(), Some("friday 3pm"));
        assert!(r.opt_out);
        assert_eq!(r.callback.as_ref().unwrap().when, "tomorrow");
        let names: Vec<_> = r.tool_calls.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["set_outcome", "mark_do_not_call", "schedule_callback"]
        );
        assert_eq!(r.tool_calls[0].arguments["notes"], "friday 3pm");
        assert!(r.tool_calls[1].result.contains("do-not-call"));
    }

    #[test]
    fn lines_are_heard_when_played_and_cut_on_barge_in() {
        let mut r = AgentReport::new("scripted");
        let mut lines = HeardLines::default();
        lines.queued(Mark(1), "Hello there.", 0);
        lines.queued(Mark(2), "Would you like to book a visit today?", 1000);
        lines.queued(Mark(3), "Never heard.", 3000);
        lines.played(&mut r, Mark(1), 1000);
        let clear = ClearReport {
            cleared: vec![Mark(2), Mark(3)],
            interrupted: Some(ChunkProgress {
                mark: Some(Mark(2)),
                heard_samples: 8000,
                chunk_samples: 16000,
            }),
            last_played: Some(Mark(1)),
            samples_dropped: 16000,
        };
        lines.cleared(&mut r, &clear, 2000);
        assert_eq!(r.turns.len(), 2, "{:?}", r.turns);
        assert_eq!(r.turns[0].text, "Hello there.");
        assert_eq!((r.turns[0].start_ms, r.turns[0].end_ms), (0, 1000));
        assert!(!r.turns[0].interrupted);
        assert_eq!(r.turns[1].text, "Would you like to");
        assert!(r.turns[1].interrupted);
        // Nothing left to report after the clear.
        lines.played(&mut r, Mark(3), 4000);
        assert_eq!(r.turns.len(), 2);
    }

    #[test]
    fn caller_finals_take_their_utterance_times_in_order() {
        let mut r = AgentReport::new("scripted");
        let mut c = CallerTurns::default();
        c.sent(500, 1200);
        c.sent(3000, 3500);
        c.recognized(&mut r, "", 1400);
        c.recognized(&mut r, " stop calling me ", 3900);
        assert_eq!(r.turns.len(), 1);
        assert_eq!(r.turns[0].text, "stop calling me");
        assert_eq!((r.turns[0].start_ms, r.turns[0].end_ms), (3000, 3500));
        assert_eq!(r.turns[0].speaker.as_str(), "caller");
    }

    #[test]
    fn reply_spans_take_the_heard_text_of_their_turn() {
        let history = vec![
            ChatMessage::text(Role::System, "Be brief."),
            ChatMessage::text(Role::Assistant, "Hello there."),
            ChatMessage::text(Role::User, "book me"),
            ChatMessage::text(Role::Assistant, "Sure."),
            ChatMessage::text(Role::Tool, "booked"),
            ChatMessage::text(Role::Assistant, "Goodbye!"),
        ];
        let mut spans = ReplySpans::default();
        spans.queued(0, 0);
        spans.played(600);
        spans.barge_in(800);
        spans.played(900);
        spans.queued(1, 2000);
        spans.queued(1, 2100);
        spans.played(3000);
        let mut r = AgentReport::new("llm");
        spans.finish(&mut r, &history);
        assert_eq!(r.turns.len(), 2, "{:?}", r.turns);
        assert_eq!(r.turns[0].text, "Hello there.");
        assert_eq!((r.turns[0].start_ms, r.turns[0].end_ms), (0, 800));
        assert!(r.turns[0].interrupted);
        assert_eq!(r.turns[1].text, "Sure. Goodbye!");
        assert_eq!((r.turns[1].start_ms, r.turns[1].end_ms), (2000, 3000));
        assert!(!r.turns[1].interrupted);
    }

    #[test]
    fn cuts_end_on_word_boundaries() {
        assert_eq!(cut_at_words("one two three", 0.5), "one");
        assert_eq!(cut_at_words("one two three", 1.0), "one two three");
        assert_eq!(cut_at_words("one two three", 0.0), "");
        assert_eq!(cut_at_words("héllo wörld", 0.99), "héllo");
    }
}
