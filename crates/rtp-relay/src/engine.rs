//! Batched relay: a few OS threads, each serving many sessions from one
//! `mio::Poll`.
//!
//! [`crate::RelaySession`] gives every call a tokio task, so every packet
//! costs a task wake-up (scheduler, futex) on top of the socket work. Here
//! one `epoll_wait` returns the readiness of many sessions' sockets and the
//! thread relays them in a row: per packet only the `recvfrom`/`sendto`
//! remain. The relay logic is the same code as the tokio session's
//! (`crate::leg`): latching, SSRC/sequence rewriting, RTCP on both paths,
//! quality monitoring.
//!
//! Sessions go to the threads round-robin. Commands (start, relatch, media
//! timeout, stop) reach the owning thread through a channel and a
//! [`mio::Waker`]. Media timeouts are served from a per-thread heap of
//! deadlines (lazily updated: a packet only pushes when it makes a session's
//! deadline earlier, which it never does in steady flow). Relay events go
//! out as soon as they happen; the shared counters are refreshed at most
//! every [`STATS_INTERVAL`] per session (and on stop), so the hot path takes
//! no lock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::mpsc;

use crate::Error;
use crate::leg::{self, Drained, EventSink, LegIo, RecvBatch};
use crate::session::{Leg, LegSetup, SessionEvent, SessionStats};

/// How stale [`EngineSession::stats`] may be while media flows.
pub const STATS_INTERVAL: Duration = Duration::from_millis(100);

/// How long [`EngineSession::close`] waits for the relay thread.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Datagrams taken per `recvmmsg` (Linux); fewer means the socket is empty,
/// which saves the extra receive that would only return `WouldBlock`.
const RECV_MANY: usize = 8;

/// Readiness events taken per `epoll_wait`.
const EVENTS: usize = 1024;

/// The token of the thread's command waker; session tokens are
/// `slot << 2 | leg << 1 | rtcp`.
const WAKER: Token = Token(usize::MAX);

/// Session keys, unique across engines (the caller's tag need not be).
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

enum Command {
    Start(Box<Session>),
    Relatch(u64, Leg, Option<SocketAddr>),
    SetMediaTimeout(u64, Leg, Option<Duration>),
    Stop(u64, Option<std_mpsc::SyncSender<()>>),
    Shutdown,
}

/// The way into one relay thread.
#[derive(Debug, Clone)]
struct Handle {
    commands: std_mpsc::Sender<Command>,
    waker: Arc<Waker>,
}

impl Handle {
    /// False once the thread is gone.
    fn send(&self, command: Command) -> bool {
        if self.commands.send(command).is_err() {
            return false;
        }
        if let Err(e) = self.waker.wake() {
            tracing::warn!(error = %e, "RTP relay thread wake-up failed");
        }
        true
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Start(s) => write!(f, "Start({})", s.key),
            Command::Relatch(k, l, a) => write!(f, "Relatch({k}, {l:?}, {a:?})"),
            Command::SetMediaTimeout(k, l, t) => write!(f, "SetMediaTimeout({k}, {l:?}, {t:?})"),
            Command::Stop(k, _) => write!(f, "Stop({k})"),
            Command::Shutdown => write!(f, "Shutdown"),
        }
    }
}

/// Relay threads serving many sessions each; dropping the engine stops
/// the threads and every session still on them (ports back to the pool).
#[derive(Debug)]
pub struct RelayEngine {
    threads: Vec<(Handle, Option<JoinHandle<()>>)>,
    next: AtomicUsize,
}

impl RelayEngine {
    /// Starts `threads` relay threads (at least one), named `rtp-relay-N`.
    pub fn new(threads: usize) -> io::Result<Self> {
        let mut engine = Self {
            threads: Vec::new(),
            next: AtomicUsize::new(0),
        };
        for n in 0..threads.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (commands, command_rx) = std_mpsc::channel();
            let join = std::thread::Builder::new()
                .name(format!("rtp-relay-{n}"))
                .spawn(move || Thread::new(poll, command_rx).run())?;
            // Pushed at once so a later failure still stops this thread.
            engine
                .threads
                .push((Handle { commands, waker }, Some(join)));
        }
        Ok(engine)
    }

    /// The number of relay threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Starts relaying between `a` and `b` on one of the threads. Returns
    /// the session and the receiver of its events.
    pub fn start(
        &self,
        a: LegSetup,
        b: LegSetup,
    ) -> Result<(EngineSession, mpsc::UnboundedReceiver<SessionEvent>), Error> {
        let (event_tx, events) = mpsc::unbounded_channel();
        let session = self.spawn(a, b, EventSink::Own(event_tx))?;
        Ok((session, events))
    }

    /// Like [`RelayEngine::start`], but the events of many sessions share
    /// one channel, each tagged with `id` (as
    /// [`crate::RelaySession::start_tagged`]). Needs no tokio runtime.
    pub fn start_tagged(
        &self,
        a: LegSetup,
        b: LegSetup,
        id: u64,
        events: mpsc::UnboundedSender<(u64, SessionEvent)>,
    ) -> Result<EngineSession, Error> {
        self.spawn(a, b, EventSink::Tagged(id, events))
    }

    fn spawn(&self, a: LegSetup, b: LegSetup, events: EventSink) -> Result<EngineSession, Error> {
        let local = [a.ports.rtp_addr(), b.ports.rtp_addr()];
        let legs = LegIo::pair(a, b, Instant::now(), |s| Ok(UdpSocket::from_std(s)))?;
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        let stats = Arc::new(Mutex::new(SessionStats::default()));
        let session = Box::new(Session {
            key,
            legs,
            stats: Arc::clone(&stats),
            events,
            scheduled: None,
            dirty: false,
        });
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.threads.len();
        let handle = self.threads[i].0.clone();
        if !handle.send(Command::Start(session)) {
            return Err(Error::Io(io::Error::other("RTP relay thread is gone")));
        }
        Ok(EngineSession {
            handle,
            key,
            stats,
            local,
            stopped: false,
        })
    }
}

impl Drop for RelayEngine {
    fn drop(&mut self) {
        for (handle, _) in &self.threads {
            handle.send(Command::Shutdown);
        }
        for (_, join) in &mut self.threads {
            if let Some(join) = join.take()
                && join.join().is_err()
            {
                tracing::warn!("RTP relay thread panicked");
            }
        }
    }
}

/// A session running on a [`RelayEngine`] thread; closing or dropping it
/// stops relaying and returns the ports to the pool.
#[derive(Debug)]
pub struct EngineSession {
    handle: Handle,
    key: u64,
    stats: Arc<Mutex<SessionStats>>,
    local: [SocketAddr; 2],
    stopped: bool,
}

impl EngineSession {
    /// The local RTP address of `leg`, for its SDP.
    pub fn local_addr(&self, leg: Leg) -> SocketAddr {
        self.local[leg.index()]
    }

    /// Counters per leg, at most [`STATS_INTERVAL`] old.
    pub fn stats(&self) -> SessionStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signalling moved `leg`'s remote address: latch again.
    pub fn relatch(&self, leg: Leg, signalled: Option<SocketAddr>) {
        self.handle.send(Command::Relatch(self.key, leg, signalled));
    }

    /// Changes `leg`'s media timeout (`None` while on hold).
    pub fn set_media_timeout(&self, leg: Leg, timeout: Option<Duration>) {
        self.handle
            .send(Command::SetMediaTimeout(self.key, leg, timeout));
    }

    /// Stops the session and waits (briefly, blocking) for the relay thread:
    /// when this returns, the sockets are closed and the ports are back in
    /// the pool. Returns the final counters.
    pub fn close(mut self) -> SessionStats {
        self.stopped = true;
        let (done, wait) = std_mpsc::sync_channel(1);
        if self.handle.send(Command::Stop(self.key, Some(done))) {
            // Err: the thread dropped the session without answering
            // (shutdown) or is stuck; the counters are what they are.
            let _ = wait.recv_timeout(CLOSE_WAIT);
        }
        self.stats()
    }
}

impl Drop for EngineSession {
    fn drop(&mut self) {
        // The thread closes the sockets as soon as it sees the command.
        if !self.stopped {
            self.handle.send(Command::Stop(self.key, None));
        }
    }
}

/// A session as its thread holds it.
struct Session {
    key: u64,
    legs: [LegIo<UdpSocket>; 2],
    stats: Arc<Mutex<SessionStats>>,
    events: EventSink,
    /// The deadline this session has in the timer heap, if any.
    scheduled: Option<Instant>,
    /// Counters changed since last published (it is in the dirty list).
    dirty: bool,
}

impl Session {
    fn publish(&mut self) {
        leg::emit_events(&mut self.legs, &self.events);
        let snapshot = leg::snapshot(&mut self.legs);
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    fn register(&mut self, registry: &mio::Registry, slot: usize) -> io::Result<()> {
        for (i, leg) in self.legs.iter_mut().enumerate() {
            let base = slot << 2 | i << 1;
            registry.register(&mut leg.rtp, Token(base), Interest::READABLE)?;
            registry.register(&mut leg.rtcp, Token(base | 1), Interest::READABLE)?;
        }
        Ok(())
    }

    fn deregister(&mut self, registry: &mio::Registry) {
        for leg in &mut self.legs {
            // Fails only for sockets never registered; closing drops them
            // from the epoll set anyway.
            let _ = registry.deregister(&mut leg.rtp);
            let _ = registry.deregister(&mut leg.rtcp);
        }
    }
}

struct Slot {
    generation: u32,
    session: Option<Box<Session>>,
}

/// One relay thread's state.
struct Thread {
    poll: Poll,
    commands: std_mpsc::Receiver<Command>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    by_key: HashMap<u64, usize>,
    /// Session deadlines: (when, slot, generation); stale entries are
    /// skipped when popped.
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    /// Sessions whose counters changed since the last flush.
    dirty: Vec<(usize, u32)>,
    next_flush: Option<Instant>,
    /// Sockets read up to the batch limit: another turn without waiting.
    again: Vec<(usize, u32, usize)>,
    batch: RecvBatch,
}

impl Thread {
    fn new(poll: Poll, commands: std_mpsc::Receiver<Command>) -> Self {
        Self {
            poll,
            commands,
            slots: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            next_flush: None,
            again: Vec::new(),
            batch: RecvBatch::new(RECV_MANY),
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "RTP relay poll failed; thread stops");
                break;
            }
            let mut commands = false;
            let again = std::mem::take(&mut self.again);
            for event in &events {
                if event.token() == WAKER {
                    commands = true;
                } else {
                    let t = event.token().0;
                    let slot = t >> 2;
                    if let Some(generation) = self.slots.get(slot).map(|s| s.generation) {
                        self.ready(slot, generation, t & 3);
                    }
                }
            }
            for (slot, generation, socket) in again {
                self.ready(slot, generation, socket);
            }
            if commands && self.commands() {
                break;
            }
            let now = Instant::now();
            self.expire(now);
            if self.next_flush.is_some_and(|t| now >= t) {
                self.flush();
            }
        }
        self.shutdown();
    }

    /// How long `epoll_wait` may sleep: until the earliest session deadline
    /// or counter flush; not at all if a socket still holds datagrams.
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let timer = self.timers.peek().map(|Reverse((t, _, _))| *t);
        let next = match (timer, self.next_flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map(|t| t.saturating_duration_since(now))
    }

    /// Drains socket `socket` (`leg << 1 | rtcp`) of the session in `slot`.
    fn ready(&mut self, slot: usize, generation: u32, socket: usize) {
        let Some(Slot {
            generation: current,
            session: Some(session),
        }) = self.slots.get_mut(slot)
        else {
            return;
        };
        if *current != generation {
            return;
        }
        let [a, b] = &mut session.legs;
        let (rx, tx) = if socket >> 1 == 0 { (a, b) } else { (b, a) };
        let drained = if socket & 1 == 0 {
            leg::drain_rtp(rx, tx, &mut self.batch)
        } else {
            leg::drain_rtcp(rx, tx, &mut self.batch)
        };
        if drained == Drained::More {
            // Edge-triggered: no new event comes for what is queued.
            self.again.push((slot, generation, socket));
        }
        leg::emit_events(&mut session.legs, &session.events);
        if !session.dirty {
            session.dirty = true;
            self.dirty.push((slot, generation));
            if self.next_flush.is_none() {
                self.next_flush = Some(Instant::now() + STATS_INTERVAL);
            }
        }
        Self::schedule(&mut self.timers, session, slot, generation);
    }

    /// Puts the session's deadline in the heap if it is earlier than the
    /// one already there (a later one is found when that entry pops).
    fn schedule(
        timers: &mut BinaryHeap<Reverse<(Instant, usize, u32)>>,
        session: &mut Session,
        slot: usize,
        generation: u32,
    ) {
        if let Some(deadline) = leg::poll_timeout(&session.legs)
            && session.scheduled.is_none_or(|s| deadline < s)
        {
            session.scheduled = Some(deadline);
            timers.push(Reverse((deadline, slot, generation)));
        }
    }

    /// Serves the deadlines that have passed.
    fn expire(&mut self, now: Instant) {
        while let Some(&Reverse((when, slot, generation))) = self.timers.peek() {
            if when > now {
                break;
            }
            self.timers.pop();
            let Some(Slot {
                generation: current,
                session: Some(session),
            }) = self.slots.get_mut(slot)
            else {
                continue;
            };
            if *current != generation || session.scheduled != Some(when) {
                continue; // stale entry
            }
            session.scheduled = None;
            for leg in &mut session.legs {
                leg.relay.handle_timeout(now);
            }
            leg::emit_events(&mut session.legs, &session.events);
            Self::schedule(&mut self.timers, session, slot, generation);
        }
    }

    /// Publishes the counters of every session that changed.
    fn flush(&mut self) {
        for (slot, generation) in self.dirty.drain(..) {
            if let Some(Slot {
                generation: current,
                session: Some(session),
            }) = self.slots.get_mut(slot)
                && *current == generation
            {
                session.dirty = false;
                session.publish();
            }
        }
        self.next_flush = None;
    }

    /// Applies queued commands; true on shutdown.
    fn commands(&mut self) -> bool {
        while let Ok(command) = self.commands.try_recv() {
            let now = Instant::now();
            match command {
                Command::Start(session) => self.add(session),
                Command::Relatch(key, leg, signalled) => {
                    self.with(key, |s| s.legs[leg.index()].relatch(signalled, now));
                }
                Command::SetMediaTimeout(key, leg, timeout) => {
                    self.with(key, |s| {
                        s.legs[leg.index()].relay.set_media_timeout(timeout, now);
                    });
                }
                Command::Stop(key, done) => {
                    self.remove(key);
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Command::Shutdown => return true,
            }
        }
        false
    }

    fn add(&mut self, mut session: Box<Session>) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot {
                generation: 0,
                session: None,
            });
            self.slots.len() - 1
        });
        if let Err(e) = session.register(self.poll.registry(), slot) {
            // Closing the session's sockets returns its ports; its counters
            // stay zero and nothing is relayed.
            tracing::warn!(error = %e, "RTP relay could not watch a session's sockets");
            session.deregister(self.poll.registry());
            self.free.push(slot);
            return;
        }
        let generation = self.slots[slot].generation;
        self.by_key.insert(session.key, slot);
        Self::schedule(&mut self.timers, &mut session, slot, generation);
        self.slots[slot].session = Some(session);
    }

    /// Runs `f` on session `key` (if still there), then re-arms its timer.
    fn with(&mut self, key: u64, f: impl FnOnce(&mut Session)) {
        let Some(&slot) = self.by_key.get(&key) else {
            return;
        };
        let Slot {
            generation,
            session: Some(session),
        } = &mut self.slots[slot]
        else {
            return;
        };
        f(session);
        // Relatch and timeout changes move the deadline either way; an
        // earlier one needs a new entry, a later one is found on pop.
        session.scheduled = None;
        Self::schedule(&mut self.timers, session, slot, *generation);
        leg::emit_events(&mut session.legs, &session.events);
    }

    /// Stops session `key`: its sockets close, then its ports return.
    fn remove(&mut self, key: u64) {
        let Some(slot) = self.by_key.remove(&key) else {
            return;
        };
        let entry = &mut self.slots[slot];
        let Some(mut session) = entry.session.take() else {
            return;
        };
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        session.deregister(self.poll.registry());
        session.publish();
        // Dropped here: sockets closed before the lease frees the ports.
    }

    fn shutdown(&mut self) {
        let keys: Vec<u64> = self.by_key.keys().copied().collect();
        for key in keys {
            self.remove(key);
        }
    }
}
