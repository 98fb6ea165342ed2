//! Call-flow tests on virtual time: `Flow` wraps a layer and a fake clock,
//! jumps from deadline to deadline and records when each message left.

mod client;
mod flows;
mod robustness;
mod server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::message::{Message, Method, StatusCode};

pub(super) fn udp() -> Remote {
    Remote::new(
        Transport::Udp,
        "192.0.2.10:5060".parse::<SocketAddr>().unwrap(),
    )
}

pub(super) fn tcp() -> Remote {
    Remote::new(
        Transport::Tcp,
        "192.0.2.10:5060".parse::<SocketAddr>().unwrap(),
    )
}

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Parses a request written with `\n` line ends.
pub(super) fn request(text: &str) -> Request {
    let wire = text.replace('\n', "\r\n");
    match Message::parse(Bytes::from(wire)).expect("test request parses") {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

pub(super) fn parse(bytes: &Bytes) -> Message {
    Message::parse(bytes.clone()).expect("layer output parses")
}

pub(super) fn parse_response(bytes: &Bytes) -> Response {
    match parse(bytes) {
        Message::Response(r) => r,
        Message::Request(_) => panic!("expected a response"),
    }
}

pub(super) fn parse_request(bytes: &Bytes) -> Request {
    match parse(bytes) {
        Message::Request(r) => r,
        Message::Response(_) => panic!("expected a request"),
    }
}

/// An INVITE with the given top Via branch, two Route headers.
pub(super) fn invite(branch: &str) -> Request {
    request(&format!(
        "INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP pc33.example.com:5060;branch={branch}
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy
Max-Forwards: 70
Route: <sip:p1.example.com;lr>
Route: <sip:p2.example.com;lr>
To: Bob <sip:bob@example.com>
From: Alice <sip:alice@example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.example.com>
Content-Length: 0

"
    ))
}

/// A non-INVITE request of `method` with the given branch.
pub(super) fn non_invite(method: &str, branch: &str) -> Request {
    request(&format!(
        "{method} sip:registrar.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.example.com:5060;branch={branch}
Max-Forwards: 70
To: <sip:alice@example.com>
From: <sip:alice@example.com>;tag=456248
Call-ID: 843817637684230@998sdasdh09
CSeq: 1826 {method}
Content-Length: 0

"
    ))
}

/// A layer with a virtual clock.
pub(super) struct Flow {
    pub layer: TransactionLayer,
    pub t0: Instant,
    pub now: Instant,
}

impl Flow {
    pub fn new() -> Self {
        Flow::with_timers(TimerConfig::default())
    }

    pub fn with_timers(timers: TimerConfig) -> Self {
        let t0 = Instant::now();
        Flow {
            layer: TransactionLayer::new(Config {
                timers,
                tag_seed: 7,
            }),
            t0,
            now: t0,
        }
    }

    /// The instant `d` after the start.
    pub fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Jumps to `d` after the start without firing timers.
    pub fn set(&mut self, d: Duration) {
        self.now = self.t0 + d;
    }

    /// Fires every timer up to `d` after the start, deadline by deadline,
    /// and returns (send time, transmit) for everything sent on the way.
    pub fn run_until(&mut self, d: Duration) -> Vec<(Duration, Transmit)> {
        let until = self.t0 + d;
        let mut sent = self.drain_at();
        while let Some(deadline) = self.layer.poll_timeout() {
            if deadline > until {
                break;
            }
            self.now = self.now.max(deadline);
            self.layer.handle_timeout(self.now);
            sent.extend(self.drain_at());
        }
        self.now = until;
        sent
    }

    fn drain_at(&mut self) -> Vec<(Duration, Transmit)> {
        let at = self.elapsed();
        std::iter::from_fn(|| self.layer.poll_transmit())
            .map(|t| (at, t))
            .collect()
    }

    pub fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.layer.poll_transmit()).collect()
    }

    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.layer.poll_event()).collect()
    }

    pub fn send_request(&mut self, req: Request, dest: Remote) -> TransactionKey {
        self.layer.send_request(req, dest, self.now).unwrap()
    }

    pub fn send_response(&mut self, key: &TransactionKey, resp: Response) {
        self.layer.send_response(key, resp, self.now).unwrap()
    }

    pub fn receive_response(&mut self, resp: Response, from: Remote) {
        self.layer.handle_response(resp, from, self.now).unwrap()
    }

    pub fn receive_request(&mut self, req: Request, from: Remote) {
        self.layer.handle_request(req, from, self.now).unwrap()
    }
}

/// Send times of the retransmissions in `sent`, in milliseconds.
pub(super) fn times_ms(sent: &[(Duration, Transmit)]) -> Vec<u128> {
    sent.iter().map(|(at, _)| at.as_millis()).collect()
}
