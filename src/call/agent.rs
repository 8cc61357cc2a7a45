//! The `agent` app in the scripted mode: VAD endpointing (the agent file's `[vad]`), a
//! recognizer (PocketSphinx constrained to the flow state's phrases, or the agent file's
//! `[stt]` stage), the scripted flow deciding what to say and which tools to call, a voice
//! (flite, or the `[tts]` stage), barge-in (the caller talking over the agent pauses it; a
//! backchannel word resumes it, anything else clears its queued speech) and one
//! `turn latency` line per turn. The LLM mode is `agent_llm.rs`.
//!
//! The embedded recognition and synthesis are slow next to a 20 ms tick, so they run on two
//! service threads; the app only posts jobs and picks up results, never blocking the media
//! thread. Configured stages are polled without blocking.

use super::agent_pending::{PendingSpeech, PendingText, Polled};
use crate::agent::EnergyVad;
use crate::agent::flow::{Action, Flow, FlowSession};
use crate::agent::latency::TurnLatency;
use crate::agent::report::{AgentReport, CallerTurns, HeardLines};
use crate::agent::stages::{Stt, SttSession, Tts};
use crate::agent::stt_sphinx::{DEFAULT_MODEL_DIR, ExpectedPhrase, SphinxRecognizer};
use crate::agent::tools::ToolCall;
use crate::agent::tts_flite::{FliteTts, FliteVoice};
use crate::agent::turns::listener::{Heard, Listener};
use crate::agent::turns::outbox::{LEAD_FRAMES, Outbox};
use crate::agent::turns::settings::{GreetingWait, TurnSettings};
use crate::leg::{AppIo, LegEvent, MediaApp};
use crate::media::playout::{Mark, MarkEvent};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender};

/// Caller speech over the agent's audio for this long pauses it, by default: 0, at the VAD's
/// speech start (60 ms of speech), so the wire is quiet ~80 ms after the caller's onset. The
/// pause is not a cut: a cough (too short), nothing recognized, or only backchannel words
/// ("uh-huh") resume the agent where it stopped; anything else clears it (barge-in).
pub const DEFAULT_BARGE_IN_MS: u64 = 0;
/// Silence (nothing queued, no speech, nothing pending) before the flow's no-input, unless
/// the agent file sets `no_input_ms`.
pub const DEFAULT_SCRIPTED_NO_INPUT_MS: u64 = 8_000;
/// Other spellings of backchannel words in the recognizer's dictionary.
const BACKCHANNEL_SPELLINGS: &[(&str, &str)] = &[("mm-hmm", "mhm"), ("okay", "ok")];
/// Said with the embedded voice when a configured stage fails.
const FALLBACK_LINE: &str = crate::agent::config::DEFAULT_FALLBACK_LINE;
/// The mark put after the last words before a hang-up.
const HANGUP_MARK: Mark = Mark(u64::MAX - 1);

struct SttJob {
    pcm: Vec<i16>,
    /// When the utterance was posted, for the recognition time in the log.
    posted: std::time::Instant,
    rate: u32,
    expected: Vec<String>,
    reply: Sender<(String, f32)>,
}

struct TtsJob {
    text: String,
    rate: u32,
    reply: TtsReply,
}

/// Where a synthesis goes: the audio alone, or with each word's end (for word-accurate
/// barge-in cuts).
enum TtsReply {
    Pcm(Sender<Vec<i16>>),
    Timed(Sender<crate::agent::tts_flite::TimedSpeech>),
}

/// The recognizer and synthesizer threads shared by all agent calls.
pub struct AgentServices {
    stt: SyncSender<SttJob>,
    tts: SyncSender<TtsJob>,
}

impl AgentServices {
    /// Starts the two service threads (the models load in them).
    pub fn start() -> Arc<AgentServices> {
        let (stt, stt_rx) = std::sync::mpsc::sync_channel::<SttJob>(256);
        let (tts, tts_rx) = std::sync::mpsc::sync_channel::<TtsJob>(256);
        let _ = std::thread::Builder::new()
            .name("agent-stt".into())
            .spawn(move || run_stt(stt_rx));
        let _ = std::thread::Builder::new()
            .name("agent-tts".into())
            .spawn(move || run_tts(tts_rx));
        Arc::new(AgentServices { stt, tts })
    }

    /// Posts `text` to the embedded voice; the receiver yields its audio (empty on failure).
    /// `None` when the synthesis queue is full.
    pub fn synthesize(&self, text: &str, rate: u32) -> Option<Receiver<Vec<i16>>> {
        let (reply, rx) = std::sync::mpsc::channel();
        let job = TtsJob {
            text: text.to_owned(),
            rate,
            reply: TtsReply::Pcm(reply),
        };
        self.tts.try_send(job).ok().map(|()| rx)
    }

    /// Like [`Self::synthesize`], with the end of each word (empty words when Flite's timings
    /// could not be read); `None` when the queue is full.
    pub fn synthesize_words(
        &self,
        text: &str,
        rate: u32,
    ) -> Option<Receiver<crate::agent::tts_flite::TimedSpeech>> {
        let (reply, rx) = std::sync::mpsc::channel();
        let job = TtsJob {
            text: text.to_owned(),
            rate,
            reply: TtsReply::Timed(reply),
        };
        self.tts.try_send(job).ok().map(|()| rx)
    }
}

fn run_stt(jobs: Receiver<SttJob>) {
    let mut rec = match SphinxRecognizer::new(Path::new(DEFAULT_MODEL_DIR)) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "the embedded recognizer cannot start");
            None
        }
    };
    while let Ok(job) = jobs.recv() {
        let expected: Vec<ExpectedPhrase> = job
            .expected
            .iter()
            .map(|p| ExpectedPhrase {
                intent: p.clone(),
                phrases: vec![p.clone()],
            })
            .collect();
        let result = rec
            .as_mut()
            .and_then(|r| r.recognize(&job.pcm, job.rate, &expected).ok());
        tracing::info!(
            utterance_ms = job.pcm.len() as u64 * 1000 / u64::from(job.rate.max(1)),
            expected = expected.len(),
            took_ms = job.posted.elapsed().as_millis() as u64,
            result = ?result,
            "recognized"
        );
        let answer = match result {
            Some(r) if r.intent.is_some() => (r.text, flow_confidence(r.confidence)),
            _ => (String::new(), 0.0),
        };
        let _ = job.reply.send(answer);
    }
}

/// Maps the recognizer's confidence onto the flow's scale. PocketSphinx's scores are
/// calibrated differently (docs/agent-embedded.md): 0.3 is its rejection point and right
/// answers on the shared utterances scored 0.37–0.97; the flow asks for 0.5 (and 0.75 for an
/// opt-out). Linear: 0.3 → 0.5, 0.5 → 0.75, 0.7 and up → 1.0.
fn flow_confidence(sphinx: f32) -> f32 {
    ((sphinx - 0.3) / 0.4 * 0.5 + 0.5).clamp(0.0, 1.0)
}

fn run_tts(jobs: Receiver<TtsJob>) {
    let tts = match FliteTts::new(FliteVoice::Kal) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(error = %e, "the embedded synthesizer cannot start");
            None
        }
    };
    while let Ok(job) = jobs.recv() {
        match job.reply {
            TtsReply::Pcm(reply) => {
                let pcm = tts
                    .as_ref()
                    .and_then(|t| t.synthesize(&job.text, job.rate).ok())
                    .unwrap_or_default();
                let _ = reply.send(pcm);
            }
            TtsReply::Timed(reply) => {
                let speech = tts
                    .as_ref()
                    .and_then(|t| t.synthesize_words(&job.text, job.rate).ok())
                    .unwrap_or_default();
                let _ = reply.send(speech);
            }
        }
    }
}

/// One call's agent.
pub struct AgentApp {
    services: Arc<AgentServices>,
    flow: FlowSession,
    /// Endpointing, pause and barge-in.
    listener: Listener,
    /// VAD, barge-in and greeting settings.
    settings: TurnSettings,
    /// Agent audio on its way to the playout queue (pausable).
    outbox: Outbox,
    /// An utterance that paused the agent is being recognized: its transcript decides.
    awaiting_backchannel: bool,
    /// Ticks the agent has been paused, and when the pause began (ms).
    started: bool,
    /// When the call started (tick), for the hello timeout.
    start_tick: u64,
    /// Whether the greeting was said (at once, or after the callee's hello).
    greeted: bool,
    expected: Vec<String>,
    /// Recognition in flight.
    stt: Option<PendingText>,
    /// Speech being synthesized with its text, in the order it must be played.
    tts: VecDeque<(PendingSpeech, String)>,
    /// The agent file's `[stt]` stage (default: PocketSphinx on the service thread), and its
    /// session, kept open across utterances.
    stt_stage: Option<Box<dyn Stt>>,
    stt_session: Option<Box<dyn SttSession>>,
    /// The agent file's `[tts]` stage (default: flite on the service thread).
    tts_stage: Option<Box<dyn Tts>>,
    next_mark: u64,
    hangup_pending: bool,
    /// Where to transfer the caller once the last line is played (the `transfer` tool).
    transfer: Option<String>,
    quiet_ticks: u64,
    barge_in_ms: u64,
    /// The turn being timed: when the endpoint was decided and when recognition returned.
    turn: Option<TurnTimes>,
    /// End of caller speech to the first reply frame on the wire, per turn (ms).
    pub turn_latencies_ms: Vec<u64>,
    /// Turns timed so far.
    turn_count: u32,
    /// What the call record gets: transcript, tools, disposition, latencies.
    report: AgentReport,
    /// The agent's lines queued and not yet heard, and the caller's utterances in recognition.
    heard: HeardLines,
    callers: CallerTurns,
}

/// Timestamps of one turn, for its latency record.
#[derive(Debug, Clone, Copy)]
struct TurnTimes {
    endpoint: std::time::Instant,
    recognized: Option<std::time::Instant>,
}

impl AgentApp {
    /// An agent running `flow` for a caller with these lead fields.
    pub fn new(
        services: Arc<AgentServices>,
        flow: Arc<Flow>,
        lead: BTreeMap<String, String>,
    ) -> AgentApp {
        AgentApp {
            services,
            flow: FlowSession::new(flow, lead),
            listener: Listener::new(
                Box::new(EnergyVad::default()),
                &TurnSettings::default(),
                DEFAULT_BARGE_IN_MS,
            ),
            settings: TurnSettings::default(),
            outbox: Outbox::default(),
            awaiting_backchannel: false,
            started: false,
            start_tick: 0,
            greeted: false,
            expected: Vec::new(),
            stt: None,
            tts: VecDeque::new(),
            stt_stage: None,
            stt_session: None,
            tts_stage: None,
            next_mark: 1,
            hangup_pending: false,
            transfer: None,
            quiet_ticks: 0,
            barge_in_ms: DEFAULT_BARGE_IN_MS,
            turn: None,
            turn_latencies_ms: Vec::new(),
            turn_count: 0,
            report: AgentReport::new("scripted"),
            heard: HeardLines::default(),
            callers: CallerTurns::default(),
        }
    }

    /// How long the caller must talk over the agent to interrupt it (0: at speech start).
    pub fn with_barge_in(mut self, min: std::time::Duration) -> AgentApp {
        self.barge_in_ms = min.as_millis() as u64;
        self.rebuild_listener();
        self
    }

    /// Uses the agent file's VAD, endpointing, barge-in and greeting settings.
    pub fn with_turns(mut self, settings: &TurnSettings) -> AgentApp {
        self.settings = settings.clone();
        self.rebuild_listener();
        self
    }

    fn rebuild_listener(&mut self) {
        let vad = super::agent_llm::build_vad(&self.settings);
        self.listener = Listener::new(vad, &self.settings, self.barge_in_ms);
    }

    /// The phrases the recognizer listens for: the state's, plus the backchannel words
    /// (and their dictionary spellings) for speech over the agent.
    fn expected_for(&self, over_agent: bool) -> Vec<String> {
        let mut e = self.expected.clone();
        if over_agent {
            for w in &self.settings.backchannel {
                e.push(w.clone());
                for (word, other) in BACKCHANNEL_SPELLINGS {
                    if w == word {
                        e.push((*other).to_owned());
                    }
                }
            }
        }
        e
    }

    /// Whether a recognized reply is only backchannel words (with their spellings).
    fn is_backchannel(&self, text: &str) -> bool {
        let mut t = format!(" {} ", text.to_lowercase());
        for (word, other) in BACKCHANNEL_SPELLINGS {
            t = t.replace(&format!(" {other} "), &format!(" {word} "));
        }
        self.settings.is_backchannel(&t)
    }

    /// Uses these stages instead of the embedded recognizer and voice (`None`: embedded).
    pub fn with_stages(mut self, stt: Option<Box<dyn Stt>>, tts: Option<Box<dyn Tts>>) -> AgentApp {
        self.stt_stage = stt;
        self.tts_stage = tts;
        self
    }

    /// Starts synthesizing one line, on the configured stage or the embedded voice.
    fn synthesize(&mut self, text: &str, rate: u32) {
        if let Some(stage) = self.tts_stage.as_mut() {
            let started = stage.start(rate).and_then(|mut s| {
                s.push_text(text)?;
                s.finish()?;
                Ok(s)
            });
            match started {
                Ok(s) => {
                    let line = (PendingSpeech::Stage(s, Vec::new()), text.to_owned());
                    return self.tts.push_back(line);
                }
                Err(e) => {
                    // The line must still be heard: the embedded voice says it instead.
                    tracing::warn!(error = %e, "agent stage failed; using the embedded voice");
                }
            }
        }
        if let Some(rx) = self.services.synthesize(text, rate) {
            self.tts
                .push_back((PendingSpeech::Service(rx), text.to_owned()));
        }
    }

    /// Sends an ended utterance to the configured recognizer; false when it failed.
    fn recognize_on_stage(&mut self, pcm: &[i16], rate: u32, expected: &[String]) -> bool {
        let Some(stage) = self.stt_stage.as_mut() else {
            return false;
        };
        if self.stt_session.is_none() {
            match stage.start(rate, expected) {
                Ok(s) => self.stt_session = Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "agent stage failed");
                    return false;
                }
            }
        }
        let Some(s) = self.stt_session.as_mut() else {
            return false;
        };
        s.set_expected_phrases(expected);
        match s.push_audio(pcm).and_then(|()| s.end_utterance()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "agent stage failed");
                self.stt_session = None;
                false
            }
        }
    }

    fn act(&mut self, actions: Vec<Action>, io: &mut AppIo<'_>) {
        for a in actions {
            match a {
                Action::Say(text) => {
                    tracing::info!(%text, "agent says");
                    self.synthesize(&text, io.rate);
                }
                Action::Tool(call) => {
                    tracing::info!(tool = ?call, "agent tool call");
                    self.report.tool(&call, io.tick * 20);
                    // A transfer is the flow's last action: done once its line is played.
                    if let ToolCall::Transfer { target } = call {
                        self.transfer = Some(target);
                        self.hangup_pending = true;
                    }
                }
                Action::Hangup => {
                    // The flow's `end_call` tool comes out as this action.
                    self.report.tool(&ToolCall::EndCall, io.tick * 20);
                    self.hangup_pending = true;
                }
                Action::Listen { expected_phrases } => self.expected = expected_phrases,
            }
        }
    }

    /// Queues synthesized speech in order, and the hang-up mark after the last of it.
    fn play_ready_speech(&mut self, io: &mut AppIo<'_>) {
        while let Some((line, _)) = self.tts.front_mut() {
            match line.poll() {
                Polled::Ready(pcm) => {
                    let text = self.tts.pop_front().map(|l| l.1).unwrap_or_default();
                    self.record_turn(io);
                    let mark = Mark(self.next_mark);
                    self.next_mark += 1;
                    let start_ms = io.tick * 20 + ms(self.outbox.pending(io), io.rate);
                    self.outbox.push(&pcm, Some(mark));
                    self.heard.queued(mark, &text, start_ms);
                }
                Polled::Pending => return,
                Polled::Failed(e) => {
                    self.tts.pop_front();
                    if let Some(e) = e {
                        tracing::warn!(error = %e, "agent stage failed");
                        if let Some(rx) = self.services.synthesize(FALLBACK_LINE, io.rate) {
                            let line = (PendingSpeech::Service(rx), FALLBACK_LINE.to_owned());
                            self.tts.push_front(line);
                        }
                    }
                }
            }
        }
        if self.hangup_pending {
            self.hangup_pending = false;
            self.outbox.push(&[], Some(HANGUP_MARK));
        }
    }

    /// The first reply audio of a turn is queued now: log the turn's latency record (it
    /// leaves after whatever was queued before it).
    fn record_turn(&mut self, io: &AppIo<'_>) {
        let Some(t) = self.turn.take() else {
            return;
        };
        let now = std::time::Instant::now();
        let queued_ms = ms(self.outbox.pending(io), io.rate);
        let silence = std::time::Duration::from_millis(self.listener.silence_ms());
        let mut l = TurnLatency::new(t.endpoint, silence);
        if let Some(r) = t.recognized {
            l.stt_final(r);
        }
        // The embedded voice answers whole lines: its first audio is the line's audio.
        l.tts_first_audio(now);
        l.first_frame_out(now + std::time::Duration::from_millis(queued_ms));
        self.turn_count += 1;
        l.log("scripted", self.turn_count);
        self.report.latency(self.turn_count, &l);
        self.turn_latencies_ms
            .push(l.steps_ms()[4].unwrap_or_default());
    }

    fn listen(&mut self, io: &mut AppIo<'_>) {
        let Some(frame) = io.caller else {
            return;
        };
        let talking = self.outbox.pending(io) > 0 || !self.tts.is_empty();
        for heard in self.listener.push(frame, io.rate, io.tick * 20, talking) {
            match heard {
                Heard::SpeechStarted => {}
                Heard::Pause => {
                    self.outbox.pause(io.tick * 20);
                    tracing::info!(
                        queued_ms = ms(self.outbox.pending(io), io.rate),
                        "agent paused: caller talking over it"
                    );
                }
                Heard::Interrupt => self.barge_in(io),
                Heard::Resume => self.resume("too short"),
                Heard::Utterance {
                    pcm,
                    start_ms,
                    end_ms,
                    paused_agent,
                    over_agent,
                } => {
                    if !self.greeted {
                        // The callee's hello: now greet (it is not a turn).
                        self.greet(io);
                    } else if self.recognize(pcm, (start_ms, end_ms), over_agent, io) {
                        self.awaiting_backchannel = over_agent;
                    } else if paused_agent {
                        self.resume("not recognized");
                    }
                }
            }
        }
    }

    /// Sends an ended utterance to the recognizer; false when it could not be sent (one
    /// already in flight, or the recognizer failed).
    fn recognize(
        &mut self,
        pcm: Vec<i16>,
        span: (u64, u64),
        over_agent: bool,
        io: &mut AppIo<'_>,
    ) -> bool {
        if self.stt.is_some() {
            return false;
        }
        let expected = self.expected_for(over_agent);
        if self.stt_stage.is_some() {
            if !self.recognize_on_stage(&pcm, io.rate, &expected) {
                return false;
            }
            self.stt = Some(PendingText::Stage);
        } else {
            let (reply, rx) = std::sync::mpsc::channel();
            let job = SttJob {
                posted: std::time::Instant::now(),
                pcm,
                rate: io.rate,
                expected,
                reply,
            };
            if self.services.stt.try_send(job).is_err() {
                return false;
            }
            self.stt = Some(PendingText::Service(rx));
        }
        self.callers.sent(span.0, span.1);
        self.turn = Some(TurnTimes {
            endpoint: std::time::Instant::now(),
            recognized: None,
        });
        true
    }

    /// Barge-in: clears the agent's queued speech, keeping in the report what was heard.
    fn barge_in(&mut self, io: &mut AppIo<'_>) {
        self.awaiting_backchannel = false;
        // The caller heard the agent up to the pause, if it was paused.
        let at_ms = self.outbox.paused_at().unwrap_or(io.tick * 20);
        let report = self.outbox.clear(io);
        self.tts.clear();
        self.heard.cleared(&mut self.report, &report, at_ms);
        tracing::info!(
            heard_up_to = ?report.last_played,
            cut_ms = report.interrupted.map_or(0, |c| c.heard_ms(io.rate)),
            "barge-in: agent speech cleared"
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
        let actions = self.flow.start();
        self.act(actions, io);
    }
}

impl MediaApp for AgentApp {
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
        if let Some(pending) = self.stt.as_mut() {
            match pending.poll(self.stt_session.as_mut()) {
                Polled::Ready((text, confidence)) => {
                    self.stt = None;
                    if let Some(t) = self.turn.as_mut() {
                        t.recognized = Some(std::time::Instant::now());
                    }
                    tracing::info!(%text, confidence, "caller said");
                    self.callers
                        .recognized(&mut self.report, &text, io.tick * 20);
                    let backchannel = self.awaiting_backchannel
                        && (text.trim().is_empty() || self.is_backchannel(&text));
                    if backchannel {
                        // "uh-huh" over the agent: it goes on, and it is not a turn.
                        tracing::info!(%text, "caller backchannel: not a turn");
                        self.turn = None;
                        self.resume("backchannel");
                    } else {
                        if self.outbox.is_paused() {
                            self.barge_in(io);
                        }
                        self.awaiting_backchannel = false;
                        let actions = self.flow.on_user_text(&text, confidence);
                        self.act(actions, io);
                    }
                }
                Polled::Pending => {}
                Polled::Failed(e) => {
                    self.stt = None;
                    self.resume("recognizer failed");
                    self.callers.lost();
                    if let Some(e) = e {
                        // Say so, then the flow's no-input / reprompt logic takes over.
                        tracing::warn!(error = %e, "agent stage failed");
                        self.stt_session = None;
                        self.synthesize(FALLBACK_LINE, io.rate);
                    }
                }
            }
        }
        self.play_ready_speech(io);
        if self.outbox.paused_for_ms(io.tick * 20) >= Some(super::agent_llm::PAUSE_LIMIT_MS)
            && !self.listener.in_speech()
        {
            self.barge_in(io);
        }
        let idle = self.greeted
            && !self.listener.in_speech()
            && self.stt.is_none()
            && self.tts.is_empty()
            && self.outbox.is_idle(io)
            && !self.flow.is_finished();
        self.quiet_ticks = if idle { self.quiet_ticks + 1 } else { 0 };
        let no_input_ms = self
            .settings
            .no_input_ms
            .unwrap_or(DEFAULT_SCRIPTED_NO_INPUT_MS);
        if self.quiet_ticks * 20 >= no_input_ms {
            self.quiet_ticks = 0;
            let actions = self.flow.on_no_input();
            self.act(actions, io);
        }
        self.outbox.feed(io, LEAD_FRAMES * io.rate as usize / 50);
    }

    fn on_event(&mut self, event: &LegEvent, io: &mut AppIo<'_>) {
        match event {
            LegEvent::Dtmf { digit, .. } => {
                let actions = self.flow.on_dtmf(*digit);
                self.act(actions, io);
            }
            LegEvent::Mark(MarkEvent::Played(HANGUP_MARK)) => match self.transfer.take() {
                Some(target) if io.transfer(target.as_str()) => {}
                Some(_) => io.finish("agent could not transfer: this leg cannot transfer"),
                None => io.finish("agent hung up"),
            },
            LegEvent::Mark(MarkEvent::Played(m)) => {
                self.heard.played(&mut self.report, *m, io.tick * 20);
            }
            LegEvent::TransferFailed(why) => {
                tracing::info!(reason = %why, "agent: the transfer failed; the flow goes on");
                let actions = self.flow.on_transfer_failed();
                self.act(actions, io);
            }
            _ => {}
        }
    }

    fn take_report(&mut self) -> Option<AgentReport> {
        let mut report = std::mem::replace(&mut self.report, AgentReport::new("scripted"));
        report.sort_turns();
        Some(report)
    }
}

/// Milliseconds of `samples` at `rate` Hz.
fn ms(samples: usize, rate: u32) -> u64 {
    samples as u64 * 1000 / u64::from(rate.max(1))
}

#[cfg(test)]
mod tests {
    use super::flow_confidence;
    use super::*;
    use crate::agent::report::Speaker;
    use crate::agent::{ScriptedStt, StageConfig, StageRegistry};
    use crate::leg::harness::AppHarness;

    const RATE: u32 = 8000;

    #[test]
    fn the_report_holds_what_was_heard_the_opt_out_and_the_tools() {
        let flow = Flow::load(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-config/agents/appointment-setter.toml"),
        )
        .unwrap();
        let stt = Box::new(ScriptedStt::new(["please stop calling me".to_owned()], 0.9));
        let mut c = StageConfig::named("silence");
        c.params.insert("ms_per_char".into(), 10.into());
        let tts = StageRegistry::with_builtins()
            .build_tts(&c, &|_| None)
            .unwrap();
        let mut app = AgentApp::new(AgentServices::start(), Arc::new(flow), BTreeMap::new())
            .with_stages(Some(stt), Some(tts));
        let mut h = AppHarness::new(RATE);
        // The caller talks over the greeting from 0.4 s to 1.2 s.
        let talking = |t: u64| (20..60).contains(&t);
        let mut ended = None;
        for t in 0..1500u64 {
            let frame: Vec<i16> = (0..RATE as usize / 50)
                .map(|i| {
                    if talking(t) {
                        ((i as f32 * 0.3).sin() * 8000.0) as i16
                    } else {
                        0
                    }
                })
                .collect();
            if let Some(reason) = h.tick(Some(&frame), &mut app) {
                ended = Some((reason, t));
                break;
            }
        }
        let (reason, tick) = ended.expect("the agent never hung up");
        assert_eq!(reason, "agent hung up");
        let r = app.take_report().unwrap();
        assert_eq!(r.mode, "scripted");
        assert!(r.opt_out);
        assert_eq!(r.disposition.as_deref(), Some("do_not_call"));
        let tools: Vec<_> = r.tool_calls.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tools, ["mark_do_not_call", "set_outcome", "end_call"]);
        assert_eq!(r.turns.len(), 3, "{:#?}", r.turns);
        let (greeting, caller, goodbye) = (&r.turns[0], &r.turns[1], &r.turns[2]);
        assert_eq!(greeting.speaker, Speaker::Agent);
        let full = "Hi, this is an automated assistant calling on behalf of Bright Home Solar. \
                    Am I speaking with the homeowner?";
        assert!(greeting.interrupted, "{greeting:?}");
        assert!(
            !greeting.text.is_empty()
                && full.starts_with(&greeting.text)
                && greeting.text.len() < full.len() - 20,
            "only the heard part of the greeting: {greeting:?}"
        );
        assert_eq!(greeting.start_ms, 0);
        // The caller starts at 0.4 s; the agent pauses at the VAD's start (60 ms of speech):
        // the greeting was heard up to then.
        assert!((420..=520).contains(&greeting.end_ms), "{greeting:?}");
        assert_eq!(caller.speaker, Speaker::Caller);
        assert_eq!(caller.text, "please stop calling me");
        assert!(
            caller.start_ms >= 300 && caller.end_ms <= 1300,
            "{caller:?}"
        );
        assert!(goodbye.text.starts_with("Understood.") && !goodbye.interrupted);
        assert!(goodbye.end_ms <= tick * 20 && goodbye.start_ms >= caller.end_ms);
        assert_eq!(r.latency.len(), 1);
        assert!(r.latency[0].first_frame_out_ms.is_some());
    }

    /// Agent lines said in the first `secs` seconds to a caller who never speaks.
    fn agent_lines_to_a_silent_caller(no_input_ms: Option<u64>, secs: u64) -> Vec<String> {
        let flow = Flow::load(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-config/agents/appointment-setter.toml"),
        )
        .unwrap();
        let stt = Box::new(ScriptedStt::new(Vec::<String>::new(), 0.9));
        let mut c = StageConfig::named("silence");
        c.params.insert("ms_per_char".into(), 10.into());
        let tts = StageRegistry::with_builtins()
            .build_tts(&c, &|_| None)
            .unwrap();
        let settings = TurnSettings {
            no_input_ms,
            ..TurnSettings::default()
        };
        let mut app = AgentApp::new(AgentServices::start(), Arc::new(flow), BTreeMap::new())
            .with_stages(Some(stt), Some(tts))
            .with_turns(&settings);
        let mut h = AppHarness::new(RATE);
        let silence = vec![0i16; RATE as usize / 50];
        for _ in 0..secs * 50 {
            if h.tick(Some(&silence), &mut app).is_some() {
                break;
            }
        }
        let r = app.take_report().unwrap();
        r.turns
            .iter()
            .filter(|t| t.speaker == Speaker::Agent)
            .map(|t| t.text.clone())
            .collect()
    }

    #[test]
    fn no_input_ms_sets_how_long_a_silent_caller_is_waited_for() {
        // The greeting takes ~1.3 s here: with 2 s of no-input the flow has asked again
        // (or given up) within 6 s; with the default 8 s it has said only the greeting.
        let quick = agent_lines_to_a_silent_caller(Some(2_000), 6);
        assert!(quick.len() >= 2, "{quick:?}");
        let default = agent_lines_to_a_silent_caller(None, 6);
        assert_eq!(default.len(), 1, "{default:?}");
        const { assert!(DEFAULT_SCRIPTED_NO_INPUT_MS > 6_000) };
    }

    #[test]
    fn recognizer_scores_map_onto_the_flow_thresholds() {
        assert!((flow_confidence(0.3) - 0.5).abs() < 1e-6);
        assert!((flow_confidence(0.5) - 0.75).abs() < 1e-6);
        assert_eq!(flow_confidence(0.9), 1.0);
        assert!(
            flow_confidence(0.0) < 0.5,
            "below the rejection point stays below the flow's"
        );
        // The weakest right answer measured for "stop" (0.379) asks again rather than
        // acting on an opt-out.
        assert!(flow_confidence(0.379) < 0.75);
    }
}
