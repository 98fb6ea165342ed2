//! Receive statistics of one RTP source (RFC 3550 section 6.4.1 and
//! Appendix A.1, A.3, A.8) and round-trip time from report blocks.
//!
//! [`ReceiveStats`] follows the reference algorithms: the extended highest
//! sequence number with wrap-around counting, resynchronisation after a large
//! jump confirmed by two sequential packets, expected/lost counts, the fraction
//! lost per reporting interval and the interarrival jitter estimate
//! `J += (|D| - J) / 16`. Arrival times are explicit [`Instant`]s, so tests
//! run on virtual time. The probation of new sources (A.1 `MIN_SEQUENTIAL`)
//! is left to the caller: the relay latches a source before it is counted.

use std::time::{Duration, Instant};

use super::rtcp::{NtpTime, ReportBlock};

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;

/// Receive statistics of one source.
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    clock_rate: u32,
    started: bool,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    /// `SEQ_MOD + 1` when no resync candidate is pending.
    bad_seq: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    epoch: Option<Instant>,
    last_transit: Option<u32>,
    jitter: f64,
    last_sr: Option<(u32, Instant)>,
}

impl ReceiveStats {
    /// New statistics for a stream with the given RTP clock rate (Hz).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            started: false,
            base_seq: 0,
            max_seq: 0,
            cycles: 0,
            bad_seq: SEQ_MOD + 1,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            epoch: None,
            last_transit: None,
            jitter: 0.0,
            last_sr: None,
        }
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Records a packet. Returns false when it was not counted: a large jump
    /// in sequence numbers, pending confirmation by the next packet (A.1).
    pub fn on_packet(&mut self, seq: u16, rtp_timestamp: u32, arrival: Instant) -> bool {
        if !self.started {
            self.started = true;
            self.init_seq(seq);
        } else {
            let udelta = seq.wrapping_sub(self.max_seq);
            if udelta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(SEQ_MOD);
                }
                self.max_seq = seq;
            } else if udelta <= u16::MAX - MAX_MISORDER {
                if u32::from(seq) == self.bad_seq {
                    // Two sequential packets after a jump: the source restarted.
                    self.init_seq(seq);
                    self.last_transit = None;
                } else {
                    self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                    return false;
                }
            }
            // Otherwise a duplicate or reordered packet: counted, no max change.
        }
        self.received += 1;
        self.update_jitter(rtp_timestamp, arrival);
        true
    }

    fn update_jitter(&mut self, rtp_timestamp: u32, arrival: Instant) {
        let epoch = *self.epoch.get_or_insert(arrival);
        let elapsed = arrival.saturating_duration_since(epoch);
        let ticks = elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        // Arithmetic modulo 2^32 keeps the difference right across a
        // timestamp wrap.
        let transit = (ticks as u32).wrapping_sub(rtp_timestamp);
        if let Some(last) = self.last_transit {
            let d = f64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// Records the arrival of a sender report from this source, for LSR/DLSR.
    pub fn on_sender_report(&mut self, ntp: NtpTime, arrival: Instant) {
        self.last_sr = Some((ntp.compact(), arrival));
    }

    /// Packets received (including duplicates), since the last resync.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Extended highest sequence number: wrap cycles in the high 16 bits.
    pub fn extended_highest(&self) -> u32 {
        self.cycles | u32::from(self.max_seq)
    }

    /// Packets expected: from the base to the extended highest sequence.
    pub fn expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        u64::from(self.cycles) + u64::from(self.max_seq) - u64::from(self.base_seq) + 1
    }

    /// Cumulative packets lost; negative when duplicates arrived.
    pub fn cumulative_lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter as u32
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock_rate)
    }

    /// Closes the reporting interval and returns the report block for
    /// `ssrc` (A.3): fraction lost over the interval, cumulative figures,
    /// jitter, and LSR/DLSR relative to `now`.
    pub fn take_report(&mut self, ssrc: u32, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => (lsr, to_compact(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.extended_highest(),
            jitter: self.jitter(),
            lsr,
            dlsr,
        }
    }
}

/// A duration in 1/65536 s, saturating at the 32-bit field.
fn to_compact(d: Duration) -> u32 {
    let units = d.as_nanos() * 65_536 / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

fn from_compact(units: u32) -> Duration {
    Duration::from_nanos(u64::from(units) * 1_000_000_000 / 65_536)
}

/// RTT by section 6.4.1: `A - LSR - DLSR`, all in compact NTP units, where
/// `arrival` is the compact NTP time the report block arrived. `None` when
/// the block carries no LSR or the result would be negative.
pub fn round_trip_time(block: &ReportBlock, arrival: u32) -> Option<Duration> {
    if block.lsr == 0 {
        return None;
    }
    let rtt = arrival.wrapping_sub(block.lsr).wrapping_sub(block.dlsr);
    // A wrapped (negative) value means clock trouble, not a 18-hour RTT.
    (rtt < 0x8000_0000).then(|| from_compact(rtt))
}

/// RTT from report blocks against the SRs we sent, without an NTP clock at
/// arrival: remembers when each SR left and subtracts DLSR.
#[derive(Debug, Clone, Default)]
pub struct RttEstimator {
    sent: [Option<(u32, Instant)>; 8],
    next: usize,
    last: Option<Duration>,
}

impl RttEstimator {
    /// New estimator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that an SR with NTP time `ntp` was sent at `now`.
    pub fn on_sender_report_sent(&mut self, ntp: NtpTime, now: Instant) {
        self.sent[self.next] = Some((ntp.compact(), now));
        self.next = (self.next + 1) % self.sent.len();
    }

    /// Processes a report block about our stream; returns the RTT when its
    /// LSR matches an SR we sent.
    pub fn on_report_block(&mut self, block: &ReportBlock, now: Instant) -> Option<Duration> {
        if block.lsr == 0 {
            return None;
        }
        let (_, sent_at) = self
            .sent
            .iter()
            .flatten()
            .find(|(lsr, _)| *lsr == block.lsr)?;
        let rtt = now
            .saturating_duration_since(*sent_at)
            .saturating_sub(from_compact(block.dlsr));
        self.last = Some(rtt);
        Some(rtt)
    }

    /// The latest RTT measured.
    pub fn last(&self) -> Option<Duration> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    /// Feeds `seqs` paced every 20 ms with timestamps 160 apart.
    fn feed(stats: &mut ReceiveStats, t0: Instant, seqs: &[u16]) {
        for (i, &seq) in seqs.iter().enumerate() {
            stats.on_packet(seq, u32::from(seq) * 160, t0 + MS20 * i as u32);
        }
    }

    #[test]
    fn counts_loss_and_fraction() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, t0, &[1, 2, 4, 6, 7, 8, 9, 10]);
        assert_eq!(s.expected(), 10);
        assert_eq!(s.received(), 8);
        assert_eq!(s.cumulative_lost(), 2);
        let r = s.take_report(5, t0 + Duration::from_secs(1));
        assert_eq!(r.fraction_lost, (2 * 256 / 10) as u8);
        assert_eq!(r.cumulative_lost, 2);
        assert_eq!(r.highest_seq, 10);
        // Next interval without loss.
        feed(&mut s, t0, &[11, 12, 13]);
        let r = s.take_report(5, t0 + Duration::from_secs(2));
        assert_eq!(r.fraction_lost, 0);
        assert_eq!(r.cumulative_lost, 2);
    }

    #[test]
    fn reorder_is_not_loss() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, t0, &[100, 102, 101, 103]);
        assert_eq!(s.extended_highest(), 103);
        assert_eq!(s.cumulative_lost(), 0);
        // Duplicates make the cumulative count negative.
        feed(&mut s, t0, &[103]);
        assert_eq!(s.cumulative_lost(), -1);
    }

    #[test]
    fn wraps_at_65535() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, t0, &[65534, 65535, 0, 2]);
        assert_eq!(s.extended_highest(), 65536 + 2);
        assert_eq!(s.expected(), 5);
        assert_eq!(s.cumulative_lost(), 1);
        // A late packet from before the wrap does not count a new cycle.
        feed(&mut s, t0, &[65535]);
        assert_eq!(s.extended_highest(), 65536 + 2);
    }

    #[test]
    fn large_jump_resyncs_after_two_sequential_packets() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, t0, &[10, 11]);
        assert!(!s.on_packet(30_000, 0, t0));
        assert_eq!(s.extended_highest(), 11);
        assert!(s.on_packet(30_001, 160, t0));
        assert_eq!(s.extended_highest(), 30_001);
        assert_eq!(s.expected(), 1);
        assert_eq!(s.received(), 1);
    }

    #[test]
    fn jitter_is_zero_for_perfect_pacing() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, t0, &(0..50).collect::<Vec<_>>());
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn jitter_converges_on_alternating_delay() {
        // Every other packet is 10 ms (80 ticks) late: |D| = 80 every packet,
        // so J_n = 80 * (1 - (15/16)^n).
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        let n = 200u32;
        for i in 0..=n {
            let late = if i % 2 == 1 {
                Duration::from_millis(10)
            } else {
                Duration::ZERO
            };
            s.on_packet(i as u16, 1000 + i * 160, t0 + MS20 * i + late);
        }
        let expect = 80.0 * (1.0 - (15.0f64 / 16.0).powi(n as i32));
        assert!((s.jitter - expect).abs() < 1e-6, "{}", s.jitter);
        assert_eq!(s.jitter(), 79);
        assert!((s.jitter_ms() - 10.0).abs() < 0.01);
        let r = s.take_report(1, t0);
        assert_eq!(r.jitter, 79);
    }

    #[test]
    fn jitter_survives_timestamp_wrap() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        for i in 0..10u32 {
            let ts = (u32::MAX - 400).wrapping_add(i * 160);
            s.on_packet(i as u16, ts, t0 + MS20 * i);
        }
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn lsr_dlsr_and_rtt() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, t0, &[1]);
        let sr_ntp = NtpTime(0x0000_1234_5678_0000);
        s.on_sender_report(sr_ntp, t0);
        let block = s.take_report(9, t0 + Duration::from_millis(500));
        assert_eq!(block.lsr, 0x1234_5678);
        assert_eq!(block.dlsr, 32_768);

        // The sender got the block 600 ms after sending its SR: RTT 100 ms.
        let mut rtt = RttEstimator::new();
        rtt.on_sender_report_sent(sr_ntp, t0);
        let got = rtt.on_report_block(&block, t0 + Duration::from_millis(600));
        assert_eq!(got, Some(Duration::from_millis(100)));
        assert_eq!(rtt.last(), got);

        // Same with compact NTP arithmetic: A = LSR + 0.6 s.
        let arrival = 0x1234_5678 + 39_322;
        let rtt = round_trip_time(&block, arrival).unwrap();
        assert!(rtt.abs_diff(Duration::from_millis(100)) < Duration::from_millis(1));
        assert_eq!(round_trip_time(&ReportBlock::default(), arrival), None);
        assert_eq!(rtt_unknown(&block), None);
    }

    fn rtt_unknown(block: &ReportBlock) -> Option<Duration> {
        RttEstimator::new().on_report_block(block, Instant::now())
    }
}
