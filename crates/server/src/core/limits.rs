//! Per-extension call limits (`max_calls`): how many calls each extension
//! is in right now, placed and received together.
//!
//! An extension at its limit cannot place another call (403 "Call Limit
//! Reached") and is not rung for another one (486 Busy Here, so the caller
//! hears busy). Each call remembers which extensions it counted, so ending
//! it releases exactly those.

use ahash::HashMap;

/// Active calls per extension number.
#[derive(Debug, Default)]
pub struct CallLimits {
    active: HashMap<String, u32>,
    counted: HashMap<u64, Vec<String>>,
}

impl CallLimits {
    /// Whether `number` already is in `max` calls.
    pub fn at_limit(&self, number: &str, max: u32) -> bool {
        self.active.get(number).copied().unwrap_or(0) >= max
    }

    /// Counts call `id` against each of `numbers`.
    pub fn begin(&mut self, id: u64, numbers: Vec<String>) {
        for n in &numbers {
            *self.active.entry(n.clone()).or_default() += 1;
        }
        self.counted.insert(id, numbers);
    }

    /// Releases what call `id` counted (nothing if it counted nothing).
    pub fn end(&mut self, id: u64) {
        for n in self.counted.remove(&id).unwrap_or_default() {
            if let Some(count) = self.active.get_mut(&n) {
                *count -= 1;
                if *count == 0 {
                    self.active.remove(&n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_both_parties_and_releases_only_what_a_call_counted() {
        let mut l = CallLimits::default();
        assert!(!l.at_limit("2001", 1));
        assert!(l.at_limit("2001", 0), "0 bars every call");
        l.begin(1, vec!["2001".into(), "2002".into()]);
        l.begin(2, vec!["2002".into()]);
        assert!(l.at_limit("2001", 1) && !l.at_limit("2001", 2));
        assert!(l.at_limit("2002", 2));
        l.end(2);
        l.end(2);
        assert!(!l.at_limit("2002", 2) && l.at_limit("2002", 1));
        l.end(1);
        l.end(99);
        assert!(!l.at_limit("2001", 1) && !l.at_limit("2002", 1));
        assert!(l.active.is_empty() && l.counted.is_empty());
    }
}
