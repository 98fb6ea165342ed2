//! The relay task of one session: a hand-written future over the legs'
//! sockets (see the parent module for the design), and each leg's I/O
//! state.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use media::rtp::{Action, ReceivedStream, RtcpTranslation, RtpRelay};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::offload::Offload;
use super::{
    BATCH, Command, Leg, LegSetup, LegStats, MAX_DATAGRAM, PacketTransform, SessionEvent, Shared,
    lock,
};
use crate::pool::PortLease;
use crate::quality::RtcpMonitor;

#[derive(Debug)]
pub(super) struct LegIo {
    // Field order matters: sockets close before the lease frees the ports.
    pub(super) rtp: UdpSocket,
    /// The RTP socket's local address.
    pub(super) local: SocketAddr,
    pub(super) rtcp: UdpSocket,
    pub(super) relay: RtpRelay,
    /// Applied to RTP arriving on this leg (transcoding).
    pub(super) transform: Option<Box<dyn PacketTransform>>,
    /// Source of RTCP on the odd port, latched like RTP.
    pub(super) rtcp_remote: Option<SocketAddr>,
    /// What the phone reports in RTCP, and SRs relayed to it.
    pub(super) monitor: RtcpMonitor,
    pub(super) stats: LegStats,
    pub(super) _lease: PortLease,
}

impl LegIo {
    /// `media_ssrc`: the SSRC of the RTP the phone receives from the relay.
    pub(super) fn new(setup: LegSetup, media_ssrc: u32, now: Instant) -> io::Result<Self> {
        let local = setup.ports.rtp_addr();
        let (rtp, rtcp, lease) = setup.ports.into_parts();
        let monitor = RtcpMonitor::new(setup.relay.clock_rate, Some(media_ssrc));
        Ok(Self {
            rtp: UdpSocket::from_std(rtp)?,
            local,
            rtcp: UdpSocket::from_std(rtcp)?,
            relay: RtpRelay::new(setup.relay, now),
            transform: setup.transform,
            rtcp_remote: None,
            monitor,
            stats: LegStats::default(),
            _lease: lease,
        })
    }

    /// Where RTP for this leg goes: the latched address, else the signalled
    /// one.
    pub(super) fn rtp_destination(&self) -> Option<SocketAddr> {
        self.relay.latched().or_else(|| {
            self.relay
                .config()
                .signalled
                .filter(|s| s.port() != 0 && !s.ip().is_unspecified())
        })
    }

    /// How RTCP from this leg's phone is rewritten for the other phone
    /// (`other` is the other leg): under the SSRC and timestamps this
    /// phone's RTP has after the relay, reporting on the other phone's real
    /// stream.
    fn rtcp_translation(&self, other: &LegIo) -> RtcpTranslation {
        let own = self.relay.source_offsets();
        let other_map = other.transform.as_ref().and_then(|t| t.timestamp_map());
        RtcpTranslation {
            sender_ssrc: self.relay.config().out_ssrc,
            timestamp_offset: own.map(|(_, _, ts)| ts),
            timestamp_map: self.transform.as_ref().and_then(|t| t.timestamp_map()),
            received: other
                .relay
                .source_offsets()
                .map(|(ssrc, seq, _)| ReceivedStream {
                    seen_ssrc: other.relay.config().out_ssrc,
                    original_ssrc: ssrc,
                    sequence_offset: seq,
                    clock_rates: other_map.map(|m| (m.from_rate, m.to_rate)),
                }),
        }
    }

    /// Where odd-port RTCP for this leg goes: its latched RTCP source, else
    /// the RTP destination's port plus one.
    fn rtcp_destination(&self) -> Option<SocketAddr> {
        self.rtcp_remote.or_else(|| {
            self.rtp_destination().and_then(|mut d| {
                d.set_port(d.port().checked_add(1)?);
                Some(d)
            })
        })
    }
}

/// Where a session's events go.
pub(super) enum EventSink {
    /// The session's own channel.
    Own(mpsc::UnboundedSender<SessionEvent>),
    /// A channel shared by many sessions, events tagged with the id.
    Tagged(u64, mpsc::UnboundedSender<(u64, SessionEvent)>),
}

impl EventSink {
    fn send(&self, event: SessionEvent) {
        // The owner may have stopped listening; media goes on.
        let _ = match self {
            EventSink::Own(tx) => tx.send(event).is_ok(),
            EventSink::Tagged(id, tx) => tx.send((*id, event)).is_ok(),
        };
    }
}

/// How often the shared counters are refreshed while media flows. Events
/// (latching, timeouts) are handed over at once; counters for a CDR or a
/// status page may lag this much.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

/// The relay task, polled by hand rather than written as an `async fn`
/// with `select!`: a wake-up then costs a readiness check per socket and
/// one lock, instead of building six futures and a timer entry per packet.
pub(super) struct Worker {
    pub(super) legs: [LegIo; 2],
    pub(super) shared: Arc<Shared>,
    pub(super) events: EventSink,
    pub(super) buf: Box<[u8; MAX_DATAGRAM]>,
    /// Where a transform writes its packet.
    pub(super) out: Box<[u8; MAX_DATAGRAM]>,
    /// The media-timeout timer; re-armed only when it fires or a deadline
    /// comes earlier, not for every packet that pushes the deadline later.
    pub(super) timer: Pin<Box<tokio::time::Sleep>>,
    pub(super) armed: Option<Instant>,
    pub(super) published: Instant,
    /// Counters changed since `published`.
    pub(super) dirty: bool,
    /// Latched streams handed to the kernel, if a forwarder was given.
    pub(super) offload: Option<Offload>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Before the sockets close and the ports return to the pool: a rule
        // left behind would forward a reused port's traffic.
        if let Some(offload) = &mut self.offload {
            offload.retire_all(&mut self.legs);
        }
    }
}

/// How a socket's turn ended.
enum Turn {
    /// Drained: the socket would block and its readiness is re-registered.
    Idle,
    /// The batch cap was hit with datagrams left; poll again soon.
    More,
    /// The IO driver is gone (runtime shutdown).
    Failed,
}

impl Future for Worker {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut changed = false;
        for command in this.shared.take_commands(cx.waker()) {
            changed = true;
            let now = Instant::now();
            match command {
                Command::Close => {
                    if let Some(offload) = &mut this.offload {
                        offload.retire_all(&mut this.legs);
                    }
                    this.forward_events();
                    this.publish();
                    return Poll::Ready(());
                }
                Command::Relatch(leg, signalled) => {
                    let io = &mut this.legs[leg.index()];
                    io.relay.relatch(signalled, now);
                    io.rtcp_remote = None;
                }
                Command::SetTransform(leg, transform) => {
                    this.legs[leg.index()].transform = transform;
                }
                Command::SetClockRate(leg, rate) => {
                    let io = &mut this.legs[leg.index()];
                    io.relay.set_clock_rate(rate);
                    io.monitor.set_clock_rate(rate);
                }
                Command::SetMediaTimeout(leg, timeout) => {
                    this.legs[leg.index()].relay.set_media_timeout(timeout, now);
                }
            }
        }
        let mut more = false;
        for from in 0..2 {
            for rtcp in [false, true] {
                match this.turn(cx, from, rtcp) {
                    Turn::Idle => {}
                    Turn::More => more = true,
                    Turn::Failed => {
                        tracing::warn!("RTP relay lost its IO driver; stopping");
                        this.forward_events();
                        this.publish();
                        return Poll::Ready(());
                    }
                }
            }
        }
        let now = Instant::now();
        this.fire_timer(cx, now);
        let events = this.forward_events();
        if let Some(offload) = &mut this.offload
            && (changed || events)
            && offload.sync(&mut this.legs, now)
        {
            changed = true;
        }
        if changed || (this.dirty && now.duration_since(this.published) >= PUBLISH_EVERY) {
            this.publish();
        }
        this.arm_timer(cx);
        if more {
            // Fairness: let other sessions run before the rest of a burst.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl Worker {
    /// Relays what is waiting on one socket, then re-registers interest.
    fn turn(&mut self, cx: &mut Context<'_>, from: usize, rtcp: bool) -> Turn {
        loop {
            let io = &self.legs[from];
            let socket = if rtcp { &io.rtcp } else { &io.rtp };
            match socket.poll_recv_ready(cx) {
                Poll::Pending => return Turn::Idle,
                Poll::Ready(Err(_)) => return Turn::Failed,
                Poll::Ready(Ok(())) => {}
            }
            self.dirty = true;
            let capped = if rtcp {
                self.drain_rtcp(from)
            } else {
                self.drain_rtp(from)
            };
            if capped {
                return Turn::More;
            }
            // Drained to `WouldBlock`: polling again registers the waker.
        }
    }

    /// Checks the media timeouts if the timer fired, after folding in
    /// what the kernel forwarded.
    fn fire_timer(&mut self, cx: &mut Context<'_>, now: Instant) {
        if self.armed.is_some() && self.timer.as_mut().poll(cx).is_ready() {
            self.armed = None;
            let timeout_due = self
                .legs
                .iter()
                .any(|l| l.relay.poll_timeout().is_some_and(|d| d <= now));
            if let Some(offload) = &mut self.offload
                && offload
                    .next_account
                    .is_some_and(|at| now >= at || timeout_due)
            {
                offload.account_all(&mut self.legs, now);
                self.dirty = true;
            }
            for leg in &mut self.legs {
                leg.relay.handle_timeout(now);
            }
        }
    }

    /// Keeps the timer at the earliest deadline: a media timeout, or the
    /// refresh of counters that changed since they were last published.
    fn arm_timer(&mut self, cx: &mut Context<'_>) {
        let publish = self.dirty.then(|| self.published + PUBLISH_EVERY);
        let Some(deadline) = self
            .legs
            .iter()
            .filter_map(|l| l.relay.poll_timeout())
            .chain(publish)
            .chain(self.offload.as_ref().and_then(|o| o.next_account))
            .min()
        else {
            return;
        };
        if self.armed.is_none_or(|armed| deadline < armed) {
            self.armed = Some(deadline);
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
            if self.timer.as_mut().poll(cx).is_ready() {
                // Already due: handled on the next turn.
                cx.waker().wake_by_ref();
            }
        }
    }

    /// Reads up to [`BATCH`] datagrams from leg `from`'s RTP socket and
    /// relays them to the other leg; true if the cap stopped it.
    fn drain_rtp(&mut self, from: usize) -> bool {
        let [a, b] = &mut self.legs;
        let (rx, tx) = if from == 0 { (a, b) } else { (b, a) };
        for _ in 0..BATCH {
            let (n, src) = match rx.rtp.try_recv_from(&mut self.buf[..]) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    rx.stats.recv_errors += 1;
                    tracing::debug!(error = %e, "RTP receive failed");
                    continue;
                }
            };
            let now = Instant::now();
            if let Some(offload) = &mut self.offload
                && offload.is_new_source(from, src, &self.buf[..n])
            {
                offload.account(from, &mut rx.relay);
            }
            let (len, rtcp) = match rx.relay.handle_packet(src, &mut self.buf[..n], now) {
                Action::Forward(len) => (len, false),
                Action::Rtcp(len) => {
                    rx.monitor.on_rtcp_from_phone(&self.buf[..len], now);
                    if !media::rtp::rtcp_translate::translate(
                        &mut self.buf[..len],
                        &rx.rtcp_translation(tx),
                    ) {
                        rx.stats.rtcp_dropped += 1;
                        continue;
                    }
                    (len, true)
                }
                Action::Drop(reason) => {
                    tracing::trace!(?reason, %src, "RTP datagram dropped");
                    continue;
                }
            };
            let Some(dst) = tx.rtp_destination() else {
                rx.stats.no_destination += 1;
                continue;
            };
            let packet = match &mut rx.transform {
                Some(t) if !rtcp => match t.transform(&self.buf[..len], &mut self.out[..]) {
                    Some(n) => &self.out[..n],
                    None => continue,
                },
                _ => &self.buf[..len],
            };
            match tx.rtp.try_send_to(packet, dst) {
                Ok(_) if rtcp => {
                    rx.stats.rtcp_forwarded += 1;
                    tx.monitor
                        .on_rtcp_to_phone(&self.buf[..len], Instant::now());
                }
                Ok(_) => {}
                Err(_) => rx.stats.send_failed += 1,
            }
        }
        true
    }

    /// Relays RTCP arriving on leg `from`'s odd port, from the IP latched
    /// for RTP only; true if the batch cap stopped it.
    fn drain_rtcp(&mut self, from: usize) -> bool {
        let [a, b] = &mut self.legs;
        let (rx, tx) = if from == 0 { (a, b) } else { (b, a) };
        for _ in 0..BATCH {
            let (n, src) = match rx.rtcp.try_recv_from(&mut self.buf[..]) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    rx.stats.recv_errors += 1;
                    tracing::debug!(error = %e, "RTCP receive failed");
                    continue;
                }
            };
            let accepted = match (rx.rtcp_remote, rx.relay.latched()) {
                (Some(remote), _) => remote == src,
                (None, Some(rtp)) if rtp.ip() == src.ip() => {
                    rx.rtcp_remote = Some(src);
                    true
                }
                _ => false,
            };
            if !accepted || !media::rtp::is_rtcp(&self.buf[..n]) {
                rx.stats.rtcp_dropped += 1;
                continue;
            }
            rx.monitor
                .on_rtcp_from_phone(&self.buf[..n], Instant::now());
            if !media::rtp::rtcp_translate::translate(&mut self.buf[..n], &rx.rtcp_translation(tx))
            {
                rx.stats.rtcp_dropped += 1;
                continue;
            }
            let Some(dst) = tx.rtcp_destination() else {
                rx.stats.no_destination += 1;
                continue;
            };
            match tx.rtcp.try_send_to(&self.buf[..n], dst) {
                Ok(_) => {
                    rx.stats.rtcp_forwarded += 1;
                    tx.monitor.on_rtcp_to_phone(&self.buf[..n], Instant::now());
                }
                Err(_) => rx.stats.send_failed += 1,
            }
        }
        true
    }

    /// Hands relay events to the owner; counters follow at once when an
    /// event happened, so they never lag what the owner was told.
    /// Returns true if there was any.
    fn forward_events(&mut self) -> bool {
        let mut any = false;
        for (i, leg) in self.legs.iter_mut().enumerate() {
            while let Some(event) = leg.relay.poll_event() {
                any = true;
                self.events.send(SessionEvent {
                    leg: Leg::from_index(i),
                    event,
                });
            }
        }
        if any {
            self.publish();
        }
        any
    }

    /// Refreshes the shared counters.
    fn publish(&mut self) {
        for (i, leg) in self.legs.iter_mut().enumerate() {
            if let Some(offload) = &self.offload {
                leg.stats.kernel_forwarded = offload.forwarded(i);
            }
            leg.stats.relay = *leg.relay.counters();
            leg.stats.latched = leg.relay.latched();
            leg.stats.quality = leg.monitor.quality();
        }
        let mut shared = lock(&self.shared.stats);
        shared.stats.a = self.legs[0].stats;
        shared.stats.b = self.legs[1].stats;
        shared.kernel = self
            .offload
            .as_ref()
            .map_or([None, None], Offload::snapshot);
        drop(shared);
        self.published = Instant::now();
        self.dirty = false;
    }
}
