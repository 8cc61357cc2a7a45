//! The simulated caller's side of the agent demo, sans-IO: a script of recorded utterances,
//! each said once the agent has finished speaking. Fed the agent's audio packet by packet and
//! asked for one 20 ms µ-law frame per tick; it never reads a clock (a tick is 20 ms).

use crate::codec::g711::ulaw_to_linear;

/// What the caller says, in order: its text and its recording (8 kHz mono µ-law WAV).
/// The path through `sip-config/agents/appointment-setter.toml`: a side question at the
/// greeting, yes, a callback request, a day and time: a booked callback.
pub const UTTERANCES: [(&str, &[u8]); 4] = [
    (
        "Am I talking to a robot?",
        include_bytes!("../../assets/demo/robot.wav"),
    ),
    (
        "Sure, go ahead.",
        include_bytes!("../../assets/demo/yes_short.wav"),
    ),
    (
        "Can you call me back tomorrow?",
        include_bytes!("../../assets/demo/callback.wav"),
    ),
    (
        "Tomorrow morning works for me.",
        include_bytes!("../../assets/demo/time_morning.wav"),
    ),
];

/// Samples in one 20 ms frame at 8 kHz (one µ-law byte each).
pub const FRAME: usize = 160;
/// µ-law digital silence.
const ULAW_SILENCE: u8 = 0xff;

/// When the caller decides the agent is talking or has finished.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnTaking {
    /// A received frame louder than this (RMS, dBFS) is agent speech.
    pub speech_dbfs: f64,
    /// Loud frames in a row before the agent counts as talking.
    pub start_frames: u32,
    /// Quiet frames in a row after speech before the caller answers (30 = 600 ms).
    pub end_frames: u32,
    /// Ticks the caller waits for the agent to start talking before giving up.
    pub wait_ticks: u32,
}

impl Default for TurnTaking {
    fn default() -> Self {
        TurnTaking {
            speech_dbfs: -45.0,
            start_frames: 3,
            end_frames: 30,
            wait_ticks: 15 * 50,
        }
    }
}

/// Something the caller's driver should know (to print, or to stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cue {
    /// The agent started talking.
    AgentTalking,
    /// The caller starts saying line `n` of its script with this frame.
    Says(usize),
    /// The agent finished its reply to the last line: the script is done.
    Finished,
    /// The agent said nothing for [`TurnTaking::wait_ticks`].
    AgentSilent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the agent to talk: ticks waited, loud frames in a row.
    Waiting { ticks: u32, loud: u32 },
    /// The agent is talking: quiet frames in a row.
    Listening { quiet: u32 },
    /// Saying line `line` from sample `at`.
    Saying { line: usize, at: usize },
    /// Nothing more to say.
    Done,
}

/// The caller's script being played against the agent.
#[derive(Debug)]
pub struct Conversation<'a> {
    lines: Vec<&'a [u8]>,
    next: usize,
    state: State,
    rules: TurnTaking,
}

impl<'a> Conversation<'a> {
    /// A conversation saying `lines` (µ-law audio) in order, each after the agent's reply.
    pub fn new(lines: Vec<&'a [u8]>, rules: TurnTaking) -> Self {
        Conversation {
            lines,
            next: 0,
            state: State::Waiting { ticks: 0, loud: 0 },
            rules,
        }
    }

    /// One frame of the agent's audio (µ-law) arrived.
    pub fn heard(&mut self, ulaw: &[u8]) -> Option<Cue> {
        let loud = rms_dbfs(ulaw) > self.rules.speech_dbfs;
        match &mut self.state {
            State::Waiting { loud: run, .. } => {
                *run = if loud { *run + 1 } else { 0 };
                if *run >= self.rules.start_frames {
                    self.state = State::Listening { quiet: 0 };
                    return Some(Cue::AgentTalking);
                }
            }
            State::Listening { quiet } => {
                *quiet = if loud { 0 } else { *quiet + 1 };
                if *quiet >= self.rules.end_frames {
                    if self.next < self.lines.len() {
                        self.state = State::Saying {
                            line: self.next,
                            at: 0,
                        };
                        self.next += 1;
                    } else {
                        self.state = State::Done;
                        return Some(Cue::Finished);
                    }
                }
            }
            // Whatever the agent says over the caller's line does not change the script.
            State::Saying { .. } | State::Done => {}
        }
        None
    }

    /// The caller's next 20 ms frame, µ-law, written to `out`; silence between lines.
    pub fn next_frame(&mut self, out: &mut [u8; FRAME]) -> Option<Cue> {
        out.fill(ULAW_SILENCE);
        match &mut self.state {
            State::Saying { line, at } => {
                let (n, start) = (*line, *at);
                let audio = self.lines[n];
                let end = (start + FRAME).min(audio.len());
                out[..end - start].copy_from_slice(&audio[start..end]);
                if end >= audio.len() {
                    self.state = State::Waiting { ticks: 0, loud: 0 };
                } else {
                    *at = end;
                }
                (start == 0).then_some(Cue::Says(n))
            }
            State::Waiting { ticks, .. } => {
                *ticks += 1;
                if *ticks >= self.rules.wait_ticks {
                    self.state = State::Done;
                    return Some(Cue::AgentSilent);
                }
                None
            }
            State::Listening { .. } | State::Done => None,
        }
    }

    /// Lines said so far (the one being said included).
    pub fn lines_said(&self) -> usize {
        self.next
    }
}

/// RMS level of µ-law audio, dBFS (-inf for digital silence).
pub fn rms_dbfs(ulaw: &[u8]) -> f64 {
    if ulaw.is_empty() {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = ulaw
        .iter()
        .map(|&b| f64::from(ulaw_to_linear(b)).powi(2))
        .sum();
    let rms = (sum / ulaw.len() as f64).sqrt();
    20.0 * (rms / 32768.0).log10()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::g711::linear_to_ulaw;

    fn tone(frames: usize) -> Vec<u8> {
        (0..frames * FRAME)
            .map(|i| linear_to_ulaw(((i as f64 * 0.3).sin() * 6000.0) as i16))
            .collect()
    }

    const QUIET: [u8; FRAME] = [ULAW_SILENCE; FRAME];

    /// Runs one tick: the agent sends `agent` (µ-law), the caller sends its frame.
    fn tick(c: &mut Conversation<'_>, agent: &[u8]) -> (Vec<Cue>, [u8; FRAME]) {
        let mut out = [0u8; FRAME];
        let cues = [c.heard(agent), c.next_frame(&mut out)];
        (cues.into_iter().flatten().collect(), out)
    }

    #[test]
    fn each_line_waits_for_the_agent_to_finish_and_600_ms_of_quiet() {
        let (a, b) = (tone(3), tone(2));
        let mut c = Conversation::new(vec![&a, &b], TurnTaking::default());
        let loud = tone(1);
        // Quiet before the agent talks: the caller only sends silence.
        for _ in 0..10 {
            let (cues, out) = tick(&mut c, &QUIET);
            assert!(cues.is_empty());
            assert_eq!(out, QUIET);
        }
        let mut cues = Vec::new();
        for _ in 0..50 {
            cues.extend(tick(&mut c, &loud).0);
        }
        assert_eq!(cues, [Cue::AgentTalking]);
        // A pause shorter than 600 ms inside the agent's speech is not the end of its turn.
        for _ in 0..20 {
            assert!(tick(&mut c, &QUIET).0.is_empty());
        }
        tick(&mut c, &loud);
        for _ in 0..29 {
            assert!(tick(&mut c, &QUIET).0.is_empty());
        }
        // 600 ms of quiet: the first line starts and takes three ticks.
        let (cues, out) = tick(&mut c, &QUIET);
        assert_eq!(cues, [Cue::Says(0)]);
        assert_eq!(&out[..], &a[..FRAME]);
        assert_eq!(tick(&mut c, &QUIET).1[..], a[FRAME..2 * FRAME]);
        assert_eq!(tick(&mut c, &QUIET).1[..], a[2 * FRAME..]);
        assert_eq!(tick(&mut c, &QUIET).1, QUIET);
        assert_eq!(c.lines_said(), 1);
        // The agent's reply, then the second line; after the next reply the script is done.
        for line in [Some(1), None] {
            let mut cues = Vec::new();
            for _ in 0..10 {
                cues.extend(tick(&mut c, &loud).0);
            }
            for _ in 0..40 {
                cues.extend(tick(&mut c, &QUIET).0);
            }
            let want = match line {
                Some(n) => vec![Cue::AgentTalking, Cue::Says(n)],
                None => vec![Cue::AgentTalking, Cue::Finished],
            };
            assert_eq!(cues, want);
        }
    }

    #[test]
    fn a_silent_agent_ends_the_script() {
        let a = tone(1);
        let rules = TurnTaking {
            wait_ticks: 100,
            ..TurnTaking::default()
        };
        let mut c = Conversation::new(vec![&a], rules);
        let cues: Vec<Cue> = (0..150).flat_map(|_| tick(&mut c, &QUIET).0).collect();
        assert_eq!(cues, [Cue::AgentSilent]);
    }

    #[test]
    fn levels() {
        assert_eq!(rms_dbfs(&QUIET), f64::NEG_INFINITY);
        let l = rms_dbfs(&tone(1));
        assert!((-20.0..-12.0).contains(&l), "{l}");
    }
}
