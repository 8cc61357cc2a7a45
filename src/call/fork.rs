//! The fork app: the caller talks to a customer's bot over a WebSocket speaking the Twilio
//! Media Streams protocol (we are the Twilio side; the socket lives in
//! [`crate::leg::stream_client`]). Every 20 ms the caller's frame goes to the bot as µ-law;
//! the bot's audio is queued for the caller, its marks become zero-length mark chunks in
//! the playout queue and are echoed when the audio before them has been sent on the wire
//! (or dropped by a clear), and its `clear` empties the queue.

use crate::codec::g711::{linear_to_ulaw, ulaw_to_linear};
use crate::codec::resample::Resampler;
use crate::leg::stream_client::{self, ForkChannels, ForkConfig, FromBot, ToBot};
use crate::leg::{AppIo, LegEvent, MediaApp};
use crate::media::playout::{Mark, MarkEvent};
use std::collections::HashMap;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};

/// Samples in 20 ms at the protocol's 8 kHz.
const FRAME_8K: usize = 160;
/// Most bot messages taken per tick (the rest wait for the next tick): 10 s of audio
/// a tick at most, so a flooding bot costs the media thread little per tick.
const MAX_FROM_BOT_PER_TICK: usize = 512;

/// Forks the call to a bot.
pub struct ForkApp {
    chans: ForkChannels,
    /// Bot mark names by the playout mark that stands for them.
    marks: HashMap<u64, String>,
    next_mark: u64,
    /// 8 kHz → leg rate for the bot's audio, and leg rate → 8 kHz for the caller's, when
    /// the leg does not run at 8 kHz.
    up: Option<Resampler>,
    down: Option<Resampler>,
    /// Bot audio at 8 kHz waiting for a whole 20 ms frame (only when resampling).
    pending: Vec<i16>,
    pcm: Vec<i16>,
    scratch: Vec<i16>,
    /// A stream is up (media flows to the bot).
    streaming: bool,
    stopped: bool,
    /// Caller frames dropped because the client's queue was full.
    pub dropped_to_bot: u64,
    /// Bot samples dropped because the playout queue was full.
    pub dropped_playout: u64,
    /// Most samples (at the leg's rate) queued ahead of real time (`[streams] max_buffered_s`).
    max_buffered: usize,
    max_buffered_s: u64,
    /// The bot has been told (this stream) that its extra audio is dropped.
    told_full: bool,
}

impl ForkApp {
    /// Starts the fork client (on the current tokio runtime) for a leg at `rate`.
    pub fn new(cfg: ForkConfig, rate: u32) -> Result<ForkApp, String> {
        let max_buffered_s = cfg.settings.max_buffered.as_secs().max(1);
        let max_buffered =
            (cfg.settings.max_buffered.as_millis() as usize * rate as usize / 1000).max(1);
        let (up, down) = if rate == 8000 {
            (None, None)
        } else {
            (
                Some(Resampler::new(8000, rate).map_err(|e| e.to_string())?),
                Some(Resampler::new(rate, 8000).map_err(|e| e.to_string())?),
            )
        };
        Ok(ForkApp {
            chans: stream_client::spawn(cfg),
            marks: HashMap::new(),
            next_mark: 1,
            up,
            down,
            pending: Vec::new(),
            pcm: Vec::new(),
            scratch: Vec::new(),
            streaming: false,
            stopped: false,
            dropped_to_bot: 0,
            dropped_playout: 0,
            max_buffered,
            max_buffered_s,
            told_full: false,
        })
    }

    fn send_to_bot(&mut self, msg: ToBot) {
        match self.chans.to_bot.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped_to_bot += 1;
                if self.dropped_to_bot.is_power_of_two() {
                    tracing::warn!(
                        dropped = self.dropped_to_bot,
                        "fork: the bot socket is not keeping up; caller frames dropped"
                    );
                }
            }
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Whether `samples` more would pass the buffer cap.
    fn over_cap(&self, io: &AppIo<'_>, samples: usize) -> bool {
        io.queued_samples() + samples > self.max_buffered
    }

    /// Audio beyond the cap is dropped; the bot hears about it once per stream (the client
    /// logs it once with the streamSid and sends the `error` event).
    fn overflow(&mut self, samples: usize) {
        self.dropped_playout += samples as u64;
        if !std::mem::replace(&mut self.told_full, true) {
            let max_buffered_s = self.max_buffered_s;
            self.send_to_bot(ToBot::BufferFull { max_buffered_s });
        }
    }

    fn queue(&mut self, io: &mut AppIo<'_>, samples: &[i16], mark: Option<Mark>) {
        if !samples.is_empty() && self.over_cap(io, samples.len()) {
            self.overflow(samples.len());
            return;
        }
        if let Err(e) = io.play(samples, mark) {
            if let Some(m) = mark {
                self.marks.remove(&m.0);
            }
            tracing::warn!(error = %e, dropped_samples = self.dropped_playout,
                "fork: playout queue refused audio; dropped");
            self.overflow(samples.len());
        }
    }

    /// Queues 8 kHz bot audio at the leg's rate.
    fn play_8k(&mut self, io: &mut AppIo<'_>, flush: bool) {
        let Some(up) = self.up.as_mut() else {
            let pcm = std::mem::take(&mut self.pcm);
            self.queue(io, &pcm, None);
            self.pcm = pcm;
            self.pcm.clear();
            return;
        };
        self.pending.extend_from_slice(&self.pcm);
        self.pcm.clear();
        if flush && !self.pending.len().is_multiple_of(FRAME_8K) {
            let pad = FRAME_8K - self.pending.len() % FRAME_8K;
            self.pending.extend(std::iter::repeat_n(0, pad));
        }
        let whole = self.pending.len() / FRAME_8K * FRAME_8K;
        let mut out = std::mem::take(&mut self.scratch);
        let mut all = Vec::with_capacity(whole / FRAME_8K * up.output_frame());
        for f in self.pending[..whole].chunks(FRAME_8K) {
            if up.process(f, &mut out).is_ok() {
                all.extend_from_slice(&out);
            }
        }
        self.pending.drain(..whole);
        self.scratch = out;
        self.queue(io, &all, None);
    }

    fn handle_bot(&mut self, msg: FromBot, io: &mut AppIo<'_>) {
        match msg {
            FromBot::Started { .. } => {
                self.streaming = true;
                self.told_full = false;
            }
            FromBot::Media(payload) => {
                // Checked before decoding: a flood past the cap costs almost nothing.
                let at_rate = payload.len() * io.rate as usize / 8000;
                if self.over_cap(io, at_rate + self.pending.len()) {
                    self.overflow(at_rate);
                    return;
                }
                self.pcm.extend(payload.iter().map(|&b| ulaw_to_linear(b)));
                self.play_8k(io, false);
            }
            FromBot::Mark(name) => {
                self.play_8k(io, true);
                let id = self.next_mark;
                self.next_mark += 1;
                self.marks.insert(id, name);
                self.queue(io, &[], Some(Mark(id)));
            }
            FromBot::Clear => {
                self.pending.clear();
                io.clear();
            }
            FromBot::Lost => {
                // The caller hears silence until a new stream starts; marks of the old
                // stream have nobody to be echoed to.
                self.streaming = false;
                self.pending.clear();
                self.marks.clear();
                io.clear();
            }
            FromBot::GiveUp(reason) => {
                self.streaming = false;
                io.finish(reason);
            }
        }
    }
}

impl MediaApp for ForkApp {
    fn on_tick(&mut self, io: &mut AppIo<'_>) {
        for _ in 0..MAX_FROM_BOT_PER_TICK {
            match self.chans.from_bot.try_recv() {
                Ok(msg) => self.handle_bot(msg, io),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        if !self.streaming {
            return;
        }
        let Some(frame) = io.caller else { return };
        let pcm8: &[i16] = match self.down.as_mut() {
            Some(down) => {
                if down.process(frame, &mut self.scratch).is_err() {
                    return;
                }
                &self.scratch
            }
            None => frame,
        };
        let payload: Vec<u8> = pcm8.iter().map(|&s| linear_to_ulaw(s)).collect();
        let tick = io.tick;
        self.send_to_bot(ToBot::Media { tick, payload });
    }

    fn on_event(&mut self, event: &LegEvent, _io: &mut AppIo<'_>) {
        match event {
            LegEvent::Dtmf { digit, .. } if self.streaming => {
                self.send_to_bot(ToBot::Dtmf(*digit));
            }
            LegEvent::Mark(MarkEvent::Played(m) | MarkEvent::Cleared(m)) => {
                if let Some(name) = self.marks.remove(&m.0) {
                    self.send_to_bot(ToBot::Mark(name));
                }
            }
            _ => {}
        }
    }

    fn on_stop(&mut self) -> Option<String> {
        if !self.stopped {
            self.stopped = true;
            // Best effort: if the queue is full the closed channel still ends the task.
            let _ = self.chans.to_bot.try_send(ToBot::Stop);
        }
        None
    }
}
