//! RTP/RTCP port pairs from a configured range.
//!
//! RTP takes an even port and RTCP the next odd one (RFC 3550 section 11).
//! Released pairs go to the back of the free list, so a port is reused as
//! late as possible and stray packets of an old call rarely reach a new one.
//! A pair whose ports fail to bind (in use by another program) is skipped
//! and stays in the list for later.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};

use socket2::{Domain, Protocol, Socket, Type};

use crate::Error;

/// An inclusive range of UDP ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port, inclusive.
    pub end: u16,
}

impl Default for PortRange {
    fn default() -> Self {
        Self {
            start: 10000,
            end: 20000,
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl PortRange {
    /// The even RTP ports whose odd RTCP port is also in the range.
    fn rtp_ports(self) -> impl Iterator<Item = u16> {
        let first = u32::from(self.start).next_multiple_of(2).max(2);
        let end = u32::from(self.end);
        (first..end)
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
    }
}

#[derive(Debug)]
struct Shared {
    ip: IpAddr,
    range: PortRange,
    free: Mutex<VecDeque<u16>>,
}

impl Shared {
    fn free(&self) -> MutexGuard<'_, VecDeque<u16>> {
        // The list stays consistent even if a holder panicked.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Allocates RTP/RTCP port pairs on one local address; cheap to clone.
#[derive(Debug, Clone)]
pub struct PortPool {
    shared: Arc<Shared>,
}

impl PortPool {
    /// A pool over `range` on `ip` (IPv4 or IPv6).
    pub fn new(ip: IpAddr, range: PortRange) -> Result<Self, Error> {
        let free: VecDeque<u16> = range.rtp_ports().collect();
        if free.is_empty() {
            return Err(Error::EmptyRange(range));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                ip,
                range,
                free: Mutex::new(free),
            }),
        })
    }

    /// Binds the next free pair, skipping pairs that fail to bind.
    pub fn allocate(&self) -> Result<PortPair, Error> {
        let mut free = self.shared.free();
        for _ in 0..free.len() {
            let Some(port) = free.pop_front() else { break };
            match bind_pair(self.shared.ip, port) {
                Ok((rtp, rtcp)) => {
                    return Ok(PortPair {
                        rtp,
                        rtcp,
                        lease: PortLease {
                            port,
                            shared: Arc::clone(&self.shared),
                        },
                    });
                }
                Err(e) => {
                    tracing::debug!(ip = %self.shared.ip, port, error = %e, "RTP port pair busy, skipped");
                    free.push_back(port);
                }
            }
        }
        Err(Error::Exhausted {
            ip: self.shared.ip,
            range: self.shared.range,
        })
    }

    /// Pairs currently free (not allocated; some may be busy elsewhere).
    pub fn available(&self) -> usize {
        self.shared.free().len()
    }

    /// Pairs the range holds.
    pub fn capacity(&self) -> usize {
        self.shared.range.rtp_ports().count()
    }

    /// The local address the pool binds on.
    pub fn ip(&self) -> IpAddr {
        self.shared.ip
    }
}

fn bind_one(ip: IpAddr, port: u16) -> io::Result<UdpSocket> {
    let addr = SocketAddr::new(ip, port);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn bind_pair(ip: IpAddr, port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    let rtp = bind_one(ip, port)?;
    let rtcp = bind_one(ip, port + 1)?;
    Ok((rtp, rtcp))
}

/// A bound RTP/RTCP pair; dropping it returns the ports to the pool.
#[derive(Debug)]
pub struct PortPair {
    // Field order matters: the sockets close before the lease frees the
    // ports.
    rtp: UdpSocket,
    rtcp: UdpSocket,
    lease: PortLease,
}

impl PortPair {
    /// The RTP socket (non-blocking).
    pub fn rtp(&self) -> &UdpSocket {
        &self.rtp
    }

    /// The RTCP socket (non-blocking).
    pub fn rtcp(&self) -> &UdpSocket {
        &self.rtcp
    }

    /// The RTP port (even); RTCP is the next one.
    pub fn port(&self) -> u16 {
        self.lease.port
    }

    /// The RTP socket address, for SDP.
    pub fn rtp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.lease.shared.ip, self.lease.port)
    }

    /// Splits into the sockets and the lease; keep the lease until the
    /// sockets are closed.
    pub fn into_parts(self) -> (UdpSocket, UdpSocket, PortLease) {
        (self.rtp, self.rtcp, self.lease)
    }
}

/// The claim on a pair of ports; dropping it returns them to the pool.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    shared: Arc<Shared>,
}

impl PortLease {
    /// The RTP port (even).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.shared.free().push_back(self.port);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn range_yields_even_pairs_inside() {
        let r = PortRange {
            start: 10001,
            end: 10006,
        };
        assert_eq!(r.rtp_ports().collect::<Vec<_>>(), vec![10002, 10004]);
        let r = PortRange {
            start: 65534,
            end: 65535,
        };
        assert_eq!(r.rtp_ports().collect::<Vec<_>>(), vec![65534]);
        let r = PortRange {
            start: 10000,
            end: 10000,
        };
        assert!(matches!(
            PortPool::new(LOCALHOST, r),
            Err(Error::EmptyRange(_))
        ));
    }

    #[test]
    fn default_range() {
        let pool = PortPool::new(LOCALHOST, PortRange::default()).unwrap();
        assert_eq!(pool.capacity(), 5000);
        assert_eq!(pool.available(), 5000);
    }

    #[test]
    fn allocate_release_does_not_leak() {
        let range = PortRange {
            start: 21000,
            end: 21099,
        };
        let pool = PortPool::new(LOCALHOST, range).unwrap();
        let full = pool.available();
        assert_eq!(full, 50);
        for _ in 0..10_000 {
            let pair = pool.allocate().unwrap();
            assert_eq!(pair.port() % 2, 0);
            assert_eq!(pair.rtcp().local_addr().unwrap().port(), pair.port() + 1);
            drop(pair);
        }
        // Several at once, then released.
        let held: Vec<_> = (0..10).map(|_| pool.allocate().unwrap()).collect();
        assert_eq!(pool.available(), full - 10);
        drop(held);
        assert_eq!(pool.available(), full);
    }

    #[test]
    fn exhaustion_on_tiny_range() {
        let range = PortRange {
            start: 21200,
            end: 21203,
        };
        let pool = PortPool::new(LOCALHOST, range).unwrap();
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_ne!(a.port(), b.port());
        assert!(matches!(pool.allocate(), Err(Error::Exhausted { .. })));
        drop(a);
        let c = pool.allocate().unwrap();
        assert_eq!(pool.available(), 0);
        drop((b, c));
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn port_in_use_is_skipped() {
        // Occupy the RTCP port of the first pair.
        let blocker = UdpSocket::bind((LOCALHOST, 21301)).unwrap();
        let range = PortRange {
            start: 21300,
            end: 21303,
        };
        let pool = PortPool::new(LOCALHOST, range).unwrap();
        let pair = pool.allocate().unwrap();
        assert_eq!(pair.port(), 21302);
        assert!(matches!(pool.allocate(), Err(Error::Exhausted { .. })));
        drop(blocker);
        let again = pool.allocate().unwrap();
        assert_eq!(again.port(), 21300);
        drop((pair, again));
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn ipv6_loopback() {
        let Ok(probe) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 on this host
        };
        drop(probe);
        let range = PortRange {
            start: 21400,
            end: 21403,
        };
        let pool = PortPool::new("::1".parse().unwrap(), range).unwrap();
        let pair = pool.allocate().unwrap();
        assert!(pair.rtp_addr().is_ipv6());
        assert!(pair.rtp().local_addr().unwrap().is_ipv6());
    }
}
