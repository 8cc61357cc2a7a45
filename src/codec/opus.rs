//! Opus (RFC 6716, RTP per RFC 7587) through libopus: mono, 20 ms frames, VoIP application,
//! in-band FEC on, DTX off. PCM runs at the leg's rate (8, 16, 24 or 48 kHz), which libopus
//! codes natively, so no resampling happens here.

use super::CodecError;
use audiopus::coder::{Decoder as LibDecoder, Encoder as LibEncoder};
use audiopus::{Application, Bandwidth, Bitrate, Channels, SampleRate, Signal, ffi, packet};

/// Largest payload one encoded frame can take (RFC 6716 §3.2.1: 1275 bytes per frame).
const MAX_PAYLOAD: usize = 1275;
/// Longest packet the decoder accepts (RFC 6716 §3.2.5: 120 ms).
const MAX_PACKET_MS: usize = 120;
/// Packet loss the encoder plans its FEC for when nothing better is known, in percent.
pub const DEFAULT_EXPECTED_LOSS_PCT: u8 = 10;

/// Opus preferences: our defaults, narrowed by the peer's SDP fmtp (RFC 7587 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusParams {
    /// Send in-band FEC (LBRR) so the peer can rebuild a lost packet from the next one.
    pub inband_fec: bool,
    /// Packet loss the encoder spends FEC bits for, in percent (0..=100).
    pub expected_loss_pct: u8,
    /// Upper bound on our average bitrate in bit/s (the peer's `maxaveragebitrate`).
    pub max_average_bitrate: Option<u32>,
    /// Highest audio rate the peer will render (its `maxplaybackrate`): caps our bandwidth.
    pub max_playback_rate: Option<u32>,
    /// Encoder complexity 0..=10 (libopus default 10). We use 5: it roughly halves the
    /// encode cost (about 130 µs instead of 270 µs per 20 ms frame here) for speech.
    pub complexity: u8,
}

impl Default for OpusParams {
    fn default() -> Self {
        OpusParams {
            inband_fec: true,
            expected_loss_pct: DEFAULT_EXPECTED_LOSS_PCT,
            max_average_bitrate: None,
            max_playback_rate: None,
            complexity: 5,
        }
    }
}

impl OpusParams {
    /// Applies the peer's `a=fmtp` parameters (`useinbandfec=0; maxaveragebitrate=20000`);
    /// unknown or malformed parameters are ignored, absent ones keep our preference.
    pub fn apply_fmtp(&mut self, fmtp: &str) {
        for item in fmtp.split(';') {
            let Some((key, value)) = item.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "useinbandfec" => match value {
                    "0" => self.inband_fec = false,
                    "1" => self.inband_fec = true,
                    _ => {}
                },
                "maxaveragebitrate" => {
                    if let Ok(v) = value.parse::<u32>() {
                        self.max_average_bitrate = Some(v.clamp(6000, 510_000));
                    }
                }
                "maxplaybackrate" => {
                    if let Ok(v) = value.parse::<u32>()
                        && v >= 8000
                    {
                        self.max_playback_rate = Some(v);
                    }
                }
                _ => {}
            }
        }
    }
}

/// The libopus sample rate for a PCM rate, if libopus codes at it natively.
pub fn sample_rate(pcm_rate: u32) -> Option<SampleRate> {
    match pcm_rate {
        8000 => Some(SampleRate::Hz8000),
        16000 => Some(SampleRate::Hz16000),
        24000 => Some(SampleRate::Hz24000),
        48000 => Some(SampleRate::Hz48000),
        _ => None,
    }
}

/// Our bitrate at each PCM rate: enough for clean speech plus the FEC copy at 10 % loss.
fn default_bitrate(pcm_rate: u32) -> u32 {
    match pcm_rate {
        8000 => 20_000,
        16000 => 28_000,
        24000 => 32_000,
        _ => 40_000,
    }
}

/// The widest audio band worth coding for a peer that renders at most `rate` Hz.
fn bandwidth_for(rate: u32) -> Bandwidth {
    match rate {
        ..12_000 => Bandwidth::Narrowband,
        12_000..16_000 => Bandwidth::Mediumband,
        16_000..24_000 => Bandwidth::Wideband,
        24_000..48_000 => Bandwidth::Superwideband,
        _ => Bandwidth::Fullband,
    }
}

fn opus_err(e: audiopus::Error) -> CodecError {
    CodecError::Opus(e.to_string())
}

/// A libopus encoder set up for telephony (see the module docs).
#[derive(Debug)]
pub struct OpusEncoder {
    inner: LibEncoder,
}

impl OpusEncoder {
    /// An encoder for mono PCM at `pcm_rate` (8, 16, 24 or 48 kHz).
    pub fn new(pcm_rate: u32, params: &OpusParams) -> Result<OpusEncoder, CodecError> {
        let rate = sample_rate(pcm_rate).ok_or(CodecError::UnsupportedRate(pcm_rate))?;
        let mut inner =
            LibEncoder::new(rate, Channels::Mono, Application::Voip).map_err(opus_err)?;
        let bitrate = params
            .max_average_bitrate
            .map_or(default_bitrate(pcm_rate), |max| {
                max.min(default_bitrate(pcm_rate))
            });
        inner
            .set_bitrate(Bitrate::BitsPerSecond(bitrate as i32))
            .map_err(opus_err)?;
        inner
            .set_complexity(params.complexity.min(10))
            .map_err(opus_err)?;
        inner.set_inband_fec(params.inband_fec).map_err(opus_err)?;
        inner
            .set_packet_loss_perc(params.expected_loss_pct.min(100))
            .map_err(opus_err)?;
        inner
            .set_encoder_ctl_request(ffi::OPUS_SET_DTX_REQUEST, 0)
            .map_err(opus_err)?;
        // Calls carry speech (and prompts): keep SILK, which is where the FEC lives, rather
        // than let the classifier switch tonal audio to CELT.
        inner.set_signal(Signal::Voice).map_err(opus_err)?;
        if let Some(max) = params.max_playback_rate {
            inner
                .set_max_bandwidth(bandwidth_for(max))
                .map_err(opus_err)?;
        }
        Ok(OpusEncoder { inner })
    }

    /// Encodes one frame of PCM (20 ms; libopus also takes 2.5 to 60 ms) into `out`,
    /// which is cleared first and keeps its capacity between calls.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.clear();
        out.resize(MAX_PAYLOAD, 0);
        match self.inner.encode(pcm, out) {
            Ok(n) => {
                out.truncate(n);
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(opus_err(e))
            }
        }
    }

    /// Changes the packet loss the FEC is planned for, e.g. from RTCP receiver reports.
    pub fn set_expected_loss(&mut self, pct: u8) -> Result<(), CodecError> {
        self.inner
            .set_packet_loss_perc(pct.min(100))
            .map_err(opus_err)
    }

    /// The encoder's algorithmic delay (lookahead) in samples at the PCM rate.
    pub fn lookahead(&self) -> Result<u32, CodecError> {
        self.inner.lookahead().map_err(opus_err)
    }
}

/// A libopus decoder with loss concealment and FEC recovery.
#[derive(Debug)]
pub struct OpusDecoder {
    inner: LibDecoder,
    rate: SampleRate,
    /// Longest packet accepted, in samples: bounds what a payload can make us write.
    max_samples: usize,
    /// Duration of the last decoded packet: the size assumed for a lost one.
    last_samples: usize,
}

impl OpusDecoder {
    /// A decoder producing mono PCM at `pcm_rate` (8, 16, 24 or 48 kHz).
    pub fn new(pcm_rate: u32) -> Result<OpusDecoder, CodecError> {
        let rate = sample_rate(pcm_rate).ok_or(CodecError::UnsupportedRate(pcm_rate))?;
        let inner = LibDecoder::new(rate, Channels::Mono).map_err(opus_err)?;
        let per_ms = pcm_rate as usize / 1000;
        Ok(OpusDecoder {
            inner,
            rate,
            max_samples: per_ms * MAX_PACKET_MS,
            last_samples: per_ms * 20,
        })
    }

    /// Decodes one payload into `out` (cleared first); a malformed payload is an error.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        out.clear();
        // A negative libopus error comes back cast to a huge usize, so the bound check
        // also rejects packets whose header is invalid.
        let samples = packet::nb_samples(payload, self.rate).map_err(opus_err)?;
        if samples == 0 || samples > self.max_samples {
            return Err(CodecError::Opus("invalid packet duration".into()));
        }
        out.resize(samples, 0);
        match self.inner.decode(Some(payload), &mut out[..], false) {
            Ok(n) => {
                out.truncate(n);
                self.last_samples = n;
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(opus_err(e))
            }
        }
    }

    /// Fills `out` with `samples` samples of libopus packet loss concealment (a fading
    /// continuation of the signal). `samples` should be a multiple of 2.5 ms; anything
    /// libopus refuses yields silence.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        out.clear();
        out.resize(samples.min(self.max_samples), 0);
        if self
            .inner
            .decode(None::<&[u8]>, &mut out[..], false)
            .is_err()
        {
            out.fill(0);
        }
        out.resize(samples, 0);
    }

    /// Rebuilds the lost frame before `next_payload` from the FEC data it carries (libopus
    /// falls back to concealment when it carries none). Decode `next_payload` normally
    /// afterwards; on error, conceal instead.
    pub fn decode_fec(
        &mut self,
        next_payload: &[u8],
        out: &mut Vec<i16>,
    ) -> Result<(), CodecError> {
        out.clear();
        let samples = packet::nb_samples(next_payload, self.rate).map_err(opus_err)?;
        if samples == 0 || samples > self.max_samples {
            return Err(CodecError::Opus("invalid packet duration".into()));
        }
        out.resize(self.last_samples, 0);
        match self.inner.decode(Some(next_payload), &mut out[..], true) {
            Ok(n) => {
                out.truncate(n);
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(opus_err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// `frames` 20 ms frames of a 440 Hz + 1 kHz tone at `rate`.
    fn tones(rate: u32, frames: usize) -> Vec<i16> {
        let n = rate as usize / 50 * frames;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (6000.0 * (2.0 * PI * 440.0 * t).sin() + 6000.0 * (2.0 * PI * 1000.0 * t).sin())
                    as i16
            })
            .collect()
    }

    /// A tone whose pitch steps every 20 ms, so a lost frame cannot be guessed from the last.
    fn stepped(rate: u32, frames: usize) -> Vec<i16> {
        let fs = rate as usize / 50;
        let mut phase = 0.0f64;
        (0..fs * frames)
            .map(|i| {
                let f = 300.0 + 170.0 * ((i / fs) % 5) as f64;
                phase += 2.0 * PI * f / f64::from(rate);
                (9000.0 * phase.sin()) as i16
            })
            .collect()
    }

    fn encode_all(rate: u32, pcm: &[i16]) -> Vec<Vec<u8>> {
        let mut enc = OpusEncoder::new(rate, &OpusParams::default()).unwrap();
        pcm.chunks(rate as usize / 50)
            .map(|f| {
                let mut p = Vec::new();
                enc.encode(f, &mut p).unwrap();
                p
            })
            .collect()
    }

    fn energy(x: &[i16]) -> f64 {
        x.iter().map(|&s| f64::from(s).powi(2)).sum()
    }

    /// SNR in dB of `out` against `reference` delayed by `delay` samples, over `range`.
    fn snr_db(reference: &[i16], out: &[i16], delay: usize, range: std::ops::Range<usize>) -> f64 {
        let (mut sig, mut err) = (0.0, 0.0);
        for i in range {
            let r = f64::from(reference[i]);
            sig += r * r;
            err += (f64::from(out[i + delay]) - r).powi(2);
        }
        10.0 * (sig / err.max(1e-9)).log10()
    }

    #[test]
    fn tones_survive_at_every_rate() {
        for rate in [8000, 16000, 48000] {
            let pcm = tones(rate, 50);
            let enc = OpusEncoder::new(rate, &OpusParams::default()).unwrap();
            let lookahead = enc.lookahead().unwrap() as usize;
            let mut dec = OpusDecoder::new(rate).unwrap();
            let mut out = Vec::new();
            let mut frame = Vec::new();
            for p in encode_all(rate, &pcm) {
                dec.decode(&p, &mut frame).unwrap();
                assert_eq!(frame.len(), rate as usize / 50);
                out.extend_from_slice(&frame);
            }
            // Align on the best delay near the encoder's lookahead, then measure the
            // steady part (skip the first 100 ms while the encoder settles).
            let fs = rate as usize / 50;
            let range = 5 * fs..40 * fs;
            let (delay, snr) = (0..2 * lookahead)
                .map(|d| (d, snr_db(&pcm, &out, d, range.clone())))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            eprintln!("opus {rate} Hz: lookahead {lookahead}, best delay {delay}, SNR {snr:.1} dB");
            assert!(
                delay.abs_diff(lookahead) <= rate as usize / 1000,
                "delay {delay}"
            );
            assert!(snr > 10.0, "SNR {snr:.1} dB at {rate} Hz");
        }
    }

    #[test]
    fn conceal_is_audible_then_fades() {
        let rate = 16000;
        let pcm = tones(rate, 40);
        let packets = encode_all(rate, &pcm);
        let mut dec = OpusDecoder::new(rate).unwrap();
        let mut frame = Vec::new();
        for p in &packets[..20] {
            dec.decode(p, &mut frame).unwrap();
        }
        let live = energy(&frame);
        let mut concealed = Vec::new();
        for _ in 0..10 {
            dec.conceal(320, &mut frame);
            assert_eq!(frame.len(), 320);
            concealed.push(energy(&frame));
        }
        eprintln!(
            "PLC energy relative to live: {:?}",
            concealed.iter().map(|e| e / live).collect::<Vec<_>>()
        );
        assert!(
            concealed[0] > live * 0.1,
            "first concealed frame is near silent"
        );
        assert!(
            concealed[9] < concealed[0] * 0.5,
            "concealment does not fade"
        );
        // A length libopus cannot conceal gives silence rather than an error.
        dec.conceal(7, &mut frame);
        assert_eq!(frame, [0; 7]);
    }

    #[test]
    fn fec_beats_concealment() {
        for rate in [8000, 16000, 48000] {
            let fs = rate as usize / 50;
            let pcm = stepped(rate, 60);
            let packets = encode_all(rate, &pcm);
            let (mut plc_err, mut fec_err) = (0.0, 0.0);
            for lost in [20, 31, 42, 53] {
                let mut reference = OpusDecoder::new(rate).unwrap();
                let mut plc = OpusDecoder::new(rate).unwrap();
                let mut fec = OpusDecoder::new(rate).unwrap();
                let (mut r, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
                for p in &packets[..lost] {
                    reference.decode(p, &mut r).unwrap();
                    plc.decode(p, &mut a).unwrap();
                    fec.decode(p, &mut b).unwrap();
                }
                reference.decode(&packets[lost], &mut r).unwrap();
                plc.conceal(fs, &mut a);
                fec.decode_fec(&packets[lost + 1], &mut b).unwrap();
                assert_eq!(b.len(), fs);
                let err = |x: &[i16]| {
                    x.iter()
                        .zip(&r)
                        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                        .sum::<f64>()
                };
                plc_err += err(&a);
                fec_err += err(&b);
            }
            eprintln!("opus {rate} Hz lost-frame error: PLC {plc_err:.3e}, FEC {fec_err:.3e}");
            assert!(
                fec_err * 2.0 < plc_err,
                "FEC {fec_err:.3e} vs PLC {plc_err:.3e} at {rate} Hz"
            );
        }
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let mut dec = OpusDecoder::new(16000).unwrap();
        let mut out = Vec::new();
        let bad: [&[u8]; 6] = [
            &[],
            &[0x03],             // code 3 without its frame-count byte
            &[0x03, 0x00],       // code 3 with zero frames
            &[0x03, 0x3F, 0x00], // 63 frames of 20 ms: beyond 120 ms
            &[0x01, 0xAA],       // two equal-size frames in an odd number of bytes
            &[0x02, 0xFB, 0x01], // code 2 whose first frame is longer than the packet
        ];
        for p in bad {
            assert!(dec.decode(p, &mut out).is_err(), "{p:02x?} decoded");
            assert!(dec.decode_fec(p, &mut out).is_err(), "{p:02x?} FEC-decoded");
        }
        // Random bytes must never panic, whatever libopus makes of them.
        let mut seed = 0x9E37_79B9u32;
        let mut payload = [0u8; 80];
        for len in (1..80).cycle().take(5000) {
            for b in &mut payload[..len] {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *b = (seed >> 24) as u8;
            }
            let _ = dec.decode(&payload[..len], &mut out);
            assert!(out.len() <= 16 * 120);
        }
    }

    #[test]
    fn fmtp_narrows_preferences() {
        let mut p = OpusParams::default();
        p.apply_fmtp(
            "minptime=10; useinbandfec=0;maxaveragebitrate=12000; maxplaybackrate=8000; x",
        );
        assert!(!p.inband_fec);
        assert_eq!(p.max_average_bitrate, Some(12000));
        assert_eq!(p.max_playback_rate, Some(8000));
        p.apply_fmtp("useinbandfec=1; maxaveragebitrate=abc");
        assert!(p.inband_fec);
        assert_eq!(p.max_average_bitrate, Some(12000));
        let mut enc = OpusEncoder::new(16000, &p).unwrap();
        let mut out = Vec::new();
        enc.encode(&tones(16000, 1), &mut out).unwrap();
        assert!(
            !out.is_empty() && out.len() < 100,
            "{} bytes at 12 kb/s",
            out.len()
        );
        p.complexity = 5;
        let mut enc = OpusEncoder::new(16000, &p).unwrap();
        enc.encode(&tones(16000, 1), &mut out).unwrap();
        assert!(!out.is_empty());
        assert!(OpusEncoder::new(44100, &p).is_err());
        assert!(OpusDecoder::new(11025).is_err());
    }
}
