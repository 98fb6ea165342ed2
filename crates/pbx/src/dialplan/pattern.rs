//! Dialed-number patterns: exact numbers, prefixes, Asterisk-style
//! patterns (`_9NXXNXXXXXX`) and regular expressions.

use std::fmt;

/// Why a pattern could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad dial pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong.
    pub reason: String,
}

/// One position of an Asterisk-style pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Elem {
    /// This exact character.
    Literal(char),
    /// Any one of these characters (`X`, `Z`, `N`, `[...]`).
    Set(Vec<char>),
    /// One or more further characters (`.`).
    OneOrMore,
    /// Zero or more further characters (`!`).
    ZeroOrMore,
}

/// A dialed-number pattern: exact number, prefix, Asterisk-style pattern
/// or regular expression (see [`Pattern::parse`]).
#[derive(Clone)]
pub struct Pattern(Kind);

#[derive(Clone)]
enum Kind {
    /// Exactly this number.
    Exact(String),
    /// Any number starting with this (and longer than it).
    Prefix(String),
    /// Asterisk extension-pattern syntax: `_` then `X` (0-9), `Z` (1-9),
    /// `N` (2-9), `[15-7]` sets, `.` (one or more more), `!` (zero or
    /// more more), other characters literal.
    Asterisk(String, Vec<Elem>),
    /// A regular expression matched against the whole number; its capture
    /// groups can be used in the rewrite (`$1`).
    Regex(regex::Regex),
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({self})")
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Exact(s) => f.write_str(s),
            Kind::Prefix(s) => write!(f, "prefix:{s}"),
            Kind::Asterisk(s, _) => f.write_str(s),
            Kind::Regex(r) => write!(f, "regex:{}", r.as_str()),
        }
    }
}

fn dial_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | '+')
}

impl Pattern {
    /// Reads `100` (exact), `prefix:9`, `_9NXXNXXXXXX` or `regex:^9(\d+)$`.
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        let err = |reason: &str| PatternError {
            pattern: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(p) = s.strip_prefix("prefix:") {
            if p.is_empty() || !p.chars().all(dial_char) {
                return Err(err("a prefix is one or more of 0-9 * # +"));
            }
            return Ok(Pattern(Kind::Prefix(p.to_string())));
        }
        if let Some(r) = s.strip_prefix("regex:") {
            // Anchor so that the whole number must match.
            let anchored = format!("^(?:{r})$");
            return regex::Regex::new(&anchored)
                .map(|r| Pattern(Kind::Regex(r)))
                .map_err(|e| err(&regex_reason(&e)));
        }
        if let Some(body) = s.strip_prefix('_') {
            let mut elems = Vec::new();
            let mut chars = body.chars().peekable();
            while let Some(c) = chars.next() {
                let e = match c.to_ascii_uppercase() {
                    'X' => Elem::Set(('0'..='9').collect()),
                    'Z' => Elem::Set(('1'..='9').collect()),
                    'N' => Elem::Set(('2'..='9').collect()),
                    '.' => Elem::OneOrMore,
                    '!' => Elem::ZeroOrMore,
                    '[' => {
                        let mut set = Vec::new();
                        let mut closed = false;
                        let mut prev: Option<char> = None;
                        while let Some(c) = chars.next() {
                            match c {
                                ']' => {
                                    closed = true;
                                    break;
                                }
                                '-' => {
                                    let (Some(lo), Some(&hi)) = (prev, chars.peek()) else {
                                        return Err(err("a range needs both ends, as in [2-5]"));
                                    };
                                    chars.next();
                                    if !lo.is_ascii_digit() || !hi.is_ascii_digit() || lo > hi {
                                        return Err(err("a range is two digits, low-high"));
                                    }
                                    set.extend((lo..=hi).skip(1));
                                    prev = None;
                                }
                                c if dial_char(c) => {
                                    set.push(c);
                                    prev = Some(c);
                                }
                                _ => return Err(err("a set holds only 0-9 * # + and ranges")),
                            }
                        }
                        if !closed || set.is_empty() {
                            return Err(err("unclosed or empty [set]"));
                        }
                        Elem::Set(set)
                    }
                    c if dial_char(c) => Elem::Literal(c),
                    _ => return Err(err("unknown pattern character")),
                };
                let wildcard = matches!(e, Elem::OneOrMore | Elem::ZeroOrMore);
                elems.push(e);
                if wildcard && chars.peek().is_some() {
                    return Err(err(". and ! must come last"));
                }
            }
            if elems.is_empty() {
                return Err(err("empty pattern"));
            }
            return Ok(Pattern(Kind::Asterisk(s.to_string(), elems)));
        }
        if s.is_empty() || !s.chars().all(dial_char) {
            return Err(err(
                "expected digits (exact), prefix:DIGITS, _PATTERN or regex:EXPRESSION",
            ));
        }
        Ok(Pattern(Kind::Exact(s.to_string())))
    }

    /// Whether `number` matches; for regexes, the captures come back too
    /// (index 0 is the whole number).
    pub fn matches(&self, number: &str) -> Option<Vec<String>> {
        match &self.0 {
            Kind::Exact(s) => (s == number).then(|| vec![number.to_string()]),
            Kind::Prefix(p) => (number.len() > p.len() && number.starts_with(p.as_str()))
                .then(|| vec![number.to_string()]),
            Kind::Asterisk(_, elems) => {
                asterisk_match(elems, number).then(|| vec![number.to_string()])
            }
            Kind::Regex(r) => r.captures(number).map(|c| {
                c.iter()
                    .map(|m| m.map(|m| m.as_str().to_string()).unwrap_or_default())
                    .collect()
            }),
        }
    }
}

/// The regex crate's syntax errors span several lines (the expression, a
/// caret, the message); a pattern error is read on one line in config
/// errors and CLI output, and already names the pattern, so keep the
/// message alone.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .last()
        .map(|l| l.trim().trim_start_matches("error:").trim().to_string())
        .filter(|l| !l.is_empty())
        .unwrap_or(text)
}

fn asterisk_match(elems: &[Elem], number: &str) -> bool {
    let mut chars = number.chars();
    for e in elems {
        match e {
            Elem::OneOrMore => return chars.next().is_some(),
            Elem::ZeroOrMore => return true,
            Elem::Literal(l) => {
                if chars.next() != Some(*l) {
                    return false;
                }
            }
            Elem::Set(set) => match chars.next() {
                Some(c) if set.contains(&c) => {}
                _ => return false,
            },
        }
    }
    chars.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        Pattern::parse(p).unwrap().matches(n).is_some()
    }

    #[test]
    fn asterisk_patterns() {
        assert!(m("_9NXXNXXXXXX", "92125551234"));
        assert!(!m("_9NXXNXXXXXX", "91125551234"), "N excludes 1");
        assert!(!m("_9NXXNXXXXXX", "9212555123"), "one digit short");
        assert!(!m("_9NXXNXXXXXX", "921255512345"), "one digit long");
        assert!(m("_1XX", "100"));
        assert!(m("_[1-3]0[05]", "205"));
        assert!(!m("_[1-3]0[05]", "401"));
        assert!(m("_011.", "01144201234"));
        assert!(!m("_011.", "011"), ". needs at least one more");
        assert!(m("_*7!", "*7"));
        assert!(m("_x", "5"), "lower case works too");
    }

    #[test]
    fn exact_prefix_regex() {
        assert!(m("100", "100"));
        assert!(!m("100", "1000"));
        assert!(m("prefix:9", "95551234"));
        assert!(!m("prefix:9", "9"));
        let p = Pattern::parse(r"regex:9(\d{3})(\d+)").unwrap();
        assert_eq!(p.matches("95551234").unwrap(), ["95551234", "555", "1234"]);
        assert!(p.matches("x95551234").is_none(), "anchored at the start");
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in [
            "",
            "_",
            "_9.X",
            "_[",
            "_[5-2]",
            "_9Q",
            "prefix:",
            "prefix:9a",
            "regex:(",
            "regex:[9",
            "10a",
        ] {
            let e = Pattern::parse(bad).unwrap_err();
            assert!(!e.reason.is_empty(), "{bad}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }
}
