//! Talk-off: the in-band DTMF detector must not hear keys in speech. Runs it over every
//! telephone-band utterance in `../shared/audio` (8 kHz µ-law WAV), as a caller's audio
//! would arrive, and over the same audio with DTMF mixed in, which it must find.

mod common;

use common::ulaw_samples;
use leadscaller::media::dtmf_detect::DtmfDetector;
use std::path::Path;

fn detect(samples: &[i16]) -> String {
    let mut d = DtmfDetector::new();
    samples.chunks(160).flat_map(|f| d.push(f)).collect()
}

#[test]
fn speech_in_shared_audio_never_reads_as_dtmf_and_mixed_keys_are_found() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (shared/ must sit beside the checkout)",
                dir.display()
            )
        })
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    assert!(
        files.len() >= 20,
        "expected the shared utterances, found {}",
        files.len()
    );
    let mut talk_off = Vec::new();
    for f in &files {
        let speech = ulaw_samples(&std::fs::read(f).unwrap());
        let heard = detect(&speech);
        if !heard.is_empty() {
            talk_off.push(format!("{}: {heard}", f.display()));
        }
        // The same speech followed by a 70 ms press of '#' at a typical level.
        let mut with_key = speech.clone();
        with_key.extend((0..560).map(|n| {
            let t = f64::from(n) / 8000.0;
            let v = 5000.0
                * ((2.0 * std::f64::consts::PI * 941.0 * t).sin()
                    + (2.0 * std::f64::consts::PI * 1477.0 * t).sin());
            v as i16
        }));
        with_key.extend(std::iter::repeat_n(0, 800));
        assert!(
            detect(&with_key).ends_with('#'),
            "{}: key after speech not found",
            f.display()
        );
    }
    assert!(
        talk_off.is_empty(),
        "speech detected as DTMF:\n{}",
        talk_off.join("\n")
    );
}
