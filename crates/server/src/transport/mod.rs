//! Transports: the thin tokio shell that owns the SIP sockets (RFC 3261 §18).
//!
//! UDP listens with one socket per worker on each address (SO_REUSEPORT, so
//! the kernel spreads flows over the workers while keeping each flow on one
//! socket); TCP accepts connections and frames them by Content-Length. Both
//! hand every message to the core task as an [`Inbound`], and the core
//! sends through [`Outbound`], which reuses the connection a peer opened
//! (RFC 3261 §18.2.2, RFC 5626) and otherwise opens one (§18.1.1; see
//! [`tcp`]). TLS and WebSocket will be further modules.

pub mod tcp;
pub mod udp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use bytes::Bytes;
use sip::transaction::{Remote, TransactionKey, Transport};
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

/// One TCP connection, open or being opened.
#[derive(Debug)]
pub struct Conn {
    /// Feeds the connection's writer (queues while connecting).
    tx: mpsc::Sender<Bytes>,
    /// While connecting: the client transactions whose messages wait on
    /// it, told of a failed connect (`None` once connected or accepted).
    waiting: Option<Vec<TransactionKey>>,
}

/// TCP connections by peer address.
pub type Connections = Arc<Mutex<HashMap<SocketAddr, Conn>>>;

/// Sends messages for the core.
///
/// The core is built before the listeners, so the UDP sockets and the TCP
/// client are filled in once, as the listeners start.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    udp_v4: Arc<OnceLock<Arc<std::net::UdpSocket>>>,
    udp_v6: Arc<OnceLock<Arc<std::net::UdpSocket>>>,
    tcp: Connections,
    /// Opens connections; set when a TCP listener is configured.
    tcp_client: Arc<OnceLock<tcp::Client>>,
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
        self.send_for(dest, bytes, None)
    }

    /// Like [`Outbound::send`], for a message of transaction `key`: when
    /// TCP has no connection to `dest` one is opened and the message
    /// queued; if that connect fails, the core is told the transaction
    /// failed (see [`crate::core::SharedCore::transport_errors`]).
    pub fn send_for(&self, dest: Remote, bytes: &Bytes, key: Option<&TransactionKey>) -> bool {
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
            transport => {
                let Ok(mut map) = self.tcp.lock() else {
                    return false;
                };
                if let Some(conn) = map.get_mut(&dest.addr) {
                    if let (Some(waiting), Some(key)) = (&mut conn.waiting, key) {
                        waiting.push(key.clone());
                    }
                    trace_message("send", "TCP", dest.addr, bytes);
                    return conn.tx.try_send(bytes.clone()).is_ok();
                }
                let client = self
                    .tcp_client
                    .get()
                    .filter(|_| transport == Transport::Tcp);
                let Some(client) = client else {
                    debug!(dest = %dest.addr, "no connection to send on");
                    return false;
                };
                let Some(tx) = client.connect(dest.addr) else {
                    return false;
                };
                trace_message("send", "TCP", dest.addr, bytes);
                let queued = tx.try_send(bytes.clone()).is_ok();
                let waiting = Some(key.into_iter().cloned().collect());
                map.insert(dest.addr, Conn { tx, waiting });
                queued
            }
        }
    }

    /// Whether a TCP connection to `addr` is open or being opened.
    pub fn has_connection(&self, addr: SocketAddr) -> bool {
        self.tcp.lock().is_ok_and(|m| m.contains_key(&addr))
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
    // One for all TCP listeners: they share the connection limit.
    let mut tcp_client: Option<tcp::Client> = None;
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
                    let client = tcp_client.get_or_insert_with(|| {
                        let client = tcp::Client::new(&cfg.sip, core, outbound.tcp.clone());
                        let _ = outbound.tcp_client.set(client.clone());
                        client
                    });
                    tcp::start(addr, client.clone(), tasks)
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

#[cfg(test)]
mod tests;
