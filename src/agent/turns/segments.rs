//! Which caller utterance a streaming recognizer's finals belong to, sans-IO.
//!
//! With a streaming recognizer every stretch of VAD speech is sent as it comes, so the
//! recognizer also hears speech that never becomes an utterance (a cough, speech shorter than
//! `min_speech_ms`, a backchannel's resume): each such *segment* is still closed (the driver
//! calls `end_utterance`), as *discarded*, and whatever final it yields is dropped, never a
//! user turn. Finals are attributed in order to the oldest segment not yet complete:
//! - a final while that segment is open (the provider's own endpoint, e.g. Deepgram's
//!   `speech_final`, came before ours) is kept for it;
//! - once it is closed, the next final completes it; if a final was already kept and no
//!   partial came after it, nothing more is owed (Deepgram answers the `Finalize` of an
//!   already-flushed utterance with no second final) and it completes at its close;
//! - a closed segment owed a final that never comes completes after a wait
//!   ([`StreamedSegments::expire`]) with what it has.

use std::collections::VecDeque;

/// One stretch of streamed VAD speech.
#[derive(Debug, Clone)]
struct Segment {
    /// `None` while open; then whether it is an utterance (a turn) or discarded.
    keep: Option<bool>,
    /// Its finals' texts, joined.
    text: String,
    /// Whether any final came for it.
    got_final: bool,
    /// A partial came after its last final: more words are on their way.
    partial_since_final: bool,
    /// When it was closed (ms).
    closed_ms: u64,
}

impl Segment {
    fn owes_final(&self) -> bool {
        !self.got_final || self.partial_since_final
    }

    fn add(&mut self, text: &str) {
        let text = text.trim();
        if !text.is_empty() {
            if !self.text.is_empty() {
                self.text.push(' ');
            }
            self.text.push_str(text);
        }
        self.got_final = true;
        self.partial_since_final = false;
    }
}

/// The streamed segments of one call whose finals are not all in.
#[derive(Debug, Clone, Default)]
pub struct StreamedSegments {
    queue: VecDeque<Segment>,
}

impl StreamedSegments {
    /// Whether a segment is open (speech being streamed).
    pub fn is_open(&self) -> bool {
        self.queue.back().is_some_and(|s| s.keep.is_none())
    }

    /// Whether an utterance (a kept segment) is closed and waits for its final.
    pub fn awaiting(&self) -> bool {
        self.queue.iter().any(|s| s.keep == Some(true))
    }

    /// Speech started: a new segment is streamed.
    pub fn open(&mut self) {
        if !self.is_open() {
            self.queue.push_back(Segment {
                keep: None,
                text: String::new(),
                got_final: false,
                partial_since_final: false,
                closed_ms: 0,
            });
        }
    }

    /// The open segment ended at `now_ms`, as an utterance (`keep`) or discarded; returns
    /// the texts of utterances now complete, in order.
    pub fn close(&mut self, keep: bool, now_ms: u64) -> Vec<String> {
        if let Some(s) = self.queue.back_mut().filter(|s| s.keep.is_none()) {
            s.keep = Some(keep);
            s.closed_ms = now_ms;
        }
        self.complete_ready()
    }

    /// A partial hypothesis; returns the open utterance's text so far (its finals plus the
    /// partial) when it belongs to the segment being spoken.
    pub fn partial(&mut self, text: &str) -> Option<String> {
        let front = self.queue.front_mut()?;
        front.partial_since_final = true;
        if front.keep.is_some() {
            return None;
        }
        Some(if front.text.is_empty() {
            text.trim().to_owned()
        } else {
            format!("{} {}", front.text, text.trim())
        })
    }

    /// A final; returns the texts of utterances now complete (a discarded segment's final
    /// is dropped; a final with no segment at all is dropped).
    pub fn final_text(&mut self, text: &str) -> Vec<String> {
        let Some(front) = self.queue.front_mut() else {
            return Vec::new();
        };
        front.add(text);
        if front.keep.is_none() {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(s) = self.queue.pop_front()
            && s.keep == Some(true)
        {
            out.push(s.text);
        }
        out.extend(self.complete_ready());
        out
    }

    /// Completes closed segments owed a final for `wait_ms` or more at `now_ms` with what
    /// they have (a final that never came).
    pub fn expire(&mut self, now_ms: u64, wait_ms: u64) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(front) = self.queue.front_mut() {
            if front.keep.is_none() || now_ms.saturating_sub(front.closed_ms) < wait_ms {
                break;
            }
            front.partial_since_final = false;
            front.got_final = true;
            out.extend(self.complete_ready());
        }
        out
    }

    /// Forgets every segment (the recognizer session ended).
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    fn complete_ready(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while self
            .queue
            .front()
            .is_some_and(|s| s.keep.is_some() && !s.owes_final())
        {
            if let Some(s) = self.queue.pop_front()
                && s.keep == Some(true)
            {
                out.push(s.text);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_after_the_endpoint_completes_the_utterance() {
        let mut s = StreamedSegments::default();
        s.open();
        assert_eq!(s.partial("yes i"), Some("yes i".into()));
        assert!(s.close(true, 1000).is_empty());
        assert!(s.awaiting());
        assert_eq!(s.final_text("Yes, I am."), ["Yes, I am."]);
        assert!(!s.awaiting());
    }

    #[test]
    fn a_provider_endpoint_before_ours_completes_at_our_close() {
        let mut s = StreamedSegments::default();
        s.open();
        s.partial("yes");
        assert!(s.final_text("Yes.").is_empty());
        assert_eq!(s.close(true, 1000), ["Yes."]);
        // The Finalize answer owes nothing: a later final belongs to nobody.
        assert!(s.final_text("").is_empty());
    }

    #[test]
    fn words_after_an_early_provider_final_wait_for_the_next_final() {
        let mut s = StreamedSegments::default();
        s.open();
        s.final_text("Yes, I am");
        assert_eq!(s.partial("interested"), Some("Yes, I am interested".into()));
        assert!(s.close(true, 1000).is_empty());
        assert_eq!(s.final_text("interested."), ["Yes, I am interested."]);
    }

    #[test]
    fn finals_of_discarded_speech_never_become_turns() {
        let mut s = StreamedSegments::default();
        // A cough: closed as discarded; its final (even with text) is dropped.
        s.open();
        assert!(s.close(false, 100).is_empty());
        assert!(!s.awaiting());
        s.open();
        s.partial("book me");
        assert!(s.final_text("Hm.").is_empty(), "the cough's final");
        assert_eq!(s.partial("book me"), Some("book me".into()));
        assert!(s.close(true, 900).is_empty());
        assert_eq!(s.final_text("Book me."), ["Book me."]);
        // A discarded segment whose provider final came while open completes silently.
        s.open();
        s.final_text("uh");
        assert!(s.close(false, 2000).is_empty());
        assert!(!s.awaiting());
        assert!(s.final_text("late").is_empty());
    }

    #[test]
    fn a_final_that_never_comes_expires_with_what_was_heard() {
        let mut s = StreamedSegments::default();
        s.open();
        s.final_text("Yes");
        s.partial("I am");
        assert!(s.close(true, 1000).is_empty());
        assert!(s.expire(2999, 2000).is_empty());
        assert_eq!(s.expire(3000, 2000), ["Yes"]);
        assert!(!s.awaiting());
    }
}
