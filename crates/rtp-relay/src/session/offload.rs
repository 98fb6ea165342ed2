//! Hand-over of a session's latched streams to the kernel forwarder
//! (`rtp_kernel`), per direction.
//!
//! A direction is handed over when its leg has latched an IPv4 source and
//! seen its first RTP packet (so the SSRC and offsets are fixed), is not
//! transcoded, and the other leg has an IPv4 destination. The rule is
//! recomputed whenever something that shapes it may have changed — a relay
//! event (latching, a new source) or a command (relatch, transform) — and
//! replaced or removed when it differs. What the kernel forwarded is folded
//! into the leg's [`RtpRelay`] every [`ACCOUNT_EVERY`], before its media
//! timeout is judged, before a packet of a new source is handled, and when
//! the rule goes; so counters, timeouts and sequence continuity behave as
//! if the relay had forwarded every packet itself.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::rtp::RtpRelay;
use rtp_kernel::{Forward, ForwardCounters, KernelForwarder, StreamKey};

use super::LegIo;

/// How often kernel counters are folded in while a direction is handed
/// over: the freshness of counters and the granularity of nothing else
/// (media timeouts account first).
pub(super) const ACCOUNT_EVERY: Duration = Duration::from_secs(1);

/// One session's rules in the kernel.
#[derive(Debug)]
pub(super) struct Offload {
    kernel: Arc<KernelForwarder>,
    /// The rule installed per direction, indexed by the leg the stream
    /// arrives on.
    installed: [Option<Forward>; 2],
    /// What of each rule's kernel counters is already folded in.
    seen: [ForwardCounters; 2],
    /// Source address chosen towards a destination IP, per direction.
    routes: [Option<(Ipv4Addr, Ipv4Addr)>; 2],
    /// When counters are folded in next, while a rule is installed.
    pub(super) next_account: Option<Instant>,
    /// Packets forwarded in the kernel per direction, all rules together.
    forwarded: [u64; 2],
}

impl Offload {
    pub(super) fn new(kernel: Arc<KernelForwarder>) -> Self {
        Self {
            kernel,
            installed: [None, None],
            seen: [ForwardCounters::default(); 2],
            routes: [None, None],
            next_account: None,
            forwarded: [0; 2],
        }
    }

    /// The installed rules' keys with what of their counters is folded in.
    pub(super) fn snapshot(&self) -> [Option<(StreamKey, ForwardCounters)>; 2] {
        [0, 1].map(|i| self.installed[i].as_ref().map(|r| (r.key, self.seen[i])))
    }

    /// Packets of direction `from` forwarded in the kernel so far.
    pub(super) fn forwarded(&self, from: usize) -> u64 {
        self.forwarded[from]
    }

    /// True if a packet of `ssrc` from `src` on leg `from` would be
    /// forwarded with other offsets than the installed rule's: a new
    /// source, which user space is about to handle and must see the
    /// kernel's progress for first.
    pub(super) fn is_new_source(&self, from: usize, src: SocketAddr, packet: &[u8]) -> bool {
        let Some(rule) = &self.installed[from] else {
            return false;
        };
        packet.len() >= 12
            && !media::rtp::is_rtcp(packet)
            && src == SocketAddr::V4(rule.key.remote)
            && u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]) != rule.in_ssrc
    }

    /// Folds what the kernel forwarded for direction `from` into `relay`.
    pub(super) fn account(&mut self, from: usize, relay: &mut RtpRelay) {
        let Some(rule) = &self.installed[from] else {
            return;
        };
        match self.kernel.counters(&rule.key) {
            Ok(Some(now)) => self.fold(from, now, relay),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "reading kernel RTP counters failed"),
        }
    }

    /// Folds in every direction's counters; schedules the next time.
    pub(super) fn account_all(&mut self, legs: &mut [LegIo; 2], now: Instant) {
        for (from, leg) in legs.iter_mut().enumerate() {
            self.account(from, &mut leg.relay);
        }
        self.next_account = self
            .installed
            .iter()
            .any(Option::is_some)
            .then(|| now + ACCOUNT_EVERY);
    }

    fn fold(&mut self, from: usize, now: ForwardCounters, relay: &mut RtpRelay) {
        let (packets, bytes) = now.since(&self.seen[from]);
        self.forwarded[from] += packets;
        if let Some(last) = now.last {
            relay.note_forwarded(packets, bytes, now.newest, last);
        }
        self.seen[from] = now;
    }

    /// Installs, replaces or removes each direction's rule to match the
    /// legs' state; returns true if anything changed.
    pub(super) fn sync(&mut self, legs: &mut [LegIo; 2], now: Instant) -> bool {
        let mut changed = false;
        for from in 0..2 {
            let want = self.desired(legs, from);
            let same = match (&want, &self.installed[from]) {
                (Some(w), Some(i)) => same_rule(w, i),
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            changed = true;
            self.retire(from, &mut legs[from].relay);
            if let Some(rule) = want {
                match self.kernel.install(&rule) {
                    Ok(()) => {
                        tracing::trace!(key = ?rule.key, "RTP direction handed to the kernel");
                        self.installed[from] = Some(rule);
                        self.seen[from] = ForwardCounters::default();
                    }
                    Err(e) => tracing::debug!(error = %e, "kernel RTP forwarding not installed"),
                }
            }
        }
        if self.installed.iter().any(Option::is_some) {
            self.next_account.get_or_insert(now + ACCOUNT_EVERY);
        } else {
            self.next_account = None;
        }
        changed
    }

    /// Removes direction `from`'s rule, folding in its final counters.
    fn retire(&mut self, from: usize, relay: &mut RtpRelay) {
        let Some(rule) = self.installed[from].take() else {
            return;
        };
        match self.kernel.remove(&rule.key) {
            Ok(Some(last)) => self.fold(from, last, relay),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "removing a kernel RTP rule failed"),
        }
        self.seen[from] = ForwardCounters::default();
    }

    /// Removes every rule (the session ends).
    pub(super) fn retire_all(&mut self, legs: &mut [LegIo; 2]) {
        for (from, leg) in legs.iter_mut().enumerate() {
            self.retire(from, &mut leg.relay);
        }
        self.next_account = None;
    }

    /// The rule direction `from` should have now, if it can be handed over.
    fn desired(&mut self, legs: &[LegIo; 2], from: usize) -> Option<Forward> {
        let (rx, tx) = (&legs[from], &legs[1 - from]);
        if rx.transform.is_some() {
            return None;
        }
        let SocketAddr::V4(remote) = rx.relay.latched()? else {
            return None;
        };
        let (in_ssrc, sequence_offset, timestamp_offset) = rx.relay.source_offsets()?;
        let newest = rx.relay.newest_sent()?;
        let SocketAddr::V4(destination) = tx.rtp_destination()? else {
            return None;
        };
        let SocketAddr::V4(tx_local) = tx.local else {
            return None;
        };
        let payload_types = rx.relay.config().payload_type_map.clone();
        if payload_types.len() > rtp_kernel::program::value::PT_PAIRS {
            return None;
        }
        let source_ip = if tx_local.ip().is_unspecified() {
            self.source_towards(from, *destination.ip())?
        } else {
            *tx_local.ip()
        };
        Some(Forward {
            key: StreamKey {
                remote,
                local_port: rx.local.port(),
            },
            in_ssrc,
            source: SocketAddrV4::new(source_ip, tx_local.port()),
            destination,
            out_ssrc: rx.relay.config().out_ssrc,
            sequence_offset,
            timestamp_offset,
            payload_types,
            newest,
        })
    }

    /// The address the OS would send from towards `dst` (the relay's
    /// sockets are bound to the unspecified address), cached.
    fn source_towards(&mut self, from: usize, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if let Some((d, s)) = self.routes[from]
            && d == dst
        {
            return Some(s);
        }
        let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
        socket.connect((dst, 9)).ok()?;
        let SocketAddr::V4(local) = socket.local_addr().ok()? else {
            return None;
        };
        self.routes[from] = Some((dst, *local.ip()));
        Some(*local.ip())
    }
}

/// Same rewrites, whatever the newest packet was.
fn same_rule(a: &Forward, b: &Forward) -> bool {
    Forward {
        newest: b.newest,
        ..a.clone()
    } == *b
}
