//! Embedded schema migrations, one SQL file per version and engine (`migrations/<engine>/`).
//!
//! Applied versions are recorded in `schema_migrations`; each migration runs in a transaction, and
//! on PostgreSQL an advisory lock keeps two nodes starting together from migrating twice.

use sqlx::{AnyPool, Executor};

use super::{Engine, StoreError, now_ms};

/// One migration: its version and its SQL for each engine.
struct Migration {
    version: u32,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../../migrations/sqlite/0001_control_plane.sql"),
        postgres: include_str!("../../migrations/postgres/0001_control_plane.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../../migrations/sqlite/0002_calls.sql"),
        postgres: include_str!("../../migrations/postgres/0002_calls.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("../../migrations/sqlite/0003_webhook_secret_rotation.sql"),
        postgres: include_str!("../../migrations/postgres/0003_webhook_secret_rotation.sql"),
    },
    Migration {
        version: 4,
        sqlite: include_str!("../../migrations/sqlite/0004_callbacks.sql"),
        postgres: include_str!("../../migrations/postgres/0004_callbacks.sql"),
    },
];

/// Arbitrary constant identifying our migration lock among PostgreSQL advisory locks.
const PG_LOCK_KEY: i64 = 0x1ead_5ca1_1e40;

/// Applies the migrations not yet recorded; returns how many ran.
pub(super) async fn run(pool: &AnyPool, engine: Engine) -> Result<usize, StoreError> {
    let mut conn = pool.acquire().await?;
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(PG_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
    }
    let result = apply(&mut conn, engine).await;
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PG_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply(conn: &mut sqlx::AnyConnection, engine: Engine) -> Result<usize, StoreError> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let done: Vec<i64> =
        sqlx::query_scalar("SELECT CAST(version AS BIGINT) FROM schema_migrations")
            .fetch_all(&mut *conn)
            .await?;
    let mut ran = 0;
    for m in MIGRATIONS {
        if done.contains(&i64::from(m.version)) {
            continue;
        }
        let sql = match engine {
            Engine::Sqlite => m.sqlite,
            Engine::Postgres => m.postgres,
        };
        let fail = |source| StoreError::Migration {
            version: m.version,
            engine,
            source,
        };
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(fail)?;
        // Take the write lock before looking: on SQLite a no-op write does it, so a second
        // process starting on the same file waits here and then sees the version applied.
        // (PostgreSQL is already serialised by the advisory lock.)
        sqlx::query("DELETE FROM schema_migrations WHERE version < 0")
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations WHERE version = $1")
                .bind(i64::from(m.version))
                .fetch_one(&mut *tx)
                .await
                .map_err(fail)?;
        if applied > 0 {
            tx.commit().await.map_err(fail)?;
            continue;
        }
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(fail)?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(i64::from(m.version))
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        tracing::info!(version = m.version, %engine, "store: migration applied");
        ran += 1;
    }
    Ok(ran)
}
