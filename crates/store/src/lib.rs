//! Persistent storage for the PBX: extensions and their credentials,
//! registrar bindings, registration history, the security audit log, call
//! detail records and the dialplan rules managed at run time.
//!
//! One [`Store`] is opened from a URL and serves every repository:
//!
//! * `sqlite://path/to/pbx.db`: the embedded default. The file is created if
//!   missing and opened in WAL mode with foreign keys on and a busy timeout.
//! * `sqlite::memory:`: a private in-memory database (tests).
//! * `postgres://user@host/db` (or `postgresql://`).
//!
//! Migrations for each backend live in `migrations/sqlite` and
//! `migrations/postgres`, are embedded in the binary and run on open.
//!
//! Time stamps are unix milliseconds (`i64`). Where time drives a decision
//! (binding expiry) the caller passes `now`, so the registrar's clock stays
//! the only clock. Secrets (HA1 values) are sealed with the [`MasterKey`]
//! given at open; see [`secret`].

#![warn(missing_docs)]

mod audit;
mod cdr;
mod db;
mod dialplan;
mod error;
mod extensions;
mod registrations;
pub mod secret;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use audit::{AuditEntry, AuditEvent, AuditOutcome, AuditQuery, NewAuditEntry, SecurityAudit};
pub use cdr::{CallRecord, CallRecords, Disposition, HangupCause, NewCallRecord, RtcpQuality};
pub use dialplan::{
    DialplanRule, DialplanRuleUpdate, DialplanRules, NewDialplanRule, RuleAction, RuleSpec,
};
pub use error::{Result, StoreError};
pub use extensions::{CallPermission, Extension, ExtensionUpdate, Extensions, NewExtension};
pub use registrations::{
    Binding, BindingKey, Bindings, NewBinding, NewRegistrationEvent, RegistrationEvent,
    RegistrationEventKind, RegistrationHistory,
};
pub use secret::{DigestAlgorithm, Ha1, MasterKey};

use db::Pool;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long SQLite waits on a locked database before failing a write.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, file or in-memory.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// An open database with migrations applied. Cheap to clone (shares the
/// connection pool).
///
/// ```no_run
/// # async fn wire() -> Result<(), Box<dyn std::error::Error>> {
/// use store::{DigestAlgorithm, MasterKey, NewExtension, Store};
///
/// // The key comes from configuration (64 hex chars or base64 of 32 bytes).
/// let key: MasterKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".parse()?;
/// let store = Store::open("sqlite://var/pbx.db", key).await?;
/// store.extensions().create(&NewExtension::new("1001", "Alice")).await?;
/// store.extensions().set_password("1001", "pbx.example", "correct horse").await?;
/// let ha1 = store.extensions().get_ha1("1001", DigestAlgorithm::Sha256).await?;
/// assert!(ha1.is_some());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    key: Arc<MasterKey>,
}

impl Store {
    /// Opens (creating an SQLite file if needed) the database at `url`,
    /// applies pending migrations and returns the store. `key` seals and
    /// opens stored credentials; it must stay the same across restarts.
    pub async fn open(url: &str, key: MasterKey) -> Result<Store> {
        let pool = if url.starts_with("sqlite:") {
            Pool::Sqlite(open_sqlite(url).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(PgPoolOptions::new().max_connections(8).connect(url).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        match &pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(Store {
            pool,
            key: Arc::new(key),
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every connection, waiting for in-flight queries. For SQLite
    /// this also checkpoints the WAL into the main file.
    pub async fn close(&self) {
        db::on_pool!(&self.pool, p => p.close().await)
    }

    /// Checks that the database answers (for health endpoints).
    pub async fn ping(&self) -> Result<()> {
        db::on_pool!(&self.pool, p => {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// Extensions (users) and their credentials.
    pub fn extensions(&self) -> Extensions<'_> {
        Extensions::new(&self.pool, &self.key)
    }

    /// Current registrar bindings.
    pub fn bindings(&self) -> Bindings<'_> {
        Bindings::new(&self.pool)
    }

    /// Append-only log of registration events.
    pub fn registration_history(&self) -> RegistrationHistory<'_> {
        RegistrationHistory::new(&self.pool)
    }

    /// Append-only security audit log.
    pub fn audit(&self) -> SecurityAudit<'_> {
        SecurityAudit::new(&self.pool)
    }

    /// Call detail records.
    pub fn call_records(&self) -> CallRecords<'_> {
        CallRecords::new(&self.pool)
    }

    /// Dialplan rules managed at run time (after the configuration's).
    pub fn dialplan_rules(&self) -> DialplanRules<'_> {
        DialplanRules::new(&self.pool)
    }
}

impl std::fmt::Debug for Store {
    /// Shows only the backend: connection options may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

async fn open_sqlite(url: &str) -> Result<sqlx::SqlitePool> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let mut options = SqliteConnectOptions::from_str(url)?
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let mut pool = SqlitePoolOptions::new();
    if in_memory {
        // Each connection to `:memory:` is its own database: keep exactly one
        // connection alive for the life of the pool.
        pool = pool
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    } else {
        let file = options.get_filename();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(e.into()))?;
        }
        // WAL lets readers (CDR queries, the admin API) run beside the
        // registrar's writes; NORMAL sync under WAL cannot corrupt the file,
        // at worst losing the last commits on power loss.
        options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        pool = pool.max_connections(4);
    }
    Ok(pool.connect_with(options).await?)
}

/// Drops any password from a URL before it goes into an error message.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://<redacted>@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
