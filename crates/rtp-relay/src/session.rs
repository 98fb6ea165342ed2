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

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

use media::rtp::{RelayConfig, RelayCounters, RelayEvent, TimestampMap};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Error;
use crate::pool::PortPair;
use crate::quality::RtcpQuality;

mod offload;
mod worker;

use offload::Offload;
use rtp_kernel::{ForwardCounters, KernelForwarder, StreamKey};
use worker::{EventSink, LegIo, Worker};

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
                let (packets, bytes) = now.since(seen);
                leg.kernel_forwarded += packets;
                leg.relay.count_forwarded(packets, bytes);
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
