//! The `openai` synthesizer against a local mock of OpenAI's `POST /v1/audio/speech`.
//!
//! What the mock reproduces from OpenAI's API reference ("Create speech") and its error
//! documentation:
//! - the request is JSON `{model, input, voice, response_format, speed?, instructions?}` with
//!   `Authorization: Bearer <key>`; `response_format: "pcm"` answers raw 24 kHz 16-bit
//!   signed little-endian mono samples, no header, streamed with `Transfer-Encoding: chunked`
//!   as they are generated (chunk boundaries fall anywhere, mid-sample included);
//! - a wrong key is `401` with `{"error": {"message": "Incorrect API key provided: <key>. You
//!   can find your API key at https://platform.openai.com/account/api-keys.", "type":
//!   "invalid_request_error", "param": null, "code": "invalid_api_key"}}` (the real service
//!   masks part of the key; the mock echoes all of it, the worst case);
//! - rate limiting is `429` with `{"error": {"message": "Rate limit reached for ...", "type":
//!   "requests", "param": null, "code": "rate_limit_exceeded"}}` and a `retry-after` header;
//! - server trouble is `500` with `{"error": {"message": "The server had an error while
//!   processing your request. Sorry about that!", "type": "server_error", ...}}`, or a
//!   non-JSON body from a proxy.
//!
//! The mock's behaviour is chosen by words in `input`: `tone <Hz>` (default 440), `fail429`,
//! `once429` (429 on the first attempt only), `fail500`, `html502`, `cut` (close the
//! connection mid-stream), `stall` (stop sending mid-stream), `slow` (stream over ~0.6 s).

mod tts_common;

use tts_common::{drain, frequency, next, samples, session_from, stall_line};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use leadscaller::agent::StageConfig;
use leadscaller::agent::StageRegistry;
use leadscaller::agent::stages::TtsSession;

const KEY: &str = "sk-test-0123456789abcdef";
const RATE: f64 = 24_000.0;

#[derive(Default)]
struct Mock {
    /// Request bodies seen, in order.
    requests: Mutex<Vec<serde_json::Value>>,
    attempts: AtomicUsize,
    /// The last streamed reply has sent its final chunk.
    stream_done: AtomicBool,
    /// A streamed reply was dropped before its end (client went away).
    stream_dropped: AtomicBool,
}

fn openai_error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = serde_json::json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    });
    // Sent in two writes, the cut inside the JSON, as a proxy may deliver it.
    let text = body.to_string();
    let (a, b) = text.split_at(text.len() / 2);
    let parts = vec![
        Ok::<_, std::io::Error>(Bytes::from(a.to_owned())),
        Ok(Bytes::from(b.to_owned())),
    ];
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from_stream(futures_util::stream::iter(parts).then(
            |p| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                p
            },
        )))
        .unwrap()
}

fn tone(freq: f64, seconds: f64) -> Vec<u8> {
    let n = (RATE * seconds) as usize;
    (0..n)
        .flat_map(|i| {
            let s = (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / RATE).sin()) as i16;
            s.to_le_bytes()
        })
        .collect()
}

/// Sets `stream_dropped` if the body stream is dropped before its last chunk.
struct DropWatch(Arc<Mock>, bool);

impl Drop for DropWatch {
    fn drop(&mut self) {
        if !self.1 {
            self.0.stream_dropped.store(true, Ordering::SeqCst);
        }
    }
}

async fn speech(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    let attempt = mock.attempts.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(given) = auth.strip_prefix("Bearer ") else {
        return openai_error(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key.",
            "invalid_request_error",
            None,
        );
    };
    if given != KEY {
        return openai_error(
            StatusCode::UNAUTHORIZED,
            &format!(
                "Incorrect API key provided: {given}. You can find your API key at https://platform.openai.com/account/api-keys."
            ),
            "invalid_request_error",
            Some("invalid_api_key"),
        );
    }
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return openai_error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
        );
    };
    assert_eq!(
        headers.get("content-type").unwrap().to_str().unwrap(),
        "application/json"
    );
    assert_eq!(req["response_format"], "pcm");
    assert!(req["model"].is_string() && req["voice"].is_string());
    let input = req["input"].as_str().unwrap_or("").to_owned();
    assert!(!input.trim().is_empty(), "empty input sent");
    mock.requests.lock().unwrap().push(req);
    let has = |w: &str| input.split_whitespace().any(|x| x == w);
    if has("fail429") || (has("once429") && attempt == 0) {
        let mut r = openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached for gpt-4o-mini-tts in organization org-x on requests per min (RPM): Limit 3, Used 3, Requested 1.",
            "requests",
            Some("rate_limit_exceeded"),
        );
        r.headers_mut()
            .insert("retry-after", "0.05".parse().unwrap());
        return r;
    }
    if has("fail500") {
        return openai_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        );
    }
    if has("html502") {
        return (
            StatusCode::BAD_GATEWAY,
            "<html><body>502 Bad Gateway</body></html>",
        )
            .into_response();
    }
    let freq = input
        .split_whitespace()
        .skip_while(|w| *w != "tone")
        .nth(1)
        .and_then(|f| f.trim_end_matches('.').parse().ok())
        .unwrap_or(440.0);
    let pcm = tone(freq, 1.0);
    // Uneven chunks, odd sizes included, as a real stream's TCP reads would cut them.
    let sizes = [1usize, 333, 4097, 777, 2, 9001, 45, 1500];
    let mut chunks = Vec::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= pcm.len() {
            break;
        }
        let end = (at + size).min(pcm.len());
        chunks.push(Bytes::copy_from_slice(&pcm[at..end]));
        at = end;
    }
    let (cut, stall) = (has("cut"), has("stall"));
    let delay = Duration::from_millis(if has("slow") { 20 } else { 2 });
    mock.stream_done.store(false, Ordering::SeqCst);
    let m = mock.clone();
    let stream = async_stream(chunks, delay, cut, stall, m);
    Response::builder()
        .header("content-type", "application/octet-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// The reply body: `chunks` with `delay` between them; `cut` errors out (the connection is
/// closed without the final chunk) and `stall` goes quiet after a third of them.
fn async_stream(
    chunks: Vec<Bytes>,
    delay: Duration,
    cut: bool,
    stall: bool,
    mock: Arc<Mock>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let total = chunks.len();
    let watch = DropWatch(mock, false);
    futures_util::stream::unfold(
        (chunks.into_iter().enumerate(), watch),
        move |(mut it, mut watch)| async move {
            tokio::time::sleep(delay).await;
            let (i, chunk) = match it.next() {
                Some(x) => x,
                None => {
                    watch.1 = true;
                    watch.0.stream_done.store(true, Ordering::SeqCst);
                    return None;
                }
            };
            if i == total / 3 {
                if cut {
                    watch.1 = true;
                    return Some((Err(std::io::Error::other("cut")), (it, watch)));
                }
                if stall {
                    std::future::pending::<()>().await;
                }
            }
            Some((Ok(chunk), (it, watch)))
        },
    )
}

async fn serve(mock: Arc<Mock>) -> String {
    let app = Router::new()
        .route("/v1/audio/speech", post(speech))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

fn session(base_url: &str, key: &str, extra: &str, rate: u32) -> Box<dyn TtsSession> {
    let stall = stall_line(extra);
    session_from(
        &format!(
            "name = 'openai'\nbase_url = '{base_url}'\napi_key_env = 'OPENAI_KEY_FOR_TEST'\n\
             {stall}first_byte_timeout_ms = 2000\n{extra}"
        ),
        "OPENAI_KEY_FOR_TEST",
        key,
        rate,
    )
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

#[tokio::test]
async fn streamed_tone_comes_out_at_the_session_rate_with_text_done() {
    let mock = Arc::new(Mock::default());
    let url = serve(mock.clone()).await;
    for rate in [8000u32, 16000] {
        let mut s = session(&url, KEY, "speed = 1.25\nvoice = 'coral'", rate);
        let text = "Here is a tone 440 for you. ";
        s.push_text(text).unwrap();
        s.finish().unwrap();
        let (frames, err) = drain(&mut s).await;
        assert!(err.is_none(), "{err:?}");
        let frame = rate as usize / 50;
        assert!(frames.iter().all(|f| f.samples.len() == frame));
        // One second of audio: 50 frames (the last one padded).
        assert_eq!(frames.len(), 50, "{rate}");
        let pcm = samples(&frames);
        let steady = &pcm[pcm.len() / 10..pcm.len() * 9 / 10];
        let f = frequency(steady, rate);
        assert!((f - 440.0).abs() < 2.0, "{rate}: {f} Hz");
        // 8000 * 0.707 = 5657 RMS for the sent tone.
        assert!((rms(steady) - 5657.0).abs() < 300.0, "{}", rms(steady));
        let done: Vec<(usize, usize)> = frames
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.text_done.map(|d| (i, d)))
            .collect();
        assert_eq!(done, [(49, text.len())]);
    }
    let reqs = mock.requests.lock().unwrap();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[0],
        serde_json::json!({"model": "gpt-4o-mini-tts", "input": "Here is a tone 440 for you. ",
            "voice": "coral", "response_format": "pcm", "speed": 1.25})
    );
}

#[tokio::test]
async fn pieces_are_spoken_in_order_each_with_its_text_done() {
    let mock = Arc::new(Mock::default());
    let url = serve(mock.clone()).await;
    let mut s = session(&url, KEY, "instructions = 'Speak calmly.'", 16000);
    let (a, b) = ("First a tone 440. ", "Then a tone 880.");
    s.push_text(a).unwrap();
    s.push_text("  ").unwrap();
    s.push_text(b).unwrap();
    s.finish().unwrap();
    assert!(s.push_text("late").is_err());
    let (frames, err) = drain(&mut s).await;
    assert!(err.is_none(), "{err:?}");
    let marks: Vec<(usize, usize)> = frames
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.text_done.map(|d| (i, d)))
        .collect();
    // The blank piece makes one silent frame carrying its end.
    assert_eq!(
        marks,
        [
            (49, a.len()),
            (50, a.len() + 2),
            (100, a.len() + 2 + b.len())
        ]
    );
    let first = samples(&frames[5..45]);
    let second = samples(&frames[56..96]);
    assert!((frequency(&first, 16000) - 440.0).abs() < 2.0);
    assert!((frequency(&second, 16000) - 880.0).abs() < 4.0);
    let reqs = mock.requests.lock().unwrap();
    let inputs: Vec<&str> = reqs.iter().map(|r| r["input"].as_str().unwrap()).collect();
    assert_eq!(inputs, [a, b]);
    assert_eq!(reqs[0]["instructions"], "Speak calmly.");
    assert!(reqs[0].get("speed").is_none());
}

#[tokio::test]
async fn first_audio_arrives_before_the_reply_is_complete_and_cancel_stops_it() {
    let mock = Arc::new(Mock::default());
    let url = serve(mock.clone()).await;
    let mut s = session(&url, KEY, "", 8000);
    s.push_text("A slow tone 440.").unwrap();
    let first = next(&mut s).await.unwrap().unwrap();
    assert_eq!(first.samples.len(), 160);
    assert!(
        !mock.stream_done.load(Ordering::SeqCst),
        "first frame only after the whole reply"
    );
    s.cancel();
    assert!(next(&mut s).await.is_none());
    assert!(s.push_text("more").is_err());
    // The request is abandoned: the server sees its reply dropped mid-stream.
    for _ in 0..100 {
        if mock.stream_dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(mock.stream_dropped.load(Ordering::SeqCst));
    assert!(!mock.stream_done.load(Ordering::SeqCst));
}

#[tokio::test]
async fn wrong_key_is_a_401_error_that_never_shows_the_key() {
    let mock = Arc::new(Mock::default());
    let url = serve(mock.clone()).await;
    let wrong = "sk-wrong-key-9999";
    let mut s = session(&url, wrong, "", 8000);
    s.push_text("Hello.").unwrap();
    let (frames, err) = drain(&mut s).await;
    assert!(frames.is_empty());
    let msg = err.unwrap().to_string();
    assert!(
        msg.contains("401") && msg.contains("invalid_api_key"),
        "{msg}"
    );
    assert!(!msg.contains(wrong) && !msg.contains(KEY), "{msg}");
    // Not retried.
    assert_eq!(mock.attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_before_audio() {
    let mock = Arc::new(Mock::default());
    let url = serve(mock.clone()).await;
    // A 429 once, then success.
    let mut s = session(&url, KEY, "retries = 2", 8000);
    s.push_text("once429 tone 440.").unwrap();
    s.finish().unwrap();
    let (frames, err) = drain(&mut s).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 50);
    assert_eq!(mock.attempts.swap(0, Ordering::SeqCst), 2);

    // Always 429: 1 + retries attempts, then the provider's message.
    let mut s = session(&url, KEY, "retries = 2", 8000);
    s.push_text("fail429").unwrap();
    let (_, err) = drain(&mut s).await;
    let msg = err.unwrap().to_string();
    assert!(
        msg.contains("429") && msg.contains("rate_limit_exceeded"),
        "{msg}"
    );
    assert_eq!(mock.attempts.swap(0, Ordering::SeqCst), 3);

    let mut s = session(&url, KEY, "retries = 1", 8000);
    s.push_text("fail500").unwrap();
    let (_, err) = drain(&mut s).await;
    let msg = err.unwrap().to_string();
    assert!(
        msg.contains("500") && msg.contains("server had an error"),
        "{msg}"
    );
    assert_eq!(mock.attempts.swap(0, Ordering::SeqCst), 2);

    // A proxy's HTML page: the status alone.
    let mut s = session(&url, KEY, "retries = 0", 8000);
    s.push_text("html502").unwrap();
    let (_, err) = drain(&mut s).await;
    let msg = err.unwrap().to_string();
    assert!(msg.ends_with("HTTP 502 Bad Gateway"), "{msg}");
}

#[tokio::test]
async fn abrupt_close_and_stall_end_the_session_with_an_error_after_the_audio_so_far() {
    let mock = Arc::new(Mock::default());
    let url = serve(mock.clone()).await;
    let mut s = session(&url, KEY, "", 8000);
    s.push_text("cut tone 440.").unwrap();
    let (frames, err) = drain(&mut s).await;
    let msg = err.unwrap().to_string();
    assert!(msg.contains("audio stream broken"), "{msg}");
    assert!(!frames.is_empty() && frames.len() < 50);
    // Audio had been produced: no retry.
    assert_eq!(mock.attempts.swap(0, Ordering::SeqCst), 1);

    let mut s = session(&url, KEY, "stall_timeout_ms = 300", 8000);
    s.push_text("stall tone 440.").unwrap();
    let t = std::time::Instant::now();
    let (frames, err) = drain(&mut s).await;
    let msg = err.unwrap().to_string();
    assert!(msg.contains("stalled for 300 ms"), "{msg}");
    assert!(!frames.is_empty() && frames.len() < 50);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn unreachable_server_is_retried_then_reported() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut s = session(&format!("http://{addr}/v1"), KEY, "retries = 1", 8000);
    s.push_text("Hello.").unwrap();
    let (_, err) = drain(&mut s).await;
    let msg = err.unwrap().to_string();
    assert!(
        msg.starts_with("tts openai: provider error: request failed"),
        "{msg}"
    );
    assert!(!msg.contains(KEY));
}

#[tokio::test]
async fn bad_config_is_rejected_at_build() {
    let reg = StageRegistry::with_builtins();
    let env = |_: &str| Some("k".to_owned());
    let build = |src: &str| {
        let cfg: StageConfig = toml::from_str(src).unwrap();
        reg.build_tts(&cfg, &env).err().map(|e| e.to_string())
    };
    assert!(
        build("name='openai'\napi_key_env='K'\nspeed=9")
            .unwrap()
            .contains("outside")
    );
    assert!(build("name='openai'").unwrap().contains("api_key_env"));
    assert!(
        build("name='openai'\napi_key_env='K'\nbase_url='ftp://x'")
            .unwrap()
            .contains("not an http")
    );
    assert!(
        build("name='openai'\napi_key_env='K'\nvoise='x'")
            .unwrap()
            .contains("unknown parameter")
    );
    assert!(build("name='openai'\napi_key_env='K'").is_none());
}
