//! `/v1/agents`: agent configs (stages, providers, flow or prompt, voice, barge-in).
//!
//! Provider secrets are write-only: `secrets: {"NAME": "value"}` is sealed with the master key
//! ring (AES-256-GCM, bound to the account and the secret's name) before it is stored, and reads
//! only list the names.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::Caller;
use super::extract::{Body, List};
use super::{ApiError, ApiState};
use crate::agent::{StageKind, StageRegistry};
use crate::store::agents::Agent;
use crate::store::at_rest::{seal_secret, secret_aad};
use crate::store::rfc3339;

fn view(a: &Agent) -> Value {
    json!({
        "id": a.id, "name": a.name, "config": a.config,
        "secrets": a.sealed_secrets.keys().collect::<Vec<_>>(),
        "created_at": rfc3339(a.created_at), "updated_at": rfc3339(a.updated_at),
    })
}

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentBody {
    name: Option<String>,
    config: Option<Map<String, Value>>,
    /// Secret name -> value (write-only); a null value deletes the secret.
    #[serde(default)]
    secrets: BTreeMap<String, Option<String>>,
}

/// Checks the stage tables of an agent config against the registry.
fn validate_config(config: &Map<String, Value>) -> Result<(), ApiError> {
    let registry = StageRegistry::with_builtins();
    for (key, kind) in [
        ("vad", StageKind::Vad),
        ("stt", StageKind::Stt),
        ("llm", StageKind::Llm),
        ("tts", StageKind::Tts),
    ] {
        let Some(stage) = config.get(key) else {
            continue;
        };
        let field = format!("config.{key}.name");
        let name = stage
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid(&field, "a stage needs a name"))?;
        let known = registry.names(kind);
        if !known.contains(&name) {
            return Err(ApiError::invalid(
                field,
                format!(
                    "unknown {kind} stage {name:?} (known: {})",
                    known.join(", ")
                ),
            ));
        }
    }
    if config.contains_key("flow") && config.contains_key("system_prompt") {
        return Err(ApiError::invalid(
            "config",
            "give either a scripted flow or an LLM system_prompt, not both",
        ));
    }
    Ok(())
}

fn apply_secrets(
    s: &ApiState,
    c: &Caller,
    sealed: &mut BTreeMap<String, String>,
    secrets: BTreeMap<String, Option<String>>,
) -> Result<(), ApiError> {
    for (name, value) in secrets {
        let field = format!("secrets.{name}");
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ApiError::invalid(field, "names are 1-64 of A-Z a-z 0-9 _"));
        }
        match value {
            None => {
                sealed.remove(&name);
            }
            Some(v) => {
                let Some(ring) = &s.keys else {
                    return Err(ApiError::invalid(
                        field,
                        "no master key is configured to encrypt secrets at rest",
                    ));
                };
                let aad = secret_aad(c.account.as_str(), &format!("agent.{name}"));
                let value = seal_secret(ring, &aad, v.as_bytes()).map_err(|e| {
                    tracing::error!(error = %e, "api: sealing a secret failed");
                    ApiError::invalid(field, "could not encrypt the secret")
                })?;
                sealed.insert(name, value);
            }
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentBody, responses((status = 201, body = super::openapi::AgentView), (status = 422, description = "Invalid field")))]
pub async fn create(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Body(b): Body<AgentBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = b
        .name
        .ok_or_else(|| ApiError::invalid("name", "required"))?;
    let config = b.config.unwrap_or_default();
    validate_config(&config)?;
    let mut sealed = BTreeMap::new();
    apply_secrets(&s, &c, &mut sealed, b.secrets)?;
    let agent = s
        .store
        .create_agent(&c.account, &name, &Value::Object(config), &sealed)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&agent))))
}

#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(super::extract::ListQuery), responses((status = 200, body = super::openapi::AgentPage)))]
pub async fn list(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    List(q): List,
) -> Result<Json<Value>, ApiError> {
    let page = s.store.list_agents(&c.account, &q.page()?).await?;
    Ok(Json(json!(page.map(|a| view(&a)))))
}

#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)), responses((status = 200, body = super::openapi::AgentView), (status = 404, description = "Not in this account")))]
pub async fn get_one(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&s.store.agent(&c.account, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)), request_body = AgentBody, responses((status = 200, body = super::openapi::AgentView), (status = 404, description = "Not in this account"), (status = 422, description = "Invalid field")))]
pub async fn patch(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Body(b): Body<AgentBody>,
) -> Result<Json<Value>, ApiError> {
    let mut agent = s.store.agent(&c.account, &id).await?;
    if let Some(name) = b.name {
        agent.name = name;
    }
    if let Some(config) = b.config {
        validate_config(&config)?;
        agent.config = Value::Object(config);
    }
    apply_secrets(&s, &c, &mut agent.sealed_secrets, b.secrets)?;
    Ok(Json(view(&s.store.update_agent(&c.account, &agent).await?)))
}

#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)), responses((status = 204, description = "Deleted"), (status = 404, description = "Not in this account")))]
pub async fn delete(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.store.delete_agent(&c.account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
