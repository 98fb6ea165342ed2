//! Transport behaviour through real sockets: TCP framing (pipelined and
//! split messages, CRLF keep-alive), rport handling on UDP, garbage and
//! mutated input that must never crash the server, and configuration
//! errors that name file, line and field.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Pbx, options_request, options_status, status_of};

fn read_responses(stream: &mut TcpStream, want: usize) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if String::from_utf8_lossy(&got).matches("SIP/2.0 200").count() >= want {
            break;
        }
    }
    got
}

#[test]
fn tcp_pipelining_split_writes_and_keepalive() {
    let pbx = Pbx::start("", false);
    let mut s = TcpStream::connect(pbx.addr()).unwrap();
    let local = s.local_addr().unwrap();
    let a = options_request(local, "TCP", "a1");
    let b = options_request(local, "TCP", "b2");
    // Two messages in one write, then one split into three writes.
    s.write_all(format!("{a}{b}").as_bytes()).unwrap();
    let c = options_request(local, "TCP", "c3");
    for part in [&c[..10], &c[10..100], &c[100..]] {
        s.write_all(part.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = String::from_utf8(read_responses(&mut s, 3)).unwrap();
    assert_eq!(got.matches("SIP/2.0 200 OK").count(), 3, "{got}");
    for branch in ["a1", "b2", "c3"] {
        assert!(got.contains(&format!("branch=z9hG4bK{branch}")), "{got}");
    }
    // RFC 5626 keep-alive: CRLFCRLF ping gets a CRLF pong.
    s.write_all(b"\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
}

#[test]
fn udp_rport_answers_to_source_port() {
    let pbx = Pbx::start("", false);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let real = sock.local_addr().unwrap();
    // Via claims port 1 (as behind a NAT); rport makes the answer come back
    // to the real source port with rport= and received= filled in.
    let fake = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    let req = options_request(fake, "UDP", "nat1").replace(&format!("pbx@{fake}"), "pbx@127.0.0.1");
    sock.send_to(req.as_bytes(), pbx.addr()).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(status_of(&buf[..n]), Some(200), "{text}");
    assert!(text.contains(&format!("rport={}", real.port())), "{text}");
    assert!(text.contains("received=127.0.0.1"), "{text}");
}

/// xorshift64*: deterministic noise without a dependency.
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn garbage_and_mutations_never_crash() {
    let mut pbx = Pbx::start("max_message_size = 4096\n", false);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let valid = options_request(local, "UDP", "m0").into_bytes();
    let mut rng = Noise(0x9E37_79B9_7F4A_7C15);
    for i in 0..3000u32 {
        let data: Vec<u8> = match i % 3 {
            0 => (0..rng.next() % 1500).map(|_| rng.next() as u8).collect(),
            1 => {
                let mut m = valid.clone();
                for _ in 0..1 + rng.next() % 8 {
                    let at = (rng.next() as usize) % m.len();
                    m[at] = rng.next() as u8;
                }
                m
            }
            _ => {
                let mut m = valid.clone();
                let cut = (rng.next() as usize) % m.len();
                m.truncate(cut);
                m
            }
        };
        let _ = sock.send_to(&data, pbx.addr());
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Oversized datagram (limit is 4096 here).
    let mut big = valid.clone();
    big.extend(std::iter::repeat_n(b'x', 20_000));
    let _ = sock.send_to(&big, pbx.addr());
    // Garbage over TCP too, on a few connections.
    for _ in 0..5 {
        if let Ok(mut s) = TcpStream::connect(pbx.addr()) {
            let junk: Vec<u8> = (0..5000).map(|_| rng.next() as u8).collect();
            let _ = s.write_all(&junk);
        }
    }
    assert_eq!(
        options_status(pbx.addr(), Duration::from_secs(3)),
        Some(200)
    );
    assert!(
        pbx.child.try_wait().unwrap().is_none(),
        "pbx died:\n{}",
        pbx.log()
    );
    assert!(!pbx.log().contains("panicked"), "{}", pbx.log());
}

#[test]
fn config_errors_name_file_line_and_field() {
    let dir = std::env::temp_dir().join(format!("pbx-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[sip]\nlisten = [\"127.0.0.1:5999\"]\n[sip.timers]\nt1_ms = 0\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pbx"))
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:4: sip.timers.t1_ms: 0", path.display())),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_pbx"))
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .env("PBX__SIP__TIMERS__T1_MS", "300")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("t1_ms = 300"));
    std::fs::remove_dir_all(&dir).unwrap();
}
