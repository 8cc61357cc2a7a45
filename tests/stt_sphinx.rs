//! The embedded recognizer (PocketSphinx constrained to the flow's phrases) on the shared
//! telephone-band utterances (`../shared/audio`, 8 kHz µ-law, `phrases.tsv` gives each file's
//! intent and text). Targets from issue 4: at least 90 % of utterances mapped to their intent,
//! and no utterance of another intent ever taken as an opt-out. Needs Debian's
//! `libpocketsphinx-dev` and `pocketsphinx-en-us` (scripts/setup.sh). Prints the tables.

mod common;

use common::ulaw_samples;
use leadscaller::agent::stt_sphinx::{
    DEFAULT_MODEL_DIR, ExpectedPhrase, Recognition, SphinxRecognizer,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Intents whose recognition puts the number on the do-not-call list.
const OPT_OUT: [&str; 2] = ["stop", "remove"];

struct Utterance {
    file: String,
    intent: String,
    pcm: Vec<i16>,
}

fn shared_audio() -> (Vec<Utterance>, Vec<ExpectedPhrase>) {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio");
    let tsv = std::fs::read_to_string(dir.join("phrases.tsv")).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (shared/ must sit beside the checkout)",
            dir.display()
        )
    });
    let mut utterances = Vec::new();
    let mut expected: Vec<ExpectedPhrase> = Vec::new();
    for line in tsv.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let [file, intent, text] = f[..] else {
            panic!("bad phrases.tsv line {line:?}");
        };
        let pcm = ulaw_samples(&std::fs::read(dir.join(file)).unwrap());
        utterances.push(Utterance {
            file: file.into(),
            intent: intent.into(),
            pcm,
        });
        match expected.iter_mut().find(|e| e.intent == intent) {
            Some(e) if !e.phrases.iter().any(|p| p == text) => e.phrases.push(text.into()),
            Some(_) => {}
            None => expected.push(ExpectedPhrase {
                intent: intent.into(),
                phrases: vec![text.into()],
            }),
        }
    }
    assert!(utterances.len() >= 20, "found {}", utterances.len());
    (utterances, expected)
}

fn label(r: &Recognition) -> &str {
    r.intent.as_deref().unwrap_or("no match")
}

/// Prints true intent x recognised intent counts.
fn print_table(title: &str, rows: &[(String, String)]) {
    let mut table: BTreeMap<&str, BTreeMap<&str, u32>> = BTreeMap::new();
    for (truth, got) in rows {
        *table.entry(truth).or_default().entry(got).or_default() += 1;
    }
    println!("{title}");
    for (truth, got) in &table {
        let cells: Vec<String> = got.iter().map(|(g, n)| format!("{g}:{n}")).collect();
        println!("  {truth:14} -> {}", cells.join("  "));
    }
}

#[test]
fn shared_utterances_map_to_their_intent_and_never_falsely_to_opt_out() {
    let (utterances, expected) = shared_audio();
    let mut rec = SphinxRecognizer::new(Path::new(DEFAULT_MODEL_DIR))
        .expect("pocketsphinx model (apt-get install pocketsphinx-en-us)");

    // A flow state that accepts every intent in phrases.tsv.
    let mut rows = Vec::new();
    let mut false_opt_out = Vec::new();
    for u in &utterances {
        let r = rec.recognize(&u.pcm, 8000, &expected).unwrap();
        println!(
            "{:28} {:14} -> {:14} conf {:.3} {:?}",
            u.file,
            u.intent,
            label(&r),
            r.confidence,
            r.text
        );
        if OPT_OUT.contains(&label(&r)) && label(&r) != u.intent {
            false_opt_out.push(u.file.clone());
        }
        rows.push((u.intent.clone(), label(&r).to_string()));
    }
    print_table("all intents expected: true -> recognised", &rows);
    let correct = rows.iter().filter(|(t, g)| t == g).count();
    println!("mapped to their intent: {correct}/{}", rows.len());

    // The same utterances when the flow state does not expect their intent: out-of-grammar
    // speech, which must come back as no match or at least never as an opt-out.
    let mut oog_rows = Vec::new();
    for u in &utterances {
        let others: Vec<ExpectedPhrase> = expected
            .iter()
            .filter(|e| e.intent != u.intent)
            .cloned()
            .collect();
        let r = rec.recognize(&u.pcm, 8000, &others).unwrap();
        if OPT_OUT.contains(&label(&r)) {
            false_opt_out.push(format!("{} (own intent not expected)", u.file));
        }
        oog_rows.push((u.intent.clone(), label(&r).to_string()));
    }
    print_table("own intent left out: true -> recognised", &oog_rows);
    let rejected = oog_rows.iter().filter(|(_, g)| g == "no match").count();
    println!("out-of-grammar rejected: {rejected}/{}", oog_rows.len());

    // The hardest case for opt-out safety: a state expecting only the opt-out phrases.
    let opt_out_only: Vec<ExpectedPhrase> = expected
        .iter()
        .filter(|e| OPT_OUT.contains(&e.intent.as_str()))
        .cloned()
        .collect();
    for u in utterances
        .iter()
        .filter(|u| !OPT_OUT.contains(&u.intent.as_str()))
    {
        let r = rec.recognize(&u.pcm, 8000, &opt_out_only).unwrap();
        if r.intent.is_some() {
            false_opt_out.push(format!("{} (only opt-outs expected)", u.file));
        }
    }

    assert!(
        correct * 10 >= rows.len() * 9,
        "only {correct}/{} mapped to their intent",
        rows.len()
    );
    assert!(
        false_opt_out.is_empty(),
        "taken as opt-out: {false_opt_out:?}"
    );
}

#[test]
fn recognizer_rejects_silence_and_unknown_words() {
    let (_, expected) = shared_audio();
    let mut rec = SphinxRecognizer::new(Path::new(DEFAULT_MODEL_DIR)).unwrap();
    let r = rec.recognize(&vec![0i16; 8000], 8000, &expected).unwrap();
    assert_eq!(r.intent, None, "{r:?}");
    let unknown = [ExpectedPhrase {
        intent: "x".into(),
        phrases: vec!["qzxv wpfk".into()],
    }];
    assert!(rec.recognize(&[0; 1600], 8000, &unknown).is_err());
}
