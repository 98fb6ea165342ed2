//! In-kernel forwarding of relayed RTP.
//!
//! A user-space relay pays two system calls and two trips through the
//! socket layer per datagram, most of it kernel time (see
//! `docs/architecture.md`). Once a stream is latched, nothing about a
//! packet needs user space: the relay rewrites addresses, SSRC, sequence
//! number and timestamp by fixed offsets. [`KernelForwarder`] loads an eBPF
//! program on TCX ingress (Linux 6.6 or later) that applies exactly those
//! rewrites to packets of the streams installed in its map and sends them
//! on, so they never reach the relay's sockets. Everything else — the first
//! packets before latching, strangers, RTCP, a new SSRC, transcoded
//! streams, IPv6 — is left alone and reaches the user-space relay as
//! before, which stays the authority: it installs an entry when a direction
//! becomes forwardable, replaces it when the offsets change, and removes it
//! when the call ends or signalling moves the stream.
//!
//! Loading needs `CAP_BPF` and `CAP_NET_ADMIN` (root). Without them, or on
//! an older kernel, [`KernelForwarder::new`] fails and the relay simply
//! forwards everything itself. The program, map and attachments live as
//! long as the forwarder: they are file descriptors, closed on drop or when
//! the process dies, so nothing stays behind in the kernel.
//!
//! The program is built by a small assembler ([`asm`]) rather than compiled
//! from C, so building the PBX needs no clang or BPF toolchain.

mod asm;
pub mod program;
mod sys;

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use program::value;

/// Errors of the kernel forwarder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The map could not be created (no `CAP_BPF`, no memory).
    #[error("cannot create the forwarding map: {0}")]
    Map(io::Error),
    /// The kernel refused the program (no `CAP_BPF`, or its verifier).
    #[error("cannot load the forwarding program: {0}")]
    Load(io::Error),
    /// The program could not be attached (no TCX before Linux 6.6, no
    /// `CAP_NET_ADMIN`).
    #[error("cannot attach to interface {interface}: {error}")]
    Attach {
        /// The interface name.
        interface: String,
        /// What the kernel said.
        error: io::Error,
    },
    /// A map operation failed (full map, closed descriptor).
    #[error("forwarding map operation failed: {0}")]
    Operation(io::Error),
    /// More payload type renumberings than an entry holds.
    #[error("{0} payload type renumberings; the kernel path holds {max}", max = value::PT_PAIRS)]
    TooManyPayloadTypes(usize),
}

/// A latched stream, as the program finds it: the phone's address and the
/// PBX port it sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// The latched source.
    pub remote: SocketAddrV4,
    /// The PBX port it sends to.
    pub local_port: u16,
}

impl StreamKey {
    fn bytes(&self) -> [u8; program::KEY_SIZE] {
        let mut k = [0u8; program::KEY_SIZE];
        k[0..4].copy_from_slice(&self.remote.ip().octets());
        k[4..6].copy_from_slice(&self.local_port.to_be_bytes());
        k[6..8].copy_from_slice(&self.remote.port().to_be_bytes());
        k
    }
}

/// How to forward one stream: the rewrites the user-space relay would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The packets to take.
    pub key: StreamKey,
    /// Incoming SSRC the offsets apply to.
    pub in_ssrc: u32,
    /// New source: the PBX's address and port on the other leg.
    pub source: SocketAddrV4,
    /// New destination: the other phone.
    pub destination: SocketAddrV4,
    /// Outgoing SSRC.
    pub out_ssrc: u32,
    /// Added to each sequence number.
    pub sequence_offset: u16,
    /// Added to each timestamp.
    pub timestamp_offset: u32,
    /// Payload type renumbering `(incoming, outgoing)`, at most four.
    pub payload_types: Vec<(u8, u8)>,
    /// The newest outgoing sequence number and timestamp sent so far, so
    /// the program's "newest" starts where the relay's was.
    pub newest: (u16, u32),
}

/// What the program counted for one entry since it was installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ForwardCounters {
    /// Packets forwarded.
    pub packets: u64,
    /// UDP payload octets forwarded.
    pub bytes: u64,
    /// When the last one was forwarded.
    pub last: Option<Instant>,
    /// Newest outgoing sequence number and its timestamp.
    pub newest: (u16, u32),
}

impl ForwardCounters {
    /// Packets and octets counted since `earlier` (a reading of the same
    /// rule).
    pub fn since(&self, earlier: &ForwardCounters) -> (u64, u64) {
        (
            self.packets.saturating_sub(earlier.packets),
            self.bytes.saturating_sub(earlier.bytes),
        )
    }
}

/// The loaded program, its map and its attachments.
#[derive(Debug)]
pub struct KernelForwarder {
    // Links first: detach before the program and map close.
    links: Vec<(String, OwnedFd)>,
    prog: OwnedFd,
    map: OwnedFd,
}

impl KernelForwarder {
    /// Creates the map (room for `capacity` streams) and loads the program;
    /// nothing is attached yet.
    pub fn new(capacity: u32) -> Result<Self, Error> {
        let map = sys::create_hash_map(
            "pbx_rtp_fwd",
            program::KEY_SIZE as u32,
            value::SIZE as u32,
            capacity.max(1),
        )
        .map_err(Error::Map)?;
        use std::os::fd::AsRawFd;
        let insns = program::build(map.as_raw_fd());
        // The project's own licence: the program calls no GPL-only helper.
        let prog =
            sys::load_sched_cls("pbx_rtp_fwd", &insns, "MIT OR Apache-2.0").map_err(Error::Load)?;
        Ok(Self {
            links: Vec::new(),
            prog,
            map,
        })
    }

    /// Attaches to TCX ingress of `interface`.
    pub fn attach(&mut self, interface: &str) -> Result<(), Error> {
        let attach_error = |error| Error::Attach {
            interface: interface.to_owned(),
            error,
        };
        let ifindex = ifindex(interface).map_err(attach_error)?;
        let link = sys::attach_tcx_ingress(&self.prog, ifindex).map_err(attach_error)?;
        self.links.push((interface.to_owned(), link));
        Ok(())
    }

    /// Attaches to every interface that is up and has an IPv4 address
    /// (loopback included); returns their names. Interfaces that appear
    /// later are not covered: their streams stay in user space.
    pub fn attach_all(&mut self) -> Result<Vec<String>, Error> {
        let names = ipv4_interfaces().map_err(|error| Error::Attach {
            interface: "*".into(),
            error,
        })?;
        for name in &names {
            self.attach(name)?;
        }
        Ok(names)
    }

    /// The interfaces attached to.
    pub fn interfaces(&self) -> impl Iterator<Item = &str> {
        self.links.iter().map(|(n, _)| n.as_str())
    }

    /// Installs (or replaces) a stream; its counters start at zero.
    pub fn install(&self, forward: &Forward) -> Result<(), Error> {
        if forward.payload_types.len() > value::PT_PAIRS {
            return Err(Error::TooManyPayloadTypes(forward.payload_types.len()));
        }
        let mut v = [0u8; value::SIZE];
        v[value::SRC_IP..][..4].copy_from_slice(&forward.source.ip().octets());
        v[value::DST_IP..][..4].copy_from_slice(&forward.destination.ip().octets());
        v[value::SRC_PORT..][..2].copy_from_slice(&forward.source.port().to_be_bytes());
        v[value::DST_PORT..][..2].copy_from_slice(&forward.destination.port().to_be_bytes());
        v[value::IN_SSRC..][..4].copy_from_slice(&forward.in_ssrc.to_be_bytes());
        v[value::OUT_SSRC..][..4].copy_from_slice(&forward.out_ssrc.to_be_bytes());
        v[value::TS_OFFSET..][..4].copy_from_slice(&forward.timestamp_offset.to_ne_bytes());
        v[value::SEQ_OFFSET..][..2].copy_from_slice(&forward.sequence_offset.to_ne_bytes());
        if !is_local(*forward.destination.ip()) {
            let ifindex = interface_of(*forward.source.ip()).ok_or_else(|| {
                Error::Operation(io::Error::other(format!(
                    "no interface has the source address {}",
                    forward.source.ip()
                )))
            })?;
            v[value::FLAGS] = program::FLAG_REMOTE;
            v[value::EGRESS_IFINDEX..][..4].copy_from_slice(&ifindex.to_ne_bytes());
        }
        for pair in 0..value::PT_PAIRS {
            let (from, to) = forward
                .payload_types
                .get(pair)
                .copied()
                .unwrap_or((0xff, 0xff));
            v[value::PT_MAP + 2 * pair] = from;
            v[value::PT_MAP + 2 * pair + 1] = to;
        }
        v[value::LAST_SEQ..][..2].copy_from_slice(&forward.newest.0.to_ne_bytes());
        v[value::LAST_TS..][..4].copy_from_slice(&forward.newest.1.to_ne_bytes());
        sys::map_update(&self.map, &forward.key.bytes(), &v).map_err(Error::Operation)
    }

    /// The counters of an installed stream, `None` if it is not installed.
    pub fn counters(&self, key: &StreamKey) -> Result<Option<ForwardCounters>, Error> {
        let mut v = [0u8; value::SIZE];
        if !sys::map_lookup(&self.map, &key.bytes(), &mut v).map_err(Error::Operation)? {
            return Ok(None);
        }
        let u16_at = |o: usize| u16::from_ne_bytes([v[o], v[o + 1]]);
        let u32_at = |o: usize| u32::from_ne_bytes(v[o..o + 4].try_into().expect("4"));
        let u64_at = |o: usize| u64::from_ne_bytes(v[o..o + 8].try_into().expect("8"));
        let last_ns = u64_at(value::LAST_NS);
        Ok(Some(ForwardCounters {
            packets: u64_at(value::PACKETS),
            bytes: u64_at(value::BYTES),
            last: (last_ns != 0).then(|| monotonic_to_instant(last_ns)),
            newest: (u16_at(value::LAST_SEQ), u32_at(value::LAST_TS)),
        }))
    }

    /// Removes a stream, returning its final counters (`None` if it was not
    /// installed). Packets already past the program are not counted.
    pub fn remove(&self, key: &StreamKey) -> Result<Option<ForwardCounters>, Error> {
        let counters = self.counters(key)?;
        sys::map_delete(&self.map, &key.bytes()).map_err(Error::Operation)?;
        Ok(counters)
    }

    /// Runs the program once on `frame` (Ethernet) with no device: the
    /// verdict and the frame as rewritten. For tests.
    pub fn test_run(&self, frame: &[u8]) -> io::Result<(u32, Vec<u8>)> {
        sys::test_run(&self.prog, frame)
    }

    /// Runs the program `repeat` times on `frame` in the kernel and returns
    /// the mean run time in nanoseconds as the kernel measured it (for the
    /// cost figures in `examples/program_cost.rs`).
    pub fn run_time_ns(&self, frame: &[u8], repeat: u32) -> io::Result<u32> {
        sys::test_run_repeat(&self.prog, frame, repeat).map(|(_, _, ns)| ns)
    }
}

/// Converts a `CLOCK_MONOTONIC` reading (what `bpf_ktime_get_ns` returns)
/// to an `Instant` (which is `CLOCK_MONOTONIC` on Linux).
fn monotonic_to_instant(ns: u64) -> Instant {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let now = Instant::now();
    // SAFETY: a valid out-pointer for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let now_ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    now.checked_sub(Duration::from_nanos(now_ns.saturating_sub(ns)))
        .unwrap_or(now)
}

/// Whether `ip` is an address of this host (binding to it succeeds).
pub fn is_local(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddrV4::new(ip, 0)).is_ok()
}

/// The index of the interface that holds `ip`.
fn interface_of(ip: Ipv4Addr) -> Option<u32> {
    let name = ipv4_addresses()
        .ok()?
        .into_iter()
        .find(|(_, a)| *a == ip)?
        .0;
    ifindex(&name).ok()
}

/// The index of interface `name`.
fn ifindex(name: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a NUL-terminated string, read only during the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// Names of the interfaces that are up and have an IPv4 address.
fn ipv4_interfaces() -> io::Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for (name, _) in ipv4_addresses()? {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// (interface name, IPv4 address) of every interface that is up.
fn ipv4_addresses() -> io::Result<Vec<(String, Ipv4Addr)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        let up = ifa.ifa_flags & libc::IFF_UP as u32 != 0;
        // SAFETY: a non-null ifa_addr points to a sockaddr.
        let ipv4 = !ifa.ifa_addr.is_null()
            && i32::from(unsafe { (*ifa.ifa_addr).sa_family }) == libc::AF_INET;
        if up && ipv4 {
            // SAFETY: ifa_name is a NUL-terminated string, and an AF_INET
            // ifa_addr is a sockaddr_in.
            let (name, addr) = unsafe {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                (
                    std::ffi::CStr::from_ptr(ifa.ifa_name)
                        .to_string_lossy()
                        .into_owned(),
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                )
            };
            found.push((name, addr));
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

#[cfg(test)]
mod tests;
