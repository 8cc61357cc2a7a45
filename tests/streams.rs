//! Twilio Media Streams against the running server, with a real WebSocket client library
//! (Python `websockets`, Debian `python3-websockets`) playing Twilio: real-time 20 ms µ-law
//! frames, DTMF, broken frames, stop; the server runs the echo app on the stream leg.

mod common;

use base64::Engine;
use common::{PortBlock, Server, ServerConfig};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SECRET: &str = "stream-secret-for-tests-0123456789";

/// What the client script saw.
struct Run {
    /// (arrival seconds, payload bytes) of each `media` that came back.
    media: Vec<(f64, Vec<u8>)>,
    /// When each of our `media` frames was sent (same clock).
    sent: Vec<f64>,
    close_code: Option<u64>,
    stdout: String,
}

/// Runs one of the client scripts in `tests/peers/streams/` against `path` on the server
/// and returns the JSON object it prints.
fn run_script(server: &Server, script: &str, path: &str, args: &[&str]) -> serde_json::Value {
    let url = format!("ws://127.0.0.1:{}{path}", server.ports.http());
    run_script_url(server, script, &url, args)
}

/// Runs a client script against `url` (`ws://` or `wss://`).
fn run_script_url(server: &Server, script: &str, url: &str, args: &[&str]) -> serde_json::Value {
    // Debian's interpreter, where python3-websockets installs (not a pyenv one on PATH).
    let python = "/usr/bin/python3";
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers/streams")
        .join(script);
    let out = Command::new(python)
        .arg(&script)
        .arg(url)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "client failed ({}): {}\n{}\n--- server ---\n{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("client JSON: {e}\n{stdout}"))
}

fn run_client(server: &Server, frames: u32, extra: &[&str]) -> Run {
    run_client_at(server, "/media-stream", frames, extra)
}

/// The Twilio-style client (`twilio_client.py`) at `path` with `frames` media frames.
fn run_client_at(server: &Server, path: &str, frames: u32, extra: &[&str]) -> Run {
    let frames = frames.to_string();
    let mut args = vec![frames.as_str()];
    args.extend_from_slice(extra);
    let v = run_script(server, "twilio_client.py", path, &args);
    let stdout = v.to_string();
    let media = v["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let t = m[0].as_f64().unwrap();
            let p = base64::engine::general_purpose::STANDARD
                .decode(m[1].as_str().unwrap())
                .unwrap();
            (t, p)
        })
        .collect();
    let sent = v["sent"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_f64())
        .collect();
    Run {
        media,
        sent,
        close_code: v["close_code"].as_u64(),
        stdout,
    }
}

/// The frame index a payload was tagged with by the client.
fn tag(p: &[u8]) -> Option<usize> {
    let hi = p.first()?.checked_sub(0x10).filter(|v| *v < 100)?;
    let lo = p.get(1)?.checked_sub(0x10).filter(|v| *v < 100)?;
    Some(usize::from(hi) * 100 + usize::from(lo))
}

/// The client's frame `i`, as the script builds it.
fn frame(i: usize) -> Vec<u8> {
    let mut f = vec![0x10 + (i / 100 % 100) as u8, 0x10 + (i % 100) as u8];
    f.extend((0..158).map(|j| 0x80 + ((i * 13 + j * 7) % 0x7f) as u8));
    f
}

fn server(secret: bool) -> Server {
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    if secret {
        cfg.extra_toml = format!("\n[streams]\nsecret = \"{SECRET}\"\n");
    }
    Server::start(&cfg)
}

#[test]
fn twilio_stream_is_echoed_in_real_time_and_closed_on_stop() {
    let server = server(true);
    let run = run_client(&server, 150, &["--secret", SECRET, "--bad"]);
    // Every frame comes back, in order, byte for byte (µ-law survives decode + encode).
    let tags: Vec<usize> = run.media.iter().filter_map(|(_, p)| tag(p)).collect();
    assert!(
        tags.windows(2).all(|w| w[1] > w[0]),
        "frames came back out of order: {tags:?}"
    );
    assert!(
        tags.len() >= 147,
        "only {} of 150 frames came back\n{}",
        tags.len(),
        server.log()
    );
    for (_, p) in &run.media {
        if let Some(i) = tag(p) {
            assert_eq!(p, &frame(i), "frame {i} changed on the way back");
        }
    }
    // Paced at real time by the media clock: 20 ms apart on average, never in a burst.
    let times: Vec<f64> = run.media.iter().map(|(t, _)| *t).collect();
    let span = times.last().unwrap() - times.first().unwrap();
    let mean_ms = span * 1000.0 / (times.len() - 1) as f64;
    assert!(
        (19.0..21.5).contains(&mean_ms),
        "mean spacing {mean_ms:.2} ms"
    );
    let mut gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) * 1000.0).collect();
    gaps.sort_by(f64::total_cmp);
    let p05 = gaps[gaps.len() / 20];
    assert!(
        p05 > 10.0,
        "bursty delivery: 5th percentile gap {p05:.2} ms"
    );
    // The broken frames were dropped without ending the stream, the digit was seen, and
    // `stop` ended it with a normal close.
    assert_eq!(run.close_code, Some(1000), "{}", run.stdout);
    let log = server.log_when("stream ended", 1, Duration::from_secs(5));
    assert!(log.contains("stream frame dropped"), "{log}");
    // The three broken frames, counted by reason in the stream's end line.
    let end = log.lines().find(|l| l.contains("stream ended")).unwrap();
    assert!(
        end.contains("drops=invalid_json=1 unknown_event=1 bad_base64=1"),
        "{end}"
    );
    assert!(
        log.contains("digit=5") || log.contains("digit='5'"),
        "{log}"
    );
    assert!(log.contains("stream app finished"), "{log}");
    eprintln!(
        "stream echo: {} of 150 frames back in order, mean spacing {mean_ms:.2} ms, 5th percentile gap {p05:.2} ms",
        tags.len()
    );
}

#[test]
fn unauthenticated_streams_are_closed_with_1008() {
    let server = server(true);
    for extra in [&[][..], &["--secret", "not-the-servers-secret-at-all"][..]] {
        let run = run_client(&server, 20, extra);
        assert_eq!(run.close_code, Some(1008), "{}", run.stdout);
        assert!(
            run.media.is_empty(),
            "media sent to an unauthenticated stream"
        );
    }
    let log = server.log();
    assert!(log.contains("stream refused"), "{log}");
    assert!(!log.contains(SECRET), "the secret must never be logged");
}

/// Vonage: binary 16 kHz L16 frames both ways, the token in the connect headers.
#[test]
fn vonage_l16_stream_is_echoed_sample_for_sample() {
    let server = server(true);
    let v = run_script(
        &server,
        "vonage_client.py",
        "/media-stream/vonage",
        &["100", "--secret", SECRET],
    );
    let frames: Vec<Vec<i16>> = v["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let hex = m[1].as_str().unwrap();
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            bytes
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect()
        })
        .collect();
    assert!(frames.iter().all(|f| f.len() == 320), "20 ms at 16 kHz");
    let tags: Vec<i16> = frames.iter().map(|f| f[0] - 1000).collect();
    assert!(tags.windows(2).all(|w| w[1] > w[0]), "{tags:?}");
    assert!(
        tags.len() >= 97,
        "only {} of 100 frames came back",
        tags.len()
    );
    for f in &frames {
        let i = i32::from(f[0] - 1000);
        let want: Vec<i16> = std::iter::once(f[0])
            .chain((0..319).map(|j| (((i * 37 + j * 101) % 4000) - 2000) as i16))
            .collect();
        assert_eq!(f, &want, "frame {i} changed");
    }
    let log = server.log_when("stream ended", 1, Duration::from_secs(5));
    assert!(
        log.contains("digit=7") || log.contains("digit='7'"),
        "{log}"
    );
}

/// A server whose streams run the example flow (`[streams]` lines in `streams_extra`).
fn agent_stream_server(streams_extra: &str) -> Server {
    let flow = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-config/agents/appointment-setter.toml"),
    )
    .unwrap();
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.files = vec![("agents/appointment-setter.toml".into(), flow)];
    cfg.extra_toml = format!(
        "\n[streams]\nsecret = \"{SECRET}\"\nflow = \"agents/appointment-setter.toml\"\n{streams_extra}\n"
    );
    Server::start(&cfg)
}

/// "Please stop calling me." from the shared telephone-band utterances.
fn stop_utterance() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio/stop__flite.wav")
}

/// A 25 s Twilio-style call into `server` whose caller says "Please stop calling me." 8 s
/// in (after the greeting), with `extra` client arguments.
fn stop_calling_me_after_the_greeting(server: &Server, extra: &[&str]) -> Run {
    let wav = stop_utterance();
    let mut args = vec![
        "--secret",
        SECRET,
        "--wav",
        wav.to_str().unwrap(),
        "--at",
        "8",
    ];
    args.extend_from_slice(extra);
    run_client(server, 1250, &args)
}

/// The scripted agent on a Twilio stream: it greets, hears "Please stop calling me.",
/// marks the number do-not-call, says goodbye and closes the stream.
#[test]
fn agent_runs_on_a_twilio_stream() {
    let server = agent_stream_server("");
    let run = stop_calling_me_after_the_greeting(&server, &[]);
    let log = server.log_when("stream ended", 1, Duration::from_secs(5));
    assert!(log.contains("MarkDoNotCall"), "no mark_do_not_call:\n{log}");
    assert!(log.contains("agent hung up"), "{log}");
    assert_eq!(run.close_code, Some(1000), "{}", run.stdout);
    // The per-turn latency record: end of caller speech to the first reply frame.
    let turn = log
        .lines()
        .find(|l| l.contains("turn latency"))
        .unwrap_or_else(|| panic!("no turn latency record:\n{log}"));
    let total: u64 = turn
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total_ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{turn}"));
    assert!(
        (400..3000).contains(&total),
        "turn latency {total} ms is not plausible: {turn}"
    );
    eprintln!("agent on a stream: {turn}");
    // The caller heard the greeting and the goodbye: seconds of agent audio came back.
    assert!(
        run.media.len() > 200,
        "only {} frames of agent audio",
        run.media.len()
    );
}

/// Barge-in on the wire: the caller talks over the greeting; returns how long after the
/// caller's speech onset the agent's audio stopped (ms), and the server log.
fn barge_in_latency_ms(streams_extra: &str) -> (f64, String) {
    let server = agent_stream_server(streams_extra);
    let wav = stop_utterance();
    // The greeting takes about 6 s; the caller starts talking 2 s into the call.
    let at = 2.0;
    let run = run_client(
        &server,
        1000,
        &[
            "--secret",
            SECRET,
            "--wav",
            wav.to_str().unwrap(),
            "--at",
            "2",
        ],
    );
    // The onset is the first loud frame of the utterance, not the start of its file.
    let speech = common::ulaw_samples(&std::fs::read(&wav).unwrap());
    let lead = speech
        .chunks(160)
        .position(|f| common::rms(f) > 300.0)
        .expect("speech in the utterance");
    let onset = run.sent[(at * 50.0) as usize + lead];
    // The agent's frames after the onset, until the first pause in them.
    let after: Vec<f64> = run
        .media
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t >= onset)
        .collect();
    assert!(
        !after.is_empty(),
        "the agent was silent when the caller spoke"
    );
    let mut last = after[0];
    for t in &after[1..] {
        if t - last > 0.1 {
            break;
        }
        last = *t;
    }
    let log = server.log_when("stream ended", 1, Duration::from_secs(5));
    assert!(log.contains("barge-in"), "no barge-in:\n{log}");
    assert!(log.contains("MarkDoNotCall"), "{log}");
    ((last - onset) * 1000.0, log)
}

#[test]
fn caller_speech_over_the_greeting_stops_the_agent() {
    // Default: the agent pauses at the VAD's speech start (60 ms of speech) and one queued
    // frame plays out: ~80 ms after the caller's onset (the target).
    let (default_ms, _) = barge_in_latency_ms("");
    assert!(
        default_ms <= 100.0,
        "agent audio stopped {default_ms:.0} ms after the caller's onset"
    );
    // barge_in_ms = 300: the caller must talk for 300 ms first (VAD start 60 ms + 300 ms).
    let (patient_ms, _) = barge_in_latency_ms("barge_in_ms = 300");
    assert!(
        (250.0..600.0).contains(&patient_ms),
        "with barge_in_ms = 300 agent audio stopped {patient_ms:.0} ms after the caller's onset"
    );
    eprintln!(
        "barge-in on the wire: agent audio stopped {default_ms:.0} ms (default) and {patient_ms:.0} ms (barge_in_ms = 300) after the caller's speech onset"
    );
}

/// A carrier that buffers 1.5 s before playing (the client echoes each mark when the audio
/// before it has played, as Twilio does): the agent's goodbye is heard to its end before the
/// stream is closed, because the hang-up waits for the carrier's echo of the goodbye's mark,
/// not for our last frame to be sent.
#[test]
fn the_agent_hangs_up_after_the_carrier_has_played_its_goodbye() {
    let server = agent_stream_server("");
    let run = stop_calling_me_after_the_greeting(&server, &["--play-delay", "1.5"]);
    let log = server.log_when("stream ended", 1, Duration::from_secs(5));
    assert!(log.contains("agent hung up"), "{log}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let closed_at = v["closed_at"].as_f64().expect("closed_at");
    let last_audio = run.media.last().expect("agent audio").0;
    let last_echo = v["echoed"]
        .as_array()
        .and_then(|e| e.last())
        .and_then(|e| e[0].as_f64())
        .expect("an echoed mark");
    assert!(
        closed_at >= last_echo,
        "closed {:.0} ms before the goodbye's echo",
        (last_echo - closed_at) * 1000.0
    );
    // The goodbye's last frame arrived, then 1.5 s of carrier buffer played out.
    let waited = closed_at - last_audio;
    assert!(
        (1.3..4.0).contains(&waited),
        "closed {:.0} ms after the last agent frame arrived (the carrier buffers 1500 ms)",
        waited * 1000.0
    );
}

/// Telnyx: snake_case messages, frames sent in swapped pairs come back in order.
#[test]
fn telnyx_stream_is_reordered_and_echoed() {
    let server = Server::start(&ServerConfig::new(PortBlock::allocate()));
    let run = run_client_at(
        &server,
        "/media-stream/telnyx",
        100,
        &["--dialect", "telnyx", "--shuffle"],
    );
    for (_, p) in &run.media {
        assert_eq!(tag(p).map(frame).as_ref(), Some(p), "payload changed");
    }
    let tags: Vec<usize> = run.media.iter().filter_map(|(_, p)| tag(p)).collect();
    assert!(
        tags.windows(2).all(|w| w[1] == w[0] + 1),
        "swapped frames must come back in order: {tags:?}"
    );
    assert!(
        tags.len() >= 97,
        "only {} of 100 frames came back",
        tags.len()
    );
    assert_eq!(run.close_code, Some(1000), "{}", run.stdout);
    let log = server.log_when("stream ended", 1, Duration::from_secs(5));
    assert!(log.contains("dialect=Telnyx"), "{log}");
}

/// A self-signed certificate for 127.0.0.1, as (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

/// wss: the HTTP listener serves TLS with `[http] tls_cert`/`tls_key`; a Twilio client
/// trusting the test's self-signed certificate streams over it as over ws. Keep-alive at
/// 1 s on a stream that runs 3 s: answered pings keep it up.
#[test]
fn twilio_stream_over_wss_with_a_self_signed_certificate() {
    let (cert, key) = self_signed();
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.files = vec![
        ("cert.pem".into(), cert.into_bytes()),
        ("key.pem".into(), key.into_bytes()),
    ];
    cfg.http_extra = vec![
        "tls_cert = \"cert.pem\"".into(),
        "tls_key = \"key.pem\"".into(),
    ];
    cfg.extra_toml = format!("\n[streams]\nsecret = \"{SECRET}\"\nping_interval_s = 1\n");
    let server = Server::start(&cfg);
    let ca = server.dir.path().join("cert.pem");
    let url = format!("wss://127.0.0.1:{}/media-stream", server.ports.http());
    let v = run_script_url(
        &server,
        "twilio_client.py",
        &url,
        &["150", "--secret", SECRET, "--cafile", ca.to_str().unwrap()],
    );
    let back = v["media"].as_array().unwrap().len();
    assert!(
        back >= 147,
        "only {back} of 150 frames came back over wss\n{v}"
    );
    assert_eq!(v["close_code"].as_u64(), Some(1000), "{v}");
    let log = server.log_when("stream ended", 1, Duration::from_secs(5));
    assert!(log.contains("HTTPS listening"), "{log}");
    assert!(!log.contains("keep-alive"), "{log}");
    // Plain ws:// to the TLS listener does not get a stream.
    let plain = Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/streams/twilio_client.py"))
        .arg(format!(
            "ws://127.0.0.1:{}/media-stream",
            server.ports.http()
        ))
        .arg("5")
        .output()
        .unwrap();
    assert!(!plain.status.success(), "ws:// to a TLS listener worked");
    eprintln!("wss stream: {back} of 150 frames echoed");
}

/// Keep-alive: with `ping_interval_s = 1`, a peer that stops reading (its pings pile up
/// unanswered) is closed with 4010 about two intervals after it last sent anything; a
/// peer that is silent but listening answers the pings and is kept.
#[test]
fn a_peer_that_stops_reading_is_closed_with_4010() {
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.extra_toml = format!("\n[streams]\nsecret = \"{SECRET}\"\nping_interval_s = 1\n");
    let server = Server::start(&cfg);
    let v = run_script(
        &server,
        "twilio_client.py",
        "/media-stream",
        &["0", "--secret", SECRET, "--deaf", "2.5"],
    );
    assert_eq!(
        v["close_code"].as_u64(),
        Some(4010),
        "{v}\n{}",
        server.log()
    );
    let log = server.log_when("stream ended", 1, Duration::from_secs(5));
    assert!(log.contains("answered no ping"), "{log}");
    let end = log.lines().find(|l| l.contains("stream ended")).unwrap();
    assert!(end.contains("close_code=4010"), "{end}");
    // Two 1 s intervals after the peer's last frame (its `start`), not later.
    let at = |needle: &str| {
        let line = log.lines().find(|l| l.contains(needle)).unwrap();
        log_time(line).unwrap_or_else(|| panic!("no time in {line}"))
    };
    let after = at("answered no ping") - at("stream started");
    eprintln!("keep-alive: a deaf peer was closed {after:.3} s after its start");
    assert!(
        (1.95..2.5).contains(&after),
        "closed {after:.3} s after start"
    );

    let v = run_script(
        &server,
        "twilio_client.py",
        "/media-stream",
        &["0", "--secret", SECRET, "--deaf", "4", "--quiet"],
    );
    assert_eq!(
        v["close_code"].as_u64(),
        Some(1000),
        "{v}\n{}",
        server.log()
    );
    let log = server.log_when("stream ended", 2, Duration::from_secs(5));
    assert_eq!(log.matches("answered no ping").count(), 1, "{log}");
}

/// Seconds into the day of a log line's RFC 3339 timestamp (`2026-11-28T03:18:59.123456Z ...`).
fn log_time(line: &str) -> Option<f64> {
    let ts = line.split_whitespace().next()?;
    let time = ts.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// A token signed with the test secret, valid for 5 minutes.
fn good_token() -> String {
    leadscaller::leg::stream_auth::StreamAuth::new(SECRET).sign_for(300)
}

/// (close code, media frames back) of a client run.
fn outcome(v: &serde_json::Value) -> (Option<u64>, usize) {
    (
        v["close_code"].as_u64(),
        v["media"].as_array().map_or(0, Vec::len),
    )
}

/// Every dialect with a real client: no token, a forged one, or one only in the URL query of
/// a Twilio stream (Twilio forbids query strings) gets 1008 and no media; the token where
/// each carrier puts it, or (all but Twilio) in `?token=`, gets the stream echoed.
#[test]
fn every_dialect_is_refused_without_its_token_and_accepted_with_it() {
    let server = server(true);
    let query = format!("?token={}", good_token());
    let forged = "not-the-servers-secret-at-all";
    let cases: Vec<(&str, String, Vec<&str>, bool)> = vec![
        (
            "twilio_client.py",
            "/media-stream/twilio".into(),
            vec![],
            false,
        ),
        (
            "twilio_client.py",
            format!("/media-stream/twilio{query}"),
            vec![],
            false,
        ),
        (
            "twilio_client.py",
            "/media-stream/twilio".into(),
            vec!["--secret", SECRET],
            true,
        ),
        (
            "twilio_client.py",
            "/media-stream/telnyx".into(),
            vec!["--dialect", "telnyx"],
            false,
        ),
        (
            "twilio_client.py",
            "/media-stream/telnyx".into(),
            vec!["--dialect", "telnyx", "--secret", forged],
            false,
        ),
        (
            "twilio_client.py",
            "/media-stream/telnyx".into(),
            vec![
                "--dialect",
                "telnyx",
                "--secret",
                SECRET,
                "--token-via",
                "custom",
            ],
            true,
        ),
        (
            "twilio_client.py",
            "/media-stream/telnyx".into(),
            vec![
                "--dialect",
                "telnyx",
                "--secret",
                SECRET,
                "--token-via",
                "connected",
            ],
            true,
        ),
        (
            "twilio_client.py",
            "/media-stream/telnyx".into(),
            vec![
                "--dialect",
                "telnyx",
                "--secret",
                SECRET,
                "--token-via",
                "client_state",
            ],
            true,
        ),
        (
            "twilio_client.py",
            "/media-stream/telnyx".into(),
            vec![
                "--dialect",
                "telnyx",
                "--secret",
                SECRET,
                "--token-via",
                "header",
            ],
            true,
        ),
        (
            "twilio_client.py",
            "/media-stream/telnyx".into(),
            vec![
                "--dialect",
                "telnyx",
                "--secret",
                forged,
                "--token-via",
                "header",
            ],
            false,
        ),
        (
            "twilio_client.py",
            format!("/media-stream/telnyx{query}"),
            vec!["--dialect", "telnyx"],
            true,
        ),
        (
            "vonage_client.py",
            "/media-stream/vonage".into(),
            vec![],
            false,
        ),
        (
            "vonage_client.py",
            "/media-stream/vonage".into(),
            vec!["--secret", forged],
            false,
        ),
        (
            "vonage_client.py",
            format!("/media-stream/vonage{query}"),
            vec![],
            true,
        ),
        (
            "plivo_client.py",
            "/media-stream/plivo".into(),
            vec![],
            false,
        ),
        (
            "plivo_client.py",
            "/media-stream/plivo".into(),
            vec!["--secret", forged],
            false,
        ),
        (
            "plivo_client.py",
            "/media-stream/plivo".into(),
            vec!["--secret", SECRET],
            true,
        ),
        (
            "plivo_client.py",
            format!("/media-stream/plivo{query}"),
            vec![],
            true,
        ),
    ];
    let refused = cases.iter().filter(|c| !c.3).count();
    for (script, path, extra, ok) in &cases {
        let mut args = vec!["25"];
        args.extend_from_slice(extra);
        let v = run_script(&server, script, path, &args);
        let (code, media) = outcome(&v);
        if *ok {
            assert!(
                media >= 20,
                "{script} {path} {extra:?}: {media} frames back\n{v}"
            );
            assert_ne!(code, Some(1008), "{script} {path} {extra:?}");
        } else {
            assert_eq!(code, Some(1008), "{script} {path} {extra:?}: {v}");
            assert_eq!(
                media, 0,
                "{script} {path} {extra:?}: media to a refused stream"
            );
        }
    }
    let log = server.log_when("stream refused", refused, Duration::from_secs(5));
    assert_eq!(log.matches("stream refused").count(), refused, "{log}");
    assert!(!log.contains(SECRET), "the secret must never be logged");
    assert!(!log.contains(&query[7..]), "a token must never be logged");
}

/// Plivo: µ-law `media` events echoed as `playAudio` byte for byte, in order, in real time;
/// the token in `extraHeaders`; the DTMF seen; nothing dropped.
#[test]
fn plivo_stream_is_echoed_with_play_audio() {
    let server = server(true);
    let v = run_script(
        &server,
        "plivo_client.py",
        "/media-stream/plivo",
        &["100", "--secret", SECRET],
    );
    let media: Vec<(f64, Vec<u8>)> = v["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = base64::engine::general_purpose::STANDARD
                .decode(m[1].as_str().unwrap())
                .unwrap();
            (m[0].as_f64().unwrap(), p)
        })
        .collect();
    let tags: Vec<usize> = media.iter().filter_map(|(_, p)| tag(p)).collect();
    assert!(tags.windows(2).all(|w| w[1] > w[0]), "{tags:?}");
    assert!(
        tags.len() >= 97,
        "only {} of 100 frames came back",
        tags.len()
    );
    for (_, p) in &media {
        assert_eq!(tag(p).map(frame).as_ref(), Some(p), "payload changed");
    }
    let span = media.last().unwrap().0 - media.first().unwrap().0;
    let mean_ms = span * 1000.0 / (media.len() - 1) as f64;
    assert!(
        (19.0..21.5).contains(&mean_ms),
        "mean spacing {mean_ms:.2} ms"
    );
    let log = server.log_when("stream ended", 1, Duration::from_secs(5));
    assert!(log.contains("dialect=Plivo"), "{log}");
    assert!(
        log.contains("digit=5") || log.contains("digit='5'"),
        "{log}"
    );
    let end = log.lines().find(|l| l.contains("stream ended")).unwrap();
    assert!(end.contains("drops=none"), "{end}");
}

/// Plivo with the scripted agent. Run 1: the greeting arrives as `playAudio` followed by
/// `checkpoint`s, which the client answers with `playedStream` once that audio has played;
/// the caller then says "Please stop calling me.", the agent says goodbye and closes the
/// stream. Run 2: the caller talks over the greeting and the agent stops it with
/// `clearAudio`, answered with `clearedAudio`. The server takes Plivo's answers without
/// dropping a frame.
#[test]
fn plivo_checkpoints_and_clear_audio_with_the_agent() {
    let server = agent_stream_server("");
    let wav = stop_utterance();
    let run = |frames: &str, at: &str| {
        let args = [
            frames,
            "--secret",
            SECRET,
            "--wav",
            wav.to_str().unwrap(),
            "--at",
            at,
        ];
        let v = run_script(&server, "plivo_client.py", "/media-stream/plivo", &args);
        let list = |key: &str| -> Vec<(f64, String)> {
            v[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| match m.as_f64() {
                    Some(t) => (t, String::new()),
                    None => (m[0].as_f64().unwrap(), m[1].as_str().unwrap().to_string()),
                })
                .collect()
        };
        let media: Vec<f64> = list("media").into_iter().map(|m| m.0).collect();
        (media, list("checkpoints"), list("played"), list("clears"))
    };

    let (media, checkpoints, played, _) = run("1250", "8");
    assert!(
        media.len() > 200,
        "only {} frames of agent audio",
        media.len()
    );
    // Each checkpoint follows its audio at once (the tick that sent its last frame).
    for (c, name) in &checkpoints {
        let last = media.iter().rfind(|t| *t <= c).copied();
        let gap = last.map(|l| (c - l) * 1000.0);
        assert!(
            gap.is_some_and(|g| g < 30.0),
            "checkpoint {name} {gap:?} ms after its audio"
        );
    }
    // The greeting's checkpoints were answered, by name, once their audio had played.
    let greeting: Vec<&(f64, String)> = checkpoints
        .iter()
        .filter(|c| c.0 < media[0] + 7.5)
        .collect();
    assert!(
        !greeting.is_empty(),
        "no checkpoint in the greeting: {checkpoints:?}"
    );
    for (t, name) in &greeting {
        let answer = played.iter().find(|p| &p.1 == name);
        assert!(
            answer.is_some_and(|a| a.0 >= *t),
            "{name} not answered: {played:?}"
        );
    }
    let log = server.log_when("stream ended", 1, Duration::from_secs(5));
    assert!(log.contains("MarkDoNotCall"), "{log}");
    let end = log.lines().find(|l| l.contains("stream ended")).unwrap();
    assert!(end.contains("drops=none"), "{end}");
    assert!(end.contains("close_code=1000"), "{end}");

    let (media2, _, _, clears2) = run("600", "2");
    assert_eq!(
        clears2.len(),
        1,
        "one barge-in, one clearAudio: {clears2:?}"
    );
    let log = server.log_when("stream ended", 2, Duration::from_secs(5));
    assert!(log.contains("barge-in"), "{log}");
    let end = log
        .lines()
        .filter(|l| l.contains("stream ended"))
        .nth(1)
        .unwrap();
    assert!(end.contains("drops=none"), "{end}");
    eprintln!(
        "plivo agent: {} playAudio, {} checkpoints, {} answered; with barge-in clearAudio {:.2} s into the greeting",
        media.len(),
        checkpoints.len(),
        played.len(),
        clears2[0].0 - media2[0]
    );
}
