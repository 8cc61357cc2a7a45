//! The control-plane REST API (`/v1/...`): authenticated, scoped to the caller's account,
//! audited, with cursor pagination and one error body.
//!
//! Every route but `/health` goes through [`auth::require_key`], which resolves the bearer key
//! to its account and scope and writes the audit log for mutating calls. Handlers only ever pass
//! that account to the store, so another tenant's row is simply not found.

mod account;
mod agents;
pub mod auth;
mod campaigns;
mod dnc;
pub mod error;
mod extract;
mod keys;
mod leads;
mod privacy;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

use crate::store::Store;

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    /// The database.
    pub store: Store,
    /// Master keys that seal provider secrets at rest (none: secrets cannot be stored).
    pub keys: Option<std::sync::Arc<crate::store::at_rest::MasterKeyRing>>,
    /// Where recordings are read (decrypted) and deleted (none: recordings cannot be served).
    pub storage: Option<std::sync::Arc<dyn crate::media::storage::RecordingStorage>>,
    /// Salt of the erasure suppression list (none: erasure requests are refused).
    pub suppression_salt: Option<std::sync::Arc<crate::store::suppression::SuppressionSalt>>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("store", &self.store)
            .field("keys", &self.keys)
            .field("storage", &self.storage.is_some())
            .field("suppression_salt", &self.suppression_salt)
            .finish()
    }
}

/// Every route of the API, as `(method, path)`: the tenancy test walks this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/account"),
    ("PATCH", "/v1/account"),
    ("POST", "/v1/account/close"),
    ("GET", "/v1/api-keys"),
    ("POST", "/v1/api-keys"),
    ("GET", "/v1/api-keys/{id}"),
    ("DELETE", "/v1/api-keys/{id}"),
    ("GET", "/v1/agents"),
    ("POST", "/v1/agents"),
    ("GET", "/v1/agents/{id}"),
    ("PATCH", "/v1/agents/{id}"),
    ("DELETE", "/v1/agents/{id}"),
    ("GET", "/v1/campaigns"),
    ("POST", "/v1/campaigns"),
    ("GET", "/v1/campaigns/{id}"),
    ("PATCH", "/v1/campaigns/{id}"),
    ("GET", "/v1/leads"),
    ("POST", "/v1/leads"),
    ("POST", "/v1/leads/import"),
    ("GET", "/v1/leads/{id}"),
    ("PATCH", "/v1/leads/{id}"),
    ("DELETE", "/v1/leads/{id}"),
    ("GET", "/v1/leads/{id}/consent"),
    ("GET", "/v1/dnc"),
    ("POST", "/v1/dnc"),
    ("POST", "/v1/dnc/import"),
    ("GET", "/v1/dnc/{id}"),
    ("DELETE", "/v1/dnc/{id}"),
    ("GET", "/v1/audit-log"),
    ("POST", "/v1/privacy/export"),
    ("POST", "/v1/privacy/erase"),
];

/// The API router (state applied), to merge into the HTTP server.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/v1/account",
            get(account::get_account).patch(account::patch_account),
        )
        .route("/v1/account/close", post(account::close_account))
        .route("/v1/api-keys", get(keys::list).post(keys::create))
        .route("/v1/api-keys/{id}", get(keys::get_one).delete(keys::revoke))
        .route("/v1/agents", get(agents::list).post(agents::create))
        .route(
            "/v1/agents/{id}",
            get(agents::get_one)
                .patch(agents::patch)
                .delete(agents::delete),
        )
        .route(
            "/v1/campaigns",
            get(campaigns::list).post(campaigns::create),
        )
        .route(
            "/v1/campaigns/{id}",
            get(campaigns::get_one).patch(campaigns::patch),
        )
        .route("/v1/leads", get(leads::list).post(leads::create))
        .route("/v1/leads/import", post(leads::import))
        .route(
            "/v1/leads/{id}",
            get(leads::get_one)
                .patch(leads::patch)
                .delete(leads::delete),
        )
        .route("/v1/leads/{id}/consent", get(leads::consent))
        .route("/v1/dnc", get(dnc::list).post(dnc::create))
        .route("/v1/dnc/import", post(dnc::import))
        .route("/v1/dnc/{id}", get(dnc::get_one).delete(dnc::delete))
        .route("/v1/audit-log", get(account::audit_log))
        .route("/v1/privacy/export", post(privacy::export))
        .route("/v1/privacy/erase", post(privacy::erase))
        .fallback(|| async { ApiError::not_found() })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .with_state(state)
}
