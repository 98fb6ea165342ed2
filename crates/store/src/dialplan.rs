//! Dialplan rules managed at run time (`pbx dialplan …`): what a
//! `[[dialplan]]` rule of the configuration holds, plus an explicit
//! position and an enabled flag.
//!
//! Positions are 1, 2, … without gaps; adding, moving and removing renumber
//! the others in the same transaction. Every change also bumps a revision
//! counter ([`DialplanRules::revision`]) in that transaction, so a running
//! server notices changes by polling one integer. The first statement of
//! each change is that bump: it takes the write lock (SQLite) or the row
//! lock (PostgreSQL) at once, so concurrent changes are serialised and
//! positions stay dense.
//!
//! Input is validated before it is written, with the dialplan's own pattern
//! parser ([`pbx::dialplan::Pattern`]), so a rule that is stored always
//! parses. Whether the trunks it names exist is the configuration's
//! business and is checked by the caller.

use crate::db::{Get, Pool, narrow, now_ms, on_pool};
use crate::error::{Result, StoreError};
use crate::extensions::CallPermission;

/// What a matched rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// Ring the extension with the (rewritten) number.
    Extension,
    /// Out through the rule's trunks, in order.
    Trunk,
    /// Refuse with the rule's status (403 when none).
    Reject,
}

impl RuleAction {
    /// The stored (and configuration) form: `extension`, `trunk`, `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::Extension => "extension",
            RuleAction::Trunk => "trunk",
            RuleAction::Reject => "reject",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "extension" => Ok(RuleAction::Extension),
            "trunk" => Ok(RuleAction::Trunk),
            "reject" => Ok(RuleAction::Reject),
            other => Err(StoreError::Corrupt {
                column: "dialplan_rules.action",
                value: other.to_owned(),
            }),
        }
    }
}

fn parse_class(s: &str) -> Result<CallPermission> {
    match s {
        "internal" => Ok(CallPermission::Internal),
        "national" => Ok(CallPermission::National),
        "international" => Ok(CallPermission::International),
        other => Err(StoreError::Corrupt {
            column: "dialplan_rules.class",
            value: other.to_owned(),
        }),
    }
}

/// The part of a rule that says what it matches and does (shared by
/// [`NewDialplanRule`] and [`DialplanRule`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// Name for logs and listings.
    pub name: String,
    /// `100` (exact), `prefix:9`, `_9NXXNXXXXXX` or `regex:^9(\d+)$`.
    pub pattern: String,
    /// The calling permission a caller needs.
    pub class: CallPermission,
    /// Digits removed from the front.
    pub strip: u32,
    /// Digits put in front after stripping.
    pub prepend: String,
    /// The new number, `$1`..`$9` from a regex's captures (overrides
    /// strip and prepend).
    pub rewrite: Option<String>,
    /// What to do.
    pub action: RuleAction,
    /// For [`RuleAction::Trunk`]: trunk names, tried in order.
    pub trunks: Vec<String>,
    /// For [`RuleAction::Reject`]: the SIP status (403 when `None`).
    pub status: Option<u16>,
}

impl RuleSpec {
    /// A rule named `name` matching `pattern` with `action`, internal
    /// class, no rewriting, no trunks, no status.
    pub fn new(name: impl Into<String>, pattern: impl Into<String>, action: RuleAction) -> Self {
        RuleSpec {
            name: name.into(),
            pattern: pattern.into(),
            class: CallPermission::Internal,
            strip: 0,
            prepend: String::new(),
            rewrite: None,
            action,
            trunks: Vec::new(),
            status: None,
        }
    }

    /// Checks the rule as the configuration loader checks a `[[dialplan]]`
    /// entry (pattern syntax, trunks for `trunk`, a 4xx-6xx status), and a
    /// little more: names, prepend and rewrite are short printable text,
    /// and trunks and status only go with the action they belong to.
    pub fn validate(&self) -> Result<()> {
        let invalid =
            |field: &'static str, reason: String| Err(StoreError::Invalid { field, reason });
        let printable = |s: &str| !s.chars().any(char::is_control);
        if self.name.trim().is_empty() || self.name.len() > 64 || !printable(&self.name) {
            return invalid(
                "name",
                format!("{:?} must be 1 to 64 printable characters", self.name),
            );
        }
        if let Err(e) = pbx::dialplan::Pattern::parse(&self.pattern) {
            return invalid("pattern", e.to_string());
        }
        if self.strip > 32 {
            return invalid("strip", format!("{} is more than 32 digits", self.strip));
        }
        let dial_text = |s: &str| s.chars().all(|c| c.is_ascii_digit() || "*#+".contains(c));
        if self.prepend.len() > 32 || !dial_text(&self.prepend) {
            return invalid(
                "prepend",
                format!("{:?} must be up to 32 of 0-9 * # +", self.prepend),
            );
        }
        if let Some(r) = &self.rewrite
            && (r.is_empty()
                || r.len() > 64
                || !r.chars().all(|c| c.is_ascii_digit() || "*#+$".contains(c)))
        {
            return invalid(
                "rewrite",
                format!("{r:?} must be 1 to 64 of 0-9 * # + and $1..$9"),
            );
        }
        match self.action {
            RuleAction::Trunk if self.trunks.is_empty() => {
                return invalid("trunks", "action \"trunk\" needs at least one trunk".into());
            }
            RuleAction::Trunk => {}
            _ if !self.trunks.is_empty() => {
                return invalid(
                    "trunks",
                    format!(
                        "trunks only go with action \"trunk\", not {:?}",
                        self.action.as_str()
                    ),
                );
            }
            _ => {}
        }
        if let Some(t) = self.trunks.iter().find(|t| t.is_empty() || !printable(t)) {
            return invalid("trunks", format!("{t:?} is not a trunk name"));
        }
        match self.status {
            Some(s) if self.action != RuleAction::Reject => invalid(
                "status",
                format!(
                    "{s} only goes with action \"reject\", not {:?}",
                    self.action.as_str()
                ),
            ),
            Some(s) if !(400..=699).contains(&s) => {
                invalid("status", format!("{s} is not a 4xx-6xx status"))
            }
            _ => Ok(()),
        }
    }
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialplanRule {
    /// Surrogate key, shown by the CLI and named in warnings.
    pub id: i64,
    /// 1-based place among the stored rules (after the configuration's).
    pub position: u32,
    /// What it matches and does.
    pub spec: RuleSpec,
    /// Disabled rules are kept but not routed by.
    pub enabled: bool,
    /// Creation time, unix ms.
    pub created_at: i64,
    /// Last modification time, unix ms.
    pub updated_at: i64,
}

/// Fields for [`DialplanRules::add`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDialplanRule {
    /// What it matches and does.
    pub spec: RuleSpec,
    /// Where to insert it (1 = first); `None` or past the end appends.
    pub position: Option<u32>,
    /// Whether it routes at once.
    pub enabled: bool,
}

/// A partial update for [`DialplanRules::update`]: `None` leaves a field
/// as is. The result is validated as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialplanRuleUpdate {
    /// New name.
    pub name: Option<String>,
    /// New pattern.
    pub pattern: Option<String>,
    /// New class.
    pub class: Option<CallPermission>,
    /// New strip count.
    pub strip: Option<u32>,
    /// New prepend text.
    pub prepend: Option<String>,
    /// `Some(None)` clears the rewrite.
    pub rewrite: Option<Option<String>>,
    /// New action.
    pub action: Option<RuleAction>,
    /// New trunk list.
    pub trunks: Option<Vec<String>>,
    /// `Some(None)` clears the status.
    pub status: Option<Option<u16>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

impl DialplanRuleUpdate {
    /// `spec` with this update applied.
    pub fn apply_to(&self, spec: &RuleSpec) -> RuleSpec {
        RuleSpec {
            name: self.name.clone().unwrap_or_else(|| spec.name.clone()),
            pattern: self.pattern.clone().unwrap_or_else(|| spec.pattern.clone()),
            class: self.class.unwrap_or(spec.class),
            strip: self.strip.unwrap_or(spec.strip),
            prepend: self.prepend.clone().unwrap_or_else(|| spec.prepend.clone()),
            rewrite: self.rewrite.clone().unwrap_or_else(|| spec.rewrite.clone()),
            action: self.action.unwrap_or(spec.action),
            trunks: self.trunks.clone().unwrap_or_else(|| spec.trunks.clone()),
            status: self.status.unwrap_or(spec.status),
        }
    }
}

/// Repository of dialplan rules; get one from [`crate::Store::dialplan_rules`].
#[derive(Debug, Clone, Copy)]
pub struct DialplanRules<'a> {
    pool: &'a Pool,
}

macro_rules! rule_cols {
    () => {
        "id, position, name, pattern, class, strip, prepend, rewrite, action, trunks, status, \
         enabled, created_at, updated_at"
    };
}

/// Binds a rule's fields as `$2`..`$10` (name .. status), the layout the
/// INSERT of `add` and the UPDATE of `update` share.
macro_rules! bind_spec {
    ($query:expr, $spec:expr) => {{
        let s: &RuleSpec = $spec;
        $query
            .bind(&s.name)
            .bind(&s.pattern)
            .bind(s.class.as_str())
            .bind(i64::from(s.strip))
            .bind(&s.prepend)
            .bind(&s.rewrite)
            .bind(s.action.as_str())
            .bind(trunks_json(s))
            .bind(s.status.map(i64::from))
    }};
}

/// Takes the dialplan's write lock and bumps the revision (see the module
/// docs); the first statement of every change.
const BUMP_REVISION: &str = "UPDATE dialplan_revision SET revision = revision + 1 WHERE id = 1";

fn rule_from(row: &impl Get) -> Result<DialplanRule> {
    let trunks_json = row.text("trunks")?;
    let trunks: Vec<String> =
        serde_json::from_str(&trunks_json).map_err(|_| StoreError::Corrupt {
            column: "dialplan_rules.trunks",
            value: trunks_json.clone(),
        })?;
    Ok(DialplanRule {
        id: row.int("id")?,
        position: narrow("dialplan_rules.position", row.int("position")?)?,
        spec: RuleSpec {
            name: row.text("name")?,
            pattern: row.text("pattern")?,
            class: parse_class(&row.text("class")?)?,
            strip: narrow("dialplan_rules.strip", row.int("strip")?)?,
            prepend: row.text("prepend")?,
            rewrite: row.opt_text("rewrite")?,
            action: RuleAction::parse(&row.text("action")?)?,
            trunks,
            status: row
                .opt_int("status")?
                .map(|s| narrow("dialplan_rules.status", s))
                .transpose()?,
        },
        enabled: row.flag("enabled")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound {
        what: "dialplan rule",
        key: id.to_string(),
    }
}

fn trunks_json(spec: &RuleSpec) -> String {
    serde_json::Value::from(spec.trunks.clone()).to_string()
}

impl<'a> DialplanRules<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        DialplanRules { pool }
    }

    /// Validates and inserts a rule at its position (shifting the rules
    /// from there on down), returning it as stored.
    pub async fn add(&self, new: &NewDialplanRule) -> Result<DialplanRule> {
        new.spec.validate()?;
        if new.position == Some(0) {
            return Err(StoreError::Invalid {
                field: "position",
                reason: "positions start at 1".into(),
            });
        }
        const SQL: &str = concat!(
            "INSERT INTO dialplan_rules (position, name, pattern, class, strip, prepend, rewrite, \
             action, trunks, status, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING ",
            rule_cols!()
        );
        let s = &new.spec;
        on_pool!(self.pool, p => {
            let mut tx = p.begin().await?;
            sqlx::query(BUMP_REVISION).execute(&mut *tx).await?;
            let count = sqlx::query("SELECT COUNT(*) AS n FROM dialplan_rules")
                .fetch_one(&mut *tx).await?.int("n")?;
            let position = new.position.map_or(count + 1, |p| i64::from(p).min(count + 1));
            sqlx::query("UPDATE dialplan_rules SET position = position + 1 WHERE position >= $1")
                .bind(position).execute(&mut *tx).await?;
            let row = bind_spec!(sqlx::query(SQL).bind(position), s)
                .bind(new.enabled)
                .bind(now_ms())
                .fetch_one(&mut *tx)
                .await?;
            let rule = rule_from(&row)?;
            tx.commit().await?;
            Ok(rule)
        })
    }

    /// Every stored rule, enabled or not, in position order.
    pub async fn list(&self) -> Result<Vec<DialplanRule>> {
        const SQL: &str = concat!(
            "SELECT ",
            rule_cols!(),
            " FROM dialplan_rules ORDER BY position, id"
        );
        on_pool!(self.pool, p => {
            sqlx::query(SQL).fetch_all(p).await?.iter().map(rule_from).collect()
        })
    }

    /// The rule with `id`, if any.
    pub async fn get(&self, id: i64) -> Result<Option<DialplanRule>> {
        const SQL: &str = concat!(
            "SELECT ",
            rule_cols!(),
            " FROM dialplan_rules WHERE id = $1"
        );
        on_pool!(self.pool, p => {
            sqlx::query(SQL).bind(id).fetch_optional(p).await?
                .map(|row| rule_from(&row)).transpose()
        })
    }

    /// Applies a partial update to rule `id`; the resulting rule is
    /// validated as a whole before anything is written.
    pub async fn update(&self, id: i64, update: &DialplanRuleUpdate) -> Result<DialplanRule> {
        const SQL: &str = concat!(
            "UPDATE dialplan_rules SET name = $2, pattern = $3, class = $4, strip = $5, \
             prepend = $6, rewrite = $7, action = $8, trunks = $9, status = $10, \
             enabled = $11, updated_at = $12 WHERE id = $1 RETURNING ",
            rule_cols!()
        );
        let current = self.get(id).await?.ok_or_else(|| not_found(id))?;
        let s = update.apply_to(&current.spec);
        s.validate()?;
        on_pool!(self.pool, p => {
            let mut tx = p.begin().await?;
            sqlx::query(BUMP_REVISION).execute(&mut *tx).await?;
            let row = bind_spec!(sqlx::query(SQL).bind(id), &s)
                .bind(update.enabled.unwrap_or(current.enabled))
                .bind(now_ms())
                .fetch_optional(&mut *tx)
                .await?;
            let rule = row.map(|row| rule_from(&row)).transpose()?.ok_or_else(|| not_found(id))?;
            tx.commit().await?;
            Ok(rule)
        })
    }

    /// Deletes rule `id` and closes the gap it leaves.
    pub async fn remove(&self, id: i64) -> Result<DialplanRule> {
        const SQL: &str = concat!(
            "DELETE FROM dialplan_rules WHERE id = $1 RETURNING ",
            rule_cols!()
        );
        on_pool!(self.pool, p => {
            let mut tx = p.begin().await?;
            sqlx::query(BUMP_REVISION).execute(&mut *tx).await?;
            let row = sqlx::query(SQL).bind(id).fetch_optional(&mut *tx).await?;
            let rule = row.map(|row| rule_from(&row)).transpose()?.ok_or_else(|| not_found(id))?;
            sqlx::query("UPDATE dialplan_rules SET position = position - 1 WHERE position > $1")
                .bind(i64::from(rule.position)).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(rule)
        })
    }

    /// Moves rule `id` to `position` (1 = first; past the end = last),
    /// shifting the rules in between, and returns it.
    pub async fn move_to(&self, id: i64, position: u32) -> Result<DialplanRule> {
        if position == 0 {
            return Err(StoreError::Invalid {
                field: "position",
                reason: "positions start at 1".into(),
            });
        }
        const SQL: &str = concat!(
            "UPDATE dialplan_rules SET position = $2, updated_at = $3 WHERE id = $1 RETURNING ",
            rule_cols!()
        );
        on_pool!(self.pool, p => {
            let mut tx = p.begin().await?;
            sqlx::query(BUMP_REVISION).execute(&mut *tx).await?;
            let from = sqlx::query("SELECT position FROM dialplan_rules WHERE id = $1")
                .bind(id).fetch_optional(&mut *tx).await?
                .map(|row| row.int("position")).transpose()?
                .ok_or_else(|| not_found(id))?;
            let count = sqlx::query("SELECT COUNT(*) AS n FROM dialplan_rules")
                .fetch_one(&mut *tx).await?.int("n")?;
            let to = i64::from(position).min(count);
            if to < from {
                sqlx::query(
                    "UPDATE dialplan_rules SET position = position + 1 \
                     WHERE position >= $1 AND position < $2",
                )
                .bind(to).bind(from).execute(&mut *tx).await?;
            } else if to > from {
                sqlx::query(
                    "UPDATE dialplan_rules SET position = position - 1 \
                     WHERE position > $1 AND position <= $2",
                )
                .bind(from).bind(to).execute(&mut *tx).await?;
            }
            let row = sqlx::query(SQL)
                .bind(id).bind(to).bind(now_ms()).fetch_one(&mut *tx).await?;
            let rule = rule_from(&row)?;
            tx.commit().await?;
            Ok(rule)
        })
    }

    /// A counter bumped by every change to the rules: a running server
    /// reloads them when it differs from the one it last saw.
    pub async fn revision(&self) -> Result<i64> {
        on_pool!(self.pool, p => {
            let row = sqlx::query("SELECT revision FROM dialplan_revision WHERE id = 1")
                .fetch_one(p)
                .await?;
            row.int("revision")
        })
    }
}
