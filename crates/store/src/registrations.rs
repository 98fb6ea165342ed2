//! Registrar bindings (RFC 3261 §10.3) persisted so they survive a restart,
//! and the append-only history of registration events.
//!
//! A binding is identified within its AOR by its [`BindingKey`]: the
//! `+sip.instance` and `reg-id` pair of an outbound flow when the UA sent
//! both (RFC 5626 §6), else the Contact URI; the same rule as the `pbx`
//! registrar's in-memory table, so a reload reproduces it. The store only
//! keeps what the registrar decided; expiry policy and CSeq ordering live in
//! the registrar, which passes `now` in.

use std::net::{IpAddr, SocketAddr};

use crate::db::{Get, Pool, limit, narrow, on_pool};
use crate::error::{Result, StoreError};

/// What makes two REGISTERs refer to the same binding of one AOR.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BindingKey {
    /// An RFC 5626 flow: `+sip.instance` with `reg-id`.
    Flow {
        /// The `+sip.instance` value.
        instance_id: String,
        /// The `reg-id` value.
        reg_id: u32,
    },
    /// Anything else: the Contact URI itself.
    Contact(String),
}

impl BindingKey {
    fn encode(&self) -> String {
        match self {
            BindingKey::Flow {
                instance_id,
                reg_id,
            } => format!("flow:{reg_id}:{instance_id}"),
            BindingKey::Contact(uri) => format!("contact:{uri}"),
        }
    }

    fn of(contact: &str, instance_id: Option<&str>, reg_id: Option<u32>) -> BindingKey {
        match (instance_id, reg_id) {
            (Some(instance_id), Some(reg_id)) => BindingKey::Flow {
                instance_id: instance_id.to_owned(),
                reg_id,
            },
            _ => BindingKey::Contact(contact.to_owned()),
        }
    }
}

/// A binding to create or refresh with [`Bindings::upsert`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewBinding {
    /// Address of record: the extension's SIP username.
    pub aor: String,
    /// Contact URI.
    pub contact: String,
    /// Absolute expiry, unix ms.
    pub expires_at: i64,
    /// Contact `q` parameter (0.0 to 1.0), if given.
    pub q: Option<f32>,
    /// Call-ID of the REGISTER.
    pub call_id: String,
    /// CSeq number of the REGISTER.
    pub cseq: u32,
    /// Where the REGISTER came from.
    pub source: SocketAddr,
    /// Transport token: `UDP`, `TCP`, `TLS`, `WS` or `WSS`.
    pub transport: String,
    /// User-Agent header.
    pub user_agent: Option<String>,
    /// `+sip.instance` Contact parameter.
    pub instance_id: Option<String>,
    /// `reg-id` Contact parameter.
    pub reg_id: Option<u32>,
    /// Path header values (RFC 3327), in order; stored as a JSON array.
    pub path: Vec<String>,
    /// Device MAC address, when known (e.g. from provisioning).
    pub mac_address: Option<String>,
}

impl NewBinding {
    /// The key this binding is stored under.
    pub fn key(&self) -> BindingKey {
        BindingKey::of(&self.contact, self.instance_id.as_deref(), self.reg_id)
    }
}

/// A stored binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Surrogate key.
    pub id: i64,
    /// Address of record.
    pub aor: String,
    /// Contact URI.
    pub contact: String,
    /// Absolute expiry, unix ms.
    pub expires_at: i64,
    /// Contact `q` parameter.
    pub q: Option<f32>,
    /// Call-ID of the last REGISTER.
    pub call_id: String,
    /// CSeq of the last REGISTER.
    pub cseq: u32,
    /// Source of the last REGISTER.
    pub source: SocketAddr,
    /// Transport token.
    pub transport: String,
    /// User-Agent header.
    pub user_agent: Option<String>,
    /// `+sip.instance`.
    pub instance_id: Option<String>,
    /// `reg-id`.
    pub reg_id: Option<u32>,
    /// Path header values, in order.
    pub path: Vec<String>,
    /// Device MAC address.
    pub mac_address: Option<String>,
    /// First REGISTER for this binding, unix ms.
    pub first_seen: i64,
    /// Latest REGISTER for this binding, unix ms.
    pub last_seen: i64,
}

impl Binding {
    /// The key this binding is stored under.
    pub fn key(&self) -> BindingKey {
        BindingKey::of(&self.contact, self.instance_id.as_deref(), self.reg_id)
    }
}

macro_rules! binding_cols {
    () => {
        "id, aor, contact, expires_at, q, call_id, cseq, source_ip, source_port, transport, \
         user_agent, instance_id, reg_id, path, mac_address, first_seen, last_seen"
    };
}

fn socket(column: &'static str, ip: &str, port: i64) -> Result<SocketAddr> {
    let ip: IpAddr = ip.parse().map_err(|_| StoreError::Corrupt {
        column,
        value: ip.to_owned(),
    })?;
    Ok(SocketAddr::new(ip, narrow(column, port)?))
}

fn path_to(path: &[String]) -> Option<String> {
    (!path.is_empty()).then(|| serde_json::Value::from(path).to_string())
}

fn path_from(stored: Option<String>) -> Result<Vec<String>> {
    match stored {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|_| StoreError::Corrupt {
            column: "registrations.path",
            value: text,
        }),
    }
}

fn binding_from(row: &impl Get) -> Result<Binding> {
    Ok(Binding {
        id: row.int("id")?,
        aor: row.text("aor")?,
        contact: row.text("contact")?,
        expires_at: row.int("expires_at")?,
        // Stored as a double; an f32 survives the round trip exactly.
        q: row.opt_real("q")?.map(|q| q as f32),
        call_id: row.text("call_id")?,
        cseq: narrow("registrations.cseq", row.int("cseq")?)?,
        source: socket(
            "registrations.source_ip",
            &row.text("source_ip")?,
            row.int("source_port")?,
        )?,
        transport: row.text("transport")?,
        user_agent: row.opt_text("user_agent")?,
        instance_id: row.opt_text("instance_id")?,
        reg_id: row
            .opt_int("reg_id")?
            .map(|v| narrow("registrations.reg_id", v))
            .transpose()?,
        path: path_from(row.opt_text("path")?)?,
        mac_address: row.opt_text("mac_address")?,
        first_seen: row.int("first_seen")?,
        last_seen: row.int("last_seen")?,
    })
}

/// Insert-or-refresh of one binding (see [`Bindings::upsert`]).
const UPSERT_SQL: &str = concat!(
    "INSERT INTO registrations (aor, binding_key, contact, expires_at, q, call_id, cseq, \
     source_ip, source_port, transport, user_agent, instance_id, reg_id, path, \
     mac_address, first_seen, last_seen) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) \
     ON CONFLICT (aor, binding_key) DO UPDATE SET \
     contact = excluded.contact, expires_at = excluded.expires_at, q = excluded.q, \
     call_id = excluded.call_id, cseq = excluded.cseq, \
     source_ip = excluded.source_ip, source_port = excluded.source_port, \
     transport = excluded.transport, user_agent = excluded.user_agent, \
     instance_id = excluded.instance_id, reg_id = excluded.reg_id, path = excluded.path, \
     mac_address = COALESCE(excluded.mac_address, registrations.mac_address), \
     last_seen = excluded.last_seen \
     RETURNING ",
    binding_cols!()
);

/// Binds a [`NewBinding`] to [`UPSERT_SQL`]'s parameters.
macro_rules! bind_binding {
    ($query:expr, $b:expr, $now:expr) => {
        $query
            .bind(&$b.aor)
            .bind($b.key().encode())
            .bind(&$b.contact)
            .bind($b.expires_at)
            .bind($b.q.map(f64::from))
            .bind(&$b.call_id)
            .bind(i64::from($b.cseq))
            .bind($b.source.ip().to_string())
            .bind(i64::from($b.source.port()))
            .bind(&$b.transport)
            .bind(&$b.user_agent)
            .bind(&$b.instance_id)
            .bind($b.reg_id.map(i64::from))
            .bind(path_to(&$b.path))
            .bind(&$b.mac_address)
            .bind($now)
    };
}

fn check_q(binding: &NewBinding) -> Result<()> {
    // NaN fails `contains` too.
    if let Some(q) = binding.q.filter(|q| !(0.0..=1.0).contains(q)) {
        return Err(StoreError::Invalid {
            field: "q",
            reason: format!("{q} is outside 0.0..=1.0"),
        });
    }
    Ok(())
}

/// Insert of one history event, returning its id.
const HISTORY_INSERT_SQL: &str = "INSERT INTO registration_history \
     (at, event, aor, contact, source_ip, source_port, user_agent) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";

/// Binds a [`NewRegistrationEvent`] to [`HISTORY_INSERT_SQL`].
macro_rules! bind_event {
    ($query:expr, $e:expr) => {
        $query
            .bind($e.at)
            .bind($e.kind.as_str())
            .bind(&$e.aor)
            .bind(&$e.contact)
            .bind($e.source.map(|s| s.ip().to_string()))
            .bind($e.source.map(|s| i64::from(s.port())))
            .bind(&$e.user_agent)
    };
}

/// Repository of registrar bindings; get one from [`crate::Store::bindings`].
#[derive(Debug, Clone, Copy)]
pub struct Bindings<'a> {
    pool: &'a Pool,
}

impl<'a> Bindings<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        Bindings { pool }
    }

    /// Creates the binding or refreshes the one with the same key, keeping
    /// its `first_seen` (and its MAC address if the new one is `None`).
    /// Fails with [`StoreError::MissingReference`] if `aor` is not an
    /// extension's SIP username.
    pub async fn upsert(&self, binding: &NewBinding, now_ms: i64) -> Result<Binding> {
        check_q(binding)?;
        on_pool!(self.pool, p => {
            let row = bind_binding!(sqlx::query(UPSERT_SQL), binding, now_ms)
                .fetch_one(p)
                .await?;
            binding_from(&row)
        })
    }

    /// Applies many changes in one transaction (the registrar's writer
    /// batches them): `upserts` as [`Bindings::upsert`], then `removals`.
    pub async fn apply(
        &self,
        upserts: &[NewBinding],
        removals: &[(String, BindingKey)],
        now_ms: i64,
    ) -> Result<()> {
        for b in upserts {
            check_q(b)?;
        }
        on_pool!(self.pool, p => {
            let mut tx = p.begin().await?;
            for b in upserts {
                bind_binding!(sqlx::query(UPSERT_SQL), b, now_ms).execute(&mut *tx).await?;
            }
            for (aor, key) in removals {
                sqlx::query("DELETE FROM registrations WHERE aor = $1 AND binding_key = $2")
                    .bind(aor).bind(key.encode()).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes one binding; `false` if there was none.
    pub async fn remove(&self, aor: &str, key: &BindingKey) -> Result<bool> {
        let n = on_pool!(self.pool, p => {
            sqlx::query("DELETE FROM registrations WHERE aor = $1 AND binding_key = $2")
                .bind(aor).bind(key.encode()).execute(p).await?.rows_affected()
        });
        Ok(n > 0)
    }

    /// Removes every binding of `aor` (REGISTER with `Contact: *`); returns
    /// how many there were.
    pub async fn remove_all(&self, aor: &str) -> Result<u64> {
        Ok(on_pool!(self.pool, p => {
            sqlx::query("DELETE FROM registrations WHERE aor = $1")
                .bind(aor).execute(p).await?.rows_affected()
        }))
    }

    /// Bindings of `aor`, expired or not, highest `q` first.
    pub async fn list_for_aor(&self, aor: &str) -> Result<Vec<Binding>> {
        const SQL: &str = concat!(
            "SELECT ",
            binding_cols!(),
            " FROM registrations WHERE aor = $1 ORDER BY COALESCE(q, 1.0) DESC, id"
        );
        on_pool!(self.pool, p => {
            sqlx::query(SQL).bind(aor).fetch_all(p).await?.iter().map(binding_from).collect()
        })
    }

    /// Every stored binding, expired or not, by AOR.
    pub async fn list_all(&self) -> Result<Vec<Binding>> {
        const SQL: &str = concat!(
            "SELECT ",
            binding_cols!(),
            " FROM registrations ORDER BY aor, id"
        );
        on_pool!(self.pool, p => {
            sqlx::query(SQL).fetch_all(p).await?.iter().map(binding_from).collect()
        })
    }

    /// Bindings still valid at `now_ms`, for loading the registrar at start-up.
    pub async fn load_all(&self, now_ms: i64) -> Result<Vec<Binding>> {
        const SQL: &str = concat!(
            "SELECT ",
            binding_cols!(),
            " FROM registrations WHERE expires_at > $1 ORDER BY aor, id"
        );
        on_pool!(self.pool, p => {
            sqlx::query(SQL).bind(now_ms).fetch_all(p).await?.iter().map(binding_from).collect()
        })
    }

    /// Deletes bindings whose `expires_at <= now_ms` and returns them, so the
    /// caller can record `expired` events.
    pub async fn delete_expired(&self, now_ms: i64) -> Result<Vec<Binding>> {
        const SQL: &str = concat!(
            "DELETE FROM registrations WHERE expires_at <= $1 RETURNING ",
            binding_cols!()
        );
        on_pool!(self.pool, p => {
            sqlx::query(SQL).bind(now_ms).fetch_all(p).await?.iter().map(binding_from).collect()
        })
    }
}

/// What happened to a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistrationEventKind {
    /// A new binding was created.
    Registered,
    /// An existing binding was refreshed.
    Refreshed,
    /// The UA removed the binding (`Expires: 0`).
    Unregistered,
    /// The binding timed out.
    Expired,
}

impl RegistrationEventKind {
    /// The stored form, lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationEventKind::Registered => "registered",
            RegistrationEventKind::Refreshed => "refreshed",
            RegistrationEventKind::Unregistered => "unregistered",
            RegistrationEventKind::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "registered" => RegistrationEventKind::Registered,
            "refreshed" => RegistrationEventKind::Refreshed,
            "unregistered" => RegistrationEventKind::Unregistered,
            "expired" => RegistrationEventKind::Expired,
            other => {
                return Err(StoreError::Corrupt {
                    column: "registration_history.event",
                    value: other.to_owned(),
                });
            }
        })
    }
}

/// An event to append with [`RegistrationHistory::append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistrationEvent {
    /// When it happened, unix ms.
    pub at: i64,
    /// What happened.
    pub kind: RegistrationEventKind,
    /// Address of record.
    pub aor: String,
    /// Contact URI concerned.
    pub contact: Option<String>,
    /// Source of the REGISTER (none for expiry).
    pub source: Option<SocketAddr>,
    /// User-Agent header.
    pub user_agent: Option<String>,
}

/// A stored registration event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationEvent {
    /// Surrogate key, increasing with insertion order.
    pub id: i64,
    /// When it happened, unix ms.
    pub at: i64,
    /// What happened.
    pub kind: RegistrationEventKind,
    /// Address of record.
    pub aor: String,
    /// Contact URI concerned.
    pub contact: Option<String>,
    /// Source of the REGISTER.
    pub source: Option<SocketAddr>,
    /// User-Agent header.
    pub user_agent: Option<String>,
}

fn event_from(row: &impl Get) -> Result<RegistrationEvent> {
    let source = match (row.opt_text("source_ip")?, row.opt_int("source_port")?) {
        (Some(ip), Some(port)) => Some(socket("registration_history.source_ip", &ip, port)?),
        _ => None,
    };
    Ok(RegistrationEvent {
        id: row.int("id")?,
        at: row.int("at")?,
        kind: RegistrationEventKind::parse(&row.text("event")?)?,
        aor: row.text("aor")?,
        contact: row.opt_text("contact")?,
        source,
        user_agent: row.opt_text("user_agent")?,
    })
}

/// Append-only registration log; get one from
/// [`crate::Store::registration_history`].
#[derive(Debug, Clone, Copy)]
pub struct RegistrationHistory<'a> {
    pool: &'a Pool,
}

macro_rules! event_cols {
    () => {
        "id, at, event, aor, contact, source_ip, source_port, user_agent"
    };
}

impl<'a> RegistrationHistory<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        RegistrationHistory { pool }
    }

    /// Appends an event and returns its id.
    pub async fn append(&self, event: &NewRegistrationEvent) -> Result<i64> {
        let id = on_pool!(self.pool, p => {
            bind_event!(sqlx::query(HISTORY_INSERT_SQL), event)
                .fetch_one(p)
                .await?
                .int("id")?
        });
        Ok(id)
    }

    /// Appends many events in one transaction (all or none).
    pub async fn append_many(&self, events: &[NewRegistrationEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        on_pool!(self.pool, p => {
            let mut tx = p.begin().await?;
            for event in events {
                bind_event!(sqlx::query(HISTORY_INSERT_SQL), event).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes events older than `before_ms` and returns how many went.
    /// Refreshes add a row each, so deployments should prune on a schedule.
    pub async fn prune_before(&self, before_ms: i64) -> Result<u64> {
        Ok(on_pool!(self.pool, p => {
            sqlx::query("DELETE FROM registration_history WHERE at < $1")
                .bind(before_ms).execute(p).await?.rows_affected()
        }))
    }

    /// The newest `n` events of `aor`, newest first.
    pub async fn for_aor(&self, aor: &str, n: u32) -> Result<Vec<RegistrationEvent>> {
        const SQL: &str = concat!(
            "SELECT ",
            event_cols!(),
            " FROM registration_history WHERE aor = $1 ORDER BY at DESC, id DESC LIMIT $2"
        );
        on_pool!(self.pool, p => {
            sqlx::query(SQL).bind(aor).bind(limit(n)).fetch_all(p).await?
                .iter().map(event_from).collect()
        })
    }

    /// The newest `n` events of all AORs, newest first.
    pub async fn recent(&self, n: u32) -> Result<Vec<RegistrationEvent>> {
        const SQL: &str = concat!(
            "SELECT ",
            event_cols!(),
            " FROM registration_history ORDER BY at DESC, id DESC LIMIT $1"
        );
        on_pool!(self.pool, p => {
            sqlx::query(SQL).bind(limit(n)).fetch_all(p).await?
                .iter().map(event_from).collect()
        })
    }
}
