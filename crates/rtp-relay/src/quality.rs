//! Per-leg media quality from relayed RTCP, for call detail records.
//!
//! The relay forwards RTCP between the legs; on the way it reads what each
//! phone says about the stream it receives from the PBX. [`RtcpMonitor`] is
//! the sans-IO bookkeeping of one leg, fed with datagrams and instants:
//!
//! - [`RtcpMonitor::on_rtcp_from_phone`]: a compound packet the leg's phone
//!   sent (muxed on the RTP port or on the odd port). Its SR/RR report
//!   blocks about the stream the phone receives update the loss and jitter
//!   summary; any block whose LSR matches a sender report the relay
//!   forwarded to this phone gives a round-trip time.
//! - [`RtcpMonitor::on_rtcp_to_phone`]: a compound packet the relay sent to
//!   the phone; each SR in it is remembered (the middle 32 bits of its NTP
//!   time and the instant it left), the last eight of them.
//!
//! The round-trip time is `arrival − sent − DLSR` (RFC 3550 section 6.4.1)
//! measured entirely on the PBX's monotonic clock, so it does not depend on
//! either phone's wall clock: it is the PBX↔phone delay of this leg alone.
//!
//! RTCP is relayed untouched while RTP SSRCs are rewritten (see
//! [`media::rtp::RtpRelay`]). The phone's report blocks about the RTP it
//! receives therefore name the SSRC the relay put on that stream (the other
//! leg's [`RelayConfig::out_ssrc`](media::rtp::RelayConfig::out_ssrc)); a
//! phone may also report on the far phone's original SSRC, known to it only
//! from the relayed SRs, and such blocks carry no reception data. Loss and
//! jitter are taken from blocks about the relayed stream only; LSR/DLSR
//! are taken from any block, because LSR identifies the SR by its NTP time,
//! whatever SSRC it was filed under.

use std::time::{Duration, Instant};

use media::rtp::{Compound, RtcpPacket, RttEstimator};

/// Clock rate assumed when the configuration says 0 (PCMU/PCMA).
const DEFAULT_CLOCK_RATE: u32 = 8000;

/// What a leg's phone reports about the media it receives from the PBX,
/// from its RTCP report blocks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RtcpQuality {
    /// Report blocks about the relayed stream seen so far.
    pub reports: u64,
    /// Fraction lost in the latest report, 0.0 to 1.0.
    pub fraction_lost: f64,
    /// Cumulative packets lost in the latest report (negative with
    /// duplicates).
    pub cumulative_lost: i64,
    /// Interarrival jitter in the latest report, in milliseconds.
    pub jitter_ms: f64,
    /// Latest round-trip time PBX↔phone, in milliseconds; `None` until a
    /// report block answers a sender report the relay forwarded.
    pub rtt_ms: Option<f64>,
    /// Largest round-trip time measured, in milliseconds.
    pub max_rtt_ms: Option<f64>,
}

/// Sans-IO RTCP bookkeeping of one leg; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct RtcpMonitor {
    clock_rate: u32,
    media_ssrc: Option<u32>,
    rtt: RttEstimator,
    quality: RtcpQuality,
}

impl RtcpMonitor {
    /// A monitor for a leg whose phone receives RTP with `media_ssrc` (the
    /// SSRC the relay writes on the stream towards it; `None` accepts
    /// report blocks about any source) at `clock_rate` Hz (0 means 8000).
    pub fn new(clock_rate: u32, media_ssrc: Option<u32>) -> Self {
        let mut monitor = Self {
            clock_rate: DEFAULT_CLOCK_RATE,
            media_ssrc,
            rtt: RttEstimator::new(),
            quality: RtcpQuality::default(),
        };
        monitor.set_clock_rate(clock_rate);
        monitor
    }

    /// The RTP clock rate of the stream the phone receives, in which its
    /// report blocks give jitter (0 means 8000).
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        self.clock_rate = if clock_rate == 0 {
            DEFAULT_CLOCK_RATE
        } else {
            clock_rate
        };
    }

    /// Reads an RTCP compound packet the leg's phone sent, received at
    /// `now`. Returns false when it is not valid RTCP (nothing is updated).
    pub fn on_rtcp_from_phone(&mut self, data: &[u8], now: Instant) -> bool {
        let Ok(compound) = Compound::parse(data) else {
            return false;
        };
        for (_reporter, block) in compound.report_blocks() {
            if let Some(rtt) = self.rtt.on_report_block(&block, now) {
                let ms = millis(rtt);
                self.quality.rtt_ms = Some(ms);
                self.quality.max_rtt_ms = Some(self.quality.max_rtt_ms.map_or(ms, |m| m.max(ms)));
            }
            if self.media_ssrc.is_some_and(|s| s != block.ssrc) {
                continue;
            }
            self.quality.reports += 1;
            self.quality.fraction_lost = f64::from(block.fraction_lost) / 256.0;
            self.quality.cumulative_lost = i64::from(block.cumulative_lost);
            self.quality.jitter_ms = f64::from(block.jitter) * 1000.0 / f64::from(self.clock_rate);
        }
        true
    }

    /// Notes an RTCP compound packet the relay sent to the leg's phone at
    /// `now`: each sender report in it may come back as LSR.
    pub fn on_rtcp_to_phone(&mut self, data: &[u8], now: Instant) {
        let Ok(compound) = Compound::parse(data) else {
            return;
        };
        for packet in compound.packets() {
            if let RtcpPacket::SenderReport { info, .. } = packet {
                self.rtt.on_sender_report_sent(info.ntp, now);
            }
        }
    }

    /// The summary so far.
    pub fn quality(&self) -> RtcpQuality {
        self.quality
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use media::rtp::rtcp::{write_receiver_report, write_sdes_cname, write_sender_report};
    use media::rtp::{NtpTime, ReportBlock, SenderInfo};

    use super::*;

    const MEDIA: u32 = 0xA0A0_0001;

    fn sr(ssrc: u32, ntp: u64, blocks: &[ReportBlock]) -> Vec<u8> {
        let mut out = vec![0; 1500];
        let info = SenderInfo {
            ssrc,
            ntp: NtpTime(ntp),
            ..SenderInfo::default()
        };
        let n = write_sender_report(&info, blocks, &mut out).unwrap();
        let m = write_sdes_cname(ssrc, b"phone@example", &mut out[n..]).unwrap();
        out.truncate(n + m);
        out
    }

    fn rr(ssrc: u32, blocks: &[ReportBlock]) -> Vec<u8> {
        let mut out = vec![0; 1500];
        let n = write_receiver_report(ssrc, blocks, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn report_blocks_about_the_relayed_stream_are_summarised() {
        let mut m = RtcpMonitor::new(8000, Some(MEDIA));
        let now = Instant::now();
        let block = ReportBlock {
            ssrc: MEDIA,
            fraction_lost: 64,
            cumulative_lost: 12,
            jitter: 80,
            ..ReportBlock::default()
        };
        assert!(m.on_rtcp_from_phone(&rr(7, &[block]), now));
        let q = m.quality();
        assert_eq!(q.reports, 1);
        assert_eq!(q.fraction_lost, 0.25);
        assert_eq!(q.cumulative_lost, 12);
        assert_eq!(q.jitter_ms, 10.0);
        assert_eq!(q.rtt_ms, None);

        // An SR's blocks count too; the latest report wins.
        let block = ReportBlock {
            cumulative_lost: -2,
            fraction_lost: 0,
            jitter: 1600,
            ..block
        };
        assert!(m.on_rtcp_from_phone(&sr(7, 1 << 40, &[block]), now));
        let q = m.quality();
        assert_eq!(q.reports, 2);
        assert_eq!(q.fraction_lost, 0.0);
        assert_eq!(q.cumulative_lost, -2);
        assert_eq!(q.jitter_ms, 200.0);
    }

    #[test]
    fn blocks_about_other_sources_and_garbage_are_ignored() {
        let mut m = RtcpMonitor::new(16000, Some(MEDIA));
        let now = Instant::now();
        let other = ReportBlock {
            ssrc: 0x1234,
            fraction_lost: 255,
            cumulative_lost: 1000,
            jitter: 5000,
            ..ReportBlock::default()
        };
        assert!(m.on_rtcp_from_phone(&rr(7, &[other]), now));
        assert_eq!(m.quality(), RtcpQuality::default());
        assert!(!m.on_rtcp_from_phone(&[0x80, 201, 0, 9], now));
        assert!(!m.on_rtcp_from_phone(&[], now));
        assert_eq!(m.quality(), RtcpQuality::default());

        // Wideband clock: 160 units at 16 kHz are 10 ms.
        let ours = ReportBlock {
            ssrc: MEDIA,
            jitter: 160,
            ..ReportBlock::default()
        };
        m.on_rtcp_from_phone(&rr(7, &[other, ours]), now);
        assert_eq!(m.quality().reports, 1);
        assert_eq!(m.quality().jitter_ms, 10.0);
    }

    #[test]
    fn any_source_without_a_media_ssrc_and_zero_clock_rate_means_8000() {
        let mut m = RtcpMonitor::new(0, None);
        let block = ReportBlock {
            ssrc: 99,
            jitter: 8,
            ..ReportBlock::default()
        };
        m.on_rtcp_from_phone(&rr(7, &[block]), Instant::now());
        assert_eq!(m.quality().reports, 1);
        assert_eq!(m.quality().jitter_ms, 1.0);
    }

    #[test]
    fn a_codec_with_another_clock_changes_the_jitter_units() {
        let mut m = RtcpMonitor::new(8000, None);
        m.set_clock_rate(48_000);
        let block = ReportBlock {
            ssrc: 99,
            jitter: 480,
            ..ReportBlock::default()
        };
        m.on_rtcp_from_phone(&rr(7, &[block]), Instant::now());
        assert_eq!(m.quality().jitter_ms, 10.0);
        m.set_clock_rate(0);
        m.on_rtcp_from_phone(&rr(7, &[block]), Instant::now());
        assert_eq!(m.quality().jitter_ms, 60.0, "0 means 8000");
    }

    #[test]
    fn rtt_from_lsr_of_a_forwarded_sender_report_minus_dlsr() {
        let mut m = RtcpMonitor::new(8000, Some(MEDIA));
        let t0 = Instant::now();
        let ntp1 = 0x0000_1111_2222_0000;
        let ntp2 = 0x0000_3333_4444_0000;
        m.on_rtcp_to_phone(&sr(0x1234, ntp1, &[]), t0);
        m.on_rtcp_to_phone(&sr(0x1234, ntp2, &[]), t0 + Duration::from_secs(5));

        // Answers the first SR after 1.1 s, having held it 1 s (65536).
        let block = ReportBlock {
            ssrc: 0x1234, // filed under the far phone's SSRC
            lsr: NtpTime(ntp1).compact(),
            dlsr: 65_536,
            ..ReportBlock::default()
        };
        m.on_rtcp_from_phone(&rr(7, &[block]), t0 + Duration::from_millis(1100));
        let q = m.quality();
        assert!((q.rtt_ms.unwrap() - 100.0).abs() < 0.01, "{q:?}");
        assert_eq!(q.max_rtt_ms, q.rtt_ms);
        assert_eq!(q.reports, 0, "not about the relayed stream");

        // The second SR, 40 ms later with half a second held: last 40, max 100.
        let block = ReportBlock {
            ssrc: MEDIA,
            lsr: NtpTime(ntp2).compact(),
            dlsr: 32_768,
            ..ReportBlock::default()
        };
        m.on_rtcp_from_phone(&rr(7, &[block]), t0 + Duration::from_millis(5540));
        let q = m.quality();
        assert!((q.rtt_ms.unwrap() - 40.0).abs() < 0.01, "{q:?}");
        assert!((q.max_rtt_ms.unwrap() - 100.0).abs() < 0.01, "{q:?}");
        assert_eq!(q.reports, 1);

        // Unknown LSR, or none: no new sample.
        let block = ReportBlock {
            ssrc: MEDIA,
            lsr: 0xdead_beef,
            ..ReportBlock::default()
        };
        m.on_rtcp_from_phone(&rr(7, &[block]), t0 + Duration::from_secs(9));
        let block = ReportBlock { lsr: 0, ..block };
        m.on_rtcp_from_phone(&rr(7, &[block]), t0 + Duration::from_secs(9));
        assert!((m.quality().rtt_ms.unwrap() - 40.0).abs() < 0.01);
    }

    #[test]
    fn only_the_last_eight_sender_reports_are_remembered() {
        let mut m = RtcpMonitor::new(8000, None);
        let t0 = Instant::now();
        let ntp = |i: u64| (i + 1) << 24;
        for i in 0..9 {
            m.on_rtcp_to_phone(&sr(1, ntp(i), &[]), t0);
        }
        let block = |i: u64| ReportBlock {
            lsr: NtpTime(ntp(i)).compact(),
            ..ReportBlock::default()
        };
        let later = t0 + Duration::from_millis(30);
        m.on_rtcp_from_phone(&rr(7, &[block(0)]), later);
        assert_eq!(m.quality().rtt_ms, None, "the oldest was evicted");
        m.on_rtcp_from_phone(&rr(7, &[block(1)]), later);
        assert!((m.quality().rtt_ms.unwrap() - 30.0).abs() < 0.01);
    }

    #[test]
    fn reports_to_the_phone_without_sr_or_invalid_are_harmless() {
        let mut m = RtcpMonitor::new(8000, None);
        let now = Instant::now();
        m.on_rtcp_to_phone(&rr(1, &[]), now);
        m.on_rtcp_to_phone(&[1, 2, 3], now);
        let block = ReportBlock {
            lsr: 0,
            ..ReportBlock::default()
        };
        m.on_rtcp_from_phone(&rr(7, &[block]), now);
        assert_eq!(m.quality().rtt_ms, None);
    }
}
