//! The `bpf(2)` commands the forwarder needs, over a zeroed attribute
//! buffer written at the offsets of `union bpf_attr` (uapi `linux/bpf.h`).
//! Every file descriptor returned is owned, so maps, programs and links
//! are released when their owner drops them (a crashed PBX leaves nothing
//! attached).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::asm::Insn;

const MAP_CREATE: libc::c_long = 0;
const MAP_LOOKUP_ELEM: libc::c_long = 1;
const MAP_UPDATE_ELEM: libc::c_long = 2;
const MAP_DELETE_ELEM: libc::c_long = 3;
const PROG_LOAD: libc::c_long = 5;
const PROG_TEST_RUN: libc::c_long = 10;
const LINK_CREATE: libc::c_long = 28;

const MAP_TYPE_HASH: u32 = 1;
const PROG_TYPE_SCHED_CLS: u32 = 3;
/// `BPF_TCX_INGRESS` (Linux 6.6).
const ATTACH_TCX_INGRESS: u32 = 46;

/// `union bpf_attr`, large enough for every command used, zero beyond the
/// fields written (the kernel checks that).
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Attr([0; 128])
    }

    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn ptr<T>(&mut self, off: usize, p: *const T) -> &mut Self {
        self.u64(off, p as usize as u64)
    }

    fn read_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().expect("4 octets"))
    }

    fn call(&mut self, cmd: libc::c_long) -> io::Result<libc::c_long> {
        // SAFETY: the buffer is a valid `union bpf_attr` prefix of the size
        // passed; the pointers written into it point to live buffers of the
        // sizes written next to them, borrowed for the duration of the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                self.0.as_mut_ptr(),
                self.0.len() as libc::c_uint,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    fn call_fd(&mut self, cmd: libc::c_long) -> io::Result<OwnedFd> {
        let fd = self.call(cmd)?;
        // SAFETY: on success these commands return a new file descriptor
        // that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// Creates a hash map of `max_entries` fixed-size keys and values.
pub fn create_hash_map(
    name: &str,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
) -> io::Result<OwnedFd> {
    let mut attr = Attr::new();
    attr.u32(0, MAP_TYPE_HASH)
        .u32(4, key_size)
        .u32(8, value_size)
        .u32(12, max_entries);
    write_name(&mut attr, 28, name);
    attr.call_fd(MAP_CREATE)
}

/// Inserts or replaces `key` → `value`.
pub fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = Attr::new();
    attr.u32(0, map.as_raw_fd() as u32)
        .ptr(8, key.as_ptr())
        .ptr(16, value.as_ptr());
    attr.call(MAP_UPDATE_ELEM).map(drop)
}

/// Reads `key`'s value into `value`; false if the key is absent.
pub fn map_lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = Attr::new();
    attr.u32(0, map.as_raw_fd() as u32)
        .ptr(8, key.as_ptr())
        .ptr(16, value.as_mut_ptr());
    match attr.call(MAP_LOOKUP_ELEM) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes `key`; false if it was absent.
pub fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<bool> {
    let mut attr = Attr::new();
    attr.u32(0, map.as_raw_fd() as u32).ptr(8, key.as_ptr());
    match attr.call(MAP_DELETE_ELEM) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Loads a traffic-control classifier; on a verifier rejection the error
/// carries the verifier's log.
pub fn load_sched_cls(name: &str, insns: &[Insn], license: &str) -> io::Result<OwnedFd> {
    let license = std::ffi::CString::new(license).expect("licence without NUL");
    let mut log = vec![0u8; 64 * 1024];
    let load = |log_level: u32, log: &mut [u8]| {
        let mut attr = Attr::new();
        attr.u32(0, PROG_TYPE_SCHED_CLS)
            .u32(4, insns.len() as u32)
            .ptr(8, insns.as_ptr())
            .ptr(16, license.as_ptr())
            .u32(24, log_level)
            .u32(28, if log_level > 0 { log.len() as u32 } else { 0 })
            .ptr(
                32,
                if log_level > 0 {
                    log.as_ptr()
                } else {
                    std::ptr::null()
                },
            );
        write_name(&mut attr, 48, name);
        attr.call_fd(PROG_LOAD)
    };
    match load(0, &mut log) {
        Ok(fd) => Ok(fd),
        // Load again with the log on, to say why.
        Err(first)
            if first.raw_os_error() == Some(libc::EACCES)
                || first.raw_os_error() == Some(libc::EINVAL) =>
        {
            let err = load(1, &mut log).err().unwrap_or(first);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: String = text
                .lines()
                .rev()
                .take(12)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            Err(io::Error::new(
                err.kind(),
                format!("{err}; verifier: {tail}"),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Attaches `prog` to TCX ingress of interface `ifindex`; detached when
/// the returned link is closed.
pub fn attach_tcx_ingress(prog: &OwnedFd, ifindex: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new();
    attr.u32(0, prog.as_raw_fd() as u32)
        .u32(4, ifindex)
        .u32(8, ATTACH_TCX_INGRESS);
    attr.call_fd(LINK_CREATE)
}

/// Runs `prog` once on `packet` (an Ethernet frame) without any device:
/// returns the verdict and the packet as the program left it.
pub fn test_run(prog: &OwnedFd, packet: &[u8]) -> io::Result<(u32, Vec<u8>)> {
    let (verdict, out, _) = test_run_repeat(prog, packet, 1)?;
    Ok((verdict, out))
}

/// Like [`test_run`], `repeat` times in the kernel; also returns the mean
/// run time in nanoseconds as the kernel measured it.
pub fn test_run_repeat(
    prog: &OwnedFd,
    packet: &[u8],
    repeat: u32,
) -> io::Result<(u32, Vec<u8>, u32)> {
    let mut out = vec![0u8; packet.len() + 256];
    let mut attr = Attr::new();
    attr.u32(0, prog.as_raw_fd() as u32)
        .u32(8, packet.len() as u32)
        .u32(12, out.len() as u32)
        .ptr(16, packet.as_ptr())
        .ptr(24, out.as_mut_ptr())
        .u32(32, repeat.max(1));
    attr.call(PROG_TEST_RUN)?;
    out.truncate(attr.read_u32(12) as usize);
    Ok((attr.read_u32(4), out, attr.read_u32(36)))
}

fn write_name(attr: &mut Attr, off: usize, name: &str) {
    // BPF object names: up to 15 characters of [A-Za-z0-9_.].
    for (i, b) in name.bytes().take(15).enumerate() {
        attr.0[off + i] = b;
    }
}
