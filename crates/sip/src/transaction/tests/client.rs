//! Client transactions: INVITE (Timers A, B, D, M) and non-INVITE
//! (Timers E, F, K).

use super::*;
use crate::header::HeaderName;

const BR: &str = "z9hG4bK776asdhds";

fn answer(req: &Request, code: u16) -> Response {
    response_to(req, StatusCode(code), Some("bob-tag"))
}

#[test]
fn timer_a_doubles_and_timer_b_times_out_with_408_semantics() {
    let mut f = Flow::new();
    // t=0: INVITE over UDP.
    let key = f.send_request(invite(BR), udp());
    let first = f.transmits();
    assert_eq!(first.len(), 1);
    assert_eq!(parse_request(&first[0].bytes).method, Method::Invite);
    assert_eq!(first[0].key.as_ref(), Some(&key));
    assert_eq!(f.layer.state(&key), Some(State::Calling));
    // Timer A: retransmits at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s (no T2 cap).
    let sent = f.run_until(ms(31_999));
    assert_eq!(times_ms(&sent), [500, 1500, 3500, 7500, 15_500, 31_500]);
    assert!(sent.iter().all(|(_, t)| t.bytes == first[0].bytes));
    assert!(f.events().is_empty());
    // t=32 s: Timer B (64·T1) fires; the TU gets a timeout (its 408).
    let sent = f.run_until(secs(32));
    assert!(sent.is_empty());
    assert_eq!(
        f.events(),
        [
            Event::Timeout {
                key: key.clone(),
                timer: Timer::B
            },
            Event::Terminated { key: key.clone() }
        ]
    );
    assert!(f.layer.is_empty());
    assert_eq!(f.layer.poll_timeout(), None);
}

#[test]
fn provisional_stops_retransmissions_and_timer_b() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = f.send_request(inv.clone(), udp());
    f.transmits();
    f.run_until(ms(600)); // one retransmission at 0.5 s
    f.receive_response(answer(&inv, 180), udp());
    assert_eq!(f.layer.state(&key), Some(State::Proceeding));
    assert!(
        matches!(&f.events()[..], [Event::Response { response, .. }] if response.status.0 == 180)
    );
    // Proceeding waits for the TU (Timer C belongs to proxies): no timers.
    assert_eq!(f.layer.poll_timeout(), None);
    assert!(f.run_until(secs(120)).is_empty());
    assert_eq!(f.layer.state(&key), Some(State::Proceeding));
}

#[test]
fn non_2xx_is_acked_by_the_transaction_and_timer_d_absorbs_retransmissions() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = f.send_request(inv.clone(), udp());
    f.transmits();
    f.set(ms(300));
    f.receive_response(answer(&inv, 180), udp());
    assert_eq!(f.events().len(), 1);
    f.set(secs(2));
    let busy = answer(&inv, 486);
    f.receive_response(busy.clone(), udp());
    assert_eq!(f.layer.state(&key), Some(State::Completed));
    // §17.1.1.3: ACK with the INVITE's branch, Route set, and the 486's To.
    let tx = f.transmits();
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].dest, udp());
    let ack = parse_request(&tx[0].bytes);
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, inv.uri);
    assert_eq!(ack.headers.count(&HeaderName::Via), 1);
    assert_eq!(ack.headers.top_via().unwrap().branch(), Some(BR));
    assert_eq!(ack.headers.to().unwrap().tag(), Some("bob-tag"));
    assert_eq!(ack.headers.from().unwrap().tag(), Some("1928301774"));
    assert_eq!(ack.headers.call_id(), inv.headers.call_id());
    let cseq = ack.headers.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (314159, Method::Ack));
    let routes: Vec<_> = ack.headers.get_all(&HeaderName::Route).collect();
    assert_eq!(routes.len(), 2);
    let events = f.events();
    assert!(matches!(&events[..], [Event::Response { response, .. }] if response.status.0 == 486));
    // A retransmitted 486 gets the ACK again and does not reach the TU.
    f.set(secs(3));
    f.receive_response(busy, udp());
    let again = f.transmits();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].bytes, tx[0].bytes);
    assert!(f.events().is_empty());
    // Timer D: 32 s after the 486.
    assert_eq!(f.layer.poll_timeout(), Some(f.at(secs(34))));
    f.run_until(secs(34));
    assert_eq!(f.events(), [Event::Terminated { key }]);
}

#[test]
fn reliable_transport_no_retransmissions_and_timer_d_is_zero() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = f.send_request(inv.clone(), tcp());
    assert_eq!(f.transmits().len(), 1);
    // Only Timer B is armed: no Timer A on TCP.
    assert_eq!(f.layer.poll_timeout(), Some(f.at(secs(32))));
    assert!(f.run_until(ms(31_999)).is_empty());
    f.receive_response(answer(&inv, 603), tcp());
    let tx = f.transmits();
    assert_eq!(parse_request(&tx[0].bytes).method, Method::Ack);
    let events = f.events();
    assert!(matches!(&events[0], Event::Response { response, .. } if response.status.0 == 603));
    assert_eq!(events[1], Event::Terminated { key });
    assert_eq!(f.layer.poll_timeout(), None);
}

#[test]
fn accepted_passes_every_2xx_to_the_tu_until_timer_m() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = f.send_request(inv.clone(), udp());
    f.transmits();
    f.set(secs(1));
    let ok = answer(&inv, 200);
    f.receive_response(ok.clone(), udp());
    assert_eq!(f.layer.state(&key), Some(State::Accepted));
    // No ACK from the transaction for a 2xx: the TU acks it.
    assert!(f.transmits().is_empty());
    assert_eq!(f.events().len(), 1);
    // A retransmitted 2xx and a 2xx from another fork both reach the TU.
    f.set(secs(2));
    f.receive_response(ok, udp());
    let fork = response_to(&inv, StatusCode::OK, Some("fork-2"));
    f.receive_response(fork, udp());
    let events = f.events();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| matches!(e, Event::Response { response, .. } if response.status.is_success()))
    );
    // A late non-2xx is not passed up in Accepted.
    f.receive_response(answer(&inv, 500), udp());
    assert!(f.events().is_empty());
    // The TU sends its ACK statelessly.
    let ack = request(
        "ACK sip:bob@client.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bKnewack
Max-Forwards: 70
To: <sip:bob@example.com>;tag=bob-tag
From: <sip:alice@example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.example.com
CSeq: 314159 ACK
Content-Length: 0

",
    );
    f.layer.send_stateless(&Message::Request(ack), udp());
    assert_eq!(f.transmits()[0].key, None);
    // Timer M: 64·T1 after entering Accepted.
    assert_eq!(f.layer.poll_timeout(), Some(f.at(secs(33))));
    assert!(f.run_until(secs(33)).is_empty());
    assert_eq!(f.events(), [Event::Terminated { key }]);
    // Afterwards a 2xx is stray and dropped.
    let err = f
        .layer
        .handle_response(answer(&inv, 200), udp(), f.now)
        .unwrap_err();
    assert_eq!(err, TransactionError::NoTransaction);
}

#[test]
fn timer_e_doubles_to_t2_and_timer_f_times_out() {
    let mut f = Flow::new();
    let key = f.send_request(non_invite("OPTIONS", BR), udp());
    assert_eq!(f.transmits().len(), 1);
    assert_eq!(f.layer.state(&key), Some(State::Trying));
    let sent = f.run_until(ms(31_999));
    // 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s.
    assert_eq!(
        times_ms(&sent),
        [
            500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    f.run_until(secs(32));
    assert_eq!(
        f.events(),
        [
            Event::Timeout {
                key: key.clone(),
                timer: Timer::F
            },
            Event::Terminated { key }
        ]
    );
}

#[test]
fn timer_e_runs_at_t2_once_proceeding() {
    let mut f = Flow::new();
    let req = non_invite("REGISTER", BR);
    let key = f.send_request(req.clone(), udp());
    f.transmits();
    f.set(ms(200));
    f.receive_response(answer(&req, 100), udp());
    assert_eq!(f.layer.state(&key), Some(State::Proceeding));
    let sent = f.run_until(ms(13_000));
    // E was due at 0.5 s; from then on it runs at T2.
    assert_eq!(times_ms(&sent), [500, 4500, 8500, 12_500]);
}

#[test]
fn timer_k_absorbs_response_retransmissions() {
    let mut f = Flow::new();
    let req = non_invite("OPTIONS", BR);
    let key = f.send_request(req.clone(), udp());
    f.transmits();
    f.set(secs(1));
    let ok = answer(&req, 200);
    f.receive_response(ok.clone(), udp());
    assert_eq!(f.layer.state(&key), Some(State::Completed));
    assert_eq!(f.events().len(), 1);
    // No more request retransmissions; retransmitted 200 absorbed.
    f.receive_response(ok, udp());
    assert!(f.events().is_empty());
    // Timer K = T4 = 5 s.
    assert_eq!(f.layer.poll_timeout(), Some(f.at(secs(6))));
    assert!(f.run_until(secs(6)).is_empty());
    assert_eq!(f.events(), [Event::Terminated { key }]);
}

#[test]
fn reliable_non_invite_no_retransmit_and_timer_k_is_zero() {
    let mut f = Flow::new();
    let req = non_invite("OPTIONS", BR);
    let key = f.send_request(req.clone(), tcp());
    f.transmits();
    assert_eq!(f.layer.poll_timeout(), Some(f.at(secs(32)))); // F only
    assert!(f.run_until(secs(10)).is_empty());
    f.receive_response(answer(&req, 200), tcp());
    let events = f.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1], Event::Terminated { key });
    assert_eq!(f.layer.poll_timeout(), None);
}

#[test]
fn timer_f_over_tcp() {
    let mut f = Flow::new();
    let key = f.send_request(non_invite("BYE", BR), tcp());
    f.transmits();
    assert!(f.run_until(secs(32)).is_empty());
    assert_eq!(
        f.events()[0],
        Event::Timeout {
            key,
            timer: Timer::F
        }
    );
}

#[test]
fn configurable_t1_and_t2() {
    let timers = TimerConfig {
        t1: ms(100),
        t2: ms(400),
        t4: secs(1),
    };
    let mut f = Flow::with_timers(timers);
    let inv_key = f.send_request(invite(BR), udp());
    let opt_key = f.send_request(non_invite("OPTIONS", "z9hG4bKopt"), udp());
    f.transmits();
    let sent = f.run_until(ms(6_400));
    let of = |k: &TransactionKey| -> Vec<u128> {
        sent.iter()
            .filter(|(_, t)| t.key.as_ref() == Some(k))
            .map(|(at, _)| at.as_millis())
            .collect()
    };
    assert_eq!(of(&inv_key), [100, 300, 700, 1500, 3100, 6300]);
    assert_eq!(of(&opt_key)[..6], [100, 300, 700, 1100, 1500, 1900]);
    // B and F at 64·T1 = 6.4 s.
    let timeouts: Vec<_> = f
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Timeout { .. }))
        .collect();
    assert_eq!(timeouts.len(), 2);
    assert!(f.layer.is_empty());
}

#[test]
fn cancel_is_its_own_client_transaction() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let inv_key = f.send_request(inv.clone(), udp());
    f.receive_response(answer(&inv, 180), udp());
    let cancel = cancel_for(&inv);
    assert_eq!(cancel.headers.top_via().unwrap().branch(), Some(BR));
    let cancel_key = f.send_request(cancel.clone(), udp());
    assert_ne!(cancel_key, inv_key);
    f.events();
    f.receive_response(answer(&cancel, 200), udp());
    f.receive_response(answer(&inv, 487), udp());
    let events = f.events();
    assert!(events.iter().any(|e| matches!(e, Event::Response { key, response } if key == &cancel_key && response.status.0 == 200)));
    assert!(events.iter().any(|e| matches!(e, Event::Response { key, response } if key == &inv_key && response.status.0 == 487)));
    assert_eq!(f.layer.state(&inv_key), Some(State::Completed));
}

#[test]
fn send_request_rejects_what_it_cannot_key() {
    let mut f = Flow::new();
    let mut ack = non_invite("ACK", BR);
    ack.method = Method::Ack;
    let now = f.now;
    assert_eq!(
        f.layer.send_request(ack, udp(), now),
        Err(TransactionError::AckNotATransaction)
    );
    assert_eq!(
        f.layer.send_request(invite("abc"), udp(), now),
        Err(TransactionError::MissingBranch)
    );
    let mut no_via = invite(BR);
    no_via.headers.remove(&HeaderName::Via);
    assert_eq!(
        f.layer.send_request(no_via, udp(), now),
        Err(TransactionError::MissingVia)
    );
    f.send_request(invite(BR), udp());
    assert_eq!(
        f.layer.send_request(invite(BR), udp(), now),
        Err(TransactionError::DuplicateTransaction)
    );
}

#[test]
fn transport_error_ends_the_transaction() {
    let mut f = Flow::new();
    let key = f.send_request(invite(BR), tcp());
    let tx = f.transmits();
    f.layer.handle_transport_error(tx[0].key.as_ref().unwrap());
    assert_eq!(
        f.events(),
        [
            Event::TransportError { key: key.clone() },
            Event::Terminated { key }
        ]
    );
    assert_eq!(f.layer.poll_timeout(), None);
}

#[test]
fn stray_and_malformed_responses_are_refused_without_output() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let now = f.now;
    assert_eq!(
        f.layer.handle_response(answer(&inv, 200), udp(), now),
        Err(TransactionError::NoTransaction)
    );
    let mut no_cseq = answer(&inv, 200);
    no_cseq.headers.remove(&HeaderName::CSeq);
    assert_eq!(
        f.layer.handle_response(no_cseq, udp(), now),
        Err(TransactionError::MissingCSeq)
    );
    assert!(f.events().is_empty() && f.transmits().is_empty());
}

#[test]
fn cancelled_invite_gives_up_64_t1_after_the_cancel() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = f.send_request(inv.clone(), udp());
    f.set(secs(1));
    f.receive_response(answer(&inv, 180), udp());
    assert_eq!(f.layer.poll_timeout(), None);
    f.set(secs(10));
    let cancel_key = f.send_request(cancel_for(&inv), udp());
    f.set(secs(11));
    f.receive_response(answer(&cancel_for(&inv), 200), udp());
    f.events();
    // The UAS never sends its 487: §9.1 ends the INVITE at 10 s + 64·T1.
    f.run_until(secs(41));
    assert_eq!(f.events(), [Event::Terminated { key: cancel_key }]); // Timer K
    f.run_until(secs(42));
    assert_eq!(
        f.events(),
        [
            Event::Timeout {
                key: key.clone(),
                timer: Timer::B
            },
            Event::Terminated { key }
        ]
    );
}

#[test]
fn cancel_guard_survives_a_late_provisional_and_stops_on_final() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = f.send_request(inv.clone(), udp());
    f.send_request(cancel_for(&inv), udp());
    f.set(secs(1));
    f.receive_response(answer(&inv, 183), udp());
    assert_eq!(f.layer.state(&key), Some(State::Proceeding));
    f.receive_response(answer(&inv, 487), udp());
    assert_eq!(f.layer.state(&key), Some(State::Completed));
    f.events();
    f.run_until(secs(40));
    assert!(
        !f.events()
            .iter()
            .any(|e| matches!(e, Event::Timeout { key: k, .. } if k == &key))
    );
}
