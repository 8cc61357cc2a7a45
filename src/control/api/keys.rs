//! `/v1/api-keys`: create (token shown once), list, inspect, revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::extract::{Body, List};
use super::{ApiError, ApiState};
use crate::store::api_keys::{ApiKey, Scope};
use crate::store::rfc3339;

fn view(k: &ApiKey) -> Value {
    json!({
        "id": k.id, "name": k.name, "prefix": k.prefix, "scope": k.scope,
        "created_at": rfc3339(k.created_at),
        "last_used_at": k.last_used_at.map(rfc3339),
        "revoked_at": k.revoked_at.map(rfc3339),
    })
}

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
    scope: Scope,
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = NewKey, responses((status = 201, body = super::openapi::NewApiKeyView), (status = 422, description = "Invalid field")))]
pub async fn create(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Body(k): Body<NewKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if k.name.trim().is_empty() || k.name.len() > 100 {
        return Err(ApiError::invalid("name", "must be 1 to 100 characters"));
    }
    let (key, token) = s.store.create_api_key(&c.account, &k.name, k.scope).await?;
    let mut v = view(&key);
    v["token"] = json!(token.0);
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(super::extract::ListQuery), responses((status = 200, body = super::openapi::ApiKeyPage)))]
pub async fn list(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    List(q): List,
) -> Result<Json<Value>, ApiError> {
    let page = s.store.list_api_keys(&c.account, &q.page()?).await?;
    Ok(Json(json!(page.map(|k| view(&k)))))
}

#[utoipa::path(get, path = "/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)), responses((status = 200, body = super::openapi::ApiKeyView), (status = 404, description = "Not in this account")))]
pub async fn get_one(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&s.store.api_key(&c.account, &id).await?)))
}

#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)), responses((status = 200, description = "The revoked key", body = super::openapi::ApiKeyView), (status = 404, description = "Not in this account")))]
pub async fn revoke(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&s.store.revoke_api_key(&c.account, &id).await?)))
}
