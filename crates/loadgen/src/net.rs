//! Thin Linux socket helpers: epoll, non-blocking UDP sockets with kernel
//! receive timestamps (`SO_TIMESTAMPNS`), the real-time clock and the
//! process CPU time. Everything the hot loop does is a direct syscall on a
//! caller-owned buffer: no allocation per packet.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// `CLOCK_REALTIME` in nanoseconds: the clock of `SO_TIMESTAMPNS`, so a
/// send time written into a packet compares with the kernel's receive time.
#[inline]
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// User + system CPU time of this process, in microseconds
/// (`/proc/self/stat` fields 14 and 15).
pub fn process_cpu_us() -> u64 {
    proc_cpu_us("self").unwrap_or(0)
}

/// User + system CPU time of process `pid` ("self" or a number), in µs.
pub fn proc_cpu_us(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces or parentheses: fields start after
    // the last ')'. Field 3 (state) is the first after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((utime + stime) * 1_000_000 / hz)
}

/// Binds a non-blocking UDP socket with kernel receive timestamps on.
pub fn bind_udp(addr: SocketAddr, rcvbuf: Option<usize>) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    let fd = s.as_raw_fd();
    let one: libc::c_int = 1;
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, one)?;
    if let Some(n) = rcvbuf {
        // Best effort: capped by net.core.rmem_max.
        let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, n as libc::c_int);
        let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, n as libc::c_int);
    }
    Ok(s)
}

fn setsockopt(fd: RawFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: pointer and length describe a c_int.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// What one `recv_ts` returned.
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// Source address (IPv4 or IPv6).
    pub from: SocketAddr,
    /// Kernel receive time (CLOCK_REALTIME ns), or the time of the call if
    /// the kernel gave none.
    pub ts_ns: u64,
}

/// Receives one datagram with its kernel timestamp. `Ok(None)` when the
/// socket has nothing (EAGAIN).
pub fn recv_ts(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<Received>> {
    // SAFETY: all structures are zero-initialised plain C data; the iovec
    // and control buffer outlive the call; CMSG_* walk only the control
    // buffer the kernel filled (msg_controllen).
    unsafe {
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let mut cbuf = [0u64; 8]; // 64 bytes, aligned for cmsghdr
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = &mut addr as *mut _ as *mut libc::c_void;
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT);
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                // ICMP port unreachable from an earlier send: not fatal.
                io::ErrorKind::ConnectionRefused => Ok(None),
                _ => Err(e),
            };
        }
        let mut ts_ns = 0;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                ts_ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        if ts_ns == 0 {
            ts_ns = realtime_ns();
        }
        let from = sockaddr_to_std(&addr).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok(Some(Received {
            len: n as usize,
            from,
            ts_ns,
        }))
    }
}

fn sockaddr_to_std(a: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match a.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in.
            let a = unsafe { &*(a as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::from((
                u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6.
            let a = unsafe { &*(a as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::from((
                a.sin6_addr.s6_addr,
                u16::from_be(a.sin6_port),
            )))
        }
        _ => None,
    }
}

/// A level-triggered epoll instance whose events carry a `u64` token.
pub struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
    #[allow(dead_code)]
    no_pwait2: bool,
}

impl Epoll {
    /// A new instance returning at most `capacity` events per wait.
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity],
            no_pwait2: false,
        })
    }

    /// Watches `fd` for input, reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: valid epoll fd and event pointer.
        if unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: valid epoll fd; errors (fd not registered) are ignored.
        unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// Waits up to `timeout` and returns the ready tokens. Uses
    /// `epoll_pwait2` (nanosecond timeout, Linux 5.11+) where glibc has
    /// it, else `epoll_wait` rounded up to milliseconds.
    pub fn wait(&mut self, timeout: std::time::Duration, out: &mut Vec<u64>) -> io::Result<()> {
        out.clear();
        let n = self.wait_raw(timeout);
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        for ev in &self.events[..n as usize] {
            out.push(ev.u64);
        }
        Ok(())
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn wait_raw(&mut self, timeout: std::time::Duration) -> libc::c_int {
        if !self.no_pwait2 {
            let ts = libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            // SAFETY: the buffer holds `len` events; ts is valid.
            let n = unsafe {
                libc::epoll_pwait2(
                    self.fd,
                    self.events.as_mut_ptr(),
                    self.events.len() as libc::c_int,
                    &ts,
                    std::ptr::null(),
                )
            };
            if n >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
                return n;
            }
            self.no_pwait2 = true;
        }
        self.wait_ms(timeout)
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn wait_raw(&mut self, timeout: std::time::Duration) -> libc::c_int {
        self.wait_ms(timeout)
    }

    fn wait_ms(&mut self, timeout: std::time::Duration) -> libc::c_int {
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        // SAFETY: the buffer holds `len` events.
        unsafe {
            libc::epoll_wait(
                self.fd,
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                ms,
            )
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.fd) };
    }
}
