//! Cursor pagination shared by every list query: newest first, `limit` rows after a cursor.

use serde::{Deserialize, Serialize};

/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 500;
/// Page size when the client does not say.
pub const DEFAULT_LIMIT: u32 = 50;

/// Which page of a list, and optional filters common to every resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PageRequest {
    /// Rows per page (1..=500; default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only rows created at or after this time (epoch ms).
    #[serde(skip)]
    pub since_ms: Option<i64>,
    /// Only rows created before this time (epoch ms).
    #[serde(skip)]
    pub until_ms: Option<i64>,
    /// Only rows with this status (for resources that have one).
    pub status: Option<String>,
}

impl PageRequest {
    /// The effective page size.
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }

    /// The id bound for `id < $n` (a cursor past every id when absent).
    pub fn before_id(&self) -> String {
        self.cursor
            .clone()
            .unwrap_or_else(|| "\u{10ffff}".to_owned())
    }

    /// Lower bound on created_at.
    pub fn since(&self) -> i64 {
        self.since_ms.unwrap_or(i64::MIN)
    }

    /// Upper bound (exclusive) on created_at.
    pub fn until(&self) -> i64 {
        self.until_ms.unwrap_or(i64::MAX)
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The rows, newest first.
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only says there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, id: impl Fn(&T) -> &str) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| id(r).to_owned())
        } else {
            None
        };
        Self {
            data: rows,
            next_cursor,
        }
    }

    /// Maps the rows.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}
