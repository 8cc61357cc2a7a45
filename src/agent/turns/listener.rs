//! The caller side of turn-taking, sans-IO: fed the caller's 20 ms frames and whether the
//! agent is talking, it runs the VAD and says when an utterance ends (with its audio and a
//! pre-roll from before the VAD's start) and when the caller talks over the agent: first
//! [`Heard::Pause`] (it may be a backchannel; the recognizer decides), then
//! [`Heard::Interrupt`] once the speech is too long to be one. With no backchannel words the
//! agent is interrupted at once. Both agent apps drive it.

use std::collections::VecDeque;

use super::settings::TurnSettings;
use crate::agent::stages::{Vad, VadEvent};

/// Audio kept from before the VAD's speech start (it decides after some speech).
pub const PRE_ROLL_MS: u64 = 300;

/// With barge-in at speech start (`barge_in_ms` 0), the agent is paused after this much
/// voiced audio in a row, before the VAD's debounced start: a pause is not a cut, so a click
/// or a noise burst that never becomes speech only resumes the agent where it stopped.
pub const EARLY_PAUSE_MS: u64 = 40;

/// A tentative pause the VAD does not confirm within this long is resumed.
const EARLY_PAUSE_LIMIT_MS: u64 = 200;

/// What the caller's audio means for the conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// The VAD heard speech start.
    SpeechStarted,
    /// The caller has talked over the agent for the barge-in time: stop its audio, keep it.
    Pause,
    /// The caller is interrupting: clear the agent's audio.
    Interrupt,
    /// An utterance ended; send it to the recognizer.
    Utterance {
        /// Its audio, with the pre-roll.
        pcm: Vec<i16>,
        /// When the speech started and ended, ms on the caller's clock.
        start_ms: u64,
        /// See `start_ms`.
        end_ms: u64,
        /// It paused the agent: its transcript decides between resuming and interrupting.
        paused_agent: bool,
        /// The agent was talking during it (paused or not): a backchannel is not a turn.
        over_agent: bool,
    },
    /// Speech that paused the agent ended too short to be an utterance: resume.
    Resume,
}

/// Where the current utterance stands against the agent's speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overlap {
    None,
    /// Paused before the VAD's start; the start confirmed it, the barge-in rules decide next.
    EarlyPaused,
    Paused,
    Interrupted,
}

/// Endpointing and barge-in for one call.
pub struct Listener {
    vad: Box<dyn Vad>,
    min_speech_ms: u64,
    silence_ms: u64,
    barge_in_ms: u64,
    max_backchannel_ms: u64,
    /// Whether backchannel words exist (else speech over the agent interrupts at once).
    backchannel: bool,
    pre_roll: VecDeque<i16>,
    utterance: Vec<i16>,
    in_speech: bool,
    /// Voiced speech since the VAD's start (ms; pauses inside the utterance not counted)
    /// and when it started.
    speech_ms: u64,
    /// Time since the VAD's speech start (ms).
    elapsed_ms: u64,
    start_ms: u64,
    overlap: Overlap,
    /// The agent talked at some point during the current utterance.
    over_agent: bool,
    /// Voiced audio in a row before the VAD's start (ms), for the early pause.
    voiced_run_ms: u64,
    /// The agent was paused early (before the VAD's start), for how long so far (ms).
    early_pause_ms: Option<u64>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("in_speech", &self.in_speech)
            .field("speech_ms", &self.speech_ms)
            .field("overlap", &self.overlap)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// A listener with this VAD, these settings and `barge_in_ms` (the route's default when
    /// the settings have none).
    pub fn new(vad: Box<dyn Vad>, settings: &TurnSettings, barge_in_ms: u64) -> Self {
        Self {
            vad,
            min_speech_ms: settings.min_speech_ms,
            silence_ms: settings.silence_ms,
            barge_in_ms: settings.barge_in_ms.unwrap_or(barge_in_ms),
            max_backchannel_ms: settings.max_backchannel_ms,
            backchannel: !settings.backchannel.is_empty(),
            pre_roll: VecDeque::new(),
            utterance: Vec::new(),
            in_speech: false,
            speech_ms: 0,
            elapsed_ms: 0,
            start_ms: 0,
            overlap: Overlap::None,
            over_agent: false,
            voiced_run_ms: 0,
            early_pause_ms: None,
        }
    }

    /// Whether the caller is speaking (VAD between its edges).
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// The current utterance's audio so far (pre-roll included) while in speech, else empty:
    /// what a streaming recognizer is fed as it comes.
    pub fn speech_audio(&self) -> &[i16] {
        if self.in_speech { &self.utterance } else { &[] }
    }

    /// The silence that ends an utterance (ms): the endpointing delay.
    pub fn silence_ms(&self) -> u64 {
        self.silence_ms
    }

    /// Feeds one caller frame at `now_ms`; `agent_talking`: agent audio is queued or coming.
    pub fn push(
        &mut self,
        frame: &[i16],
        rate: u32,
        now_ms: u64,
        agent_talking: bool,
    ) -> Vec<Heard> {
        let mut out = Vec::new();
        let (voiced, event) = match self.vad.push(frame, rate) {
            Ok(f) => (f.probability >= 0.5, f.event),
            Err(_) => (false, None),
        };
        let frame_ms = frame.len() as u64 * 1000 / u64::from(rate.max(1));
        if event.is_none() && !self.in_speech {
            self.early_pause(voiced, frame_ms, agent_talking, &mut out);
        }
        match event {
            Some(VadEvent::SpeechStart) => {
                self.voiced_run_ms = 0;
                self.in_speech = true;
                self.speech_ms = 0;
                self.elapsed_ms = 0;
                self.start_ms = now_ms;
                // An early pause stands: the VAD confirmed the speech.
                self.overlap = if self.early_pause_ms.take().is_some() {
                    Overlap::EarlyPaused
                } else {
                    Overlap::None
                };
                self.over_agent = agent_talking;
                self.utterance.clear();
                self.utterance.extend(self.pre_roll.drain(..));
                out.push(Heard::SpeechStarted);
            }
            Some(VadEvent::SpeechEnd) => {
                self.in_speech = false;
                let pcm = std::mem::take(&mut self.utterance);
                let min = rate as usize * self.min_speech_ms as usize / 1000;
                let paused = matches!(self.overlap, Overlap::Paused | Overlap::EarlyPaused);
                if pcm.len() >= min && !pcm.is_empty() {
                    out.push(Heard::Utterance {
                        pcm,
                        start_ms: self.start_ms,
                        end_ms: now_ms.saturating_sub(self.silence_ms),
                        paused_agent: paused,
                        // Once it interrupted, it is a turn whatever it says.
                        over_agent: (self.over_agent || paused)
                            && self.overlap != Overlap::Interrupted,
                    });
                } else if paused {
                    out.push(Heard::Resume);
                }
                self.overlap = Overlap::None;
            }
            None => {}
        }
        if self.in_speech {
            self.utterance.extend_from_slice(frame);
            self.over_agent |= agent_talking;
            // The pause comes after `barge_in_ms` since the VAD's speech start (pauses between
            // words included: the caller's experience); the backchannel limit counts voiced
            // time only, so the VAD's end hangover does not turn an "uh-huh" into a turn.
            self.elapsed_ms += frame_ms;
            if voiced {
                self.speech_ms += frame_ms;
            }
            match self.overlap {
                Overlap::None | Overlap::EarlyPaused
                    if (agent_talking || self.overlap == Overlap::EarlyPaused)
                        && self.elapsed_ms >= self.barge_in_ms =>
                {
                    if self.backchannel && self.speech_ms < self.max_backchannel_ms {
                        if self.overlap == Overlap::None {
                            out.push(Heard::Pause);
                        }
                        self.overlap = Overlap::Paused;
                    } else {
                        self.overlap = Overlap::Interrupted;
                        out.push(Heard::Interrupt);
                    }
                }
                Overlap::Paused if self.speech_ms >= self.max_backchannel_ms => {
                    self.overlap = Overlap::Interrupted;
                    out.push(Heard::Interrupt);
                }
                _ => {}
            }
        } else {
            self.pre_roll.extend(frame.iter().copied());
            let keep = rate as usize * PRE_ROLL_MS as usize / 1000;
            if self.pre_roll.len() > keep {
                let excess = self.pre_roll.len() - keep;
                self.pre_roll.drain(..excess);
            }
        }
        out
    }

    /// Before the VAD's start: pauses the talking agent after [`EARLY_PAUSE_MS`] of voiced
    /// audio in a row (barge-in at speech start only), and resumes it when that audio stops
    /// short of speech.
    fn early_pause(
        &mut self,
        voiced: bool,
        frame_ms: u64,
        agent_talking: bool,
        out: &mut Vec<Heard>,
    ) {
        self.voiced_run_ms = if voiced {
            self.voiced_run_ms + frame_ms
        } else {
            0
        };
        if let Some(ms) = self.early_pause_ms.as_mut() {
            *ms += frame_ms;
            if !voiced || *ms > EARLY_PAUSE_LIMIT_MS {
                self.early_pause_ms = None;
                out.push(Heard::Resume);
            }
        } else if self.barge_in_ms == 0 && agent_talking && self.voiced_run_ms >= EARLY_PAUSE_MS {
            self.early_pause_ms = Some(0);
            out.push(Heard::Pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::EnergyVad;

    const RATE: u32 = 8000;

    fn frame(loud: bool) -> Vec<i16> {
        (0..160)
            .map(|i| {
                if loud {
                    ((i as f32 * 0.3).sin() * 8000.0) as i16
                } else {
                    0
                }
            })
            .collect()
    }

    /// Feeds `speech_ms` of speech then 1 s of silence, the agent talking throughout;
    /// returns (tick, what was heard) with `Utterance` reduced to its flag.
    fn run(settings: &TurnSettings, barge_in_ms: u64, speech_ms: u64) -> Vec<(u64, String)> {
        let mut l = Listener::new(Box::new(EnergyVad::default()), settings, barge_in_ms);
        let mut out = Vec::new();
        for t in 0..(10 + speech_ms / 20 + 50) {
            let loud = (10..10 + speech_ms / 20).contains(&t);
            for h in l.push(&frame(loud), RATE, t * 20, true) {
                let h = match h {
                    Heard::Utterance {
                        paused_agent, pcm, ..
                    } => {
                        assert!(pcm.len() >= 160 * (speech_ms as usize / 20));
                        format!("utterance paused={paused_agent}")
                    }
                    other => format!("{other:?}"),
                };
                out.push((t, h));
            }
        }
        out
    }

    fn names(v: &[(u64, String)]) -> Vec<&str> {
        v.iter().map(|h| h.1.as_str()).collect()
    }

    #[test]
    fn short_speech_over_the_agent_pauses_then_the_transcript_decides() {
        let s = TurnSettings::default();
        let v = run(&s, 300, 600);
        assert_eq!(
            names(&v),
            ["SpeechStarted", "Pause", "utterance paused=true"]
        );
        // The VAD starts after 60 ms of speech (tick 12); 300 ms later it pauses.
        assert_eq!(v[1].0, 12 + 15 - 1);
    }

    #[test]
    fn long_speech_interrupts_without_waiting_for_the_transcript() {
        let s = TurnSettings::default();
        let v = run(&s, 300, 1500);
        assert_eq!(
            names(&v),
            [
                "SpeechStarted",
                "Pause",
                "Interrupt",
                "utterance paused=false"
            ]
        );
        assert_eq!(v[2].0 - v[1].0, (800 - 300) / 20);
    }

    #[test]
    fn without_backchannel_words_speech_interrupts_at_once() {
        let s = TurnSettings {
            backchannel: Vec::new(),
            barge_in_ms: Some(100),
            ..TurnSettings::default()
        };
        let v = run(&s, 300, 600);
        assert_eq!(
            names(&v),
            ["SpeechStarted", "Interrupt", "utterance paused=false"]
        );
        assert_eq!(
            v[1].0,
            12 + 5 - 1,
            "[barge_in] min_speech_ms beats the route's 300"
        );
    }

    #[test]
    fn a_short_noise_that_paused_the_agent_resumes_it() {
        let s = TurnSettings {
            min_speech_ms: 1000,
            barge_in_ms: Some(0),
            ..TurnSettings::default()
        };
        let v = run(&s, 300, 200);
        assert_eq!(names(&v), ["Pause", "SpeechStarted", "Resume"]);
    }

    #[test]
    fn at_speech_start_the_agent_pauses_one_frame_before_the_vads_start() {
        let s = TurnSettings {
            barge_in_ms: Some(0),
            ..TurnSettings::default()
        };
        let v = run(&s, 300, 600);
        assert_eq!(
            names(&v),
            ["Pause", "SpeechStarted", "utterance paused=true"]
        );
        // Speech from tick 10: 40 ms voiced at tick 11, the VAD's 60 ms start at tick 12.
        assert_eq!((v[0].0, v[1].0), (11, 12));
        // Without backchannel words the confirmed speech interrupts at the VAD's start.
        let s = TurnSettings {
            barge_in_ms: Some(0),
            backchannel: Vec::new(),
            ..TurnSettings::default()
        };
        let v = run(&s, 300, 600);
        assert_eq!(
            names(&v),
            [
                "Pause",
                "SpeechStarted",
                "Interrupt",
                "utterance paused=false"
            ]
        );
        assert_eq!(v[2].0, 12);
    }

    #[test]
    fn a_click_shorter_than_the_vads_start_pauses_and_resumes_at_once() {
        let s = TurnSettings {
            barge_in_ms: Some(0),
            ..TurnSettings::default()
        };
        let v = run(&s, 300, 40);
        assert_eq!(names(&v), ["Pause", "Resume"]);
        assert_eq!(
            (v[0].0, v[1].0),
            (11, 12),
            "resumed on the first quiet frame"
        );
        // Not while the agent is quiet, and not with a barge-in delay.
        let mut l = Listener::new(Box::new(EnergyVad::default()), &s, 0);
        let quiet: Vec<Heard> = (0..20u64)
            .flat_map(|t| l.push(&frame((10..12).contains(&t)), RATE, t * 20, false))
            .collect();
        assert!(quiet.is_empty(), "{quiet:?}");
        let v = run(&TurnSettings::default(), 300, 40);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn silence_ms_sets_the_endpoint() {
        let mut s = TurnSettings {
            silence_ms: 800,
            ..TurnSettings::default()
        };
        s.vad.params.insert("end_ms".into(), 800.into());
        let vad = crate::agent::StageRegistry::with_builtins()
            .build_vad(&s.vad, &|_| None)
            .unwrap();
        let mut l = Listener::new(vad, &s, 300);
        let mut end = None;
        for t in 0..200u64 {
            for h in l.push(&frame((10..40).contains(&t)), RATE, t * 20, false) {
                if let Heard::Utterance {
                    end_ms, start_ms, ..
                } = h
                {
                    end = Some((t, start_ms, end_ms));
                }
            }
        }
        let (t, start_ms, end_ms) = end.unwrap();
        assert_eq!(
            t,
            40 + 40 - 1,
            "800 ms of silence after the last speech frame"
        );
        assert_eq!((start_ms, end_ms), (12 * 20, 79 * 20 - 800));
    }
}
