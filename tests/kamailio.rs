//! Kamailio as the carrier: leadscaller registers through it with digest auth, receives a
//! call it routes from the registrar's location table, and places an outbound call through
//! it (answering its 407 proxy challenge) to a sipp UAS. All on 127.0.0.1; SIP ports
//! 161xx, RTP ports 43xxx.
//!
//! The kamailio config is `tests/peers/kamailio/kamailio.cfg` (no database: usrloc in memory,
//! one fixed user `leadscaller` / `trunkpass` in realm `carrier.test`). It logs a
//! `KAMTEST ...` line for every routing decision; the tests assert on those lines.
//! Needs `kamailio`/`kamcmd` (Debian package `kamailio`) and `sipp` (`sip-tester`).
//! `LEADSCALLER_BIN=<path>` runs another build of the binary than cargo's.

use std::fs::File;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/kamailio");
const REALM: &str = "carrier.test";
const PASSWORD: &str = "trunkpass";

/// A started process, stopped by its PID on drop (SIGTERM, then SIGKILL for it and the
/// children it forked), so a failing test leaves nothing behind. Its stdout and stderr go
/// to `<dir>/<name>.out` / `<name>.err`.
struct Proc {
    name: &'static str,
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command, dir: &Path) -> Proc {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let child = cmd
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}; run scripts/setup.sh"));
        Proc {
            name,
            child: Some(child),
            out,
            err,
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Everything the process printed, for failure messages.
    fn logs(&self) -> String {
        format!(
            "----- {} stdout -----\n{}\n----- {} stderr -----\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr()
        )
    }

    /// The exit status if the process has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `limit` for the process to exit; `None` (and the process is stopped) if it
    /// did not.
    fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.stop();
        None
    }

    /// SIGTERM; after a grace period SIGKILL to the process and to its children (kamailio
    /// forks workers, which its main process normally stops and reaps on SIGTERM).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = child.id().to_string();
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Still running (and not reaped, so its children's PIDs are still its own).
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let _ = child.kill();
        for c in children.split_whitespace() {
            let _ = Command::new("kill")
                .args(["-KILL", c])
                .stderr(Stdio::null())
                .status();
        }
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
fn poll(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A kamailio carrier listening on `udp:127.0.0.1:<port>`.
struct Kamailio {
    proc: Proc,
    port: u16,
    ctl: PathBuf,
}

impl Kamailio {
    /// Starts kamailio with the test config (`uas_port`: where outbound calls are relayed)
    /// and waits until it answers an OPTIONS.
    fn start(dir: &Path, port: u16, uas_port: u16) -> Kamailio {
        let run = dir.join("kamailio-run");
        std::fs::create_dir_all(&run).unwrap();
        let ctl = run.join("ctl.sock");
        let cfg = std::fs::read_to_string(format!("{PEERS}/kamailio.cfg"))
            .unwrap()
            .replace("@SIP_PORT@", &port.to_string())
            .replace("@UAS_PORT@", &uas_port.to_string())
            .replace("@CTL_SOCKET@", ctl.to_str().unwrap());
        let cfg_path = dir.join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let mut cmd = Command::new("kamailio");
        cmd.args(["-DD", "-E", "-m", "64", "-M", "8", "-f"])
            .arg(&cfg_path)
            .arg("-Y")
            .arg(&run)
            .arg("-P")
            .arg(run.join("kamailio.pid"));
        let mut k = Kamailio {
            proc: Proc::spawn("kamailio", cmd, dir),
            port,
            ctl,
        };
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let ready = poll(Duration::from_secs(8), || {
            if k.proc.exited().is_some() {
                return false;
            }
            options_ping(&probe, port)
        });
        if !ready {
            let status = k.proc.exited();
            k.proc.stop();
            panic!(
                "kamailio did not answer OPTIONS on 127.0.0.1:{port} (exit status {status:?})\n{}",
                k.proc.logs()
            );
        }
        k
    }

    /// kamailio's log lines written by the test config (`KAMTEST ...`).
    fn decisions(&self) -> String {
        self.proc
            .stderr()
            .lines()
            .filter(|l| l.contains("KAMTEST"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `kamcmd ul.dump`: kamailio's in-memory location table.
    fn location_table(&self) -> String {
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(format!("unix:{}", self.ctl.display()))
            .arg("ul.dump")
            .output()
            .expect("kamcmd (Debian package kamailio) must be installed");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Sends one OPTIONS to kamailio and reports whether a 200 came back.
fn options_ping(sock: &UdpSocket, port: u16) -> bool {
    let local = sock.local_addr().unwrap();
    static N: AtomicU32 = AtomicU32::new(0);
    let branch = format!("z9hG4bKprobe{}", N.fetch_add(1, Ordering::Relaxed));
    let msg = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe\r\n\
         To: <sip:127.0.0.1:{port}>\r\n\
         Call-ID: probe-{branch}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    if sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => buf[..n].starts_with(b"SIP/2.0 200"),
        Err(_) => false,
    }
}

/// Whether some socket is bound to UDP `port` (read from /proc, so probing cannot race
/// with the process that is about to bind it).
fn udp_port_bound(port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .any(|local| local.ends_with(&suffix))
    })
}

/// The first even port in `lo..hi` whose RTP/RTCP pair is free right now. Our ranges lie
/// inside the kernel's ephemeral range, so another test's `bind(:0)` may hold one of them,
/// and `leadscaller dial` uses only the first port of its range.
fn free_rtp_base(lo: u16, hi: u16) -> u16 {
    (lo..hi)
        .step_by(2)
        .find(|&p| !udp_port_bound(p) && !udp_port_bound(p + 1))
        .unwrap_or(lo)
}

/// Writes `<dir>/leadscaller.toml` and `<dir>/trunks/carrier.toml` (a trunk pointing at
/// kamailio with the `[auth]` credentials, registering when `register`).
fn write_config(
    dir: &Path,
    sip_listen: &str,
    rtp_base: u16,
    kamailio_port: u16,
    register: bool,
) -> PathBuf {
    std::fs::create_dir_all(dir.join("trunks")).unwrap();
    let main = dir.join("leadscaller.toml");
    std::fs::write(
        &main,
        format!(
            "data_dir = \"data\"\n\
             database_url = \"sqlite://data/leadscaller.db\"\n\
             [sip]\n\
             listen = [ {{ transport = \"udp\", addr = \"{sip_listen}\" }} ]\n\
             public_addr = \"127.0.0.1\"\n\
             [rtp]\n\
             port_min = {rtp_base}\n\
             port_max = {}\n\
             [http]\n\
             listen = \"127.0.0.1:0\"\n\
             [log]\n\
             level = \"info\"\n\
             [[routes]]\n\
             match_user = \"*\"\n\
             app = \"echo\"\n",
            rtp_base + 20
        ),
    )
    .unwrap();
    let mut trunk = format!(
        "host = \"127.0.0.1\"\n\
         port = {kamailio_port}\n\
         transport = \"udp\"\n\
         domain = \"{REALM}\"\n\
         from_number = \"+15550100199\"\n\
         [auth]\n\
         username = \"leadscaller\"\n\
         password = \"${{TRUNK_PASSWORD}}\"\n"
    );
    if register {
        trunk.push_str(
            "[register]\n\
             enabled = true\n\
             expires_s = 60\n\
             contact_user = \"leadscaller\"\n",
        );
    }
    std::fs::write(dir.join("trunks/carrier.toml"), trunk).unwrap();
    main
}

/// The binary under test: `LEADSCALLER_BIN` if set (e.g. to pin one build while the
/// shared target directory is rebuilt by others), else cargo's.
fn leadscaller(args: &[&str], config: &Path, password: &str) -> Command {
    let bin = std::env::var_os("LEADSCALLER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_leadscaller")));
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("TRUNK_PASSWORD", password)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG");
    cmd
}

fn sipp(args: &[&str]) -> Command {
    let mut cmd = Command::new("sipp");
    cmd.args(args).args([
        "-timeout",
        "12",
        "-timeout_error",
        "-recv_timeout",
        "5000",
        "-nostdin",
        "-trace_err",
        "-trace_msg",
    ]);
    cmd
}

/// sipp's message and error traces (`*_messages.log`, `*_errors.log` in `dir`).
fn sipp_traces(dir: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with("_messages.log") || name.ends_with("_errors.log") {
            s.push_str(&format!("----- {name} -----\n"));
            s.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    s
}

#[test]
fn serve_registers_through_kamailio_and_receives_call() {
    const KAM: u16 = 16101;
    const SERVE: u16 = 16102;
    const UAC: u16 = 16103;
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let kam = Kamailio::start(dir, KAM, 16109);
    let rtp = free_rtp_base(43000, 43040);
    let cfg = write_config(dir, &format!("127.0.0.1:{SERVE}"), rtp, kam.port, true);
    let mut serve = Proc::spawn("serve", leadscaller(&["serve"], &cfg, PASSWORD), dir);

    // The digest-authenticated REGISTER reached save("location") with our Contact.
    let registered = format!(
        "KAMTEST registered sip:leadscaller@{REALM} contact=<sip:leadscaller@127.0.0.1:{SERVE}>"
    );
    let ok = poll(Duration::from_secs(5), || {
        serve.exited().is_none() && kam.decisions().contains(&registered)
    });
    assert!(
        ok,
        "no successful registration (want `{registered}`)\nkamailio decisions:\n{}\n{}\n{}",
        kam.decisions(),
        serve.logs(),
        kam.proc.logs()
    );
    let decisions = kam.decisions();
    assert!(
        decisions.contains("KAMTEST challenging REGISTER"),
        "kamailio should have challenged the first REGISTER (401):\n{decisions}"
    );
    let table = kam.location_table();
    assert!(
        table.contains("AoR: leadscaller")
            && table.contains(&format!("Address: sip:leadscaller@127.0.0.1:{SERVE}")),
        "kamailio's location table lacks our contact:\n{table}"
    );
    assert!(
        poll(Duration::from_secs(2), || serve
            .stderr()
            .contains("registered")),
        "serve did not report the registration:\n{}",
        serve.logs()
    );

    // Three calls to our DID, routed by kamailio's lookup("location") to the echo app,
    // answered, ACKed and hung up through kamailio's Record-Route.
    let uac_cmd = sipp(&[
        &format!("127.0.0.1:{KAM}"),
        "-sf",
        &format!("{PEERS}/uac_via_proxy.xml"),
        "-s",
        "+15550009999",
        "-i",
        "127.0.0.1",
        "-p",
        &UAC.to_string(),
        "-mp",
        &free_rtp_base(43080, 43098).to_string(),
        "-m",
        "3",
        "-l",
        "1",
    ]);
    let mut uac = Proc::spawn("sipp-uac", uac_cmd, dir);
    let status = uac.wait(Duration::from_secs(12));
    let decisions = kam.decisions();
    assert!(
        status.is_some_and(|s| s.success()),
        "sipp UAC: {status:?}\nkamailio decisions:\n{decisions}\n{}\n{}\n{}",
        sipp_traces(dir),
        serve.logs(),
        uac.logs()
    );
    let count = |needle: &str| decisions.lines().filter(|l| l.contains(needle)).count();
    let relayed = format!(
        "KAMTEST inbound INVITE to +15550009999 relayed to sip:leadscaller@127.0.0.1:{SERVE}"
    );
    assert_eq!(count(&relayed), 3, "want 3 × `{relayed}`:\n{decisions}");
    assert_eq!(
        count("KAMTEST in-dialog BYE loose-routed"),
        3,
        "BYEs should go through kamailio:\n{decisions}"
    );
    // Our side saw each call end by the caller's BYE.
    let remote_byes = || {
        serve
            .stderr()
            .lines()
            .filter(|l| l.contains("call ended") && l.contains("RemoteBye"))
            .count()
    };
    assert!(
        poll(Duration::from_secs(2), || remote_byes() == 3),
        "serve should log 3 calls ended by RemoteBye, got {}:\n{}",
        remote_byes(),
        serve.logs()
    );
    assert!(
        serve.exited().is_none(),
        "serve exited early:\n{}",
        serve.logs()
    );
    eprintln!(
        "serve_registers_through_kamailio_and_receives_call: {:?}",
        t0.elapsed()
    );
}

fn dial_via_kamailio(dir: &Path, kam_port: u16, rtp_base: u16, password: &str) -> Proc {
    let cfg = write_config(dir, "127.0.0.1:0", rtp_base, kam_port, false);
    let cmd = leadscaller(
        &[
            "dial",
            "+15550001111",
            "--trunk",
            "carrier",
            "--duration",
            "1",
        ],
        &cfg,
        password,
    );
    Proc::spawn("dial", cmd, dir)
}

#[test]
fn dial_through_kamailio_with_proxy_auth_reaches_sipp_uas() {
    const KAM: u16 = 16111;
    const UAS: u16 = 16112;
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let kam = Kamailio::start(dir, KAM, UAS);
    let uas_cmd = sipp(&[
        "-sf",
        &format!("{PEERS}/uas_behind_proxy.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        &UAS.to_string(),
        "-mp",
        &free_rtp_base(43180, 43198).to_string(),
        "-m",
        "1",
    ]);
    let mut uas = Proc::spawn("sipp-uas", uas_cmd, dir);
    // sipp binds its socket right after start; wait until it is there.
    assert!(
        poll(Duration::from_secs(3), || udp_port_bound(UAS)
            || uas.exited().is_some()),
        "sipp UAS did not bind 127.0.0.1:{UAS}\n{}",
        uas.logs()
    );
    assert!(
        uas.exited().is_none(),
        "sipp UAS exited at start:\n{}",
        uas.logs()
    );

    let mut dial = dial_via_kamailio(dir, KAM, free_rtp_base(43100, 43140), PASSWORD);
    let status = dial.wait(Duration::from_secs(10));
    let stdout = dial.stdout();
    let decisions = kam.decisions();
    assert!(
        status.is_some_and(|s| s.success()),
        "dial: {status:?}\n{}\nkamailio decisions:\n{decisions}\n{}",
        dial.logs(),
        sipp_traces(dir)
    );
    assert!(stdout.contains("answered after"), "{stdout}");
    assert!(stdout.contains("ended LocalBye"), "{stdout}");

    // Kamailio challenged the INVITE (407), accepted our Proxy-Authorization, relayed the
    // call to the UAS, and saw our ACK and BYE on the record-routed path.
    for want in [
        "KAMTEST challenging outbound INVITE to +15550001111".to_string(),
        format!(
            "KAMTEST outbound INVITE to +15550001111 authorized as leadscaller, relayed to sip:127.0.0.1:{UAS}"
        ),
        format!("KAMTEST in-dialog ACK loose-routed to sip:pstn@127.0.0.1:{UAS}"),
        format!("KAMTEST in-dialog BYE loose-routed to sip:pstn@127.0.0.1:{UAS}"),
    ] {
        assert!(decisions.contains(&want), "want `{want}` in:\n{decisions}");
    }

    let s = uas.wait(Duration::from_secs(5));
    assert!(
        s.is_some_and(|s| s.success()),
        "sipp UAS: {s:?}\n{}\n{}",
        uas.logs(),
        sipp_traces(dir)
    );
    eprintln!(
        "dial_through_kamailio_with_proxy_auth_reaches_sipp_uas: {:?}",
        t0.elapsed()
    );
}

#[test]
fn dial_through_kamailio_with_wrong_password_fails_cleanly() {
    const KAM: u16 = 16121;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let kam = Kamailio::start(dir, KAM, 16122);
    let mut dial = dial_via_kamailio(dir, KAM, free_rtp_base(43200, 43240), "not-the-password");
    let status = dial.wait(Duration::from_secs(10));
    let stderr = dial.stderr();
    let decisions = kam.decisions();
    assert!(
        status.is_some_and(|s| !s.success()),
        "dial should fail: {status:?}\n{}\n{decisions}",
        dial.logs()
    );
    assert!(
        stderr.contains("call failed: Failed(407)"),
        "{}\nkamailio decisions:\n{decisions}",
        dial.logs()
    );
    assert!(
        !dial.logs().contains("not-the-password"),
        "the password must never be printed"
    );
    // One challenge for the bare INVITE, one for the wrong credentials; then we give up.
    assert_eq!(
        decisions
            .lines()
            .filter(|l| l.contains("KAMTEST challenging outbound INVITE"))
            .count(),
        2,
        "{decisions}"
    );
    assert!(!decisions.contains("authorized as"), "{decisions}");
}
