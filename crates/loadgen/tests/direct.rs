//! The whole load generator end to end without a server: the UAC side
//! calls the UAS side directly on loopback (ports 24000-24999, clear of the
//! ranges other tests use; each test has its own slice).

use std::time::{Duration, Instant};

use loadgen::{Config, Report};

fn check(r: &Report, calls: u64, took: Duration) {
    println!("{}", r.text());
    println!("{}", r.json());
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(r.attempted, calls);
    assert_eq!(r.established, calls, "{:?}", r.failed);
    assert_eq!(r.failed_total(), 0);
    assert_eq!(r.completed, calls);
    assert_eq!(r.uas_invites, calls);
    assert_eq!(r.dropped + r.bye_failed + r.ack_timeouts + r.no_media, 0);
    assert_eq!(r.peak_concurrent, calls);
    for d in [&r.fwd, &r.rev] {
        // 2 s at 50 packets/s per call, give or take the start/stop edges.
        assert!(
            d.sent >= calls * 90 && d.sent <= calls * 110,
            "sent {}",
            d.sent
        );
        assert_eq!(d.received, d.sent, "loss");
        assert_eq!(d.misrouted + d.duplicates + d.foreign + d.send_errors, 0);
        assert_eq!(d.jitter.count(), calls);
        assert!(d.transit.max() < 500_000, "transit {} us", d.transit.max());
    }
    assert_eq!(r.setup_us.count(), calls);
    assert!(r.ok());
    let json = r.json();
    assert!(json.starts_with('{') && json.ends_with('}') && !json.contains('\n'));
    assert!(json.contains(&format!("\"calls_established\":{calls}")));
}

#[test]
fn twenty_direct_calls_without_loss() {
    let cfg = Config::direct(20, Duration::from_secs(2), 24000, (24100, 24499));
    let started = Instant::now();
    let r = loadgen::run(cfg).expect("run");
    check(&r, 20, started.elapsed());
    assert_eq!(r.invite_challenges + r.uas_challenges, 0);
}

#[test]
fn twenty_direct_calls_through_a_407_challenge() {
    let mut cfg = Config::direct(20, Duration::from_secs(2), 24002, (24500, 24899));
    cfg.direct_challenge = true;
    cfg.caller_password = "caller-secret".into();
    let started = Instant::now();
    let r = loadgen::run(cfg).expect("run");
    check(&r, 20, started.elapsed());
    // Every INVITE challenged once, the 407 ACKed on the INVITE's branch,
    // the retry's Proxy-Authorization verified by sip::auth.
    assert_eq!(r.uas_challenges, 20);
    assert_eq!(r.uas_challenge_acks, 20);
    assert_eq!(r.invite_challenges, 20);
    assert_eq!(r.uas_auth_failed, 0);
}

#[test]
fn wrong_password_fails_with_403() {
    let mut cfg = Config::direct(3, Duration::from_millis(500), 24004, (24900, 24999));
    cfg.direct_challenge = true;
    cfg.caller_password = "wrong-password".into();
    cfg.direct_challenge_password = Some("caller-secret".into());
    let r = loadgen::run(cfg).expect("run");
    println!("{}", r.text());
    assert_eq!(r.established, 0);
    assert_eq!(r.failed.get(&403), Some(&3));
    assert_eq!(r.uas_auth_failed, 3);
    assert!(!r.ok());
}
