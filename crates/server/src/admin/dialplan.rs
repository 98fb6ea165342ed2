//! `pbx dialplan …`: the dialplan rules kept in the database. They route
//! after the configuration's `[[dialplan]]` rules (see
//! [`crate::dialplan`]); flags mirror the configuration keys. Rules naming a
//! trunk the configuration lacks are refused, every change is audited, and
//! a running server is signalled to reload at once.

use std::io::Write;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use store::{DialplanRule, DialplanRuleUpdate, NewDialplanRule, RuleAction, RuleSpec, Store};

use super::{Permission, audit_admin};
use crate::config::{Config, DialplanEntry};
use crate::{dialplan, storage};

/// `pbx dialplan …`
#[derive(Debug, Subcommand)]
pub enum DialplanCommand {
    /// Add a rule (by default after the other database rules).
    Add(AddArgs),
    /// Show the effective order: configuration rules, then database rules.
    List,
    /// Change a database rule; flags not given keep their values.
    Set(SetArgs),
    /// Route by a disabled rule again.
    Enable {
        /// Rule id (see `pbx dialplan list`).
        id: i64,
    },
    /// Keep a rule but stop routing by it.
    Disable {
        /// Rule id (see `pbx dialplan list`).
        id: i64,
    },
    /// Move a rule to POSITION among the database rules (1 = first).
    Move {
        /// Rule id (see `pbx dialplan list`).
        id: i64,
        /// New position; past the end means last.
        position: u32,
    },
    /// Delete a rule.
    Remove {
        /// Rule id (see `pbx dialplan list`).
        id: i64,
    },
}

/// What a rule does (the configuration's `action`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ActionArg {
    /// Ring the extension with the (rewritten) number.
    Extension,
    /// Out through --trunks, in order.
    Trunk,
    /// Refuse with --status (default 403).
    Reject,
}

impl From<ActionArg> for RuleAction {
    fn from(a: ActionArg) -> Self {
        match a {
            ActionArg::Extension => RuleAction::Extension,
            ActionArg::Trunk => RuleAction::Trunk,
            ActionArg::Reject => RuleAction::Reject,
        }
    }
}

/// `pbx dialplan add`
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Name for logs and listings.
    #[arg(long)]
    pub name: String,
    /// `100` (exact), `prefix:9`, `_9NXXNXXXXXX` or `regex:9(\d+)`.
    #[arg(long)]
    pub pattern: String,
    /// The calling permission a caller needs.
    #[arg(long, value_enum, default_value = "internal")]
    pub class: Permission,
    /// Digits removed from the front.
    #[arg(long, default_value_t = 0)]
    pub strip: u32,
    /// Digits put in front after stripping.
    #[arg(long, default_value = "")]
    pub prepend: String,
    /// The new number, `$1`..`$9` from a regex's captures.
    #[arg(long)]
    pub rewrite: Option<String>,
    /// What to do with a matching number.
    #[arg(long, value_enum)]
    pub action: ActionArg,
    /// For `trunk`: configured trunk names, comma-separated, tried in order.
    #[arg(long, value_delimiter = ',')]
    pub trunks: Vec<String>,
    /// For `reject`: the SIP status (400-699, default 403).
    #[arg(long)]
    pub status: Option<u16>,
    /// Position among the database rules (1 = first; default last).
    #[arg(long)]
    pub position: Option<u32>,
    /// Store the rule without routing by it yet.
    #[arg(long)]
    pub disabled: bool,
}

/// `pbx dialplan set`
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Rule id (see `pbx dialplan list`).
    pub id: i64,
    /// New name.
    #[arg(long)]
    pub name: Option<String>,
    /// New pattern.
    #[arg(long)]
    pub pattern: Option<String>,
    /// New class.
    #[arg(long, value_enum)]
    pub class: Option<Permission>,
    /// New strip count.
    #[arg(long)]
    pub strip: Option<u32>,
    /// New prepend digits (empty for none).
    #[arg(long)]
    pub prepend: Option<String>,
    /// New rewrite (empty to clear).
    #[arg(long)]
    pub rewrite: Option<String>,
    /// New action; trunks or status that no longer apply are dropped.
    #[arg(long, value_enum)]
    pub action: Option<ActionArg>,
    /// New trunk list, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub trunks: Option<Vec<String>>,
    /// New reject status.
    #[arg(long)]
    pub status: Option<u16>,
}

impl SetArgs {
    /// The update, with trunks and status cleared when a new action no
    /// longer uses them and no new value was given.
    fn update(&self) -> DialplanRuleUpdate {
        let action = self.action.map(RuleAction::from);
        let trunks = match (&self.trunks, action) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(a)) if a != RuleAction::Trunk => Some(Vec::new()),
            _ => None,
        };
        let status = match (self.status, action) {
            (Some(s), _) => Some(Some(s)),
            (None, Some(a)) if a != RuleAction::Reject => Some(None),
            _ => None,
        };
        DialplanRuleUpdate {
            name: self.name.clone(),
            pattern: self.pattern.clone(),
            class: self.class.map(Into::into),
            strip: self.strip,
            prepend: self.prepend.clone(),
            rewrite: self.rewrite.clone().map(|r| (!r.is_empty()).then_some(r)),
            action,
            trunks,
            status,
            enabled: None,
        }
    }
}

/// The rule as JSON for the audit log.
fn audit_details(rule: &DialplanRule) -> serde_json::Value {
    let s = &rule.spec;
    serde_json::json!({
        "name": s.name, "pattern": s.pattern, "class": s.class.as_str(), "strip": s.strip,
        "prepend": s.prepend, "rewrite": s.rewrite, "action": s.action.as_str(),
        "trunks": s.trunks, "status": s.status, "position": rule.position, "enabled": rule.enabled,
    })
}

/// Refuses a rule naming a trunk that the configuration lacks.
fn check_trunks(cfg: &Config, spec: &RuleSpec) -> anyhow::Result<()> {
    dialplan::check_trunks(&spec.trunks, &cfg.trunks).map_err(|e| anyhow::anyhow!("trunks: {e}"))
}

/// Runs `pbx dialplan …`.
pub async fn run(cfg: &Config, cmd: DialplanCommand) -> anyhow::Result<()> {
    let store = storage::open(cfg).await?;
    let outcome = execute(cfg, &store, cmd).await;
    store.close().await;
    let changed = outcome?;
    if changed {
        storage::notify_server(&cfg.storage);
    }
    Ok(())
}

/// Runs one command; true if it changed the rules.
async fn execute(cfg: &Config, store: &Store, cmd: DialplanCommand) -> anyhow::Result<bool> {
    let rules = store.dialplan_rules();
    let (action, rule) = match cmd {
        DialplanCommand::List => {
            list(cfg, &rules.list().await?)?;
            return Ok(false);
        }
        DialplanCommand::Add(a) => {
            let spec = RuleSpec {
                name: a.name,
                pattern: a.pattern,
                class: a.class.into(),
                strip: a.strip,
                prepend: a.prepend,
                rewrite: a.rewrite,
                action: a.action.into(),
                trunks: a.trunks,
                status: a.status,
            };
            spec.validate()?;
            check_trunks(cfg, &spec)?;
            let first = cfg.dialplan.is_empty() && !rules.list().await?.iter().any(|r| r.enabled);
            let rule = rules
                .add(&NewDialplanRule {
                    spec,
                    position: a.position,
                    enabled: !a.disabled,
                })
                .await?;
            println!(
                "dialplan rule {} added at position {}",
                rule.id, rule.position
            );
            if first && rule.enabled && rule.spec.action != RuleAction::Extension {
                eprintln!(
                    "note: with a dialplan, only its rules route calls; add an extension rule \
                     (e.g. --pattern _XXXX --action extension) so extensions can still call \
                     each other"
                );
            }
            ("dialplan.add", rule)
        }
        DialplanCommand::Set(s) => {
            let Some(current) = rules.get(s.id).await? else {
                bail!("no dialplan rule {}", s.id);
            };
            let update = s.update();
            let merged = update.apply_to(&current.spec);
            merged.validate()?;
            check_trunks(cfg, &merged)?;
            let rule = rules.update(s.id, &update).await?;
            println!("dialplan rule {} updated", rule.id);
            ("dialplan.set", rule)
        }
        DialplanCommand::Enable { id } => ("dialplan.enable", set_enabled(store, id, true).await?),
        DialplanCommand::Disable { id } => {
            ("dialplan.disable", set_enabled(store, id, false).await?)
        }
        DialplanCommand::Move { id, position } => {
            let rule = rules.move_to(id, position).await?;
            println!("dialplan rule {id} is now at position {}", rule.position);
            ("dialplan.move", rule)
        }
        DialplanCommand::Remove { id } => {
            let rule = rules.remove(id).await?;
            println!("dialplan rule {id} removed");
            ("dialplan.remove", rule)
        }
    };
    audit_admin(store, action, &rule.id.to_string(), audit_details(&rule)).await?;
    Ok(true)
}

async fn set_enabled(store: &Store, id: i64, enabled: bool) -> anyhow::Result<DialplanRule> {
    let update = DialplanRuleUpdate {
        enabled: Some(enabled),
        ..Default::default()
    };
    let rule = store.dialplan_rules().update(id, &update).await?;
    let state = if enabled { "enabled" } else { "disabled" };
    println!("dialplan rule {id} {state}");
    Ok(rule)
}

/// How a rule rewrites the number, for listings.
fn rewriting(rewrite: Option<&str>, strip: usize, prepend: &str) -> String {
    match (rewrite, strip, prepend) {
        (Some(r), _, _) => format!("={r}"),
        (None, 0, "") => "-".into(),
        (None, 0, p) => format!("+{p}"),
        (None, n, "") => format!("-{n}"),
        (None, n, p) => format!("-{n}+{p}"),
    }
}

fn action_text(action: &str, trunks: &[String], status: Option<u16>) -> String {
    match action {
        "trunk" => format!("trunk {}", trunks.join(",")),
        "reject" => format!("reject {}", status.unwrap_or(403)),
        other => other.to_string(),
    }
}

/// Prints the effective dialplan: ORDER is the place a rule is tried in
/// (`-` for rules that do not route: disabled, or skipped as invalid).
fn list(cfg: &Config, stored: &[DialplanRule]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<5} {:<6} {:>4} {:>3} {:<16} {:<20} {:<13} {:<22} {:<12} STATE",
        "ORDER", "SOURCE", "ID", "POS", "NAME", "PATTERN", "CLASS", "ACTION", "REWRITE"
    )?;
    let mut order = 0;
    let class_name = |e: &DialplanEntry| format!("{:?}", e.class).to_lowercase();
    for (i, e) in cfg.dialplan.iter().enumerate() {
        order += 1;
        let action = format!("{:?}", e.action).to_lowercase();
        writeln!(
            out,
            "{:<5} {:<6} {:>4} {:>3} {:<16} {:<20} {:<13} {:<22} {:<12} active",
            order,
            "config",
            "-",
            i + 1,
            e.name,
            e.pattern,
            class_name(e),
            action_text(&action, &e.trunks, e.status),
            rewriting(e.rewrite.as_deref(), e.strip, &e.prepend)
        )?;
    }
    for r in stored {
        let s = &r.spec;
        let state = match dialplan::database_rule(r, &cfg.trunks) {
            Err(why) => format!("skipped: {why}"),
            Ok(_) if !r.enabled => "disabled".to_string(),
            Ok(_) => {
                order += 1;
                "active".to_string()
            }
        };
        let shown_order = if state == "active" {
            order.to_string()
        } else {
            "-".into()
        };
        writeln!(
            out,
            "{:<5} {:<6} {:>4} {:>3} {:<16} {:<20} {:<13} {:<22} {:<12} {state}",
            shown_order,
            "db",
            r.id,
            r.position,
            s.name,
            s.pattern,
            s.class.as_str(),
            action_text(s.action.as_str(), &s.trunks, s.status),
            rewriting(s.rewrite.as_deref(), s.strip as usize, &s.prepend)
        )?;
    }
    Ok(())
}
