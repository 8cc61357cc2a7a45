//! The `deepgram` STT stage against a local mock of Deepgram's live streaming API, fed a real
//! telephone utterance from `../shared/audio` (8 kHz µ-law, decoded with `codec::g711`).
//!
//! What the mock reproduces (developers.deepgram.com: "Live Audio" API reference, "Endpointing
//! & Interim Results", "Utterance End", "Finalize", "KeepAlive", "CloseStream", "STT
//! Troubleshooting WebSocket, NET, and DATA Errors"):
//! - `GET /v1/listen?...` upgrade authenticated by `Authorization: Token <key>`; a wrong key is
//!   refused before the upgrade with HTTP 401, a `dg-error` header and the JSON body
//!   `{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":...}`; rate
//!   limiting is HTTP 429 `TOO_MANY_REQUESTS` with `Retry-After`.
//! - binary frames are raw audio in the declared `encoding`/`sample_rate`; the mock checks they
//!   are the utterance's samples in linear16 LE and times its replies by audio received.
//! - `Results` messages with `channel.alternatives[0].{transcript, confidence, words[{word,
//!   start, end, confidence, punctuated_word}]}`, `is_final`, `speech_final`, `start`,
//!   `duration`, `channel_index`, `metadata`; interim results before final ones;
//!   `SpeechStarted {timestamp}` (vad_events); `UtteranceEnd {last_word_end}`.
//! - `{"type":"Finalize"}` answered by a `Results` with `from_finalize: true`;
//!   `{"type":"KeepAlive"}` counted and not answered; `{"type":"CloseStream"}` answered by
//!   `Metadata` and a normal close.
//! - errors: a close frame 1011 `NET-0001`, an `Error` message (`description`, `message`,
//!   `variant`) followed by a close 1002, malformed JSON, the TCP connection dropped without a
//!   close frame, and a server that never answers (stall).
//! - one message is sent as two WebSocket fragments written separately (split JSON).

mod common;

use std::future::poll_fn;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use leadscaller::agent::stages::{StageError, Stt, SttEvent, SttSession, Word};
use leadscaller::agent::{StageConfig, StageRegistry};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::{Message, http};

const KEY: &str = "dg-secret-key-0123456789abcdef";

/// "Yes, I am interested." (flite voice), as the pipeline would feed it.
fn utterance() -> Vec<i16> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio/yes__flite.wav");
    common::ulaw_samples(&std::fs::read(path).expect("shared audio"))
}

/// What the mock sends.
#[derive(Clone, Debug)]
enum Reply {
    /// A text message.
    Json(String),
    /// A text message split in two fragments, flushed separately.
    Fragmented(String),
    /// A close frame.
    Close(u16, &'static str),
    /// Drop the TCP connection without a close frame.
    Drop,
}

/// How the mock answers one connection's handshake.
#[derive(Clone, Debug)]
enum Handshake {
    Accept,
    Reject(u16, &'static str, &'static str),
}

/// The mock's behaviour.
#[derive(Clone, Debug, Default)]
struct Script {
    /// Handshake answers by connection number (after the last: accept).
    handshakes: Vec<Handshake>,
    /// Replies sent once the audio received reaches the given ms.
    at_audio_ms: Vec<(u32, Reply)>,
    /// Replies to `Finalize`.
    on_finalize: Vec<Reply>,
}

/// What the mock saw.
#[derive(Debug, Default)]
struct Seen {
    connections: usize,
    uris: Vec<String>,
    auth: Vec<Option<String>>,
    audio: Vec<u8>,
    empty_frames: usize,
    keepalives: usize,
    finalizes: usize,
    close_streams: usize,
}

struct Mock {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl Mock {
    async fn start(script: Script) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let seen2 = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let n = {
                    let mut s = seen2.lock().unwrap();
                    s.connections += 1;
                    s.connections - 1
                };
                let hs = script
                    .handshakes
                    .get(n)
                    .cloned()
                    .unwrap_or(Handshake::Accept);
                tokio::spawn(serve(tcp, hs, script.clone(), Arc::clone(&seen2)));
            }
        });
        Mock { addr, seen }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

// The handshake callback's error type is tungstenite's `ErrorResponse`, large by design.
#[allow(clippy::result_large_err)]
async fn serve(tcp: tokio::net::TcpStream, hs: Handshake, script: Script, seen: Arc<Mutex<Seen>>) {
    let seen_hs = Arc::clone(&seen);
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        {
            let mut s = seen_hs.lock().unwrap();
            s.uris.push(req.uri().to_string());
            s.auth.push(auth.clone());
        }
        let reject = |status: u16, code: &str, msg: &str, retry_after: &str| {
            let body = format!(
                r#"{{"err_code":"{code}","err_msg":"{msg}","request_id":"6b9f6c0e-mock"}}"#
            );
            let mut r = http::Response::builder()
                .status(status)
                .header("dg-request-id", "6b9f6c0e-mock")
                .header("dg-error", msg)
                .header("content-type", "application/json");
            if !retry_after.is_empty() {
                r = r.header("retry-after", retry_after);
            }
            Err(r.body(Some(body)).unwrap())
        };
        if auth.as_deref() != Some(&format!("Token {KEY}")) {
            return reject(401, "INVALID_AUTH", "Invalid credentials.", "");
        }
        match hs {
            Handshake::Accept => Ok(resp),
            Handshake::Reject(status, code, msg) => reject(status, code, msg, "0"),
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let mut pending = script.at_audio_ms.clone();
    let mut audio_ms = 0u32;
    while let Some(Ok(msg)) = ws.next().await {
        let mut replies = Vec::new();
        match msg {
            Message::Binary(b) => {
                let mut s = seen.lock().unwrap();
                if b.is_empty() {
                    s.empty_frames += 1;
                }
                s.audio.extend_from_slice(&b);
                // linear16 mono at 8 kHz: 16 bytes per ms.
                audio_ms = (s.audio.len() / 16) as u32;
                while pending.first().is_some_and(|(at, _)| *at <= audio_ms) {
                    replies.push(pending.remove(0).1);
                }
            }
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                match v["type"].as_str() {
                    Some("KeepAlive") => seen.lock().unwrap().keepalives += 1,
                    Some("Finalize") => {
                        seen.lock().unwrap().finalizes += 1;
                        replies = script.on_finalize.clone();
                    }
                    Some("CloseStream") => {
                        seen.lock().unwrap().close_streams += 1;
                        replies = vec![Reply::Json(metadata(audio_ms)), Reply::Close(1000, "")];
                    }
                    other => panic!("unexpected client message {other:?}"),
                }
            }
            _ => {}
        }
        for r in replies {
            match r {
                Reply::Json(j) => {
                    let _ = ws.send(Message::text(j)).await;
                }
                Reply::Fragmented(j) => {
                    let (a, b) = j.split_at(j.len() / 2);
                    let first = Frame::message(a.to_owned(), OpCode::Data(Data::Text), false);
                    let rest = Frame::message(b.to_owned(), OpCode::Data(Data::Continue), true);
                    let _ = ws.send(Message::Frame(first)).await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let _ = ws.send(Message::Frame(rest)).await;
                }
                Reply::Close(code, reason) => {
                    let _ = ws
                        .send(Message::Close(Some(CloseFrame {
                            code: CloseCode::from(code),
                            reason: reason.into(),
                        })))
                        .await;
                    // Let the client read the frame before the socket goes away.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return;
                }
                Reply::Drop => return,
            }
        }
    }
}

fn metadata(audio_ms: u32) -> String {
    serde_json::json!({
        "type": "Metadata", "transaction_key": "deprecated", "request_id": "6b9f6c0e-mock",
        "sha256": "00", "created": "2026-11-28T00:00:00.000Z",
        "duration": f64::from(audio_ms) / 1000.0, "channels": 1, "models": ["mock-uuid"],
        "model_info": {"mock-uuid": {"name": "general-nova-3", "version": "2024-12-20.0", "arch": "nova-3"}}
    })
    .to_string()
}

/// A `Results` message as the API documents it; `words` are `(punctuated, start, end)`.
fn results(
    transcript: &str,
    is_final: bool,
    speech_final: bool,
    from_finalize: bool,
    span: (f64, f64),
    words: &[(&str, f64, f64)],
) -> String {
    let words: Vec<serde_json::Value> = words
        .iter()
        .map(|(w, s, e)| {
            let bare: String = w
                .chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .to_lowercase();
            serde_json::json!({"word": bare, "start": s, "end": e, "confidence": 0.97,
                "punctuated_word": w})
        })
        .collect();
    serde_json::json!({
        "type": "Results", "channel_index": [0, 1], "start": span.0, "duration": span.1,
        "is_final": is_final, "speech_final": speech_final, "from_finalize": from_finalize,
        "channel": {"alternatives": [{"transcript": transcript,
            "confidence": if is_final { 0.98 } else { 0.7 }, "words": words}]},
        "metadata": {"request_id": "6b9f6c0e-mock",
            "model_info": {"name": "general-nova-3", "version": "2024-12-20.0", "arch": "nova-3"},
            "model_uuid": "mock-uuid"}
    })
    .to_string()
}

/// The utterance as Deepgram would stream it: speech start, interims, a final segment, a
/// fragmented interim; the last segment is left to the caller (endpoint or Finalize).
fn opening_replies() -> Vec<(u32, Reply)> {
    vec![
        (
            200,
            Reply::Json(r#"{"type":"SpeechStarted","channel":[0,1],"timestamp":0.28}"#.into()),
        ),
        (
            600,
            Reply::Json(results(
                "yes",
                false,
                false,
                false,
                (0.0, 0.6),
                &[("yes", 0.3, 0.62)],
            )),
        ),
        (
            900,
            Reply::Json(results("yes i am", false, false, false, (0.0, 0.9), &[])),
        ),
        (
            1000,
            Reply::Json(results(
                "Yes, I am",
                true,
                false,
                false,
                (0.0, 1.0),
                &[("Yes,", 0.3, 0.62), ("I", 0.7, 0.78), ("am", 0.8, 1.0)],
            )),
        ),
        (
            1400,
            Reply::Fragmented(results("interested", false, false, false, (1.0, 0.4), &[])),
        ),
    ]
}

fn last_segment(speech_final: bool, from_finalize: bool) -> String {
    results(
        "interested.",
        true,
        speech_final,
        from_finalize,
        (1.0, 0.74),
        &[("interested.", 1.05, 1.6)],
    )
}

fn expected_words() -> Vec<Word> {
    [
        ("Yes,", 300, 620),
        ("I", 700, 780),
        ("am", 800, 1000),
        ("interested.", 1050, 1600),
    ]
    .iter()
    .map(|(t, s, e)| Word {
        text: (*t).into(),
        start_ms: *s,
        end_ms: *e,
    })
    .collect()
}

fn stage(mock: &Mock, extra: &str, key: &'static str) -> Box<dyn Stt> {
    let src = format!(
        "name = 'deepgram'\nbase_url = '{}'\napi_key_env = 'DG_KEY'\nlanguage = 'en-US'\n{extra}",
        mock.url()
    );
    let config: StageConfig = toml::from_str(&src).unwrap();
    let env = move |v: &str| (v == "DG_KEY").then(|| key.to_owned());
    StageRegistry::with_builtins()
        .build_stt(&config, &env)
        .expect("stage builds")
}

async fn next(session: &mut Box<dyn SttSession>) -> Option<Result<SttEvent, StageError>> {
    tokio::time::timeout(Duration::from_secs(5), poll_fn(|cx| session.poll_event(cx)))
        .await
        .expect("an event within 5 s")
}

/// Events until (and including) the first Final or error.
async fn until_final(session: &mut Box<dyn SttSession>) -> Vec<SttEvent> {
    let mut out = Vec::new();
    loop {
        match next(session).await {
            Some(Ok(ev)) => {
                let done = matches!(ev, SttEvent::Final { .. });
                out.push(ev);
                if done {
                    return out;
                }
            }
            other => panic!("expected events, got {other:?} after {out:?}"),
        }
    }
}

/// The error the session ends with (the key never appears in it).
async fn failure(session: &mut Box<dyn SttSession>) -> String {
    loop {
        match next(session).await {
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                let text = e.to_string();
                assert!(matches!(e, StageError::Provider { .. }), "{e:?}");
                assert!(!text.contains(KEY), "key leaked: {text}");
                assert!(
                    next(session).await.is_none(),
                    "session ends after its error"
                );
                return text;
            }
            None => panic!("session ended without an error"),
        }
    }
}

fn push_all(session: &mut Box<dyn SttSession>, pcm: &[i16]) {
    for frame in pcm.chunks(160) {
        session.push_audio(frame).unwrap();
    }
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn endpointed_utterance_gives_partials_then_one_final_with_word_times() {
    let mut script = Script {
        at_audio_ms: opening_replies(),
        on_finalize: vec![Reply::Json(results(
            "",
            true,
            false,
            true,
            (1.74, 0.0),
            &[],
        ))],
        ..Script::default()
    };
    script
        .at_audio_ms
        .push((1740, Reply::Json(last_segment(true, false))));
    script.at_audio_ms.push((
        1740,
        Reply::Json(r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":1.6}"#.into()),
    ));
    let mock = Mock::start(script).await;
    let mut stt = stage(&mock, "", KEY);
    let phrases = vec!["Yes, I am interested".to_owned(), "No thanks".to_owned()];
    let mut session = stt.start(8000, &phrases).unwrap();
    let pcm = utterance();
    assert!(pcm.len() >= 8000 * 7 / 4, "{} samples", pcm.len());
    push_all(&mut session, &pcm);

    let events = until_final(&mut session).await;
    assert_eq!(
        events,
        vec![
            SttEvent::SpeechStarted,
            SttEvent::Partial { text: "yes".into() },
            SttEvent::Partial {
                text: "yes i am".into()
            },
            SttEvent::Partial {
                text: "Yes, I am".into()
            },
            SttEvent::Partial {
                text: "Yes, I am interested".into()
            },
            SttEvent::Final {
                text: "Yes, I am interested.".into(),
                words: Some(expected_words()),
                confidence: 0.98,
            },
        ]
    );

    // Our endpoint after the provider's: Finalize is sent, its empty answer adds no Final.
    session.end_utterance().unwrap();
    let seen = Arc::clone(&mock.seen);
    wait_for("Finalize", || seen.lock().unwrap().finalizes == 1).await;
    let quiet = tokio::time::timeout(
        Duration::from_millis(300),
        poll_fn(|cx| session.poll_event(cx)),
    )
    .await;
    assert!(quiet.is_err(), "no second Final: {quiet:?}");

    drop(session);
    wait_for("CloseStream", || seen.lock().unwrap().close_streams == 1).await;
    let s = mock.seen.lock().unwrap();
    assert_eq!(s.connections, 1);
    assert_eq!(s.auth, [Some(format!("Token {KEY}"))]);
    let uri = &s.uris[0];
    assert!(uri.starts_with("/v1/listen?"), "{uri}");
    for param in [
        "model=nova-3",
        "language=en-US",
        "encoding=linear16",
        "sample_rate=8000",
        "channels=1",
        "interim_results=true",
        "endpointing=300",
        "utterance_end_ms=1000",
        "vad_events=true",
        "smart_format=true",
        "keyterm=Yes%2C%20I%20am%20interested",
        "keyterm=No%20thanks",
    ] {
        assert!(
            uri.split(['?', '&']).any(|p| p == param),
            "{param} in {uri}"
        );
    }
    // Every sample arrived, in order, as linear16 little-endian; no empty frame.
    let sent: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    assert_eq!(s.audio.len(), sent.len());
    assert!(s.audio == sent, "audio bytes differ");
    assert_eq!(s.empty_frames, 0);
}

#[tokio::test]
async fn end_utterance_sends_finalize_and_its_answer_closes_the_utterance() {
    let mock = Mock::start(Script {
        at_audio_ms: opening_replies(),
        on_finalize: vec![Reply::Json(last_segment(false, true))],
        ..Script::default()
    })
    .await;
    let mut stt = stage(&mock, "endpointing_ms = 500\nutterance_end_ms = 1500", KEY);
    let mut session = stt.start(8000, &[]).unwrap();
    push_all(&mut session, &utterance());
    // Audio alone gives partials only: no endpoint in this script.
    let mut events = Vec::new();
    while events.len() < 5 {
        events.push(next(&mut session).await.unwrap().unwrap());
    }
    assert!(
        events.iter().all(|e| !matches!(e, SttEvent::Final { .. })),
        "{events:?}"
    );
    session.end_utterance().unwrap();
    let events = until_final(&mut session).await;
    assert_eq!(
        events.last(),
        Some(&SttEvent::Final {
            text: "Yes, I am interested.".into(),
            words: Some(expected_words()),
            confidence: 0.98,
        })
    );
    let s = mock.seen.lock().unwrap();
    assert_eq!(s.finalizes, 1);
    let uri = &s.uris[0];
    assert!(uri.contains("endpointing=500") && uri.contains("utterance_end_ms=1500"));
    assert!(!uri.contains("keyterm"), "{uri}");
}

#[tokio::test]
async fn unanswered_finalize_still_yields_a_final_after_its_timeout() {
    let mock = Mock::start(Script::default()).await;
    let mut stt = stage(&mock, "finalize_timeout_ms = 150", KEY);
    let mut session = stt.start(8000, &[]).unwrap();
    session.end_utterance().unwrap();
    assert_eq!(
        next(&mut session).await,
        Some(Ok(SttEvent::Final {
            text: String::new(),
            words: None,
            confidence: 0.0
        }))
    );
}

#[tokio::test]
async fn keepalive_flows_only_while_no_audio_does() {
    let mock = Mock::start(Script::default()).await;
    let mut stt = stage(&mock, "keepalive_ms = 100", KEY);
    let mut session = stt.start(8000, &[]).unwrap();
    tokio::time::sleep(Duration::from_millis(550)).await;
    let idle = mock.seen.lock().unwrap().keepalives;
    assert!((3..=6).contains(&idle), "{idle} KeepAlives in 550 ms idle");
    // 400 ms of real-time audio: no KeepAlive meanwhile.
    let pcm = utterance();
    for frame in pcm.chunks(160).take(20) {
        session.push_audio(frame).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during = mock.seen.lock().unwrap().keepalives - idle;
    assert!(during <= 1, "{during} KeepAlives while audio flowed");
    drop(session);
    let seen = Arc::clone(&mock.seen);
    wait_for("CloseStream", || seen.lock().unwrap().close_streams == 1).await;
}

#[tokio::test]
async fn wrong_key_is_refused_at_the_handshake_without_retry() {
    let mock = Mock::start(Script::default()).await;
    let mut stt = stage(&mock, "", "wrong-key-42");
    let mut session = stt.start(8000, &[]).unwrap();
    let err = failure(&mut session).await;
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(err.contains("Invalid credentials. (INVALID_AUTH)"), "{err}");
    assert!(!err.contains("wrong-key-42"), "{err}");
    assert_eq!(mock.seen.lock().unwrap().connections, 1);
}

#[tokio::test]
async fn rate_limited_handshake_is_retried_then_fails_when_retries_run_out() {
    let busy = Handshake::Reject(429, "TOO_MANY_REQUESTS", "Too many requests.");
    let mock = Mock::start(Script {
        handshakes: vec![busy.clone()],
        at_audio_ms: opening_replies(),
        on_finalize: vec![Reply::Json(last_segment(false, true))],
    })
    .await;
    let mut stt = stage(&mock, "", KEY);
    let mut session = stt.start(8000, &[]).unwrap();
    push_all(&mut session, &utterance());
    session.end_utterance().unwrap();
    let events = until_final(&mut session).await;
    assert!(
        matches!(events.last(), Some(SttEvent::Final { text, .. }) if text == "Yes, I am interested.")
    );
    assert_eq!(mock.seen.lock().unwrap().connections, 2);

    let mock = Mock::start(Script {
        handshakes: vec![busy.clone(), busy.clone(), busy],
        ..Script::default()
    })
    .await;
    let mut stt = stage(&mock, "retries = 1", KEY);
    let mut session = stt.start(8000, &[]).unwrap();
    let err = failure(&mut session).await;
    assert!(
        err.contains("HTTP 429") && err.contains("TOO_MANY_REQUESTS"),
        "{err}"
    );
    assert_eq!(mock.seen.lock().unwrap().connections, 2);
}

#[tokio::test]
async fn close_1011_is_reported_with_its_code_and_reason() {
    let mock = Mock::start(Script {
        at_audio_ms: vec![(500, Reply::Close(1011, "NET-0001"))],
        ..Script::default()
    })
    .await;
    let mut stt = stage(&mock, "", KEY);
    let mut session = stt.start(8000, &[]).unwrap();
    push_all(&mut session, &utterance());
    let err = failure(&mut session).await;
    assert!(err.contains("code 1011: NET-0001"), "{err}");
}

#[tokio::test]
async fn error_message_is_reported() {
    let mock = Mock::start(Script {
        at_audio_ms: vec![
            (
                300,
                Reply::Json(
                    r#"{"type":"Error","description":"Failed to decode audio.","message":"DATA-0000","variant":"decode"}"#
                        .into(),
                ),
            ),
            (300, Reply::Close(1002, "DATA-0000")),
        ],
        ..Script::default()
    })
    .await;
    let mut stt = stage(&mock, "", KEY);
    let mut session = stt.start(8000, &[]).unwrap();
    push_all(&mut session, &utterance());
    let err = failure(&mut session).await;
    assert!(
        err.contains("Deepgram error: Failed to decode audio.: DATA-0000"),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_json_is_a_provider_error() {
    let mock = Mock::start(Script {
        at_audio_ms: vec![
            (
                200,
                Reply::Json(results("yes", false, false, false, (0.0, 0.2), &[])),
            ),
            (
                400,
                Reply::Json(
                    r#"{"type":"Results","channel":{"alternatives":[{"transcript":"#.into(),
                ),
            ),
        ],
        ..Script::default()
    })
    .await;
    let mut stt = stage(&mock, "", KEY);
    let mut session = stt.start(8000, &[]).unwrap();
    push_all(&mut session, &utterance());
    assert_eq!(
        next(&mut session).await,
        Some(Ok(SttEvent::Partial { text: "yes".into() }))
    );
    let err = failure(&mut session).await;
    assert!(err.contains("malformed Deepgram message"), "{err}");
}

#[tokio::test]
async fn abrupt_close_is_a_provider_error() {
    let mock = Mock::start(Script {
        at_audio_ms: vec![(500, Reply::Drop)],
        ..Script::default()
    })
    .await;
    let mut stt = stage(&mock, "", KEY);
    let mut session = stt.start(8000, &[]).unwrap();
    push_all(&mut session, &utterance());
    let err = failure(&mut session).await;
    assert!(
        err.contains("connection lost") || err.contains("without a close frame"),
        "{err}"
    );
}

#[tokio::test]
async fn silent_server_is_a_stall() {
    let mock = Mock::start(Script::default()).await;
    let mut stt = stage(
        &mock,
        "first_byte_timeout_ms = 300\nstall_timeout_ms = 300",
        KEY,
    );
    let mut session = stt.start(8000, &[]).unwrap();
    push_all(&mut session, &utterance());
    let started = std::time::Instant::now();
    let err = failure(&mut session).await;
    assert!(
        err.contains("no reply from the server within 300 ms"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn unreachable_server_fails_after_retries() {
    // A port with nothing listening: connection refused at once.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config: StageConfig = toml::from_str(&format!(
        "name = 'deepgram'\nbase_url = 'ws://127.0.0.1:{port}'\napi_key_env = 'K'\nretries = 1"
    ))
    .unwrap();
    let env = |_: &str| Some(KEY.to_owned());
    let mut stt = StageRegistry::with_builtins()
        .build_stt(&config, &env)
        .unwrap();
    let mut session = stt.start(8000, &[]).unwrap();
    let err = failure(&mut session).await;
    assert!(err.contains("connect to 127.0.0.1"), "{err}");
}

#[test]
fn building_needs_a_runtime_and_a_key() {
    let config: StageConfig = toml::from_str("name = 'deepgram'\napi_key_env = 'K'").unwrap();
    let env = |_: &str| Some(KEY.to_owned());
    let err = StageRegistry::with_builtins()
        .build_stt(&config, &env)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("tokio runtime"), "{err}");
    let no_env = |_: &str| None;
    let err = StageRegistry::with_builtins()
        .build_stt(&config, &no_env)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("environment variable K"), "{err}");
    let bad: StageConfig =
        toml::from_str("name = 'deepgram'\napi_key_env = 'K'\nbase_url = 'https://x'").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let err = StageRegistry::with_builtins()
        .build_stt(&bad, &env)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("wss://"), "{err}");
}
