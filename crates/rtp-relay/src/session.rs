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
//! while tokio spreads thousands of them over the worker threads. The task
//! is a hand-written future: a wake-up checks each socket's readiness and
//! drains the ready ones with `try_recv_from` until `WouldBlock` (capped per
//! turn for fairness), so a burst costs one wake-up and no futures or timer
//! entries are built per packet. Commands from the owner arrive through a
//! mutex-guarded inbox taken once per wake-up; counters are published at
//! most every [`PUBLISH_EVERY`] while media flows (and at once with every
//! event). Sends use `try_send_to`: a full socket buffer drops the packet
//! (counted) instead of stalling the other direction, as real-time media
//! prefers.
//!
//! Quality: every RTCP compound packet a phone sends (either path) goes
//! through its leg's [`RtcpMonitor`] before being relayed, and every one
//! relayed towards a phone is noted by that phone's monitor, so
//! [`LegStats::quality`] holds what the phone reports about the media it
//! receives (loss, jitter) and the PBX↔phone round-trip time.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use media::rtp::{
    Action, ReceivedStream, RelayConfig, RelayCounters, RelayEvent, RtcpTranslation, RtpRelay,
    TimestampMap,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Error;
use crate::pool::{PortLease, PortPair};
use crate::quality::{RtcpMonitor, RtcpQuality};

mod offload;

use offload::Offload;
use rtp_kernel::{ForwardCounters, KernelForwarder, StreamKey};

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

    /// How it maps RTP timestamps onto another clock rate, if it does (so
    /// RTCP sender reports and jitter follow); `None` by default.
    fn timestamp_map(&self) -> Option<TimestampMap> {
        None
    }
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
    /// RTCP datagrams dropped: on the odd port not from the latched IP, or
    /// not a well-formed compound packet (nothing to translate).
    pub rtcp_dropped: u64,
    /// Packets not sent because the other leg has no remote address yet.
    pub no_destination: u64,
    /// Packets the OS refused to send (buffer full, unreachable).
    pub send_failed: u64,
    /// Receive errors other than `WouldBlock`.
    pub recv_errors: u64,
    /// RTP packets of this leg forwarded in the kernel (also counted in
    /// `relay`).
    pub kernel_forwarded: u64,
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
    SetClockRate(Leg, u32),
    Close,
}

/// What the owner and the relay task share: commands travel in, counters
/// travel out. A plain mutex: the task takes it once per wake-up, the owner
/// only for rare commands and stats reads.
#[derive(Debug, Default)]
struct Shared {
    inbox: Mutex<Inbox>,
    stats: Mutex<Published>,
}

/// The counters as of the task's last publication, and the kernel rules
/// then installed with what of their counters was already folded in, so
/// [`RelaySession::stats`] can add what the kernel forwarded since.
#[derive(Debug, Default)]
struct Published {
    stats: SessionStats,
    kernel: [Option<(StreamKey, ForwardCounters)>; 2],
}

#[derive(Debug, Default)]
struct Inbox {
    commands: Vec<Command>,
    /// The task's waker, to wake it for a command.
    waker: Option<Waker>,
}

impl Shared {
    fn send(&self, command: Command) {
        let waker = {
            let mut inbox = lock(&self.inbox);
            inbox.commands.push(command);
            inbox.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Registers the task's waker and takes the pending commands, in one
    /// lock: a command sent after this finds the waker and wakes the task.
    fn take_commands(&self, waker: &Waker) -> Vec<Command> {
        let mut inbox = lock(&self.inbox);
        match &inbox.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => inbox.waker = Some(waker.clone()),
        }
        std::mem::take(&mut inbox.commands)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running relay between two legs; closing or dropping it stops the task
/// and returns the ports to the pool.
#[derive(Debug)]
pub struct RelaySession {
    shared: Arc<Shared>,
    /// To read the kernel's counters for [`RelaySession::stats`].
    kernel: Option<Arc<KernelForwarder>>,
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
        Self::start_offloaded(a, b, None)
    }

    /// Like [`RelaySession::start`], handing latched streams to `kernel`
    /// (see `rtp_kernel`) when given.
    pub fn start_offloaded(
        a: LegSetup,
        b: LegSetup,
        kernel: Option<Arc<KernelForwarder>>,
    ) -> Result<(Self, mpsc::UnboundedReceiver<SessionEvent>), Error> {
        let (event_tx, events) = mpsc::unbounded_channel();
        let session = Self::spawn(a, b, EventSink::Own(event_tx), kernel)?;
        Ok((session, events))
    }

    /// Like [`RelaySession::start`], but the events of many sessions share
    /// one channel, each tagged with `id` (no task or channel per call
    /// just to forward them); latched streams go to `kernel` when given.
    pub fn start_tagged(
        a: LegSetup,
        b: LegSetup,
        id: u64,
        events: mpsc::UnboundedSender<(u64, SessionEvent)>,
        kernel: Option<Arc<KernelForwarder>>,
    ) -> Result<Self, Error> {
        Self::spawn(a, b, EventSink::Tagged(id, events), kernel)
    }

    fn spawn(
        a: LegSetup,
        b: LegSetup,
        events: EventSink,
        kernel: Option<Arc<KernelForwarder>>,
    ) -> Result<Self, Error> {
        let now = Instant::now();
        let local = [a.ports.rtp_addr(), b.ports.rtp_addr()];
        // Each phone receives what the other leg's relay sends, under that
        // relay's outgoing SSRC.
        let (ssrc_to_b, ssrc_to_a) = (a.relay.out_ssrc, b.relay.out_ssrc);
        let legs = [
            LegIo::new(a, ssrc_to_a, now)?,
            LegIo::new(b, ssrc_to_b, now)?,
        ];
        let shared = Arc::new(Shared::default());
        let worker = Worker {
            legs,
            shared: Arc::clone(&shared),
            events,
            buf: Box::new([0; MAX_DATAGRAM]),
            out: Box::new([0; MAX_DATAGRAM]),
            timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                now,
            ))),
            armed: None,
            published: now,
            dirty: false,
            offload: kernel.clone().map(Offload::new),
        };
        let task = tokio::spawn(worker);
        Ok(Self {
            shared,
            kernel,
            local,
            task: Some(task),
        })
    }

    /// The local RTP address of `leg`, for its SDP.
    pub fn local_addr(&self, leg: Leg) -> SocketAddr {
        self.local[leg.index()]
    }

    /// Counters per leg: as of the task's last wake-up, plus what the
    /// kernel forwarded since (read from its map now, so a final read is
    /// exact even while the task sleeps).
    pub fn stats(&self) -> SessionStats {
        let published = lock(&self.shared.stats);
        let mut stats = published.stats;
        if let Some(kernel) = &self.kernel {
            for (i, rule) in published.kernel.iter().enumerate() {
                let Some((key, seen)) = rule else { continue };
                let Ok(Some(now)) = kernel.counters(key) else {
                    continue;
                };
                let leg = if i == 0 { &mut stats.a } else { &mut stats.b };
                let packets = now.packets.saturating_sub(seen.packets);
                let bytes = now.bytes.saturating_sub(seen.bytes);
                leg.kernel_forwarded += packets;
                leg.relay.packets_in += packets;
                leg.relay.packets_out += packets;
                leg.relay.bytes_in += bytes;
                leg.relay.bytes_out += bytes;
            }
        }
        stats
    }

    /// Signalling moved `leg`'s remote address: latch again.
    pub fn relatch(&self, leg: Leg, signalled: Option<SocketAddr>) {
        // A send error means the task is gone; nothing left to relatch.
        self.shared.send(Command::Relatch(leg, signalled));
    }

    /// Replaces the transform of RTP arriving on `leg` (a re-negotiated
    /// codec); `None` relays it unchanged.
    pub fn set_transform(&self, leg: Leg, transform: Option<Box<dyn PacketTransform>>) {
        self.shared.send(Command::SetTransform(leg, transform));
    }

    /// Sets the RTP clock rate of the codec `leg`'s phone sends and
    /// receives (signalling chose a codec whose rate is not 8000 Hz), for
    /// timestamps across source changes and jitter figures.
    pub fn set_clock_rate(&self, leg: Leg, clock_rate: u32) {
        self.shared.send(Command::SetClockRate(leg, clock_rate));
    }

    /// Changes `leg`'s media timeout (`None` while on hold).
    pub fn set_media_timeout(&self, leg: Leg, timeout: Option<Duration>) {
        self.shared.send(Command::SetMediaTimeout(leg, timeout));
    }

    /// Stops the task; when this returns, the sockets are closed and the
    /// ports are back in the pool. Returns the final counters.
    pub async fn close(mut self) -> SessionStats {
        self.shared.send(Command::Close);
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
    /// The RTP socket's local address.
    local: SocketAddr,
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
    fn rtp_destination(&self) -> Option<SocketAddr> {
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

/// How often the shared counters are refreshed while media flows. Events
/// (latching, timeouts) are handed over at once; counters for a CDR or a
/// status page may lag this much.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

/// The relay task, polled by hand rather than written as an `async fn`
/// with `select!`: a wake-up then costs a readiness check per socket and
/// one lock, instead of building six futures and a timer entry per packet.
struct Worker {
    legs: [LegIo; 2],
    shared: Arc<Shared>,
    events: EventSink,
    buf: Box<[u8; MAX_DATAGRAM]>,
    /// Where a transform writes its packet.
    out: Box<[u8; MAX_DATAGRAM]>,
    /// The media-timeout timer; re-armed only when it fires or a deadline
    /// comes earlier, not for every packet that pushes the deadline later.
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
    published: Instant,
    /// Counters changed since `published`.
    dirty: bool,
    /// Latched streams handed to the kernel, if a forwarder was given.
    offload: Option<Offload>,
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
