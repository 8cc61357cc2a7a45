//! The LLM agent with a streaming recognizer and the early LLM start (`[turns] early_llm_ms`),
//! end to end on a simulated leg paced at real time: an `LlmAgentApp` built from an agent file
//! whose `deepgram` stage talks to a local mock of Deepgram's live API (the protocol of
//! tests/stt_deepgram.rs: interim results timed by audio received, `Finalize` answered by a
//! `from_finalize` result) and whose `openai` stage talks to a local mock of the streaming
//! chat completions API (the SSE wire of tests/llm_openai.rs). The caller says "Yes, I am
//! interested." (`../shared/audio/yes__flite.wav`, 8 kHz µ-law).
//!
//! - early start on: the chat request reaches the mock before the recognizer's final is sent,
//!   the final agrees, and the reply audio goes out;
//! - early start off: the request comes after the final;
//! - the final differs from the stable partial: the early request is cancelled and a second
//!   request carries the final's text;
//! - a measurement of how much earlier the first reply frame leaves (printed).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use leadscaller::agent::{AgentConfig, AgentMode, StageRegistry};
use leadscaller::call::agent::AgentServices;
use leadscaller::call::agent_llm::LlmAgentApp;
use leadscaller::leg::harness::AppHarness;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const RATE: u32 = 8000;
const KEY: &str = "dg-secret-key-0123456789abcdef";
/// The caller starts talking this far into the call (ticks of 20 ms).
const SPEECH_TICK: usize = 25;

/// What both mocks saw, with the time of each thing.
#[derive(Debug, Default)]
struct Log {
    /// Chat requests: when they arrived, and their body.
    requests: Vec<(Instant, Value)>,
    /// When the Deepgram mock sent the answer to `Finalize` (the final).
    finals_sent: Vec<Instant>,
    /// `Finalize` messages received.
    finalizes: usize,
}

type Shared = Arc<Mutex<Log>>;

/// The Deepgram mock's script: replies once this much audio (ms) has arrived, and the
/// transcript of the `from_finalize` answer.
#[derive(Clone)]
struct DgScript {
    at_audio_ms: Vec<(u32, String)>,
    finalize_transcript: String,
}

/// A `Results` message as the API documents it.
fn results(transcript: &str, is_final: bool, from_finalize: bool) -> String {
    json!({
        "type": "Results", "channel_index": [0, 1], "start": 0.0, "duration": 1.0,
        "is_final": is_final, "speech_final": false, "from_finalize": from_finalize,
        "channel": {"alternatives": [{"transcript": transcript,
            "confidence": if is_final { 0.98 } else { 0.7 }, "words": []}]},
        "metadata": {"request_id": "6b9f6c0e-mock", "model_uuid": "mock-uuid",
            "model_info": {"name": "general-nova-3", "version": "2024-12-20.0", "arch": "nova-3"}}
    })
    .to_string()
}

async fn start_deepgram(script: DgScript, log: Shared) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (script, log) = (script.clone(), Arc::clone(&log));
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let mut pending = script.at_audio_ms.clone();
                let mut audio_bytes = 0usize;
                while let Some(Ok(msg)) = ws.next().await {
                    let mut replies = Vec::new();
                    match msg {
                        Message::Binary(b) => {
                            audio_bytes += b.len();
                            // linear16 mono at 8 kHz: 16 bytes per ms.
                            let ms = (audio_bytes / 16) as u32;
                            while pending.first().is_some_and(|(at, _)| *at <= ms) {
                                replies.push(pending.remove(0).1);
                            }
                        }
                        Message::Text(t) => {
                            let v: Value = serde_json::from_str(t.as_str()).unwrap();
                            match v["type"].as_str() {
                                Some("Finalize") => {
                                    log.lock().unwrap().finalizes += 1;
                                    replies.push(results(&script.finalize_transcript, true, true));
                                    log.lock().unwrap().finals_sent.push(Instant::now());
                                }
                                Some("CloseStream") => return,
                                _ => {}
                            }
                        }
                        _ => {}
                    }
                    for r in replies {
                        let _ = ws.send(Message::text(r)).await;
                    }
                }
            });
        }
    });
    addr
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> String {
    let c = json!({
        "id": "chatcmpl-early", "object": "chat.completion.chunk", "created": 1_764_300_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    });
    format!("data: {c}\n\n")
}

/// The reply: one sentence, then `end_call`.
fn reply_sse() -> String {
    chunk(json!({"role": "assistant", "content": ""}), None)
        + &chunk(json!({"content": "Great, you're booked."}), None)
        + &chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                "function": {"name": "end_call", "arguments": "{}"}}]}),
            None,
        )
        + &chunk(json!({}), Some("tool_calls"))
        + "data: [DONE]\n\n"
}

/// The chat mock; every request is answered after `delay` with [`reply_sse`].
async fn start_openai(log: Shared, delay: Duration) -> SocketAddr {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::header;
    use axum::response::IntoResponse;
    async fn completions(
        State((log, delay)): State<(Shared, Duration)>,
        body: Bytes,
    ) -> axum::response::Response {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        log.lock().unwrap().requests.push((Instant::now(), body));
        tokio::time::sleep(delay).await;
        (
            [(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")],
            reply_sse(),
        )
            .into_response()
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(completions))
        .with_state((log, delay));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// What one call showed.
struct Outcome {
    log: Log,
    /// When the first reply frame left, if one did.
    first_reply: Option<Instant>,
    /// The caller turns and agent lines of the call record.
    turns: Vec<(String, String)>,
    hung_up: Option<String>,
}

/// Runs one call: the caller says the utterance at [`SPEECH_TICK`]; the mocks answer with
/// `script` and after `llm_delay`; `early_llm_ms` 0 is off.
fn call(script: DgScript, early_llm_ms: u64, llm_delay: Duration) -> Outcome {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let log: Shared = Arc::default();
    let dg = rt.block_on(start_deepgram(script, Arc::clone(&log)));
    let oa = rt.block_on(start_openai(Arc::clone(&log), llm_delay));
    let turns = if early_llm_ms > 0 {
        format!("[turns]\nearly_llm_ms = {early_llm_ms}\n")
    } else {
        String::new()
    };
    let src = format!(
        r#"system_prompt = "You book home energy assessments."
tools = ["end_call"]

[stt]
name = "deepgram"
base_url = "ws://{dg}"
api_key_env = "DG_KEY"

[llm]
name = "openai"
base_url = "http://{oa}/v1"
model = "gpt-4o-mini"
retries = 0

[tts]
name = "silence"
ms_per_char = 10

{turns}"#
    );
    let _guard = rt.enter();
    let registry = StageRegistry::with_builtins();
    let env = |v: &str| (v == "DG_KEY").then(|| KEY.to_owned());
    let config = AgentConfig::parse(&src, "agents/early.toml", &registry, &env).expect("loads");
    assert_eq!(config.turns.early_llm_ms, early_llm_ms);
    let AgentMode::Llm(mode) = config.mode.clone() else {
        panic!("LLM mode expected");
    };
    let stt = registry
        .build_stt(config.stt.as_ref().unwrap(), &env)
        .unwrap();
    let llm = registry.build_llm(&mode.llm, &env).unwrap();
    let tts = registry
        .build_tts(config.tts.as_ref().unwrap(), &env)
        .unwrap();
    let mut app = LlmAgentApp::new(AgentServices::start(), mode, stt, llm, Some(tts))
        .with_turns(&config.turns);

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio/yes__flite.wav");
    let speech = common::ulaw_samples(&std::fs::read(path).expect("shared audio"));
    let frame = RATE as usize / 50;
    let mut input = vec![0i16; SPEECH_TICK * frame];
    input.extend(&speech);
    let mut h = AppHarness::new(RATE);
    let start = Instant::now();
    let mut first_reply = None;
    let mut hung_up = None;
    for t in 0..400usize {
        let caller: Vec<i16> = (0..frame)
            .map(|i| input.get(t * frame + i).copied().unwrap_or(0))
            .collect();
        if let Some(reason) = h.tick(Some(&caller), &mut app) {
            hung_up = Some(reason);
            break;
        }
        if h.sent_audio && first_reply.is_none() {
            first_reply = Some(Instant::now());
        }
        // Real-time pacing: the recognizer and the model run on their own clocks.
        let next = start + Duration::from_millis(20 * (t as u64 + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let report = leadscaller::leg::MediaApp::take_report(&mut app).expect("report");
    drop(app);
    let turns = report
        .turns
        .iter()
        .map(|t| (t.speaker.as_str().to_owned(), t.text.clone()))
        .collect();
    let log = std::mem::take(&mut *log.lock().unwrap());
    Outcome {
        log,
        first_reply,
        turns,
        hung_up,
    }
}

/// Interims while the caller talks, then the committed segment: the final agrees.
fn agreeing() -> DgScript {
    DgScript {
        at_audio_ms: vec![
            (500, results("yes i am", false, false)),
            // Sooner than early_llm_ms: "yes i am" is never stable long enough.
            (600, results("yes i am interested", false, false)),
            (900, results("Yes, I am interested.", true, false)),
        ],
        finalize_transcript: String::new(),
    }
}

fn user_text(request: &Value) -> String {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    assert_eq!(last["role"], "user", "{request}");
    last["content"].as_str().unwrap_or("").to_owned()
}

fn caller_and_agent(o: &Outcome) -> Vec<(&str, &str)> {
    o.turns
        .iter()
        .map(|(s, t)| (s.as_str(), t.as_str()))
        .collect()
}

#[test]
fn early_start_sends_the_request_before_the_final_and_adopts_it() {
    let o = call(agreeing(), 200, Duration::ZERO);
    let log = &o.log;
    assert_eq!(log.finalizes, 1, "one utterance, one Finalize");
    let asked: Vec<_> = log.requests.iter().map(|r| user_text(&r.1)).collect();
    assert_eq!(
        asked.len(),
        1,
        "the early request is the only one: {asked:?}"
    );
    let (asked, body) = &log.requests[0];
    assert!(
        *asked < log.finals_sent[0],
        "the request came {:?} after the final",
        asked.duration_since(log.finals_sent[0])
    );
    assert_eq!(
        user_text(body).to_lowercase().replace([',', '.'], ""),
        "yes i am interested"
    );
    assert!(o.first_reply.is_some(), "no reply audio");
    assert!(
        o.first_reply.unwrap() > log.finals_sent[0],
        "spoken only after the final"
    );
    assert_eq!(
        o.hung_up.as_deref(),
        Some("agent hung up (outcome completed)")
    );
    // The history holds the final's text; the reply is the adopted one.
    assert_eq!(
        caller_and_agent(&o),
        [
            ("caller", "Yes, I am interested."),
            ("agent", "Great, you're booked.")
        ]
    );
}

#[test]
fn without_early_start_the_request_follows_the_final() {
    let o = call(agreeing(), 0, Duration::ZERO);
    let log = &o.log;
    assert_eq!(log.finalizes, 1);
    assert_eq!(log.requests.len(), 1);
    assert!(log.requests[0].0 > log.finals_sent[0]);
    assert_eq!(user_text(&log.requests[0].1), "Yes, I am interested.");
    assert!(o.first_reply.is_some());
    assert_eq!(
        o.hung_up.as_deref(),
        Some("agent hung up (outcome completed)")
    );
}

#[test]
fn a_final_that_differs_cancels_the_early_request_and_asks_again() {
    let script = DgScript {
        at_audio_ms: vec![
            (500, results("yes i am", false, false)),
            (700, results("yes i am interested", false, false)),
        ],
        finalize_transcript: "No, I am not interested.".into(),
    };
    let o = call(script, 200, Duration::ZERO);
    let log = &o.log;
    assert_eq!(log.requests.len(), 2, "early, then the final's");
    assert!(log.requests[0].0 < log.finals_sent[0]);
    assert!(log.requests[1].0 > log.finals_sent[0]);
    assert_eq!(user_text(&log.requests[0].1), "yes i am interested");
    assert_eq!(user_text(&log.requests[1].1), "No, I am not interested.");
    assert_eq!(
        caller_and_agent(&o),
        [
            ("caller", "No, I am not interested."),
            ("agent", "Great, you're booked.")
        ]
    );
}

/// Prints how much earlier the first reply frame leaves with the early start, after the
/// final (the endpoint plus the recognizer's answer), with an instant model and one that
/// takes 300 ms to its first byte.
#[test]
fn measure_first_reply_frame_early_versus_not() {
    for delay_ms in [0u64, 300] {
        let delay = Duration::from_millis(delay_ms);
        let after_final = |o: &Outcome| {
            o.first_reply
                .expect("reply audio")
                .duration_since(o.log.finals_sent[0])
                .as_millis() as i64
        };
        let off = after_final(&call(agreeing(), 0, delay));
        let on = after_final(&call(agreeing(), 200, delay));
        eprintln!(
            "model delay {delay_ms} ms: first reply frame {off} ms after the final without early start, {on} ms with it (gain {} ms)",
            off - on
        );
        // With an instant model the gain is about one 20 ms tick: printed, not asserted
        // (scheduling noise on shared cores is of the same size).
        if delay_ms > 0 {
            assert!(
                off - on >= 200,
                "the model's delay should be hidden: {off} vs {on} ms"
            );
        }
    }
}
