//! The agent in the LLM mode end to end over SIP: baresip calls `leadscaller serve`, says
//! one utterance after the greeting, and the agent's `openai` chat stage talks to a local mock
//! of `POST /v1/chat/completions` (the same SSE wire as tests/llm_openai.rs). The recognizer
//! is the `scripted` stage (the embedded one only knows a scripted flow's phrases).
//!
//! - the mock streams text and then `set_outcome` + `end_call` tool calls: the agent speaks,
//!   hangs up after its last words, and the `call ended` line carries the outcome;
//! - the mock answers 500: the agent says the fallback line with the embedded voice, retries
//!   once, and ends the call with outcome `agent_error`.

mod common;

use common::{
    LOOPBACK, PortBlock, Proc, Route, Server, ServerConfig, read_lossy, require_tool, tail,
    wav_bytes,
};
use serde_json::{Value, json};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const RATE: u32 = 8000;

/// What the mock chat server answers, and the request bodies it saw.
struct Mock {
    /// `None`: every request gets a 500; else one SSE body per request, in order.
    bodies: Mutex<Option<Vec<String>>>,
    seen: Mutex<Vec<Value>>,
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> String {
    let c = json!({
        "id": "chatcmpl-agent", "object": "chat.completion.chunk", "created": 1_764_300_000,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    });
    format!("data: {c}\n\n")
}

fn tool_chunks(index: usize, id: &str, name: &str, args: &str) -> String {
    chunk(
        json!({"tool_calls": [{"index": index, "id": id, "type": "function",
            "function": {"name": name, "arguments": ""}}]}),
        None,
    ) + &chunk(
        json!({"tool_calls": [{"index": index, "function": {"arguments": args}}]}),
        None,
    )
}

/// Starts the mock on a loopback port in its own runtime; returns its base URL.
fn start_mock(mock: Arc<Mock>) -> (String, tokio::runtime::Runtime) {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::header;
    use axum::response::{IntoResponse, Response};
    async fn completions(State(mock): State<Arc<Mock>>, body: Bytes) -> Response {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        mock.seen.lock().unwrap().push(body);
        let next = mock.bodies.lock().unwrap().as_mut().map(|b| {
            if b.is_empty() {
                String::new()
            } else {
                b.remove(0)
            }
        });
        match next {
            Some(sse) if !sse.is_empty() => (
                [(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")],
                sse,
            )
                .into_response(),
            _ => (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                json!({"error": {"message": "The server had an error while processing your request. Sorry about that!",
                    "type": "server_error", "param": null, "code": null}})
                .to_string(),
            )
                .into_response(),
        }
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind((LOOPBACK, 0)))
        .expect("bind mock");
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(completions))
        .with_state(mock);
    rt.spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), rt)
}

fn agent_file(base_url: &str) -> String {
    format!(
        r#"system_prompt = "You are a polite assistant booking home energy assessments."
greeting = "Hi, this is an automated assistant from Bright Home Solar."
tools = ["end_call", "set_outcome"]

[stt]
name = "scripted"
utterances = ["Yes, Friday morning works for me."]

[llm]
name = "openai"
base_url = "{base_url}"
model = "gpt-4o-mini"
retries = 0
first_byte_timeout_ms = 5000
"#
    )
}

/// Runs one baresip call to the `agent` route; returns the server log and baresip's output.
fn call_agent(base_url: &str) -> (String, String, Server) {
    require_tool("baresip", "baresip");
    let utterance =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio/yes__flite.wav"))
            .expect("../shared/audio/yes__flite.wav");
    let mut cfg = ServerConfig::new(PortBlock::allocate());
    cfg.files = vec![("agents/llm.toml".into(), agent_file(base_url).into_bytes())];
    cfg.routes = vec![Route {
        match_user: "agent".into(),
        app: "agent".into(),
        reject_code: None,
        extra: vec!["flow = \"agents/llm.toml\"".into()],
    }];
    let server = Server::start(&cfg);
    // Listen to the greeting for 5 s, answer, then stay quiet (the file outlasts the call).
    let mut input = vec![0i16; RATE as usize * 5];
    input.extend(common::ulaw_samples(&utterance));
    input.resize(RATE as usize * 30, 0);

    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/baresip");
    let dir = tempfile::Builder::new()
        .prefix("leadscaller-agent-llm-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    let rec = d.join("rec");
    fs::create_dir(&rec).expect("rec dir");
    fs::write(d.join("input.wav"), wav_bytes(RATE, &input)).expect("input");
    let p = server.ports;
    let (rtp_min, rtp_max) = p.baresip_rtp();
    let config = read_lossy(&peers.join("config"))
        .replace("{sip_listen}", &format!("{LOOPBACK}:{}", p.baresip_sip()))
        .replace("{input_wav}", &d.join("input.wav").display().to_string())
        .replace("{rtp_ports}", &format!("{rtp_min}-{rtp_max}"))
        .replace("{snd_path}", &rec.display().to_string());
    fs::write(d.join("config"), config).expect("config");
    fs::copy(peers.join("accounts"), d.join("accounts")).expect("accounts");
    fs::write(d.join("contacts"), "").expect("contacts");
    let mut cmd = Command::new("baresip");
    cmd.arg("-f")
        .arg(d)
        .arg("-e")
        .arg(format!("/dial sip:agent@{}", server.sip_target()))
        .args(["-t", "25"])
        .current_dir(d);
    let mut ua = Proc::spawn("baresip", cmd, d);
    ua.wait(Duration::from_secs(40));
    let output = ua.stdout() + &ua.stderr();
    let log = server.log_when("call ended", 1, Duration::from_secs(5));
    if std::env::var_os("AGENT_LLM_LOG").is_some() {
        eprintln!("{log}");
    }
    (log, output, server)
}

fn line<'a>(log: &'a str, needle: &str) -> &'a str {
    log.lines().find(|l| l.contains(needle)).unwrap_or("")
}

#[test]
fn llm_agent_speaks_runs_tools_and_hangs_up_with_the_outcome() {
    let reply = chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    ) + &chunk(
        json!({"content": "Great, you're booked for Friday morning."}),
        None,
    ) + &chunk(json!({"content": " Goodbye!"}), None)
        + &tool_chunks(0, "call_a", "set_outcome", "{\"disposition\":\"booked\"}")
        + &tool_chunks(1, "call_b", "end_call", "{}")
        + &chunk(json!({}), Some("tool_calls"))
        + "data: [DONE]\n\n";
    let mock = Arc::new(Mock {
        bodies: Mutex::new(Some(vec![reply])),
        seen: Mutex::new(Vec::new()),
    });
    let (url, _rt) = start_mock(mock.clone());
    let (log, output, _server) = call_agent(&url);
    let diag = || {
        format!(
            "{}\n--- baresip ---\n{}",
            tail(&log, 6000),
            tail(&output, 2000)
        )
    };
    let ended = line(&log, "call ended");
    assert!(
        ended.contains("outcome booked") && ended.contains("reason=LocalBye"),
        "the agent should hang up with the outcome: {ended:?}\n{}",
        diag()
    );
    assert!(log.contains("EndCall"), "no end_call tool call\n{}", diag());
    assert!(
        line(&log, "agent says").contains("Bright Home Solar"),
        "no greeting\n{}",
        diag()
    );
    assert!(
        log.contains("booked for Friday morning"),
        "the reply was not spoken\n{}",
        diag()
    );
    let seen = mock.seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "one completion: {seen:?}");
    let messages = seen[0]["messages"].as_array().cloned().unwrap_or_default();
    let roles: Vec<_> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(roles, ["system", "assistant", "user"], "{messages:?}");
    assert_eq!(messages[2]["content"], "Yes, Friday morning works for me.");
    let tools: Vec<_> = seen[0]["tools"]
        .as_array()
        .map(|t| t.iter().map(|t| t["function"]["name"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(tools, [json!("end_call"), json!("set_outcome")]);
    let latency = line(&log, "turn latency");
    assert!(
        latency.contains("mode=\"llm\"") || latency.contains("mode=llm"),
        "no latency record: {latency:?}\n{}",
        diag()
    );
    assert!(latency.contains("llm_first_token_ms="), "{latency}");
}

#[test]
fn llm_agent_failing_twice_says_the_fallback_and_ends_with_agent_error() {
    let mock = Arc::new(Mock {
        bodies: Mutex::new(None),
        seen: Mutex::new(Vec::new()),
    });
    let (url, _rt) = start_mock(mock.clone());
    let (log, output, _server) = call_agent(&url);
    let diag = || {
        format!(
            "{}\n--- baresip ---\n{}",
            tail(&log, 6000),
            tail(&output, 2000)
        )
    };
    assert!(
        line(&log, "agent says (fallback)").contains("Sorry, one moment."),
        "no fallback line\n{}",
        diag()
    );
    let ended = line(&log, "call ended");
    assert!(
        ended.contains("outcome agent_error") && ended.contains("reason=LocalBye"),
        "the call should end cleanly with agent_error: {ended:?}\n{}",
        diag()
    );
    assert_eq!(
        mock.seen.lock().unwrap().len(),
        2,
        "the turn is retried once\n{}",
        diag()
    );
}
