//! `leadscaller demo` (the default): the simulated caller talks with the scripted agent of
//! `sip-config/agents/appointment-setter.toml` on the embedded offline stages (flite voice,
//! PocketSphinx, energy VAD) and books a callback. Prints the live transcript, each turn's
//! latency, the tools, the outcome and where the (encrypted) recording and its decrypted copy are.

use super::live::AgentEvent;
use super::script::{Conversation, Cue, FRAME, TurnTaking, UTTERANCES};
use super::sip_caller::SipCaller;
use super::wav::ulaw_payload;
use super::{DemoError, DemoServer, say};
use crate::agent::report::AgentReport;
use crate::call::CallRecord;
use crate::rtp::packet::RtpHeader;
use crate::store::at_rest::{DecryptingReader, MasterKeyRing, generate_key_file};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// The example flow, written into the demo's directory so the demo runs from any directory.
const FLOW: &str = include_str!("../../sip-config/agents/appointment-setter.toml");
/// Where the flow goes, relative to the demo's directory.
const FLOW_PATH: &str = "agents/appointment-setter.toml";
/// The disposition the caller's script leads to.
pub const EXPECTED_DISPOSITION: &str = "booked";
/// The longest the call may take.
const CALL_LIMIT: Duration = Duration::from_secs(150);
/// How long the caller waits for the agent to hang up after its last reply.
const HANGUP_WAIT: Duration = Duration::from_secs(10);

/// What the agent demo saw.
#[derive(Debug)]
pub struct AgentDemoReport {
    /// The server's record of the call.
    pub record: CallRecord,
    /// What the agent reported: transcript, tools, disposition, latency.
    pub agent: AgentReport,
    /// Answer → the agent's BYE.
    pub call_time: Duration,
    /// The directory kept after the demo (config, database, recordings, key).
    pub dir: PathBuf,
    /// The encrypted recording.
    pub recording: Option<PathBuf>,
    /// Its decrypted copy.
    pub wav: Option<PathBuf>,
}

impl AgentDemoReport {
    /// The median of the turns' end of caller speech → first reply frame on the wire.
    pub fn median_turn_latency_ms(&self) -> Option<u64> {
        let mut v: Vec<u64> = self
            .agent
            .latency
            .iter()
            .filter_map(|l| l.first_frame_out_ms)
            .collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    }
}

/// Runs the agent demo; `events` are the server agent's live events (see [`super::live`]).
pub async fn run(
    events: mpsc::UnboundedReceiver<AgentEvent>,
) -> Result<AgentDemoReport, DemoError> {
    let dir = tempfile::Builder::new()
        .prefix("leadscaller-demo-")
        .tempdir()?
        .keep();
    let result = run_in(dir.clone(), events).await;
    if result.is_err() {
        say(&format!("demo: files kept in {}", dir.display()));
    }
    result
}

async fn run_in(
    dir: PathBuf,
    mut events: mpsc::UnboundedReceiver<AgentEvent>,
) -> Result<AgentDemoReport, DemoError> {
    let config_path = write_files(&dir)?;
    let toml = std::fs::read_to_string(&config_path)?;
    let mut server = DemoServer::start(&toml, &config_path.display().to_string(), &dir).await?;
    say(&format!(
        "server: SIP/UDP on {}, route * -> agent {FLOW_PATH} (flite voice, PocketSphinx, energy VAD; recording on)",
        server.addr
    ));
    let talked = tokio::time::timeout(CALL_LIMIT, talk(server.addr, &mut events)).await;
    let talked = match talked {
        Ok(r) => r,
        Err(_) => Err(DemoError::Call(format!(
            "no hang-up within {} s",
            CALL_LIMIT.as_secs()
        ))),
    };
    // The record comes once the call is stored and its recording finalized.
    let record = match &talked {
        Ok(_) => server.record(Duration::from_secs(15)).await,
        Err(_) => None,
    };
    // The agent's last events (the goodbye's latency) may still be queued.
    while let Ok(e) = events.try_recv() {
        print_event(&e, None);
    }
    server.srv.shutdown().await;
    let call_time = talked?;
    let record =
        record.ok_or_else(|| DemoError::Call("the server reported no call record".into()))?;
    let agent = record
        .agent
        .as_deref()
        .cloned()
        .ok_or_else(|| DemoError::Call("the call record has no agent report".into()))?;
    let recording = record
        .media
        .as_ref()
        .and_then(|m| m.recording.as_ref())
        .map(|key| dir.join("recordings").join(format!("{key}.enc")));
    let wav = match &recording {
        Some(enc) => Some(decrypt(
            enc,
            &dir.join("master.key"),
            &dir.join("call.wav"),
        )?),
        None => None,
    };
    let report = AgentDemoReport {
        record,
        agent,
        call_time,
        dir,
        recording,
        wav,
    };
    print_summary(&report, &config_path);
    if report.agent.disposition.as_deref() != Some(EXPECTED_DISPOSITION) {
        return Err(DemoError::Outcome {
            want: EXPECTED_DISPOSITION,
            got: report.agent.disposition.clone(),
        });
    }
    if report.wav.is_none() {
        return Err(DemoError::Call("the call was not recorded".into()));
    }
    Ok(report)
}

/// Writes the flow, a master key and the server config into `dir`; returns the config's path
/// (kept, so `leadscaller recordings decrypt --config` finds the key afterwards).
fn write_files(dir: &Path) -> Result<PathBuf, DemoError> {
    let flow = dir.join(FLOW_PATH);
    if let Some(parent) = flow.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&flow, FLOW)?;
    generate_key_file(&dir.join("master.key")).map_err(|e| DemoError::Config(e.to_string()))?;
    let quoted = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let secret: String = (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let config = format!(
        r#"# Written by `leadscaller demo`: its in-process server (loopback only).
data_dir = {data_dir}
database_url = {db}

[sip]
listen = [ {{ transport = "udp", addr = "127.0.0.1:0" }} ]

[http]
listen = "127.0.0.1:0"

[rtp]
port_min = 40000
port_max = 40100
media_timeout_s = 10

[recording]
enabled = true
dir = "recordings"
master_key_file = "master.key"

[streams]
secret = "{secret}"

[[routes]]
match_user = "*"
app = "agent"
flow = "{FLOW_PATH}"
"#,
        data_dir = quoted(dir),
        db = toml::Value::String(format!("sqlite://{}", dir.join("demo.db").display())),
    );
    let path = dir.join("leadscaller.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// Places the call and plays the caller's script against the agent until the agent hangs up;
/// returns answer → hang-up.
async fn talk(
    server: std::net::SocketAddr,
    events: &mut mpsc::UnboundedReceiver<AgentEvent>,
) -> Result<Duration, DemoError> {
    let lines: Vec<&[u8]> = UTTERANCES
        .iter()
        .map(|(text, wav)| {
            ulaw_payload(wav).map_err(|e| DemoError::Config(format!("utterance {text:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let rtp = UdpSocket::bind("127.0.0.1:0").await?;
    let mut sip = SipCaller::bind(server, "agent").await?;
    let answered = sip.invite(rtp.local_addr()?.port(), &say).await?;
    let t0 = Instant::now();
    say("caller: -> ACK; the caller answers each agent turn after 600 ms of quiet");
    let mut conv = Conversation::new(lines, TurnTaking::default());
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut frame = [0u8; FRAME];
    let mut pkt = Vec::with_capacity(12 + FRAME);
    let mut buf = [0u8; 2048];
    let (mut seq, ssrc) = (0u16, rand::random::<u32>());
    let mut hangup_by: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(cue) = conv.next_frame(&mut frame) {
                    cue_happened(cue, t0, &mut hangup_by)?;
                }
                pkt.clear();
                pkt.extend_from_slice(&[0x80, if seq == 0 { 0x80 } else { 0 }]);
                pkt.extend_from_slice(&seq.to_be_bytes());
                pkt.extend_from_slice(&(u32::from(seq).wrapping_mul(FRAME as u32)).to_be_bytes());
                pkt.extend_from_slice(&ssrc.to_be_bytes());
                pkt.extend_from_slice(&frame);
                rtp.send_to(&pkt, answered.remote_rtp).await?;
                seq = seq.wrapping_add(1);
            }
            r = rtp.recv_from(&mut buf) => {
                let (n, _) = r?;
                // Only PCMU audio counts (not telephone-events or anything else).
                if let Some(h) = RtpHeader::parse(&buf[..n])
                    && h.payload_type == 0
                    && let Some(payload) = buf.get(h.payload_offset..n)
                    && let Some(cue) = conv.heard(payload)
                {
                    cue_happened(cue, t0, &mut hangup_by)?;
                }
            }
            bye = sip.serve_one() => {
                if bye? {
                    let at = t0.elapsed();
                    say(&format!("[{:5.1} s] caller: <- BYE (the agent hung up), -> 200 OK", at.as_secs_f64()));
                    if conv.lines_said() < UTTERANCES.len() {
                        return Err(DemoError::Call(format!(
                            "the agent hung up after {} of the caller's {} lines",
                            conv.lines_said(),
                            UTTERANCES.len()
                        )));
                    }
                    return Ok(at);
                }
            }
            Some(e) = events.recv() => print_event(&e, Some(t0)),
            _ = sleep_until(hangup_by) => {
                let _ = sip.bye(&say).await;
                return Err(DemoError::Call(format!(
                    "the agent did not hang up within {} s of its last reply",
                    HANGUP_WAIT.as_secs()
                )));
            }
        }
    }
}

/// Prints a caller cue; fails on a silent agent.
fn cue_happened(
    cue: Cue,
    t0: Instant,
    hangup_by: &mut Option<tokio::time::Instant>,
) -> Result<(), DemoError> {
    let at = t0.elapsed().as_secs_f64();
    match cue {
        Cue::Says(n) => say(&format!("[{at:5.1} s] caller: {}", UTTERANCES[n].0)),
        Cue::Finished => *hangup_by = Some(tokio::time::Instant::now() + HANGUP_WAIT),
        Cue::AgentSilent => {
            return Err(DemoError::Call(format!(
                "the agent said nothing for {} s",
                TurnTaking::default().wait_ticks / 50
            )));
        }
        _ => {}
    }
    Ok(())
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Prints one of the agent's live events, stamped with the time since answer.
fn print_event(e: &AgentEvent, t0: Option<Instant>) {
    let stamp = match t0 {
        Some(t0) => format!("[{:5.1} s]", t0.elapsed().as_secs_f64()),
        None => "[   end ]".to_owned(),
    };
    match e {
        AgentEvent::Says(text) => say(&format!("{stamp} agent:  {text}")),
        AgentEvent::Heard { text, confidence } if text.is_empty() => say(&format!(
            "{stamp} agent heard: nothing it expected (confidence {confidence:.2})"
        )),
        AgentEvent::Heard { text, confidence } => say(&format!(
            "{stamp} agent heard: \"{text}\" (confidence {confidence:.2})"
        )),
        AgentEvent::Latency {
            turn,
            endpoint_ms,
            stt_final_ms,
            tts_first_audio_ms,
            first_frame_out_ms,
        } => say(&format!(
            "{stamp} latency: turn {turn}: endpoint {endpoint_ms} ms, STT final {stt_final_ms} ms, \
             first audio {tts_first_audio_ms} ms, first frame out {first_frame_out_ms} ms \
             (from the end of caller speech)"
        )),
        AgentEvent::BargeIn => say(&format!("{stamp} agent:  (interrupted by the caller)")),
    }
}

/// Decrypts the recording `enc` with the key file `key` into `out` (a WAV).
fn decrypt(enc: &Path, key: &Path, out: &Path) -> Result<PathBuf, DemoError> {
    let keys = MasterKeyRing::from_file(key).map_err(|e| DemoError::Config(e.to_string()))?;
    let input = std::fs::File::open(enc)?;
    let mut reader = DecryptingReader::new(io::BufReader::new(input), &keys)
        .map_err(|e| DemoError::Call(format!("{}: {e}", enc.display())))?;
    let mut dst = std::fs::File::create(out)?;
    io::copy(&mut reader, &mut dst)?;
    Ok(out.to_path_buf())
}

fn print_summary(r: &AgentDemoReport, config: &Path) {
    let a = &r.agent;
    say(&format!(
        "call: {} ended ({:?}) after {:.1} s; transcript of {} turns and {} latency records stored with the call",
        r.record.call,
        r.record.reason,
        r.call_time.as_secs_f64(),
        a.turns.len(),
        a.latency.len()
    ));
    for t in &a.tool_calls {
        say(&format!(
            "tool: [{:5.1} s] {} {}",
            t.at_ms as f64 / 1e3,
            t.name,
            t.arguments
        ));
    }
    let callback = a
        .callback
        .as_ref()
        .map(|c| format!(", callback {}", c.when))
        .unwrap_or_default();
    say(&format!(
        "outcome: {}{callback}",
        a.disposition.as_deref().unwrap_or("(none)")
    ));
    match (&r.recording, &r.wav) {
        (Some(enc), Some(wav)) => {
            let spec = hound::WavReader::open(wav).ok().map(|w| {
                let s = w.spec();
                let secs = f64::from(w.duration()) / f64::from(s.sample_rate.max(1));
                format!("{} ch, {} Hz, {secs:.1} s", s.channels, s.sample_rate)
            });
            say(&format!("recording: {} (encrypted at rest)", enc.display()));
            say(&format!(
                "recording: decrypted to {} ({}; caller left, agent right)",
                wav.display(),
                spec.unwrap_or_else(|| "unreadable".into())
            ));
            say(&format!(
                "recording: by hand: leadscaller recordings decrypt {} --config {} --out call.wav",
                enc.display(),
                config.display()
            ));
        }
        _ => say("recording: none"),
    }
}
