//! A WebSocket media stream as a leg on the media clock. The stream's driver task decodes
//! frames with the dialect codec and hands the events here through a bounded channel; every
//! 20 ms tick this leg turns the carrier's audio into one caller frame, runs the app, and
//! takes one frame from the playout queue: real audio goes out as a `media` command (never
//! faster than real time, so the carrier's buffer stays short and our marks are exact),
//! silence is not sent. Marks go out right after their last audio and count as played when
//! the carrier echoes them (`carrier_marks`); `clear` empties our queue and tells the carrier
//! to drop what it buffered.

use super::carrier_marks::{CarrierMarks, Echo};
use super::worker::PacedLeg;
use super::{AppIo, DtmfSource, LegCommand, LegEvent, LegStats, LegTap, MediaApp};
use crate::codec::g711;
use crate::leg::stream::{Command, Encoding, Event, MediaFormat};
use crate::media::playout::{Mark, MarkEvent, PlayoutQueue, SilenceMode};
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// Caller audio held before the first frame is played (absorbs TCP and carrier bursts).
const PRIME_FRAMES: usize = 2;
/// Most caller audio kept; older audio is dropped when a carrier sends too fast.
const MAX_FRAMES: usize = 25;

/// The audio coding of a stream, from its `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamAudio {
    /// G.711 µ-law at 8 kHz (Twilio, Telnyx, Plivo default).
    Pcmu,
    /// G.711 A-law at 8 kHz.
    Pcma,
    /// 16-bit little-endian linear PCM at this rate (Vonage).
    L16(u32),
}

impl StreamAudio {
    /// The coding a stream announced, if we can carry it.
    pub fn from_format(f: &MediaFormat) -> Option<StreamAudio> {
        match (&f.encoding, f.sample_rate, f.channels) {
            (Encoding::Pcmu, 8000, 1) => Some(StreamAudio::Pcmu),
            (Encoding::Pcma, 8000, 1) => Some(StreamAudio::Pcma),
            (Encoding::L16, rate @ (8000 | 16000), 1) => Some(StreamAudio::L16(rate)),
            _ => None,
        }
    }

    /// PCM rate inside the call.
    pub fn rate(self) -> u32 {
        match self {
            StreamAudio::L16(r) => r,
            _ => 8000,
        }
    }

    fn decode(self, payload: &[u8], out: &mut VecDeque<i16>) {
        match self {
            StreamAudio::Pcmu => out.extend(payload.iter().map(|&b| g711::ulaw_to_linear(b))),
            StreamAudio::Pcma => out.extend(payload.iter().map(|&b| g711::alaw_to_linear(b))),
            StreamAudio::L16(_) => out.extend(
                payload
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]])),
            ),
        }
    }

    fn encode(self, pcm: &[i16]) -> Vec<u8> {
        match self {
            StreamAudio::Pcmu => pcm.iter().map(|&s| g711::linear_to_ulaw(s)).collect(),
            StreamAudio::Pcma => pcm.iter().map(|&s| g711::linear_to_alaw(s)).collect(),
            StreamAudio::L16(_) => pcm.iter().flat_map(|s| s.to_le_bytes()).collect(),
        }
    }
}

/// The channels between a stream leg, its driver task and its call.
pub struct StreamLegChannels {
    /// Decoded events from the carrier (media, dtmf, marks, stop).
    pub inbound: mpsc::Receiver<Event>,
    /// Commands for the carrier, encoded and sent by the driver.
    pub outbound: mpsc::Sender<Command>,
    pub commands: mpsc::UnboundedReceiver<LegCommand>,
    pub events: mpsc::UnboundedSender<LegEvent>,
}

/// A media stream leg.
pub struct StreamLeg {
    audio: StreamAudio,
    ch: StreamLegChannels,
    app: Box<dyn MediaApp>,
    tap: Option<Box<dyn LegTap>>,
    playout: PlayoutQueue,
    fifo: VecDeque<i16>,
    primed: bool,
    caller: Vec<i16>,
    has_caller: bool,
    sent: Vec<i16>,
    has_sent: bool,
    pending: VecDeque<LegEvent>,
    marks: VecDeque<MarkEvent>,
    /// Our marks sent to the carrier and not yet echoed.
    carrier_marks: CarrierMarks,
    dtmf_out: VecDeque<char>,
    finish: Option<String>,
    cleared: bool,
    stopped: bool,
    tick: u64,
    started: Instant,
    stats: LegStats,
    /// Commands the driver could not take (its queue was full).
    pub outbound_dropped: u64,
    /// The stream's id, for the one log line when the playout cap drops audio.
    stream_id: String,
    /// Samples refused because more than the cap was queued (logged once).
    overflow_samples: u64,
}

impl StreamLeg {
    /// A leg for a stream in `audio`, running `app`.
    pub fn new(
        audio: StreamAudio,
        ch: StreamLegChannels,
        app: Box<dyn MediaApp>,
        tap: Option<Box<dyn LegTap>>,
        now: Instant,
    ) -> StreamLeg {
        let fs = audio.rate() as usize / 50;
        StreamLeg {
            audio,
            ch,
            app,
            tap,
            // Ten minutes of queued audio, as Twilio allows.
            playout: PlayoutQueue::new(fs, fs * 50 * 600).with_silence_mode(SilenceMode::Nothing),
            fifo: VecDeque::with_capacity(fs * MAX_FRAMES),
            primed: false,
            caller: Vec::with_capacity(fs),
            has_caller: false,
            sent: Vec::with_capacity(fs),
            has_sent: false,
            pending: VecDeque::new(),
            marks: VecDeque::new(),
            carrier_marks: CarrierMarks::new(),
            dtmf_out: VecDeque::new(),
            finish: None,
            cleared: false,
            stopped: false,
            tick: 0,
            started: now,
            stats: LegStats::default(),
            outbound_dropped: 0,
            stream_id: String::new(),
            overflow_samples: 0,
        }
    }

    /// Caps the audio queued for the carrier ahead of real time at `max` (default ten
    /// minutes, as Twilio); beyond it audio is dropped and logged once with `stream_id`.
    pub fn with_max_buffered(mut self, max: Duration, stream_id: &str) -> StreamLeg {
        let fs = self.frame_samples();
        let frames = (max.as_millis() / 20).max(1) as usize;
        self.playout = PlayoutQueue::new(fs, fs * frames).with_silence_mode(SilenceMode::Nothing);
        self.stream_id = stream_id.to_string();
        self
    }

    fn frame_samples(&self) -> usize {
        self.audio.rate() as usize / 50
    }

    fn send(&mut self, cmd: Command) {
        if self.ch.outbound.try_send(cmd).is_err() {
            self.outbound_dropped += 1;
            self.stats.send_errors += 1;
        }
    }

    fn take_inbound(&mut self) {
        let fs = self.frame_samples();
        while let Ok(ev) = self.ch.inbound.try_recv() {
            match ev {
                Event::Media(chunk) => {
                    self.audio.decode(&chunk.payload, &mut self.fifo);
                    self.stats.frames_decoded += 1;
                    let cap = fs * MAX_FRAMES;
                    if self.fifo.len() > cap {
                        let excess = self.fifo.len() - cap;
                        self.fifo.drain(..excess);
                    }
                }
                Event::Dtmf {
                    digit, duration_ms, ..
                } => self.pending.push_back(LegEvent::Dtmf {
                    digit,
                    source: DtmfSource::Stream,
                    duration_ms: duration_ms.unwrap_or(0),
                }),
                Event::Mark { name } => match self.carrier_marks.echoed(&name, self.tick) {
                    Echo::Played { marks, lag_ticks } => {
                        tracing::debug!(stream = %self.stream_id, mark = %name,
                            lag_ms = lag_ticks * 20, "carrier played up to our mark");
                        self.marks.extend(marks.into_iter().map(MarkEvent::Played));
                    }
                    Echo::Late => {}
                    Echo::Unknown => {
                        tracing::debug!(stream = %self.stream_id, mark = %name,
                            "carrier echoed a mark we did not send; ignored");
                    }
                },
                Event::Stop if self.finish.is_none() => {
                    self.finish = Some("stream stopped".into());
                }
                _ => {}
            }
        }
    }

    fn caller_frame(&mut self) {
        let fs = self.frame_samples();
        if !self.primed && self.fifo.len() >= fs * PRIME_FRAMES {
            self.primed = true;
        }
        self.has_caller = self.primed && self.fifo.len() >= fs;
        if !self.has_caller {
            // Ran dry: wait for a little audio again before playing on.
            self.primed = false;
            return;
        }
        self.caller.clear();
        self.caller.extend(self.fifo.drain(..fs));
    }

    fn io(&mut self, with_caller: bool) -> AppIo<'_> {
        AppIo {
            caller: (with_caller && self.has_caller).then_some(&self.caller[..]),
            rate: self.audio.rate(),
            tick: self.tick,
            playout: &mut self.playout,
            marks: &mut self.marks,
            dtmf_out: &mut self.dtmf_out,
            finish: &mut self.finish,
            cleared: &mut self.cleared,
            transfer: None,
        }
    }

    fn run_app(&mut self) {
        let mut app = std::mem::replace(&mut self.app, Box::new(NoApp));
        while let Some(ev) = self.pending.pop_front() {
            app.on_event(&ev, &mut self.io(true));
            let _ = self.ch.events.send(ev);
        }
        app.on_tick(&mut self.io(true));
        self.app = app;
    }

    fn send_frame(&mut self) {
        let frame = self.playout.next_frame();
        let played: Vec<Mark> = frame.played().to_vec();
        self.has_sent = false;
        if let (true, Some(pcm)) = (frame.is_audio(), frame.samples()) {
            self.sent.clear();
            self.sent.extend_from_slice(pcm);
            self.has_sent = true;
            self.stats.frames_sent_audio += 1;
            let payload = self.audio.encode(&self.sent);
            self.send(Command::Media { payload });
        }
        for m in played {
            self.send(Command::Mark { name: mark_name(m) });
            if let Some(m) = self.carrier_marks.sent(m, self.tick) {
                self.marks.push_back(MarkEvent::Played(m));
            }
        }
    }

    /// Settles the marks whose echo is overdue (the carrier does not echo, or lost one).
    fn settle_overdue_marks(&mut self) {
        let lost_before = self.carrier_marks.lost_echoes;
        let overdue = self.carrier_marks.overdue(self.tick);
        if overdue.is_empty() {
            return;
        }
        if self.carrier_marks.lost_echoes > lost_before {
            tracing::warn!(stream = %self.stream_id, marks = overdue.len(),
                "carrier did not echo these marks within 3 s; counted as played");
        } else {
            tracing::info!(stream = %self.stream_id,
                "carrier does not echo marks; they count as played when sent");
        }
        self.marks
            .extend(overdue.into_iter().map(MarkEvent::Played));
    }

    fn command(&mut self, cmd: LegCommand) {
        match cmd {
            LegCommand::Play { samples, mark } => {
                if let Err(e) = self.playout.push(&samples, mark) {
                    if self.overflow_samples == 0 {
                        tracing::error!(stream = %self.stream_id, error = %e,
                            "stream playout buffer full (audio sent faster than real time); extra audio dropped");
                    }
                    self.overflow_samples += samples.len() as u64;
                }
            }
            LegCommand::Clear(reply) => {
                let report = self.playout.clear();
                // Sent before anything still queued here: settled first, in order.
                let in_flight = self.carrier_marks.cleared();
                self.marks
                    .extend(in_flight.into_iter().map(MarkEvent::Played));
                self.marks.extend(report.events());
                self.cleared = true;
                let _ = reply.send(report);
            }
            LegCommand::InjectDtmf(digit, duration_ms) => self.pending.push_back(LegEvent::Dtmf {
                digit,
                source: DtmfSource::Stream,
                duration_ms,
            }),
            // Streams carry no DTMF towards the caller, and have no hold.
            LegCommand::SendDtmf(_) | LegCommand::SetSending(_) => {}
            LegCommand::Stop => self.stopped = true,
            LegCommand::ReplaceApp(_) | LegCommand::RestoreApp => {
                tracing::warn!("a stream leg cannot change its app; ignored");
            }
            LegCommand::TransferFailed(why) => {
                self.pending.push_back(LegEvent::TransferFailed(why))
            }
        }
    }
}

/// The name a mark travels under on the wire.
pub fn mark_name(m: Mark) -> String {
    format!("m{}", m.0)
}

struct NoApp;
impl MediaApp for NoApp {
    fn on_tick(&mut self, _io: &mut AppIo<'_>) {}
}

impl PacedLeg for StreamLeg {
    fn step(&mut self, _now: Instant, _wall: SystemTime, _ntp: u64, _buf: &mut [u8]) {
        loop {
            match self.ch.commands.try_recv() {
                Ok(cmd) => self.command(cmd),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.stopped = true;
                    break;
                }
            }
        }
        self.take_inbound();
        self.settle_overdue_marks();
        self.caller_frame();
        self.run_app();
        self.send_frame();
        if std::mem::take(&mut self.cleared) {
            self.send(Command::Clear);
        }
        let mut app = std::mem::replace(&mut self.app, Box::new(NoApp));
        while let Some(m) = self.marks.pop_front() {
            let ev = LegEvent::Mark(m);
            app.on_event(&ev, &mut self.io(false));
            let _ = self.ch.events.send(ev);
        }
        self.app = app;
        if let Some(tap) = self.tap.as_mut() {
            tap.push(
                self.tick,
                self.has_caller.then_some(&self.caller[..]),
                self.has_sent.then_some(&self.sent[..]),
            );
        }
        if let Some(why) = self.finish.take() {
            let _ = self.ch.events.send(LegEvent::AppFinished(why));
        }
        self.tick += 1;
    }

    fn is_done(&self) -> bool {
        self.stopped
    }

    fn finish(mut self: Box<Self>, now: Instant) {
        let mut stats = std::mem::take(&mut self.stats);
        stats.duration = now.saturating_duration_since(self.started);
        stats.recording = self
            .tap
            .as_mut()
            .and_then(|t| t.finish())
            .or_else(|| self.app.on_stop());
        stats.agent = self.app.take_report().map(Box::new);
        let _ = self.ch.events.send(LegEvent::Stopped(Box::new(stats)));
    }
}

/// How long a stream may stay silent from the carrier before we consider it dead.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::echo::EchoApp;
    use crate::leg::stream::MediaChunk;
    use crate::leg::stream::Track;

    struct Harness {
        leg: Box<StreamLeg>,
        inbound: mpsc::Sender<Event>,
        outbound: mpsc::Receiver<Command>,
        commands: mpsc::UnboundedSender<LegCommand>,
        events: mpsc::UnboundedReceiver<LegEvent>,
        now: Instant,
    }

    fn harness(app: Box<dyn MediaApp>) -> Harness {
        let (in_tx, in_rx) = mpsc::channel(64);
        let (out_tx, out_rx) = mpsc::channel(64);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let leg = StreamLeg::new(
            StreamAudio::Pcmu,
            StreamLegChannels {
                inbound: in_rx,
                outbound: out_tx,
                commands: cmd_rx,
                events: ev_tx,
            },
            app,
            None,
            now,
        );
        Harness {
            leg: Box::new(leg),
            inbound: in_tx,
            outbound: out_rx,
            commands: cmd_tx,
            events: ev_rx,
            now,
        }
    }

    impl Harness {
        fn tick(&mut self) -> Vec<Command> {
            self.leg
                .step(self.now, SystemTime::now(), 0, &mut [0u8; 16]);
            self.now += Duration::from_millis(20);
            std::iter::from_fn(|| self.outbound.try_recv().ok()).collect()
        }
    }

    fn media(i: u64) -> Event {
        Event::Media(MediaChunk {
            track: Track::Inbound,
            chunk: i,
            timestamp_ms: 20 * i,
            sequence: i,
            payload: vec![0x10 + i as u8; 160],
        })
    }

    #[test]
    fn echo_is_paced_one_frame_per_tick_after_priming() {
        let mut h = harness(Box::new(EchoApp));
        // A burst of 10 frames at once (TCP delivers in bursts).
        for i in 0..10 {
            h.inbound.try_send(media(i)).unwrap();
        }
        let mut out = Vec::new();
        for _ in 0..15 {
            out.push(h.tick());
        }
        // One media command per tick while audio lasts, never more, in order.
        assert!(out.iter().all(|c| c.len() <= 1));
        let payloads: Vec<u8> = out
            .iter()
            .flatten()
            .map(|c| match c {
                Command::Media { payload } => payload[0],
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(payloads, (0..10).map(|i| 0x10 + i).collect::<Vec<u8>>());
    }

    #[test]
    fn marks_follow_their_audio_and_clear_reaches_the_carrier() {
        let mut h = harness(Box::new(NoApp));
        h.commands
            .send(LegCommand::Play {
                samples: vec![500; 400],
                mark: Some(Mark(7)),
            })
            .unwrap();
        let sent: Vec<Vec<Command>> = (0..4).map(|_| h.tick()).collect();
        // 400 samples: three frames of media, the mark right after the third.
        assert_eq!(sent[0].len(), 1);
        assert_eq!(sent[1].len(), 1);
        assert!(matches!(sent[2][0], Command::Media { .. }));
        assert_eq!(sent[2][1], Command::Mark { name: "m7".into() });
        assert!(sent[3].is_empty(), "nothing is sent for silence");
        assert_eq!(
            played_marks(&mut h),
            vec![],
            "sent is not played: the carrier echoes"
        );
        h.inbound
            .try_send(Event::Mark { name: "m7".into() })
            .unwrap();
        h.tick();
        assert_eq!(played_marks(&mut h), vec![Mark(7)]);
        // A clear empties our queue, reports the cleared mark, and tells the carrier.
        h.commands
            .send(LegCommand::Play {
                samples: vec![500; 1600],
                mark: Some(Mark(8)),
            })
            .unwrap();
        h.tick();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        h.commands.send(LegCommand::Clear(tx)).unwrap();
        let after = h.tick();
        assert_eq!(
            after,
            vec![Command::Clear],
            "clear within one frame, no more audio"
        );
        assert_eq!(rx.try_recv().unwrap().cleared, vec![Mark(8)]);
        // `stop` from the carrier ends the app.
        h.inbound.try_send(Event::Stop).unwrap();
        h.tick();
        let evs: Vec<LegEvent> = std::iter::from_fn(|| h.events.try_recv().ok()).collect();
        assert!(
            evs.contains(&LegEvent::AppFinished("stream stopped".into())),
            "{evs:?}"
        );
    }

    /// Plays `n` samples with `mark`, ticks until the mark has gone out; returns the tick
    /// count.
    fn play_until_sent(h: &mut Harness, n: usize, mark: Mark) -> usize {
        h.commands
            .send(LegCommand::Play {
                samples: vec![500; n],
                mark: Some(mark),
            })
            .unwrap();
        for t in 1..100 {
            if h.tick().contains(&Command::Mark {
                name: mark_name(mark),
            }) {
                return t;
            }
        }
        panic!("{mark:?} never sent");
    }

    fn played_marks(h: &mut Harness) -> Vec<Mark> {
        std::iter::from_fn(|| h.events.try_recv().ok())
            .filter_map(|e| match e {
                LegEvent::Mark(MarkEvent::Played(m)) => Some(m),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_carrier_that_never_echoes_gets_marks_played_after_a_second_then_at_once() {
        let mut h = harness(Box::new(NoApp));
        play_until_sent(&mut h, 160, Mark(1));
        let mut waited = 0;
        while played_marks(&mut h).is_empty() {
            h.tick();
            waited += 1;
            assert!(waited < 100, "never settled");
        }
        assert_eq!(waited as u64, crate::leg::carrier_marks::ECHO_WAIT);
        play_until_sent(&mut h, 160, Mark(2));
        assert_eq!(played_marks(&mut h), vec![Mark(2)], "at send, from now on");
    }

    #[test]
    fn our_clear_settles_marks_the_carrier_has_not_echoed_before_the_cleared_ones() {
        let mut h = harness(Box::new(NoApp));
        play_until_sent(&mut h, 160, Mark(3));
        h.commands
            .send(LegCommand::Play {
                samples: vec![500; 8000],
                mark: Some(Mark(4)),
            })
            .unwrap();
        h.tick();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        h.commands.send(LegCommand::Clear(tx)).unwrap();
        h.tick();
        assert_eq!(rx.try_recv().unwrap().cleared, vec![Mark(4)]);
        let evs: Vec<LegEvent> = std::iter::from_fn(|| h.events.try_recv().ok()).collect();
        let marks: Vec<&MarkEvent> = evs
            .iter()
            .filter_map(|e| match e {
                LegEvent::Mark(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(
            marks,
            vec![&MarkEvent::Played(Mark(3)), &MarkEvent::Cleared(Mark(4))]
        );
        // The carrier's late echo of mark 3 (Twilio echoes marks it dropped) changes nothing.
        h.inbound
            .try_send(Event::Mark { name: "m3".into() })
            .unwrap();
        h.tick();
        assert_eq!(played_marks(&mut h), vec![]);
    }

    #[test]
    fn audio_past_the_buffer_cap_is_dropped_not_queued() {
        let mut h = harness(Box::new(NoApp));
        let leg = std::mem::replace(&mut *h.leg, dummy_leg());
        *h.leg = leg.with_max_buffered(Duration::from_millis(100), "MZtest");
        // 100 ms = 800 samples fit; the next 1600 do not and are dropped whole.
        for n in [800, 1600] {
            h.commands
                .send(LegCommand::Play {
                    samples: vec![500; n],
                    mark: None,
                })
                .unwrap();
        }
        let sent: usize = (0..20).map(|_| h.tick().len()).sum();
        assert_eq!(sent, 5, "only the 100 ms under the cap is played");
        assert_eq!(h.leg.overflow_samples, 1600);
        // Once the queue has drained, audio is accepted again.
        h.commands
            .send(LegCommand::Play {
                samples: vec![500; 160],
                mark: None,
            })
            .unwrap();
        assert_eq!(h.tick().len(), 1);
    }

    fn dummy_leg() -> StreamLeg {
        let (_in_tx, in_rx) = mpsc::channel(1);
        let (out_tx, _out_rx) = mpsc::channel(1);
        let (_cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, _ev_rx) = mpsc::unbounded_channel();
        StreamLeg::new(
            StreamAudio::Pcmu,
            StreamLegChannels {
                inbound: in_rx,
                outbound: out_tx,
                commands: cmd_rx,
                events: ev_tx,
            },
            Box::new(NoApp),
            None,
            Instant::now(),
        )
    }
}
