//! Reading rows of the call tables as JSON objects for exports, and `IN (...)` lists.

use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::store::StoreError;

/// How one column is read into JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Col {
    /// Nullable text.
    Text(&'static str),
    /// Nullable integer (any width).
    Int(&'static str),
    /// Text holding JSON, embedded as JSON (kept as a string if it does not parse).
    Json(&'static str),
}

impl Col {
    fn name(self) -> &'static str {
        match self {
            Col::Text(n) | Col::Int(n) | Col::Json(n) => n,
        }
    }
}

/// Comma-separated column names for a `SELECT`.
pub(crate) fn select_list(cols: &[Col]) -> String {
    cols.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
}

/// The row as a JSON object with one member per column.
pub(crate) fn to_json(row: &AnyRow, cols: &[Col]) -> Result<Value, StoreError> {
    let mut obj = Map::new();
    for &col in cols {
        let v = match col {
            Col::Text(n) => row
                .try_get::<Option<String>, _>(n)?
                .map_or(Value::Null, Value::String),
            Col::Int(n) => row
                .try_get::<Option<i64>, _>(n)?
                .map_or(Value::Null, Value::from),
            Col::Json(n) => row
                .try_get::<Option<String>, _>(n)?
                .map_or(Value::Null, |s| {
                    serde_json::from_str(&s).unwrap_or(Value::String(s))
                }),
        };
        obj.insert(col.name().to_owned(), v);
    }
    Ok(Value::Object(obj))
}

/// `$first, $first+1, ...` for `n` bound values.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Most ids bound in one `IN (...)` list (well under both engines' parameter limits).
pub(crate) const IN_CHUNK: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_lists() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
        assert_eq!(placeholders(1, 1), "$1");
        assert_eq!(placeholders(1, 0), "");
        assert_eq!(
            select_list(&[Col::Text("id"), Col::Int("seq"), Col::Json("payload")]),
            "id, seq, payload"
        );
    }
}
