//! RTP streams: one UDP socket per call side, 20 ms PCMU packets whose
//! payload starts with a probe (magic, sender identity, packet counter and
//! send time) so the receiver can count, match and time packets even when
//! the relay rewrites SSRC, sequence numbers and timestamps.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::RawFd;

use crate::hist::Histogram;

/// RTP header (12) + one G.711 frame of 20 ms (160).
pub const PACKET_LEN: usize = 12 + 160;
/// First payload bytes of every probe.
pub const MAGIC: [u8; 4] = *b"LG01";
/// Probe length inside the payload: magic, side, owner, counter, send time.
pub const PROBE_LEN: usize = 4 + 1 + 4 + 4 + 8;
/// Packet interval.
pub const PTIME_NS: i64 = 20_000_000;

/// Which end of a call a stream belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Side {
    /// The calling side (sends INVITE).
    Uac = 0,
    /// The called side (answers).
    Uas = 1,
}

/// One media endpoint.
pub struct Stream {
    /// The socket (None once closed).
    pub sock: Option<UdpSocket>,
    /// Its raw fd (for recvmsg).
    pub fd: RawFd,
    /// Local port.
    pub port: u16,
    /// Bumped on reuse of the slot, so stale pacing entries are skipped.
    pub generation: u32,
    /// Which side.
    pub side: Side,
    /// Call index (UAC) or UAS call index.
    pub owner: u32,
    /// Where to send (the other party's SDP address).
    pub remote: Option<SocketAddr>,
    /// Whether the pacer sends for this stream.
    pub sending: bool,
    ssrc: u32,
    seq: u16,
    ts: u32,
    counter: u32,
    /// Packets handed to the kernel.
    pub sent: u64,
    /// Sends that failed (EAGAIN, ICMP errors).
    pub send_errors: u64,
    /// Valid probes received from the right peer (duplicates excluded).
    pub received: u64,
    max_counter: u32,
    window: u64,
    have_rx: bool,
    prev_transit: i64,
    prev_rx_ns: u64,
    prev_counter: u32,
    min_transit: i64,
    /// RFC 3550 interarrival jitter estimate, ns (on send-time transit).
    pub jitter_ns: f64,
}

/// Per-direction measurements.
#[derive(Debug, Default, Clone)]
pub struct DirStats {
    /// Packets sent in this direction.
    pub sent: u64,
    /// Valid packets received in this direction.
    pub received: u64,
    /// Probes that arrived at the wrong call (cross-talk) or wrong side.
    pub misrouted: u64,
    /// Duplicates (same counter twice).
    pub duplicates: u64,
    /// Arrived after a later packet.
    pub reordered: u64,
    /// Datagrams without our probe.
    pub foreign: u64,
    /// Send errors.
    pub send_errors: u64,
    /// Final RFC 3550 jitter of each stream, µs.
    pub jitter: Histogram,
    /// Per packet: transit minus the stream's minimum transit so far, µs
    /// (packet delay variation, network only: uses the embedded send time).
    pub pdv: Histogram,
    /// Per packet: |arrival gap − 20 ms × counter gap|, µs: deviation of
    /// arrivals from the ideal 20 ms schedule (includes the sender's own
    /// pacing error).
    pub iat_dev: Histogram,
    /// One-way transit time, µs.
    pub transit: Histogram,
}

impl Stream {
    /// A stream on an already bound socket.
    pub fn new(
        sock: UdpSocket,
        fd: RawFd,
        port: u16,
        side: Side,
        owner: u32,
        ssrc: u32,
        generation: u32,
    ) -> Stream {
        Stream {
            sock: Some(sock),
            fd,
            port,
            generation,
            side,
            owner,
            remote: None,
            sending: false,
            ssrc,
            seq: (ssrc >> 16) as u16,
            ts: ssrc.rotate_left(7),
            counter: 0,
            sent: 0,
            send_errors: 0,
            received: 0,
            max_counter: 0,
            window: 0,
            have_rx: false,
            prev_transit: 0,
            prev_rx_ns: 0,
            prev_counter: 0,
            min_transit: i64::MAX,
            jitter_ns: 0.0,
        }
    }

    /// Fills `buf` with the next packet and sends it. `buf[PACKET_LEN]`
    /// bytes beyond the probe must already hold PCMU silence.
    #[inline]
    pub fn send(&mut self, buf: &mut [u8; PACKET_LEN]) -> bool {
        let (Some(sock), Some(remote)) = (&self.sock, self.remote) else {
            return false;
        };
        buf[0] = 0x80;
        buf[1] = if self.counter == 0 { 0x80 } else { 0x00 }; // marker on the first
        buf[2..4].copy_from_slice(&self.seq.to_be_bytes());
        buf[4..8].copy_from_slice(&self.ts.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let p = &mut buf[12..12 + PROBE_LEN];
        p[0..4].copy_from_slice(&MAGIC);
        p[4] = self.side as u8;
        p[5..9].copy_from_slice(&self.owner.to_be_bytes());
        p[9..13].copy_from_slice(&self.counter.to_be_bytes());
        p[13..21].copy_from_slice(&crate::net::realtime_ns().to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        match sock.send_to(&buf[..], remote) {
            Ok(_) => {
                self.counter = self.counter.wrapping_add(1);
                self.sent += 1;
                true
            }
            Err(_) => {
                self.send_errors += 1;
                false
            }
        }
    }

    /// Accounts one valid probe (already matched to this stream's peer).
    #[inline]
    pub fn on_probe(&mut self, counter: u32, send_ns: u64, rx_ns: u64, d: &mut DirStats) {
        let transit = rx_ns as i64 - send_ns as i64;
        if !self.have_rx {
            self.have_rx = true;
            self.max_counter = counter;
            self.window = 1;
        } else if counter > self.max_counter {
            let shift = counter - self.max_counter;
            self.window = if shift >= 64 {
                1
            } else {
                (self.window << shift) | 1
            };
            self.max_counter = counter;
        } else {
            let back = self.max_counter - counter;
            if back < 64 && self.window & (1 << back) != 0 {
                d.duplicates += 1;
                return;
            }
            if back < 64 {
                self.window |= 1 << back;
            }
            d.reordered += 1;
        }
        self.received += 1;
        d.received += 1;
        if transit < self.min_transit {
            self.min_transit = transit;
        }
        d.transit.record(transit.max(0) as u64 / 1000);
        d.pdv.record((transit - self.min_transit) as u64 / 1000);
        if self.received > 1 {
            let dd = (transit - self.prev_transit).abs() as f64;
            self.jitter_ns += (dd - self.jitter_ns) / 16.0;
            if counter > self.prev_counter {
                let ideal = (counter - self.prev_counter) as i64 * PTIME_NS;
                let gap = rx_ns as i64 - self.prev_rx_ns as i64;
                d.iat_dev.record((gap - ideal).unsigned_abs() / 1000);
            }
        }
        if self.received == 1 || counter > self.prev_counter {
            self.prev_transit = transit;
            self.prev_rx_ns = rx_ns;
            self.prev_counter = counter;
        }
    }
}

/// A received probe.
pub struct Probe {
    /// Sender side.
    pub side: u8,
    /// Sender's owner index.
    pub owner: u32,
    /// Sender's packet counter.
    pub counter: u32,
    /// Sender's clock at send (CLOCK_REALTIME ns).
    pub send_ns: u64,
}

/// Reads the probe from an RTP packet (skipping CSRCs and a header
/// extension a relay may add).
#[inline]
pub fn parse_probe(pkt: &[u8]) -> Option<Probe> {
    if pkt.len() < 12 || pkt[0] >> 6 != 2 {
        return None;
    }
    let mut off = 12 + 4 * (pkt[0] & 0x0f) as usize;
    if pkt[0] & 0x10 != 0 {
        let ext = pkt.get(off + 2..off + 4)?;
        off += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
    }
    let p = pkt.get(off..off + PROBE_LEN)?;
    if p[0..4] != MAGIC {
        return None;
    }
    Some(Probe {
        side: p[4],
        owner: u32::from_be_bytes(p[5..9].try_into().ok()?),
        counter: u32::from_be_bytes(p[9..13].try_into().ok()?),
        send_ns: u64::from_be_bytes(p[13..21].try_into().ok()?),
    })
}

/// Even RTP ports handed out from a range (the odd one above each stays
/// free, as the RTCP port a relay may send to); freed ports are reused
/// oldest first (so late packets of a closed call rarely reach a new one).
pub struct PortPool {
    next: u32,
    hi: u32,
    free: std::collections::VecDeque<u16>,
}

impl PortPool {
    /// Ports `lo..=hi`.
    pub fn new(lo: u16, hi: u16) -> PortPool {
        PortPool {
            next: (lo as u32).next_multiple_of(2),
            hi: hi as u32,
            free: Default::default(),
        }
    }
    /// A port to try (None when exhausted).
    pub fn take(&mut self) -> Option<u16> {
        if self.next <= self.hi {
            self.next += 2;
            return Some((self.next - 2) as u16);
        }
        self.free.pop_front()
    }
    /// Returns a port.
    pub fn give(&mut self, p: u16) {
        self.free.push_back(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_accounting() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = 0;
        let mut s = Stream::new(a, fd, 0, Side::Uas, 0, 1234, 0);
        let mut d = DirStats::default();
        let base = 1_000_000_000u64;
        for c in [0u32, 1, 2, 4, 3, 3, 5] {
            let send = base + c as u64 * PTIME_NS as u64;
            s.on_probe(c, send, send + 100_000, &mut d);
        }
        assert_eq!(s.received, 6);
        assert_eq!(d.duplicates, 1);
        assert_eq!(d.reordered, 1);
        assert_eq!(d.pdv.max(), 0);
        assert!(s.jitter_ns < 1.0);
    }

    #[test]
    fn probe_parse_skips_csrc_and_extension() {
        let mut pkt = vec![0x80 | 0x10 | 1, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        pkt.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        pkt.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension of 1 word
        pkt.extend_from_slice(&MAGIC);
        pkt.push(0);
        pkt.extend_from_slice(&7u32.to_be_bytes());
        pkt.extend_from_slice(&9u32.to_be_bytes());
        pkt.extend_from_slice(&11u64.to_be_bytes());
        let p = parse_probe(&pkt).unwrap();
        assert_eq!((p.side, p.owner, p.counter, p.send_ns), (0, 7, 9, 11));
        assert!(parse_probe(&pkt[..pkt.len() - 1]).is_none());
    }
}
