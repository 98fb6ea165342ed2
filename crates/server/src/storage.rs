//! Glue between the SIP core and the database: where the data lives, the
//! master key, loading the directory and the bindings at start-up, writing
//! binding changes and audit events in batches, and noticing extension
//! changes made by the CLI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pbx::guard::AuditEvent as GuardEvent;
use pbx::registrar::{Binding, BindingKey, ChangeKind};
use sip::transaction::Transport;
use store::{
    AuditEvent, AuditOutcome, Disposition, HangupCause, MasterKey, NewAuditEntry, NewBinding,
    NewCallRecord, NewExtension, NewRegistrationEvent, RegistrationEventKind, RtcpQuality, Store,
};
use tracing::{error, info, warn};

use crate::config::{Config, StorageConfig};
use crate::core::{Control, Credentials, Directory, Persist, Profile, SharedCore, unix_ms};
use store::CallPermission;

/// The data directory: `[storage] data_dir`, else `$PBX_DATA_DIR`, else
/// `/var/lib/pbx` for root, else `$XDG_DATA_HOME/pbx` or
/// `~/.local/share/pbx`.
pub fn data_dir(cfg: &StorageConfig) -> PathBuf {
    if let Some(d) = &cfg.data_dir {
        return d.clone();
    }
    if let Some(d) = std::env::var_os("PBX_DATA_DIR") {
        return PathBuf::from(d);
    }
    // SAFETY-free check for root: the effective uid is 0 when /proc says so.
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    if root {
        return PathBuf::from("/var/lib/pbx");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("pbx");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/pbx"),
        None => PathBuf::from("pbx-data"),
    }
}

/// The master key: `[storage] master_key` (or `PBX__STORAGE__MASTER_KEY`),
/// else `$PBX_MASTER_KEY`, else `DATA_DIR/master.key`, generated on first
/// run (mode 0600) and announced once on stderr.
fn master_key(cfg: &StorageConfig, dir: &Path) -> anyhow::Result<MasterKey> {
    let configured = cfg
        .master_key
        .clone()
        .or_else(|| std::env::var("PBX_MASTER_KEY").ok());
    if let Some(k) = configured {
        return k.trim().parse().map_err(|e| {
            anyhow::anyhow!("storage.master_key: {e} (64 hex digits or base64 of 32 bytes)")
        });
    }
    let path = dir.join("master.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return text
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let key =
        MasterKey::generate().map_err(|e| anyhow::anyhow!("generating the master key: {e}"))?;
    write_private(&path, &format!("{}\n", key.to_hex()))?;
    eprintln!(
        "pbx: generated a new master key in {} (it encrypts stored SIP credentials: back it up; \
         without it the passwords must be set again)",
        path.display()
    );
    Ok(key)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The file holding the running server's process id, in the data directory.
pub fn pid_file(cfg: &StorageConfig) -> PathBuf {
    data_dir(cfg).join("pbx.pid")
}

/// Asks a running server (found through its pid file) to reload what
/// the CLI changed (extensions, dialplan rules) now rather than at its
/// next poll.
pub fn notify_server(cfg: &StorageConfig) {
    let Ok(text) = std::fs::read_to_string(pid_file(cfg)) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return;
    };
    // Only signal a process that is really a pbx server.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if String::from_utf8_lossy(&cmdline).contains("pbx") {
        let _ = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status();
    }
}

/// Opens the database (creating the data directory and key as needed) and
/// makes sure the extensions of the configuration exist with their
/// configured passwords.
pub async fn open(cfg: &Config) -> anyhow::Result<Store> {
    let dir = data_dir(&cfg.storage);
    if !dir.exists() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        // Only the server's user needs the database and the key.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting data directory {}", dir.display()))?;
    }
    let key = master_key(&cfg.storage, &dir)?;
    let url = cfg
        .storage
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("pbx.db").display()));
    let store = Store::open(&url, key)
        .await
        .context("opening the database")?;
    let ext = store.extensions();
    for e in &cfg.extensions {
        let user = e.username.clone().unwrap_or_else(|| e.number.clone());
        if ext.get_by_number(&e.number).await?.is_none() {
            let mut new =
                NewExtension::new(e.number.clone(), e.display_name.clone().unwrap_or_default());
            new.sip_username = user.clone();
            ext.create(&new)
                .await
                .with_context(|| format!("extension {} from the configuration", e.number))?;
        }
        ext.set_password(&user, &cfg.sip.realm, &e.password).await?;
        let permission = e.permission.map(|class| match class {
            crate::config::ClassName::Internal => CallPermission::Internal,
            crate::config::ClassName::National => CallPermission::National,
            crate::config::ClassName::International => CallPermission::International,
        });
        if permission.is_some() || e.max_calls.is_some() {
            let update = store::ExtensionUpdate {
                permission,
                max_concurrent_calls: e.max_calls,
                ..Default::default()
            };
            ext.update(&e.number, &update).await?;
        }
    }
    Ok(store)
}

/// The in-memory directory of every enabled extension with a password.
pub async fn load_directory(store: &Store) -> anyhow::Result<Directory> {
    let mut d = Directory::default();
    for (user, md5, sha) in store.extensions().credentials().await? {
        d.insert(
            user,
            Credentials {
                ha1_md5: md5.as_hex().to_string(),
                ha1_sha256: sha.as_hex().to_string(),
            },
        );
    }
    for e in store.extensions().list().await? {
        if !e.enabled {
            continue;
        }
        d.insert_profile(Profile {
            number: e.number,
            username: e.sip_username,
            display_name: (!e.display_name.is_empty()).then_some(e.display_name),
            max_calls: e.max_concurrent_calls,
            class: crate::dialplan::class_of(e.permission),
        });
    }
    Ok(d)
}

/// Persisted bindings that are still valid, in the registrar's form.
pub async fn load_bindings(store: &Store) -> anyhow::Result<Vec<Binding>> {
    let now = unix_ms();
    let expired = store.bindings().delete_expired(now as i64).await?;
    for b in &expired {
        let _ = store
            .registration_history()
            .append(&NewRegistrationEvent {
                at: now as i64,
                kind: RegistrationEventKind::Expired,
                aor: b.aor.clone(),
                contact: Some(b.contact.clone()),
                source: None,
                user_agent: b.user_agent.clone(),
            })
            .await;
    }
    Ok(store
        .bindings()
        .load_all(now as i64)
        .await?
        .into_iter()
        .map(|b| Binding {
            aor: b.aor,
            contact: b.contact,
            expires_at: b.expires_at.max(0) as u64,
            q: b.q,
            call_id: b.call_id,
            cseq: b.cseq,
            source: b.source,
            transport: Transport::from_token(&b.transport).unwrap_or(Transport::Udp),
            user_agent: b.user_agent,
            instance_id: b.instance_id,
            reg_id: b.reg_id,
            path: b.path,
            mac: b.mac_address,
            first_seen: b.first_seen.max(0) as u64,
            last_seen: b.last_seen.max(0) as u64,
        })
        .collect())
}

fn new_binding(b: &Binding) -> NewBinding {
    NewBinding {
        aor: b.aor.clone(),
        contact: b.contact.clone(),
        expires_at: b.expires_at as i64,
        q: b.q,
        call_id: b.call_id.clone(),
        cseq: b.cseq,
        source: b.source,
        transport: b.transport.as_str().to_string(),
        user_agent: b.user_agent.clone(),
        instance_id: b.instance_id.clone(),
        reg_id: b.reg_id,
        path: b.path.clone(),
        mac_address: b.mac.clone(),
    }
}

fn store_key(key: BindingKey) -> store::BindingKey {
    match key {
        BindingKey::Flow(instance_id, reg_id) => store::BindingKey::Flow {
            instance_id,
            reg_id,
        },
        BindingKey::Contact(c) => store::BindingKey::Contact(c),
    }
}

fn audit_entry(ev: GuardEvent) -> NewAuditEntry {
    match ev {
        GuardEvent::AuthFailure {
            at,
            source,
            username,
            reason,
            source_failures,
        } => NewAuditEntry {
            at: at as i64,
            event: AuditEvent::AuthFailure,
            username: Some(username),
            source_ip: Some(source),
            outcome: AuditOutcome::Failure,
            details: serde_json::json!({"reason": reason, "source_failures": source_failures}),
        },
        GuardEvent::Lockout {
            at,
            source,
            username,
            source_failures,
            username_failures,
            until,
        } => NewAuditEntry {
            at: at as i64,
            event: AuditEvent::Lockout,
            username: Some(username),
            source_ip: Some(source),
            outcome: AuditOutcome::Denied,
            details: serde_json::json!({
                "source_failures": source_failures,
                "username_failures": username_failures,
                "blocked_until": until,
            }),
        },
        GuardEvent::Unlock { at, source, how } => NewAuditEntry {
            at: at as i64,
            event: AuditEvent::Unlock,
            username: None,
            source_ip: Some(source),
            outcome: AuditOutcome::Success,
            details: serde_json::json!({"how": how}),
        },
    }
}

/// The two CDR rows of a call: leg A (caller) and leg B (callee), linked.
fn call_records(
    end: &pbx::call::CallEnd,
    quality: [Option<rtp_relay::RtcpQuality>; 2],
) -> Vec<NewCallRecord> {
    use pbx::call::Disposition as D;
    let disposition = match end.disposition {
        D::Answered => Disposition::Answered,
        D::NoAnswer => Disposition::NoAnswer,
        D::Busy => Disposition::Busy,
        D::Failed => Disposition::Failed,
        D::Cancelled => Disposition::Cancelled,
    };
    let leg = |call_id: &str,
               leg_id: &str,
               linked: &str,
               codec: &Option<String>,
               q: Option<rtp_relay::RtcpQuality>| {
        NewCallRecord {
            call_id: call_id.to_owned(),
            leg_id: format!("{}-{leg_id}", end.id),
            linked_id: Some(format!("{}-{linked}", end.id)),
            caller: end.parties.caller.clone(),
            callee: end.parties.callee.clone(),
            trunk: end.trunk.clone(),
            start_at: end.start as i64,
            answer_at: end.answer.map(|a| a as i64),
            end_at: end.end as i64,
            disposition,
            hangup_cause: Some(HangupCause {
                code: end.cause.0,
                reason: end.cause.1.clone(),
            }),
            codec: codec.clone(),
            quality: q.map(|q| RtcpQuality {
                loss_pct: q.fraction_lost * 100.0,
                jitter_ms: q.jitter_ms,
                rtt_ms: q.rtt_ms,
            }),
        }
    };
    vec![
        leg(&end.a_call_id, "a", "b", &end.codec, quality[0]),
        leg(&end.b_call_id, "b", "a", &end.codec_b, quality[1]),
    ]
}

/// Pending writes, coalesced: the last state of each binding wins.
/// New and removed bindings are written within [`FLUSH_EVERY`]; refreshes
/// of existing ones (a new expiry, mostly) within [`LAZY_FLUSH_EVERY`], so
/// a phone refreshing often costs at most one row write per interval. A
/// crash loses at most that much of a refresh: the binding then expires a
/// little early unless the phone refreshes again, which it does well before
/// its expiry.
#[derive(Default)]
struct Batch {
    bindings: HashMap<(String, BindingKey), Option<Binding>>,
    refreshed: HashMap<(String, BindingKey), Binding>,
    history: Vec<NewRegistrationEvent>,
    audit: Vec<NewAuditEntry>,
    cdrs: Vec<NewCallRecord>,
}

impl Batch {
    fn add(&mut self, p: Persist) {
        match p {
            Persist::Binding(change) => {
                let b = change.binding;
                let key = (b.aor.clone(), b.key());
                let kind = match change.kind {
                    ChangeKind::Registered => Some(RegistrationEventKind::Registered),
                    // Refreshes only move last_seen/expiry: the binding row
                    // holds that; history keeps the events that matter.
                    ChangeKind::Refreshed => None,
                    ChangeKind::Unregistered => Some(RegistrationEventKind::Unregistered),
                    ChangeKind::Expired => Some(RegistrationEventKind::Expired),
                };
                if let Some(kind) = kind {
                    self.history.push(NewRegistrationEvent {
                        at: if change.kind == ChangeKind::Expired {
                            b.expires_at as i64
                        } else {
                            unix_ms() as i64
                        },
                        kind,
                        aor: b.aor.clone(),
                        contact: Some(b.contact.clone()),
                        source: (change.kind != ChangeKind::Expired).then_some(b.source),
                        user_agent: b.user_agent.clone(),
                    });
                }
                match change.kind {
                    ChangeKind::Refreshed => match self.bindings.get_mut(&key) {
                        // Still pending as new: update that write.
                        Some(Some(pending)) => *pending = b,
                        _ => {
                            self.refreshed.insert(key, b);
                        }
                    },
                    ChangeKind::Registered => {
                        self.refreshed.remove(&key);
                        self.bindings.insert(key, Some(b));
                    }
                    ChangeKind::Unregistered | ChangeKind::Expired => {
                        self.refreshed.remove(&key);
                        self.bindings.insert(key, None);
                    }
                }
            }
            Persist::Audit(ev) => self.audit.push(audit_entry(ev)),
            Persist::Cdr(end, quality) => self.cdrs.extend(call_records(&end, quality)),
        }
    }

    fn is_empty(&self) -> bool {
        self.bindings.is_empty()
            && self.history.is_empty()
            && self.audit.is_empty()
            && self.cdrs.is_empty()
    }

    /// Moves the pending refreshes into the next flush.
    fn take_refreshes(&mut self) {
        for (key, b) in self.refreshed.drain() {
            self.bindings.insert(key, Some(b));
        }
    }

    async fn flush(&mut self, store: &Store) {
        let mut upserts = Vec::new();
        let mut removals = Vec::new();
        for ((aor, key), b) in self.bindings.drain() {
            match b {
                Some(b) => upserts.push(new_binding(&b)),
                None => removals.push((aor, store_key(key))),
            }
        }
        let now = unix_ms() as i64;
        if let Err(e) = store.bindings().apply(&upserts, &removals, now).await {
            // One bad row (e.g. an extension deleted meanwhile) must not
            // lose the others: retry one by one.
            warn!(error = %e, "batched binding write failed, retrying row by row");
            for b in &upserts {
                if let Err(e) = store.bindings().upsert(b, now).await {
                    error!(aor = %b.aor, error = %e, "binding not persisted");
                }
            }
            for (aor, key) in &removals {
                if let Err(e) = store.bindings().remove(aor, key).await {
                    error!(%aor, error = %e, "binding removal not persisted");
                }
            }
        }
        let history: Vec<_> = self.history.drain(..).collect();
        if let Err(e) = store.registration_history().append_many(&history).await {
            error!(events = history.len(), error = %e, "registration history not written");
        }
        let cdrs: Vec<_> = self.cdrs.drain(..).collect();
        if let Err(e) = store.call_records().insert_many(&cdrs).await {
            warn!(error = %e, "batched call record write failed, retrying row by row");
            for record in &cdrs {
                if let Err(e) = store.call_records().insert(record).await {
                    error!(call_id = %record.call_id, error = %e, "call record not written");
                }
            }
        }
        let audit: Vec<_> = self.audit.drain(..).collect();
        if let Err(e) = store.audit().append_many(&audit).await {
            // The audit log must not lose entries silently: retry one by one
            // so a single bad row cannot take the others with it.
            warn!(error = %e, "batched audit write failed, retrying row by row");
            for a in &audit {
                if let Err(e) = store.audit().append(a).await {
                    error!(error = %e, "audit entry not written");
                }
            }
        }
    }
}

/// How often new and removed bindings, history and audit entries are written.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How often binding refreshes are written.
const LAZY_FLUSH_EVERY: Duration = Duration::from_secs(30);

/// Collects what the core reports every [`FLUSH_EVERY`] and writes it, until
/// `stop` fires; then writes everything still pending.
pub async fn run_writer(store: Store, core: Arc<SharedCore>, stop: Arc<tokio::sync::Notify>) {
    let mut batch = Batch::default();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    let mut lazy = tokio::time::interval(LAZY_FLUSH_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for p in core.take_persist() {
                    batch.add(p);
                }
                if !batch.is_empty() {
                    batch.flush(&store).await;
                }
            }
            _ = lazy.tick() => batch.take_refreshes(),
            _ = stop.notified() => break,
        }
    }
    for p in core.take_persist() {
        batch.add(p);
    }
    batch.take_refreshes();
    batch.flush(&store).await;
}

/// When a watcher of the database looks again: every `every`, and at once
/// on SIGHUP (the CLI sends one after each change).
pub struct ReloadTrigger {
    tick: tokio::time::Interval,
    hup: Option<tokio::signal::unix::Signal>,
}

impl ReloadTrigger {
    /// A trigger polling every `every` (the first tick is immediate).
    pub fn new(every: Duration) -> Self {
        Self {
            tick: tokio::time::interval(every),
            hup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    /// Waits for the next tick or SIGHUP.
    pub async fn next(&mut self) {
        let hup = async {
            let received = match self.hup.as_mut() {
                Some(h) => h.recv().await.is_some(),
                None => false,
            };
            // No signal stream, or a closed one (runtime shutdown): the tick.
            if !received {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = self.tick.tick() => {}
            () = hup => {}
        }
    }
}

/// Reloads the directory when extensions change: at once on SIGHUP (the
/// CLI sends one after each change), and by polling a cheap fingerprint
/// every `every` for changes made by other means.
pub async fn watch_extensions(store: Store, core: Arc<SharedCore>, every: Duration) {
    let mut last = store.extensions().fingerprint().await.ok();
    let mut trigger = ReloadTrigger::new(every);
    loop {
        trigger.next().await;
        let Ok(now) = store.extensions().fingerprint().await else {
            continue;
        };
        if Some(now) == last {
            continue;
        }
        match load_directory(&store).await {
            Ok(d) => {
                info!(
                    extensions = d.len(),
                    "extensions changed, directory reloaded"
                );
                core.control(Control::Directory(d));
                last = Some(now);
            }
            Err(e) => error!(error = %e, "reloading extensions failed"),
        }
    }
}
