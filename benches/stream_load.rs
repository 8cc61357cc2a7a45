//! Stream load: N concurrent Twilio Media Streams into a `leadscaller serve` process, with
//! tokio-tungstenite playing Twilio. Each stream sends `connected`, `start` (a signed token
//! in `customParameters`), one 160-byte µ-law `media` every 20 ms in real time and a `mark`
//! every second; the server runs the echo app (`--app echo`) or an agent with instant
//! providers (`--app agent`: scripted STT, the `echo` LLM, the embedded flite voice).
//!
//! Per N it measures, over a window with every stream up:
//! - the server's CPU (utime+stime from `/proc/PID/stat`) as % of one core, total and per
//!   stream, and its RSS (`VmRSS` minus the idle RSS before the streams, per stream; `VmHWM`);
//! - the server→client frame timing: every gap between two consecutive `media` frames of a
//!   stream, its error against 20 ms (p50/p99/max; gaps over 200 ms are pauses in the
//!   agent's speech and only counted);
//! - the generator's own CPU (it shares the machine with the server).
//!
//! Run: `cargo bench --bench stream_load -- --streams 100,300,500 [--secs 20] [--app echo|agent]`

use futures_util::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "stream-load-secret-0123456789abcdef";
const FRAME: Duration = Duration::from_millis(20);
/// After every stream is up, before the window opens.
const WARM_UP: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum App {
    Echo,
    Agent,
}

struct Args {
    streams: Vec<usize>,
    secs: u64,
    app: App,
    /// Seconds over which the N streams are opened.
    ramp_s: f64,
}

fn parse_args() -> Args {
    let mut a = Args {
        streams: vec![100, 300, 500],
        secs: 20,
        app: App::Echo,
        ramp_s: 3.0,
    };
    let mut it = std::env::args().skip(1);
    let (mut measuring, mut sized) = (false, false);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--streams" => {
                sized = true;
                a.streams = value()
                    .split(',')
                    .map(|n| n.trim().parse().expect("--streams 100,300,500"))
                    .collect();
            }
            "--secs" => a.secs = value().parse().expect("--secs N"),
            "--ramp" => a.ramp_s = value().parse().expect("--ramp S"),
            "--app" => {
                a.app = match value().as_str() {
                    "echo" => App::Echo,
                    "agent" => App::Agent,
                    other => panic!("--app echo|agent, not {other}"),
                }
            }
            // cargo bench passes --bench; anything else is a mistake.
            "--bench" => measuring = true,
            other => panic!("unknown argument {other}"),
        }
    }
    // `cargo test --all-targets` runs this without --bench: a short smoke run that keeps the
    // harness working, not a measurement.
    if !measuring && !sized {
        a.streams = vec![5];
        a.secs = 2;
        a.ramp_s = 0.5;
    }
    a
}

/// A free local port (TCP or UDP), released for the server to take.
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free TCP port")
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port()
}

/// The agent file for `--app agent`: the LLM mode with instant stages (the greeting and every
/// reply spoken by the embedded flite voice).
const AGENT_FILE: &str = r#"
system_prompt = "Load test."
greeting = "Hello, this is the load test. Say something and I will repeat it."
[stt]
name = "scripted"
utterances = ["hello there", "how are you", "this is a test", "goodbye for now",
  "hello there", "how are you", "this is a test", "goodbye for now",
  "hello there", "how are you", "this is a test", "goodbye for now",
  "hello there", "how are you", "this is a test", "goodbye for now"]
[llm]
name = "echo"
"#;

/// A running `leadscaller serve`, stopped (SIGINT, then kill) when dropped.
struct Server {
    child: Child,
    http: u16,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Server {
    fn start(app: App) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("leadscaller-stream-load-")
            .tempdir()
            .expect("temp dir");
        let http = free_tcp_port();
        let sip = free_udp_port();
        let mut toml = String::new();
        let _ = writeln!(toml, "data_dir = \"./data\"");
        let _ = writeln!(toml, "database_url = \"sqlite://./data/leadscaller.db\"\n");
        let _ = writeln!(
            toml,
            "[sip]\nlisten = [{{ transport = \"udp\", addr = \"127.0.0.1:{sip}\" }}]"
        );
        let _ = writeln!(toml, "\n[rtp]\nport_min = 47000\nport_max = 47100");
        let _ = writeln!(toml, "\n[http]\nlisten = \"127.0.0.1:{http}\"");
        let _ = writeln!(toml, "\n[log]\nformat = \"text\"\nlevel = \"warn\"");
        let _ = writeln!(toml, "\n[[routes]]\nmatch_user = \"*\"\napp = \"echo\"");
        let _ = writeln!(toml, "\n[streams]\nsecret = \"{SECRET}\"");
        if app == App::Agent {
            std::fs::create_dir_all(dir.path().join("agents")).expect("agents dir");
            std::fs::write(dir.path().join("agents/load.toml"), AGENT_FILE).expect("agent file");
            let _ = writeln!(toml, "flow = \"agents/load.toml\"");
        }
        let config = dir.path().join("leadscaller.toml");
        std::fs::write(&config, toml).expect("write config");
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log).expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_leadscaller"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .spawn()
            .expect("spawn leadscaller serve");
        let server = Server {
            child,
            http,
            _dir: dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", http)).is_err() {
            assert!(
                Instant::now() < deadline,
                "server did not listen:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut s));
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(stat: &Path) -> f64 {
    let text = std::fs::read_to_string(stat).expect("read /proc stat");
    let after = &text[text.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted from `state` (field 3).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// A `VmRSS:`-style line of `/proc/PID/status`, in MB.
fn status_mb(pid: u32, key: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The µ-law frame a stream sends at tick `k`: a loud square wave (echo; agent: one second
/// of it every four, so that the agent hears turns), or µ-law silence.
fn payload(app: App, k: u64) -> Vec<u8> {
    let loud = app == App::Echo || k % 200 < 50;
    if loud {
        (0..160)
            .map(|j| if (j / 10) % 2 == 0 { 0x20 } else { 0xa0 })
            .collect()
    } else {
        vec![0xff; 160]
    }
}

/// What one stream saw.
#[derive(Default)]
struct StreamResult {
    /// Arrival times of the server's `media` frames.
    arrivals: Vec<Instant>,
    failed: Option<String>,
    close_code: Option<u16>,
}

async fn run_stream(
    url: String,
    token: String,
    index: usize,
    app: App,
    begin: Instant,
    end: Instant,
) -> StreamResult {
    tokio::time::sleep_until(begin.into()).await;
    let mut out = StreamResult::default();
    // The server's small read buffer (tungstenite zero-fills the whole buffer, 128 KiB by
    // default, before every read): the generator shares the machine with the server.
    let config = leadscaller::leg::stream::ws_client_config();
    let ws = match tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
        .await
    {
        Ok((ws, _)) => ws,
        Err(e) => {
            out.failed = Some(e.to_string());
            return out;
        }
    };
    let (mut tx, mut rx) = ws.split();
    let sid = format!("MZ{index:032x}");
    let reader = tokio::spawn(async move {
        let mut arrivals = Vec::with_capacity(4096);
        let mut close = None;
        while let Some(msg) = rx.next().await {
            match msg {
                Ok(Message::Text(t)) => {
                    let now = Instant::now();
                    if t.as_str().contains("\"event\":\"media\"") {
                        arrivals.push(now);
                    }
                }
                Ok(Message::Close(frame)) => {
                    close = frame.map(|f| u16::from(f.code));
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (arrivals, close)
    });
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq
    };
    let send = |v: serde_json::Value| Message::Text(v.to_string().into());
    let start = serde_json::json!({
        "event": "start", "sequenceNumber": next().to_string(), "streamSid": sid,
        "start": {
            "accountSid": "AC0123456789abcdef0123456789abcdef", "streamSid": sid,
            "callSid": format!("CA{index:032x}"), "tracks": ["inbound"],
            "customParameters": {"token": token},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        }
    });
    let connected =
        serde_json::json!({"event": "connected", "protocol": "Call", "version": "1.0.0"});
    let mut ok = tx.send(send(connected)).await.is_ok() && tx.send(send(start)).await.is_ok();
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut k = 0u64;
    while ok && Instant::now() < end {
        tick.tick().await;
        let b64 = base64_encode(&payload(app, k));
        let media = serde_json::json!({
            "event": "media", "sequenceNumber": next().to_string(), "streamSid": sid,
            "media": {"track": "inbound", "chunk": (k + 1).to_string(),
                      "timestamp": (k * 20).to_string(), "payload": b64}
        });
        ok = tx.send(send(media)).await.is_ok();
        if ok && k % 50 == 49 {
            let mark = serde_json::json!({
                "event": "mark", "sequenceNumber": next().to_string(), "streamSid": sid,
                "mark": {"name": format!("m{k}")}
            });
            ok = tx.send(send(mark)).await.is_ok();
        }
        k += 1;
    }
    if ok {
        let stop = serde_json::json!({
            "event": "stop", "sequenceNumber": next().to_string(), "streamSid": sid,
            "stop": {"accountSid": "AC0123456789abcdef0123456789abcdef",
                     "callSid": format!("CA{index:032x}")}
        });
        let _ = tx.send(send(stop)).await;
    } else {
        out.failed = Some("the server closed the stream early".into());
    }
    if let Ok(Ok((arrivals, close))) = tokio::time::timeout(Duration::from_secs(5), reader).await {
        out.arrivals = arrivals;
        out.close_code = close;
    }
    let _ = tx.close().await;
    out
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One load step of `n` streams against a fresh server; prints its row.
fn step(rt: &tokio::runtime::Runtime, args: &Args, n: usize) {
    let server = Server::start(args.app);
    let pid = server.pid();
    let server_stat = PathBuf::from(format!("/proc/{pid}/stat"));
    let self_stat = PathBuf::from("/proc/self/stat");
    std::thread::sleep(Duration::from_secs(2));
    let rss_idle = status_mb(pid, "VmRSS:");
    let auth = leadscaller::leg::stream_auth::StreamAuth::new(SECRET);
    let url = format!("ws://127.0.0.1:{}/media-stream", server.http);
    let t0 = Instant::now() + Duration::from_millis(200);
    let ramp = Duration::from_secs_f64(args.ramp_s);
    let w0 = t0 + ramp + WARM_UP;
    let w1 = w0 + Duration::from_secs(args.secs);
    let end = w1 + Duration::from_millis(500);
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let begin = t0 + ramp.mul_f64(i as f64 / n as f64);
            rt.spawn(run_stream(
                url.clone(),
                auth.sign_for(3600),
                i,
                args.app,
                begin,
                end,
            ))
        })
        .collect();
    std::thread::sleep(w0.saturating_duration_since(Instant::now()));
    let (s0, g0, at0) = (
        cpu_seconds(&server_stat),
        cpu_seconds(&self_stat),
        Instant::now(),
    );
    std::thread::sleep(w1.saturating_duration_since(Instant::now()));
    let (s1, g1, at1) = (
        cpu_seconds(&server_stat),
        cpu_seconds(&self_stat),
        Instant::now(),
    );
    let rss = status_mb(pid, "VmRSS:");
    let hwm = status_mb(pid, "VmHWM:");
    let results: Vec<StreamResult> = rt.block_on(async {
        let mut out = Vec::with_capacity(n);
        for t in tasks {
            out.push(t.await.unwrap_or_default());
        }
        out
    });
    let wall = (at1 - at0).as_secs_f64();
    let server_cpu = (s1 - s0) / wall * 100.0;
    let gen_cpu = (g1 - g0) / wall * 100.0;
    let failed: Vec<&String> = results.iter().filter_map(|r| r.failed.as_ref()).collect();
    let mut errors = Vec::new();
    let (mut frames, mut pauses) = (0usize, 0usize);
    for r in &results {
        let inside: Vec<Instant> = r
            .arrivals
            .iter()
            .copied()
            .filter(|t| *t >= at0 && *t <= at1)
            .collect();
        frames += inside.len();
        for w in inside.windows(2) {
            let gap = (w[1] - w[0]).as_secs_f64() * 1000.0;
            if gap > 200.0 {
                pauses += 1;
            } else {
                errors.push((gap - 20.0).abs());
            }
        }
    }
    errors.sort_by(f64::total_cmp);
    let closes_1000 = results
        .iter()
        .filter(|r| r.close_code == Some(1000))
        .count();
    println!(
        "| {:?} | {n} | {:.3} % | {:.1} % | {:.3} MB | {:.1} MB | {:.1} MB | {:.1} | {:.2} / {:.2} / {:.2} ms | {pauses} | {:.0} % | {} | {closes_1000} |",
        args.app,
        server_cpu / n as f64,
        server_cpu,
        (rss - rss_idle) / n as f64,
        rss_idle,
        hwm,
        frames as f64 / n as f64 / wall,
        percentile(&errors, 0.5),
        percentile(&errors, 0.99),
        errors.last().copied().unwrap_or(f64::NAN),
        gen_cpu,
        failed.len(),
    );
    if let Some(first) = failed.first() {
        eprintln!("{} streams failed, e.g.: {first}", failed.len());
    }
    // The server's warnings and errors, counted by message (fields left out).
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for line in server.log_text().lines() {
        let Some(at) = line.find(" WARN ").or_else(|| line.find(" ERROR ")) else {
            continue;
        };
        let words = line[at..].split_whitespace().skip(2);
        let message: Vec<&str> = words.take_while(|w| !w.contains('=')).collect();
        *counts.entry(message.join(" ")).or_default() += 1;
    }
    for (message, count) in counts {
        eprintln!("  server log, {count} x: {message}");
    }
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "stream_load: app {:?}, window {} s after a {:.0} s ramp and {} s warm-up; server and generator share this machine ({} cores)",
        args.app,
        args.secs,
        args.ramp_s,
        WARM_UP.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| app | streams | server CPU/stream (% core) | server CPU total | RSS/stream | RSS idle | VmHWM | frames out/s/stream | gap error p50 / p99 / max | pauses > 200 ms | generator CPU | failed | closed 1000 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &args.streams {
        step(&rt, &args, n);
    }
}
