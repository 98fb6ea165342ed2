//! SIP over UDP (RFC 3261 §18.1.1, §18.2.2 with RFC 3581 rport).
//!
//! Each address gets one socket per worker thread (SO_REUSEPORT: the
//! kernel spreads flows over the sockets and keeps each flow on one).
//! Workers are plain threads blocked in `recv_from`, as in Kamailio's UDP
//! receivers: under load a datagram is waiting when the worker comes back,
//! so there is no readiness polling and no hand-off between threads per
//! packet, which an async receive loop would add.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use sip::transaction::{Remote, Transport};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::debug;

use super::Inbound;
use crate::core::SharedCore;
use crate::logging::trace_message;

/// How often an idle worker looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    // Large buffers ride out bursts (registration storms, load tests).
    let _ = socket.set_recv_buffer_size(8 << 20);
    let _ = socket.set_send_buffer_size(8 << 20);
    socket.bind(&addr.into())?;
    socket.set_read_timeout(Some(STOP_CHECK))?;
    Ok(socket.into())
}

/// The receive threads of all UDP listeners.
#[derive(Debug, Default)]
pub struct UdpWorkers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpWorkers {
    /// Stops every worker and waits for them (at most one stop-check
    /// interval each).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Binds `workers` sockets on `addr` and starts a receive thread for each.
/// Returns the bound address (the real port when `addr` asked for 0) and a
/// socket to send from.
pub fn start(
    addr: SocketAddr,
    workers: usize,
    core: Arc<SharedCore>,
    max_size: usize,
    running: &mut UdpWorkers,
) -> std::io::Result<(SocketAddr, Arc<UdpSocket>)> {
    let first = Arc::new(bind(addr)?);
    let local = first.local_addr()?;
    let mut sockets = vec![first.clone()];
    for _ in 1..workers {
        sockets.push(Arc::new(bind(local)?));
    }
    for (n, socket) in sockets.into_iter().enumerate() {
        let (core, stop) = (core.clone(), running.stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("sip-udp-{}-{n}", local.port()))
            .spawn(move || serve(&socket, &core, max_size, &stop))?;
        running.threads.push(thread);
    }
    Ok((local, first))
}

fn serve(socket: &UdpSocket, core: &SharedCore, max_size: usize, stop: &AtomicBool) {
    // One byte more than allowed tells an oversized datagram apart; the
    // parser then refuses it.
    let mut buf = vec![0u8; max_size.max(65_535) + 1];
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
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
        let msg = Inbound {
            data: Bytes::copy_from_slice(data),
            source: Remote::new(Transport::Udp, peer),
        };
        // A bug must cost one message, not this socket's receive thread.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| core.handle(msg))).is_err() {
            tracing::error!(%peer, "internal error while handling a UDP message; message dropped");
        }
    }
}
