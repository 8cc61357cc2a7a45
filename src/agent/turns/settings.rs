//! The turn-taking settings of an agent file, shared by both modes: the `[vad]` table
//! (detector and endpointing), the `[barge_in]` table (how long the caller must talk over the
//! agent, and the backchannel words that do not interrupt it), the `[turns]` table (the early
//! LLM start) and `greeting_wait`.
//! Format: `docs/agent.md`.

use crate::agent::registry::StageConfig;

/// The default VAD stage (see docs/agent.md for the measurement behind the choice).
pub const DEFAULT_VAD: &str = "energy";
/// Speech shorter than this is not an utterance (clicks, breaths), by default.
pub const DEFAULT_MIN_SPEECH_MS: u64 = 200;
/// Silence that ends an utterance, by default.
pub const DEFAULT_SILENCE_MS: u64 = 400;
/// Words that do not interrupt the agent, by default.
pub const DEFAULT_BACKCHANNEL: &[&str] = &["uh-huh", "okay", "yeah", "mm-hmm", "right"];
/// Speech over the agent longer than this interrupts without waiting for the recognizer.
pub const DEFAULT_MAX_BACKCHANNEL_MS: u64 = 800;
/// How long `greeting_wait = "hello"` waits for the callee, by default.
pub const DEFAULT_HELLO_TIMEOUT_MS: u64 = 3000;

/// When the agent greets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GreetingWait {
    /// At answer.
    #[default]
    None,
    /// After the callee's first utterance ends (or `hello_timeout_ms`).
    Hello,
}

/// Turn-taking settings of one agent file.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnSettings {
    /// The VAD stage, its `end_ms` set from `silence_ms`.
    pub vad: StageConfig,
    /// Shortest utterance sent to the recognizer (ms).
    pub min_speech_ms: u64,
    /// Silence that ends an utterance (ms).
    pub silence_ms: u64,
    /// Caller speech over the agent before it pauses (ms); `None`: the route's `barge_in_ms`.
    pub barge_in_ms: Option<u64>,
    /// Normalised words that do not interrupt the agent (empty: any speech interrupts).
    pub backchannel: Vec<String>,
    /// Speech over the agent longer than this interrupts at once (ms).
    pub max_backchannel_ms: u64,
    /// When the agent greets.
    pub greeting_wait: GreetingWait,
    /// The longest wait for the callee's hello (ms).
    pub hello_timeout_ms: u64,
    /// Caller silence (nothing said, nothing playing) before the no-input handling (the
    /// flow's `no_input` / reprompt, the LLM mode's reprompt), ms; `None`: the mode's default.
    pub no_input_ms: Option<u64>,
    /// Start the LLM once a streaming recognizer's partial has stayed the same this long
    /// (ms), before the final; 0: off (`[turns] early_llm_ms`, LLM mode).
    pub early_llm_ms: u64,
}

impl Default for TurnSettings {
    fn default() -> Self {
        let mut vad = StageConfig::named(DEFAULT_VAD);
        vad.params
            .insert("end_ms".into(), (DEFAULT_SILENCE_MS as i64).into());
        Self {
            vad,
            min_speech_ms: DEFAULT_MIN_SPEECH_MS,
            silence_ms: DEFAULT_SILENCE_MS,
            barge_in_ms: None,
            backchannel: DEFAULT_BACKCHANNEL
                .iter()
                .map(|w| (*w).to_owned())
                .collect(),
            max_backchannel_ms: DEFAULT_MAX_BACKCHANNEL_MS,
            greeting_wait: GreetingWait::None,
            hello_timeout_ms: DEFAULT_HELLO_TIMEOUT_MS,
            no_input_ms: None,
            early_llm_ms: 0,
        }
    }
}

/// A bad setting: the key (`vad.silence_ms`) and the reason.
pub type SettingError = (String, String);

impl TurnSettings {
    /// Reads the settings from an agent file's top-level table; the VAD stage itself is
    /// checked by the caller (it needs the registry).
    pub fn from_table(table: &toml::Table) -> Result<TurnSettings, SettingError> {
        let mut s = TurnSettings::default();
        if let Some(v) = table.get("vad") {
            let t = v.as_table().ok_or_else(|| {
                err(
                    "vad",
                    "expected a table ([vad] with name = \"energy\", \"earshot\" or \"webrtc\")",
                )
            })?;
            let mut vad = StageConfig::named(DEFAULT_VAD);
            for (k, v) in t {
                match k.as_str() {
                    "name" => {
                        vad.name = v
                            .as_str()
                            .ok_or_else(|| err("vad.name", "expected a string"))?
                            .to_owned();
                    }
                    "min_speech_ms" => s.min_speech_ms = ms(v, "vad.min_speech_ms", 0, 5_000)?,
                    "silence_ms" => s.silence_ms = ms(v, "vad.silence_ms", 100, 5_000)?,
                    "end_ms" => {
                        return Err(err(
                            "vad.end_ms",
                            "set the end of an utterance with silence_ms",
                        ));
                    }
                    _ => {
                        vad.params.insert(k.clone(), v.clone());
                    }
                }
            }
            s.vad = vad;
        }
        s.vad
            .params
            .insert("end_ms".into(), (s.silence_ms as i64).into());
        if let Some(v) = table.get("barge_in") {
            let t = v
                .as_table()
                .ok_or_else(|| err("barge_in", "expected a table"))?;
            for (k, v) in t {
                match k.as_str() {
                    "min_speech_ms" => {
                        s.barge_in_ms = Some(ms(v, "barge_in.min_speech_ms", 0, 5_000)?);
                    }
                    "max_backchannel_ms" => {
                        s.max_backchannel_ms = ms(v, "barge_in.max_backchannel_ms", 100, 10_000)?;
                    }
                    "backchannel" => s.backchannel = words(v)?,
                    other => {
                        return Err(err(
                            &format!("barge_in.{other}"),
                            "unknown key (known: min_speech_ms, backchannel, max_backchannel_ms)",
                        ));
                    }
                }
            }
            if let Some(min) = s.barge_in_ms
                && min > s.max_backchannel_ms
            {
                return Err(err(
                    "barge_in.min_speech_ms",
                    &format!(
                        "{min} is longer than max_backchannel_ms ({})",
                        s.max_backchannel_ms
                    ),
                ));
            }
        }
        if let Some(v) = table.get("turns") {
            let t = v
                .as_table()
                .ok_or_else(|| err("turns", "expected a table"))?;
            for (k, v) in t {
                match k.as_str() {
                    "early_llm_ms" => s.early_llm_ms = ms(v, "turns.early_llm_ms", 0, 5_000)?,
                    other => {
                        return Err(err(
                            &format!("turns.{other}"),
                            "unknown key (known: early_llm_ms)",
                        ));
                    }
                }
            }
        }
        if let Some(v) = table.get("greeting_wait") {
            s.greeting_wait = match v.as_str() {
                Some("none") => GreetingWait::None,
                Some("hello") => GreetingWait::Hello,
                _ => return Err(err("greeting_wait", "expected \"none\" or \"hello\"")),
            };
        }
        if let Some(v) = table.get("hello_timeout_ms") {
            s.hello_timeout_ms = ms(v, "hello_timeout_ms", 500, 30_000)?;
        }
        if let Some(v) = table.get("no_input_ms") {
            s.no_input_ms = Some(ms(v, "no_input_ms", 1_000, 120_000)?);
        }
        Ok(s)
    }

    /// True when every word of `text` (normalised) is a backchannel word, and it has some.
    pub fn is_backchannel(&self, text: &str) -> bool {
        let words = normalise(text);
        !words.is_empty() && words.iter().all(|w| self.backchannel.contains(w))
    }
}

fn err(key: &str, reason: &str) -> SettingError {
    (key.to_owned(), reason.to_owned())
}

fn ms(v: &toml::Value, key: &str, min: u64, max: u64) -> Result<u64, SettingError> {
    match v.as_integer() {
        Some(n) if n >= min as i64 && n <= max as i64 => Ok(n as u64),
        _ => Err(err(
            key,
            &format!("expected a whole number of milliseconds in {min}..={max}"),
        )),
    }
}

fn words(v: &toml::Value) -> Result<Vec<String>, SettingError> {
    let items = v
        .as_array()
        .ok_or_else(|| err("barge_in.backchannel", "expected a list of words"))?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("barge_in.backchannel[{i}]");
        let word = item
            .as_str()
            .ok_or_else(|| err(&key, "expected a string"))?;
        let n = normalise(word);
        if n.len() != 1 {
            return Err(err(&key, "expected one word (\"uh-huh\", \"okay\")"));
        }
        out.extend(n);
    }
    Ok(out)
}

/// Lowercase words with punctuation other than inner hyphens and apostrophes dropped
/// ("Uh-huh." → `["uh-huh"]`, "Okay, yeah!" → `["okay", "yeah"]`).
pub fn normalise(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<TurnSettings, SettingError> {
        TurnSettings::from_table(&src.parse().unwrap())
    }

    #[test]
    fn defaults_and_overrides() {
        let d = parse("").unwrap();
        assert_eq!(d, TurnSettings::default());
        assert_eq!(d.vad.name, "energy");
        assert_eq!(d.vad.params["end_ms"].as_integer(), Some(400));
        let s = parse(
            "greeting_wait = \"hello\"\nhello_timeout_ms = 2000\n[vad]\nname = \"earshot\"\nthreshold = 0.6\nsilence_ms = 700\nmin_speech_ms = 150\n[barge_in]\nmin_speech_ms = 120\nbackchannel = [\"Uh-huh\", \"sure\"]\nmax_backchannel_ms = 900\n",
        )
        .unwrap();
        assert_eq!(s.vad.name, "earshot");
        assert_eq!(s.vad.params["end_ms"].as_integer(), Some(700));
        assert_eq!(s.vad.params["threshold"].as_float(), Some(0.6));
        assert_eq!((s.min_speech_ms, s.silence_ms), (150, 700));
        assert_eq!(s.barge_in_ms, Some(120));
        assert_eq!(s.backchannel, ["uh-huh", "sure"]);
        assert_eq!(s.max_backchannel_ms, 900);
        assert_eq!(s.greeting_wait, GreetingWait::Hello);
        assert_eq!(s.hello_timeout_ms, 2000);
        assert_eq!(s.early_llm_ms, 0);
        let early = parse("[turns]\nearly_llm_ms = 250\n").unwrap();
        assert_eq!(early.early_llm_ms, 250);
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("[vad]\nsilence_ms = 50\n", "vad.silence_ms"),
            ("[vad]\nmin_speech_ms = -1\n", "vad.min_speech_ms"),
            ("[vad]\nname = 3\n", "vad.name"),
            ("[vad]\nend_ms = 300\n", "vad.end_ms"),
            ("vad = 1\n", "vad"),
            (
                "[barge_in]\nbackchannel = \"okay\"\n",
                "barge_in.backchannel",
            ),
            (
                "[barge_in]\nbackchannel = [\"uh huh\"]\n",
                "barge_in.backchannel[0]",
            ),
            (
                "[barge_in]\nmin_speech_ms = 900\n",
                "barge_in.min_speech_ms",
            ),
            ("[barge_in]\nwords = []\n", "barge_in.words"),
            ("greeting_wait = \"later\"\n", "greeting_wait"),
            ("hello_timeout_ms = 10\n", "hello_timeout_ms"),
            ("[turns]\nearly_llm_ms = 9000\n", "turns.early_llm_ms"),
            ("[turns]\nearly = 1\n", "turns.early"),
            ("turns = 1\n", "turns"),
        ];
        for (src, key) in cases {
            let (k, reason) = parse(src).expect_err(src);
            assert_eq!(k, key, "{src}: {reason}");
            assert!(!reason.is_empty());
        }
    }

    #[test]
    fn backchannel_words() {
        let s = TurnSettings::default();
        for yes in ["Uh-huh.", "okay", "Okay, yeah.", "mm-hmm", "Right!"] {
            assert!(s.is_backchannel(yes), "{yes}");
        }
        for no in ["", "okay stop", "no", "yeah I want to stop", "wait"] {
            assert!(!s.is_backchannel(no), "{no}");
        }
        let none = TurnSettings {
            backchannel: Vec::new(),
            ..TurnSettings::default()
        };
        assert!(!none.is_backchannel("okay"));
    }
}
