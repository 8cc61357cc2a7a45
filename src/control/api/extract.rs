//! Extractors whose rejections use the API's error body, and shared list-query parameters.

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::store::{PageRequest, parse_time};

/// `Json<T>` with our error body on malformed input.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// The query string of a list route.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Rows per page.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// RFC 3339 lower bound on creation time.
    pub since: Option<String>,
    /// RFC 3339 upper bound (exclusive).
    pub until: Option<String>,
    /// Status filter.
    pub status: Option<String>,
    /// Campaign filter (leads).
    pub campaign_id: Option<String>,
}

impl ListQuery {
    /// The store's page request.
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let time = |field: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
            v.as_deref()
                .map(|s| {
                    parse_time(s)
                        .ok_or_else(|| ApiError::invalid(field, format!("{s:?} is not RFC 3339")))
                })
                .transpose()
        };
        if let Some(l) = self.limit
            && !(1..=crate::store::page::MAX_LIMIT).contains(&l)
        {
            return Err(ApiError::invalid("limit", "must be 1 to 500"));
        }
        Ok(PageRequest {
            limit: self.limit,
            cursor: self.cursor.clone(),
            since_ms: time("since", &self.since)?,
            until_ms: time("until", &self.until)?,
            status: self.status.clone(),
        })
    }
}

/// `Query<T>` with our error body.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(Self(q)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// `Query<ListQuery>` with our error body.
pub struct List(pub ListQuery);

impl<S: Send + Sync> FromRequestParts<S> for List {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<ListQuery>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(Self(q)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}
