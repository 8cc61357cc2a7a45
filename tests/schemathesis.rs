//! schemathesis (PyPI, pinned in scripts/setup.sh) against the real `leadscaller serve` binary,
//! on SQLite and on PostgreSQL: it reads `GET /v1/openapi.json` and sends generated valid and
//! invalid requests to every operation with an admin key. The API must never answer 5xx, must
//! answer only statuses the document declares, with the declared content type and a body that
//! matches the declared schema.
//!
//! Seeded rows (an agent, a campaign, a lead, a do-not-call entry, a webhook) are fed to the
//! `{id}` path parameter of their GET/PATCH routes half of the time, and valid phone numbers,
//! ids, webhook URLs and event types to the body fields that take them (schemathesis
//! dictionaries), so requests get past validation into the store as well as being refused.
//! Some names and reasons carry a NUL character, which PostgreSQL cannot store. The run is
//! bounded (examples per operation, one worker) and seeded, so it is reproducible and takes well
//! under two minutes; `LC_SCHEMATHESIS_EXAMPLES=200` and `LC_SCHEMATHESIS_PHASES=...,stateful`
//! make a longer hunt by hand.

mod common;
mod db;

use std::process::Command;
use std::time::Duration;

use common::{PortBlock, Proc, Server, ServerConfig, require_tool, tail};
use leadscaller::store::Engine;
use serde_json::{Value, json};

/// The checks run on every response (see README "Tests" for why these four).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";
/// Generated cases per operation and phase.
const MAX_EXAMPLES: u32 = 20;
/// Fixed so that a failure reproduces with the same requests.
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
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Sends `method path` with `body` and returns the status and the JSON answer.
async fn call(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// POSTs `body` and returns the new row's id.
async fn seed(http: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) -> String {
    let (status, v) = call(http, base, token, reqwest::Method::POST, path, Some(body)).await;
    assert_eq!(status, 201, "seeding {path}: {v}");
    v["id"].as_str().expect("id").to_owned()
}

/// The ids of the seeded rows.
struct Seeded {
    agent: String,
    campaign: String,
    lead: String,
    dnc: String,
    webhook: String,
}

/// The schemathesis config: seed, bounds, and the dictionaries of useful values.
fn config_toml(examples: u32, s: &Seeded) -> String {
    let by_id = |dict: &str, paths: &str, methods: &str| {
        format!(
            "[[operations]]\ninclude-path = [{paths}]\ninclude-method = [{methods}]\n\
             parameters = {{ \"path.id\" = {{ dictionary = \"{dict}\", probability = 0.5 }} }}\n"
        )
    };
    let get_patch = "\"GET\", \"PATCH\"";
    [
        format!("seed = {SEED}\nworkers = 1\nrequest-timeout = 10\n"),
        format!("[generation]\nmax-examples = {examples}\ndatabase = \"none\"\n"),
        format!("[dictionaries.agents]\nvalues = [\"{}\"]\n", s.agent),
        format!("[dictionaries.campaigns]\nvalues = [\"{}\"]\n", s.campaign),
        format!("[dictionaries.leads]\nvalues = [\"{}\"]\n", s.lead),
        format!("[dictionaries.dnc]\nvalues = [\"{}\"]\n", s.dnc),
        format!("[dictionaries.webhooks]\nvalues = [\"{}\"]\n", s.webhook),
        "[dictionaries.phones]\nvalues = [\"+14155550123\", \"(415) 555-0134\", \"+442071838750\", \"+14155550100\"]\n".into(),
        // Loopback, and nothing listens there: a delivery attempt stays on this machine.
        "[dictionaries.urls]\nvalues = [\"http://127.0.0.1:9/hook\"]\n".into(),
        "[dictionaries.event_types]\nvalues = [\"call.ended\", \"call.started\", \"lead.opted_out\"]\n".into(),
        "[dictionaries.ws]\nvalues = [\"wss://media.example.com\"]\n".into(),
        "[dictionaries.nul]\nvalues = [\"a\\u0000b\"]\n".into(),
        "[parameters]\n\
         \"body.phone\" = { dictionary = \"phones\", probability = 0.5 }\n\
         \"body.caller_id\" = { dictionary = \"phones\", probability = 0.5 }\n\
         \"body.campaign_id\" = { dictionary = \"campaigns\", probability = 0.5 }\n\
         \"body.agent_id\" = { dictionary = \"agents\", probability = 0.5 }\n\
         \"body.url\" = { dictionary = \"urls\", probability = 0.8 }\n\
         \"body.event_types[*]\" = { dictionary = \"event_types\", probability = 0.8 }\n\
         \"query.base_url\" = { dictionary = \"ws\", probability = 0.8 }\n\
         \"body.name\" = { dictionary = \"nul\", probability = 0.1 }\n\
         \"body.reason\" = { dictionary = \"nul\", probability = 0.2 }\n\
         \"body.first_name\" = { dictionary = \"nul\", probability = 0.2 }\n"
            .into(),
        by_id("agents", "\"/v1/agents/{id}\"", get_patch),
        by_id("campaigns", "\"/v1/campaigns/{id}\"", get_patch),
        by_id(
            "leads",
            "\"/v1/leads/{id}\", \"/v1/leads/{id}/consent\"",
            get_patch,
        ),
        by_id("dnc", "\"/v1/dnc/{id}\"", "\"GET\""),
        by_id(
            "webhooks",
            "\"/v1/webhooks/{id}\", \"/v1/webhooks/{id}/deliveries\"",
            get_patch,
        ),
        "[[operations]]\ninclude-path = \"/v1/privacy/export\"\n\
         parameters = { \"body.lead_id\" = { dictionary = \"leads\", probability = 0.5 } }\n"
            .into(),
    ]
    .join("\n")
}

async fn run(engine: Engine) {
    require_tool("schemathesis", "schemathesis (PyPI)");
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    let pg = match engine {
        Engine::Sqlite => None,
        _ => Some(db::TestDb::new(Engine::Postgres).await),
    };
    if let Some(pg) = &pg {
        cfg.database_url = pg.url.clone();
    }
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
    let seeded = Seeded {
        lead: seed(
            &http,
            &base,
            &token,
            "/v1/leads",
            json!({"campaign_id": campaign, "phone": "+14155550100", "first_name": "Ada",
                   "consent_status": "express_written", "consent_at": "2026-01-02T03:04:05Z"}),
        )
        .await,
        dnc: seed(
            &http,
            &base,
            &token,
            "/v1/dnc",
            json!({"phone": "+14155550199", "reason": "asked"}),
        )
        .await,
        webhook: seed(
            &http,
            &base,
            &token,
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "event_types": ["call.ended"]}),
        )
        .await,
        agent,
        campaign,
    };
    let examples = std::env::var("LC_SCHEMATHESIS_EXAMPLES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(MAX_EXAMPLES);
    let config = server.dir.path().join("schemathesis.toml");
    std::fs::write(&config, config_toml(examples, &seeded)).expect("write schemathesis.toml");

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
        // Closing the account, or revoking a key schemathesis saw listed (it reuses ids from
        // earlier answers), would turn every later request into a 401.
        .args(["--exclude-path", "/v1/account/close"])
        .args(["--exclude-operation-id", "api-keys_revoke"])
        // Queues a real delivery to whatever URL a generated webhook holds: no network in tests.
        .args(["--exclude-operation-id", "webhooks_test"])
        .current_dir(server.dir.path())
        .env("NO_COLOR", "1");
    let mut st = Proc::spawn("schemathesis", cmd, server.dir.path());
    let limit = Duration::from_secs(150 * u64::from(examples.div_ceil(MAX_EXAMPLES)));
    let status = st.wait(limit);
    let report = st.stdout();
    let server_log = server.log();
    println!("{report}");
    assert!(
        status.success(),
        "schemathesis failed ({status}):\n{}\nstderr:\n{}\nserver log (tail):\n{}",
        tail(&report, 20_000),
        tail(&st.stderr(), 4000),
        tail(&server_log, 4000)
    );
    assert!(
        report.contains(" passed") && !report.contains("Server error"),
        "{report}"
    );
    assert!(
        !server_log.contains("api: store failure"),
        "the server logged a store failure:\n{}",
        tail(&server_log, 8000)
    );
    // The run was not hollow: the key still works.
    let (status, me) = call(
        &http,
        &base,
        &token,
        reqwest::Method::GET,
        "/v1/account",
        None,
    )
    .await;
    assert_eq!((status, me["name"].as_str()), (200, Some("fuzz")), "{me}");
    assert!(!server_log.contains(&token), "no secret in the server log");
}

#[tokio::test]
async fn schemathesis_on_sqlite() {
    run(Engine::Sqlite).await;
}

#[tokio::test]
async fn schemathesis_on_postgres() {
    run(Engine::Postgres).await;
}
