//! `leadscaller dial` against sipp acting as the carrier (UAS), with and without digest.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A child process killed on drop, so a failing test leaves nothing behind.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Guard {
    fn wait(mut self, limit: Duration) -> Output {
        let mut child = self.0.take().expect("child");
        let deadline = std::time::Instant::now() + limit;
        loop {
            if child.try_wait().expect("try_wait").is_some() {
                return child.wait_with_output().expect("output");
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return child.wait_with_output().expect("output");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn write_config(dir: &Path, sipp_port: u16, rtp_base: u16, with_auth: bool) -> PathBuf {
    std::fs::create_dir_all(dir.join("trunks")).unwrap();
    let main = dir.join("leadscaller.toml");
    let mut f = std::fs::File::create(&main).unwrap();
    writeln!(
        f,
        "[sip]\nlisten = [ {{ transport = \"udp\", addr = \"127.0.0.1:0\" }} ]\n[rtp]\nport_min = {rtp_base}\nport_max = {}\n",
        rtp_base + 20
    )
    .unwrap();
    let mut t = std::fs::File::create(dir.join("trunks/carrier.toml")).unwrap();
    writeln!(t, "host = \"127.0.0.1\"\nport = {sipp_port}\ntransport = \"udp\"\nfrom_number = \"+15550100199\"").unwrap();
    if with_auth {
        writeln!(
            t,
            "[auth]\nusername = \"trunkuser\"\npassword = \"${{TRUNK_PASSWORD}}\""
        )
        .unwrap();
    }
    main
}

fn sipp_uas(port: u16, scenario: &[&str], dir: &Path) -> Guard {
    let child = Command::new("sipp")
        .args(scenario)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
            "-timeout",
            "20",
            "-timeout_error",
            "-nostdin",
        ])
        .arg("-trace_err")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp (Debian package sip-tester) must be installed: run scripts/setup.sh");
    std::thread::sleep(Duration::from_millis(300));
    Guard(Some(child))
}

fn dial(config: &Path, password: &str) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_leadscaller"))
        .args([
            "dial",
            "+15550100123",
            "--trunk",
            "carrier",
            "--duration",
            "1",
            "--config",
        ])
        .arg(config)
        .env("TRUNK_PASSWORD", password)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn leadscaller");
    Guard(Some(child)).wait(Duration::from_secs(20))
}

fn scenario(name: &str) -> String {
    format!("{}/tests/peers/sipp/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn dial_reaches_sipp_uas_and_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 15190, 42000, false);
    let sipp = sipp_uas(15190, &["-sn", "uas"], dir.path());
    let out = dial(&cfg, "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dial failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("answered after"), "{stdout}");
    assert!(stdout.contains("ended LocalBye"), "{stdout}");
    let s = sipp.wait(Duration::from_secs(10));
    assert!(
        s.status.success(),
        "sipp saw a failed call: {}",
        String::from_utf8_lossy(&s.stderr)
    );
}

#[test]
fn dial_answers_digest_challenge_that_sipp_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 15192, 42100, true);
    let sipp = sipp_uas(15192, &["-sf", &scenario("uas_digest.xml")], dir.path());
    let out = dial(&cfg, "s3cret");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dial failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ended LocalBye"), "{stdout}");
    let s = sipp.wait(Duration::from_secs(10));
    assert!(
        s.status.success(),
        "sipp: {}",
        String::from_utf8_lossy(&s.stderr)
    );
}

#[test]
fn dial_with_wrong_password_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 15194, 42200, true);
    let _sipp = sipp_uas(15194, &["-sf", &scenario("uas_digest.xml")], dir.path());
    let out = dial(&cfg, "wrong");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("call failed: Failed(403)"), "{stderr}");
    assert!(
        !stderr.contains("wrong"),
        "the password must never be printed"
    );
}

/// Starts `serve` with `config` and waits until its SIP port answers.
fn serve(config: &Path, sip_port: u16) -> Guard {
    let child = Command::new(env!("CARGO_BIN_EXE_leadscaller"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn leadscaller serve");
    // Ready when an OPTIONS is answered.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let options = format!(
        "OPTIONS sip:127.0.0.1:{sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKready;rport\r\n\
From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ready@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        sock.local_addr().unwrap()
    );
    let mut buf = [0u8; 2048];
    for _ in 0..50 {
        sock.send_to(options.as_bytes(), ("127.0.0.1", sip_port))
            .unwrap();
        if sock.recv(&mut buf).is_ok() {
            return Guard(Some(child));
        }
    }
    panic!("serve did not answer OPTIONS on port {sip_port}");
}

#[test]
fn transfer_app_refers_sipp_caller_and_hangs_up_after_notify_200() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("leadscaller.toml");
    std::fs::write(
        &cfg,
        "[sip]\nlisten = [ { transport = \"udp\", addr = \"127.0.0.1:15196\" } ]\n[rtp]\nport_min = 42300\nport_max = 42340\n\
[[routes]]\nmatch_user = \"transfer\"\napp = \"transfer\"\ntransfer_to = \"sip:agent-desk@127.0.0.1:5999\"\ntransfer_after_ms = 200\n",
    )
    .unwrap();
    let _server = serve(&cfg, 15196);
    let sipp = Command::new("sipp")
        .args([
            "-sf",
            &scenario("uac_refer_transferee.xml"),
            "-s",
            "transfer",
            "127.0.0.1:15196",
        ])
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            "15198",
            "-m",
            "1",
            "-timeout",
            "15",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp");
    let out = Guard(Some(sipp)).wait(Duration::from_secs(20));
    let errors: String = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        out.status.success(),
        "sipp transferee scenario failed: {errors}"
    );
}
