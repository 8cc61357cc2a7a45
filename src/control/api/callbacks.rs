//! `/v1/callbacks`: callbacks leads asked for during calls (the agent's `schedule_callback`),
//! as said, with the call and the number; `?status=requested` lists the open ones.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::auth::Caller;
use super::extract::List;
use super::{ApiError, ApiState};
use crate::store::callbacks::Callback;
use crate::store::rfc3339;

fn view(c: &Callback) -> Value {
    json!({
        "id": c.id, "call_id": c.call_id, "lead_id": c.lead_id, "phone": c.phone,
        "requested": c.requested, "note": c.note, "status": c.status,
        "created_at": rfc3339(c.created_at),
    })
}

#[utoipa::path(get, path = "/v1/callbacks", tag = "callbacks", params(super::extract::ListQuery), responses((status = 200, body = super::openapi::CallbackPage)))]
pub async fn list(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    List(q): List,
) -> Result<Json<Value>, ApiError> {
    let page = s.store.list_callbacks(&c.account, &q.page()?).await?;
    Ok(Json(json!(page.map(|cb| view(&cb)))))
}

#[utoipa::path(get, path = "/v1/callbacks/{id}", tag = "callbacks", params(("id" = String, Path)), responses((status = 200, body = super::openapi::CallbackView), (status = 404, description = "Not in this account")))]
pub async fn get_one(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&s.store.callback(&c.account, &id).await?)))
}
