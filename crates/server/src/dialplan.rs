//! The effective dialplan: the `[[dialplan]]` rules of the configuration
//! first, in file order, then the enabled rules of the database (`pbx
//! dialplan …`) by position.
//!
//! A running server keeps it current with [`watch`]: it polls the rules'
//! revision counter, and when that moved it reads the rules, builds the new
//! [`Dialplan`] on its own task and hands it to the core, which swaps it in
//! under the lock it takes for every message anyway (a move, no rebuilding
//! there). Routing is decided when an INVITE arrives, so calls in progress
//! keep the destinations they were given.
//!
//! A database rule the configuration no longer supports (its trunk was
//! removed from the file, or it was written by hand and does not parse) is
//! skipped with a warning naming its id; the other rules route as before.

use std::sync::Arc;
use std::time::Duration;

use pbx::dialplan::{Action, CallClass, Dialplan, Pattern, Rule};
use store::{CallPermission, DialplanRule, RuleAction, Store};
use tracing::{error, info, warn};

use crate::config::{ActionName, Config, DialplanEntry, TrunkEntry};
use crate::core::{Control, SharedCore};

/// The dialplan's rule for a `[[dialplan]]` entry (entries are validated
/// when the configuration loads, so this fails only on a bug).
pub fn config_rule(entry: &DialplanEntry) -> Option<Rule> {
    let action = match entry.action {
        ActionName::Extension => Action::Extension,
        ActionName::Trunk => Action::Trunk(entry.trunks.clone()),
        ActionName::Reject => Action::Reject(entry.status.unwrap_or(403)),
    };
    Some(Rule {
        name: entry.name.clone(),
        pattern: Pattern::parse(&entry.pattern).ok()?,
        class: entry.class.class(),
        strip: entry.strip,
        prepend: entry.prepend.clone(),
        rewrite: entry.rewrite.clone(),
        action,
    })
}

/// The dialplan's rule for a stored rule, or why it cannot route: its
/// pattern does not parse, or it names a trunk the configuration lacks.
pub fn database_rule(rule: &DialplanRule, trunks: &[TrunkEntry]) -> Result<Rule, String> {
    let spec = &rule.spec;
    let pattern = Pattern::parse(&spec.pattern).map_err(|e| e.to_string())?;
    check_trunks(&spec.trunks, trunks)?;
    let action = match spec.action {
        RuleAction::Extension => Action::Extension,
        RuleAction::Trunk => Action::Trunk(spec.trunks.clone()),
        RuleAction::Reject => Action::Reject(spec.status.unwrap_or(403)),
    };
    Ok(Rule {
        name: spec.name.clone(),
        pattern,
        class: class_of(spec.class),
        strip: spec.strip as usize,
        prepend: spec.prepend.clone(),
        rewrite: spec.rewrite.clone(),
        action,
    })
}

/// Err naming the first of `names` that is not a configured trunk.
pub fn check_trunks(names: &[String], trunks: &[TrunkEntry]) -> Result<(), String> {
    match names.iter().find(|n| !trunks.iter().any(|t| &t.name == *n)) {
        Some(missing) => Err(format!("no trunk named {missing:?} in the configuration")),
        None => Ok(()),
    }
}

/// The dialplan class of a stored permission level.
pub fn class_of(permission: CallPermission) -> CallClass {
    match permission {
        CallPermission::Internal => CallClass::Internal,
        CallPermission::National => CallClass::National,
        CallPermission::International => CallClass::International,
    }
}

/// The effective dialplan of `cfg` and the stored `rules`, and the stored
/// rules that were skipped (id, name, why). Disabled rules are left out
/// without a word.
pub fn build(cfg: &Config, rules: &[DialplanRule]) -> (Dialplan, Vec<(i64, String, String)>) {
    let mut effective: Vec<Rule> = cfg.dialplan.iter().filter_map(config_rule).collect();
    let mut skipped = Vec::new();
    for r in rules.iter().filter(|r| r.enabled) {
        match database_rule(r, &cfg.trunks) {
            Ok(rule) => effective.push(rule),
            Err(why) => skipped.push((r.id, r.spec.name.clone(), why)),
        }
    }
    (Dialplan::new(effective), skipped)
}

/// Reads the stored rules and builds the effective dialplan, logging the
/// rules it skips; also returns the revision the rules were read at.
pub async fn load(store: &Store, cfg: &Config) -> anyhow::Result<(Dialplan, i64)> {
    // Revision first: a change landing between the two reads makes the
    // next poll see a newer revision and load again, never the reverse.
    let revision = store.dialplan_rules().revision().await?;
    let rules = store.dialplan_rules().list().await?;
    let (plan, skipped) = build(cfg, &rules);
    for (id, name, why) in skipped {
        warn!(rule_id = id, name = %name, reason = %why, "database dialplan rule skipped");
    }
    info!(
        revision,
        rules = plan.rules().len(),
        from_config = cfg.dialplan.len(),
        "dialplan loaded"
    );
    Ok((plan, revision))
}

/// Keeps the core's dialplan in step with the database: checks the
/// revision every `every` and at once on SIGHUP (the CLI sends one after a
/// change), reloading when it moved past `seen`.
pub async fn watch(
    store: Store,
    core: Arc<SharedCore>,
    cfg: Arc<Config>,
    every: Duration,
    mut seen: i64,
) {
    let mut trigger = crate::storage::ReloadTrigger::new(every);
    loop {
        trigger.next().await;
        match store.dialplan_rules().revision().await {
            Ok(revision) if revision == seen => continue,
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "reading the dialplan revision failed");
                continue;
            }
        }
        match load(&store, &cfg).await {
            Ok((plan, revision)) => {
                core.control(Control::Dialplan(plan));
                seen = revision;
            }
            Err(e) => error!(error = %e, "reloading the dialplan failed; the previous one stays"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::RuleSpec;

    fn stored(id: i64, spec: RuleSpec, enabled: bool) -> DialplanRule {
        DialplanRule {
            id,
            position: id as u32,
            spec,
            enabled,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn config() -> Config {
        let text = "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1:5080\"\n\
                    [[dialplan]]\nname = \"internal\"\npattern = \"_20XX\"\naction = \"extension\"\n";
        crate::config::from_text(text, "pbx.toml", &[]).unwrap()
    }

    #[test]
    fn config_rules_come_first_then_enabled_database_rules() {
        let cfg = config();
        let mut out = RuleSpec::new("out", r"regex:8(\d+)", RuleAction::Trunk);
        out.trunks = vec!["carrier".into()];
        out.rewrite = Some("0049$1".into());
        out.class = CallPermission::National;
        // A database rule cannot shadow a config rule: config wins for 2001.
        let shadowed = RuleSpec::new("shadowed", "2001", RuleAction::Reject);
        let mut gone = RuleSpec::new("gone", "prefix:7", RuleAction::Trunk);
        gone.trunks = vec!["removed-carrier".into()];
        let mut blocked = RuleSpec::new("blocked", "prefix:1900", RuleAction::Reject);
        blocked.status = Some(603);
        let rules = [
            stored(1, shadowed, true),
            stored(2, gone, true),
            stored(3, out, true),
            stored(4, blocked.clone(), false),
        ];
        let (plan, skipped) = build(&cfg, &rules);
        let names: Vec<_> = plan.rules().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["internal", "shadowed", "out"]);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].0, 2);
        assert!(skipped[0].2.contains("removed-carrier"), "{:?}", skipped);

        let r = plan.route("2001", CallClass::Internal).unwrap();
        assert_eq!((r.rule.as_str(), r.action), ("internal", Action::Extension));
        let r = plan.route("8030123", CallClass::National).unwrap();
        assert_eq!(r.number, "0049030123");
        assert_eq!(r.action, Action::Trunk(vec!["carrier".into()]));
        assert_eq!(
            plan.route("8030123", CallClass::Internal)
                .unwrap_err()
                .status(),
            403
        );
        // Disabled: not routed; the skipped rule does not route either.
        assert_eq!(
            plan.route("1900123", CallClass::International)
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            plan.route("7123", CallClass::International)
                .unwrap_err()
                .status(),
            404
        );

        let (plan, _) = build(&cfg, &[stored(4, blocked, true)]);
        assert_eq!(
            plan.route("1900123", CallClass::Internal).unwrap(),
            pbx::dialplan::Route {
                rule: "blocked".into(),
                number: "1900123".into(),
                action: Action::Reject(603)
            }
        );
    }

    #[test]
    fn a_stored_rule_that_no_longer_parses_is_refused_not_panicked_on() {
        let cfg = config();
        let bad = stored(
            9,
            RuleSpec::new("hand-made", "_9Q", RuleAction::Extension),
            true,
        );
        let why = database_rule(&bad, &cfg.trunks).unwrap_err();
        assert!(why.contains("_9Q"), "{why}");
        let (plan, skipped) = build(&cfg, &[bad]);
        assert_eq!(plan.rules().len(), 1);
        assert_eq!(skipped[0].0, 9);
    }
}
