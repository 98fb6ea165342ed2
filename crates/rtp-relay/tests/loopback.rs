//! Two "phones" (plain UDP sockets on 127.0.0.1) talking through a
//! [`RelaySession`]. Every wait is bounded, so a failure ends the test
//! instead of hanging it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use media::rtp::{RelayConfig, RelayEvent, RtpHeader, RtpPacket};
use rtp_relay::{Leg, LegSetup, PortPool, PortRange, RelaySession, SessionEvent, SessionStats};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(3);
const OUT_SSRC_TO_B: u32 = 0xA0A0_0001;
const OUT_SSRC_TO_A: u32 = 0xB0B0_0002;

struct Call {
    pool: PortPool,
    session: RelaySession,
    events: UnboundedReceiver<SessionEvent>,
    phone_a: UdpSocket,
    phone_b: UdpSocket,
}

fn relay_config(
    signalled: SocketAddr,
    out_ssrc: u32,
    media_timeout: Option<Duration>,
) -> RelayConfig {
    RelayConfig {
        signalled: Some(signalled),
        media_timeout,
        out_ssrc,
        initial_sequence: 40_000,
        initial_timestamp: 1_000,
        ..RelayConfig::default()
    }
}

async fn call(start: u16, media_timeout: Option<Duration>) -> Call {
    let pool = PortPool::new(
        LOCALHOST,
        PortRange {
            start,
            end: start + 19,
        },
    )
    .unwrap();
    let phone_a = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let phone_b = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let a = LegSetup {
        ports: pool.allocate().unwrap(),
        relay: relay_config(phone_a.local_addr().unwrap(), OUT_SSRC_TO_B, media_timeout),
    };
    let b = LegSetup {
        ports: pool.allocate().unwrap(),
        relay: relay_config(phone_b.local_addr().unwrap(), OUT_SSRC_TO_A, media_timeout),
    };
    let (session, events) = RelaySession::start(a, b).unwrap();
    Call {
        pool,
        session,
        events,
        phone_a,
        phone_b,
    }
}

fn rtp(ssrc: u32, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0; 12 + payload.len()];
    let header = RtpHeader {
        payload_type: 0,
        sequence: seq,
        timestamp: ts,
        ssrc,
        ..RtpHeader::default()
    };
    let n = header.write(payload, &mut out).unwrap();
    out.truncate(n);
    out
}

async fn recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0; 2048];
    let (n, _) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("packet did not arrive")
        .unwrap();
    buf.truncate(n);
    buf
}

async fn nothing_arrives(socket: &UdpSocket) {
    let mut buf = [0; 2048];
    let r = timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await;
    assert!(r.is_err(), "unexpected packet: {r:?}");
}

/// Polls the session's counters until `ok` holds, for at most [`WAIT`].
async fn stats_until(session: &RelaySession, ok: impl Fn(&SessionStats) -> bool) -> SessionStats {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = session.stats();
        if ok(&stats) || tokio::time::Instant::now() >= deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn next_event(events: &mut UnboundedReceiver<SessionEvent>) -> SessionEvent {
    timeout(WAIT, events.recv())
        .await
        .expect("no event in time")
        .expect("event channel closed")
}

#[tokio::test]
async fn media_flows_both_ways_rewritten() {
    let c = call(22000, None).await;
    let to_a = c.session.local_addr(Leg::A);
    let to_b = c.session.local_addr(Leg::B);

    for i in 0..50u16 {
        let payload = [i as u8; 160];
        let packet = rtp(0x1234, 500 + i, 160 * u32::from(i), &payload);
        c.phone_a.send_to(&packet, to_a).await.unwrap();
        let got = recv(&c.phone_b).await;
        let p = RtpPacket::parse(&got).unwrap();
        assert_eq!(p.payload(), &payload[..]);
        assert_eq!(p.ssrc(), OUT_SSRC_TO_B);
        assert_eq!(p.sequence(), 40_000 + i);
        assert_eq!(p.timestamp(), 1_000 + 160 * u32::from(i));
    }

    // The other direction, through leg B's port.
    for i in 0..20u16 {
        let payload = [0xF0 ^ i as u8; 80];
        c.phone_b
            .send_to(&rtp(0x9999, 7 + i, 0, &payload), to_b)
            .await
            .unwrap();
        let got = recv(&c.phone_a).await;
        let p = RtpPacket::parse(&got).unwrap();
        assert_eq!(p.payload(), &payload[..]);
        assert_eq!(p.ssrc(), OUT_SSRC_TO_A);
        assert_eq!(p.sequence(), 40_000 + i);
    }

    let stats = stats_until(&c.session, |s| {
        s.a.relay.packets_out == 50 && s.b.relay.packets_out == 20
    })
    .await;
    assert_eq!(stats.a.relay.packets_out, 50);
    assert_eq!(stats.b.relay.packets_out, 20);
    assert_eq!(stats.a.latched, Some(c.phone_a.local_addr().unwrap()));
    assert_eq!(stats.b.latched, Some(c.phone_b.local_addr().unwrap()));
    assert_eq!(stats.a.send_failed + stats.b.send_failed, 0);
    c.session.close().await;
}

#[tokio::test]
async fn sequence_continues_across_source_change() {
    let c = call(22100, None).await;
    let to_a = c.session.local_addr(Leg::A);
    let mut seqs = Vec::new();
    for (ssrc, base) in [(0x1111, 100u16), (0x2222, 60_000)] {
        for i in 0..5u16 {
            c.phone_a
                .send_to(&rtp(ssrc, base + i, 0, b"abcd"), to_a)
                .await
                .unwrap();
            let got = recv(&c.phone_b).await;
            let p = RtpPacket::parse(&got).unwrap();
            assert_eq!(p.ssrc(), OUT_SSRC_TO_B);
            seqs.push(p.sequence());
        }
    }
    let expected: Vec<u16> = (0..10).map(|i| 40_000 + i).collect();
    assert_eq!(seqs, expected);
    c.session.close().await;
}

#[tokio::test]
async fn stranger_is_dropped_after_latching() {
    let c = call(22200, None).await;
    let to_a = c.session.local_addr(Leg::A);
    c.phone_a
        .send_to(&rtp(0x1234, 1, 0, b"real"), to_a)
        .await
        .unwrap();
    assert_eq!(
        RtpPacket::parse(&recv(&c.phone_b).await).unwrap().payload(),
        b"real"
    );

    let stranger = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    for i in 0..5 {
        stranger
            .send_to(&rtp(0x6666, i, 0, b"evil"), to_a)
            .await
            .unwrap();
    }
    let stats = stats_until(&c.session, |s| s.a.relay.dropped_strangers == 5).await;
    assert_eq!(stats.a.relay.dropped_strangers, 5);

    // The phone still gets through; the stranger's packets never arrived.
    c.phone_a
        .send_to(&rtp(0x1234, 2, 160, b"real"), to_a)
        .await
        .unwrap();
    assert_eq!(
        RtpPacket::parse(&recv(&c.phone_b).await).unwrap().payload(),
        b"real"
    );
    nothing_arrives(&c.phone_b).await;
    let stats = c.session.close().await;
    assert_eq!(stats.a.relay.packets_out, 2);
    assert_eq!(stats.a.latched, Some(c.phone_a.local_addr().unwrap()));
}

#[tokio::test]
async fn media_timeout_reported_when_a_phone_stops() {
    let mut c = call(22300, Some(Duration::from_millis(300))).await;
    let to_a = c.session.local_addr(Leg::A);
    let to_b = c.session.local_addr(Leg::B);
    // Both talk briefly; then only B goes on.
    for i in 0..3u16 {
        c.phone_a.send_to(&rtp(1, i, 0, b"a"), to_a).await.unwrap();
        c.phone_b.send_to(&rtp(2, i, 0, b"b"), to_b).await.unwrap();
        recv(&c.phone_b).await;
        recv(&c.phone_a).await;
    }
    let keep_talking = async {
        for i in 3..40u16 {
            c.phone_b.send_to(&rtp(2, i, 0, b"b"), to_b).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let wait_timeout = async {
        loop {
            let e = next_event(&mut c.events).await;
            match e.event {
                RelayEvent::Latched(_) => continue,
                _ => return e,
            }
        }
    };
    let ((), event) = tokio::join!(keep_talking, wait_timeout);
    assert_eq!(
        event,
        SessionEvent {
            leg: Leg::A,
            event: RelayEvent::MediaTimeout
        }
    );

    // A resumes.
    c.phone_a.send_to(&rtp(1, 3, 0, b"a"), to_a).await.unwrap();
    let resumed = next_event(&mut c.events).await;
    assert_eq!(
        resumed,
        SessionEvent {
            leg: Leg::A,
            event: RelayEvent::MediaResumed
        }
    );
    c.session.close().await;
}

#[tokio::test]
async fn rtcp_is_relayed_muxed_and_on_the_odd_port() {
    let c = call(22400, None).await;
    let to_a = c.session.local_addr(Leg::A);
    c.phone_a.send_to(&rtp(1, 1, 0, b"x"), to_a).await.unwrap();
    recv(&c.phone_b).await;

    // A receiver report with no blocks: V=2, PT=201, length 1.
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
    c.phone_a.send_to(&rr, to_a).await.unwrap();
    assert_eq!(recv(&c.phone_b).await, rr);

    // Odd port, from the latched IP: goes to B's RTP port + 1.
    let phone_b_rtcp =
        UdpSocket::bind((LOCALHOST, c.phone_b.local_addr().unwrap().port() + 1)).await;
    let rtcp_a = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut odd = to_a;
    odd.set_port(to_a.port() + 1);
    rtcp_a.send_to(&rr, odd).await.unwrap();
    if let Ok(phone_b_rtcp) = phone_b_rtcp {
        assert_eq!(recv(&phone_b_rtcp).await, rr);
    }
    let stats = stats_until(&c.session, |s| s.a.rtcp_forwarded == 2).await;
    assert_eq!(stats.a.rtcp_forwarded, 2);
    c.session.close().await;
}

#[tokio::test]
async fn close_returns_ports() {
    let c = call(22500, None).await;
    assert_eq!(c.pool.available(), c.pool.capacity() - 2);
    let to_a = c.session.local_addr(Leg::A);
    c.phone_a.send_to(&rtp(1, 1, 0, b"x"), to_a).await.unwrap();
    recv(&c.phone_b).await;
    c.session.close().await;
    assert_eq!(c.pool.available(), c.pool.capacity());
    // The ports bind again, so the sockets are really closed.
    let again = c.pool.allocate().unwrap();
    drop(again);

    // Dropping without close also returns them, once the task is gone.
    let c = call(22600, None).await;
    drop(c.session);
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.pool.available() != c.pool.capacity() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(c.pool.available(), c.pool.capacity());
}

#[tokio::test]
async fn bursts_larger_than_one_batch_pass_intact() {
    // Not a timing test: windows of 150 datagrams (more than the relay reads
    // per wake-up) must all come through, in order, with nothing lost.
    let c = call(22700, None).await;
    let to_a = c.session.local_addr(Leg::A);
    let mut seq = 0u16;
    for _ in 0..10 {
        let first = seq;
        for _ in 0..150 {
            let payload = seq.to_be_bytes();
            c.phone_a
                .send_to(&rtp(0x77, seq, 0, &payload), to_a)
                .await
                .unwrap();
            seq += 1;
        }
        for expect in first..seq {
            let got = recv(&c.phone_b).await;
            let p = RtpPacket::parse(&got).unwrap();
            assert_eq!(p.payload(), expect.to_be_bytes());
            assert_eq!(p.sequence(), 40_000u16.wrapping_add(expect));
        }
    }
    let stats = c.session.close().await;
    assert_eq!(stats.a.relay.packets_out, 1500);
}

#[tokio::test]
async fn relatch_moves_a_leg_to_a_new_address() {
    let mut c = call(22800, None).await;
    let to_a = c.session.local_addr(Leg::A);
    c.phone_a
        .send_to(&rtp(1, 1, 0, b"old"), to_a)
        .await
        .unwrap();
    recv(&c.phone_b).await;
    assert!(matches!(
        next_event(&mut c.events).await.event,
        RelayEvent::Latched(_)
    ));

    // A re-INVITE moved phone A to a new socket.
    let moved = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    c.session.relatch(Leg::A, Some(moved.local_addr().unwrap()));
    moved.send_to(&rtp(1, 2, 160, b"new"), to_a).await.unwrap();
    assert_eq!(
        RtpPacket::parse(&recv(&c.phone_b).await).unwrap().payload(),
        b"new"
    );
    assert_eq!(
        next_event(&mut c.events).await.event,
        RelayEvent::Latched(moved.local_addr().unwrap())
    );
    // Media towards A now goes to the new address.
    let to_b = c.session.local_addr(Leg::B);
    c.phone_b
        .send_to(&rtp(2, 1, 0, b"back"), to_b)
        .await
        .unwrap();
    assert_eq!(
        RtpPacket::parse(&recv(&moved).await).unwrap().payload(),
        b"back"
    );
    // The old address is a stranger now.
    c.phone_a
        .send_to(&rtp(1, 3, 320, b"old"), to_a)
        .await
        .unwrap();
    nothing_arrives(&c.phone_b).await;
    c.session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_on_a_multi_thread_runtime() {
    let mut calls = Vec::new();
    for i in 0..10 {
        calls.push(call(23000 + 20 * i, None).await);
    }
    for (i, c) in calls.iter().enumerate() {
        let to_a = c.session.local_addr(Leg::A);
        let tag = [i as u8; 4];
        c.phone_a.send_to(&rtp(5, 0, 0, &tag), to_a).await.unwrap();
    }
    for (i, c) in calls.iter().enumerate() {
        let got = recv(&c.phone_b).await;
        assert_eq!(RtpPacket::parse(&got).unwrap().payload(), [i as u8; 4]);
    }
    for c in calls {
        c.session.close().await;
        assert_eq!(c.pool.available(), c.pool.capacity());
    }
}

#[tokio::test]
async fn ipv6_loopback_session() {
    let Ok(probe) = std::net::UdpSocket::bind("[::1]:0") else {
        return; // no IPv6 on this host
    };
    drop(probe);
    let ip: IpAddr = "::1".parse().unwrap();
    let pool = PortPool::new(
        ip,
        PortRange {
            start: 23300,
            end: 23319,
        },
    )
    .unwrap();
    let phone_a = UdpSocket::bind((ip, 0)).await.unwrap();
    let phone_b = UdpSocket::bind((ip, 0)).await.unwrap();
    let (session, _events) = RelaySession::start(
        LegSetup {
            ports: pool.allocate().unwrap(),
            relay: relay_config(phone_a.local_addr().unwrap(), OUT_SSRC_TO_B, None),
        },
        LegSetup {
            ports: pool.allocate().unwrap(),
            relay: relay_config(phone_b.local_addr().unwrap(), OUT_SSRC_TO_A, None),
        },
    )
    .unwrap();
    let to_a = session.local_addr(Leg::A);
    assert!(to_a.is_ipv6());
    phone_a.send_to(&rtp(9, 9, 9, b"v6"), to_a).await.unwrap();
    let p = recv(&phone_b).await;
    assert_eq!(RtpPacket::parse(&p).unwrap().payload(), b"v6");
    session.close().await;
    assert_eq!(pool.available(), pool.capacity());
}
