//! `/v1/campaigns`: which agent calls which leads, over which trunk, when and how fast.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::extract::{Body, List};
use super::{ApiError, ApiState};
use crate::leads::phone::normalize_phone;
use crate::store::campaigns::{Campaign, CampaignSettings, CampaignStatus};
use crate::store::{StoreError, rfc3339};

fn view(c: &Campaign) -> Value {
    json!({
        "id": c.id, "name": c.name, "agent_id": c.agent_id, "trunk": c.trunk,
        "caller_id": c.caller_id, "status": c.status, "settings": c.settings,
        "created_at": rfc3339(c.created_at), "updated_at": rfc3339(c.updated_at),
    })
}

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignBody {
    name: Option<String>,
    agent_id: Option<String>,
    trunk: Option<String>,
    caller_id: Option<String>,
    status: Option<CampaignStatus>,
    settings: Option<CampaignSettings>,
}

fn apply(s: &ApiState, c: &mut Campaign, b: CampaignBody) -> Result<(), ApiError> {
    if let Some(n) = b.name {
        if n.trim().is_empty() || n.len() > 200 {
            return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
        }
        c.name = n;
    }
    if let Some(a) = b.agent_id {
        c.agent_id = Some(a);
    }
    if let Some(t) = b.trunk {
        super::trunks::check_trunk(s, &t)?;
        c.trunk = Some(t);
    }
    if let Some(id) = b.caller_id {
        let e164 = normalize_phone(&id, None)
            .map_err(|e| ApiError::invalid("caller_id", format!("not an E.164 number: {e}")))?;
        c.caller_id = Some(e164.as_str().to_owned());
    }
    if let Some(status) = b.status {
        c.status = status;
    }
    if let Some(settings) = b.settings {
        settings
            .validate()
            .map_err(|(f, why)| ApiError::invalid(format!("settings.{f}"), why))?;
        c.settings = settings;
    }
    Ok(())
}

fn agent_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::invalid("agent_id", "no such agent in this account"),
        other => other.into(),
    }
}

#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", request_body = CampaignBody, responses((status = 201, body = super::openapi::CampaignView), (status = 422, description = "Invalid field")))]
pub async fn create(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Body(b): Body<CampaignBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if b.name.is_none() {
        return Err(ApiError::invalid("name", "required"));
    }
    let mut campaign = Campaign {
        id: String::new(),
        name: String::new(),
        agent_id: None,
        trunk: None,
        caller_id: None,
        status: CampaignStatus::Draft,
        settings: CampaignSettings::default(),
        created_at: 0,
        updated_at: 0,
    };
    apply(&s, &mut campaign, b)?;
    let created = s
        .store
        .create_campaign(&c.account, &campaign)
        .await
        .map_err(agent_error)?;
    Ok((StatusCode::CREATED, Json(view(&created))))
}

#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns", params(super::extract::ListQuery), responses((status = 200, body = super::openapi::CampaignPage)))]
pub async fn list(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    List(q): List,
) -> Result<Json<Value>, ApiError> {
    let page = s.store.list_campaigns(&c.account, &q.page()?).await?;
    Ok(Json(json!(page.map(|c| view(&c)))))
}

#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns", params(("id" = String, Path)), responses((status = 200, body = super::openapi::CampaignView), (status = 404, description = "Not in this account")))]
pub async fn get_one(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&s.store.campaign(&c.account, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/campaigns/{id}", tag = "campaigns", params(("id" = String, Path)), request_body = CampaignBody, responses((status = 200, body = super::openapi::CampaignView), (status = 404, description = "Not in this account"), (status = 422, description = "Invalid field")))]
pub async fn patch(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Body(b): Body<CampaignBody>,
) -> Result<Json<Value>, ApiError> {
    let mut campaign = s.store.campaign(&c.account, &id).await?;
    apply(&s, &mut campaign, b)?;
    let updated = s
        .store
        .update_campaign(&c.account, &campaign)
        .await
        .map_err(agent_error)?;
    Ok(Json(view(&updated)))
}
