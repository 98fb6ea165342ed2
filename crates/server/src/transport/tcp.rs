//! SIP over TCP (RFC 3261 §18.3): Content-Length framing, responses and
//! requests reuse the connection a peer opened, CRLF keep-alives
//! (RFC 5626 §3.5.1), idle timeout and a connection limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sip::framing::{Frame, StreamFramer};
use sip::transaction::{Remote, Transport};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::debug;

use super::{Connections, Inbound};
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

#[derive(Debug, Clone)]
struct Limits {
    max_size: usize,
    idle: Duration,
    max_connections: usize,
}

/// Binds `addr` and spawns the accept loop.
pub fn start(
    addr: SocketAddr,
    core: Arc<SharedCore>,
    connections: Connections,
    cfg: &SipConfig,
    tasks: &mut JoinSet<()>,
) -> std::io::Result<SocketAddr> {
    let listener = bind(addr)?;
    let local = listener.local_addr()?;
    let limits = Limits {
        max_size: cfg.max_message_size,
        idle: Duration::from_secs(cfg.tcp_idle_timeout_s.max(1)),
        max_connections: cfg.max_tcp_connections,
    };
    tasks.spawn(accept_loop(listener, core, connections, limits));
    Ok(local)
}

async fn accept_loop(
    listener: TcpListener,
    core: Arc<SharedCore>,
    connections: Connections,
    limits: Limits,
) {
    let open = Arc::new(AtomicUsize::new(0));
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
                if open.load(Ordering::Relaxed) >= limits.max_connections {
                    debug!(%peer, "TCP connection limit reached, refusing");
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let (core, connections, limits, open) =
                    (core.clone(), connections.clone(), limits.clone(), open.clone());
                tasks.spawn(async move {
                    serve(stream, peer, core, &connections, &limits).await;
                    if let Ok(mut map) = connections.lock() {
                        map.remove(&peer);
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
            // Reap finished connection tasks so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    core: Arc<SharedCore>,
    connections: &Connections,
    limits: &Limits,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(1024);
    if let Ok(mut map) = connections.lock() {
        map.insert(peer, tx.clone());
    }
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
    if let Ok(mut map) = connections.lock() {
        map.remove(&peer);
    }
    drop(tx);
    // Let queued answers go out before the socket closes.
    let _ = tokio::time::timeout(Duration::from_secs(2), write_task).await;
}
