//! Transports: the thin tokio shell that owns the SIP sockets (RFC 3261 §18).
//!
//! UDP listens with one socket per worker on each address (SO_REUSEPORT, so
//! the kernel spreads flows over the workers while keeping each flow on one
//! socket); TCP accepts connections and frames them by Content-Length. Both
//! hand every message to the [`Endpoint`](crate::endpoint::Endpoint) and
//! write its reply. TLS and WebSocket will be further modules here.

pub mod tcp;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::{Config, TransportKind};
use crate::endpoint::Endpoint;

/// Binds every configured listener and spawns its tasks into `tasks`.
/// Returns the bound addresses. An IPv6 wildcard that cannot be bound
/// (IPv6 disabled on the host) is skipped with a warning; any other bind
/// failure is an error naming the address.
pub fn start(
    cfg: &Config,
    endpoint: Arc<Endpoint>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<Vec<(TransportKind, SocketAddr)>> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut bound = Vec::new();
    for &addr in &cfg.sip.listen {
        for &kind in &cfg.sip.transports {
            let result = match kind {
                TransportKind::Udp => udp::start(addr, workers, endpoint.clone(), cfg.sip.max_message_size, tasks),
                TransportKind::Tcp => tcp::start(addr, endpoint.clone(), &cfg.sip, tasks),
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
