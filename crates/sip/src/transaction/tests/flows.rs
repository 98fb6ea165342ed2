//! Two layers talking over an in-memory UDP "network" that can lose
//! packets: every message goes through the serializer and the parser.

use super::*;

fn alice() -> Remote {
    Remote::new(Transport::Udp, "192.0.2.1:5060".parse().unwrap())
}

fn bob() -> Remote {
    Remote::new(Transport::Udp, "192.0.2.2:5060".parse().unwrap())
}

struct Net {
    a: TransactionLayer,
    b: TransactionLayer,
    t0: Instant,
    now: Instant,
    /// Log of delivered messages: (ms, "A>B" / "B>A", first line).
    log: Vec<(u128, &'static str, String)>,
}

fn first_line(bytes: &Bytes) -> String {
    let end = bytes
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl Net {
    fn new() -> Self {
        let t0 = Instant::now();
        Net {
            a: TransactionLayer::default(),
            b: TransactionLayer::default(),
            t0,
            now: t0,
            log: Vec::new(),
        }
    }

    /// Delivers everything queued; `lose` drops a message by first line.
    fn pump(&mut self, lose: &mut dyn FnMut(&str) -> bool) {
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                assert_eq!(t.dest, bob());
                let line = first_line(&t.bytes);
                if !lose(&line) {
                    self.log
                        .push(((self.now - self.t0).as_millis(), "A>B", line));
                    let _ = self.b.handle_message(parse(&t.bytes), alice(), self.now);
                }
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                assert_eq!(t.dest, alice());
                let line = first_line(&t.bytes);
                if !lose(&line) {
                    self.log
                        .push(((self.now - self.t0).as_millis(), "B>A", line));
                    let _ = self.a.handle_message(parse(&t.bytes), bob(), self.now);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs both layers' timers up to `d` after the start.
    fn run_until(&mut self, d: Duration, lose: &mut dyn FnMut(&str) -> bool) {
        let until = self.t0 + d;
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.pump(lose);
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn set(&mut self, d: Duration) {
        self.now = self.t0 + d;
    }
}

fn events(l: &mut TransactionLayer) -> Vec<Event> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn new_request(l: &mut TransactionLayer) -> (TransactionKey, Request) {
    events(l)
        .into_iter()
        .find_map(|e| match e {
            Event::Request { key, request, .. } => Some((key, request)),
            _ => None,
        })
        .expect("a new request")
}

#[test]
fn lossy_invite_busy_flow() {
    let mut net = Net::new();
    let inv = invite("z9hG4bKflow1");
    // t=0 A sends INVITE; the first copy is lost.
    let a_key = net.a.send_request(inv, bob(), net.now).unwrap();
    let mut lost_invite = false;
    let mut lost_busy = false;
    let mut lose = |line: &str| {
        if line.starts_with("INVITE") && !lost_invite {
            lost_invite = true;
            return true;
        }
        if line.starts_with("SIP/2.0 486") && !lost_busy {
            lost_busy = true;
            return true;
        }
        false
    };
    net.pump(&mut lose);
    // t=0.5 s Timer A resends; B's TU sees it once.
    net.run_until(ms(500), &mut lose);
    let (b_key, b_inv) = new_request(&mut net.b);
    // t=0.7 s Timer "Trying" on B: 100 Trying stops A's retransmissions.
    net.run_until(ms(700), &mut lose);
    assert_eq!(net.a.state(&a_key), Some(State::Proceeding));
    // t=1 s B's TU answers 486; the first copy is lost, Timer G resends.
    net.set(secs(1));
    let busy = response_to(&b_inv, StatusCode(486), Some("b1"));
    net.b.send_response(&b_key, busy, net.now).unwrap();
    net.pump(&mut lose);
    net.run_until(ms(1_500), &mut lose);
    // A got the 486 once, ACKed it; B is Confirmed.
    let a_events = events(&mut net.a);
    let finals: Vec<_> = a_events
        .iter()
        .filter(|e| matches!(e, Event::Response { response, .. } if response.status.0 == 486))
        .collect();
    assert_eq!(finals.len(), 1);
    assert_eq!(net.b.state(&b_key), Some(State::Confirmed));
    let lines: Vec<_> = net
        .log
        .iter()
        .map(|(t, dir, l)| format!("{t} {dir} {l}"))
        .collect();
    assert_eq!(
        lines,
        [
            "500 A>B INVITE sip:bob@example.com SIP/2.0",
            "700 B>A SIP/2.0 100 Trying",
            "1500 B>A SIP/2.0 486 Busy Here",
            "1500 A>B ACK sip:bob@example.com SIP/2.0",
        ]
    );
    // Everything ends: A by Timer D (32 s), B by Timer I (5 s).
    net.run_until(secs(40), &mut |_| false);
    assert!(net.a.is_empty() && net.b.is_empty());
}

#[test]
fn cancel_flow() {
    let mut net = Net::new();
    let mut never = |_: &str| false;
    let inv = invite("z9hG4bKflow2");
    let a_key = net.a.send_request(inv.clone(), bob(), net.now).unwrap();
    net.pump(&mut never);
    let (b_key, b_inv) = new_request(&mut net.b);
    net.b
        .send_response(
            &b_key,
            response_to(&b_inv, StatusCode::RINGING, Some("b2")),
            net.now,
        )
        .unwrap();
    net.pump(&mut never);
    // A's TU gives up: CANCEL.
    net.set(secs(3));
    net.a
        .send_request(cancel_for(&inv), bob(), net.now)
        .unwrap();
    net.pump(&mut never);
    let cancelled = events(&mut net.b)
        .into_iter()
        .find_map(|e| match e {
            Event::Cancelled { invite, .. } => Some(invite),
            _ => None,
        })
        .unwrap();
    assert_eq!(cancelled, b_key);
    net.b
        .send_response(
            &b_key,
            response_to(&b_inv, StatusCode::REQUEST_TERMINATED, Some("b2")),
            net.now,
        )
        .unwrap();
    net.pump(&mut never);
    let statuses: Vec<u16> = events(&mut net.a)
        .into_iter()
        .filter_map(|e| match e {
            Event::Response { response, .. } => Some(response.status.0),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, [180, 200, 487]);
    assert_eq!(net.a.state(&a_key), Some(State::Completed));
    assert_eq!(net.b.state(&b_key), Some(State::Confirmed));
    net.run_until(secs(60), &mut never);
    assert!(net.a.is_empty() && net.b.is_empty());
}
