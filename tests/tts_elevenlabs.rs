//! The `elevenlabs` synthesizer against a local mock of ElevenLabs' streaming-input WebSocket.
//!
//! What the mock reproduces from the ElevenLabs API reference ("WebSocket",
//! `wss://api.elevenlabs.io/v1/text-to-speech/{voice_id}/stream-input`):
//! - the handshake is a GET with `model_id` and `output_format` in the query and the key in
//!   the `xi-api-key` header; a wrong key gets the error message `{"message": "Invalid API
//!   key", "error": "invalid_api_key", "code": 1008}` and a close frame 1008 (policy
//!   violation); an overloaded service refuses the upgrade with HTTP 429 and
//!   `{"detail": {"status": "too_many_concurrent_requests", "message": ..}}`;
//! - the client's first message is `{"text": " ", "voice_settings": {..}, "generation_config":
//!   {"chunk_length_schedule": [..]}}`, then text messages ending with a space (here always
//!   with `"flush": true`), then `{"text": ""}` to end the input;
//! - each audio message is `{"audio": base64, "isFinal": null, "normalizedAlignment": {..},
//!   "alignment": {"chars": [..], "charStartTimesMs": [..], "charDurationsMs": [..]}}` with
//!   times relative to the chunk's start, a flushed text arriving in several chunks that may
//!   cut a word; after the end of input the server sends `{"isFinal": true}` and closes;
//! - other failures: `{"message", "error", "code"}` error messages (e.g. `quota_exceeded`),
//!   a bare close 1008 (input timeout), an abrupt TCP close, a stall, a malformed frame.
//!
//! Each character is synthesized as 20 ms of a continuous 440 Hz tone, so where each word
//! ends in the audio is known exactly. The behaviour is chosen by the voice id.

use std::collections::HashMap;
mod tts_common;

use tts_common::{drain, frequency, next, session_from, stall_line};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use leadscaller::agent::StageConfig;
use leadscaller::agent::StageRegistry;
use leadscaller::agent::stages::TtsSession;
use leadscaller::codec::g711;

const KEY: &str = "xi-test-key-0123456789";
/// Audio per character.
const CHAR_MS: u32 = 20;

#[derive(Default)]
struct Mock {
    /// `output_format` and `model_id` of each handshake.
    queries: Mutex<Vec<HashMap<String, String>>>,
    /// Every client message, parsed.
    messages: Mutex<Vec<serde_json::Value>>,
    attempts: AtomicUsize,
    /// A socket ended because the client went away before the end of input.
    client_left: AtomicBool,
}

fn detail(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"detail": {"status": code, "message": message}});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handshake(
    State(mock): State<Arc<Mock>>,
    Path(voice): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let attempt = mock.attempts.fetch_add(1, Ordering::SeqCst);
    if voice == "busy-always" || (voice == "busy-once" && attempt == 0) {
        let mut r = detail(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_concurrent_requests",
            "Too many concurrent requests. Your current subscription allows 2.",
        );
        r.headers_mut().insert("retry-after", "0".parse().unwrap());
        return r;
    }
    let key_ok = headers.get("xi-api-key").and_then(|v| v.to_str().ok()) == Some(KEY);
    let format = query.get("output_format").cloned().unwrap_or_default();
    mock.queries.lock().unwrap().push(query);
    ws.on_upgrade(move |socket| session(socket, mock, voice, format, key_ok))
}

fn json_msg(v: serde_json::Value) -> Message {
    Message::Text(v.to_string().into())
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Audio for `n` characters from sample `*t` on: a continuous 440 Hz tone.
fn audio(format: &str, n: usize, t: &mut u64) -> Vec<u8> {
    let rate: u32 = if format == "ulaw_8000" {
        8000
    } else {
        format.trim_start_matches("pcm_").parse().unwrap()
    };
    let samples = n * (rate * CHAR_MS / 1000) as usize;
    let mut out = Vec::new();
    for _ in 0..samples {
        let s = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * *t as f64 / f64::from(rate)).sin())
            as i16;
        *t += 1;
        if format == "ulaw_8000" {
            out.push(g711::linear_to_ulaw(s));
        } else {
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
    out
}

fn alignment(chars: &[char]) -> serde_json::Value {
    let n = chars.len() as u32;
    serde_json::json!({
        "chars": chars.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "charStartTimesMs": (0..n).map(|i| i * CHAR_MS).collect::<Vec<_>>(),
        "charDurationsMs": vec![CHAR_MS; n as usize],
    })
}

async fn session(mut ws: WebSocket, mock: Arc<Mock>, voice: String, format: String, key_ok: bool) {
    let mut t = 0u64;
    let mut first = true;
    while let Some(Ok(msg)) = ws.recv().await {
        let Message::Text(text) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        mock.messages.lock().unwrap().push(v.clone());
        if !key_ok {
            let _ = ws
                .send(json_msg(serde_json::json!({
                    "message": "Invalid API key", "error": "invalid_api_key", "code": 1008
                })))
                .await;
            let _ = ws.send(close(1008, "Invalid API key")).await;
            return;
        }
        let text = v["text"].as_str().unwrap().to_owned();
        if first {
            // The initial message: a single space plus settings.
            assert_eq!(text, " ");
            assert!(v["voice_settings"]["stability"].is_number());
            assert!(v["generation_config"]["chunk_length_schedule"].is_array());
            first = false;
            continue;
        }
        if text.is_empty() {
            if voice != "nofinal" {
                let _ = ws
                    .send(json_msg(serde_json::json!({"isFinal": true})))
                    .await;
            }
            let _ = ws.send(close(1000, "")).await;
            return;
        }
        assert_eq!(v["flush"], true, "{v}");
        assert!(text.ends_with(' '), "text must end with a space: {text:?}");
        match voice.as_str() {
            "quota" => {
                let _ = ws
                    .send(json_msg(serde_json::json!({
                        "message": "This request exceeds your quota of 10000. You have 3 credits remaining, while 12 credits are required for this request.",
                        "error": "quota_exceeded", "code": 1008
                    })))
                    .await;
                let _ = ws.send(close(1008, "quota exceeded")).await;
                return;
            }
            "timeout" => {
                let _ = ws.send(close(1008, "Have not received a new text input within the timeout of 20 seconds. Streaming input terminated.")).await;
                return;
            }
            "garbage" => {
                let _ = ws.send(Message::Text("{\"audio\": \"AAA".into())).await;
                tokio::time::sleep(Duration::from_secs(5)).await;
                return;
            }
            _ => {}
        }
        // The piece in two chunks, the cut inside a word.
        let chars: Vec<char> = text.chars().collect();
        let cut = chars.len().min(8);
        for (i, part) in [&chars[..cut], &chars[cut..]].into_iter().enumerate() {
            if part.is_empty() {
                continue;
            }
            tokio::time::sleep(Duration::from_millis(if voice == "slow" { 200 } else { 5 })).await;
            let a = audio(&format, part.len(), &mut t);
            let lower: Vec<char> = part.iter().map(|c| c.to_ascii_lowercase()).collect();
            let msg = serde_json::json!({
                "audio": base64::engine::general_purpose::STANDARD.encode(&a),
                "isFinal": null,
                "normalizedAlignment": alignment(&lower),
                "alignment": alignment(part),
            });
            if ws.send(json_msg(msg)).await.is_err() {
                mock.client_left.store(true, Ordering::SeqCst);
                return;
            }
            if i == 0 {
                match voice.as_str() {
                    // Drop the TCP connection without a close frame.
                    "abrupt" => return,
                    "stall" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        return;
                    }
                    _ => {}
                }
            }
        }
    }
    mock.client_left.store(true, Ordering::SeqCst);
}

async fn serve(mock: Arc<Mock>) -> String {
    let app = Router::new()
        .route("/v1/text-to-speech/{voice}/stream-input", get(handshake))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("ws://{addr}")
}

fn session_for(base: &str, key: &str, extra: &str, rate: u32) -> Box<dyn TtsSession> {
    let stall = stall_line(extra);
    session_from(
        &format!(
            "name = 'elevenlabs'\nbase_url = '{base}'\napi_key_env = 'XI_KEY_FOR_TEST'\n\
             {stall}{extra}"
        ),
        "XI_KEY_FOR_TEST",
        key,
        rate,
    )
}

#[tokio::test]
async fn audio_and_word_accurate_text_done_from_the_alignment() {
    let mock = Arc::new(Mock::default());
    let base = serve(mock.clone()).await;
    let (a, b) = ("Hello there.", " How are you?");
    for (format, rate) in [
        ("ulaw_8000", 8000u32),
        ("pcm_16000", 8000),
        ("pcm_16000", 16000),
    ] {
        let mut s = session_for(
            &base,
            KEY,
            &format!(
                "voice_id = 'good'\noutput_format = '{format}'\nchunk_length_schedule = [50, 120]"
            ),
            rate,
        );
        s.push_text(a).unwrap();
        s.push_text(b).unwrap();
        s.finish().unwrap();
        let (frames, err) = drain(&mut s).await;
        assert!(err.is_none(), "{err:?}");
        let frame = rate as usize / 50;
        assert!(frames.iter().all(|f| f.samples.len() == frame));
        // One 20 ms frame per character sent: "Hello there. " and " How are you? ".
        assert_eq!(frames.len(), 13 + 14, "{format} -> {rate}");
        let mut marks: Vec<(usize, usize)> = frames
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.text_done.map(|d| (i, d)))
            .collect();
        // The final message may repeat the end on the last frame (when the resampler still
        // held it back); only the first frame reaching each offset matters.
        marks.dedup_by_key(|m| m.1);
        // Each word's text_done rides on the frame playing its last character.
        assert_eq!(
            marks,
            [
                (4, 5),   // "Hello"
                (11, 12), // "there." ends the first piece
                (16, 16), // " How" (frame 13 is the leading space)
                (20, 20), // "are"
                (25, 25), // "you?" ends the second piece
            ],
            "{format} -> {rate}"
        );
        let pcm: Vec<i16> = frames[2..24]
            .iter()
            .flat_map(|f| f.samples.clone())
            .collect();
        let f = frequency(&pcm, rate);
        assert!((f - 440.0).abs() < 2.0, "{format} -> {rate}: {f} Hz");
    }
    let queries = mock.queries.lock().unwrap();
    assert_eq!(queries[0]["model_id"], "eleven_flash_v2_5");
    assert_eq!(queries[0]["output_format"], "ulaw_8000");
    assert_eq!(queries[1]["output_format"], "pcm_16000");
    let msgs = mock.messages.lock().unwrap();
    assert_eq!(
        msgs[..4],
        [
            serde_json::json!({"text": " ", "voice_settings": {"stability": 0.5, "similarity_boost": 0.8},
                "generation_config": {"chunk_length_schedule": [50, 120]}}),
            serde_json::json!({"text": "Hello there. ", "flush": true}),
            serde_json::json!({"text": " How are you? ", "flush": true}),
            serde_json::json!({"text": ""}),
        ]
    );
}

#[tokio::test]
async fn audio_streams_before_finish_and_cancel_closes_the_socket() {
    let mock = Arc::new(Mock::default());
    let base = serve(mock.clone()).await;
    let mut s = session_for(&base, KEY, "voice_id = 'slow'", 8000);
    s.push_text("Please hold while I check that for you.")
        .unwrap();
    let first = next(&mut s).await.unwrap().unwrap();
    assert_eq!(first.samples.len(), 160);
    s.cancel();
    assert!(next(&mut s).await.is_none());
    assert!(s.push_text("more").is_err());
    for _ in 0..100 {
        if mock.client_left.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(mock.client_left.load(Ordering::SeqCst));
    // The end of input was never sent.
    let msgs = mock.messages.lock().unwrap();
    assert!(msgs.iter().all(|m| m["text"] != ""));
}

#[tokio::test]
async fn a_pause_releases_the_tail_and_blank_text_is_done_at_once() {
    let mock = Arc::new(Mock::default());
    let base = serve(mock.clone()).await;
    let mut s = session_for(
        &base,
        KEY,
        "voice_id = 'good'\noutput_format = 'pcm_16000'",
        8000,
    );
    s.push_text("Hi.").unwrap();
    // "Hi. " is 4 frames; all of them (the resampler's held-back tail included) come
    // without finish, once the service pauses.
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(next(&mut s).await.unwrap().unwrap());
    }
    assert_eq!(got[2].text_done, Some(3));
    s.push_text("  ").unwrap();
    let f = next(&mut s).await.unwrap().unwrap();
    assert_eq!(f.text_done, Some(5));
    s.finish().unwrap();
    let (frames, err) = drain(&mut s).await;
    assert!(err.is_none(), "{err:?}");
    // Everything was already out: the final message adds no frame.
    assert!(frames.is_empty(), "{frames:?}");
}

#[tokio::test]
async fn a_normal_close_after_everything_was_spoken_ends_the_session_cleanly() {
    let mock = Arc::new(Mock::default());
    let base = serve(mock.clone()).await;
    let mut s = session_for(&base, KEY, "voice_id = 'nofinal'", 8000);
    s.push_text("Bye now.").unwrap();
    s.finish().unwrap();
    let (frames, err) = drain(&mut s).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 9);
    assert_eq!(frames.iter().filter_map(|f| f.text_done).max(), Some(8));
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_1008_and_never_shown() {
    let mock = Arc::new(Mock::default());
    let base = serve(mock.clone()).await;
    let wrong = "xi-wrong-key-4242";
    let mut s = session_for(&base, wrong, "voice_id = 'good'", 8000);
    s.push_text("Hello.").unwrap();
    let (frames, err) = drain(&mut s).await;
    assert!(frames.is_empty());
    let msg = err.unwrap().to_string();
    assert!(
        msg.contains("Invalid API key") && msg.contains("1008"),
        "{msg}"
    );
    assert!(!msg.contains(wrong) && !msg.contains(KEY), "{msg}");
}

#[tokio::test]
async fn service_errors_close_codes_and_malformed_frames_end_the_session() {
    let mock = Arc::new(Mock::default());
    let base = serve(mock.clone()).await;
    for (voice, expect) in [
        ("quota", "quota_exceeded"),
        ("timeout", "1008 Have not received a new text input"),
        ("garbage", "malformed message"),
    ] {
        let mut s = session_for(&base, KEY, &format!("voice_id = '{voice}'"), 8000);
        s.push_text("Hello there.").unwrap();
        let (_, err) = drain(&mut s).await;
        let msg = err.unwrap().to_string();
        assert!(
            msg.starts_with("tts elevenlabs: provider error: ") && msg.contains(expect),
            "{voice}: {msg}"
        );
    }
}

#[tokio::test]
async fn abrupt_close_and_stall_after_some_audio() {
    let mock = Arc::new(Mock::default());
    let base = serve(mock.clone()).await;
    for (voice, expect) in [("abrupt", "socket"), ("stall", "stalled for 300 ms")] {
        let extra = format!("voice_id = '{voice}'\nstall_timeout_ms = 300");
        let mut s = session_for(&base, KEY, &extra, 8000);
        s.push_text("Hello there, this is long.").unwrap();
        let t = std::time::Instant::now();
        let (frames, err) = drain(&mut s).await;
        let msg = err.unwrap().to_string();
        assert!(msg.contains(expect), "{voice}: {msg}");
        // The first chunk (8 characters) came out before the failure.
        assert!(frames.len() >= 7, "{voice}: {}", frames.len());
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}

#[tokio::test]
async fn handshake_429_is_retried_then_reported() {
    let mock = Arc::new(Mock::default());
    let base = serve(mock.clone()).await;
    let mut s = session_for(&base, KEY, "voice_id = 'busy-once'", 8000);
    s.push_text("Hi.").unwrap();
    s.finish().unwrap();
    let (frames, err) = drain(&mut s).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 4);
    assert_eq!(mock.attempts.swap(0, Ordering::SeqCst), 2);

    let mut s = session_for(&base, KEY, "voice_id = 'busy-always'\nretries = 1", 8000);
    s.push_text("Hi.").unwrap();
    let (_, err) = drain(&mut s).await;
    let msg = err.unwrap().to_string();
    assert!(
        msg.contains("429") && msg.contains("too_many_concurrent_requests"),
        "{msg}"
    );
    assert_eq!(mock.attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn config_is_checked_at_build() {
    let reg = StageRegistry::with_builtins();
    let env = |_: &str| Some("k".to_owned());
    let build = |src: &str| {
        let cfg: StageConfig = toml::from_str(src).unwrap();
        reg.build_tts(&cfg, &env).err().map(|e| e.to_string())
    };
    let ok = "name='elevenlabs'\napi_key_env='K'\n";
    assert!(build(ok).unwrap().contains("voice_id"));
    assert!(
        build(&format!("{ok}voice_id='a/b'"))
            .unwrap()
            .contains("not a voice id")
    );
    assert!(
        build(&format!("{ok}voice_id='v'\noutput_format='mp3_44100_128'"))
            .unwrap()
            .contains("ulaw_8000")
    );
    assert!(
        build(&format!("{ok}voice_id='v'\nchunk_length_schedule=[1]"))
            .unwrap()
            .contains("50 to 500")
    );
    assert!(
        build(&format!("{ok}voice_id='v'\nbase_url='https://x'"))
            .unwrap()
            .contains("ws(s)")
    );
    assert!(build(&format!("{ok}voice_id='v'")).is_none());
    assert!(
        build(&format!(
            "{ok}voice_id='v'\nbase_url='wss://api.elevenlabs.io'\nspeed=1.1"
        ))
        .is_none()
    );
}
