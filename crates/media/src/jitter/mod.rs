//! Adaptive jitter buffer, sans-IO.
//!
//! Packets go in with their RTP sequence number and timestamp (RFC 3550
//! section 5.1) and their arrival time; the media loop calls
//! [`JitterBuffer::pop`] once per frame period and gets a [`Pop`]: the next
//! frame, a [`Pop::Lost`] gap (so the codec can conceal), or
//! [`Pop::Empty`] when there is nothing to play yet.
//!
//! - Reordering: packets are kept sorted by extended sequence number.
//! - Duplicates and late packets (behind the play point) are dropped and
//!   counted.
//! - Target delay: the spread of packet transit times (arrival minus media
//!   time, as in the RFC 3550 section 6.4.1 jitter estimate) over a sliding
//!   window, rounded up to whole frames and bounded by the configuration.
//! - Adaptation and clock drift: the buffer level is watched over one-second
//!   windows. When it stays above the target by a frame (the sender's clock
//!   is fast or jitter dropped), one frame is discarded; when it stays below
//!   (slow sender clock or jitter rose), one [`Pop::Empty`] is inserted.
//!   After a run of underruns the buffer re-primes to the target delay.

mod estimate;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use self::estimate::TransitWindow;

/// Configuration of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream in Hz.
    pub clock_rate: u32,
    /// Duration of one frame (packetisation time).
    pub frame: Duration,
    /// Smallest target delay.
    pub min_delay: Duration,
    /// Largest target delay; also bounds how much the buffer holds.
    pub max_delay: Duration,
    /// Packets in the jitter estimation window.
    pub window: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            clock_rate: 8000,
            frame: Duration::from_millis(20),
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(400),
            window: 250,
        }
    }
}

/// A frame ready to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Codec payload (shares the buffer it was pushed with).
    pub payload: Bytes,
}

/// Result of one [`JitterBuffer::pop`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pop {
    /// The next frame.
    Frame(Frame),
    /// The frame with this sequence number never arrived in time: conceal it.
    Lost {
        /// Missing sequence number.
        seq: u16,
        /// Its expected RTP timestamp.
        timestamp: u32,
    },
    /// Nothing to play (buffering, underrun or delay growth): play silence
    /// or comfort noise.
    Empty,
}

/// Counters for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub received: u64,
    /// Packets dropped as duplicates.
    pub duplicates: u64,
    /// Packets dropped because their slot had already been played.
    pub late: u64,
    /// Gaps reported as [`Pop::Lost`].
    pub lost: u64,
    /// Frames discarded to shrink the delay.
    pub discarded: u64,
    /// [`Pop::Empty`] results while playing (underruns and growth).
    pub empties: u64,
    /// Times the buffer re-primed after underruns or a stream reset.
    pub resyncs: u64,
}

#[derive(Debug, Clone)]
struct Stored {
    seq: u16,
    timestamp: u32,
    payload: Bytes,
    arrival: Instant,
}

/// Pops per adaptation window (one second at 20 ms).
const ADAPT_WINDOW: u32 = 50;
/// A sequence jump larger than this is a new stream.
const MAX_JUMP: u64 = 3000;

/// The jitter buffer. See the module docs.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    packets: BTreeMap<u64, Stored>,
    /// Highest extended sequence number seen.
    highest: Option<u64>,
    /// Next extended sequence number to play (`None` while priming).
    next: Option<u64>,
    last_timestamp: u32,
    transit: TransitWindow,
    underrun_run: u32,
    pops_in_window: u32,
    min_level: u64,
    max_level: u64,
    stats: JitterStats,
}

impl JitterBuffer {
    /// Creates an empty buffer.
    pub fn new(cfg: JitterConfig) -> Self {
        let cfg = JitterConfig {
            clock_rate: cfg.clock_rate.max(1),
            frame: cfg.frame.max(Duration::from_millis(1)),
            window: cfg.window.max(2),
            max_delay: cfg.max_delay.max(cfg.min_delay),
            ..cfg
        };
        Self {
            transit: TransitWindow::new(cfg.window, cfg.clock_rate),
            cfg,
            packets: BTreeMap::new(),
            highest: None,
            next: None,
            last_timestamp: 0,
            underrun_run: 0,
            pops_in_window: 0,
            min_level: u64::MAX,
            max_level: 0,
            stats: JitterStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Current target delay: observed jitter rounded up to whole frames,
    /// within the configured bounds.
    pub fn target_delay(&self) -> Duration {
        let spread = self.transit.spread();
        let frames = spread
            .as_micros()
            .div_ceil(self.cfg.frame.as_micros().max(1));
        let frames = u32::try_from(frames).unwrap_or(u32::MAX);
        self.cfg
            .frame
            .checked_mul(frames)
            .unwrap_or(self.cfg.max_delay)
            .clamp(self.cfg.min_delay, self.cfg.max_delay)
    }

    fn target_frames(&self) -> u64 {
        (self.target_delay().as_micros() / self.cfg.frame.as_micros().max(1)) as u64
    }

    /// Frames buffered from the play point to the newest packet.
    pub fn level(&self) -> u64 {
        match (self.next, self.highest) {
            (Some(next), Some(high)) if !self.packets.is_empty() => (high + 1).saturating_sub(next),
            _ => self.packets.len() as u64,
        }
    }

    fn extend(&self, seq: u16) -> u64 {
        match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                (h as i64 + delta).max(0) as u64
            }
        }
    }

    fn reset(&mut self) {
        self.packets.clear();
        self.highest = None;
        self.next = None;
        self.transit.clear();
        self.underrun_run = 0;
        self.stats.resyncs += 1;
    }

    /// Adds a received packet; `payload` is typically a zero-copy slice of
    /// the received datagram.
    pub fn push(&mut self, seq: u16, timestamp: u32, payload: Bytes, arrival: Instant) {
        let mut ext = self.extend(seq);
        if let Some(h) = self.highest
            && ext.abs_diff(h) > MAX_JUMP
        {
            self.reset();
            ext = self.extend(seq);
        }
        if self.next.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            return;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.transit.add(timestamp, arrival);
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.packets.insert(
            ext,
            Stored {
                seq,
                timestamp,
                payload,
                arrival,
            },
        );
        self.stats.received += 1;
        // Bound memory: never hold more than twice the maximum delay.
        let cap = 2 * (self.cfg.max_delay.as_micros() / self.cfg.frame.as_micros()).max(1) as usize;
        while self.packets.len() > cap {
            if let Some((k, _)) = self.packets.pop_first() {
                if let Some(n) = self.next.as_mut() {
                    *n = (*n).max(k + 1);
                }
                self.stats.discarded += 1;
            }
        }
    }

    /// Returns what to play for the frame slot at `now`; call once per
    /// frame period.
    pub fn pop(&mut self, now: Instant) -> Pop {
        let next = match self.next {
            Some(n) => n,
            None => {
                let Some((&first, p)) = self.packets.first_key_value() else {
                    return Pop::Empty;
                };
                if now < p.arrival + self.target_delay() {
                    return Pop::Empty;
                }
                self.next = Some(first);
                self.reset_window();
                first
            }
        };
        if let Some(pop) = self.adapt(next) {
            return pop;
        }
        let next = self.next.unwrap_or(next);
        if let Some(p) = self.packets.remove(&next) {
            self.next = Some(next + 1);
            self.underrun_run = 0;
            self.last_timestamp = p.timestamp;
            return Pop::Frame(Frame {
                seq: p.seq,
                timestamp: p.timestamp,
                payload: p.payload,
            });
        }
        if self.packets.range(next..).next().is_some() {
            self.next = Some(next + 1);
            self.underrun_run = 0;
            self.stats.lost += 1;
            self.last_timestamp = self.last_timestamp.wrapping_add(self.frame_units());
            return Pop::Lost {
                seq: next as u16,
                timestamp: self.last_timestamp,
            };
        }
        self.stats.empties += 1;
        self.underrun_run += 1;
        if u64::from(self.underrun_run) > self.target_frames() + 2 {
            // Long silence (DTX, loss burst or a slow sender): re-prime.
            self.next = None;
            self.underrun_run = 0;
            self.stats.resyncs += 1;
        }
        Pop::Empty
    }

    fn frame_units(&self) -> u32 {
        (self.cfg.frame.as_micros() * u128::from(self.cfg.clock_rate) / 1_000_000) as u32
    }

    fn reset_window(&mut self) {
        self.pops_in_window = 0;
        self.min_level = u64::MAX;
        self.max_level = 0;
    }

    /// Once per window, discards or inserts one frame to steer the level
    /// towards the target.
    fn adapt(&mut self, next: u64) -> Option<Pop> {
        let level = self.level();
        self.min_level = self.min_level.min(level);
        self.max_level = self.max_level.max(level);
        self.pops_in_window += 1;
        if self.pops_in_window < ADAPT_WINDOW {
            return None;
        }
        let target = self.target_frames();
        let (min_level, max_level) = (self.min_level, self.max_level);
        self.reset_window();
        // `level` counts the frame about to play, hence the extra one.
        if min_level > target + 2 {
            if self.packets.remove(&next).is_some() {
                self.stats.discarded += 1;
            } else {
                self.stats.lost += 1;
            }
            self.next = Some(next + 1);
            self.last_timestamp = self.last_timestamp.wrapping_add(self.frame_units());
            return None;
        }
        if max_level + 1 < target {
            self.stats.empties += 1;
            return Some(Pop::Empty);
        }
        None
    }
}

#[cfg(test)]
mod tests;
