//! Answers to recent stateless requests, so that a retransmission gets the
//! very same answer (what a server transaction would do, RFC 3261 §17.2.2)
//! without keeping a transaction per request. Bounded: the oldest entries
//! make room for new ones, and a request retransmitted after its entry left
//! is simply processed again.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher};

use ahash::HashMap;
use bytes::Bytes;
use sip::Headers;
use sip::transaction::Remote;

/// The last answers, keyed by request identity.
#[derive(Debug)]
pub struct RecentReplies {
    hasher: ahash::RandomState,
    map: HashMap<u64, Bytes>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl RecentReplies {
    /// Remembers at most `capacity` answers.
    pub fn new(capacity: usize) -> Self {
        RecentReplies {
            hasher: ahash::RandomState::new(),
            map: HashMap::default(),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// The identity of a request: Call-ID, CSeq, top Via branch and source
    /// (what makes a retransmission the same request, §17.2.3).
    pub fn key(&self, headers: &Headers, source: &Remote) -> u64 {
        let mut h = self.hasher.build_hasher();
        headers.call_id().hash(&mut h);
        headers.get(&sip::HeaderName::CSeq).hash(&mut h);
        headers.top_via().and_then(|v| v.branch()).hash(&mut h);
        source.addr.hash(&mut h);
        h.finish()
    }

    /// The answer given to this request before, if remembered.
    pub fn get(&self, key: u64) -> Option<&Bytes> {
        self.map.get(&key)
    }

    /// Remembers an answer.
    pub fn insert(&mut self, key: u64, answer: Bytes) {
        if self.map.insert(key, answer).is_some() {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_fifo() {
        let mut r = RecentReplies::new(2);
        r.insert(1, Bytes::from_static(b"a"));
        r.insert(2, Bytes::from_static(b"b"));
        r.insert(3, Bytes::from_static(b"c"));
        assert!(r.get(1).is_none());
        assert_eq!(r.get(3).map(|b| &b[..]), Some(&b"c"[..]));
        assert_eq!(r.map.len(), 2);
    }
}
