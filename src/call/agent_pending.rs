//! Work the scripted agent waits for — a recognition or a spoken line — from either the
//! embedded service threads or a stage the agent file configured (`[stt]`, `[tts]`), behind
//! one non-blocking `poll`.

use std::sync::mpsc::{Receiver, TryRecvError};
use std::task::{Context, Poll, Waker};

use crate::agent::stages::{SttEvent, SttSession, TtsSession};

/// What a poll found.
#[derive(Debug, PartialEq)]
pub enum Polled<T> {
    /// The result.
    Ready(T),
    /// Not yet.
    Pending,
    /// The work failed or was dropped; `Some` names a stage error (never a secret).
    Failed(Option<String>),
}

/// A recognition in flight.
pub enum PendingText {
    /// On the embedded recognizer's thread: (text, confidence on the flow's scale).
    Service(Receiver<(String, f32)>),
    /// On the configured stage's session, which the app keeps open across utterances.
    Stage,
}

impl PendingText {
    /// Polls for the final; `session` is the app's stage session (for [`Self::Stage`]).
    pub fn poll(&mut self, session: Option<&mut Box<dyn SttSession>>) -> Polled<(String, f32)> {
        match self {
            Self::Service(rx) => match rx.try_recv() {
                Ok(r) => Polled::Ready(r),
                Err(TryRecvError::Empty) => Polled::Pending,
                Err(TryRecvError::Disconnected) => Polled::Failed(None),
            },
            Self::Stage => {
                let Some(s) = session else {
                    return Polled::Failed(None);
                };
                let mut cx = Context::from_waker(Waker::noop());
                loop {
                    match s.poll_event(&mut cx) {
                        Poll::Ready(Some(Ok(SttEvent::Final {
                            text, confidence, ..
                        }))) => return Polled::Ready((text, confidence)),
                        Poll::Ready(Some(Ok(_))) => {}
                        Poll::Ready(Some(Err(e))) => return Polled::Failed(Some(e.to_string())),
                        Poll::Ready(None) => return Polled::Failed(None),
                        Poll::Pending => return Polled::Pending,
                    }
                }
            }
        }
    }
}

/// One line being synthesized.
pub enum PendingSpeech {
    /// On the embedded voice's thread.
    Service(Receiver<Vec<i16>>),
    /// On a configured stage: the line's session and the audio gathered so far.
    Stage(Box<dyn TtsSession>, Vec<i16>),
}

impl PendingSpeech {
    /// Polls for the whole line's audio.
    pub fn poll(&mut self) -> Polled<Vec<i16>> {
        match self {
            Self::Service(rx) => match rx.try_recv() {
                Ok(pcm) => Polled::Ready(pcm),
                Err(TryRecvError::Empty) => Polled::Pending,
                Err(TryRecvError::Disconnected) => Polled::Failed(None),
            },
            Self::Stage(session, pcm) => {
                let mut cx = Context::from_waker(Waker::noop());
                loop {
                    match session.poll_audio(&mut cx) {
                        Poll::Ready(Some(Ok(a))) => pcm.extend_from_slice(&a.samples),
                        Poll::Ready(Some(Err(e))) => return Polled::Failed(Some(e.to_string())),
                        Poll::Ready(None) => return Polled::Ready(std::mem::take(pcm)),
                        Poll::Pending => return Polled::Pending,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::stages::Stt;
    use crate::agent::{ScriptedStt, StageConfig, StageRegistry};

    #[test]
    fn stage_work_is_polled_to_completion() {
        let mut stt = ScriptedStt::new(["yes please".to_owned()], 0.8);
        let mut session = stt.start(8000, &["yes".to_owned()]).unwrap();
        let mut pending = PendingText::Stage;
        session.push_audio(&[0; 160]).unwrap();
        assert_eq!(pending.poll(Some(&mut session)), Polled::Pending);
        session.end_utterance().unwrap();
        assert_eq!(
            pending.poll(Some(&mut session)),
            Polled::Ready(("yes please".to_owned(), 0.8))
        );
        assert_eq!(pending.poll(None), Polled::Failed(None));

        let mut tts = StageRegistry::with_builtins()
            .build_tts(&StageConfig::named("silence"), &|_| None)
            .unwrap();
        let mut s = tts.start(8000).unwrap();
        s.push_text("Hello.").unwrap();
        s.finish().unwrap();
        let mut line = PendingSpeech::Stage(s, Vec::new());
        let pcm = loop {
            match line.poll() {
                Polled::Ready(pcm) => break pcm,
                Polled::Pending => continue,
                Polled::Failed(e) => panic!("{e:?}"),
            }
        };
        assert!(!pcm.is_empty());
    }
}
