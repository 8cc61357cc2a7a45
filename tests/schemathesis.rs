//! schemathesis (PyPI, pinned in scripts/setup.sh) against the real `leadscaller serve` binary:
//! it reads `GET /v1/openapi.json` and sends generated valid and invalid requests to every
//! operation with an admin key. The API must never answer 5xx, must answer only the statuses
//! the document declares, and every body must match the declared schema.
//!
//! Seeded rows (a campaign, an agent, a lead, a do-not-call entry, a webhook) are fed to the
//! `{id}` path parameter of their GET/PATCH routes half of the time (a schemathesis dictionary),
//! so the found paths are exercised as well as the 404s. The run is bounded (examples per
//! operation, one worker) and seeded, so it is reproducible and takes well under two minutes.

mod common;

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use common::{PortBlock, Proc, Server, ServerConfig, require_tool, tail};
use serde_json::{Value, json};

/// The checks enabled, and why each holds for this API (see README "Tests").
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";
/// Generated cases per operation and phase (`LC_SCHEMATHESIS_EXAMPLES` overrides, for a longer
/// hunt by hand).
const MAX_EXAMPLES: u32 = 20;
/// Fixed so a failure reproduces with the same requests.
const SEED: u64 = 20_261_128;

fn cli(server: &Server, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_leadscaller"))
        .args(args)
        .arg("--config")
        .arg(server.dir.path().join("leadscaller.toml"))
        .current_dir(server.dir.path())
        .output()
        .expect("run leadscaller");
    assert!(
        out.status.success(),
        "leadscaller {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

/// POSTs `body` and returns the new row's id.
async fn seed(http: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) -> String {
    let res = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("seed request");
    let status = res.status();
    let v: Value = res.json().await.expect("seed answer is JSON");
    assert_eq!(status, 201, "seeding {path}: {v}");
    v["id"].as_str().expect("id").to_owned()
}

/// The schemathesis config: seed, bounds, and the seeded ids as path-parameter dictionaries.
fn config_toml(examples: u32, ids: &[(&str, &[&str], String)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "seed = {SEED}\nworkers = 1\nrequest-timeout = 10\n");
    let _ = writeln!(
        s,
        "[generation]\nmax-examples = {examples}\ndatabase = \"none\"\n"
    );
    for (name, _, id) in ids {
        let _ = writeln!(s, "[dictionaries.{name}]\nvalues = [\"{id}\"]\n");
    }
    for (name, paths, _) in ids {
        let paths: Vec<String> = paths.iter().map(|p| format!("\"{p}\"")).collect();
        let _ = writeln!(
            s,
            "[[operations]]\ninclude-path = [{}]\ninclude-method = [\"GET\", \"PATCH\"]\n\
             parameters = {{ \"path.id\" = {{ dictionary = \"{name}\", probability = 0.5 }} }}\n",
            paths.join(", ")
        );
    }
    s
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_spec_mismatch() {
    require_tool("schemathesis", "schemathesis (PyPI)");
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    // Recording on makes the server create its master key, which webhook secrets need.
    cfg.extra_toml = "\n[recording]\nenabled = true\n".into();
    let server = Server::start(&cfg);
    server.log_when("listening (GET /health", 1, Duration::from_secs(10));
    let token = cli(&server, &["keys", "create", "--account", "fuzz"]);
    let base = server.api_base();
    let http = reqwest::Client::new();

    let agent = seed(
        &http,
        &base,
        &token,
        "/v1/agents",
        json!({"name": "seed agent", "config": {"system_prompt": "be brief"}}),
    )
    .await;
    let campaign = seed(
        &http,
        &base,
        &token,
        "/v1/campaigns",
        json!({"name": "seed campaign", "agent_id": agent}),
    )
    .await;
    let lead = seed(
        &http,
        &base,
        &token,
        "/v1/leads",
        json!({"campaign_id": campaign, "phone": "+14155550100", "first_name": "Ada",
               "consent_status": "express_written", "consent_at": "2026-01-02T03:04:05Z"}),
    )
    .await;
    let dnc = seed(
        &http,
        &base,
        &token,
        "/v1/dnc",
        json!({"phone": "+14155550199", "reason": "asked"}),
    )
    .await;
    // Loopback and nothing listens there: a delivery attempt stays on this machine.
    let webhook = seed(
        &http,
        &base,
        &token,
        "/v1/webhooks",
        json!({"url": "http://127.0.0.1:9/hook", "event_types": ["call.ended"]}),
    )
    .await;

    let ids: Vec<(&str, &[&str], String)> = vec![
        ("agent_ids", &["/v1/agents/{id}"], agent),
        ("campaign_ids", &["/v1/campaigns/{id}"], campaign),
        ("lead_ids", &["/v1/leads/{id}", "/v1/leads/{id}/consent"], lead),
        ("dnc_ids", &["/v1/dnc/{id}"], dnc),
        (
            "webhook_ids",
            &["/v1/webhooks/{id}", "/v1/webhooks/{id}/deliveries"],
            webhook,
        ),
    ];
    let config = server.dir.path().join("schemathesis.toml");
    let examples = std::env::var("LC_SCHEMATHESIS_EXAMPLES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(MAX_EXAMPLES);
    std::fs::write(&config, config_toml(examples, &ids)).expect("write schemathesis.toml");

    let mut cmd = Command::new("schemathesis");
    cmd.arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .arg("run")
        .arg(format!("{base}/v1/openapi.json"))
        .args(["--checks", CHECKS])
        .args([
            "--phases",
            &std::env::var("LC_SCHEMATHESIS_PHASES")
                .unwrap_or_else(|_| "examples,coverage,fuzzing".to_owned()),
        ])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Closing the account revokes the key every later request uses.
        .args(["--exclude-path", "/v1/account/close"])
        // Queues a real delivery to whatever URL a generated webhook holds: no network in tests.
        .args(["--exclude-operation-id", "webhooks_test"])
        .current_dir(server.dir.path())
        .env("NO_COLOR", "1")
        .env("HYPOTHESIS_STORAGE_DIRECTORY", server.dir.path().join(".hypothesis"));
    let mut run = Proc::spawn("schemathesis", cmd, server.dir.path());
    let status = run.wait(Duration::from_secs(150 * u64::from(examples.div_ceil(MAX_EXAMPLES))));
    let report = run.stdout();
    let server_log = server.log();
    println!("{report}");
    assert!(
        status.success(),
        "schemathesis failed ({status}):\n{}\nstderr:\n{}\nserver log (tail):\n{}",
        tail(&report, 20_000),
        tail(&run.stderr(), 4000),
        tail(&server_log, 4000)
    );
    assert!(
        !report.contains("Server error"),
        "a 5xx was seen:\n{report}"
    );
    assert!(
        !server_log.contains("api: store failure"),
        "the server logged a store failure:\n{}",
        tail(&server_log, 8000)
    );
    assert!(
        !server_log.contains(&token),
        "no secret in the server log"
    );
}
