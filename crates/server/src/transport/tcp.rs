//! SIP over TCP (RFC 3261 §18.3): Content-Length framing, responses and
//! requests reuse the connection a peer opened, CRLF keep-alives
//! (RFC 5626 §3.5.1), idle timeout and a connection limit.
//!
//! A message for an address without a connection opens one (§18.1.1):
//! it is queued while connecting, and concurrent sends share that one
//! connect. The connect is bounded by 64·T1, at most 5 s; on failure the
//! queue is dropped and the transactions that waited on it fail at once
//! (the caller then gets 480 instead of waiting for Timer B). Once open it
//! is served exactly like an accepted connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use sip::framing::{Frame, StreamFramer};
use sip::transaction::{Remote, TransactionKey, Transport};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::debug;

use super::{Conn, Connections, Inbound};
use crate::config::SipConfig;
use crate::core::SharedCore;
use crate::logging::trace_message;

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Longest wait for an outgoing connect: 64·T1 (the transaction's own
/// limit) but at most this, so a dead contact fails the call quickly.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Limits {
    max_size: usize,
    idle: Duration,
    max_connections: usize,
    connect_timeout: Duration,
}

/// What every TCP connection shares, accepted or opened: the connection
/// map, limits and counter, the core, and the runtime that runs them.
#[derive(Clone)]
pub struct Client {
    // Weak: the core owns the `Outbound` that holds this.
    core: Weak<SharedCore>,
    connections: Connections,
    limits: Limits,
    open: Arc<AtomicUsize>,
    // `Outbound::send` runs on UDP worker threads too, outside tokio.
    runtime: Handle,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("limits", &self.limits)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Must be called within the tokio runtime that will run connections.
    pub fn new(cfg: &SipConfig, core: &Arc<SharedCore>, connections: Connections) -> Client {
        Client {
            core: Arc::downgrade(core),
            connections,
            limits: Limits {
                max_size: cfg.max_message_size,
                idle: Duration::from_secs(cfg.tcp_idle_timeout_s.max(1)),
                max_connections: cfg.max_tcp_connections,
                connect_timeout: Duration::from_millis(cfg.timers.t1_ms.saturating_mul(64))
                    .min(MAX_CONNECT_TIMEOUT),
            },
            open: Arc::new(AtomicUsize::new(0)),
            runtime: Handle::current(),
        }
    }

    /// Starts connecting to `peer` (RFC 3261 §18.1.1) and returns the
    /// queue of the future connection, which the caller registers in the
    /// connection map (it holds the map's lock, so concurrent sends share
    /// this one connect). None when the connection limit is reached.
    pub(super) fn connect(&self, peer: SocketAddr) -> Option<mpsc::Sender<Bytes>> {
        let Some(slot) = self.reserve() else {
            debug!(%peer, "TCP connection limit reached, not connecting");
            return None;
        };
        let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
        let client = self.clone();
        let queue = tx.clone();
        self.runtime.spawn(async move {
            client.run_outgoing(peer, queue, rx).await;
            drop(slot);
        });
        Some(tx)
    }

    /// A place under the connection limit (accepted and opened connections
    /// share it), or `None` when the limit is reached.
    fn reserve(&self) -> Option<Slot> {
        if self.open.load(Ordering::Relaxed) >= self.limits.max_connections {
            return None;
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Slot(Arc::clone(&self.open)))
    }

    async fn run_outgoing(
        &self,
        peer: SocketAddr,
        tx: mpsc::Sender<Bytes>,
        rx: mpsc::Receiver<Bytes>,
    ) {
        let connect = tokio::time::timeout(self.limits.connect_timeout, TcpStream::connect(peer));
        let stream = match connect.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return self.connect_failed(peer, &tx, rx.len(), &e.to_string()),
            Err(_) => return self.connect_failed(peer, &tx, rx.len(), "timed out"),
        };
        debug!(%peer, "TCP connection opened");
        if let Ok(mut map) = self.connections.lock()
            && let Some(conn) = map.get_mut(&peer)
            && conn.tx.same_channel(&tx)
        {
            conn.waiting = None;
        }
        match self.core.upgrade() {
            Some(core) => serve(stream, peer, core, self, Some((tx, rx))).await,
            None => {
                forget(&self.connections, peer, &tx);
            }
        }
    }

    /// Drops the connection's entry and queue, and fails the transactions
    /// that waited on it.
    fn connect_failed(
        &self,
        peer: SocketAddr,
        tx: &mpsc::Sender<Bytes>,
        dropped: usize,
        error: &str,
    ) {
        let waiting = forget(&self.connections, peer, tx).unwrap_or_default();
        debug!(%peer, error, dropped, "TCP connect failed, dropping queued messages");
        if !waiting.is_empty()
            && let Some(core) = self.core.upgrade()
        {
            core.transport_errors(&waiting);
        }
    }
}

/// One connection's place under the limit, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Removes `peer`'s entry if it is still the connection fed by `tx` (a
/// newer one may have replaced it); returns the transactions that waited.
fn forget(
    connections: &Connections,
    peer: SocketAddr,
    tx: &mpsc::Sender<Bytes>,
) -> Option<Vec<TransactionKey>> {
    let mut map = connections.lock().ok()?;
    if !map.get(&peer)?.tx.same_channel(tx) {
        return None;
    }
    map.remove(&peer)?.waiting
}

/// Messages queued per connection before sends fail.
const QUEUE: usize = 1024;

/// Binds `addr` and spawns the accept loop.
pub fn start(
    addr: SocketAddr,
    client: Client,
    tasks: &mut JoinSet<()>,
) -> std::io::Result<SocketAddr> {
    let listener = bind(addr)?;
    let local = listener.local_addr()?;
    tasks.spawn(accept_loop(listener, client));
    Ok(local)
}

async fn accept_loop(listener: TcpListener, client: Client) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        debug!(error = %e, "TCP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(slot) = client.reserve() else {
                    debug!(%peer, "TCP connection limit reached, refusing");
                    continue;
                };
                let Some(core) = client.core.upgrade() else {
                    return;
                };
                let client = client.clone();
                tasks.spawn(async move {
                    serve(stream, peer, core, &client, None).await;
                    drop(slot);
                });
            }
            // Reap finished connection tasks so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// Serves one connection until it closes or idles out. An accepted one
/// (`channel` None) is registered here; an opened one already is, with the
/// queue that collected messages while connecting.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    core: Arc<SharedCore>,
    client: &Client,
    channel: Option<(mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>)>,
) {
    let (connections, limits) = (&client.connections, &client.limits);
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = channel.unwrap_or_else(|| {
        let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
        let conn = Conn {
            tx: tx.clone(),
            waiting: None,
        };
        if let Ok(mut map) = connections.lock() {
            map.insert(peer, conn);
        }
        (tx, rx)
    });
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut framer = StreamFramer::new(limits.max_size);
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match tokio::time::timeout(limits.idle, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "TCP read failed");
                break;
            }
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Ping)) => {
                    if tx.send(Bytes::from_static(b"\r\n")).await.is_err() {
                        break 'read;
                    }
                }
                Ok(Some(Frame::Pong)) => {}
                Ok(Some(Frame::Message(data))) => {
                    trace_message("recv", "TCP", peer, &data);
                    core.handle(Inbound {
                        data,
                        source: Remote::new(Transport::Tcp, peer),
                    });
                }
                Err(e) => {
                    debug!(%peer, error = %e, "TCP framing error, closing");
                    break 'read;
                }
            }
        }
    }
    forget(connections, peer, &tx);
    drop(tx);
    // Let queued answers go out before the socket closes.
    let _ = tokio::time::timeout(Duration::from_secs(2), write_task).await;
}
