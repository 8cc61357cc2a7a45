//! Transfer by a bridged outbound leg, against real peers: the caller is baresip (or sipp),
//! the transfer target is sipp as a UAS that rings, answers and echoes RTP (`-rtp_echo`).
//! We place the INVITE, play ringback to the caller while the target rings, bridge the two
//! legs' audio, and hang up each side when the other ends.
//!
//! Needs `baresip` and `sip-tester` (sipp), which `scripts/setup.sh` installs.

mod common;

use common::{
    LOOPBACK, PortBlock, Proc, Route, Server, ServerConfig, read_lossy, read_wav, require_tool,
    rms, tail, tone, tone_energy_share, wav_bytes,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

const RATE: u32 = 8000;
const TONE_HZ: f64 = 1000.0;

/// The target's ports in the test's block: SIP, sipp control, RTP (echoed).
const TARGET_SIP: u16 = 24;
const TARGET_CONTROL: u16 = 25;
const TARGET_MEDIA: u16 = 26;

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// What the target does once its 200 OK is acknowledged.
enum TargetEnd {
    /// Waits for our BYE.
    WaitsForBye,
    /// Hangs up after this many ms.
    HangsUpAfter(u32),
}

const TARGET_SDP: &str = "v=0
      o=target 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000";

/// A sipp UAS scenario: 180, `ring_ms` of ringing, 200 with PCMU, then `end`.
fn target_scenario(ring_ms: u32, end: &TargetEnd) -> String {
    target_scenario_with(ring_ms, end, false)
}

/// As [`target_scenario`]; with `early_media` the ringing is a 183 with SDP (its RTP, echoed
/// by sipp, flows before the answer).
fn target_scenario_with(ring_ms: u32, end: &TargetEnd, early_media: bool) -> String {
    let ringing = if early_media {
        format!(
            "SIP/2.0 183 Session Progress
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      {TARGET_SDP}"
        )
    } else {
        "SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0"
            .to_owned()
    };
    let capture = match end {
        TargetEnd::WaitsForBye => "",
        TargetEnd::HangsUpAfter(_) => {
            r#"<action>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="from_hdr" />
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="to_hdr" />
    </action>"#
        }
    };
    let after_ack = match end {
        TargetEnd::WaitsForBye => r#"<recv request="BYE" timeout="30000" />
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>"#
            .to_owned(),
        TargetEnd::HangsUpAfter(ms) => format!(
            r#"<pause milliseconds="{ms}" />
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From:[$to_hdr];tag=[pid]SIPpTag01[call_number]
      To:[$from_hdr]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" />"#
        ),
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="Bridge target">
  <recv request="INVITE" crlf="true" rrs="true">
    {capture}
  </recv>
  <send>
    <![CDATA[
      {ringing}
    ]]>
  </send>
  <pause milliseconds="{ring_ms}" />
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      {TARGET_SDP}
    ]]>
  </send>
  <recv request="ACK" />
  {after_ack}
</scenario>
"#
    )
}

/// A sipp UAS that answers every INVITE with `status`.
fn busy_scenario(status: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="Busy target">
  <recv request="INVITE" />
  <send>
    <![CDATA[
      SIP/2.0 {status} Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK" />
</scenario>
"#
    )
}

/// A sipp UAS that rings until it is cancelled (487 to the INVITE, 200 to the CANCEL).
fn never_answers_scenario() -> String {
    r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="Target that never answers">
  <recv request="INVITE">
    <action>
      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" check_it="true" assign_to="invite_cseq" />
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <recv request="CANCEL" timeout="30000" />
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <send>
    <![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [$invite_cseq] INVITE
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK" />
</scenario>
"#
    .to_owned()
}

/// The transfer target: sipp as a UAS for one call on the block's target ports.
struct Target {
    proc: Proc,
    dir: tempfile::TempDir,
}

impl Target {
    fn start(p: PortBlock, scenario: &str) -> Target {
        require_tool("sipp", "sip-tester");
        let dir = temp_dir("leadscaller-target-");
        let d = dir.path();
        let file = d.join("target.xml");
        fs::write(&file, scenario).expect("write scenario");
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(&file)
            .args(["-i", LOOPBACK, "-p", &p.port(TARGET_SIP).to_string()])
            .args(["-mi", LOOPBACK, "-mp", &p.port(TARGET_MEDIA).to_string()])
            .args(["-cp", &p.port(TARGET_CONTROL).to_string()])
            .arg("-rtp_echo")
            .args(["-m", "1", "-timeout", "40s", "-timeout_error"])
            .arg("-nostdin")
            .args(["-trace_msg", "-message_file"])
            .arg(d.join("messages.log"))
            .args(["-trace_err", "-error_file"])
            .arg(d.join("errors.log"))
            .current_dir(d);
        let proc = Proc::spawn("sipp-target", cmd, d);
        // sipp binds its port before it reads the scenario's first recv.
        std::thread::sleep(Duration::from_millis(300));
        Target { proc, dir }
    }

    fn uri(p: PortBlock) -> String {
        format!("sip:sales@{LOOPBACK}:{}", p.port(TARGET_SIP))
    }

    /// Waits for sipp to end; its exit status and what it logged.
    fn finish(mut self) -> (ExitStatus, String) {
        let status = self.proc.wait(Duration::from_secs(45));
        let messages = read_lossy(&self.dir.path().join("messages.log"));
        let errors = read_lossy(&self.dir.path().join("errors.log"));
        let out = self.proc.stdout() + &self.proc.stderr();
        (
            status,
            format!("{out}\n--- messages ---\n{messages}\n--- errors ---\n{errors}"),
        )
    }
}

/// One baresip call to `user` sending a 1 kHz tone for `seconds`; returns its exit status,
/// its output and the audio it heard.
fn baresip_call(server: &Server, user: &str, seconds: u32) -> (ExitStatus, String, Vec<i16>) {
    require_tool("baresip", "baresip");
    let p = server.ports;
    let dir = temp_dir("leadscaller-baresip-");
    let d = dir.path();
    let rec = d.join("rec");
    fs::create_dir(&rec).expect("rec dir");
    let input = d.join("tone.wav");
    let tone = tone(RATE, TONE_HZ, 8000.0, f64::from(seconds) + 2.0);
    fs::write(&input, wav_bytes(RATE, &tone)).expect("write tone");
    let (rtp_min, rtp_max) = p.baresip_rtp();
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/baresip");
    let config = read_lossy(&peers.join("config"))
        .replace("{sip_listen}", &format!("{LOOPBACK}:{}", p.baresip_sip()))
        .replace("{input_wav}", &input.display().to_string())
        .replace("{rtp_ports}", &format!("{rtp_min}-{rtp_max}"))
        .replace("{snd_path}", &rec.display().to_string());
    fs::write(d.join("config"), config).expect("write config");
    fs::copy(peers.join("accounts"), d.join("accounts")).expect("accounts");
    fs::write(d.join("contacts"), "").expect("contacts");
    let mut cmd = Command::new("baresip");
    cmd.arg("-f")
        .arg(d)
        .arg("-e")
        .arg(format!("/dial sip:{user}@{}", server.sip_target()))
        .args(["-t", &seconds.to_string()])
        .current_dir(d);
    let mut ua = Proc::spawn("baresip", cmd, d);
    let status = ua.wait(Duration::from_secs(u64::from(seconds) + 20));
    let out = ua.stdout() + &ua.stderr();
    let heard = fs::read_dir(&rec)
        .expect("rec dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .map(|p: PathBuf| read_wav(&p).2)
        .unwrap_or_default();
    (status, out, heard)
}

/// 100 ms windows of `heard` that hold mostly `hz` (and are loud).
fn windows_of(heard: &[i16], hz: f64, share: f64) -> Vec<bool> {
    heard
        .chunks_exact((RATE / 10) as usize)
        .map(|w| rms(w) > 1000.0 && tone_energy_share(w, RATE, hz) > share)
        .collect()
}

fn bridge_route(p: PortBlock) -> Route {
    let mut r = Route::transfer("bridge", &Target::uri(p), 0);
    r.extra.push("transfer_method = \"bridge\"".into());
    r
}

/// The caller hears ringback while the target rings, then its own tone echoed by the
/// target through the bridge; the caller's hang-up ends the target's leg with BYE.
#[test]
fn baresip_hears_ringback_then_the_target_through_the_bridge() {
    let p = PortBlock::allocate();
    let mut cfg = ServerConfig::new(p);
    cfg.routes = vec![bridge_route(p)];
    let server = Server::start(&cfg);
    let target = Target::start(p, &target_scenario(1500, &TargetEnd::WaitsForBye));
    let (status, out, heard) = baresip_call(&server, "bridge", 6);
    let (target_status, target_log) = target.finish();
    let log = server.log_when("call ended", 1, Duration::from_secs(5));
    let diag = || {
        format!(
            "baresip {status}:\n{}\n--- target {target_status} ---\n{}\n--- server ---\n{}",
            tail(&out, 3000),
            tail(&target_log, 4000),
            tail(&log, 5000)
        )
    };
    assert!(status.success(), "{}", diag());
    assert!(
        target_status.success(),
        "the target's call did not end with our BYE\n{}",
        diag()
    );
    // Ringback (440 + 480 Hz: each about half the energy) first, then the echoed tone.
    let ring = windows_of(&heard, 440.0, 0.3);
    let echoed = windows_of(&heard, TONE_HZ, 0.9);
    let first_echo = echoed.iter().position(|&x| x);
    let rang = ring.iter().filter(|&&x| x).count();
    assert!(
        rang >= 8,
        "expected ~1.5 s of ringback, heard {rang} windows\n{}",
        diag()
    );
    let toned = echoed.iter().filter(|&&x| x).count();
    assert!(
        toned >= 20,
        "expected at least 2 s of the caller's tone back through the target, heard {toned} windows\n{}",
        diag()
    );
    let last_ring = ring.iter().rposition(|&x| x).unwrap_or(0);
    assert!(
        first_echo.is_some_and(|e| e > last_ring),
        "ringback must stop when the target answers (last ring window {last_ring}, first echo {first_echo:?})\n{}",
        diag()
    );
    assert!(
        log.contains("caller bridged to the transfer target"),
        "{}",
        diag()
    );
    // The target saw the caller's number as From (baresip's `test` user).
    assert!(
        target_log.contains("From: <sip:test@"),
        "the bridged INVITE's From is not the caller's\n{}",
        diag()
    );
    let ended = log.lines().find(|l| l.contains("call ended")).unwrap_or("");
    assert!(
        ended.contains(&format!("bridged to {}", Target::uri(p))),
        "{ended}\n{}",
        diag()
    );
    eprintln!(
        "bridge: {rang} ringback windows, then {toned} windows of the echoed tone (first at {:.1} s)",
        first_echo.unwrap_or(0) as f64 / 10.0
    );
}

/// A target that sends early media (183 with SDP) is bridged before it answers: the caller
/// hears the target (here its echo of the caller's tone) instead of our ringback.
#[test]
fn the_targets_early_media_reaches_the_caller_before_the_answer() {
    let p = PortBlock::allocate();
    let mut cfg = ServerConfig::new(p);
    cfg.routes = vec![bridge_route(p)];
    let server = Server::start(&cfg);
    let target = Target::start(
        p,
        &target_scenario_with(2500, &TargetEnd::WaitsForBye, true),
    );
    let (status, out, heard) = baresip_call(&server, "bridge", 6);
    let (target_status, target_log) = target.finish();
    let log = server.log_when("call ended", 1, Duration::from_secs(5));
    let diag = || {
        format!(
            "baresip {status}:\n{}\n--- target {target_status} ---\n{}\n--- server ---\n{}",
            tail(&out, 3000),
            tail(&target_log, 4000),
            tail(&log, 5000)
        )
    };
    assert!(target_status.success(), "{}", diag());
    assert!(
        log.contains("the target's early media is bridged to the caller"),
        "{}",
        diag()
    );
    let ring = windows_of(&heard, 440.0, 0.3);
    let echoed = windows_of(&heard, TONE_HZ, 0.9);
    let rang = ring.iter().filter(|&&x| x).count();
    let first_echo = echoed.iter().position(|&x| x);
    assert!(
        rang <= 2,
        "our ringback played over early media ({rang} windows)\n{}",
        diag()
    );
    // The target answers 2.5 s in; its echo is heard well before that.
    assert!(
        first_echo.is_some_and(|w| w < 15),
        "first echoed window {first_echo:?}\n{}",
        diag()
    );
    let ended = log.lines().find(|l| l.contains("call ended")).unwrap_or("");
    assert!(ended.contains("bridged to"), "{ended}\n{}", diag());
}

/// The target hangs up first: we hang up the caller; the record says where it was bridged.
#[test]
fn the_target_hanging_up_ends_the_callers_call() {
    let p = PortBlock::allocate();
    let mut cfg = ServerConfig::new(p);
    cfg.routes = vec![bridge_route(p)];
    let server = Server::start(&cfg);
    let target = Target::start(p, &target_scenario(200, &TargetEnd::HangsUpAfter(2000)));
    let (status, out, heard) = baresip_call(&server, "bridge", 10);
    let (target_status, target_log) = target.finish();
    let log = server.log_when("call ended", 1, Duration::from_secs(5));
    let diag = || {
        format!(
            "baresip {status}:\n{}\n--- target {target_status} ---\n{}\n--- server ---\n{}",
            tail(&out, 3000),
            tail(&target_log, 4000),
            tail(&log, 5000)
        )
    };
    assert!(target_status.success(), "{}", diag());
    assert!(
        log.contains("bridged leg ended; hanging up the caller"),
        "{}",
        diag()
    );
    let ended = log.lines().find(|l| l.contains("call ended")).unwrap_or("");
    assert!(ended.contains("reason=LocalBye"), "{ended}\n{}", diag());
    // baresip's call ended well before its own 10 s timer: about 2.2 s of audio.
    let seconds = heard.len() as f64 / f64::from(RATE);
    assert!(
        (1.5..6.0).contains(&seconds),
        "baresip heard {seconds:.1} s; the call should end when the target hangs up\n{}",
        diag()
    );
}

/// A busy target fails the transfer: the caller is hung up and the record says why.
#[test]
fn a_busy_target_fails_the_transfer_and_the_caller_is_hung_up() {
    let p = PortBlock::allocate();
    let mut cfg = ServerConfig::new(p);
    cfg.routes = vec![bridge_route(p)];
    let server = Server::start(&cfg);
    let target = Target::start(p, &busy_scenario(486));
    let (status, out, _) = baresip_call(&server, "bridge", 8);
    let (target_status, target_log) = target.finish();
    let log = server.log_when("call ended", 1, Duration::from_secs(5));
    let ended = log.lines().find(|l| l.contains("call ended")).unwrap_or("");
    let diag = format!(
        "baresip {status}:\n{}\n--- target {target_status} ---\n{}\n--- server ---\n{}",
        tail(&out, 3000),
        tail(&target_log, 3000),
        tail(&log, 4000)
    );
    assert!(target_status.success(), "{diag}");
    assert!(
        ended.contains("transfer failed") && ended.contains("answered 486"),
        "{ended}\n{diag}"
    );
    assert!(ended.contains("reason=LocalBye"), "{ended}\n{diag}");
}

/// Runs a scripted agent whose `transfer` tool bridges to the target with `ring_timeout_s`,
/// and a sipp caller that presses 1 and waits for our BYE; returns (caller status, caller
/// output, target status, target log, server log) with the call record stored.
fn agent_transfer_call(
    p: PortBlock,
    target_scenario: &str,
    ring_timeout_s: u32,
) -> (Server, ExitStatus, String, ExitStatus, String, String) {
    let flow = format!(
        r#"
[flow]
name = "desk"
start = "greeting"
transfer_failed = {{ say = "Sorry, nobody is free right now. Goodbye.", tools = [{{ name = "end_call" }}] }}

[transfer]
method = "bridge"
ring_timeout_s = {ring_timeout_s}

[intents.human]
phrases = ["a person", "a human"]

[states.greeting]
say = "Hi, this is an automated assistant. Press 1 to talk to a person."
dtmf = {{ "1" = "human" }}

[states.greeting.on.human]
say = "Sure, connecting you now."
tools = [{{ name = "transfer", target = "{}" }}]
"#,
        Target::uri(p)
    );
    let mut cfg = ServerConfig::new(p);
    cfg.files = vec![("agents/desk.toml".into(), flow.into_bytes())];
    cfg.routes = vec![Route {
        match_user: "desk".into(),
        app: "agent".into(),
        reject_code: None,
        extra: vec!["flow = \"agents/desk.toml\"".into()],
    }];
    let server = Server::start(&cfg);
    let target = Target::start(p, target_scenario);
    require_tool("sipp", "sip-tester");
    let dir = temp_dir("leadscaller-sipp-");
    let d = dir.path();
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/sipp/uac_agent_bridge.xml");
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(&scenario)
        .arg(server.sip_target())
        .args(["-s", "desk"])
        .args(["-i", LOOPBACK, "-p", &p.peer_sip().to_string()])
        .args(["-mi", LOOPBACK, "-mp", &p.peer_media().to_string()])
        .args(["-cp", &p.sipp_control().to_string()])
        .args(["-m", "1", "-timeout", "40s", "-timeout_error"])
        .arg("-nostdin")
        .args(["-trace_err", "-error_file"])
        .arg(d.join("errors.log"))
        .current_dir(d);
    let mut caller = Proc::spawn("sipp-caller", cmd, d);
    let status = caller.wait(Duration::from_secs(50));
    let caller_out = caller.stdout() + &caller.stderr() + &read_lossy(&d.join("errors.log"));
    let (target_status, target_log) = target.finish();
    let log = server.log_when("call record stored", 1, Duration::from_secs(10));
    (server, status, caller_out, target_status, target_log, log)
}

/// The agent's `transfer` tool with `[transfer] method = "bridge"`: sipp calls a scripted
/// agent and presses 1; after the agent's last line we call the target (From: the caller)
/// and bridge it in; when the target hangs up we hang up the caller. The call record keeps
/// the agent's report (its tool calls) although the agent app was swapped for the bridge.
#[test]
fn the_agents_transfer_tool_bridges_the_caller_to_the_target() {
    let p = PortBlock::allocate();
    let (server, status, caller_out, target_status, target_log, log) =
        agent_transfer_call(p, &target_scenario(300, &TargetEnd::HangsUpAfter(1500)), 10);
    let diag = || {
        format!(
            "caller {status}:\n{}\n--- target {target_status} ---\n{}\n--- server ---\n{}",
            tail(&caller_out, 3000),
            tail(&target_log, 4000),
            tail(&log, 6000)
        )
    };
    assert!(
        status.success(),
        "the caller did not get our BYE\n{}",
        diag()
    );
    assert!(target_status.success(), "{}", diag());
    assert!(
        target_log.contains("From: <sip:sipp@"),
        "the bridged INVITE's From is not the caller's\n{}",
        diag()
    );
    assert!(
        log.contains("caller bridged to the transfer target"),
        "{}",
        diag()
    );
    let ended = log.lines().find(|l| l.contains("call ended")).unwrap_or("");
    assert!(
        ended.contains(&format!("bridged to {}", Target::uri(p))),
        "{ended}\n{}",
        diag()
    );
    // The agent's report survived the swap: the call's tool calls name the transfer.
    let token = server.api_token("read");
    let base = server.api_base();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let calls: serde_json::Value = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{base}/v1/calls"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let tools = calls["data"][0]["tool_calls"].to_string();
    assert!(
        tools.contains("transfer") && tools.contains(&Target::uri(p)),
        "{calls}\n{}",
        diag()
    );
}

/// A target that rings past `ring_timeout_s` is cancelled (CANCEL, 487); the caller goes
/// back to the agent, whose flow says its `transfer_failed` line and hangs up.
#[test]
fn a_target_ringing_past_the_timeout_is_cancelled() {
    let p = PortBlock::allocate();
    let (_server, status, caller_out, target_status, target_log, log) =
        agent_transfer_call(p, &never_answers_scenario(), 5);
    let ended = log.lines().find(|l| l.contains("call ended")).unwrap_or("");
    let diag = format!(
        "caller {status}:\n{}\n--- target {target_status} ---\n{}\n--- server ---\n{}",
        tail(&caller_out, 3000),
        tail(&target_log, 4000),
        tail(&log, 6000)
    );
    assert!(status.success(), "the caller did not get our BYE\n{diag}");
    assert!(
        target_status.success(),
        "the target was not cancelled\n{diag}"
    );
    let failed = log
        .lines()
        .find(|l| l.contains("the transfer failed; the flow goes on"))
        .unwrap_or_else(|| panic!("the agent never heard of the failure\n{diag}"));
    assert!(failed.contains("did not answer"), "{failed}\n{diag}");
    assert!(
        log.contains("Sorry, nobody is free right now."),
        "the flow's transfer_failed line was not said\n{diag}"
    );
    assert!(
        ended.contains("agent hung up") && ended.contains("reason=LocalBye"),
        "{ended}\n{diag}"
    );
}
