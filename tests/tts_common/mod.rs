//! What the remote-TTS test suites share: building a stage session from its config and reading
//! its audio with a time limit.

#![allow(dead_code)]

use std::future::poll_fn;
use std::time::Duration;

use leadscaller::agent::stages::{StageError, TtsAudio, TtsSession};
use leadscaller::agent::{StageConfig, StageRegistry};

/// A session of the stage described by `toml`, whose `api_key_env` is `key_var` holding `key`.
pub fn session_from(
    toml: &str,
    key_var: &'static str,
    key: &str,
    rate: u32,
) -> Box<dyn TtsSession> {
    let cfg: StageConfig = toml::from_str(toml).unwrap();
    let key = key.to_owned();
    let env = move |name: &str| (name == key_var).then(|| key.clone());
    let mut stage = StageRegistry::with_builtins()
        .build_tts(&cfg, &env)
        .unwrap();
    stage.start(rate).unwrap()
}

/// The tight stall limit a test asks for in `extra`, else a lenient one for loaded machines.
pub fn stall_line(extra: &str) -> &'static str {
    if extra.contains("stall_timeout_ms") {
        ""
    } else {
        "stall_timeout_ms = 2000\n"
    }
}

/// The next chunk, failing the test if the session goes quiet for 5 s.
pub async fn next(s: &mut Box<dyn TtsSession>) -> Option<Result<TtsAudio, StageError>> {
    tokio::time::timeout(Duration::from_secs(5), poll_fn(|cx| s.poll_audio(cx)))
        .await
        .expect("the session went quiet")
}

/// Every frame until the end, or the error that ended it.
pub async fn drain(s: &mut Box<dyn TtsSession>) -> (Vec<TtsAudio>, Option<StageError>) {
    let mut frames = Vec::new();
    while let Some(r) = next(s).await {
        match r {
            Ok(f) => frames.push(f),
            Err(e) => {
                assert!(next(s).await.is_none(), "more after an error");
                return (frames, Some(e));
            }
        }
    }
    (frames, None)
}

/// All samples of `frames` in order.
pub fn samples(frames: &[TtsAudio]) -> Vec<i16> {
    frames
        .iter()
        .flat_map(|f| f.samples.iter().copied())
        .collect()
}

/// Frequency from the rising zero crossings, interpolated between samples.
pub fn frequency(x: &[i16], rate: u32) -> f64 {
    let crossings: Vec<f64> = x
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0 && w[1] >= 0)
        .map(|(i, w)| {
            let (a, b) = (f64::from(w[0]), f64::from(w[1]));
            i as f64 + a / (a - b)
        })
        .collect();
    let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
    (crossings.len() - 1) as f64 * f64::from(rate) / (last - first)
}
