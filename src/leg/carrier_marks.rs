//! Our marks on a carrier's stream, matched to the carrier's echo (sans-IO, counted in ticks).
//!
//! A stream leg sends its audio at real time and a mark right after the mark's last frame;
//! the carrier plays the audio from its own buffer and echoes the mark (Twilio and Telnyx
//! `mark`, Plivo `playedStream`, Vonage `websocket:notify`) when it has played up to it. The
//! echo, not our send, is when the caller has heard the audio, so a mark is reported played
//! only then. Marks are echoed in order, so an echo also settles any earlier mark whose echo
//! went missing. A carrier that has never echoed within `ECHO_WAIT` is taken not to echo at
//! all: its marks are settled when sent (our send is at most a frame from its playout) until an
//! echo does come (a carrier with a deep buffer), and from then on they wait again. A carrier
//! that does echo but leaves one out gets it settled after `LOST_ECHO`. Our `clear`
//! settles every waiting mark: the audio before them was sent, so at most the carrier's short
//! buffer of it went unheard, and a carrier need not echo marks it dropped.

use crate::media::playout::Mark;
use std::collections::VecDeque;

/// Ticks (20 ms) to wait for a carrier's first echo before taking it not to echo (1 s).
pub const ECHO_WAIT: u64 = 50;
/// Ticks a mark may wait for its echo on a carrier that echoes (3 s).
pub const LOST_ECHO: u64 = 150;

/// What an echo from the carrier meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Echo {
    /// These marks are played (in order; the last one is the echoed mark). `lag_ticks` is the
    /// echoed mark's time from our send to its echo.
    Played { marks: Vec<Mark>, lag_ticks: u64 },
    /// A mark we had already settled (by a clear or a lost-echo timeout).
    Late,
    /// A name we never sent.
    Unknown,
}

/// Whether the carrier echoes marks, as far as we have seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Echoing {
    Unknown,
    Yes,
    No,
}

/// Marks sent to one carrier stream, waiting for its echo.
#[derive(Debug)]
pub struct CarrierMarks {
    /// (mark, tick sent), in send order.
    waiting: VecDeque<(Mark, u64)>,
    echoing: Echoing,
    /// The highest mark settled so far (echoes of earlier ones are late, not unknown).
    settled_up_to: Option<u64>,
    /// Marks settled by the lost-echo timeout.
    pub lost_echoes: u64,
}

impl Default for CarrierMarks {
    fn default() -> Self {
        Self::new()
    }
}

impl CarrierMarks {
    /// No marks sent yet; whether the carrier echoes is not known.
    pub fn new() -> Self {
        CarrierMarks {
            waiting: VecDeque::new(),
            echoing: Echoing::Unknown,
            settled_up_to: None,
            lost_echoes: 0,
        }
    }

    /// `mark` went to the carrier at `tick`; returns it at once when the carrier does not
    /// echo (it is played as far as we can know).
    pub fn sent(&mut self, mark: Mark, tick: u64) -> Option<Mark> {
        if self.echoing == Echoing::No {
            self.settle(mark);
            return Some(mark);
        }
        self.waiting.push_back((mark, tick));
        None
    }

    /// The carrier echoed the mark named `name` at `tick`.
    pub fn echoed(&mut self, name: &str, tick: u64) -> Echo {
        let Some(id) = name.strip_prefix('m').and_then(|n| n.parse::<u64>().ok()) else {
            return Echo::Unknown;
        };
        let Some(pos) = self.waiting.iter().position(|(m, _)| m.0 == id) else {
            return if self.settled_up_to.is_some_and(|s| id <= s) {
                // A slow echo still says the carrier echoes: later marks wait for theirs.
                self.echoing = Echoing::Yes;
                Echo::Late
            } else {
                Echo::Unknown
            };
        };
        self.echoing = Echoing::Yes;
        let sent_at = self.waiting[pos].1;
        Echo::Played {
            marks: self.settle_first(pos + 1),
            lag_ticks: tick.saturating_sub(sent_at),
        }
    }

    /// Marks settled by waiting too long at `tick`: all waiting ones when the carrier has
    /// not echoed within `ECHO_WAIT` (from then on it is taken not to echo), the overdue
    /// ones when it echoes but lost these.
    pub fn overdue(&mut self, tick: u64) -> Vec<Mark> {
        let Some(&(_, oldest)) = self.waiting.front() else {
            return Vec::new();
        };
        let age = tick.saturating_sub(oldest);
        match self.echoing {
            Echoing::Unknown if age >= ECHO_WAIT => {
                self.echoing = Echoing::No;
                self.settle_first(self.waiting.len())
            }
            Echoing::Yes if age >= LOST_ECHO => {
                let n = self
                    .waiting
                    .iter()
                    .take_while(|(_, t)| tick.saturating_sub(*t) >= LOST_ECHO)
                    .count();
                self.lost_echoes += n as u64;
                self.settle_first(n)
            }
            _ => Vec::new(),
        }
    }

    /// We cleared the carrier's buffer: every waiting mark is settled now.
    pub fn cleared(&mut self) -> Vec<Mark> {
        self.settle_first(self.waiting.len())
    }

    /// Marks waiting for their echo.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Takes the first `n` waiting marks as settled and returns them, in order.
    fn settle_first(&mut self, n: usize) -> Vec<Mark> {
        let marks: Vec<Mark> = self.waiting.drain(..n).map(|(m, _)| m).collect();
        if let Some(last) = marks.last() {
            self.settle(*last);
        }
        marks
    }

    fn settle(&mut self, m: Mark) {
        self.settled_up_to = Some(self.settled_up_to.map_or(m.0, |s| s.max(m.0)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_played_when_the_carrier_echoes_it_not_when_sent() {
        let mut c = CarrierMarks::new();
        assert_eq!(c.sent(Mark(1), 10), None);
        assert_eq!(c.overdue(20), vec![]);
        assert_eq!(
            c.echoed("m1", 17),
            Echo::Played {
                marks: vec![Mark(1)],
                lag_ticks: 7
            }
        );
        assert_eq!(c.waiting(), 0);
    }

    #[test]
    fn an_echo_settles_earlier_marks_whose_echo_went_missing() {
        let mut c = CarrierMarks::new();
        c.sent(Mark(1), 0);
        c.sent(Mark(2), 5);
        c.sent(Mark(3), 9);
        assert_eq!(
            c.echoed("m2", 12),
            Echo::Played {
                marks: vec![Mark(1), Mark(2)],
                lag_ticks: 7
            }
        );
        assert_eq!(c.echoed("m1", 13), Echo::Late);
        assert_eq!(c.waiting(), 1);
    }

    #[test]
    fn a_carrier_that_never_echoes_gets_marks_settled_when_sent() {
        let mut c = CarrierMarks::new();
        c.sent(Mark(1), 0);
        c.sent(Mark(2), 30);
        assert_eq!(c.overdue(ECHO_WAIT - 1), vec![]);
        assert_eq!(c.overdue(ECHO_WAIT), vec![Mark(1), Mark(2)]);
        // From now on, at once.
        assert_eq!(c.sent(Mark(3), 60), Some(Mark(3)));
    }

    #[test]
    fn a_carrier_whose_first_echo_is_slower_than_the_wait_is_waited_for_again() {
        let mut c = CarrierMarks::new();
        c.sent(Mark(1), 0);
        assert_eq!(c.overdue(ECHO_WAIT), vec![Mark(1)]);
        assert_eq!(c.sent(Mark(2), ECHO_WAIT + 1), Some(Mark(2)));
        // Its echo of mark 1 comes 1.5 s after the send: a deep buffer, not a mute carrier.
        assert_eq!(c.echoed("m1", 75), Echo::Late);
        assert_eq!(c.sent(Mark(3), 80), None);
        assert_eq!(c.overdue(80 + ECHO_WAIT), vec![]);
        assert!(matches!(c.echoed("m3", 155), Echo::Played { .. }));
    }

    #[test]
    fn an_echoing_carrier_that_loses_one_echo_gets_it_settled_later() {
        let mut c = CarrierMarks::new();
        c.sent(Mark(1), 0);
        assert!(matches!(c.echoed("m1", 5), Echo::Played { .. }));
        c.sent(Mark(2), 10);
        c.sent(Mark(3), 100);
        // Past the first-echo wait: an echoing carrier keeps its marks waiting.
        assert_eq!(c.overdue(10 + ECHO_WAIT), vec![]);
        assert_eq!(c.overdue(10 + LOST_ECHO - 1), vec![]);
        assert_eq!(c.overdue(10 + LOST_ECHO), vec![Mark(2)]);
        assert_eq!(c.lost_echoes, 1);
        assert_eq!(c.sent(Mark(4), 120), None, "still an echoing carrier");
        assert_eq!(c.waiting(), 2);
    }

    #[test]
    fn a_clear_settles_every_waiting_mark_and_their_echoes_are_late() {
        let mut c = CarrierMarks::new();
        c.sent(Mark(4), 0);
        c.sent(Mark(5), 1);
        assert_eq!(c.cleared(), vec![Mark(4), Mark(5)]);
        assert_eq!(c.echoed("m5", 3), Echo::Late);
        assert_eq!(c.echoed("m4", 3), Echo::Late);
    }

    #[test]
    fn names_we_never_sent_are_unknown() {
        let mut c = CarrierMarks::new();
        c.sent(Mark(1), 0);
        assert_eq!(c.echoed("m9", 1), Echo::Unknown);
        assert_eq!(c.echoed("greeting", 1), Echo::Unknown);
        assert_eq!(c.echoed("m", 1), Echo::Unknown);
        assert_eq!(c.echoed("m-1", 1), Echo::Unknown);
        assert_eq!(c.waiting(), 1);
    }
}
