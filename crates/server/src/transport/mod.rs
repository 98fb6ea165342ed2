//! Transports: the thin tokio shell that owns the SIP sockets (RFC 3261 §18).
//!
//! UDP listens with one socket per worker on each address (SO_REUSEPORT, so
//! the kernel spreads flows over the workers while keeping each flow on one
//! socket); TCP accepts connections and frames them by Content-Length. Both
//! hand every message to the core task as an [`Inbound`], and the core
//! sends through [`Outbound`], which reuses the connection a peer opened
//! (RFC 3261 §18.2.2, RFC 5626). TLS and WebSocket will be further modules.

pub mod tcp;
pub mod udp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use bytes::Bytes;
use sip::transaction::{Remote, Transport};
use tokio::sync::mpsc;

use crate::core::SharedCore;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::config::{Config, TransportKind};
use crate::logging::trace_message;

/// A message received from the network.
#[derive(Debug)]
pub struct Inbound {
    /// The bytes of one message.
    pub data: Bytes,
    /// Who sent it, over what.
    pub source: Remote,
}

/// Open TCP connections by peer address: each entry feeds the writer task
/// of one connection.
pub type Connections = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>>;

/// Sends messages for the core.
///
/// The core is built before the listeners, so the UDP sockets are filled in
/// once, as they are bound.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    udp_v4: Arc<OnceLock<Arc<std::net::UdpSocket>>>,
    udp_v6: Arc<OnceLock<Arc<std::net::UdpSocket>>>,
    tcp: Connections,
}

impl Outbound {
    /// Uses `socket` to send UDP to its address family (the first bound
    /// socket of each family is kept).
    fn add_udp(&self, socket: Arc<std::net::UdpSocket>) {
        let ipv4 = socket.local_addr().is_ok_and(|a| a.is_ipv4());
        let slot = if ipv4 { &self.udp_v4 } else { &self.udp_v6 };
        let _ = slot.set(socket);
    }

    /// Sends `bytes` to `dest`; returns false if it could not be handed to
    /// the kernel or a connection (no socket, no connection, queue full).
    pub fn send(&self, dest: Remote, bytes: &Bytes) -> bool {
        match dest.transport {
            Transport::Udp => {
                let socket = if dest.addr.is_ipv4() {
                    &self.udp_v4
                } else {
                    &self.udp_v6
                };
                let Some(socket) = socket.get() else {
                    return false;
                };
                trace_message("send", "UDP", dest.addr, bytes);
                match socket.send_to(bytes, dest.addr) {
                    Ok(_) => true,
                    Err(e) => {
                        debug!(dest = %dest.addr, error = %e, "UDP send failed");
                        false
                    }
                }
            }
            _ => {
                let conn = self
                    .tcp
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&dest.addr).cloned());
                let Some(conn) = conn else {
                    debug!(dest = %dest.addr, "no connection to send on");
                    return false;
                };
                trace_message("send", "TCP", dest.addr, bytes);
                conn.try_send(bytes.clone()).is_ok()
            }
        }
    }
}

/// Binds every configured listener and spawns its tasks into `tasks`.
/// Returns the sender the core uses and the bound addresses. An IPv6
/// wildcard that cannot be bound (IPv6 disabled on the host) is skipped with
/// a warning; any other bind failure is an error naming the address.
pub fn start(
    cfg: &Config,
    outbound: &Outbound,
    core: &Arc<SharedCore>,
    tasks: &mut JoinSet<()>,
    udp_workers: &mut udp::UdpWorkers,
) -> anyhow::Result<Vec<(TransportKind, SocketAddr)>> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut bound = Vec::new();
    for &addr in &cfg.sip.listen {
        for &kind in &cfg.sip.transports {
            let result = match kind {
                TransportKind::Udp => udp::start(
                    addr,
                    workers,
                    core.clone(),
                    cfg.sip.max_message_size,
                    udp_workers,
                )
                .map(|(local, socket)| {
                    outbound.add_udp(socket);
                    local
                }),
                TransportKind::Tcp => {
                    tcp::start(addr, core.clone(), outbound.tcp.clone(), &cfg.sip, tasks)
                }
            };
            match result {
                Ok(local) => {
                    info!(transport = ?kind, %local, "listening");
                    bound.push((kind, local));
                }
                Err(e) if addr.is_ipv6() && addr.ip().is_unspecified() && ipv6_unavailable(&e) => {
                    warn!(transport = ?kind, %addr, error = %e, "IPv6 unavailable, not listening there");
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot listen on {kind:?} {addr}"));
                }
            }
        }
    }
    anyhow::ensure!(!bound.is_empty(), "no SIP listener could be started");
    Ok(bound)
}

fn ipv6_unavailable(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(97) | Some(99)) // EAFNOSUPPORT, EADDRNOTAVAIL
}
