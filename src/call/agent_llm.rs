//! The `agent` app in the LLM mode: a thin driver around [`TurnEngine`]. On each 20 ms tick
//! it runs the [`Listener`] (VAD endpointing, pause and barge-in), feeds ended utterances to
//! the STT session, polls the STT, LLM and TTS sessions with a no-op waker (they are
//! non-blocking), hands their events to the engine and carries out its actions through the
//! [`Outbox`] (pausable) into the playout queue. Speech over the agent first pauses it; the
//! transcript then decides: backchannel words resume it, anything else interrupts it.
//!
//! With a streaming recognizer (`SttSession::streams_audio`) each stretch of VAD speech is
//! sent as it comes and the endpoint only marks its end ([`StreamedSegments`] decides which
//! finals are turns); with `[turns] early_llm_ms` the completion may start on a stable
//! partial before the final ([`EarlyStart`]), buffered, and is adopted when the final agrees.
//!
//! The fallback line is always said with the embedded voice (flite on the service thread),
//! so a failing remote voice can still apologise; stage audio waits behind it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::agent::{AgentServices, DEFAULT_BARGE_IN_MS};
use crate::agent::config::LlmMode;
use crate::agent::latency::TurnLatency;
use crate::agent::report::{AgentReport, CallerTurns, ReplySpans, Speaker};
use crate::agent::stages::{
    ChatRequest, Llm, LlmStream, Role, StageError, Stt, SttEvent, SttSession, Tts, TtsAudio,
    TtsSession,
};
use crate::agent::tools::ToolCall;
use crate::agent::turns::early::{Adopted, EarlyAction, EarlyStart, normalize};
use crate::agent::turns::listener::{Heard, Listener};
use crate::agent::turns::outbox::{LEAD_FRAMES, Outbox};
use crate::agent::turns::segments::StreamedSegments;
use crate::agent::turns::settings::{GreetingWait, TurnSettings};
use crate::agent::turns::{TurnAction, TurnEngine, TurnEvent};
use crate::agent::{EnergyVad, StageKind, StageRegistry};
use crate::leg::{AppIo, LegEvent, MediaApp};
use crate::media::playout::{Mark, MarkEvent};

/// The agent stays paused this long after the pausing speech without a transcript, then
/// the speech counts as an interruption.
pub const PAUSE_LIMIT_MS: u64 = 3_000;
/// A completion or synthesis that yields nothing for this long has failed: the call must
/// never go silent forever, whatever a provider does.
const STALL_MS: u64 = 30_000;
/// A streamed utterance whose final has not come this long after its endpoint is completed
/// with the finals it had (the provider owed nothing more, or lost it).
const STREAM_FINAL_WAIT_MS: u64 = 3_000;
/// The mark queued after the last words before a hang-up.
const HANGUP_MARK: Mark = Mark(u64::MAX - 1);

/// One call's LLM agent.
pub struct LlmAgentApp {
    /// The embedded voice, for the fallback line (and the default synthesizer).
    services: Arc<AgentServices>,
    /// The conversation.
    engine: TurnEngine,
    /// Endpointing, pause and barge-in.
    listener: Listener,
    /// VAD, barge-in and greeting settings.
    settings: TurnSettings,
    /// Agent audio on its way to the playout queue (pausable).
    outbox: Outbox,
    /// An utterance that paused the agent is being recognized: its transcript decides.
    awaiting_backchannel: bool,
    /// Ticks the agent has been paused, and when the pause began (ms).
    /// A caller utterance is being recognized.
    awaiting_final: bool,
    /// Whether the greeting was triggered (at once, or after the callee's hello).
    greeted: bool,
    /// Ticks of silence on both sides, for the no-input reprompt.
    quiet_ticks: u64,
    /// The recognizer and its open session.
    stt: Box<dyn Stt>,
    stt_session: Option<Box<dyn SttSession>>,
    /// The chat model and its running completion.
    llm: Box<dyn Llm>,
    llm_stream: Option<Box<dyn LlmStream>>,
    /// The synthesizer and its open session.
    tts: Box<dyn Tts>,
    tts_session: Option<Box<dyn TtsSession>>,
    /// Fallback lines being synthesized with their text, in order; stage audio waits behind.
    fallback: VecDeque<(Receiver<Vec<i16>>, String)>,
    held: VecDeque<(Vec<i16>, Mark)>,
    started: bool,
    /// When the call started (tick), for the hello timeout.
    start_tick: u64,
    barge_in_ms: u64,
    /// Ticks a running completion or synthesis has produced nothing.
    stalled_ticks: u64,
    /// The turn being timed, and how many turns there were.
    latency: Option<TurnLatency>,
    turns: u32,
    /// The outcome to hang up with, once the engine decided.
    hangup: Option<String>,
    /// Where to transfer the caller once the last line is played (the `transfer` tool).
    transfer: Option<String>,
    hangup_queued: bool,
    /// Events produced while carrying out actions (a stage refusing to start).
    pending: VecDeque<TurnEvent>,
    /// What the call record gets; the replies as played, and the caller's utterances.
    report: AgentReport,
    replies: ReplySpans,
    callers: CallerTurns,
    /// Streaming recognizer: the speech segments whose finals are not all in, the samples of
    /// the current speech already sent (`Some` while it is streamed), and the caller texts
    /// completed, waiting for the engine.
    segments: StreamedSegments,
    streamed: Option<usize>,
    ready_finals: VecDeque<String>,
    /// The last final's confidence (logged with a streamed utterance's text).
    last_confidence: f32,
    /// Early LLM start: the decision, the speculative completion with its request and first
    /// delta time, and an adopted one waiting for the engine's `StartLlm`.
    early: EarlyStart,
    early_stream: Option<(Box<dyn LlmStream>, ChatRequest)>,
    early_first_token: Option<Instant>,
    adopt: Option<Adoption>,
}

/// A speculative completion the final confirmed, handed over at the engine's `StartLlm`.
struct Adoption {
    stream: Box<dyn LlmStream>,
    request: ChatRequest,
    adopted: Adopted,
    first_token: Option<Instant>,
}

impl LlmAgentApp {
    /// An agent for `mode` on these stages; `tts` `None` uses the embedded voice.
    pub fn new(
        services: Arc<AgentServices>,
        mode: LlmMode,
        stt: Box<dyn Stt>,
        llm: Box<dyn Llm>,
        tts: Option<Box<dyn Tts>>,
    ) -> Self {
        let tts = tts.unwrap_or_else(|| Box::new(ServiceTts(services.clone())));
        Self {
            services,
            engine: TurnEngine::new(mode, 1),
            listener: Listener::new(
                Box::new(EnergyVad::default()),
                &TurnSettings::default(),
                DEFAULT_BARGE_IN_MS,
            ),
            settings: TurnSettings::default(),
            outbox: Outbox::default(),
            awaiting_backchannel: false,
            awaiting_final: false,
            greeted: false,
            quiet_ticks: 0,
            stt,
            stt_session: None,
            llm,
            llm_stream: None,
            tts,
            tts_session: None,
            fallback: VecDeque::new(),
            held: VecDeque::new(),
            started: false,
            start_tick: 0,
            barge_in_ms: DEFAULT_BARGE_IN_MS,
            stalled_ticks: 0,
            latency: None,
            turns: 0,
            hangup: None,
            transfer: None,
            hangup_queued: false,
            pending: VecDeque::new(),
            report: AgentReport::new("llm"),
            replies: ReplySpans::default(),
            callers: CallerTurns::default(),
            segments: StreamedSegments::default(),
            streamed: None,
            ready_finals: VecDeque::new(),
            last_confidence: 1.0,
            early: EarlyStart::new(0),
            early_stream: None,
            early_first_token: None,
            adopt: None,
        }
    }

    /// How long the caller must talk over the agent to interrupt it (0: at speech start).
    pub fn with_barge_in(mut self, min: Duration) -> Self {
        self.barge_in_ms = min.as_millis() as u64;
        self.rebuild_listener();
        self
    }

    /// Uses the agent file's VAD, endpointing, barge-in and greeting settings.
    pub fn with_turns(mut self, settings: &TurnSettings) -> Self {
        self.settings = settings.clone();
        self.early = EarlyStart::new(settings.early_llm_ms);
        self.rebuild_listener();
        self
    }

    fn rebuild_listener(&mut self) {
        self.listener = Listener::new(build_vad(&self.settings), &self.settings, self.barge_in_ms);
    }

    fn feed(&mut self, event: TurnEvent, io: &mut AppIo<'_>) {
        self.pending.push_back(event);
        while let Some(e) = self.pending.pop_front() {
            let actions = self.engine.handle(e);
            for a in actions {
                self.act(a, io);
            }
        }
    }

    fn act(&mut self, action: TurnAction, io: &mut AppIo<'_>) {
        match action {
            TurnAction::StartLlm(request) => {
                if let Some(mut s) = self.llm_stream.take() {
                    s.cancel();
                }
                self.stalled_ticks = 0;
                if let Some(a) = self.adopt.take() {
                    if same_turn(&a.request, &request) {
                        self.adopt_early(a);
                        return;
                    }
                    cancel_early(a.stream, "the conversation changed");
                }
                match self.llm.start(&request) {
                    Ok(s) => self.llm_stream = Some(s),
                    Err(error) => self.pending.push_back(TurnEvent::Failed {
                        stage: StageKind::Llm,
                        error,
                    }),
                }
            }
            TurnAction::CancelLlm => {
                if let Some(mut s) = self.llm_stream.take() {
                    s.cancel();
                }
            }
            TurnAction::StartTts => {
                if let Some(mut s) = self.tts_session.take() {
                    s.cancel();
                }
                match self.tts.start(io.rate) {
                    Ok(s) => self.tts_session = Some(s),
                    Err(error) => self.fail(StageKind::Tts, error),
                }
            }
            TurnAction::PushTts(text) => {
                tracing::info!(text = %text.trim(), "agent says");
                if let Some(Err(error)) = self.tts_session.as_mut().map(|s| s.push_text(&text)) {
                    self.fail(StageKind::Tts, error);
                }
            }
            TurnAction::FinishTts => {
                if let Some(Err(error)) = self.tts_session.as_mut().map(|s| s.finish()) {
                    self.fail(StageKind::Tts, error);
                }
            }
            TurnAction::CancelTts => {
                if let Some(mut s) = self.tts_session.take() {
                    s.cancel();
                }
            }
            TurnAction::Play { samples, mark } => {
                if self.fallback.is_empty() {
                    self.play(&samples, mark, io);
                } else {
                    self.held.push_back((samples, mark));
                }
            }
            TurnAction::SayFallback(text) => {
                tracing::info!(%text, "agent says (fallback)");
                metrics::counter!(crate::telemetry::metrics::AGENT_PROVIDER_ERRORS, "mode" => "llm")
                    .increment(1);
                if let Some(rx) = self.services.synthesize(&text, io.rate) {
                    self.fallback.push_back((rx, text));
                }
            }
            TurnAction::Tool(call) => {
                tracing::info!(tool = ?call, "agent tool call");
                self.report.tool(&call, io.tick * 20);
                match &call {
                    ToolCall::SendDtmf { digits } => io.send_dtmf(digits),
                    // Done after the last line is played (the engine ends the turn).
                    ToolCall::Transfer { target } => self.transfer = Some(target.clone()),
                    _ => {}
                }
            }
            TurnAction::Hangup { outcome } => {
                tracing::info!(%outcome, "agent ending the call");
                self.hangup = Some(outcome);
            }
        }
    }

    fn fail(&mut self, stage: StageKind, error: StageError) {
        self.pending.push_back(TurnEvent::Failed { stage, error });
    }

    /// Queues reply audio; the first of a turn closes its latency record.
    fn play(&mut self, samples: &[i16], mark: Mark, io: &mut AppIo<'_>) {
        let queued = Duration::from_millis(ms(self.outbox.pending(io), io.rate));
        self.outbox.push(samples, Some(mark));
        let turn = self.caller_messages();
        let start_ms = io.tick * 20 + queued.as_millis() as u64;
        self.replies.queued(turn, start_ms);
        if let Some(mut l) = self.latency.take() {
            l.first_frame_out(Instant::now() + queued);
            l.log("llm", self.turns);
            self.report.latency(self.turns, &l);
        }
    }

    /// Caller messages in the history so far: the conversation turn replies belong to.
    fn caller_messages(&self) -> usize {
        let history = self.engine.history();
        history.iter().filter(|m| m.role == Role::User).count()
    }

    fn listen(&mut self, io: &mut AppIo<'_>) {
        let Some(frame) = io.caller else {
            return;
        };
        let talking = self.outbox.pending(io) > 0
            || self.engine.is_busy()
            || !self.fallback.is_empty()
            || !self.held.is_empty();
        let ending = self.engine.ending().is_some();
        for heard in self
            .listener
            .push(frame, io.rate, io.tick * 20, talking && !ending)
        {
            match heard {
                Heard::SpeechStarted => self.open_segment(io),
                Heard::Pause => {
                    self.outbox.pause(io.tick * 20);
                    tracing::info!(
                        queued_ms = ms(self.outbox.pending(io), io.rate),
                        "agent paused: caller talking over it"
                    );
                }
                Heard::Interrupt => self.barge_in(io),
                Heard::Resume => {
                    self.discard_segment(io);
                    self.resume("too short");
                }
                Heard::Utterance {
                    pcm,
                    start_ms,
                    end_ms,
                    paused_agent,
                    over_agent,
                } => {
                    if !self.greeted {
                        // The callee's hello: now greet (it is not a turn).
                        self.discard_segment(io);
                        self.greet(io);
                    } else if ending {
                        self.discard_segment(io);
                        self.resume("call ending");
                    } else if self.end_utterance(&pcm, (start_ms, end_ms), io) {
                        self.awaiting_backchannel = over_agent;
                    } else if paused_agent {
                        self.resume("not recognized");
                    }
                }
            }
        }
        if self.streamed.is_some() {
            if self.listener.in_speech() {
                self.stream_audio(io);
            } else {
                // Speech too short to be an utterance: what was sent is not a turn.
                self.discard_segment(io);
            }
        }
    }

    /// Speech started: with a streaming recognizer, its audio is sent from now on.
    fn open_segment(&mut self, io: &mut AppIo<'_>) {
        if !self.greeted || self.engine.ending().is_some() {
            return;
        }
        if self.stt_session.is_none() {
            // A failure is reported at the endpoint, as without streaming.
            match self.stt.start(io.rate, &[]) {
                Ok(s) => self.stt_session = Some(s),
                Err(_) => return,
            }
        }
        if self.stt_session.as_ref().is_some_and(|s| s.streams_audio()) {
            self.segments.open();
            self.streamed = Some(0);
        }
    }

    /// Sends the streamed speech's new audio (the pre-roll first).
    fn stream_audio(&mut self, io: &mut AppIo<'_>) {
        let Some(done) = self.streamed else {
            return;
        };
        let audio = self.listener.speech_audio();
        let Some(new) = audio.get(done..).filter(|a| !a.is_empty()) else {
            return;
        };
        let sent = match self.stt_session.as_mut() {
            Some(s) => s.push_audio(new),
            None => return,
        };
        self.streamed = Some(audio.len());
        if let Err(error) = sent {
            self.stt_failed(error, io);
        }
    }

    /// The streamed speech ended without being an utterance: its end is marked so the
    /// recognizer flushes it, and whatever it recognizes is dropped.
    fn discard_segment(&mut self, io: &mut AppIo<'_>) {
        if self.streamed.take().is_none() {
            return;
        }
        if let Some(Err(error)) = self.stt_session.as_mut().map(|s| s.end_utterance()) {
            self.stt_failed(error, io);
            return;
        }
        let done = self.segments.close(false, io.tick * 20);
        self.ready_finals.extend(done);
        if let Some(a) = self.early.abandon() {
            self.early_act(a);
        }
    }

    /// The recognizer session failed: the caller's words are lost.
    fn stt_failed(&mut self, error: StageError, io: &mut AppIo<'_>) {
        self.stt_session = None;
        self.streamed = None;
        self.segments.clear();
        self.awaiting_final = false;
        if let Some(a) = self.early.abandon() {
            self.early_act(a);
        }
        self.resume("recognizer failed");
        self.callers.lost();
        self.feed(fail(StageKind::Stt, error), io);
    }

    /// Barge-in: clears the agent's audio and tells the engine what was heard.
    fn barge_in(&mut self, io: &mut AppIo<'_>) {
        self.awaiting_backchannel = false;
        // The caller heard the agent up to the pause, if it was paused.
        let at_ms = self.outbox.paused_at().unwrap_or(io.tick * 20);
        let report = self.outbox.clear(io);
        self.held.clear();
        self.fallback.clear();
        self.replies.barge_in(at_ms);
        tracing::info!(heard_up_to = ?report.last_played, "barge-in: agent speech cleared");
        self.feed(
            TurnEvent::BargeIn {
                last_played: report.last_played,
            },
            io,
        );
    }

    /// The agent goes on where it paused.
    fn resume(&mut self, why: &str) {
        self.awaiting_backchannel = false;
        if self.outbox.is_paused() {
            self.outbox.resume();
            tracing::info!(why, "agent resumed");
        }
    }

    fn greet(&mut self, io: &mut AppIo<'_>) {
        self.greeted = true;
        self.feed(TurnEvent::Start, io);
    }

    /// The endpoint is decided: the utterance goes to the recognizer.
    /// Returns whether it was sent.
    fn end_utterance(&mut self, pcm: &[i16], span: (u64, u64), io: &mut AppIo<'_>) -> bool {
        if self.stt_session.is_none() {
            // (A session opened now heard none of this speech: it gets all of it.)
            self.streamed = None;
            match self.stt.start(io.rate, &[]) {
                Ok(s) => self.stt_session = Some(s),
                Err(error) => {
                    self.feed(fail(StageKind::Stt, error), io);
                    return false;
                }
            }
        }
        let Some(session) = self.stt_session.as_mut() else {
            return false;
        };
        // Streamed: only what was not sent yet (nothing, normally), then the end mark.
        let streamed = self.streamed.take();
        let streams = session.streams_audio();
        let rest = pcm.get(streamed.unwrap_or(0)..).unwrap_or(&[]);
        let sent = session
            .push_audio(rest)
            .and_then(|()| session.end_utterance());
        match sent {
            Ok(()) => {
                self.callers.sent(span.0, span.1);
                self.turns += 1;
                self.awaiting_final = true;
                self.latency = Some(TurnLatency::new(
                    Instant::now(),
                    Duration::from_millis(self.listener.silence_ms()),
                ));
                if streams {
                    // Not streamed (the session started at this endpoint): one segment.
                    self.segments.open();
                    let done = self.segments.close(true, io.tick * 20);
                    self.ready_finals.extend(done);
                }
                true
            }
            Err(error) => {
                self.stt_session = None;
                self.segments.clear();
                self.feed(fail(StageKind::Stt, error), io);
                false
            }
        }
    }

    /// Drains every stage's ready output into the engine.
    fn poll_stages(&mut self, io: &mut AppIo<'_>) {
        let mut cx = Context::from_waker(Waker::noop());
        self.poll_early(&mut cx);
        while let Some(s) = self.stt_session.as_mut() {
            let streams = s.streams_audio();
            match s.poll_event(&mut cx) {
                Poll::Ready(Some(Ok(SttEvent::Final {
                    text, confidence, ..
                }))) => {
                    self.last_confidence = confidence;
                    if streams {
                        let done = self.segments.final_text(&text);
                        self.ready_finals.extend(done);
                        self.caller_finals(io);
                    } else {
                        self.caller_final(text, confidence, io);
                    }
                }
                Poll::Ready(Some(Ok(SttEvent::Partial { text }))) => {
                    if let Some(hypothesis) = self.segments.partial(&text)
                        && let Some(a) = self.early.partial(&hypothesis, io.tick * 20)
                    {
                        self.early_act(a);
                    }
                }
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(error))) => self.stt_failed(error, io),
                Poll::Ready(None) => {
                    // Speech being streamed starts over with the next session, whole.
                    self.stt_session = None;
                    self.streamed = None;
                    self.segments.clear();
                    if streams {
                        self.awaiting_final = false;
                    }
                }
                Poll::Pending => break,
            }
        }
        let expired = self.segments.expire(io.tick * 20, STREAM_FINAL_WAIT_MS);
        self.ready_finals.extend(expired);
        self.caller_finals(io);
        let listening = self.streamed.is_some() && self.may_speculate(io);
        if let Some(a) = self.early.poll_start(io.tick * 20, listening) {
            self.early_act(a);
        }
        let mut progressed = false;
        while let Some(s) = self.llm_stream.as_mut() {
            match s.poll_delta(&mut cx) {
                Poll::Ready(Some(Ok(delta))) => {
                    progressed = true;
                    if let Some(l) = self.latency.as_mut() {
                        l.llm_first_token(Instant::now());
                    }
                    self.feed(TurnEvent::Llm(delta), io);
                }
                Poll::Ready(Some(Err(error))) => {
                    self.llm_stream = None;
                    self.feed(fail(StageKind::Llm, error), io);
                }
                Poll::Ready(None) => {
                    self.llm_stream = None;
                    self.feed(TurnEvent::LlmEnded, io);
                }
                Poll::Pending => break,
            }
        }
        while let Some(s) = self.tts_session.as_mut() {
            match s.poll_audio(&mut cx) {
                Poll::Ready(Some(Ok(audio))) => {
                    progressed = true;
                    if let Some(l) = self.latency.as_mut() {
                        l.tts_first_audio(Instant::now());
                    }
                    self.feed(TurnEvent::TtsAudio(audio), io);
                }
                Poll::Ready(Some(Err(error))) => {
                    self.tts_session = None;
                    self.feed(fail(StageKind::Tts, error), io);
                }
                Poll::Ready(None) => {
                    self.tts_session = None;
                    self.feed(TurnEvent::TtsEnded, io);
                }
                Poll::Pending => break,
            }
        }
        let waiting = self.llm_stream.is_some() || self.tts_session.is_some();
        self.stalled_ticks = if waiting && !progressed {
            self.stalled_ticks + 1
        } else {
            0
        };
        if self.stalled_ticks * 20 >= STALL_MS {
            self.stalled_ticks = 0;
            let stage = if self.llm_stream.is_some() {
                StageKind::Llm
            } else {
                StageKind::Tts
            };
            let error = StageError::Provider {
                stage: stage.to_string(),
                reason: format!("no output for {} s", STALL_MS / 1000),
            };
            self.feed(fail(stage, error), io);
        }
    }

    /// Hands the streamed utterances completed so far to the engine.
    fn caller_finals(&mut self, io: &mut AppIo<'_>) {
        if self.ready_finals.is_empty() {
            return;
        }
        while let Some(text) = self.ready_finals.pop_front() {
            let confidence = self.last_confidence;
            self.caller_final(text, confidence, io);
        }
        self.awaiting_final = self.segments.awaiting();
    }

    /// The recognizer's text for one caller utterance.
    fn caller_final(&mut self, text: String, confidence: f32, io: &mut AppIo<'_>) {
        if let Some(l) = self.latency.as_mut() {
            l.stt_final(Instant::now());
        }
        tracing::info!(%text, confidence, "caller said");
        self.awaiting_final = false;
        self.callers
            .recognized(&mut self.report, &text, io.tick * 20);
        if self.awaiting_backchannel {
            if text.trim().is_empty() || self.settings.is_backchannel(&text) {
                // "uh-huh" over the agent: it goes on, and it is not a turn.
                tracing::info!(%text, "caller backchannel: not a turn");
                self.latency = None;
                self.resume("backchannel");
                if let Some(a) = self.early.abandon() {
                    self.early_act(a);
                }
                return;
            }
            if self.outbox.is_paused() {
                self.barge_in(io);
            }
            self.awaiting_backchannel = false;
        }
        match self.early.final_text(&text) {
            Some(EarlyAction::Adopt(adopted)) => {
                if let Some((stream, request)) = self.early_stream.take() {
                    self.adopt = Some(Adoption {
                        stream,
                        request,
                        adopted,
                        first_token: self.early_first_token.take(),
                    });
                }
            }
            Some(a) => self.early_act(a),
            None => {}
        }
        self.feed(TurnEvent::UserText(text), io);
        if let Some(a) = self.adopt.take() {
            cancel_early(a.stream, "no reply for this text");
        }
    }

    /// Whether a completion may start early now: the agent is idle and waits for nothing.
    fn may_speculate(&self, io: &AppIo<'_>) -> bool {
        self.greeted
            && self.listener.in_speech()
            && !self.awaiting_final
            && self.engine.ending().is_none()
            && !self.engine.is_busy()
            && self.fallback.is_empty()
            && self.held.is_empty()
            && self.outbox.pending(io) == 0
    }

    /// Carries out an early-start decision (adoption happens at the engine's `StartLlm`).
    fn early_act(&mut self, action: EarlyAction) {
        match action {
            EarlyAction::Start(text) => {
                let request = self.engine.request_for(&text);
                match self.llm.start(&request) {
                    Ok(stream) => {
                        tracing::info!(%text, "early LLM start on a stable partial");
                        self.early_stream = Some((stream, request));
                        self.early_first_token = None;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "early LLM start failed; waiting for the final");
                        self.early.abandon();
                    }
                }
            }
            EarlyAction::Cancel => {
                if let Some((stream, _)) = self.early_stream.take() {
                    cancel_early(stream, "the caller's words changed");
                }
                self.early_first_token = None;
            }
            // Only `caller_final` adopts, at the engine's `StartLlm`.
            EarlyAction::Adopt(_) => {}
        }
    }

    /// Buffers the speculative completion's deltas (never spoken before adoption).
    fn poll_early(&mut self, cx: &mut Context<'_>) {
        while let Some((s, _)) = self.early_stream.as_mut() {
            match s.poll_delta(cx) {
                Poll::Ready(Some(Ok(delta))) => {
                    self.early_first_token.get_or_insert_with(Instant::now);
                    self.early.delta(delta);
                }
                Poll::Ready(Some(Err(error))) => {
                    tracing::warn!(%error, "early completion failed; waiting for the final");
                    if let Some(a) = self.early.abandon() {
                        self.early_act(a);
                    }
                }
                Poll::Ready(None) => {
                    self.early.stream_ended();
                    break;
                }
                Poll::Pending => break,
            }
        }
    }

    /// The final matched: the speculative completion becomes the turn's, its buffered
    /// deltas first.
    fn adopt_early(&mut self, a: Adoption) {
        metrics::counter!(crate::telemetry::metrics::AGENT_EARLY_LLM, "result" => "hit")
            .increment(1);
        tracing::info!(text = %a.adopted.text, "early LLM start adopted");
        if let Some(l) = self.latency.as_mut() {
            l.llm_started_early(a.first_token);
        }
        let ended = a.adopted.ended;
        if !ended {
            self.llm_stream = Some(a.stream);
        }
        self.pending
            .extend(a.adopted.deltas.into_iter().map(TurnEvent::Llm));
        if ended {
            self.pending.push_back(TurnEvent::LlmEnded);
        }
    }

    /// Plays finished fallback lines, then the stage audio held behind them, then the
    /// hang-up mark once everything is queued.
    fn drain_fallback(&mut self, io: &mut AppIo<'_>) {
        while let Some((rx, _)) = self.fallback.front() {
            match rx.try_recv() {
                Ok(pcm) => {
                    let text = self.fallback.pop_front().map(|f| f.1).unwrap_or_default();
                    let start_ms = io.tick * 20 + ms(self.outbox.pending(io), io.rate);
                    self.outbox.push(&pcm, None);
                    let end_ms = start_ms + ms(pcm.len(), io.rate);
                    self.report
                        .say(Speaker::Agent, &text, (start_ms, end_ms), false);
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.fallback.pop_front();
                }
            }
        }
        while let Some((samples, mark)) = self.held.pop_front() {
            self.play(&samples, mark, io);
        }
        if self.hangup.is_some() && !self.hangup_queued {
            self.hangup_queued = true;
            self.outbox.push(&[], Some(HANGUP_MARK));
        }
    }
}

impl LlmAgentApp {
    /// A pause with no transcript for too long becomes an interruption; silence on both
    /// sides for `no_input_ms` runs the engine's no-input.
    fn watch_pause_and_silence(&mut self, io: &mut AppIo<'_>) {
        if self.outbox.paused_for_ms(io.tick * 20) >= Some(PAUSE_LIMIT_MS)
            && !self.listener.in_speech()
        {
            self.barge_in(io);
        }
        let idle = self.greeted
            && !self.listener.in_speech()
            && !self.awaiting_final
            && !self.engine.is_busy()
            && self.engine.ending().is_none()
            && self.fallback.is_empty()
            && self.outbox.is_idle(io);
        self.quiet_ticks = if idle { self.quiet_ticks + 1 } else { 0 };
        if self.quiet_ticks * 20 >= self.engine.no_input_ms() {
            self.quiet_ticks = 0;
            tracing::info!("no input from the caller");
            self.feed(TurnEvent::NoInput, io);
        }
    }
}

/// The VAD `settings` name (checked when the agent file loaded); the energy VAD if it
/// cannot be built.
pub(super) fn build_vad(settings: &TurnSettings) -> Box<dyn crate::agent::stages::Vad> {
    StageRegistry::with_builtins()
        .build_vad(&settings.vad, &|_| None)
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "agent vad: using the energy VAD");
            Box::new(EnergyVad::default())
        })
}

/// Whether `actual` is the turn `early` speculated on: the same conversation and tools, the
/// caller's message the same words (its text may differ in case and punctuation).
fn same_turn(early: &ChatRequest, actual: &ChatRequest) -> bool {
    let (Some((e_last, e_rest)), Some((a_last, a_rest))) =
        (early.messages.split_last(), actual.messages.split_last())
    else {
        return false;
    };
    early.tools == actual.tools
        && e_rest == a_rest
        && e_last.role == Role::User
        && a_last.role == Role::User
        && normalize(&e_last.content) == normalize(&a_last.content)
}

/// Abandons a speculative completion, counting the miss.
fn cancel_early(mut stream: Box<dyn LlmStream>, why: &str) {
    stream.cancel();
    metrics::counter!(crate::telemetry::metrics::AGENT_EARLY_LLM, "result" => "miss").increment(1);
    tracing::info!(why, "early LLM start cancelled");
}

fn fail(stage: StageKind, error: StageError) -> TurnEvent {
    TurnEvent::Failed { stage, error }
}

impl MediaApp for LlmAgentApp {
    fn on_tick(&mut self, io: &mut AppIo<'_>) {
        if !self.started {
            self.started = true;
            self.start_tick = io.tick;
            if self.settings.greeting_wait == GreetingWait::None {
                self.greet(io);
            }
        }
        if !self.greeted && (io.tick - self.start_tick) * 20 >= self.settings.hello_timeout_ms {
            tracing::info!("no hello from the callee: greeting");
            self.greet(io);
        }
        self.listen(io);
        self.poll_stages(io);
        self.drain_fallback(io);
        self.watch_pause_and_silence(io);
        self.outbox.feed(io, LEAD_FRAMES * io.rate as usize / 50);
    }

    fn on_event(&mut self, event: &LegEvent, io: &mut AppIo<'_>) {
        match event {
            LegEvent::Dtmf { digit, .. } => self.feed(TurnEvent::Dtmf(*digit), io),
            LegEvent::Mark(MarkEvent::Played(HANGUP_MARK)) => {
                if let Some(target) = self.transfer.take() {
                    if io.transfer(target.as_str()) {
                        return;
                    }
                    io.finish("agent could not transfer: this leg cannot transfer");
                    return;
                }
                let outcome = self.hangup.as_deref().unwrap_or("completed");
                io.finish(format!("agent hung up (outcome {outcome})"));
            }
            LegEvent::Mark(MarkEvent::Played(m)) => {
                self.replies.played(io.tick * 20);
                self.feed(TurnEvent::MarkPlayed(*m), io);
            }
            LegEvent::TransferFailed(why) => {
                tracing::info!(reason = %why, "agent: the transfer failed; the conversation goes on");
                self.hangup = None;
                self.hangup_queued = false;
                self.transfer = None;
                self.feed(TurnEvent::TransferFailed(why.clone()), io);
            }
            _ => {}
        }
    }

    fn take_report(&mut self) -> Option<AgentReport> {
        let mut report = std::mem::replace(&mut self.report, AgentReport::new("llm"));
        self.replies.finish(&mut report, self.engine.history());
        report.sort_turns();
        Some(report)
    }
}

/// Milliseconds of `samples` at `rate` Hz.
fn ms(samples: usize, rate: u32) -> u64 {
    samples as u64 * 1000 / u64::from(rate.max(1))
}

/// The embedded voice as a [`Tts`] stage: each pushed sentence is synthesized by flite on
/// the shared service thread.
struct ServiceTts(Arc<AgentServices>);

impl Tts for ServiceTts {
    fn start(&mut self, rate: u32) -> Result<Box<dyn TtsSession>, StageError> {
        Ok(Box::new(ServiceTtsSession {
            services: self.0.clone(),
            rate,
            jobs: VecDeque::new(),
            ready: VecDeque::new(),
            pushed: 0,
            finished: false,
        }))
    }
}

/// One reply on the embedded voice.
struct ServiceTtsSession {
    services: Arc<AgentServices>,
    rate: u32,
    /// Pieces being synthesized, with where each starts in the pushed text and the bytes it
    /// completes.
    jobs: VecDeque<(Receiver<crate::agent::tts_flite::TimedSpeech>, usize, usize)>,
    /// Audio of a finished piece not yet taken: one chunk per word, its mark at the word.
    ready: VecDeque<TtsAudio>,
    pushed: usize,
    finished: bool,
}

impl TtsSession for ServiceTtsSession {
    fn push_text(&mut self, text: &str) -> Result<(), StageError> {
        let closed = || StageError::Closed {
            stage: "tts flite".into(),
        };
        if self.finished {
            return Err(closed());
        }
        let start = self.pushed;
        self.pushed += text.len();
        let rx = self
            .services
            .synthesize_words(text, self.rate)
            .ok_or_else(|| StageError::Provider {
                stage: "tts flite".into(),
                reason: "the synthesis queue is full".into(),
            })?;
        self.jobs.push_back((rx, start, self.pushed));
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StageError> {
        self.finished = true;
        Ok(())
    }

    fn cancel(&mut self) {
        self.jobs.clear();
        self.ready.clear();
        self.finished = true;
    }

    fn poll_audio(&mut self, _cx: &mut Context<'_>) -> Poll<Option<Result<TtsAudio, StageError>>> {
        if let Some(chunk) = self.ready.pop_front() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        let Some((rx, start, done)) = self.jobs.front() else {
            return if self.finished {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        };
        let (start, done) = (*start, *done);
        match rx.try_recv() {
            Ok(speech) => {
                self.jobs.pop_front();
                let frame = self.rate as usize / 50;
                self.ready
                    .extend(speech.word_chunks(frame, Some(start), done));
                match self.ready.pop_front() {
                    Some(chunk) => Poll::Ready(Some(Ok(chunk))),
                    None => Poll::Ready(Some(Ok(TtsAudio {
                        samples: Vec::new(),
                        text_done: Some(done),
                    }))),
                }
            }
            Err(TryRecvError::Empty) => Poll::Pending,
            Err(TryRecvError::Disconnected) => {
                self.jobs.clear();
                Poll::Ready(Some(Err(StageError::Provider {
                    stage: "tts flite".into(),
                    reason: "the embedded voice stopped".into(),
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{ScriptedLlm, ScriptedReply, ScriptedStt, StageConfig, StageRegistry};
    use crate::leg::harness::AppHarness;

    const RATE: u32 = 8000;

    fn mode(greeting: &str) -> LlmMode {
        LlmMode {
            llm: StageConfig::named("scripted"),
            system_prompt: "Be brief.".into(),
            greeting: Some(greeting.into()),
            tools: vec!["end_call", "set_outcome"],
            fallback_line: "Sorry, one moment.".into(),
            max_tool_rounds: 4,
            no_input_ms: 6000,
            reprompt: "Are you still there?".into(),
            max_reprompts: 2,
            silence_hangup: "Goodbye.".into(),
        }
    }

    fn silence_tts(ms_per_char: i64) -> Box<dyn Tts> {
        let mut c = StageConfig::named("silence");
        c.params.insert("ms_per_char".into(), ms_per_char.into());
        StageRegistry::with_builtins()
            .build_tts(&c, &|_| None)
            .unwrap()
    }

    fn goodbye() -> Box<dyn Llm> {
        Box::new(ScriptedLlm::new([ScriptedReply {
            text: "Sure. You're booked. Goodbye!".into(),
            tools: vec![
                ("set_outcome".into(), "{\"disposition\":\"booked\"}".into()),
                ("end_call".into(), "{}".into()),
            ],
        }]))
    }

    /// Loud 20 ms frames while `talking(tick)`, silence otherwise.
    fn caller(tick: u64, talking: impl Fn(u64) -> bool) -> Vec<i16> {
        (0..RATE as usize / 50)
            .map(|i| {
                if talking(tick) {
                    ((i as f32 * 0.3).sin() * 8000.0) as i16
                } else {
                    0
                }
            })
            .collect()
    }

    /// Runs the app tick by tick until it hangs up; returns the reason and the tick.
    fn run(
        app: &mut LlmAgentApp,
        talking: impl Fn(u64) -> bool,
        wall_clock: bool,
    ) -> (String, u64) {
        let mut h = AppHarness::new(RATE);
        for t in 0..3000 {
            if let Some(reason) = h.tick(Some(&caller(t, &talking)), app) {
                return (reason, t);
            }
            if wall_clock {
                // The embedded voice runs on a real thread.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        panic!(
            "the agent never hung up; history: {:?}",
            app.engine.history()
        );
    }

    #[test]
    fn a_turn_runs_from_speech_to_hang_up_with_the_outcome() {
        let stt = Box::new(ScriptedStt::new(["book me for friday".to_owned()], 0.9));
        let mut app = LlmAgentApp::new(
            AgentServices::start(),
            mode("Hello."),
            stt,
            goodbye(),
            Some(silence_tts(10)),
        );
        // The caller talks from 0.4 s to 1 s.
        let (reason, tick) = run(&mut app, |t| (20..50).contains(&t), false);
        assert_eq!(reason, "agent hung up (outcome booked)");
        let h = app.engine.history();
        assert_eq!(h[2].content, "book me for friday");
        assert_eq!(h[3].content, "Sure. You're booked. Goodbye!");
        // Endpoint 400 ms after 1 s, then ~29 chars * 10 ms of speech, then the hang-up mark.
        assert!((70..=110).contains(&tick), "hung up at tick {tick}");
        let r = app.take_report().unwrap();
        let said: Vec<_> = r
            .turns
            .iter()
            .map(|t| (t.speaker.as_str(), t.text.as_str(), t.interrupted))
            .collect();
        assert_eq!(
            said,
            [
                ("agent", "Hello.", false),
                ("caller", "book me for friday", false),
                ("agent", "Sure. You're booked. Goodbye!", false),
            ]
        );
        let caller = &r.turns[1];
        assert!((400..=500).contains(&caller.start_ms), "{caller:?}");
        assert!((950..=1050).contains(&caller.end_ms), "{caller:?}");
        let reply = &r.turns[2];
        assert!(
            reply.start_ms >= caller.end_ms && reply.end_ms <= tick * 20,
            "{reply:?}"
        );
        assert_eq!(r.disposition.as_deref(), Some("booked"));
        let tools: Vec<_> = r.tool_calls.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tools, ["set_outcome", "end_call"]);
        assert_eq!(r.latency.len(), 1);
        assert!(r.latency[0].llm_first_token_ms.is_some());
    }

    #[test]
    fn barge_in_cuts_the_greeting_to_what_was_heard() {
        let stt = Box::new(ScriptedStt::new(["stop".to_owned()], 0.9));
        let greeting = "Hello there. This is a very long greeting that goes on and on.";
        let mut app = LlmAgentApp::new(
            AgentServices::start(),
            mode(greeting),
            stt,
            goodbye(),
            Some(silence_tts(60)),
        )
        .with_barge_in(Duration::ZERO);
        // The greeting lasts ~3.8 s; the caller talks over it from 1 s.
        let (reason, _) = run(&mut app, |t| (50..80).contains(&t), false);
        assert_eq!(reason, "agent hung up (outcome booked)");
        let heard = &app.engine.history()[1].content;
        assert!(
            heard.len() < greeting.len() && greeting.starts_with(heard.as_str()),
            "greeting kept as {heard:?}"
        );
        // The voice gives the greeting as one chunk: none of its text counts as heard, and
        // the transcript holds no agent line for it (an interrupted line when some was heard).
        let heard = heard.clone();
        let r = app.take_report().unwrap();
        let agent: Vec<_> = r
            .turns
            .iter()
            .filter(|t| t.speaker == Speaker::Agent)
            .collect();
        if heard.is_empty() {
            assert_eq!(agent.len(), 1, "{:?}", r.turns);
        } else {
            assert_eq!(
                (agent[0].text.as_str(), agent[0].interrupted),
                (heard.as_str(), true)
            );
        }
        let caller: Vec<_> = r
            .turns
            .iter()
            .filter(|t| t.speaker == Speaker::Caller)
            .collect();
        assert_eq!(caller[0].text, "stop");
        let last = r.turns.last().unwrap();
        assert_eq!(
            (last.text.as_str(), last.interrupted),
            ("Sure. You're booked. Goodbye!", false)
        );
    }

    struct FailingLlm;

    impl Llm for FailingLlm {
        fn start(
            &mut self,
            _request: &crate::agent::stages::ChatRequest,
        ) -> Result<Box<dyn LlmStream>, StageError> {
            Err(StageError::Provider {
                stage: "llm test".into(),
                reason: "HTTP 500".into(),
            })
        }
    }

    #[test]
    fn a_failing_model_gets_the_fallback_line_then_ends_with_agent_error() {
        let stt = Box::new(ScriptedStt::new(["hello?".to_owned()], 0.9));
        let mut app = LlmAgentApp::new(
            AgentServices::start(),
            mode("Hi."),
            stt,
            Box::new(FailingLlm),
            Some(silence_tts(10)),
        );
        let (reason, _) = run(&mut app, |t| (20..50).contains(&t), true);
        assert_eq!(reason, "agent hung up (outcome agent_error)");
        assert!(app.fallback.is_empty() && app.held.is_empty());
    }

    /// Ticks the app `ticks` times with the caller talking while `talking(tick)`; returns
    /// whether agent audio went out on each tick, and the hang-up reason if any.
    fn ticks(
        app: &mut LlmAgentApp,
        ticks: u64,
        talking: impl Fn(u64) -> bool,
        tick_ms: u64,
    ) -> (Vec<bool>, Option<String>) {
        let mut h = AppHarness::new(RATE);
        let mut sent = Vec::new();
        for t in 0..ticks {
            let end = h.tick(Some(&caller(t, &talking)), app);
            sent.push(h.sent_audio);
            if end.is_some() {
                return (sent, end);
            }
            std::thread::sleep(Duration::from_millis(tick_ms));
        }
        (sent, None)
    }

    const LONG: &str = "Hello there. This is a long greeting that goes on for a good while.";

    #[test]
    fn a_backchannel_pauses_the_agent_then_it_resumes_where_it_stopped() {
        let stt = Box::new(ScriptedStt::new(["Uh-huh.".to_owned()], 0.9));
        let mut app = LlmAgentApp::new(
            AgentServices::start(),
            mode(LONG),
            stt,
            goodbye(),
            Some(silence_tts(40)),
        )
        .with_barge_in(Duration::from_millis(300));
        // The greeting lasts 68 chars * 40 ms = 2.7 s; "uh-huh" from 0.4 s to 0.9 s.
        let (sent, end) = ticks(&mut app, 300, |t| (20..45).contains(&t), 0);
        assert_eq!(end, None);
        // Paused 300 ms into the speech (VAD start at 0.46 s): silent from the next tick
        // (one queued frame) until the utterance ends (0.9 s + 400 ms) and the transcript
        // says "uh-huh".
        let first_quiet = (1..sent.len()).find(|&t| sent[t - 1] && !sent[t]).unwrap();
        let back = (first_quiet..sent.len()).find(|&t| sent[t]).unwrap();
        assert!(
            (36..=39).contains(&first_quiet),
            "quiet from tick {first_quiet}"
        );
        assert!((64..=67).contains(&back), "resumed at tick {back}");
        // Every frame of the greeting went out: as many as with a silent caller.
        let frames = sent.iter().filter(|&&a| a).count();
        let mut quiet = LlmAgentApp::new(
            AgentServices::start(),
            mode(LONG),
            Box::new(ScriptedStt::new(Vec::<String>::new(), 0.9)),
            goodbye(),
            Some(silence_tts(40)),
        );
        let (all, _) = ticks(&mut quiet, 300, |_| false, 0);
        assert_eq!(frames, all.iter().filter(|&&a| a).count());
        assert!(frames >= LONG.len() * 2, "{frames} frames");
        assert_eq!(app.engine.history()[1].content, LONG);
        assert_eq!(app.engine.history().len(), 2, "a backchannel is not a turn");
        let r = app.take_report().unwrap();
        let agent = r
            .turns
            .iter()
            .find(|t| t.speaker == Speaker::Agent)
            .unwrap();
        assert_eq!((agent.text.as_str(), agent.interrupted), (LONG, false));
    }

    /// An agent greeting with `LONG` whose caller says "Wait, who is this?" over it from
    /// tick 20 to 45, with the barge-in minimum `barge_in` (`None`: the default); returns
    /// the app, the frames sent and how the call ended.
    fn sentence_over_the_greeting(
        barge_in: Option<Duration>,
    ) -> (LlmAgentApp, Vec<bool>, Option<String>) {
        let stt = Box::new(ScriptedStt::new(["Wait, who is this?".to_owned()], 0.9));
        let mut app = LlmAgentApp::new(
            AgentServices::start(),
            mode(LONG),
            stt,
            goodbye(),
            Some(silence_tts(40)),
        );
        if let Some(min) = barge_in {
            app = app.with_barge_in(min);
        }
        let (sent, end) = ticks(&mut app, 200, |t| (20..45).contains(&t), 0);
        (app, sent, end)
    }

    /// The default pauses at the VAD's speech start: talking from tick 20, the VAD starts
    /// after 60 ms of speech (tick 22) and the next frame is already quiet.
    #[test]
    fn by_default_the_agent_goes_quiet_two_frames_into_the_callers_speech() {
        let (_, sent, _) = sentence_over_the_greeting(None);
        let first_quiet = (1..sent.len()).find(|&t| sent[t - 1] && !sent[t]).unwrap();
        // Speech from tick 20: the early pause after 40 ms of it, a frame before the VAD's
        // 60 ms start.
        assert!(
            (21..=22).contains(&first_quiet),
            "quiet from tick {first_quiet}"
        );
    }

    #[test]
    fn a_sentence_over_the_agent_pauses_it_then_clears_it() {
        let (app, sent, end) = sentence_over_the_greeting(Some(Duration::from_millis(300)));
        assert_eq!(end.as_deref(), Some("agent hung up (outcome booked)"));
        let first_quiet = (1..sent.len()).find(|&t| sent[t - 1] && !sent[t]).unwrap();
        assert!(
            (36..=39).contains(&first_quiet),
            "quiet from tick {first_quiet}"
        );
        let h = app.engine.history();
        assert!(
            h[1].content.len() < LONG.len() && LONG.starts_with(h[1].content.as_str()),
            "greeting kept as {:?}",
            h[1].content
        );
        assert_eq!(h[2].content, "Wait, who is this?");
    }

    #[test]
    fn long_speech_over_the_agent_clears_it_without_waiting_for_the_transcript() {
        let stt = Box::new(ScriptedStt::new(["uh-huh".to_owned()], 0.9));
        let mut app = LlmAgentApp::new(
            AgentServices::start(),
            mode(LONG),
            stt,
            goodbye(),
            Some(silence_tts(40)),
        );
        // 1.2 s of speech: past max_backchannel_ms (800), so it interrupts, and its
        // transcript is then a turn even though it is a backchannel word.
        let (_, end) = ticks(&mut app, 200, |t| (20..80).contains(&t), 0);
        assert_eq!(end.as_deref(), Some("agent hung up (outcome booked)"));
        let h = app.engine.history();
        assert!(h[1].content.len() < LONG.len(), "{:?}", h[1].content);
        assert_eq!(h[2].content, "uh-huh");
    }

    #[test]
    fn the_greeting_starts_within_500_ms_of_answer_on_the_embedded_voice() {
        let stt = Box::new(ScriptedStt::new(Vec::<String>::new(), 0.9));
        let mut app =
            LlmAgentApp::new(AgentServices::start(), mode("Hello."), stt, goodbye(), None);
        // Ticks paced at 20 ms of wall clock, as on a call: flite runs on its thread.
        let (sent, _) = ticks(&mut app, 50, |_| false, 20);
        let first = sent.iter().position(|&a| a).expect("no greeting audio");
        assert!(first * 20 < 500, "first frame at tick {first}");
    }

    #[test]
    fn greeting_wait_hello_greets_after_the_callees_first_utterance_or_the_timeout() {
        let hello = TurnSettings {
            greeting_wait: GreetingWait::Hello,
            hello_timeout_ms: 2000,
            ..TurnSettings::default()
        };
        let stt = || Box::new(ScriptedStt::new(["should not be used".to_owned()], 0.9));
        let mut app = LlmAgentApp::new(
            AgentServices::start(),
            mode("Hello."),
            stt(),
            goodbye(),
            Some(silence_tts(20)),
        )
        .with_turns(&hello);
        // "Hello?" from 0.2 s to 0.8 s: the greeting follows the endpoint (0.8 + 0.4 s).
        let (sent, _) = ticks(&mut app, 100, |t| (10..40).contains(&t), 0);
        let first = sent.iter().position(|&a| a).expect("no greeting");
        assert!((59..=62).contains(&first), "greeting at tick {first}");
        assert_eq!(app.engine.history().len(), 2, "the hello is not a turn");
        // A silent callee: greeted at the timeout.
        let mut app = LlmAgentApp::new(
            AgentServices::start(),
            mode("Hello."),
            stt(),
            goodbye(),
            Some(silence_tts(20)),
        )
        .with_turns(&hello);
        let (sent, _) = ticks(&mut app, 150, |_| false, 0);
        let first = sent.iter().position(|&a| a).expect("no greeting");
        assert!((100..=102).contains(&first), "greeting at tick {first}");
    }

    #[test]
    fn a_silent_caller_is_reprompted_then_the_call_ends_with_no_response() {
        let mut m = mode("Hello.");
        m.no_input_ms = 1000;
        m.max_reprompts = 1;
        let stt = Box::new(ScriptedStt::new(Vec::<String>::new(), 0.9));
        let mut app = LlmAgentApp::new(
            AgentServices::start(),
            m,
            stt,
            goodbye(),
            Some(silence_tts(10)),
        );
        let (sent, end) = ticks(&mut app, 400, |_| false, 0);
        assert_eq!(end.as_deref(), Some("agent hung up (outcome no_response)"));
        let said: Vec<_> = app
            .engine
            .history()
            .iter()
            .skip(1)
            .map(|m| m.content.clone())
            .collect();
        assert_eq!(said, ["Hello.", "Are you still there?", "Goodbye."]);
        // Greeting (60 ms), 1 s of silence, the reprompt (200 ms), 1 s, the goodbye (80 ms).
        assert!(
            (115..=135).contains(&sent.len()),
            "ended at tick {}",
            sent.len()
        );
    }

    /// A streaming recognizer double: a partial with `partial` once `partial_after` samples
    /// came, the next scripted final at each end mark; it logs what happened, in order.
    struct StreamingStt {
        finals: VecDeque<String>,
        partial: Option<(usize, String)>,
        log: Arc<std::sync::Mutex<Vec<String>>>,
    }

    struct StreamingSession {
        finals: VecDeque<String>,
        partial: Option<(usize, String)>,
        pushed: usize,
        pushes: usize,
        events: VecDeque<SttEvent>,
        log: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Stt for StreamingStt {
        fn start(&mut self, _rate: u32, _: &[String]) -> Result<Box<dyn SttSession>, StageError> {
            Ok(Box::new(StreamingSession {
                finals: std::mem::take(&mut self.finals),
                partial: self.partial.take(),
                pushed: 0,
                pushes: 0,
                events: VecDeque::new(),
                log: self.log.clone(),
            }))
        }
    }

    impl SttSession for StreamingSession {
        fn push_audio(&mut self, samples: &[i16]) -> Result<(), StageError> {
            self.pushed += samples.len();
            self.pushes += usize::from(!samples.is_empty());
            if let Some((after, text)) = &self.partial
                && self.pushed >= *after
            {
                self.events
                    .push_back(SttEvent::Partial { text: text.clone() });
            }
            Ok(())
        }

        fn end_utterance(&mut self) -> Result<(), StageError> {
            let text = self.finals.pop_front().unwrap_or_default();
            self.log
                .lock()
                .unwrap()
                .push(format!("final {text:?} after {} pushes", self.pushes));
            self.pushes = 0;
            self.pushed = 0;
            self.events.push_back(SttEvent::Final {
                text,
                words: None,
                confidence: 0.9,
            });
            Ok(())
        }

        fn streams_audio(&self) -> bool {
            true
        }

        fn poll_event(
            &mut self,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<SttEvent, StageError>>> {
            match self.events.pop_front() {
                Some(e) => Poll::Ready(Some(Ok(e))),
                None => Poll::Pending,
            }
        }
    }

    /// Logs each completion started (and the user text it carries) before starting it.
    struct LoggingLlm(ScriptedLlm, Arc<std::sync::Mutex<Vec<String>>>);

    impl Llm for LoggingLlm {
        fn start(
            &mut self,
            request: &crate::agent::stages::ChatRequest,
        ) -> Result<Box<dyn LlmStream>, StageError> {
            let user = request.messages.last().map(|m| m.content.clone());
            self.1.lock().unwrap().push(format!("llm {user:?}"));
            self.0.start(request)
        }
    }

    #[test]
    fn streamed_speech_too_short_for_an_utterance_never_becomes_a_turn() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stt = Box::new(StreamingStt {
            finals: ["cough".to_owned(), "book me for friday".to_owned()].into(),
            partial: None,
            log: log.clone(),
        });
        let settings = TurnSettings {
            min_speech_ms: 1500,
            ..TurnSettings::default()
        };
        let mut app = LlmAgentApp::new(
            AgentServices::start(),
            mode("Hello."),
            stt,
            goodbye(),
            Some(silence_tts(10)),
        )
        .with_turns(&settings);
        // A 300 ms noise (under 1.5 s with its pre-roll and hangover), then 2 s of speech.
        let (reason, _) = run(
            &mut app,
            |t| (20..35).contains(&t) || (100..200).contains(&t),
            false,
        );
        assert_eq!(reason, "agent hung up (outcome booked)");
        let said: Vec<_> = app
            .engine
            .history()
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(
            said[1..4],
            [
                "Hello.",
                "book me for friday",
                "Sure. You're booked. Goodbye!"
            ]
        );
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 2, "{log:?}");
        // Streamed frame by frame (the pre-roll first), not pushed whole at the endpoint.
        assert!(log[0].starts_with("final \"cough\""), "{log:?}");
        let pushes: usize = log[1].rsplit(' ').nth(1).unwrap().parse().unwrap();
        assert!(pushes > 100, "{log:?}");
    }

    #[test]
    fn a_stable_partial_starts_the_model_before_the_final_and_the_final_text_is_kept() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stt = Box::new(StreamingStt {
            finals: ["Book me for Friday.".to_owned()].into(),
            // After ~0.8 s of streamed audio.
            partial: Some((RATE as usize * 8 / 10, "book me for friday".to_owned())),
            log: log.clone(),
        });
        let settings = TurnSettings {
            early_llm_ms: 100,
            ..TurnSettings::default()
        };
        let goodbye = ScriptedLlm::new([ScriptedReply {
            text: "Sure. You're booked. Goodbye!".into(),
            tools: vec![
                ("set_outcome".into(), "{\"disposition\":\"booked\"}".into()),
                ("end_call".into(), "{}".into()),
            ],
        }]);
        let mut app = LlmAgentApp::new(
            AgentServices::start(),
            mode("Hello."),
            stt,
            Box::new(LoggingLlm(goodbye, log.clone())),
            Some(silence_tts(10)),
        )
        .with_turns(&settings);
        let (reason, _) = run(&mut app, |t| (20..80).contains(&t), false);
        assert_eq!(reason, "agent hung up (outcome booked)");
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(log[0], "llm Some(\"book me for friday\")", "{log:?}");
        assert!(
            log[1].starts_with("final \"Book me for Friday.\""),
            "{log:?}"
        );
        let h = app.engine.history();
        assert_eq!(h[2].content, "Book me for Friday.", "the final's text");
        assert_eq!(h[3].content, "Sure. You're booked. Goodbye!");
        let r = app.take_report().unwrap();
        assert_eq!(r.latency.len(), 1);
        assert!(
            r.latency[0].llm_early,
            "the stored record says the start was early"
        );
    }
}

#[cfg(test)]
mod service_tts_tests {
    use super::*;

    /// The embedded voice of the LLM mode marks each word, so a barge-in cuts the history
    /// at the last whole word heard (not the sentence).
    #[test]
    fn the_embedded_voice_marks_each_word() {
        let mut tts = ServiceTts(AgentServices::start());
        let mut s = tts.start(8000).unwrap();
        let text = "Hello there, how are you today? ";
        s.push_text(text).unwrap();
        s.finish().unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut marks = Vec::new();
        let mut samples = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match s.poll_audio(&mut cx) {
                Poll::Ready(Some(Ok(a))) => {
                    samples += a.samples.len();
                    marks.extend(a.text_done);
                }
                Poll::Ready(None) => break,
                Poll::Ready(Some(Err(e))) => panic!("{e}"),
                Poll::Pending => {
                    assert!(Instant::now() < deadline, "no audio in 10 s");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        assert!(samples > 8000 / 2, "{samples} samples");
        assert!(marks.len() >= 6, "one mark per word: {marks:?}");
        assert!(marks.windows(2).all(|w| w[0] <= w[1]), "{marks:?}");
        assert_eq!(marks.first(), Some(&"Hello".len()), "{marks:?}");
        assert_eq!(marks.last(), Some(&text.len()), "{marks:?}");
    }
}
