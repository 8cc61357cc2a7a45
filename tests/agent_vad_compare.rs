//! The three registered VAD stages (`energy`, `earshot`, `webrtc`) compared through the `Vad` trait the
//! agent uses, on the shared telephone-band utterances (../shared/audio) padded with 1 s of
//! line noise before and 1.5 s after, at three noise levels: does each utterance give exactly
//! one `SpeechStart`/`SpeechEnd` pair, how late are the edges against an energy reference
//! taken on the clean file, and how many false starts are there. Prints the table
//! (`cargo test --test agent_vad_compare -- --nocapture`) that docs/agent.md quotes.

mod common;

use common::ulaw_samples;
use leadscaller::agent::stages::VadEvent;
use leadscaller::agent::{StageConfig, StageRegistry};
use std::path::Path;

const FRAME: usize = 160;
const PAD_BEFORE: usize = 50;
const PAD_AFTER: usize = 75;
/// The default `end_ms`/`silence_ms`: subtracted from the offset delay.
const END_MS: i64 = 400;

/// Deterministic white noise of the given RMS.
fn noise(samples: usize, rms: f64, seed: &mut u64) -> Vec<i16> {
    (0..samples)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((*seed >> 33) as f64 / f64::from(1u32 << 31)) * 2.0 - 1.0;
            (u * rms * 3f64.sqrt()) as i16
        })
        .collect()
}

fn frame_rms(f: &[i16]) -> f64 {
    (f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / f.len() as f64).sqrt()
}

#[derive(Default, Debug)]
struct Score {
    files: usize,
    /// Utterances found as exactly one start/end pair overlapping the speech.
    single: usize,
    /// Utterances with no start at all.
    missed: usize,
    /// Utterances split into several pairs.
    split: usize,
    /// Starts more than 300 ms away from the speech.
    false_starts: usize,
    onset_ms: Vec<i64>,
    offset_ms: Vec<i64>,
}

fn median(v: &[i64]) -> i64 {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn max(v: &[i64]) -> i64 {
    v.iter().copied().max().unwrap_or(0)
}

fn measure(name: &str, noise_rms: f64) -> Score {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    files.sort();
    let registry = StageRegistry::with_builtins();
    let mut seed = 11;
    let mut s = Score::default();
    for f in &files {
        let speech = ulaw_samples(&std::fs::read(f).unwrap());
        let n = speech.len() / FRAME * FRAME;
        let rms: Vec<f64> = speech[..n].chunks_exact(FRAME).map(frame_rms).collect();
        let peak = rms.iter().cloned().fold(0.0, f64::max);
        let active: Vec<usize> = (0..rms.len()).filter(|&i| rms[i] > peak / 31.6).collect();
        let (on, off) = (
            PAD_BEFORE + active[0],
            PAD_BEFORE + active[active.len() - 1] + 1,
        );
        let mut pcm = noise((PAD_BEFORE + PAD_AFTER) * FRAME + n, noise_rms, &mut seed);
        for (i, &x) in speech[..n].iter().enumerate() {
            let j = PAD_BEFORE * FRAME + i;
            pcm[j] = pcm[j].saturating_add(x);
        }
        let mut vad = registry
            .build_vad(&StageConfig::named(name), &|_| None)
            .unwrap();
        let mut edges = Vec::new();
        for (i, frame) in pcm.chunks_exact(FRAME).enumerate() {
            if let Some(e) = vad.push(frame, 8000).unwrap().event {
                // The edge is decided at the end of frame i.
                edges.push((i + 1, e));
            }
        }
        s.files += 1;
        let starts: Vec<usize> = edges
            .iter()
            .filter(|e| e.1 == VadEvent::SpeechStart)
            .map(|e| e.0)
            .collect();
        let ends: Vec<usize> = edges
            .iter()
            .filter(|e| e.1 == VadEvent::SpeechEnd)
            .map(|e| e.0)
            .collect();
        let near = |i: usize| i + 15 >= on && i <= off + 15;
        s.false_starts += starts.iter().filter(|&&i| !near(i)).count();
        let real: Vec<usize> = starts.iter().copied().filter(|&i| near(i)).collect();
        match real.len() {
            0 => s.missed += 1,
            1 => {
                s.single += 1;
                s.onset_ms.push((real[0] as i64 - on as i64) * 20);
                if let Some(&e) = ends.iter().find(|&&e| e > real[0]) {
                    s.offset_ms.push((e as i64 - off as i64) * 20 - END_MS);
                }
            }
            _ => s.split += 1,
        }
    }
    s
}

#[test]
fn the_vad_stages_on_the_shared_utterances() {
    let mut table = String::from(
        "vad      noise(dBFS) single/files missed split false  onset med/max  offset-400 med/max\n",
    );
    let mut scores = Vec::new();
    for (noise_rms, dbfs) in [(3.3, -80), (32.0, -60), (184.0, -45), (580.0, -35)] {
        for name in ["energy", "earshot", "webrtc"] {
            let s = measure(name, noise_rms);
            table.push_str(&format!(
                "{name:8} {dbfs:>11} {:>6}/{:<5} {:>6} {:>5} {:>5} {:>7}/{:<5} {:>10}/{:<5}\n",
                s.single,
                s.files,
                s.missed,
                s.split,
                s.false_starts,
                median(&s.onset_ms),
                max(&s.onset_ms),
                median(&s.offset_ms),
                max(&s.offset_ms),
            ));
            scores.push((name, dbfs, s));
        }
    }
    println!("{table}");
    // Both find every utterance once on a quiet or ordinary line (down to -45 dBFS of
    // noise); energy, the default, finds the edges sooner (earshot's 16 ms blocks, its 10 ms
    // resampling delay and its slow decay add about 20 ms at the start and 100 ms at the end)
    // and has no false start at -45 dBFS where earshot has a few.
    for (name, dbfs, s) in &scores {
        assert!(s.files >= 20, "{table}");
        if *name == "webrtc" {
            // libfvad adapts its noise model: it finds every utterance once at every noise
            // level, -35 dBFS included (where the other two fail), first of the three, but
            // takes the onset of the line noise itself for speech once per file.
            assert_eq!(s.single, s.files, "{name} at {dbfs} dBFS\n{table}");
            assert!(s.false_starts <= s.files, "{name} at {dbfs} dBFS\n{table}");
            assert!(median(&s.onset_ms) <= 100, "{table}");
            continue;
        }
        if *dbfs <= -60 || (*dbfs <= -45 && *name == "energy") {
            assert_eq!(s.single, s.files, "{name} at {dbfs} dBFS\n{table}");
            assert_eq!(s.false_starts, 0, "{name} at {dbfs} dBFS\n{table}");
            assert!(median(&s.onset_ms) <= 120, "{table}");
        }
    }
    let at = |name: &str, dbfs: i32| {
        let s = &scores
            .iter()
            .find(|s| s.0 == name && s.1 == dbfs)
            .unwrap()
            .2;
        (median(&s.onset_ms), median(&s.offset_ms))
    };
    assert!(at("energy", -60).0 <= at("earshot", -60).0, "{table}");
    assert!(at("energy", -60).1 <= at("earshot", -60).1, "{table}");
}
