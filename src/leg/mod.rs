//! The transport-agnostic call leg: one party's audio in and out plus its control events.
//! [`rtp`] is the SIP leg's media (sans-IO), [`worker`] the paced driver that runs many
//! legs on one clock, [`MediaApp`] what a call does with the audio (echo, play, record, or
//! the agent pipeline through channels).

pub mod carrier_marks;
pub mod harness;
pub mod rtp;
pub mod stream;
pub mod stream_auth;
pub mod stream_client;
pub mod stream_leg;
pub mod stream_server;
pub mod udp;
pub mod worker;

use crate::media::playout::{ClearReport, Mark, MarkEvent, PlayoutError, PlayoutQueue};
use crate::rtp::jitter::JitterStats;
use crate::rtp::session::SessionStats;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::oneshot;

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event packets.
    Rfc4733,
    /// Tones in the audio, found by the Goertzel detector.
    Inband,
    /// SIP INFO (`application/dtmf-relay` or `application/dtmf`).
    SipInfo,
    /// A media stream's `dtmf` event (Twilio, Telnyx, Vonage, Plivo).
    Stream,
}

/// Something that happened on a leg, reported to the call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LegEvent {
    /// One key press, reported once whatever the transport repeated.
    Dtmf {
        digit: char,
        source: DtmfSource,
        duration_ms: u32,
    },
    /// A playout mark was played or cleared.
    Mark(MarkEvent),
    /// No media arrived for the media timeout.
    MediaTimeout,
    /// The app asked to end the call, with a reason for the call record.
    AppFinished(String),
    /// The app asked to transfer the caller (SIP REFER) to this target.
    TransferRequested(String),
    /// The transfer the app asked for failed before the target answered (the call goes on
    /// with the app); the reason is for the conversation and the record.
    TransferFailed(String),
    /// The leg stopped: sockets closed, recording finalized. Always the last event.
    Stopped(Box<LegStats>),
}

/// The counters of a leg when it stops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegStats {
    pub rtp: SessionStats,
    pub jitter: JitterStats,
    /// Frames sent with audio from the playout queue.
    pub frames_sent_audio: u64,
    /// Frames sent as silence (comfort silence when the queue was empty).
    pub frames_sent_silence: u64,
    /// Caller frames decoded, and those concealed for loss.
    pub frames_decoded: u64,
    pub frames_concealed: u64,
    /// Payloads the codec could not decode, and RTCP that did not parse.
    pub decode_errors: u64,
    /// SRTP/SRTCP packets that failed authentication or the replay check.
    pub srtp_rejected: u64,
    /// Datagrams the socket refused to send (buffer full).
    pub send_errors: u64,
    /// Mean opinion score estimate (E-model) at the end of the call, if computed.
    pub mos: Option<f64>,
    /// Recording written for this leg, if any.
    pub recording: Option<String>,
    /// How long the leg ran.
    pub duration: Duration,
    /// What the agent app learned on the call (transcript, tools, disposition), if it ran.
    pub agent: Option<Box<crate::agent::report::AgentReport>>,
}

/// A command to a running leg from its call (or the agent pipeline).
#[derive(Debug)]
#[non_exhaustive]
pub enum LegCommand {
    /// Queue audio at the leg's PCM rate, with an optional mark reported when played.
    Play {
        samples: Vec<i16>,
        mark: Option<Mark>,
    },
    /// Drop everything queued; the report says what the far end heard.
    Clear(oneshot::Sender<ClearReport>),
    /// Send digits as RFC 4733 events (or in-band tones when no event type was negotiated).
    SendDtmf(String),
    /// A digit that arrived out of band (SIP INFO): surfaced as a leg event and to the app.
    InjectDtmf(char, u32),
    /// Stop sending media (held by the peer) or resume.
    SetSending(bool),
    /// Stop the leg; a [`LegEvent::Stopped`] follows.
    Stop,
    /// Run this app from the next tick on (a bridged transfer); the old app is kept until the
    /// leg stops, for its report. Only RTP legs on a media worker take it.
    ReplaceApp(AppSwap),
    /// Put back the app that ran before the first [`LegCommand::ReplaceApp`] (dropping the
    /// stand-ins since); no-op when nothing was replaced.
    RestoreApp,
    /// Tell the app its transfer failed ([`LegEvent::TransferFailed`], through `on_event`).
    TransferFailed(String),
}

/// The app a [`LegCommand::ReplaceApp`] installs.
pub struct AppSwap(pub Box<dyn MediaApp>);

impl std::fmt::Debug for AppSwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppSwap(..)")
    }
}

/// What an app may do on a tick: read the caller's frame, queue audio, ask to hang up.
pub struct AppIo<'a> {
    /// The caller's frame for this tick (decoded or concealed), if the stream is running.
    pub caller: Option<&'a [i16]>,
    /// The leg's PCM rate.
    pub rate: u32,
    /// 20 ms ticks since the leg started.
    pub tick: u64,
    playout: &'a mut PlayoutQueue,
    marks: &'a mut VecDeque<MarkEvent>,
    dtmf_out: &'a mut VecDeque<char>,
    finish: &'a mut Option<String>,
    /// Set by [`AppIo::clear`], so a stream leg can tell the far end to drop its buffer.
    cleared: &'a mut bool,
    /// Where the app asked to transfer the caller; `None` when the leg cannot transfer.
    transfer: Option<&'a mut Option<String>>,
}

impl<'a> AppIo<'a> {
    /// Queues audio for playout.
    pub fn play(&mut self, samples: &[i16], mark: Option<Mark>) -> Result<(), PlayoutError> {
        self.playout.push(samples, mark)
    }

    /// Drops queued audio; cleared marks are reported as events.
    pub fn clear(&mut self) -> ClearReport {
        let report = self.playout.clear();
        self.marks.extend(report.events());
        *self.cleared = true;
        report
    }

    /// Samples queued and not yet sent.
    pub fn queued_samples(&self) -> usize {
        self.playout.queued_samples()
    }

    /// Sends digits to the far end.
    pub fn send_dtmf(&mut self, digits: &str) {
        self.dtmf_out.extend(digits.chars());
    }

    /// Asks the call to transfer the caller to `target` (a SIP REFER on a SIP leg). Returns
    /// false when this leg cannot transfer (a media stream).
    pub fn transfer(&mut self, target: impl Into<String>) -> bool {
        match self.transfer.as_deref_mut() {
            Some(slot) => {
                slot.get_or_insert(target.into());
                true
            }
            None => false,
        }
    }

    /// Asks the call to hang up, with a reason for the record.
    pub fn finish(&mut self, reason: impl Into<String>) {
        if self.finish.is_none() {
            *self.finish = Some(reason.into());
        }
    }
}

/// What a call does with a leg's audio, run inside the media worker on every tick: it must
/// not block (anything slow goes through channels to another task).
pub trait MediaApp: Send {
    /// Called once per 20 ms tick, after the caller's frame was decoded.
    fn on_tick(&mut self, io: &mut AppIo<'_>);
    /// Called for DTMF and mark events before they go to the call.
    fn on_event(&mut self, _event: &LegEvent, _io: &mut AppIo<'_>) {}
    /// Called once when the leg stops; returns a recording key if the app wrote one.
    fn on_stop(&mut self) -> Option<String> {
        None
    }
    /// Called once when the leg stops; an agent app hands over what it learned.
    fn take_report(&mut self) -> Option<crate::agent::report::AgentReport> {
        None
    }
}

/// Sees both directions of every tick (the recorder): the caller's frame and the frame we
/// sent, each `None` when there was none.
pub trait LegTap: Send {
    /// One tick's audio; `tick` counts from the leg's start so gaps can be kept as silence.
    fn push(&mut self, tick: u64, caller: Option<&[i16]>, sent: Option<&[i16]>);
    /// Finalizes (e.g. writes the WAV header); returns the recording's key.
    fn finish(&mut self) -> Option<String>;
}
