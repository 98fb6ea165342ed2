//! SIP over UDP (RFC 3261 §18.1.1, §18.2.2 with RFC 3581 rport).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tracing::debug;

use crate::config::TransportKind;
use crate::endpoint::Endpoint;
use crate::logging::trace_message;

fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    // Large buffers ride out bursts (registration storms, load tests).
    let _ = socket.set_recv_buffer_size(8 << 20);
    let _ = socket.set_send_buffer_size(8 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Binds `workers` sockets on `addr` and spawns a receive loop for each.
/// Returns the bound address (the real port when `addr` asked for 0).
pub fn start(
    addr: SocketAddr,
    workers: usize,
    endpoint: Arc<Endpoint>,
    max_size: usize,
    tasks: &mut JoinSet<()>,
) -> std::io::Result<SocketAddr> {
    let first = bind(addr)?;
    let local = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(bind(local)?);
    }
    for socket in sockets {
        tasks.spawn(serve(socket, endpoint.clone(), max_size));
    }
    Ok(local)
}

async fn serve(socket: UdpSocket, endpoint: Arc<Endpoint>, max_size: usize) {
    // One byte more than allowed tells an oversized datagram apart.
    let mut buf = vec![0u8; max_size.max(65_535) + 1];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors surface here on Linux; they are not fatal.
                debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        let data = &buf[..n];
        trace_message("recv", "UDP", peer, data);
        if data.iter().all(|&b| b == b'\r' || b == b'\n') {
            continue; // keep-alive
        }
        let Some(reply) = endpoint.handle(Bytes::copy_from_slice(data), TransportKind::Udp, peer) else {
            continue;
        };
        trace_message("send", "UDP", reply.dest, &reply.bytes);
        if let Err(e) = socket.send_to(&reply.bytes, reply.dest).await {
            debug!(dest = %reply.dest, error = %e, "UDP send failed");
        }
    }
}
