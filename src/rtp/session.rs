//! One RTP/RTCP session of a leg, sans-IO (RFC 3550): latching to the real source
//! (symmetric RTP through NAT), payload-type and SSRC checks, reception statistics,
//! packetizing what we send, periodic SR/RR with RTT, and the media timeout. Time comes in
//! as `Instant` (and, for SR timestamps, NTP time from the driver).

use super::packet::RtpHeader;
use super::rtcp::{self, ReceptionStats, RtcpError, RtcpPacket};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Settings fixed when the session is negotiated.
#[derive(Debug, Clone)]
pub struct RtpSessionConfig {
    /// RTP clock rate of the audio codec.
    pub clock_rate: u32,
    /// Payload types accepted as audio (from the SDP answer).
    pub audio_pts: Vec<u8>,
    /// telephone-event payload type, if negotiated.
    pub dtmf_pt: Option<u8>,
    /// Our SSRC (random, chosen by the caller).
    pub ssrc: u32,
    /// Our RTCP CNAME.
    pub cname: String,
    /// Interval between our RTCP reports (RFC 3550 §6.2 minimum: 5 s).
    pub rtcp_interval: Duration,
    /// No RTP for this long ends the call.
    pub media_timeout: Duration,
}

/// Why an incoming packet was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a valid RTP v2 packet.
    Malformed,
    /// From an address other than the one we latched to.
    WrongSource,
    /// A payload type the SDP did not negotiate.
    UnknownPayloadType,
    /// Rejected by sequence validation (a jump not yet confirmed).
    BadSequence,
}

/// An accepted media packet, borrowing its payload from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPacket<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// True for the negotiated telephone-event payload type.
    pub is_dtmf: bool,
    pub payload: &'a [u8],
}

/// Counters and estimates of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionStats {
    pub received: u32,
    pub lost: i32,
    pub jitter_ms: f64,
    /// Round trip from the peer's report blocks about us (RFC 3550 §6.4.1).
    pub rtt_ms: Option<f64>,
    pub dropped_malformed: u64,
    pub dropped_source: u64,
    pub dropped_pt: u64,
    pub dropped_sequence: u64,
    pub ssrc_changes: u64,
    pub sent_packets: u32,
    pub sent_octets: u32,
}

/// A leg's RTP session.
#[derive(Debug)]
pub struct RtpSession {
    cfg: RtpSessionConfig,
    epoch: Instant,
    latched: Option<SocketAddr>,
    remote_ssrc: Option<u32>,
    reception: ReceptionStats,
    last_rx: Instant,
    stats: SessionStats,
    next_seq: u16,
    next_ts: u32,
    sent_since_report: bool,
    next_rtcp: Instant,
    /// The peer's last SR: its compact NTP time and when it arrived (for LSR/DLSR).
    last_sr: Option<(u32, Instant)>,
}

impl RtpSession {
    /// A session starting at `now`; the media timeout counts from here until the first packet.
    pub fn new(cfg: RtpSessionConfig, now: Instant, first_seq: u16, first_ts: u32) -> RtpSession {
        RtpSession {
            next_rtcp: now + cfg.rtcp_interval,
            cfg,
            epoch: now,
            latched: None,
            remote_ssrc: None,
            reception: ReceptionStats::new(),
            last_rx: now,
            stats: SessionStats::default(),
            next_seq: first_seq,
            next_ts: first_ts,
            sent_since_report: false,
            last_sr: None,
        }
    }

    /// The address media is sent to once latched (`None` until the first valid packet).
    pub fn remote(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// Classifies one received RTP datagram.
    pub fn on_rtp<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        packet: &'a [u8],
    ) -> Result<MediaPacket<'a>, DropReason> {
        let Some(h) = RtpHeader::parse(packet) else {
            self.stats.dropped_malformed += 1;
            return Err(DropReason::Malformed);
        };
        let is_dtmf = self.cfg.dtmf_pt == Some(h.payload_type);
        if !is_dtmf && !self.cfg.audio_pts.contains(&h.payload_type) {
            self.stats.dropped_pt += 1;
            return Err(DropReason::UnknownPayloadType);
        }
        // Symmetric RTP: the first valid packet's source wins over the SDP address, which
        // is often a private address behind NAT.
        match self.latched {
            None => self.latched = Some(from),
            Some(a) if a != from => {
                self.stats.dropped_source += 1;
                return Err(DropReason::WrongSource);
            }
            Some(_) => {}
        }
        if self.remote_ssrc.is_some_and(|s| s != h.ssrc) {
            // A new stream from the same source (e.g. a re-INVITE to another media server).
            self.stats.ssrc_changes += 1;
            self.reception = ReceptionStats::new();
        }
        self.remote_ssrc = Some(h.ssrc);
        let arrival = self.rtp_clock(now);
        if !self.reception.update(h.sequence, h.timestamp, arrival) {
            self.stats.dropped_sequence += 1;
            return Err(DropReason::BadSequence);
        }
        self.last_rx = now;
        Ok(MediaPacket {
            payload_type: h.payload_type,
            marker: h.marker,
            seq: h.sequence,
            timestamp: h.timestamp,
            ssrc: h.ssrc,
            is_dtmf,
            payload: &packet[h.payload_offset..],
        })
    }

    fn rtp_clock(&self, now: Instant) -> u32 {
        let d = now.saturating_duration_since(self.epoch);
        (d.as_micros() as u64 * u64::from(self.cfg.clock_rate) / 1_000_000) as u32
    }

    /// Builds the next RTP packet for `payload` covering `samples` samples.
    pub fn packetize(
        &mut self,
        payload_type: u8,
        marker: bool,
        samples: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + payload.len());
        self.packetize_into(payload_type, marker, samples, payload, &mut out);
        out
    }

    /// Like [`packetize`](Self::packetize), writing into `out` (cleared first) so that a
    /// leg can reuse one buffer.
    pub fn packetize_into(
        &mut self,
        payload_type: u8,
        marker: bool,
        samples: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        let ts = self.next_ts;
        self.write_packet(payload_type, marker, ts, payload, out);
        self.next_ts = self.next_ts.wrapping_add(samples);
    }

    /// Writes a packet with an explicit timestamp without moving the media clock: all
    /// packets of one RFC 4733 event carry the timestamp of its start.
    pub fn packetize_event_into(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        self.write_packet(payload_type, marker, timestamp, payload, out);
    }

    /// Moves the media clock on by `samples` without sending (a frame of silence not sent,
    /// or a frame replaced by a telephone-event packet).
    pub fn advance(&mut self, samples: u32) {
        self.next_ts = self.next_ts.wrapping_add(samples);
    }

    /// The RTP timestamp the next media packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.next_ts
    }

    fn write_packet(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        out.clear();
        out.push(0x80);
        out.push((u8::from(marker) << 7) | (payload_type & 0x7f));
        out.extend_from_slice(&self.next_seq.to_be_bytes());
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(&self.cfg.ssrc.to_be_bytes());
        out.extend_from_slice(payload);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.stats.sent_packets = self.stats.sent_packets.wrapping_add(1);
        self.stats.sent_octets = self.stats.sent_octets.wrapping_add(payload.len() as u32);
        self.sent_since_report = true;
    }

    /// Reads a received RTCP compound packet: the peer's SR time (for our LSR/DLSR) and
    /// its report blocks about us (for the RTT). `ntp_now` is the arrival time in NTP format.
    pub fn on_rtcp(&mut self, now: Instant, ntp_now: u64, packet: &[u8]) -> Result<(), RtcpError> {
        for p in rtcp::parse_compound(packet)? {
            let reports = match &p {
                RtcpPacket::SenderReport(sr) => {
                    self.last_sr = Some((rtcp::ntp_middle32(sr.ntp_timestamp), now));
                    &sr.reports
                }
                RtcpPacket::ReceiverReport(rr) => &rr.reports,
                _ => continue,
            };
            for rb in reports.iter().filter(|rb| rb.ssrc == self.cfg.ssrc) {
                if let Some(rtt) = rtcp::rtt_ms(rtcp::ntp_middle32(ntp_now), rb.lsr, rb.dlsr) {
                    self.stats.rtt_ms = Some(rtt);
                }
            }
        }
        Ok(())
    }

    /// Our next RTCP report when it is due: an SR if we sent media since the last one,
    /// else an RR, with a report block about the peer once we heard it.
    pub fn poll_rtcp(&mut self, now: Instant, ntp_now: u64) -> Option<Vec<u8>> {
        if now < self.next_rtcp {
            return None;
        }
        self.next_rtcp = now + self.cfg.rtcp_interval;
        let blocks: Vec<_> = self
            .remote_ssrc
            .map(|ssrc| {
                let (lsr, dlsr) = match self.last_sr {
                    Some((lsr, at)) => {
                        let waited = now.saturating_duration_since(at);
                        (lsr, (waited.as_micros() as u64 * 65_536 / 1_000_000) as u32)
                    }
                    None => (0, 0),
                };
                self.reception.report_block(ssrc, lsr, dlsr)
            })
            .into_iter()
            .collect();
        let sender = self.sent_since_report.then_some((
            ntp_now,
            self.next_ts,
            self.stats.sent_packets,
            self.stats.sent_octets,
        ));
        self.sent_since_report = false;
        rtcp::build_report(self.cfg.ssrc, sender, &blocks, &self.cfg.cname).ok()
    }

    /// True once no accepted RTP arrived for the media timeout.
    pub fn media_timed_out(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_rx) >= self.cfg.media_timeout
    }

    /// The next instant something is due (an RTCP report or the media timeout).
    pub fn poll_timeout(&self) -> Instant {
        self.next_rtcp.min(self.last_rx + self.cfg.media_timeout)
    }

    /// Counters and estimates so far.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            received: self.reception.received(),
            lost: self.reception.lost(),
            jitter_ms: f64::from(self.reception.jitter()) * 1000.0
                / f64::from(self.cfg.clock_rate.max(1)),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ssrc: u32) -> RtpSessionConfig {
        RtpSessionConfig {
            clock_rate: 8000,
            audio_pts: vec![0],
            dtmf_pt: Some(101),
            ssrc,
            cname: format!("test-{ssrc}"),
            rtcp_interval: Duration::from_secs(5),
            media_timeout: Duration::from_secs(30),
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn latches_to_the_first_source_and_drops_others() {
        let t0 = Instant::now();
        let mut tx = RtpSession::new(cfg(1), t0, 100, 0);
        let mut rx = RtpSession::new(cfg(2), t0, 0, 0);
        let p1 = tx.packetize(0, true, 160, &[0xff; 160]);
        let m = rx.on_rtp(t0, addr(4000), &p1).unwrap();
        assert_eq!(
            (m.seq, m.timestamp, m.marker, m.payload.len()),
            (100, 0, true, 160)
        );
        assert_eq!(rx.remote(), Some(addr(4000)));
        let p2 = tx.packetize(0, false, 160, &[0xff; 160]);
        assert_eq!(rx.on_rtp(t0, addr(5000), &p2), Err(DropReason::WrongSource));
        let m = rx.on_rtp(t0, addr(4000), &p2).unwrap();
        assert_eq!((m.seq, m.timestamp), (101, 160));
        assert_eq!(rx.stats().received, 2);
        assert_eq!(rx.stats().dropped_source, 1);
    }

    #[test]
    fn payload_types_and_malformed_packets_are_checked() {
        let t0 = Instant::now();
        let mut tx = RtpSession::new(cfg(1), t0, 0, 0);
        let mut rx = RtpSession::new(cfg(2), t0, 0, 0);
        let pcma = tx.packetize(8, false, 160, &[0; 160]);
        assert_eq!(
            rx.on_rtp(t0, addr(4000), &pcma),
            Err(DropReason::UnknownPayloadType)
        );
        let dtmf = tx.packetize(101, true, 0, &[1, 0x0a, 0, 160]);
        assert!(rx.on_rtp(t0, addr(4000), &dtmf).unwrap().is_dtmf);
        assert_eq!(
            rx.on_rtp(t0, addr(4000), &[0x80, 0]),
            Err(DropReason::Malformed)
        );
        let s = rx.stats();
        assert_eq!((s.dropped_pt, s.dropped_malformed), (1, 1));
    }

    #[test]
    fn loss_and_ssrc_change_are_tracked() {
        let t0 = Instant::now();
        let mut tx = RtpSession::new(cfg(1), t0, 0, 0);
        let mut rx = RtpSession::new(cfg(2), t0, 0, 0);
        for i in 0..10u64 {
            let p = tx.packetize(0, false, 160, &[0; 160]);
            if i != 4 {
                rx.on_rtp(t0 + Duration::from_millis(20 * i), addr(4000), &p)
                    .unwrap();
            }
        }
        assert_eq!((rx.stats().received, rx.stats().lost), (9, 1));
        let mut other = RtpSession::new(cfg(3), t0, 5000, 0);
        let p = other.packetize(0, false, 160, &[0; 160]);
        rx.on_rtp(t0 + Duration::from_millis(220), addr(4000), &p)
            .unwrap();
        assert_eq!(rx.stats().ssrc_changes, 1);
        assert_eq!(
            rx.stats().received,
            1,
            "statistics restart for the new stream"
        );
    }

    #[test]
    fn reports_carry_lsr_dlsr_and_give_the_sender_its_rtt() {
        // A sends media and an SR; B answers with an RR 40 ms after receiving the SR; the
        // network adds 10 ms each way, so A must measure a 20 ms round trip.
        let t0 = Instant::now();
        let ntp = |d: Duration| -> u64 {
            let base: u64 = 3_900_000_000 << 32;
            base + ((d.as_nanos() << 32) / 1_000_000_000) as u64
        };
        let mut a = RtpSession::new(cfg(1), t0, 0, 0);
        let mut b = RtpSession::new(cfg(2), t0, 0, 0);
        for i in 0..250u64 {
            let p = a.packetize(0, false, 160, &[0; 160]);
            b.on_rtp(t0 + Duration::from_millis(20 * i + 10), addr(4000), &p)
                .unwrap();
        }
        let t_sr = t0 + Duration::from_secs(5);
        let sr = a
            .poll_rtcp(t_sr, ntp(Duration::from_secs(5)))
            .expect("SR due at 5 s");
        let parsed = rtcp::parse_compound(&sr).unwrap();
        assert!(matches!(parsed[0], RtcpPacket::SenderReport(_)));
        let arrive = Duration::from_millis(5010);
        b.on_rtcp(t0 + arrive, ntp(arrive), &sr).unwrap();
        let t_rr = t0 + Duration::from_millis(5050);
        assert!(b.poll_rtcp(t0 + Duration::from_millis(4999), 0).is_none());
        let rr = b
            .poll_rtcp(t_rr, ntp(Duration::from_millis(5050)))
            .expect("B's report");
        let back = Duration::from_millis(5060);
        a.on_rtcp(t0 + back, ntp(back), &rr).unwrap();
        let rtt = a.stats().rtt_ms.expect("rtt");
        assert!((rtt - 20.0).abs() < 0.1, "rtt {rtt}");
    }

    #[test]
    fn media_timeout_counts_from_the_last_packet() {
        let t0 = Instant::now();
        let mut tx = RtpSession::new(cfg(1), t0, 0, 0);
        let mut rx = RtpSession::new(cfg(2), t0, 0, 0);
        assert!(!rx.media_timed_out(t0 + Duration::from_secs(29)));
        let p = tx.packetize(0, false, 160, &[0; 160]);
        rx.on_rtp(t0 + Duration::from_secs(20), addr(4000), &p)
            .unwrap();
        assert!(!rx.media_timed_out(t0 + Duration::from_secs(49)));
        assert!(rx.media_timed_out(t0 + Duration::from_secs(50)));
        assert_eq!(rx.poll_timeout(), t0 + Duration::from_secs(5));
    }

    #[test]
    fn garbage_never_panics() {
        let t0 = Instant::now();
        let mut rx = RtpSession::new(cfg(2), t0, 0, 0);
        let mut seed = 7u32;
        for len in 0..200usize {
            let mut v = vec![0u8; len];
            for b in v.iter_mut() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = (seed >> 16) as u8;
            }
            if let Some(b) = v.first_mut() {
                *b = 0x80 | (*b & 0x3f);
            }
            let _ = rx.on_rtp(t0, addr(4000), &v);
            let _ = rx.on_rtcp(t0, 0, &v);
        }
    }
}
