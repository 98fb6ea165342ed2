//! Two "phones" (plain UDP sockets on 127.0.0.1) talking through a
//! [`RelaySession`]. Every wait is bounded, so a failure ends the test
//! instead of hanging it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use media::rtp::rtcp::{write_receiver_report, write_sender_report};
use media::rtp::{
    Compound, NtpTime, RelayConfig, RelayEvent, ReportBlock, RtpHeader, RtpPacket, SenderInfo,
};
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
        transform: None,
    };
    let b = LegSetup {
        ports: pool.allocate().unwrap(),
        relay: relay_config(phone_b.local_addr().unwrap(), OUT_SSRC_TO_A, media_timeout),
        transform: None,
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

    // A receiver report with no blocks: V=2, PT=201, length 1. B gets it
    // under the SSRC it sees on A's RTP (RFC 3550 section 7.3).
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
    let mut translated = rr;
    translated[4..8].copy_from_slice(&OUT_SSRC_TO_B.to_be_bytes());
    c.phone_a.send_to(&rr, to_a).await.unwrap();
    assert_eq!(recv(&c.phone_b).await, translated);

    // Odd port, from the latched IP: goes to B's RTP port + 1.
    let phone_b_rtcp =
        UdpSocket::bind((LOCALHOST, c.phone_b.local_addr().unwrap().port() + 1)).await;
    let rtcp_a = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut odd = to_a;
    odd.set_port(to_a.port() + 1);
    rtcp_a.send_to(&rr, odd).await.unwrap();
    if let Ok(phone_b_rtcp) = phone_b_rtcp {
        assert_eq!(recv(&phone_b_rtcp).await, translated);
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
            transform: None,
        },
        LegSetup {
            ports: pool.allocate().unwrap(),
            relay: relay_config(phone_b.local_addr().unwrap(), OUT_SSRC_TO_A, None),
            transform: None,
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

fn receiver_report(reporter: u32, blocks: &[ReportBlock]) -> Vec<u8> {
    let mut out = vec![0; 1500];
    let n = write_receiver_report(reporter, blocks, &mut out).unwrap();
    out.truncate(n);
    out
}

fn sender_report(sender: u32, ntp: u64, blocks: &[ReportBlock]) -> Vec<u8> {
    let mut out = vec![0; 1500];
    let info = SenderInfo {
        ssrc: sender,
        ntp: NtpTime(ntp),
        rtp_timestamp: 160,
        packet_count: 1,
        octet_count: 160,
    };
    let n = write_sender_report(&info, blocks, &mut out).unwrap();
    out.truncate(n);
    out
}

/// Latches both legs: one RTP packet each way.
async fn latch_both(c: &Call) {
    let (to_a, to_b) = (c.session.local_addr(Leg::A), c.session.local_addr(Leg::B));
    c.phone_a
        .send_to(&rtp(0x1234, 1, 0, b"a"), to_a)
        .await
        .unwrap();
    recv(&c.phone_b).await;
    c.phone_b
        .send_to(&rtp(0x5678, 1, 0, b"b"), to_b)
        .await
        .unwrap();
    recv(&c.phone_a).await;
}

#[tokio::test]
async fn leg_quality_reflects_report_blocks_on_both_rtcp_paths() {
    let c = call(22900, None).await;
    latch_both(&c).await;
    let (to_a, to_b) = (c.session.local_addr(Leg::A), c.session.local_addr(Leg::B));

    // Phone B, muxed on its RTP port, reports on the stream it receives
    // (the relay's SSRC towards B): 25 % lost, 7 in all, 160 units = 20 ms.
    let about_b = ReportBlock {
        ssrc: OUT_SSRC_TO_B,
        fraction_lost: 64,
        cumulative_lost: 7,
        jitter: 160,
        highest_seq: 40_010,
        ..ReportBlock::default()
    };
    // A block about an SSRC B never received RTP from is not counted.
    let stray = ReportBlock {
        ssrc: 0x1234,
        fraction_lost: 255,
        cumulative_lost: 999,
        jitter: 9999,
        ..ReportBlock::default()
    };
    let rr_b = receiver_report(0x5678, &[about_b, stray]);
    c.phone_b.send_to(&rr_b, to_b).await.unwrap();
    // A gets it under the SSRC it sees on B's RTP, about its own stream
    // (SSRC 0x1234, sequence numbers as A sent them: 40_010 - 39_999).
    let got = recv(&c.phone_a).await;
    let blocks: Vec<_> = Compound::parse(&got).unwrap().report_blocks().collect();
    let mut about_a_as_sent = about_b;
    about_a_as_sent.ssrc = 0x1234;
    about_a_as_sent.highest_seq = 11;
    assert_eq!(
        blocks,
        vec![(OUT_SSRC_TO_A, about_a_as_sent), (OUT_SSRC_TO_A, stray)],
        "relayed translated"
    );

    // Phone A, on the odd port, in an SR: 50 %, 3 in all, 40 units = 5 ms.
    let about_a = ReportBlock {
        ssrc: OUT_SSRC_TO_A,
        fraction_lost: 128,
        cumulative_lost: 3,
        jitter: 40,
        ..ReportBlock::default()
    };
    let sr_a = sender_report(0x1234, 1 << 40, &[about_a]);
    let rtcp_a = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut odd_a = to_a;
    odd_a.set_port(to_a.port() + 1);
    rtcp_a.send_to(&sr_a, odd_a).await.unwrap();

    let stats = stats_until(&c.session, |s| {
        s.a.quality.reports == 1 && s.b.quality.reports == 1
    })
    .await;
    let (qa, qb) = (stats.a.quality, stats.b.quality);
    assert_eq!(qb.reports, 1, "{qb:?}");
    assert_eq!(qb.fraction_lost, 0.25);
    assert_eq!(qb.cumulative_lost, 7);
    assert_eq!(qb.jitter_ms, 20.0);
    assert_eq!(qa.reports, 1, "{qa:?}");
    assert_eq!(qa.fraction_lost, 0.5);
    assert_eq!(qa.cumulative_lost, 3);
    assert_eq!(qa.jitter_ms, 5.0);
    assert_eq!((qa.rtt_ms, qb.rtt_ms), (None, None), "no SR answered yet");

    // A later report replaces the figures; invalid RTCP changes nothing.
    let better = ReportBlock {
        fraction_lost: 0,
        cumulative_lost: 8,
        jitter: 8,
        ..about_b
    };
    c.phone_b
        .send_to(&[0x80, 201, 0, 7, 0, 0, 0, 1], to_b)
        .await
        .unwrap();
    c.phone_b
        .send_to(&receiver_report(0x5678, &[better]), to_b)
        .await
        .unwrap();
    let stats = stats_until(&c.session, |s| s.b.quality.reports == 2).await;
    let qb = stats.b.quality;
    assert_eq!(qb.reports, 2, "{qb:?}");
    assert_eq!(qb.fraction_lost, 0.0);
    assert_eq!(qb.cumulative_lost, 8);
    assert_eq!(qb.jitter_ms, 1.0);
    let closed = c.session.close().await;
    assert_eq!(closed.b.quality, qb, "final stats keep the quality");
}

/// The RTT a leg's monitor measured must be `hold - dlsr` plus loopback and
/// scheduling delay: at least `hold - dlsr` (less a compact-NTP unit), at
/// most 50 ms more.
fn assert_rtt(rtt: Option<f64>, hold: Duration, dlsr: Duration) {
    let floor = (hold.as_secs_f64() - dlsr.as_secs_f64()) * 1000.0;
    let rtt = rtt.expect("no RTT measured");
    assert!(
        rtt >= floor - 0.1 && rtt <= floor + 50.0,
        "rtt {rtt} ms, expected {floor}..{} ms",
        floor + 50.0
    );
}

#[tokio::test]
async fn rtt_per_leg_from_lsr_and_dlsr_of_relayed_sender_reports() {
    let c = call(22920, None).await;
    latch_both(&c).await;
    let (to_a, to_b) = (c.session.local_addr(Leg::A), c.session.local_addr(Leg::B));
    let dlsr = Duration::from_millis(50);
    let dlsr_units = 3277; // 50 ms in 1/65536 s, rounded up
    let hold = Duration::from_millis(120);

    // Leg B, muxed: A's SR goes to B, B answers after `hold` claiming DLSR.
    let ntp_a = 0xE000_0000_1234_5678;
    c.phone_a
        .send_to(&sender_report(0x1234, ntp_a, &[]), to_a)
        .await
        .unwrap();
    recv(&c.phone_b).await;
    let got_sr = tokio::time::Instant::now();
    tokio::time::sleep(hold).await;
    let answer = ReportBlock {
        ssrc: 0x1234, // filed under the SR's sender, as phones do
        lsr: NtpTime(ntp_a).compact(),
        dlsr: dlsr_units,
        ..ReportBlock::default()
    };
    c.phone_b
        .send_to(&receiver_report(0x5678, &[answer]), to_b)
        .await
        .unwrap();
    let held_b = got_sr.elapsed();
    recv(&c.phone_a).await;

    // Leg A, on the odd ports: B's SR goes to A's RTP port + 1; A answers
    // from its own odd-port socket.
    let rtcp_b = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut odd_b = to_b;
    odd_b.set_port(to_b.port() + 1);
    let phone_a_rtcp =
        UdpSocket::bind((LOCALHOST, c.phone_a.local_addr().unwrap().port() + 1)).await;
    let ntp_b = 0xE000_0001_8765_4321;
    rtcp_b
        .send_to(&sender_report(0x5678, ntp_b, &[]), odd_b)
        .await
        .unwrap();
    match &phone_a_rtcp {
        Ok(s) => drop(recv(s).await),
        // Port taken: the send happened before the counter moved.
        Err(_) => drop(stats_until(&c.session, |s| s.b.rtcp_forwarded == 1).await),
    }
    let got_sr = tokio::time::Instant::now();
    tokio::time::sleep(hold).await;
    let answer = ReportBlock {
        ssrc: OUT_SSRC_TO_A,
        lsr: NtpTime(ntp_b).compact(),
        dlsr: dlsr_units,
        ..ReportBlock::default()
    };
    let mut odd_a = to_a;
    odd_a.set_port(to_a.port() + 1);
    let rtcp_a = match phone_a_rtcp {
        Ok(s) => s,
        Err(_) => UdpSocket::bind((LOCALHOST, 0)).await.unwrap(),
    };
    rtcp_a
        .send_to(&receiver_report(0x1234, &[answer]), odd_a)
        .await
        .unwrap();
    let held_a = got_sr.elapsed();

    let stats = stats_until(&c.session, |s| {
        s.a.quality.rtt_ms.is_some() && s.b.quality.rtt_ms.is_some()
    })
    .await;
    assert_rtt(stats.b.quality.rtt_ms, held_b, dlsr);
    assert_rtt(stats.a.quality.rtt_ms, held_a, dlsr);
    assert_eq!(stats.b.quality.max_rtt_ms, stats.b.quality.rtt_ms);
    // B's answer was about the far phone's SSRC, not the relayed stream.
    assert_eq!(stats.b.quality.reports, 0);
    assert_eq!(stats.a.quality.reports, 1);
    // The final counters keep the round-trip times.
    let stats = c.session.close().await;
    assert!(stats.a.quality.rtt_ms.is_some() && stats.b.quality.rtt_ms.is_some());
}

/// Turns PCMU (PT 0) into PT 8 and inverts each payload octet, so both
/// the header and the payload show that the transform ran.
#[derive(Debug)]
struct FlipPayload;

impl rtp_relay::PacketTransform for FlipPayload {
    fn transform(&mut self, packet: &[u8], out: &mut [u8]) -> Option<usize> {
        let p = RtpPacket::parse(packet).ok()?;
        let header = RtpHeader {
            payload_type: 8,
            sequence: p.sequence(),
            timestamp: p.timestamp(),
            ssrc: p.ssrc(),
            ..RtpHeader::default()
        };
        let payload: Vec<u8> = p.payload().iter().map(|b| !b).collect();
        header.write(&payload, out).ok()
    }
}

#[tokio::test]
async fn transform_rewrites_one_direction_until_removed() {
    let c = call(22940, None).await;
    let (to_a, to_b) = (c.session.local_addr(Leg::A), c.session.local_addr(Leg::B));
    c.session.set_transform(Leg::A, Some(Box::new(FlipPayload)));
    let payload = [0x0Fu8; 160];
    c.phone_a
        .send_to(&rtp(0x1234, 1, 0, &payload), to_a)
        .await
        .unwrap();
    let p = recv(&c.phone_b).await;
    let p = RtpPacket::parse(&p).unwrap();
    assert_eq!((p.payload_type(), p.payload()), (8, &[0xF0u8; 160][..]));
    assert_eq!(
        p.ssrc(),
        OUT_SSRC_TO_B,
        "the relay's header handling still applies"
    );

    // The other direction is untouched.
    c.phone_b
        .send_to(&rtp(0x9999, 1, 0, &payload), to_b)
        .await
        .unwrap();
    let p = recv(&c.phone_a).await;
    let p = RtpPacket::parse(&p).unwrap();
    assert_eq!((p.payload_type(), p.payload()), (0, &payload[..]));

    c.session.set_transform(Leg::A, None);
    c.phone_a
        .send_to(&rtp(0x1234, 2, 160, &payload), to_a)
        .await
        .unwrap();
    let p = recv(&c.phone_b).await;
    assert_eq!(RtpPacket::parse(&p).unwrap().payload(), &payload[..]);
    c.session.close().await;
}
