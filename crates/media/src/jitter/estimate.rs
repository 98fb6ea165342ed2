//! Sliding-window transit-time statistics for the target delay.
//!
//! Transit = arrival time minus media time (RTP timestamp / clock rate), up
//! to a constant offset (RFC 3550 section 6.4.1). Its spread, max minus min
//! over the window, is the delay needed to absorb the observed jitter.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(super) struct TransitWindow {
    capacity: usize,
    clock_rate: u32,
    epoch: Option<(Instant, u32)>,
    /// Unwrapped timestamp of the newest sample, relative to the epoch.
    last_ts: i64,
    last_raw: u32,
    /// Transit times in microseconds, oldest first.
    values: VecDeque<i64>,
}

impl TransitWindow {
    pub(super) fn new(capacity: usize, clock_rate: u32) -> Self {
        Self {
            capacity,
            clock_rate,
            epoch: None,
            last_ts: 0,
            last_raw: 0,
            values: VecDeque::with_capacity(capacity),
        }
    }

    pub(super) fn clear(&mut self) {
        self.epoch = None;
        self.values.clear();
    }

    pub(super) fn add(&mut self, timestamp: u32, arrival: Instant) {
        let (t0, _) = *self.epoch.get_or_insert((arrival, timestamp));
        let ts = if self.values.is_empty() {
            0
        } else {
            self.last_ts + i64::from(timestamp.wrapping_sub(self.last_raw) as i32)
        };
        // Only advance the unwrap reference forwards so reordered packets
        // do not drag it back.
        if ts >= self.last_ts || self.values.is_empty() {
            self.last_ts = ts;
            self.last_raw = timestamp;
        }
        let media_us = ts * 1_000_000 / i64::from(self.clock_rate);
        let arrival_us = arrival.saturating_duration_since(t0).as_micros() as i64;
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(arrival_us - media_us);
    }

    pub(super) fn spread(&self) -> Duration {
        let max = self.values.iter().max();
        let min = self.values.iter().min();
        match (max, min) {
            (Some(max), Some(min)) => Duration::from_micros((max - min).max(0) as u64),
            _ => Duration::ZERO,
        }
    }
}
