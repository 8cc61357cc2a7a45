//! `/v1/trunks`: the SIP trunks configured on this server (`sip-config/trunks/*.toml`), by
//! reference. Campaigns name one of them in `trunk`; credentials never leave the config.

use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, ApiState};
use crate::config::TrunkConfig;

/// What the API shows of a configured trunk (no credentials).
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrunkInfo {
    /// The file stem under `trunks/`, the name campaigns use.
    pub name: String,
    /// Whether the server uses it.
    pub enabled: bool,
    /// The carrier's host and port.
    pub host: String,
    pub port: u16,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
    /// Whether the server keeps a REGISTER with it.
    pub registers: bool,
    /// The default caller id on calls through it.
    pub from_number: Option<String>,
}

impl TrunkInfo {
    /// The public view of a configured trunk.
    pub fn of(t: &TrunkConfig) -> TrunkInfo {
        TrunkInfo {
            name: t.name.clone(),
            enabled: t.enabled,
            host: t.host.clone(),
            port: t.port,
            transport: t.transport.as_str().to_ascii_lowercase(),
            registers: t.register.enabled,
            from_number: t.from_number.clone(),
        }
    }
}

/// Checks that `name` is a configured trunk (when the server told the API its trunks).
pub(super) fn check_trunk(s: &ApiState, name: &str) -> Result<(), ApiError> {
    let Some(trunks) = &s.trunks else {
        return Ok(());
    };
    if trunks.iter().any(|t| t.name == name) {
        return Ok(());
    }
    let known: Vec<&str> = trunks.iter().map(|t| t.name.as_str()).collect();
    Err(ApiError::invalid(
        "trunk",
        if known.is_empty() {
            "no trunks are configured on this server".to_owned()
        } else {
            format!("no trunk {name:?} (configured: {})", known.join(", "))
        },
    ))
}

#[utoipa::path(get, path = "/v1/trunks", tag = "trunks", responses((status = 200, body = super::openapi::TrunkPage)))]
pub async fn list(
    State(s): State<ApiState>,
    Extension(_c): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let data = s.trunks.as_deref().map(Vec::as_slice).unwrap_or_default();
    Ok(Json(json!({ "data": data, "next_cursor": null })))
}
