use super::*;
use crate::rtp::packet::{RtpHeader, RtpPacket};

const PUBLIC: &str = "203.0.113.10:4000";
const NAT_PORT: &str = "203.0.113.10:61000";
const STRANGER: &str = "198.51.100.66:4000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn rtp(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 12 + 160];
    let header = RtpHeader {
        payload_type: 0,
        sequence: seq,
        timestamp: ts,
        ssrc,
        ..Default::default()
    };
    header.write(&[0xd5; 160], &mut buf).unwrap();
    buf
}

fn config(signalled: &str) -> RelayConfig {
    RelayConfig {
        signalled: Some(addr(signalled)),
        out_ssrc: 0x5050_5050,
        initial_sequence: 1000,
        initial_timestamp: 50_000,
        ..Default::default()
    }
}

/// Sends a packet and returns `(action, seq, ts, ssrc, marker)` as forwarded.
fn send(
    relay: &mut RtpRelay,
    src: &str,
    mut pkt: Vec<u8>,
    now: Instant,
) -> (Action, Option<(u16, u32, u32, bool)>) {
    let action = relay.handle_packet(addr(src), &mut pkt, now);
    let out = match action {
        Action::Forward(len) => {
            let p = RtpPacket::parse(&pkt[..len]).unwrap();
            assert_eq!(p.payload(), [0xd5; 160], "payload untouched");
            Some((p.sequence(), p.timestamp(), p.ssrc(), p.marker()))
        }
        _ => None,
    };
    (action, out)
}

fn events(relay: &mut RtpRelay) -> Vec<RelayEvent> {
    std::iter::from_fn(|| relay.poll_event()).collect()
}

#[test]
fn latches_first_packet_and_rejects_stranger() {
    let t0 = Instant::now();
    let mut relay = RtpRelay::new(config(PUBLIC), t0);
    // NAT changed the port: the signalled IP still matches.
    let (action, out) = send(&mut relay, NAT_PORT, rtp(1, 7, 800), t0);
    assert_eq!(action, Action::Forward(172));
    assert_eq!(out, Some((1000, 50_000, 0x5050_5050, false)));
    assert_eq!(events(&mut relay), [RelayEvent::Latched(addr(NAT_PORT))]);

    let (action, _) = send(&mut relay, STRANGER, rtp(1, 8, 960), t0);
    assert_eq!(action, Action::Drop(DropReason::Stranger));
    // Even the signalled port is a stranger once the NAT mapping latched.
    let (action, _) = send(&mut relay, PUBLIC, rtp(1, 8, 960), t0);
    assert_eq!(action, Action::Drop(DropReason::Stranger));
    let (_, out) = send(&mut relay, NAT_PORT, rtp(1, 8, 960), t0);
    assert_eq!(out, Some((1001, 50_160, 0x5050_5050, false)));

    let c = relay.counters();
    assert_eq!(
        (c.packets_in, c.packets_out, c.dropped_strangers),
        (4, 2, 2)
    );
    assert_eq!((c.bytes_in, c.bytes_out), (4 * 172, 2 * 172));
    assert_eq!(relay.latched(), Some(addr(NAT_PORT)));
    assert_eq!(relay.receive_stats().received(), 2);
}

#[test]
fn public_signalled_address_refuses_other_ips_before_latching() {
    let t0 = Instant::now();
    let mut relay = RtpRelay::new(config(PUBLIC), t0);
    let (action, _) = send(&mut relay, STRANGER, rtp(1, 7, 800), t0);
    assert_eq!(action, Action::Drop(DropReason::UnexpectedSource));
    assert_eq!(relay.latched(), None);
    assert_eq!(relay.counters().dropped_unexpected, 1);
    assert!(events(&mut relay).is_empty());
}

#[test]
fn private_or_unknown_signalled_address_latches_anywhere() {
    let t0 = Instant::now();
    for signalled in [
        Some("192.168.1.20:4000"),
        Some("100.64.3.4:4000"),
        Some("0.0.0.0:4000"),
        None,
    ] {
        let cfg = RelayConfig {
            signalled: signalled.map(addr),
            ..config(PUBLIC)
        };
        let mut relay = RtpRelay::new(cfg, t0);
        let (action, _) = send(&mut relay, STRANGER, rtp(1, 7, 800), t0);
        assert_eq!(action, Action::Forward(172), "{signalled:?}");
    }
    // Strict policy refuses even then.
    let cfg = RelayConfig {
        signalled: Some(addr("192.168.1.20:4000")),
        latch: LatchPolicy::SignalledIp,
        ..config(PUBLIC)
    };
    let mut relay = RtpRelay::new(cfg, t0);
    let (action, _) = send(&mut relay, STRANGER, rtp(1, 7, 800), t0);
    assert_eq!(action, Action::Drop(DropReason::UnexpectedSource));
}

#[test]
fn relatch_only_on_request() {
    let t0 = Instant::now();
    let mut relay = RtpRelay::new(config(PUBLIC), t0);
    send(&mut relay, PUBLIC, rtp(1, 7, 800), t0);
    let moved = "198.51.100.7:5000";
    assert_eq!(
        send(&mut relay, moved, rtp(1, 8, 960), t0).0,
        Action::Drop(DropReason::Stranger)
    );

    // A re-INVITE moves the media to `moved`.
    let t1 = t0 + Duration::from_millis(40);
    relay.relatch(Some(addr(moved)), t1);
    assert_eq!(relay.latched(), None);
    let (action, out) = send(&mut relay, moved, rtp(1, 9, 1120), t1);
    assert_eq!(action, Action::Forward(172));
    assert_eq!(out.map(|o| o.0), Some(1002), "same source, same mapping");
    assert_eq!(relay.latched(), Some(addr(moved)));
    assert_eq!(
        send(&mut relay, PUBLIC, rtp(1, 10, 1280), t1).0,
        Action::Drop(DropReason::Stranger)
    );
    assert_eq!(
        events(&mut relay),
        [
            RelayEvent::Latched(addr(PUBLIC)),
            RelayEvent::Latched(addr(moved))
        ]
    );
}

#[test]
fn ssrc_change_keeps_output_continuous() {
    let t0 = Instant::now();
    let ms20 = Duration::from_millis(20);
    let mut relay = RtpRelay::new(config(PUBLIC), t0);
    for i in 0..3u16 {
        let (_, out) = send(
            &mut relay,
            PUBLIC,
            rtp(0xaaaa, 65534u16.wrapping_add(i), 160 * u32::from(i)),
            t0 + ms20 * u32::from(i),
        );
        assert_eq!(out.unwrap().0, 1000 + i);
    }
    events(&mut relay);
    // Transfer: a new source with unrelated numbering, 20 ms after the last.
    let t3 = t0 + ms20 * 3;
    let (_, out) = send(&mut relay, PUBLIC, rtp(0xbbbb, 31_000, 9_999_999), t3);
    assert_eq!(out, Some((1003, 50_000 + 480, 0x5050_5050, true)));
    assert_eq!(
        events(&mut relay),
        [RelayEvent::SourceChanged {
            old: 0xaaaa,
            new: 0xbbbb
        }]
    );
    let (_, out) = send(
        &mut relay,
        PUBLIC,
        rtp(0xbbbb, 31_001, 9_999_999 + 160),
        t3 + ms20,
    );
    assert_eq!(out, Some((1004, 50_000 + 640, 0x5050_5050, false)));
    // A late packet of the old source keeps its old place.
    let (_, out) = send(&mut relay, PUBLIC, rtp(0xaaaa, 0, 320), t3 + ms20);
    assert_eq!(out.map(|o| o.0), Some(1002));
    assert!(events(&mut relay).is_empty());
    let (_, out) = send(
        &mut relay,
        PUBLIC,
        rtp(0xbbbb, 31_002, 9_999_999 + 320),
        t3 + ms20 * 2,
    );
    assert_eq!(out.map(|o| (o.0, o.1)), Some((1005, 50_800)));
    assert_eq!(relay.receive_stats().received(), 3);
}

#[test]
fn returning_source_is_a_new_switch() {
    // A (hold) -> B (music on hold) -> A again after unhold.
    let t0 = Instant::now();
    let ms20 = Duration::from_millis(20);
    let mut relay = RtpRelay::new(config(PUBLIC), t0);
    send(&mut relay, PUBLIC, rtp(0xa, 100, 0), t0);
    send(&mut relay, PUBLIC, rtp(0xa, 101, 160), t0 + ms20);
    for i in 0..5u16 {
        let at = t0 + ms20 * u32::from(2 + i);
        send(&mut relay, PUBLIC, rtp(0xb, 7 + i, 160 * u32::from(i)), at);
    }
    // A resumes its own numbering; the output must not reuse 1002-1006.
    let (_, out) = send(&mut relay, PUBLIC, rtp(0xa, 102, 320), t0 + ms20 * 7);
    assert_eq!(out.map(|o| (o.0, o.3)), Some((1007, true)));
    let (_, out) = send(&mut relay, PUBLIC, rtp(0xa, 103, 480), t0 + ms20 * 8);
    assert_eq!(out.map(|o| o.0), Some(1008));
    let changes = events(&mut relay)
        .into_iter()
        .filter(|e| matches!(e, RelayEvent::SourceChanged { .. }))
        .count();
    assert_eq!(changes, 2);
}

#[test]
fn output_sequence_wraps() {
    let t0 = Instant::now();
    let cfg = RelayConfig {
        initial_sequence: 65535,
        ..config(PUBLIC)
    };
    let mut relay = RtpRelay::new(cfg, t0);
    assert_eq!(
        send(&mut relay, PUBLIC, rtp(1, 10, 0), t0).1.unwrap().0,
        65535
    );
    assert_eq!(
        send(&mut relay, PUBLIC, rtp(1, 11, 160), t0).1.unwrap().0,
        0
    );
    // Source change after the wrap continues from 0.
    assert_eq!(send(&mut relay, PUBLIC, rtp(2, 500, 0), t0).1.unwrap().0, 1);
}

#[test]
fn media_timeout_fires_exactly_on_time() {
    let t0 = Instant::now();
    let timeout = Duration::from_secs(10);
    let cfg = RelayConfig {
        media_timeout: Some(timeout),
        ..config(PUBLIC)
    };
    let mut relay = RtpRelay::new(cfg, t0);
    assert_eq!(relay.poll_timeout(), Some(t0 + timeout));
    let t1 = t0 + Duration::from_secs(3);
    send(&mut relay, PUBLIC, rtp(1, 1, 0), t1);
    events(&mut relay);
    let deadline = t1 + timeout;
    assert_eq!(relay.poll_timeout(), Some(deadline));

    // Strangers and malformed packets do not keep the media alive.
    send(
        &mut relay,
        STRANGER,
        rtp(1, 2, 160),
        t1 + Duration::from_secs(5),
    );
    relay.handle_packet(addr(PUBLIC), &mut [0x80, 0, 1], t1 + Duration::from_secs(5));
    assert_eq!(relay.poll_timeout(), Some(deadline));

    relay.handle_timeout(deadline - Duration::from_nanos(1));
    assert!(events(&mut relay).is_empty());
    relay.handle_timeout(deadline);
    assert_eq!(events(&mut relay), [RelayEvent::MediaTimeout]);
    assert_eq!(relay.poll_timeout(), None, "fires once");
    relay.handle_timeout(deadline + timeout * 2);
    assert!(events(&mut relay).is_empty());

    let t2 = deadline + Duration::from_secs(1);
    send(&mut relay, PUBLIC, rtp(1, 3, 320), t2);
    assert_eq!(events(&mut relay), [RelayEvent::MediaResumed]);
    assert_eq!(relay.poll_timeout(), Some(t2 + timeout));

    // On hold: no timeout at all.
    relay.set_media_timeout(None, t2);
    assert_eq!(relay.poll_timeout(), None);
}

#[test]
fn malformed_is_dropped_and_does_not_latch() {
    let t0 = Instant::now();
    let mut relay = RtpRelay::new(config(PUBLIC), t0);
    let mut short = [0x80u8, 0, 0, 1];
    assert_eq!(
        relay.handle_packet(addr(PUBLIC), &mut short, t0),
        Action::Drop(DropReason::Malformed(RtpError::TooShort(4)))
    );
    let mut bad_version = rtp(1, 1, 0);
    bad_version[0] = 0x40;
    assert!(matches!(
        relay.handle_packet(addr(PUBLIC), &mut bad_version, t0),
        Action::Drop(DropReason::Malformed(RtpError::BadVersion(1)))
    ));
    assert_eq!(relay.latched(), None);
    assert_eq!(relay.counters().malformed, 2);
}

#[test]
fn rtcp_is_handed_out_only_from_latched_peer() {
    let t0 = Instant::now();
    let mut relay = RtpRelay::new(config(PUBLIC), t0);
    let mut rr = [0u8; 8];
    crate::rtp::rtcp::write_receiver_report(1, &[], &mut rr).unwrap();
    assert_eq!(
        relay.handle_packet(addr(PUBLIC), &mut rr, t0),
        Action::Drop(DropReason::NotLatched)
    );
    send(&mut relay, PUBLIC, rtp(1, 1, 0), t0);
    assert_eq!(
        relay.handle_packet(addr(PUBLIC), &mut rr, t0),
        Action::Rtcp(8)
    );
    assert_eq!(
        relay.handle_packet(addr(STRANGER), &mut rr, t0),
        Action::Drop(DropReason::Stranger)
    );
    assert_eq!(relay.counters().rtcp, 1);
}

#[test]
fn payload_type_is_mapped() {
    let t0 = Instant::now();
    let cfg = RelayConfig {
        payload_type_map: vec![(0, 8)],
        ..config(PUBLIC)
    };
    let mut relay = RtpRelay::new(cfg, t0);
    let mut pkt = rtp(1, 1, 0);
    relay.handle_packet(addr(PUBLIC), &mut pkt, t0);
    assert_eq!(RtpPacket::parse(&pkt).unwrap().payload_type(), 8);
}

#[test]
fn ipv4_mapped_ipv6_matches_signalled_ipv4() {
    let t0 = Instant::now();
    let mut relay = RtpRelay::new(config(PUBLIC), t0);
    let (action, _) = send(&mut relay, "[::ffff:203.0.113.10]:4000", rtp(1, 1, 0), t0);
    assert_eq!(action, Action::Forward(172));
}

proptest::proptest! {
    #[test]
    fn random_datagrams_never_panic(
        packets in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), 1..20),
    ) {
        let t0 = Instant::now();
        let mut relay = RtpRelay::new(config(PUBLIC), t0);
        for (i, mut data) in packets.into_iter().enumerate() {
            let len = data.len();
            let now = t0 + Duration::from_millis(20 * i as u64);
            match relay.handle_packet(addr(PUBLIC), &mut data, now) {
                Action::Forward(n) | Action::Rtcp(n) => proptest::prop_assert_eq!(n, len),
                Action::Drop(_) => {}
            }
            relay.handle_timeout(now);
            while relay.poll_event().is_some() {}
        }
    }
}

#[test]
fn packets_forwarded_elsewhere_keep_counters_timeout_and_continuity() {
    let t0 = Instant::now();
    let mut relay = RtpRelay::new(
        RelayConfig {
            media_timeout: Some(Duration::from_secs(5)),
            ..config(PUBLIC)
        },
        t0,
    );
    send(&mut relay, PUBLIC, rtp(7, 100, 8000), t0);
    assert_eq!(relay.newest_sent(), Some((1000, 50_000)));
    // The kernel forwarded 250 more packets (5 s) with the same offsets.
    let last = t0 + Duration::from_secs(5);
    relay.note_forwarded(250, 250 * 172, (1250, 50_000 + 250 * 160), last);
    assert_eq!(relay.counters().packets_out, 251);
    assert_eq!(relay.counters().bytes_in, 251 * 172);
    assert_eq!(relay.newest_sent(), Some((1250, 90_000)));
    // The media timeout counts from the last forwarded packet.
    relay.handle_timeout(t0 + Duration::from_secs(6));
    assert!(
        events(&mut relay)
            .iter()
            .all(|e| *e != RelayEvent::MediaTimeout)
    );
    assert_eq!(relay.poll_timeout(), Some(last + Duration::from_secs(5)));
    // A new source continues right after what the kernel sent.
    let (_, out) = send(
        &mut relay,
        PUBLIC,
        rtp(8, 7, 123),
        last + Duration::from_millis(20),
    );
    let (seq, ts, _, marker) = out.unwrap();
    assert_eq!(seq, 1251);
    assert_eq!(ts, 90_000 + 160);
    assert!(marker);
    // A stale report (older newest) moves nothing back.
    relay.note_forwarded(1, 172, (1200, 1), last);
    assert_eq!(relay.newest_sent(), Some((1251, 90_160)));
}

#[test]
fn media_forwarded_elsewhere_after_a_timeout_resumes_it() {
    let t0 = Instant::now();
    let mut relay = RtpRelay::new(
        RelayConfig {
            media_timeout: Some(Duration::from_secs(1)),
            ..config(PUBLIC)
        },
        t0,
    );
    send(&mut relay, PUBLIC, rtp(7, 100, 8000), t0);
    relay.handle_timeout(t0 + Duration::from_secs(2));
    assert!(events(&mut relay).contains(&RelayEvent::MediaTimeout));
    relay.note_forwarded(3, 516, (1003, 50_480), t0 + Duration::from_secs(3));
    assert_eq!(events(&mut relay), vec![RelayEvent::MediaResumed]);
    // Nothing forwarded: nothing changes.
    relay.note_forwarded(0, 0, (0, 0), t0 + Duration::from_secs(9));
    assert_eq!(relay.poll_timeout(), Some(t0 + Duration::from_secs(4)));
}
