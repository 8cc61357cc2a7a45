//! `leadscaller demo`, the README's first command, run as the real binary: the agent demo
//! (needs the Debian packages of scripts/setup.sh: flite, pocketsphinx) and `demo --echo`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_leadscaller"))
        .args(args)
        // The demo must not depend on the working directory (the flow is embedded).
        .current_dir(std::env::temp_dir())
        .env_remove("RUST_LOG")
        .output()
        .expect("the leadscaller binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

/// The text after `prefix` on the first line that has it, up to `end` (or the line's end).
fn after<'a>(stdout: &'a str, prefix: &str, end: &str) -> Option<&'a str> {
    stdout.lines().find_map(|l| {
        let rest = &l[l.find(prefix)? + prefix.len()..];
        Some(rest.find(end).map_or(rest, |i| &rest[..i]).trim())
    })
}

/// The samples of a WAV file and its channel count.
fn wav_samples(path: &Path) -> (u16, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let channels = r.spec().channels;
    let samples = r.samples::<i16>().map(Result::unwrap).collect();
    (channels, samples)
}

#[test]
fn demo_talks_with_the_agent_books_a_callback_and_leaves_a_recording() {
    let (out, stdout) = run(&["demo"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let diag = || format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    // The agent's first line, with the AI disclosure, printed live.
    assert!(
        stdout.lines().any(|l| l.contains(
            "] agent:  Hi, this is an automated assistant calling on behalf of Bright Home Solar."
        )),
        "no disclosure\n{}",
        diag()
    );
    // Each caller line as it is sent, and what the agent recognized of it.
    for (said, heard) in [
        ("Am I talking to a robot?", "am i talking to a robot"),
        ("Sure, go ahead.", "sure go ahead"),
        ("Can you call me back tomorrow?", "can you call me back"),
        ("Tomorrow morning works for me.", "tomorrow morning"),
    ] {
        assert!(
            stdout.contains(&format!("] caller: {said}\n")),
            "caller line {said:?} missing\n{}",
            diag()
        );
        assert!(
            stdout.contains(&format!("] agent heard: \"{heard}\"")),
            "recognized {heard:?} missing\n{}",
            diag()
        );
    }
    // One latency line per turn, with every step measured.
    let latency: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("] latency: turn "))
        .collect();
    assert_eq!(latency.len(), 4, "{}", diag());
    let total: u64 = after(latency[0], "first frame out ", " ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no first-frame-out in {:?}", latency[0]));
    assert!((1..5_000).contains(&total), "turn 1 took {total} ms");
    assert!(
        stdout.contains("outcome: booked, callback tomorrow morning\n"),
        "{}",
        diag()
    );
    for tool in ["schedule_callback", "set_outcome", "end_call"] {
        assert!(
            stdout.contains(&format!("] {tool} {{")),
            "tool {tool} missing\n{}",
            diag()
        );
    }
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("demo: ok — outcome booked"), "{}", diag());

    // The recording: encrypted at rest, decrypted by the demo, and by the printed command.
    let enc = PathBuf::from(
        after(&stdout, "recording: ", " (encrypted at rest)").expect("recording path"),
    );
    assert!(
        enc.extension().is_some_and(|e| e == "enc") && enc.is_file(),
        "{}",
        enc.display()
    );
    let wav = PathBuf::from(after(&stdout, "recording: decrypted to ", " (").expect("wav path"));
    let (channels, samples) = wav_samples(&wav);
    assert_eq!(channels, 2, "caller and agent");
    let seconds = samples.len() as f64 / 2.0 / 8000.0;
    assert!(
        (20.0..120.0).contains(&seconds),
        "recording of {seconds:.1} s"
    );
    let loud = |ch: usize| {
        samples
            .iter()
            .skip(ch)
            .step_by(2)
            .filter(|s| s.unsigned_abs() > 1000)
            .count()
    };
    assert!(
        loud(0) > 8000 && loud(1) > 8000,
        "both sides speak: caller {} agent {}",
        loud(0),
        loud(1)
    );
    let command =
        after(&stdout, "recording: by hand: leadscaller ", "\n").expect("decrypt command");
    let again = wav.with_file_name("again.wav");
    let mut args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args.last(), Some(&"call.wav"), "{command}");
    let again_str = again.to_str().expect("utf-8 temp path");
    *args.last_mut().expect("args") = again_str;
    let (dec, _) = run(&args);
    assert!(
        dec.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&dec.stderr)
    );
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&wav).unwrap());

    let kept = after(&stdout, "files kept in ", "\n").expect("the demo's directory");
    assert!(wav.starts_with(kept), "{kept}");
    std::fs::remove_dir_all(kept).unwrap();
}

#[test]
fn demo_echo_streams_a_tone_and_gets_it_back() {
    let (out, stdout) = run(&["demo", "--echo", "--packets", "50"]);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("route * -> echo"), "{stdout}");
    let echoed = after(&stdout, "demo: ok — ", " packets echoed").expect("summary line");
    let n: u32 = echoed
        .rsplit(' ')
        .next()
        .and_then(|f| f.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{echoed:?}"));
    assert!((45..=50).contains(&n), "{stdout}");
}
