//! Audio codecs at the edges of a leg: G.711 µ-law/A-law by table, Opus through libopus,
//! and resampling between the internal rates. Inside a call audio is 16-bit mono PCM in
//! 20 ms frames at the leg's rate ([`CodecSpec::pcm_rate`]).

pub mod g711;

use thiserror::Error;

/// A negotiated codec: what the SDP answer chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecKind {
    /// G.711 µ-law (PCMU), 8 kHz.
    Pcmu,
    /// G.711 A-law (PCMA), 8 kHz.
    Pcma,
    /// Opus (RTP clock 48 kHz, RFC 7587); decoded/encoded at the leg's PCM rate.
    Opus,
}

/// The codec and the PCM rate the leg works at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecSpec {
    pub kind: CodecKind,
    /// RTP payload type from the offer.
    pub payload_type: u8,
    /// PCM rate inside the call for this leg (8000 for G.711, 16000 for Opus).
    pub pcm_rate: u32,
}

impl CodecSpec {
    /// The codec for an SDP encoding name (case-insensitive), if we implement it.
    pub fn from_sdp(name: &str, payload_type: u8) -> Option<CodecSpec> {
        let (kind, pcm_rate) = match name.to_ascii_lowercase().as_str() {
            "pcmu" => (CodecKind::Pcmu, 8000),
            "pcma" => (CodecKind::Pcma, 8000),
            "opus" => (CodecKind::Opus, 16000),
            _ => return None,
        };
        Some(CodecSpec {
            kind,
            payload_type,
            pcm_rate,
        })
    }

    /// RTP clock rate (RFC 7587: always 48 kHz for Opus).
    pub fn rtp_clock_rate(&self) -> u32 {
        match self.kind {
            CodecKind::Opus => 48_000,
            _ => 8000,
        }
    }

    /// PCM samples in one 20 ms frame at the leg's rate.
    pub fn frame_samples(&self) -> usize {
        self.pcm_rate as usize / 50
    }

    /// RTP timestamp units in one 20 ms frame.
    pub fn frame_rtp_units(&self) -> u32 {
        self.rtp_clock_rate() / 50
    }
}

/// Why a codec could not be created or a payload decoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("opus: {0}")]
    Opus(String),
    #[error("payload of {0} bytes is not a whole 20 ms frame")]
    BadPayloadSize(usize),
}

/// Encodes 20 ms PCM frames into RTP payloads.
pub enum Encoder {
    Pcmu,
    Pcma,
}

impl Encoder {
    /// An encoder for the negotiated codec.
    pub fn new(spec: CodecSpec) -> Result<Encoder, CodecError> {
        match spec.kind {
            CodecKind::Pcmu => Ok(Encoder::Pcmu),
            CodecKind::Pcma => Ok(Encoder::Pcma),
            CodecKind::Opus => Err(CodecError::Opus("not built yet".into())),
        }
    }

    /// Appends the payload for one frame of PCM to `out` (which is cleared first).
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.clear();
        match self {
            Encoder::Pcmu => out.extend(pcm.iter().map(|&s| g711::linear_to_ulaw(s))),
            Encoder::Pcma => out.extend(pcm.iter().map(|&s| g711::linear_to_alaw(s))),
        }
        Ok(())
    }
}

/// Decodes RTP payloads into PCM, and conceals lost frames.
pub enum Decoder {
    G711 {
        alaw: bool,
        /// The last frame decoded, for repeat-and-fade concealment.
        last: Vec<i16>,
        /// Consecutive concealed frames (each repeat is quieter; silence after 3).
        concealed: u32,
    },
}

impl Decoder {
    /// A decoder for the negotiated codec.
    pub fn new(spec: CodecSpec) -> Result<Decoder, CodecError> {
        match spec.kind {
            CodecKind::Pcmu | CodecKind::Pcma => Ok(Decoder::G711 {
                alaw: spec.kind == CodecKind::Pcma,
                last: Vec::with_capacity(spec.frame_samples()),
                concealed: 0,
            }),
            CodecKind::Opus => Err(CodecError::Opus("not built yet".into())),
        }
    }

    /// Decodes one payload into `out` (cleared first).
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        out.clear();
        match self {
            Decoder::G711 {
                alaw,
                last,
                concealed,
            } => {
                if *alaw {
                    out.extend(payload.iter().map(|&b| g711::alaw_to_linear(b)));
                } else {
                    out.extend(payload.iter().map(|&b| g711::ulaw_to_linear(b)));
                }
                last.clear();
                last.extend_from_slice(out);
                *concealed = 0;
            }
        }
        Ok(())
    }

    /// Fills `out` with `samples` samples standing in for a lost frame: G.711 repeats the
    /// last frame at falling gain (1/2, 1/4, 1/8) and then goes silent.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        out.clear();
        match self {
            Decoder::G711 {
                last, concealed, ..
            } => {
                *concealed += 1;
                let shift = *concealed;
                if shift > 3 || last.is_empty() {
                    out.resize(samples, 0);
                } else {
                    out.extend(
                        (0..samples).map(|i| last.get(i % last.len()).map_or(0, |&s| s >> shift)),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_round_trip_and_conceal() {
        let spec = CodecSpec::from_sdp("PCMA", 8).unwrap();
        assert_eq!((spec.frame_samples(), spec.frame_rtp_units()), (160, 160));
        let mut enc = Encoder::new(spec).unwrap();
        let mut dec = Decoder::new(spec).unwrap();
        let pcm: Vec<i16> = (0..160).map(|i| (i * 97 % 4000) as i16 - 2000).collect();
        let (mut bytes, mut out) = (Vec::new(), Vec::new());
        enc.encode(&pcm, &mut bytes).unwrap();
        assert_eq!(bytes.len(), 160);
        dec.decode(&bytes, &mut out).unwrap();
        let max_err = pcm
            .iter()
            .zip(&out)
            .map(|(a, b)| (a - b).abs())
            .max()
            .unwrap();
        assert!(max_err <= 64, "A-law error {max_err}");
        let mut c = Vec::new();
        dec.conceal(160, &mut c);
        assert_eq!(c[10], out[10] >> 1);
        for _ in 0..3 {
            dec.conceal(160, &mut c);
        }
        assert!(c.iter().all(|&s| s == 0));
        assert!(CodecSpec::from_sdp("G729", 18).is_none());
    }
}
