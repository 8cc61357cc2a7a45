//! Audio codecs at the edges of a leg: G.711 µ-law/A-law by table, Opus through libopus,
//! and resampling between the internal rates. Inside a call audio is 16-bit mono PCM in
//! 20 ms frames at the leg's rate ([`CodecSpec::pcm_rate`]).

pub mod g711;
pub mod opus;
pub mod resample;

use opus::{OpusDecoder, OpusEncoder, OpusParams};
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
    /// PCM rate inside the call for this leg (8000 for G.711, 16000 for Opus by default).
    pub pcm_rate: u32,
    /// Opus encoder preferences (ignored by G.711).
    pub opus: OpusParams,
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
            opus: OpusParams::default(),
        })
    }

    /// The same codec at another PCM rate, if the codec runs at it natively: Opus at 8, 16,
    /// 24 or 48 kHz, G.711 at 8 kHz only.
    pub fn with_pcm_rate(self, pcm_rate: u32) -> Option<CodecSpec> {
        let ok = match self.kind {
            CodecKind::Opus => opus::sample_rate(pcm_rate).is_some(),
            _ => pcm_rate == 8000,
        };
        ok.then_some(CodecSpec { pcm_rate, ..self })
    }

    /// The same codec with the peer's `a=fmtp` parameters applied (Opus only, RFC 7587).
    pub fn with_fmtp(mut self, fmtp: &str) -> CodecSpec {
        if self.kind == CodecKind::Opus {
            self.opus.apply_fmtp(fmtp);
        }
        self
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
    #[error("unsupported PCM rate {0} Hz")]
    UnsupportedRate(u32),
    #[error("{got} samples where one 20 ms frame of {expected} was expected")]
    FrameSize { expected: usize, got: usize },
    #[error("resampler: {0}")]
    Resample(String),
}

/// Encodes 20 ms PCM frames into RTP payloads.
pub enum Encoder {
    Pcmu,
    Pcma,
    /// Opus through libopus.
    Opus(OpusEncoder),
}

impl Encoder {
    /// An encoder for the negotiated codec.
    pub fn new(spec: CodecSpec) -> Result<Encoder, CodecError> {
        match spec.kind {
            CodecKind::Pcmu => Ok(Encoder::Pcmu),
            CodecKind::Pcma => Ok(Encoder::Pcma),
            CodecKind::Opus => Ok(Encoder::Opus(OpusEncoder::new(spec.pcm_rate, &spec.opus)?)),
        }
    }

    /// Appends the payload for one frame of PCM to `out` (which is cleared first).
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.clear();
        match self {
            Encoder::Pcmu => out.extend(pcm.iter().map(|&s| g711::linear_to_ulaw(s))),
            Encoder::Pcma => out.extend(pcm.iter().map(|&s| g711::linear_to_alaw(s))),
            Encoder::Opus(enc) => return enc.encode(pcm, out),
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
    /// Opus through libopus.
    Opus(OpusDecoder),
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
            CodecKind::Opus => Ok(Decoder::Opus(OpusDecoder::new(spec.pcm_rate)?)),
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
            Decoder::Opus(dec) => return dec.decode(payload, out),
        }
        Ok(())
    }

    /// Fills `out` with the frame lost just before `next_payload`: Opus rebuilds it from the
    /// in-band FEC data of the next packet; G.711 has none and conceals one frame as long
    /// as the last one. Decode `next_payload` normally afterwards.
    pub fn decode_fec(
        &mut self,
        next_payload: &[u8],
        out: &mut Vec<i16>,
    ) -> Result<(), CodecError> {
        match self {
            Decoder::G711 { last, .. } => {
                let samples = if last.is_empty() { 160 } else { last.len() };
                self.conceal(samples, out);
                Ok(())
            }
            Decoder::Opus(dec) => dec.decode_fec(next_payload, out),
        }
    }

    /// Fills `out` with `samples` samples standing in for a lost frame: G.711 repeats the
    /// last frame at falling gain (1/2, 1/4, 1/8) and then goes silent; Opus runs the
    /// libopus concealment, which also fades out over consecutive losses.
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
            Decoder::Opus(dec) => dec.conceal(samples, out),
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
        // G.711 has no FEC: the FEC path conceals one frame as long as the last.
        let mut dec = Decoder::new(spec).unwrap();
        dec.decode(&bytes, &mut out).unwrap();
        dec.decode_fec(&bytes, &mut c).unwrap();
        assert_eq!((c.len(), c[10]), (160, out[10] >> 1));
    }

    #[test]
    fn opus_through_the_codec_enums() {
        let spec = CodecSpec::from_sdp("opus", 111).unwrap();
        assert_eq!(
            (spec.pcm_rate, spec.frame_samples(), spec.frame_rtp_units()),
            (16000, 320, 960)
        );
        assert!(spec.opus.inband_fec);
        assert_eq!(spec.with_pcm_rate(44100), None);
        assert_eq!(
            CodecSpec::from_sdp("PCMU", 0).unwrap().with_pcm_rate(16000),
            None
        );
        let wide = spec
            .with_pcm_rate(48000)
            .unwrap()
            .with_fmtp("useinbandfec=0");
        assert_eq!((wide.frame_samples(), wide.opus.inband_fec), (960, false));
        for spec in [spec.with_pcm_rate(8000).unwrap(), spec, wide] {
            let n = spec.frame_samples();
            let mut enc = Encoder::new(spec).unwrap();
            let mut dec = Decoder::new(spec).unwrap();
            let pcm: Vec<i16> = (0..n).map(|i| ((i * 31) % 2000) as i16 - 1000).collect();
            let (mut bytes, mut out) = (Vec::new(), Vec::new());
            enc.encode(&pcm, &mut bytes).unwrap();
            assert!(!bytes.is_empty());
            dec.decode(&bytes, &mut out).unwrap();
            assert_eq!(out.len(), n);
            dec.decode_fec(&bytes, &mut out).unwrap();
            assert_eq!(out.len(), n);
            dec.conceal(n, &mut out);
            assert_eq!(out.len(), n);
            assert!(dec.decode(&[0x03, 0x00], &mut out).is_err());
        }
    }
}
