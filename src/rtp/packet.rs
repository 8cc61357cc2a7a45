//! The RTP header (RFC 3550 §5.1): a parsed view that finds the payload past CSRCs and
//! extensions, and a writer for headers with CSRCs and an extension.

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

/// A header extension (RFC 3550 §5.3.1): the profile-defined 16 bits and the data, a whole
/// number of 32-bit words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpExtension<'a> {
    pub profile: u16,
    pub data: &'a [u8],
}

/// Everything needed to write an RTP header, including CSRCs and an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpHeaderFields<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Contributing sources (at most 15).
    pub csrcs: &'a [u32],
    pub extension: Option<RtpExtension<'a>>,
}

/// Why a header could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpWriteError {
    #[error("{0} CSRCs; an RTP header holds at most 15")]
    TooManyCsrcs(usize),
    #[error("extension of {0} bytes is not a whole number of 32-bit words (or over 256 KiB)")]
    BadExtensionLength(usize),
    #[error("payload type {0} does not fit in 7 bits")]
    BadPayloadType(u8),
}

impl RtpHeaderFields<'_> {
    /// Appends the header to `out`; the payload follows.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), RtpWriteError> {
        if self.csrcs.len() > 15 {
            return Err(RtpWriteError::TooManyCsrcs(self.csrcs.len()));
        }
        if self.payload_type > 127 {
            return Err(RtpWriteError::BadPayloadType(self.payload_type));
        }
        if let Some(ext) = &self.extension
            && (!ext.data.len().is_multiple_of(4) || ext.data.len() / 4 > usize::from(u16::MAX))
        {
            return Err(RtpWriteError::BadExtensionLength(ext.data.len()));
        }
        let x = if self.extension.is_some() { 0x10 } else { 0 };
        out.push(0x80 | x | self.csrcs.len() as u8);
        out.push((u8::from(self.marker) << 7) | self.payload_type);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in self.csrcs {
            out.extend_from_slice(&c.to_be_bytes());
        }
        if let Some(ext) = &self.extension {
            out.extend_from_slice(&ext.profile.to_be_bytes());
            out.extend_from_slice(&((ext.data.len() / 4) as u16).to_be_bytes());
            out.extend_from_slice(ext.data);
        }
        Ok(())
    }
}

impl RtpHeader {
    /// The CSRC list of a packet this header was parsed from.
    pub fn csrcs<'a>(&self, packet: &'a [u8]) -> impl Iterator<Item = u32> + 'a {
        let cc = packet.first().map_or(0, |b| usize::from(b & 0x0f));
        packet
            .get(12..12 + 4 * cc)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The header extension of a packet this header was parsed from, if it has one.
    pub fn extension<'a>(&self, packet: &'a [u8]) -> Option<RtpExtension<'a>> {
        let first = *packet.first()?;
        if first & 0x10 == 0 {
            return None;
        }
        let at = 12 + 4 * usize::from(first & 0x0f);
        let head = packet.get(at..at + 4)?;
        let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
        Some(RtpExtension {
            profile: u16::from_be_bytes([head[0], head[1]]),
            data: packet.get(at + 4..at + 4 + 4 * words)?,
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

    #[test]
    fn writes_and_reads_back_csrcs_and_extensions() {
        let ext_data = [0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0];
        let fields = RtpHeaderFields {
            marker: true,
            payload_type: 111,
            sequence: 65535,
            timestamp: 0xdead_beef,
            ssrc: 42,
            csrcs: &[7, 8, 9],
            extension: Some(RtpExtension {
                profile: 0xbede,
                data: &ext_data,
            }),
        };
        let mut p = Vec::new();
        fields.write(&mut p).unwrap();
        p.extend_from_slice(b"payload");
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(
            (h.marker, h.payload_type, h.sequence, h.timestamp, h.ssrc),
            (true, 111, 65535, 0xdead_beef, 42)
        );
        assert_eq!(h.csrcs(&p).collect::<Vec<_>>(), vec![7, 8, 9]);
        let ext = h.extension(&p).unwrap();
        assert_eq!((ext.profile, ext.data), (0xbede, &ext_data[..]));
        assert_eq!(&p[h.payload_offset..], b"payload");
        // Plain header: no extension, no CSRCs.
        let mut q = Vec::new();
        RtpHeaderFields {
            csrcs: &[],
            extension: None,
            ..fields.clone()
        }
        .write(&mut q)
        .unwrap();
        let hq = RtpHeader::parse(&q).unwrap();
        assert_eq!((hq.payload_offset, hq.extension(&q)), (12, None));
        // What does not fit is refused, not truncated.
        let many = [0u32; 16];
        let bad = RtpHeaderFields {
            csrcs: &many,
            ..fields.clone()
        };
        assert_eq!(
            bad.write(&mut Vec::new()),
            Err(RtpWriteError::TooManyCsrcs(16))
        );
        let odd = RtpHeaderFields {
            extension: Some(RtpExtension {
                profile: 1,
                data: &[1, 2, 3],
            }),
            ..fields.clone()
        };
        assert_eq!(
            odd.write(&mut Vec::new()),
            Err(RtpWriteError::BadExtensionLength(3))
        );
        let pt = RtpHeaderFields {
            payload_type: 200,
            ..fields
        };
        assert_eq!(
            pt.write(&mut Vec::new()),
            Err(RtpWriteError::BadPayloadType(200))
        );
    }
}
