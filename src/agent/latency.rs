//! One turn's latency record: end of caller speech → endpoint decided → STT final → LLM first
//! token → TTS first audio → first reply frame out, logged as one structured line.
//! With an early LLM start (`[turns] early_llm_ms`) the first token may come before the STT
//! final, even before the end of speech: steps never go below 0 (they saturate).

use std::time::{Duration, Instant};

/// Timestamps of one caller turn, filled in as its stages report; each is set once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnLatency {
    /// When the caller stopped talking (the endpoint minus the VAD's silence hangover).
    pub speech_end: Instant,
    /// When the endpoint was decided.
    pub endpoint: Instant,
    /// When the recognizer's final arrived.
    pub stt_final: Option<Instant>,
    /// When the chat model's first delta arrived (LLM mode).
    pub llm_first_token: Option<Instant>,
    /// When the synthesizer's first audio of the reply arrived.
    pub tts_first_audio: Option<Instant>,
    /// When the first reply frame was queued to leave (after anything queued before it).
    pub first_frame_out: Option<Instant>,
    /// The reply is a completion started early on a stable partial, then adopted.
    pub llm_early: bool,
}

impl TurnLatency {
    /// A turn whose endpoint was decided at `endpoint`, `hangover` after the caller's last word.
    pub fn new(endpoint: Instant, hangover: Duration) -> Self {
        Self {
            speech_end: endpoint.checked_sub(hangover).unwrap_or(endpoint),
            endpoint,
            stt_final: None,
            llm_first_token: None,
            tts_first_audio: None,
            first_frame_out: None,
            llm_early: false,
        }
    }

    /// Records that the reply's completion was started early, its first delta at `first`.
    pub fn llm_started_early(&mut self, first: Option<Instant>) {
        self.llm_early = true;
        if let Some(at) = first {
            self.llm_first_token(at);
        }
    }

    /// Records the recognizer's final (first call wins).
    pub fn stt_final(&mut self, at: Instant) {
        self.stt_final.get_or_insert(at);
    }

    /// Records the first LLM delta (first call wins).
    pub fn llm_first_token(&mut self, at: Instant) {
        self.llm_first_token.get_or_insert(at);
    }

    /// Records the first synthesized audio (first call wins).
    pub fn tts_first_audio(&mut self, at: Instant) {
        self.tts_first_audio.get_or_insert(at);
    }

    /// Records when the first reply frame leaves (first call wins).
    pub fn first_frame_out(&mut self, at: Instant) {
        self.first_frame_out.get_or_insert(at);
    }

    /// Milliseconds from the end of caller speech to each step (`None`: the step did not run).
    pub fn steps_ms(&self) -> [Option<u64>; 5] {
        let ms = |t: Option<Instant>| {
            t.map(|t| t.saturating_duration_since(self.speech_end).as_millis() as u64)
        };
        [
            ms(Some(self.endpoint)),
            ms(self.stt_final),
            ms(self.llm_first_token),
            ms(self.tts_first_audio),
            ms(self.first_frame_out),
        ]
    }

    /// Logs the record as one `turn latency` line; fields are ms since the end of caller
    /// speech, `-1` for a step that did not run (no LLM in the scripted mode).
    /// Each step that ran is also recorded in the `leadscaller_agent_turn_latency_seconds`
    /// histogram.
    pub fn log(&self, mode: &'static str, turn: u32) {
        for (step, ms) in [
            "endpoint",
            "stt_final",
            "llm_first_token",
            "tts_first_audio",
            "first_frame_out",
        ]
        .into_iter()
        .zip(self.steps_ms())
        {
            if let Some(ms) = ms {
                metrics::histogram!(crate::telemetry::metrics::AGENT_TURN_LATENCY, "mode" => mode, "step" => step)
                    .record(ms as f64 / 1000.0);
            }
        }
        let [endpoint, stt, llm, tts, out] = self.steps_ms().map(|v| v.map_or(-1, |v| v as i64));
        tracing::info!(
            mode,
            turn,
            endpoint_ms = endpoint,
            stt_final_ms = stt,
            llm_first_token_ms = llm,
            tts_first_audio_ms = tts,
            first_frame_out_ms = out,
            total_ms = out,
            llm_early = self.llm_early,
            "turn latency"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_count_from_the_end_of_speech_and_keep_the_first_time() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut l = TurnLatency::new(at(400), Duration::from_millis(400));
        l.stt_final(at(550));
        l.llm_first_token(at(700));
        l.llm_first_token(at(900));
        l.tts_first_audio(at(760));
        l.first_frame_out(at(780));
        assert_eq!(
            l.steps_ms(),
            [Some(400), Some(550), Some(700), Some(760), Some(780)]
        );
        let scripted = TurnLatency::new(at(400), Duration::from_millis(400));
        assert_eq!(scripted.steps_ms()[2], None);
        assert!(!scripted.llm_early);
    }

    #[test]
    fn an_early_first_token_before_the_end_of_speech_counts_as_zero() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut l = TurnLatency::new(at(1400), Duration::from_millis(400));
        l.llm_started_early(Some(at(900)));
        l.stt_final(at(1500));
        l.first_frame_out(at(1520));
        assert!(l.llm_early);
        assert_eq!(
            l.steps_ms(),
            [Some(400), Some(500), Some(0), None, Some(520)]
        );
    }
}
