//! The control plane's store: one repository API over two engines through sqlx's `Any` driver.
//!
//! SQLite (a file under the data dir, WAL mode) is the embedded default; PostgreSQL is used when
//! `database_url` says `postgres://`. Queries are written once in SQL both engines accept
//! (`$1` placeholders, integer-millisecond times, JSON as text) and run at runtime, so the crate
//! builds without a database. Every repository function takes the tenant's [`AccountId`] and
//! every query filters on it: a row of another account is indistinguishable from a missing row.

/// `format!` for SQL assembled only from constant column lists and placeholders (never from
/// input, which is always bound): marks it safe for sqlx's injection guard.
macro_rules! sql {
    ($($t:tt)*) => { sqlx::AssertSqlSafe(format!($($t)*)) };
}

pub mod accounts;
pub mod agents;
pub mod api_keys;
pub mod at_rest;
pub mod audit;
pub mod callbacks;
pub mod calls;
pub mod campaigns;
pub mod dnc;
pub mod events;
pub mod ids;
pub mod leads;
mod migrate;
pub mod page;
mod sqlite_bulk;
pub mod suppression;
pub mod webhooks;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};

pub use ids::AccountId;
pub use page::{Page, PageRequest};

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is not one we support.
    #[error("database url: {0}")]
    BadUrl(String),
    /// The row does not exist (or belongs to another account).
    #[error("not found")]
    NotFound,
    /// A unique constraint was hit (e.g. an account name or a lead's number already present).
    #[error("already exists: {0}")]
    Conflict(String),
    /// A stored value could not be decoded (corrupt JSON, unknown enum text).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A migration failed.
    #[error("migration {version} ({engine}): {source}")]
    Migration {
        /// The migration's version.
        version: u32,
        /// The engine.
        engine: Engine,
        /// The database's error.
        source: sqlx::Error,
    },
    /// Any other database error.
    #[error("database: {0}")]
    Db(#[source] sqlx::Error),
    /// An error of the SQLite bulk lead writer.
    #[error("database (bulk import): {0}")]
    Bulk(#[source] rusqlite::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                Self::Conflict(d.message().to_owned())
            }
            _ => Self::Db(e),
        }
    }
}

/// A handle on the database (cheap to clone: a connection pool).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    /// The SQLite file, for the bulk lead writer (`None`: PostgreSQL or an in-memory SQLite).
    sqlite_file: Option<std::sync::Arc<std::path::PathBuf>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine)
            .finish()
    }
}

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://...`) and runs pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens (creating it if needed) the embedded SQLite database `path` and migrates it.
    pub async fn open_sqlite_file(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::BadUrl(format!("{}: {e}", dir.display())))?;
        }
        Self::open(&format!("sqlite://{}", path.display())).await
    }

    /// Connects to `url` without migrating.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let mut sqlite_file = None;
        let (engine, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            sqlite_file = sqlite_bulk::sqlite_file(path).map(std::sync::Arc::new);
            let path = Path::new(path.split('?').next().unwrap_or_default());
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
                && path.as_os_str() != ":memory:"
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::BadUrl(format!("{}: {e}", dir.display())))?;
            }
            // WAL lets the API read while the call layer writes; create the file on first start.
            let mut u = format!("sqlite:{rest}");
            let sep = if u.contains('?') { '&' } else { '?' };
            if !u.contains("mode=") {
                u.push(sep);
                u.push_str("mode=rwc");
            }
            (Engine::Sqlite, u)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Engine::Postgres, url.to_owned())
        } else {
            return Err(StoreError::BadUrl(format!(
                "{:?} is neither sqlite:// nor postgres://",
                redact_url(url)
            )));
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| StoreError::BadUrl(format!("{}: {e}", redact_url(&url))))?
            .disable_statement_logging();
        let max = if engine == Engine::Sqlite { 4 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        use sqlx::Executor;
                        // synchronous = NORMAL is WAL's recommended setting: commits are
                        // durable at the next checkpoint, a power cut can lose only the last
                        // few, and the file is never corrupted.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(StoreError::Db)?;
        Ok(Self {
            pool,
            engine,
            sqlite_file,
        })
    }

    /// Runs the migrations not yet applied; returns how many ran.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        migrate::run(&self.pool, self.engine).await
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The connection pool, for repositories.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Runs SQL text with no parameters (administration: creating test databases).
    pub async fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes every connection (waits for checked-out ones).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `url` with any password replaced by `***`, for error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Formats epoch milliseconds as RFC 3339 UTC (`2026-11-28T02:17:40.123Z`).
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Parses RFC 3339 (or a plain `YYYY-MM-DD`, taken as UTC midnight) into epoch milliseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t.as_millisecond());
    }
    let d: jiff::civil::Date = s.parse().ok()?;
    jiff::tz::TimeZone::UTC
        .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
        .ok()
        .map(|t| t.as_millisecond())
}

/// Rows of `table` owned by `account`, newest first, one page (plus one row to detect more).
/// `status_column` enables the page's status filter; `extra` is one more `column = value` filter.
pub(crate) async fn list_page(
    store: &Store,
    table: &'static str,
    columns: &str,
    account: &AccountId,
    page: &PageRequest,
    status_column: Option<&'static str>,
    extra: Option<(&'static str, &str)>,
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let time = if table == "audit_log" {
        "at"
    } else {
        "created_at"
    };
    let mut sql = format!(
        "SELECT {columns} FROM {table} WHERE account_id = $1 AND id < $2 AND {time} >= $3 AND {time} < $4"
    );
    let mut n = 5;
    let status = page.status.as_deref().zip(status_column);
    if let Some((_, col)) = status {
        sql.push_str(&format!(" AND {col} = ${n}"));
        n += 1;
    }
    if let Some((col, _)) = extra {
        sql.push_str(&format!(" AND {col} = ${n}"));
        n += 1;
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${n}"));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account.as_str())
        .bind(page.before_id())
        .bind(page.since())
        .bind(page.until());
    if let Some((value, _)) = status {
        q = q.bind(value.to_owned());
    }
    if let Some((_, value)) = extra {
        q = q.bind(value.to_owned());
    }
    Ok(q.bind(i64::from(page.limit()) + 1)
        .fetch_all(store.pool())
        .await?)
}

fn corrupt(table: &'static str, reason: impl fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn times_round_trip() {
        let ms = 1_795_000_000_123;
        assert_eq!(parse_time(&rfc3339(ms)), Some(ms));
        assert_eq!(parse_time("2026-01-02"), Some(1_767_312_000_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
