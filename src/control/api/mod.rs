//! The control-plane REST API (`/v1/...`): authenticated, scoped to the caller's account,
//! audited, with cursor pagination and one error body.
//!
//! Every route but `/health` and `/v1/openapi.json` goes through [`auth::require_key`], which
//! resolves the bearer key to its account and scope and writes the audit log for mutating calls.
//! Handlers only ever pass that account to the store, so another tenant's row is simply not
//! found.

mod account;
mod agents;
pub mod auth;
mod callbacks;
mod calls;
mod campaigns;
mod dnc;
pub mod error;
mod events;
mod extract;
mod keys;
mod leads;
pub mod openapi;
mod privacy;
mod streams;
pub mod trunks;
mod webhooks;

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
    /// Signs media-stream tokens (none: `[streams] secret` is not set).
    pub stream_auth: Option<std::sync::Arc<crate::leg::stream_auth::StreamAuth>>,
    /// The server's configured trunks (none: campaign trunk names are not checked).
    pub trunks: Option<std::sync::Arc<Vec<trunks::TrunkInfo>>>,
}

impl ApiState {
    /// State with only a store: no key ring, no recording storage, no erasure salt, unsigned
    /// streams.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            keys: None,
            storage: None,
            suppression_salt: None,
            stream_auth: None,
            trunks: None,
        }
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("store", &self.store)
            .field("keys", &self.keys)
            .field("storage", &self.storage.is_some())
            .field("suppression_salt", &self.suppression_salt)
            .field("stream_auth", &self.stream_auth.is_some())
            .finish()
    }
}

/// Every authenticated route of the API, as `(method, path)`: the tenancy test walks this list
/// and the OpenAPI test checks the document against it (`/v1/openapi.json` is not listed).
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
    ("GET", "/v1/trunks"),
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
    ("GET", "/v1/calls"),
    ("GET", "/v1/calls/{id}"),
    ("GET", "/v1/calls/{id}/transcript"),
    ("GET", "/v1/callbacks"),
    ("GET", "/v1/callbacks/{id}"),
    ("GET", "/v1/recordings"),
    ("GET", "/v1/recordings/{id}"),
    ("GET", "/v1/recordings/{id}/audio"),
    ("GET", "/v1/streams/twiml"),
    ("GET", "/v1/audit-log"),
    ("GET", "/v1/webhooks"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks/{id}"),
    ("PATCH", "/v1/webhooks/{id}"),
    ("DELETE", "/v1/webhooks/{id}"),
    ("GET", "/v1/webhooks/{id}/deliveries"),
    ("POST", "/v1/webhooks/{id}/test"),
    ("POST", "/v1/webhooks/{id}/rotate-secret"),
    ("GET", "/v1/events"),
    ("POST", "/v1/privacy/export"),
    ("POST", "/v1/privacy/erase"),
];

/// The API router (state applied), to merge into the HTTP server; `/v1/openapi.json` is
/// merged after the auth layer, so it needs no key.
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
        .route("/v1/trunks", get(trunks::list))
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
        .route("/v1/calls", get(calls::list))
        .route("/v1/calls/{id}", get(calls::get_one))
        .route("/v1/calls/{id}/transcript", get(calls::transcript))
        .route("/v1/callbacks", get(callbacks::list))
        .route("/v1/callbacks/{id}", get(callbacks::get_one))
        .route("/v1/recordings", get(calls::list_recordings))
        .route("/v1/recordings/{id}", get(calls::get_recording))
        .route("/v1/recordings/{id}/audio", get(calls::recording_audio))
        .route("/v1/streams/twiml", get(streams::get_twiml))
        .route("/v1/audit-log", get(account::audit_log))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get_one)
                .patch(webhooks::patch)
                .delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/webhooks/{id}/test", post(webhooks::test))
        .route(
            "/v1/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route("/v1/events", get(events::list))
        .route("/v1/privacy/export", post(privacy::export))
        .route("/v1/privacy/erase", post(privacy::erase))
        .fallback(|| async { ApiError::not_found() })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .with_state(state)
        .merge(Router::new().route("/v1/openapi.json", get(openapi::serve)))
}
