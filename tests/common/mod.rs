//! Shared helpers for integration tests that run the real `leadscaller` binary against
//! real peers (sipp, baresip): free port blocks, a temporary server config, a server
//! process that is killed on drop, bounded child processes, and small readers for the
//! files the peers leave behind (sipp statistics, pcap captures, WAV recordings, which the
//! server stores encrypted: [`decrypt_recording`]).
//!
//! Every child process is owned by a guard whose `Drop` kills it by PID and reaps it, so
//! a failing assertion never leaves a process behind.

#![allow(dead_code)] // each test file uses a different subset

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Loopback, the only address the tests use.
pub const LOOPBACK: &str = "127.0.0.1";

/// Ports are handed out in blocks of this size, below Linux's ephemeral range so that
/// outgoing connections of other programs cannot take them.
pub const BLOCK_LEN: u16 = 64;
const FIRST_PORT: u16 = 20_000;
const LAST_PORT: u16 = 32_000;

static NEXT_BLOCK: AtomicUsize = AtomicUsize::new(usize::MAX);

/// A block of [`BLOCK_LEN`] consecutive ports, free (UDP and TCP, any address) when it
/// was handed out. Layout used by [`ServerConfig`] and the peers:
///
/// | offset | use |
/// | --- | --- |
/// | 0 | server SIP (UDP and TCP) |
/// | 2 | peer SIP (sipp `-p`) |
/// | 3 | sipp control socket (`-cp`) |
/// | 4..8 | peer media (sipp `-mp` binds it and +2) |
/// | 8..10 | baresip SIP |
/// | 10..20 | baresip RTP |
/// | 20 | server HTTP |
/// | 32..64 | server RTP range |
#[derive(Debug, Clone, Copy)]
pub struct PortBlock {
    pub base: u16,
}

impl PortBlock {
    /// A block no other test of this process got, and that nothing on the machine uses
    /// right now. The start is spread by PID so that concurrent test processes differ.
    pub fn allocate() -> PortBlock {
        let blocks = usize::from((LAST_PORT - FIRST_PORT) / BLOCK_LEN);
        let _ = NEXT_BLOCK.compare_exchange(
            usize::MAX,
            (std::process::id() as usize).wrapping_mul(7919) % blocks,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        for _ in 0..blocks {
            let i = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst) % blocks;
            let base = FIRST_PORT + BLOCK_LEN * i as u16;
            if (base..base + BLOCK_LEN).all(port_is_free) {
                return PortBlock { base };
            }
        }
        panic!("no free block of {BLOCK_LEN} ports in {FIRST_PORT}..{LAST_PORT}");
    }

    pub fn port(&self, offset: u16) -> u16 {
        assert!(offset < BLOCK_LEN);
        self.base + offset
    }

    pub fn sip(&self) -> u16 {
        self.port(0)
    }
    pub fn peer_sip(&self) -> u16 {
        self.port(2)
    }
    pub fn sipp_control(&self) -> u16 {
        self.port(3)
    }
    pub fn peer_media(&self) -> u16 {
        self.port(4)
    }
    pub fn baresip_sip(&self) -> u16 {
        self.port(8)
    }
    pub fn baresip_rtp(&self) -> (u16, u16) {
        (self.port(10), self.port(19))
    }
    pub fn http(&self) -> u16 {
        self.port(20)
    }
    /// The server's RTP range, inclusive.
    pub fn server_rtp(&self) -> (u16, u16) {
        (self.port(32), self.port(63))
    }
}

fn port_is_free(port: u16) -> bool {
    // Binding the wildcard address conflicts with a socket bound to any address.
    UdpSocket::bind(("0.0.0.0", port)).is_ok() && TcpListener::bind(("0.0.0.0", port)).is_ok()
}

/// Fails the test with an install hint when a peer program is missing.
pub fn require_tool(name: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed; install the Debian package `{package}` (scripts/setup.sh does)"
    );
}

/// Contents of a file, or a note why it could not be read (for failure messages).
pub fn read_lossy(path: &Path) -> String {
    match fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => format!("<{}: {e}>", path.display()),
    }
}

/// The last `max` bytes of a text, on a char boundary.
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = s.len() - max;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// One `[[routes]]` entry of the server config.
#[derive(Debug, Clone)]
pub struct Route {
    pub match_user: String,
    pub app: String,
    pub reject_code: Option<u16>,
    /// Further `key = value` lines of the route, written as given.
    pub extra: Vec<String>,
}

impl Route {
    pub fn echo(user: &str) -> Route {
        Route {
            match_user: user.into(),
            app: "echo".into(),
            reject_code: None,
            extra: Vec::new(),
        }
    }
    pub fn reject(user: &str, code: u16) -> Route {
        Route {
            match_user: user.into(),
            app: "reject".into(),
            reject_code: Some(code),
            extra: Vec::new(),
        }
    }
    /// `app = "play"` with `file` (relative to the config file's directory, or absolute).
    pub fn play(user: &str, file: &str) -> Route {
        Route {
            match_user: user.into(),
            app: "play".into(),
            reject_code: None,
            extra: vec![format!("file = \"{file}\"")],
        }
    }
    /// `app = "record"` with further route lines such as `max_duration_s = 4`.
    pub fn record(user: &str, extra: &[&str]) -> Route {
        Route {
            match_user: user.into(),
            app: "record".into(),
            reject_code: None,
            extra: extra.iter().map(|l| l.to_string()).collect(),
        }
    }
    pub fn transfer(user: &str, target: &str, after_ms: u32) -> Route {
        Route {
            match_user: user.into(),
            app: "transfer".into(),
            reject_code: None,
            extra: vec![
                format!("transfer_to = \"{target}\""),
                format!("transfer_after_ms = {after_ms}"),
            ],
        }
    }
}

/// What goes into the temporary `leadscaller.toml`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub ports: PortBlock,
    pub media_timeout_s: u32,
    pub log_level: String,
    pub routes: Vec<Route>,
    /// Appended verbatim at the end of the file (e.g. `[[users]]` tables).
    pub extra_toml: String,
    /// Further `key = value` lines inside the `[rtp]` table (e.g. `codecs = ["opus"]`).
    pub rtp_extra: Vec<String>,
    /// Further `key = value` lines inside the `[http]` table (e.g. `tls_cert = "cert.pem"`).
    pub http_extra: Vec<String>,
    /// Files written next to the config before the server starts: (name relative to the
    /// config's directory, contents), e.g. a prompt for a `play` route.
    pub files: Vec<(String, Vec<u8>)>,
    /// The server's database (default: SQLite under the config's directory).
    pub database_url: String,
}

impl ServerConfig {
    /// UDP and TCP on the block's SIP port, RTP in the block, every user routed to echo.
    pub fn new(ports: PortBlock) -> ServerConfig {
        ServerConfig {
            ports,
            media_timeout_s: 20,
            log_level: "info".into(),
            routes: vec![Route::echo("*")],
            extra_toml: String::new(),
            rtp_extra: Vec::new(),
            http_extra: Vec::new(),
            files: Vec::new(),
            database_url: "sqlite://./data/leadscaller.db".into(),
        }
    }

    pub fn to_toml(&self) -> String {
        let p = &self.ports;
        let (rtp_min, rtp_max) = p.server_rtp();
        let mut s = String::new();
        let _ = writeln!(s, "data_dir = \"./data\"");
        let _ = writeln!(s, "database_url = \"{}\"\n", self.database_url);
        let _ = writeln!(s, "[sip]");
        let _ = writeln!(
            s,
            "listen = [{{ transport = \"udp\", addr = \"{LOOPBACK}:{0}\" }}, {{ transport = \"tcp\", addr = \"{LOOPBACK}:{0}\" }}]",
            p.sip()
        );
        let _ = writeln!(s, "\n[rtp]\nport_min = {rtp_min}\nport_max = {rtp_max}");
        let _ = writeln!(s, "media_timeout_s = {}", self.media_timeout_s);
        for line in &self.rtp_extra {
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(s, "\n[http]\nlisten = \"{LOOPBACK}:{}\"", p.http());
        for line in &self.http_extra {
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(
            s,
            "\n[log]\nformat = \"text\"\nlevel = \"{}\"",
            self.log_level
        );
        for r in &self.routes {
            let _ = writeln!(
                s,
                "\n[[routes]]\nmatch_user = \"{}\"\napp = \"{}\"",
                r.match_user, r.app
            );
            if let Some(c) = r.reject_code {
                let _ = writeln!(s, "reject_code = {c}");
            }
            for line in &r.extra {
                let _ = writeln!(s, "{line}");
            }
        }
        s.push_str(&self.extra_toml);
        s
    }
}

/// A running `leadscaller serve`, killed by PID when dropped.
pub struct Server {
    child: Child,
    pub ports: PortBlock,
    pub dir: tempfile::TempDir,
    pub log_path: PathBuf,
}

impl Server {
    /// Writes the config into a fresh temporary directory, starts the built binary there
    /// and waits until it answers an OPTIONS over UDP.
    pub fn start(cfg: &ServerConfig) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("leadscaller-test-")
            .tempdir()
            .expect("temp dir");
        for (name, contents) in &cfg.files {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).expect("dir for a server file");
            }
            fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
        let config_path = dir.path().join("leadscaller.toml");
        fs::write(&config_path, cfg.to_toml()).expect("write config");
        let log_path = dir.path().join("server.log");
        let log = fs::File::create(&log_path).expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_leadscaller"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn leadscaller serve");
        let mut server = Server {
            child,
            ports: cfg.ports,
            dir,
            log_path,
        };
        server.wait_ready(Duration::from_secs(15));
        server
    }

    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.sip()))
    }

    /// `127.0.0.1:PORT`, as peers take it on the command line.
    pub fn sip_target(&self) -> String {
        format!("{LOOPBACK}:{}", self.ports.sip())
    }

    /// A `read` API key for the account that owns the server's calls, made with the real
    /// `leadscaller keys create` against the server's database.
    pub fn read_api_token(&self) -> String {
        self.api_token("read")
    }

    /// An API key of `scope` (`admin` or `read`) for the account that owns the server's calls.
    pub fn api_token(&self, scope: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_leadscaller"))
            .args(["keys", "create", "--account", "default", "--scope", scope])
            .arg("--config")
            .arg(self.dir.path().join("leadscaller.toml"))
            .current_dir(self.dir.path())
            .output()
            .expect("run leadscaller keys create");
        assert!(
            out.status.success(),
            "keys create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("token is text")
            .trim()
            .to_owned()
    }

    /// The base URL of the server's HTTP API.
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.http())
    }

    /// The server's process id (e.g. to send it SIGTERM from another thread).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the server process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// The log once it holds `count` lines containing `needle` (or after `limit`): a call's
    /// end is logged after its media leg stopped, a moment after the peer hung up.
    pub fn log_when(&self, needle: &str, count: usize, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log();
            if log.matches(needle).count() >= count || Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_ready(&mut self, limit: Duration) {
        let sock = UdpSocket::bind((LOOPBACK, 0)).expect("probe socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let local = sock.local_addr().expect("local addr");
        let deadline = Instant::now() + limit;
        let mut attempt = 0u32;
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "leadscaller serve exited early ({status}); log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "leadscaller serve did not answer OPTIONS within {limit:?}; log:\n{}",
                self.log()
            );
            attempt += 1;
            let msg = options_request(local, self.sip_addr(), attempt);
            let _ = sock.send_to(msg.as_bytes(), self.sip_addr());
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && buf[..n].starts_with(b"SIP/2.0 200")
            {
                return;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options_request(local: SocketAddr, remote: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:ping@{remote} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-ready-{n}-{pid}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag=probe{n}\r\n\
         To: <sip:ping@{remote}>\r\n\
         Call-ID: ready-{n}-{pid}@{LOOPBACK}\r\n\
         CSeq: {n} OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        pid = std::process::id()
    )
}

/// A child process (a peer) that is killed by PID and reaped when dropped.
pub struct Proc {
    child: Option<Child>,
    pub name: String,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr going to `<dir>/<name>.out` / `.err`.
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Proc {
        let stdout_path = dir.join(format!("{name}.out"));
        let stderr_path = dir.join(format!("{name}.err"));
        let out = fs::File::create(&stdout_path).expect("stdout file");
        let err = fs::File::create(&stderr_path).expect("stderr file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc {
            child: Some(child),
            name: name.into(),
            stdout_path,
            stderr_path,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Waits for exit; kills the process and fails the test when `limit` passes first.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("process already reaped");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!(
                    "{} still running after {limit:?}; killed.\nstdout (tail):\n{}\nstderr (tail):\n{}",
                    self.name,
                    tail(&self.stdout(), 4000),
                    tail(&self.stderr(), 4000)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks the process to stop (SIGINT, so that capture tools flush their files), then
    /// waits up to `limit` before killing it.
    pub fn interrupt_and_wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        self.child = None;
        None
    }

    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path)
    }

    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The final cumulative value of a column of a sipp `-trace_stat` CSV (`;`-separated,
/// header first, one line per dump; the last line is written at exit).
pub fn sipp_stat(csv: &str, column: &str) -> Option<u64> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let last: Vec<&str> = lines.next_back()?.split(';').collect();
    let i = header.iter().position(|h| h.trim() == column)?;
    last.get(i)?.trim().parse().ok()
}

/// Starts dumpcap on `lo` with capture `filter`, writing `file` (at most 60 s), and waits
/// until it captures; needs root or CAP_NET_RAW. Stop it with `interrupt_and_wait`.
pub fn capture_loopback(filter: &str, file: &Path) -> Proc {
    require_tool("dumpcap", "tshark");
    let dir = file.parent().expect("capture file in a directory");
    let mut cmd = Command::new("dumpcap");
    cmd.args(["-i", "lo", "-P", "-a", "duration:60", "-f", filter])
        .arg("-w")
        .arg(file);
    let cap = Proc::spawn("dumpcap", cmd, dir);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cap.stderr().contains("Capturing on") {
        assert!(
            Instant::now() < deadline,
            "dumpcap did not start capturing on lo (needs root or CAP_NET_RAW):\n{}",
            cap.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    cap
}

/// One UDP datagram read from a pcap file (Ethernet or Linux cooked capture, IPv4).
#[derive(Debug, Clone)]
pub struct UdpPacket {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
    /// Capture time, seconds since the epoch (microsecond or nanosecond pcap).
    pub at: f64,
}

/// The IPv4/UDP datagrams of a classic pcap file (not pcapng); other frames are skipped.
pub fn read_pcap_udp(path: &Path) -> Vec<UdpPacket> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        data.len() >= 24,
        "{}: too short for a pcap header",
        path.display()
    );
    let magic = [data[0], data[1], data[2], data[3]];
    let nanos = matches!(magic, [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d]);
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!(
            "{}: not a classic pcap file (magic {magic:02x?})",
            path.display()
        ),
    };
    let u32_at = |b: &[u8], i: usize| {
        let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = u32_at(&data, 20);
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= data.len() {
        let incl = u32_at(&data, i + 8) as usize;
        let frac = f64::from(u32_at(&data, i + 4)) / if nanos { 1e9 } else { 1e6 };
        let at = f64::from(u32_at(&data, i)) + frac;
        let start = i + 16;
        let end = (start + incl).min(data.len());
        let frame = &data[start..end];
        i = start + incl;
        let ip = match linktype {
            1 if frame.len() >= 14 && frame[12..14] == [0x08, 0x00] => &frame[14..],
            113 if frame.len() >= 16 && frame[14..16] == [0x08, 0x00] => &frame[16..],
            101 => frame,
            _ => continue,
        };
        if let Some(mut p) = parse_ipv4_udp(ip) {
            p.at = at;
            out.push(p);
        }
    }
    out
}

fn parse_ipv4_udp(ip: &[u8]) -> Option<UdpPacket> {
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let udp = ip.get(ihl..)?;
    if udp.len() < 8 {
        return None;
    }
    let src_ip = [ip[12], ip[13], ip[14], ip[15]];
    let dst_ip = [ip[16], ip[17], ip[18], ip[19]];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    let payload = udp.get(8..len.max(8).min(udp.len()))?.to_vec();
    Some(UdpPacket {
        src: SocketAddr::from((src_ip, sport)),
        dst: SocketAddr::from((dst_ip, dport)),
        payload,
        at: 0.0,
    })
}

/// The fixed part of an RTP header and the payload after it (CSRCs and extension skipped).
#[derive(Debug, Clone)]
pub struct Rtp<'a> {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

pub fn parse_rtp(b: &[u8]) -> Option<Rtp<'_>> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let cc = usize::from(b[0] & 0x0f);
    let mut off = 12 + 4 * cc;
    if b[0] & 0x10 != 0 {
        let ext = b.get(off..off + 4)?;
        off += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    let mut end = b.len();
    if b[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*b.last()?))?;
    }
    Some(Rtp {
        payload_type: b[1] & 0x7f,
        seq: u16::from_be_bytes([b[2], b[3]]),
        timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload: b.get(off..end)?,
    })
}

/// A mono 16-bit PCM WAV file: the canonical 44-byte header and the samples.
pub fn wav_bytes(sample_rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut v = Vec::with_capacity(44 + samples.len() * 2);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    v.extend_from_slice(&1u16.to_le_bytes()); // PCM
    v.extend_from_slice(&1u16.to_le_bytes()); // mono
    v.extend_from_slice(&sample_rate.to_le_bytes());
    v.extend_from_slice(&(sample_rate * 2).to_le_bytes()); // byte rate
    v.extend_from_slice(&2u16.to_le_bytes()); // block align
    v.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

/// A sine tone, `amplitude` peak, as 16-bit samples.
pub fn tone(sample_rate: u32, freq_hz: f64, amplitude: f64, seconds: f64) -> Vec<i16> {
    let n = (f64::from(sample_rate) * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(sample_rate);
            (amplitude * (2.0 * std::f64::consts::PI * freq_hz * t).sin()) as i16
        })
        .collect()
}

/// Sample rate, channel count and 16-bit samples of a PCM WAV file (chunks walked, so
/// headers longer than 44 bytes work; a data size of 0 or past the end means "to EOF",
/// as written by recorders that were stopped before they could fix the header).
pub fn read_wav(path: &Path) -> (u32, u16, Vec<i16>) {
    let d = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse_wav(&d, path)
}

/// The plain bytes of a recording the server stored encrypted at rest (`<key>.enc`),
/// decrypted and verified by the library with the key ring the server created on first
/// start (`<server dir>/master.key`, next to its `recordings/` dir). Asserts that the file
/// on disk is an `LCENC1` object and not a plain RIFF/WAVE or Ogg file.
pub fn decrypt_recording(server_dir: &Path, path: &Path) -> Vec<u8> {
    use leadscaller::store::at_rest::{MasterKeyRing, decrypt_to_vec};
    assert!(
        path.to_string_lossy().ends_with(".enc"),
        "{}: recordings must be stored as <key>.enc",
        path.display()
    );
    let on_disk = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        on_disk.starts_with(b"LCENC1"),
        "{}: not encrypted at rest",
        path.display()
    );
    for plain_magic in [&b"RIFF"[..], b"WAVE", b"OggS", b"OpusHead"] {
        assert!(
            !on_disk.windows(plain_magic.len()).any(|w| w == plain_magic),
            "{}: plain {:?} bytes on disk",
            path.display(),
            String::from_utf8_lossy(plain_magic)
        );
    }
    let key_file = server_dir.join("master.key");
    let keys = MasterKeyRing::from_file(&key_file)
        .unwrap_or_else(|e| panic!("{}: {e}", key_file.display()));
    decrypt_to_vec(&keys, &on_disk).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// [`read_wav`] of an encrypted recording (see [`decrypt_recording`]).
pub fn read_recording_wav(server_dir: &Path, path: &Path) -> (u32, u16, Vec<i16>) {
    parse_wav(&decrypt_recording(server_dir, path), path)
}

/// [`read_wav`] of WAV bytes; `path` names them in failures.
pub fn parse_wav(d: &[u8], path: &Path) -> (u32, u16, Vec<i16>) {
    assert!(
        d.len() >= 12 && &d[0..4] == b"RIFF" && &d[8..12] == b"WAVE",
        "{}: not a RIFF/WAVE file",
        path.display()
    );
    let mut i = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while i + 8 <= d.len() {
        let id = &d[i..i + 4];
        let size = u32::from_le_bytes([d[i + 4], d[i + 5], d[i + 6], d[i + 7]]) as usize;
        let body = i + 8;
        if id == b"fmt " && body + 16 <= d.len() {
            let f = &d[body..body + 16];
            fmt = Some((
                u16::from_le_bytes([f[0], f[1]]),
                u16::from_le_bytes([f[2], f[3]]),
                u32::from_le_bytes([f[4], f[5], f[6], f[7]]),
                u16::from_le_bytes([f[14], f[15]]),
            ));
        } else if id == b"data" {
            let (format, channels, rate, bits) = fmt.expect("WAV data chunk before fmt chunk");
            assert!(
                format == 1 && bits == 16,
                "{}: not 16-bit PCM",
                path.display()
            );
            let end = if size == 0 || body + size > d.len() {
                d.len()
            } else {
                body + size
            };
            let samples = d[body..end]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return (rate, channels, samples);
        }
        i = body + size + (size & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// Root mean square of samples.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// The share (0..=1) of a window's energy at `freq_hz` (Goertzel). About 1 for a pure
/// tone at that frequency when the window holds a whole number of its periods.
pub fn tone_energy_share(samples: &[i16], sample_rate: u32, freq_hz: f64) -> f64 {
    let n = samples.len() as f64;
    let total: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    if total == 0.0 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq_hz / f64::from(sample_rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power / (n * total)
}

/// The µ-law samples of a WAV file's `data` chunk, decoded to linear PCM (the shared
/// telephone-band utterances in `../shared/audio` are 8 kHz µ-law WAV).
pub fn ulaw_samples(bytes: &[u8]) -> Vec<i16> {
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let id = &bytes[i..i + 4];
        let len =
            u32::from_le_bytes([bytes[i + 4], bytes[i + 5], bytes[i + 6], bytes[i + 7]]) as usize;
        if id == b"data" {
            let end = (i + 8 + len).min(bytes.len());
            return bytes[i + 8..end]
                .iter()
                .map(|&b| leadscaller::codec::g711::ulaw_to_linear(b))
                .collect();
        }
        i += 8 + len + (len & 1);
    }
    panic!("no data chunk");
}
