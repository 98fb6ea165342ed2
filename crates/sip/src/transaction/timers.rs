//! Transaction timers (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2,
//! Table 4; RFC 6026 §8.4, §8.7 for Timers L and M).
//!
//! Every timer of every transaction lives in one [`TimerTable`], ordered by
//! deadline, so that the layer can report the earliest one through
//! `poll_timeout` and the caller can jump straight to it.

use std::collections::BTreeMap;

use ahash::HashMap;
use std::time::{Duration, Instant};

use super::TransactionKey;

/// The base timer values of RFC 3261 §17.1.1.1 and Table 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE
    /// responses (default 4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (default 5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: Timers B, F, H, J (unreliable), L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D: at least 32 s on unreliable transports, zero on reliable
    /// ones (§17.1.1.2). Scales with T1 when T1 is raised above 500 ms.
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1x64().max(Duration::from_secs(32))
        }
    }

    /// Timers I and K: T4 on unreliable transports, zero on reliable ones.
    pub fn t4_or_zero(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer J: 64·T1 on unreliable transports, zero on reliable ones.
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1x64()
        }
    }

    /// The next retransmit interval after `current`, doubled and capped at
    /// T2 (Timers E and G).
    pub fn backoff_capped(&self, current: Duration) -> Duration {
        current.saturating_mul(2).min(self.t2)
    }
}

/// A named transaction timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE request retransmit (client, unreliable only).
    A,
    /// INVITE transaction timeout (client).
    B,
    /// Wait time for response retransmissions (INVITE client, Completed).
    D,
    /// Non-INVITE request retransmit (client, unreliable only).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// INVITE final response retransmit (server, unreliable only).
    G,
    /// Wait time for ACK receipt (INVITE server, Completed).
    H,
    /// Wait time for ACK retransmissions (INVITE server, Confirmed).
    I,
    /// Wait time for non-INVITE request retransmissions (server).
    J,
    /// Wait time for non-INVITE response retransmissions (client).
    K,
    /// Wait time for accepted INVITE request retransmissions (server,
    /// RFC 6026).
    L,
    /// Wait time for retransmissions of 2xx responses (client, RFC 6026).
    M,
    /// The 200 ms after which an INVITE server transaction answers
    /// `100 Trying` on its own if the TU has not (§17.2.1).
    Trying,
}

/// A position in the deadline order: the deadline, then arming order.
type Slot = (Instant, u64);

/// All armed timers, earliest first. At most one deadline per
/// (transaction, timer) pair: arming again replaces the old deadline.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    by_deadline: BTreeMap<Slot, (TransactionKey, Timer)>,
    /// The armed timers of each transaction (a handful at most).
    by_key: HashMap<TransactionKey, Vec<(Timer, Slot)>>,
    seq: u64,
}

impl TimerTable {
    /// Arms (or re-arms) `timer` of `key` to fire at `at`.
    pub(crate) fn set(&mut self, key: &TransactionKey, timer: Timer, at: Instant) {
        self.cancel(key, timer);
        self.seq = self.seq.wrapping_add(1);
        let slot = (at, self.seq);
        self.by_deadline.insert(slot, (key.clone(), timer));
        self.by_key
            .entry(key.clone())
            .or_default()
            .push((timer, slot));
    }

    /// Disarms `timer` of `key`, if armed.
    pub(crate) fn cancel(&mut self, key: &TransactionKey, timer: Timer) {
        let Some(armed) = self.by_key.get_mut(key) else {
            return;
        };
        if let Some(i) = armed.iter().position(|(t, _)| *t == timer) {
            let (_, slot) = armed.swap_remove(i);
            self.by_deadline.remove(&slot);
        }
        if armed.is_empty() {
            self.by_key.remove(key);
        }
    }

    /// Disarms every timer of `key`.
    pub(crate) fn cancel_all(&mut self, key: &TransactionKey) {
        for (_, slot) in self.by_key.remove(key).unwrap_or_default() {
            self.by_deadline.remove(&slot);
        }
    }

    /// The transactions that have timers armed.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = &TransactionKey> {
        self.by_key.keys()
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.by_deadline.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TransactionKey, Timer)> {
        let (&(at, _), _) = self.by_deadline.iter().next()?;
        if at > now {
            return None;
        }
        let (_, (key, timer)) = self.by_deadline.pop_first()?;
        self.cancel(&key, timer);
        Some((key, timer))
    }
}
