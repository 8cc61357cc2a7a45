//! RTCP (RFC 3550 §6): compound packet parsing/building (SR, RR, SDES, BYE) and receiver
//! statistics (Appendix A.1, A.3, A.8). Sans-IO: callers pass in arrival times and NTP values.

use thiserror::Error;

/// RTCP packet type: sender report.
pub const PT_SR: u8 = 200;
/// RTCP packet type: receiver report.
pub const PT_RR: u8 = 201;
/// RTCP packet type: source description.
pub const PT_SDES: u8 = 202;
/// RTCP packet type: goodbye.
pub const PT_BYE: u8 = 203;
/// RTCP packet type: application-defined.
pub const PT_APP: u8 = 204;

/// SDES item type: canonical name.
pub const SDES_CNAME: u8 = 1;

const REPORT_BLOCK_LEN: usize = 24;

/// Errors from parsing or building RTCP.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtcpError {
    #[error("empty RTCP packet")]
    Empty,
    #[error("RTCP packet truncated")]
    Truncated,
    #[error("unsupported RTCP version {0}")]
    BadVersion(u8),
    #[error("RTCP length field exceeds the datagram")]
    BadLength,
    #[error("invalid RTCP padding")]
    BadPadding,
    #[error("malformed {0} packet")]
    Malformed(&'static str),
    #[error("too many items for a 5-bit count: {0}")]
    TooMany(usize),
    #[error("text item too long: {0} bytes (max 255)")]
    TextTooLong(usize),
    #[error("opaque payload length {0} is not a multiple of 4")]
    Unaligned(usize),
}

/// A reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction lost since the previous report, fixed point /256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, a 24-bit signed value (-8388608..=8388607).
    pub cumulative_lost: i32,
    pub ext_highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (0 if none).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8]) -> Self {
        let lost = u32::from_be_bytes([0, b[5], b[6], b[7]]);
        // Sign-extend 24 bits.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        Self {
            ssrc: be32(b, 0),
            fraction_lost: b[4],
            cumulative_lost,
            ext_highest_seq: be32(b, 8),
            jitter: be32(b, 12),
            lsr: be32(b, 16),
            dlsr: be32(b, 20),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.push(self.fraction_lost);
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32;
        out.extend_from_slice(&lost.to_be_bytes()[1..]);
        out.extend_from_slice(&self.ext_highest_seq.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.lsr.to_be_bytes());
        out.extend_from_slice(&self.dlsr.to_be_bytes());
    }
}

/// Sender report (PT 200).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    pub ssrc: u32,
    /// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, fraction in the low).
    pub ntp_timestamp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    pub reports: Vec<ReportBlock>,
}

impl SenderReport {
    /// The value a receiver puts in `lsr` when reporting on this SR.
    pub fn lsr(&self) -> u32 {
        ntp_middle32(self.ntp_timestamp)
    }
}

/// Receiver report (PT 201).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    pub ssrc: u32,
    pub reports: Vec<ReportBlock>,
}

/// One SDES item (type, raw value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesItem {
    pub kind: u8,
    pub value: Vec<u8>,
}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    pub ssrc: u32,
    pub items: Vec<SdesItem>,
}

impl SdesChunk {
    /// A chunk carrying only a CNAME.
    pub fn cname(ssrc: u32, cname: &str) -> Self {
        Self {
            ssrc,
            items: vec![SdesItem {
                kind: SDES_CNAME,
                value: cname.as_bytes().to_vec(),
            }],
        }
    }

    /// The CNAME item, if present (lossy UTF-8).
    pub fn get_cname(&self) -> Option<String> {
        self.items
            .iter()
            .find(|i| i.kind == SDES_CNAME)
            .map(|i| String::from_utf8_lossy(&i.value).into_owned())
    }
}

/// Goodbye (PT 203).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bye {
    pub sources: Vec<u32>,
    pub reason: Option<String>,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    SourceDescription(Vec<SdesChunk>),
    Bye(Bye),
    /// Any other packet type (APP, feedback, XR...), kept opaque: the header's 5-bit count
    /// field and the payload after the 4-byte header, with padding removed.
    Other {
        packet_type: u8,
        count: u8,
        payload: Vec<u8>,
    },
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parse a compound RTCP datagram.
///
/// Validates, for every packet: version 2, a length field that fits in the datagram, padding
/// only on the last packet with a count in `1..=payload length`, and that the body is large
/// enough for its declared contents. Unknown packet types are returned as
/// [`RtcpPacket::Other`]. Does not require the first packet to be an SR/RR (to accept
/// reduced-size RTCP, RFC 5506). Never panics.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    if buf.is_empty() {
        return Err(RtcpError::Empty);
    }
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(RtcpError::Truncated);
        }
        let version = rest[0] >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion(version));
        }
        let padding = rest[0] & 0x20 != 0;
        let count = rest[0] & 0x1f;
        let pt = rest[1];
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        if len > rest.len() {
            return Err(RtcpError::BadLength);
        }
        let (pkt, next) = rest.split_at(len);
        let mut body = &pkt[4..];
        if padding {
            if !next.is_empty() {
                return Err(RtcpError::BadPadding);
            }
            let pad = usize::from(*body.last().ok_or(RtcpError::BadPadding)?);
            if pad == 0 || pad > body.len() {
                return Err(RtcpError::BadPadding);
            }
            body = &body[..body.len() - pad];
        }
        out.push(parse_one(pt, count, body)?);
        rest = next;
    }
    Ok(out)
}

fn parse_blocks(count: u8, b: &[u8], what: &'static str) -> Result<Vec<ReportBlock>, RtcpError> {
    let n = usize::from(count);
    if b.len() < n * REPORT_BLOCK_LEN {
        return Err(RtcpError::Malformed(what));
    }
    // Anything after the blocks is a profile-specific extension and is ignored.
    Ok(b.chunks_exact(REPORT_BLOCK_LEN)
        .take(n)
        .map(ReportBlock::parse)
        .collect())
}

fn parse_one(pt: u8, count: u8, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
    match pt {
        PT_SR => {
            if body.len() < 24 {
                return Err(RtcpError::Malformed("SR"));
            }
            Ok(RtcpPacket::SenderReport(SenderReport {
                ssrc: be32(body, 0),
                ntp_timestamp: (u64::from(be32(body, 4)) << 32) | u64::from(be32(body, 8)),
                rtp_timestamp: be32(body, 12),
                packet_count: be32(body, 16),
                octet_count: be32(body, 20),
                reports: parse_blocks(count, &body[24..], "SR")?,
            }))
        }
        PT_RR => {
            if body.len() < 4 {
                return Err(RtcpError::Malformed("RR"));
            }
            Ok(RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: be32(body, 0),
                reports: parse_blocks(count, &body[4..], "RR")?,
            }))
        }
        PT_SDES => parse_sdes(count, body).map(RtcpPacket::SourceDescription),
        PT_BYE => parse_bye(count, body).map(RtcpPacket::Bye),
        _ => Ok(RtcpPacket::Other {
            packet_type: pt,
            count,
            payload: body.to_vec(),
        }),
    }
}

fn parse_sdes(count: u8, body: &[u8]) -> Result<Vec<SdesChunk>, RtcpError> {
    const E: RtcpError = RtcpError::Malformed("SDES");
    let mut chunks = Vec::with_capacity(usize::from(count));
    let mut pos = 0usize;
    for _ in 0..count {
        if body.len() < pos + 4 {
            return Err(E);
        }
        let ssrc = be32(body, pos);
        pos += 4;
        let mut items = Vec::new();
        loop {
            let kind = *body.get(pos).ok_or(E)?;
            if kind == 0 {
                // End of list: skip the null octet(s) to the next 32-bit boundary.
                pos += 1;
                pos = pos.div_ceil(4) * 4;
                if pos > body.len() {
                    return Err(E);
                }
                break;
            }
            let len = usize::from(*body.get(pos + 1).ok_or(E)?);
            let value = body.get(pos + 2..pos + 2 + len).ok_or(E)?;
            items.push(SdesItem {
                kind,
                value: value.to_vec(),
            });
            pos += 2 + len;
        }
        chunks.push(SdesChunk { ssrc, items });
    }
    Ok(chunks)
}

fn parse_bye(count: u8, body: &[u8]) -> Result<Bye, RtcpError> {
    const E: RtcpError = RtcpError::Malformed("BYE");
    let n = usize::from(count) * 4;
    if body.len() < n {
        return Err(E);
    }
    let sources = body[..n].chunks_exact(4).map(|c| be32(c, 0)).collect();
    let rest = &body[n..];
    let reason = match rest.first() {
        None => None,
        Some(&len) => {
            let text = rest.get(1..1 + usize::from(len)).ok_or(E)?;
            Some(String::from_utf8_lossy(text).into_owned())
        }
    };
    Ok(Bye { sources, reason })
}

fn header(out: &mut Vec<u8>, count: usize, pt: u8) -> Result<usize, RtcpError> {
    if count > 31 {
        return Err(RtcpError::TooMany(count));
    }
    let start = out.len();
    out.extend_from_slice(&[0x80 | count as u8, pt, 0, 0]);
    Ok(start)
}

fn finish(out: &mut Vec<u8>, start: usize) -> Result<(), RtcpError> {
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
    let words = (out.len() - start) / 4 - 1;
    let words = u16::try_from(words).map_err(|_| RtcpError::BadLength)?;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    Ok(())
}

impl RtcpPacket {
    /// Append this packet's wire form (no padding bit) to `out`. On error `out` may hold a
    /// partial packet; [`build_compound`] discards it.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        match self {
            RtcpPacket::SenderReport(sr) => {
                let start = header(out, sr.reports.len(), PT_SR)?;
                out.extend_from_slice(&sr.ssrc.to_be_bytes());
                out.extend_from_slice(&sr.ntp_timestamp.to_be_bytes());
                out.extend_from_slice(&sr.rtp_timestamp.to_be_bytes());
                out.extend_from_slice(&sr.packet_count.to_be_bytes());
                out.extend_from_slice(&sr.octet_count.to_be_bytes());
                sr.reports.iter().for_each(|r| r.write(out));
                finish(out, start)
            }
            RtcpPacket::ReceiverReport(rr) => {
                let start = header(out, rr.reports.len(), PT_RR)?;
                out.extend_from_slice(&rr.ssrc.to_be_bytes());
                rr.reports.iter().for_each(|r| r.write(out));
                finish(out, start)
            }
            RtcpPacket::SourceDescription(chunks) => {
                let start = header(out, chunks.len(), PT_SDES)?;
                for c in chunks {
                    out.extend_from_slice(&c.ssrc.to_be_bytes());
                    for item in &c.items {
                        if item.kind == 0 {
                            return Err(RtcpError::Malformed("SDES"));
                        }
                        let len = u8::try_from(item.value.len())
                            .map_err(|_| RtcpError::TextTooLong(item.value.len()))?;
                        out.push(item.kind);
                        out.push(len);
                        out.extend_from_slice(&item.value);
                    }
                    // At least one null octet, then pad to a 32-bit boundary.
                    out.push(0);
                    while !(out.len() - start).is_multiple_of(4) {
                        out.push(0);
                    }
                }
                finish(out, start)
            }
            RtcpPacket::Bye(bye) => {
                let start = header(out, bye.sources.len(), PT_BYE)?;
                for s in &bye.sources {
                    out.extend_from_slice(&s.to_be_bytes());
                }
                if let Some(reason) = &bye.reason {
                    let len = u8::try_from(reason.len())
                        .map_err(|_| RtcpError::TextTooLong(reason.len()))?;
                    out.push(len);
                    out.extend_from_slice(reason.as_bytes());
                }
                finish(out, start)
            }
            RtcpPacket::Other {
                packet_type,
                count,
                payload,
            } => {
                if !payload.len().is_multiple_of(4) {
                    return Err(RtcpError::Unaligned(payload.len()));
                }
                let start = header(out, usize::from(*count), *packet_type)?;
                out.extend_from_slice(payload);
                finish(out, start)
            }
        }
    }
}

/// Serialize packets into one compound datagram.
pub fn build_compound(packets: &[RtcpPacket]) -> Result<Vec<u8>, RtcpError> {
    let mut out = Vec::new();
    for p in packets {
        p.write_to(&mut out)?;
    }
    Ok(out)
}

/// Convenience: SR (or RR if `sender` is `None`) followed by an SDES CNAME chunk, the minimal
/// compound packet of RFC 3550 §6.1.
pub fn build_report(
    ssrc: u32,
    sender: Option<(u64, u32, u32, u32)>,
    reports: &[ReportBlock],
    cname: &str,
) -> Result<Vec<u8>, RtcpError> {
    let first = match sender {
        Some((ntp_timestamp, rtp_timestamp, packet_count, octet_count)) => {
            RtcpPacket::SenderReport(SenderReport {
                ssrc,
                ntp_timestamp,
                rtp_timestamp,
                packet_count,
                octet_count,
                reports: reports.to_vec(),
            })
        }
        None => RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc,
            reports: reports.to_vec(),
        }),
    };
    build_compound(&[
        first,
        RtcpPacket::SourceDescription(vec![SdesChunk::cname(ssrc, cname)]),
    ])
}

/// Middle 32 bits of a 64-bit NTP timestamp (the LSR / compact NTP format).
pub fn ntp_middle32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Round-trip time per RFC 3550 §6.4.1: `A - LSR - DLSR`, where `A` is the arrival time of
/// the report block as compact NTP (middle 32 bits). Returns `None` when no SR was reported
/// (`lsr == 0`) or the result would be negative (clock skew/garbage).
pub fn rtt_ms(arrival_ntp_middle32: u32, lsr: u32, dlsr: u32) -> Option<f64> {
    if lsr == 0 {
        return None;
    }
    let since = arrival_ntp_middle32.wrapping_sub(lsr);
    if (since as i32) < 0 || dlsr > since {
        return None;
    }
    Some(f64::from(since - dlsr) * 1000.0 / 65536.0)
}

const RTP_SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u32 = 3000;
const MAX_MISORDER: u32 = 100;

/// Per-source reception statistics (RFC 3550 A.1, A.3, A.8).
///
/// Follows A.1's sequence validation without the initial probation: the first packet
/// initializes the state; a jump larger than `MAX_DROPOUT` (3000) is dropped unless the next
/// packet continues from it, in which case the statistics restart (source restarted).
#[derive(Debug, Clone)]
pub struct ReceptionStats {
    initialized: bool,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    transit: u32,
    /// Jitter scaled by 16 (A.8 integer form); u64 so garbage transit deltas cannot overflow.
    jitter_q4: u64,
}

impl Default for ReceptionStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ReceptionStats {
    pub fn new() -> Self {
        Self {
            initialized: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: 0,
            jitter_q4: 0,
        }
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Record one RTP packet: sequence number, its RTP timestamp, and its arrival time
    /// converted to the same RTP clock. Returns `false` if the packet was rejected as an
    /// out-of-range jump (not counted).
    pub fn update(&mut self, seq: u16, rtp_ts: u32, arrival_rtp_ts: u32) -> bool {
        let transit = arrival_rtp_ts.wrapping_sub(rtp_ts);
        if !self.initialized {
            self.initialized = true;
            self.init_seq(seq);
            self.transit = transit;
            self.received = 1;
            return true;
        }
        let udelta = u32::from(seq.wrapping_sub(self.max_seq));
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if udelta <= RTP_SEQ_MOD - MAX_MISORDER {
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets after a big jump: the source restarted.
                self.init_seq(seq);
                self.jitter_q4 = 0;
                self.transit = transit;
                self.received = 1;
                return true;
            }
            self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
            return false;
        }
        // else: duplicate or reordered packet — counted, max_seq unchanged.
        self.received = self.received.wrapping_add(1);
        let d = transit.wrapping_sub(self.transit) as i32;
        self.transit = transit;
        let d = u64::from(d.unsigned_abs());
        // J += (|D| - J) / 16, in the scaled-by-16 integer form of A.8 (never underflows:
        // (J + 8) >> 4 <= J for every J).
        self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        true
    }

    /// Extended highest sequence number received (cycles << 16 | max_seq).
    pub fn extended_highest_seq(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets received (including duplicates, as in A.1).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Packets expected: extended highest − base + 1 (0 before any packet).
    pub fn expected(&self) -> u32 {
        if !self.initialized {
            return 0;
        }
        self.extended_highest_seq()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Cumulative lost (expected − received), clamped to the 24-bit signed range.
    pub fn lost(&self) -> i32 {
        let lost = i64::from(self.expected()) - i64::from(self.received);
        lost.clamp(-0x80_0000, 0x7f_ffff) as i32
    }

    /// Interarrival jitter estimate in RTP timestamp units.
    pub fn jitter(&self) -> u32 {
        (self.jitter_q4 >> 4).min(u64::from(u32::MAX)) as u32
    }

    /// Build a report block and start a new fraction-lost interval (A.3).
    pub fn report_block(&mut self, ssrc: u32, lsr: u32, dlsr: u32) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.lost(),
            ext_highest_seq: self.extended_highest_seq(),
            jitter: self.jitter(),
            lsr,
            dlsr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> ReportBlock {
        ReportBlock {
            ssrc: 0x5566_7788,
            fraction_lost: 0x40,
            cumulative_lost: 5,
            ext_highest_seq: 0x0001_0010,
            jitter: 0x20,
            lsr: 0xccdd_0102,
            dlsr: 0x0001_0000,
        }
    }

    fn sr() -> SenderReport {
        SenderReport {
            ssrc: 0x1122_3344,
            ntp_timestamp: 0xaabb_ccdd_0102_0304,
            rtp_timestamp: 8000,
            packet_count: 100,
            octet_count: 16000,
            reports: vec![block()],
        }
    }

    #[rustfmt::skip]
    const SR_BYTES: [u8; 52] = [
        0x81, 0xc8, 0x00, 0x0c,             // V=2 P=0 RC=1, PT=200, length=12
        0x11, 0x22, 0x33, 0x44,             // SSRC of sender
        0xaa, 0xbb, 0xcc, 0xdd,             // NTP timestamp, most significant word
        0x01, 0x02, 0x03, 0x04,             // NTP timestamp, least significant word
        0x00, 0x00, 0x1f, 0x40,             // RTP timestamp 8000
        0x00, 0x00, 0x00, 0x64,             // sender's packet count 100
        0x00, 0x00, 0x3e, 0x80,             // sender's octet count 16000
        0x55, 0x66, 0x77, 0x88,             // SSRC_1
        0x40, 0x00, 0x00, 0x05,             // fraction lost 64/256, cumulative lost 5
        0x00, 0x01, 0x00, 0x10,             // extended highest seq
        0x00, 0x00, 0x00, 0x20,             // jitter 32
        0xcc, 0xdd, 0x01, 0x02,             // LSR
        0x00, 0x01, 0x00, 0x00,             // DLSR 1 s
    ];

    #[test]
    fn sr_known_bytes() {
        let built = build_compound(&[RtcpPacket::SenderReport(sr())]).unwrap();
        assert_eq!(built, SR_BYTES);
        let parsed = parse_compound(&SR_BYTES).unwrap();
        assert_eq!(parsed, vec![RtcpPacket::SenderReport(sr())]);
        assert_eq!(sr().lsr(), 0xccdd_0102);
    }

    #[test]
    fn negative_cumulative_lost() {
        let mut bytes = SR_BYTES;
        bytes[33..36].copy_from_slice(&[0xff, 0xff, 0xff]);
        let RtcpPacket::SenderReport(p) = &parse_compound(&bytes).unwrap()[0] else {
            panic!()
        };
        assert_eq!(p.reports[0].cumulative_lost, -1);
        bytes[33..36].copy_from_slice(&[0x80, 0x00, 0x00]);
        let RtcpPacket::SenderReport(p) = &parse_compound(&bytes).unwrap()[0] else {
            panic!()
        };
        assert_eq!(p.reports[0].cumulative_lost, -0x80_0000);
        // Out-of-range values are clamped when written.
        let mut b = block();
        b.cumulative_lost = 1 << 30;
        let out = build_compound(&[RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 1,
            reports: vec![b],
        })])
        .unwrap();
        assert_eq!(&out[13..16], &[0x7f, 0xff, 0xff]);
    }

    #[test]
    fn compound_round_trip() {
        let pkts = vec![
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: 7,
                reports: vec![block(), ReportBlock::default()],
            }),
            RtcpPacket::SourceDescription(vec![
                SdesChunk::cname(7, "user@host.example"),
                SdesChunk::cname(8, "abc"), // 4+2+3 = 9 bytes + null + pad
                SdesChunk {
                    ssrc: 9,
                    items: vec![
                        SdesItem {
                            kind: SDES_CNAME,
                            value: b"ab".to_vec(), // 4+2+2 = 8: needs 4 null octets
                        },
                        SdesItem {
                            kind: 2,
                            value: b"Name".to_vec(),
                        },
                    ],
                },
            ]),
            RtcpPacket::Bye(Bye {
                sources: vec![7, 8],
                reason: Some("shutting down".into()),
            }),
            RtcpPacket::Bye(Bye::default()),
            RtcpPacket::Other {
                packet_type: PT_APP,
                count: 3,
                payload: vec![0, 0, 0, 7, b'T', b'E', b'S', b'T'],
            },
            RtcpPacket::SenderReport(SenderReport::default()),
        ];
        let bytes = build_compound(&pkts).unwrap();
        assert!(bytes.len().is_multiple_of(4));
        assert_eq!(parse_compound(&bytes).unwrap(), pkts);
        let RtcpPacket::SourceDescription(c) = &pkts[1] else {
            panic!()
        };
        assert_eq!(c[0].get_cname().as_deref(), Some("user@host.example"));
    }

    #[test]
    fn build_report_minimal_compound() {
        let bytes = build_report(42, None, &[block()], "cname").unwrap();
        let p = parse_compound(&bytes).unwrap();
        assert_eq!(p.len(), 2);
        assert!(matches!(&p[0], RtcpPacket::ReceiverReport(r) if r.ssrc == 42));
        assert!(
            matches!(&p[1], RtcpPacket::SourceDescription(c) if c[0].get_cname().as_deref() == Some("cname"))
        );
        let bytes = build_report(42, Some((1 << 32, 160, 1, 2)), &[], "x").unwrap();
        assert!(matches!(
            &parse_compound(&bytes).unwrap()[0],
            RtcpPacket::SenderReport(s) if s.ntp_timestamp == 1 << 32 && s.reports.is_empty()
        ));
    }

    #[test]
    fn build_errors() {
        let too_many = RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 1,
            reports: vec![ReportBlock::default(); 32],
        });
        assert_eq!(build_compound(&[too_many]), Err(RtcpError::TooMany(32)));
        let long = "x".repeat(256);
        assert_eq!(
            build_compound(&[RtcpPacket::SourceDescription(vec![SdesChunk::cname(
                1, &long
            )])]),
            Err(RtcpError::TextTooLong(256))
        );
        assert!(
            build_compound(&[RtcpPacket::Bye(Bye {
                sources: vec![],
                reason: Some(long)
            })])
            .is_err()
        );
        assert_eq!(
            build_compound(&[RtcpPacket::Other {
                packet_type: 205,
                count: 1,
                payload: vec![1, 2, 3]
            }]),
            Err(RtcpError::Unaligned(3))
        );
    }

    #[test]
    fn padding_handling() {
        // RR with no blocks, padded with 4 bytes (P bit, length 2).
        let ok = [0xa0, 0xc9, 0x00, 0x02, 0, 0, 0, 9, 0, 0, 0, 4];
        assert_eq!(
            parse_compound(&ok).unwrap(),
            vec![RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: 9,
                reports: vec![]
            })]
        );
        let mut zero = ok;
        zero[11] = 0;
        assert_eq!(parse_compound(&zero), Err(RtcpError::BadPadding));
        let mut big = ok;
        big[11] = 9;
        assert_eq!(parse_compound(&big), Err(RtcpError::BadPadding));
        // Padding eating into the SSRC makes the RR malformed.
        let mut eat = ok;
        eat[11] = 8;
        assert_eq!(parse_compound(&eat), Err(RtcpError::Malformed("RR")));
        // Padding on a non-final packet is invalid.
        let mut two = ok.to_vec();
        two.extend_from_slice(&[0x80, 0xcb, 0x00, 0x00]);
        assert_eq!(parse_compound(&two), Err(RtcpError::BadPadding));
    }

    #[test]
    fn header_validation() {
        assert_eq!(parse_compound(&[]), Err(RtcpError::Empty));
        assert_eq!(parse_compound(&[0x80, 0xc9]), Err(RtcpError::Truncated));
        let mut v1 = SR_BYTES;
        v1[0] = 0x41;
        assert_eq!(parse_compound(&v1), Err(RtcpError::BadVersion(1)));
        let mut long = SR_BYTES;
        long[3] = 13;
        assert_eq!(parse_compound(&long), Err(RtcpError::BadLength));
        let mut rc2 = SR_BYTES;
        rc2[0] = 0x82;
        assert_eq!(parse_compound(&rc2), Err(RtcpError::Malformed("SR")));
        // Trailing garbage after a valid packet.
        let mut trail = SR_BYTES.to_vec();
        trail.push(0x80);
        assert_eq!(parse_compound(&trail), Err(RtcpError::Truncated));
        // BYE with reason overrunning the packet.
        let bye = [0x81, 0xcb, 0x00, 0x02, 0, 0, 0, 1, 10, b'a', b'b', b'c'];
        assert_eq!(parse_compound(&bye), Err(RtcpError::Malformed("BYE")));
        // SDES without a terminating null item.
        let sdes = [0x81, 0xca, 0x00, 0x02, 0, 0, 0, 1, 1, 2, b'a', b'b'];
        assert_eq!(parse_compound(&sdes), Err(RtcpError::Malformed("SDES")));
    }

    #[test]
    fn truncations_and_garbage_never_panic() {
        let full = build_report(5, Some((7, 8, 9, 10)), &[block(), block()], "host").unwrap();
        let mut full = full;
        full.extend(
            build_compound(&[RtcpPacket::Bye(Bye {
                sources: vec![5],
                reason: Some("bye".into()),
            })])
            .unwrap(),
        );
        assert!(parse_compound(&full).is_ok());
        for n in 0..full.len() {
            let _ = parse_compound(&full[..n]);
        }
        // Flip every byte of a valid compound packet.
        for i in 0..full.len() {
            for v in [0x00, 0xff, 0x80, 0xa1, 0x1f] {
                let mut m = full.clone();
                m[i] = v;
                let _ = parse_compound(&m);
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..5000 {
            let mut buf = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 80) as usize;
            for j in 0..len {
                let x = seed.rotate_left(j as u32 * 7) as u8;
                buf.push(if j % 4 == 0 { 0x80 | (x & 0x3f) } else { x });
            }
            let _ = parse_compound(&buf);
        }
    }

    #[test]
    fn rtt() {
        // LSR at 10 s, DLSR 1.5 s, arrival at 11.75 s -> 250 ms.
        let lsr = 10 << 16;
        let dlsr = 3 << 15;
        let a = (11 << 16) + (3 << 14);
        assert_eq!(rtt_ms(a, lsr, dlsr), Some(250.0));
        assert_eq!(rtt_ms(a, 0, dlsr), None);
        assert_eq!(rtt_ms(lsr, lsr, 1), None);
        // Across the 32-bit wrap.
        let lsr = u32::MAX - 0x8000;
        assert_eq!(rtt_ms(0x8000 - 1, lsr, 0x8000), Some(500.0));
        assert_eq!(ntp_middle32(0x0001_0002_0003_0004), 0x0002_0003);
    }

    #[test]
    fn loss_with_constant_transit() {
        let mut s = ReceptionStats::new();
        // 100 packets starting at 65500 (wraps), every 10th lost, 20 ms @ 8 kHz, transit 1000.
        let base: u16 = 65_500;
        for i in 0..100u32 {
            if i % 10 == 9 {
                continue;
            }
            let seq = base.wrapping_add(i as u16);
            let ts = 1_000_000 + i * 160;
            assert!(s.update(seq, ts, ts + 1000));
        }
        assert_eq!(s.received(), 90);
        assert_eq!(s.expected(), 99); // last sent (i=99) was lost
        assert_eq!(s.lost(), 9);
        assert_eq!(
            s.extended_highest_seq(),
            65_536 + u32::from(base.wrapping_add(98))
        );
        assert_eq!(s.jitter(), 0);
        let rb = s.report_block(0xabc, 1, 2);
        assert_eq!(rb.fraction_lost, (9 * 256 / 99) as u8);
        assert_eq!(rb.cumulative_lost, 9);
        assert_eq!((rb.ssrc, rb.lsr, rb.dlsr, rb.jitter), (0xabc, 1, 2, 0));
        // Next interval: 10 packets arrive; the earlier loss of i=99 now becomes visible.
        for i in 100..110u32 {
            let ts = 1_000_000 + i * 160;
            s.update(base.wrapping_add(i as u16), ts, ts + 1000);
        }
        let rb = s.report_block(0xabc, 0, 0);
        assert_eq!(rb.fraction_lost, (256 / 11) as u8);
        assert_eq!(rb.cumulative_lost, 10);
        assert_eq!(rb.jitter, 0);
        // Next interval: nothing lost.
        for i in 110..120u32 {
            let ts = 1_000_000 + i * 160;
            s.update(base.wrapping_add(i as u16), ts, ts + 1000);
        }
        let rb = s.report_block(0xabc, 0, 0);
        assert_eq!((rb.fraction_lost, rb.cumulative_lost), (0, 10));
        // Duplicates make the interval's loss negative -> fraction 0, cumulative drops.
        for _ in 0..3 {
            s.update(base.wrapping_add(119), 0, 1000);
        }
        let rb = s.report_block(0xabc, 0, 0);
        assert_eq!((rb.fraction_lost, rb.cumulative_lost), (0, 7));
    }

    #[test]
    fn jitter_with_alternating_transit() {
        // Transit alternates 100, 132: |D| = 32 on every packet after the first.
        // J converges to 32 (A.8: J += (|D| - J)/16).
        let mut s = ReceptionStats::new();
        for i in 0..2000u32 {
            let ts = i * 160;
            let transit = if i % 2 == 0 { 100 } else { 132 };
            s.update(i as u16, ts, ts.wrapping_add(transit));
        }
        assert!((31..=32).contains(&s.jitter()), "jitter {}", s.jitter());
        // Exact value after one step from zero: 32/16 = 2.
        let mut s = ReceptionStats::new();
        s.update(0, 0, 100);
        s.update(1, 160, 292);
        assert_eq!(s.jitter(), 2);
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn sequence_jump_and_restart() {
        let mut s = ReceptionStats::new();
        for i in 0..10u16 {
            s.update(i, u32::from(i) * 160, u32::from(i) * 160);
        }
        // A single wild packet is rejected.
        assert!(!s.update(30_000, 0, 0));
        assert_eq!(s.received(), 10);
        assert!(s.update(10, 1600, 1600));
        // Two sequential packets after a jump: restart.
        assert!(!s.update(40_000, 0, 0));
        assert!(s.update(40_001, 160, 160));
        assert_eq!((s.received(), s.expected(), s.lost()), (1, 1, 0));
        // Reordered packet: counted, does not move max_seq.
        assert!(s.update(40_000, 0, 0));
        assert_eq!(s.extended_highest_seq(), 40_001);
        assert_eq!(s.lost(), -1);
    }

    #[test]
    fn extreme_transit_does_not_overflow() {
        let mut s = ReceptionStats::default();
        for i in 0..5000u32 {
            let arrival = if i % 2 == 0 { 0 } else { 0x7fff_ffff };
            s.update(i as u16, 0, arrival);
        }
        assert!(s.jitter() > 0x7000_0000);
        let _ = s.report_block(1, 0, 0);
    }

    #[test]
    fn stats_empty_and_garbage() {
        let mut s = ReceptionStats::new();
        assert_eq!(s.expected(), 0);
        assert_eq!(s.report_block(1, 0, 0).fraction_lost, 0);
        let mut seed = 42u64;
        for _ in 0..50_000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let _ = s.update((seed >> 48) as u16, (seed >> 8) as u32, seed as u32);
            if seed.is_multiple_of(97) {
                let _ = s.report_block(1, 2, 3);
            }
        }
    }
}
