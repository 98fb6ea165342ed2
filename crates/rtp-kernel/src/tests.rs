//! The program on crafted frames, through `BPF_PROG_TEST_RUN`: no device,
//! no sockets, but the real kernel verifier, helpers and map.
//!
//! Needs root (`CAP_BPF`); CI runs as root, where they must pass. Other
//! users skip them (said on stderr), as does `PBX_SKIP_BPF_TESTS=1`.

use super::*;
use program::TCX_REDIRECT;

const NEXT: u32 = program::TCX_NEXT as u32;

fn forwarder() -> Option<KernelForwarder> {
    if !bpf_tests_apply() {
        return None;
    }
    Some(KernelForwarder::new(64).expect("load the forwarding program (as root)"))
}

/// Root runs these (and then they must pass); others skip them loudly, as
/// does `PBX_SKIP_BPF_TESTS=1`.
fn bpf_tests_apply() -> bool {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let apply = root && std::env::var_os("PBX_SKIP_BPF_TESTS").is_none();
    if !apply {
        eprintln!("SKIPPED: kernel forwarding tests need root (CAP_BPF)");
    }
    apply
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        acc += u32::from(word);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// True if the frame's IPv4 header and UDP checksums verify.
fn checksums_ok(frame: &[u8]) -> bool {
    let ip = &frame[14..34];
    let udp = &frame[34..];
    let ip_ok = fold(sum16(ip, 0)) == 0;
    let udp_csum = u16::from_be_bytes([udp[6], udp[7]]);
    if udp_csum == 0 {
        return ip_ok;
    }
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip[12..20]);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    ip_ok && fold(sum16(udp, sum16(&pseudo, 0))) == 0
}

struct Rtp {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    marker_pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    udp_checksum: bool,
}

impl Default for Rtp {
    fn default() -> Self {
        Rtp {
            src: "127.0.0.1:40000".parse().unwrap(),
            dst: "127.0.0.1:10000".parse().unwrap(),
            marker_pt: 0,
            seq: 65535,
            ts: 0xffff_fff0,
            ssrc: 0x1122_3344,
            udp_checksum: true,
        }
    }
}

impl Rtp {
    fn frame(&self) -> Vec<u8> {
        let payload: Vec<u8> = (0..160u32).map(|i| (i * 7) as u8).collect();
        let mut rtp = vec![0x80, self.marker_pt];
        rtp.extend_from_slice(&self.seq.to_be_bytes());
        rtp.extend_from_slice(&self.ts.to_be_bytes());
        rtp.extend_from_slice(&self.ssrc.to_be_bytes());
        rtp.extend_from_slice(&payload);
        let udp_len = 8 + rtp.len();
        let mut ip = vec![0x45, 0xb8];
        ip.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, 17, 0, 0]);
        ip.extend_from_slice(&self.src.ip().octets());
        ip.extend_from_slice(&self.dst.ip().octets());
        let ip_csum = fold(sum16(&ip, 0));
        ip[10..12].copy_from_slice(&ip_csum.to_be_bytes());
        let mut udp = Vec::new();
        udp.extend_from_slice(&self.src.port().to_be_bytes());
        udp.extend_from_slice(&self.dst.port().to_be_bytes());
        udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&rtp);
        if self.udp_checksum {
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&ip[12..20]);
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
            let c = fold(sum16(&udp, sum16(&pseudo, 0)));
            udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
        }
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&udp);
        frame
    }
}

fn forward(dst: &str) -> Forward {
    Forward {
        key: StreamKey {
            remote: "127.0.0.1:40000".parse().unwrap(),
            local_port: 10000,
        },
        in_ssrc: 0x1122_3344,
        source: "127.0.0.1:10002".parse().unwrap(),
        destination: dst.parse().unwrap(),
        out_ssrc: 0xcafe_f00d,
        sequence_offset: 10,
        timestamp_offset: 0x100,
        payload_types: vec![(101, 96)],
        newest: (0, 0),
    }
}

fn field16(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

fn field32(frame: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(frame[at..at + 4].try_into().unwrap())
}

#[test]
fn unknown_streams_go_to_user_space_untouched() {
    let Some(fwd) = forwarder() else { return };
    let frame = Rtp::default().frame();
    let (verdict, out) = fwd.test_run(&frame).unwrap();
    assert_eq!(verdict, NEXT);
    assert_eq!(out, frame);
}

#[test]
fn a_latched_stream_is_rewritten_like_the_relay_does() {
    let Some(fwd) = forwarder() else { return };
    fwd.install(&forward("127.0.0.1:5000")).unwrap();
    let frame = Rtp::default().frame();
    let (verdict, out) = fwd.test_run(&frame).unwrap();
    assert_eq!(verdict, TCX_REDIRECT);
    assert_eq!(out.len(), frame.len());
    // Addresses and ports: from the PBX's other leg to the other phone.
    assert_eq!(&out[26..30], &[127, 0, 0, 1]);
    assert_eq!(&out[30..34], &[127, 0, 0, 1]);
    assert_eq!(field16(&out, 34), 10002);
    assert_eq!(field16(&out, 36), 5000);
    // Sequence and timestamp wrap; SSRC replaced; payload untouched.
    assert_eq!(field16(&out, 44), 9);
    assert_eq!(field32(&out, 46), 0xf0);
    assert_eq!(field32(&out, 50), 0xcafe_f00d);
    assert_eq!(&out[54..], &frame[54..]);
    assert_eq!(out[15], 0xb8, "TOS kept");
    assert_eq!(
        &out[..14],
        &frame[..14],
        "loopback: Ethernet header as it was"
    );
    assert!(checksums_ok(&frame));
    assert!(checksums_ok(&out), "checksums fixed");

    let c = fwd
        .counters(&forward("127.0.0.1:5000").key)
        .unwrap()
        .unwrap();
    assert_eq!(c.packets, 1);
    assert_eq!(c.bytes, 172);
    assert_eq!(c.newest, (9, 0xf0));
    let age = c.last.expect("time noted").elapsed();
    assert!(age < Duration::from_secs(5), "{age:?}");
}

#[test]
fn payload_types_are_renumbered_and_the_marker_kept() {
    let Some(fwd) = forwarder() else { return };
    fwd.install(&forward("127.0.0.1:5000")).unwrap();
    let frame = Rtp {
        marker_pt: 0x80 | 101,
        ..Rtp::default()
    }
    .frame();
    let (verdict, out) = fwd.test_run(&frame).unwrap();
    assert_eq!(verdict, TCX_REDIRECT);
    assert_eq!(out[43], 0x80 | 96);
    assert!(checksums_ok(&out));
    // A payload type without a pair passes as it is.
    let frame = Rtp {
        marker_pt: 8,
        ..Rtp::default()
    }
    .frame();
    let (_, out) = fwd.test_run(&frame).unwrap();
    assert_eq!(out[43], 8);
}

#[test]
fn a_new_ssrc_rtcp_and_strangers_go_to_user_space() {
    let Some(fwd) = forwarder() else { return };
    fwd.install(&forward("127.0.0.1:5000")).unwrap();
    for rtp in [
        Rtp {
            ssrc: 0x5555_5555,
            ..Rtp::default()
        },
        // RTCP multiplexed on the port (SR = 200 sits at PT 72 + marker).
        Rtp {
            marker_pt: 200,
            ..Rtp::default()
        },
        Rtp {
            src: "127.0.0.1:40001".parse().unwrap(),
            ..Rtp::default()
        },
        Rtp {
            dst: "127.0.0.1:10004".parse().unwrap(),
            ..Rtp::default()
        },
    ] {
        let frame = rtp.frame();
        let (verdict, out) = fwd.test_run(&frame).unwrap();
        assert_eq!(verdict, NEXT);
        assert_eq!(out, frame);
    }
    let c = fwd
        .counters(&forward("127.0.0.1:5000").key)
        .unwrap()
        .unwrap();
    assert_eq!(c.packets, 0);
}

#[test]
fn a_zero_udp_checksum_stays_zero() {
    let Some(fwd) = forwarder() else { return };
    fwd.install(&forward("127.0.0.1:5000")).unwrap();
    let frame = Rtp {
        udp_checksum: false,
        ..Rtp::default()
    }
    .frame();
    let (verdict, out) = fwd.test_run(&frame).unwrap();
    assert_eq!(verdict, TCX_REDIRECT);
    assert_eq!(field16(&out, 40), 0);
    assert!(checksums_ok(&out));
}

#[test]
fn short_and_odd_frames_are_left_alone() {
    let Some(fwd) = forwarder() else { return };
    fwd.install(&forward("127.0.0.1:5000")).unwrap();
    let frame = Rtp::default().frame();
    // Cut inside the RTP header; IPv4 options; a fragment.
    let short = frame[..50].to_vec();
    let mut options = frame.clone();
    options[14] = 0x46;
    let mut fragment = frame.clone();
    fragment[20] |= 0x20;
    for f in [short, options, fragment] {
        let (verdict, out) = fwd.test_run(&f).unwrap();
        assert_eq!(verdict, NEXT);
        assert_eq!(out, f);
    }
}

#[test]
fn removal_returns_the_counters_and_stops_forwarding() {
    let Some(fwd) = forwarder() else { return };
    let entry = forward("127.0.0.1:5000");
    fwd.install(&entry).unwrap();
    let frame = Rtp::default().frame();
    for _ in 0..3 {
        fwd.test_run(&frame).unwrap();
    }
    let c = fwd.remove(&entry.key).unwrap().unwrap();
    assert_eq!(c.packets, 3);
    assert_eq!(fwd.remove(&entry.key).unwrap(), None);
    let (verdict, _) = fwd.test_run(&frame).unwrap();
    assert_eq!(verdict, NEXT);
}

/// The interface and gateway of the default route, if there is one.
fn default_gateway() -> Option<(String, Ipv4Addr)> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    routes.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
        let gw = u32::from_str_radix(f.get(2)?, 16).ok()?;
        (dest == 0 && gw != 0).then(|| (f[0].to_string(), Ipv4Addr::from(u32::from_be(gw))))
    })
}

#[test]
fn a_destination_off_this_host_leaves_the_source_addresss_interface() {
    let Some(fwd) = forwarder() else { return };
    let Some((iface, gateway)) = default_gateway() else {
        eprintln!("SKIPPED: no default route to test the off-host path with");
        return;
    };
    // The source the relay would use towards the gateway, on `iface`.
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    probe.connect((gateway, 9)).unwrap();
    let std::net::SocketAddr::V4(local) = probe.local_addr().unwrap() else {
        unreachable!("IPv4 probe")
    };
    assert_eq!(interface_of(*local.ip()), Some(ifindex(&iface).unwrap()));
    fwd.install(&Forward {
        source: SocketAddrV4::new(*local.ip(), 10002),
        ..forward(&format!("{gateway}:5000"))
    })
    .unwrap();
    let frame = Rtp::default().frame();
    let (verdict, out) = fwd.test_run(&frame).unwrap();
    // Redirected (the kernel routes it and writes the next hop's MAC
    // after the program, which the test runner does not do).
    assert_eq!(verdict, TCX_REDIRECT);
    assert_eq!(&out[26..30], &local.ip().octets());
    assert_eq!(&out[30..34], &gateway.octets());
    assert_eq!(field16(&out, 34), 10002);
    assert!(checksums_ok(&out));
    // A source address no interface holds cannot be installed.
    let err = fwd.install(&Forward {
        source: "198.51.100.77:10002".parse().unwrap(),
        ..forward(&format!("{gateway}:5000"))
    });
    assert!(err.is_err(), "{err:?}");
}

mod random_frames {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Whatever arrives, the program either leaves the frame exactly as
        /// it was for user space or forwards it with the payload intact and
        /// checksums as valid as they were.
        #[test]
        fn any_frame_is_left_alone_or_forwarded_intact(
            cut in 0usize..240,
            flips in proptest::collection::vec((0usize..60, any::<u8>()), 0..4),
            keep_checksum in any::<bool>(),
        ) {
            thread_local! {
                static FWD: Option<KernelForwarder> = forwarder().inspect(|f| {
                    f.install(&forward("127.0.0.1:5000")).unwrap();
                });
            }
            let mut frame = Rtp { udp_checksum: keep_checksum, ..Rtp::default() }.frame();
            for (at, value) in flips {
                frame[at] ^= value;
            }
            // The kernel test runner refuses frames without a full IPv4 header.
            frame.truncate(cut.max(34).min(frame.len()));
            let valid_before = frame.len() >= 54 && checksums_ok(&frame);
            FWD.with(|fwd| {
                let Some(fwd) = fwd else { return };
                let (verdict, out) = fwd.test_run(&frame).unwrap();
                match verdict {
                    NEXT => assert_eq!(out, frame),
                    TCX_REDIRECT => {
                        assert_eq!(out.len(), frame.len());
                        assert_eq!(&out[54..], &frame[54..], "payload untouched");
                        assert_eq!(field16(&out, 36), 5000);
                        if valid_before {
                            assert!(checksums_ok(&out));
                        }
                    }
                    other => panic!("verdict {other}"),
                }
            });
        }
    }
}
