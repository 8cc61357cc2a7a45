//! `GET /v1/streams/twiml`: the TwiML a customer's Twilio webhook returns to connect a call to
//! our media-stream endpoint, with a freshly signed stream token.
//!
//! Twilio forbids query strings in `<Stream url>`, so the token travels as a `<Parameter>`
//! (it arrives in `start.customParameters.token`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::Params;
use super::{ApiError, ApiState};
use crate::leg::stream_auth::StreamAuth;

/// Longest token lifetime the route hands out.
const MAX_TTL_S: u64 = 24 * 3600;

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwimlQuery {
    /// Public base URL of this server as Twilio reaches it: `wss://media.example.com`.
    base_url: String,
    /// Token lifetime in seconds (default 3600, at most one day).
    ttl_s: Option<u64>,
}

/// Escapes text for an XML attribute.
fn xml_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The TwiML document connecting a call to `stream_url`, with `token` when streams are signed.
pub fn twiml(stream_url: &str, token: Option<&str>) -> String {
    let param = token
        .map(|t| {
            format!(
                "\n      <Parameter name=\"token\" value=\"{}\" />",
                xml_attr(t)
            )
        })
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>\n  <Connect>\n    <Stream url=\"{}\">{param}\n    </Stream>\n  </Connect>\n</Response>\n",
        xml_attr(stream_url)
    )
}

#[utoipa::path(get, path = "/v1/streams/twiml", tag = "streams", params(TwimlQuery), responses((status = 200, description = "TwiML connecting the call to /media-stream", body = String, content_type = "text/xml"), (status = 422, description = "Invalid field")))]
pub async fn get_twiml(
    State(s): State<ApiState>,
    Params(q): Params<TwimlQuery>,
) -> Result<Response, ApiError> {
    let base = q.base_url.trim_end_matches('/');
    if !(base.starts_with("wss://") || base.starts_with("ws://"))
        || base.contains('?')
        || base.len() > 500
    {
        return Err(ApiError::invalid(
            "base_url",
            "must be a ws:// or wss:// URL without a query string (Twilio forbids one)",
        ));
    }
    let ttl = q.ttl_s.unwrap_or(3600);
    if !(60..=MAX_TTL_S).contains(&ttl) {
        return Err(ApiError::invalid("ttl_s", "must be 60 to 86400 seconds"));
    }
    let token = s
        .stream_auth
        .as_ref()
        .map(|a: &Arc<StreamAuth>| a.sign_for(ttl));
    let body = twiml(&format!("{base}/media-stream"), token.as_deref());
    Ok(([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twiml_is_escaped_and_carries_the_token_as_a_parameter() {
        let doc = twiml("wss://h.example/media-stream", Some("v1.9.ab\"<"));
        assert!(doc.contains("<Stream url=\"wss://h.example/media-stream\">"));
        assert!(doc.contains("<Parameter name=\"token\" value=\"v1.9.ab&quot;&lt;\" />"));
        assert!(!twiml("wss://x/media-stream", None).contains("Parameter"));
    }
}
