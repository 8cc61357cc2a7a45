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
    Migration {
        version: 5,
        sqlite: include_str!("../../migrations/sqlite/0005_lead_tables_by_account.sql"),
        postgres: include_str!("../../migrations/postgres/0005_lead_tables_by_account.sql"),
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
    let result = apply(&mut conn, engine, u32::MAX).await;
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PG_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
    }
    result
}

/// Applies the pending migrations up to version `last`.
async fn apply(
    conn: &mut sqlx::AnyConnection,
    engine: Engine,
    last: u32,
) -> Result<usize, StoreError> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let done: Vec<i64> =
        sqlx::query_scalar("SELECT CAST(version AS BIGINT) FROM schema_migrations")
            .fetch_all(&mut *conn)
            .await?;
    let mut ran = 0;
    for m in MIGRATIONS.iter().filter(|m| m.version <= last) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// Version 5 rebuilds `leads` and `consent_events` on SQLite: rows written under version
    /// 4 come through whole, and the new unique index still refuses a repeated number.
    #[tokio::test]
    async fn leads_and_consent_events_survive_the_rebuild_of_version_5() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("lc.db").display()))
            .await
            .unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        assert_eq!(apply(&mut conn, Engine::Sqlite, 4).await.unwrap(), 4);
        sqlx::raw_sql(
            "INSERT INTO accounts (id, name, status, settings, created_at) \
                 VALUES ('acc_1', 'one', 'active', '{}', 1); \
             INSERT INTO leads (id, account_id, campaign_id, phone, first_name, timezone_source, \
                 consent_status, consent_text, custom, status, created_at, updated_at) VALUES \
                 ('lead_a', 'acc_1', 'cmp_1', '+14155552671', 'Ann', 'explicit', 'verbal', \
                  'yes', '{\"k\":1}', 'new', 10, 11), \
                 ('lead_b', 'acc_1', 'cmp_2', '+14155552671', NULL, 'inferred', 'none', \
                  NULL, '{}', 'dnc', 12, 13); \
             INSERT INTO consent_events (id, account_id, lead_id, status, source, text, call_id, at) \
                 VALUES ('cns_a', 'acc_1', 'lead_a', 'verbal', 'call', 'yes', 'call_1', 20);",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        assert_eq!(apply(&mut conn, Engine::Sqlite, u32::MAX).await.unwrap(), 1);

        type LeadRow = (String, String, String, Option<String>, String, String, i64);
        let leads: Vec<LeadRow> = sqlx::query_as(
            "SELECT id, campaign_id, phone, first_name, custom, status, updated_at \
                 FROM leads WHERE account_id = 'acc_1' ORDER BY id",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        assert_eq!(
            leads,
            vec![
                (
                    "lead_a".into(),
                    "cmp_1".into(),
                    "+14155552671".into(),
                    Some("Ann".into()),
                    r#"{"k":1}"#.into(),
                    "new".into(),
                    11
                ),
                (
                    "lead_b".into(),
                    "cmp_2".into(),
                    "+14155552671".into(),
                    None,
                    "{}".into(),
                    "dnc".into(),
                    13
                ),
            ]
        );
        let events: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, lead_id, call_id, at FROM consent_events WHERE account_id = 'acc_1'",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        assert_eq!(
            events,
            vec![("cns_a".into(), "lead_a".into(), Some("call_1".into()), 20)]
        );
        let again = sqlx::query(
            "INSERT INTO leads (id, account_id, campaign_id, phone, timezone_source, \
                 consent_status, custom, status, created_at, updated_at) VALUES \
                 ('lead_c', 'acc_1', 'cmp_1', '+14155552671', 'explicit', 'none', '{}', 'new', 1, 1)",
        )
        .execute(&mut *conn)
        .await;
        assert!(
            matches!(&again, Err(sqlx::Error::Database(d)) if d.is_unique_violation()),
            "{again:?}"
        );
    }
}
