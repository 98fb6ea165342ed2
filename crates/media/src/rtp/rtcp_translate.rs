//! RTCP translation for the relay (RFC 3550 section 7.3).
//!
//! The relay sends each phone RTP under its own SSRC, sequence numbers and
//! timestamps ([`super::relay`]). RTCP passed through unchanged would then
//! describe streams the receiver never saw: a sender report under an SSRC
//! that sends no RTP, report blocks about an SSRC the other phone does not
//! own, a NACK for sequence numbers it never used. Like a translator, the
//! relay rewrites the identifiers in place so that each phone's RTCP speaks
//! of the streams as the other phone knows them:
//!
//! - the sender's own SSRC (SR, RR, SDES chunks, BYE, APP, feedback, XR)
//!   becomes the SSRC the relay uses towards the other phone;
//! - a sender report's RTP timestamp moves by the relay's timestamp offset,
//!   and onto the other leg's RTP clock when the relay transcodes between
//!   codecs of different clock rates ([`TimestampMap`]);
//! - report blocks and feedback about the stream the phone receives name
//!   the other phone's real SSRC, with the extended highest sequence number
//!   (and generic NACK sequence numbers) mapped back to its numbering, and
//!   the interarrival jitter converted to the sender's clock when the
//!   rates differ.
//!
//! Counts, NTP times and LSR/DLSR are left alone: they stay true across the
//! translation (transcoding is one packet for one packet).

use super::rtcp::{PT_APP, PT_BYE, PT_PSFB, PT_RR, PT_RTPFB, PT_SDES, PT_SR};

/// Extended reports (RFC 3611).
const PT_XR: u8 = 207;
/// Generic NACK feedback message type of RTPFB (RFC 4585 section 6.2.1).
const FMT_GENERIC_NACK: u8 = 1;
const REPORT_BLOCK_LEN: usize = 24;

/// How the RTCP one phone sends is rewritten for the other phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpTranslation {
    /// The SSRC the other phone sees on this phone's RTP (the relay's
    /// outgoing SSRC); replaces the sender's own SSRC.
    pub sender_ssrc: u32,
    /// What the relay adds to this phone's RTP timestamps, once known.
    pub timestamp_offset: Option<u32>,
    /// How the relay then maps them onto the other leg's RTP clock
    /// (transcoding between clock rates), applied after the offset.
    pub timestamp_map: Option<TimestampMap>,
    /// The stream this phone receives, as the relay rewrote it.
    pub received: Option<ReceivedStream>,
}

/// The stream a phone receives through the relay: the SSRC it sees and
/// the original one of the phone that sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedStream {
    /// The SSRC the phone sees (the relay's outgoing SSRC towards it).
    pub seen_ssrc: u32,
    /// The SSRC the sending phone really uses.
    pub original_ssrc: u32,
    /// What the relay adds to the sender's sequence numbers.
    pub sequence_offset: u16,
    /// `(sender's clock rate, this phone's clock rate)` when the relay
    /// transcodes between codecs of different RTP clock rates: jitter
    /// reported in this phone's units is converted to the sender's.
    pub clock_rates: Option<(u32, u32)>,
}

/// A mapping of RTP timestamps from one clock rate to another, anchored
/// where the relay's rescaling of the packets is (see `rtp-relay`'s
/// transcoding): `out = first + (advance + (ts − last_in)) · to / from`,
/// `ts − last_in` taken as a signed 32-bit distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampMap {
    /// The first incoming timestamp (the origin of both clocks).
    pub first: u32,
    /// Incoming ticks from `first` to `last_in`, unwrapped.
    pub advance: i64,
    /// The newest incoming timestamp.
    pub last_in: u32,
    /// Incoming RTP clock rate (Hz, not 0).
    pub from_rate: u32,
    /// Outgoing RTP clock rate (Hz, not 0).
    pub to_rate: u32,
}

impl TimestampMap {
    /// `ts` on the outgoing clock.
    pub fn map(&self, ts: u32) -> u32 {
        let delta = i64::from(ts.wrapping_sub(self.last_in) as i32);
        let total = self.advance + delta;
        let scaled = total * i64::from(self.to_rate) / i64::from(self.from_rate.max(1));
        self.first.wrapping_add(scaled as u32)
    }
}

/// Rewrites the compound RTCP packet in `buf` in place. Returns false,
/// leaving the rest untouched, at the first packet that is not well formed
/// (the caller should drop the datagram); never panics.
pub fn translate(buf: &mut [u8], t: &RtcpTranslation) -> bool {
    let mut at = 0;
    while at < buf.len() {
        if buf.len() - at < 4 || buf[at] >> 6 != 2 {
            return false;
        }
        let count = usize::from(buf[at] & 0x1f);
        let pt = buf[at + 1];
        let len = (usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]])) + 1) * 4;
        let padded = buf[at] & 0x20 != 0;
        let Some(packet) = buf.get_mut(at..at + len) else {
            return false;
        };
        // Fields are rewritten only in the content: padding (whose last
        // octet counts it) stays as it is.
        let packet = if padded {
            let pad = usize::from(packet[len - 1]);
            if pad == 0 || pad > len - 4 {
                return false;
            }
            &mut packet[..len - pad]
        } else {
            packet
        };
        let ok = match pt {
            PT_SR => sender_report(packet, count, t),
            PT_RR => set_sender(packet, t) && report_blocks(packet, 8, count, t),
            PT_SDES => sdes(packet, count, t),
            PT_BYE => bye(packet, count, t),
            PT_RTPFB | PT_PSFB => feedback(packet, pt, count as u8, t),
            PT_APP | PT_XR => set_sender(packet, t),
            // Unknown types pass as they are.
            _ => true,
        };
        if !ok {
            return false;
        }
        at += len;
    }
    true
}

fn get32(b: &[u8], at: usize) -> Option<u32> {
    let w = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

fn set32(b: &mut [u8], at: usize, v: u32) -> bool {
    match b.get_mut(at..at + 4) {
        Some(w) => {
            w.copy_from_slice(&v.to_be_bytes());
            true
        }
        None => false,
    }
}

fn set_sender(p: &mut [u8], t: &RtcpTranslation) -> bool {
    set32(p, 4, t.sender_ssrc)
}

fn sender_report(p: &mut [u8], count: usize, t: &RtcpTranslation) -> bool {
    if !set_sender(p, t) {
        return false;
    }
    // Sender info: NTP (8..16), RTP timestamp (16..20), counts (20..28).
    let Some(ts) = get32(p, 16) else {
        return false;
    };
    if let Some(offset) = t.timestamp_offset {
        let ts = ts.wrapping_add(offset);
        set32(p, 16, t.timestamp_map.map_or(ts, |m| m.map(ts)));
    }
    report_blocks(p, 28, count, t)
}

fn report_blocks(p: &mut [u8], start: usize, count: usize, t: &RtcpTranslation) -> bool {
    if p.len() < start + count * REPORT_BLOCK_LEN {
        return false;
    }
    let Some(r) = t.received else {
        return true;
    };
    for i in 0..count {
        let block = start + i * REPORT_BLOCK_LEN;
        if get32(p, block) != Some(r.seen_ssrc) {
            continue;
        }
        set32(p, block, r.original_ssrc);
        // Extended highest sequence number: cycles and sequence of the
        // stream as the phone numbered it, back in the sender's numbering.
        if let Some(highest) = get32(p, block + 8) {
            set32(
                p,
                block + 8,
                highest.wrapping_sub(u32::from(r.sequence_offset)),
            );
        }
        if let (Some((sender, own)), Some(jitter)) = (r.clock_rates, get32(p, block + 12))
            && own != 0
        {
            let scaled = u64::from(jitter) * u64::from(sender) / u64::from(own);
            set32(p, block + 12, scaled.min(u64::from(u32::MAX)) as u32);
        }
    }
    true
}

/// SDES: every chunk a phone sends describes itself (mixers' CSRC chunks
/// do not come from phones).
fn sdes(p: &mut [u8], count: usize, t: &RtcpTranslation) -> bool {
    let mut at = 4;
    for _ in 0..count {
        if !set32(p, at, t.sender_ssrc) {
            return false;
        }
        at += 4;
        // Items until the END item (type 0), then padding to 32 bits.
        loop {
            match p.get(at) {
                None => return false,
                Some(0) => break,
                Some(_) => {
                    let Some(&len) = p.get(at + 1) else {
                        return false;
                    };
                    at += 2 + usize::from(len);
                }
            }
        }
        at = (at + 4) & !3;
    }
    at <= p.len()
}

fn bye(p: &mut [u8], count: usize, t: &RtcpTranslation) -> bool {
    (0..count).all(|i| set32(p, 4 + 4 * i, t.sender_ssrc))
}

fn feedback(p: &mut [u8], pt: u8, fmt: u8, t: &RtcpTranslation) -> bool {
    if !set_sender(p, t) {
        return false;
    }
    let Some(media) = get32(p, 8) else {
        return false;
    };
    let Some(r) = t.received.filter(|r| r.seen_ssrc == media) else {
        return true;
    };
    set32(p, 8, r.original_ssrc);
    if pt == PT_RTPFB && fmt == FMT_GENERIC_NACK {
        // FCI entries: PID (16 bits) and a bitmask of the 16 that follow.
        let mut at = 12;
        while let Some(pid) = p.get_mut(at..at + 2) {
            let seq = u16::from_be_bytes([pid[0], pid[1]]).wrapping_sub(r.sequence_offset);
            pid.copy_from_slice(&seq.to_be_bytes());
            at += 4;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::rtcp::{
        Compound, RtcpPacket, write_receiver_report, write_sdes_cname, write_sender_report,
    };
    use crate::rtp::{NtpTime, ReportBlock, SenderInfo};
    use proptest::prelude::*;

    const PHONE: u32 = 0x1111_1111;
    const TO_OTHER: u32 = 0xA0A0_0001;
    const SEEN: u32 = 0xB0B0_0002;
    const OTHER: u32 = 0x2222_2222;

    fn translation() -> RtcpTranslation {
        RtcpTranslation {
            sender_ssrc: TO_OTHER,
            timestamp_offset: Some(1000),
            timestamp_map: None,
            received: Some(ReceivedStream {
                seen_ssrc: SEEN,
                original_ssrc: OTHER,
                sequence_offset: 500,
                clock_rates: None,
            }),
        }
    }

    fn block(ssrc: u32, highest: u32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 3,
            cumulative_lost: 7,
            highest_seq: highest,
            jitter: 40,
            lsr: 0x1234_5678,
            dlsr: 99,
        }
    }

    fn compound_of(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn transcoding_across_clock_rates_rescales_timestamp_and_jitter() {
        // This phone sends at an 8 kHz RTP clock, converted to 48 kHz for
        // the other phone: its SR timestamp goes to 48 kHz. The stream it
        // receives was sent at 48 kHz and reaches it at 8 kHz: the jitter
        // it reports goes back to 48 kHz units for that sender.
        let mut sr = [0u8; 128];
        let info = SenderInfo {
            ssrc: PHONE,
            ntp: NtpTime(1),
            rtp_timestamp: 50_000 - 1000 + 320,
            packet_count: 10,
            octet_count: 1600,
        };
        let n = write_sender_report(&info, &[block(SEEN, 600)], &mut sr).unwrap();
        let t = RtcpTranslation {
            // After the offset (1000) the SR names 50_320: two packets after
            // the newest one the transform saw.
            timestamp_map: Some(TimestampMap {
                first: 10_000,
                advance: 40_000,
                last_in: 50_000,
                from_rate: 8000,
                to_rate: 48_000,
            }),
            received: Some(ReceivedStream {
                clock_rates: Some((48_000, 8000)),
                ..translation().received.unwrap()
            }),
            ..translation()
        };
        assert!(translate(&mut sr[..n], &t));
        match Compound::parse(&sr[..n]).unwrap().packets().next().unwrap() {
            RtcpPacket::SenderReport { info, blocks } => {
                // 10_000 + (40_000 + 320) · 6
                assert_eq!(info.rtp_timestamp, 10_000 + 241_920);
                let b = blocks.iter().next().unwrap();
                assert_eq!(b.jitter, 40 * 6, "jitter in the sender's 48 kHz units");
            }
            other => panic!("{other:?}"),
        }
        // A timestamp a little before the newest maps back the same way.
        let m = t.timestamp_map.unwrap();
        assert_eq!(m.map(49_840), 10_000 + (40_000 - 160) * 6);
    }

    #[test]
    fn sender_report_with_sdes_speaks_of_the_relayed_streams() {
        let mut sr = [0u8; 128];
        let info = SenderInfo {
            ssrc: PHONE,
            ntp: NtpTime(0xDEAD_BEEF_0000_0001),
            rtp_timestamp: 160,
            packet_count: 10,
            octet_count: 1600,
        };
        let n = write_sender_report(
            &info,
            &[block(SEEN, 0x0001_0600), block(0x7777, 5)],
            &mut sr,
        )
        .unwrap();
        let mut sdes = [0u8; 64];
        let m = write_sdes_cname(PHONE, b"phone@host", &mut sdes).unwrap();
        let mut buf = compound_of(&[&sr[..n], &sdes[..m]]);
        assert!(translate(&mut buf, &translation()));

        let c = Compound::parse(&buf).unwrap();
        let packets: Vec<_> = c.packets().collect();
        match &packets[0] {
            RtcpPacket::SenderReport { info, blocks } => {
                assert_eq!(info.ssrc, TO_OTHER);
                assert_eq!(info.rtp_timestamp, 1160);
                assert_eq!(info.ntp, NtpTime(0xDEAD_BEEF_0000_0001));
                let b: Vec<_> = blocks.iter().collect();
                assert_eq!(b[0].ssrc, OTHER);
                assert_eq!(b[0].highest_seq, 0x0001_0600 - 500);
                assert_eq!((b[0].lsr, b[0].jitter), (0x1234_5678, 40));
                assert_eq!(
                    b[1],
                    block(0x7777, 5),
                    "a block about another source is kept"
                );
            }
            other => panic!("{other:?}"),
        }
        let chunk = packets[1].sdes_chunks().next().unwrap();
        assert_eq!(chunk.ssrc, TO_OTHER);
        assert_eq!(chunk.cname(), Some(&b"phone@host"[..]));
    }

    #[test]
    fn receiver_report_and_bye() {
        let mut rr = [0u8; 64];
        let n = write_receiver_report(PHONE, &[block(SEEN, 600)], &mut rr).unwrap();
        let bye = [0x81, PT_BYE, 0, 1, 0x11, 0x11, 0x11, 0x11];
        let mut buf = compound_of(&[&rr[..n], &bye]);
        assert!(translate(&mut buf, &translation()));
        let c = Compound::parse(&buf).unwrap();
        let reports: Vec<_> = c.report_blocks().collect();
        assert_eq!(reports, vec![(TO_OTHER, block(OTHER, 100))]);
        assert_eq!(&buf[n + 4..n + 8], &TO_OTHER.to_be_bytes());
    }

    #[test]
    fn generic_nack_moves_to_the_senders_numbering() {
        let mut nack = vec![0x80 | FMT_GENERIC_NACK, PT_RTPFB, 0, 3];
        nack.extend_from_slice(&PHONE.to_be_bytes());
        nack.extend_from_slice(&SEEN.to_be_bytes());
        nack.extend_from_slice(&[0x02, 0x58, 0x00, 0x01]); // PID 600, BLP 1
        assert!(translate(&mut nack, &translation()));
        assert_eq!(&nack[4..8], &TO_OTHER.to_be_bytes());
        assert_eq!(&nack[8..12], &OTHER.to_be_bytes());
        assert_eq!(&nack[12..16], &[0x00, 0x64, 0x00, 0x01]); // PID 100
    }

    #[test]
    fn without_rtp_yet_only_the_sender_changes() {
        let mut sr = [0u8; 64];
        let info = SenderInfo {
            ssrc: PHONE,
            ntp: NtpTime(1),
            rtp_timestamp: 160,
            packet_count: 0,
            octet_count: 0,
        };
        let n = write_sender_report(&info, &[block(SEEN, 600)], &mut sr).unwrap();
        let t = RtcpTranslation {
            sender_ssrc: TO_OTHER,
            timestamp_offset: None,
            timestamp_map: None,
            received: None,
        };
        assert!(translate(&mut sr[..n], &t));
        match Compound::parse(&sr[..n]).unwrap().packets().next().unwrap() {
            RtcpPacket::SenderReport { info, blocks } => {
                assert_eq!((info.ssrc, info.rtp_timestamp), (TO_OTHER, 160));
                assert_eq!(blocks.iter().next().unwrap(), block(SEEN, 600));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_or_foreign_input_is_refused() {
        let mut rr = [0u8; 64];
        let n = write_receiver_report(PHONE, &[block(SEEN, 600)], &mut rr).unwrap();
        // Length field claims more than there is.
        assert!(!translate(&mut rr[..n - 4], &translation()));
        // Not version 2.
        let mut v1 = rr;
        v1[0] = 0x41;
        assert!(!translate(&mut v1[..n], &translation()));
        assert!(!translate(&mut [0x80, PT_RR, 0], &translation()));
        // Padding that claims more than the body, or none.
        let mut pad = [0xA0, PT_RR, 0, 1, 0, 0, 0, 9];
        assert!(!translate(&mut pad, &translation()));
        // Padding is never rewritten; a field in the padding is missing.
        let mut app = [0xA1, PT_APP, 0, 2, 1, 2, 3, 4, 0, 0, 0, 4];
        assert!(translate(&mut app, &translation()));
        let mut expected = [0xA1, PT_APP, 0, 2, 0, 0, 0, 0, 0, 0, 0, 4];
        expected[4..8].copy_from_slice(&TO_OTHER.to_be_bytes());
        assert_eq!(app, expected);
        let mut short = [0xA1, PT_APP, 0, 1, 1, 2, 3, 4];
        assert!(!translate(&mut short, &translation()));
        // A report count larger than the packet.
        let mut lying = rr;
        lying[0] = 0x80 | 5;
        assert!(!translate(&mut lying[..n], &translation()));
    }

    proptest! {
        #[test]
        fn never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = translate(&mut data, &translation());
        }
    }
}
