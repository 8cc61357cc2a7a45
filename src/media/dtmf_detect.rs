//! In-band DTMF detection (Goertzel) for legs that carry tones in the audio itself, e.g.
//! a G.711 trunk without telephone-events. Sans-IO: feed 16-bit PCM at 8 kHz, get each
//! key press once.

/// Row (low group) and column (high group) frequencies, Hz.
const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Samples per analysis block at 8 kHz (the classic N = 205, ~25.6 ms, bins ~39 Hz wide).
const BLOCK: usize = 205;
/// A tone pair must hold for this many consecutive blocks (~51 ms) to count as a press.
const HOLD_BLOCKS: u32 = 2;
/// Twist limits (dB): the high tone may be at most 8 dB weaker or 4 dB stronger than the low.
const REVERSE_TWIST_DB: f64 = 8.0;
const NORMAL_TWIST_DB: f64 = 4.0;
/// The two tones together must carry this share of the block's energy (rejects speech).
const MIN_TONE_SHARE: f64 = 0.6;
/// Absolute floor on each tone's power (mean-square units of a full-scale-16 signal).
const MIN_TONE_POWER: f64 = 1.0e5;

/// The eight DTMF Goertzel powers of `x` in one pass: rows, then columns.
fn goertzel_bank(x: &[f64]) -> ([f64; 4], [f64; 4]) {
    let coeff = |f: f64| 2.0 * (2.0 * std::f64::consts::PI * f / 8000.0).cos();
    let k: [f64; 8] = [
        coeff(ROWS[0]),
        coeff(ROWS[1]),
        coeff(ROWS[2]),
        coeff(ROWS[3]),
        coeff(COLS[0]),
        coeff(COLS[1]),
        coeff(COLS[2]),
        coeff(COLS[3]),
    ];
    let mut s1 = [0.0f64; 8];
    let mut s2 = [0.0f64; 8];
    for &v in x {
        for i in 0..8 {
            let s = v + k[i] * s1[i] - s2[i];
            s2[i] = s1[i];
            s1[i] = s;
        }
    }
    let n = x.len() as f64;
    let p = |i: usize| (s1[i] * s1[i] + s2[i] * s2[i] - k[i] * s1[i] * s2[i]) / (n * n / 2.0);
    ([p(0), p(1), p(2), p(3)], [p(4), p(5), p(6), p(7)])
}

fn db(ratio: f64) -> f64 {
    10.0 * ratio.max(1e-12).log10()
}

/// Detects DTMF key presses in 8 kHz PCM.
#[derive(Debug, Default)]
pub struct DtmfDetector {
    block: Vec<f64>,
    /// The key seen in the previous blocks and for how many blocks in a row.
    candidate: Option<(char, u32)>,
    /// The key already reported and not yet released.
    reported: Option<char>,
}

impl DtmfDetector {
    /// A detector for 8 kHz audio.
    pub fn new() -> DtmfDetector {
        DtmfDetector {
            block: Vec::with_capacity(BLOCK),
            ..DtmfDetector::default()
        }
    }

    /// Feeds samples; returns the keys whose press was confirmed in them, in order.
    pub fn push(&mut self, samples: &[i16]) -> Vec<char> {
        let mut out = Vec::new();
        for &s in samples {
            self.block.push(f64::from(s));
            if self.block.len() == BLOCK {
                if let Some(k) = self.analyse() {
                    out.push(k);
                }
                self.block.clear();
            }
        }
        out
    }

    /// Classifies one block and runs the press/release state machine.
    fn analyse(&mut self) -> Option<char> {
        let key = classify(&self.block);
        match key {
            None => {
                self.candidate = None;
                self.reported = None;
                None
            }
            Some(k) => {
                let count = match self.candidate {
                    Some((c, n)) if c == k => n + 1,
                    _ => 1,
                };
                self.candidate = Some((k, count));
                if count >= HOLD_BLOCKS && self.reported != Some(k) {
                    self.reported = Some(k);
                    return Some(k);
                }
                None
            }
        }
    }
}

/// The key a block holds, if it is a clean DTMF tone pair.
fn classify(x: &[f64]) -> Option<char> {
    let energy = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    if energy <= 0.0 {
        return None;
    }
    // Two tones of at least MIN_TONE_POWER each cannot hide in a quieter block: most
    // blocks (silence, quiet speech) stop here without running the filters.
    if energy < MIN_TONE_POWER {
        return None;
    }
    let (rows, cols) = goertzel_bank(x);
    let best = |p: &[f64]| {
        p.iter().enumerate().fold(
            (0usize, 0.0f64),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
    };
    let (ri, rp) = best(&rows);
    let (ci, cp) = best(&cols);
    if rp < MIN_TONE_POWER || cp < MIN_TONE_POWER {
        return None;
    }
    // Each winner must stand well clear of the other tones of its group.
    let clear = |p: &[f64], i: usize, v: f64| {
        p.iter()
            .enumerate()
            .all(|(j, &o)| j == i || db(v / o.max(1e-12)) > 6.0)
    };
    if !clear(&rows, ri, rp) || !clear(&cols, ci, cp) {
        return None;
    }
    let twist = db(cp / rp);
    if !(-REVERSE_TWIST_DB..=NORMAL_TWIST_DB).contains(&twist) {
        return None;
    }
    // A sine of amplitude A has mean power A²/2 and Goertzel power A²/2 here as well.
    if (rp + cp) / energy < MIN_TONE_SHARE {
        return None;
    }
    Some(KEYS[ri][ci])
}

/// The two-tone signal of `key` at `rate` Hz for `ms` milliseconds (each tone at about
/// -9 dBm0), for legs that carry DTMF in the audio. An unknown key gives silence.
pub fn dtmf_tone(key: char, rate: u32, ms: u32) -> Vec<i16> {
    let n = (rate as usize * ms as usize) / 1000;
    let Some((r, c)) = (0..4)
        .flat_map(|r| (0..4).map(move |c| (r, c)))
        .find(|&(r, c)| KEYS[r][c] == key.to_ascii_uppercase())
    else {
        return vec![0; n];
    };
    let w = |f: f64, i: usize| (2.0 * std::f64::consts::PI * f * i as f64 / f64::from(rate)).sin();
    (0..n)
        .map(|i| (5800.0 * (w(ROWS[r], i) + w(COLS[c], i))) as i16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(key: char, ms: usize, amplitude: f64) -> Vec<i16> {
        let (r, c) = KEYS
            .iter()
            .enumerate()
            .find_map(|(r, row)| row.iter().position(|&k| k == key).map(|c| (r, c)))
            .expect("a DTMF key");
        (0..ms * 8)
            .map(|n| {
                let t = n as f64 / 8000.0;
                let v = amplitude
                    * ((2.0 * std::f64::consts::PI * ROWS[r] * t).sin()
                        + (2.0 * std::f64::consts::PI * COLS[c] * t).sin());
                v as i16
            })
            .collect()
    }

    fn silence(ms: usize) -> Vec<i16> {
        vec![0; ms * 8]
    }

    /// Feeds in 20 ms frames, as a leg would.
    fn detect(audio: &[i16]) -> String {
        let mut d = DtmfDetector::new();
        audio.chunks(160).flat_map(|f| d.push(f)).collect()
    }

    #[test]
    fn every_key_once() {
        let mut audio = Vec::new();
        for k in "123A456B789C*0#D".chars() {
            audio.extend(tone(k, 70, 6000.0));
            audio.extend(silence(60));
        }
        assert_eq!(detect(&audio), "123A456B789C*0#D");
    }

    #[test]
    fn same_key_twice_needs_a_gap() {
        let mut audio = tone('5', 200, 6000.0);
        assert_eq!(detect(&audio), "5", "a long press is one press");
        audio.extend(silence(60));
        audio.extend(tone('5', 70, 6000.0));
        assert_eq!(detect(&audio), "55");
    }

    #[test]
    fn too_short_quiet_or_non_dtmf_is_ignored() {
        assert_eq!(
            detect(&tone('1', 25, 6000.0)),
            "",
            "shorter than two blocks"
        );
        assert_eq!(detect(&tone('1', 100, 20.0)), "", "below the power floor");
        let sine: Vec<i16> = (0..8000)
            .map(|n| {
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 8000.0).sin()) as i16
            })
            .collect();
        assert_eq!(detect(&sine), "", "a single tone is not a key");
        let mut seed = 1u32;
        let noise: Vec<i16> = (0..16000)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((seed >> 16) as i16) / 4
            })
            .collect();
        assert_eq!(detect(&noise), "", "white noise");
    }

    #[test]
    fn survives_g711_round_trip_and_twist() {
        use crate::codec::g711::{linear_to_ulaw, ulaw_to_linear};
        let audio: Vec<i16> = tone('9', 80, 5000.0)
            .into_iter()
            .map(|s| ulaw_to_linear(linear_to_ulaw(s)))
            .collect();
        assert_eq!(detect(&audio), "9");
        // High tone 6 dB weaker than the low tone: within the reverse-twist limit.
        let twisted: Vec<i16> = (0..640)
            .map(|n| {
                let t = n as f64 / 8000.0;
                (6000.0 * (2.0 * std::f64::consts::PI * 852.0 * t).sin()
                    + 3000.0 * (2.0 * std::f64::consts::PI * 1477.0 * t).sin())
                    as i16
            })
            .collect();
        assert_eq!(detect(&twisted), "9");
        // 12 dB weaker: beyond the limit, so not a key.
        let too_twisted: Vec<i16> = (0..640)
            .map(|n| {
                let t = n as f64 / 8000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * 852.0 * t).sin()
                    + 2000.0 * (2.0 * std::f64::consts::PI * 1477.0 * t).sin())
                    as i16
            })
            .collect();
        assert_eq!(detect(&too_twisted), "");
    }

    #[test]
    fn generated_tones_are_detected() {
        let mut det = DtmfDetector::new();
        let mut found = String::new();
        for key in "159#*0D".chars() {
            let mut pcm = dtmf_tone(key, 8000, 100);
            pcm.extend(std::iter::repeat_n(0, 480));
            found.extend(det.push(&pcm));
        }
        assert_eq!(found, "159#*0D");
        assert!(dtmf_tone('x', 8000, 20).iter().all(|&s| s == 0));
    }
}
