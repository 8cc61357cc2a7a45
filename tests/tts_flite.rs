//! The embedded synthesizer (Flite, Debian `flite1-dev`) on the phrases the agent must handle:
//! plausible audio at 8 and 16 kHz with both voices, its real-time factor, and the round trip
//! through the embedded recognizer (PocketSphinx constrained to the expected intents), which
//! must map each synthesized phrase to its intent. Needs `flite1-dev`, `libpocketsphinx-dev`
//! and `pocketsphinx-en-us` (scripts/setup.sh). Prints the numbers.

use std::path::Path;
use std::time::Instant;

use leadscaller::agent::StageConfig;
use leadscaller::agent::StageRegistry;
use leadscaller::agent::stt_sphinx::{DEFAULT_MODEL_DIR, ExpectedPhrase, SphinxRecognizer};
use leadscaller::agent::tts_flite::{FliteTts, FliteVoice};

/// (intent, text) the agent's callee says.
const PHRASES: [(&str, &str); 3] = [
    ("stop", "please stop calling me"),
    ("yes", "yes"),
    ("callback", "can you call me back tomorrow"),
];

const VOICES: [FliteVoice; 2] = [FliteVoice::Kal, FliteVoice::Slt];
const RATES: [u32; 2] = [8000, 16000];

fn rms(pcm: &[i16]) -> f64 {
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64).sqrt()
}

/// Samples at or within 1 LSB of full scale.
fn clipped(pcm: &[i16]) -> usize {
    pcm.iter().filter(|&&s| s >= 32766 || s <= -32767).count()
}

#[test]
fn phrases_synthesize_to_plausible_audio_and_report_the_real_time_factor() {
    for voice in VOICES {
        let tts = FliteTts::new(voice).unwrap();
        for rate in RATES {
            let (mut audio_s, mut synth_s) = (0.0, 0.0);
            for (_, text) in PHRASES {
                let t = Instant::now();
                let pcm = tts.synthesize(text, rate).unwrap();
                let took = t.elapsed().as_secs_f64();
                let secs = pcm.len() as f64 / f64::from(rate);
                let (level, clip) = (rms(&pcm), clipped(&pcm));
                println!(
                    "{:3} {rate:5} Hz {text:32} {secs:.2} s  rms {level:6.0}  clipped {clip}  synth {:.1} ms",
                    voice.name(),
                    took * 1e3
                );
                assert!((0.3..=3.0).contains(&secs), "{text:?}: {secs} s");
                assert!(level > 500.0, "{text:?}: rms {level}");
                assert!(clip * 1000 <= pcm.len(), "{text:?}: {clip} clipped samples");
                audio_s += secs;
                synth_s += took;
            }
            println!(
                "{:3} {rate:5} Hz real-time factor {:.4} ({:.1} ms for {:.2} s of audio)",
                voice.name(),
                synth_s / audio_s,
                synth_s * 1e3,
                audio_s
            );
            assert!(synth_s / audio_s < 0.5, "too slow for a live call");
        }
    }
}

#[test]
fn synthesized_phrases_round_trip_through_the_recognizer() {
    let mut rec = SphinxRecognizer::new(Path::new(DEFAULT_MODEL_DIR))
        .expect("pocketsphinx model (apt-get install pocketsphinx-en-us)");
    let expected: Vec<ExpectedPhrase> = PHRASES
        .iter()
        .map(|(intent, text)| ExpectedPhrase {
            intent: (*intent).into(),
            phrases: vec![(*text).into()],
        })
        .collect();
    let mut failures = Vec::new();
    for voice in VOICES {
        let tts = FliteTts::new(voice).unwrap();
        for rate in RATES {
            for (intent, text) in PHRASES {
                let pcm = tts.synthesize(text, rate).unwrap();
                let r = rec.recognize(&pcm, rate, &expected).unwrap();
                let got = r.intent.as_deref().unwrap_or("no match");
                println!(
                    "{:3} {rate:5} Hz {text:32} -> {got:9} conf {:.3} {:?}",
                    voice.name(),
                    r.confidence,
                    r.text
                );
                if got != intent {
                    failures.push(format!("{} {rate} {text:?} -> {got}", voice.name()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn the_registry_builds_a_flite_stage_that_speaks() {
    let config: StageConfig = toml::from_str("name = 'flite'\nvoice = 'slt'").unwrap();
    let mut tts = StageRegistry::with_builtins()
        .build_tts(&config, &|_: &str| None)
        .unwrap();
    let mut session = tts.start(8000).unwrap();
    session
        .push_text("Hi, this is an automated assistant.")
        .unwrap();
    session.finish().unwrap();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut samples = Vec::new();
    let mut done = None;
    while let std::task::Poll::Ready(Some(chunk)) = session.poll_audio(&mut cx) {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.samples.len(), 160);
        samples.extend_from_slice(&chunk.samples);
        done = chunk.text_done.or(done);
    }
    assert_eq!(done, Some("Hi, this is an automated assistant.".len()));
    assert!(rms(&samples) > 500.0);
}

/// Sentences of an agent's reply, for timing synthesis with and without word timings.
const REPLY: [&str; 3] = [
    "Hello there, how are you today?",
    "I am calling about the quote you asked for on the third of March.",
    "It comes to 1,250 dollars, and we can start next week.",
];

#[test]
fn word_timings_cost_next_to_nothing() {
    const REPS: usize = 15;
    for voice in VOICES {
        let tts = FliteTts::new(voice).unwrap();
        // Each voice's native rate: no resampling, synthesis only.
        let rate = if voice == FliteVoice::Kal {
            8000
        } else {
            16000
        };
        let (mut plain, mut timed) = (f64::MAX, f64::MAX);
        let mut audio_s = 0.0;
        for _ in 0..REPS {
            // Interleaved, best of REPS: the machine is shared.
            let t = Instant::now();
            for text in REPLY {
                tts.synthesize(text, rate).unwrap();
            }
            plain = plain.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            audio_s = 0.0;
            for text in REPLY {
                let speech = tts.synthesize_words(text, rate).unwrap();
                assert!(speech.words.len() >= 6, "{text:?}: {:?}", speech.words);
                audio_s += speech.pcm.len() as f64 / f64::from(rate);
            }
            timed = timed.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{:3} {rate:5} Hz, 3 sentences ({audio_s:.2} s of audio): flite_text_to_wave {:.2} ms, \
             flite_synth_text + word walk {:.2} ms ({:+.1} %)",
            voice.name(),
            plain * 1e3,
            timed * 1e3,
            (timed / plain - 1.0) * 100.0
        );
        // A second synthesis or a slow walk would double it.
        assert!(timed < plain * 1.3, "{timed} s vs {plain} s");
    }
}
