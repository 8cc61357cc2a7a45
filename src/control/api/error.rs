//! The one error body every API route returns: `{"error": {"code", "message", "field"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// An API error: status, stable machine code, human message and the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code clients can branch on (`not_found`, `invalid_field`...).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

impl ApiError {
    /// A 400/422-style error about `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A malformed request body.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            field: None,
        }
    }

    /// 413: the body is larger than the route takes.
    pub fn too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!("the body is larger than {limit} bytes"),
            field: None,
        }
    }

    /// 404 for a resource that does not exist in the caller's account.
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: "no such resource in this account".to_owned(),
            field: None,
        }
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "a valid API key is required (Authorization: Bearer lc_...)".to_owned(),
            field: None,
        }
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
            field: None,
        }
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
            field: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(),
            StoreError::Conflict(m) => Self::conflict(m),
            other => {
                tracing::error!(error = %other, "api: store failure");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    message: "internal error".to_owned(),
                    field: None,
                }
            }
        }
    }
}

/// The error body as sent (and as the OpenAPI document describes it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine code: `not_found`, `invalid_field`, `bad_request`, `unauthorized`,
    /// `forbidden`, `conflict`, `unavailable`, `internal`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
