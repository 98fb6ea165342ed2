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

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use media::rtp::{RelayConfig, RelayCounters, RelayEvent};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Error;
use crate::leg::{self, EventSink, LegIo, RecvBatch};
use crate::pool::PortPair;
use crate::quality::RtcpQuality;

/// One side of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The first leg (usually the caller).
    A,
    /// The second leg (usually the callee).
    B,
}

impl Leg {
    pub(crate) fn index(self) -> usize {
        match self {
            Leg::A => 0,
            Leg::B => 1,
        }
    }

    pub(crate) fn from_index(i: usize) -> Self {
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
        let local = [a.ports.rtp_addr(), b.ports.rtp_addr()];
        let legs = LegIo::pair(a, b, Instant::now(), UdpSocket::from_std)?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(SessionStats::default()));
        let worker = Worker {
            legs,
            stats: Arc::clone(&stats),
            events,
            batch: RecvBatch::new(1),
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
enum Wake {
    Rtp(usize),
    Rtcp(usize),
    Timeout,
    Command(Option<Command>),
    Failed,
}

struct Worker {
    legs: [LegIo<UdpSocket>; 2],
    stats: Arc<Mutex<SessionStats>>,
    events: EventSink,
    batch: RecvBatch,
}

impl Worker {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            let deadline = leg::poll_timeout(&self.legs);
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
                    self.legs[leg.index()].relatch(signalled, Instant::now());
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

    /// Relays what waits on leg `from`'s RTP socket to the other leg.
    fn drain_rtp(&mut self, from: usize) {
        let [a, b] = &mut self.legs;
        let (rx, tx) = if from == 0 { (a, b) } else { (b, a) };
        // Not drained: the readiness stays set, so the next turn reads on.
        let _ = leg::drain_rtp(rx, tx, &mut self.batch);
    }

    /// Relays RTCP arriving on leg `from`'s odd port.
    fn drain_rtcp(&mut self, from: usize) {
        let [a, b] = &mut self.legs;
        let (rx, tx) = if from == 0 { (a, b) } else { (b, a) };
        let _ = leg::drain_rtcp(rx, tx, &mut self.batch);
    }

    /// Hands relay events to the owner and refreshes the shared counters.
    fn publish(&mut self) {
        leg::emit_events(&mut self.legs, &self.events);
        let snapshot = leg::snapshot(&mut self.legs);
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}
