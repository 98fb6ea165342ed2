//! A [`PacketTransform`] that transcodes one direction of a call whose legs
//! share no codec: each RTP packet's payload is converted with a
//! [`media::transcode::Transcoder`], one packet in for one packet out (a
//! 20 ms packet stays a 20 ms packet, whatever the ptime), and its header
//! is rewritten for the receiving leg.
//!
//! - Payload type: the receiving leg's.
//! - Timestamp: rescaled when the RTP clock rates differ (Opus counts
//!   48000 Hz, G.711 and G.722 count 8000 Hz), relative to the first packet
//!   so no drift accumulates; reordered packets map backwards correctly.
//! - Telephone-events (RFC 4733) are not audio: they are passed on under the
//!   receiving leg's payload type, their duration rescaled if its
//!   telephone-event clock differs.
//! - Comfort noise (static PT 13) cannot be converted; it is dropped rather
//!   than sent as garbage in another codec's payload type. So is anything
//!   else of an unexpected payload type, or not RTP at all.
//! - Marker bit, sequence number, SSRC, CSRCs and header extension are kept
//!   as the relay wrote them; padding is removed.
//!
//! Buffers are reused: no allocation per packet once the first packets
//! have sized them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use media::codec::{CodecError, CodecKind};
use media::rtp::{RtpPacket, TimestampMap};
use media::transcode::Transcoder;

use crate::session::PacketTransform;

/// The static payload type of comfort noise (RFC 3389).
const COMFORT_NOISE: u8 = 13;

/// One leg's payload format, as negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadFormat {
    /// The codec.
    pub codec: CodecKind,
    /// Its payload type on this leg.
    pub payload_type: u8,
    /// Telephone-event payload type and RTP clock rate on this leg, when
    /// both legs negotiated DTMF events.
    pub telephone_event: Option<(u8, u32)>,
}

/// What a [`Transcode`] did, shared with whoever created it (the transform
/// itself is owned by the relay task).
#[derive(Debug, Default)]
pub struct TranscodeCounters {
    converted: AtomicU64,
    events: AtomicU64,
    comfort_noise: AtomicU64,
    dropped: AtomicU64,
}

/// A snapshot of [`TranscodeCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TranscodeStats {
    /// Audio packets converted and sent on.
    pub converted: u64,
    /// Telephone-event packets mapped and sent on.
    pub events: u64,
    /// Comfort-noise packets dropped.
    pub comfort_noise: u64,
    /// Packets dropped because they could not be converted (not RTP, an
    /// unexpected payload type, an encoder error, too large).
    pub dropped: u64,
}

impl TranscodeCounters {
    /// The counts so far.
    pub fn snapshot(&self) -> TranscodeStats {
        TranscodeStats {
            converted: self.converted.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            comfort_noise: self.comfort_noise.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    fn count(counter: &AtomicU64) {
        // Only the relay task writes; readers want a recent value, no order.
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Maps timestamps of one RTP clock onto another, relative to the first
/// packet seen.
#[derive(Debug)]
struct TimestampScale {
    from_rate: u32,
    to_rate: u32,
    /// Anchored at the first packet, advanced with the newest one; `None`
    /// before the first packet or when the rates are equal.
    mapping: Option<TimestampMap>,
}

impl TimestampScale {
    fn new(from_rate: u32, to_rate: u32) -> Self {
        Self {
            from_rate: from_rate.max(1),
            to_rate: to_rate.max(1),
            mapping: None,
        }
    }

    fn map(&mut self, ts: u32) -> u32 {
        if self.from_rate == self.to_rate {
            return ts;
        }
        let Some(m) = &mut self.mapping else {
            self.mapping = Some(TimestampMap {
                first: ts,
                advance: 0,
                last_in: ts,
                from_rate: self.from_rate,
                to_rate: self.to_rate,
            });
            return ts;
        };
        let out = m.map(ts);
        // Signed distance from the newest packet: negative when reordered.
        let delta = i64::from(ts.wrapping_sub(m.last_in) as i32);
        if delta > 0 {
            m.advance += delta;
            m.last_in = ts;
        }
        out
    }

    /// The mapping as it stands, for RTCP sender reports; `None` while the
    /// rates are equal or before the first packet.
    fn snapshot(&self) -> Option<TimestampMap> {
        self.mapping
    }
}

/// Transcodes the RTP of one direction: payloads of `from` become payloads
/// of `to`.
#[derive(Debug)]
pub struct Transcode {
    from: PayloadFormat,
    to: PayloadFormat,
    transcoder: Transcoder,
    timestamps: TimestampScale,
    /// The converted payload (reused).
    payload: Vec<u8>,
    counters: Arc<TranscodeCounters>,
}

impl Transcode {
    /// A transform from packets in `from` to packets in `to`.
    pub fn new(from: PayloadFormat, to: PayloadFormat) -> Result<Self, CodecError> {
        Ok(Self {
            transcoder: Transcoder::new(from.codec, to.codec)?,
            timestamps: TimestampScale::new(from.codec.rtp_clock_rate(), to.codec.rtp_clock_rate()),
            payload: Vec::with_capacity(1500),
            counters: Arc::default(),
            from,
            to,
        })
    }

    /// The counters, readable while the relay owns the transform.
    pub fn counters(&self) -> Arc<TranscodeCounters> {
        Arc::clone(&self.counters)
    }

    /// Copies `rtp`'s header into `out` with payload type `pt`, timestamp
    /// `ts` and no padding, then `payload` after it.
    fn write(
        rtp: &RtpPacket<'_>,
        pt: u8,
        ts: u32,
        payload: &[u8],
        out: &mut [u8],
    ) -> Option<usize> {
        let header = rtp.header_len();
        let len = header + payload.len();
        if len > out.len() {
            return None;
        }
        out[..header].copy_from_slice(&rtp.as_bytes()[..header]);
        out[0] &= !0x20;
        out[1] = (out[1] & 0x80) | (pt & 0x7f);
        out[4..8].copy_from_slice(&ts.to_be_bytes());
        out[header..len].copy_from_slice(payload);
        Some(len)
    }

    fn audio(&mut self, rtp: &RtpPacket<'_>, out: &mut [u8]) -> Option<usize> {
        if rtp.payload().is_empty() {
            return None;
        }
        self.payload.clear();
        self.transcoder
            .transcode(rtp.payload(), &mut self.payload)
            .ok()?;
        if self.payload.is_empty() {
            // The encoder is still collecting a whole frame (Opus).
            return None;
        }
        let ts = self.timestamps.map(rtp.timestamp());
        let len = Self::write(rtp, self.to.payload_type, ts, &self.payload, out)?;
        TranscodeCounters::count(&self.counters.converted);
        Some(len)
    }

    /// RFC 4733 §2.3: event (8 bits), E/R/volume (8 bits), duration (16
    /// bits, in the telephone-event clock), possibly several blocks
    /// (redundancy); each duration is rescaled.
    fn event(&mut self, rtp: &RtpPacket<'_>, out: &mut [u8]) -> Option<usize> {
        let ((_, from_rate), (to_pt, to_rate)) =
            (self.from.telephone_event?, self.to.telephone_event?);
        let payload = rtp.payload();
        if payload.is_empty() || !payload.len().is_multiple_of(4) {
            return None;
        }
        let ts = self.timestamps.map(rtp.timestamp());
        let len = Self::write(rtp, to_pt, ts, payload, out)?;
        if from_rate != to_rate && from_rate != 0 {
            let header = rtp.header_len();
            for block in out[header..len].chunks_exact_mut(4) {
                let duration = u64::from(u16::from_be_bytes([block[2], block[3]]));
                let scaled = (duration * u64::from(to_rate) / u64::from(from_rate))
                    .min(u64::from(u16::MAX)) as u16;
                block[2..4].copy_from_slice(&scaled.to_be_bytes());
            }
        }
        TranscodeCounters::count(&self.counters.events);
        Some(len)
    }
}

impl PacketTransform for Transcode {
    fn timestamp_map(&self) -> Option<TimestampMap> {
        self.timestamps.snapshot()
    }

    fn transform(&mut self, packet: &[u8], out: &mut [u8]) -> Option<usize> {
        let Ok(rtp) = RtpPacket::parse(packet) else {
            TranscodeCounters::count(&self.counters.dropped);
            return None;
        };
        let pt = rtp.payload_type();
        let sent = if pt == self.from.payload_type {
            self.audio(&rtp, out)
        } else if self.from.telephone_event.is_some_and(|(te, _)| te == pt) {
            self.event(&rtp, out)
        } else if pt == COMFORT_NOISE {
            TranscodeCounters::count(&self.counters.comfort_noise);
            return None;
        } else {
            None
        };
        if sent.is_none() {
            TranscodeCounters::count(&self.counters.dropped);
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::codec::g711;
    use media::rtp::RtpHeader;

    fn packet(pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let header = RtpHeader {
            marker,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc: 0x1234_5678,
            ..Default::default()
        };
        let mut buf = vec![0; header.len() + payload.len()];
        let n = header.write(payload, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    fn format(codec: CodecKind, pt: u8, te: Option<(u8, u32)>) -> PayloadFormat {
        PayloadFormat {
            codec,
            payload_type: pt,
            telephone_event: te,
        }
    }

    fn run(t: &mut Transcode, packet: &[u8]) -> Option<Vec<u8>> {
        let mut out = [0u8; 2048];
        t.transform(packet, &mut out).map(|n| out[..n].to_vec())
    }

    #[test]
    fn pcmu_to_pcma_is_the_g711_table_and_keeps_the_header() {
        let mut t = Transcode::new(
            format(CodecKind::Pcmu, 0, None),
            format(CodecKind::Pcma, 8, None),
        )
        .unwrap();
        let payload: Vec<u8> = (0..160).map(|i| (i * 37 % 256) as u8).collect();
        let out = run(&mut t, &packet(0, true, 77, 1000, &payload)).unwrap();
        let rtp = RtpPacket::parse(&out).unwrap();
        assert_eq!(rtp.payload_type(), 8);
        assert!(rtp.marker());
        assert_eq!(
            (rtp.sequence(), rtp.timestamp(), rtp.ssrc()),
            (77, 1000, 0x1234_5678)
        );
        let expected: Vec<u8> = payload.iter().map(|&b| g711::ulaw_to_alaw(b)).collect();
        assert_eq!(rtp.payload(), expected.as_slice());
        assert_eq!(t.counters().snapshot().converted, 1);
    }

    #[test]
    fn timestamps_are_rescaled_between_clock_rates() {
        let mut scale = TimestampScale::new(8000, 48000);
        let base = u32::MAX - 100; // across the wrap
        assert_eq!(scale.map(base), base);
        assert_eq!(scale.map(base.wrapping_add(160)), base.wrapping_add(960));
        assert_eq!(scale.map(base.wrapping_add(320)), base.wrapping_add(1920));
        // Reordered: a late packet maps back without moving the origin.
        assert_eq!(scale.map(base.wrapping_add(160)), base.wrapping_add(960));
        assert_eq!(scale.map(base.wrapping_add(480)), base.wrapping_add(2880));
        // Sender reports use the same mapping: a timestamp between packets
        // lands where the packets' own would.
        let sr = scale.snapshot().expect("rates differ");
        assert_eq!(sr.map(base.wrapping_add(400)), base.wrapping_add(2400));
        assert_eq!(sr.map(base.wrapping_add(160)), base.wrapping_add(960));
        assert!(TimestampScale::new(8000, 8000).snapshot().is_none());
        let mut down = TimestampScale::new(48000, 8000);
        down.map(5000);
        assert_eq!(down.map(5000 + 960 * 50), 5000 + 160 * 50);
        // Through the transform: PCMU to Opus, 20 ms in, 20 ms out. Opus
        // is there when a workspace member enables media's `opus` feature
        // (`cargo test --workspace`); rtp-relay alone builds without it.
        let Ok(opus) = CodecKind::from_name("opus") else {
            return;
        };
        let mut t =
            Transcode::new(format(CodecKind::Pcmu, 0, None), format(opus, 111, None)).unwrap();
        let mut stamps = Vec::new();
        for i in 0..5u16 {
            let p = packet(0, false, i, 8000 + u32::from(i) * 160, &[0xff; 160]);
            let out = run(&mut t, &p).expect("one Opus packet per 20 ms packet");
            let rtp = RtpPacket::parse(&out).unwrap();
            assert_eq!(rtp.payload_type(), 111);
            stamps.push(rtp.timestamp());
        }
        assert!(stamps.windows(2).all(|w| w[1] - w[0] == 960), "{stamps:?}");
    }

    #[test]
    fn telephone_events_are_mapped_and_comfort_noise_dropped() {
        // The event clocks differ (an 8 kHz leg, a 48 kHz one), the audio
        // clocks do not (G.711 to G.722, both 8000 Hz in RTP).
        let mut t = Transcode::new(
            format(CodecKind::Pcmu, 0, Some((101, 8000))),
            format(CodecKind::G722, 9, Some((97, 48000))),
        )
        .unwrap();
        run(&mut t, &packet(0, false, 1, 16000, &[0xff; 160])).unwrap();
        // Digit 5, end bit, volume 10, 400 ms at 8 kHz (3200).
        let event = [5, 0x80 | 10, 0x0c, 0x80];
        let out = run(&mut t, &packet(101, true, 2, 16160, &event)).unwrap();
        let rtp = RtpPacket::parse(&out).unwrap();
        assert_eq!(rtp.payload_type(), 97);
        assert!(rtp.marker());
        assert_eq!(rtp.timestamp(), 16160);
        let duration = u16::from_be_bytes([rtp.payload()[2], rtp.payload()[3]]);
        assert_eq!(
            (rtp.payload()[0], rtp.payload()[1], duration),
            (5, 0x8a, 19200)
        );
        assert!(run(&mut t, &packet(13, false, 3, 16320, &[40])).is_none());
        let stats = t.counters().snapshot();
        assert_eq!(
            (stats.events, stats.comfort_noise, stats.dropped),
            (1, 1, 0)
        );
        // Without DTMF on the other leg, events are dropped, not garbled.
        let mut plain = Transcode::new(
            format(CodecKind::Pcmu, 0, Some((101, 8000))),
            format(CodecKind::Pcma, 8, None),
        )
        .unwrap();
        assert!(run(&mut plain, &packet(101, true, 1, 0, &event)).is_none());
        assert_eq!(plain.counters().snapshot().dropped, 1);
    }

    #[test]
    fn garbage_is_dropped_without_panicking() {
        let mut t = Transcode::new(
            format(CodecKind::G722, 9, Some((101, 8000))),
            format(CodecKind::Pcmu, 0, Some((101, 8000))),
        )
        .unwrap();
        let mut seed = 0x9e37_79b9_u32;
        let mut dropped = 0;
        for len in 0..600 {
            let mut junk: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            if run(&mut t, &junk).is_none() {
                dropped += 1;
            }
            // Valid headers around random payloads of every type.
            if len >= 12 {
                junk[0] = 0x80;
                let _ = run(&mut t, &junk);
            }
        }
        assert!(dropped > 500, "{dropped}");
        // Wrong payload type, empty payload, truncated event: dropped.
        assert!(run(&mut t, &packet(0, false, 1, 0, &[1; 160])).is_none());
        assert!(run(&mut t, &packet(9, false, 1, 0, &[])).is_none());
        assert!(run(&mut t, &packet(101, false, 1, 0, &[1, 2, 3])).is_none());
        // A payload too large for the output buffer is dropped, not cut.
        let mut small = [0u8; 64];
        assert!(
            t.transform(&packet(9, false, 1, 0, &[0; 160]), &mut small)
                .is_none()
        );
        // G.722 160 octets (20 ms) become 160 PCMU octets (20 ms).
        let out = run(&mut t, &packet(9, false, 2, 160, &[0x55; 160])).unwrap();
        assert_eq!(RtpPacket::parse(&out).unwrap().payload().len(), 160);
    }
}
