//! The `openai` LLM stage against a local mock of `POST /v1/chat/completions`.
//!
//! Documented OpenAI behaviour the mock reproduces (API reference "Create chat completion",
//! "The chat completion chunk object", "Error codes"):
//! - auth: `Authorization: Bearer <key>`; a wrong key gets `401` with
//!   `{"error":{"message":"Incorrect API key provided: sk-wro***...","type":"invalid_request_error",
//!   "param":null,"code":"invalid_api_key"}}` (the real message masks the key);
//! - `stream: true` answers `200`, `content-type: text/event-stream`, one `data: <chunk>\n\n` per
//!   `chat.completion.chunk` (`id`, `object`, `created`, `model`, `system_fingerprint`,
//!   `choices[{index, delta, logprobs, finish_reason}]`): first a role chunk
//!   (`{"role":"assistant","content":"","refusal":null}`), then `content` pieces; tool calls
//!   stream as `delta.tool_calls[{index, id, type:"function", function{name, arguments:""}}]`
//!   then fragments carrying only `index` and `function.arguments`; a last chunk with an empty
//!   delta and `finish_reason` (`stop` / `tool_calls`); then `data: [DONE]\n\n`. The body is
//!   written in small pieces so JSON objects straddle TCP writes;
//! - `429` with `{"error":{..., "type":"requests","code":"rate_limit_exceeded"}}` and
//!   `retry-after`; `500` with `{"error":{"message":"The server had an error while processing
//!   your request. Sorry about that!","type":"server_error","param":null,"code":null}}`;
//! - failures the real service shows in the field: a malformed chunk, a connection reset
//!   mid-stream, a stream that stops sending, and an `{"error":...}` object inside the stream.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use leadscaller::agent::StageConfig;
use leadscaller::agent::StageRegistry;
use leadscaller::agent::stages::{
    ChatMessage, ChatRequest, Llm, LlmDelta, LlmReply, LlmStream, LlmToolCall, Role, StageError,
};
use serde_json::{Value, json};

const KEY: &str = "sk-test-9f8e7d6c5b4a3210";
const MODEL: &str = "gpt-4o-mini";

/// One step of a streamed body.
#[derive(Debug, Clone)]
enum Step {
    /// Write these bytes (one body frame, one TCP write).
    Bytes(Vec<u8>),
    /// Wait before the next step.
    Pause(Duration),
    /// Reset the connection (the body stream fails).
    Abort,
    /// Never send anything again.
    Hang,
}

/// What the mock answers to one request.
#[derive(Debug, Clone)]
enum Reply {
    /// `200 text/event-stream` with these steps.
    Stream(Vec<Step>),
    /// A non-2xx JSON error.
    Status {
        code: u16,
        retry_after: Option<&'static str>,
        body: String,
    },
    /// Wait this long before sending any header.
    Slow(Duration),
}

/// A request as the mock saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    auth: Option<String>,
    body: Value,
}

struct Mock {
    /// The key the mock accepts (`None`: a local server that ignores auth).
    key: Option<String>,
    /// Replies, one per request, in order.
    replies: Mutex<VecDeque<Reply>>,
    /// Every accepted request.
    seen: Mutex<Vec<Seen>>,
    /// Every request, accepted or not.
    hits: AtomicUsize,
    /// Set when a streamed body is dropped (client went away or stream ended).
    body_dropped: Arc<AtomicBool>,
}

/// Sets its flag when the body stream is dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn openai_error(message: &str, kind: &str, code: Option<&str>) -> String {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}}).to_string()
}

async fn completions(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    mock.hits.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(key) = &mock.key
        && auth.as_deref() != Some(&format!("Bearer {key}"))
    {
        let given = auth.as_deref().unwrap_or("").trim_start_matches("Bearer ");
        let masked = format!(
            "{}***{}",
            &given[..given.len().min(6)],
            &given[given.len().saturating_sub(4)..]
        );
        let msg = format!(
            "Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys."
        );
        return json_error(
            401,
            None,
            openai_error(&msg, "invalid_request_error", Some("invalid_api_key")),
        );
    }
    assert_eq!(
        headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let body: Value = serde_json::from_slice(&body).expect("request body is JSON");
    assert_eq!(body["model"], MODEL, "{body}");
    assert_eq!(body["stream"], true, "{body}");
    assert!(
        body["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    mock.seen.lock().unwrap().push(Seen {
        at: Instant::now(),
        auth,
        body,
    });
    let reply = mock.replies.lock().unwrap().pop_front();
    match reply {
        None => json_error(
            500,
            None,
            openai_error("mock: no reply scripted", "server_error", None),
        ),
        Some(Reply::Status {
            code,
            retry_after,
            body,
        }) => json_error(code, retry_after, body),
        Some(Reply::Slow(d)) => {
            tokio::time::sleep(d).await;
            json_error(500, None, openai_error("too late", "server_error", None))
        }
        Some(Reply::Stream(steps)) => {
            let state = (
                VecDeque::from(steps),
                DropFlag(Arc::clone(&mock.body_dropped)),
            );
            let stream = futures_util::stream::unfold(state, |(mut steps, flag)| async move {
                loop {
                    match steps.pop_front()? {
                        Step::Pause(d) => tokio::time::sleep(d).await,
                        Step::Bytes(b) => return Some((Ok(Bytes::from(b)), (steps, flag))),
                        Step::Abort => {
                            let e = std::io::Error::new(
                                std::io::ErrorKind::ConnectionReset,
                                "mock abort",
                            );
                            return Some((Err(e), (steps, flag)));
                        }
                        Step::Hang => std::future::pending::<()>().await,
                    }
                }
            });
            Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from_stream(stream))
                .unwrap()
        }
    }
}

fn json_error(code: u16, retry_after: Option<&str>, body: String) -> Response {
    let mut r = (
        StatusCode::from_u16(code).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(ra) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, ra.parse().unwrap());
    }
    r
}

/// Starts the mock; returns its base URL (`http://127.0.0.1:port/v1`) and state.
async fn start_mock(key: Option<&str>, replies: Vec<Reply>) -> (String, Arc<Mock>) {
    let mock = Arc::new(Mock {
        key: key.map(str::to_owned),
        replies: Mutex::new(replies.into()),
        seen: Mutex::new(Vec::new()),
        hits: AtomicUsize::new(0),
        body_dropped: Arc::new(AtomicBool::new(false)),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(Arc::clone(&mock));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), mock)
}

/// One `chat.completion.chunk` event as OpenAI writes it.
fn chunk(delta: Value, finish_reason: Option<&str>) -> String {
    let c = json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion.chunk",
        "created": 1_764_300_000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    });
    format!("data: {c}\n\n")
}

fn role_chunk() -> String {
    chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    )
}

fn text_chunk(t: &str) -> String {
    chunk(json!({"content": t}), None)
}

fn done() -> String {
    "data: [DONE]\n\n".to_owned()
}

/// `sse` written in `size`-byte pieces (splitting JSON and UTF-8), 1 ms apart.
fn pieces(sse: &str, size: usize) -> Vec<Step> {
    sse.as_bytes()
        .chunks(size)
        .flat_map(|c| {
            [
                Step::Bytes(c.to_vec()),
                Step::Pause(Duration::from_millis(1)),
            ]
        })
        .collect()
}

fn stage(base_url: &str, extra: &str) -> Box<dyn Llm> {
    let src = format!(
        "name = 'openai'\nbase_url = '{base_url}'\nmodel = '{MODEL}'\napi_key_env = 'TEST_OPENAI_KEY'\n{extra}"
    );
    stage_with_key(&src, KEY)
}

fn stage_with_key(src: &str, key: &str) -> Box<dyn Llm> {
    let config: StageConfig = toml::from_str(src).unwrap();
    let env = |name: &str| (name == "TEST_OPENAI_KEY").then(|| key.to_owned());
    StageRegistry::with_builtins()
        .build_llm(&config, &env)
        .unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::text(Role::System, "You book appointments. Be brief."),
            ChatMessage::text(Role::User, "Can I come in on Tuesday?"),
        ],
        tools: json!([]),
    }
}

async fn next(s: &mut Box<dyn LlmStream>) -> Option<Result<LlmDelta, StageError>> {
    poll_fn(|cx| s.poll_delta(cx)).await
}

/// Everything the stream yields: the deltas folded into a reply, and the error that ended it.
async fn drain(s: &mut Box<dyn LlmStream>) -> (LlmReply, Option<StageError>) {
    let mut reply = LlmReply::default();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), next(s))
        .await
        .expect("stream must end")
    {
        match item {
            Ok(d) => reply.apply(&d),
            Err(e) => {
                assert!(
                    tokio::time::timeout(Duration::from_secs(1), next(s))
                        .await
                        .unwrap()
                        .is_none(),
                    "an error ends the stream"
                );
                return (reply, Some(e));
            }
        }
    }
    (reply, None)
}

/// The reason of a provider error, checked to hold no secret.
fn provider_reason(e: Option<StageError>) -> String {
    let e = e.expect("an error");
    let text = format!("{e} {e:?}");
    assert!(!text.contains(KEY), "key leaked: {text}");
    assert!(!text.contains(&KEY[8..]), "key leaked: {text}");
    match e {
        StageError::Provider { stage, reason } => {
            assert_eq!(stage, "llm openai");
            reason
        }
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[tokio::test]
async fn text_reply_streams_in_pieces_with_the_documented_request() {
    let sse = [
        role_chunk(),
        text_chunk("Tuesday "),
        text_chunk("works — "),
        text_chunk("what time? ☕"),
        chunk(json!({}), Some("stop")),
        done(),
    ]
    .concat();
    let (url, mock) = start_mock(Some(KEY), vec![Reply::Stream(pieces(&sse, 7))]).await;
    let mut llm = stage(&url, "temperature = 0.3\nmax_tokens = 150");
    let mut s = llm.start(&request()).unwrap();
    let (reply, err) = drain(&mut s).await;
    assert_eq!(err, None);
    assert_eq!(reply.text, "Tuesday works — what time? ☕");
    assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
    assert!(reply.tool_calls.is_empty());

    let seen = mock.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].auth.as_deref(), Some(&*format!("Bearer {KEY}")));
    assert_eq!(
        seen[0].body,
        json!({
            "model": MODEL,
            "stream": true,
            "temperature": 0.3,
            "max_tokens": 150,
            "messages": [
                {"role": "system", "content": "You book appointments. Be brief."},
                {"role": "user", "content": "Can I come in on Tuesday?"},
            ],
        })
    );
}

#[tokio::test]
async fn two_parallel_tool_calls_accumulate_by_index() {
    let call = |index: u32, id: &str, name: &str| {
        chunk(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                   "function": {"name": name, "arguments": ""}}]}),
            None,
        )
    };
    let args = |index: u32, piece: &str| {
        chunk(
            json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
            None,
        )
    };
    let mut sse = vec![
        role_chunk(),
        text_chunk("One moment."),
        call(0, "call_Ab12", "set_outcome"),
    ];
    for p in ["{\"", "dispo", "sition", "\":\"", "boo", "ked", "\"}"] {
        sse.push(args(0, p));
    }
    sse.push(call(1, "call_Cd34", "end_call"));
    for p in ["{\"re", "ason\":", "\"done", "\"}"] {
        sse.push(args(1, p));
    }
    sse.push(chunk(json!({}), Some("tool_calls")));
    sse.push(done());
    let (url, mock) = start_mock(Some(KEY), vec![Reply::Stream(pieces(&sse.concat(), 13))]).await;
    let mut llm = stage(&url, "");
    let mut req = request();
    req.tools = leadscaller::agent::tools::tool_definitions();
    req.messages.push(ChatMessage {
        role: Role::Assistant,
        content: String::new(),
        tool_calls: vec![LlmToolCall {
            id: "call_0".into(),
            name: "send_dtmf".into(),
            arguments: "{\"digits\":\"1\"}".into(),
        }],
        tool_call_id: None,
    });
    req.messages
        .push(ChatMessage::tool_result("call_0", "sent"));
    let mut s = llm.start(&req).unwrap();
    let (reply, err) = drain(&mut s).await;
    assert_eq!(err, None);
    assert_eq!(reply.text, "One moment.");
    assert_eq!(reply.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        reply.tool_calls,
        [
            LlmToolCall {
                id: "call_Ab12".into(),
                name: "set_outcome".into(),
                arguments: "{\"disposition\":\"booked\"}".into(),
            },
            LlmToolCall {
                id: "call_Cd34".into(),
                name: "end_call".into(),
                arguments: "{\"reason\":\"done\"}".into(),
            },
        ]
    );
    let body = mock.seen.lock().unwrap()[0].body.clone();
    assert_eq!(body["tools"], leadscaller::agent::tools::tool_definitions());
    assert_eq!(
        body["messages"][2],
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
               "function": {"name": "send_dtmf", "arguments": "{\"digits\":\"1\"}"}}]})
    );
    assert_eq!(
        body["messages"][3],
        json!({"role": "tool", "tool_call_id": "call_0", "content": "sent"})
    );
}

#[tokio::test]
async fn wrong_key_is_a_401_provider_error_without_retry() {
    let (url, mock) = start_mock(Some(KEY), vec![]).await;
    let src = format!(
        "name = 'openai'\nbase_url = '{url}'\nmodel = '{MODEL}'\napi_key_env = 'TEST_OPENAI_KEY'"
    );
    let wrong = "sk-wrong-0000111122223333";
    let mut s = stage_with_key(&src, wrong).start(&request()).unwrap();
    let (reply, err) = drain(&mut s).await;
    assert_eq!(reply, LlmReply::default());
    let reason = provider_reason(err);
    assert!(
        reason.starts_with("HTTP 401 Unauthorized: Incorrect API key provided"),
        "{reason}"
    );
    assert!(
        reason.contains("invalid_request_error, invalid_api_key"),
        "{reason}"
    );
    assert!(!reason.contains(wrong), "{reason}");
    assert_eq!(mock.hits.load(Ordering::SeqCst), 1, "a 401 is not retried");
}

#[tokio::test]
async fn rate_limit_then_success_honours_retry_after() {
    let limited = openai_error(
        "Rate limit reached for gpt-4o-mini in organization org-abc on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s.",
        "requests",
        Some("rate_limit_exceeded"),
    );
    let sse = [
        role_chunk(),
        text_chunk("Hello."),
        chunk(json!({}), Some("stop")),
        done(),
    ]
    .concat();
    let replies = vec![
        Reply::Status {
            code: 429,
            retry_after: Some("1"),
            body: limited,
        },
        Reply::Stream(pieces(&sse, 20)),
    ];
    let (url, mock) = start_mock(Some(KEY), replies).await;
    let mut s = stage(&url, "retries = 1").start(&request()).unwrap();
    let (reply, err) = drain(&mut s).await;
    assert_eq!(err, None);
    assert_eq!(reply.text, "Hello.");
    let seen = mock.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_millis(950), "waited only {gap:?}");
    assert!(gap < Duration::from_secs(3), "waited {gap:?}");
}

#[tokio::test]
async fn server_errors_exhaust_the_retries() {
    let body = openai_error(
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    );
    let reply = Reply::Status {
        code: 500,
        retry_after: None,
        body,
    };
    let (url, mock) = start_mock(Some(KEY), vec![reply.clone(), reply.clone(), reply]).await;
    let started = Instant::now();
    let mut s = stage(&url, "retries = 2").start(&request()).unwrap();
    let (_, err) = drain(&mut s).await;
    let reason = provider_reason(err);
    assert_eq!(
        reason,
        "HTTP 500 Internal Server Error: The server had an error while processing your request. Sorry about that! (server_error)"
    );
    assert_eq!(mock.seen.lock().unwrap().len(), 3, "1 attempt + 2 retries");
    // Backoff 200 ms then 400 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn malformed_chunk_is_a_provider_error_after_the_text_before_it() {
    let sse = [
        role_chunk(),
        text_chunk("Partial"),
        "data: {\"id\":\"chatcmpl-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"oops\"\n\n".to_owned(),
        text_chunk(" never"),
        done(),
    ]
    .concat();
    let (url, _mock) = start_mock(Some(KEY), vec![Reply::Stream(pieces(&sse, 9))]).await;
    let mut s = stage(&url, "").start(&request()).unwrap();
    let (reply, err) = drain(&mut s).await;
    assert_eq!(reply.text, "Partial");
    let reason = provider_reason(err);
    assert!(
        reason.starts_with("malformed stream chunk: truncated JSON"),
        "{reason}"
    );
}

#[tokio::test]
async fn connection_reset_mid_stream_is_a_provider_error_after_partial_text() {
    let mut steps = pieces(&[role_chunk(), text_chunk("I can")].concat(), 11);
    steps.push(Step::Bytes(b"data: {\"choices\":[{\"ind".to_vec()));
    steps.push(Step::Abort);
    let (url, _mock) = start_mock(Some(KEY), vec![Reply::Stream(steps)]).await;
    let mut s = stage(&url, "retries = 2").start(&request()).unwrap();
    let (reply, err) = drain(&mut s).await;
    assert_eq!(reply.text, "I can");
    let reason = provider_reason(err);
    assert!(reason.starts_with("stream broken"), "{reason}");
}

#[tokio::test]
async fn stalled_stream_times_out_at_the_stall_timeout() {
    let mut steps = pieces(&[role_chunk(), text_chunk("Let me")].concat(), 50);
    steps.push(Step::Hang);
    let (url, _mock) = start_mock(Some(KEY), vec![Reply::Stream(steps)]).await;
    let mut s = stage(&url, "stall_timeout_ms = 300")
        .start(&request())
        .unwrap();
    let first = next(&mut s).await.unwrap().unwrap();
    assert_eq!(first, LlmDelta::Text("Let me".into()));
    let t = Instant::now();
    let (_, err) = drain(&mut s).await;
    let waited = t.elapsed();
    assert_eq!(provider_reason(err), "stream stalled: no data for 300 ms");
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
}

#[tokio::test]
async fn slow_headers_hit_the_first_byte_timeout() {
    let (url, mock) = start_mock(Some(KEY), vec![Reply::Slow(Duration::from_secs(5))]).await;
    let t = Instant::now();
    let mut s = stage(&url, "first_byte_timeout_ms = 300")
        .start(&request())
        .unwrap();
    let (_, err) = drain(&mut s).await;
    assert_eq!(
        provider_reason(err),
        "no response within first_byte_timeout_ms = 300"
    );
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        mock.seen.lock().unwrap().len(),
        1,
        "a timeout is not retried"
    );
}

#[tokio::test]
async fn cancel_stops_the_stream_and_closes_the_request() {
    let mut steps = vec![Step::Bytes(role_chunk().into_bytes())];
    for i in 0..500 {
        steps.push(Step::Bytes(text_chunk(&format!("word{i} ")).into_bytes()));
        steps.push(Step::Pause(Duration::from_millis(20)));
    }
    let (url, mock) = start_mock(Some(KEY), vec![Reply::Stream(steps)]).await;
    let mut s = stage(&url, "").start(&request()).unwrap();
    assert_eq!(
        next(&mut s).await.unwrap().unwrap(),
        LlmDelta::Text("word0 ".into())
    );
    s.cancel();
    assert_eq!(next(&mut s).await, None);
    assert_eq!(next(&mut s).await, None);
    let t = Instant::now();
    while !mock.body_dropped.load(Ordering::SeqCst) {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "server still streaming after cancel"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn local_server_without_key_gets_no_authorization_header() {
    let sse = [
        role_chunk(),
        text_chunk("Hi."),
        chunk(json!({}), Some("stop")),
        done(),
    ]
    .concat();
    let (url, mock) = start_mock(None, vec![Reply::Stream(pieces(&sse, 16))]).await;
    let config: StageConfig = toml::from_str(&format!(
        "name = 'openai'\nbase_url = '{url}/'\nmodel = '{MODEL}'"
    ))
    .unwrap();
    let mut llm = StageRegistry::with_builtins()
        .build_llm(&config, &|_: &str| None)
        .unwrap();
    let (reply, err) = drain(&mut llm.start(&request()).unwrap()).await;
    assert_eq!((reply.text.as_str(), err), ("Hi.", None));
    assert_eq!(mock.seen.lock().unwrap()[0].auth, None);
}

#[tokio::test]
async fn error_inside_the_stream_and_echoed_keys_are_redacted() {
    // A proxy that echoes the request's credentials in its error must not leak them to logs.
    let echoed = openai_error(
        &format!("bad header Bearer {KEY}"),
        "invalid_request_error",
        None,
    );
    let in_stream = [
        role_chunk(),
        text_chunk("Sure"),
        format!(
            "data: {}\n\n",
            openai_error(&format!("upstream failed for {KEY}"), "server_error", None)
        ),
    ]
    .concat();
    let replies = vec![
        Reply::Status {
            code: 400,
            retry_after: None,
            body: echoed,
        },
        Reply::Stream(pieces(&in_stream, 8)),
    ];
    let (url, _mock) = start_mock(Some(KEY), replies).await;
    let mut llm = stage(&url, "");
    let (_, err) = drain(&mut llm.start(&request()).unwrap()).await;
    assert_eq!(
        provider_reason(err),
        "HTTP 400 Bad Request: bad header Bearer *** (invalid_request_error)"
    );
    let (reply, err) = drain(&mut llm.start(&request()).unwrap()).await;
    assert_eq!(reply.text, "Sure");
    assert_eq!(
        provider_reason(err),
        "provider reported: upstream failed for *** (server_error)"
    );
}

#[tokio::test]
async fn refused_connection_is_retried_then_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let started = Instant::now();
    let mut s = stage(&format!("http://{addr}/v1"), "retries = 1")
        .start(&request())
        .unwrap();
    let (_, err) = drain(&mut s).await;
    let reason = provider_reason(err);
    assert!(
        reason.starts_with("request failed: connect error"),
        "{reason}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(180),
        "one backoff before the retry"
    );
}

#[tokio::test]
async fn bad_params_are_build_errors() {
    let registry = StageRegistry::with_builtins();
    let build = |src: &str| {
        let config: StageConfig = toml::from_str(src).unwrap();
        registry
            .build_llm(&config, &|_: &str| None)
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(
        build("name = 'openai'").as_deref(),
        Some("llm openai: parameter \"model\": missing: name the model (e.g. \"gpt-4o-mini\")")
    );
    assert_eq!(
        build("name = 'openai'\nmodel = 'm'\napi_key_env = 'NOPE'").as_deref(),
        Some("llm openai: environment variable NOPE (named by \"api_key_env\") is not set")
    );
    assert!(
        build("name = 'openai'\nmodel = 'm'\nretries = 1.5")
            .unwrap()
            .contains("whole number")
    );
    assert!(
        build("name = 'openai'\nmodel = 'm'\ntemperature = 3")
            .unwrap()
            .contains("outside")
    );
    assert!(
        build("name = 'openai'\nmodel = 'm'\nbase_url = 'ftp://x'")
            .unwrap()
            .contains("http")
    );
    assert!(
        build("name = 'openai'\nmodel = 'm'\nkey = 'x'")
            .unwrap()
            .contains("unknown parameter")
    );
    assert_eq!(
        build("name = 'openai'\nmodel = 'm'\nstall_timeout_ms = 5000"),
        None
    );
}
