//! Builds the `agent` app a call runs from its agent file: the scripted [`AgentApp`] or the
//! [`LlmAgentApp`], with the stages the file names (built per call, in the call's runtime).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::agent::{AgentApp, AgentServices};
use super::agent_llm::LlmAgentApp;
use crate::agent::{AgentConfig, AgentMode, StageRegistry};
use crate::leg::{AppIo, MediaApp};

/// An agent file loaded once and shared by every call routed to it (equal when it is the
/// same load).
#[derive(Debug, Clone)]
pub struct SharedAgent(pub Arc<AgentConfig>);

impl PartialEq for SharedAgent {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedAgent {}

/// The app for one call of `agent`; fails (naming the file) when a stage cannot be built.
pub fn build_agent_app(
    services: Arc<AgentServices>,
    agent: &AgentConfig,
    barge_in: Duration,
) -> Result<Box<dyn MediaApp>, String> {
    let registry = StageRegistry::with_builtins();
    let env = |k: &str| std::env::var(k).ok();
    let file = agent.file.display();
    let tts = agent
        .tts
        .as_ref()
        .map(|c| registry.build_tts(c, &env))
        .transpose()
        .map_err(|e| format!("{file}: tts: {e}"))?;
    match &agent.mode {
        AgentMode::Scripted(flow) => {
            let stt = agent
                .stt
                .as_ref()
                .map(|c| registry.build_stt(c, &env))
                .transpose()
                .map_err(|e| format!("{file}: stt: {e}"))?;
            Ok(Box::new(
                AgentApp::new(services, flow.clone(), BTreeMap::new())
                    .with_barge_in(barge_in)
                    .with_turns(&agent.turns)
                    .with_stages(stt, tts),
            ))
        }
        AgentMode::Llm(mode) => {
            let stt_config = agent
                .stt
                .as_ref()
                .ok_or_else(|| format!("{file}: stt: the LLM mode needs an [stt] table"))?;
            let stt = registry
                .build_stt(stt_config, &env)
                .map_err(|e| format!("{file}: stt: {e}"))?;
            let llm = registry
                .build_llm(&mode.llm, &env)
                .map_err(|e| format!("{file}: llm: {e}"))?;
            Ok(Box::new(
                LlmAgentApp::new(services, mode.clone(), stt, llm, tts)
                    .with_barge_in(barge_in)
                    .with_turns(&agent.turns),
            ))
        }
    }
}

/// Stands in for an app that could not be built: hangs up at once with the reason.
pub struct FailedApp(pub String);

impl MediaApp for FailedApp {
    fn on_tick(&mut self, io: &mut AppIo<'_>) {
        io.finish(self.0.clone());
    }
}
