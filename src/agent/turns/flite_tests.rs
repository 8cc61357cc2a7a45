//! The turn engine driven by the embedded voice (real Flite audio and marks): a barge-in
//! cuts the assistant's message at the last whole word the caller heard.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use super::*;
use crate::agent::stages::{Tts, TtsSession};
use crate::agent::tts_flite::{FliteTts, FliteTtsStage, FliteVoice};

const RATE: u32 = 8000;
const FRAME: usize = 160;

fn settings() -> LlmMode {
    LlmMode {
        llm: crate::agent::StageConfig::named("scripted"),
        system_prompt: "You call about orders.".into(),
        greeting: Some("Hi.".into()),
        tools: vec![],
        fallback_line: "Sorry, one moment.".into(),
        max_tool_rounds: 4,
        no_input_ms: 6000,
        reprompt: "Are you still there?".into(),
        max_reprompts: 2,
        silence_hangup: "Goodbye.".into(),
    }
}

/// Carries out the engine's actions with a Flite session and a playout that only records.
struct Driver {
    engine: TurnEngine,
    stage: FliteTtsStage,
    session: Option<Box<dyn TtsSession>>,
    /// Marks queued for playout with their chunk lengths, in order.
    queued: Vec<(Mark, usize)>,
}

impl Driver {
    fn new() -> Self {
        Self {
            engine: TurnEngine::new(settings(), 1),
            stage: FliteTtsStage::new(FliteVoice::Kal).unwrap(),
            session: None,
            queued: Vec::new(),
        }
    }

    /// Handles `event` and everything it leads to, the synthesized audio included.
    fn feed(&mut self, event: TurnEvent) {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            for action in self.engine.handle(event) {
                match action {
                    TurnAction::StartTts => self.session = Some(self.stage.start(RATE).unwrap()),
                    TurnAction::PushTts(text) => {
                        self.session.as_mut().unwrap().push_text(&text).unwrap();
                    }
                    TurnAction::FinishTts => self.session.as_mut().unwrap().finish().unwrap(),
                    TurnAction::CancelTts => self.session = None,
                    TurnAction::Play { samples, mark } => self.queued.push((mark, samples.len())),
                    _ => {}
                }
            }
            let Some(session) = self.session.as_mut() else {
                continue;
            };
            let mut cx = Context::from_waker(Waker::noop());
            loop {
                match session.poll_audio(&mut cx) {
                    Poll::Ready(Some(audio)) => {
                        events.push_back(TurnEvent::TtsAudio(audio.unwrap()))
                    }
                    Poll::Ready(None) => {
                        self.session = None;
                        events.push_back(TurnEvent::TtsEnded);
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
    }

    /// Plays everything queued that ends by sample `cut` (counted from the first queued
    /// chunk), reports the marks, and forgets the queue.
    fn play_until(&mut self, cut: usize) -> Option<Mark> {
        let mut end = 0;
        let mut last = None;
        for &(mark, len) in &self.queued {
            end += len;
            if end > cut {
                break;
            }
            last = Some(mark);
        }
        self.queued.clear();
        if let Some(mark) = last {
            self.feed(TurnEvent::MarkPlayed(mark));
        }
        last
    }
}

/// A driver past the greeting (fully played) with `reply` synthesized and queued.
fn replying(reply: &str) -> Driver {
    let mut d = Driver::new();
    d.feed(TurnEvent::Start);
    d.play_until(usize::MAX);
    d.feed(TurnEvent::UserText("Hello?".into()));
    d.feed(TurnEvent::Llm(LlmDelta::Text(reply.into())));
    d.feed(TurnEvent::Llm(LlmDelta::Done {
        reason: "stop".into(),
    }));
    d.feed(TurnEvent::LlmEnded);
    assert!(d.session.is_none(), "all of the reply is synthesized");
    d
}

#[test]
fn barge_in_mid_word_keeps_the_words_heard_before_it() {
    let first = "Hello there, how are you today?";
    let second = "I am calling about your order.";
    let reply = format!("{first} {second}");
    let tts = FliteTts::new(FliteVoice::Kal).unwrap();
    // Where the words end, from the voice itself; each sentence starts on a fresh frame.
    let one = tts.synthesize_words(first, RATE).unwrap();
    let two = tts.synthesize_words(second, RATE).unwrap();
    let second_at = one.pcm.len().div_ceil(FRAME) * FRAME;
    let middle =
        |w: &[crate::agent::tts_flite::WordEnd], k: usize| (w[k - 1].sample + w[k].sample) / 2;
    for (cut, heard) in [
        // Halfway through "about": "calling" was the last whole word.
        (
            second_at + middle(&two.words, 3),
            "Hello there, how are you today? I am calling",
        ),
        // Halfway through "how".
        (middle(&one.words, 2), "Hello there,"),
        // Halfway through "Hello": nothing whole was heard.
        (one.words[0].sample / 2, ""),
    ] {
        let mut d = replying(&reply);
        let last_played = d.play_until(cut);
        d.feed(TurnEvent::BargeIn { last_played });
        let last = d.engine.history().last().unwrap();
        assert_eq!(
            (last.role, last.content.as_str()),
            (Role::Assistant, heard),
            "cut at {} ms",
            cut / 8
        );
    }
}
