//! `leadscaller dial` against sipp acting as the carrier (UAS): plain, with digest, and a
//! carrier that holds the call with a re-INVITE.

mod common;

use common::{PortBlock, Proc, require_tool};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn write_dial_config(dir: &Path, ports: PortBlock, with_auth: bool) -> PathBuf {
    std::fs::create_dir_all(dir.join("trunks")).unwrap();
    let (rtp_min, rtp_max) = ports.server_rtp();
    let main = dir.join("leadscaller.toml");
    std::fs::write(
        &main,
        format!(
            "[sip]\nlisten = [ {{ transport = \"udp\", addr = \"127.0.0.1:0\" }} ]\n[rtp]\nport_min = {rtp_min}\nport_max = {rtp_max}\n"
        ),
    )
    .unwrap();
    let mut t = std::fs::File::create(dir.join("trunks/carrier.toml")).unwrap();
    writeln!(
        t,
        "host = \"127.0.0.1\"\nport = {}\ntransport = \"udp\"\nfrom_number = \"+15550100199\"",
        ports.peer_sip()
    )
    .unwrap();
    if with_auth {
        writeln!(
            t,
            "[auth]\nusername = \"trunkuser\"\npassword = \"${{TRUNK_PASSWORD}}\""
        )
        .unwrap();
    }
    main
}

fn scenario(name: &str) -> String {
    format!("{}/tests/peers/sipp/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A sipp UAS on the block's peer port that answers one call.
fn sipp_uas(ports: PortBlock, scenario_args: &[&str], dir: &Path) -> Proc {
    require_tool("sipp", "sip-tester");
    let mut cmd = Command::new("sipp");
    cmd.args(scenario_args)
        .args(["-i", "127.0.0.1", "-p", &ports.peer_sip().to_string()])
        .args([
            "-cp",
            &ports.sipp_control().to_string(),
            "-mp",
            &ports.peer_media().to_string(),
        ])
        .args([
            "-m",
            "1",
            "-timeout",
            "20",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .current_dir(dir);
    let p = Proc::spawn("sipp-uas", cmd, dir);
    std::thread::sleep(Duration::from_millis(300));
    p
}

fn dial(dir: &Path, config: &Path, password: &str) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leadscaller"));
    cmd.args([
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
    .env("NO_COLOR", "1");
    Proc::spawn("dial", cmd, dir)
}

/// Dials a sipp UAS running `scenario_args` and expects a whole call: answer, the
/// `--duration` second, our BYE, and sipp's own verdict that the call succeeded.
/// Returns the UAS's working directory for scenario-specific checks.
fn dial_completes(scenario_args: &[&str], password: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::allocate();
    let cfg = write_dial_config(dir.path(), ports, password.is_some());
    let mut sipp = sipp_uas(ports, scenario_args, dir.path());
    let mut d = dial(dir.path(), &cfg, password.unwrap_or(""));
    let status = d.wait(Duration::from_secs(20));
    let (out, err) = (d.stdout(), d.stderr());
    assert!(status.success(), "dial failed:\n{out}\n{err}");
    assert!(out.contains("answered after"), "{out}");
    assert!(out.contains("ended LocalBye"), "{out}");
    let ok = sipp.wait(Duration::from_secs(10)).success();
    assert!(ok, "sipp saw a failed call: {}", sipp.stderr());
    dir
}

#[test]
fn dial_reaches_sipp_uas_and_hangs_up() {
    dial_completes(&["-sn", "uas"], None);
}

#[test]
fn dial_answers_digest_challenge_that_sipp_verifies() {
    dial_completes(&["-sf", &scenario("uas_digest.xml")], Some("s3cret"));
}

#[test]
fn dial_with_wrong_password_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::allocate();
    let cfg = write_dial_config(dir.path(), ports, true);
    let _sipp = sipp_uas(ports, &["-sf", &scenario("uas_digest.xml")], dir.path());
    let mut d = dial(dir.path(), &cfg, "wrong");
    assert!(!d.wait(Duration::from_secs(20)).success());
    let stderr = d.stderr();
    assert!(stderr.contains("call failed: Failed(403)"), "{stderr}");
    assert!(
        !stderr.contains("wrong"),
        "the password must never be printed"
    );
}

#[test]
fn dial_answers_a_hold_reinvite_from_the_carrier() {
    let hold = scenario("uas_reinvite_hold.xml");
    let dir = dial_completes(&["-sf", &hold, "-trace_logs"], None);
    let logs: String = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_logs.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(logs.contains("hold answered with a=recvonly"), "{logs}");
}

/// `dial` never calls a number on the account's do-not-call list, nor one erased by a
/// data-subject request (only its salted hash is left). The refused attempts send nothing:
/// the sipp UAS, which takes exactly one call, still answers the allowed dial afterwards.
#[test]
fn dial_refuses_do_not_call_and_erased_numbers() {
    use leadscaller::store::Store;
    use leadscaller::store::suppression::SuppressionSalt;
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::allocate();
    let cfg = write_dial_config(dir.path(), ports, false);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let url = format!("sqlite://{}", data.join("lc.db").display());
    let body = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\ndatabase_url = \"{url}\"\n{body}",
            data.display()
        ),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, account, salt) = rt.block_on(async {
        let store = Store::open(&url).await.unwrap();
        let account = store.create_account("default").await.unwrap().id;
        let salt = SuppressionSalt::load_or_create(&data.join("suppression.salt")).unwrap();
        (store, account, salt)
    });
    let mut sipp = sipp_uas(ports, &["-sn", "uas"], dir.path());
    let refused = |why: &str| {
        let mut d = dial(dir.path(), &cfg, "");
        assert!(!d.wait(Duration::from_secs(20)).success(), "dialled anyway");
        let err = d.stderr();
        assert!(
            err.contains("refusing to dial +15550100123") && err.contains(why),
            "{err}"
        );
    };
    let entry = rt.block_on(async {
        store
            .add_dnc(&account, "+15550100123", Some("asked"), "api", None)
            .await
            .unwrap()
    });
    refused("do-not-call list");
    rt.block_on(async {
        store.delete_dnc(&account, &entry.id).await.unwrap();
        store
            .suppress(&account, &salt, "+15550100123", 0)
            .await
            .unwrap();
    });
    refused("suppression list");
    // With another salt the stored hash no longer matches: the same number goes through,
    // which shows the refusal came from the suppression list and nothing else.
    std::fs::remove_file(data.join("suppression.salt")).unwrap();
    let mut d = dial(dir.path(), &cfg, "");
    let status = d.wait(Duration::from_secs(20));
    assert!(status.success(), "{}\n{}", d.stdout(), d.stderr());
    assert!(
        sipp.wait(Duration::from_secs(10)).success(),
        "sipp: {}",
        sipp.stderr()
    );
}
