//! RTP payload for DTMF digits (RFC 4733 sections 2.3 and 2.5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |     event     |E|R| volume    |          duration             |
//! ```
//!
//! [`DtmfSender`] turns key presses into the packet train of section 2.5.1
//! (a first packet with the marker bit, updates every packet interval, the
//! final packet sent three times); [`DtmfReceiver`] turns any packet train,
//! with duplicates, reordering and lost starts or ends, into exactly one
//! [`DtmfEvent::Begin`] and one [`DtmfEvent::End`] per key press.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Digit, DtmfError};

/// One telephone-event payload (RFC 4733 section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code; 0-15 are the DTMF keys.
    pub event: u8,
    /// E bit: this is the final packet of the event.
    pub end: bool,
    /// Power level as -dBm0, 0-63 (only the low 6 bits are sent).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Wire size of one event.
    pub const LEN: usize = 4;

    /// Serialises into four octets (the R bit is zero).
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }

    /// Parses the first four octets of a payload.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        match payload {
            [event, flags, d0, d1, ..] => Ok(Self {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => Err(DtmfError::Truncated(payload.len())),
        }
    }
}

/// A packet the sender wants transmitted on the RTP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// The payload.
    pub event: TelephoneEvent,
    /// RTP marker bit (first packet of an event).
    pub marker: bool,
    /// RTP timestamp: the event's start, the same for all its packets.
    pub timestamp: u32,
}

#[derive(Debug, Clone)]
struct Sending {
    digit: Digit,
    timestamp: u32,
    /// Total length in timestamp units.
    length: u16,
    /// Packets already sent, including the first.
    sent: u32,
    ends_sent: u8,
    next: Instant,
}

/// Number of times the final packet is sent (RFC 4733 section 2.5.1.4).
const END_REPEATS: u8 = 3;

/// Sender state machine: queue key presses, then call [`DtmfSender::poll`]
/// at or after [`DtmfSender::poll_timeout`] to get packets.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    clock_rate: u32,
    interval: Duration,
    gap: Duration,
    volume: u8,
    queue: VecDeque<(Digit, Duration)>,
    current: Option<Sending>,
    /// Earliest start of the next event (inter-digit pause).
    not_before: Option<Instant>,
}

impl DtmfSender {
    /// Creates a sender for an RTP clock of `clock_rate` Hz sending a packet
    /// every `interval` (typically the audio ptime, 20 ms or 50 ms).
    pub fn new(clock_rate: u32, interval: Duration) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            interval: interval.max(Duration::from_millis(1)),
            gap: Duration::from_millis(50),
            volume: 10,
            queue: VecDeque::new(),
            current: None,
            not_before: None,
        }
    }

    /// Sets the pause between consecutive key presses (default 50 ms).
    pub fn set_gap(&mut self, gap: Duration) {
        self.gap = gap;
    }

    /// Sets the volume field, in -dBm0 (default 10).
    pub fn set_volume(&mut self, volume: u8) {
        self.volume = volume.min(63);
    }

    /// Queues a key press of `length` (capped at the 16-bit duration field),
    /// requested at `now`.
    pub fn send(&mut self, digit: Digit, length: Duration, now: Instant) {
        if self.current.is_none() && self.queue.is_empty() {
            self.not_before = Some(self.not_before.map_or(now, |t| t.max(now)));
        }
        self.queue.push_back((digit, length));
    }

    /// True while an event is being sent; audio should be muted meanwhile.
    pub fn is_sending(&self) -> bool {
        self.current.is_some()
    }

    fn units(&self, d: Duration) -> u64 {
        (d.as_micros() * u128::from(self.clock_rate) / 1_000_000) as u64
    }

    /// When the next packet is due: `None` if idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.current {
            Some(s) => Some(s.next),
            None if !self.queue.is_empty() => self.not_before,
            None => None,
        }
    }

    /// True if a queued key press can start at `now`.
    fn can_start(&self, now: Instant) -> bool {
        !self.queue.is_empty() && self.not_before.is_none_or(|t| now >= t)
    }

    /// Returns the next packet due at `now`, if any. `rtp_timestamp` is the
    /// session's RTP clock at `now`; it becomes the timestamp of an event
    /// that starts in this call.
    pub fn poll(&mut self, now: Instant, rtp_timestamp: u32) -> Option<DtmfPacket> {
        if self.current.is_none() {
            if !self.can_start(now) {
                return None;
            }
            let (digit, length) = self.queue.pop_front()?;
            let length = self.units(length).clamp(1, u64::from(u16::MAX)) as u16;
            self.current = Some(Sending {
                digit,
                timestamp: rtp_timestamp,
                length,
                sent: 0,
                ends_sent: 0,
                next: now,
            });
        }
        let interval_units = self.units(self.interval).max(1);
        let volume = self.volume;
        let s = self.current.as_mut()?;
        if now < s.next {
            return None;
        }
        let covered = interval_units * u64::from(s.sent + 1);
        let end = covered >= u64::from(s.length);
        let packet = DtmfPacket {
            event: TelephoneEvent {
                event: s.digit.event_code(),
                end,
                volume,
                duration: covered.min(u64::from(s.length)) as u16,
            },
            marker: s.sent == 0,
            timestamp: s.timestamp,
        };
        s.sent += 1;
        s.next += self.interval;
        if end {
            s.ends_sent += 1;
            if s.ends_sent >= END_REPEATS {
                self.current = None;
                self.not_before = Some(now + self.gap);
            }
        }
        Some(packet)
    }
}

/// What the receiver reports, each exactly once per key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEvent {
    /// A key went down.
    Begin {
        /// The key.
        digit: Digit,
        /// RTP timestamp identifying the event.
        timestamp: u32,
    },
    /// A key went up (end packet, a newer event, or a timeout).
    End {
        /// The key.
        digit: Digit,
        /// RTP timestamp identifying the event.
        timestamp: u32,
        /// Last known duration in timestamp units.
        duration: u16,
    },
}

#[derive(Debug, Clone, Copy)]
struct Receiving {
    digit: Digit,
    timestamp: u32,
    duration: u16,
    last_seen: Instant,
}

/// How many finished event timestamps are remembered to drop stragglers.
const FINISHED_MEMORY: usize = 8;

/// Receiver: feed every telephone-event packet to [`DtmfReceiver::handle`],
/// call [`DtmfReceiver::handle_timeout`] when [`DtmfReceiver::poll_timeout`]
/// passes, and drain [`DtmfReceiver::poll_event`].
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    current: Option<Receiving>,
    finished: VecDeque<u32>,
    events: VecDeque<DtmfEvent>,
    timeout: Duration,
}

impl Default for DtmfReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfReceiver {
    /// Creates a receiver that ends an event after 500 ms without packets.
    pub fn new() -> Self {
        Self {
            current: None,
            finished: VecDeque::new(),
            events: VecDeque::new(),
            timeout: Duration::from_millis(500),
        }
    }

    fn finish(&mut self, r: Receiving) {
        self.events.push_back(DtmfEvent::End {
            digit: r.digit,
            timestamp: r.timestamp,
            duration: r.duration,
        });
        if self.finished.len() == FINISHED_MEMORY {
            self.finished.pop_front();
        }
        self.finished.push_back(r.timestamp);
    }

    /// Handles one telephone-event packet with its RTP timestamp.
    pub fn handle(
        &mut self,
        timestamp: u32,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), DtmfError> {
        let ev = TelephoneEvent::parse(payload)?;
        let digit = Digit::from_event(ev.event)?;
        if self.finished.contains(&timestamp) {
            return Ok(());
        }
        match self.current {
            Some(ref mut r) if r.timestamp == timestamp => {
                r.duration = r.duration.max(ev.duration);
                r.last_seen = now;
            }
            _ => {
                if let Some(old) = self.current.take() {
                    self.finish(old);
                }
                self.events.push_back(DtmfEvent::Begin { digit, timestamp });
                self.current = Some(Receiving {
                    digit,
                    timestamp,
                    duration: ev.duration,
                    last_seen: now,
                });
            }
        }
        if ev.end
            && let Some(r) = self.current.take()
        {
            self.finish(r);
        }
        Ok(())
    }

    /// When an unfinished event will be ended for lack of packets.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.map(|r| r.last_seen + self.timeout)
    }

    /// Ends an event whose end packets were all lost.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(r) = self.current
            && now >= r.last_seen + self.timeout
        {
            self.current = None;
            self.finish(r);
        }
    }

    /// Next event to report.
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let e = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 1600,
        };
        assert_eq!(e.to_bytes(), [11, 0x8A, 0x06, 0x40]);
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()).unwrap(), e);
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(DtmfError::Truncated(3))
        );
        // R bit set and extra octets are ignored.
        let p = TelephoneEvent::parse(&[5, 0x40 | 7, 0, 160, 9, 9]).unwrap();
        assert_eq!((p.event, p.end, p.volume, p.duration), (5, false, 7, 160));
    }

    fn run_sender(s: &mut DtmfSender, t0: Instant, ms: u64) -> Vec<(u64, DtmfPacket)> {
        let mut out = Vec::new();
        for step in 0..=ms {
            let now = t0 + Duration::from_millis(step);
            while let Some(p) = s.poll(now, 1000 + step as u32 * 8) {
                out.push((step, p));
            }
        }
        out
    }

    #[test]
    fn sender_packet_train() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(8000, Duration::from_millis(20));
        assert!(!s.is_sending());
        s.send(
            Digit::from_char('5').unwrap(),
            Duration::from_millis(100),
            t0,
        );
        assert_eq!(s.poll_timeout(), Some(t0));
        s.send(
            Digit::from_char('#').unwrap(),
            Duration::from_millis(40),
            t0,
        );
        let pkts = run_sender(&mut s, t0, 1000);
        let first: Vec<_> = pkts.iter().filter(|(_, p)| p.event.event == 5).collect();
        let durations: Vec<u16> = first.iter().map(|(_, p)| p.event.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        assert!(first[0].1.marker && first.iter().skip(1).all(|(_, p)| !p.marker));
        assert_eq!(first.iter().filter(|(_, p)| p.event.end).count(), 3);
        assert!(first.iter().all(|(_, p)| p.timestamp == 1000));
        let times: Vec<u64> = first.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [0, 20, 40, 60, 80, 100, 120]);
        let second: Vec<_> = pkts.iter().filter(|(_, p)| p.event.event == 11).collect();
        assert_eq!(second.len(), 4);
        // 50 ms gap after the last end packet at 120 ms.
        assert_eq!(second[0].0, 170);
        assert_eq!(second[0].1.timestamp, 1000 + 170 * 8);
        assert!(!s.is_sending());
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn receiver_reports_exactly_once() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(8000, Duration::from_millis(20));
        for c in "123#".chars() {
            s.send(Digit::from_char(c).unwrap(), Duration::from_millis(80), t0);
        }
        let pkts = run_sender(&mut s, t0, 2000);
        let mut r = DtmfReceiver::new();
        // Deliver every packet twice, and swap neighbours to reorder.
        let mut wire: Vec<_> = pkts.iter().flat_map(|p| [*p, *p]).collect();
        for i in (0..wire.len() - 3).step_by(5) {
            wire.swap(i, i + 3);
        }
        for (t, p) in wire {
            r.handle(
                p.timestamp,
                &p.event.to_bytes(),
                t0 + Duration::from_millis(t),
            )
            .unwrap();
        }
        let mut begins = String::new();
        let mut ends = String::new();
        while let Some(e) = r.poll_event() {
            match e {
                DtmfEvent::Begin { digit, .. } => begins.push(digit.as_char()),
                DtmfEvent::End {
                    digit, duration, ..
                } => {
                    ends.push(digit.as_char());
                    assert_eq!(duration, 640);
                }
            }
        }
        assert_eq!(begins, "123#");
        assert_eq!(ends, "123#");
    }

    #[test]
    fn receiver_handles_lost_starts_and_ends() {
        let t0 = Instant::now();
        let mut r = DtmfReceiver::new();
        let pkt = |ev: u8, end, dur| {
            TelephoneEvent {
                event: ev,
                end,
                volume: 10,
                duration: dur,
            }
            .to_bytes()
        };
        // Only an end packet arrives.
        r.handle(100, &pkt(1, true, 800), t0).unwrap();
        assert!(matches!(r.poll_event(), Some(DtmfEvent::Begin { .. })));
        assert!(matches!(
            r.poll_event(),
            Some(DtmfEvent::End { duration: 800, .. })
        ));
        // No end packet: a new event closes the old one.
        r.handle(2000, &pkt(2, false, 160), t0).unwrap();
        r.handle(4000, &pkt(3, false, 160), t0).unwrap();
        let evs: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
        assert_eq!(evs.len(), 3);
        assert!(matches!(
            evs[1],
            DtmfEvent::End {
                timestamp: 2000,
                ..
            }
        ));
        // No packets at all: the timeout closes it.
        let deadline = r.poll_timeout().unwrap();
        r.handle_timeout(deadline - Duration::from_millis(1));
        assert!(r.poll_event().is_none());
        r.handle_timeout(deadline);
        assert!(matches!(
            r.poll_event(),
            Some(DtmfEvent::End {
                timestamp: 4000,
                ..
            })
        ));
        assert!(r.poll_timeout().is_none());
        // Stragglers of a finished event are ignored; garbage is an error.
        r.handle(2000, &pkt(2, true, 320), t0).unwrap();
        assert!(r.poll_event().is_none());
        assert!(r.handle(1, &[1], t0).is_err());
        assert_eq!(
            r.handle(1, &pkt(16, false, 0), t0),
            Err(DtmfError::NotDtmf(16))
        );
    }
}
