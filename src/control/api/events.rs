//! `/v1/events`: the account's event log (`?type=call.ended&since=...&until=...`).

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::extract::ListQuery;
use super::{ApiError, ApiState};
use crate::store::events::{Event, EventType};
use crate::store::rfc3339;

fn view(e: &Event) -> Value {
    json!({
        "id": e.id, "type": e.event_type, "call_id": e.call_id, "lead_id": e.lead_id,
        "data": e.payload, "created_at": rfc3339(e.created_at),
    })
}

/// The query string of `GET /v1/events`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Rows per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    cursor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
}

/// `Query<EventsQuery>` with our error body.
pub struct EventsList(EventsQuery);

impl<S: Send + Sync> FromRequestParts<S> for EventsList {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<EventsQuery>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(Self(q)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery), responses((status = 200, body = super::openapi::EventPage)))]
pub async fn list(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    EventsList(q): EventsList,
) -> Result<Json<Value>, ApiError> {
    let event_type = q
        .event_type
        .as_deref()
        .map(|t| {
            t.parse::<EventType>()
                .map_err(|e| ApiError::invalid("type", e.to_string()))
        })
        .transpose()?;
    let page = ListQuery {
        limit: q.limit,
        cursor: q.cursor,
        since: q.since,
        until: q.until,
        ..ListQuery::default()
    }
    .page()?;
    let page = s.store.list_events(&c.account, &page, event_type).await?;
    Ok(Json(json!(page.map(|e| view(&e)))))
}
