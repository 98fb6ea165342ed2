//! Registration flows on virtual time against a registrar that checks
//! digests with the server side of `sip::auth`.

use std::time::{Duration, Instant};

use sip::auth::{Algorithm, DigestAuth, Verdict, ha1};
use sip::build::response_to;
use sip::header::HeaderName;
use sip::transaction::Transport;
use sip::{Message, Request, Response, StatusCode, Uri};

use super::*;

const REALM: &str = "sip.provider.example";
const CONTACT: &str = "sip:trunk1@192.0.2.10:5060";

fn config() -> TrunkConfig {
    TrunkConfig::new(
        Uri::parse_str("sip:sip.provider.example").unwrap(),
        Transport::Udp,
        Uri::parse_str("sip:4420@sip.provider.example").unwrap(),
        "4420",
        Secret::new("s3cret"),
        Uri::parse_str(CONTACT).unwrap(),
        "192.0.2.10:5060",
    )
}

/// A registrar with one account, `4420` / `s3cret`.
struct Registrar {
    auth: DigestAuth,
}

impl Registrar {
    fn new(algorithms: Vec<Algorithm>, t0: Instant) -> Registrar {
        Registrar {
            auth: DigestAuth::new(REALM, algorithms, t0, Duration::from_secs(7200)),
        }
    }

    fn verify(&mut self, req: &Request, now: Instant) -> Verdict {
        let creds: Vec<&[u8]> = req
            .headers
            .get_all(&HeaderName::Authorization)
            .map(|v| &v[..])
            .collect();
        self.auth.verify(creds, "REGISTER", now, |u, a| {
            (u == "4420").then(|| ha1(a, "4420", REALM, "s3cret"))
        })
    }

    fn challenge(&mut self, req: &Request, now: Instant, stale: bool) -> Response {
        let mut r = response_to(&req.headers, StatusCode(401), "Unauthorized", Some("srv"));
        for c in self.auth.challenges(now, stale) {
            r.headers.push(HeaderName::WwwAuthenticate, c);
        }
        r
    }
}

fn ok(req: &Request, contact_expires: u32) -> Response {
    let mut r = response_to(&req.headers, StatusCode::OK, "OK", Some("srv"));
    r.headers.push(
        HeaderName::Contact,
        format!("<sip:other@198.51.100.1>;expires=99, <{CONTACT}>;expires={contact_expires}"),
    );
    r
}

/// Takes the next request and checks that it survives serialization,
/// parsing and the validation a UAS applies.
fn take(reg: &mut TrunkRegistration) -> Request {
    let req = reg.poll_request().expect("a REGISTER to send");
    assert!(reg.poll_request().is_none());
    let bytes = Message::Request(req.clone()).to_bytes();
    let Message::Request(parsed) = Message::parse(bytes).expect("parses") else {
        panic!("not a request");
    };
    sip::validate::check_request(&parsed).expect("valid request");
    sip::validate::check_register(&parsed).expect("valid REGISTER");
    parsed
}

fn header<'a>(req: &'a Request, name: &HeaderName) -> &'a str {
    req.headers.get_str(name).unwrap_or("")
}

fn branch(req: &Request) -> String {
    req.headers.top_via().unwrap().branch().unwrap().to_string()
}

fn auth_param(req: &Request, name: &str) -> Option<String> {
    let v = req.headers.get(&HeaderName::Authorization)?;
    let c = sip::auth::Credentials::parse(v).ok()?;
    match name {
        "nonce" => Some(c.nonce),
        "nc" => c.nc,
        "algorithm" => c.algorithm,
        "cnonce" => c.cnonce,
        _ => None,
    }
}

fn full_flow(algorithms: Vec<Algorithm>, expect_alg: &str) {
    let t0 = Instant::now();
    let mut server = Registrar::new(algorithms, t0);
    let mut reg = TrunkRegistration::new(config(), 42);
    assert_eq!(reg.state(), TrunkState::Idle);
    reg.start(t0);
    assert_eq!(reg.state(), TrunkState::Registering);

    let r1 = take(&mut reg);
    assert_eq!(r1.uri.as_str(), "sip:sip.provider.example");
    assert!(branch(&r1).starts_with("z9hG4bK"));
    assert_eq!(header(&r1, &HeaderName::MaxForwards), "70");
    assert_eq!(header(&r1, &HeaderName::CSeq), "1 REGISTER");
    assert_eq!(
        header(&r1, &HeaderName::To),
        "<sip:4420@sip.provider.example>"
    );
    assert_eq!(header(&r1, &HeaderName::Expires), "3600");
    assert_eq!(
        header(&r1, &HeaderName::Contact),
        format!("<{CONTACT}>;expires=3600")
    );
    assert!(
        header(&r1, &HeaderName::Via).starts_with("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK")
    );
    assert!(r1.headers.get(&HeaderName::Authorization).is_none());
    assert_eq!(server.verify(&r1, t0), Verdict::Challenge);
    reg.handle_response(&server.challenge(&r1, t0, false), t0);

    let r2 = take(&mut reg);
    assert_eq!(header(&r2, &HeaderName::CSeq), "2 REGISTER");
    assert_eq!(r2.headers.call_id(), r1.headers.call_id());
    assert_eq!(
        r2.headers.from().unwrap().tag(),
        r1.headers.from().unwrap().tag()
    );
    assert_ne!(branch(&r2), branch(&r1));
    assert_eq!(auth_param(&r2, "nc").as_deref(), Some("00000001"));
    assert_eq!(auth_param(&r2, "algorithm").as_deref(), Some(expect_alg));
    assert!(matches!(
        server.verify(&r2, t0),
        Verdict::Authenticated { .. }
    ));
    reg.handle_response(&ok(&r2, 1800), t0);
    assert_eq!(
        reg.poll_event(),
        Some(TrunkEvent::Registered { expires: 1800 })
    );
    assert_eq!(reg.state(), TrunkState::Registered { expires: 1800 });
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(900)));

    // Nothing happens before the refresh is due.
    reg.handle_timeout(t0 + Duration::from_secs(899));
    assert!(reg.poll_request().is_none());
    let t1 = t0 + Duration::from_secs(900);
    reg.handle_timeout(t1);
    let r3 = take(&mut reg);
    assert_eq!(header(&r3, &HeaderName::CSeq), "3 REGISTER");
    assert_eq!(r3.headers.call_id(), r1.headers.call_id());
    assert_ne!(branch(&r3), branch(&r2));
    assert_eq!(auth_param(&r3, "nonce"), auth_param(&r2, "nonce"));
    assert_eq!(auth_param(&r3, "nc").as_deref(), Some("00000002"));
    assert_ne!(auth_param(&r3, "cnonce"), auth_param(&r2, "cnonce"));
    assert!(matches!(
        server.verify(&r3, t1),
        Verdict::Authenticated { .. }
    ));
    // A late response to the earlier request changes nothing.
    reg.handle_response(&ok(&r2, 1800), t1);
    assert!(reg.poll_event().is_none());
    reg.handle_response(&ok(&r3, 3600), t1);
    assert_eq!(
        reg.poll_event(),
        Some(TrunkEvent::Registered { expires: 3600 })
    );
    assert_eq!(reg.poll_timeout(), Some(t1 + Duration::from_secs(1800)));
}

#[test]
fn register_challenge_refresh_md5() {
    full_flow(vec![Algorithm::Md5], "MD5");
}

#[test]
fn register_challenge_refresh_sha256_preferred() {
    full_flow(vec![Algorithm::Sha256, Algorithm::Md5], "SHA-256");
}

#[test]
fn stale_nonce_on_refresh_is_answered() {
    let t0 = Instant::now();
    let mut server = Registrar::new(vec![Algorithm::Md5], t0);
    let mut reg = TrunkRegistration::new(config(), 7);
    reg.start(t0);
    let r1 = take(&mut reg);
    reg.handle_response(&server.challenge(&r1, t0, false), t0);
    let r2 = take(&mut reg);
    reg.handle_response(&ok(&r2, 3600), t0);
    let t1 = reg.poll_timeout().unwrap();
    reg.handle_timeout(t1);
    let r3 = take(&mut reg);
    // The server forgot the nonce: a new one with stale=true.
    reg.handle_response(&server.challenge(&r3, t1, true), t1);
    let r4 = take(&mut reg);
    assert_ne!(auth_param(&r4, "nonce"), auth_param(&r3, "nonce"));
    assert_eq!(auth_param(&r4, "nc").as_deref(), Some("00000001"));
    assert!(matches!(
        server.verify(&r4, t1),
        Verdict::Authenticated { .. }
    ));
    reg.handle_response(&ok(&r4, 3600), t1);
    assert_eq!(
        reg.poll_event(),
        Some(TrunkEvent::Registered { expires: 3600 })
    );
    assert_eq!(
        reg.poll_event(),
        Some(TrunkEvent::Registered { expires: 3600 })
    );
}

#[test]
fn interval_too_brief_retries_with_min_expires() {
    let t0 = Instant::now();
    let mut reg = TrunkRegistration::new(config(), 1);
    reg.start(t0);
    let r1 = take(&mut reg);
    let mut too_brief = response_to(&r1.headers, StatusCode(423), "Interval Too Brief", None);
    too_brief.headers.push(HeaderName::MinExpires, "7200");
    reg.handle_response(&too_brief, t0);
    let r2 = take(&mut reg);
    assert_eq!(header(&r2, &HeaderName::Expires), "7200");
    assert_eq!(
        header(&r2, &HeaderName::Contact),
        format!("<{CONTACT}>;expires=7200")
    );
    // Granted through the Expires header when no Contact comes back.
    let mut r = response_to(&r2.headers, StatusCode::OK, "OK", None);
    r.headers.push(HeaderName::Expires, "7200");
    reg.handle_response(&r, t0);
    assert_eq!(
        reg.poll_event(),
        Some(TrunkEvent::Registered { expires: 7200 })
    );
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(3600)));

    // A 423 that does not raise the expiry is a failure, not a loop.
    reg.handle_timeout(t0 + Duration::from_secs(3600));
    let r3 = take(&mut reg);
    let mut again = response_to(&r3.headers, StatusCode(423), "Interval Too Brief", None);
    again.headers.push(HeaderName::MinExpires, "60");
    reg.handle_response(&again, t0);
    assert!(matches!(
        reg.poll_event(),
        Some(TrunkEvent::Failed {
            status: StatusCode(423),
            ..
        })
    ));
}

#[test]
fn wrong_password_fails_with_doubling_backoff() {
    let t0 = Instant::now();
    let mut server = Registrar::new(vec![Algorithm::Md5], t0);
    let mut cfg = config();
    cfg.password = Secret::new("wrong");
    let mut reg = TrunkRegistration::new(cfg, 3);
    reg.start(t0);
    let mut now = t0;
    for expected in [30, 60, 120, 240, 480, 600, 600] {
        let r1 = take(&mut reg);
        assert_eq!(server.verify(&r1, now), Verdict::Challenge);
        reg.handle_response(&server.challenge(&r1, now, false), now);
        let r2 = take(&mut reg);
        assert!(matches!(
            server.verify(&r2, now),
            Verdict::Failed {
                reason: "wrong password",
                ..
            }
        ));
        // The server answers a failure with a fresh challenge.
        reg.handle_response(&server.challenge(&r2, now, false), now);
        assert!(reg.poll_request().is_none());
        assert_eq!(
            reg.poll_event(),
            Some(TrunkEvent::Failed {
                status: StatusCode(401),
                reason: "Authentication failed".into()
            })
        );
        assert_eq!(reg.state(), TrunkState::Failed);
        let at = reg.poll_timeout().unwrap();
        assert_eq!(at - now, Duration::from_secs(expected));
        now = at;
        reg.handle_timeout(now);
        assert_eq!(reg.state(), TrunkState::Registering);
    }
}

#[test]
fn same_nonce_rechallenge_is_bad_credentials() {
    let t0 = Instant::now();
    let mut reg = TrunkRegistration::new(config(), 5);
    reg.start(t0);
    let r1 = take(&mut reg);
    let mut ch = response_to(
        &r1.headers,
        StatusCode(407),
        "Proxy Authentication Required",
        None,
    );
    ch.headers.push(
        HeaderName::ProxyAuthenticate,
        r#"Digest realm="p", nonce="n1", qop="auth""#,
    );
    reg.handle_response(&ch, t0);
    let r2 = take(&mut reg);
    assert!(r2.headers.get(&HeaderName::ProxyAuthorization).is_some());
    let mut ch2 = response_to(
        &r2.headers,
        StatusCode(407),
        "Proxy Authentication Required",
        None,
    );
    ch2.headers.push(
        HeaderName::ProxyAuthenticate,
        r#"Digest realm="p", nonce="n1", qop="auth""#,
    );
    reg.handle_response(&ch2, t0);
    assert!(reg.poll_request().is_none());
    assert!(matches!(
        reg.poll_event(),
        Some(TrunkEvent::Failed {
            status: StatusCode(407),
            ..
        })
    ));
}

#[test]
fn timeout_and_errors_back_off_then_recover() {
    let t0 = Instant::now();
    let mut reg = TrunkRegistration::new(config(), 9);
    reg.start(t0);
    take(&mut reg);
    reg.handle_failure(t0);
    assert_eq!(
        reg.poll_event(),
        Some(TrunkEvent::Failed {
            status: StatusCode::REQUEST_TIMEOUT,
            reason: "Request Timeout".into()
        })
    );
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    let t1 = t0 + Duration::from_secs(30);
    reg.handle_timeout(t1);
    let r = take(&mut reg);
    reg.handle_response(
        &response_to(&r.headers, StatusCode::SERVICE_UNAVAILABLE, "Down", None),
        t1,
    );
    assert_eq!(
        reg.poll_event(),
        Some(TrunkEvent::Failed {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "Down".into()
        })
    );
    assert_eq!(reg.poll_timeout(), Some(t1 + Duration::from_secs(60)));
    let t2 = t1 + Duration::from_secs(60);
    reg.handle_timeout(t2);
    let r = take(&mut reg);
    reg.handle_response(&ok(&r, 120), t2);
    assert_eq!(
        reg.poll_event(),
        Some(TrunkEvent::Registered { expires: 120 })
    );
    assert_eq!(reg.poll_timeout(), Some(t2 + Duration::from_secs(60)));
    // Success resets the backoff.
    reg.handle_timeout(t2 + Duration::from_secs(60));
    take(&mut reg);
    reg.handle_failure(t2 + Duration::from_secs(60));
    reg.poll_event();
    assert_eq!(reg.poll_timeout(), Some(t2 + Duration::from_secs(90)));
}

#[test]
fn stop_removes_binding_with_expires_zero() {
    let t0 = Instant::now();
    let mut server = Registrar::new(vec![Algorithm::Md5], t0);
    let mut reg = TrunkRegistration::new(config(), 11);
    reg.start(t0);
    let r1 = take(&mut reg);
    reg.handle_response(&server.challenge(&r1, t0, false), t0);
    let r2 = take(&mut reg);
    reg.handle_response(&ok(&r2, 3600), t0);
    reg.poll_event();

    let t1 = t0 + Duration::from_secs(10);
    reg.stop(t1);
    assert_eq!(reg.state(), TrunkState::Unregistering);
    assert_eq!(reg.poll_timeout(), None);
    let r3 = take(&mut reg);
    assert_eq!(header(&r3, &HeaderName::Expires), "0");
    assert_eq!(
        header(&r3, &HeaderName::Contact),
        format!("<{CONTACT}>;expires=0")
    );
    assert_eq!(auth_param(&r3, "nc").as_deref(), Some("00000002"));
    assert!(matches!(
        server.verify(&r3, t1),
        Verdict::Authenticated { .. }
    ));
    reg.handle_response(&ok(&r3, 0), t1);
    assert_eq!(reg.poll_event(), Some(TrunkEvent::Unregistered));
    assert_eq!(reg.state(), TrunkState::Stopped);
    assert_eq!(reg.poll_timeout(), None);
    assert!(reg.poll_request().is_none());
}

#[test]
fn stop_while_failing_stops_at_once() {
    let t0 = Instant::now();
    let mut reg = TrunkRegistration::new(config(), 13);
    reg.start(t0);
    take(&mut reg);
    reg.handle_failure(t0);
    reg.poll_event();
    reg.stop(t0);
    assert_eq!(reg.poll_event(), Some(TrunkEvent::Unregistered));
    assert_eq!(reg.state(), TrunkState::Stopped);
    assert!(reg.poll_request().is_none());
    assert_eq!(reg.poll_timeout(), None);
}

#[test]
fn password_is_redacted() {
    let shown = format!("{:?}", config());
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[test]
fn endless_stale_challenges_give_up() {
    let t0 = Instant::now();
    let mut server = Registrar::new(vec![Algorithm::Md5], t0);
    let mut reg = TrunkRegistration::new(config(), 17);
    reg.start(t0);
    for _ in 0..3 {
        let r = take(&mut reg);
        reg.handle_response(&server.challenge(&r, t0, true), t0);
    }
    let r = reg.poll_request().expect("third answer");
    reg.handle_response(&server.challenge(&r, t0, true), t0);
    assert!(reg.poll_request().is_none());
    assert!(matches!(
        reg.poll_event(),
        Some(TrunkEvent::Failed { reason, .. }) if reason == "Too many challenges"
    ));
}
