//! `/v1/webhooks`: endpoints that receive signed events, their delivery log and a test send.
//!
//! The signing secret is generated here (32 random bytes, `whsec_<hex>`), returned once in the
//! creation response and stored only sealed with the master key ring, bound to the account and
//! the endpoint; without a key ring no endpoint can be created.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::extract::{Body, List};
use super::{ApiError, ApiState};
use crate::control::webhooks::secret_binding;
use crate::store::at_rest::seal_secret;
use crate::store::events::EventType;
use crate::store::ids::hex;
use crate::store::rfc3339;
use crate::store::webhooks::{Delivery, DeliveryStatus, Webhook, new_webhook_id};

fn view(w: &Webhook) -> Value {
    json!({
        "id": w.id, "url": w.url, "event_types": w.event_types, "enabled": w.enabled,
        "created_at": rfc3339(w.created_at), "updated_at": rfc3339(w.updated_at),
    })
}

fn delivery_view(d: &Delivery) -> Value {
    let waiting = matches!(d.status, DeliveryStatus::Pending | DeliveryStatus::Sending);
    json!({
        "id": d.id, "webhook_id": d.webhook_id, "event_id": d.event_id, "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": waiting.then(|| rfc3339(d.next_attempt_at)),
        "last_status": d.last_status, "last_error": d.last_error,
        "created_at": rfc3339(d.created_at), "updated_at": rfc3339(d.updated_at),
    })
}

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
}

fn check_url(url: &str) -> Result<String, ApiError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ApiError::invalid("url", format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ApiError::invalid(
            "url",
            "must be an http:// or https:// URL",
        ));
    }
    if url.len() > 2048 {
        return Err(ApiError::invalid("url", "at most 2048 characters"));
    }
    Ok(parsed.to_string())
}

fn check_types(names: &[String]) -> Result<Vec<EventType>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::invalid(
            "event_types",
            "subscribe to at least one type",
        ));
    }
    let mut types = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        match name.parse::<EventType>() {
            Ok(t) if t.subscribable() => types.push(t),
            _ => {
                let known: Vec<_> = EventType::ALL
                    .into_iter()
                    .filter(|t| t.subscribable())
                    .map(EventType::as_str)
                    .collect();
                return Err(ApiError::invalid(
                    format!("event_types[{i}]"),
                    format!("unknown event type {name:?} (known: {})", known.join(", ")),
                ));
            }
        }
    }
    types.sort();
    types.dedup();
    Ok(types)
}

/// A fresh signing secret (`whsec_<64 hex>`) for webhook `id`, and its sealed form.
fn new_secret(s: &ApiState, c: &Caller, id: &str) -> Result<(String, String), ApiError> {
    let Some(ring) = &s.keys else {
        return Err(ApiError::invalid(
            "secret",
            "no master key is configured to encrypt the webhook signing secret at rest",
        ));
    };
    let mut raw = [0u8; 32];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| ApiError::invalid("secret", "could not generate a signing secret"))?;
    let secret = format!("whsec_{}", hex(&raw));
    let sealed = seal_secret(
        ring,
        &secret_binding(c.account.as_str(), id),
        secret.as_bytes(),
    )
    .map_err(|e| {
        tracing::error!(error = %e, "api: sealing a webhook secret failed");
        ApiError::invalid("secret", "could not encrypt the signing secret")
    })?;
    Ok((secret, sealed))
}

/// The body of `POST /v1/webhooks/{id}/rotate-secret`.
#[derive(utoipa::ToSchema, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// Seconds the old secret keeps signing beside the new one (0–604800, default 86400).
    grace_s: Option<u32>,
}

/// Longest overlap of an old and a new signing secret.
const MAX_GRACE_S: u32 = 7 * 24 * 3600;

/// `POST /v1/webhooks/{id}/rotate-secret`: a new signing secret, shown once; the old one
/// keeps signing too (a second `v1=` in the signature header) for `grace_s`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path)), request_body = RotateBody, responses((status = 200, body = super::openapi::NewWebhookView), (status = 404, description = "Not in this account"), (status = 422, description = "Invalid field")))]
pub async fn rotate_secret(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    // The body is optional: an empty POST rotates with the default grace.
    let b: RotateBody = if body.iter().all(u8::is_ascii_whitespace) {
        RotateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    let grace_s = b.grace_s.unwrap_or(86_400);
    if grace_s > MAX_GRACE_S {
        return Err(ApiError::invalid(
            "grace_s",
            format!("must be 0 to {MAX_GRACE_S} seconds"),
        ));
    }
    // 404 before a secret is made for an endpoint that is not the caller's.
    s.store.webhook(&c.account, &id).await?;
    let (secret, sealed) = new_secret(&s, &c, &id)?;
    let until = (grace_s > 0).then(|| crate::store::now_ms() + i64::from(grace_s) * 1000);
    let hook = s
        .store
        .rotate_webhook_secret(&c.account, &id, &sealed, until)
        .await?;
    let mut v = view(&hook);
    v["secret"] = json!(secret);
    v["previous_secret_expires_at"] = json!(until.map(crate::store::rfc3339));
    Ok(Json(v))
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookBody, responses((status = 201, body = super::openapi::NewWebhookView), (status = 422, description = "Invalid field")))]
pub async fn create(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Body(b): Body<WebhookBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let url = check_url(
        b.url
            .as_deref()
            .ok_or_else(|| ApiError::invalid("url", "required"))?,
    )?;
    let types = check_types(
        b.event_types
            .as_deref()
            .ok_or_else(|| ApiError::invalid("event_types", "required"))?,
    )?;
    let id = new_webhook_id();
    let (secret, sealed) = new_secret(&s, &c, &id)?;
    let hook = s
        .store
        .create_webhook(
            &c.account,
            &id,
            &url,
            &types,
            &sealed,
            b.enabled.unwrap_or(true),
        )
        .await?;
    let mut v = view(&hook);
    v["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(super::extract::ListQuery), responses((status = 200, body = super::openapi::WebhookPage)))]
pub async fn list(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    List(q): List,
) -> Result<Json<Value>, ApiError> {
    let page = s.store.list_webhooks(&c.account, &q.page()?).await?;
    Ok(Json(json!(page.map(|w| view(&w)))))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), responses((status = 200, body = super::openapi::WebhookView), (status = 404, description = "Not in this account")))]
pub async fn get_one(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&s.store.webhook(&c.account, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), request_body = WebhookBody, responses((status = 200, body = super::openapi::WebhookView), (status = 404, description = "Not in this account"), (status = 422, description = "Invalid field")))]
pub async fn patch(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Body(b): Body<WebhookBody>,
) -> Result<Json<Value>, ApiError> {
    let mut hook = s.store.webhook(&c.account, &id).await?;
    if let Some(url) = b.url {
        hook.url = check_url(&url)?;
    }
    if let Some(types) = b.event_types {
        hook.event_types = check_types(&types)?;
    }
    if let Some(enabled) = b.enabled {
        hook.enabled = enabled;
    }
    Ok(Json(view(
        &s.store.update_webhook(&c.account, &hook).await?,
    )))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), responses((status = 204, description = "Deleted"), (status = 404, description = "Not in this account")))]
pub async fn delete(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.store.delete_webhook(&c.account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/webhooks/{id}/deliveries?status=failed`: the delivery log, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path), super::extract::ListQuery), responses((status = 200, body = super::openapi::DeliveryPage), (status = 404, description = "Not in this account")))]
pub async fn deliveries(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    List(q): List,
) -> Result<Json<Value>, ApiError> {
    let page = q.page()?;
    if let Some(st) = &page.status
        && st.parse::<DeliveryStatus>().is_err()
    {
        return Err(ApiError::invalid(
            "status",
            "one of pending, sending, delivered, failed",
        ));
    }
    let page = s.store.list_deliveries(&c.account, &id, &page).await?;
    Ok(Json(json!(page.map(|d| delivery_view(&d)))))
}

/// `POST /v1/webhooks/{id}/test`: queues a `webhook.test` event to this endpoint only.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", params(("id" = String, Path)), responses((status = 202, body = super::openapi::WebhookTestView), (status = 404, description = "Not in this account"), (status = 409, description = "The webhook is disabled")))]
pub async fn test(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let hook = s.store.webhook(&c.account, &id).await?;
    if !hook.enabled {
        return Err(ApiError::conflict(
            "the webhook is disabled; enable it first",
        ));
    }
    let (event, delivery) = s.store.emit_test_event(&c.account, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"event_id": event.id, "delivery": delivery_view(&delivery)})),
    ))
}
