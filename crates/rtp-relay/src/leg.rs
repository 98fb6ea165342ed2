//! Per-leg relay logic shared by the tokio [`crate::RelaySession`] and the
//! batched [`crate::RelayEngine`]: the sockets of one leg, its sans-IO
//! [`RtpRelay`], RTCP latching and the quality monitor, and the draining of
//! one socket into the other leg. Only the socket type differs between the
//! two drivers ([`DatagramSocket`]).

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Instant;

use media::rtp::{Action, RtpRelay};
use tokio::sync::mpsc;

use crate::pool::PortLease;
use crate::quality::RtcpMonitor;
use crate::session::{Leg, LegSetup, LegStats, SessionEvent, SessionStats};

/// Largest datagram relayed intact; longer ones are truncated by the OS.
/// Media over UDP stays under the path MTU.
pub(crate) const MAX_DATAGRAM: usize = 2048;

/// Datagrams read from one socket per turn before the others get one.
pub(crate) const BATCH: usize = 64;

/// Datagrams received by one call; slot `i` holds a datagram of `len[i]`
/// bytes from `src[i]`.
pub(crate) struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: Vec<usize>,
    srcs: Vec<SocketAddr>,
    /// Where `recvmmsg` writes the sources.
    #[cfg(target_os = "linux")]
    addrs: Vec<libc::sockaddr_storage>,
}

impl RecvBatch {
    /// Room for `capacity` datagrams (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Self {
            bufs: vec![[0; MAX_DATAGRAM]; capacity],
            lens: vec![0; capacity],
            srcs: vec![unspecified; capacity],
            // SAFETY: all-zero is a valid `sockaddr_storage`.
            #[cfg(target_os = "linux")]
            addrs: vec![unsafe { std::mem::zeroed() }; capacity],
        }
    }

    fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// Datagram `i`: its bytes (writable, for the in-place rewrite) and
    /// source.
    fn get_mut(&mut self, i: usize) -> (&mut [u8], SocketAddr) {
        (&mut self.bufs[i][..self.lens[i]], self.srcs[i])
    }
}

/// A non-blocking datagram socket: `WouldBlock` when nothing is queued or
/// the send buffer is full.
pub(crate) trait DatagramSocket {
    /// Receives at least one datagram into `batch`; returns how many and
    /// whether more may be queued (`false`: the socket was drained, no need
    /// to read until `WouldBlock`).
    fn try_recv_many(&self, batch: &mut RecvBatch) -> io::Result<(usize, bool)>;

    fn try_send(&self, buf: &[u8], dst: SocketAddr) -> io::Result<usize>;
}

impl DatagramSocket for tokio::net::UdpSocket {
    fn try_recv_many(&self, batch: &mut RecvBatch) -> io::Result<(usize, bool)> {
        let (n, src) = self.try_recv_from(&mut batch.bufs[0][..])?;
        batch.lens[0] = n;
        batch.srcs[0] = src;
        // Reading on until `WouldBlock` also clears tokio's readiness.
        Ok((1, true))
    }

    fn try_send(&self, buf: &[u8], dst: SocketAddr) -> io::Result<usize> {
        self.try_send_to(buf, dst)
    }
}

impl DatagramSocket for mio::net::UdpSocket {
    #[cfg(target_os = "linux")]
    fn try_recv_many(&self, batch: &mut RecvBatch) -> io::Result<(usize, bool)> {
        use std::os::fd::AsRawFd;
        let n = recvmmsg(self.as_raw_fd(), batch)?;
        // A short batch means the queue was empty when the kernel looked;
        // a datagram arriving since raises a new edge-triggered event.
        Ok((n, n == batch.capacity().min(MAX_MANY)))
    }

    #[cfg(not(target_os = "linux"))]
    fn try_recv_many(&self, batch: &mut RecvBatch) -> io::Result<(usize, bool)> {
        let (n, src) = self.recv_from(&mut batch.bufs[0][..])?;
        batch.lens[0] = n;
        batch.srcs[0] = src;
        Ok((1, true))
    }

    fn try_send(&self, buf: &[u8], dst: SocketAddr) -> io::Result<usize> {
        self.send_to(buf, dst)
    }
}

/// The most datagrams one `recvmmsg` takes (the headers live on the stack).
#[cfg(target_os = "linux")]
const MAX_MANY: usize = 16;

/// `recvmmsg(2)` into `batch`, non-blocking; at least one datagram or an
/// error (`WouldBlock` when none is queued).
#[cfg(target_os = "linux")]
fn recvmmsg(fd: std::os::fd::RawFd, batch: &mut RecvBatch) -> io::Result<usize> {
    let cap = batch.capacity().min(MAX_MANY);
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut iovs: [libc::iovec; MAX_MANY] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX_MANY] = unsafe { std::mem::zeroed() };
    for i in 0..cap {
        iovs[i] = libc::iovec {
            iov_base: batch.bufs[i].as_mut_ptr().cast(),
            iov_len: MAX_DATAGRAM,
        };
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = std::ptr::from_mut(&mut batch.addrs[i]).cast();
        hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdr.msg_iov = std::ptr::from_mut(&mut iovs[i]);
        hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `cap` headers point into `iovs`, the batch's
    // buffers and address slots, all alive and unaliased during the call.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            cap as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    for (i, msg) in msgs.iter().take(n).enumerate() {
        batch.lens[i] = msg.msg_len as usize;
        batch.srcs[i] = sockaddr_to_std(&batch.addrs[i])?;
    }
    Ok(n)
}

#[cfg(target_os = "linux")]
fn sockaddr_to_std(addr: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`,
            // and `sockaddr_storage` is large and aligned enough for it.
            let a = unsafe { &*std::ptr::from_ref(addr).cast::<libc::sockaddr_in>() };
            Ok(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for `sockaddr_in6`.
            let a = unsafe { &*std::ptr::from_ref(addr).cast::<libc::sockaddr_in6>() };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        family => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("datagram from address family {family}"),
        )),
    }
}

/// One leg: its sockets, the relay of what arrives on them, and counters.
#[derive(Debug)]
pub(crate) struct LegIo<S> {
    // Field order matters: sockets close before the lease frees the ports.
    pub(crate) rtp: S,
    pub(crate) rtcp: S,
    pub(crate) relay: RtpRelay,
    /// Source of RTCP on the odd port, latched like RTP.
    pub(crate) rtcp_remote: Option<SocketAddr>,
    /// What the phone reports in RTCP, and SRs relayed to it.
    pub(crate) monitor: RtcpMonitor,
    pub(crate) stats: LegStats,
    _lease: PortLease,
}

impl<S> LegIo<S> {
    /// `media_ssrc`: the SSRC of the RTP the phone receives from the relay;
    /// `wrap` turns the pool's std sockets into the driver's.
    pub(crate) fn new(
        setup: LegSetup,
        media_ssrc: u32,
        now: Instant,
        wrap: impl Fn(StdUdpSocket) -> io::Result<S>,
    ) -> io::Result<Self> {
        let (rtp, rtcp, lease) = setup.ports.into_parts();
        let monitor = RtcpMonitor::new(setup.relay.clock_rate, Some(media_ssrc));
        Ok(Self {
            rtp: wrap(rtp)?,
            rtcp: wrap(rtcp)?,
            relay: RtpRelay::new(setup.relay, now),
            rtcp_remote: None,
            monitor,
            stats: LegStats::default(),
            _lease: lease,
        })
    }

    /// Both legs of a session, each phone receiving what the other leg's
    /// relay sends, under that relay's outgoing SSRC.
    pub(crate) fn pair(
        a: LegSetup,
        b: LegSetup,
        now: Instant,
        wrap: impl Fn(StdUdpSocket) -> io::Result<S>,
    ) -> io::Result<[Self; 2]> {
        let (ssrc_to_b, ssrc_to_a) = (a.relay.out_ssrc, b.relay.out_ssrc);
        Ok([
            Self::new(a, ssrc_to_a, now, &wrap)?,
            Self::new(b, ssrc_to_b, now, &wrap)?,
        ])
    }

    /// Where RTP for this leg goes: the latched address, else the signalled
    /// one.
    pub(crate) fn rtp_destination(&self) -> Option<SocketAddr> {
        self.relay.latched().or_else(|| {
            self.relay
                .config()
                .signalled
                .filter(|s| s.port() != 0 && !s.ip().is_unspecified())
        })
    }

    /// Where odd-port RTCP for this leg goes: its latched RTCP source, else
    /// the RTP destination's port plus one.
    pub(crate) fn rtcp_destination(&self) -> Option<SocketAddr> {
        self.rtcp_remote.or_else(|| {
            self.rtp_destination().and_then(|mut d| {
                d.set_port(d.port().checked_add(1)?);
                Some(d)
            })
        })
    }

    /// Signalling moved the leg's remote address: latch again.
    pub(crate) fn relatch(&mut self, signalled: Option<SocketAddr>, now: Instant) {
        self.relay.relatch(signalled, now);
        self.rtcp_remote = None;
    }

    /// Brings the leg's counters up to date.
    pub(crate) fn refresh_stats(&mut self) -> LegStats {
        self.stats.relay = *self.relay.counters();
        self.stats.latched = self.relay.latched();
        self.stats.quality = self.monitor.quality();
        self.stats
    }
}

/// The earliest deadline of either leg's relay.
pub(crate) fn poll_timeout<S>(legs: &[LegIo<S>; 2]) -> Option<Instant> {
    legs.iter().filter_map(|l| l.relay.poll_timeout()).min()
}

/// Hands the relay events of both legs to `sink`.
pub(crate) fn emit_events<S>(legs: &mut [LegIo<S>; 2], sink: &EventSink) {
    for (i, leg) in legs.iter_mut().enumerate() {
        while let Some(event) = leg.relay.poll_event() {
            sink.send(SessionEvent {
                leg: Leg::from_index(i),
                event,
            });
        }
    }
}

/// Up-to-date counters of both legs.
pub(crate) fn snapshot<S>(legs: &mut [LegIo<S>; 2]) -> SessionStats {
    SessionStats {
        a: legs[0].refresh_stats(),
        b: legs[1].refresh_stats(),
    }
}

/// Whether a drain emptied the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// `WouldBlock` reached: nothing left until the next readiness.
    Empty,
    /// [`BATCH`] datagrams read; more may be queued.
    More,
}

/// Reads up to about [`BATCH`] datagrams from `rx`'s RTP socket and
/// relays them through `tx`'s RTP socket.
pub(crate) fn drain_rtp<S: DatagramSocket>(
    rx: &mut LegIo<S>,
    tx: &mut LegIo<S>,
    batch: &mut RecvBatch,
) -> Drained {
    drain(rx, tx, batch, true)
}

/// Relays up to about [`BATCH`] RTCP datagrams arriving on `rx`'s odd
/// port, from the IP latched for RTP only.
pub(crate) fn drain_rtcp<S: DatagramSocket>(
    rx: &mut LegIo<S>,
    tx: &mut LegIo<S>,
    batch: &mut RecvBatch,
) -> Drained {
    drain(rx, tx, batch, false)
}

fn drain<S: DatagramSocket>(
    rx: &mut LegIo<S>,
    tx: &mut LegIo<S>,
    batch: &mut RecvBatch,
    rtp: bool,
) -> Drained {
    let mut read = 0;
    while read < BATCH {
        let socket = if rtp { &rx.rtp } else { &rx.rtcp };
        let (n, more) = match socket.try_recv_many(batch) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drained::Empty,
            Err(e) => {
                rx.stats.recv_errors += 1;
                tracing::debug!(error = %e, rtp, "RTP/RTCP receive failed");
                read += 1;
                continue;
            }
        };
        for i in 0..n {
            let (data, src) = batch.get_mut(i);
            if rtp {
                relay_rtp(rx, tx, src, data);
            } else {
                relay_rtcp(rx, tx, src, data);
            }
        }
        if !more {
            return Drained::Empty;
        }
        read += n;
    }
    Drained::More
}

/// One datagram from `rx`'s RTP port (RTP, or RTCP muxed on it) to `tx`.
fn relay_rtp<S: DatagramSocket>(
    rx: &mut LegIo<S>,
    tx: &mut LegIo<S>,
    src: SocketAddr,
    data: &mut [u8],
) {
    let now = Instant::now();
    let (len, rtcp) = match rx.relay.handle_packet(src, data, now) {
        Action::Forward(len) => (len, false),
        Action::Rtcp(len) => {
            rx.monitor.on_rtcp_from_phone(&data[..len], now);
            (len, true)
        }
        Action::Drop(reason) => {
            tracing::trace!(?reason, %src, "RTP datagram dropped");
            return;
        }
    };
    let Some(dst) = tx.rtp_destination() else {
        rx.stats.no_destination += 1;
        return;
    };
    match tx.rtp.try_send(&data[..len], dst) {
        Ok(_) if rtcp => {
            rx.stats.rtcp_forwarded += 1;
            tx.monitor.on_rtcp_to_phone(&data[..len], Instant::now());
        }
        Ok(_) => {}
        Err(_) => rx.stats.send_failed += 1,
    }
}

/// One datagram from `rx`'s odd (RTCP) port to `tx`'s.
fn relay_rtcp<S: DatagramSocket>(
    rx: &mut LegIo<S>,
    tx: &mut LegIo<S>,
    src: SocketAddr,
    data: &[u8],
) {
    let accepted = match (rx.rtcp_remote, rx.relay.latched()) {
        (Some(remote), _) => remote == src,
        (None, Some(rtp)) if rtp.ip() == src.ip() => {
            rx.rtcp_remote = Some(src);
            true
        }
        _ => false,
    };
    if !accepted || !media::rtp::is_rtcp(data) {
        rx.stats.rtcp_dropped += 1;
        return;
    }
    rx.monitor.on_rtcp_from_phone(data, Instant::now());
    let Some(dst) = tx.rtcp_destination() else {
        rx.stats.no_destination += 1;
        return;
    };
    match tx.rtcp.try_send(data, dst) {
        Ok(_) => {
            rx.stats.rtcp_forwarded += 1;
            tx.monitor.on_rtcp_to_phone(data, Instant::now());
        }
        Err(_) => rx.stats.send_failed += 1,
    }
}

/// Where a session's events go.
#[derive(Debug)]
pub(crate) enum EventSink {
    /// The session's own channel.
    Own(mpsc::UnboundedSender<SessionEvent>),
    /// A channel shared by many sessions, events tagged with the id.
    Tagged(u64, mpsc::UnboundedSender<(u64, SessionEvent)>),
}

impl EventSink {
    pub(crate) fn send(&self, event: SessionEvent) {
        // The owner may have stopped listening; media goes on.
        let _ = match self {
            EventSink::Own(tx) => tx.send(event).is_ok(),
            EventSink::Tagged(id, tx) => tx.send((*id, event)).is_ok(),
        };
    }
}
