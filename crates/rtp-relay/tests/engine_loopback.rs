//! Two "phones" (plain UDP sockets on 127.0.0.1) talking through a
//! [`RelayEngine`] session. Ports 23320-23999. Every wait is bounded, so a
//! failure ends the test instead of hanging it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use media::rtp::{RelayConfig, RelayEvent, RtpHeader, RtpPacket};
use rtp_relay::{
    EngineSession, Leg, LegSetup, PortPool, PortRange, RelayEngine, SessionEvent, SessionStats,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(3);
const OUT_SSRC_TO_B: u32 = 0xA0A0_0001;
const OUT_SSRC_TO_A: u32 = 0xB0B0_0002;

struct Call {
    pool: PortPool,
    session: EngineSession,
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

async fn call(engine: &RelayEngine, start: u16, media_timeout: Option<Duration>) -> Call {
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
    let (session, events) = engine.start(a, b).unwrap();
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
async fn stats_until(session: &EngineSession, ok: impl Fn(&SessionStats) -> bool) -> SessionStats {
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

async fn pool_full_again(pool: &PortPool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while pool.available() != pool.capacity() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(pool.available(), pool.capacity());
}

#[tokio::test]
async fn media_flows_both_ways_rewritten() {
    let engine = RelayEngine::new(2).unwrap();
    let c = call(&engine, 23320, None).await;
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

    // Published within the stats interval, without closing.
    let stats = stats_until(&c.session, |s| {
        s.a.relay.packets_out == 50 && s.b.relay.packets_out == 20
    })
    .await;
    assert_eq!(stats.a.relay.packets_out, 50);
    assert_eq!(stats.b.relay.packets_out, 20);
    assert_eq!(stats.a.latched, Some(c.phone_a.local_addr().unwrap()));
    assert_eq!(stats.b.latched, Some(c.phone_b.local_addr().unwrap()));
    assert_eq!(stats.a.send_failed + stats.b.send_failed, 0);
    let closed = c.session.close();
    assert_eq!(closed.a.relay.packets_out, 50);
    assert_eq!(c.pool.available(), c.pool.capacity());
}

#[tokio::test]
async fn stranger_is_dropped_after_latching() {
    let engine = RelayEngine::new(1).unwrap();
    let c = call(&engine, 23340, None).await;
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
    c.phone_a
        .send_to(&rtp(0x1234, 2, 160, b"real"), to_a)
        .await
        .unwrap();
    assert_eq!(
        RtpPacket::parse(&recv(&c.phone_b).await).unwrap().payload(),
        b"real"
    );
    nothing_arrives(&c.phone_b).await;
    let stats = c.session.close();
    assert_eq!(stats.a.relay.packets_out, 2);
    assert_eq!(stats.a.latched, Some(c.phone_a.local_addr().unwrap()));
}

#[tokio::test]
async fn tagged_media_timeout_and_resume() {
    let engine = RelayEngine::new(2).unwrap();
    let pool = PortPool::new(
        LOCALHOST,
        PortRange {
            start: 23360,
            end: 23379,
        },
    )
    .unwrap();
    let phone_a = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let phone_b = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let t = Some(Duration::from_millis(300));
    let (tx, mut events) = mpsc::unbounded_channel();
    let session = engine
        .start_tagged(
            LegSetup {
                ports: pool.allocate().unwrap(),
                relay: relay_config(phone_a.local_addr().unwrap(), OUT_SSRC_TO_B, t),
            },
            LegSetup {
                ports: pool.allocate().unwrap(),
                relay: relay_config(phone_b.local_addr().unwrap(), OUT_SSRC_TO_A, t),
            },
            77,
            tx,
        )
        .unwrap();
    let (to_a, to_b) = (session.local_addr(Leg::A), session.local_addr(Leg::B));
    for i in 0..3u16 {
        phone_a.send_to(&rtp(1, i, 0, b"a"), to_a).await.unwrap();
        phone_b.send_to(&rtp(2, i, 0, b"b"), to_b).await.unwrap();
        recv(&phone_b).await;
        recv(&phone_a).await;
    }
    let keep_talking = async {
        for i in 3..40u16 {
            phone_b.send_to(&rtp(2, i, 0, b"b"), to_b).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let started = tokio::time::Instant::now();
    let wait_timeout = async {
        loop {
            let (id, e) = timeout(WAIT, events.recv()).await.unwrap().unwrap();
            assert_eq!(id, 77);
            if !matches!(e.event, RelayEvent::Latched(_)) {
                return (e, started.elapsed());
            }
        }
    };
    let ((), (event, after)) = tokio::join!(keep_talking, wait_timeout);
    assert_eq!(
        event,
        SessionEvent {
            leg: Leg::A,
            event: RelayEvent::MediaTimeout
        }
    );
    // The timeout fired on time, not on some later wake-up.
    assert!(after < Duration::from_millis(700), "{after:?}");

    phone_a.send_to(&rtp(1, 3, 0, b"a"), to_a).await.unwrap();
    let (id, resumed) = timeout(WAIT, events.recv()).await.unwrap().unwrap();
    assert_eq!(id, 77);
    assert_eq!(resumed.event, RelayEvent::MediaResumed);

    // On hold: no timeout while A is silent.
    session.set_media_timeout(Leg::A, None);
    session.set_media_timeout(Leg::B, None);
    let r = timeout(Duration::from_millis(500), events.recv()).await;
    assert!(r.is_err(), "unexpected event {r:?}");
    // Back off hold with a short timeout: it fires again.
    session.set_media_timeout(Leg::A, Some(Duration::from_millis(100)));
    let (_, e) = timeout(WAIT, events.recv()).await.unwrap().unwrap();
    assert_eq!(e.leg, Leg::A);
    assert_eq!(e.event, RelayEvent::MediaTimeout);
    drop(session);
    pool_full_again(&pool).await;
}

#[tokio::test]
async fn rtcp_is_relayed_muxed_and_on_the_odd_port() {
    let engine = RelayEngine::new(1).unwrap();
    let c = call(&engine, 23380, None).await;
    let to_a = c.session.local_addr(Leg::A);
    c.phone_a.send_to(&rtp(1, 1, 0, b"x"), to_a).await.unwrap();
    recv(&c.phone_b).await;

    let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
    c.phone_a.send_to(&rr, to_a).await.unwrap();
    assert_eq!(recv(&c.phone_b).await, rr);

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
    c.session.close();
}

#[tokio::test]
async fn relatch_moves_a_leg_to_a_new_address() {
    let engine = RelayEngine::new(1).unwrap();
    let mut c = call(&engine, 23400, None).await;
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
    let to_b = c.session.local_addr(Leg::B);
    c.phone_b
        .send_to(&rtp(2, 1, 0, b"back"), to_b)
        .await
        .unwrap();
    assert_eq!(
        RtpPacket::parse(&recv(&moved).await).unwrap().payload(),
        b"back"
    );
    c.phone_a
        .send_to(&rtp(1, 3, 320, b"old"), to_a)
        .await
        .unwrap();
    nothing_arrives(&c.phone_b).await;
    c.session.close();
}

#[tokio::test]
async fn bursts_larger_than_one_batch_pass_intact() {
    let engine = RelayEngine::new(1).unwrap();
    let c = call(&engine, 23420, None).await;
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
    let stats = c.session.close();
    assert_eq!(stats.a.relay.packets_out, 1500);
}

#[tokio::test]
async fn drop_and_close_return_ports() {
    let engine = RelayEngine::new(2).unwrap();
    let c = call(&engine, 23440, None).await;
    assert_eq!(c.pool.available(), c.pool.capacity() - 2);
    let to_a = c.session.local_addr(Leg::A);
    c.phone_a.send_to(&rtp(1, 1, 0, b"x"), to_a).await.unwrap();
    recv(&c.phone_b).await;
    c.session.close();
    assert_eq!(c.pool.available(), c.pool.capacity());
    // The ports bind again, so the sockets are really closed.
    drop(c.pool.allocate().unwrap());

    let c = call(&engine, 23460, None).await;
    drop(c.session);
    pool_full_again(&c.pool).await;
    drop(c.pool.allocate().unwrap());

    // Dropping the engine stops the sessions still on it.
    let c = call(&engine, 23480, None).await;
    drop(engine);
    assert_eq!(c.pool.available(), c.pool.capacity());
    // Commands to a stopped engine are ignored.
    c.session.relatch(Leg::A, None);
    drop(c.session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_spread_over_threads() {
    let engine = RelayEngine::new(3).unwrap();
    let mut calls = Vec::new();
    for i in 0..10 {
        calls.push(call(&engine, 23500 + 20 * i, None).await);
    }
    for (i, c) in calls.iter().enumerate() {
        let to_a = c.session.local_addr(Leg::A);
        let to_b = c.session.local_addr(Leg::B);
        let tag = [i as u8; 4];
        c.phone_a.send_to(&rtp(5, 0, 0, &tag), to_a).await.unwrap();
        c.phone_b.send_to(&rtp(6, 0, 0, &tag), to_b).await.unwrap();
    }
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(
            RtpPacket::parse(&recv(&c.phone_b).await).unwrap().payload(),
            [i as u8; 4]
        );
        assert_eq!(
            RtpPacket::parse(&recv(&c.phone_a).await).unwrap().payload(),
            [i as u8; 4]
        );
    }
    // Sessions stopped out of order; the freed slots are reused.
    for c in calls.drain(5..) {
        c.session.close();
        assert_eq!(c.pool.available(), c.pool.capacity());
    }
    for i in 5..10 {
        calls.push(call(&engine, 23500 + 20 * i, None).await);
    }
    for (i, c) in calls.iter().enumerate() {
        let to_a = c.session.local_addr(Leg::A);
        c.phone_a
            .send_to(&rtp(5, 1, 160, &[i as u8; 4]), to_a)
            .await
            .unwrap();
        assert_eq!(
            RtpPacket::parse(&recv(&c.phone_b).await).unwrap().payload(),
            [i as u8; 4]
        );
    }
    for c in calls {
        c.session.close();
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
    let engine = RelayEngine::new(1).unwrap();
    let pool = PortPool::new(
        ip,
        PortRange {
            start: 23700,
            end: 23719,
        },
    )
    .unwrap();
    let phone_a = UdpSocket::bind((ip, 0)).await.unwrap();
    let phone_b = UdpSocket::bind((ip, 0)).await.unwrap();
    let (session, _events) = engine
        .start(
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
    // The source came through recvmmsg's sockaddr_in6 intact.
    let stats = session.close();
    assert_eq!(stats.a.latched, Some(phone_a.local_addr().unwrap()));
    assert_eq!(pool.available(), pool.capacity());
}
