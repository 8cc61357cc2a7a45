//! The agent file a route's `flow = FILE` names: optional pipeline stages (`[stt]`, `[llm]`,
//! `[tts]`) and exactly one mode — a scripted flow (`[flow]`, `[states]`...) or an LLM
//! conversation (`[llm]` with `system_prompt`, `greeting`, `tools`). Format: `docs/agent.md`.
//!
//! Loading checks everything a call would need, including that each stage builds (known name,
//! known parameters, secrets present in the environment), and fails with `file: key: reason`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::flow::Flow;
use super::registry::{BuildError, StageConfig, StageKind, StageRegistry};
use super::tools::tool_names;
use super::turns::settings::TurnSettings;
use crate::config::EnvLookup;

/// Keys of an agent file that belong to the scripted flow.
const FLOW_KEYS: &[&str] = &["flow", "vars", "intents", "slots", "global", "states"];
/// Top-level keys of the LLM mode.
const LLM_MODE_KEYS: &[&str] = &[
    "system_prompt",
    "greeting",
    "tools",
    "fallback_line",
    "max_tool_rounds",
    "reprompt",
    "max_reprompts",
    "silence_hangup",
    "turns",
];
/// Pipeline stage tables and turn-taking settings, valid in both modes.
const STAGE_KEYS: &[&str] = &[
    "stt",
    "llm",
    "tts",
    "vad",
    "barge_in",
    "greeting_wait",
    "hello_timeout_ms",
    "no_input_ms",
    "transfer",
];

/// The line said with the embedded voice when a provider fails.
pub const DEFAULT_FALLBACK_LINE: &str = "Sorry, one moment.";
/// Default cap on LLM calls that only run tools, per caller turn.
pub const DEFAULT_MAX_TOOL_ROUNDS: u32 = 4;
/// Caller silence before the LLM mode reprompts, by default (ms).
pub const DEFAULT_NO_INPUT_MS: u64 = 6000;
/// The LLM mode's reprompt, by default.
pub const DEFAULT_REPROMPT: &str = "Are you still there?";
/// Reprompts in a row before the LLM mode hangs up, by default.
pub const DEFAULT_MAX_REPROMPTS: u32 = 2;
/// Said before the LLM mode hangs up on a silent caller, by default.
pub const DEFAULT_SILENCE_HANGUP: &str = "I can't hear anyone, so I'll hang up now. Goodbye.";

/// Why an agent file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key is missing, unknown or has a bad value.
    #[error("{file}: {key}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// The offending key (`llm.model`, `tools[1]`, or `(file)`).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The scripted flow in the file is invalid (already names file and line).
    #[error("{0}")]
    Flow(#[from] super::flow::FlowError),
}

/// The settings of the LLM conversation mode.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmMode {
    /// The chat model stage.
    pub llm: StageConfig,
    /// The system message, first in every request.
    pub system_prompt: String,
    /// Said when the call starts (recorded as the assistant's first message), if any.
    pub greeting: Option<String>,
    /// The tools the model may call, from the shared vocabulary.
    pub tools: Vec<&'static str>,
    /// Said with the embedded voice when a provider fails.
    pub fallback_line: String,
    /// Most LLM calls in a row that only run tools, before the turn is given up.
    pub max_tool_rounds: u32,
    /// Caller silence (nothing said, nothing playing) before a reprompt (ms).
    pub no_input_ms: u64,
    /// Said after `no_input_ms` of silence.
    pub reprompt: String,
    /// Reprompts in a row before `silence_hangup` and the end of the call.
    pub max_reprompts: u32,
    /// Said before hanging up on a silent caller (outcome `no_response`).
    pub silence_hangup: String,
}

/// What drives the conversation.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // one per agent file, loaded once
pub enum AgentMode {
    /// A scripted flow.
    Scripted(Arc<Flow>),
    /// An LLM conversation.
    Llm(LlmMode),
}

/// A validated agent file.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The file it came from (for logs).
    pub file: PathBuf,
    /// The recognizer; `None`: the embedded PocketSphinx (scripted mode only).
    pub stt: Option<StageConfig>,
    /// The synthesizer; `None`: the embedded flite voice.
    pub tts: Option<StageConfig>,
    /// Scripted or LLM.
    pub mode: AgentMode,
    /// VAD, endpointing, barge-in and greeting settings (both modes).
    pub turns: TurnSettings,
    /// How the `transfer` tool hands the caller over (both modes).
    pub transfer: super::transfer::TransferSettings,
}

impl AgentConfig {
    /// Reads and validates an agent file, looking secrets up in the process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AgentConfigError> {
        let env = |k: &str| std::env::var(k).ok();
        Self::load_with(path, &StageRegistry::with_builtins(), &env)
    }

    /// Reads and validates an agent file against `registry`, with secrets from `env`.
    pub fn load_with(
        path: impl AsRef<Path>,
        registry: &StageRegistry,
        env: EnvLookup<'_>,
    ) -> Result<Self, AgentConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|source| AgentConfigError::Io {
            file: file.clone(),
            source,
        })?;
        let mut c = Self::parse(&src, &file, registry, env)?;
        c.file = path.to_path_buf();
        Ok(c)
    }

    /// Parses agent file text `src`, naming `file` in errors.
    pub fn parse(
        src: &str,
        file: &str,
        registry: &StageRegistry,
        env: EnvLookup<'_>,
    ) -> Result<Self, AgentConfigError> {
        let invalid = |key: &str, reason: String| AgentConfigError::Invalid {
            file: file.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let table: toml::Table = src
            .parse()
            .map_err(|e: toml::de::Error| invalid("(file)", e.message().to_owned()))?;
        for key in table.keys() {
            let k = key.as_str();
            if !(FLOW_KEYS.contains(&k) || LLM_MODE_KEYS.contains(&k) || STAGE_KEYS.contains(&k)) {
                return Err(invalid(
                    k,
                    format!(
                        "unknown key (expected the stage tables stt, llm, tts; a scripted flow: {}; or the LLM mode: {})",
                        FLOW_KEYS.join(", "),
                        LLM_MODE_KEYS.join(", ")
                    ),
                ));
            }
        }
        let stage = |kind: StageKind| -> Result<Option<StageConfig>, AgentConfigError> {
            let key = kind.to_string();
            let Some(v) = table.get(&key) else {
                return Ok(None);
            };
            let config: StageConfig = v.clone().try_into().map_err(|e: toml::de::Error| {
                invalid(
                    &key,
                    format!(
                        "{} (a table with name = \"<stage>\" and its parameters)",
                        e.message()
                    ),
                )
            })?;
            check_stage(registry, kind, &config, env).map_err(|e| invalid(&key, e.to_string()))?;
            Ok(Some(config))
        };
        let turns = TurnSettings::from_table(&table).map_err(|(k, r)| invalid(&k, r))?;
        let transfer = super::transfer::TransferSettings::from_table(&table)
            .map_err(|(k, r)| invalid(&k, r))?;
        check_stage(registry, StageKind::Vad, &turns.vad, env)
            .map_err(|e| invalid("vad", e.to_string()))?;
        let stt = stage(StageKind::Stt)?;
        let llm = stage(StageKind::Llm)?;
        let tts = stage(StageKind::Tts)?;
        let has_flow = table.contains_key("flow");
        let mode = match (has_flow, llm) {
            (true, Some(_)) => {
                return Err(invalid(
                    "llm",
                    "a file holds one mode: a scripted [flow] or an LLM conversation ([llm]), not both"
                        .into(),
                ));
            }
            (false, None) => {
                return Err(invalid(
                    "(file)",
                    "no mode: give a scripted [flow] (with [states]) or an LLM conversation ([llm] with system_prompt)"
                        .into(),
                ));
            }
            (true, None) => {
                if let Some(k) = LLM_MODE_KEYS.iter().find(|k| table.contains_key(**k)) {
                    return Err(invalid(k, "only valid in the LLM mode ([llm])".into()));
                }
                AgentMode::Scripted(Arc::new(Flow::parse(src, file)?))
            }
            (false, Some(llm)) => {
                if let Some(k) = FLOW_KEYS.iter().find(|k| table.contains_key(**k)) {
                    return Err(invalid(
                        k,
                        "only valid in a scripted flow ([flow]), not with [llm]".into(),
                    ));
                }
                if stt.is_none() {
                    return Err(invalid(
                        "stt",
                        "the LLM mode needs an [stt] table: the embedded recognizer only knows a scripted flow's phrases"
                            .into(),
                    ));
                }
                let mut mode = llm_mode(&table, llm, &invalid)?;
                mode.no_input_ms = turns.no_input_ms.unwrap_or(DEFAULT_NO_INPUT_MS);
                AgentMode::Llm(mode)
            }
        };
        Ok(Self {
            file: PathBuf::from(file),
            stt,
            tts,
            mode,
            turns,
            transfer,
        })
    }

    /// The scripted flow, in that mode.
    pub fn flow(&self) -> Option<&Arc<Flow>> {
        match &self.mode {
            AgentMode::Scripted(f) => Some(f),
            AgentMode::Llm(_) => None,
        }
    }
}

fn llm_mode(
    table: &toml::Table,
    llm: StageConfig,
    invalid: &dyn Fn(&str, String) -> AgentConfigError,
) -> Result<LlmMode, AgentConfigError> {
    let text = |key: &str| -> Result<Option<String>, AgentConfigError> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(toml::Value::String(_)) => Err(invalid(key, "must not be empty".into())),
            Some(_) => Err(invalid(key, "expected a string".into())),
        }
    };
    let system_prompt = text("system_prompt")?
        .ok_or_else(|| invalid("system_prompt", "missing: the LLM mode needs one".into()))?;
    let mut tools = Vec::new();
    match table.get("tools") {
        None => {}
        Some(toml::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let key = format!("tools[{i}]");
                let name = item
                    .as_str()
                    .ok_or_else(|| invalid(&key, "expected a tool name".into()))?;
                let known = tool_names()
                    .into_iter()
                    .find(|n| *n == name)
                    .ok_or_else(|| {
                        invalid(
                            &key,
                            format!("unknown tool {name:?} (known: {})", tool_names().join(", ")),
                        )
                    })?;
                if tools.contains(&known) {
                    return Err(invalid(&key, format!("{name:?} is listed twice")));
                }
                tools.push(known);
            }
        }
        Some(_) => return Err(invalid("tools", "expected a list of tool names".into())),
    }
    let max_tool_rounds = match table.get("max_tool_rounds") {
        None => DEFAULT_MAX_TOOL_ROUNDS,
        Some(toml::Value::Integer(n)) if (1..=16).contains(n) => *n as u32,
        Some(_) => {
            return Err(invalid(
                "max_tool_rounds",
                "expected a whole number in 1..=16".into(),
            ));
        }
    };
    Ok(LlmMode {
        llm,
        system_prompt,
        greeting: text("greeting")?,
        tools,
        fallback_line: text("fallback_line")?.unwrap_or_else(|| DEFAULT_FALLBACK_LINE.into()),
        max_tool_rounds,
        // Parsed with the turn settings (both modes); set by the caller.
        no_input_ms: DEFAULT_NO_INPUT_MS,
        reprompt: text("reprompt")?.unwrap_or_else(|| DEFAULT_REPROMPT.into()),
        max_reprompts: match table.get("max_reprompts") {
            None => DEFAULT_MAX_REPROMPTS,
            Some(toml::Value::Integer(n)) if (0..=10).contains(n) => *n as u32,
            Some(_) => {
                return Err(invalid(
                    "max_reprompts",
                    "expected a whole number in 0..=10".into(),
                ));
            }
        },
        silence_hangup: text("silence_hangup")?.unwrap_or_else(|| DEFAULT_SILENCE_HANGUP.into()),
    })
}

/// Builds a stage once to prove its config is usable (name, parameters, secrets); network
/// stages capture a runtime handle, so one is lent when none is running (`check-config`).
fn check_stage(
    registry: &StageRegistry,
    kind: StageKind,
    config: &StageConfig,
    env: EnvLookup<'_>,
) -> Result<(), BuildError> {
    let build = || -> Result<(), BuildError> {
        match kind {
            StageKind::Vad => registry.build_vad(config, env).map(drop),
            StageKind::Stt => registry.build_stt(config, env).map(drop),
            StageKind::Llm => registry.build_llm(config, env).map(drop),
            StageKind::Tts => registry.build_tts(config, env).map(drop),
        }
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        return build();
    }
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let _guard = rt.enter();
            build()
        }
        Err(_) => build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<AgentConfig, String> {
        let env = |k: &str| (k == "TEST_KEY").then(|| "sk-secret-value".to_owned());
        AgentConfig::parse(src, "a.toml", &StageRegistry::with_builtins(), &env)
            .map_err(|e| e.to_string())
    }

    const LLM: &str = r#"
system_prompt = "You book appointments."
greeting = "Hi, this is an automated assistant."
tools = ["end_call", "set_outcome"]

[stt]
name = "scripted"
utterances = ["hello"]

[llm]
name = "scripted"
replies = ["Hello."]
"#;

    #[test]
    fn llm_mode_loads_with_its_stages_and_tools() {
        let c = parse(LLM).unwrap();
        let AgentMode::Llm(m) = &c.mode else {
            panic!("expected the LLM mode")
        };
        assert_eq!(m.llm.name, "scripted");
        assert_eq!(m.tools, ["end_call", "set_outcome"]);
        assert_eq!(m.fallback_line, DEFAULT_FALLBACK_LINE);
        assert_eq!(
            m.greeting.as_deref(),
            Some("Hi, this is an automated assistant.")
        );
        assert_eq!(c.stt.as_ref().map(|s| s.name.as_str()), Some("scripted"));
        assert!(c.tts.is_none(), "flite stays the default voice");
        assert_eq!(c.turns, TurnSettings::default());
        assert_eq!(m.no_input_ms, DEFAULT_NO_INPUT_MS);
        assert_eq!(m.reprompt, DEFAULT_REPROMPT);
        assert_eq!(m.max_reprompts, DEFAULT_MAX_REPROMPTS);
    }

    #[test]
    fn turn_settings_load_in_both_modes() {
        let llm = format!(
            "no_input_ms = 4000\nreprompt = \"Hello?\"\nmax_reprompts = 1\nsilence_hangup = \"Bye.\"\ngreeting_wait = \"hello\"\n{LLM}\n[vad]\nname = \"earshot\"\nsilence_ms = 600\n[barge_in]\nbackchannel = [\"okay\"]\n"
        );
        let c = parse(&llm).unwrap();
        assert_eq!(c.turns.vad.name, "earshot");
        assert_eq!(c.turns.silence_ms, 600);
        assert_eq!(c.turns.backchannel, ["okay"]);
        let AgentMode::Llm(m) = &c.mode else {
            panic!("expected the LLM mode")
        };
        assert_eq!(
            (
                m.no_input_ms,
                m.reprompt.as_str(),
                m.max_reprompts,
                m.silence_hangup.as_str()
            ),
            (4000, "Hello?", 1, "Bye.")
        );
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sip-config/agents/appointment-setter.toml"
        ))
        .unwrap();
        let scripted = format!(
            "greeting_wait = \"hello\"\nno_input_ms = 3000\n{src}\n[vad]\nmin_speech_ms = 150\n[barge_in]\nmin_speech_ms = 100\n"
        );
        let c = parse(&scripted).unwrap();
        assert!(c.flow().is_some());
        assert_eq!(c.turns.no_input_ms, Some(3000));
        assert_eq!(
            c.turns.greeting_wait,
            super::super::turns::settings::GreetingWait::Hello
        );
        assert_eq!(
            (c.turns.min_speech_ms, c.turns.barge_in_ms),
            (150, Some(100))
        );
        let e = parse(&format!("reprompt = \"Hello?\"\n{src}")).unwrap_err();
        assert!(
            e.starts_with("a.toml: reprompt: only valid in the LLM mode"),
            "{e}"
        );
    }

    #[test]
    fn scripted_flow_loads_with_a_stage_override() {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sip-config/agents/appointment-setter.toml"
        ))
        .unwrap();
        let with_tts = format!("{src}\n[tts]\nname = \"silence\"\n");
        let c = parse(&with_tts).unwrap();
        assert!(c.flow().is_some());
        assert_eq!(c.tts.unwrap().name, "silence");
        assert!(parse(&src).unwrap().tts.is_none());
    }

    #[test]
    fn the_llm_example_loads_when_its_keys_are_set() {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sip-config/agents/llm-assistant.toml"
        ))
        .unwrap();
        let env = |_: &str| Some("k".to_owned());
        let c = AgentConfig::parse(&src, "x.toml", &StageRegistry::with_builtins(), &env).unwrap();
        let AgentMode::Llm(m) = &c.mode else {
            panic!("expected the LLM mode")
        };
        assert_eq!(m.tools.len(), 5);
        let none = |_: &str| None;
        let e = AgentConfig::parse(&src, "x.toml", &StageRegistry::with_builtins(), &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("DEEPGRAM_API_KEY"), "{e}");
    }

    #[test]
    fn bad_files_name_the_key_and_reason() {
        let cases: &[(&str, &str)] = &[
            (
                "[llm]\nname = \"gpt\"\n",
                "a.toml: llm: llm: unknown stage \"gpt\"",
            ),
            (
                "system_prompt = \"x\"\n[stt]\nname = \"scripted\"\n[llm]\nname = \"echo\"\nfoo = 1\n",
                "a.toml: llm: llm echo: unknown parameter \"foo\"",
            ),
            (
                "system_prompt = \"x\"\n[stt]\nname = \"scripted\"\n[llm]\nname = \"openai\"\nmodel = \"m\"\napi_key_env = \"NOPE\"\n",
                "a.toml: llm: llm openai: environment variable NOPE (named by \"api_key_env\") is not set",
            ),
            ("colour = 1\n", "a.toml: colour: unknown key"),
            ("greeting = \"hi\"\n", "a.toml: (file): no mode"),
            (
                "[flow]\nstart = \"a\"\n[llm]\nname = \"echo\"\n",
                "a.toml: llm: a file holds one mode",
            ),
            (
                "[stt]\nname = \"scripted\"\n[llm]\nname = \"echo\"\n",
                "a.toml: system_prompt: missing",
            ),
            (
                "system_prompt = \"x\"\ntools = [\"fly\"]\n[stt]\nname = \"scripted\"\n[llm]\nname = \"echo\"\n",
                "a.toml: tools[0]: unknown tool \"fly\"",
            ),
            (
                "system_prompt = \"x\"\n[llm]\nname = \"echo\"\n",
                "a.toml: stt: the LLM mode needs an [stt] table",
            ),
            (
                "system_prompt = \"x\"\n[stt]\nname = \"scripted\"\n[llm]\nname = \"echo\"\n[states.a]\nsay = \"x\"\n",
                "a.toml: states: only valid in a scripted flow",
            ),
            (
                "greeting = \"x\"\n[flow]\nstart = \"a\"\n",
                "a.toml: greeting: only valid in the LLM mode",
            ),
            ("[tts]\nvoice = 1\n", "a.toml: tts: missing field `name`"),
            (
                "[vad]\nname = \"silero\"\n",
                "a.toml: vad: vad: unknown stage \"silero\" (known: earshot, energy, webrtc)",
            ),
            (
                "[vad]\nname = \"energy\"\nthreshold = 3\n",
                "a.toml: vad: vad energy: unknown parameter \"threshold\"",
            ),
            (
                "[vad]\nsilence_ms = 20\n",
                "a.toml: vad.silence_ms: expected a whole number of milliseconds in 100..=5000",
            ),
            (
                "[barge_in]\nbackchannel = [1]\n",
                "a.toml: barge_in.backchannel[0]: expected a string",
            ),
            (
                "greeting_wait = \"maybe\"\n[flow]\nstart = \"a\"\n",
                "a.toml: greeting_wait: expected \"none\" or \"hello\"",
            ),
            (
                "system_prompt = \"x\"\nno_input_ms = 5\n[stt]\nname = \"scripted\"\n[llm]\nname = \"echo\"\n",
                "a.toml: no_input_ms: expected a whole number of milliseconds",
            ),
            (
                "system_prompt = \"x\"\nmax_reprompts = 11\n[stt]\nname = \"scripted\"\n[llm]\nname = \"echo\"\n",
                "a.toml: max_reprompts: expected a whole number in 0..=10",
            ),
        ];
        for (src, want) in cases {
            let got = parse(src).expect_err(src);
            assert!(got.starts_with(want), "{src}\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn a_secret_value_never_reaches_an_error() {
        let src = "system_prompt = \"x\"\n[stt]\nname = \"scripted\"\n[llm]\nname = \"openai\"\nmodel = \"m\"\napi_key_env = \"TEST_KEY\"\nbase_url = \"ftp://x\"\n";
        let e = parse(src).unwrap_err();
        assert!(
            e.contains("base_url") && !e.contains("sk-secret-value"),
            "{e}"
        );
    }
}
