//! Builds pipeline stages by name from agent config (`[agent.vad] name = "energy" ...`).
//!
//! A stage's config is its registered name plus free-form parameters; each factory reads the
//! parameters it knows through [`StageParams`], which rejects unknown keys and resolves
//! secrets from the environment variable a parameter names (`api_key_env = "OPENAI_API_KEY"`),
//! so config files never hold keys and errors never print them.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

use super::doubles::{EchoLlm, ScriptedLlm, ScriptedStt, SilenceTts};
use super::energy_vad::EnergyVad;
use super::llm_openai::OpenAiLlm;
use super::stages::{Llm, Stt, Tts, Vad};
use super::tts_elevenlabs::ElevenLabsTts;
use super::tts_flite::FliteTtsStage;
use super::tts_openai::OpenAiTts;
use crate::config::{EnvLookup, Secret};

/// A stage chosen by name, with its parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StageConfig {
    /// The registered stage name (`energy`, `scripted`, `openai`...).
    pub name: String,
    /// Every other key of the stage's table.
    #[serde(flatten)]
    pub params: toml::Table,
}

impl StageConfig {
    /// A stage config with no parameters.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            params: toml::Table::new(),
        }
    }
}

/// Which of the four stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StageKind {
    /// Voice-activity detection.
    Vad,
    /// Speech recognition.
    Stt,
    /// The chat model.
    Llm,
    /// Speech synthesis.
    Tts,
}

impl fmt::Display for StageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Vad => "vad",
            Self::Stt => "stt",
            Self::Llm => "llm",
            Self::Tts => "tts",
        })
    }
}

/// Why a stage could not be built from its config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No stage of this kind is registered under the name.
    #[error("{kind}: unknown stage {name:?} (known: {known})")]
    UnknownStage {
        /// The stage kind.
        kind: StageKind,
        /// The name asked for.
        name: String,
        /// Registered names, comma-separated.
        known: String,
    },
    /// A parameter the stage does not take.
    #[error("{stage}: unknown parameter {key:?} (known: {known})")]
    UnknownParam {
        /// `kind name`, e.g. `vad energy`.
        stage: String,
        /// The key given.
        key: String,
        /// Parameters the stage takes, comma-separated.
        known: String,
    },
    /// A parameter with a value the stage cannot use.
    #[error("{stage}: parameter {key:?}: {reason}")]
    BadParam {
        /// `kind name`.
        stage: String,
        /// The key.
        key: String,
        /// Why the value was rejected.
        reason: String,
    },
    /// The environment variable holding a secret is not set.
    #[error("{stage}: environment variable {var} (named by {key:?}) is not set")]
    MissingSecret {
        /// `kind name`.
        stage: String,
        /// The parameter naming the variable.
        key: String,
        /// The variable's name (never its value).
        var: String,
    },
}

/// The parameters of one stage being built, with typed getters.
pub struct StageParams<'a> {
    /// `kind name`, for errors.
    stage: String,
    /// The stage's parameters.
    params: &'a toml::Table,
    /// Where secrets come from.
    env: EnvLookup<'a>,
    /// Keys read so far, for the unknown-key check.
    read: RefCell<BTreeSet<String>>,
}

impl<'a> StageParams<'a> {
    /// Parameters of stage `config` of `kind`, with secrets looked up through `env`.
    pub fn new(kind: StageKind, config: &'a StageConfig, env: EnvLookup<'a>) -> Self {
        Self {
            stage: format!("{kind} {}", config.name),
            params: &config.params,
            env,
            read: RefCell::new(BTreeSet::new()),
        }
    }

    fn get(&self, key: &str) -> Option<&'a toml::Value> {
        self.read.borrow_mut().insert(key.to_owned());
        self.params.get(key)
    }

    pub(crate) fn bad(&self, key: &str, reason: impl Into<String>) -> BuildError {
        BuildError::BadParam {
            stage: self.stage.clone(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// A number in `range`, or `default` when absent.
    pub fn number(
        &self,
        key: &str,
        default: f64,
        range: std::ops::RangeInclusive<f64>,
    ) -> Result<f64, BuildError> {
        let v = match self.get(key) {
            None => default,
            Some(toml::Value::Float(f)) => *f,
            Some(toml::Value::Integer(i)) => *i as f64,
            Some(_) => return Err(self.bad(key, "expected a number")),
        };
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(self.bad(
                key,
                format!("{v} is outside {}..={}", range.start(), range.end()),
            ))
        }
    }

    /// A string, or `None` when absent.
    pub fn string(&self, key: &str) -> Result<Option<String>, BuildError> {
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(key, "expected a string")),
        }
    }

    /// The raw value, for parameters with a richer shape.
    pub fn value(&self, key: &str) -> Option<&'a toml::Value> {
        self.get(key)
    }

    /// The secret held by the environment variable that parameter `key` names.
    pub fn secret(&self, key: &str) -> Result<Secret, BuildError> {
        let Some(var) = self.string(key)? else {
            return Err(self.bad(
                key,
                "missing: name the environment variable holding the secret",
            ));
        };
        match (self.env)(&var) {
            Some(value) if !value.is_empty() => Ok(Secret::new(value)),
            _ => Err(BuildError::MissingSecret {
                stage: self.stage.clone(),
                key: key.to_owned(),
                var,
            }),
        }
    }

    /// Fails on any parameter no getter asked for; call after reading them all.
    pub fn finish(self) -> Result<(), BuildError> {
        let read = self.read.into_inner();
        match self.params.keys().find(|k| !read.contains(*k)) {
            Some(key) => Err(BuildError::UnknownParam {
                stage: self.stage,
                key: key.clone(),
                known: if read.is_empty() {
                    "none".to_owned()
                } else {
                    read.into_iter().collect::<Vec<_>>().join(", ")
                },
            }),
            None => Ok(()),
        }
    }
}

/// Builds a stage of one kind from its parameters.
pub type Factory<T> = fn(&StageParams<'_>) -> Result<T, BuildError>;

/// The stage constructors known by name.
#[derive(Clone, Default)]
pub struct StageRegistry {
    /// VADs by name.
    vad: BTreeMap<&'static str, Factory<Box<dyn Vad>>>,
    /// Recognizers by name.
    stt: BTreeMap<&'static str, Factory<Box<dyn Stt>>>,
    /// Chat models by name.
    llm: BTreeMap<&'static str, Factory<Box<dyn Llm>>>,
    /// Synthesizers by name.
    tts: BTreeMap<&'static str, Factory<Box<dyn Tts>>>,
}

impl StageRegistry {
    /// The built-in stages: `energy` VAD; `deepgram` and `openai` recognizers; the `openai` chat
    /// model; `flite`, `openai` and `elevenlabs` synthesizers; and the `scripted`/`echo`/`silence`
    /// test doubles.
    pub fn with_builtins() -> Self {
        let mut r = Self::default();
        r.register_vad("energy", |p| Ok(Box::new(EnergyVad::from_params(p)?)));
        r.register_vad("webrtc", |p| {
            Ok(Box::new(super::vad_webrtc::WebrtcStage::from_params(p)?))
        });
        r.register_vad("earshot", |p| {
            Ok(Box::new(super::vad_earshot::EarshotStage::from_params(p)?))
        });
        r.register_stt("scripted", |p| Ok(Box::new(ScriptedStt::from_params(p)?)));
        r.register_stt("deepgram", |p| {
            Ok(Box::new(super::stt_deepgram::DeepgramStt::from_params(p)?))
        });
        r.register_stt("openai", |p| {
            Ok(Box::new(super::stt_openai::OpenAiStt::from_params(p)?))
        });
        r.register_llm("echo", |p| Ok(Box::new(EchoLlm::from_params(p)?)));
        r.register_llm("scripted", |p| Ok(Box::new(ScriptedLlm::from_params(p)?)));
        r.register_llm("openai", |p| Ok(Box::new(OpenAiLlm::from_params(p)?)));
        r.register_tts("silence", |p| Ok(Box::new(SilenceTts::from_params(p)?)));
        r.register_tts("flite", |p| Ok(Box::new(FliteTtsStage::from_params(p)?)));
        r.register_tts("openai", |p| Ok(Box::new(OpenAiTts::from_params(p)?)));
        r.register_tts("elevenlabs", |p| {
            Ok(Box::new(ElevenLabsTts::from_params(p)?))
        });
        r
    }

    /// Registers (or replaces) a VAD.
    pub fn register_vad(&mut self, name: &'static str, f: Factory<Box<dyn Vad>>) {
        self.vad.insert(name, f);
    }

    /// Registers (or replaces) a recognizer.
    pub fn register_stt(&mut self, name: &'static str, f: Factory<Box<dyn Stt>>) {
        self.stt.insert(name, f);
    }

    /// Registers (or replaces) a chat model.
    pub fn register_llm(&mut self, name: &'static str, f: Factory<Box<dyn Llm>>) {
        self.llm.insert(name, f);
    }

    /// Registers (or replaces) a synthesizer.
    pub fn register_tts(&mut self, name: &'static str, f: Factory<Box<dyn Tts>>) {
        self.tts.insert(name, f);
    }

    /// Registered names of one kind.
    pub fn names(&self, kind: StageKind) -> Vec<&'static str> {
        match kind {
            StageKind::Vad => self.vad.keys().copied().collect(),
            StageKind::Stt => self.stt.keys().copied().collect(),
            StageKind::Llm => self.llm.keys().copied().collect(),
            StageKind::Tts => self.tts.keys().copied().collect(),
        }
    }

    /// Builds the VAD `config` names.
    pub fn build_vad(
        &self,
        config: &StageConfig,
        env: EnvLookup<'_>,
    ) -> Result<Box<dyn Vad>, BuildError> {
        build(&self.vad, StageKind::Vad, config, env)
    }

    /// Builds the recognizer `config` names.
    pub fn build_stt(
        &self,
        config: &StageConfig,
        env: EnvLookup<'_>,
    ) -> Result<Box<dyn Stt>, BuildError> {
        build(&self.stt, StageKind::Stt, config, env)
    }

    /// Builds the chat model `config` names.
    pub fn build_llm(
        &self,
        config: &StageConfig,
        env: EnvLookup<'_>,
    ) -> Result<Box<dyn Llm>, BuildError> {
        build(&self.llm, StageKind::Llm, config, env)
    }

    /// Builds the synthesizer `config` names.
    pub fn build_tts(
        &self,
        config: &StageConfig,
        env: EnvLookup<'_>,
    ) -> Result<Box<dyn Tts>, BuildError> {
        build(&self.tts, StageKind::Tts, config, env)
    }
}

impl fmt::Debug for StageRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageRegistry")
            .field("vad", &self.names(StageKind::Vad))
            .field("stt", &self.names(StageKind::Stt))
            .field("llm", &self.names(StageKind::Llm))
            .field("tts", &self.names(StageKind::Tts))
            .finish()
    }
}

fn build<T>(
    table: &BTreeMap<&'static str, Factory<T>>,
    kind: StageKind,
    config: &StageConfig,
    env: EnvLookup<'_>,
) -> Result<T, BuildError> {
    let Some(factory) = table.get(config.name.as_str()) else {
        return Err(BuildError::UnknownStage {
            kind,
            name: config.name.clone(),
            known: table.keys().copied().collect::<Vec<_>>().join(", "),
        });
    };
    let params = StageParams::new(kind, config, env);
    let stage = factory(&params)?;
    params.finish()?;
    Ok(stage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn config(src: &str) -> StageConfig {
        toml::from_str(src).unwrap()
    }

    #[test]
    fn config_keeps_other_keys_as_params() {
        let c = config("name = \"energy\"\nthreshold_dbfs = -30\n");
        assert_eq!(c.name, "energy");
        assert_eq!(
            c.params.get("threshold_dbfs"),
            Some(&toml::Value::Integer(-30))
        );
        assert!(toml::from_str::<StageConfig>("threshold_dbfs = 1").is_err());
    }

    #[test]
    fn builds_builtins_by_name() {
        let r = StageRegistry::with_builtins();
        assert!(
            r.build_vad(&config("name = 'energy'\nthreshold_dbfs = -30.5"), &no_env)
                .is_ok()
        );
        assert!(
            r.build_stt(&StageConfig::named("scripted"), &no_env)
                .is_ok()
        );
        assert!(r.build_llm(&StageConfig::named("echo"), &no_env).is_ok());
        assert!(
            r.build_llm(&StageConfig::named("scripted"), &no_env)
                .is_ok()
        );
        assert!(r.build_tts(&StageConfig::named("silence"), &no_env).is_ok());
        assert!(
            r.build_tts(&config("name = 'flite'\nvoice = 'slt'"), &no_env)
                .is_ok()
        );
        let err = r
            .build_tts(&config("name = 'flite'\nvoice = 'bob'"), &no_env)
            .err()
            .unwrap();
        assert!(err.to_string().contains("not kal or slt"), "{err}");
    }

    #[test]
    fn unknown_names_and_params_are_clear_errors() {
        let r = StageRegistry::with_builtins();
        let err = r
            .build_llm(&StageConfig::named("gpt"), &no_env)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "llm: unknown stage \"gpt\" (known: echo, openai, scripted)"
        );
        let err = r
            .build_vad(&config("name = 'energy'\nthreshold = 3"), &no_env)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("vad energy: unknown parameter \"threshold\" (known: "),
            "{err}"
        );
        let err = r
            .build_vad(&config("name = 'energy'\nthreshold_dbfs = 'loud'"), &no_env)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "vad energy: parameter \"threshold_dbfs\": expected a number"
        );
        let err = r
            .build_vad(&config("name = 'energy'\nthreshold_dbfs = 10"), &no_env)
            .err()
            .unwrap();
        assert!(err.to_string().contains("outside"), "{err}");
    }

    #[test]
    fn secrets_come_from_the_named_variable_and_are_never_printed() {
        let c = config("name = 'x'\napi_key_env = 'TEST_KEY'");
        let env = |name: &str| (name == "TEST_KEY").then(|| "sk-live-123".to_owned());
        let p = StageParams::new(StageKind::Llm, &c, &env);
        let secret = p.secret("api_key_env").unwrap();
        assert_eq!(secret.expose(), "sk-live-123");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        p.finish().unwrap();

        let p = StageParams::new(StageKind::Llm, &c, &no_env);
        let err = p.secret("api_key_env").unwrap_err().to_string();
        assert_eq!(
            err,
            "llm x: environment variable TEST_KEY (named by \"api_key_env\") is not set"
        );
    }
}
