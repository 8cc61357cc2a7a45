//! `/v1/privacy`: data-subject requests — export everything about a person as a zip, or erase it.

use axum::body::Body as RawBody;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::auth::Caller;
use super::extract::Body;
use super::{ApiError, ApiState};
use crate::privacy::{PrivacyError, Subject};
use crate::store::now_ms;

/// Bytes sent per body chunk of an export download.
const CHUNK: usize = 64 * 1024;

/// The subject of a request: exactly one of `lead_id` and `phone`.
#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectBody {
    lead_id: Option<String>,
    phone: Option<String>,
}

impl SubjectBody {
    fn subject(self) -> Result<Subject, ApiError> {
        match (self.lead_id, self.phone) {
            (Some(id), None) => Ok(Subject::LeadId(id)),
            (None, Some(phone)) => Ok(Subject::Phone(phone)),
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "phone",
                "give either lead_id or phone, not both",
            )),
            (None, None) => Err(ApiError::invalid("lead_id", "lead_id or phone is required")),
        }
    }
}

impl From<PrivacyError> for ApiError {
    fn from(e: PrivacyError) -> Self {
        match e {
            PrivacyError::NotFound => ApiError::not_found(),
            PrivacyError::Phone(e) => ApiError::invalid("phone", e.to_string()),
            PrivacyError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "api: privacy request failed");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    message: "internal error".to_owned(),
                    field: None,
                }
            }
        }
    }
}

/// `POST /v1/privacy/export`: the subject's data as an `application/zip` download.
#[utoipa::path(post, path = "/v1/privacy/export", tag = "privacy", request_body = SubjectBody, responses((status = 200, description = "The zip", body = super::openapi::Binary, content_type = "application/zip"), (status = 404, description = "Not in this account"), (status = 422, description = "Invalid field")))]
pub async fn export(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Body(b): Body<SubjectBody>,
) -> Result<Response, ApiError> {
    let subject = b.subject()?;
    let export =
        crate::privacy::export(&s.store, s.storage.as_ref(), &c.account, &subject, now_ms())
            .await?;
    let file = tokio::fs::File::from_std(export.file);
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"privacy-export.zip\"".to_owned(),
            ),
            (header::CONTENT_LENGTH, export.bytes.to_string()),
        ],
        RawBody::from_stream(stream),
    )
        .into_response())
}

/// `POST /v1/privacy/erase`: erases the subject and answers what was removed.
#[utoipa::path(post, path = "/v1/privacy/erase", tag = "privacy", request_body = SubjectBody, responses((status = 200, body = super::openapi::EraseView), (status = 404, description = "Not in this account"), (status = 422, description = "Invalid field"), (status = 503, description = "No suppression salt configured")))]
pub async fn erase(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Body(b): Body<SubjectBody>,
) -> Result<Json<Value>, ApiError> {
    let subject = b.subject()?;
    let Some(salt) = s.suppression_salt.as_deref() else {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: "erasure needs the server's suppression salt, which is not configured"
                .to_owned(),
            field: None,
        });
    };
    let report = crate::privacy::erase(
        &s.store,
        s.storage.as_ref(),
        salt,
        &c.account,
        &subject,
        now_ms(),
    )
    .await?;
    Ok(Json(json!({"erased": report})))
}
