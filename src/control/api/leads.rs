//! `/v1/leads`: create, import a CSV (streamed, any size), list, read, correct, delete, consent.

use std::collections::BTreeMap;

use axum::body::Body as RawBody;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::Caller;
use super::extract::{Body, List};
use super::{ApiError, ApiState};
use crate::control::lead_import::{LeadImportError, import_leads};
use crate::leads::csv_import::ColumnMapping;
use crate::leads::import::RowError;
use crate::leads::phone::{Region, normalize_phone};
use crate::leads::timezone::{infer_timezone, parse_timezone};
use crate::store::accounts::Account;
use crate::store::leads::{ConsentStatus, Lead, LeadFields};
use crate::store::{StoreError, parse_time, rfc3339};

fn view(l: &Lead) -> Value {
    let f = &l.fields;
    json!({
        "id": l.id, "campaign_id": f.campaign_id, "phone": f.phone,
        "first_name": f.first_name, "last_name": f.last_name, "email": f.email,
        "timezone": f.timezone, "timezone_source": f.timezone_source,
        "consent_status": f.consent_status, "consent_source": f.consent_source,
        "consent_at": f.consent_at.map(rfc3339), "consent_text": f.consent_text,
        "external_id": f.external_id, "custom": f.custom, "status": l.status,
        "created_at": rfc3339(l.created_at), "updated_at": rfc3339(l.updated_at),
    })
}

/// A lead as a client writes it (every field optional for PATCH).
#[derive(utoipa::ToSchema, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LeadBody {
    campaign_id: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    timezone: Option<String>,
    consent_status: Option<String>,
    consent_source: Option<String>,
    consent_at: Option<String>,
    consent_text: Option<String>,
    external_id: Option<String>,
    custom: Option<Map<String, Value>>,
}

fn region(account: &Account) -> Option<Region> {
    account.settings.default_region.parse().ok()
}

/// Sets the timezone from an explicit name, else the number, else the account default.
fn resolve_timezone(
    f: &mut LeadFields,
    explicit: Option<&str>,
    account: &Account,
) -> Result<(), ApiError> {
    if let Some(name) = explicit {
        let tz = parse_timezone(name).map_err(|e| ApiError::invalid("timezone", e.to_string()))?;
        f.timezone = Some(tz.as_str().to_owned());
        f.timezone_source = Some("explicit".to_owned());
        return Ok(());
    }
    let inferred = normalize_phone(&f.phone, None)
        .ok()
        .and_then(|p| infer_timezone(&p));
    match inferred {
        Some(tz) => {
            f.timezone = Some(tz.as_str().to_owned());
            f.timezone_source = Some("inferred".to_owned());
        }
        None => {
            f.timezone = Some(account.settings.default_timezone.clone());
            f.timezone_source = Some("account_default".to_owned());
        }
    }
    Ok(())
}

fn apply(
    f: &mut LeadFields,
    b: LeadBody,
    account: &Account,
    creating: bool,
) -> Result<(), ApiError> {
    let phone_changed = b.phone.is_some();
    if let Some(raw) = b.phone {
        let e164 = normalize_phone(&raw, region(account))
            .map_err(|e| ApiError::invalid("phone", e.to_string()))?;
        f.phone = e164.as_str().to_owned();
    }
    if f.phone.is_empty() {
        return Err(ApiError::invalid("phone", "required"));
    }
    if creating {
        f.campaign_id = b.campaign_id;
    } else if b.campaign_id.is_some() {
        return Err(ApiError::invalid(
            "campaign_id",
            "a lead cannot move between campaigns; create it in the other campaign",
        ));
    }
    let text = |field: &str, v: Option<String>, max: usize| -> Result<Option<String>, ApiError> {
        match v {
            Some(s) if s.len() > max => {
                Err(ApiError::invalid(field, format!("longer than {max} bytes")))
            }
            other => Ok(other),
        }
    };
    if b.first_name.is_some() {
        f.first_name = text("first_name", b.first_name, 200)?;
    }
    if b.last_name.is_some() {
        f.last_name = text("last_name", b.last_name, 200)?;
    }
    if let Some(e) = b.email {
        if !e.contains('@') || e.len() > 254 {
            return Err(ApiError::invalid("email", "not an email address"));
        }
        f.email = Some(e);
    }
    if let Some(c) = b.consent_status {
        f.consent_status = Some(c.parse::<ConsentStatus>().map_err(|()| {
            ApiError::invalid(
                "consent_status",
                "expected express_written, verbal, none or revoked",
            )
        })?);
    }
    if b.consent_source.is_some() {
        f.consent_source = text("consent_source", b.consent_source, 1000)?;
    }
    if let Some(at) = b.consent_at {
        f.consent_at =
            Some(parse_time(&at).ok_or_else(|| {
                ApiError::invalid("consent_at", "expected RFC 3339 or YYYY-MM-DD")
            })?);
    }
    if b.consent_text.is_some() {
        f.consent_text = text("consent_text", b.consent_text, 10_000)?;
    }
    if b.external_id.is_some() {
        f.external_id = text("external_id", b.external_id, 200)?;
    }
    if let Some(c) = b.custom {
        f.custom = c;
    }
    if b.timezone.is_some() || creating || phone_changed {
        resolve_timezone(f, b.timezone.as_deref(), account)?;
    }
    Ok(())
}

fn campaign_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => {
            ApiError::invalid("campaign_id", "no such campaign in this account")
        }
        other => other.into(),
    }
}

#[utoipa::path(post, path = "/v1/leads", tag = "leads", request_body = LeadBody, responses((status = 201, body = super::openapi::LeadView), (status = 422, description = "Invalid field")))]
pub async fn create(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Body(b): Body<LeadBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let account = s.store.account(&c.account).await?;
    let mut f = LeadFields::default();
    apply(&mut f, b, &account, true)?;
    let lead = s
        .store
        .create_lead(&c.account, &f)
        .await
        .map_err(campaign_error)?;
    Ok((StatusCode::CREATED, Json(view(&lead))))
}

#[utoipa::path(get, path = "/v1/leads", tag = "leads", params(super::extract::ListQuery), responses((status = 200, body = super::openapi::LeadPage)))]
pub async fn list(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    List(q): List,
) -> Result<Json<Value>, ApiError> {
    let page = s
        .store
        .list_leads(&c.account, &q.page()?, q.campaign_id.as_deref())
        .await?;
    Ok(Json(json!(page.map(|l| view(&l)))))
}

#[utoipa::path(get, path = "/v1/leads/{id}", tag = "leads", params(("id" = String, Path)), responses((status = 200, body = super::openapi::LeadView), (status = 404, description = "Not in this account")))]
pub async fn get_one(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&s.store.lead(&c.account, &id).await?)))
}

/// Corrects a lead (data-subject correction): only the given fields change.
#[utoipa::path(patch, path = "/v1/leads/{id}", tag = "leads", params(("id" = String, Path)), request_body = LeadBody, responses((status = 200, body = super::openapi::LeadView), (status = 404, description = "Not in this account"), (status = 422, description = "Invalid field")))]
pub async fn patch(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Body(b): Body<LeadBody>,
) -> Result<Json<Value>, ApiError> {
    let account = s.store.account(&c.account).await?;
    let mut f = s.store.lead(&c.account, &id).await?.fields;
    apply(&mut f, b, &account, false)?;
    Ok(Json(view(
        &s.store.update_lead(&c.account, &id, &f, "api").await?,
    )))
}

#[utoipa::path(delete, path = "/v1/leads/{id}", tag = "leads", params(("id" = String, Path)), responses((status = 204, description = "Deleted"), (status = 404, description = "Not in this account")))]
pub async fn delete(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.store.delete_lead(&c.account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/leads/{id}/consent", tag = "leads", params(("id" = String, Path)), responses((status = 200, body = super::openapi::ConsentHistory), (status = 404, description = "Not in this account")))]
pub async fn consent(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let history = s.store.consent_history(&c.account, &id).await?;
    let data: Vec<Value> = history
        .iter()
        .map(|e| {
            json!({"id": e.id, "status": e.status, "source": e.source, "text": e.text,
                   "call_id": e.call_id, "at": rfc3339(e.at)})
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// The CSV's row failures, as the response reports them.
fn row_errors(errors: &[RowError]) -> Vec<Value> {
    errors
        .iter()
        .map(|e| json!({"line": e.line, "column": e.column, "reason": e.reason}))
        .collect()
}

/// `POST /v1/leads/import?campaign_id=..&phone=<header>&first_name=<header>...`, body: the CSV.
///
/// The query names the CSV header of each field (see docs/leads.md); the body is streamed, rows
/// are inserted in batches, and the answer counts imported / skipped / failed rows and lists
/// each failure by line and column.
#[utoipa::path(post, path = "/v1/leads/import", tag = "leads", params(super::openapi::LeadImportQuery), request_body(content = String, content_type = "text/csv"), responses((status = 200, body = super::openapi::LeadImportReport), (status = 422, description = "Invalid field")))]
pub async fn import(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Query(mut query): Query<BTreeMap<String, String>>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let account = s.store.account(&c.account).await?;
    let campaign = query.remove("campaign_id");
    if let Some(id) = &campaign {
        s.store
            .campaign(&c.account, id)
            .await
            .map_err(campaign_error)?;
    }
    let mapping: ColumnMapping = serde_json::from_value(json!(query))
        .map_err(|e| ApiError::invalid("mapping", format!("column mapping: {e}")))?;
    let report = import_leads(
        &s.store,
        &account,
        campaign.as_deref(),
        mapping,
        body.into_data_stream(),
        |_| {},
    )
    .await
    .map_err(|e| match e {
        LeadImportError::Read(m) => ApiError::bad_request(format!("reading the body: {m}")),
        LeadImportError::File(e) => ApiError::invalid("body", e.to_string()),
        LeadImportError::Store(e) => e.into(),
    })?;
    Ok(Json(json!({
        "imported": report.imported,
        "skipped": report.skipped,
        "failed": report.failed,
        "errors": row_errors(&report.errors),
        "skipped_rows": report.skipped_rows,
    })))
}
