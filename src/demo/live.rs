//! The agent demo's live transcript: a tracing layer that picks the server agent's own
//! events ("agent says", "caller said", "turn latency", "barge-in") out of its log as they
//! happen and hands them to the demo's printer. No hook in the call code: these are the
//! structured lines the agent logs on every call.

use std::collections::BTreeMap;
use std::fmt;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Something the server's agent did, as it happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AgentEvent {
    /// The flow decided to say this line (it is synthesized and queued next).
    Says(String),
    /// The recognizer's final for the caller's last utterance (empty: nothing matched).
    Heard {
        /// The recognized text.
        text: String,
        /// The recognizer's confidence on the flow's scale.
        confidence: f64,
    },
    /// One turn's latency, ms from the end of the caller's speech.
    Latency {
        /// The turn's number.
        turn: u64,
        /// The endpoint decision.
        endpoint_ms: i64,
        /// The recognizer's final.
        stt_final_ms: i64,
        /// The voice's first audio.
        tts_first_audio_ms: i64,
        /// The first reply frame on the wire.
        first_frame_out_ms: i64,
    },
    /// The caller talked over the agent and its queued speech was cleared.
    BargeIn,
}

/// The layer forwarding [`AgentEvent`]s; install it next to the usual log output.
pub struct AgentEvents {
    tx: mpsc::UnboundedSender<AgentEvent>,
}

impl AgentEvents {
    /// The layer, and the receiver of what it picks up.
    pub fn channel() -> (AgentEvents, mpsc::UnboundedReceiver<AgentEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (AgentEvents { tx }, rx)
    }

    /// Targets whose INFO events the layer reads (the filter to install it with).
    pub fn targets() -> tracing_subscriber::filter::Targets {
        tracing_subscriber::filter::Targets::new()
            .with_target("leadscaller::call::agent", tracing::Level::INFO)
            .with_target("leadscaller::agent::latency", tracing::Level::INFO)
    }
}

/// Installs the demo's logging: `level` (or `RUST_LOG`) on stderr, and this layer; returns
/// the receiver of the agent's events. Does nothing but return a dead receiver when a global
/// subscriber is already set.
pub fn install(level: &str) -> mpsc::UnboundedReceiver<AgentEvent> {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let (layer, rx) = AgentEvents::channel();
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(layer.with_filter(AgentEvents::targets()))
        .try_init();
    rx
}

impl<S: Subscriber> Layer<S> for AgentEvents {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        if let Some(e) = f.agent_event() {
            let _ = self.tx.send(e);
        }
    }
}

/// An event's fields as text (`message` included).
#[derive(Debug, Default)]
struct Fields(BTreeMap<&'static str, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name(), value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name(), value.to_string());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name(), value.to_string());
    }
}

impl Fields {
    fn text(&self, name: &str) -> String {
        self.0.get(name).cloned().unwrap_or_default()
    }

    fn num<T: std::str::FromStr + Default>(&self, name: &str) -> T {
        self.0
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    }

    fn agent_event(&self) -> Option<AgentEvent> {
        match self.0.get("message")?.as_str() {
            "agent says" => Some(AgentEvent::Says(self.text("text"))),
            "caller said" => Some(AgentEvent::Heard {
                text: self.text("text"),
                confidence: self.num("confidence"),
            }),
            "turn latency" => Some(AgentEvent::Latency {
                turn: self.num("turn"),
                endpoint_ms: self.num("endpoint_ms"),
                stt_final_ms: self.num("stt_final_ms"),
                tts_first_audio_ms: self.num("tts_first_audio_ms"),
                first_frame_out_ms: self.num("first_frame_out_ms"),
            }),
            m if m.starts_with("barge-in") => Some(AgentEvent::BargeIn),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn picks_the_agents_events_out_of_its_log() {
        let (layer, mut rx) = AgentEvents::channel();
        let sub = tracing_subscriber::registry().with(layer.with_filter(AgentEvents::targets()));
        tracing::subscriber::with_default(sub, || {
            // The same shapes as the agent's own lines (src/call/agent.rs, src/agent/latency.rs).
            let text = "Hello there.";
            tracing::info!(target: "leadscaller::call::agent", %text, "agent says");
            tracing::info!(target: "leadscaller::call::agent", text = %"yes", confidence = 0.8f32, "caller said");
            tracing::info!(target: "leadscaller::agent::latency", mode = "scripted", turn = 2u32,
                endpoint_ms = 400i64, stt_final_ms = 520i64, llm_first_token_ms = -1i64,
                tts_first_audio_ms = 530i64, first_frame_out_ms = 540i64, "turn latency");
            tracing::info!(target: "leadscaller::call::other", "agent says");
            tracing::debug!(target: "leadscaller::call::agent", text = "no", "agent says");
        });
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], AgentEvent::Says("Hello there.".into()));
        assert!(
            matches!(&got[1], AgentEvent::Heard { text, confidence } if text == "yes" && (confidence - 0.8).abs() < 1e-6)
        );
        assert_eq!(
            got[2],
            AgentEvent::Latency {
                turn: 2,
                endpoint_ms: 400,
                stt_final_ms: 520,
                tts_first_audio_ms: 530,
                first_frame_out_ms: 540
            }
        );
    }
}
