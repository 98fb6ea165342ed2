//! The two backends behind one interface.
//!
//! Why an enum over `SqlitePool`/`PgPool` rather than `sqlx::Any`: `Any`
//! decodes through a reduced type set (booleans arrive as integers on SQLite
//! and as booleans on PostgreSQL), embeds one migration directory for all
//! backends, and hides which database answered. With the enum, each query is
//! written once as a `&'static str` in the common dialect (`$n` placeholders,
//! which SQLite also accepts; `RETURNING`; `ON CONFLICT … DO UPDATE`) and the
//! [`on_pool!`] macro expands the call for both concrete pools, so each is
//! fully typed by its own driver.

use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};

use crate::error::{Result, StoreError};

/// A connection pool of one backend.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the concrete pool of either backend. The
/// body is compiled twice, once per driver.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite($p) => $body,
            $crate::db::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Column access that reads the same on both drivers' rows. Integers are
/// `INTEGER` on SQLite and `BIGINT` on PostgreSQL, so all read as `i64`.
pub(crate) trait Get {
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn flag(&self, col: &str) -> Result<bool>;
    fn opt_real(&self, col: &str) -> Result<Option<f64>>;
}

macro_rules! impl_get {
    ($row:ty) => {
        impl Get for $row {
            fn int(&self, col: &str) -> Result<i64> {
                Ok(self.try_get(col)?)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>> {
                Ok(self.try_get(col)?)
            }
            fn text(&self, col: &str) -> Result<String> {
                Ok(self.try_get(col)?)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>> {
                Ok(self.try_get(col)?)
            }
            fn flag(&self, col: &str) -> Result<bool> {
                Ok(self.try_get(col)?)
            }
            fn opt_real(&self, col: &str) -> Result<Option<f64>> {
                Ok(self.try_get(col)?)
            }
        }
    };
}
impl_get!(SqliteRow);
impl_get!(PgRow);

/// Converts a stored integer to a narrower Rust type, reporting the column
/// if it does not fit.
pub(crate) fn narrow<T: TryFrom<i64>>(column: &'static str, value: i64) -> Result<T> {
    T::try_from(value).map_err(|_| StoreError::Corrupt {
        column,
        value: value.to_string(),
    })
}

/// Wall-clock time in unix milliseconds, for `created_at`/`updated_at`.
pub(crate) fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Clamps a caller's row limit to what both databases accept.
pub(crate) fn limit(n: u32) -> i64 {
    i64::from(n)
}
