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

/// What the target's replies carry after the status line and the request's Via/From/Call-ID.
const RINGING: &str = "Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0";

/// A `<send>` of the UAS's reply `status` to the last request (our To tag), with `cseq`
/// (`[last_CSeq:]`, or the INVITE's for a 487 after CANCEL) and then `rest`.
fn reply(status: &str, cseq: &str, rest: &str) -> String {
    format!(
        "<send>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      {cseq}
      {rest}
    ]]>
  </send>"
    )
}

/// A reply carrying our SDP answer (`183`, `200`).
fn reply_with_sdp(status: &str) -> String {
    reply(
        status,
        "[last_CSeq:]",
        &format!(
            "Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      {TARGET_SDP}"
        ),
    )
}

/// A whole sipp scenario named `name` with `body`.
fn scenario(name: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
  {body}
</scenario>
"#
    )
}

/// A sipp UAS scenario: 180, `ring_ms` of ringing, 200 with PCMU, then `end`.
fn target_scenario(ring_ms: u32, end: &TargetEnd) -> String {
    target_scenario_with(ring_ms, end, false)
}

/// As [`target_scenario`]; with `early_media` the ringing is a 183 with SDP (its RTP, echoed
/// by sipp, flows before the answer).
fn target_scenario_with(ring_ms: u32, end: &TargetEnd, early_media: bool) -> String {
    let ringing = if early_media {
        reply_with_sdp("183 Session Progress")
    } else {
        reply("180 Ringing", "[last_CSeq:]", RINGING)
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
    let answer = reply_with_sdp("200 OK").replace("<send>", r#"<send retrans="500">"#);
    scenario(
        "Bridge target",
        &format!(
            r#"<recv request="INVITE" crlf="true" rrs="true">
    {capture}
  </recv>
  {ringing}
  <pause milliseconds="{ring_ms}" />
  {answer}
  <recv request="ACK" />
  {after_ack}"#
        ),
    )
}

/// A sipp UAS that answers every INVITE with `status`.
fn busy_scenario(status: u16) -> String {
    let busy = reply(
        &format!("{status} Busy Here"),
        "[last_CSeq:]",
        "Content-Length: 0",
    );
    scenario(
        "Busy target",
        &format!(
            r#"<recv request="INVITE" />
  {busy}
  <recv request="ACK" />"#
        ),
    )
}

/// A sipp UAS that rings until it is cancelled (487 to the INVITE, 200 to the CANCEL).
fn never_answers_scenario() -> String {
    let ringing = reply("180 Ringing", "[last_CSeq:]", RINGING);
    let cancelled = reply("200 OK", "[last_CSeq:]", "Content-Length: 0");
    let terminated = reply(
        "487 Request Terminated",
        "CSeq: [$invite_cseq] INVITE",
        "Content-Length: 0",
    );
    scenario(
        "Target that never answers",
        &format!(
            r#"<recv request="INVITE">
    <action>
      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" check_it="true" assign_to="invite_cseq" />
    </action>
  </recv>
  {ringing}
  <recv request="CANCEL" timeout="30000" />
  {cancelled}
  {terminated}
  <recv request="ACK" />"#
        ),
    )
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

/// One bridged call and what every side left behind.
struct BridgeRun {
    p: PortBlock,
    server: Server,
    /// The caller (baresip or sipp): exit status, output, and (baresip) the audio it heard.
    caller_status: ExitStatus,
    caller_out: String,
    heard: Vec<i16>,
    /// The target (sipp UAS): exit status and its message log.
    target_status: ExitStatus,
    target_log: String,
    /// The server's log once the call ended.
    log: String,
}

impl BridgeRun {
    /// baresip (a 1 kHz tone for `seconds`) calls the bridge route; `target` is the sipp
    /// target's scenario.
    fn baresip(target: &str, seconds: u32) -> BridgeRun {
        let p = PortBlock::allocate();
        let mut cfg = ServerConfig::new(p);
        cfg.routes = vec![bridge_route(p)];
        let server = Server::start(&cfg);
        let target = Target::start(p, target);
        let (caller_status, caller_out, heard) = baresip_call(&server, "bridge", seconds);
        let (target_status, target_log) = target.finish();
        let log = server.log_when("call ended", 1, Duration::from_secs(5));
        BridgeRun {
            p,
            server,
            caller_status,
            caller_out,
            heard,
            target_status,
            target_log,
            log,
        }
    }

    /// A scripted agent whose `transfer` tool bridges to the target with `ring_timeout_s`,
    /// and a sipp caller that presses 1 and waits for our BYE; returns once the call record
    /// is stored.
    fn agent(target: &str, ring_timeout_s: u32) -> BridgeRun {
        let p = PortBlock::allocate();
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
        let target = Target::start(p, target);
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
        let caller_status = caller.wait(Duration::from_secs(50));
        let caller_out = caller.stdout() + &caller.stderr() + &read_lossy(&d.join("errors.log"));
        let (target_status, target_log) = target.finish();
        let log = server.log_when("call record stored", 1, Duration::from_secs(10));
        BridgeRun {
            p,
            server,
            caller_status,
            caller_out,
            heard: Vec::new(),
            target_status,
            target_log,
            log,
        }
    }

    /// Every side's output, for failure messages.
    fn diag(&self) -> String {
        format!(
            "caller {}:\n{}\n--- target {} ---\n{}\n--- server ---\n{}",
            self.caller_status,
            tail(&self.caller_out, 3000),
            self.target_status,
            tail(&self.target_log, 4000),
            tail(&self.log, 6000)
        )
    }

    /// The call was bridged to the sipp target, which saw `caller` as the From user, and the
    /// call record says so.
    fn assert_bridged_as(&self, caller: &str) {
        assert!(
            self.target_log.contains(&format!("From: <sip:{caller}@")),
            "the bridged INVITE's From is not the caller's\n{}",
            self.diag()
        );
        assert!(
            self.log.contains("caller bridged to the transfer target"),
            "{}",
            self.diag()
        );
        assert!(
            self.ended()
                .contains(&format!("bridged to {}", Target::uri(self.p))),
            "{}",
            self.diag()
        );
    }

    /// The server's `call ended` line.
    fn ended(&self) -> &str {
        self.log
            .lines()
            .find(|l| l.contains("call ended"))
            .unwrap_or("")
    }
}

/// The caller hears ringback while the target rings, then its own tone echoed by the
/// target through the bridge; the caller's hang-up ends the target's leg with BYE.
#[test]
fn baresip_hears_ringback_then_the_target_through_the_bridge() {
    let run = BridgeRun::baresip(&target_scenario(1500, &TargetEnd::WaitsForBye), 6);
    assert!(run.caller_status.success(), "{}", run.diag());
    assert!(
        run.target_status.success(),
        "the target's call did not end with our BYE\n{}",
        run.diag()
    );
    // Ringback (440 + 480 Hz: each about half the energy) first, then the echoed tone.
    let ring = windows_of(&run.heard, 440.0, 0.3);
    let echoed = windows_of(&run.heard, TONE_HZ, 0.9);
    let first_echo = echoed.iter().position(|&x| x);
    let rang = ring.iter().filter(|&&x| x).count();
    assert!(
        rang >= 8,
        "expected ~1.5 s of ringback, heard {rang} windows\n{}",
        run.diag()
    );
    let toned = echoed.iter().filter(|&&x| x).count();
    assert!(
        toned >= 20,
        "expected at least 2 s of the caller's tone back through the target, heard {toned} windows\n{}",
        run.diag()
    );
    let last_ring = ring.iter().rposition(|&x| x).unwrap_or(0);
    assert!(
        first_echo.is_some_and(|e| e > last_ring),
        "ringback must stop when the target answers (last ring window {last_ring}, first echo {first_echo:?})\n{}",
        run.diag()
    );
    // The target saw the caller's number as From (baresip's `test` user).
    run.assert_bridged_as("test");
    eprintln!(
        "bridge: {rang} ringback windows, then {toned} windows of the echoed tone (first at {:.1} s)",
        first_echo.unwrap_or(0) as f64 / 10.0
    );
}

/// A target that sends early media (183 with SDP) is bridged before it answers: the caller
/// hears the target (here its echo of the caller's tone) instead of our ringback.
#[test]
fn the_targets_early_media_reaches_the_caller_before_the_answer() {
    let run = BridgeRun::baresip(
        &target_scenario_with(2500, &TargetEnd::WaitsForBye, true),
        6,
    );
    assert!(run.target_status.success(), "{}", run.diag());
    assert!(
        run.log
            .contains("the target's early media is bridged to the caller"),
        "{}",
        run.diag()
    );
    let ring = windows_of(&run.heard, 440.0, 0.3);
    let echoed = windows_of(&run.heard, TONE_HZ, 0.9);
    let rang = ring.iter().filter(|&&x| x).count();
    let first_echo = echoed.iter().position(|&x| x);
    assert!(
        rang <= 2,
        "our ringback played over early media ({rang} windows)\n{}",
        run.diag()
    );
    // The target answers 2.5 s in; its echo is heard well before that.
    assert!(
        first_echo.is_some_and(|w| w < 15),
        "first echoed window {first_echo:?}\n{}",
        run.diag()
    );
    assert!(run.ended().contains("bridged to"), "{}", run.diag());
}

/// The target hangs up first: we hang up the caller; the record says where it was bridged.
#[test]
fn the_target_hanging_up_ends_the_callers_call() {
    let run = BridgeRun::baresip(&target_scenario(200, &TargetEnd::HangsUpAfter(2000)), 10);
    assert!(run.target_status.success(), "{}", run.diag());
    assert!(
        run.log.contains("bridged leg ended; hanging up the caller"),
        "{}",
        run.diag()
    );
    assert!(run.ended().contains("reason=LocalBye"), "{}", run.diag());
    // baresip's call ended well before its own 10 s timer: about 2.2 s of audio.
    let seconds = run.heard.len() as f64 / f64::from(RATE);
    assert!(
        (1.5..6.0).contains(&seconds),
        "baresip heard {seconds:.1} s; the call should end when the target hangs up\n{}",
        run.diag()
    );
}

/// A busy target fails the transfer: the caller is hung up and the record says why.
#[test]
fn a_busy_target_fails_the_transfer_and_the_caller_is_hung_up() {
    let run = BridgeRun::baresip(&busy_scenario(486), 8);
    assert!(run.target_status.success(), "{}", run.diag());
    let ended = run.ended();
    assert!(
        ended.contains("transfer failed") && ended.contains("answered 486"),
        "{}",
        run.diag()
    );
    assert!(ended.contains("reason=LocalBye"), "{}", run.diag());
}

/// The agent's `transfer` tool with `[transfer] method = "bridge"`: sipp calls a scripted
/// agent and presses 1; after the agent's last line we call the target (From: the caller)
/// and bridge it in; when the target hangs up we hang up the caller. The call record keeps
/// the agent's report (its tool calls) although the agent app was swapped for the bridge.
#[test]
fn the_agents_transfer_tool_bridges_the_caller_to_the_target() {
    let run = BridgeRun::agent(&target_scenario(300, &TargetEnd::HangsUpAfter(1500)), 10);
    assert!(
        run.caller_status.success(),
        "the caller did not get our BYE\n{}",
        run.diag()
    );
    assert!(run.target_status.success(), "{}", run.diag());
    run.assert_bridged_as("sipp");
    let target = Target::uri(run.p);
    // The agent's report survived the swap: the call's tool calls name the transfer.
    let token = run.server.api_token("read");
    let base = run.server.api_base();
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
        tools.contains("transfer") && tools.contains(&target),
        "{calls}\n{}",
        run.diag()
    );
}

/// A target that rings past `ring_timeout_s` is cancelled (CANCEL, 487); the caller goes
/// back to the agent, whose flow says its `transfer_failed` line and hangs up.
#[test]
fn a_target_ringing_past_the_timeout_is_cancelled() {
    let run = BridgeRun::agent(&never_answers_scenario(), 5);
    assert!(
        run.caller_status.success(),
        "the caller did not get our BYE\n{}",
        run.diag()
    );
    assert!(
        run.target_status.success(),
        "the target was not cancelled\n{}",
        run.diag()
    );
    let failed = run
        .log
        .lines()
        .find(|l| l.contains("the transfer failed; the flow goes on"))
        .unwrap_or_else(|| panic!("the agent never heard of the failure\n{}", run.diag()));
    assert!(
        failed.contains("did not answer"),
        "{failed}\n{}",
        run.diag()
    );
    assert!(
        run.log.contains("Sorry, nobody is free right now."),
        "the flow's transfer_failed line was not said\n{}",
        run.diag()
    );
    let ended = run.ended();
    assert!(
        ended.contains("agent hung up") && ended.contains("reason=LocalBye"),
        "{}",
        run.diag()
    );
}

/// The target's ports for a baresip target: SIP and its RTP range (inclusive).
const BARESIP_TARGET_SIP: u16 = 27;
const BARESIP_TARGET_RTP: (u16, u16) = (28, 31);
/// The baresip target's own tone.
const TARGET_TONE_HZ: f64 = 600.0;

/// A bridged leg with `transfer_srtp = "mandatory"` to a real SRTP peer: a second baresip,
/// auto-answering with `mediaenc=srtp-mand`, playing a 600 Hz tone. The caller (baresip, 1 kHz)
/// must hear the target's tone and the target the caller's: SDES keys negotiated on the new
/// leg, audio encrypted and decrypted both ways.
#[test]
fn a_bridged_leg_with_srtp_carries_audio_both_ways_to_a_baresip_target() {
    let p = PortBlock::allocate();
    let target_uri = format!("sip:test@{LOOPBACK}:{}", p.port(BARESIP_TARGET_SIP));
    let mut cfg = ServerConfig::new(p);
    let mut route = Route::transfer("bridge", &target_uri, 0);
    route.extra.push("transfer_method = \"bridge\"".into());
    route.extra.push("transfer_srtp = \"mandatory\"".into());
    cfg.routes = vec![route];
    let server = Server::start(&cfg);

    // The target: baresip listening, answering by itself over SRTP.
    require_tool("baresip", "baresip");
    let dir = temp_dir("leadscaller-baresip-target-");
    let d = dir.path();
    let rec = d.join("rec");
    fs::create_dir(&rec).expect("rec dir");
    let input = d.join("tone.wav");
    fs::write(
        &input,
        wav_bytes(RATE, &tone(RATE, TARGET_TONE_HZ, 8000.0, 20.0)),
    )
    .expect("tone");
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/baresip");
    let (lo, hi) = BARESIP_TARGET_RTP;
    let mut config = read_lossy(&peers.join("config"))
        .replace(
            "{sip_listen}",
            &format!("{LOOPBACK}:{}", p.port(BARESIP_TARGET_SIP)),
        )
        .replace("{input_wav}", &input.display().to_string())
        .replace("{rtp_ports}", &format!("{}-{}", p.port(lo), p.port(hi)))
        .replace("{snd_path}", &rec.display().to_string());
    config.push_str("module\t\t\tsrtp.so\n");
    fs::write(d.join("config"), config).expect("config");
    fs::write(
        d.join("accounts"),
        "<sip:test@127.0.0.1>;regint=0;audio_codecs=PCMU;answermode=auto;mediaenc=srtp-mand\n",
    )
    .expect("accounts");
    fs::write(d.join("contacts"), "").expect("contacts");
    let mut cmd = Command::new("baresip");
    cmd.arg("-f").arg(d).args(["-t", "12"]).current_dir(d);
    let mut target = Proc::spawn("baresip-target", cmd, d);
    std::thread::sleep(Duration::from_millis(800));

    let (status, out, heard) = baresip_call(&server, "bridge", 6);
    let _ = target.interrupt_and_wait(Duration::from_secs(10));
    let target_out = target.stdout() + &target.stderr();
    let log = server.log_when("call ended", 1, Duration::from_secs(5));
    let diag = format!(
        "caller {status}:\n{}\n--- target ---\n{}\n--- server ---\n{}",
        tail(&out, 3000),
        tail(&target_out, 3000),
        tail(&log, 5000)
    );
    assert!(
        log.contains("SRTP on the bridged leg"),
        "no SRTP on the new leg\n{diag}"
    );
    let target_heard = fs::read_dir(&rec)
        .expect("rec dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .map(|p| read_wav(&p).2)
        .unwrap_or_else(|| panic!("the target recorded nothing\n{diag}"));
    let caller_got = windows_of(&heard, TARGET_TONE_HZ, 0.9)
        .iter()
        .filter(|&&x| x)
        .count();
    let target_got = windows_of(&target_heard, TONE_HZ, 0.9)
        .iter()
        .filter(|&&x| x)
        .count();
    assert!(
        caller_got >= 20,
        "the caller heard {caller_got} windows of the target's tone\n{diag}"
    );
    assert!(
        target_got >= 20,
        "the target heard {target_got} windows of the caller's tone\n{diag}"
    );
    eprintln!(
        "srtp bridge: the caller heard {:.1} s of the target's tone, the target {:.1} s of the caller's",
        caller_got as f64 / 10.0,
        target_got as f64 / 10.0
    );
}
