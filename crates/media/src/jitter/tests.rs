//! Virtual-time tests: a sender emits one packet per 20 ms (optionally with
//! a skewed clock), the network delays, reorders, duplicates or drops them,
//! and the receiver pops every 20 ms of its own clock.

use super::*;
use crate::testutil::Noise;

const FRAME_MS: u64 = 20;

struct Sim {
    /// (arrival ms, seq index)
    arrivals: Vec<(f64, u64)>,
    /// RTP timestamp of packet k, in 8 kHz units before the start offset.
    media_time: fn(u64) -> u32,
}

impl Sim {
    /// `count` packets; `send_ms(k)` is when packet k leaves; `delay(k)` its
    /// network delay or `None` if lost. Duplicates are listed twice.
    fn new(count: u64, send_ms: impl Fn(u64) -> f64, delay: impl Fn(u64) -> Vec<f64>) -> Self {
        let mut arrivals = Vec::new();
        for k in 0..count {
            for d in delay(k) {
                arrivals.push((send_ms(k) + d, k));
            }
        }
        arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
        Self {
            arrivals,
            media_time: |k| (k as u32).wrapping_mul(160),
        }
    }

    /// Runs for `ms` and returns the pops plus the buffer.
    fn run(&self, ms: u64, first_seq: u16, cfg: JitterConfig) -> (Vec<Pop>, JitterBuffer) {
        let t0 = Instant::now();
        let at = |ms: f64| t0 + Duration::from_micros((ms * 1000.0) as u64);
        let mut jb = JitterBuffer::new(cfg);
        let mut pops = Vec::new();
        let mut i = 0;
        let mut now = 0;
        while now <= ms {
            while i < self.arrivals.len() && self.arrivals[i].0 <= now as f64 {
                let (t, k) = self.arrivals[i];
                let seq = first_seq.wrapping_add(k as u16);
                let ts = (self.media_time)(k).wrapping_add(0xFFFF_F000);
                jb.push(seq, ts, Bytes::copy_from_slice(&k.to_be_bytes()), at(t));
                i += 1;
            }
            pops.push(jb.pop(at(now as f64)));
            now += FRAME_MS;
        }
        (pops, jb)
    }
}

fn played(pops: &[Pop]) -> Vec<u64> {
    pops.iter()
        .filter_map(|p| match p {
            Pop::Frame(f) => Some(u64::from_be_bytes(f.payload[..8].try_into().unwrap())),
            _ => None,
        })
        .collect()
}

fn lost(pops: &[Pop]) -> Vec<u16> {
    pops.iter()
        .filter_map(|p| match p {
            Pop::Lost { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

fn steady(k: u64) -> f64 {
    (k * FRAME_MS) as f64
}

#[test]
fn in_order_plays_everything_in_order_across_wrap() {
    let sim = Sim::new(500, steady, |_| vec![30.0]);
    let (pops, jb) = sim.run(10_200, 65_500, JitterConfig::default());
    assert_eq!(played(&pops), (0..500).collect::<Vec<_>>());
    assert!(lost(&pops).is_empty());
    assert_eq!(jb.target_delay(), Duration::from_millis(20));
    // Frames carry the original sequence numbers, wrapping at 65535.
    let seqs: Vec<u16> = pops
        .iter()
        .filter_map(|p| {
            if let Pop::Frame(f) = p {
                Some(f.seq)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(seqs[35], 65_535);
    assert_eq!(seqs[36], 0);
}

#[test]
fn reordered_packets_come_out_sorted() {
    // Every odd packet overtakes its predecessor.
    let sim = Sim::new(300, steady, |k| vec![if k % 2 == 0 { 45.0 } else { 20.0 }]);
    let (pops, jb) = sim.run(6_400, 100, JitterConfig::default());
    assert_eq!(played(&pops), (0..300).collect::<Vec<_>>());
    assert!(lost(&pops).is_empty());
    assert_eq!(jb.stats().late, 0);
}

#[test]
fn duplicates_are_dropped() {
    let sim = Sim::new(200, steady, |k| {
        if k % 3 == 0 {
            vec![30.0, 35.0]
        } else {
            vec![30.0]
        }
    });
    let (pops, jb) = sim.run(4_400, 1, JitterConfig::default());
    assert_eq!(played(&pops), (0..200).collect::<Vec<_>>());
    assert_eq!(jb.stats().duplicates, 67);
}

#[test]
fn losses_are_reported_as_gaps() {
    let sim = Sim::new(200, steady, |k| {
        if k == 50 || k == 51 || k == 120 {
            vec![]
        } else {
            vec![30.0]
        }
    });
    let (pops, jb) = sim.run(4_400, 1000, JitterConfig::default());
    assert_eq!(lost(&pops), [1050, 1051, 1120]);
    let p = played(&pops);
    assert_eq!(p.len(), 197);
    assert!(p.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(jb.stats().lost, 3);
    // Lost slots carry the expected timestamp.
    let ts = pops.iter().find_map(|p| {
        if let Pop::Lost { timestamp, .. } = p {
            Some(*timestamp)
        } else {
            None
        }
    });
    assert_eq!(ts, Some(50u32.wrapping_mul(160).wrapping_add(0xFFFF_F000)));
}

#[test]
fn late_packet_is_concealed_then_dropped() {
    // Packet 100 is 200 ms late: far beyond the 20 ms target.
    let sim = Sim::new(200, steady, |k| vec![if k == 100 { 230.0 } else { 30.0 }]);
    let (pops, jb) = sim.run(4_400, 7, JitterConfig::default());
    assert_eq!(lost(&pops), [107]);
    assert_eq!(jb.stats().late, 1);
    assert!(!played(&pops).contains(&100));
}

#[test]
fn target_adapts_to_jitter_and_back() {
    let mut noise = Noise::new(11);
    let delays: Vec<f64> = (0..3000)
        .map(|k| {
            if k < 1500 {
                30.0 + 40.0 * (noise.next_f64() + 1.0)
            } else {
                30.0
            }
        })
        .collect();
    let sim = Sim::new(3000, steady, |k| vec![delays[k as usize]]);
    let cfg = JitterConfig::default();
    let (pops, _) = sim.run(30_000, 0, cfg);
    // While jittery (first 30 s) nearly everything plays.
    let first_half: Vec<_> = played(&pops).into_iter().filter(|&k| k < 1500).collect();
    assert!(first_half.len() > 1450, "played {}", first_half.len());
    let (_, jb_jittery) = sim.run(15_000, 0, cfg);
    let t = jb_jittery.target_delay();
    assert!(
        t >= Duration::from_millis(60) && t <= Duration::from_millis(100),
        "target {t:?}"
    );
    // Once the window holds only steady packets, the target is back down
    // and the level follows.
    let (_, jb_calm) = sim.run(60_000, 0, cfg);
    assert_eq!(jb_calm.target_delay(), Duration::from_millis(20));
}

#[test]
fn level_shrinks_after_jitter_subsides() {
    let sim = Sim::new(3000, steady, |k| {
        vec![if k < 300 {
            30.0 + (k % 10) as f64 * 10.0
        } else {
            30.0
        }]
    });
    let (_, jb) = sim.run(59_000, 0, JitterConfig::default());
    assert!(jb.level() <= 2, "level {}", jb.level());
    assert!(jb.stats().discarded > 0);
}

#[test]
fn clock_drift_is_absorbed_both_ways() {
    for skew in [0.995, 1.005] {
        // 0.5 % clock error, 120 s of audio.
        let sim = Sim::new(6000, |k| (k * FRAME_MS) as f64 * skew, |_| vec![30.0]);
        let (pops, jb) = sim.run(125_000, 0, JitterConfig::default());
        let p = played(&pops);
        assert!(p.windows(2).all(|w| w[0] < w[1]));
        assert!(jb.level() <= 5, "skew {skew}: level {}", jb.level());
        let s = jb.stats();
        if skew < 1.0 {
            // Fast sender: ~30 surplus frames must be discarded.
            assert!(s.discarded >= 20, "{s:?}");
            assert!(p.len() >= 5900, "played {}", p.len());
        } else {
            // Slow sender: the buffer runs dry now and then.
            assert!(s.empties >= 20, "{s:?}");
            assert!(p.len() >= 5950, "played {}", p.len());
        }
    }
}

#[test]
fn stream_restart_resets() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    jb.push(10, 0, Bytes::from_static(b"a"), t0);
    assert_eq!(jb.pop(t0), Pop::Empty);
    let t1 = t0 + Duration::from_millis(40);
    assert!(matches!(jb.pop(t1), Pop::Frame(_)));
    jb.push(40_000, 0, Bytes::from_static(b"b"), t1);
    assert_eq!(jb.stats().resyncs, 1);
    let t2 = t1 + Duration::from_millis(40);
    assert!(matches!(jb.pop(t2), Pop::Frame(f) if f.seq == 40_000));
    assert_eq!(jb.pop(t2), Pop::Empty);
}

#[test]
fn silence_suppression_gap_reprimes_without_losses() {
    // 50 packets, 2 s of silence (no packets, sequence numbers continue),
    // then 50 more.
    let send = |k: u64| {
        if k < 50 {
            steady(k)
        } else {
            steady(k) + 2000.0
        }
    };
    let mut sim = Sim::new(100, send, |_| vec![30.0]);
    // The sender's timestamps keep counting through the silence.
    sim.media_time = |k| (k as u32 * 160) + if k < 50 { 0 } else { 16_000 };
    let (pops, jb) = sim.run(5_000, 500, JitterConfig::default());
    assert_eq!(played(&pops), (0..100).collect::<Vec<_>>());
    assert!(lost(&pops).is_empty());
    assert!(jb.stats().resyncs >= 1);
    // No jitter was seen, so the delay stays minimal.
    assert_eq!(jb.target_delay(), Duration::from_millis(20));
}
