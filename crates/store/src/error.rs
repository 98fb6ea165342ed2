//! The error type of every repository call.

use crate::secret::SecretError;

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What can go wrong when talking to the store.
///
/// Database constraint failures are classified so callers can answer
/// precisely (a duplicate extension number is a 409, not a 500).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique constraint rejected the write; `what` names the table and
    /// column(s), e.g. `extensions.number`.
    #[error("already exists: {what}")]
    Conflict {
        /// Table and column(s) of the violated constraint.
        what: String,
    },
    /// A foreign key pointed at a row that does not exist (e.g. a binding
    /// for an AOR that is not an extension's SIP username).
    #[error("refers to a missing row: {what}")]
    MissingReference {
        /// The violated constraint, as the database names it.
        what: String,
    },
    /// The row to update or delete does not exist.
    #[error("{what} not found: {key}")]
    NotFound {
        /// Kind of row, e.g. `extension`.
        what: &'static str,
        /// The key that was looked up.
        key: String,
    },
    /// A value was rejected before reaching the database, or by a CHECK
    /// constraint.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Field name, e.g. `number`.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A stored value could not be read back into its Rust type.
    #[error("corrupt value in {column}: {value:?}")]
    Corrupt {
        /// Column that held the value.
        column: &'static str,
        /// The offending value.
        value: String,
    },
    /// The database URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL (expected sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    /// Applying the embedded migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Encryption, decryption or password hashing failed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Any other database error (connection, I/O, protocol).
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        let sqlx::Error::Database(db) = &err else {
            return StoreError::Database(err);
        };
        match db.kind() {
            ErrorKind::UniqueViolation => StoreError::Conflict {
                what: constraint_name(db.as_ref()),
            },
            ErrorKind::ForeignKeyViolation => StoreError::MissingReference {
                what: constraint_name(db.as_ref()),
            },
            ErrorKind::CheckViolation => StoreError::Invalid {
                field: "row",
                reason: format!("check constraint failed: {}", constraint_name(db.as_ref())),
            },
            _ => StoreError::Database(err),
        }
    }
}

/// Names a violated constraint the same way on both backends where possible:
/// SQLite reports `UNIQUE constraint failed: extensions.number`; PostgreSQL
/// reports the constraint name, which our migrations spell
/// `extensions_number_key` and we turn into `extensions.number`.
fn constraint_name(db: &dyn sqlx::error::DatabaseError) -> String {
    if let Some(name) = db.constraint() {
        if let Some(table) = db.table() {
            if let Some(cols) = name
                .strip_prefix(table)
                .and_then(|rest| rest.strip_prefix('_'))
                .and_then(|rest| rest.strip_suffix("_key"))
            {
                return format!("{table}.{cols}");
            }
            return format!("{table}.{name}");
        }
        return name.to_owned();
    }
    let msg = db.message();
    match msg.split_once(": ") {
        Some((_, detail)) => detail.to_owned(),
        None => msg.to_owned(),
    }
}
