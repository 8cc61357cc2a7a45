//! The embedded VAD (earshot, fed 20 ms frames at 8 kHz as a G.711 leg delivers them) on the
//! shared telephone-band utterances padded with 1 s of line noise on each side: speech onset
//! and offset against an energy reference, and false triggers on silence and noise.

mod common;

use common::ulaw_samples;
use leadscaller::agent::vad_earshot::EarshotVad;
use std::path::Path;

const FRAME: usize = 160;
const THRESHOLD: f32 = 0.5;
const PAD_FRAMES: usize = 50;

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

fn scores(pcm: &[i16]) -> Vec<f32> {
    let mut vad = EarshotVad::new();
    pcm.chunks_exact(FRAME)
        .map(|f| vad.push(f, 8000).unwrap())
        .collect()
}

#[test]
fn earshot_finds_speech_in_shared_utterances_and_ignores_line_noise() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    files.sort();
    assert!(files.len() >= 20);
    let mut seed = 7;
    let (mut onsets, mut offsets, mut missed, mut false_frames, mut pad_frames) =
        (Vec::new(), Vec::new(), Vec::new(), 0, 0);
    for f in &files {
        let speech = ulaw_samples(&std::fs::read(f).unwrap());
        // Energy reference: first and last frame within 30 dB of the loudest frame.
        let rms: Vec<f64> = speech.chunks_exact(FRAME).map(frame_rms).collect();
        let peak = rms.iter().cloned().fold(0.0, f64::max);
        let active: Vec<usize> = (0..rms.len()).filter(|&i| rms[i] > peak / 31.6).collect();
        let (ref_on, ref_off) = (
            PAD_FRAMES + active[0],
            PAD_FRAMES + active[active.len() - 1],
        );
        // -60 dBFS line noise around and under the utterance.
        let total = (2 * PAD_FRAMES) * FRAME + speech.len() / FRAME * FRAME;
        let mut pcm = noise(total, 32.0, &mut seed);
        for (i, &s) in speech[..speech.len() / FRAME * FRAME].iter().enumerate() {
            let j = PAD_FRAMES * FRAME + i;
            pcm[j] = pcm[j].saturating_add(s);
        }
        let p = scores(&pcm);
        let voiced: Vec<usize> = (0..p.len()).filter(|&i| p[i] >= THRESHOLD).collect();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let Some((&on, &off)) = voiced.first().zip(voiced.last()) else {
            missed.push(name);
            continue;
        };
        // Frames scored as speech more than 300 ms away from the reference speech.
        for &i in &voiced {
            if i + 15 < ref_on || i > ref_off + 15 {
                false_frames += 1;
            }
        }
        pad_frames += 2 * PAD_FRAMES;
        let (don, doff) = (
            (on as i64 - ref_on as i64) * 20,
            (off as i64 - ref_off as i64) * 20,
        );
        println!("{name:28} onset {don:+5} ms  offset {doff:+5} ms");
        onsets.push(don);
        offsets.push(doff);
    }
    onsets.sort();
    offsets.sort();
    let pct = |v: &[i64], q: usize| v[(v.len() - 1) * q / 100];
    println!(
        "onset error ms: min {} median {} max {} | offset error ms: min {} median {} max {}",
        onsets[0],
        pct(&onsets, 50),
        onsets[onsets.len() - 1],
        offsets[0],
        pct(&offsets, 50),
        offsets[offsets.len() - 1]
    );
    println!("false speech frames in padding: {false_frames}/{pad_frames}; missed: {missed:?}");

    // Pure line conditions: digital silence and white noise at -60, -40 and -30 dBFS, 10 s each.
    let mut noise_false = Vec::new();
    for rms in [0.0, 32.0, 328.0, 1036.0] {
        let p = scores(&noise(80_000, rms, &mut seed));
        let n = p.iter().filter(|&&s| s >= THRESHOLD).count();
        println!("noise rms {rms:6}: {n}/{} frames scored speech", p.len());
        noise_false.push(n);
    }

    assert!(missed.is_empty(), "speech not detected in {missed:?}");
    assert!(
        onsets[0] >= -100 && onsets[onsets.len() - 1] <= 200,
        "onset errors {onsets:?}"
    );
    assert!(false_frames == 0, "{false_frames} false speech frames");
    // Silence and hiss up to -40 dBFS never trigger; loud -30 dBFS white noise does (measured
    // 495/500 frames), so it is printed, not asserted: a line that noisy needs a higher threshold.
    assert!(noise_false[..3].iter().all(|&n| n == 0), "{noise_false:?}");
}
