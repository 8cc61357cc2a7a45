//! The media of a SIP leg, sans-IO: received datagrams go through the RTP session, the
//! jitter buffer and the decoder into one caller frame per tick; the app's audio leaves
//! from the playout queue through the encoder into one RTP packet per tick. DTMF arrives
//! as RFC 4733 events or in-band tones and leaves as RFC 4733 events. The driver
//! ([`super::worker`]) owns the sockets and calls [`RtpLeg::tick`] every 20 ms.

use super::{AppIo, DtmfSource, LegCommand, LegEvent, LegStats, MediaApp};
use crate::codec::{CodecKind, CodecSpec, Decoder, Encoder};
use crate::media::dtmf_detect::{DtmfDetector, dtmf_tone};
use crate::media::playout::{MarkEvent, PlayoutQueue, SilenceMode};
use crate::media::quality::{self, QualityInputs};
use crate::rtp::dtmf::{DtmfReceiver, DtmfSender, TelephoneEvent};
use crate::rtp::jitter::{JitterBuffer, JitterConfig, Playout};
use crate::rtp::session::{RtpSession, RtpSessionConfig};
use crate::rtp::srtp::SrtpSession;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long each digit we send lasts, and the pause after it.
const DTMF_SEND_MS: u32 = 100;
const DTMF_GAP_TICKS: u32 = 3;

/// Everything negotiated for a leg's media.
#[derive(Debug, Clone)]
pub struct RtpLegConfig {
    pub codec: CodecSpec,
    /// telephone-event payload type and its clock rate, if negotiated.
    pub dtmf: Option<(u8, u32)>,
    /// Where the SDP says to send RTP (replaced by the latched source once media arrives).
    pub remote_rtp: Option<SocketAddr>,
    /// Where the SDP says to send RTCP (ignored with rtcp-mux).
    pub remote_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    pub ssrc: u32,
    pub cname: String,
    pub rtcp_interval: Duration,
    pub media_timeout: Duration,
    pub jitter_min_ms: u32,
    pub jitter_max_ms: u32,
    /// What to send when nothing is queued: zeros (comfort silence) or nothing.
    pub silence: SilenceMode,
    /// Most audio the playout queue holds.
    pub playout_max: Duration,
    /// Run the Goertzel detector on the caller's audio (8 kHz legs).
    pub inband_dtmf: bool,
    /// Packet duration the far end is expected to send (ms); G.711 legs learn the real one
    /// from the first packet.
    pub remote_ptime_ms: u32,
}

impl RtpLegConfig {
    /// Defaults for a codec: 5 s RTCP, 30 s media timeout, 20–200 ms jitter buffer,
    /// comfort silence, 10 minutes of playout, in-band DTMF detection on G.711.
    pub fn new(codec: CodecSpec) -> RtpLegConfig {
        RtpLegConfig {
            codec,
            dtmf: None,
            remote_rtp: None,
            remote_rtcp: None,
            rtcp_mux: false,
            ssrc: rand::random(),
            cname: format!("leadscaller-{:08x}", rand::random::<u32>()),
            rtcp_interval: Duration::from_secs(5),
            media_timeout: Duration::from_secs(30),
            jitter_min_ms: 20,
            jitter_max_ms: 200,
            silence: SilenceMode::Zeros,
            playout_max: Duration::from_secs(600),
            inband_dtmf: codec.pcm_rate == 8000,
            remote_ptime_ms: 20,
        }
    }
}

fn new_jitter_buffer(cfg: &RtpLegConfig, ptime_ms: u32) -> JitterBuffer {
    let rtp_rate = cfg.codec.rtp_clock_rate();
    JitterBuffer::new(JitterConfig {
        clock_rate: rtp_rate,
        frame_samples: rtp_rate * ptime_ms / 1000,
        min_delay_ms: cfg.jitter_min_ms.max(ptime_ms),
        max_delay_ms: cfg.jitter_max_ms.max(ptime_ms),
        max_packets: (cfg.jitter_max_ms / ptime_ms.max(1) + 1) as usize * 4,
    })
}

/// Datagrams a tick produced; the bytes stay in the leg ([`RtpLeg::rtp_packet`]).
#[derive(Debug, Default)]
pub struct TickOutput {
    /// Send [`RtpLeg::rtp_packet`] here.
    pub rtp_to: Option<SocketAddr>,
    /// An RTCP report and where to send it.
    pub rtcp: Option<(Vec<u8>, SocketAddr)>,
}

/// One RFC 4733 press being sent: its packets and the timestamp they share.
struct DtmfSending {
    timestamp: u32,
    packets: VecDeque<(bool, u16, [u8; 4])>,
    gap_ticks: u32,
}

/// A SIP leg's media state.
pub struct RtpLeg {
    cfg: RtpLegConfig,
    started: Instant,
    session: RtpSession,
    jitter: JitterBuffer,
    decoder: Decoder,
    encoder: Encoder,
    playout: PlayoutQueue,
    dtmf_rx: DtmfReceiver,
    inband: Option<DtmfDetector>,
    dtmf_out: VecDeque<char>,
    dtmf_sending: Option<DtmfSending>,
    /// The caller's frame of this tick and our frame of this tick (for the recorder).
    caller_pcm: Vec<i16>,
    has_caller: bool,
    /// Decoded caller audio not yet framed: packets of any duration become 20 ms frames.
    caller_fifo: VecDeque<i16>,
    /// Duration of the far end's packets (ms) and whether the first one was seen.
    remote_ptime_ms: u32,
    ptime_learned: bool,
    /// Output waits until the FIFO holds enough to never run dry between packets.
    primed: bool,
    decode_buf: Vec<i16>,
    agent_pcm: Vec<i16>,
    has_agent: bool,
    payload_buf: Vec<u8>,
    packet_buf: Vec<u8>,
    /// SRTP contexts (SDES) when the call negotiated `RTP/SAVP`, with their buffers.
    srtp: Option<SrtpSession>,
    srtp_in: Vec<u8>,
    srtp_out: Vec<u8>,
    /// Events not yet shown to the app, and events ready for the call.
    pending: VecDeque<LegEvent>,
    outbox: VecDeque<LegEvent>,
    marks: VecDeque<MarkEvent>,
    finish: Option<String>,
    /// Where the app asked to transfer the caller, until reported.
    transfer: Option<String>,
    sending: bool,
    in_talkspurt: bool,
    timed_out: bool,
    stopped: bool,
    tick: u64,
    stats: LegStats,
}

impl RtpLeg {
    /// A leg starting at `now`.
    pub fn new(cfg: RtpLegConfig, now: Instant) -> Result<RtpLeg, crate::codec::CodecError> {
        let codec = cfg.codec;
        let fs = codec.frame_samples();
        let session = RtpSession::new(
            RtpSessionConfig {
                clock_rate: codec.rtp_clock_rate(),
                audio_pts: vec![codec.payload_type],
                dtmf_pt: cfg.dtmf.map(|(pt, _)| pt),
                ssrc: cfg.ssrc,
                cname: cfg.cname.clone(),
                rtcp_interval: cfg.rtcp_interval,
                media_timeout: cfg.media_timeout,
            },
            now,
            rand::random(),
            rand::random(),
        );
        let ptime = cfg.remote_ptime_ms.clamp(10, 120);
        let jitter = new_jitter_buffer(&cfg, ptime);
        let max_samples = (cfg.playout_max.as_millis() as usize) * codec.pcm_rate as usize / 1000;
        Ok(RtpLeg {
            decoder: Decoder::new(codec)?,
            encoder: Encoder::new(codec)?,
            playout: PlayoutQueue::new(fs, max_samples.max(fs)).with_silence_mode(cfg.silence),
            dtmf_rx: DtmfReceiver::new(cfg.dtmf.map_or(8000, |(_, rate)| rate)),
            inband: (cfg.inband_dtmf && codec.pcm_rate == 8000).then(DtmfDetector::new),
            dtmf_out: VecDeque::new(),
            dtmf_sending: None,
            caller_pcm: Vec::with_capacity(fs),
            has_caller: false,
            caller_fifo: VecDeque::with_capacity(fs * 8),
            remote_ptime_ms: ptime,
            ptime_learned: false,
            primed: false,
            decode_buf: Vec::with_capacity(fs * 6),
            agent_pcm: Vec::with_capacity(fs),
            has_agent: false,
            payload_buf: Vec::with_capacity(1500),
            packet_buf: Vec::with_capacity(1500),
            srtp: None,
            srtp_in: Vec::new(),
            srtp_out: Vec::new(),
            pending: VecDeque::new(),
            outbox: VecDeque::new(),
            marks: VecDeque::new(),
            finish: None,
            transfer: None,
            sending: true,
            in_talkspurt: false,
            timed_out: false,
            stopped: false,
            tick: 0,
            stats: LegStats::default(),
            started: now,
            session,
            jitter,
            cfg,
        })
    }

    /// The leg's codec.
    pub fn codec(&self) -> CodecSpec {
        self.cfg.codec
    }

    /// Protects the leg's media with SRTP from now on (SDES keys from the SDP).
    pub fn set_srtp(&mut self, session: SrtpSession) {
        self.srtp_in = Vec::with_capacity(1500);
        self.srtp_out = Vec::with_capacity(1500);
        self.srtp = Some(session);
    }

    /// Takes one received RTP (or, with SRTP, SRTP) datagram. With SRTP a packet that fails
    /// authentication or replay checks is dropped before anything looks at it, so it can
    /// neither latch the leg nor reach the jitter buffer.
    pub fn on_rtp(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if let Some(srtp) = self.srtp.as_mut() {
            let mut plain = std::mem::take(&mut self.srtp_in);
            if srtp.unprotect_rtp(datagram, &mut plain).is_ok() {
                self.on_plain_rtp(now, from, &plain);
            } else {
                self.stats.srtp_rejected += 1;
            }
            self.srtp_in = plain;
            return;
        }
        self.on_plain_rtp(now, from, datagram);
    }

    fn on_plain_rtp(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Ok(p) = self.session.on_rtp(now, from, datagram) else {
            return;
        };
        if p.is_dtmf {
            let digit = TelephoneEvent::parse(p.payload)
                .ok()
                .and_then(|ev| self.dtmf_rx.push(p.timestamp, p.marker, ev));
            if let Some(d) = digit {
                self.pending.push_back(LegEvent::Dtmf {
                    digit: d.digit,
                    source: DtmfSource::Rfc4733,
                    duration_ms: d.duration_ms,
                });
            }
            return;
        }
        if !self.ptime_learned {
            self.ptime_learned = true;
            self.learn_ptime(p.payload.len());
        }
        self.jitter
            .push(now, p.seq, p.timestamp, p.marker, p.payload);
        // Audio moves the clock on, closing a press whose end packets were lost.
        if let Some(d) = self.dtmf_rx.on_timeout(p.timestamp) {
            self.pending.push_back(LegEvent::Dtmf {
                digit: d.digit,
                source: DtmfSource::Rfc4733,
                duration_ms: d.duration_ms,
            });
        }
    }

    /// Takes one received RTCP datagram (`ntp_now`: arrival time in NTP format).
    pub fn on_rtcp(&mut self, now: Instant, ntp_now: u64, datagram: &[u8]) {
        let result = match self.srtp.as_mut() {
            Some(srtp) => {
                let mut plain = Vec::new();
                match srtp.unprotect_rtcp(datagram, &mut plain) {
                    Ok(()) => self.session.on_rtcp(now, ntp_now, &plain).is_ok(),
                    Err(_) => {
                        self.stats.srtp_rejected += 1;
                        return;
                    }
                }
            }
            None => self.session.on_rtcp(now, ntp_now, datagram).is_ok(),
        };
        if !result {
            self.stats.decode_errors += 1;
        }
    }

    /// Applies a command from the call.
    pub fn command(&mut self, cmd: LegCommand) {
        match cmd {
            LegCommand::Play { samples, mark } => {
                if let Err(e) = self.playout.push(&samples, mark) {
                    tracing::warn!(error = %e, "playout queue full; audio dropped");
                }
            }
            LegCommand::Clear(reply) => {
                let report = self.playout.clear();
                self.marks.extend(report.events());
                let _ = reply.send(report);
            }
            LegCommand::SendDtmf(digits) => self.queue_dtmf(&digits),
            LegCommand::InjectDtmf(digit, duration_ms) => self.pending.push_back(LegEvent::Dtmf {
                digit,
                source: DtmfSource::SipInfo,
                duration_ms,
            }),
            LegCommand::SetSending(on) => self.sending = on,
            LegCommand::Stop => self.stopped = true,
            // The worker swaps apps; it never reaches the leg.
            LegCommand::ReplaceApp(_) | LegCommand::RestoreApp => {}
            LegCommand::TransferFailed(why) => {
                self.pending.push_back(LegEvent::TransferFailed(why))
            }
        }
    }

    fn queue_dtmf(&mut self, digits: &str) {
        if self.cfg.dtmf.is_some() {
            self.dtmf_out.extend(digits.chars());
            return;
        }
        // No telephone-event negotiated: tones in the audio, in queue order.
        let rate = self.cfg.codec.pcm_rate;
        for d in digits.chars() {
            let mut tone = dtmf_tone(d, rate, DTMF_SEND_MS);
            tone.resize(tone.len() + (rate as usize * 60 / 1000), 0);
            if let Err(e) = self.playout.push(&tone, None) {
                tracing::warn!(error = %e, "playout queue full; DTMF tone dropped");
            }
        }
    }

    /// True once a [`LegCommand::Stop`] was applied.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The next event for the call.
    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.outbox.pop_front()
    }

    /// The RTP (or SRTP) packet the last tick produced.
    pub fn rtp_packet(&self) -> &[u8] {
        if self.srtp.is_some() {
            &self.srtp_out
        } else {
            &self.packet_buf
        }
    }

    /// The caller's frame of the last tick, if there was one.
    pub fn caller_frame(&self) -> Option<&[i16]> {
        self.has_caller.then_some(&self.caller_pcm[..])
    }

    /// The frame we sent in the last tick, if any audio (or comfort silence) went out.
    pub fn sent_frame(&self) -> Option<&[i16]> {
        self.has_agent.then_some(&self.agent_pcm[..])
    }

    /// Ticks run so far.
    pub fn ticks(&self) -> u64 {
        self.tick
    }

    /// One 20 ms step: decode the caller's next frame, run the app, send our next frame,
    /// and an RTCP report when due. `ntp_now` is the wall clock in NTP format.
    pub fn tick(&mut self, now: Instant, ntp_now: u64, app: &mut dyn MediaApp) -> TickOutput {
        let mut out = TickOutput::default();
        self.receive_frame(now);
        let rate = self.cfg.codec.pcm_rate;
        {
            let mut io = AppIo {
                caller: self.has_caller.then_some(&self.caller_pcm[..]),
                rate,
                tick: self.tick,
                playout: &mut self.playout,
                marks: &mut self.marks,
                dtmf_out: &mut self.dtmf_out,
                finish: &mut self.finish,
                cleared: &mut false,
                transfer: Some(&mut self.transfer),
            };
            while let Some(ev) = self.pending.pop_front() {
                app.on_event(&ev, &mut io);
                self.outbox.push_back(ev);
            }
            app.on_tick(&mut io);
        }
        out.rtp_to = self.send_frame();
        if out.rtp_to.is_some()
            && let Some(srtp) = self.srtp.as_mut()
            && srtp
                .protect_rtp(&self.packet_buf, &mut self.srtp_out)
                .is_err()
        {
            out.rtp_to = None;
        }
        while let Some(m) = self.marks.pop_front() {
            let ev = LegEvent::Mark(m);
            let mut io = AppIo {
                caller: None,
                rate,
                tick: self.tick,
                playout: &mut self.playout,
                marks: &mut VecDeque::new(),
                dtmf_out: &mut self.dtmf_out,
                finish: &mut self.finish,
                cleared: &mut false,
                transfer: Some(&mut self.transfer),
            };
            app.on_event(&ev, &mut io);
            self.outbox.push_back(ev);
        }
        if let Some(target) = self.transfer.take() {
            self.outbox.push_back(LegEvent::TransferRequested(target));
        }
        if let Some(reason) = self.finish.take() {
            self.outbox.push_back(LegEvent::AppFinished(reason));
        }
        if let Some(mut report) = self.session.poll_rtcp(now, ntp_now) {
            if let Some(srtp) = self.srtp.as_mut() {
                let mut protected = Vec::with_capacity(report.len() + 16);
                if srtp.protect_rtcp(&report, &mut protected).is_ok() {
                    report = protected;
                } else {
                    report.clear();
                }
            }
            let dest = if self.cfg.rtcp_mux {
                self.destination()
            } else {
                self.cfg.remote_rtcp.or_else(|| {
                    self.destination()
                        .map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)))
                })
            };
            if let Some(d) = dest
                && !report.is_empty()
            {
                out.rtcp = Some((report, d));
            }
        }
        if !self.timed_out && self.session.media_timed_out(now) {
            self.timed_out = true;
            self.outbox.push_back(LegEvent::MediaTimeout);
        }
        self.tick += 1;
        out
    }

    /// G.711 carries one byte per sample, so the first packet tells the far end's
    /// packetization; the jitter buffer is rebuilt (still empty) when it differs.
    fn learn_ptime(&mut self, payload_len: usize) {
        let codec = self.cfg.codec;
        if !matches!(codec.kind, CodecKind::Pcmu | CodecKind::Pcma) {
            return;
        }
        let ms = (payload_len as u32 * 1000 / codec.pcm_rate).clamp(10, 120);
        if ms != self.remote_ptime_ms && ms.is_multiple_of(10) {
            self.remote_ptime_ms = ms;
            self.jitter = new_jitter_buffer(&self.cfg, ms);
        }
    }

    fn receive_frame(&mut self, now: Instant) {
        let fs = self.cfg.codec.frame_samples();
        let packet = (self.cfg.codec.pcm_rate * self.remote_ptime_ms / 1000) as usize;
        // Pull every packet that is due until a frame's worth is buffered.
        while self.caller_fifo.len() < fs + packet {
            match self.jitter.pop(now) {
                Some(Playout::Frame { payload, .. }) => {
                    if self.decoder.decode(&payload, &mut self.decode_buf).is_ok() {
                        self.stats.frames_decoded += 1;
                    } else {
                        self.stats.decode_errors += 1;
                        self.decoder.conceal(packet, &mut self.decode_buf);
                        self.stats.frames_concealed += 1;
                    }
                }
                Some(Playout::Lost { .. }) => {
                    // Opus carries a copy of this frame in the next packet (in-band FEC);
                    // G.711 falls back to concealment inside decode_fec.
                    let recovered = match self.jitter.peek_next() {
                        Some(next) => self.decoder.decode_fec(next, &mut self.decode_buf).is_ok(),
                        None => false,
                    };
                    if !recovered {
                        self.decoder.conceal(packet, &mut self.decode_buf);
                    }
                    self.stats.frames_concealed += 1;
                }
                None => break,
            }
            self.caller_fifo.extend(self.decode_buf.iter().copied());
        }
        // Packets longer or shorter than a frame need one packet of slack so that the
        // FIFO does not run dry between two arrivals.
        let prime = if packet == fs { fs } else { fs + packet };
        if !self.primed && self.caller_fifo.len() >= prime {
            self.primed = true;
        }
        if !self.primed || self.caller_fifo.len() < fs {
            self.primed = false;
            self.has_caller = false;
            return;
        }
        // A sender whose clock runs fast fills the FIFO; drop its oldest audio.
        let cap = 4 * (fs + packet);
        if self.caller_fifo.len() > cap {
            self.caller_fifo.drain(..self.caller_fifo.len() - cap);
        }
        self.caller_pcm.clear();
        self.caller_pcm.extend(self.caller_fifo.drain(..fs));
        self.has_caller = true;
        if let Some(det) = self.inband.as_mut() {
            for digit in det.push(&self.caller_pcm) {
                self.pending.push_back(LegEvent::Dtmf {
                    digit,
                    source: DtmfSource::Inband,
                    duration_ms: 0,
                });
            }
        }
    }

    fn destination(&self) -> Option<SocketAddr> {
        self.session.remote().or(self.cfg.remote_rtp)
    }

    fn send_frame(&mut self) -> Option<SocketAddr> {
        let units = self.cfg.codec.frame_rtp_units();
        self.has_agent = false;
        let dest = self.destination();
        if !self.sending || dest.is_none() {
            self.session.advance(units);
            self.in_talkspurt = false;
            return None;
        }
        if self.dtmf_sending.is_none()
            && let Some((pt, rate)) = self.cfg.dtmf
            && let Some(digit) = self.dtmf_out.pop_front()
        {
            match DtmfSender::default().packets(digit, DTMF_SEND_MS, rate, 20) {
                Ok(p) => {
                    self.dtmf_sending = Some(DtmfSending {
                        timestamp: self.session.next_timestamp(),
                        packets: p.into(),
                        gap_ticks: DTMF_GAP_TICKS,
                    });
                }
                Err(e) => tracing::warn!(%digit, error = %e, "cannot send DTMF digit"),
            }
            let _ = pt;
        }
        if let (Some(s), Some((pt, _))) = (self.dtmf_sending.as_mut(), self.cfg.dtmf) {
            if let Some((marker, _, payload)) = s.packets.pop_front() {
                // The three end packets go out in this tick and the next ones.
                self.session.packetize_event_into(
                    pt,
                    marker,
                    s.timestamp,
                    &payload,
                    &mut self.packet_buf,
                );
                self.session.advance(units);
                return dest;
            }
            if s.gap_ticks > 0 {
                s.gap_ticks -= 1;
            } else {
                self.dtmf_sending = None;
            }
        }
        let frame = self.playout.next_frame();
        self.marks.extend(frame.events());
        let is_audio = frame.is_audio();
        let Some(pcm) = frame.samples() else {
            self.session.advance(units);
            self.in_talkspurt = false;
            return None;
        };
        self.agent_pcm.clear();
        self.agent_pcm.extend_from_slice(pcm);
        if is_audio {
            self.stats.frames_sent_audio += 1;
        } else {
            self.stats.frames_sent_silence += 1;
        }
        if self
            .encoder
            .encode(&self.agent_pcm, &mut self.payload_buf)
            .is_err()
        {
            self.session.advance(units);
            return None;
        }
        let marker = !self.in_talkspurt;
        self.in_talkspurt = true;
        self.has_agent = true;
        self.session.packetize_into(
            self.cfg.codec.payload_type,
            marker,
            units,
            &self.payload_buf,
            &mut self.packet_buf,
        );
        dest
    }

    /// The counters so far.
    pub fn stats(&self, now: Instant) -> LegStats {
        let rtp = self.session.stats();
        let expected = i64::from(rtp.received) + i64::from(rtp.lost.max(0));
        // No media received: nothing to score.
        let mos = (rtp.received > 0).then(|| {
            quality::mos(&QualityInputs {
                loss: rtp.lost.max(0) as f64 / expected.max(1) as f64,
                jitter_ms: rtp.jitter_ms,
                rtt_ms: rtp.rtt_ms,
                jitter_buffer_ms: Some(self.jitter.target_delay_ms()),
                codec: self.cfg.codec.kind.into(),
            })
            .mos
        });
        LegStats {
            rtp,
            jitter: self.jitter.stats(),
            duration: now.saturating_duration_since(self.started),
            mos,
            ..self.stats.clone()
        }
    }

    /// Counts a datagram the socket would not take.
    pub fn count_send_error(&mut self) {
        self.stats.send_errors += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::echo::EchoApp;
    use crate::codec::g711::linear_to_ulaw;
    use crate::media::playout::Mark;
    use crate::rtp::packet::RtpHeader;

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    fn leg(now: Instant) -> RtpLeg {
        let mut cfg = RtpLegConfig::new(CodecSpec::from_sdp("PCMU", 0).unwrap());
        cfg.dtmf = Some((101, 8000));
        cfg.remote_rtp = Some(peer());
        cfg.media_timeout = Duration::from_secs(2);
        RtpLeg::new(cfg, now).unwrap()
    }

    fn packet(pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, (u8::from(marker) << 7) | pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// µ-law bytes of a frame whose first two samples tag packet `n` (never 0x7f/0xff).
    fn tagged(n: usize, len: usize) -> Vec<u8> {
        let mut v: Vec<u8> = (0..len)
            .map(|i| linear_to_ulaw(((i as f64 * 0.3).sin() * 6000.0) as i16))
            .collect();
        v[0] = 0x10 + (n % 100) as u8;
        v[1] = 0x10 + (n / 100 % 100) as u8;
        v
    }

    struct Noop;
    impl MediaApp for Noop {
        fn on_tick(&mut self, _io: &mut AppIo<'_>) {}
    }

    #[test]
    fn echo_returns_every_frame_on_our_own_grid() {
        let t0 = Instant::now();
        let mut leg = leg(t0);
        let mut app = EchoApp;
        let mut sent = Vec::new();
        for i in 0..100usize {
            let now = t0 + Duration::from_millis(20 * i as u64);
            if i < 80 {
                let p = packet(0, i == 0, i as u16, 160 * i as u32, &tagged(i, 160));
                leg.on_rtp(now, peer(), &p);
            }
            let out = leg.tick(now, 0, &mut app);
            if let Some(dest) = out.rtp_to {
                assert_eq!(dest, peer());
                sent.push(leg.rtp_packet().to_vec());
            }
        }
        assert_eq!(sent.len(), 100, "comfort silence keeps one packet per tick");
        let headers: Vec<_> = sent.iter().map(|p| RtpHeader::parse(p).unwrap()).collect();
        for w in headers.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
            assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(160));
        }
        assert!(headers[0].marker && !headers[1].marker);
        let echoed: Vec<usize> = sent
            .iter()
            .zip(&headers)
            .filter_map(|(p, h)| {
                let b = &p[h.payload_offset..];
                (b[0] != 0xff).then(|| usize::from(b[0] - 0x10) + 100 * usize::from(b[1] - 0x10))
            })
            .collect();
        assert_eq!(
            echoed,
            (0..80).collect::<Vec<_>>(),
            "every frame once, in order"
        );
        let stats = leg.stats(t0 + Duration::from_secs(2));
        assert_eq!((stats.frames_decoded, stats.frames_concealed), (80, 0));
        assert!(stats.mos.unwrap() > 4.0, "{stats:?}");
    }

    #[test]
    fn thirty_ms_packets_become_gapless_twenty_ms_frames() {
        let t0 = Instant::now();
        let mut leg = leg(t0);
        let mut app = Noop;
        let input: Vec<u8> = (0..40).flat_map(|i| tagged(i, 240)).collect();
        let mut heard = Vec::new();
        for tick in 0..80u64 {
            let now = t0 + Duration::from_millis(20 * tick);
            // A 30 ms packet arrives at 0, 30, 60 ... ms.
            for i in 0..40u64 {
                if i * 30 <= tick * 20 && i * 30 > (tick * 20).saturating_sub(20)
                    || (tick == 0 && i == 0)
                {
                    let payload = &input[i as usize * 240..(i as usize + 1) * 240];
                    leg.on_rtp(
                        now,
                        peer(),
                        &packet(0, i == 0, i as u16, 240 * i as u32, payload),
                    );
                }
            }
            leg.tick(now, 0, &mut app);
            if let Some(f) = leg.caller_frame() {
                heard.extend(f.iter().map(|&s| linear_to_ulaw(s)));
            }
        }
        // Once started, the caller's audio comes out whole and contiguous.
        let start = input
            .windows(160)
            .position(|w| w == &heard[..160])
            .expect("first frame is input audio");
        assert_eq!(start, 0);
        assert!(
            heard.len() >= 240 * 38,
            "only {} samples heard",
            heard.len()
        );
        assert_eq!(&heard[..], &input[..heard.len()]);
    }

    #[test]
    fn dtmf_is_sent_as_rfc4733_events_and_received_once() {
        let t0 = Instant::now();
        let mut leg = leg(t0);
        let mut app = Noop;
        leg.command(LegCommand::SendDtmf("7".into()));
        let mut events = Vec::new();
        for i in 0..12u64 {
            leg.tick(t0 + Duration::from_millis(20 * i), 0, &mut app);
            let h = RtpHeader::parse(leg.rtp_packet()).unwrap();
            if h.payload_type == 101 {
                events.push((
                    h.marker,
                    h.timestamp,
                    leg.rtp_packet()[h.payload_offset..].to_vec(),
                ));
            }
        }
        assert_eq!(
            events.len(),
            4 + 3,
            "4 progress packets (100 ms) and 3 end packets"
        );
        assert!(events[0].0 && events[1..].iter().all(|e| !e.0));
        assert!(
            events.iter().all(|e| e.1 == events[0].1),
            "one timestamp per event"
        );
        assert!(events.iter().all(|e| e.2[0] == 7));
        assert_eq!(events.iter().filter(|e| e.2[1] & 0x80 != 0).count(), 3);

        // Receive: a press with repeated end packets, then the same digit by SIP INFO.
        let mut leg = leg_with_events(t0);
        let ev = |end: bool, dur: u16| {
            let mut p = [5u8, 10, 0, 0];
            if end {
                p[1] |= 0x80;
            }
            p[2..].copy_from_slice(&dur.to_be_bytes());
            p
        };
        for (i, (end, dur)) in [
            (false, 160),
            (false, 320),
            (true, 480),
            (true, 480),
            (true, 480),
        ]
        .into_iter()
        .enumerate()
        {
            let now = t0 + Duration::from_millis(20 * i as u64);
            leg.on_rtp(
                now,
                peer(),
                &packet(101, i == 0, i as u16, 8000, &ev(end, dur)),
            );
            leg.tick(now, 0, &mut app);
        }
        leg.command(LegCommand::InjectDtmf('#', 100));
        leg.tick(t0 + Duration::from_millis(200), 0, &mut app);
        let digits: Vec<_> = std::iter::from_fn(|| leg.poll_event())
            .filter_map(|e| match e {
                LegEvent::Dtmf { digit, source, .. } => Some((digit, source)),
                _ => None,
            })
            .collect();
        assert_eq!(
            digits,
            vec![('5', DtmfSource::Rfc4733), ('#', DtmfSource::SipInfo)]
        );
    }

    fn leg_with_events(now: Instant) -> RtpLeg {
        leg(now)
    }

    #[test]
    fn marks_follow_the_wire_and_clear_reports_them() {
        let t0 = Instant::now();
        let mut leg = leg(t0);
        let mut app = Noop;
        leg.command(LegCommand::Play {
            samples: vec![1000; 400],
            mark: Some(Mark(1)),
        });
        leg.command(LegCommand::Play {
            samples: vec![1000; 800],
            mark: Some(Mark(2)),
        });
        let mut played_at = Vec::new();
        for i in 0..3u64 {
            leg.tick(t0 + Duration::from_millis(20 * i), 0, &mut app);
            while let Some(e) = leg.poll_event() {
                if let LegEvent::Mark(m) = e {
                    played_at.push((i, m));
                }
            }
        }
        // 400 samples end in the third frame (ticks 0, 1, 2).
        assert_eq!(played_at, vec![(2, MarkEvent::Played(Mark(1)))]);
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        leg.command(LegCommand::Clear(tx));
        let report = rx.try_recv().unwrap();
        assert_eq!(report.cleared, vec![Mark(2)]);
        leg.tick(t0 + Duration::from_millis(60), 0, &mut app);
        let evs: Vec<_> = std::iter::from_fn(|| leg.poll_event()).collect();
        assert!(
            evs.contains(&LegEvent::Mark(MarkEvent::Cleared(Mark(2)))),
            "{evs:?}"
        );
        // The frame after a clear is silence.
        let h = RtpHeader::parse(leg.rtp_packet()).unwrap();
        assert!(
            leg.rtp_packet()[h.payload_offset..]
                .iter()
                .all(|&b| b == 0xff)
        );
    }

    #[test]
    fn silence_from_the_far_end_times_out_once() {
        let t0 = Instant::now();
        let mut leg = leg(t0);
        let mut app = Noop;
        let mut timeouts = 0;
        for i in 0..150u64 {
            leg.tick(t0 + Duration::from_millis(20 * i), 0, &mut app);
            while let Some(e) = leg.poll_event() {
                timeouts += usize::from(e == LegEvent::MediaTimeout);
            }
        }
        assert_eq!(timeouts, 1);
    }
}
