//! What the forwarding program costs per packet, as the kernel's test
//! runner measures it (mean over a million runs, JIT-compiled, no device):
//! a packet of an installed stream (rewritten and redirected), and one the
//! program passes on (a miss: the cost every other packet on an attached
//! interface pays). Needs root.
//!
//!     cargo run --release -p rtp-kernel --example program_cost

use std::net::SocketAddrV4;

use rtp_kernel::{Forward, KernelForwarder, StreamKey};

fn frame(src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    let mut rtp = vec![0x80, 0, 0x12, 0x34, 0, 0, 0x10, 0, 0x11, 0x22, 0x33, 0x44];
    rtp.extend_from_slice(&[0xd5; 160]);
    let udp_len = (8 + rtp.len()) as u16;
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&(20 + udp_len).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src.ip().octets());
    f.extend_from_slice(&dst.ip().octets());
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34]);
    f.extend_from_slice(&rtp);
    f
}

fn main() {
    let fwd = KernelForwarder::new(1024).expect("load the program (as root)");
    let phone: SocketAddrV4 = "127.0.0.1:40000".parse().unwrap();
    fwd.install(&Forward {
        key: StreamKey {
            remote: phone,
            local_port: 10000,
        },
        in_ssrc: 0x1122_3344,
        source: "127.0.0.1:10002".parse().unwrap(),
        destination: "127.0.0.1:5000".parse().unwrap(),
        out_ssrc: 7,
        sequence_offset: 3,
        timestamp_offset: 160,
        payload_types: Vec::new(),
        newest: (0, 0),
    })
    .unwrap();
    let hit = frame(phone, "127.0.0.1:10000".parse().unwrap());
    let miss = frame(phone, "127.0.0.1:10004".parse().unwrap());
    for (name, f) in [("forwarded", &hit), ("passed on (miss)", &miss)] {
        let ns = fwd.run_time_ns(f, 1_000_000).expect("test run");
        println!("{name}: {ns} ns per packet");
    }
}
