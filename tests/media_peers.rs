//! Media through `leadscaller serve`, judged by baresip (a real SIP UA we did not write):
//! the play app's prompt must reach baresip sample-exact (cross-correlation against the
//! source), the record app must keep what baresip sent (left channel) within its limits,
//! and Opus must be negotiated and carry a tone both ways.
//!
//! baresip plays a WAV as its microphone (`aufile`) and its `sndfile` filter dumps what it
//! encodes (`*-enc.wav`) and what it receives and decodes (`*-dec.wav`). Needs the Debian
//! package `baresip` (1.0, modules in /usr/lib/baresip/modules), which `scripts/setup.sh`
//! installs. Each test has its own port block, server and temporary directory; every child
//! process is killed by PID when its guard drops.

mod common;

use common::{
    LOOPBACK, PortBlock, Proc, Route, Server, ServerConfig, read_lossy, read_recording_wav,
    read_wav, require_tool, rms, tail, tone, tone_energy_share, wav_bytes,
};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// The G.711 leg rate.
const RATE: u32 = 8000;

// ---------------------------------------------------------------------------------------
// A baresip run.

/// One baresip call: which config templates (under `tests/peers/baresip/`), what it sends
/// and whom it dials.
struct Baresip<'a> {
    /// Config template with `{sip_listen}`, `{input_wav}`, `{rtp_ports}`, `{snd_path}`.
    config: &'a str,
    /// Accounts file, copied as is.
    accounts: &'a str,
    /// The WAV file baresip sends (aufile). baresip hangs up when the file ends ("audio
    /// error (0,end of file)"), so it must outlast the call.
    input_wav: Vec<u8>,
    /// The user part dialled at the server.
    user: &'a str,
    /// baresip quits after this long (`-t`), whether or not the call is still up.
    quit_after_s: u32,
}

/// What a baresip run left behind.
struct BaresipRun {
    status: ExitStatus,
    /// stdout and stderr.
    output: String,
    /// Where sndfile wrote its dumps.
    rec_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Baresip<'_> {
    fn run(&self, server: &Server) -> BaresipRun {
        require_tool("baresip", "baresip");
        let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/baresip");
        let template = read_lossy(&peers.join(self.config));
        require_modules(&template, self.config);

        let dir = tempfile::Builder::new()
            .prefix("leadscaller-baresip-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let rec_dir = d.join("rec");
        fs::create_dir(&rec_dir).expect("rec dir");
        let input = d.join("input.wav");
        fs::write(&input, &self.input_wav).expect("write baresip input");
        let p = server.ports;
        let (rtp_min, rtp_max) = p.baresip_rtp();
        let config = template
            .replace("{sip_listen}", &format!("{LOOPBACK}:{}", p.baresip_sip()))
            .replace("{input_wav}", &input.display().to_string())
            .replace("{rtp_ports}", &format!("{rtp_min}-{rtp_max}"))
            .replace("{snd_path}", &rec_dir.display().to_string());
        assert!(
            !config
                .lines()
                .any(|l| !l.starts_with('#') && l.contains('{')),
            "unfilled placeholder in baresip config {}:\n{config}",
            self.config
        );
        fs::write(d.join("config"), config).expect("write config");
        fs::copy(peers.join(self.accounts), d.join("accounts")).expect("accounts");
        fs::write(d.join("contacts"), "").expect("contacts");

        let mut cmd = Command::new("baresip");
        cmd.arg("-f")
            .arg(d)
            .arg("-e")
            .arg(format!("/dial sip:{}@{}", self.user, server.sip_target()))
            .args(["-t", &self.quit_after_s.to_string()])
            .current_dir(d);
        let mut ua = Proc::spawn("baresip", cmd, d);
        let status = ua.wait(Duration::from_secs(u64::from(self.quit_after_s) + 15));
        let output = ua.stdout() + &ua.stderr();
        let run = BaresipRun {
            status,
            output,
            rec_dir,
            _dir: dir,
        };
        assert!(run.status.success(), "{}", run.diag(server));
        assert!(
            run.output.contains("Call established"),
            "baresip never got the call up\n{}",
            run.diag(server)
        );
        run
    }
}

impl BaresipRun {
    /// baresip's output and the server log, for failure messages.
    fn diag(&self, server: &Server) -> String {
        // The menu echoes the dial command one key at a time; drop that noise.
        let out: String = self
            .output
            .lines()
            .map(|l| l.rsplit('\r').next().unwrap_or(l))
            .filter(|l| !l.starts_with("[0:"))
            .map(|l| format!("{l}\n"))
            .collect();
        format!(
            "baresip exit {}; output:\n{}\n--- server log ---\n{}",
            self.status,
            tail(&out, 5000),
            tail(&server.log(), 4000)
        )
    }

    /// The sndfile dump ending in `suffix` (`-dec.wav` or `-enc.wav`).
    fn dump(&self, suffix: &str, server: &Server) -> PathBuf {
        fs::read_dir(&self.rec_dir)
            .expect("rec dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("sndfile wrote no *{suffix}\n{}", self.diag(server)))
    }

    /// True when baresip reports that the other side ended the call (a BYE closes the
    /// session with ECONNRESET in baresip 1.0).
    fn closed_by_peer(&self) -> bool {
        self.output
            .contains("session closed: Connection reset by peer")
    }
}

/// Fails with the module's name when a `module` line of the template names a missing file.
fn require_modules(template: &str, name: &str) {
    let path = template
        .lines()
        .find_map(|l| l.strip_prefix("module_path"))
        .map(str::trim)
        .unwrap_or("/usr/lib/baresip/modules");
    for line in template.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(module)) = (words.next(), words.next()) else {
            continue;
        };
        if key.starts_with("module") && key != "module_path" {
            assert!(
                Path::new(path).join(module).is_file(),
                "baresip module {module} (used by tests/peers/baresip/{name}) missing in {path}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Signals and measurements.

/// Frequencies of the tone steps: spread over the telephone band and shuffled, so that the
/// signal correlates with itself only at offset 0.
const STEP_HZ: [f64; 20] = [
    440.0, 1870.0, 620.0, 2750.0, 1130.0, 330.0, 2290.0, 910.0, 3100.0, 1560.0, 520.0, 2480.0,
    770.0, 1990.0, 380.0, 2950.0, 1340.0, 690.0, 2120.0, 1010.0,
];

/// `seconds` of tone steps at `rate`: 150 ms per step, each at its own frequency and level,
/// with 5 ms raised-cosine ramps (no clicks to smear by the codec).
fn tone_steps(rate: u32, seconds: f64) -> Vec<i16> {
    let n = (f64::from(rate) * seconds) as usize;
    let step = (f64::from(rate) * 0.150) as usize;
    let ramp = (f64::from(rate) * 0.005) as usize;
    (0..n)
        .map(|i| {
            let k = i / step;
            let j = i % step;
            let freq = STEP_HZ[k % STEP_HZ.len()];
            let level = [9000.0, 6000.0, 7500.0][k % 3];
            let edge = j.min(step - 1 - j);
            let gain = if edge < ramp {
                0.5 - 0.5 * (std::f64::consts::PI * edge as f64 / ramp as f64).cos()
            } else {
                1.0
            };
            let t = i as f64 / f64::from(rate);
            (level * gain * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// A 16-bit PCM WAV with interleaved `channels`.
fn wav_interleaved(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let mut v = wav_bytes(rate, samples);
    let ch = u32::from(channels);
    v[22..24].copy_from_slice(&channels.to_le_bytes());
    v[28..32].copy_from_slice(&(rate * 2 * ch).to_le_bytes());
    v[32..34].copy_from_slice(&(2 * channels).to_le_bytes());
    v
}

/// `seconds` of deterministic noise (xorshift, lightly low-passed) at `rate`, its level
/// stepping every 150 ms. Unlike a tone, any 20 ms of it matches itself only at offset 0,
/// so every frame can be located on its own.
fn noise_steps(rate: u32, seconds: f64) -> Vec<i16> {
    let n = (f64::from(rate) * seconds) as usize;
    let step = (f64::from(rate) * 0.150) as usize;
    let mut x: u32 = 0x9e37_79b9;
    let mut prev = 0.0;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let white = f64::from(x) / f64::from(u32::MAX) * 2.0 - 1.0;
            let y = 0.5 * (white + prev);
            prev = white;
            let level = [12_000.0, 7000.0, 9500.0, 5000.0][(i / step) % 4];
            (level * y) as i16
        })
        .collect()
}

/// Channel `c` of interleaved samples.
fn channel(samples: &[i16], channels: u16, c: usize) -> Vec<i16> {
    samples
        .iter()
        .skip(c)
        .step_by(usize::from(channels))
        .copied()
        .collect()
}

/// Normalized cross-correlation of two equally long slices (0 when either is silent).
fn ncc(a: &[i16], b: &[i16]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0i64, 0i64, 0i64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (i64::from(x), i64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0 || bb == 0 {
        return 0.0;
    }
    ab as f64 / ((aa as f64).sqrt() * (bb as f64).sqrt())
}

/// Where `reference` sits in `received`.
#[derive(Debug, Clone, Copy)]
struct Alignment {
    /// `received[i + lag] ~ reference[i]`, in samples.
    lag: isize,
    /// Normalized correlation over the whole overlap at `lag`.
    corr: f64,
    /// Start and length of the overlap, in reference samples.
    start: usize,
    len: usize,
}

/// Finds the lag in `min_lag..=max_lag` at which a probe (`reference[probe]`) correlates
/// best with `received` (brute force), then correlates the whole overlap at that lag.
fn align(
    reference: &[i16],
    received: &[i16],
    probe: std::ops::Range<usize>,
    min_lag: isize,
    max_lag: isize,
) -> Alignment {
    let p = &reference[probe.clone()];
    let mut best = (f64::MIN, 0isize);
    for lag in min_lag..=max_lag {
        let Some(start) = probe.start.checked_add_signed(lag) else {
            continue;
        };
        let Some(window) = received.get(start..start + p.len()) else {
            break;
        };
        let c = ncc(p, window);
        if c > best.0 {
            best = (c, lag);
        }
    }
    let lag = best.1;
    let start = if lag < 0 { lag.unsigned_abs() } else { 0 };
    let end = reference
        .len()
        .min((received.len() as isize - lag).max(0) as usize);
    let len = end.saturating_sub(start);
    let at = |i: usize| (i as isize + lag) as usize;
    let corr = if len == 0 {
        0.0
    } else {
        ncc(&reference[start..end], &received[at(start)..at(end)])
    };
    Alignment {
        lag,
        corr,
        start,
        len,
    }
}

/// Where each `frame`-sample frame of `reference` was found in `received`: the lag, among
/// `base_lag + k * frame` for `|k| <= max_shift`, with the best correlation. A jitter
/// buffer only ever inserts or drops whole frames between packets, and the sender's
/// packets start at frame boundaries of its file, so each frame is found whole.
fn track_frames(
    reference: &[i16],
    received: &[i16],
    frame: usize,
    base_lag: isize,
    max_shift: isize,
) -> Vec<(isize, f64)> {
    reference
        .chunks_exact(frame)
        .enumerate()
        .map(|(i, r)| {
            let mut best = (base_lag, f64::MIN);
            for k in -max_shift..=max_shift {
                let lag = base_lag + k * frame as isize;
                let Some(at) = (i * frame).checked_add_signed(lag) else {
                    continue;
                };
                if let Some(w) = received.get(at..at + frame) {
                    let c = ncc(r, w);
                    if c > best.1 {
                        best = (lag, c);
                    }
                }
            }
            best
        })
        .collect()
}

/// The points where the tracked lag changes: (frame index, old lag, new lag), among
/// frames that matched (correlation > `min_corr`).
fn slips(track: &[(isize, f64)], min_corr: f64) -> Vec<(usize, isize, isize)> {
    let mut out = Vec::new();
    let mut last: Option<isize> = None;
    for (i, &(lag, c)) in track.iter().enumerate() {
        if c <= min_corr {
            continue;
        }
        if let Some(l) = last
            && l != lag
        {
            out.push((i, l, lag));
        }
        last = Some(lag);
    }
    out
}

/// Correlation of successive `seg`-sample pieces of the overlap, for failure messages:
/// shows where a slip or a gap happened, and for a piece that does not match at the
/// overall lag, the lag (within 250 ms) at which it matches best.
fn segment_report(reference: &[i16], received: &[i16], a: &Alignment, seg: usize) -> String {
    let mut s = String::new();
    let mut i = a.start;
    while i + seg <= a.start + a.len {
        let j = (i as isize + a.lag) as usize;
        let c = ncc(&reference[i..i + seg], &received[j..j + seg]);
        let _ = write!(s, "{:.2}s:{c:.3}", i as f64 / f64::from(RATE));
        if c < 0.9 {
            let r = RATE as isize / 4;
            let own = align(reference, received, i..i + seg, a.lag - r, a.lag + r);
            let _ = write!(
                s,
                " (best {:.3} at delay {:.1} ms)",
                ncc(
                    &reference[i..i + seg],
                    received
                        .get((i as isize + own.lag).max(0) as usize..)
                        .and_then(|w| w.get(..seg))
                        .unwrap_or(&[])
                ),
                own.lag as f64 * 1000.0 / f64::from(RATE)
            );
        }
        s.push(' ');
        i += seg;
    }
    s
}

/// Seconds since midnight (UTC) of a server log line starting with an RFC 3339 timestamp.
fn log_time(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?;
    let time = t.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The first log line containing every one of `needles`.
fn log_line<'a>(log: &'a str, needles: &[&str]) -> Option<&'a str> {
    log.lines().find(|l| needles.iter().all(|n| l.contains(n)))
}

/// The value of `key=` in a log line (quotes removed).
fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let i = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[i..];
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next()
    } else {
        rest.split_whitespace().next()
    }
}

/// Seconds between two log lines (each found by its needles), or a panic naming the
/// missing one.
fn log_interval(log: &str, from: &[&str], to: &[&str]) -> f64 {
    let t = |needles: &[&str]| {
        log_line(log, needles)
            .and_then(log_time)
            .unwrap_or_else(|| panic!("no timed server log line with {needles:?}:\n{log}"))
    };
    let d = t(to) - t(from);
    if d < 0.0 { d + 86_400.0 } else { d }
}

// ---------------------------------------------------------------------------------------
// 1: the play app's prompt reaches baresip intact, then the server hangs up.

const PROMPT_S: f64 = 3.0;

#[test]
fn baresip_hears_the_played_prompt() {
    let prompt = tone_steps(RATE, PROMPT_S);
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.files
        .push(("prompts/steps.wav".into(), wav_bytes(RATE, &prompt)));
    cfg.routes = vec![Route::play("prompt", "prompts/steps.wav"), Route::echo("*")];
    let mut server = Server::start(&cfg);
    let run = Baresip {
        config: "config",
        accounts: "accounts",
        input_wav: wav_bytes(RATE, &vec![0; RATE as usize * 8]),
        user: "prompt",
        quit_after_s: 6,
    }
    .run(&server);
    let log = server.log_when("call ended", 1, Duration::from_secs(3));
    let diag = || run.diag(&server);

    // The server ended the call once the prompt was out, about 3 s after the INVITE.
    let ended = log_line(&log, &["call ended"])
        .unwrap_or_else(|| panic!("the server never logged the call's end\n{}", diag()));
    assert!(
        ended.contains("reason=LocalBye") && ended.contains("app=\"prompt played\""),
        "expected the server to hang up after the prompt (reason=LocalBye, app=\"prompt played\"), got: {ended}\n{}",
        diag()
    );
    assert!(
        run.closed_by_peer(),
        "baresip does not report the call closed by the server (BYE)\n{}",
        diag()
    );
    let played_after = log_interval(&log, &["incoming call"], &["app finished", "prompt played"]);
    assert!(
        (PROMPT_S - 0.1..=PROMPT_S + 0.5).contains(&played_after),
        "the server reported the {PROMPT_S} s prompt played {played_after:.3} s after the INVITE arrived (expected {:.1}..={:.1} s)\n{}",
        PROMPT_S - 0.1,
        PROMPT_S + 0.5,
        diag()
    );

    // What baresip decoded is the prompt, sample for sample, after a short delay.
    let dec = run.dump("-dec.wav", &server);
    let (rate, channels, heard) = read_wav(&dec);
    assert_eq!(
        (rate, channels),
        (RATE, 1),
        "{}: unexpected format\n{}",
        dec.display(),
        diag()
    );
    let r = RATE as usize;
    let a = align(&prompt, &heard, r / 2..r, -(r as isize) / 2, 2 * r as isize);
    let report = || {
        format!(
            "delay {} samples ({:.1} ms), correlation {:.4} over {:.2} s of the {PROMPT_S} s prompt ({:.2} s heard in all); per 250 ms: {}\n{}",
            a.lag,
            a.lag as f64 * 1000.0 / f64::from(RATE),
            a.corr,
            a.len as f64 / f64::from(RATE),
            heard.len() as f64 / f64::from(RATE),
            segment_report(&prompt, &heard, &a, r / 4),
            diag()
        )
    };
    assert!(
        a.corr > 0.95,
        "the audio baresip heard does not match the prompt (G.711 should correlate > 0.95): {}",
        report()
    );
    assert!(
        (0..r as isize).contains(&a.lag),
        "the prompt should start within 1 s of the first audio baresip decoded (a negative delay means its start was never heard): {}",
        report()
    );
    // baresip keeps the last few packets in its jitter buffer when the BYE comes, so the
    // tail may be missing; anything beyond that is lost audio.
    assert!(
        a.start == 0 && a.len as f64 >= 0.9 * prompt.len() as f64,
        "baresip heard only part of the prompt: {}",
        report()
    );
    assert_eq!(
        run.output.matches("Call established").count(),
        1,
        "{}",
        diag()
    );
    let alive = server.is_running();
    assert!(alive, "server died\n{}", run.diag(&server));
    eprintln!(
        "play: delay {:.1} ms, correlation {:.4} over {:.2} s; prompt played {played_after:.3} s after the INVITE",
        a.lag as f64 * 1000.0 / f64::from(RATE),
        a.corr,
        a.len as f64 / f64::from(RATE)
    );
}

// ---------------------------------------------------------------------------------------
// 2: the record app keeps what baresip sent.

#[test]
fn record_app_keeps_what_baresip_sent() {
    const MAX_S: u32 = 4;
    const SENT_S: f64 = 3.0;
    let sent = noise_steps(RATE, SENT_S);
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.routes = vec![
        Route::record("rec", &[&format!("max_duration_s = {MAX_S}")]),
        Route::echo("*"),
    ];
    let mut server = Server::start(&cfg);
    // baresip sends the 3 s and then silence (the file goes on: baresip hangs up at its
    // end); the default silence_ms (3 s) would end the recording only at 6 s, so the 4 s
    // limit must.
    let mut input = sent.clone();
    input.resize(RATE as usize * 8, 0);
    let run = Baresip {
        config: "config",
        accounts: "accounts",
        input_wav: wav_bytes(RATE, &input),
        user: "rec",
        quit_after_s: 7,
    }
    .run(&server);
    let log = server.log_when("call ended", 1, Duration::from_secs(3));
    let diag = || run.diag(&server);

    let ended = log_line(&log, &["call ended"])
        .unwrap_or_else(|| panic!("the server never logged the call's end\n{}", diag()));
    let key = log_field(ended, "recording").unwrap_or("");
    assert!(
        !key.is_empty(),
        "the \"call ended\" line names no recording (is the record app in place?): {ended}\n{}",
        diag()
    );
    assert!(
        ended.contains("reason=LocalBye")
            && ended.contains("app=\"recording reached its time limit\""),
        "expected the server to hang up at the {MAX_S} s limit (reason=LocalBye, app=\"recording reached its time limit\"), got: {ended}\n{}",
        diag()
    );
    assert!(
        run.closed_by_peer(),
        "baresip does not report the call closed by the server (BYE)\n{}",
        diag()
    );
    // Stored encrypted at rest under `<key>.enc`.
    let path = server
        .dir
        .path()
        .join("recordings")
        .join(format!("{key}.enc"));
    assert!(
        path.is_file(),
        "recording {} missing; recordings dir holds: {:?}\n{}",
        path.display(),
        fs::read_dir(server.dir.path().join("recordings"))
            .map(|d| d
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect::<Vec<_>>())
            .unwrap_or_default(),
        diag()
    );
    let (rate, channels, samples) = read_recording_wav(server.dir.path(), &path);
    assert_eq!(
        (rate, channels),
        (RATE, 2),
        "{}: expected a stereo recording at the G.711 leg rate",
        path.display()
    );
    let left = channel(&samples, 2, 0);
    let right = channel(&samples, 2, 1);
    let seconds = left.len() as f64 / f64::from(RATE);
    assert!(
        (SENT_S..=f64::from(MAX_S) + 0.04).contains(&seconds),
        "the recording lasts {seconds:.3} s; expected at least the {SENT_S} s sent and at most max_duration_s = {MAX_S}\n{}",
        diag()
    );

    // Every 20 ms frame baresip sent must be in the left channel, intact and in order.
    // The jitter buffer may move the delay by whole frames (it starts low and grows once
    // its jitter estimate settles), so frames are located one by one.
    let r = RATE as usize;
    let frame = r / 50;
    let a = align(&sent, &left, r / 2..r, -(r as isize) / 2, 2 * r as isize);
    let track = track_frames(&sent, &left, frame, a.lag, 5);
    let matched = track.iter().filter(|t| t.1 > 0.95).count();
    let moves = slips(&track, 0.95);
    let ms = |lag: isize| lag as f64 * 1000.0 / f64::from(RATE);
    let first_lag = track.iter().find(|t| t.1 > 0.95).map_or(a.lag, |t| t.0);
    let last_lag = track
        .iter()
        .rev()
        .find(|t| t.1 > 0.95)
        .map_or(a.lag, |t| t.0);
    let report = || {
        let bad: Vec<String> = track
            .iter()
            .enumerate()
            .filter(|(_, t)| t.1 <= 0.95)
            .take(20)
            .map(|(i, t)| format!("{:.2}s:{:.3}", (i * frame) as f64 / f64::from(RATE), t.1))
            .collect();
        let moved: Vec<String> = moves
            .iter()
            .map(|&(i, from, to)| {
                format!(
                    "{:+.0} ms at {:.2} s",
                    ms(to - from),
                    (i * frame) as f64 / f64::from(RATE)
                )
            })
            .collect();
        format!(
            "{matched}/{} frames of 20 ms found (correlation > 0.95); delay {:.1} ms at the start, {:.1} ms at the end; delay changes: [{}]; unmatched frames: [{}]; whole-signal correlation at the main delay {:.1} ms: {:.4}\n{}",
            track.len(),
            ms(first_lag),
            ms(last_lag),
            moved.join(", "),
            bad.join(" "),
            ms(a.lag),
            a.corr,
            diag()
        )
    };
    assert!(
        matched * 100 >= track.len() * 97,
        "the recording's left channel does not hold what baresip sent (at least 97% of its frames should match, G.711 correlates > 0.99): {}",
        report()
    );
    let found = || track.iter().filter(|t| t.1 > 0.95).map(|t| t.0);
    let (min_lag, max_lag) = (found().min().unwrap_or(0), found().max().unwrap_or(0));
    assert!(
        min_lag >= 0 && max_lag < r as isize,
        "the recorded audio should lag what baresip sent by 0..1 s: {}",
        report()
    );
    assert!(
        max_lag - min_lag <= (r / 10) as isize,
        "the delay of the recorded audio wandered over {:.0} ms (more than 100 ms on loopback): {}",
        ms(max_lag - min_lag),
        report()
    );
    // baresip's own dump of what it encoded agrees (a check of the reference itself).
    let (enc_rate, enc_channels, enc) = read_wav(&run.dump("-enc.wav", &server));
    assert_eq!(
        (enc_rate, enc_channels),
        (RATE, 1),
        "baresip -enc.wav format"
    );
    let e = align(&sent, &enc, r / 2..r, -(r as isize) / 2, r as isize);
    assert!(
        e.corr > 0.99 && e.len == sent.len(),
        "baresip's -enc.wav is not the input WAV (correlation {:.4} at {} samples over {} samples); the test's reference is wrong",
        e.corr,
        e.lag,
        e.len
    );
    // After the sent audio, the caller was silent: so is the recording.
    let after = (last_lag.max(0) as usize + sent.len() + r / 10).min(left.len());
    let tail_rms = rms(&left[after..]);
    assert!(
        tail_rms < 100.0,
        "the left channel after the sent audio ({:.2} s..{seconds:.2} s) should be silent, RMS {tail_rms:.0}",
        after as f64 / f64::from(RATE)
    );
    let right_peak = right.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!(
        right_peak < 32,
        "the right channel (our side; the record app plays nothing) should be silent, peak {right_peak}, RMS {:.1}",
        rms(&right)
    );
    let alive = server.is_running();
    assert!(alive, "server died\n{}", run.diag(&server));
    eprintln!(
        "record: {seconds:.3} s recorded; {matched}/{} frames found (lowest correlation {:.4}); delay {:.1} ms at the start, {:.1} ms at the end; delay changes (s, ms): {:?}; right peak {right_peak}",
        track.len(),
        track.iter().map(|t| t.1).fold(1.0, f64::min),
        ms(first_lag),
        ms(last_lag),
        moves
            .iter()
            .map(|&(i, from, to)| ((i * frame) as f64 / f64::from(RATE), ms(to - from)))
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------
// 3: Opus end to end.

#[test]
fn baresip_negotiates_opus_end_to_end() {
    const TONE_HZ: f64 = 1000.0;
    const OPUS_RATE: u32 = 48_000;
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.rtp_extra = vec![r#"codecs = ["opus", "PCMU"]"#.into()];
    let mut server = Server::start(&cfg);
    // baresip runs Opus at 48 kHz stereo and aufile insists on the codec's format.
    let mono = tone(OPUS_RATE, TONE_HZ, 8000.0, 6.0);
    let stereo: Vec<i16> = mono.iter().flat_map(|&s| [s, s]).collect();
    let run = Baresip {
        config: "config-opus",
        accounts: "accounts-opus",
        input_wav: wav_interleaved(OPUS_RATE, 2, &stereo),
        user: "echo",
        quit_after_s: 5,
    }
    .run(&server);
    let log = server.log_when("call ended", 1, Duration::from_secs(3));
    let diag = || run.diag(&server);

    // baresip only offers Opus, so these lines mean the server's answer chose it.
    for what in ["encoder", "decoder"] {
        assert!(
            run.output.contains(&format!("Set audio {what}: opus")),
            "baresip did not set up an Opus {what} (server answer without opus?)\n{}",
            diag()
        );
    }
    let ended = log_line(&log, &["call ended"])
        .unwrap_or_else(|| panic!("the server never logged the call's end\n{}", diag()));
    let frames: u32 = log_field(ended, "frames_sent")
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    assert!(
        frames >= 100,
        "the server sent {frames} audio frames in a ~5 s echo call: {ended}\n{}",
        diag()
    );

    let dec = run.dump("-dec.wav", &server);
    let (rate, channels, samples) = read_wav(&dec);
    assert!(
        channels >= 1 && [8000, 16_000, 24_000, 48_000].contains(&rate),
        "{}: unexpected format {rate} Hz, {channels} channels",
        dec.display()
    );
    // Down-mix to mono.
    let ch = usize::from(channels);
    let heard: Vec<i16> = samples
        .chunks_exact(ch)
        .map(|f| (f.iter().map(|&s| i32::from(s)).sum::<i32>() / ch as i32) as i16)
        .collect();
    let window = (rate / 10) as usize;
    let windows: Vec<&[i16]> = heard.chunks_exact(window).collect();
    let shares: Vec<f64> = windows
        .iter()
        .map(|w| tone_energy_share(w, rate, TONE_HZ))
        .collect();
    let toned = windows
        .iter()
        .zip(&shares)
        .filter(|(w, share)| rms(w) > 2000.0 && **share > 0.9)
        .count();
    let loudest = windows.iter().map(|w| rms(w)).fold(0.0, f64::max);
    let best_share = shares.iter().copied().fold(0.0, f64::max);
    assert!(
        toned >= 25,
        "expected at least 2.5 s of the {TONE_HZ} Hz tone back over Opus, heard {toned} tone windows of {} ({:.1} s at {rate} Hz x{channels}; loudest RMS {loudest:.0}, best 1 kHz share {best_share:.3})\n{}",
        windows.len(),
        heard.len() as f64 / f64::from(rate),
        diag()
    );
    let alive = server.is_running();
    assert!(alive, "server died\n{}", run.diag(&server));
    eprintln!(
        "opus: heard {:.1} s of the {TONE_HZ} Hz tone in {:.1} s ({rate} Hz x{channels}); loudest RMS {loudest:.0}",
        toned as f64 / 10.0,
        heard.len() as f64 / f64::from(rate)
    );
}

// ---------------------------------------------------------------------------------------
// The scripted agent on the embedded stages, with baresip as the caller.

/// A server whose `agent` route runs the shipped appointment-setter flow.
fn appointment_setter_server() -> Server {
    let flow = fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-config/agents/appointment-setter.toml"),
    )
    .expect("example flow");
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.files = vec![("agents/appointment-setter.toml".into(), flow)];
    cfg.routes = vec![Route {
        match_user: "agent".into(),
        app: "agent".into(),
        reject_code: None,
        extra: vec!["flow = \"agents/appointment-setter.toml\"".into()],
    }];
    Server::start(&cfg)
}

#[test]
fn agent_hears_stop_calling_me_marks_do_not_call_and_hangs_up() {
    let utterance =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio/stop__flite.wav"))
            .expect("../shared/audio/stop__flite.wav");
    let server = appointment_setter_server();
    // The caller listens for 8 s (the greeting), says "Please stop calling me.", then
    // stays quiet; the file outlasts the call (baresip hangs up at its end).
    let mut input = vec![0i16; RATE as usize * 8];
    input.extend(common::ulaw_samples(&utterance));
    input.resize(RATE as usize * 30, 0);
    let run = Baresip {
        config: "config",
        accounts: "accounts-phone",
        input_wav: wav_bytes(RATE, &input),
        user: "agent",
        quit_after_s: 25,
    }
    .run(&server);
    let log = server.log_when("call ended", 1, Duration::from_secs(5));
    let diag = || run.diag(&server);
    assert!(
        log.contains("agent says"),
        "the agent never spoke\n{}",
        diag()
    );
    let said = log_line(&log, &["caller said"])
        .unwrap_or_else(|| panic!("nothing was recognized\n{}", diag()));
    assert!(
        said.contains("stop calling"),
        "recognized: {said}\n{}",
        diag()
    );
    assert!(
        log.contains("MarkDoNotCall"),
        "no mark_do_not_call tool call\n{}",
        diag()
    );
    let ended = log_line(&log, &["call ended"]).unwrap_or_default();
    assert!(
        ended.contains("app=\"agent hung up\"") && ended.contains("reason=LocalBye"),
        "the agent should hang up after its goodbye: {ended}\n{}",
        diag()
    );
    assert!(run.closed_by_peer(), "baresip saw no BYE\n{}", diag());
    // The caller heard the agent: speech in the first seconds of what baresip received.
    let dec = run.dump("-dec.wav", &server);
    let (rate, channels, heard) = read_wav(&dec);
    let mono = channel(&heard, channels, 0);
    let first = &mono[..(rate as usize * 5).min(mono.len())];
    assert!(
        rms(first) > 300.0,
        "the caller heard no greeting (RMS {:.0})\n{}",
        rms(first),
        diag()
    );
    assert_api_serves_the_agent_report(&server, &diag);
}

/// The call's record, transcript, do-not-call entry and opt-out event through the API.
fn assert_api_serves_the_agent_report(server: &Server, diag: &dyn Fn() -> String) {
    server.log_when("call record stored", 1, Duration::from_secs(10));
    let token = server.read_api_token();
    let base = server.api_base();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let get = |path: String| {
            let req = http.get(format!("{base}{path}")).bearer_auth(&token);
            async move {
                let v: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
                v
            }
        };
        let calls = get("/v1/calls".into()).await;
        let call = &calls["data"][0];
        let id = call["id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(call["disposition"], "do_not_call", "{call}\n{}", diag());
        let tools: Vec<&str> = call["tool_calls"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            tools,
            ["mark_do_not_call", "set_outcome", "end_call"],
            "{call}"
        );
        assert!(
            call["latency"][0]["first_frame_out_ms"].as_u64().is_some(),
            "{call}"
        );
        let transcript = get(format!("/v1/calls/{id}/transcript")).await;
        let turns = transcript["turns"].as_array().cloned().unwrap_or_default();
        let said = |who: &str| -> Vec<String> {
            turns
                .iter()
                .filter(|t| t["speaker"] == who)
                .filter_map(|t| t["text"].as_str().map(str::to_owned))
                .collect()
        };
        assert!(
            said("agent")
                .first()
                .is_some_and(|t| t.starts_with("Hi, this is an automated assistant")),
            "{transcript}\n{}",
            diag()
        );
        assert!(
            said("caller").iter().any(|t| t.contains("stop calling")),
            "{transcript}"
        );
        assert!(
            said("agent")
                .last()
                .is_some_and(|t| t.starts_with("Understood.")),
            "{transcript}"
        );
        let dnc = get("/v1/dnc".into()).await;
        let entry = &dnc["data"][0];
        assert_eq!(entry["phone"], "+14155552671", "{dnc}\n{}", diag());
        assert_eq!(entry["source"], "call", "{dnc}");
        assert_eq!(entry["reason"], "opted out during call", "{dnc}");
        assert_eq!(entry["call_id"].as_str(), Some(id.as_str()), "{dnc}");
        let events = get("/v1/events".into()).await;
        let types: Vec<&str> = events["data"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["type"].as_str()).collect())
            .unwrap_or_default();
        for t in ["call.ended", "transcript.ready", "lead.opted_out"] {
            assert!(types.contains(&t), "no {t} event: {events}");
        }
    });
}

/// Backchannel words do not cut the agent off, a real sentence does (scripted agent,
/// PocketSphinx, flite, over SIP with baresip). baresip says "Uh-huh." 1.5 s into the
/// greeting: the agent pauses, the recognizer hears "uh-huh", and the greeting resumes where
/// it stopped — baresip keeps receiving speech for seconds after. Then a second call says
/// "Please stop calling me." at the same point: its greeting is cleared.
#[test]
fn agent_backchannel_does_not_interrupt_but_a_sentence_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut flow = fs::read(root.join("sip-config/agents/appointment-setter.toml")).expect("flow");
    // "Uh-huh" has about 250 ms of voiced speech: pause after 120 ms of it.
    flow.extend_from_slice(b"\n[barge_in]\nmin_speech_ms = 120\n");
    let run_with = |file: &str| {
        let utterance = fs::read(root.join("../shared/audio").join(file)).expect(file);
        let mut cfg = ServerConfig::new(PortBlock::allocate());
        cfg.files = vec![("agents/appointment-setter.toml".into(), flow.clone())];
        cfg.routes = vec![Route {
            match_user: "agent".into(),
            app: "agent".into(),
            reject_code: None,
            extra: vec!["flow = \"agents/appointment-setter.toml\"".into()],
        }];
        let server = Server::start(&cfg);
        let mut input = vec![0i16; RATE as usize * 3 / 2];
        input.extend(common::ulaw_samples(&utterance));
        input.resize(RATE as usize * 30, 0);
        let run = Baresip {
            config: "config",
            accounts: "accounts-phone",
            input_wav: wav_bytes(RATE, &input),
            user: "agent",
            quit_after_s: 12,
        }
        .run(&server);
        let log = server.log();
        let dec = run.dump("-dec.wav", &server);
        let (rate, channels, heard) = read_wav(&dec);
        let mono = channel(&heard, channels, 0);
        // Seconds of speech baresip received (20 ms windows above RMS 300).
        let speech_s = mono
            .chunks(rate as usize / 50)
            .filter(|w| rms(w) > 300.0)
            .count() as f64
            * 0.02;
        let diag = run.diag(&server);
        (log, speech_s, diag)
    };
    let (log, speech_s, diag) = run_with("backchannel__flite.wav");
    assert!(
        log.contains("agent paused: caller talking over it"),
        "the agent never paused\n{diag}"
    );
    let resumed =
        log_line(&log, &["agent resumed"]).unwrap_or_else(|| panic!("never resumed\n{diag}"));
    assert!(resumed.contains("backchannel"), "{resumed}\n{diag}");
    assert!(
        !log.contains("barge-in: agent speech cleared"),
        "the backchannel cut the agent off\n{diag}"
    );
    // The whole greeting (about 6 s of flite speech) reached baresip.
    assert!(
        speech_s > 4.5,
        "only {speech_s:.1} s of agent speech heard\n{diag}"
    );
    let (log2, speech2_s, diag2) = run_with("stop__flite.wav");
    assert!(
        log2.contains("barge-in: agent speech cleared"),
        "a sentence did not interrupt\n{diag2}"
    );
    println!(
        "agent speech heard: {speech_s:.1} s with a backchannel, {speech2_s:.1} s with a sentence"
    );
}

/// Barge-in on the wire over SIP: baresip says "Please stop calling me." over the scripted
/// agent's greeting, and dumpcap captures the RTP both ways on loopback. From the capture:
/// the caller's speech onset (first packet baresip sent with RMS > 300 after its lead-in of
/// silence) to the last agent packet with RMS > 300 before a gap over 100 ms. The target is
/// ≤ 80 ms p95 (issue 4); the server's jitter buffer (`jitter_min_ms`, 20 ms) is in the path.
/// Measured 58–72 ms over five runs on a quiet machine; the test allows 100 ms because CI
/// runs many calls at once on two cores.
#[test]
fn agent_audio_stops_within_100_ms_of_the_callers_speech_on_the_wire() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let utterance = fs::read(root.join("../shared/audio/stop__flite.wav")).expect("utterance");
    let server = appointment_setter_server();
    let p = server.ports;
    let (b_min, b_max) = p.baresip_rtp();
    let cap_dir = tempfile::Builder::new()
        .prefix("leadscaller-cap-")
        .tempdir()
        .expect("temp dir");
    let cap_file = cap_dir.path().join("barge-in.pcap");
    let mut cap =
        common::capture_loopback(&format!("udp and portrange {b_min}-{b_max}"), &cap_file);
    // 2.5 s of silence (the greeting is playing by then), the sentence, then silence.
    let mut input = vec![0i16; RATE as usize * 5 / 2];
    input.extend(common::ulaw_samples(&utterance));
    input.resize(RATE as usize * 30, 0);
    let run = Baresip {
        config: "config",
        accounts: "accounts-phone",
        input_wav: wav_bytes(RATE, &input),
        user: "agent",
        quit_after_s: 8,
    }
    .run(&server);
    let _ = cap.interrupt_and_wait(Duration::from_secs(10));
    let diag = run.diag(&server);
    let is_baresip = |port: u16| (b_min..=b_max).contains(&port);
    let level = |payload: &[u8]| {
        let pcm: Vec<i16> = payload
            .iter()
            .map(|&b| leadscaller::codec::g711::ulaw_to_linear(b))
            .collect();
        rms(&pcm)
    };
    let packets = common::read_pcap_udp(&cap_file);
    let rtp: Vec<(bool, f64, f64)> = packets
        .iter()
        .filter_map(|u| {
            let from_caller = is_baresip(u.src.port());
            let r = common::parse_rtp(&u.payload)?;
            (r.payload_type == 0).then(|| (from_caller, u.at, level(r.payload)))
        })
        .collect();
    let start = rtp
        .first()
        .map(|r| r.1)
        .unwrap_or_else(|| panic!("no RTP captured\n{diag}"));
    let onset = rtp
        .iter()
        .find(|r| r.0 && r.1 > start + 1.0 && r.2 > 300.0)
        .map(|r| r.1)
        .unwrap_or_else(|| panic!("the caller's speech is not in the capture\n{diag}"));
    let agent: Vec<(f64, f64)> = rtp.iter().filter(|r| !r.0).map(|r| (r.1, r.2)).collect();
    assert!(
        agent.iter().any(|a| a.0 < onset && a.1 > 300.0),
        "the agent was not talking at the onset\n{diag}"
    );
    let mut last = onset;
    for &(at, _) in agent.iter().filter(|a| a.0 >= onset && a.1 > 300.0) {
        if at - last > 0.1 {
            break;
        }
        last = at;
    }
    let latency_ms = (last - onset) * 1000.0;
    println!(
        "barge-in on the wire over SIP: agent audio stopped {latency_ms:.0} ms after the caller's onset"
    );
    assert!(
        latency_ms <= 100.0,
        "agent audio went on {latency_ms:.0} ms after the caller's onset\n{diag}"
    );
}
