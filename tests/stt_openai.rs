//! The `openai` STT stage against a local axum mock of `POST /v1/audio/transcriptions`, fed
//! real telephone utterances from `../shared/audio` (8 kHz µ-law, decoded with `codec::g711`).
//!
//! What the mock reproduces (platform.openai.com API reference "Create transcription", the
//! `verbose_json` transcription object, "Error codes"; faster-whisper-server follows the same
//! shapes):
//! - `multipart/form-data` with a `file` part (here a 16-bit PCM WAV: the mock checks the RIFF
//!   header, rate, channels, bit depth, length and samples), `model`, `language`,
//!   `response_format` (`verbose_json` with `timestamp_granularities[]=word`, or `json`);
//!   authentication by `Authorization: Bearer <key>`.
//! - `verbose_json` replies `{task, language, duration, text, words[{word, start, end}],
//!   segments[{id, start, end, text, avg_logprob, ...}]}`, `json` replies `{text}`; the body is
//!   written in several chunks with pauses (split JSON).
//! - errors as `{"error": {"message", "type", "param", "code"}}`: 401 `invalid_api_key` (the
//!   real API echoes a masked key; this mock echoes the whole key, to prove it is redacted),
//!   429 `rate_limit_exceeded` with `Retry-After`, 500 `server_error`; plus a 200 with malformed
//!   JSON, a body that stalls, and a server slow to answer.

mod common;

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use leadscaller::agent::stages::{StageError, Stt, SttEvent, SttSession, Word};
use leadscaller::agent::{StageConfig, StageRegistry};

const KEY: &str = "sk-test-secret-0123456789abcdef";

fn audio(file: &str) -> Vec<i16> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/audio")
        .join(file);
    common::ulaw_samples(&std::fs::read(path).expect("shared audio"))
}

/// How the mock answers one request.
#[derive(Clone, Debug)]
enum Answer {
    /// 200 with this JSON, written in three chunks.
    Ok(String),
    /// An OpenAI error body with this status, `type`, `code` and message.
    Error(u16, &'static str, &'static str, String),
    /// 429 with `Retry-After: 1`.
    RateLimited,
    /// 200 whose body is not JSON.
    Malformed,
    /// 200 whose body stops after its first bytes.
    Stall,
    /// Answers only after 2 s.
    Slow,
}

/// One request as the mock parsed it.
#[derive(Debug, Default, Clone)]
struct Recorded {
    auth: Option<String>,
    fields: BTreeMap<String, String>,
    file_name: String,
    file_type: String,
    file: Vec<u8>,
}

#[derive(Default)]
struct MockState {
    answers: Vec<Answer>,
    requests: Vec<Recorded>,
}

type Shared = Arc<Mutex<MockState>>;

async fn start(answers: Vec<Answer>) -> (SocketAddr, Shared) {
    let state: Shared = Arc::new(Mutex::new(MockState {
        answers,
        requests: Vec::new(),
    }));
    let app = Router::new()
        .route("/v1/audio/transcriptions", post(transcriptions))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state)
}

async fn transcriptions(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = ctype
        .strip_prefix("multipart/form-data; boundary=")
        .expect("multipart/form-data")
        .to_owned();
    let mut rec = parse_multipart(&body, &boundary);
    rec.auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let answer = {
        let mut s = state.lock().unwrap();
        let n = s.requests.len();
        s.requests.push(rec.clone());
        s.answers.get(n).cloned().unwrap_or(Answer::Error(
            500,
            "server_error",
            "",
            "no more answers".into(),
        ))
    };
    if rec.auth.as_deref() != Some(&format!("Bearer {KEY}")) {
        let presented = rec
            .auth
            .as_deref()
            .unwrap_or("")
            .trim_start_matches("Bearer ")
            .to_owned();
        return error(
            401,
            "invalid_request_error",
            "invalid_api_key",
            &format!(
                "Incorrect API key provided: {presented}. You can find your API key at https://platform.openai.com/account/api-keys."
            ),
        );
    }
    match answer {
        Answer::Ok(json) => chunked(StatusCode::OK, json, Duration::from_millis(20)),
        Answer::Error(status, kind, code, msg) => error(status, kind, code, &msg),
        Answer::RateLimited => {
            let mut r = error(
                429,
                "requests",
                "rate_limit_exceeded",
                "Rate limit reached for whisper-1 in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s.",
            );
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            r
        }
        Answer::Malformed => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"text": "Hello?", "words": [{"word": "#))
            .unwrap(),
        Answer::Stall => chunked(
            StatusCode::OK,
            r#"{"task":"transcribe","text":"Hello?"}"#.into(),
            Duration::from_secs(5),
        ),
        Answer::Slow => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            chunked(StatusCode::OK, r#"{"text":"late"}"#.into(), Duration::ZERO)
        }
    }
}

fn error(status: u16, kind: &str, code: &str, message: &str) -> Response {
    let code = if code.is_empty() {
        serde_json::Value::Null
    } else {
        code.into()
    };
    let body = serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// `json` written in three pieces with `pause` between them.
fn chunked(status: StatusCode, json: String, pause: Duration) -> Response {
    let bytes = json.into_bytes();
    let third = bytes.len() / 3;
    let pieces: Vec<Vec<u8>> = vec![
        bytes[..third].to_vec(),
        bytes[third..2 * third].to_vec(),
        bytes[2 * third..].to_vec(),
    ];
    let stream = futures_util::stream::unfold((pieces, 0usize), move |(pieces, i)| async move {
        if i >= pieces.len() {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        let chunk = Ok::<_, std::io::Error>(Bytes::from(pieces[i].clone()));
        Some((chunk, (pieces, i + 1)))
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// A minimal `multipart/form-data` reader (RFC 7578): text fields and the one file.
fn parse_multipart(body: &[u8], boundary: &str) -> Recorded {
    let delim = format!("--{boundary}");
    let mut rec = Recorded::default();
    let mut rest = body;
    let mut parts = Vec::new();
    while let Some(start) = find(rest, delim.as_bytes()) {
        rest = &rest[start + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let end = find(rest, delim.as_bytes()).expect("closing delimiter");
        parts.push(&rest[..end]);
    }
    for part in parts {
        let part = part.strip_prefix(b"\r\n").expect("CRLF after delimiter");
        let split = find(part, b"\r\n\r\n").expect("part headers");
        let head = std::str::from_utf8(&part[..split]).unwrap();
        let content = part[split + 4..]
            .strip_suffix(b"\r\n")
            .expect("CRLF before delimiter");
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .expect("content-disposition");
        let attr = |name: &str| {
            disposition
                .split(';')
                .map(str::trim)
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
        };
        let name = attr("name").expect("part name");
        if let Some(file_name) = attr("filename") {
            assert_eq!(name, "file");
            rec.file_name = file_name;
            rec.file_type = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-type: ")
                        .or(l.strip_prefix("Content-Type: "))
                })
                .unwrap_or("")
                .to_owned();
            rec.file = content.to_vec();
        } else {
            let old = rec
                .fields
                .insert(name.clone(), String::from_utf8(content.to_vec()).unwrap());
            assert!(old.is_none(), "field {name} sent twice");
        }
    }
    rec
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Checks a WAV is 16-bit mono PCM at `rate` holding exactly `samples`.
fn assert_wav(wav: &[u8], rate: u32, samples: &[i16]) {
    let u16_at = |i: usize| u16::from_le_bytes([wav[i], wav[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(wav[i..i + 4].try_into().unwrap());
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(u32_at(4) as usize, wav.len() - 8);
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    assert_eq!(u16_at(20), 1, "PCM");
    assert_eq!(u16_at(22), 1, "mono");
    assert_eq!(u32_at(24), rate);
    assert_eq!(u32_at(28), rate * 2, "byte rate");
    assert_eq!(u16_at(34), 16, "bits");
    assert_eq!(&wav[36..40], b"data");
    assert_eq!(u32_at(40) as usize, samples.len() * 2);
    let decoded: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(decoded == samples, "WAV samples differ");
}

fn verbose(text: &str, duration: f64, words: &[(&str, f64, f64)]) -> String {
    let words: Vec<serde_json::Value> = words
        .iter()
        .map(|(w, s, e)| serde_json::json!({"word": w, "start": s, "end": e}))
        .collect();
    serde_json::json!({
        "task": "transcribe", "language": "english", "duration": duration, "text": text,
        "words": words,
        "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": text,
            "tokens": [50364, 1079], "temperature": 0.0, "avg_logprob": -0.25,
            "compression_ratio": 0.8, "no_speech_prob": 0.01}]
    })
    .to_string()
}

fn stage(addr: SocketAddr, extra: &str, key: &'static str) -> Box<dyn Stt> {
    let src = format!(
        "name = 'openai'\nbase_url = 'http://{addr}/v1'\napi_key_env = 'OPENAI_KEY'\n{extra}"
    );
    let config: StageConfig = toml::from_str(&src).unwrap();
    let env = move |v: &str| (v == "OPENAI_KEY").then(|| key.to_owned());
    StageRegistry::with_builtins()
        .build_stt(&config, &env)
        .expect("stage builds")
}

async fn next(session: &mut Box<dyn SttSession>) -> Option<Result<SttEvent, StageError>> {
    tokio::time::timeout(Duration::from_secs(8), poll_fn(|cx| session.poll_event(cx)))
        .await
        .expect("an event within 8 s")
}

/// Sends `pcm` as one utterance and returns the session's error (never holding the key).
async fn failure(stt: &mut Box<dyn Stt>, pcm: &[i16]) -> String {
    let mut session = stt.start(8000, &[]).unwrap();
    session.push_audio(pcm).unwrap();
    session.end_utterance().unwrap();
    match next(&mut session).await {
        Some(Err(e)) => {
            assert!(matches!(e, StageError::Provider { .. }), "{e:?}");
            let text = e.to_string();
            assert!(!text.contains(KEY), "key leaked: {text}");
            assert!(
                next(&mut session).await.is_none(),
                "session ends after its error"
            );
            text
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn utterances_become_finals_with_word_times_from_the_session_start() {
    let yes = audio("yes__flite.wav");
    let hello = audio("hello__espeak.wav");
    let (addr, state) = start(vec![
        Answer::Ok(verbose(
            "Yes, I am interested.",
            1.75,
            &[
                ("Yes", 0.3, 0.62),
                ("I", 0.7, 0.78),
                ("am", 0.8, 1.0),
                ("interested", 1.05, 1.6),
            ],
        )),
        Answer::Ok(verbose("Hello?", 0.9, &[("Hello", 0.12, 0.5)])),
    ])
    .await;
    let mut stt = stage(addr, "language = 'en'", KEY);
    let mut session = stt.start(8000, &["Yes".into()]).unwrap();
    for frame in yes.chunks(160) {
        session.push_audio(frame).unwrap();
    }
    session.end_utterance().unwrap();
    for frame in hello.chunks(160) {
        session.push_audio(frame).unwrap();
    }
    session.end_utterance().unwrap();

    let confidence = (-0.25f64).exp() as f32;
    let first = next(&mut session).await.unwrap().unwrap();
    assert_eq!(
        first,
        SttEvent::Final {
            text: "Yes, I am interested.".into(),
            words: Some(vec![
                Word {
                    text: "Yes".into(),
                    start_ms: 300,
                    end_ms: 620
                },
                Word {
                    text: "I".into(),
                    start_ms: 700,
                    end_ms: 780
                },
                Word {
                    text: "am".into(),
                    start_ms: 800,
                    end_ms: 1000
                },
                Word {
                    text: "interested".into(),
                    start_ms: 1050,
                    end_ms: 1600
                },
            ]),
            confidence,
        }
    );
    // The second utterance's words are shifted by the first's length.
    let offset = (yes.len() * 1000 / 8000) as u32;
    let second = next(&mut session).await.unwrap().unwrap();
    assert_eq!(
        second,
        SttEvent::Final {
            text: "Hello?".into(),
            words: Some(vec![Word {
                text: "Hello".into(),
                start_ms: offset + 120,
                end_ms: offset + 500
            }]),
            confidence,
        }
    );

    let s = state.lock().unwrap();
    assert_eq!(s.requests.len(), 2);
    for (req, pcm) in s.requests.iter().zip([&yes, &hello]) {
        assert_eq!(req.auth.as_deref(), Some(format!("Bearer {KEY}").as_str()));
        let fields: Vec<(&str, &str)> = req
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("language", "en"),
                ("model", "whisper-1"),
                ("response_format", "verbose_json"),
                ("timestamp_granularities[]", "word"),
            ]
        );
        assert!(req.file_name.ends_with(".wav"), "{}", req.file_name);
        assert_eq!(req.file_type, "audio/wav");
        assert_wav(&req.file, 8000, pcm);
    }
}

#[tokio::test]
async fn plain_json_when_word_timestamps_are_off() {
    let (addr, state) = start(vec![Answer::Ok(
        r#"{"text":"No thank you, I am not interested."}"#.into(),
    )])
    .await;
    let mut stt = stage(
        addr,
        "model = 'Systran/faster-whisper-small.en'\nword_timestamps = false",
        KEY,
    );
    let mut session = stt.start(16_000, &[]).unwrap();
    let pcm =
        leadscaller::codec::resample::resample_all(&audio("no__espeak.wav"), 8000, 16_000).unwrap();
    session.push_audio(&pcm).unwrap();
    session.end_utterance().unwrap();
    assert_eq!(
        next(&mut session).await,
        Some(Ok(SttEvent::Final {
            text: "No thank you, I am not interested.".into(),
            words: None,
            confidence: 1.0
        }))
    );
    let s = state.lock().unwrap();
    let req = &s.requests[0];
    assert_eq!(
        req.fields.get("model").map(String::as_str),
        Some("Systran/faster-whisper-small.en")
    );
    assert_eq!(
        req.fields.get("response_format").map(String::as_str),
        Some("json")
    );
    assert!(!req.fields.contains_key("timestamp_granularities[]"));
    assert!(!req.fields.contains_key("language"));
    assert_wav(&req.file, 16_000, &pcm);
}

#[tokio::test]
async fn wrong_key_is_a_401_error_without_the_key_or_a_retry() {
    let (addr, state) = start(vec![]).await;
    let mut stt = stage(addr, "", "sk-wrong-key-999");
    let err = {
        let mut session = stt.start(8000, &[]).unwrap();
        session.push_audio(&audio("hello__flite.wav")).unwrap();
        session.end_utterance().unwrap();
        match next(&mut session).await {
            Some(Err(e)) => e.to_string(),
            other => panic!("{other:?}"),
        }
    };
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(err.contains("Incorrect API key provided: ***"), "{err}");
    assert!(err.contains("(invalid_api_key)"), "{err}");
    assert!(!err.contains("sk-wrong-key-999"), "{err}");
    assert_eq!(state.lock().unwrap().requests.len(), 1);
}

#[tokio::test]
async fn rate_limit_is_retried_after_retry_after() {
    let (addr, state) = start(vec![
        Answer::RateLimited,
        Answer::Ok(verbose("Hello?", 0.9, &[("Hello", 0.12, 0.5)])),
    ])
    .await;
    let mut stt = stage(addr, "", KEY);
    let mut session = stt.start(8000, &[]).unwrap();
    session.push_audio(&audio("hello__flite.wav")).unwrap();
    session.end_utterance().unwrap();
    let started = Instant::now();
    let ev = next(&mut session).await.unwrap().unwrap();
    assert!(
        matches!(&ev, SttEvent::Final { text, .. } if text == "Hello?"),
        "{ev:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(state.lock().unwrap().requests.len(), 2);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let e500 = Answer::Error(
        500,
        "server_error",
        "",
        "The server had an error while processing your request. Sorry about that!".into(),
    );
    let (addr, state) = start(vec![e500.clone(), e500.clone(), e500]).await;
    let mut stt = stage(addr, "retries = 2", KEY);
    let err = failure(&mut stt, &audio("hello__flite.wav")).await;
    assert!(err.contains("HTTP 500: The server had an error"), "{err}");
    assert_eq!(state.lock().unwrap().requests.len(), 3);

    let (addr, state) = start(vec![Answer::RateLimited]).await;
    let mut stt = stage(addr, "retries = 0", KEY);
    let err = failure(&mut stt, &audio("hello__flite.wav")).await;
    assert!(
        err.contains("HTTP 429") && err.contains("(rate_limit_exceeded)"),
        "{err}"
    );
    assert_eq!(state.lock().unwrap().requests.len(), 1);
}

#[tokio::test]
async fn malformed_stalled_and_slow_replies_are_errors() {
    let pcm = audio("hello__flite.wav");
    let (addr, _) = start(vec![Answer::Malformed]).await;
    let err = failure(&mut stage(addr, "", KEY), &pcm).await;
    assert!(err.contains("malformed transcription reply"), "{err}");

    let (addr, _) = start(vec![Answer::Stall]).await;
    let started = Instant::now();
    let err = failure(&mut stage(addr, "stall_timeout_ms = 300", KEY), &pcm).await;
    assert!(err.contains("response stalled for 300 ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let (addr, _) = start(vec![Answer::Slow]).await;
    let err = failure(&mut stage(addr, "first_byte_timeout_ms = 300", KEY), &pcm).await;
    assert!(err.contains("no response within 300 ms"), "{err}");
}

#[tokio::test]
async fn unreachable_server_is_retried_then_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let err = failure(
        &mut stage(addr, "retries = 1", KEY),
        &audio("hello__flite.wav"),
    )
    .await;
    assert!(err.contains("request failed"), "{err}");
}

#[tokio::test]
async fn silence_too_short_to_send_is_an_empty_final() {
    let (addr, state) = start(vec![]).await;
    let mut stt = stage(addr, "", KEY);
    let mut session = stt.start(8000, &[]).unwrap();
    session.push_audio(&[0; 400]).unwrap();
    session.end_utterance().unwrap();
    assert_eq!(
        next(&mut session).await,
        Some(Ok(SttEvent::Final {
            text: String::new(),
            words: None,
            confidence: 0.0
        }))
    );
    assert!(state.lock().unwrap().requests.is_empty());
    assert!(matches!(
        stt.start(4000, &[]).err(),
        Some(StageError::Unsupported { .. })
    ));
}
