//! The OpenAPI 3.1 document of the API (`GET /v1/openapi.json`, served without a key),
//! generated from the handlers' `#[utoipa::path]` annotations and the response shapes below.
//!
//! The handlers answer with `json!` views; the structs here describe those views field by field
//! (they are never built, only turned into schemas). A test checks that the document's routes
//! and [`super::ROUTES`] are the same set.

// Documentation-only shapes: never constructed.
#![allow(dead_code)]

use axum::Json;
use serde_json::{Map, Value};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use super::error::ErrorBody;
use crate::privacy::ErasureReport;
use crate::store::accounts::{AccountSettings, AccountStatus};
use crate::store::api_keys::Scope;
use crate::store::calls::TranscriptTurn;
use crate::store::campaigns::{CampaignSettings, CampaignStatus};

/// The account (`/v1/account`).
#[derive(ToSchema)]
pub struct AccountView {
    id: String,
    name: String,
    status: AccountStatus,
    settings: AccountSettings,
    /// RFC 3339.
    created_at: String,
    closed_at: Option<String>,
    /// When a closed account's data is purged.
    purge_after: Option<String>,
}

/// `PATCH /v1/account`: settings fields to change (the others keep their value).
#[derive(ToSchema)]
pub struct AccountPatch {
    /// Any subset of the account settings.
    settings: Map<String, Value>,
}

/// `POST /v1/account/close`.
#[derive(ToSchema)]
pub struct CloseAccount {
    /// Must be `"close"`.
    confirm: String,
}

/// One audit-log row (a mutating API call).
#[derive(ToSchema)]
pub struct AuditEntryView {
    id: String,
    key_id: Option<String>,
    action: String,
    target: String,
    source_ip: Option<String>,
    /// HTTP status answered.
    status: i32,
    at: String,
}

/// An API key (the token itself is never shown again).
#[derive(ToSchema)]
pub struct ApiKeyView {
    id: String,
    name: String,
    /// First characters of the token, to recognise it.
    prefix: String,
    scope: Scope,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

/// A new API key: its fields and, once, the token.
#[derive(ToSchema)]
pub struct NewApiKeyView {
    id: String,
    name: String,
    prefix: String,
    scope: Scope,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
    /// `lc_...`: shown only in this response.
    token: String,
}

/// An agent; secrets are listed by name only.
#[derive(ToSchema)]
pub struct AgentView {
    id: String,
    name: String,
    /// Stages, providers, flow or system prompt, voice, barge-in.
    config: Map<String, Value>,
    /// Names of the stored (sealed) secrets.
    secrets: Vec<String>,
    created_at: String,
    updated_at: String,
}

/// A campaign.
#[derive(ToSchema)]
pub struct CampaignView {
    id: String,
    name: String,
    agent_id: Option<String>,
    trunk: Option<String>,
    caller_id: Option<String>,
    status: CampaignStatus,
    settings: CampaignSettings,
    created_at: String,
    updated_at: String,
}

/// A lead.
#[derive(ToSchema)]
pub struct LeadView {
    id: String,
    campaign_id: Option<String>,
    /// E.164.
    phone: String,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    /// IANA time zone.
    timezone: Option<String>,
    /// `explicit`, `inferred` or `account_default`.
    timezone_source: Option<String>,
    /// `express_written`, `verbal`, `none` or `revoked`.
    consent_status: Option<String>,
    consent_source: Option<String>,
    consent_at: Option<String>,
    consent_text: Option<String>,
    external_id: Option<String>,
    custom: Map<String, Value>,
    status: String,
    created_at: String,
    updated_at: String,
}

/// One change of a lead's consent.
#[derive(ToSchema)]
pub struct ConsentEventView {
    id: String,
    status: String,
    source: Option<String>,
    text: Option<String>,
    call_id: Option<String>,
    at: String,
}

/// A lead's consent history, oldest first.
#[derive(ToSchema)]
pub struct ConsentHistory {
    data: Vec<ConsentEventView>,
}

/// A CSV row that failed.
#[derive(ToSchema)]
pub struct RowErrorView {
    line: u64,
    column: Option<String>,
    reason: String,
}

/// A CSV row that was skipped (duplicate).
#[derive(ToSchema)]
pub struct SkippedRowView {
    line: u64,
    reason: String,
}

/// What a lead import did (the lists hold at most 1000 rows; the counts cover all).
#[derive(ToSchema)]
pub struct LeadImportReport {
    imported: u64,
    skipped: u64,
    failed: u64,
    errors: Vec<RowErrorView>,
    skipped_rows: Vec<SkippedRowView>,
}

/// A do-not-call entry.
#[derive(ToSchema)]
pub struct DncView {
    id: String,
    phone: String,
    reason: Option<String>,
    /// `api`, `csv` or `call`.
    source: String,
    call_id: Option<String>,
    created_at: String,
}

/// A callback a lead asked for.
#[derive(ToSchema)]
pub struct CallbackView {
    id: String,
    call_id: String,
    lead_id: Option<String>,
    /// E.164, when the caller's number was one.
    phone: Option<String>,
    /// The time as the lead said it ("tomorrow morning").
    requested: String,
    note: Option<String>,
    /// `requested` until acted on.
    status: String,
    created_at: String,
}

/// What a do-not-call import did.
#[derive(ToSchema)]
pub struct DncImportReport {
    imported: u64,
    skipped: u64,
    failed: u64,
    errors: Vec<RowErrorView>,
}

/// A call's record (CDR); times are RFC 3339.
#[derive(ToSchema)]
pub struct CallView {
    id: String,
    /// `inbound` or `outbound`.
    direction: String,
    from: String,
    to: String,
    trunk: Option<String>,
    campaign_id: Option<String>,
    lead_id: Option<String>,
    sip_call_id: Option<String>,
    status: String,
    setup_at: String,
    ring_at: Option<String>,
    answer_at: Option<String>,
    end_at: Option<String>,
    duration_ms: Option<i64>,
    outcome: Option<String>,
    disposition: Option<String>,
    notes: Option<String>,
    hangup_cause: Option<String>,
    sip_code: Option<i32>,
    media_stats: Value,
    latency: Value,
    tool_calls: Value,
}

/// A call's transcript.
#[derive(ToSchema)]
pub struct TranscriptView {
    call_id: String,
    turns: Vec<TranscriptTurn>,
}

/// A recording's metadata.
#[derive(ToSchema)]
pub struct RecordingView {
    id: String,
    call_id: String,
    /// `wav` or `ogg`.
    format: String,
    bytes: i64,
    duration_ms: i64,
    key_id: String,
    created_at: String,
}

/// A webhook endpoint.
#[derive(ToSchema)]
pub struct WebhookView {
    id: String,
    url: String,
    event_types: Vec<String>,
    enabled: bool,
    created_at: String,
    updated_at: String,
}

/// A new webhook endpoint and, once, its signing secret.
#[derive(ToSchema)]
pub struct NewWebhookView {
    id: String,
    url: String,
    event_types: Vec<String>,
    enabled: bool,
    created_at: String,
    updated_at: String,
    /// `whsec_...`: shown only in this response.
    secret: String,
}

/// One delivery of an event to a webhook.
#[derive(ToSchema)]
pub struct DeliveryView {
    id: String,
    webhook_id: String,
    event_id: String,
    /// `pending`, `sending`, `delivered` or `failed`.
    status: String,
    attempts: u32,
    /// Set while pending or sending.
    next_attempt_at: Option<String>,
    last_status: Option<u16>,
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
}

/// A queued `webhook.test` event and its delivery.
#[derive(ToSchema)]
pub struct WebhookTestView {
    event_id: String,
    delivery: DeliveryView,
}

/// An event of the account's log.
#[derive(ToSchema)]
pub struct EventView {
    id: String,
    /// `call.started`, `call.ended`, ...
    r#type: String,
    call_id: Option<String>,
    lead_id: Option<String>,
    data: Value,
    created_at: String,
}

/// What an erasure removed.
#[derive(ToSchema)]
pub struct EraseView {
    erased: ErasureReport,
}

/// `POST /v1/leads/import` query: the campaign, and the CSV header holding each field.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeadImportQuery {
    /// Campaign the leads join.
    campaign_id: Option<String>,
    /// Header of the phone column (required).
    phone: String,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    timezone: Option<String>,
    consent_status: Option<String>,
    consent_source: Option<String>,
    consent_at: Option<String>,
    consent_text: Option<String>,
    external_id: Option<String>,
}

/// `POST /v1/dnc/import` query: the CSV header holding each field.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DncImportQuery {
    /// Header of the phone column (required).
    phone: String,
    reason: Option<String>,
}

/// Declares the page wrappers: `{data: [...], next_cursor}`.
macro_rules! pages {
    ($($page:ident => $item:ty),* $(,)?) => {$(
        #[doc = concat!("A page of `", stringify!($item), "`, newest first.")]
        #[derive(ToSchema)]
        pub struct $page {
            data: Vec<$item>,
            /// Pass as `cursor` for the next page; null on the last one.
            next_cursor: Option<String>,
        }
    )*};
}

pages! {
    ApiKeyPage => ApiKeyView,
    AgentPage => AgentView,
    CampaignPage => CampaignView,
    LeadPage => LeadView,
    DncPage => DncView,
    CallPage => CallView,
    RecordingPage => RecordingView,
    AuditPage => AuditEntryView,
    WebhookPage => WebhookView,
    DeliveryPage => DeliveryView,
    EventPage => EventView,
    TrunkPage => super::trunks::TrunkInfo,
    CallbackPage => CallbackView,
}

/// Raw bytes (audio, zip).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(Vec<u8>);

/// Adds the bearer scheme and the shared error responses (401, 403 and any other error), gives
/// every error response the error body, and makes operation ids unique (`<tag>_<handler>`).
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let body = || {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build()
        };
        components.responses.insert(
            "Error".to_owned(),
            RefOr::T(
                ResponseBuilder::new()
                    .description(
                        "The error body: `{\"error\": {\"code\", \"message\", \"field\"}}`",
                    )
                    .content("application/json", body())
                    .build(),
            ),
        );
        let error = || RefOr::Ref(Ref::from_response_name("Error"));
        for item in doc.paths.paths.values_mut() {
            let ops: [&mut Option<Operation>; 5] = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                if let (Some(tag), Some(id)) = (
                    op.tags.as_ref().and_then(|t| t.first()),
                    op.operation_id.as_mut(),
                ) {
                    *id = format!("{tag}_{id}");
                }
                for (status, response) in op.responses.responses.iter_mut() {
                    if let RefOr::T(r) = response
                        && (status.starts_with('4') || status.starts_with('5'))
                        && r.content.is_empty()
                    {
                        r.content.insert("application/json".to_owned(), body());
                    }
                }
                for status in ["401", "403", "default"] {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(error);
                }
            }
        }
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "LeadsCaller API", description = "The control-plane REST API. Every route needs `Authorization: Bearer lc_...`; errors are `{\"error\": {\"code\", \"message\", \"field\"}}`."),
    security(("bearer" = [])),
    modifiers(&Common),
    components(schemas(ErrorBody)),
    paths(
        super::account::get_account, super::account::patch_account, super::account::close_account,
        super::account::audit_log,
        super::keys::list, super::keys::create, super::keys::get_one, super::keys::revoke,
        super::agents::list, super::agents::create, super::agents::get_one, super::agents::patch,
        super::agents::delete,
        super::trunks::list,
        super::campaigns::list, super::campaigns::create, super::campaigns::get_one,
        super::campaigns::patch,
        super::leads::list, super::leads::create, super::leads::import, super::leads::get_one,
        super::leads::patch, super::leads::delete, super::leads::consent,
        super::dnc::list, super::dnc::create, super::dnc::import, super::dnc::get_one,
        super::dnc::delete,
        super::calls::list, super::calls::get_one, super::calls::transcript,
        super::callbacks::list, super::callbacks::get_one,
        super::calls::list_recordings, super::calls::get_recording, super::calls::recording_audio,
        super::streams::get_twiml,
        super::webhooks::list, super::webhooks::create, super::webhooks::get_one,
        super::webhooks::patch, super::webhooks::delete, super::webhooks::deliveries,
        super::webhooks::test, super::webhooks::rotate_secret,
        super::events::list,
        super::privacy::export, super::privacy::erase,
    )
)]
pub struct ApiDoc;

/// The document as JSON (built once).
pub fn document() -> &'static Value {
    static DOC: std::sync::LazyLock<Value> =
        std::sync::LazyLock::new(|| serde_json::to_value(ApiDoc::openapi()).unwrap_or_default());
    &DOC
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document().clone())
}
