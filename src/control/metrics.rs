//! `GET /metrics` (Prometheus text format, behind its own bearer token) and the layer that
//! counts every HTTP request by method, route template and status.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::config::Secret;
use crate::telemetry::metrics as m;

/// The `/metrics` route; requests must carry `Authorization: Bearer <token>`.
pub fn routes(token: Secret) -> Router {
    m::install();
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(token)
}

async fn scrape(State(token): State<Secret>, headers: HeaderMap) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !crate::store::api_keys::constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "metrics need the [http] metrics_token as a bearer token\n",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m::render(),
    )
        .into_response()
}

/// Middleware: counts the request and its duration under the matched route template (never
/// the raw path, which holds ids: the label set stays bounded).
pub async fn count_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    if route == "/metrics" {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!(m::API_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(m::API_DURATION, "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    res
}
