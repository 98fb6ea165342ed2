//! Sans-IO state of one relayed RTP stream direction (media anchored on the
//! PBX).
//!
//! The shell owns the socket: it passes each datagram to
//! [`RtpRelay::handle_packet`], which validates and rewrites it in place and
//! answers [`Action::Forward`] (send `data[..len]` to the other leg),
//! [`Action::Rtcp`] (RTCP multiplexed on the port, RFC 5761, for the RTCP
//! layer) or [`Action::Drop`]. Events come out of [`RtpRelay::poll_event`],
//! the media-timeout deadline out of [`RtpRelay::poll_timeout`].
//!
//! - Latching (symmetric RTP, RFC 4961 and the usual NAT practice): the first
//!   valid RTP packet from an acceptable source fixes the remote address.
//!   Afterwards datagrams from any other address are dropped and counted, so
//!   a stranger who guesses the port cannot take over the stream. Only
//!   signalling (a re-INVITE, a transfer) may move it, through
//!   [`RtpRelay::relatch`].
//! - Continuity (RFC 3550 section 5.1, 8.2): the output keeps one SSRC, and
//!   when the source SSRC changes the sequence number continues from the last
//!   one sent and the timestamp advances by the wall-clock gap, so the far
//!   end sees one smooth stream. The first packet after a change carries the
//!   marker bit, so jitter buffers re-sync.
//! - Media timeout: no valid RTP for the configured time raises
//!   [`RelayEvent::MediaTimeout`] once; media resuming raises
//!   [`RelayEvent::MediaResumed`].

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::packet::{RtpError, RtpPacketMut};
use super::rtcp::is_rtcp;
use super::stats::ReceiveStats;

/// Which sources may be latched before the first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatchPolicy {
    /// The signalled IP (any port), unless the signalled address is missing,
    /// unspecified or private (the peer is behind NAT): then anywhere.
    #[default]
    Auto,
    /// Only the signalled IP (any port, since NATs rewrite ports).
    SignalledIp,
    /// Any source.
    Anywhere,
}

/// Configuration of an [`RtpRelay`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// The remote address from SDP (`c=` and `m=`), if known.
    pub signalled: Option<SocketAddr>,
    /// Latching policy.
    pub latch: LatchPolicy,
    /// Raise [`RelayEvent::MediaTimeout`] after this long without valid RTP;
    /// `None` disables it (e.g. while on hold).
    pub media_timeout: Option<Duration>,
    /// RTP clock rate of the stream, to advance timestamps across a source
    /// change.
    pub clock_rate: u32,
    /// Outgoing SSRC; the shell picks it at random (RFC 3550 section 8.1).
    pub out_ssrc: u32,
    /// First outgoing sequence number, random (section 5.1).
    pub initial_sequence: u16,
    /// First outgoing timestamp, random (section 5.1).
    pub initial_timestamp: u32,
    /// Payload type rewrites `(incoming, outgoing)` when the legs negotiated
    /// different dynamic numbers for the same codec.
    pub payload_type_map: Vec<(u8, u8)>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            signalled: None,
            latch: LatchPolicy::Auto,
            media_timeout: Some(Duration::from_secs(30)),
            clock_rate: 8000,
            out_ssrc: 0,
            initial_sequence: 0,
            initial_timestamp: 0,
            payload_type_map: Vec::new(),
        }
    }
}

/// What the shell does with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the first `len` octets of the (rewritten) buffer to the other leg.
    Forward(usize),
    /// RTCP from the latched peer (RFC 5761 mux), `len` octets, untouched;
    /// for the RTCP layer.
    Rtcp(usize),
    /// Discard the datagram.
    Drop(DropReason),
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// From an address other than the latched one.
    Stranger,
    /// Before latching, from a source the policy does not accept.
    UnexpectedSource,
    /// RTCP before any RTP latched the peer.
    NotLatched,
    /// Not a valid RTP packet.
    Malformed(RtpError),
}

/// Something the shell or call control should know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEvent {
    /// The remote address was latched.
    Latched(SocketAddr),
    /// The incoming SSRC changed; the output continues seamlessly.
    SourceChanged {
        /// The previous incoming SSRC.
        old: u32,
        /// The new incoming SSRC.
        new: u32,
    },
    /// No valid RTP for the configured media timeout.
    MediaTimeout,
    /// RTP arrived again after a [`RelayEvent::MediaTimeout`].
    MediaResumed,
}

/// Traffic counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayCounters {
    /// Datagrams received.
    pub packets_in: u64,
    /// Octets received.
    pub bytes_in: u64,
    /// RTP packets forwarded.
    pub packets_out: u64,
    /// Octets forwarded.
    pub bytes_out: u64,
    /// Dropped because they came from a stranger after latching.
    pub dropped_strangers: u64,
    /// Dropped before latching, from an unacceptable source.
    pub dropped_unexpected: u64,
    /// Dropped as malformed RTP.
    pub malformed: u64,
    /// RTCP datagrams handed out.
    pub rtcp: u64,
}

impl RelayCounters {
    /// Counts `packets` of `bytes` octets forwarded outside the relay (in
    /// the kernel) as received and forwarded.
    pub fn count_forwarded(&mut self, packets: u64, bytes: u64) {
        self.packets_in += packets;
        self.bytes_in += bytes;
        self.packets_out += packets;
        self.bytes_out += bytes;
    }
}

/// Offsets mapping one incoming SSRC onto the outgoing stream.
#[derive(Debug, Clone, Copy)]
struct SourceMap {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
}

/// Newest packet sent: sequence, timestamp and when.
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u16,
    ts: u32,
    at: Instant,
}

/// One relayed stream direction.
#[derive(Debug)]
pub struct RtpRelay {
    config: RelayConfig,
    latched: Option<SocketAddr>,
    source: Option<SourceMap>,
    /// The source switched away from, and the first outgoing sequence
    /// number of the current source (the switch point).
    previous: Option<(SourceMap, u16)>,
    newest: Option<Sent>,
    last_valid: Instant,
    timed_out: bool,
    events: VecDeque<RelayEvent>,
    counters: RelayCounters,
    stats: ReceiveStats,
}

impl RtpRelay {
    /// A relay created at `now`; the media timeout counts from here.
    pub fn new(config: RelayConfig, now: Instant) -> Self {
        let stats = ReceiveStats::new(config.clock_rate);
        Self {
            config,
            latched: None,
            source: None,
            previous: None,
            newest: None,
            last_valid: now,
            timed_out: false,
            events: VecDeque::new(),
            counters: RelayCounters::default(),
            stats,
        }
    }

    /// Handles one datagram from `src`, rewriting it in place.
    pub fn handle_packet(&mut self, src: SocketAddr, data: &mut [u8], now: Instant) -> Action {
        self.counters.packets_in += 1;
        self.counters.bytes_in += data.len() as u64;
        match self.latched {
            Some(addr) if addr != src => {
                self.counters.dropped_strangers += 1;
                return Action::Drop(DropReason::Stranger);
            }
            None if !self.acceptable(src) => {
                self.counters.dropped_unexpected += 1;
                return Action::Drop(DropReason::UnexpectedSource);
            }
            _ => {}
        }
        if is_rtcp(data) {
            if self.latched.is_none() {
                return Action::Drop(DropReason::NotLatched);
            }
            self.counters.rtcp += 1;
            return Action::Rtcp(data.len());
        }
        let len = data.len();
        let mut packet = match RtpPacketMut::new(data) {
            Ok(p) => p,
            Err(e) => {
                self.counters.malformed += 1;
                return Action::Drop(DropReason::Malformed(e));
            }
        };
        if self.latched.is_none() {
            self.latched = Some(src);
            self.events.push_back(RelayEvent::Latched(src));
        }
        self.rewrite(&mut packet, now);
        self.last_valid = now;
        if self.timed_out {
            self.timed_out = false;
            self.events.push_back(RelayEvent::MediaResumed);
        }
        self.counters.packets_out += 1;
        self.counters.bytes_out += len as u64;
        Action::Forward(len)
    }

    fn rewrite(&mut self, packet: &mut RtpPacketMut<'_>, now: Instant) {
        let view = packet.view();
        let (ssrc, seq, ts, pt) = (
            view.ssrc(),
            view.sequence(),
            view.timestamp(),
            view.payload_type(),
        );
        let late_previous = self.previous.and_then(|(m, switch)| {
            let mapped = seq.wrapping_add(m.seq_offset);
            (m.ssrc == ssrc && (switch.wrapping_sub(mapped) as i16) > 0).then_some(m)
        });
        let map = match (self.source, late_previous) {
            (Some(m), _) if m.ssrc == ssrc => m,
            // A late packet of the source we switched away from: its old
            // mapping places it before the switch, as a reordered packet.
            // The same SSRC coming back later is a new switch.
            (_, Some(m)) => m,
            (old, None) => {
                let map = self.start_source(ssrc, seq, ts, now);
                if let Some(old) = old {
                    self.events.push_back(RelayEvent::SourceChanged {
                        old: old.ssrc,
                        new: ssrc,
                    });
                    packet.set_marker(true);
                }
                self.previous = old.map(|m| (m, seq.wrapping_add(map.seq_offset)));
                self.source = Some(map);
                self.stats = ReceiveStats::new(self.config.clock_rate);
                map
            }
        };
        if map.ssrc == self.source.map_or(ssrc, |m| m.ssrc) {
            self.stats.on_packet(seq, ts, now);
        }
        let out_seq = seq.wrapping_add(map.seq_offset);
        let out_ts = ts.wrapping_add(map.ts_offset);
        packet.set_ssrc(self.config.out_ssrc);
        packet.set_sequence(out_seq);
        packet.set_timestamp(out_ts);
        if let Some(&(_, to)) = self
            .config
            .payload_type_map
            .iter()
            .find(|(from, _)| *from == pt)
        {
            packet.set_payload_type(to);
        }
        let newer = self
            .newest
            .is_none_or(|n| (out_seq.wrapping_sub(n.seq) as i16) > 0);
        if newer {
            self.newest = Some(Sent {
                seq: out_seq,
                ts: out_ts,
                at: now,
            });
        }
    }

    /// Offsets that make `(seq, ts)` of a new source follow what was sent.
    fn start_source(&self, ssrc: u32, seq: u16, ts: u32, now: Instant) -> SourceMap {
        let (out_seq, out_ts) = match self.newest {
            Some(n) => {
                let gap = now.saturating_duration_since(n.at);
                let ticks = gap.as_nanos() * u128::from(self.config.clock_rate) / 1_000_000_000;
                // At least one tick, so the new packet is never the same instant.
                (
                    n.seq.wrapping_add(1),
                    n.ts.wrapping_add((ticks as u32).max(1)),
                )
            }
            None => (self.config.initial_sequence, self.config.initial_timestamp),
        };
        SourceMap {
            ssrc,
            seq_offset: out_seq.wrapping_sub(seq),
            ts_offset: out_ts.wrapping_sub(ts),
        }
    }

    fn acceptable(&self, src: SocketAddr) -> bool {
        let signalled = self
            .config
            .signalled
            .filter(|s| s.port() != 0 && !s.ip().is_unspecified());
        let same_ip = |s: SocketAddr| s.ip().to_canonical() == src.ip().to_canonical();
        match (self.config.latch, signalled) {
            (LatchPolicy::Anywhere, _) => true,
            (LatchPolicy::SignalledIp, s) => s.is_some_and(same_ip),
            (LatchPolicy::Auto, None) => true,
            (LatchPolicy::Auto, Some(s)) => is_private(s.ip()) || same_ip(s),
        }
    }

    /// Forgets the latched address because signalling (re-INVITE, UPDATE,
    /// transfer) gave a new remote address; the next acceptable packet
    /// latches again. The output stream stays continuous.
    pub fn relatch(&mut self, signalled: Option<SocketAddr>, now: Instant) {
        self.config.signalled = signalled;
        self.latched = None;
        self.last_valid = now;
        self.timed_out = false;
    }

    /// Changes the media timeout (`None` while on hold), counting from `now`.
    pub fn set_media_timeout(&mut self, timeout: Option<Duration>, now: Instant) {
        self.config.media_timeout = timeout;
        self.last_valid = now;
        self.timed_out = false;
    }

    /// When [`RtpRelay::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.timed_out {
            return None;
        }
        // A timeout too large to represent never fires.
        self.config
            .media_timeout
            .and_then(|t| self.last_valid.checked_add(t))
    }

    /// Advances time; raises [`RelayEvent::MediaTimeout`] once the deadline
    /// has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            self.timed_out = true;
            self.events.push_back(RelayEvent::MediaTimeout);
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// The latched remote address.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// Changes the stream's RTP clock rate (signalling settled on a codec
    /// with another rate, e.g. Opus at 48 kHz): receive statistics restart
    /// in the new units.
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        if clock_rate != 0 && clock_rate != self.config.clock_rate {
            self.config.clock_rate = clock_rate;
            self.stats = ReceiveStats::new(clock_rate);
        }
    }

    /// The newest outgoing `(sequence number, timestamp)` sent, `None`
    /// before the first packet.
    pub fn newest_sent(&self) -> Option<(u16, u32)> {
        self.newest.map(|n| (n.seq, n.ts))
    }

    /// Accounts for packets of the current source that were forwarded
    /// outside this relay (in the kernel) with its offsets: `packets` of
    /// `bytes` octets, the newest outgoing `(sequence, timestamp)` among
    /// them and when the last one passed. Counters, the media timeout and
    /// the continuity of a later source change then stay as if the relay
    /// had forwarded them itself.
    pub fn note_forwarded(&mut self, packets: u64, bytes: u64, newest: (u16, u32), last: Instant) {
        if packets == 0 {
            return;
        }
        self.counters.count_forwarded(packets, bytes);
        let newer = self
            .newest
            .is_none_or(|n| (newest.0.wrapping_sub(n.seq) as i16) > 0);
        if newer {
            self.newest = Some(Sent {
                seq: newest.0,
                ts: newest.1,
                at: last,
            });
        }
        if last > self.last_valid {
            self.last_valid = last;
            if self.timed_out {
                self.timed_out = false;
                self.events.push_back(RelayEvent::MediaResumed);
            }
        }
    }

    /// How the current incoming source maps onto the outgoing stream:
    /// `(incoming SSRC, sequence offset, timestamp offset)`, the offsets
    /// being what the relay adds. `None` before the first RTP packet.
    pub fn source_offsets(&self) -> Option<(u32, u16, u32)> {
        self.source.map(|m| (m.ssrc, m.seq_offset, m.ts_offset))
    }

    /// Traffic counters.
    pub fn counters(&self) -> &RelayCounters {
        &self.counters
    }

    /// Receive statistics of the current incoming source, for RTCP reports.
    pub fn receive_stats(&self) -> &ReceiveStats {
        &self.stats
    }

    /// Mutable receive statistics, e.g. to take a report block.
    pub fn receive_stats_mut(&mut self) -> &mut ReceiveStats {
        &mut self.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }
}

/// Addresses that say "behind NAT": RFC 1918, CGNAT (RFC 6598), loopback,
/// link-local, IPv6 unique-local.
fn is_private(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests;
