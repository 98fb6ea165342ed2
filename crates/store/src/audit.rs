//! Append-only security audit log: authentication failures, lockouts,
//! unlocks and administrative actions, with who, from where and the outcome.
//! Rows are never updated; how long they are kept is the deployment's
//! decision, applied with [`SecurityAudit::prune_before`].

use std::net::IpAddr;

use crate::db::{Get, Pool, limit, on_pool};
use crate::error::{Result, StoreError};

/// Kind of audited event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuditEvent {
    /// A digest or API authentication failed.
    AuthFailure,
    /// An authentication succeeded (logged where policy wants it).
    AuthSuccess,
    /// A user or source was locked out after repeated failures.
    Lockout,
    /// A lockout was lifted (timer or administrator).
    Unlock,
    /// An administrator changed configuration or data.
    AdminAction,
    /// Any other event name (snake_case by convention).
    Other(String),
}

impl AuditEvent {
    /// The stored form, e.g. `auth_failure`.
    pub fn as_str(&self) -> &str {
        match self {
            AuditEvent::AuthFailure => "auth_failure",
            AuditEvent::AuthSuccess => "auth_success",
            AuditEvent::Lockout => "lockout",
            AuditEvent::Unlock => "unlock",
            AuditEvent::AdminAction => "admin_action",
            AuditEvent::Other(name) => name,
        }
    }

    /// Reads the stored form; unknown names become [`AuditEvent::Other`].
    pub fn parse(s: &str) -> AuditEvent {
        match s {
            "auth_failure" => AuditEvent::AuthFailure,
            "auth_success" => AuditEvent::AuthSuccess,
            "lockout" => AuditEvent::Lockout,
            "unlock" => AuditEvent::Unlock,
            "admin_action" => AuditEvent::AdminAction,
            other => AuditEvent::Other(other.to_owned()),
        }
    }
}

/// How the audited attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// It was allowed and done.
    Success,
    /// It failed (e.g. wrong credentials).
    Failure,
    /// Policy refused it (e.g. locked out, not permitted).
    Denied,
}

impl AuditOutcome {
    /// The stored form, lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
            AuditOutcome::Denied => "denied",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "success" => AuditOutcome::Success,
            "failure" => AuditOutcome::Failure,
            "denied" => AuditOutcome::Denied,
            other => {
                return Err(StoreError::Corrupt {
                    column: "security_audit.outcome",
                    value: other.to_owned(),
                });
            }
        })
    }
}

/// An entry to append with [`SecurityAudit::append`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// When it happened, unix ms.
    pub at: i64,
    /// What happened.
    pub event: AuditEvent,
    /// User concerned, if known.
    pub username: Option<String>,
    /// Source address, if any.
    pub source_ip: Option<IpAddr>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Free-form context (never secrets); stored as JSON text.
    pub details: serde_json::Value,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Surrogate key, increasing with insertion order.
    pub id: i64,
    /// When it happened, unix ms.
    pub at: i64,
    /// What happened.
    pub event: AuditEvent,
    /// User concerned, if known.
    pub username: Option<String>,
    /// Source address, if any.
    pub source_ip: Option<IpAddr>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Free-form context.
    pub details: serde_json::Value,
}

/// Filter for [`SecurityAudit::query`]; every `Some` field must match.
/// Results come newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Earliest time, inclusive, unix ms.
    pub from_ms: Option<i64>,
    /// Latest time, exclusive, unix ms.
    pub until_ms: Option<i64>,
    /// Only this event kind.
    pub event: Option<AuditEvent>,
    /// Only this user.
    pub username: Option<String>,
    /// Only this source address.
    pub source_ip: Option<IpAddr>,
    /// At most this many rows.
    pub limit: u32,
}

impl Default for AuditQuery {
    /// The newest 100 entries.
    fn default() -> Self {
        AuditQuery {
            from_ms: None,
            until_ms: None,
            event: None,
            username: None,
            source_ip: None,
            limit: 100,
        }
    }
}

fn entry_from(row: &impl Get) -> Result<AuditEntry> {
    let source_ip = row
        .opt_text("source_ip")?
        .map(|ip| {
            ip.parse().map_err(|_| StoreError::Corrupt {
                column: "security_audit.source_ip",
                value: ip,
            })
        })
        .transpose()?;
    let details = row.text("details")?;
    let details = serde_json::from_str(&details).map_err(|_| StoreError::Corrupt {
        column: "security_audit.details",
        value: details,
    })?;
    Ok(AuditEntry {
        id: row.int("id")?,
        at: row.int("at")?,
        event: AuditEvent::parse(&row.text("event")?),
        username: row.opt_text("username")?,
        source_ip,
        outcome: AuditOutcome::parse(&row.text("outcome")?)?,
        details,
    })
}

/// Insert of one audit entry, returning its id.
const AUDIT_INSERT_SQL: &str = "INSERT INTO security_audit \
     (at, event, username, source_ip, outcome, details) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

/// Binds a [`NewAuditEntry`] to [`AUDIT_INSERT_SQL`].
macro_rules! bind_entry {
    ($query:expr, $e:expr) => {
        $query
            .bind($e.at)
            .bind($e.event.as_str())
            .bind(&$e.username)
            .bind($e.source_ip.map(|ip| ip.to_string()))
            .bind($e.outcome.as_str())
            .bind($e.details.to_string())
    };
}

/// The security audit log; get one from [`crate::Store::audit`].
#[derive(Debug, Clone, Copy)]
pub struct SecurityAudit<'a> {
    pool: &'a Pool,
}

impl<'a> SecurityAudit<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        SecurityAudit { pool }
    }

    /// Appends an entry and returns its id.
    pub async fn append(&self, entry: &NewAuditEntry) -> Result<i64> {
        Ok(on_pool!(self.pool, p => {
            bind_entry!(sqlx::query(AUDIT_INSERT_SQL), entry)
                .fetch_one(p)
                .await?
                .int("id")?
        }))
    }

    /// Appends many entries in one transaction (all or none).
    pub async fn append_many(&self, entries: &[NewAuditEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        on_pool!(self.pool, p => {
            let mut tx = p.begin().await?;
            for entry in entries {
                bind_entry!(sqlx::query(AUDIT_INSERT_SQL), entry).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes entries older than `before_ms` (retention) and returns how
    /// many went.
    pub async fn prune_before(&self, before_ms: i64) -> Result<u64> {
        Ok(on_pool!(self.pool, p => {
            sqlx::query("DELETE FROM security_audit WHERE at < $1")
                .bind(before_ms).execute(p).await?.rows_affected()
        }))
    }

    /// Entries matching `filter`, newest first.
    pub async fn query(&self, filter: &AuditQuery) -> Result<Vec<AuditEntry>> {
        const SQL: &str = "SELECT id, at, event, username, source_ip, outcome, details \
             FROM security_audit \
             WHERE ($1 IS NULL OR at >= $1) AND ($2 IS NULL OR at < $2) \
             AND ($3 IS NULL OR event = $3) AND ($4 IS NULL OR username = $4) \
             AND ($5 IS NULL OR source_ip = $5) \
             ORDER BY at DESC, id DESC LIMIT $6";
        on_pool!(self.pool, p => {
            sqlx::query(SQL)
                .bind(filter.from_ms)
                .bind(filter.until_ms)
                .bind(filter.event.as_ref().map(AuditEvent::as_str))
                .bind(&filter.username)
                .bind(filter.source_ip.map(|ip| ip.to_string()))
                .bind(limit(filter.limit))
                .fetch_all(p)
                .await?
                .iter()
                .map(entry_from)
                .collect()
        })
    }
}
