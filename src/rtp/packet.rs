//! Minimal RTP fixed-header view (RFC 3550 §5.1) used to validate and re-stamp packets.

/// The fixed RTP header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Offset of the payload within the packet (after CSRCs and extension).
    pub payload_offset: usize,
}

impl RtpHeader {
    /// Parses the header; `None` for anything that is not a well-formed RTP v2 packet.
    pub fn parse(b: &[u8]) -> Option<RtpHeader> {
        if b.len() < 12 || b[0] >> 6 != 2 {
            return None;
        }
        let cc = (b[0] & 0x0f) as usize;
        let mut off = 12 + 4 * cc;
        if b[0] & 0x10 != 0 {
            let ext = b.get(off + 2..off + 4)?;
            off += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
        }
        let mut end = b.len();
        if b[0] & 0x20 != 0 {
            // The padding count includes itself (RFC 3550 §5.1), so 0 is invalid.
            let pad = *b.last()? as usize;
            if pad == 0 {
                return None;
            }
            end = end.checked_sub(pad)?;
        }
        if off > end {
            return None;
        }
        Some(RtpHeader {
            marker: b[1] & 0x80 != 0,
            payload_type: b[1] & 0x7f,
            sequence: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            payload_offset: off,
        })
    }
}

/// Overwrites the SSRC of a packet already checked by [`RtpHeader::parse`].
pub fn set_ssrc(packet: &mut [u8], ssrc: u32) {
    if packet.len() >= 12 {
        packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let mut p = vec![0x80, 0x80, 0x12, 0x34, 0, 0, 0, 160, 1, 2, 3, 4, 0xff];
        let h = RtpHeader::parse(&p).unwrap();
        assert!(h.marker);
        assert_eq!(
            (h.payload_type, h.sequence, h.timestamp, h.ssrc),
            (0, 0x1234, 160, 0x01020304)
        );
        assert_eq!(h.payload_offset, 12);
        set_ssrc(&mut p, 7);
        assert_eq!(RtpHeader::parse(&p).unwrap().ssrc, 7);
        assert!(RtpHeader::parse(&p[..11]).is_none());
        assert!(RtpHeader::parse(&[0x40; 20]).is_none());
        // Extension length pointing past the end.
        assert!(
            RtpHeader::parse(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]).is_none()
        );
        // Padding count of zero, then padding larger than the packet.
        assert!(RtpHeader::parse(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert!(RtpHeader::parse(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200]).is_none());
    }
}
