//! Administration subcommands: `pbx extension …`, `pbx registration …`,
//! `pbx audit …`, `pbx dialplan …` (in [`dialplan`]). They work on the
//! database directly (a running server notices extension and dialplan
//! changes within two seconds), and every change is written to the security
//! audit log as an admin action, without secrets.

mod dialplan;

pub use dialplan::{DialplanCommand, run as dialplan};

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use store::{
    AuditEvent, AuditOutcome, AuditQuery, CallPermission, ExtensionUpdate, NewAuditEntry,
    NewExtension, Store,
};

use crate::config::Config;
use crate::core::unix_ms;
use crate::storage;

/// `pbx extension …`
#[derive(Debug, Subcommand)]
pub enum ExtensionCommand {
    /// Create an extension. Without --password a strong one is generated
    /// and printed once.
    Add(AddArgs),
    /// List extensions.
    List,
    /// Change an extension.
    Set(SetArgs),
    /// Delete an extension (and its registrations).
    Remove {
        /// Extension number.
        number: String,
    },
    /// Create or update extensions from a CSV file: `number,password[,name]`
    /// per line (a first line starting with `number` is a header).
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

/// Calling permission level.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Permission {
    /// Internal numbers only.
    Internal,
    /// Internal and national numbers.
    National,
    /// Everything, international included.
    International,
}

impl From<Permission> for CallPermission {
    fn from(p: Permission) -> Self {
        match p {
            Permission::Internal => CallPermission::Internal,
            Permission::National => CallPermission::National,
            Permission::International => CallPermission::International,
        }
    }
}

/// `pbx extension add`
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Extension number (2-15 digits).
    pub number: String,
    /// Display name.
    #[arg(long, default_value = "")]
    pub name: String,
    /// SIP username (default: the number).
    #[arg(long)]
    pub username: Option<String>,
    /// SIP password (at least 8 characters); generated when absent. Prefer
    /// the environment variable, which does not show in process lists.
    #[arg(long, env = "PBX_EXTENSION_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// E-mail address.
    #[arg(long)]
    pub email: Option<String>,
    /// Outbound calling permission.
    #[arg(long, value_enum, default_value = "internal")]
    pub permission: Permission,
    /// Maximum concurrent calls.
    #[arg(long, default_value_t = 2)]
    pub max_calls: u32,
    /// Voicemail PIN (digits).
    #[arg(long)]
    pub voicemail_pin: Option<String>,
}

/// `pbx extension set`
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Extension number.
    pub number: String,
    /// New display name.
    #[arg(long)]
    pub name: Option<String>,
    /// New SIP password.
    #[arg(long, env = "PBX_EXTENSION_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// New e-mail address (empty to clear).
    #[arg(long)]
    pub email: Option<String>,
    /// New calling permission.
    #[arg(long, value_enum)]
    pub permission: Option<Permission>,
    /// New concurrent call limit.
    #[arg(long)]
    pub max_calls: Option<u32>,
    /// Enable or disable.
    #[arg(long)]
    pub enabled: Option<bool>,
    /// New voicemail PIN.
    #[arg(long)]
    pub voicemail_pin: Option<String>,
}

/// `pbx registration …`
#[derive(Debug, Subcommand)]
pub enum RegistrationCommand {
    /// Current bindings (what phones are registered, from where).
    List {
        /// Only this extension's SIP username.
        #[arg(long)]
        aor: Option<String>,
    },
    /// Registration events (registered, unregistered, expired).
    History {
        /// Only this extension's SIP username.
        #[arg(long)]
        aor: Option<String>,
        /// How many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// `pbx cdr …`
#[derive(Debug, Subcommand)]
pub enum CdrCommand {
    /// Call detail records, newest first (one line per leg).
    List {
        /// Only calls from or to this extension number.
        #[arg(long)]
        extension: Option<String>,
        /// How many legs.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// Runs `pbx cdr …`.
pub async fn cdr(cfg: &Config, cmd: CdrCommand) -> anyhow::Result<()> {
    let store = storage::open(cfg).await?;
    let mut out = std::io::stdout().lock();
    let CdrCommand::List { extension, limit } = cmd;
    let rows = match &extension {
        Some(x) => store.call_records().for_extension(x, limit).await?,
        None => store.call_records().recent(limit).await?,
    };
    writeln!(
        out,
        "{:<20} {:<8} {:<10} {:<14} {:>9} {:>8} {:<11} {:<6} {:<10} {:<26} {:<34} CALL-ID",
        "START",
        "LEG",
        "CALLER",
        "CALLEE",
        "DURATION",
        "BILLSEC",
        "DISPOSITION",
        "CODEC",
        "TRUNK",
        "CAUSE",
        "RTCP"
    )?;
    for r in rows {
        let cause = r
            .hangup_cause
            .map(|c| format!("{} {}", c.code, c.reason))
            .unwrap_or_default();
        let rtcp = r.quality.map_or("-".to_string(), |q| {
            let rtt = q.rtt_ms.map_or("-".to_string(), |r| format!("{r:.1}ms"));
            format!(
                "loss={:.1}% jitter={:.1}ms rtt={rtt}",
                q.loss_pct, q.jitter_ms
            )
        });
        writeln!(
            out,
            "{:<20} {:<8} {:<10} {:<14} {:>9.1} {:>8.1} {:<11} {:<6} {:<10} {:<26} {:<34} {}",
            time(r.start_at),
            r.leg_id,
            r.caller,
            r.callee,
            r.duration_ms as f64 / 1000.0,
            r.billsec_ms as f64 / 1000.0,
            r.disposition.as_str(),
            r.codec.as_deref().unwrap_or("-"),
            r.trunk.as_deref().unwrap_or("-"),
            cause,
            rtcp,
            r.call_id
        )?;
    }
    drop(out);
    store.close().await;
    Ok(())
}

/// `pbx audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Security events, newest first.
    List {
        /// Only this event (auth_failure, lockout, unlock, admin_action).
        #[arg(long)]
        event: Option<String>,
        /// Only this source address.
        #[arg(long)]
        source: Option<std::net::IpAddr>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

fn operator() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into())
}

async fn audit_admin(
    store: &Store,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    store
        .audit()
        .append(&NewAuditEntry {
            at: unix_ms() as i64,
            event: AuditEvent::AdminAction,
            username: Some(operator()),
            source_ip: None,
            outcome: AuditOutcome::Success,
            details: serde_json::json!({"action": action, "target": target, "via": "cli", "changes": details}),
        })
        .await?;
    Ok(())
}

/// A random password of 20 characters from an unambiguous alphabet.
fn generate_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut raw = [0u8; 20];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| anyhow::anyhow!("no system randomness"))?;
    Ok(raw
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

fn check_password(p: &str) -> anyhow::Result<()> {
    if p.len() < 8 {
        bail!("the password must have at least 8 characters");
    }
    Ok(())
}

fn check_pin(p: &str) -> anyhow::Result<()> {
    if !(4..=12).contains(&p.len()) || !p.chars().all(|c| c.is_ascii_digit()) {
        bail!("the voicemail PIN must be 4 to 12 digits");
    }
    Ok(())
}

/// Runs `pbx extension …`.
pub async fn extension(cfg: &Config, cmd: ExtensionCommand) -> anyhow::Result<()> {
    let store = storage::open(cfg).await?;
    let ext = store.extensions();
    let realm = &cfg.sip.realm;
    match cmd {
        ExtensionCommand::Add(a) => {
            let user = a.username.clone().unwrap_or_else(|| a.number.clone());
            let generated = a.password.is_none();
            let password = match a.password {
                Some(p) => p,
                None => generate_password()?,
            };
            check_password(&password)?;
            if let Some(pin) = &a.voicemail_pin {
                check_pin(pin)?;
            }
            let mut new = NewExtension::new(a.number.clone(), a.name.clone());
            new.sip_username = user.clone();
            new.email = a.email.clone();
            new.permission = a.permission.into();
            new.max_concurrent_calls = a.max_calls;
            ext.create(&new).await?;
            ext.set_password(&user, realm, &password).await?;
            if let Some(pin) = &a.voicemail_pin {
                ext.set_voicemail_pin(&a.number, pin).await?;
            }
            audit_admin(
                &store,
                "extension.add",
                &a.number,
                serde_json::json!({"username": user, "name": a.name, "permission": format!("{:?}", a.permission)}),
            )
            .await?;
            println!("extension {} created (SIP username {user})", a.number);
            if generated {
                println!("SIP password (shown once): {password}");
            }
        }
        ExtensionCommand::List => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<8} {:<12} {:<24} {:<14} {:>5} {:<8} {:<8}",
                "NUMBER", "USERNAME", "NAME", "PERMISSION", "CALLS", "ENABLED", "PASSWORD"
            )?;
            for e in ext.list().await? {
                writeln!(
                    out,
                    "{:<8} {:<12} {:<24} {:<14} {:>5} {:<8} {:<8}",
                    e.number,
                    e.sip_username,
                    e.display_name,
                    e.permission.as_str(),
                    e.max_concurrent_calls,
                    if e.enabled { "yes" } else { "no" },
                    if e.has_password { "set" } else { "none" }
                )?;
            }
        }
        ExtensionCommand::Set(s) => {
            let Some(current) = ext.get_by_number(&s.number).await? else {
                bail!("no extension {}", s.number);
            };
            if let Some(p) = &s.password {
                check_password(p)?;
            }
            if let Some(pin) = &s.voicemail_pin {
                check_pin(pin)?;
            }
            let update = ExtensionUpdate {
                number: None,
                display_name: s.name.clone(),
                email: s.email.clone().map(|e| (!e.is_empty()).then_some(e)),
                permission: s.permission.map(Into::into),
                max_concurrent_calls: s.max_calls,
                enabled: s.enabled,
            };
            ext.update(&s.number, &update).await?;
            if let Some(p) = &s.password {
                ext.set_password(&current.sip_username, realm, p).await?;
            }
            if let Some(pin) = &s.voicemail_pin {
                ext.set_voicemail_pin(&s.number, pin).await?;
            }
            audit_admin(
                &store,
                "extension.set",
                &s.number,
                serde_json::json!({
                    "name": s.name, "email": s.email, "enabled": s.enabled,
                    "max_calls": s.max_calls, "permission": s.permission.map(|p| format!("{p:?}")),
                    "password_changed": s.password.is_some(), "pin_changed": s.voicemail_pin.is_some(),
                }),
            )
            .await?;
            println!("extension {} updated", s.number);
        }
        ExtensionCommand::Remove { number } => {
            ext.delete(&number).await?;
            audit_admin(&store, "extension.remove", &number, serde_json::Value::Null).await?;
            println!("extension {number} removed");
        }
        ExtensionCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let (mut created, mut updated) = (0, 0);
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || (n == 0 && line.starts_with("number")) {
                    continue;
                }
                let fields: Vec<&str> = line.split(',').map(str::trim).collect();
                let (Some(number), Some(password)) = (fields.first(), fields.get(1)) else {
                    bail!(
                        "{}:{}: expected number,password[,name]",
                        file.display(),
                        n + 1
                    );
                };
                check_password(password)
                    .with_context(|| format!("{}:{}", file.display(), n + 1))?;
                let name = fields.get(2).copied().unwrap_or_default();
                if ext.get_by_number(number).await?.is_none() {
                    ext.create(&NewExtension::new(*number, name))
                        .await
                        .with_context(|| format!("{}:{}", file.display(), n + 1))?;
                    created += 1;
                } else {
                    updated += 1;
                }
                let user = ext
                    .get_by_number(number)
                    .await?
                    .map(|e| e.sip_username)
                    .unwrap_or_else(|| number.to_string());
                ext.set_password(&user, realm, password).await?;
            }
            audit_admin(
                &store,
                "extension.import",
                &file.display().to_string(),
                serde_json::json!({"created": created, "updated": updated}),
            )
            .await?;
            println!("{created} extensions created, {updated} updated");
        }
    }
    store.close().await;
    storage::notify_server(&cfg.storage);
    Ok(())
}

fn time(ms: i64) -> String {
    // RFC 3339 in UTC without a date-time dependency.
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// well-known algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Runs `pbx registration …`.
pub async fn registration(cfg: &Config, cmd: RegistrationCommand) -> anyhow::Result<()> {
    let store = storage::open(cfg).await?;
    let mut out = std::io::stdout().lock();
    match cmd {
        RegistrationCommand::List { aor } => {
            let now = unix_ms() as i64;
            let rows = match &aor {
                Some(a) => store.bindings().list_for_aor(a).await?,
                None => store.bindings().list_all().await?,
            };
            writeln!(
                out,
                "{:<12} {:<44} {:<26} {:>7} {:<17} {:<20} {:<20} USER-AGENT",
                "AOR", "CONTACT", "SOURCE", "EXPIRES", "MAC", "FIRST-SEEN", "LAST-SEEN"
            )?;
            for b in rows.iter().filter(|b| b.expires_at > now) {
                writeln!(
                    out,
                    "{:<12} {:<44} {:<26} {:>7} {:<17} {:<20} {:<20} {}",
                    b.aor,
                    b.contact,
                    format!("{} {}", b.transport, b.source),
                    (b.expires_at - now) / 1000,
                    b.mac_address.as_deref().unwrap_or("-"),
                    time(b.first_seen),
                    time(b.last_seen),
                    b.user_agent.as_deref().unwrap_or("-")
                )?;
            }
        }
        RegistrationCommand::History { aor, limit } => {
            let rows = match &aor {
                Some(a) => store.registration_history().for_aor(a, limit).await?,
                None => store.registration_history().recent(limit).await?,
            };
            for r in rows {
                writeln!(
                    out,
                    "{} {:<13} {:<12} {} {}",
                    time(r.at),
                    r.kind.as_str(),
                    r.aor,
                    r.contact.as_deref().unwrap_or("-"),
                    r.source.map(|s| s.to_string()).unwrap_or_default()
                )?;
            }
        }
    }
    drop(out);
    store.close().await;
    Ok(())
}

/// Runs `pbx audit …`.
pub async fn audit(cfg: &Config, cmd: AuditCommand) -> anyhow::Result<()> {
    let store = storage::open(cfg).await?;
    let AuditCommand::List {
        event,
        source,
        limit,
    } = cmd;
    let rows = store
        .audit()
        .query(&AuditQuery {
            event: event.as_deref().map(AuditEvent::parse),
            source_ip: source,
            limit,
            ..AuditQuery::default()
        })
        .await?;
    let mut out = std::io::stdout().lock();
    for r in rows {
        writeln!(
            out,
            "{} {:<13} {:<8} user={} source={} {}",
            time(r.at),
            r.event.as_str(),
            r.outcome.as_str(),
            r.username.as_deref().unwrap_or("-"),
            r.source_ip
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            r.details
        )?;
    }
    drop(out);
    store.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        assert_eq!(time(1_795_808_154_000), "2026-11-27T19:35:54Z");
        assert_eq!(time(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn generated_passwords() {
        let a = generate_password().unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a, generate_password().unwrap());
    }
}
