//! The voice agent: pluggable pipeline stages, the LLM→TTS sentence splitter, the tool
//! vocabulary, and the scripted dialogue flow. All of it is sans-IO; see `docs/agent.md`.

pub mod config;
pub mod deepgram_wire;
mod doubles;
pub mod elevenlabs_wire;
mod energy_vad;
mod flite_words;
pub mod flow;
pub mod latency;
pub mod llm_openai;
pub mod openai_sse;
mod registry;
pub mod report;
pub mod sentences;
pub mod stages;
pub mod stt_deepgram;
pub mod stt_openai;
mod stt_provider;
pub mod stt_sphinx;
pub mod tools;
pub mod transfer;
pub mod tts_elevenlabs;
pub mod tts_flite;
pub mod tts_framer;
pub mod tts_openai;
pub mod tts_remote;
pub mod turns;
pub mod vad_earshot;
pub mod vad_webrtc;

pub use config::{AgentConfig, AgentConfigError, AgentMode, LlmMode};
pub use doubles::{EchoLlm, ScriptedLlm, ScriptedReply, ScriptedStt, SilenceTts};
pub use energy_vad::{EnergyVad, level_dbfs};
pub use flow::{Action, Flow, FlowError, FlowSession};
pub use registry::{BuildError, Factory, StageConfig, StageKind, StageParams, StageRegistry};
pub use sentences::SentenceSplitter;
pub use tools::{ToolCall, ToolError};
