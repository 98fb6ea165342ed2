//! One call's relayed media: legs A and B.
//!
//! Each leg owns an RTP/RTCP port pair and a sans-IO [`RtpRelay`] for the
//! datagrams arriving on its RTP port. What leg A's relay forwards leaves
//! through leg B's RTP socket towards B's latched remote address (or the
//! signalled one until B latches), and the other way round. RTCP multiplexed
//! on the RTP port (RFC 5761) follows the same path; RTCP on the odd port
//! (RFC 3550 section 11) is relayed port-to-port, accepted only from the
//! IP the leg latched for RTP.
//!
//! Tasks: one tokio task per session. A session is two legs of a few
//! hundred packets per second; a task each keeps sessions independent (a
//! slow or failing call never delays another) and costs a few hundred bytes,
//! while tokio spreads thousands of them over the worker threads. After each
//! readiness notification the task drains the socket with `try_recv_from`
//! until `WouldBlock` (capped per turn for fairness), so a burst costs one
//! wake-up. Sends use `try_send_to`: a full socket buffer drops the packet
//! (counted) instead of stalling the other direction, as real-time media
//! prefers.
//!
//! Quality: every RTCP compound packet a phone sends (either path) goes
//! through its leg's [`RtcpMonitor`] before being relayed, and every one
//! relayed towards a phone is noted by that phone's monitor, so
//! [`LegStats::quality`] holds what the phone reports about the media it
//! receives (loss, jitter) and the PBX↔phone round-trip time.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use media::rtp::{Action, RelayConfig, RelayCounters, RelayEvent, RtpRelay};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Error;
use crate::pool::{PortLease, PortPair};
use crate::quality::{RtcpMonitor, RtcpQuality};

/// Largest datagram relayed intact; longer ones are truncated by the OS.
/// Media over UDP stays under the path MTU.
const MAX_DATAGRAM: usize = 2048;

/// Datagrams read from one socket per wake-up before the others get a turn.
const BATCH: usize = 64;

/// One side of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The first leg (usually the caller).
    A,
    /// The second leg (usually the callee).
    B,
}

impl Leg {
    fn index(self) -> usize {
        match self {
            Leg::A => 0,
            Leg::B => 1,
        }
    }

    fn from_index(i: usize) -> Self {
        if i == 0 { Leg::A } else { Leg::B }
    }
}

/// What a leg needs: its ports and the relay configuration of the stream
/// arriving on it (`out_ssrc` is what the other leg sees).
#[derive(Debug)]
pub struct LegSetup {
    /// The leg's local RTP/RTCP ports.
    pub ports: PortPair,
    /// The relay of datagrams arriving on this leg.
    pub relay: RelayConfig,
    /// Rewrites RTP arriving on this leg before it leaves towards the other
    /// (transcoding); `None` relays it as it is.
    pub transform: Option<Box<dyn PacketTransform>>,
}

/// Rewrites the RTP packets of one direction, after the relay's own header
/// handling (SSRC and sequence continuity) and before sending: transcoding
/// between legs that share no codec. RTCP is not passed through it.
pub trait PacketTransform: Send + std::fmt::Debug {
    /// Writes the packet to send for RTP `packet` into `out` and returns
    /// its length, or `None` to drop it (a packet that cannot be converted).
    fn transform(&mut self, packet: &[u8], out: &mut [u8]) -> Option<usize>;
}

/// An event of one leg's relay, for call control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEvent {
    /// The leg whose incoming stream the event concerns.
    pub leg: Leg,
    /// What happened.
    pub event: RelayEvent,
}

/// Counters of one leg: what arrived on its sockets and what happened to it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LegStats {
    /// The sans-IO relay's counters (RTP in, forwarded, dropped).
    pub relay: RelayCounters,
    /// The latched remote RTP address.
    pub latched: Option<SocketAddr>,
    /// RTCP datagrams (muxed or on the odd port) sent on to the other leg.
    pub rtcp_forwarded: u64,
    /// RTCP datagrams on the odd port dropped (not from the latched IP).
    pub rtcp_dropped: u64,
    /// Packets not sent because the other leg has no remote address yet.
    pub no_destination: u64,
    /// Packets the OS refused to send (buffer full, unreachable).
    pub send_failed: u64,
    /// Receive errors other than `WouldBlock`.
    pub recv_errors: u64,
    /// What the leg's phone reports in RTCP about the media it receives
    /// from the PBX, and the PBX↔phone round-trip time.
    pub quality: RtcpQuality,
}

/// Counters of both legs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SessionStats {
    /// Leg A.
    pub a: LegStats,
    /// Leg B.
    pub b: LegStats,
}

impl SessionStats {
    /// The counters of `leg`.
    pub fn leg(&self, leg: Leg) -> &LegStats {
        match leg {
            Leg::A => &self.a,
            Leg::B => &self.b,
        }
    }
}

#[derive(Debug)]
enum Command {
    Relatch(Leg, Option<SocketAddr>),
    SetTransform(Leg, Option<Box<dyn PacketTransform>>),
    SetMediaTimeout(Leg, Option<Duration>),
    Close,
}

/// A running relay between two legs; closing or dropping it stops the task
/// and returns the ports to the pool.
#[derive(Debug)]
pub struct RelaySession {
    commands: mpsc::UnboundedSender<Command>,
    stats: Arc<Mutex<SessionStats>>,
    local: [SocketAddr; 2],
    task: Option<JoinHandle<()>>,
}

impl RelaySession {
    /// Starts relaying between `a` and `b`; must be called inside a tokio
    /// runtime. Returns the session and the receiver of its events (media
    /// timeout, latching, source changes).
    pub fn start(
        a: LegSetup,
        b: LegSetup,
    ) -> Result<(Self, mpsc::UnboundedReceiver<SessionEvent>), Error> {
        let (event_tx, events) = mpsc::unbounded_channel();
        let session = Self::spawn(a, b, EventSink::Own(event_tx))?;
        Ok((session, events))
    }

    /// Like [`RelaySession::start`], but the events of many sessions share
    /// one channel, each tagged with `id` (no task or channel per call
    /// just to forward them).
    pub fn start_tagged(
        a: LegSetup,
        b: LegSetup,
        id: u64,
        events: mpsc::UnboundedSender<(u64, SessionEvent)>,
    ) -> Result<Self, Error> {
        Self::spawn(a, b, EventSink::Tagged(id, events))
    }

    fn spawn(a: LegSetup, b: LegSetup, events: EventSink) -> Result<Self, Error> {
        let now = Instant::now();
        let local = [a.ports.rtp_addr(), b.ports.rtp_addr()];
        // Each phone receives what the other leg's relay sends, under that
        // relay's outgoing SSRC.
        let (ssrc_to_b, ssrc_to_a) = (a.relay.out_ssrc, b.relay.out_ssrc);
        let legs = [
            LegIo::new(a, ssrc_to_a, now)?,
            LegIo::new(b, ssrc_to_b, now)?,
        ];
        let (commands, command_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(SessionStats::default()));
        let worker = Worker {
            legs,
            stats: Arc::clone(&stats),
            events,
            buf: Box::new([0; MAX_DATAGRAM]),
            out: Box::new([0; MAX_DATAGRAM]),
        };
        let task = tokio::spawn(worker.run(command_rx));
        Ok(Self {
            commands,
            stats,
            local,
            task: Some(task),
        })
    }

    /// The local RTP address of `leg`, for its SDP.
    pub fn local_addr(&self, leg: Leg) -> SocketAddr {
        self.local[leg.index()]
    }

    /// Counters per leg, as of the task's last wake-up.
    pub fn stats(&self) -> SessionStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signalling moved `leg`'s remote address: latch again.
    pub fn relatch(&self, leg: Leg, signalled: Option<SocketAddr>) {
        // A send error means the task is gone; nothing left to relatch.
        let _ = self.commands.send(Command::Relatch(leg, signalled));
    }

    /// Replaces the transform of RTP arriving on `leg` (a re-negotiated
    /// codec); `None` relays it unchanged.
    pub fn set_transform(&self, leg: Leg, transform: Option<Box<dyn PacketTransform>>) {
        let _ = self.commands.send(Command::SetTransform(leg, transform));
    }

    /// Changes `leg`'s media timeout (`None` while on hold).
    pub fn set_media_timeout(&self, leg: Leg, timeout: Option<Duration>) {
        let _ = self.commands.send(Command::SetMediaTimeout(leg, timeout));
    }

    /// Stops the task; when this returns, the sockets are closed and the
    /// ports are back in the pool. Returns the final counters.
    pub async fn close(mut self) -> SessionStats {
        let _ = self.commands.send(Command::Close);
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "RTP relay task ended abnormally");
        }
        self.stats()
    }
}

impl Drop for RelaySession {
    fn drop(&mut self) {
        // Without `close`, the ports return once the runtime drops the task.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[derive(Debug)]
struct LegIo {
    // Field order matters: sockets close before the lease frees the ports.
    rtp: UdpSocket,
    rtcp: UdpSocket,
    relay: RtpRelay,
    /// Applied to RTP arriving on this leg (transcoding).
    transform: Option<Box<dyn PacketTransform>>,
    /// Source of RTCP on the odd port, latched like RTP.
    rtcp_remote: Option<SocketAddr>,
    /// What the phone reports in RTCP, and SRs relayed to it.
    monitor: RtcpMonitor,
    stats: LegStats,
    _lease: PortLease,
}

impl LegIo {
    /// `media_ssrc`: the SSRC of the RTP the phone receives from the relay.
    fn new(setup: LegSetup, media_ssrc: u32, now: Instant) -> io::Result<Self> {
        let (rtp, rtcp, lease) = setup.ports.into_parts();
        let monitor = RtcpMonitor::new(setup.relay.clock_rate, Some(media_ssrc));
        Ok(Self {
            rtp: UdpSocket::from_std(rtp)?,
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
    fn rtp_destination(&self) -> Option<SocketAddr> {
        self.relay.latched().or_else(|| {
            self.relay
                .config()
                .signalled
                .filter(|s| s.port() != 0 && !s.ip().is_unspecified())
        })
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

#[derive(Debug)]
enum Wake {
    Rtp(usize),
    Rtcp(usize),
    Timeout,
    Command(Option<Command>),
    Failed,
}

/// Where a session's events go.
enum EventSink {
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

struct Worker {
    legs: [LegIo; 2],
    stats: Arc<Mutex<SessionStats>>,
    events: EventSink,
    buf: Box<[u8; MAX_DATAGRAM]>,
    /// Where a transform writes its packet.
    out: Box<[u8; MAX_DATAGRAM]>,
}

impl Worker {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            let deadline = self
                .legs
                .iter()
                .filter_map(|l| l.relay.poll_timeout())
                .min();
            let wake = {
                let [a, b] = &self.legs;
                // Unbiased: tokio polls the branches in random order, so a
                // flooded socket cannot starve the other leg.
                tokio::select! {
                    c = commands.recv() => Wake::Command(c),
                    r = a.rtp.readable() => r.map_or(Wake::Failed, |()| Wake::Rtp(0)),
                    r = b.rtp.readable() => r.map_or(Wake::Failed, |()| Wake::Rtp(1)),
                    r = a.rtcp.readable() => r.map_or(Wake::Failed, |()| Wake::Rtcp(0)),
                    r = b.rtcp.readable() => r.map_or(Wake::Failed, |()| Wake::Rtcp(1)),
                    () = sleep_until(deadline), if deadline.is_some() => Wake::Timeout,
                }
            };
            match wake {
                Wake::Command(None | Some(Command::Close)) => break,
                Wake::Failed => {
                    // Only when the IO driver is shutting down.
                    tracing::warn!("RTP relay lost its IO driver; stopping");
                    break;
                }
                Wake::Command(Some(Command::Relatch(leg, signalled))) => {
                    self.legs[leg.index()]
                        .relay
                        .relatch(signalled, Instant::now());
                    self.legs[leg.index()].rtcp_remote = None;
                }
                Wake::Command(Some(Command::SetTransform(leg, transform))) => {
                    self.legs[leg.index()].transform = transform;
                }
                Wake::Command(Some(Command::SetMediaTimeout(leg, timeout))) => {
                    self.legs[leg.index()]
                        .relay
                        .set_media_timeout(timeout, Instant::now());
                }
                Wake::Rtp(from) => self.drain_rtp(from),
                Wake::Rtcp(from) => self.drain_rtcp(from),
                Wake::Timeout => {}
            }
            let now = Instant::now();
            for leg in &mut self.legs {
                leg.relay.handle_timeout(now);
            }
            self.publish();
        }
        self.publish();
    }

    /// Reads up to [`BATCH`] datagrams from leg `from`'s RTP socket and
    /// relays them to the other leg.
    fn drain_rtp(&mut self, from: usize) {
        let [a, b] = &mut self.legs;
        let (rx, tx) = if from == 0 { (a, b) } else { (b, a) };
        for _ in 0..BATCH {
            let (n, src) = match rx.rtp.try_recv_from(&mut self.buf[..]) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    rx.stats.recv_errors += 1;
                    tracing::debug!(error = %e, "RTP receive failed");
                    continue;
                }
            };
            let now = Instant::now();
            let (len, rtcp) = match rx.relay.handle_packet(src, &mut self.buf[..n], now) {
                Action::Forward(len) => (len, false),
                Action::Rtcp(len) => {
                    rx.monitor.on_rtcp_from_phone(&self.buf[..len], now);
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
    }

    /// Relays RTCP arriving on leg `from`'s odd port, from the IP latched
    /// for RTP only.
    fn drain_rtcp(&mut self, from: usize) {
        let [a, b] = &mut self.legs;
        let (rx, tx) = if from == 0 { (a, b) } else { (b, a) };
        for _ in 0..BATCH {
            let (n, src) = match rx.rtcp.try_recv_from(&mut self.buf[..]) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
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
    }

    /// Hands relay events to the owner and refreshes the shared counters.
    fn publish(&mut self) {
        for (i, leg) in self.legs.iter_mut().enumerate() {
            while let Some(event) = leg.relay.poll_event() {
                self.events.send(SessionEvent {
                    leg: Leg::from_index(i),
                    event,
                });
            }
            leg.stats.relay = *leg.relay.counters();
            leg.stats.latched = leg.relay.latched();
            leg.stats.quality = leg.monitor.quality();
        }
        let mut shared = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        shared.a = self.legs[0].stats;
        shared.b = self.legs[1].stats;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}
