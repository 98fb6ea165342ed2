//! The call state machine on virtual time, with hand-written peers.

use std::time::{Duration, Instant};

use bytes::Bytes;
use sip::header::HeaderName;
use sip::transaction::{Remote, TransactionKey, Transport};
use sip::{Message, Method, Request, Response, StatusCode};

use super::*;

const OFFER: &str = "v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
    m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
const ANSWER: &str = "v=0\r\no=b 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n\
    m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn invite() -> Request {
    invite_with("")
}

/// The caller's INVITE with `extra` header lines (each ending in CRLF).
pub(super) fn invite_with(extra: &str) -> Request {
    let raw = format!(
        "INVITE sip:1002@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@pbx>;tag=ta\r\nTo: <sip:1002@pbx>\r\n\
         Call-ID: call-a\r\nCSeq: 2 INVITE\r\nContact: <sip:1001@192.0.2.1:5060>\r\n{extra}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    );
    match Message::parse(Bytes::from(raw)).unwrap() {
        Message::Request(r) => r,
        _ => unreachable!(),
    }
}

pub(super) fn remote(port: u16) -> Remote {
    Remote::new(
        Transport::Udp,
        format!("192.0.2.{}:5060", port).parse().unwrap(),
    )
}

fn start(targets: usize, now: Instant) -> Call {
    start_with(invite(), targets, now)
}

fn start_with(inv: Request, targets: usize, now: Instant) -> Call {
    start_configured(inv, targets, CallConfig::default(), now)
}

/// A call from `inv` to `targets` registered contacts, with `config`.
pub(super) fn start_configured(
    inv: Request,
    targets: usize,
    config: CallConfig,
    now: Instant,
) -> Call {
    let key = TransactionKey::for_outgoing(&inv).unwrap();
    let new = NewCall {
        id: 7,
        seed: 42,
        invite: inv,
        key,
        source: remote(1),
        a_local: LocalAddrs {
            sip: "10.0.0.1:5060".parse().unwrap(),
            media: "10.0.0.1:40000".parse().unwrap(),
        },
        b_local: LocalAddrs {
            sip: "10.0.0.1:5060".parse().unwrap(),
            media: "10.0.0.1:40002".parse().unwrap(),
        },
        parties: Parties {
            caller: "1001".into(),
            caller_name: Some("Alice".into()),
            callee: "1002".into(),
            domain: "pbx".into(),
        },
        targets: (0..targets)
            .map(|i| {
                Target::contact(
                    format!("sip:1002@192.0.2.{}:5060", 10 + i),
                    remote(10 + i as u16),
                )
            })
            .collect(),
        failover: vec![],
        trunk: None,
        branch_prefix: "z9hG4bKpbx".into(),
    };
    Call::start(new, config, now, 1_000_000)
}

pub(super) fn drain(call: &mut Call) -> Vec<Output> {
    std::iter::from_fn(|| call.poll_output()).collect()
}

pub(super) fn requests(out: &[Output], method: Method) -> Vec<(Request, Remote)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Request { request, dest } if request.method == method => {
                Some((request.clone(), *dest))
            }
            _ => None,
        })
        .collect()
}

pub(super) fn responses(out: &[Output]) -> Vec<Response> {
    out.iter()
        .filter_map(|o| match o {
            Output::Respond { response, .. } => Some(response.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn ended(out: &[Output]) -> Option<CallEnd> {
    out.iter().find_map(|o| match o {
        Output::Ended(e) => Some(e.clone()),
        _ => None,
    })
}

/// A response from the callee to `req`, with a To tag.
pub(super) fn reply(req: &Request, status: u16, body: Option<&str>) -> Response {
    let mut resp = sip::build::response_to(
        &req.headers,
        StatusCode(status),
        StatusCode(status).default_reason(),
        Some("tb"),
    );
    resp.headers.push(
        HeaderName::Contact,
        Bytes::from_static(b"<sip:1002@192.0.2.10:5060>"),
    );
    if let Some(b) = body {
        resp.headers.push(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        resp.body = Bytes::from(b.to_owned());
    }
    resp
}

pub(super) fn key_of(req: &Request) -> TransactionKey {
    TransactionKey::for_outgoing(req).unwrap()
}

#[test]
fn answered_call_bridges_sdp_and_ends_on_bye() {
    let t0 = Instant::now();
    let mut call = start(1, t0);
    let out = drain(&mut call);
    let invites = requests(&out, Method::Invite);
    assert_eq!(invites.len(), 1);
    let (b_inv, dest) = &invites[0];
    assert_eq!(dest.addr.to_string(), "192.0.2.10:5060");
    let body = std::str::from_utf8(&b_inv.body).unwrap();
    assert!(
        body.contains("c=IN IP4 10.0.0.1") && body.contains("m=audio 40002 "),
        "{body}"
    );
    assert_eq!(b_inv.headers.get_str(&HeaderName::MaxForwards), Some("69"));
    assert_ne!(b_inv.headers.call_id(), Some("call-a"));
    assert!(out.iter().any(|o| matches!(o, Output::Media(StreamChange { side: Side::A, remote: Some(r), .. }) if r.port() == 4000)));

    // Ringing is relayed; the answer is anchored on A's relay port.
    assert!(call.on_response(&key_of(b_inv), reply(b_inv, 180, None), t0));
    let out = drain(&mut call);
    assert_eq!(responses(&out)[0].status.0, 180);
    let t1 = t0 + Duration::from_secs(3);
    assert!(call.on_response(&key_of(b_inv), reply(b_inv, 200, Some(ANSWER)), t1));
    let out = drain(&mut call);
    let ok = &responses(&out)[0];
    assert_eq!(ok.status.0, 200);
    let body = std::str::from_utf8(&ok.body).unwrap();
    assert!(body.contains("m=audio 40000 RTP/AVP 8 101"), "{body}");
    assert!(ok.headers.get_str(&HeaderName::Contact).is_some());
    let acks: Vec<_> = out
        .iter()
        .filter(|o| matches!(o, Output::Stateless { message: Message::Request(r), .. } if r.method == Method::Ack))
        .collect();
    assert_eq!(acks.len(), 1, "B's 2xx is ACKed");
    assert!(call.is_answered());

    // Until A's ACK, the 200 is retransmitted on T1 doubling.
    call.handle_timeout(t1 + Duration::from_millis(500));
    assert!(
        matches!(drain(&mut call).as_slice(), [Output::Stateless { message: Message::Response(r), .. }] if r.status.0 == 200)
    );
    let mut ack = invite();
    ack.method = Method::Ack;
    ack.headers.set(HeaderName::CSeq, "2 ACK");
    call.on_ack(Side::A, &ack, t1);
    call.handle_timeout(t1 + Duration::from_secs(2));
    assert!(drain(&mut call).is_empty());

    // The callee hangs up: 200 to it, BYE to the caller, CDR.
    let bye_raw = format!(
        "BYE sip:pbx@10.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKb9\r\n\
         From: <sip:1002@pbx>;tag=tb\r\nTo: {};tag={}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        b_inv
            .headers
            .get_str(&HeaderName::From)
            .unwrap()
            .split(";tag=")
            .next()
            .unwrap(),
        b_inv.headers.from().unwrap().tag().unwrap(),
        b_inv.headers.call_id().unwrap()
    );
    let Message::Request(bye) = Message::parse(Bytes::from(bye_raw)).unwrap() else {
        unreachable!()
    };
    let key = TransactionKey::for_outgoing(&bye).unwrap();
    let t2 = t1 + Duration::from_secs(10);
    call.on_request(Side::B, key, bye, t2);
    let out = drain(&mut call);
    assert_eq!(responses(&out)[0].status.0, 200);
    let byes = requests(&out, Method::Bye);
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].1.addr.to_string(), "192.0.2.1:5060");
    assert_eq!(byes[0].0.uri.as_str(), "sip:1001@192.0.2.1:5060");
    let end = ended(&out).unwrap();
    assert_eq!(end.disposition, Disposition::Answered);
    assert_eq!(end.answer, Some(1_003_000));
    assert_eq!(end.end, 1_013_000);
    assert_eq!(end.codec.as_deref(), Some("PCMA"));
    assert!(call.is_finished());
}

#[test]
fn forks_ring_in_parallel_and_losers_are_cancelled() {
    let t0 = Instant::now();
    let mut call = start(2, t0);
    let invites = requests(&drain(&mut call), Method::Invite);
    assert_eq!(invites.len(), 2);
    for (inv, _) in &invites {
        call.on_response(&key_of(inv), reply(inv, 180, None), t0);
    }
    drain(&mut call);
    call.on_response(
        &key_of(&invites[1].0),
        reply(&invites[1].0, 200, Some(ANSWER)),
        t0,
    );
    let out = drain(&mut call);
    let cancels = requests(&out, Method::Cancel);
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].1, invites[0].1);
    assert!(
        cancels[0]
            .0
            .headers
            .get_str(&HeaderName::Reason)
            .unwrap()
            .contains("elsewhere")
    );
    // The cancelled fork's 487 changes nothing for the caller.
    call.on_response(&key_of(&invites[0].0), reply(&invites[0].0, 487, None), t0);
    assert!(responses(&drain(&mut call)).is_empty());
}

#[test]
fn busy_everywhere_is_486_and_unreachable_is_480() {
    let t0 = Instant::now();
    let mut call = start(2, t0);
    let invites = requests(&drain(&mut call), Method::Invite);
    call.on_response(&key_of(&invites[0].0), reply(&invites[0].0, 486, None), t0);
    assert!(
        responses(&drain(&mut call)).is_empty(),
        "one fork still rings"
    );
    call.on_timeout(&key_of(&invites[1].0), t0);
    let out = drain(&mut call);
    assert_eq!(responses(&out)[0].status.0, 486);
    assert_eq!(ended(&out).unwrap().disposition, Disposition::Busy);

    let mut call = start(1, t0);
    let invites = requests(&drain(&mut call), Method::Invite);
    call.on_timeout(&key_of(&invites[0].0), t0);
    let out = drain(&mut call);
    assert_eq!(responses(&out)[0].status.0, 480);
    assert_eq!(ended(&out).unwrap().disposition, Disposition::Failed);
}

#[test]
fn caller_cancel_and_no_answer_timeout() {
    let t0 = Instant::now();
    let mut call = start(1, t0);
    let invites = requests(&drain(&mut call), Method::Invite);
    // Cancelled before any provisional: the CANCEL waits for one (§9.1).
    call.on_cancel(t0);
    let out = drain(&mut call);
    assert_eq!(responses(&out)[0].status.0, 487);
    assert_eq!(ended(&out).unwrap().disposition, Disposition::Cancelled);
    assert!(requests(&out, Method::Cancel).is_empty());
    assert!(!call.is_finished(), "fork still open");
    call.on_response(&key_of(&invites[0].0), reply(&invites[0].0, 180, None), t0);
    assert_eq!(requests(&drain(&mut call), Method::Cancel).len(), 1);
    call.on_response(&key_of(&invites[0].0), reply(&invites[0].0, 487, None), t0);
    assert!(call.is_finished());

    let mut call = start(1, t0);
    let invites = requests(&drain(&mut call), Method::Invite);
    call.on_response(&key_of(&invites[0].0), reply(&invites[0].0, 180, None), t0);
    drain(&mut call);
    let deadline = call.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + Duration::from_secs(60));
    call.handle_timeout(deadline);
    let out = drain(&mut call);
    assert_eq!(requests(&out, Method::Cancel).len(), 1);
    assert_eq!(responses(&out)[0].status.0, 480);
    assert_eq!(ended(&out).unwrap().disposition, Disposition::NoAnswer);
}

#[test]
fn bad_offers_are_refused() {
    let t0 = Instant::now();
    let mut inv = invite();
    inv.body = Bytes::from_static(b"v=0\r\nm=audio 1 RTP/AVP 98\r\na=rtpmap:98 FOO/8000\r\n");
    let key = TransactionKey::for_outgoing(&inv).unwrap();
    let mut call = start(1, t0);
    drain(&mut call);
    let new = NewCall {
        id: 1,
        seed: 1,
        invite: inv,
        key,
        source: remote(1),
        a_local: call.a_local,
        b_local: call.b_local,
        parties: call.parties.clone(),
        targets: vec![],
        failover: vec![],
        trunk: None,
        branch_prefix: "z9hG4bKpbx".into(),
    };
    let mut bad = Call::start(new, CallConfig::default(), t0, 0);
    let out = drain(&mut bad);
    assert!(matches!(responses(&out)[0].status.0, 400 | 488));
    assert!(requests(&out, Method::Invite).is_empty());
    assert!(bad.is_finished());
}

#[test]
fn hold_reinvite_is_forwarded_with_anchored_sdp() {
    let t0 = Instant::now();
    let mut call = start(1, t0);
    let (b_inv, _) = requests(&drain(&mut call), Method::Invite).remove(0);
    call.on_response(&key_of(&b_inv), reply(&b_inv, 200, Some(ANSWER)), t0);
    drain(&mut call);
    let mut ack = invite();
    ack.method = Method::Ack;
    call.on_ack(Side::A, &ack, t0);
    // A puts B on hold.
    let mut reinv = invite();
    let tag = call.a.local_tag.clone();
    reinv
        .headers
        .set(HeaderName::To, format!("<sip:1002@pbx>;tag={tag}"));
    reinv.headers.set(HeaderName::CSeq, "3 INVITE");
    reinv.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa3",
    );
    reinv.body = Bytes::from(OFFER.replace("a=sendrecv", "a=sendonly"));
    let server_key = TransactionKey::for_outgoing(&reinv).unwrap();
    call.on_request(Side::A, server_key, reinv, t0);
    let out = drain(&mut call);
    let fwd = requests(&out, Method::Invite);
    assert_eq!(fwd.len(), 1);
    let body = std::str::from_utf8(&fwd[0].0.body).unwrap();
    assert!(
        body.contains("a=sendonly") && body.contains("m=audio 40002"),
        "{body}"
    );
    assert!(
        body.contains("o=pbx ") && body.contains(" 2 IN IP4"),
        "version bumped: {body}"
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Media(StreamChange {
            side: Side::A,
            direction: sip::sdp::Direction::SendOnly,
            ..
        })
    )));
    let answer = ANSWER.replace("a=sendrecv", "a=recvonly");
    call.on_response(&key_of(&fwd[0].0), reply(&fwd[0].0, 200, Some(&answer)), t0);
    let out = drain(&mut call);
    let resp = &responses(&out)[0];
    assert_eq!(resp.status.0, 200);
    assert!(
        std::str::from_utf8(&resp.body)
            .unwrap()
            .contains("a=recvonly")
    );
    assert!(out.iter().any(|o| matches!(o, Output::Stateless { message: Message::Request(r), .. } if r.method == Method::Ack)));
}

fn trunk(name: &str, host: u16) -> Target {
    Target {
        uri: format!("sip:0049301234@192.0.2.{host}:5060"),
        dest: remote(host),
        to_uri: Some(format!("sip:0049301234@192.0.2.{host}:5060")),
        from_uri: Some("sip:+4930999@pbx.example".into()),
        credentials: Some(TargetAuth {
            username: "acct".into(),
            password: "secret-pw".into(),
        }),
        trunk: Some(name.into()),
    }
}

fn start_trunk_call(now: Instant) -> Call {
    let inv = invite();
    let key = TransactionKey::for_outgoing(&inv).unwrap();
    let base = start(1, now);
    let new = NewCall {
        id: 9,
        seed: 5,
        invite: inv,
        key,
        source: remote(1),
        a_local: base.a_local,
        b_local: base.b_local,
        parties: base.parties.clone(),
        targets: vec![trunk("first", 50)],
        failover: vec![trunk("second", 51)],
        trunk: None,
        branch_prefix: "z9hG4bKpbx".into(),
    };
    Call::start(new, CallConfig::default(), now, 0)
}

#[test]
fn trunk_challenge_is_answered_and_5xx_fails_over() {
    let t0 = Instant::now();
    let mut call = start_trunk_call(t0);
    let (inv, dest) = requests(&drain(&mut call), Method::Invite).remove(0);
    assert_eq!(dest.addr.to_string(), "192.0.2.50:5060");
    assert!(
        inv.headers
            .get_str(&HeaderName::From)
            .unwrap()
            .contains("sip:+4930999@pbx.example")
    );
    assert_eq!(inv.uri.as_str(), "sip:0049301234@192.0.2.50:5060");
    // 407: the INVITE again, CSeq 2, with Proxy-Authorization.
    let mut challenge = reply(&inv, 407, None);
    challenge.headers.push(
        HeaderName::ProxyAuthenticate,
        Bytes::from_static(b"Digest realm=\"carrier\", nonce=\"n1\", algorithm=MD5"),
    );
    call.on_response(&key_of(&inv), challenge, t0);
    let (inv2, _) = requests(&drain(&mut call), Method::Invite).remove(0);
    assert_eq!(inv2.headers.cseq().unwrap().seq, 2);
    assert_eq!(inv2.headers.call_id(), inv.headers.call_id());
    let auth = inv2
        .headers
        .get_str(&HeaderName::ProxyAuthorization)
        .unwrap();
    assert!(
        auth.contains("username=\"acct\"") && auth.contains("realm=\"carrier\""),
        "{auth}"
    );
    // A second challenge is not answered again; 503 moves to the next trunk.
    call.on_response(&key_of(&inv2), reply(&inv2, 503, None), t0);
    let out = drain(&mut call);
    assert!(responses(&out).is_empty(), "failover, not failure");
    let (inv3, dest3) = requests(&out, Method::Invite).remove(0);
    assert_eq!(dest3.addr.to_string(), "192.0.2.51:5060");
    call.on_response(&key_of(&inv3), reply(&inv3, 200, Some(ANSWER)), t0);
    let out = drain(&mut call);
    assert_eq!(responses(&out)[0].status.0, 200);
    let ack = out
        .iter()
        .find_map(|o| match o {
            Output::Stateless {
                message: Message::Request(r),
                ..
            } if r.method == Method::Ack => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(ack.headers.cseq().unwrap().seq, 1);
    call.hangup(200, "test", t0);
    let end = ended(&drain(&mut call)).unwrap();
    assert_eq!(end.trunk.as_deref(), Some("second"));
}

#[test]
fn busy_from_a_trunk_does_not_fail_over() {
    let t0 = Instant::now();
    let mut call = start_trunk_call(t0);
    let (inv, _) = requests(&drain(&mut call), Method::Invite).remove(0);
    call.on_response(&key_of(&inv), reply(&inv, 486, None), t0);
    let out = drain(&mut call);
    assert!(requests(&out, Method::Invite).is_empty());
    assert_eq!(responses(&out)[0].status.0, 486);
}

#[test]
fn session_timers_refresh_where_we_refresh_and_end_the_call_otherwise() {
    let t0 = Instant::now();
    let inv = invite_with("Supported: timer\r\nSession-Expires: 120\r\n");
    let mut call = start_with(inv, 1, t0);
    let (b_inv, _) = requests(&drain(&mut call), Method::Invite).remove(0);
    assert_eq!(
        b_inv.headers.get_str(&HeaderName::SessionExpires),
        Some("1800")
    );
    assert!(
        b_inv
            .headers
            .list_values(&HeaderName::Supported)
            .iter()
            .any(|v| &v[..] == b"timer")
    );
    // B picks 90 s with us (its UAC) as refresher.
    let mut ok = reply(&b_inv, 200, Some(ANSWER));
    ok.headers.push(
        HeaderName::SessionExpires,
        Bytes::from_static(b"90;refresher=uac"),
    );
    call.on_response(&key_of(&b_inv), ok, t0);
    let out = drain(&mut call);
    let to_a = &responses(&out)[0];
    assert_eq!(
        to_a.headers.get_str(&HeaderName::SessionExpires),
        Some("120;refresher=uac")
    );
    assert_eq!(to_a.headers.get_str(&HeaderName::Require), Some("timer"));
    let mut ack = invite();
    ack.method = Method::Ack;
    call.on_ack(Side::A, &ack, t0);
    // At 45 s we refresh B with an UPDATE.
    call.handle_timeout(t0 + Duration::from_secs(45));
    let out = drain(&mut call);
    let updates = requests(&out, Method::Update);
    assert_eq!(updates.len(), 1, "{out:?}");
    let (update, dest) = &updates[0];
    assert_eq!(dest.addr.to_string(), "192.0.2.10:5060");
    assert_eq!(
        update.headers.get_str(&HeaderName::SessionExpires),
        Some("90;refresher=uac")
    );
    let mut ok = reply(update, 200, None);
    ok.headers.push(
        HeaderName::SessionExpires,
        Bytes::from_static(b"90;refresher=uac"),
    );
    assert!(call.on_response(&key_of(update), ok, t0 + Duration::from_secs(45)));
    assert!(ended(&drain(&mut call)).is_none());
    // A (the refresher on its leg) never refreshes: 120 - 32 s after the
    // answer the call is over, both legs get BYE.
    call.handle_timeout(t0 + Duration::from_secs(88));
    let out = drain(&mut call);
    assert_eq!(requests(&out, Method::Bye).len(), 2, "{out:?}");
    assert_eq!(ended(&out).unwrap().cause.0, 408);
}

#[test]
fn too_small_session_interval_gets_422_with_min_se() {
    let t0 = Instant::now();
    let inv = invite_with("Supported: timer\r\nSession-Expires: 60\r\n");
    let mut call = start_with(inv, 1, t0);
    let out = drain(&mut call);
    let resp = &responses(&out)[0];
    assert_eq!(resp.status.0, 422);
    assert_eq!(resp.headers.get_str(&HeaderName::MinSe), Some("90"));
    assert!(requests(&out, Method::Invite).is_empty());
    assert!(call.is_finished());
}

#[test]
fn answer_from_a_reliable_183_is_repeated_in_the_200() {
    let t0 = Instant::now();
    let mut call = start(1, t0);
    let (b_inv, _) = requests(&drain(&mut call), Method::Invite).remove(0);
    let mut early = reply(&b_inv, 183, Some(ANSWER));
    early
        .headers
        .push(HeaderName::Require, Bytes::from_static(b"100rel"));
    early
        .headers
        .push(HeaderName::RSeq, Bytes::from_static(b"1"));
    call.on_response(&key_of(&b_inv), early, t0);
    let out = drain(&mut call);
    let pracks = requests(&out, Method::Prack);
    assert_eq!(pracks.len(), 1);
    assert_eq!(
        pracks[0].0.headers.get_str(&HeaderName::RAck),
        Some("1 1 INVITE")
    );
    let early_to_a = responses(&out)[0].body.clone();
    assert!(!early_to_a.is_empty());
    // The 200 carries no SDP: the caller gets the early answer again.
    call.on_response(&key_of(&b_inv), reply(&b_inv, 200, None), t0);
    let out = drain(&mut call);
    let ok = &responses(&out)[0];
    assert_eq!(ok.status.0, 200);
    assert_eq!(ok.body, early_to_a);
    assert_eq!(call.codec.as_deref(), Some("PCMA"));
}
