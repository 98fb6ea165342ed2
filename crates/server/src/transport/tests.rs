//! Opening TCP connections from `Outbound::send`.

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::*;
use crate::core::{Core, Directory};

/// An `Outbound` able to open connections, with the core it feeds.
fn outbound() -> (Outbound, Arc<SharedCore>) {
    let cfg = Config::default();
    let out = Outbound::default();
    let core = Core::new(
        &cfg,
        Directory::default(),
        out.clone(),
        false,
        None,
        Instant::now(),
    );
    let core = SharedCore::new(core);
    let client = tcp::Client::new(&cfg.sip, &core, out.tcp.clone());
    out.tcp_client.set(client).unwrap();
    (out, core)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_while_connecting_share_one_connection() {
    let (out, _core) = outbound();
    let phone = TcpListener::bind("127.0.0.1:0").unwrap();
    let dest = Remote::new(Transport::Tcp, phone.local_addr().unwrap());
    // From a thread outside the runtime, as the UDP workers send.
    let sender = out.clone();
    std::thread::spawn(move || {
        assert!(sender.send(dest, &Bytes::from_static(b"first\r\n")));
        assert!(sender.send(dest, &Bytes::from_static(b"second\r\n")));
    })
    .join()
    .unwrap();
    assert!(out.has_connection(dest.addr));
    let got = tokio::task::spawn_blocking(move || {
        let (mut s, _) = phone.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 15 {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        // No second connect.
        phone.set_nonblocking(true).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(phone.accept().is_err(), "a second connection was opened");
        (got, s)
    })
    .await
    .unwrap();
    assert_eq!(got.0, b"first\r\nsecond\r\n");
    // Registered like an accepted connection: later sends reuse it.
    assert!(out.has_connection(dest.addr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connect_is_forgotten() {
    let (out, _core) = outbound();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dest = Remote::new(Transport::Tcp, port);
    assert!(out.send(dest, &Bytes::from_static(b"lost\r\n")));
    let deadline = Instant::now() + Duration::from_secs(3);
    while out.has_connection(dest.addr) {
        assert!(Instant::now() < deadline, "the failed connect was kept");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn without_a_tcp_listener_nothing_is_opened() {
    let out = Outbound::default();
    let dest = Remote::new(Transport::Tcp, "127.0.0.1:9".parse().unwrap());
    assert!(!out.send(dest, &Bytes::from_static(b"x")));
    assert!(!out.has_connection(dest.addr));
}
