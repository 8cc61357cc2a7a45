//! `/v1/dnc`: the account's do-not-call list (API entries, CSV imports, opt-outs from calls).

use std::collections::BTreeMap;

use axum::body::Body as RawBody;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::extract::{Body, List};
use super::{ApiError, ApiState};
use crate::leads::dnc_csv::{DncCsvImporter, DncMapping};
use crate::leads::import::ImportOptions;
use crate::leads::phone::normalize_phone;
use crate::store::dnc::DncEntry;
use crate::store::rfc3339;

fn view(e: &DncEntry) -> Value {
    json!({"id": e.id, "phone": e.phone, "reason": e.reason, "source": e.source,
           "call_id": e.call_id, "created_at": rfc3339(e.created_at)})
}

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDnc {
    phone: String,
    reason: Option<String>,
}

#[utoipa::path(post, path = "/v1/dnc", tag = "dnc", request_body = NewDnc, responses((status = 201, body = super::openapi::DncView), (status = 422, description = "Invalid field")))]
pub async fn create(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Body(b): Body<NewDnc>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let account = s.store.account(&c.account).await?;
    let phone = normalize_phone(&b.phone, account.settings.default_region.parse().ok())
        .map_err(|e| ApiError::invalid("phone", e.to_string()))?;
    let entry = s
        .store
        .add_dnc(&c.account, phone.as_str(), b.reason.as_deref(), "api", None)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&entry))))
}

#[utoipa::path(get, path = "/v1/dnc", tag = "dnc", params(super::extract::ListQuery), responses((status = 200, body = super::openapi::DncPage)))]
pub async fn list(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    List(q): List,
) -> Result<Json<Value>, ApiError> {
    let page = s.store.list_dnc(&c.account, &q.page()?).await?;
    Ok(Json(json!(page.map(|e| view(&e)))))
}

#[utoipa::path(get, path = "/v1/dnc/{id}", tag = "dnc", params(("id" = String, Path)), responses((status = 200, body = super::openapi::DncView), (status = 404, description = "Not in this account")))]
pub async fn get_one(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&s.store.dnc_entry(&c.account, &id).await?)))
}

#[utoipa::path(delete, path = "/v1/dnc/{id}", tag = "dnc", params(("id" = String, Path)), responses((status = 204, description = "Deleted"), (status = 404, description = "Not in this account")))]
pub async fn delete(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.store.delete_dnc(&c.account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/dnc/import?phone=<header>&reason=<header>`, body: the CSV.
#[utoipa::path(post, path = "/v1/dnc/import", tag = "dnc", params(super::openapi::DncImportQuery), request_body(content = String, content_type = "text/csv"), responses((status = 200, body = super::openapi::DncImportReport), (status = 422, description = "Invalid field")))]
pub async fn import(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Query(query): Query<BTreeMap<String, String>>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let account = s.store.account(&c.account).await?;
    let mapping: DncMapping = serde_json::from_value(json!(query))
        .map_err(|e| ApiError::invalid("mapping", format!("column mapping: {e}")))?;
    let options = ImportOptions {
        default_region: account.settings.default_region.parse().ok(),
        ..ImportOptions::default()
    };
    let mut importer = DncCsvImporter::new(mapping, options);
    let mut stream = body.into_data_stream();
    let (mut imported, mut skipped, mut failed) = (0u64, 0u64, 0u64);
    let mut errors = Vec::new();
    let mut done = false;
    while !done {
        let batch = match stream.next().await {
            Some(Ok(bytes)) => importer.push(&bytes),
            Some(Err(e)) => return Err(ApiError::bad_request(format!("reading the body: {e}"))),
            None => {
                done = true;
                importer.finish()
            }
        }
        .map_err(|e| ApiError::invalid("body", e.to_string()))?;
        skipped += batch.skipped.len() as u64;
        failed += batch.errors.len() as u64;
        for e in batch
            .errors
            .iter()
            .take(1000usize.saturating_sub(errors.len()))
        {
            errors.push(json!({"line": e.line, "column": e.column, "reason": e.reason}));
        }
        for r in batch.records {
            s.store
                .add_dnc(
                    &c.account,
                    r.phone.as_str(),
                    r.reason.as_deref(),
                    "csv",
                    None,
                )
                .await?;
            imported += 1;
        }
    }
    Ok(Json(json!({
        "imported": imported, "skipped": skipped, "failed": failed, "errors": errors,
    })))
}
