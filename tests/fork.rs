//! The `fork` app against a real WebSocket server (Python `websockets`, Debian
//! `python3-websockets`) acting as a customer's bot, with sipp as the caller (PCMA audio
//! from `g711a.pcap`, an RFC 4733 digit). The bot logs every message with the wall clock;
//! dumpcap captures what the server sends to the caller, so mark echoes and clears are
//! timed against the audio actually on the wire.
//!
//! Needs `sip-tester` (sipp with pcap play: root or CAP_NET_RAW), `tshark` (dumpcap) and
//! `python3-websockets`.

mod common;

use common::{LOOPBACK, PortBlock, Proc, Route, Server, ServerConfig, require_tool, tail};
use leadscaller::codec::g711::alaw_to_linear;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const G711A_PCAP: &str = "/usr/share/sip-tester/g711a.pcap";
const DTMF5_PCAP: &str = "/usr/share/sip-tester/dtmf_2833_5.pcap";
/// The bot's port in the test's block (unused by the common layout).
const BOT_OFFSET: u16 = 24;

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A UAC offering PCMA: a digit 5 (RFC 4733), then g711a.pcap (~7 s), a pause, BYE.
fn scenario(dir: &Path, pause_ms: u32) -> PathBuf {
    let msg = |body: &str| format!("<![CDATA[\n{body}\n]]>");
    let hdr = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]";
    let invite = format!(
        "\n      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n      {hdr}\n      To: <sip:[service]@[remote_ip]:[remote_port]>\n      Call-ID: [call_id]\n      CSeq: 1 INVITE\n      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>\n      Max-Forwards: 70\n      Content-Type: application/sdp\n      Content-Length: [len]\n\n      v=0\n      o=sipp 53655765 2353687637 IN IP[media_ip_type] [media_ip]\n      s=-\n      c=IN IP[media_ip_type] [media_ip]\n      t=0 0\n      m=audio [media_port] RTP/AVP 8 101\n      a=rtpmap:8 PCMA/8000\n      a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-15\n      a=sendrecv\n"
    );
    let in_dialog = |method: &str, cseq: u32| {
        format!(
            "\n      {method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n      {hdr}\n      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]\n      Call-ID: [call_id]\n      CSeq: {cseq} {method}\n      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>\n      Max-Forwards: 70\n      Content-Length: 0\n"
        )
    };
    let xml = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="uac fork">
  <send retrans="500">{}</send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>{}</send>
  <nop><action><exec play_pcap_audio="{DTMF5_PCAP}"/></action></nop>
  <pause milliseconds="400"/>
  <nop><action><exec play_pcap_audio="{G711A_PCAP}"/></action></nop>
  <pause milliseconds="{pause_ms}"/>
  <send retrans="500">{}</send>
  <recv response="200"/>
</scenario>
"#,
        msg(&invite),
        msg(&in_dialog("ACK", 1)),
        msg(&in_dialog("BYE", 2)),
    );
    let path = dir.join("uac_fork.xml");
    fs::write(&path, xml).expect("write scenario");
    path
}

/// Runs sipp (one call to `fork`) and returns whether it exited 0, with its screen.
fn run_sipp(server: &Server, scenario: &Path, limit: Duration) -> (bool, String) {
    require_tool("sipp", "sip-tester");
    let dir = temp_dir("leadscaller-sipp-");
    let p = server.ports;
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(scenario)
        .arg(server.sip_target())
        .args(["-s", "fork"])
        .args(["-i", LOOPBACK, "-p", &p.peer_sip().to_string()])
        .args(["-mi", LOOPBACK, "-mp", &p.peer_media().to_string()])
        .args(["-cp", &p.sipp_control().to_string()])
        .args(["-m", "1", "-timeout", &format!("{}s", limit.as_secs())])
        .args(["-timeout_error", "-max_retrans", "5", "-nostdin"])
        .current_dir(dir.path());
    let mut proc = Proc::spawn("sipp", cmd, dir.path());
    let status = proc.wait(limit + Duration::from_secs(5));
    (status.success(), proc.stdout() + &proc.stderr())
}

/// The bot server; SIGKILLed when dropped.
fn start_bot(port: u16, log: &Path, mode: &str, dir: &Path) -> Proc {
    start_bot_with(port, log, mode, dir, &[])
}

/// The bot server with extra arguments (`CERT KEY` for wss).
fn start_bot_with(port: u16, log: &Path, mode: &str, dir: &Path, extra: &[&Path]) -> Proc {
    require_tool("python3", "python3-websockets");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/streams/bot_server.py");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script).arg(port.to_string()).arg(log).arg(mode);
    cmd.args(extra);
    let bot = Proc::spawn("bot", cmd, dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bot.stdout().contains("listening") {
        assert!(
            Instant::now() < deadline,
            "bot did not start: {}",
            bot.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    bot
}

fn bot_log(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn events<'a>(log: &'a [Value], dir: &str, event: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|v| v["dir"] == dir && v["event"] == event)
        .collect()
}

fn t(v: &Value) -> f64 {
    v["t"].as_f64().expect("t")
}

fn fork_server(bot_port: u16, window_s: u32) -> Server {
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.routes = vec![Route {
        match_user: "fork".into(),
        app: "fork".into(),
        reject_code: None,
        extra: vec![
            format!("url = \"ws://{LOOPBACK}:{bot_port}/bot\""),
            format!("reconnect_window_s = {window_s}"),
        ],
    }];
    Server::start(&cfg)
}

/// dumpcap on `lo` for what the server sends to sipp's media port.
fn start_capture(server: &Server, file: &Path, dir: &Path) -> Proc {
    require_tool("dumpcap", "tshark");
    let p = server.ports;
    let (lo, hi) = p.server_rtp();
    let mut cmd = Command::new("dumpcap");
    cmd.args(["-i", "lo", "-P", "-a", "duration:60", "-f"])
        .arg(format!(
            "udp and src portrange {lo}-{hi} and dst port {}",
            p.peer_media()
        ))
        .arg("-w")
        .arg(file);
    let cap = Proc::spawn("dumpcap", cmd, dir);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cap.stderr().contains("Capturing on") {
        assert!(Instant::now() < deadline, "dumpcap: {}", cap.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    cap
}

/// (capture time, RTP payload) of each UDP datagram in a classic pcap of Ethernet frames.
fn rtp_times(path: &Path) -> Vec<(f64, Vec<u8>)> {
    let d = fs::read(path).expect("capture");
    assert!(
        d.len() >= 24 && d[0..4] == [0xd4, 0xc3, 0xb2, 0xa1],
        "not a LE pcap"
    );
    let u32le = |o: usize| u32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= d.len() {
        let ts = f64::from(u32le(o)) + f64::from(u32le(o + 4)) / 1e6;
        let len = u32le(o + 8) as usize;
        let frame = &d[o + 16..(o + 16 + len).min(d.len())];
        o += 16 + len;
        if frame.len() < 14 + 20 + 8 + 12 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let udp = 14 + ihl;
        let rtp = &frame[udp + 8..];
        let cc = usize::from(rtp[0] & 0x0f);
        if rtp.len() > 12 + 4 * cc {
            out.push((ts, rtp[12 + 4 * cc..].to_vec()));
        }
    }
    out
}

/// The capture times of the frames carrying the bot's tone (A-law RMS well above silence).
fn loud_times(capture: &[(f64, Vec<u8>)]) -> Vec<f64> {
    capture
        .iter()
        .filter(|(_, p)| {
            let e: f64 = p
                .iter()
                .map(|&b| f64::from(alaw_to_linear(b)).powi(2))
                .sum::<f64>()
                / p.len().max(1) as f64;
            e.sqrt() > 2000.0
        })
        .map(|(t, _)| *t)
        .collect()
}

fn diag(server: &Server, log: &[Value]) -> String {
    let short: Vec<String> = log
        .iter()
        .filter(|v| v["event"] != "media")
        .map(|v| v.to_string())
        .collect();
    format!(
        "bot log (no media):\n{}\nserver log:\n{}",
        short.join("\n"),
        tail(&server.log(), 4000)
    )
}

#[test]
fn fork_sends_twilio_start_media_dtmf_stop_in_real_time() {
    let dir = temp_dir("leadscaller-fork-");
    let ports = PortBlock::allocate();
    let bot_port = ports.port(BOT_OFFSET);
    let log_path = dir.path().join("bot.jsonl");
    let _bot = start_bot(bot_port, &log_path, "idle", dir.path());
    let server = fork_server(bot_port, 30);
    let (ok, screen) = run_sipp(
        &server,
        &scenario(dir.path(), 7400),
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = bot_log(&log_path);
    assert!(
        ok,
        "sipp failed: {}\n{}",
        tail(&screen, 2000),
        diag(&server, &log)
    );

    let ins: Vec<&Value> = log.iter().filter(|v| v["dir"] == "in").collect();
    assert_eq!(ins[0]["event"], "connected", "{}", diag(&server, &log));
    assert_eq!(ins[0]["protocol"], "Call");
    assert_eq!(ins[1]["event"], "start");
    let start = &ins[1]["start"];
    let sid = start["streamSid"].as_str().unwrap();
    assert!(
        sid.len() == 34 && sid.starts_with("MZ") && sid[2..].chars().all(|c| c.is_ascii_hexdigit()),
        "{sid}"
    );
    assert_eq!(ins[1]["streamSid"], sid);
    assert!(
        start["callSid"].as_str().unwrap().starts_with("call-"),
        "{start}"
    );
    assert_eq!(start["tracks"], serde_json::json!(["inbound"]));
    assert_eq!(
        start["mediaFormat"],
        serde_json::json!({"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1})
    );
    assert!(
        start["customParameters"]["from"]
            .as_str()
            .unwrap()
            .contains("sipp")
    );
    assert!(
        start["customParameters"]["to"]
            .as_str()
            .unwrap()
            .contains("fork")
    );

    let media = events(&log, "in", "media");
    assert!(media.len() > 300, "media: {}", media.len());
    for (i, m) in media.iter().enumerate() {
        assert_eq!(m["media"]["chunk"], (i + 1).to_string());
        assert_eq!(m["media"]["bytes"], 160);
        assert_eq!(m["media"]["track"], "inbound");
        assert_eq!(m["streamSid"], sid);
    }
    // Real time: ~50 a second on the bot's clock, timestamps on the 20 ms grid.
    let span = t(media.last().unwrap()) - t(media[0]);
    let rate = (media.len() - 1) as f64 / span;
    let ts_last: u64 = media.last().unwrap()["media"]["timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!(
        "fork: {} media in {span:.3} s = {rate:.2}/s, last timestamp {ts_last} ms",
        media.len()
    );
    assert!((47.0..=53.0).contains(&rate), "media rate {rate:.2}/s");
    assert!(ts_last.is_multiple_of(20) && ts_last >= (media.len() as u64 - 1) * 20);

    let dtmf = events(&log, "in", "dtmf");
    assert_eq!(dtmf.len(), 1, "{}", diag(&server, &log));
    assert_eq!(dtmf[0]["dtmf"]["digit"], "5");
    assert_eq!(dtmf[0]["dtmf"]["track"], "inbound_track");
    let stop = events(&log, "in", "stop");
    assert_eq!(stop.len(), 1, "{}", diag(&server, &log));
    assert_eq!(stop[0]["stop"]["callSid"], start["callSid"]);
}

/// A sipp call forked to a bot in `mode`, with what the caller received captured.
struct CapturedCall {
    _dir: tempfile::TempDir,
    server: Server,
    cap_file: PathBuf,
    log: Vec<Value>,
}

/// Runs a call of `hold_ms` forked to a bot in `mode`, capturing what the caller receives;
/// asserts the call itself succeeded.
fn captured_fork_call(mode: &str, hold_ms: u32) -> CapturedCall {
    let dir = temp_dir("leadscaller-fork-");
    let ports = PortBlock::allocate();
    let bot_port = ports.port(BOT_OFFSET);
    let log_path = dir.path().join("bot.jsonl");
    let _bot = start_bot(bot_port, &log_path, mode, dir.path());
    let server = fork_server(bot_port, 30);
    let cap_file = dir.path().join("out.pcap");
    let mut cap = start_capture(&server, &cap_file, dir.path());
    let (ok, screen) = run_sipp(
        &server,
        &scenario(dir.path(), hold_ms),
        Duration::from_secs(20),
    );
    let _ = cap.interrupt_and_wait(Duration::from_secs(10));
    let log = bot_log(&log_path);
    assert!(
        ok,
        "sipp failed: {}\n{}",
        tail(&screen, 2000),
        diag(&server, &log)
    );
    CapturedCall {
        _dir: dir,
        server,
        cap_file,
        log,
    }
}

#[test]
fn fork_echoes_a_mark_when_the_audio_before_it_is_on_the_wire() {
    let CapturedCall {
        _dir,
        server,
        cap_file,
        log,
    } = captured_fork_call("mark", 3000);

    let sent = events(&log, "out", "media");
    assert_eq!(sent.len(), 50);
    let first_sent = t(sent[0]);
    let echo = events(&log, "in", "mark");
    assert_eq!(echo.len(), 1, "{}", diag(&server, &log));
    assert_eq!(echo[0]["mark"]["name"], "m1");
    let echo_at = t(echo[0]);
    let loud = loud_times(&rtp_times(&cap_file));
    assert!(
        (48..=51).contains(&loud.len()),
        "tone frames on the wire: {}",
        loud.len()
    );
    let last_loud = *loud.last().unwrap();
    let after_send = (echo_at - first_sent) * 1000.0;
    let after_wire = (echo_at - last_loud) * 1000.0;
    eprintln!(
        "fork mark: echoed {after_send:.1} ms after the bot sent 1000 ms of audio, {after_wire:.1} ms after its last frame left on the wire ({} frames)",
        loud.len()
    );
    assert!(
        after_send >= 1000.0 - 40.0,
        "echo too early: {after_send:.1} ms"
    );
    assert!(
        (-2.0..=25.0).contains(&after_wire),
        "echo vs last frame on the wire: {after_wire:.1} ms"
    );
}

#[test]
fn fork_clear_stops_the_bot_audio_within_a_frame_and_echoes_cleared_marks() {
    let CapturedCall {
        _dir,
        server,
        cap_file,
        log,
    } = captured_fork_call("clear", 3500);

    let clear = events(&log, "out", "clear");
    assert_eq!(clear.len(), 1, "{}", diag(&server, &log));
    let clear_at = t(clear[0]);
    let echo = events(&log, "in", "mark");
    assert_eq!(echo.len(), 1, "{}", diag(&server, &log));
    assert_eq!(echo[0]["mark"]["name"], "end");
    let echo_after = (t(echo[0]) - clear_at) * 1000.0;
    let loud = loud_times(&rtp_times(&cap_file));
    let after: Vec<f64> = loud
        .iter()
        .map(|&l| (l - clear_at) * 1000.0)
        .filter(|&d| d > 0.0)
        .collect();
    eprintln!(
        "fork clear: {} tone frames before the clear, {} after it ({after:?} ms), cleared mark echoed {echo_after:.1} ms after",
        loud.len() - after.len(),
        after.len()
    );
    assert!(
        (60..=85).contains(&(loud.len() - after.len())),
        "tone frames before the clear: {}",
        loud.len() - after.len()
    );
    assert!(
        after.len() <= 1 && after.iter().all(|&d| d <= 25.0),
        "tone after the clear: {after:?}"
    );
    assert!(
        (0.0..=45.0).contains(&echo_after),
        "cleared mark echo after {echo_after:.1} ms"
    );
}

#[test]
fn fork_reconnects_with_a_new_stream_sid_and_the_same_call_sid() {
    let dir = temp_dir("leadscaller-fork-");
    let ports = PortBlock::allocate();
    let bot_port = ports.port(BOT_OFFSET);
    let log_path = dir.path().join("bot.jsonl");
    let bot = start_bot(bot_port, &log_path, "idle", dir.path());
    let server = fork_server(bot_port, 10);
    let scen = scenario(dir.path(), 6000);
    let sipp = std::thread::scope(|s| {
        let h = s.spawn(|| run_sipp(&server, &scen, Duration::from_secs(20)));
        let deadline = Instant::now() + Duration::from_secs(8);
        while events(&bot_log(&log_path), "in", "media").len() < 50 {
            assert!(
                Instant::now() < deadline,
                "{}",
                diag(&server, &bot_log(&log_path))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(bot); // SIGKILL: the socket drops without a close frame
        let killed_at = now();
        std::thread::sleep(Duration::from_millis(1000));
        let bot2 = start_bot(bot_port, &log_path, "idle", dir.path());
        let restarted_at = now();
        let deadline = Instant::now() + Duration::from_secs(6);
        while events(&bot_log(&log_path), "in", "start").len() < 2 {
            assert!(
                Instant::now() < deadline,
                "{}",
                diag(&server, &bot_log(&log_path))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = h.join().unwrap();
        drop(bot2);
        (out, killed_at, restarted_at)
    });
    let ((ok, screen), killed_at, restarted_at) = sipp;
    let log = bot_log(&log_path);
    assert!(
        ok,
        "sipp failed: {}\n{}",
        tail(&screen, 2000),
        diag(&server, &log)
    );
    let starts = events(&log, "in", "start");
    assert_eq!(starts.len(), 2, "{}", diag(&server, &log));
    let (a, b) = (&starts[0]["start"], &starts[1]["start"]);
    assert_eq!(a["callSid"], b["callSid"]);
    assert_ne!(a["streamSid"], b["streamSid"]);
    let second = t(starts[1]);
    eprintln!(
        "fork reconnect: new start {:.0} ms after the bot died, {:.0} ms after it listened again",
        (second - killed_at) * 1000.0,
        (second - restarted_at) * 1000.0
    );
    // Attempts at +0.2, +0.7, +1.7 s after the loss: the bot is back at ~+1.0 s.
    assert!(second - restarted_at < 1.2, "reconnect too slow");
    // Media flows again on the new stream, numbered from 1.
    let new_media: Vec<&Value> = events(&log, "in", "media")
        .into_iter()
        .filter(|m| m["streamSid"] == b["streamSid"])
        .collect();
    assert!(
        new_media.len() > 50,
        "media after reconnect: {}",
        new_media.len()
    );
    assert_eq!(new_media[0]["media"]["chunk"], "1");
    let connected = events(&log, "in", "connected");
    assert_eq!(connected.len(), 2);
}

/// A call forked to a bot in `mode` (wss with a self-signed certificate when `tls`), with
/// `streams` lines in the server's `[streams]` table.
struct ForkRun {
    _dir: tempfile::TempDir,
    server: Server,
    log: Vec<Value>,
}

fn fork_call(mode: &str, tls: bool, streams: &str, hold_ms: u32) -> ForkRun {
    let dir = temp_dir("leadscaller-fork-");
    let ports = PortBlock::allocate();
    let bot_port = ports.port(BOT_OFFSET);
    let log_path = dir.path().join("bot.jsonl");
    let mut cfg = ServerConfig::new(ports);
    let mut streams = format!("\n[streams]\n{streams}\n");
    let scheme = if tls {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        cfg.files = vec![("bot-ca.pem".into(), cert.pem().into_bytes())];
        streams.push_str("fork_ca_file = \"bot-ca.pem\"\n");
        "wss"
    } else {
        "ws"
    };
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let extra: Vec<&Path> = if tls { vec![&cert, &key] } else { vec![] };
    let _bot = start_bot_with(bot_port, &log_path, mode, dir.path(), &extra);
    cfg.routes = vec![Route {
        match_user: "fork".into(),
        app: "fork".into(),
        reject_code: None,
        extra: vec![
            format!("url = \"{scheme}://{LOOPBACK}:{bot_port}/bot\""),
            "reconnect_window_s = 30".into(),
        ],
    }];
    cfg.extra_toml = streams;
    let server = Server::start(&cfg);
    let (ok, screen) = run_sipp(
        &server,
        &scenario(dir.path(), hold_ms),
        Duration::from_secs(25),
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = bot_log(&log_path);
    assert!(
        ok,
        "sipp failed: {}\n{}",
        tail(&screen, 2000),
        diag(&server, &log)
    );
    ForkRun {
        _dir: dir,
        server,
        log,
    }
}

/// `wss://`: the fork client trusts `[streams] fork_ca_file` (the bot's self-signed
/// certificate) and speaks the same protocol over TLS: start, media, the mark echo.
#[test]
fn fork_to_a_wss_bot_with_a_self_signed_certificate() {
    let ForkRun { server, log, .. } = fork_call("mark", true, "", 2000);
    let starts = events(&log, "in", "start");
    assert_eq!(starts.len(), 1, "{}", diag(&server, &log));
    let media = events(&log, "in", "media");
    assert!(media.len() > 80, "media over wss: {}", media.len());
    let echo = events(&log, "in", "mark");
    assert_eq!(echo.len(), 1, "{}", diag(&server, &log));
    assert_eq!(echo[0]["mark"]["name"], "m1");
    assert_eq!(events(&log, "in", "stop").len(), 1);
    eprintln!("fork over wss: {} media frames, mark echoed", media.len());
}

/// Backpressure: with `max_buffered_s = 2` a bot that sends 5 s of audio at once gets
/// 2 s played, the rest dropped, one `error` event (code 4100) and its mark echoed when
/// the 2 s have been played.
#[test]
fn a_flooding_bot_is_capped_and_told_once() {
    let ForkRun { server, log, .. } = fork_call("flood", false, "max_buffered_s = 2", 2000);
    let sent = events(&log, "out", "media");
    assert_eq!(sent.len(), 250);
    let errors = events(&log, "in", "error");
    assert_eq!(errors.len(), 1, "{}", diag(&server, &log));
    let e = &errors[0];
    assert_eq!(e["error"]["code"], 4100);
    assert_eq!(e["error"]["title"], "audio_buffer_full");
    let sid = events(&log, "in", "start")[0]["start"]["streamSid"].clone();
    assert_eq!(e["streamSid"], sid);
    let echo = events(&log, "in", "mark");
    assert_eq!(echo.len(), 1, "{}", diag(&server, &log));
    let played_s = t(echo[0]) - t(sent[0]);
    eprintln!(
        "fork flood: 5 s sent at once, error event after {:.0} ms, mark echoed after {played_s:.3} s",
        (t(e) - t(sent[0])) * 1000.0
    );
    assert!(
        (1.9..2.3).contains(&played_s),
        "the mark after the flood was echoed after {played_s:.3} s, not after the 2 s cap"
    );
    let server_log = server.log_when("fork: stream ended", 1, Duration::from_secs(5));
    assert_eq!(
        server_log.matches("extra audio dropped").count(),
        1,
        "{server_log}"
    );
}

/// Keep-alive: with `ping_interval_s = 1` a bot that stops reading is closed with 4010
/// about 2 s after it last sent anything, and the client reconnects (a new start).
#[test]
fn fork_closes_a_deaf_bot_with_4010_and_reconnects() {
    let ForkRun { server, log, .. } = fork_call("deaf", false, "ping_interval_s = 1", 5000);
    let closed: Vec<&Value> = log
        .iter()
        .filter(|v| v["dir"] == "conn" && v["event"] == "closed")
        .collect();
    assert!(!closed.is_empty(), "{}", diag(&server, &log));
    assert_eq!(closed[0]["code"], 4010, "{}", diag(&server, &log));
    let starts = events(&log, "in", "start");
    assert_eq!(starts.len(), 2, "{}", diag(&server, &log));
    let gap = t(starts[1]) - t(starts[0]);
    eprintln!("fork keep-alive: deaf bot replaced by a new stream {gap:.2} s after its start");
    assert!((1.9..3.5).contains(&gap), "new start after {gap:.2} s");
    assert!(server.log().contains("answered no ping"));
}
