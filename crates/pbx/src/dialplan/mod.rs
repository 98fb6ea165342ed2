//! The dialplan: ordered rules that turn a dialed number into a routing
//! decision, with permission classes and number rewriting.
//!
//! Rules are tried in order and the first whose pattern matches wins
//! (Kamailio-style explicit order rather than Asterisk's specificity
//! sort, so an administrator reads the plan top to bottom). A match whose
//! class the caller may not dial is refused (403); no match is 404.

mod pattern;

pub use pattern::{Pattern, PatternError};

/// What a call may reach, in increasing order: a caller with a class may
/// dial everything up to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallClass {
    /// Extensions, features, internal services.
    Internal,
    /// National numbers through a trunk.
    National,
    /// International numbers.
    International,
}

/// What to do with a matched number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ring this extension (the rewritten number).
    Extension,
    /// Out through these trunks, tried in order (failover, least cost
    /// ordering is the order given).
    Trunk(Vec<String>),
    /// Hand to a feature application (voicemail, ivr, queue, ...), with an
    /// argument.
    Application {
        /// Application name.
        name: String,
        /// Its argument (the rewritten number when empty).
        arg: String,
    },
    /// Refuse with this SIP status.
    Reject(u16),
}

/// One dialplan rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Name for logs and CDRs.
    pub name: String,
    /// What it matches.
    pub pattern: Pattern,
    /// The class a caller needs.
    pub class: CallClass,
    /// Digits removed from the front before `prepend`.
    pub strip: usize,
    /// Text put in front after stripping.
    pub prepend: String,
    /// For regex patterns: the new number with `$1`.. `$9` replaced by the
    /// captures (overrides strip/prepend).
    pub rewrite: Option<String>,
    /// What to do.
    pub action: Action,
}

/// A routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The rule that matched.
    pub rule: String,
    /// The number to use from now on.
    pub number: String,
    /// What to do.
    pub action: Action,
}

/// Why a number cannot be routed, with the SIP status to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No rule matches: 404.
    #[error("no route for {0}")]
    NoRoute(String),
    /// The caller's class is too low: 403.
    #[error("calling {number} needs {needed:?} permission (rule {rule})")]
    Forbidden {
        /// The dialed number.
        number: String,
        /// The rule that matched.
        rule: String,
        /// The class it needs.
        needed: CallClass,
    },
}

impl RouteError {
    /// The SIP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            RouteError::NoRoute(_) => 404,
            RouteError::Forbidden { .. } => 403,
        }
    }
}

/// An ordered set of rules.
#[derive(Debug, Clone, Default)]
pub struct Dialplan {
    rules: Vec<Rule>,
}

fn substitute(template: &str, captures: &[String]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$'
            && let Some(d) = chars.peek().and_then(|d| d.to_digit(10))
        {
            chars.next();
            out.push_str(captures.get(d as usize).map_or("", String::as_str));
            continue;
        }
        out.push(c);
    }
    out
}

impl Dialplan {
    /// A plan of `rules`, tried in order.
    pub fn new(rules: Vec<Rule>) -> Dialplan {
        Dialplan { rules }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Routes `dialed` for a caller allowed up to `caller_class`.
    pub fn route(&self, dialed: &str, caller_class: CallClass) -> Result<Route, RouteError> {
        for rule in &self.rules {
            let Some(captures) = rule.pattern.matches(dialed) else {
                continue;
            };
            if rule.class > caller_class {
                return Err(RouteError::Forbidden {
                    number: dialed.to_string(),
                    rule: rule.name.clone(),
                    needed: rule.class,
                });
            }
            let number = match &rule.rewrite {
                Some(t) => substitute(t, &captures),
                None => {
                    let rest = dialed
                        .get(rule.strip.min(dialed.len())..)
                        .unwrap_or_default();
                    format!("{}{rest}", rule.prepend)
                }
            };
            let action = match &rule.action {
                Action::Application { name, arg } if arg.is_empty() => Action::Application {
                    name: name.clone(),
                    arg: number.clone(),
                },
                a => a.clone(),
            };
            return Ok(Route {
                rule: rule.name.clone(),
                number,
                action,
            });
        }
        Err(RouteError::NoRoute(dialed.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, pattern: &str, class: CallClass, action: Action) -> Rule {
        Rule {
            name: name.into(),
            pattern: Pattern::parse(pattern).unwrap(),
            class,
            strip: 0,
            prepend: String::new(),
            rewrite: None,
            action,
        }
    }

    fn plan() -> Dialplan {
        let mut national = rule(
            "national",
            "_9NXXNXXXXXX",
            CallClass::National,
            Action::Trunk(vec!["carrier-a".into(), "carrier-b".into()]),
        );
        national.strip = 1;
        national.prepend = "+1".into();
        let mut intl = rule(
            "international",
            "regex:9011(\\d+)",
            CallClass::International,
            Action::Trunk(vec!["carrier-a".into()]),
        );
        intl.rewrite = Some("+$1".into());
        Dialplan::new(vec![
            rule(
                "voicemail",
                "*97",
                CallClass::Internal,
                Action::Application {
                    name: "voicemail".into(),
                    arg: String::new(),
                },
            ),
            rule("extensions", "_1XX", CallClass::Internal, Action::Extension),
            rule(
                "emergency",
                "911",
                CallClass::Internal,
                Action::Trunk(vec!["carrier-a".into()]),
            ),
            national,
            intl,
            rule(
                "premium",
                "_91900.",
                CallClass::Internal,
                Action::Reject(403),
            ),
        ])
    }

    #[test]
    fn routes_in_order_with_rewrites() {
        let p = plan();
        let r = p.route("101", CallClass::Internal).unwrap();
        assert_eq!(
            (r.rule.as_str(), r.number.as_str(), &r.action),
            ("extensions", "101", &Action::Extension)
        );
        let r = p.route("92125551234", CallClass::National).unwrap();
        assert_eq!(r.number, "+12125551234");
        assert_eq!(
            r.action,
            Action::Trunk(vec!["carrier-a".into(), "carrier-b".into()])
        );
        let r = p
            .route("901144201234567", CallClass::International)
            .unwrap();
        assert_eq!(r.number, "+44201234567");
        let r = p.route("*97", CallClass::Internal).unwrap();
        assert_eq!(
            r.action,
            Action::Application {
                name: "voicemail".into(),
                arg: "*97".into()
            }
        );
        // Emergency calls need no permission beyond internal.
        assert!(p.route("911", CallClass::Internal).is_ok());
    }

    #[test]
    fn permissions_and_misses() {
        let p = plan();
        let e = p.route("901144201234567", CallClass::National).unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(matches!(
            e,
            RouteError::Forbidden {
                needed: CallClass::International,
                ..
            }
        ));
        let e = p.route("92125551234", CallClass::Internal).unwrap_err();
        assert_eq!(e.status(), 403);
        let e = p.route("5555", CallClass::International).unwrap_err();
        assert_eq!(e, RouteError::NoRoute("5555".into()));
        assert_eq!(e.status(), 404);
    }

    #[test]
    fn substitution() {
        let caps = vec!["whole".to_string(), "a".to_string()];
        assert_eq!(substitute("x$1y$2$", &caps), "xay$");
    }
}
