//! The `agent` app in the scripted mode: energy VAD endpointing, a recognizer (PocketSphinx
//! constrained to the flow state's phrases, or the agent file's `[stt]` stage), the scripted
//! flow deciding what to say and which tools to call, a voice (flite, or the `[tts]` stage),
//! barge-in (the caller talking over the agent clears its queued speech) and one
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
use crate::agent::stages::{Stt, SttSession, Tts, Vad, VadEvent};
use crate::agent::stt_sphinx::{DEFAULT_MODEL_DIR, ExpectedPhrase, SphinxRecognizer};
use crate::agent::tools::ToolCall;
use crate::agent::tts_flite::{FliteTts, FliteVoice};
use crate::leg::{AppIo, LegEvent, MediaApp};
use crate::media::playout::{Mark, MarkEvent};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender};

/// Speech shorter than this is not sent to the recognizer (clicks, breaths).
const MIN_UTTERANCE_MS: usize = 200;
/// Caller speech over the agent's audio for this long interrupts it, by default: long
/// enough that a cough or an "uh-huh" does not cut the agent off.
pub const DEFAULT_BARGE_IN_MS: u64 = 300;
/// Silence (nothing queued, no speech, nothing pending) before the flow's no-input.
const NO_INPUT_MS: u64 = 8_000;
/// Silence the energy VAD waits for before it ends an utterance (its default `end_ms`).
const VAD_END_MS: u64 = 400;
/// Audio kept from before the VAD's speech start (it decides after some speech).
const PRE_ROLL_MS: usize = 300;
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
    reply: Sender<Vec<i16>>,
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
            reply,
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
        let pcm = tts
            .as_ref()
            .and_then(|t| t.synthesize(&job.text, job.rate).ok())
            .unwrap_or_default();
        let _ = job.reply.send(pcm);
    }
}

/// One call's agent.
pub struct AgentApp {
    services: Arc<AgentServices>,
    flow: FlowSession,
    vad: EnergyVad,
    started: bool,
    expected: Vec<String>,
    /// The caller's current utterance, and whether the VAD is in speech.
    utterance: Vec<i16>,
    /// The last [`PRE_ROLL_MS`] of caller audio, prepended when speech starts.
    pre_roll: VecDeque<i16>,
    in_speech: bool,
    speech_ticks: u64,
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
    /// When the caller's current utterance started, ms since the leg started.
    speech_start_ms: u64,
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
            vad: EnergyVad::default(),
            started: false,
            expected: Vec::new(),
            utterance: Vec::new(),
            pre_roll: VecDeque::new(),
            in_speech: false,
            speech_ticks: 0,
            stt: None,
            tts: VecDeque::new(),
            stt_stage: None,
            stt_session: None,
            tts_stage: None,
            next_mark: 1,
            hangup_pending: false,
            quiet_ticks: 0,
            barge_in_ms: DEFAULT_BARGE_IN_MS,
            turn: None,
            turn_latencies_ms: Vec::new(),
            turn_count: 0,
            report: AgentReport::new("scripted"),
            heard: HeardLines::default(),
            callers: CallerTurns::default(),
            speech_start_ms: 0,
        }
    }

    /// How long the caller must talk over the agent to interrupt it (0: at speech start).
    pub fn with_barge_in(mut self, min: std::time::Duration) -> AgentApp {
        self.barge_in_ms = min.as_millis() as u64;
        self
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
    fn recognize_on_stage(&mut self, pcm: &[i16], rate: u32) -> bool {
        let Some(stage) = self.stt_stage.as_mut() else {
            return false;
        };
        if self.stt_session.is_none() {
            match stage.start(rate, &self.expected) {
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
        s.set_expected_phrases(&self.expected);
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
                    let start_ms = io.tick * 20 + ms(io.queued_samples(), io.rate);
                    if io.play(&pcm, Some(mark)).is_ok() {
                        self.heard.queued(mark, &text, start_ms);
                    }
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
            let _ = io.play(&[], Some(HANGUP_MARK));
        }
    }

    /// The first reply audio of a turn is queued now: log the turn's latency record (it
    /// leaves after whatever was queued before it).
    fn record_turn(&mut self, io: &AppIo<'_>) {
        let Some(t) = self.turn.take() else {
            return;
        };
        let now = std::time::Instant::now();
        let queued_ms = io.queued_samples() as u64 * 1000 / u64::from(io.rate.max(1));
        let mut l = TurnLatency::new(t.endpoint, std::time::Duration::from_millis(VAD_END_MS));
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
        let event = self.vad.push(frame, io.rate).ok().and_then(|f| f.event);
        match event {
            Some(VadEvent::SpeechStart) => {
                self.in_speech = true;
                self.speech_ticks = 0;
                self.speech_start_ms = io.tick * 20;
                self.utterance.clear();
                self.utterance.extend(self.pre_roll.drain(..));
            }
            Some(VadEvent::SpeechEnd) => {
                self.in_speech = false;
                let min = io.rate as usize * MIN_UTTERANCE_MS / 1000;
                let span = (
                    self.speech_start_ms,
                    (io.tick * 20).saturating_sub(VAD_END_MS),
                );
                if self.utterance.len() >= min && self.stt.is_none() && self.stt_stage.is_some() {
                    let pcm = std::mem::take(&mut self.utterance);
                    if self.recognize_on_stage(&pcm, io.rate) {
                        self.stt = Some(PendingText::Stage);
                        self.callers.sent(span.0, span.1);
                        self.turn = Some(TurnTimes {
                            endpoint: std::time::Instant::now(),
                            recognized: None,
                        });
                    }
                } else if self.utterance.len() >= min && self.stt.is_none() {
                    let (reply, rx) = std::sync::mpsc::channel();
                    let job = SttJob {
                        posted: std::time::Instant::now(),
                        pcm: std::mem::take(&mut self.utterance),
                        rate: io.rate,
                        expected: self.expected.clone(),
                        reply,
                    };
                    if self.services.stt.try_send(job).is_ok() {
                        self.stt = Some(PendingText::Service(rx));
                        self.callers.sent(span.0, span.1);
                        self.turn = Some(TurnTimes {
                            endpoint: std::time::Instant::now(),
                            recognized: None,
                        });
                    }
                }
                self.utterance.clear();
            }
            None => {}
        }
        if !self.in_speech {
            self.pre_roll.extend(frame.iter().copied());
            let keep = io.rate as usize * PRE_ROLL_MS / 1000;
            if self.pre_roll.len() > keep {
                let excess = self.pre_roll.len() - keep;
                self.pre_roll.drain(..excess);
            }
        }
        if self.in_speech {
            self.utterance.extend_from_slice(frame);
            self.speech_ticks += 1;
            // Barge-in: the caller talks over queued agent speech.
            if self.speech_ticks * 20 >= self.barge_in_ms && io.queued_samples() > 0 {
                let report = io.clear();
                self.tts.clear();
                self.heard.cleared(&mut self.report, &report, io.tick * 20);
                tracing::info!(
                    heard_up_to = ?report.last_played,
                    cut_ms = report.interrupted.map_or(0, |c| c.heard_ms(io.rate)),
                    "barge-in: agent speech cleared"
                );
            }
        }
    }
}

impl MediaApp for AgentApp {
    fn on_tick(&mut self, io: &mut AppIo<'_>) {
        if !self.started {
            self.started = true;
            let actions = self.flow.start();
            self.act(actions, io);
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
                    let actions = self.flow.on_user_text(&text, confidence);
                    self.act(actions, io);
                }
                Polled::Pending => {}
                Polled::Failed(e) => {
                    self.stt = None;
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
        let idle = !self.in_speech
            && self.stt.is_none()
            && self.tts.is_empty()
            && io.queued_samples() == 0
            && !self.flow.is_finished();
        self.quiet_ticks = if idle { self.quiet_ticks + 1 } else { 0 };
        if self.quiet_ticks * 20 >= NO_INPUT_MS {
            self.quiet_ticks = 0;
            let actions = self.flow.on_no_input();
            self.act(actions, io);
        }
    }

    fn on_event(&mut self, event: &LegEvent, io: &mut AppIo<'_>) {
        match event {
            LegEvent::Dtmf { digit, .. } => {
                let actions = self.flow.on_dtmf(*digit);
                self.act(actions, io);
            }
            LegEvent::Mark(MarkEvent::Played(HANGUP_MARK)) => io.finish("agent hung up"),
            LegEvent::Mark(MarkEvent::Played(m)) => {
                self.heard.played(&mut self.report, *m, io.tick * 20);
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
        assert!((600..=900).contains(&greeting.end_ms), "{greeting:?}");
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
