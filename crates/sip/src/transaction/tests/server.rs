//! Server transactions: INVITE (100 Trying, Timers G, H, I, L, CANCEL) and
//! non-INVITE (Timer J), retransmission absorption, RFC 2543 matching.

use super::*;
use crate::header::HeaderName;

const BR: &str = "z9hG4bKnashds8";

fn answer(req: &Request, code: u16) -> Response {
    response_to(req, StatusCode(code), Some("uas-tag"))
}

/// Receives `req` and returns the key of the server transaction it made.
fn receive_new(f: &mut Flow, req: &Request, from: Remote) -> TransactionKey {
    f.receive_request(req.clone(), from);
    match f.events().as_slice() {
        [
            Event::Request {
                key,
                request,
                source,
            },
        ] => {
            assert_eq!(request, req);
            assert_eq!(*source, from);
            key.clone()
        }
        other => panic!("expected one new request, got {other:?}"),
    }
}

/// The ACK a client sends for a non-2xx response to `inv` (same branch).
fn ack_of(inv: &Request, resp: &Response) -> Request {
    ack_for(inv, resp)
}

fn statuses(tx: &[Transmit]) -> Vec<u16> {
    tx.iter()
        .map(|t| parse_response(&t.bytes).status.0)
        .collect()
}

#[test]
fn trying_is_sent_after_200_ms_if_the_tu_is_silent() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = receive_new(&mut f, &inv, udp());
    assert_eq!(f.layer.state(&key), Some(State::Proceeding));
    assert_eq!(f.layer.poll_timeout(), Some(f.at(ms(200))));
    let sent = f.run_until(ms(200));
    assert_eq!(times_ms(&sent), [200]);
    let trying = parse_response(&sent[0].1.bytes);
    assert_eq!(trying.status, StatusCode::TRYING);
    assert_eq!(trying.headers.count(&HeaderName::Via), 2);
    assert_eq!(trying.headers.to().unwrap().tag(), None);
    assert_eq!(sent[0].1.dest, udp());
    // Nothing else is scheduled while Proceeding.
    assert_eq!(f.layer.poll_timeout(), None);
}

#[test]
fn no_automatic_trying_when_the_tu_answers_first() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = receive_new(&mut f, &inv, udp());
    f.set(ms(50));
    f.send_response(&key, answer(&inv, 180));
    assert_eq!(statuses(&f.transmits()), [180]);
    assert!(f.run_until(secs(5)).is_empty());
}

#[test]
fn retransmitted_invite_is_absorbed_and_gets_the_last_response() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = receive_new(&mut f, &inv, udp());
    // Retransmission before any response: 100 Trying at once.
    f.set(ms(100));
    f.receive_request(inv.clone(), udp());
    assert_eq!(statuses(&f.transmits()), [100]);
    assert!(f.events().is_empty());
    // After a 180, a retransmission gets the 180 again.
    f.send_response(&key, answer(&inv, 180));
    f.transmits();
    f.set(ms(600));
    f.receive_request(inv.clone(), udp());
    assert_eq!(statuses(&f.transmits()), [180]);
    assert!(f.events().is_empty());
    assert_eq!(f.layer.len(), 1);
}

#[test]
fn timer_g_retransmits_final_response_and_timer_h_gives_up() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = receive_new(&mut f, &inv, udp());
    f.set(secs(1));
    f.send_response(&key, answer(&inv, 486));
    assert_eq!(statuses(&f.transmits()), [486]);
    assert_eq!(f.layer.state(&key), Some(State::Completed));
    let sent = f.run_until(ms(32_999));
    // G: T1, 2·T1, 4·T1, then capped at T2 = 4 s.
    assert_eq!(
        times_ms(&sent)[..8],
        [1500, 2500, 4500, 8500, 12_500, 16_500, 20_500, 24_500]
    );
    assert!(
        sent.iter()
            .all(|(_, t)| parse_response(&t.bytes).status.0 == 486)
    );
    // A retransmitted INVITE also gets the 486.
    f.receive_request(inv, udp());
    assert_eq!(statuses(&f.transmits()), [486]);
    // H: 64·T1 after the 486, no ACK: failure reported to the TU.
    f.run_until(secs(33));
    let events = f.events();
    assert_eq!(
        events,
        [
            Event::Timeout {
                key: key.clone(),
                timer: Timer::H
            },
            Event::Terminated { key }
        ]
    );
}

#[test]
fn ack_for_non_2xx_is_absorbed_and_timer_i_ends_confirmed() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = receive_new(&mut f, &inv, udp());
    f.set(ms(100));
    let busy = answer(&inv, 486);
    f.send_response(&key, busy.clone());
    f.transmits();
    f.set(ms(700)); // after one G retransmission
    let ack = ack_of(&inv, &busy);
    f.receive_request(ack.clone(), udp());
    assert_eq!(f.layer.state(&key), Some(State::Confirmed));
    assert!(
        f.events().is_empty(),
        "ACK for non-2xx never reaches the TU"
    );
    // Retransmitted ACK and INVITE are absorbed silently.
    f.receive_request(ack, udp());
    f.receive_request(inv, udp());
    assert!(f.events().is_empty());
    assert!(f.transmits().is_empty());
    // Only Timer I remains: T4 = 5 s after the ACK; G and H are gone.
    assert_eq!(f.layer.poll_timeout(), Some(f.at(ms(5_700))));
    assert!(f.run_until(ms(5_700)).is_empty());
    assert_eq!(f.events(), [Event::Terminated { key }]);
    assert_eq!(f.layer.poll_timeout(), None);
}

#[test]
fn accepted_state_passes_ack_to_tu_and_timer_l_ends_it() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = receive_new(&mut f, &inv, udp());
    f.set(secs(1));
    let ok = answer(&inv, 200);
    f.send_response(&key, ok.clone());
    assert_eq!(statuses(&f.transmits()), [200]);
    assert_eq!(f.layer.state(&key), Some(State::Accepted));
    // The transaction does not retransmit the 2xx itself.
    assert!(f.run_until(secs(10)).is_empty());
    // INVITE retransmissions are absorbed: no response, no new request.
    f.receive_request(inv.clone(), udp());
    assert!(f.transmits().is_empty() && f.events().is_empty());
    // The TU (dialog) retransmits the 2xx through the transaction.
    f.send_response(&key, ok.clone());
    assert_eq!(statuses(&f.transmits()), [200]);
    // An ACK with the INVITE's branch matches and goes to the TU...
    let ack_same = ack_of(&inv, &ok);
    f.receive_request(ack_same.clone(), udp());
    assert_eq!(
        f.events(),
        [Event::Ack {
            key: Some(key.clone()),
            request: ack_same,
            source: udp()
        }]
    );
    // ...and so does the usual ACK for 2xx with a new branch, unmatched.
    let mut ack_new = ack_of(&inv, &ok);
    ack_new.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP pc33.example.com;branch=z9hG4bKack2",
    );
    f.receive_request(ack_new.clone(), udp());
    assert!(matches!(&f.events()[..], [Event::Ack { key: None, .. }]));
    // A non-2xx after the 2xx is refused.
    assert_eq!(
        f.layer.send_response(&key, answer(&inv, 500), f.now),
        Err(TransactionError::InvalidState(State::Accepted))
    );
    // Timer L: 64·T1 after the 2xx.
    assert_eq!(f.layer.poll_timeout(), Some(f.at(secs(33))));
    f.run_until(secs(33));
    assert_eq!(f.events(), [Event::Terminated { key: key.clone() }]);
    assert_eq!(
        f.layer.send_response(&key, ok, f.now),
        Err(TransactionError::NoTransaction)
    );
}

#[test]
fn non_invite_absorbs_retransmissions_and_timer_j_ends_it() {
    let mut f = Flow::new();
    let req = non_invite("REGISTER", BR);
    let key = receive_new(&mut f, &req, udp());
    assert_eq!(f.layer.state(&key), Some(State::Trying));
    // Retransmission before the TU answered: discarded.
    f.receive_request(req.clone(), udp());
    assert!(f.transmits().is_empty() && f.events().is_empty());
    f.send_response(&key, answer(&req, 100));
    f.receive_request(req.clone(), udp());
    assert_eq!(statuses(&f.transmits()), [100, 100]);
    f.set(secs(1));
    f.send_response(&key, answer(&req, 200));
    f.receive_request(req.clone(), udp());
    assert_eq!(statuses(&f.transmits()), [200, 200]);
    assert!(f.events().is_empty());
    assert_eq!(
        f.layer.send_response(&key, answer(&req, 500), f.now),
        Err(TransactionError::InvalidState(State::Completed))
    );
    // Timer J = 64·T1, and no retransmissions of its own.
    assert!(f.run_until(secs(33)).is_empty());
    assert_eq!(f.events(), [Event::Terminated { key }]);
    // The same request now is new again.
    f.receive_request(req, udp());
    assert!(matches!(&f.events()[..], [Event::Request { .. }]));
}

#[test]
fn reliable_transport_server_timers_are_zero() {
    let mut f = Flow::new();
    let req = non_invite("OPTIONS", BR);
    let key = receive_new(&mut f, &req, tcp());
    f.send_response(&key, answer(&req, 200));
    assert_eq!(f.transmits()[0].dest, tcp());
    assert_eq!(f.events(), [Event::Terminated { key }]); // J = 0

    let inv = invite("z9hG4bKtcp");
    let key = receive_new(&mut f, &inv, tcp());
    let busy = answer(&inv, 486);
    f.send_response(&key, busy.clone());
    f.transmits();
    // No G on TCP; H still guards the ACK.
    assert_eq!(f.layer.poll_timeout(), Some(f.at(secs(32))));
    f.set(secs(1));
    f.receive_request(ack_of(&inv, &busy), tcp());
    assert_eq!(f.events(), [Event::Terminated { key }]); // I = 0
    assert_eq!(f.layer.poll_timeout(), None);
}

#[test]
fn cancel_matches_invite_gets_200_and_asks_tu_for_487() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let inv_key = receive_new(&mut f, &inv, udp());
    f.send_response(&inv_key, answer(&inv, 180));
    f.transmits();
    f.set(secs(2));
    let cancel = cancel_for(&inv);
    f.receive_request(cancel.clone(), udp());
    let tx = f.transmits();
    let ok = parse_response(&tx[0].bytes);
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers.cseq().unwrap().method, Method::Cancel);
    // §9.2: same To tag as the responses to the INVITE.
    assert_eq!(ok.headers.to().unwrap().tag(), Some("uas-tag"));
    assert_eq!(
        f.events(),
        [Event::Cancelled {
            invite: inv_key.clone(),
            request: cancel.clone(),
            source: udp()
        }]
    );
    f.send_response(&inv_key, answer(&inv, 487));
    assert_eq!(statuses(&f.transmits()), [487]);
    // A retransmitted CANCEL gets the 200 again, no second event.
    f.receive_request(cancel, udp());
    assert_eq!(statuses(&f.transmits()), [200]);
    assert!(f.events().is_empty());
}

#[test]
fn cancel_without_transaction_gets_481() {
    let mut f = Flow::new();
    let cancel = cancel_for(&invite(BR));
    f.receive_request(cancel, udp());
    let resp = parse_response(&f.transmits()[0].bytes);
    assert_eq!(resp.status, StatusCode::NO_TRANSACTION);
    assert!(resp.headers.to().unwrap().tag().is_some());
    assert!(f.events().is_empty());
}

#[test]
fn cancel_after_final_response_has_no_effect() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = receive_new(&mut f, &inv, udp());
    f.send_response(&key, answer(&inv, 200));
    f.transmits();
    f.receive_request(cancel_for(&inv), udp());
    assert_eq!(statuses(&f.transmits()), [200]);
    assert!(f.events().is_empty());
    assert_eq!(f.layer.state(&key), Some(State::Accepted));
}

#[test]
fn sent_by_and_method_separate_transactions() {
    let mut f = Flow::new();
    let a = invite(BR);
    let mut b = invite(BR);
    b.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP other.example.com;branch=z9hG4bKnashds8",
    );
    let ka = receive_new(&mut f, &a, udp());
    let kb = receive_new(&mut f, &b, udp());
    assert_ne!(ka, kb);
    // Default port: sent-by without a port equals sent-by with 5060.
    let mut c = invite(BR);
    c.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP PC33.example.com;branch=z9hG4bKnashds8",
    );
    f.receive_request(c, udp());
    assert!(f.events().is_empty(), "same transaction as `a`");
    assert_eq!(f.layer.len(), 2);
}

#[test]
fn rfc2543_requests_match_without_branch() {
    let mut f = Flow::new();
    let mut inv = invite(BR);
    inv.headers
        .set(HeaderName::Via, "SIP/2.0/UDP pc33.example.com:5060");
    let key = receive_new(&mut f, &inv, udp());
    let busy = answer(&inv, 486);
    f.send_response(&key, busy.clone());
    f.transmits();
    f.receive_request(inv.clone(), udp());
    assert_eq!(statuses(&f.transmits()), [486]);
    f.receive_request(ack_of(&inv, &busy), udp());
    assert_eq!(f.layer.state(&key), Some(State::Confirmed));
    assert!(f.events().is_empty());
}

#[test]
fn malformed_requests_are_refused_without_output() {
    let mut f = Flow::new();
    let now = f.now;
    let mut no_via = invite(BR);
    no_via.headers.remove(&HeaderName::Via);
    assert_eq!(
        f.layer.handle_request(no_via, udp(), now),
        Err(TransactionError::MissingVia)
    );
    let mut no_cseq = invite(BR);
    no_cseq.headers.remove(&HeaderName::CSeq);
    assert_eq!(
        f.layer.handle_request(no_cseq, udp(), now),
        Err(TransactionError::MissingCSeq)
    );
    let mut bad_via = invite(BR);
    bad_via.headers.set(HeaderName::Via, ";;,;");
    assert_eq!(
        f.layer.handle_request(bad_via, udp(), now),
        Err(TransactionError::MissingVia)
    );
    let mut mismatch = invite(BR);
    mismatch.headers.set(HeaderName::CSeq, "1 BYE");
    assert_eq!(
        f.layer.handle_request(mismatch, udp(), now),
        Err(TransactionError::CSeqMismatch)
    );
    assert!(f.events().is_empty() && f.transmits().is_empty() && f.layer.is_empty());
}

#[test]
fn send_response_checks_the_key() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let client = f.send_request(inv.clone(), udp());
    assert_eq!(
        f.layer.send_response(&client, answer(&inv, 200), f.now),
        Err(TransactionError::NotServerTransaction)
    );
}

#[test]
fn rfc2543_cancel_matches_its_invite() {
    let mut f = Flow::new();
    let mut inv = invite(BR);
    inv.headers
        .set(HeaderName::Via, "SIP/2.0/UDP pc33.example.com:5060");
    let key = receive_new(&mut f, &inv, udp());
    f.receive_request(cancel_for(&inv), udp());
    assert_eq!(statuses(&f.transmits()), [200]);
    assert!(matches!(&f.events()[..], [Event::Cancelled { invite, .. }] if invite == &key));
}

#[test]
fn invalid_status_codes_are_refused() {
    let mut f = Flow::new();
    let inv = invite(BR);
    let key = receive_new(&mut f, &inv, udp());
    let mut bad = answer(&inv, 200);
    bad.status = StatusCode(700);
    assert_eq!(
        f.layer.send_response(&key, bad, f.now),
        Err(TransactionError::InvalidStatus(700))
    );
    assert_eq!(f.layer.state(&key), Some(State::Proceeding));
}
