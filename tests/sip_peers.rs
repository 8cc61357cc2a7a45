//! `leadscaller serve` against real SIP peers on loopback: sipp (load, RTP from a pcap,
//! re-INVITE hold/resume, CANCEL, OPTIONS, reject routes) and baresip (a real UA that
//! sends a tone and must hear it back).
//!
//! Needs the Debian packages `sip-tester` (sipp 3.6 with pcap play), `baresip` and
//! `tshark` (for `dumpcap`), which `scripts/setup.sh` installs; the pcap test needs root
//! or CAP_NET_RAW (sipp sends pcap audio on a raw socket, dumpcap captures on `lo`).
//! Each test takes its own port block, its own server and its own temporary directory,
//! so they run in parallel; every child process is killed by PID when its guard drops.

mod common;

use common::{
    LOOPBACK, PortBlock, Proc, Route, Server, ServerConfig, decrypt_recording, parse_rtp,
    read_lossy, read_pcap_udp, read_recording_wav, read_wav, require_tool, rms, sipp_stat, tail,
    tone, tone_energy_share, wav_bytes,
};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

const G711A_PCAP: &str = "/usr/share/sip-tester/g711a.pcap";

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers/sipp")
        .join(name)
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// What a sipp run left behind.
struct SippRun {
    status: ExitStatus,
    dir: tempfile::TempDir,
    stdout: String,
}

impl SippRun {
    fn file(&self, name: &str) -> String {
        read_lossy(&self.dir.path().join(name))
    }
    fn stats(&self) -> String {
        self.file("stats.csv")
    }
    fn stat(&self, column: &str) -> Option<u64> {
        sipp_stat(&self.stats(), column)
    }
    fn errors(&self) -> String {
        self.file("errors.log")
    }
    fn messages(&self) -> String {
        self.file("messages.log")
    }
    fn logs(&self) -> String {
        self.file("actions.log")
    }

    /// Everything useful to read when an assertion fails.
    fn diagnostics(&self, server: &Server) -> String {
        format!(
            "sipp exit: {}\n--- sipp errors.log ---\n{}\n--- sipp screen (tail) ---\n{}\n--- sipp messages.log (tail) ---\n{}\n--- server log (tail) ---\n{}",
            self.status,
            tail(&self.errors(), 6000),
            tail(&self.stdout, 3000),
            tail(&self.messages(), 6000),
            tail(&server.log(), 6000)
        )
    }

    /// sipp exited 0 and its final statistics count `calls` successful and no failed calls.
    fn assert_all_succeeded(&self, calls: u64, server: &Server) {
        let ok = self.stat("SuccessfulCall(C)");
        let failed = self.stat("FailedCall(C)");
        assert!(
            self.status.code() == Some(0) && ok == Some(calls) && failed == Some(0),
            "expected sipp exit 0 with {calls} successful and 0 failed calls, got successful={ok:?} failed={failed:?}\n{}",
            self.diagnostics(server)
        );
    }
}

/// How sipp is asked to place calls.
struct SippOpts<'a> {
    /// `-sn NAME` (built-in) or `-sf FILE`.
    scenario: Scenario<'a>,
    tcp: bool,
    service: &'a str,
    calls: u32,
    rate: u32,
    /// `-d` (built-in scenarios' pause), ms.
    call_ms: Option<u32>,
    /// sipp's `-timeout`: it quits (and fails, `-timeout_error`) after this.
    limit: Duration,
    extra: Vec<String>,
}

enum Scenario<'a> {
    Builtin(&'a str),
    File(PathBuf),
}

impl<'a> SippOpts<'a> {
    fn new(scenario: Scenario<'a>, service: &'a str) -> SippOpts<'a> {
        SippOpts {
            scenario,
            tcp: false,
            service,
            calls: 1,
            rate: 10,
            call_ms: None,
            limit: Duration::from_secs(20),
            extra: Vec::new(),
        }
    }
}

/// Runs sipp as a UAC against `server` and waits for it (bounded by `-timeout` and, as a
/// backstop, a kill a few seconds later).
fn run_sipp(server: &Server, o: &SippOpts) -> SippRun {
    require_tool("sipp", "sip-tester");
    let dir = temp_dir("leadscaller-sipp-");
    let d = dir.path();
    let p = server.ports;
    let mut cmd = Command::new("sipp");
    match &o.scenario {
        Scenario::Builtin(n) => cmd.args(["-sn", n]),
        Scenario::File(f) => cmd.arg("-sf").arg(f),
    };
    cmd.arg(server.sip_target())
        .args(["-s", o.service])
        .args(["-i", LOOPBACK, "-p", &p.peer_sip().to_string()])
        .args(["-mi", LOOPBACK, "-mp", &p.peer_media().to_string()])
        .args(["-cp", &p.sipp_control().to_string()])
        .args(["-m", &o.calls.to_string(), "-r", &o.rate.to_string()])
        .args([
            "-timeout",
            &format!("{}s", o.limit.as_secs()),
            "-timeout_error",
        ])
        .args(["-max_retrans", "5"])
        .arg("-nostdin")
        .args(["-trace_stat", "-stf"])
        .arg(d.join("stats.csv"))
        .args(["-trace_err", "-error_file"])
        .arg(d.join("errors.log"))
        .args(["-trace_msg", "-message_file"])
        .arg(d.join("messages.log"))
        .args(["-trace_logs", "-log_file"])
        .arg(d.join("actions.log"))
        .current_dir(d);
    if o.tcp {
        cmd.args(["-t", "t1"]);
    }
    if let Some(ms) = o.call_ms {
        cmd.args(["-d", &ms.to_string()]);
    }
    cmd.args(&o.extra);
    let mut proc = Proc::spawn("sipp", cmd, d);
    let status = proc.wait(o.limit + Duration::from_secs(10));
    let stdout = proc.stdout() + &proc.stderr();
    SippRun {
        status,
        dir,
        stdout,
    }
}

/// Runs scenario file `name` for `calls` calls against a server with `cfg` and asserts
/// every call succeeded and the server is still up. Returns both for further checks.
fn scenario_passes(cfg: &ServerConfig, name: &str, service: &str, calls: u32) -> (Server, SippRun) {
    let mut server = Server::start(cfg);
    let mut o = SippOpts::new(Scenario::File(scenario(name)), service);
    o.calls = calls;
    o.limit = Duration::from_secs(15);
    let run = run_sipp(&server, &o);
    run.assert_all_succeeded(u64::from(calls), &server);
    assert_server_alive(&mut server);
    (server, run)
}

fn assert_server_alive(server: &mut Server) {
    assert!(
        server.is_running(),
        "leadscaller serve died; log:\n{}",
        tail(&server.log(), 6000)
    );
}

// ---------------------------------------------------------------------------------------
// 1, 2: load with sipp's built-in UAC.

fn builtin_uac_20_calls(tcp: bool) {
    let mut server = Server::start(&ServerConfig::new(PortBlock::allocate()));
    let started = Instant::now();
    let mut o = SippOpts::new(Scenario::Builtin("uac"), "echo");
    o.tcp = tcp;
    o.calls = 20;
    o.rate = 10;
    o.call_ms = Some(500);
    o.limit = Duration::from_secs(20);
    let run = run_sipp(&server, &o);
    run.assert_all_succeeded(20, &server);
    assert_server_alive(&mut server);
    eprintln!(
        "sipp uac {}: 20/20 calls in {:.1} s",
        if tcp { "TCP" } else { "UDP" },
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn sipp_uac_udp_20_calls() {
    builtin_uac_20_calls(false);
}

#[test]
fn sipp_uac_tcp_20_calls() {
    builtin_uac_20_calls(true);
}

// ---------------------------------------------------------------------------------------
// 3: RTP from a pcap must come back, byte for byte (A-law survives decode and re-encode),
// in order, on our own SSRC, sequence numbers and 20 ms timestamp grid.

/// The payloads in sequence order and the SSRC of the RTP in a pcap file.
fn pcap_rtp(path: &Path) -> (Vec<Vec<u8>>, u32, usize) {
    let mut by_seq = std::collections::BTreeMap::new();
    let mut ssrc = 0;
    let pkts = read_pcap_udp(path);
    for p in &pkts {
        if let Some(r) = parse_rtp(&p.payload) {
            ssrc = r.ssrc;
            by_seq.insert(r.seq, r.payload.to_vec());
        }
    }
    (by_seq.into_values().collect(), ssrc, pkts.len())
}

/// A-law digital silence (what the echo sends while the caller's frames are not there).
fn is_alaw_silence(payload: &[u8]) -> bool {
    payload.iter().all(|&b| b == 0xd5)
}

#[test]
fn sipp_pcma_pcap_is_echoed() {
    require_tool("dumpcap", "tshark");
    assert!(
        Path::new(G711A_PCAP).is_file(),
        "{G711A_PCAP} missing (package sip-tester)"
    );
    let (original, original_ssrc, sent) = pcap_rtp(Path::new(G711A_PCAP));
    assert!(
        sent > 200,
        "{G711A_PCAP}: expected ~236 RTP packets, found {sent}"
    );

    let mut server = Server::start(&ServerConfig::new(PortBlock::allocate()));
    let p = server.ports;
    let (rtp_min, rtp_max) = p.server_rtp();
    let media = p.peer_media();

    // Capture what the server sends to sipp's media port from its RTP range.
    let cap_dir = temp_dir("leadscaller-cap-");
    let cap_file = cap_dir.path().join("echo.pcap");
    let mut cap = common::capture_loopback(
        &format!(
            "udp and src host {LOOPBACK} and src portrange {rtp_min}-{rtp_max} and dst port {media}"
        ),
        &cap_file,
    );

    let mut o = SippOpts::new(Scenario::File(scenario("uac_pcma_echo.xml")), "echo");
    o.limit = Duration::from_secs(25);
    o.extra = vec!["-key".into(), "pcap".into(), G711A_PCAP.into()];
    let run = run_sipp(&server, &o);
    let cap_status = cap.interrupt_and_wait(Duration::from_secs(10));
    run.assert_all_succeeded(1, &server);

    let captured = read_pcap_udp(&cap_file);
    let mut ssrcs = Vec::new();
    let mut ours = Vec::new();
    for pkt in &captured {
        assert_eq!(
            pkt.dst.port(),
            media,
            "echo went to the wrong port: {pkt:?}"
        );
        let r = parse_rtp(&pkt.payload).unwrap_or_else(|| panic!("not RTP: {pkt:?}"));
        assert_eq!(r.payload_type, 8, "echoed RTP must stay PCMA (PT 8)");
        if !ssrcs.contains(&r.ssrc) {
            ssrcs.push(r.ssrc);
        }
        ours.push((r.seq, r.timestamp, r.payload.to_vec()));
    }
    // Our own stream: consecutive sequence numbers, timestamps 160 apart (one per tick).
    for w in ours.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1), "sequence gap in our stream");
        assert_eq!(
            w[1].1,
            w[0].1.wrapping_add(160),
            "timestamp off the 20 ms grid"
        );
    }
    // The caller's audio comes back intact and in order. The pcap's packets are 30 ms and
    // ours are 20 ms, so compare byte streams: every echoed audio frame must be a run of
    // the original stream, later than the previous one (a concealed frame after a loss
    // matches nothing, and a loss shifts the alignment, so each frame is searched anew).
    let orig: Vec<u8> = original.concat();
    let mut last_at: Option<usize> = None;
    let mut out_of_order = 0usize;
    let mut matched = 0usize;
    for (_, _, p) in ours.iter().filter(|(_, _, p)| !is_alaw_silence(p)) {
        let from = last_at.map_or(0, |a| a + 1);
        match orig[from.min(orig.len())..]
            .windows(p.len())
            .position(|w| w == p.as_slice())
        {
            Some(i) => {
                last_at = Some(from + i);
                matched += 1;
            }
            None if orig.windows(p.len()).any(|w| w == p.as_slice()) => out_of_order += 1,
            None => {}
        }
    }
    assert_eq!(out_of_order, 0, "echoed frames came back out of order");
    let audio_frames = orig.chunks(160).filter(|c| !is_alaw_silence(c)).count();
    let echoed = matched;
    let sent = audio_frames;
    let diag = || {
        format!(
            "dumpcap exit {cap_status:?}, stderr:\n{}\n{}",
            cap.stderr(),
            run.diagnostics(&server)
        )
    };
    assert!(
        echoed * 100 >= sent * 95,
        "only {echoed} of {sent} RTP packets came back\n{}",
        diag()
    );
    assert_eq!(ssrcs.len(), 1, "echo must use one SSRC, saw {ssrcs:08x?}");
    assert_ne!(
        ssrcs[0], original_ssrc,
        "echo must re-stamp the SSRC with its own"
    );
    assert_server_alive(&mut server);
    eprintln!(
        "pcap echo: {echoed}/{sent} 20 ms PCMA frames came back intact, SSRC {:08x}",
        ssrcs[0]
    );
}

// ---------------------------------------------------------------------------------------
// 4: hold and resume by re-INVITE.

fn run_hold_resume() -> (Server, SippRun) {
    let server = Server::start(&ServerConfig::new(PortBlock::allocate()));
    let mut o = SippOpts::new(Scenario::File(scenario("uac_reinvite_hold.xml")), "echo");
    o.limit = Duration::from_secs(15);
    let run = run_sipp(&server, &o);
    (server, run)
}

/// The SDP `o=` session versions of the 200 OK answers to INVITEs, in order received.
fn answer_versions(messages: &str) -> Vec<u64> {
    messages
        .split("-----------------------------------------------")
        .filter(|block| block.contains("message received"))
        .filter(|block| {
            block.contains("SIP/2.0 200")
                && block
                    .lines()
                    .any(|l| l.starts_with("CSeq:") && l.contains("INVITE"))
        })
        .filter_map(|block| {
            let o = block.lines().find(|l| l.starts_with("o="))?;
            o.split_whitespace().nth(2)?.parse().ok()
        })
        .collect()
}

#[test]
fn sipp_reinvite_hold_and_resume() {
    // The scenario's ereg check_it assertions fail the call unless the answers say
    // sendrecv, then recvonly (to our sendonly hold), then sendrecv again.
    let (mut server, run) = run_hold_resume();
    run.assert_all_succeeded(1, &server);
    let versions = answer_versions(&run.messages());
    assert_eq!(
        versions.len(),
        3,
        "expected 3 SDP answers (INVITE, hold, resume)\n{}",
        run.diagnostics(&server)
    );
    assert!(
        versions[1] > versions[0],
        "the hold answer changed the SDP, so its o= version must increase: {versions:?}"
    );
    assert_server_alive(&mut server);
}

#[test]
fn sipp_reinvite_answers_bump_sdp_version_each_time() {
    // RFC 3264 §8: each new SDP in a session increments the o= version by one.
    let (server, run) = run_hold_resume();
    run.assert_all_succeeded(1, &server);
    let versions = answer_versions(&run.messages());
    assert_eq!(versions.len(), 3, "{}", run.diagnostics(&server));
    assert!(
        versions[1] == versions[0] + 1 && versions[2] == versions[1] + 1,
        "o= versions of the answers must go up by one each time, got {versions:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 5: CANCEL.

#[test]
fn sipp_cancel_of_unknown_transaction_gets_481() {
    let cfg = ServerConfig::new(PortBlock::allocate());
    scenario_passes(&cfg, "uac_cancel_unknown.xml", "echo", 3);
}

#[test]
fn sipp_cancel_right_behind_invite_over_tcp() {
    // INVITE and CANCEL in one TCP write: the server reads the CANCEL before the echo app
    // can answer, so the call is cancelled (200 to CANCEL, 487 to INVITE, ACK). The app
    // answers at once, so losing that race stays legal; the scenario then takes the
    // answered path (200 INVITE, 481/200 CANCEL, ACK, BYE) and logs which path it took.
    let mut server = Server::start(&ServerConfig::new(PortBlock::allocate()));
    let calls = 10;
    let mut o = SippOpts::new(Scenario::File(scenario("uac_invite_cancel.xml")), "echo");
    o.tcp = true;
    o.calls = calls;
    o.rate = 20;
    o.limit = Duration::from_secs(15);
    o.extra = vec!["-key".into(), "crlf".into(), "\r\n".into()];
    assert_eq!(
        server.ports.peer_media().to_string().len(),
        5,
        "the scenario's Content-Length assumes a 5-digit media port"
    );
    let run = run_sipp(&server, &o);
    run.assert_all_succeeded(u64::from(calls), &server);
    let logs = run.logs();
    let cancelled = logs.matches("flow=cancelled").count();
    let answered = logs.matches("flow=answered").count();
    assert_eq!(
        cancelled + answered,
        calls as usize,
        "every call logs its flow:\n{logs}"
    );
    assert!(
        cancelled >= 1,
        "no call was cancelled (all {answered} answered first), so the CANCEL path went untested\n{}",
        run.diagnostics(&server)
    );
    assert_server_alive(&mut server);
    eprintln!(
        "INVITE+CANCEL over TCP: {cancelled} cancelled, {answered} answered before the CANCEL"
    );
}

#[test]
fn sipp_cancel_after_answer_leaves_call_up() {
    // Deterministic counterpart of the race above: CANCEL only after the 200 arrived. It
    // must not end the call (481 or 200 to the CANCEL), and ACK + BYE on the dialog work.
    let mut server = Server::start(&ServerConfig::new(PortBlock::allocate()));
    let mut o = SippOpts::new(
        Scenario::File(scenario("uac_cancel_after_answer.xml")),
        "echo",
    );
    o.calls = 3;
    o.limit = Duration::from_secs(10);
    let run = run_sipp(&server, &o);
    run.assert_all_succeeded(3, &server);
    assert_server_alive(&mut server);
}

/// Received messages of a sipp `-trace_msg` log: (start line, header lines).
fn received_messages(messages: &str) -> Vec<(String, Vec<String>)> {
    messages
        .split("-----------------------------------------------")
        .filter(|block| block.contains("message received"))
        .filter_map(|block| {
            let mut lines = block
                .lines()
                .map(str::trim)
                .skip_while(|l| !l.starts_with("SIP/2.0"));
            let start = lines.next()?.to_string();
            let headers = lines
                .take_while(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            Some((start, headers))
        })
        .collect()
}

fn header<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| {
            h.len() > name.len()
                && h[..name.len()].eq_ignore_ascii_case(name)
                && h[name.len()..].starts_with(':')
        })
        .map(|h| h[name.len() + 1..].trim())
}

fn to_tag(headers: &[String]) -> Option<String> {
    let to = header(headers, "To")?;
    let i = to.find(";tag=")?;
    Some(to[i + 5..].split([';', '>', ' ']).next()?.to_string())
}

#[test]
fn sipp_cancel_response_to_tag_matches_invite_response() {
    let server = Server::start(&ServerConfig::new(PortBlock::allocate()));
    let mut o = SippOpts::new(Scenario::File(scenario("uac_invite_cancel.xml")), "echo");
    o.tcp = true;
    o.calls = 3;
    o.limit = Duration::from_secs(15);
    o.extra = vec!["-key".into(), "crlf".into(), "\r\n".into()];
    let run = run_sipp(&server, &o);
    run.assert_all_succeeded(3, &server);
    let msgs = received_messages(&run.messages());
    let mut tags: HashMap<(String, &'static str), String> = HashMap::new();
    for (start, headers) in &msgs {
        let (Some(call_id), Some(cseq), Some(tag)) = (
            header(headers, "Call-ID"),
            header(headers, "CSeq"),
            to_tag(headers),
        ) else {
            continue;
        };
        let kind = match (start.as_str(), cseq.ends_with("CANCEL")) {
            (s, true) if s.starts_with("SIP/2.0 200") => "cancel-200",
            (s, false) if s.starts_with("SIP/2.0 487") => "invite-487",
            _ => continue,
        };
        tags.insert((call_id.to_string(), kind), tag);
    }
    let mut compared = 0;
    for ((call_id, kind), tag) in &tags {
        if *kind == "cancel-200"
            && let Some(invite_tag) = tags.get(&(call_id.clone(), "invite-487"))
        {
            assert_eq!(
                tag, invite_tag,
                "call {call_id}: To tag of 200 (CANCEL) differs from the 487's"
            );
            compared += 1;
        }
    }
    assert!(
        compared > 0,
        "no cancelled call to compare\n{}",
        run.diagnostics(&server)
    );
}

// ---------------------------------------------------------------------------------------
// 6: OPTIONS; and a route to the reject app.

#[test]
fn sipp_options_ping() {
    let cfg = ServerConfig::new(PortBlock::allocate());
    scenario_passes(&cfg, "uac_options.xml", "ping", 3);
}

#[test]
fn sipp_reject_route_answers_486() {
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.routes = vec![Route::reject("busy*", 486), Route::echo("*")];
    let mut server = Server::start(&cfg);
    let mut o = SippOpts::new(Scenario::File(scenario("uac_rejected.xml")), "busy1");
    o.calls = 5;
    o.limit = Duration::from_secs(10);
    let run = run_sipp(&server, &o);
    run.assert_all_succeeded(5, &server);
    assert_server_alive(&mut server);
}

// ---------------------------------------------------------------------------------------
// 7: a real UA hears its own tone.

const TONE_HZ: f64 = 1000.0;
const RATE: u32 = 8000;

#[test]
fn baresip_hears_its_own_tone() {
    baresip_tone_round_trip("", &[]);
}

/// baresip offers RTP/SAVP with SDES keys (`mediaenc=srtp-mand`); the server must answer
/// with its own a=crypto line and the tone must survive both directions of SRTP.
#[test]
fn baresip_hears_its_own_tone_over_srtp() {
    let (server_log, out) = baresip_tone_round_trip(";mediaenc=srtp-mand", &["srtp.so"]);
    assert!(
        server_log.contains("SRTP negotiated"),
        "the server did not answer with SRTP:\n{server_log}\n{}",
        tail(&out, 3000)
    );
    let ended = server_log
        .lines()
        .find(|l| l.contains("call ended"))
        .unwrap_or_default();
    assert!(!ended.is_empty(), "no call ended line:\n{server_log}");
}

/// Runs baresip against `echo` with its account params and extra modules; returns the
/// server log and baresip's output after asserting that the tone came back.
fn baresip_tone_round_trip(account_params: &str, extra_modules: &[&str]) -> (String, String) {
    require_tool("baresip", "baresip");
    let modules = Path::new("/usr/lib/baresip/modules");
    for m in [
        "g711.so",
        "aufile.so",
        "aubridge.so",
        "sndfile.so",
        "account.so",
        "menu.so",
    ]
    .iter()
    .chain(extra_modules)
    {
        assert!(
            modules.join(m).is_file(),
            "baresip module {m} missing in {}",
            modules.display()
        );
    }
    let mut server = Server::start(&ServerConfig::new(PortBlock::allocate()));
    let p = server.ports;
    let dir = temp_dir("leadscaller-baresip-");
    let d = dir.path();
    let rec = d.join("rec");
    fs::create_dir(&rec).expect("rec dir");
    // 6 s of 1 kHz: longer than the call, since aufile goes silent at its end.
    let input = d.join("tone.wav");
    fs::write(&input, wav_bytes(RATE, &tone(RATE, TONE_HZ, 8000.0, 6.0))).expect("write tone");
    let (rtp_min, rtp_max) = p.baresip_rtp();
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/baresip");
    let config = read_lossy(&peers.join("config"))
        .replace("{sip_listen}", &format!("{LOOPBACK}:{}", p.baresip_sip()))
        .replace("{input_wav}", &input.display().to_string())
        .replace("{rtp_ports}", &format!("{rtp_min}-{rtp_max}"))
        .replace("{snd_path}", &rec.display().to_string());
    assert!(
        !config
            .lines()
            .any(|l| !l.starts_with('#') && l.contains('{')),
        "unfilled placeholder in baresip config:\n{config}"
    );
    let mut config = config;
    for m in extra_modules {
        config.push_str(&format!("module\t\t\t{m}\n"));
    }
    fs::write(d.join("config"), config).expect("write config");
    let account = read_lossy(&peers.join("accounts"));
    fs::write(
        d.join("accounts"),
        format!("{}{account_params}\n", account.trim_end()),
    )
    .expect("accounts");
    fs::write(d.join("contacts"), "").expect("contacts");

    let mut cmd = Command::new("baresip");
    cmd.arg("-f")
        .arg(d)
        .arg("-e")
        .arg(format!("/dial sip:echo@{}", server.sip_target()))
        .args(["-t", "5"])
        .current_dir(d);
    let mut ua = Proc::spawn("baresip", cmd, d);
    let status = ua.wait(Duration::from_secs(25));
    let out = ua.stdout() + &ua.stderr();
    let diag = || {
        format!(
            "baresip exit {status}; output:\n{}\n--- server log ---\n{}",
            tail(&out, 6000),
            tail(&server.log(), 4000)
        )
    };
    assert!(status.success(), "{}", diag());
    assert!(
        out.contains("Call established"),
        "baresip never got the call up\n{}",
        diag()
    );

    let dec = fs::read_dir(&rec)
        .expect("rec dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("sndfile wrote no -dec.wav\n{}", diag()));
    let (rate, channels, heard) = read_wav(&dec);
    assert_eq!(
        (rate, channels),
        (RATE, 1),
        "{}: unexpected format",
        dec.display()
    );
    // 100 ms windows (a whole number of 1 kHz periods); a window counts as "tone" when it
    // is loud and nearly all of its energy is at 1 kHz.
    let window = (RATE / 10) as usize;
    let windows: Vec<&[i16]> = heard.chunks_exact(window).collect();
    let toned = windows
        .iter()
        .filter(|w| rms(w) > 2000.0 && tone_energy_share(w, RATE, TONE_HZ) > 0.9)
        .count();
    let loudest = windows.iter().map(|w| rms(w)).fold(0.0, f64::max);
    assert!(
        toned >= 20,
        "expected at least 2 s of the {TONE_HZ} Hz tone back, heard {toned} tone windows of {} ({:.1} s recorded, loudest RMS {loudest:.0})\n{}",
        windows.len(),
        heard.len() as f64 / f64::from(RATE),
        diag()
    );
    assert_server_alive(&mut server);
    eprintln!(
        "baresip: heard {:.1} s of the {TONE_HZ} Hz tone in {:.1} s of received audio",
        toned as f64 / 10.0,
        heard.len() as f64 / f64::from(RATE)
    );
    (
        server.log_when("call ended", 1, Duration::from_secs(5)),
        out,
    )
}

/// Writes the ringing-CANCEL scenario for one ringing flavour into `dir`.
fn ringing_scenario(dir: &Path, status: u16, body_regexp: &str) -> PathBuf {
    let text = std::fs::read_to_string(scenario("uac_cancel_while_ringing.xml")).unwrap();
    let text = text
        .replace("RINGING_STATUS", &status.to_string())
        .replace("RINGING_BODY_REGEXP", body_regexp);
    let path = dir.join(format!("cancel_while_ringing_{status}.xml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn sipp_cancel_while_ringing_gets_200_then_487() {
    for (early_media, status, body) in [
        (false, 180, "CSeq: 1 INVITE"),
        (true, 183, "m=audio [0-9]+ RTP/AVP 0"),
    ] {
        let mut cfg = ServerConfig::new(PortBlock::allocate());
        let mut route = Route::echo("ringing");
        route.extra = vec![
            "answer_after_ms = 10000".into(),
            format!("early_media = {early_media}"),
        ];
        cfg.routes = vec![route];
        let mut server = Server::start(&cfg);
        let file = ringing_scenario(server.dir.path(), status, body);
        let mut o = SippOpts::new(Scenario::File(file), "ringing");
        o.calls = 3;
        o.limit = Duration::from_secs(10);
        let run = run_sipp(&server, &o);
        run.assert_all_succeeded(3, &server);
        assert_eq!(
            run.logs().matches("ringing with").count(),
            3,
            "{}",
            run.logs()
        );
        let log = server.log_when("reason=Cancelled", 3, Duration::from_secs(5));
        assert!(log.matches("reason=Cancelled").count() >= 3, "{log}");
        assert_server_alive(&mut server);
    }
}

#[test]
fn sipp_caller_authenticates_with_digest_and_refreshes_session_timer() {
    for (password, admitted) in [("wonderland", true), ("guess", false)] {
        let mut cfg = ServerConfig::new(PortBlock::allocate());
        cfg.extra_toml = "\n[[users]]\nusername = \"alice\"\npassword = \"wonderland\"\n".into();
        let mut server = Server::start(&cfg);
        let mut o = SippOpts::new(
            Scenario::File(scenario("uac_digest_session_timer.xml")),
            "echo",
        );
        o.limit = Duration::from_secs(10);
        o.extra = vec!["-au".into(), "alice".into(), "-ap".into(), password.into()];
        let run = run_sipp(&server, &o);
        if admitted {
            run.assert_all_succeeded(1, &server);
            let logs = run.logs();
            assert!(
                logs.contains("answered with Session-Expires: 90;refresher=uac / Require: timer"),
                "{logs}"
            );
            assert!(
                logs.contains("refreshed with Session-Expires: 90;refresher=uac"),
                "{logs}"
            );
        } else {
            assert!(
                !run.status.success(),
                "a wrong password must not get through"
            );
            let messages = run.file("messages.log");
            assert!(messages.contains("SIP/2.0 403 Forbidden"), "{messages}");
            assert!(
                server.log().contains("digest authentication rejected"),
                "{}",
                server.log()
            );
        }
        assert_server_alive(&mut server);
    }
}

#[test]
fn sipp_invite_retransmitted_after_200_is_absorbed() {
    let cfg = ServerConfig::new(PortBlock::allocate());
    let (server, _) = scenario_passes(&cfg, "uac_invite_retrans_after_200.xml", "echo", 3);
    let log = server.log();
    assert_eq!(log.matches("incoming call").count(), 3, "{log}");
}

#[test]
fn sipp_rfc4733_digits_are_detected_once_each() {
    for pcap in [
        "dtmf_2833_1.pcap",
        "dtmf_2833_5.pcap",
        "dtmf_2833_pound.pcap",
    ] {
        let path = Path::new("/usr/share/sip-tester").join(pcap);
        assert!(
            path.is_file(),
            "{} missing (Debian package sip-tester)",
            path.display()
        );
    }
    let cfg = ServerConfig::new(PortBlock::allocate());
    let (server, _) = scenario_passes(&cfg, "uac_dtmf_2833.xml", "echo", 1);
    let log = server.log_when("call ended", 1, Duration::from_secs(5));
    let ended = log
        .lines()
        .find(|l| l.contains("call ended"))
        .unwrap_or_default()
        .to_string();
    assert!(
        ended.contains("dtmf=15#"),
        "digits in order, each once:\n{log}"
    );
    assert_eq!(log.matches(" DTMF").count(), 3, "{log}");
}

#[test]
fn sipp_transferee_gets_refer_and_we_hang_up_after_notify_200() {
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.routes = vec![Route::transfer(
        "transfer",
        "sip:agent-desk@127.0.0.1:5999",
        200,
    )];
    let (server, _) = scenario_passes(&cfg, "uac_refer_transferee.xml", "transfer", 1);
    let log = server.log();
    assert!(log.contains("status=202 from_notify=false"), "{log}");
    assert!(log.contains("status=200 from_notify=true"), "{log}");
}

// ---------------------------------------------------------------------------------------
// Recording: both directions, time-aligned, and finalized on SIGTERM.

/// The finished recordings under the server's `recordings/` dir (and any `.part` left).
fn recordings(server: &Server) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let dir = server.dir.path().join("recordings");
    let all: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    all.into_iter()
        .partition(|p| !p.to_string_lossy().ends_with(".part"))
}

/// Left and right channels of a stereo WAV recording, stored encrypted by `server`.
fn stereo(server: &Server, path: &Path) -> (u32, Vec<i16>, Vec<i16>) {
    let (rate, channels, samples) = read_recording_wav(server.dir.path(), path);
    assert_eq!(channels, 2, "{} must be stereo", path.display());
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (rate, left, right)
}

fn recording_config() -> ServerConfig {
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.extra_toml = "\n[recording]\nenabled = true\n".into();
    cfg
}

/// The call's CDR and recording reach the store: `/v1/calls` lists the call with its SIP
/// Call-ID and timestamps, and `/v1/recordings/{id}/audio` serves exactly the decrypted audio.
fn assert_api_serves_the_call_and_its_recording(server: &Server, plain: &[u8]) {
    server.log_when("call record stored", 1, Duration::from_secs(10));
    let token = server.read_api_token();
    let base = server.api_base();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let get = |path: String| {
            let req = http.get(format!("{base}{path}")).bearer_auth(&token);
            async move { req.send().await.unwrap() }
        };
        let calls: serde_json::Value = get("/v1/calls".into()).await.json().await.unwrap();
        let call = &calls["data"][0];
        assert_eq!(calls["data"].as_array().unwrap().len(), 1, "{calls}");
        assert_eq!(call["direction"], "inbound");
        assert!(
            call["sip_call_id"].as_str().is_some_and(|c| !c.is_empty()),
            "{call}"
        );
        assert!(
            call["answer_at"].is_string() && call["end_at"].is_string(),
            "{call}"
        );
        assert!(call["duration_ms"].as_i64().unwrap() > 5000, "{call}");
        assert!(
            call["media_stats"]["frames_sent_audio"].as_u64().unwrap() > 300,
            "{call}"
        );
        let recs: serde_json::Value = get("/v1/recordings".into()).await.json().await.unwrap();
        let rec = &recs["data"][0];
        assert_eq!(rec["call_id"], call["id"], "{recs}");
        assert_eq!(rec["bytes"].as_u64(), Some(plain.len() as u64));
        let audio = get(format!(
            "/v1/recordings/{}/audio",
            rec["id"].as_str().unwrap()
        ))
        .await;
        assert_eq!(audio.status(), 200);
        assert_eq!(audio.headers()["content-type"], "audio/wav");
        assert_eq!(
            &audio.bytes().await.unwrap()[..],
            plain,
            "download = decrypted file"
        );
        // The call's life as events, in order, all naming the call's record.
        let events: serde_json::Value = get("/v1/events".into()).await.json().await.unwrap();
        let mut types: Vec<(String, String)> = events["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_owned(),
                    e["call_id"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        types.reverse(); // the API lists newest first
        let id = call["id"].as_str().unwrap();
        let order: Vec<&str> = types.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            order,
            [
                "call.started",
                "call.answered",
                "call.ended",
                "recording.ready"
            ],
            "{events}"
        );
        assert!(types.iter().all(|(_, c)| c == id), "{events}");
    });
}

#[test]
fn sipp_call_is_recorded_in_stereo_and_time_aligned() {
    let server = Server::start(&recording_config());
    let mut o = SippOpts::new(Scenario::File(scenario("uac_pcma_echo.xml")), "echo");
    o.limit = Duration::from_secs(25);
    o.extra = vec!["-key".into(), "pcap".into(), G711A_PCAP.into()];
    let run = run_sipp(&server, &o);
    run.assert_all_succeeded(1, &server);
    let log = server.log_when("call ended", 1, Duration::from_secs(5));
    let (done, partial) = recordings(&server);
    assert!(partial.is_empty(), "unfinished recordings: {partial:?}");
    assert_eq!(done.len(), 1, "one recording per call: {done:?}\n{log}");
    let file = done[0].file_name().unwrap().to_string_lossy().to_string();
    let key = file
        .strip_suffix(".enc")
        .unwrap_or_else(|| panic!("{file}: not stored encrypted as <key>.enc"));
    assert!(log.contains(&format!("recording=\"{key}\"")), "{log}");
    let (rate, caller, ours) = stereo(&server, &done[0]);
    // The operator's way back to plain audio gives the same bytes as the library.
    let out = server.dir.path().join("decrypted.wav");
    let cli = Command::new(env!("CARGO_BIN_EXE_leadscaller"))
        .args(["recordings", "decrypt"])
        .arg(&done[0])
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(server.dir.path().join("leadscaller.toml"))
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "recordings decrypt: {}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(
        fs::read(&out).unwrap(),
        decrypt_recording(server.dir.path(), &done[0])
    );
    assert_api_serves_the_call_and_its_recording(&server, &fs::read(&out).unwrap());
    assert_eq!(rate, 8000);
    let secs = caller.len() as f64 / 8000.0;
    assert!((6.0..12.0).contains(&secs), "recording lasts {secs:.2} s");
    // The echo app sends each caller frame back in the tick it was played out, so in a
    // time-aligned recording the right channel is the left one, sample for sample (A-law
    // decodes the same both times), with no offset.
    let loud = caller.iter().filter(|s| s.abs() > 500).count();
    assert!(
        loud > 8000,
        "the caller's channel is nearly silent ({loud} loud samples)"
    );
    let best = (0..4000usize)
        .map(|d| {
            let same = caller
                .iter()
                .zip(ours.iter().skip(d))
                .filter(|(a, b)| a == b && a.abs() > 500)
                .count();
            (same, d)
        })
        .max()
        .unwrap();
    let delay_ms = best.1 as f64 / 8.0;
    assert!(
        best.0 * 100 >= loud * 95,
        "only {} of {loud} loud caller samples reappear on the right channel (best delay {delay_ms} ms)",
        best.0
    );
    assert_eq!(delay_ms, 0.0, "the channels are not time-aligned");
    eprintln!(
        "recording: {secs:.2} s stereo, echo on the right {delay_ms} ms behind, {} of {loud} loud samples identical",
        best.0
    );
}

#[test]
fn recording_is_finalized_when_the_server_is_terminated_mid_call() {
    let mut server = Server::start(&recording_config());
    let pid = server.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    });
    let mut o = SippOpts::new(Scenario::File(scenario("uac_pcma_echo.xml")), "echo");
    o.limit = Duration::from_secs(15);
    o.extra = vec!["-key".into(), "pcap".into(), G711A_PCAP.into()];
    // The call cannot complete: the server goes away in the middle of it.
    let _ = run_sipp(&server, &o);
    killer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.is_running() {
        assert!(Instant::now() < deadline, "server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (done, partial) = recordings(&server);
    assert!(
        partial.is_empty(),
        "SIGTERM left unfinished recordings: {partial:?}"
    );
    assert_eq!(done.len(), 1, "{done:?}\n{}", server.log());
    // The final header, not the provisional "unknown length" one: RIFF and data sizes
    // match the file (our recorder writes a 44-byte header).
    let bytes = decrypt_recording(server.dir.path(), &done[0]);
    let le32 = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    assert_eq!(&bytes[36..40], b"data", "44-byte canonical header");
    assert_eq!(le32(4) as usize, bytes.len() - 8, "RIFF size");
    assert_eq!(le32(40) as usize, bytes.len() - 44, "data size");
    let (_, caller, _) = stereo(&server, &done[0]);
    let secs = caller.len() as f64 / 8000.0;
    assert!((1.5..5.0).contains(&secs), "recording lasts {secs:.2} s");
    // The call the shutdown ended still reaches the store before the process exits.
    let log = server.log();
    assert!(
        log.contains("call record stored"),
        "SIGTERM lost the call record:\n{log}"
    );
}

/// The account's `recording_enabled` setting decides, even with `[recording] enabled`: off
/// through the API means the next call leaves no recording file and no recording row; on
/// again means it is recorded.
#[test]
fn the_accounts_recording_setting_decides_whether_a_call_is_recorded() {
    let server = Server::start(&recording_config());
    let token = server.api_token("admin");
    let base = server.api_base();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let set_recording = |on: bool| {
        rt.block_on(async {
            let http = reqwest::Client::new();
            let me: serde_json::Value = http
                .get(format!("{base}/v1/account"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let before = me["settings"]["recording_enabled"].as_bool().unwrap();
            let res = http
                .patch(format!("{base}/v1/account"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"settings": {"recording_enabled": on}}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
            before
        })
    };
    let call = |n: usize| {
        let mut o = SippOpts::new(Scenario::File(scenario("uac_pcma_echo.xml")), "echo");
        o.limit = Duration::from_secs(25);
        o.extra = vec!["-key".into(), "pcap".into(), G711A_PCAP.into()];
        run_sipp(&server, &o).assert_all_succeeded(1, &server);
        server.log_when("call record stored", n, Duration::from_secs(10));
    };
    // The account the server created starts as `[recording] enabled` says.
    assert!(
        set_recording(false),
        "a new account starts with recording on"
    );
    // The call layer re-reads the setting every second.
    server.log_when(
        "account recording setting changed",
        1,
        Duration::from_secs(5),
    );
    call(1);
    let (done, partial) = recordings(&server);
    assert!(
        done.is_empty() && partial.is_empty(),
        "recording off, yet {done:?} {partial:?}"
    );
    set_recording(true);
    server.log_when(
        "account recording setting changed",
        2,
        Duration::from_secs(5),
    );
    call(2);
    let (done, _) = recordings(&server);
    assert_eq!(done.len(), 1, "recording back on: {done:?}");
    let rows: serde_json::Value = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{base}/v1/recordings"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(rows["data"].as_array().unwrap().len(), 1, "{rows}");
}

/// `GET /metrics` needs the `[http] metrics_token`, and counts what happened: a sipp call
/// (answered, with its duration), a malformed SIP datagram, a stream frame that is not JSON
/// (sent by a real WebSocket client) and API requests by route template.
#[test]
fn prometheus_metrics_count_calls_bad_input_streams_and_api_requests() {
    const METRICS_TOKEN: &str = "metrics-token-for-tests-0123456789";
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.http_extra = vec![format!("metrics_token = \"{METRICS_TOKEN}\"")];
    let server = Server::start(&cfg);
    let base = server.api_base();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let scrape = |token: Option<&str>| {
        rt.block_on(async {
            let mut req = http.get(format!("{base}/metrics"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        })
    };
    assert_eq!(scrape(None).0, 401);
    assert_eq!(scrape(Some("wrong-token-wrong-token")).0, 401);

    // One answered call.
    let mut o = SippOpts::new(Scenario::Builtin("uac"), "echo");
    o.call_ms = Some(500);
    o.limit = Duration::from_secs(20);
    run_sipp(&server, &o).assert_all_succeeded(1, &server);
    server.log_when("call ended", 1, Duration::from_secs(5));
    // A datagram that is not SIP.
    let sock = std::net::UdpSocket::bind((LOOPBACK, 0)).unwrap();
    sock.send_to(
        b"INVITE sip:x@y SIP/2.0\r\nVia: garbage\r\n\r\n",
        (LOOPBACK, server.ports.sip()),
    )
    .unwrap();
    // A stream whose first frame is not JSON.
    rt.block_on(async {
        use futures_util::SinkExt;
        let port = server.ports.http();
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/media-stream"))
                .await
                .unwrap();
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            "{not json".into(),
        ))
        .await
        .unwrap();
        let _ = ws.close(None).await;
    });
    // An API request (401: no key) counted under its route template.
    rt.block_on(async {
        let res = http
            .get(format!("{base}/v1/calls/call_123"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    });

    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let (status, text) = scrape(Some(METRICS_TOKEN));
        assert_eq!(status, 200, "{text}");
        let done = text.contains("leadscaller_stream_frames_dropped_total")
            && text.contains("leadscaller_sip_parse_errors_total");
        if done || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
    };
    assert_eq!(
        value("leadscaller_calls_total{direction=\"inbound\",result=\"answered\"}"),
        1.0
    );
    assert_eq!(value("leadscaller_call_duration_seconds_count"), 1.0);
    assert_eq!(value("leadscaller_calls_active"), 0.0);
    assert_eq!(
        value("leadscaller_sip_parse_errors_total{transport=\"UDP\"}"),
        1.0
    );
    assert_eq!(
        value(
            "leadscaller_stream_frames_dropped_total{dialect=\"twilio\",reason=\"invalid_json\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            "leadscaller_api_requests_total{method=\"GET\",route=\"/v1/calls/{id}\",status=\"401\"}"
        ),
        1.0
    );
    assert!(!text.contains("call_123"), "a raw path leaked into a label");
    assert!(!text.contains(METRICS_TOKEN));
}

/// The agent's `transfer` tool is a real SIP REFER: sipp calls a scripted agent, presses 1
/// (SIP INFO) to ask for a person, and after the agent's last line gets REFER to the flow's
/// target; its NOTIFY 200 makes us hang up, and the call record says where it went.
#[test]
fn the_agents_transfer_tool_refers_the_caller() {
    let flow = br#"
[flow]
name = "desk"
start = "greeting"

[intents.human]
phrases = ["a person", "a human"]

[states.greeting]
say = "Hi, this is an automated assistant. Press 1 to talk to a person."
dtmf = { "1" = "human" }

[states.greeting.on.human]
say = "Sure, transferring you now."
tools = [{ name = "transfer", target = "sip:agent-desk@127.0.0.1:5999" }]
"#;
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.files = vec![("agents/desk.toml".into(), flow.to_vec())];
    cfg.routes = vec![Route {
        match_user: "desk".into(),
        app: "agent".into(),
        reject_code: None,
        extra: vec!["flow = \"agents/desk.toml\"".into()],
    }];
    let mut server = Server::start(&cfg);
    let mut o = SippOpts::new(Scenario::File(scenario("uac_agent_transfer.xml")), "desk");
    o.limit = Duration::from_secs(30);
    let run = run_sipp(&server, &o);
    run.assert_all_succeeded(1, &server);
    assert_server_alive(&mut server);
    let log = server.log_when("call ended", 1, Duration::from_secs(5));
    assert!(
        log.contains("app transfers the caller (REFER)"),
        "{}",
        tail(&log, 4000)
    );
    assert!(
        log.contains("status=200 from_notify=true"),
        "{}",
        tail(&log, 4000)
    );
    let ended = log.lines().find(|l| l.contains("call ended")).unwrap();
    assert!(
        ended.contains("transferred to sip:agent-desk@127.0.0.1:5999"),
        "{ended}"
    );
}
