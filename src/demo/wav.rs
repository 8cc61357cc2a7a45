//! The demo caller's utterances are 8 kHz mono µ-law WAV files: this finds their audio.

/// Why a WAV file cannot be sent as the caller's audio.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// The bytes do not start with a RIFF/WAVE header.
    #[error("not a RIFF/WAVE file")]
    NotWave,
    /// No `fmt ` chunk before the audio.
    #[error("no fmt chunk")]
    NoFormat,
    /// Not 8 kHz mono 8-bit µ-law.
    #[error(
        "format {format} at {rate} Hz, {channels} channel(s), {bits} bits: want 8 kHz mono µ-law"
    )]
    Unsupported {
        /// The WAVE format tag (7 is µ-law).
        format: u16,
        /// Sample rate.
        rate: u32,
        /// Channels.
        channels: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// No `data` chunk, or one that runs past the end of the file.
    #[error("no complete data chunk")]
    NoData,
}

/// The WAVE format tag of G.711 µ-law.
const FORMAT_ULAW: u16 = 7;

/// The µ-law bytes of an 8 kHz mono µ-law WAV file.
pub fn ulaw_payload(wav: &[u8]) -> Result<&[u8], WavError> {
    if wav.len() < 12 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut rest = &wav[12..];
    let mut format_ok = false;
    while rest.len() >= 8 {
        let (id, size) = (
            &rest[..4],
            u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]),
        );
        let body = &rest[8..];
        let size = size as usize;
        match id {
            b"fmt " => {
                let f = body.get(..16).ok_or(WavError::NoFormat)?;
                let u16_at = |i: usize| u16::from_le_bytes([f[i], f[i + 1]]);
                let (format, channels, bits) = (u16_at(0), u16_at(2), u16_at(14));
                let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
                if (format, rate, channels, bits) != (FORMAT_ULAW, 8000, 1, 8) {
                    return Err(WavError::Unsupported {
                        format,
                        rate,
                        channels,
                        bits,
                    });
                }
                format_ok = true;
            }
            b"data" if !format_ok => return Err(WavError::NoFormat),
            b"data" => return body.get(..size).ok_or(WavError::NoData),
            _ => {}
        }
        // Chunks are padded to an even size.
        let skip = size.checked_add(size & 1).ok_or(WavError::NoData)?;
        rest = body.get(skip..).ok_or(WavError::NoData)?;
    }
    Err(if format_ok {
        WavError::NoData
    } else {
        WavError::NoFormat
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(format: u16, rate: u32, extra: &[u8], data: &[u8]) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        v.extend_from_slice(&18u32.to_le_bytes());
        v.extend_from_slice(&format.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&8u16.to_le_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(extra);
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn finds_the_audio_after_other_chunks() {
        let fact = b"fact\x05\0\0\0abcde\0";
        let w = wav(7, 8000, fact, &[1, 2, 3]);
        assert_eq!(ulaw_payload(&w), Ok(&[1u8, 2, 3][..]));
    }

    #[test]
    fn rejects_other_formats_and_truncation() {
        assert!(matches!(
            ulaw_payload(&wav(1, 8000, b"", &[0; 4])),
            Err(WavError::Unsupported { format: 1, .. })
        ));
        assert!(matches!(
            ulaw_payload(&wav(7, 16000, b"", &[0; 4])),
            Err(WavError::Unsupported { rate: 16000, .. })
        ));
        let mut w = wav(7, 8000, b"", &[0; 4]);
        w.truncate(w.len() - 1);
        assert_eq!(ulaw_payload(&w), Err(WavError::NoData));
        assert_eq!(ulaw_payload(b"RIFX"), Err(WavError::NotWave));
        // A chunk size near u32::MAX must not overflow or panic.
        let mut huge = b"RIFF\0\0\0\0WAVEjunk".to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(ulaw_payload(&huge), Err(WavError::NoData));
    }

    #[test]
    fn the_shipped_utterances_are_8k_ulaw() {
        for (text, wav) in super::super::script::UTTERANCES {
            let audio = ulaw_payload(wav).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(
                (4_000..40_000).contains(&audio.len()),
                "{text}: {} bytes",
                audio.len()
            );
        }
    }
}
