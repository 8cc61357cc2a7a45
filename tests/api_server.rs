//! The API inside the real `leadscaller serve` binary: operator bootstrap with
//! `leadscaller keys create`, then authenticated calls over the server's HTTP port.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{PortBlock, Server, ServerConfig};

fn cli(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_leadscaller"))
        .args(args)
        .arg("--config")
        .arg(server.dir.path().join("leadscaller.toml"))
        .current_dir(server.dir.path())
        .output()
        .expect("run leadscaller");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn operator_bootstraps_a_key_and_the_server_honours_it() {
    let server = Server::start(&ServerConfig::new(PortBlock::allocate()));
    server.log_when("listening (GET /health", 1, Duration::from_secs(10));
    let (ok, stdout, stderr) = cli(&server, &["keys", "create", "--account", "acme"]);
    assert!(ok, "{stderr}");
    let token = stdout.trim().to_owned();
    assert!(token.starts_with("lc_"), "{stdout}");
    assert!(stderr.contains("created account acme"), "{stderr}");
    assert!(
        !stderr.contains(&token),
        "the token is printed only on stdout"
    );

    let (ok, stdout, _) = cli(&server, &["db", "migrate"]);
    assert!(ok);
    assert_eq!(stdout.trim(), "sqlite database: 0 migration(s) applied");

    let base = format!("http://127.0.0.1:{}", server.ports.http());
    let http = reqwest::Client::new();
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "health needs no key");
    let doc = http
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(doc.status(), 200, "the OpenAPI document needs no key");
    let doc: serde_json::Value = doc.json().await.unwrap();
    assert!(doc["paths"]["/v1/account"]["get"].is_object(), "{doc}");
    let anon = http.get(format!("{base}/v1/account")).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    let me: serde_json::Value = http
        .get(format!("{base}/v1/account"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "acme");
    assert_eq!(
        me["settings"]["recording_enabled"], false,
        "recording is opt-in"
    );
    assert!(
        !server.log().contains(&token),
        "no secret in the server log"
    );
}

/// `/v1/trunks` lists the server's configured trunks without their credentials, and a
/// campaign may only name one of them.
#[tokio::test]
async fn campaigns_reference_the_servers_configured_trunks() {
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.files.push((
        "trunks/carrier.toml".into(),
        b"host = \"127.0.0.1\"\nport = 5099\nfrom_number = \"+15550100199\"\n\
          [auth]\nusername = \"trunkuser\"\npassword = \"trunk-password-123\"\n"
            .to_vec(),
    ));
    let server = Server::start(&cfg);
    let (ok, stdout, stderr) = cli(&server, &["keys", "create", "--account", "acme"]);
    assert!(ok, "{stderr}");
    let token = stdout.trim().to_owned();
    let base = server.api_base();
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{base}/v1/trunks"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let trunks: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(trunks["data"].as_array().unwrap().len(), 1, "{text}");
    assert_eq!(trunks["data"][0]["name"], "carrier");
    assert_eq!(trunks["data"][0]["from_number"], "+15550100199");
    assert!(
        !text.contains("trunk-password-123") && !text.contains("trunkuser"),
        "credentials leaked: {text}"
    );
    let create = |trunk: &'static str| {
        let req = http
            .post(format!("{base}/v1/campaigns"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "spring", "trunk": trunk}));
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = create("carrier").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["trunk"], "carrier");
    let (status, body) = create("nope").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "trunk");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("carrier"),
        "{body}"
    );
}
