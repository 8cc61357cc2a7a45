//! The curl walkthrough in `docs/api.md` is run as written (bash, curl, jq) against a real
//! server, and its output is checked: the documentation cannot drift from the API.

mod common;

use common::{PortBlock, Server, ServerConfig, require_tool};
use std::process::Command;

/// The first `sh` block after the "Walkthrough with curl" heading of docs/api.md.
fn walkthrough() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md");
    let section = doc
        .split_once("## Walkthrough with curl")
        .expect("docs/api.md has the walkthrough section")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("a sh block in the walkthrough")
        .1;
    block
        .split_once("```")
        .expect("the block ends")
        .0
        .to_owned()
}

#[test]
fn the_documented_curl_walkthrough_runs_against_a_real_server() {
    require_tool("curl", "curl");
    require_tool("jq", "jq");
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    // Recording on makes the server keep a master key ring, which sealing secrets needs.
    cfg.extra_toml = "\n[recording]\nenabled = true\n".into();
    let server = Server::start(&cfg);
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_leadscaller"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &walkthrough()])
        .env("PATH", path)
        .env("CONFIG", server.dir.path().join("leadscaller.toml"))
        .env("BASE", server.api_base())
        .current_dir(server.dir.path())
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walkthrough failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server\n{}",
        server.log()
    );
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    let has = |needle: &str| {
        assert!(
            stdout.contains(needle),
            "walkthrough output lacks {needle:?}:\n{stdout}"
        )
    };
    has("\"recording_enabled\": true");
    has("\"recording_retention_days\": 30");
    // The CSV import: one good row, one reported by line and column.
    has("\"imported\":1");
    has("\"failed\":1");
    has("\"line\":3");
    has("\"column\":\"Phone\"");
    // Both leads listed, the JSON one normalised to E.164.
    has("\"phone\": \"+14155552671\"");
    has("\"phone\": \"+12125550147\"");
    has("\"Augusta Ada\"");
    // The read key: the DNC list has one entry, and a write is forbidden.
    assert!(
        lines.contains(&"403"),
        "read key write not refused:\n{stdout}"
    );
    // The export zip holds the lead's JSON; after erasure the lead is gone.
    has("lead.json");
    assert!(
        lines.contains(&"404"),
        "erased lead still served:\n{stdout}"
    );
    has("\"status\": \"closed\"");
    // The provider secret went in, and never comes back out.
    assert!(
        !stdout.contains("sk-example"),
        "a secret was echoed:\n{stdout}"
    );
    assert!(!server.log().contains("sk-example"), "a secret was logged");
    eprintln!("{stdout}");
}
