//! Prometheus metrics: one process-wide recorder (the `metrics` facade with the Prometheus
//! exporter), rendered as text at `GET /metrics`. The names of every metric live here so the
//! call, stream, agent and webhook code record into one documented set (docs/metrics.md).
//! Nothing here is recorded per media frame on the happy path.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Calls that ended, by `direction` and `result` (`answered`, `rejected`, `failed`).
pub const CALLS_TOTAL: &str = "leadscaller_calls_total";
/// Calls in progress.
pub const CALLS_ACTIVE: &str = "leadscaller_calls_active";
/// Answered call durations.
pub const CALL_DURATION: &str = "leadscaller_call_duration_seconds";
/// SIP messages that failed to parse, by `transport` (each got a 400 when it was a request).
pub const SIP_PARSE_ERRORS: &str = "leadscaller_sip_parse_errors_total";
/// Media streams accepted, by `dialect`.
pub const STREAMS_TOTAL: &str = "leadscaller_streams_total";
/// Media streams in progress, by `dialect`.
pub const STREAMS_ACTIVE: &str = "leadscaller_streams_active";
/// Media streams refused before they started, by `reason` (`unauthenticated`, ...).
pub const STREAMS_REJECTED: &str = "leadscaller_streams_rejected_total";
/// Stream frames dropped, by `dialect` and `reason` (invalid_json, bad_base64, ...).
pub const STREAM_FRAMES_DROPPED: &str = "leadscaller_stream_frames_dropped_total";
/// Fork-client reconnections after the bot's socket dropped.
pub const FORK_RECONNECTS: &str = "leadscaller_fork_reconnects_total";
/// Agent turn latency from the end of caller speech to each `step`, by `mode`.
pub const AGENT_TURN_LATENCY: &str = "leadscaller_agent_turn_latency_seconds";
/// Agent provider failures that made the agent say its fallback line, by `mode`.
pub const AGENT_PROVIDER_ERRORS: &str = "leadscaller_agent_provider_errors_total";
/// Early LLM starts on a stable partial, by `result`: `hit` (the final matched, the reply
/// was adopted) or `miss` (cancelled: the partial changed, the final differed, ...).
pub const AGENT_EARLY_LLM: &str = "leadscaller_agent_early_llm_total";
/// Webhook delivery attempts, by `result` (`delivered`, `retry`, `failed`).
pub const WEBHOOK_DELIVERIES: &str = "leadscaller_webhook_deliveries_total";
/// API requests, by `method`, `route` (the route template) and `status`.
pub const API_REQUESTS: &str = "leadscaller_api_requests_total";
/// API request durations, by `method` and `route`.
pub const API_DURATION: &str = "leadscaller_api_request_duration_seconds";

/// Histogram buckets (seconds) for latencies: 5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Histogram buckets (seconds) for call durations: 5 s to 1 h.
const DURATION_BUCKETS: &[f64] = &[5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder once per process; later calls return the same handle.
/// `None` when another `metrics` recorder was installed first (embedding applications).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(CALL_DURATION.to_owned()), DURATION_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS));
            let builder = match builder {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: bad bucket configuration");
                    return None;
                }
            };
            match builder.install_recorder() {
                Ok(h) => {
                    describe();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: another recorder is installed; /metrics is empty");
                    None
                }
            }
        })
        .as_ref()
}

/// The current metrics in the Prometheus text format (empty without a recorder).
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(CALLS_TOTAL, "Calls that ended, by direction and result.");
    describe_gauge!(CALLS_ACTIVE, "Calls in progress.");
    describe_histogram!(
        CALL_DURATION,
        metrics::Unit::Seconds,
        "Answered call durations."
    );
    describe_counter!(
        SIP_PARSE_ERRORS,
        "SIP messages that failed to parse, by transport."
    );
    describe_counter!(STREAMS_TOTAL, "Media streams accepted, by dialect.");
    describe_gauge!(STREAMS_ACTIVE, "Media streams in progress, by dialect.");
    describe_counter!(
        STREAMS_REJECTED,
        "Media streams refused before they started, by reason."
    );
    describe_counter!(
        STREAM_FRAMES_DROPPED,
        "Stream frames dropped, by dialect and reason."
    );
    describe_counter!(
        FORK_RECONNECTS,
        "Fork-client reconnections after the bot's socket dropped."
    );
    describe_histogram!(
        AGENT_TURN_LATENCY,
        metrics::Unit::Seconds,
        "Agent turn latency from the end of caller speech to each step, by mode."
    );
    describe_counter!(
        AGENT_PROVIDER_ERRORS,
        "Agent provider failures answered with the fallback line."
    );
    describe_counter!(
        AGENT_EARLY_LLM,
        "Early LLM starts on a stable partial, by result (hit, miss)."
    );
    describe_counter!(WEBHOOK_DELIVERIES, "Webhook delivery attempts, by result.");
    describe_counter!(
        API_REQUESTS,
        "API requests, by method, route template and status."
    );
    describe_histogram!(
        API_DURATION,
        metrics::Unit::Seconds,
        "API request durations, by method and route."
    );
}
