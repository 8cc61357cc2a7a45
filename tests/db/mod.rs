//! Test databases: a fresh SQLite file or a fresh PostgreSQL database per test.
//!
//! PostgreSQL comes from `scripts/postgres.sh` (run by `scripts/test.sh`); the admin URL is
//! `LEADSCALLER_TEST_PG_URL`, default `postgres://leadscaller:leadscaller@127.0.0.1:5432/postgres`.
//! A PostgreSQL test fails (it does not skip) when the server is not there.

#![allow(dead_code)]

use leadscaller::store::{Engine, Store};
use rand::RngCore;

/// A migrated store on a database that only this test uses.
pub struct TestDb {
    /// The store.
    pub store: Store,
    /// Its URL (to start a server on it).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

fn admin_url() -> String {
    std::env::var("LEADSCALLER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://leadscaller:leadscaller@127.0.0.1:5432/postgres".to_owned())
}

impl TestDb {
    /// A new database on `engine`.
    pub async fn new(engine: Engine) -> Self {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("leadscaller.db").display());
                let store = Store::open(&url).await.unwrap();
                Self {
                    store,
                    url,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            _ => {
                let mut r = [0u8; 6];
                rand::rng().fill_bytes(&mut r);
                let name = format!(
                    "lc_test_{}",
                    r.iter().map(|b| format!("{b:02x}")).collect::<String>()
                );
                let admin = Store::connect(&admin_url()).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL test server unreachable ({e}); run scripts/postgres.sh")
                });
                admin
                    .execute_raw(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                admin.close().await;
                let base = admin_url();
                let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
                let store = Store::open(&url).await.unwrap();
                Self {
                    store,
                    url,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Best effort: drop the database from a throwaway runtime on another thread (the
            // test's runtime is blocked in this drop; FORCE ends the pool's connections).
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Ok(admin) = Store::connect(&admin_url()).await {
                        let _ = admin
                            .execute_raw(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                        admin.close().await;
                    }
                });
            })
            .join()
            .ok();
        }
    }
}

/// Runs `body` once per engine, each on its own fresh database.
#[macro_export]
macro_rules! both_engines {
    ($name:ident, |$db:ident| $body:block) => {
        mod $name {
            use super::*;
            async fn run($db: db::TestDb) $body
            #[tokio::test]
            async fn sqlite() {
                run(db::TestDb::new(leadscaller::store::Engine::Sqlite).await).await
            }
            #[tokio::test]
            async fn postgres() {
                run(db::TestDb::new(leadscaller::store::Engine::Postgres).await).await
            }
        }
    };
}
