//! SIP over TCP (RFC 3261 §18.3): Content-Length framing, responses on the
//! connection the request came in on, CRLF keep-alives (RFC 5626 §3.5.1),
//! idle timeout and a connection limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sip::framing::{Frame, StreamFramer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::debug;

use crate::config::{SipConfig, TransportKind};
use crate::endpoint::Endpoint;
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
    endpoint: Arc<Endpoint>,
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
    tasks.spawn(accept_loop(listener, endpoint, limits));
    Ok(local)
}

async fn accept_loop(listener: TcpListener, endpoint: Arc<Endpoint>, limits: Limits) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut connections = JoinSet::new();
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
                    drop(stream);
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let (endpoint, limits, open) = (endpoint.clone(), limits.clone(), open.clone());
                connections.spawn(async move {
                    serve(stream, peer, endpoint, &limits).await;
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(mut stream: TcpStream, peer: SocketAddr, endpoint: Arc<Endpoint>, limits: &Limits) {
    let _ = stream.set_nodelay(true);
    let mut framer = StreamFramer::new(limits.max_size);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match tokio::time::timeout(limits.idle, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => return,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "TCP read failed");
                return;
            }
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Ping)) => {
                    if stream.write_all(b"\r\n").await.is_err() {
                        return;
                    }
                }
                Ok(Some(Frame::Pong)) => {}
                Ok(Some(Frame::Message(data))) => {
                    trace_message("recv", "TCP", peer, &data);
                    if let Some(reply) = endpoint.handle(data, TransportKind::Tcp, peer) {
                        trace_message("send", "TCP", peer, &reply.bytes);
                        if stream.write_all(&reply.bytes).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    debug!(%peer, error = %e, "TCP framing error, closing");
                    return;
                }
            }
        }
    }
}
