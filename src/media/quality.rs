//! Call quality estimate by the ITU-T G.107 E-model (06/2015), with every parameter at its
//! G.107 default except delay, codec and packet loss:
//! `R = Ro − Is − Id(T) − Ie,eff` with `Ro − Is = 93.36`, which gives the familiar
//! R = 93.2 for G.711 with no delay and no loss, mapped to MOS by the G.107 Annex B curve.
//!
//! * Delay: the one-way mouth-to-ear delay `T = RTT/2 + jitter buffer delay` (send and
//!   receive pipelines are not counted). `Id = Idte + Idle + Idd` with G.107's default echo
//!   path (TELR 65 dB, WEPL 110 dB, `Ta = T`, `Tr = 2T`) and delay sensitivity (sT 1, mT 100).
//! * Loss: `Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl)` with BurstR = 1 (random
//!   loss), `Ppl` in percent.
//! * Codec values: G.711 `Ie = 0`, `Bpl = 4.3` without concealment and `25.1` with the
//!   G.711 Appendix I concealment (ITU-T G.113 Appendix I, Table I.3). Our G.711 decoder's
//!   repeat-and-fade concealment is cruder than Appendix I, so 25.1 is on the kind side.
//!   ITU-T lists no values for Opus; see [`EModelCodec::Opus`] for the ones used here.

use crate::codec::CodecKind;

/// `Ro − Is` at G.107 defaults: Ro = 94.77 (No = −61.18 dBm0p), Is = 1.41.
const RO_MINUS_IS: f64 = 94.77 - 1.41;
/// G.107 default basic signal-to-noise ratio, for the listener-echo term.
const RO: f64 = 94.77;
/// G.107 default talker echo loudness rating (dB).
const TELR: f64 = 65.0;
/// G.107 default weighted echo path loss (dB).
const WEPL: f64 = 110.0;
/// G.107 default noise floor (dBm0p), for the talker-echo term.
const NO: f64 = -61.18;

/// The codec as the E-model sees it: its equipment impairment and loss robustness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EModelCodec {
    /// G.711 with no concealment (silence for a lost frame): Ie 0, Bpl 4.3.
    G711,
    /// G.711 with loss concealment: Ie 0, Bpl 25.1.
    G711Plc,
    /// Opus (our wideband, FEC-on configuration): Ie 0, Bpl 25.1 — chosen, not measured.
    /// ITU-T G.113 has no Opus entry. On the narrowband R scale used here, wideband Opus at
    /// the bitrates we send is at least as good as G.711 (Ie 0; the scale cannot credit the
    /// extra band, G.107.1 would), and its model-based concealment is at least as robust as
    /// G.711 Appendix I, the most robust codec G.113 lists (Bpl 25.1). FEC recovery is not
    /// credited, so loss is judged conservatively.
    Opus,
}

impl EModelCodec {
    /// Equipment impairment factor `Ie` without loss.
    pub fn ie(self) -> f64 {
        0.0
    }

    /// Packet-loss robustness factor `Bpl`.
    pub fn bpl(self) -> f64 {
        match self {
            EModelCodec::G711 => 4.3,
            EModelCodec::G711Plc | EModelCodec::Opus => 25.1,
        }
    }
}

impl From<CodecKind> for EModelCodec {
    /// Our decoders always conceal, so G.711 maps to [`EModelCodec::G711Plc`].
    fn from(kind: CodecKind) -> Self {
        match kind {
            CodecKind::Opus => EModelCodec::Opus,
            _ => EModelCodec::G711Plc,
        }
    }
}

/// What a leg measured, as the E-model needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityInputs {
    /// Fraction of packets lost or discarded late (0.0 to 1.0).
    pub loss: f64,
    /// Interarrival jitter (RFC 3550) in ms; used only to estimate an unknown buffer delay.
    pub jitter_ms: f64,
    /// Round-trip time from RTCP in ms; `None` counts no network delay (an upper bound).
    pub rtt_ms: Option<f64>,
    /// Playout delay of the jitter buffer in ms; `None` estimates it as our `JitterBuffer`
    /// targets it: 3 × jitter + one 20 ms frame, within 20 to 200 ms.
    pub jitter_buffer_ms: Option<f64>,
    /// The codec the leg receives.
    pub codec: EModelCodec,
}

/// The transmission rating R (0 to 100) and the MOS (1 to 4.5) it predicts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityScore {
    /// E-model rating factor R.
    pub r: f64,
    /// Estimated conversational MOS (MOS-CQE).
    pub mos: f64,
}

/// The E-model estimate for one leg's measurements (see the module docs).
pub fn mos(inputs: &QualityInputs) -> QualityScore {
    let jitter = finite_or(inputs.jitter_ms, 0.0).max(0.0);
    let buffer = inputs
        .jitter_buffer_ms
        .map_or((3.0 * jitter + 20.0).clamp(20.0, 200.0), |b| {
            finite_or(b, 0.0)
        });
    let network = inputs.rtt_ms.map_or(0.0, |rtt| finite_or(rtt, 0.0) / 2.0);
    let delay = (network + buffer).max(0.0);
    let loss_pct = 100.0 * finite_or(inputs.loss, 0.0).clamp(0.0, 1.0);
    let r = RO_MINUS_IS - delay_impairment(delay) - effective_ie(inputs.codec, loss_pct);
    QualityScore {
        r,
        mos: r_to_mos(r),
    }
}

/// `Id` for a one-way delay of `t` ms (G.107 §7.4 with default parameters).
pub fn delay_impairment(t: f64) -> f64 {
    // Talker echo (T = Ta = t).
    let terv =
        TELR - 40.0 * ((1.0 + t / 10.0) / (1.0 + t / 150.0)).log10() + 6.0 * (-0.3 * t * t).exp();
    let roe = -1.5 * (NO - 2.0);
    let re = 80.0 + 2.5 * (terv - 14.0);
    let half = (roe - re) / 2.0;
    let idte = (half + (half * half + 100.0).sqrt() - 1.0) * (1.0 - (-t).exp());
    // Listener echo (Tr = 2t).
    let rle = 10.5 * (WEPL + 7.0) * (2.0 * t + 1.0).powf(-0.25);
    let half = (RO - rle) / 2.0;
    let idle = half + (half * half + 169.0).sqrt();
    // Pure delay (Ta = t, mT = 100 ms, sT = 1).
    let idd = if t > 100.0 {
        let x = (t / 100.0).log2();
        25.0 * ((1.0 + x.powi(6)).powf(1.0 / 6.0) - 3.0 * (1.0 + (x / 3.0).powi(6)).powf(1.0 / 6.0)
            + 2.0)
    } else {
        0.0
    };
    idte + idle + idd
}

/// `Ie,eff` for random loss of `loss_pct` percent (G.107 §7.5, BurstR = 1).
pub fn effective_ie(codec: EModelCodec, loss_pct: f64) -> f64 {
    let (ie, bpl) = (codec.ie(), codec.bpl());
    ie + (95.0 - ie) * loss_pct / (loss_pct + bpl)
}

/// G.107 Annex B: MOS from R.
pub fn r_to_mos(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

fn finite_or(x: f64, default: f64) -> f64 {
    if x.is_finite() { x } else { default }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(codec: EModelCodec, loss: f64, rtt_ms: f64, buffer_ms: f64) -> QualityInputs {
        QualityInputs {
            loss,
            jitter_ms: 0.0,
            rtt_ms: Some(rtt_ms),
            jitter_buffer_ms: Some(buffer_ms),
            codec,
        }
    }

    #[test]
    fn g711_without_impairments_is_the_reference_point() {
        let s = mos(&inputs(EModelCodec::G711, 0.0, 0.0, 0.0));
        assert!((s.r - 93.2).abs() < 0.05, "R {}", s.r);
        assert!((s.mos - 4.41).abs() < 0.005, "MOS {}", s.mos);
        // Id(0) is the listener-echo term alone (0.15); talker echo vanishes at T = 0.
        assert!((delay_impairment(0.0) - 0.15).abs() < 0.01);
        // Up to 100 ms only echo terms count, and they stay small with TELR 65 dB.
        assert!(delay_impairment(100.0) < 3.0);
    }

    #[test]
    fn loss_follows_the_codec_robustness() {
        // Ie,eff = 95 · 5 / (5 + Bpl): 51.08 without PLC, 15.78 with it.
        let plc = mos(&inputs(EModelCodec::G711Plc, 0.05, 0.0, 0.0));
        let none = mos(&inputs(EModelCodec::G711, 0.05, 0.0, 0.0));
        assert!((plc.r - (93.21 - 15.78)).abs() < 0.05, "R {}", plc.r);
        assert!((none.r - (93.21 - 51.08)).abs() < 0.05, "R {}", none.r);
        assert!((plc.mos - 3.92).abs() < 0.01, "MOS {}", plc.mos);
        assert!((none.mos - 2.17).abs() < 0.01, "MOS {}", none.mos);
        assert_eq!(EModelCodec::from(CodecKind::Pcmu), EModelCodec::G711Plc);
        let opus = mos(&inputs(EModelCodec::from(CodecKind::Opus), 0.05, 0.0, 0.0));
        assert_eq!(opus, plc);
    }

    #[test]
    fn long_delay_costs_about_twenty_points() {
        // 300 ms one way, by hand from G.107: Idd 14.76, Idte 4.83, Idle 1.09.
        let s = mos(&inputs(EModelCodec::G711, 0.0, 500.0, 50.0));
        assert!((delay_impairment(300.0) - 20.69).abs() < 0.02);
        assert!((s.r - 72.7).abs() < 0.1, "R {}", s.r);
        assert!((s.mos - 3.72).abs() < 0.02, "MOS {}", s.mos);
        // The same delay from RTT alone or from the buffer alone scores the same.
        assert_eq!(s, mos(&inputs(EModelCodec::G711, 0.0, 0.0, 300.0)));
        // And MOS falls monotonically with delay.
        let scores: Vec<f64> = (0..10)
            .map(|i| mos(&inputs(EModelCodec::G711, 0.0, 0.0, 60.0 * f64::from(i))).mos)
            .collect();
        assert!(scores.windows(2).all(|w| w[1] <= w[0]), "{scores:?}");
    }

    #[test]
    fn unknown_buffer_delay_is_estimated_from_jitter() {
        let mut i = inputs(EModelCodec::G711Plc, 0.0, 0.0, 0.0);
        i.jitter_buffer_ms = None;
        i.jitter_ms = 10.0;
        let estimated = mos(&i);
        assert_eq!(
            estimated,
            mos(&inputs(EModelCodec::G711Plc, 0.0, 0.0, 50.0))
        );
        i.rtt_ms = None;
        assert_eq!(estimated, mos(&i));
    }

    #[test]
    fn garbage_inputs_stay_in_range() {
        for (loss, rtt, buf) in [
            (f64::NAN, f64::INFINITY, -5.0),
            (2.0, 1e9, 0.0),
            (-1.0, -100.0, f64::NAN),
        ] {
            let s = mos(&inputs(EModelCodec::G711, loss, rtt, buf));
            assert!((1.0..=4.5).contains(&s.mos), "{s:?}");
            assert!(!s.r.is_nan());
        }
        assert_eq!(r_to_mos(-3.0), 1.0);
        assert_eq!(r_to_mos(120.0), 4.5);
    }
}
