//! Negotiation tables and timer flows on virtual time.

use std::time::{Duration, Instant};

use bytes::Bytes;
use sip::{HeaderName, Headers, Response, StatusCode};

use super::*;

fn headers(lines: &[(HeaderName, &str)]) -> Headers {
    let mut h = Headers::new();
    for (n, v) in lines {
        h.push(n.clone(), v.to_string());
    }
    h
}

fn response(status: u16, lines: &[(HeaderName, &str)]) -> Response {
    Response {
        status: StatusCode(status),
        reason: Bytes::from_static(b""),
        headers: headers(lines),
        body: Bytes::new(),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn session_expires_round_trip() {
    for text in ["1800", "1800;refresher=uac", "90;refresher=uas"] {
        let se = SessionExpires::parse(text.as_bytes()).unwrap();
        assert_eq!(se.to_string(), text);
    }
    let se = SessionExpires::parse(b" 4000 ; foo=bar ;Refresher = UAS ").unwrap();
    assert_eq!(
        se,
        SessionExpires {
            interval: 4000,
            refresher: Some(Refresher::Uas)
        }
    );
    assert_eq!(MinSe::parse(b" 120 ").unwrap(), MinSe(120));
    assert_eq!(MinSe(120).to_string(), "120");
}

#[test]
fn malformed_values() {
    use HeaderError::*;
    let table: &[(&[u8], HeaderError)] = &[
        (b"", NotANumber),
        (b"abc", NotANumber),
        (b"-90", NotANumber),
        (b"99999999999", NotANumber),
        (b"89", TooSmall(89)),
        (b"0", TooSmall(0)),
        (b"1800;;", BadParam),
        (b"1800 x", NotANumber),
        (b"1800;refresher=both", BadRefresher),
        (b"1800;refresher", BadRefresher),
    ];
    for (raw, err) in table {
        assert_eq!(SessionExpires::parse(raw), Err(err.clone()), "{raw:?}");
    }
    assert_eq!(MinSe::parse(b"60"), Err(TooSmall(60)));
    assert_eq!(MinSe::parse(b"x"), Err(NotANumber));
}

/// One negotiation case: request headers, our (Session-Expires, Min-SE),
/// the expected answer.
type Case = (Vec<(HeaderName, &'static str)>, (u32, u32), Answer);

#[test]
fn uas_negotiation_table() {
    use HeaderName::{MinSe as M, SessionExpires as S, Supported as K};
    let accept = |interval, refresher, require_timer| {
        Answer::Accept(Accept {
            negotiated: Negotiated {
                interval,
                refresher,
            },
            require_timer,
        })
    };
    let table: Vec<Case> = vec![
        // Supported: timer, no refresher: the UAC refreshes.
        (
            vec![(S, "1800"), (K, "100rel, timer")],
            (1800, 90),
            accept(1800, Refresher::Uac, true),
        ),
        // No Supported: timer: only we can refresh, no Require.
        (
            vec![(S, "1800")],
            (1800, 90),
            accept(1800, Refresher::Uas, false),
        ),
        // A refresher given is kept.
        (
            vec![(S, "1800;refresher=uas"), (K, "timer")],
            (1800, 90),
            accept(1800, Refresher::Uas, true),
        ),
        // Without Supported: timer a requested uac refresher is overruled.
        (
            vec![(S, "1800;refresher=uac")],
            (1800, 90),
            accept(1800, Refresher::Uas, false),
        ),
        // Below our Min-SE: 422 with ours.
        (
            vec![(S, "100"), (K, "timer")],
            (1800, 300),
            Answer::Reject { min_se: MinSe(300) },
        ),
        // We reduce a long interval to ours.
        (
            vec![(S, "7200"), (K, "timer")],
            (1800, 90),
            accept(1800, Refresher::Uac, true),
        ),
        // ... but not below their Min-SE.
        (
            vec![(S, "7200"), (M, "3600"), (K, "timer")],
            (1800, 90),
            accept(3600, Refresher::Uac, true),
        ),
        // ... nor below ours.
        (
            vec![(S, "7200")],
            (600, 900),
            accept(900, Refresher::Uas, false),
        ),
        // A shorter request than ours stands.
        (
            vec![(S, "300"), (M, "300")],
            (1800, 90),
            accept(300, Refresher::Uas, false),
        ),
        // No Session-Expires: we run the timer at our interval (§9).
        (
            vec![(K, "timer")],
            (1800, 90),
            accept(1800, Refresher::Uac, true),
        ),
        (
            vec![(M, "2000")],
            (1800, 90),
            accept(2000, Refresher::Uas, false),
        ),
    ];
    for (i, (req, (session_expires, min_se), expected)) in table.into_iter().enumerate() {
        let config = SessionConfig {
            session_expires,
            min_se,
            insist: false,
        };
        assert_eq!(answer(&config, &headers(&req)), Ok(expected), "row {i}");
    }
    let bad = headers(&[(HeaderName::SessionExpires, "30")]);
    assert_eq!(
        answer(&SessionConfig::default(), &bad),
        Err(HeaderError::TooSmall(30))
    );
}

#[test]
fn uas_2xx_headers() {
    let req = headers(&[
        (HeaderName::SessionExpires, "1800"),
        (HeaderName::Supported, "timer"),
    ]);
    let Ok(Answer::Accept(a)) = answer(&SessionConfig::default(), &req) else {
        panic!("expected accept");
    };
    let mut ok = Headers::new();
    a.apply(&mut ok);
    assert_eq!(
        ok.get_str(&HeaderName::SessionExpires),
        Some("1800;refresher=uac")
    );
    assert_eq!(ok.get_str(&HeaderName::Require), Some("timer"));
    assert!(a.negotiated.we_refresh(Refresher::Uac) && !a.negotiated.we_refresh(Refresher::Uas));

    let req = headers(&[(HeaderName::SessionExpires, "1800")]);
    let Ok(Answer::Accept(a)) = answer(&SessionConfig::default(), &req) else {
        panic!("expected accept");
    };
    let mut ok = Headers::new();
    a.apply(&mut ok);
    assert_eq!(
        ok.get_str(&HeaderName::SessionExpires),
        Some("1800;refresher=uas")
    );
    assert_eq!(ok.get(&HeaderName::Require), None);
}

#[test]
fn uac_request_headers() {
    let uac = UacSession::new(SessionConfig::default());
    let mut h = headers(&[(HeaderName::Supported, "100rel")]);
    uac.request_headers(&mut h);
    assert_eq!(h.get_str(&HeaderName::SessionExpires), Some("1800"));
    assert_eq!(h.get_str(&HeaderName::MinSe), Some("90"));
    assert!(supports_timer(&h));
    // Not added twice.
    uac.request_headers(&mut h);
    assert_eq!(h.count(&HeaderName::Supported), 2);
}

#[test]
fn uac_2xx_processing() {
    let uac = UacSession::new(SessionConfig::default());
    let ok = response(200, &[(HeaderName::SessionExpires, "900;refresher=uas")]);
    assert_eq!(
        uac.handle_success(&ok),
        Ok(Some(Negotiated {
            interval: 900,
            refresher: Refresher::Uas
        }))
    );
    let ok = response(200, &[(HeaderName::SessionExpires, "900")]);
    assert_eq!(
        uac.handle_success(&ok).unwrap().unwrap().refresher,
        Refresher::Uac
    );
    let bare = response(200, &[]);
    assert_eq!(uac.handle_success(&bare), Ok(None));
    let insisting = UacSession::new(SessionConfig {
        insist: true,
        ..SessionConfig::default()
    });
    assert_eq!(
        insisting.handle_success(&bare),
        Ok(Some(Negotiated {
            interval: 1800,
            refresher: Refresher::Uac
        }))
    );
    let bad = response(200, &[(HeaderName::SessionExpires, "1800;refresher=x")]);
    assert_eq!(uac.handle_success(&bad), Err(HeaderError::BadRefresher));
}

#[test]
fn uac_422_retry_flow() {
    let mut uac = UacSession::new(SessionConfig {
        session_expires: 120,
        ..SessionConfig::default()
    });
    let mut invite = Headers::new();
    uac.request_headers(&mut invite);

    // The UAS (the PBX's own logic, strict) rejects with its Min-SE.
    let strict = SessionConfig {
        session_expires: 1800,
        min_se: 600,
        insist: false,
    };
    let Ok(Answer::Reject { min_se }) = answer(&strict, &invite) else {
        panic!("expected 422");
    };
    let r422 = response(
        INTERVAL_TOO_SMALL.0,
        &[(HeaderName::MinSe, &min_se.to_string())],
    );
    assert_eq!(uac.handle_422(&r422), Ok(600));

    let mut retry = Headers::new();
    uac.request_headers(&mut retry);
    assert_eq!(retry.get_str(&HeaderName::SessionExpires), Some("600"));
    assert_eq!(retry.get_str(&HeaderName::MinSe), Some("600"));
    let Ok(Answer::Accept(a)) = answer(&strict, &retry) else {
        panic!("expected accept");
    };
    assert_eq!(a.negotiated.interval, 600);

    // A second 422 asking for no more would loop.
    assert_eq!(
        uac.handle_422(&r422),
        Err(RetryError::NoProgress {
            asked: 600,
            sent: 600
        })
    );
    assert_eq!(
        uac.handle_422(&response(422, &[])),
        Err(RetryError::MinSe(HeaderError::NotANumber))
    );
    assert_eq!(
        uac.handle_422(&response(400, &[])),
        Err(RetryError::NotA422(StatusCode(400)))
    );
}

#[test]
fn refresh_at_half_interval_exactly() {
    let t0 = Instant::now();
    let mut t = SessionTimer::start(secs(1800), true, t0);
    assert_eq!(t.poll_timeout(), Some(t0 + secs(900)));
    t.handle_timeout(t0 + secs(900) - Duration::from_millis(1));
    assert_eq!(t.poll_event(), None);
    t.handle_timeout(t0 + secs(900));
    assert_eq!(t.poll_event(), Some(Event::Refresh));
    assert_eq!(t.poll_event(), None);
    // No refresh succeeds: the session still ends.
    assert_eq!(t.poll_timeout(), Some(t0 + secs(1800 - 32)));
    t.handle_timeout(t0 + secs(1800 - 32));
    assert_eq!(t.poll_event(), Some(Event::Expired));
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn expiry_when_the_other_side_refreshes() {
    let t0 = Instant::now();
    let mut t = SessionTimer::start(secs(1800), false, t0);
    assert_eq!(t.poll_timeout(), Some(t0 + secs(1768)));
    t.handle_timeout(t0 + secs(1767));
    assert_eq!(t.poll_event(), None);
    t.handle_timeout(t0 + secs(1768));
    assert_eq!(t.poll_event(), Some(Event::Expired));
    assert_eq!(t.poll_timeout(), None);

    let mut t = SessionTimer::start(secs(90), false, t0);
    assert_eq!(t.poll_timeout(), Some(t0 + secs(60)));
    t.handle_timeout(t0 + secs(60));
    assert_eq!(t.poll_event(), Some(Event::Expired));
}

#[test]
fn refreshed_moves_the_deadlines() {
    let t0 = Instant::now();
    let mut t = SessionTimer::start(secs(1800), false, t0);
    t.refreshed(t0 + secs(1000), secs(1800), false);
    assert_eq!(t.poll_timeout(), Some(t0 + secs(2768)));
    t.handle_timeout(t0 + secs(1768));
    assert_eq!(t.poll_event(), None);

    // The roles swap and the interval shrinks on a later refresh.
    t.refreshed(t0 + secs(2000), secs(600), true);
    assert_eq!(t.poll_timeout(), Some(t0 + secs(2300)));
    t.handle_timeout(t0 + secs(2300));
    assert_eq!(t.poll_event(), Some(Event::Refresh));
    t.refreshed(t0 + secs(2301), secs(600), true);
    assert_eq!(t.poll_timeout(), Some(t0 + secs(2601)));
    assert_eq!(t.poll_event(), None);
}

#[test]
fn late_timeout_fires_both_in_order() {
    let t0 = Instant::now();
    let mut t = SessionTimer::start(secs(90), true, t0);
    t.handle_timeout(t0 + secs(3600));
    assert_eq!(t.poll_event(), Some(Event::Refresh));
    assert_eq!(t.poll_event(), Some(Event::Expired));
    assert_eq!(t.poll_event(), None);
}
