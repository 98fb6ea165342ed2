//! SIP over UDP (RFC 3261 §18.1.1, §18.2.2 with RFC 3581 rport).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sip::transaction::{Remote, Transport};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tracing::debug;

use super::Inbound;
use crate::core::SharedCore;
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
/// Returns the bound address (the real port when `addr` asked for 0) and a
/// socket to send from.
pub fn start(
    addr: SocketAddr,
    workers: usize,
    core: Arc<SharedCore>,
    max_size: usize,
    tasks: &mut JoinSet<()>,
) -> std::io::Result<(SocketAddr, Arc<UdpSocket>)> {
    let first = Arc::new(bind(addr)?);
    let local = first.local_addr()?;
    let mut sockets = vec![first.clone()];
    for _ in 1..workers {
        sockets.push(Arc::new(bind(local)?));
    }
    for socket in sockets {
        tasks.spawn(serve(socket, core.clone(), max_size));
    }
    Ok((local, first))
}

async fn serve(socket: Arc<UdpSocket>, core: Arc<SharedCore>, max_size: usize) {
    // One byte more than allowed tells an oversized datagram apart; the
    // parser then refuses it.
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
        core.handle(Inbound {
            data: Bytes::copy_from_slice(data),
            source: Remote::new(Transport::Udp, peer),
        });
    }
}
