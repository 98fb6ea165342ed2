//! Test harness: runs one async suite against each backend.
//!
//! PostgreSQL tests need a server on 127.0.0.1:5432 with trust auth for
//! `postgres`. Each test creates its own `pbx_test_<random>` database and
//! drops it afterwards, pass or fail. If the server is unreachable they fail,
//! unless `PBX_TEST_NO_POSTGRES=1` is set, in which case they are skipped.
//! `PBX_TEST_PG_ADMIN_URL` overrides the maintenance database URL; test
//! databases are created on the same server.

#![allow(dead_code)]

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection as _;
use store::{MasterKey, Store};

/// Default maintenance database used to create and drop test databases.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn admin_url() -> String {
    std::env::var("PBX_TEST_PG_ADMIN_URL").unwrap_or_else(|_| PG_ADMIN_URL.to_owned())
}

/// The key every test store is opened with.
pub fn key() -> MasterKey {
    MasterKey::from_bytes([42u8; 32])
}

/// A random lowercase-hex token for unique names.
pub fn token() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = RandomState::new().hash_one((std::process::id(), n));
    format!("{random:016x}")
}

/// An SQLite file path under the temp dir, removed (with its WAL and SHM
/// files) on drop.
pub struct TempSqlite {
    pub path: PathBuf,
}

impl TempSqlite {
    pub fn new() -> Self {
        let path = std::env::temp_dir()
            .join(format!("pbx_store_test_{}", token()))
            .join("nested")
            .join("pbx.db");
        TempSqlite { path }
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    pub fn wal_path(&self) -> PathBuf {
        sibling(&self.path, "-wal")
    }
}

impl Drop for TempSqlite {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent().and_then(Path::parent) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A fresh PostgreSQL database, dropped by [`PgTestDb::drop_db`].
pub struct PgTestDb {
    pub name: String,
    pub url: String,
}

impl PgTestDb {
    /// `None` when PostgreSQL tests are switched off by `PBX_TEST_NO_POSTGRES=1`.
    pub async fn create() -> Option<PgTestDb> {
        if std::env::var("PBX_TEST_NO_POSTGRES").as_deref() == Ok("1") {
            eprintln!("PBX_TEST_NO_POSTGRES=1: skipping PostgreSQL test");
            return None;
        }
        let name = format!("pbx_test_{}", token());
        let admin_url = admin_url();
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL unreachable at {admin_url} ({e}); start it or set \
                     PBX_TEST_NO_POSTGRES=1 to skip the PostgreSQL tests"
                )
            });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("PBX_TEST_PG_ADMIN_URL must end in /<database>"),
        };
        Some(PgTestDb { name, url })
    }

    /// Drops the database, tolerating that it is already gone.
    pub async fn drop_db(&self) {
        let mut admin = sqlx::PgConnection::connect(&admin_url())
            .await
            .expect("connect to drop test database");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .expect("DROP DATABASE");
        let _ = admin.close().await;
    }
}

/// Runs `suite` on a task, closes the store, then re-raises a panic.
async fn run_on<F, Fut>(store: Store, suite: F) -> Result<(), tokio::task::JoinError>
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(suite(store.clone())).await;
    store.close().await;
    outcome
}

fn rethrow(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(err) = outcome {
        match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(err) => panic!("suite task failed: {err}"),
        }
    }
}

pub async fn run_sqlite_memory<F, Fut>(suite: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = Store::open("sqlite::memory:", key()).await.expect("open");
    rethrow(run_on(store, suite).await);
}

pub async fn run_sqlite_file<F, Fut>(suite: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let file = TempSqlite::new();
    let store = Store::open(&file.url(), key()).await.expect("open");
    rethrow(run_on(store, suite).await);
}

pub async fn run_postgres<F, Fut>(suite: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = PgTestDb::create().await else {
        return;
    };
    let outcome = match Store::open(&db.url, key()).await {
        Ok(store) => run_on(store, suite).await,
        Err(e) => {
            db.drop_db().await;
            panic!("open PostgreSQL store: {e}");
        }
    };
    db.drop_db().await;
    rethrow(outcome);
}

/// Declares one `#[tokio::test]` per suite function and backend, in modules
/// `sqlite_memory`, `sqlite_file` and `postgres`.
#[macro_export]
macro_rules! on_all_backends {
    ($($suite:ident),* $(,)?) => {
        mod sqlite_memory {
            $(#[tokio::test]
            async fn $suite() {
                $crate::common::run_sqlite_memory(super::$suite).await
            })*
        }
        mod sqlite_file {
            $(#[tokio::test]
            async fn $suite() {
                $crate::common::run_sqlite_file(super::$suite).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $suite() {
                $crate::common::run_postgres(super::$suite).await
            })*
        }
    };
}
