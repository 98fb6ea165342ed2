//! Brute-force protection (the role of Kamailio's pike/secfilter and
//! fail2ban in front of Asterisk), as a sans-IO state machine.
//!
//! Authentication failures are counted per source IP and per username in a
//! sliding window. When a source reaches the limit, or makes the failure
//! that takes a username to the limit, that source is blocked for a while:
//! its requests are refused (403) or ignored. Usernames themselves are never
//! locked, so an attacker cannot lock a real user out, and a correct user
//! from another source still gets in. Sources in trusted networks are never
//! blocked. Every failure, lockout and unlock is reported as an
//! [`AuditEvent`] for the security audit log.

use std::collections::VecDeque;

use ahash::HashMap;
use std::net::IpAddr;
use std::str::FromStr;

use crate::UnixMs;

/// An IP network in CIDR notation (`10.0.0.0/8`, `::1/128`, or a bare
/// address meaning a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A string that is not `ADDRESS[/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP network (ADDRESS or ADDRESS/PREFIX)")]
pub struct IpNetError(pub String);

impl FromStr for IpNet {
    type Err = IpNetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpNetError(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(err)?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl IpNet {
    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count
    /// as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// Failures within `window_ms` that trigger a block (default 5).
    pub max_failures: u32,
    /// Sliding window for counting (default 5 minutes).
    pub window_ms: u64,
    /// How long a block lasts (default 15 minutes).
    pub block_ms: u64,
    /// Networks that are never blocked.
    pub trusted: Vec<IpNet>,
    /// Ignore blocked sources instead of answering 403.
    pub silent: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_failures: 5,
            window_ms: 5 * 60 * 1000,
            block_ms: 15 * 60 * 1000,
            trusted: Vec::new(),
            silent: false,
        }
    }
}

/// What to do with a request from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Process it.
    Allowed,
    /// Blocked: answer 403.
    Forbidden,
    /// Blocked: drop it without an answer.
    Ignore,
}

/// A security event for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// A failed authentication.
    AuthFailure {
        /// When.
        at: UnixMs,
        /// Source address.
        source: IpAddr,
        /// Username claimed.
        username: String,
        /// Why it failed (never the password).
        reason: &'static str,
        /// Failures from this source within the window, this one included.
        source_failures: u32,
    },
    /// A source was blocked.
    Lockout {
        /// When.
        at: UnixMs,
        /// The blocked source.
        source: IpAddr,
        /// The username of the failure that triggered it.
        username: String,
        /// Failures counted for the source.
        source_failures: u32,
        /// Failures counted for the username.
        username_failures: u32,
        /// Block end.
        until: UnixMs,
    },
    /// A block ended (expired or lifted by an administrator).
    Unlock {
        /// When.
        at: UnixMs,
        /// The source.
        source: IpAddr,
        /// `expired` or `admin`.
        how: &'static str,
    },
}

/// The guard's state.
#[derive(Debug, Default)]
pub struct Guard {
    cfg: GuardConfig,
    by_source: HashMap<IpAddr, VecDeque<UnixMs>>,
    by_user: HashMap<String, VecDeque<UnixMs>>,
    blocked: HashMap<IpAddr, UnixMs>,
    events: VecDeque<AuditEvent>,
    /// When old failure counts are next forgotten (while any are kept), so
    /// a flood from many addresses does not stay in memory.
    next_prune: Option<UnixMs>,
}

fn count_recent(q: &mut VecDeque<UnixMs>, now: UnixMs, window: u64) -> u32 {
    while q.front().is_some_and(|&t| now.saturating_sub(t) >= window) {
        q.pop_front();
    }
    q.len() as u32
}

impl Guard {
    /// A guard with `cfg`.
    pub fn new(cfg: GuardConfig) -> Guard {
        Guard {
            cfg,
            ..Guard::default()
        }
    }

    /// Whether `source` is trusted (never blocked).
    pub fn is_trusted(&self, source: IpAddr) -> bool {
        self.cfg.trusted.iter().any(|n| n.contains(source))
    }

    /// May a request from `source` be processed?
    pub fn check(&mut self, source: IpAddr, now: UnixMs) -> Access {
        match self.blocked.get(&source) {
            Some(&until) if now < until => {
                if self.cfg.silent {
                    Access::Ignore
                } else {
                    Access::Forbidden
                }
            }
            Some(_) => {
                self.blocked.remove(&source);
                self.events.push_back(AuditEvent::Unlock {
                    at: now,
                    source,
                    how: "expired",
                });
                Access::Allowed
            }
            None => Access::Allowed,
        }
    }

    /// Records a failed authentication; returns `true` if the source is now
    /// blocked.
    pub fn record_failure(
        &mut self,
        source: IpAddr,
        username: &str,
        reason: &'static str,
        now: UnixMs,
    ) -> bool {
        let window = self.cfg.window_ms;
        self.next_prune.get_or_insert(now + window);
        let sq = self.by_source.entry(source).or_default();
        sq.push_back(now);
        let source_failures = count_recent(sq, now, window);
        // Bound the per-user table: a flood of random usernames must not
        // grow memory without limit.
        if self.by_user.len() >= 100_000 && !self.by_user.contains_key(username) {
            self.by_user.retain(|_, q| count_recent(q, now, window) > 0);
        }
        let uq = self.by_user.entry(username.to_string()).or_default();
        uq.push_back(now);
        let username_failures = count_recent(uq, now, window);
        self.events.push_back(AuditEvent::AuthFailure {
            at: now,
            source,
            username: username.to_string(),
            reason,
            source_failures,
        });
        let limit = self.cfg.max_failures;
        if self.is_trusted(source) || self.blocked.contains_key(&source) {
            return self.blocked.contains_key(&source);
        }
        if source_failures >= limit || username_failures >= limit {
            let until = now + self.cfg.block_ms;
            self.blocked.insert(source, until);
            self.by_source.remove(&source);
            self.events.push_back(AuditEvent::Lockout {
                at: now,
                source,
                username: username.to_string(),
                source_failures,
                username_failures,
                until,
            });
            return true;
        }
        false
    }

    /// A successful authentication clears the source's failure count.
    pub fn record_success(&mut self, source: IpAddr) {
        self.by_source.remove(&source);
    }

    /// Lifts a block (administrator action). Returns whether it existed.
    pub fn unblock(&mut self, source: IpAddr, now: UnixMs) -> bool {
        let existed = self.blocked.remove(&source).is_some();
        if existed {
            self.events.push_back(AuditEvent::Unlock {
                at: now,
                source,
                how: "admin",
            });
        }
        existed
    }

    /// Currently blocked sources and when each block ends.
    pub fn blocked(&self) -> Vec<(IpAddr, UnixMs)> {
        self.blocked.iter().map(|(a, u)| (*a, *u)).collect()
    }

    /// The next moment something expires (a block, or old counts).
    pub fn poll_timeout(&self) -> Option<UnixMs> {
        let block = self.blocked.values().min().copied();
        match (block, self.next_prune) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires blocks and forgets old failures.
    pub fn handle_timeout(&mut self, now: UnixMs) {
        let expired: Vec<IpAddr> = self
            .blocked
            .iter()
            .filter(|(_, until)| now >= **until)
            .map(|(a, _)| *a)
            .collect();
        for source in expired {
            self.blocked.remove(&source);
            self.events.push_back(AuditEvent::Unlock {
                at: now,
                source,
                how: "expired",
            });
        }
        if self.next_prune.is_some_and(|t| now >= t) {
            let window = self.cfg.window_ms;
            self.by_source
                .retain(|_, q| count_recent(q, now, window) > 0);
            self.by_user.retain(|_, q| count_recent(q, now, window) > 0);
            let keep = !self.by_source.is_empty() || !self.by_user.is_empty();
            self.next_prune = keep.then_some(now + window);
        }
    }

    /// How many sources and usernames have failures counted.
    pub fn tracked(&self) -> (usize, usize) {
        (self.by_source.len(), self.by_user.len())
    }

    /// The next audit event to write.
    pub fn poll_event(&mut self) -> Option<AuditEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn five_failures_block_the_source_not_the_user() {
        let mut g = Guard::new(GuardConfig::default());
        let attacker = ip("192.0.2.66");
        for i in 0..4 {
            assert!(!g.record_failure(attacker, "100", "wrong password", i * 1000));
            assert_eq!(g.check(attacker, i * 1000), Access::Allowed);
        }
        assert!(g.record_failure(attacker, "100", "wrong password", 4000));
        assert_eq!(g.check(attacker, 5000), Access::Forbidden);
        // Another source is not affected.
        assert_eq!(g.check(ip("192.0.2.1"), 5000), Access::Allowed);
        let events: Vec<_> = std::iter::from_fn(|| g.poll_event()).collect();
        assert_eq!(events.len(), 6);
        assert!(
            matches!(events[5], AuditEvent::Lockout { source_failures: 5, until, .. } if until == 4000 + 15 * MIN)
        );
        // The block ends after 15 minutes; deadlines before it only forget
        // old counts.
        while let Some(t) = g.poll_timeout().filter(|t| *t < 4000 + 15 * MIN) {
            g.handle_timeout(t);
            assert_eq!(g.check(attacker, t), Access::Forbidden);
        }
        assert_eq!(g.poll_timeout(), Some(4000 + 15 * MIN));
        g.handle_timeout(4000 + 15 * MIN);
        assert_eq!(g.check(attacker, 4000 + 15 * MIN), Access::Allowed);
        assert!(matches!(
            g.poll_event(),
            Some(AuditEvent::Unlock { how: "expired", .. })
        ));
    }

    #[test]
    fn old_failures_are_forgotten_on_time() {
        let mut g = Guard::new(GuardConfig::default());
        for i in 0..1000u32 {
            let ip = IpAddr::from([198, 18, (i >> 8) as u8, i as u8]);
            g.record_failure(ip, &format!("user{i}"), "x", 0);
        }
        assert_eq!(g.tracked(), (1000, 1000));
        assert_eq!(g.poll_timeout(), Some(5 * MIN));
        g.handle_timeout(5 * MIN - 1);
        assert_eq!(g.tracked(), (1000, 1000));
        g.handle_timeout(5 * MIN);
        assert_eq!(g.tracked(), (0, 0));
        assert_eq!(g.poll_timeout(), None);
    }

    #[test]
    fn window_slides() {
        let mut g = Guard::new(GuardConfig::default());
        let a = ip("192.0.2.7");
        for i in 0..4 {
            g.record_failure(a, "u", "x", i * 2 * MIN);
        }
        // Failures at 0, 2, 4, 6 min: at 8 min only 6 and 4 and 8 are
        // within 5 minutes (4 min, 6 min, 8 min) -> 3 of 5.
        assert!(!g.record_failure(a, "u2", "x", 8 * MIN));
    }

    #[test]
    fn spread_attack_on_one_user_blocks_the_fifth_source() {
        let mut g = Guard::new(GuardConfig::default());
        for i in 1..=4 {
            assert!(!g.record_failure(ip(&format!("198.51.100.{i}")), "200", "x", 0));
        }
        assert!(g.record_failure(ip("198.51.100.5"), "200", "x", 0));
        assert_eq!(g.check(ip("198.51.100.1"), 1), Access::Allowed);
    }

    #[test]
    fn trusted_networks_and_silence() {
        let cfg = GuardConfig {
            trusted: vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
            silent: true,
            ..GuardConfig::default()
        };
        let mut g = Guard::new(cfg);
        for i in 0..10 {
            assert!(!g.record_failure(ip("10.1.2.3"), "u", "x", i));
            assert!(!g.record_failure(ip("::1"), "u2", "x", i));
        }
        assert_eq!(g.check(ip("10.1.2.3"), 20), Access::Allowed);
        for i in 0..5 {
            g.record_failure(ip("203.0.113.9"), "u3", "x", i);
        }
        assert_eq!(g.check(ip("203.0.113.9"), 20), Access::Ignore);
        assert!(g.unblock(ip("203.0.113.9"), 30));
        assert_eq!(g.check(ip("203.0.113.9"), 31), Access::Allowed);
    }

    #[test]
    fn networks() {
        let n: IpNet = "192.168.0.0/16".parse().unwrap();
        assert!(n.contains(ip("192.168.44.1")));
        assert!(!n.contains(ip("192.169.0.1")));
        assert!(n.contains(ip("::ffff:192.168.1.1")));
        assert!(
            "0.0.0.0/0"
                .parse::<IpNet>()
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nonsense".parse::<IpNet>().is_err());
    }
}
