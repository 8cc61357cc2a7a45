//! Extractors whose rejections use the API's error body, and shared list-query parameters.

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;
use crate::store::{PageRequest, parse_time};

/// `Json<T>` with our error body on malformed input; a string holding a NUL character is
/// refused (422 naming the field) because PostgreSQL cannot store one in a text column.
pub struct Body<T>(pub T);

/// Largest JSON body, as axum's `Json` allows by default.
const JSON_LIMIT: usize = 2 * 1024 * 1024;

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, JSON_LIMIT).await.map_err(|e| {
            let e = e.into_inner();
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::too_large(JSON_LIMIT)
            } else {
                ApiError::bad_request(format!("reading the body: {e}"))
            }
        })?;
        let req = Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
        let value = match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(e) => return Err(ApiError::bad_request(e.body_text())),
        };
        if let Ok(tree) = serde_json::from_slice::<Value>(&bytes)
            && let Some(field) = nul_field(&tree, String::new())
        {
            return Err(ApiError::invalid(field, "must not contain a NUL character"));
        }
        Ok(Self(value))
    }
}

/// The path (`a.b[2]`) of the first string or key in `v` that holds a NUL character.
fn nul_field(v: &Value, path: String) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_field(item, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_field(item, here)
            }
        }),
        _ => None,
    }
}

/// True when the request's path or query string carries an encoded NUL (`%00`), which no
/// identifier, cursor or filter may hold (PostgreSQL cannot compare text with one).
pub fn url_has_nul(uri: &axum::http::Uri) -> bool {
    let has = |s: &str| s.as_bytes().windows(3).any(|w| w == b"%00");
    has(uri.path()) || uri.query().is_some_and(has)
}

/// The query string of a list route.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Rows per page (default 50).
    #[param(minimum = 1, maximum = 500)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_in_strings_keys_and_arrays_with_its_path() {
        let v = serde_json::json!({"a": {"b": ["ok", "x\u{0}y"]}, "c": "fine"});
        assert_eq!(nul_field(&v, String::new()).as_deref(), Some("a.b[1]"));
        let v = serde_json::json!({"config": {"k\u{0}": 1}});
        assert_eq!(
            nul_field(&v, String::new()).as_deref(),
            Some("config.k\u{0}")
        );
        assert_eq!(
            nul_field(&serde_json::json!({"a": "b"}), String::new()),
            None
        );
    }

    #[test]
    fn encoded_nul_in_path_or_query_is_seen() {
        let uri = |s: &str| s.parse::<axum::http::Uri>().unwrap();
        assert!(url_has_nul(&uri("/v1/leads/a%00b")));
        assert!(url_has_nul(&uri("/v1/leads?cursor=x%00")));
        assert!(!url_has_nul(&uri("/v1/leads?cursor=x%2500")));
        assert!(!url_has_nul(&uri("/v1/leads/lead_01")));
    }
}
