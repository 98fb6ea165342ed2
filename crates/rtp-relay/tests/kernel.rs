//! Relay sessions handing latched streams to the kernel forwarder: two
//! "phones" (UDP sockets on 127.0.0.1) talk through a session whose
//! forwarder is attached to `lo`. The user-space relay latches, then the
//! kernel forwards; these tests check the phones cannot tell the
//! difference, and that counters, timeouts, source changes and teardown
//! still behave.
//!
//! Needs root (`CAP_BPF`, `CAP_NET_ADMIN`) and Linux 6.6+; CI runs as root,
//! where they must pass. Other users skip them (said on stderr), as does
//! `PBX_SKIP_BPF_TESTS=1`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use media::rtp::{RelayConfig, RelayEvent, RtpHeader, RtpPacket};
use rtp_relay::{
    KernelForwarder, LegSetup, PortPool, PortRange, RelaySession, SessionEvent, SessionStats,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(3);
const TO_B: u32 = 0xA0A0_0001;
const TO_A: u32 = 0xB0B0_0002;

fn forwarder() -> Option<Arc<KernelForwarder>> {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root || std::env::var_os("PBX_SKIP_BPF_TESTS").is_some() {
        eprintln!("SKIPPED: kernel forwarding tests need root (CAP_BPF, CAP_NET_ADMIN)");
        return None;
    }
    let mut k = KernelForwarder::new(64).expect("load the forwarding program (run as root)");
    k.attach("lo").expect("attach to lo (Linux 6.6+)");
    Some(Arc::new(k))
}

struct Call {
    _pool: PortPool,
    session: RelaySession,
    events: UnboundedReceiver<SessionEvent>,
    a: UdpSocket,
    b: UdpSocket,
    relay_a: SocketAddr,
    relay_b: SocketAddr,
}

async fn call(start: u16, kernel: Arc<KernelForwarder>, media_timeout: Option<Duration>) -> Call {
    let pool = PortPool::new(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        PortRange {
            start,
            end: start + 9,
        },
    )
    .unwrap();
    let a = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let b = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let setup = |phone: &UdpSocket, out_ssrc| LegSetup {
        ports: pool.allocate().unwrap(),
        relay: RelayConfig {
            signalled: Some(phone.local_addr().unwrap()),
            media_timeout,
            out_ssrc,
            initial_sequence: 65_500,
            initial_timestamp: 1_000,
            ..RelayConfig::default()
        },
        transform: None,
    };
    let (leg_a, leg_b) = (setup(&a, TO_B), setup(&b, TO_A));
    let port = |l: &LegSetup| SocketAddr::new(LOCALHOST, l.ports.rtp_addr().port());
    let (relay_a, relay_b) = (port(&leg_a), port(&leg_b));
    let (session, events) = RelaySession::start_offloaded(leg_a, leg_b, Some(kernel)).unwrap();
    Call {
        _pool: pool,
        session,
        events,
        a,
        b,
        relay_a,
        relay_b,
    }
}

fn rtp(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
    let mut out = vec![0; 12 + 160];
    let header = RtpHeader {
        payload_type: 8,
        sequence: seq,
        timestamp: ts,
        ssrc,
        ..Default::default()
    };
    header.write(&[0x55; 160], &mut out).unwrap();
    out
}

async fn recv(socket: &UdpSocket) -> (u16, u32, u32, bool) {
    let mut buf = [0u8; 2048];
    let (n, _) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("a packet within the wait")
        .unwrap();
    let p = RtpPacket::parse(&buf[..n]).unwrap();
    assert_eq!(p.payload(), [0x55; 160]);
    (p.sequence(), p.timestamp(), p.ssrc(), p.marker())
}

async fn nothing_arrives(socket: &UdpSocket) {
    let mut buf = [0u8; 2048];
    let got = timeout(Duration::from_millis(300), socket.recv_from(&mut buf)).await;
    assert!(got.is_err(), "nothing should arrive");
}

async fn stats_until(session: &RelaySession, ok: impl Fn(&SessionStats) -> bool) -> SessionStats {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = session.stats();
        if ok(&s) || tokio::time::Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first event `wanted` picks, within the wait.
async fn wait_event(
    events: &mut UnboundedReceiver<SessionEvent>,
    wanted: impl Fn(&RelayEvent) -> bool,
) -> SessionEvent {
    timeout(WAIT, async {
        loop {
            let e = events.recv().await.expect("the session is alive");
            if wanted(&e.event) {
                return e;
            }
        }
    })
    .await
    .expect("the event within the wait")
}

/// A and B each send one packet (latching in user space), then `n` more
/// each, 5 ms apart; checks each arrives in order, rewritten.
async fn talk(c: &Call, ssrc_a: u32, first_seq: u16, n: u16, expect_seq_b: &mut u16) {
    for i in 0..=n {
        let seq = first_seq.wrapping_add(i);
        c.a.send_to(&rtp(ssrc_a, seq, 160 * u32::from(seq)), c.relay_a)
            .await
            .unwrap();
        let (out_seq, _, out_ssrc, _) = recv(&c.b).await;
        assert_eq!(out_ssrc, TO_B);
        assert_eq!(out_seq, *expect_seq_b, "sequence continues");
        *expect_seq_b = expect_seq_b.wrapping_add(1);
        c.b.send_to(&rtp(0x0B0B, seq, 0), c.relay_b).await.unwrap();
        let (_, _, out_ssrc, _) = recv(&c.a).await;
        assert_eq!(out_ssrc, TO_A);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn latched_media_is_forwarded_in_the_kernel() {
    let Some(kernel) = forwarder() else { return };
    let c = call(23_000, kernel, None).await;
    let mut seq_b = 65_500;
    talk(&c, 0x0A0A, 100, 100, &mut seq_b).await;
    // Exact at once: what the kernel forwarded since the task last
    // published is read from the map.
    let s = c.session.stats();
    assert_eq!(s.a.relay.packets_out, 101, "{s:?}");
    assert_eq!(s.b.relay.packets_out, 101, "{s:?}");
    // The first packets latch in user space; the rest never reach it.
    assert!(s.a.kernel_forwarded >= 95, "{s:?}");
    assert!(s.b.kernel_forwarded >= 95, "{s:?}");
    assert_eq!(s.a.relay.bytes_out, 101 * 172);
}

#[tokio::test]
async fn a_new_source_continues_the_stream_then_returns_to_the_kernel() {
    let Some(kernel) = forwarder() else { return };
    let mut c = call(23_020, kernel, None).await;
    let mut seq_b = 65_500;
    talk(&c, 0x0A0A, 100, 20, &mut seq_b).await;
    // A new SSRC from A: user space sees it (the rule names the old one).
    c.a.send_to(&rtp(0x0C0C, 5, 9), c.relay_a).await.unwrap();
    let (out_seq, _, out_ssrc, marker) = recv(&c.b).await;
    assert_eq!((out_seq, out_ssrc, marker), (seq_b, TO_B, true));
    seq_b = seq_b.wrapping_add(1);
    let event = wait_event(&mut c.events, |e| {
        matches!(e, RelayEvent::SourceChanged { .. })
    })
    .await;
    assert_eq!(
        event.event,
        RelayEvent::SourceChanged {
            old: 0x0A0A,
            new: 0x0C0C
        }
    );
    let before = stats_until(&c.session, |_| true).await.a.kernel_forwarded;
    talk(&c, 0x0C0C, 6, 20, &mut seq_b).await;
    let s = stats_until(&c.session, |s| s.a.kernel_forwarded >= before + 19).await;
    assert!(
        s.a.kernel_forwarded >= before + 19,
        "back in the kernel: {s:?}"
    );
}

#[tokio::test]
async fn strangers_still_reach_nobody() {
    let Some(kernel) = forwarder() else { return };
    let c = call(23_040, kernel, None).await;
    let mut seq_b = 65_500;
    talk(&c, 0x0A0A, 100, 10, &mut seq_b).await;
    let stranger = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    stranger
        .send_to(&rtp(0x0A0A, 111, 0), c.relay_a)
        .await
        .unwrap();
    nothing_arrives(&c.b).await;
    let s = stats_until(&c.session, |s| s.a.relay.dropped_strangers == 1).await;
    assert_eq!(s.a.relay.dropped_strangers, 1);
}

#[tokio::test]
async fn media_timeout_counts_kernel_forwarded_packets() {
    let Some(kernel) = forwarder() else { return };
    let mut c = call(23_060, kernel, Some(Duration::from_millis(700))).await;
    let mut seq_b = 65_500;
    // 1.5 s of media, almost all of it in the kernel: no timeout.
    for round in 0..5u16 {
        talk(&c, 0x0A0A, 100 + round * 31, 30, &mut seq_b).await;
    }
    let mut timed_out = false;
    while let Ok(e) = c.events.try_recv() {
        timed_out |= e.event == RelayEvent::MediaTimeout;
    }
    assert!(!timed_out, "media flowed in the kernel");
    // Then silence: the timeout fires.
    let event = wait_event(&mut c.events, |e| *e == RelayEvent::MediaTimeout).await;
    assert_eq!(event.event, RelayEvent::MediaTimeout);
}

#[tokio::test]
async fn closing_removes_the_kernel_rules() {
    let Some(kernel) = forwarder() else { return };
    let c = call(23_080, kernel, None).await;
    let mut seq_b = 65_500;
    talk(&c, 0x0A0A, 100, 10, &mut seq_b).await;
    let stats = c.session.close().await;
    assert_eq!(stats.a.relay.packets_out, 11, "{stats:?}");
    // The port is closed; the kernel must not forward to B any more.
    c.a.send_to(&rtp(0x0A0A, 200, 0), c.relay_a).await.unwrap();
    nothing_arrives(&c.b).await;
}

#[tokio::test]
async fn relatch_takes_the_stream_back_until_it_latches_again() {
    let Some(kernel) = forwarder() else { return };
    let c = call(23_100, kernel, None).await;
    let mut seq_b = 65_500;
    talk(&c, 0x0A0A, 100, 10, &mut seq_b).await;
    // A moves (a re-INVITE with a new port): packets from the old address
    // are strangers now, and the new one latches and is forwarded.
    let moved = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    c.session
        .relatch(rtp_relay::Leg::A, Some(moved.local_addr().unwrap()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let moved_call = Call { a: moved, ..c };
    talk(&moved_call, 0x0A0A, 111, 20, &mut seq_b).await;
    let new_a = moved_call.a.local_addr().unwrap();
    let s = stats_until(&moved_call.session, |s| {
        s.a.latched == Some(new_a) && s.a.kernel_forwarded >= 25
    })
    .await;
    assert_eq!(s.a.latched, Some(new_a));
    assert!(
        s.a.kernel_forwarded >= 25,
        "forwarded in the kernel again: {s:?}"
    );
}
