//! `/v1/account`: the caller's own account, its settings, closure; `/v1/audit-log`.

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::auth::Caller;
use super::extract::{Body, List};
use super::{ApiError, ApiState};
use crate::store::accounts::{Account, AccountSettings};
use crate::store::api_keys::Scope;
use crate::store::{now_ms, rfc3339};

fn view(a: &Account) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "status": a.status,
        "settings": a.settings,
        "created_at": rfc3339(a.created_at),
        "closed_at": a.closed_at.map(rfc3339),
        "purge_after": a.closed_at.map(|t| rfc3339(t + i64::from(a.settings.closure_purge_days) * 86_400_000)),
    })
}

#[utoipa::path(get, path = "/v1/account", tag = "account", responses((status = 200, body = super::openapi::AccountView)))]
pub async fn get_account(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&s.store.account(&c.account).await?)))
}

/// Merges the given settings fields into the current ones, validates, stores.
#[utoipa::path(patch, path = "/v1/account", tag = "account", request_body = super::openapi::AccountPatch, responses((status = 200, body = super::openapi::AccountView), (status = 422, description = "Invalid field")))]
pub async fn patch_account(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Body(patch): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    let current = s.store.account(&c.account).await?;
    let Some(fields) = patch.get("settings").and_then(Value::as_object) else {
        return Err(ApiError::invalid(
            "settings",
            "expected {\"settings\": {...}}",
        ));
    };
    let mut merged = serde_json::to_value(&current.settings).unwrap_or_default();
    for (k, v) in fields {
        if merged.get(k).is_none() {
            return Err(ApiError::invalid(
                format!("settings.{k}"),
                "unknown setting",
            ));
        }
        merged[k] = v.clone();
    }
    let settings: AccountSettings =
        serde_json::from_value(merged).map_err(|e| ApiError::invalid("settings", e.to_string()))?;
    settings
        .validate()
        .map_err(|(field, why)| ApiError::invalid(format!("settings.{field}"), why))?;
    Ok(Json(view(
        &s.store
            .update_account_settings(&c.account, &settings)
            .await?,
    )))
}

/// Closes the account: keys stop working at once; data is purged after the closure period.
#[utoipa::path(post, path = "/v1/account/close", tag = "account", request_body = super::openapi::CloseAccount, responses((status = 200, body = super::openapi::AccountView), (status = 422, description = "Invalid field")))]
pub async fn close_account(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Body(body): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    if c.scope != Scope::Admin {
        return Err(ApiError::forbidden("closing needs an admin key"));
    }
    if body.get("confirm").and_then(Value::as_str) != Some("close") {
        return Err(ApiError::invalid(
            "confirm",
            "send {\"confirm\": \"close\"} to close the account",
        ));
    }
    Ok(Json(view(
        &s.store.close_account(&c.account, now_ms()).await?,
    )))
}

#[utoipa::path(get, path = "/v1/audit-log", tag = "account", params(super::extract::ListQuery), responses((status = 200, body = super::openapi::AuditPage)))]
pub async fn audit_log(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    List(q): List,
) -> Result<Json<Value>, ApiError> {
    let page = s.store.list_audit(&c.account, &q.page()?).await?;
    Ok(Json(json!(page.map(|e| json!({
        "id": e.id, "key_id": e.key_id, "action": e.action, "target": e.target,
        "source_ip": e.source_ip, "status": e.status, "at": rfc3339(e.at),
    })))))
}
