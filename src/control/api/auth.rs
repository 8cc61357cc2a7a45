//! Bearer-key authentication, scope checks and the audit log, as one middleware.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};
use crate::store::api_keys::Scope;
use crate::store::audit::AuditEntry;
use crate::store::{AccountId, now_ms};

/// Who is calling: the key's account (the only tenant this request may touch) and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant.
    pub account: AccountId,
    /// The key used.
    pub key_id: String,
    /// What the key may do.
    pub scope: Scope,
}

/// Resolves `Authorization: Bearer`, refuses writes to read-only keys, runs the handler and
/// writes an audit entry for every mutating call (whatever its outcome).
pub async fn require_key(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return ApiError::unauthorized().into_response();
    };
    let key = match state.store.authenticate(token).await {
        Ok(Ok(key)) => key,
        Ok(Err(why)) => {
            tracing::info!(reason = ?why, "api: key refused");
            return ApiError::unauthorized().into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let method = req.method().clone();
    let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if mutating && key.scope != Scope::Admin {
        return ApiError::forbidden("this key has the read scope").into_response();
    }
    let caller = Caller {
        account: key.account_id.clone(),
        key_id: key.id.clone(),
        scope: key.scope,
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let target = req.uri().path().to_owned();
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    req.extensions_mut().insert(caller.clone());
    let response = if super::extract::url_has_nul(req.uri()) {
        ApiError::bad_request("the URL must not contain an encoded NUL character (%00)")
            .into_response()
    } else {
        next.run(req).await
    };
    if mutating {
        let entry = AuditEntry {
            id: String::new(),
            key_id: Some(caller.key_id),
            action: format!("{method} {}", route.as_deref().unwrap_or(&target)),
            target,
            source_ip,
            status: i32::from(response.status().as_u16()),
            at: now_ms(),
        };
        if let Err(e) = state.store.audit(&caller.account, &entry).await {
            tracing::error!(error = %e, "api: audit log write failed");
        }
    }
    response
}
