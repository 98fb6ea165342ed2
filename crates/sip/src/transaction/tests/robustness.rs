//! Random interleavings of network input, TU calls and time: the layer
//! never panics, never keeps timers of dead transactions, and once the TU
//! has answered everything, every transaction ends except INVITE client
//! transactions waiting in Proceeding for a final response (that wait is
//! the TU's, per §17.1.1.2).

use proptest::prelude::*;

use super::*;

const METHODS: [&str; 5] = ["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE"];

#[derive(Debug, Clone)]
enum Op {
    /// A request from the network.
    Receive {
        method: usize,
        cseq_method: usize,
        branch: u8,
        host: u8,
        reliable: bool,
    },
    /// A response from the network.
    ReceiveResponse {
        status: u16,
        method: usize,
        branch: u8,
    },
    /// The TU starts a client transaction.
    Send {
        method: usize,
        branch: u8,
        reliable: bool,
    },
    /// The TU answers the n-th server transaction it saw.
    Answer { which: usize, status: u16 },
    /// Sending failed for the n-th transmit's transaction.
    TransportError { which: usize },
    /// Time passes.
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..5usize, 0..5usize, 0..4u8, 0..2u8, any::<bool>()).prop_map(
            |(method, cseq_method, branch, host, reliable)| Op::Receive {
                method,
                cseq_method: if cseq_method == 4 {
                    method
                } else {
                    cseq_method
                },
                branch,
                host,
                reliable,
            }
        ),
        (0..800u16, 0..5usize, 0..4u8).prop_map(|(status, method, branch)| {
            Op::ReceiveResponse {
                status,
                method,
                branch,
            }
        }),
        (0..5usize, 0..4u8, any::<bool>()).prop_map(|(method, branch, reliable)| Op::Send {
            method,
            branch,
            reliable,
        }),
        (0..8usize, 0..800u16).prop_map(|(which, status)| Op::Answer { which, status }),
        (0..8usize).prop_map(|which| Op::TransportError { which }),
        (0..40_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// Branch 0 has no magic cookie (RFC 2543 peer).
fn branch(n: u8) -> String {
    if n == 0 {
        "legacy".to_owned()
    } else {
        format!("z9hG4bKb{n}")
    }
}

fn make_request(method: &str, cseq_method: &str, branch: &str, host: u8) -> Request {
    request(&format!(
        "{method} sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP h{host}.example.com;branch={branch}
Max-Forwards: 70
To: <sip:bob@example.com>
From: <sip:alice@example.com>;tag=a1
Call-ID: robust@example.com
CSeq: 7 {cseq_method}
Content-Length: 0

"
    ))
}

fn remote(reliable: bool) -> Remote {
    if reliable { tcp() } else { udp() }
}

fn run(ops: Vec<Op>) {
    let mut f = Flow::new();
    let mut server_keys: Vec<(TransactionKey, Request)> = Vec::new();
    let mut sent_keys: Vec<TransactionKey> = Vec::new();
    for op in ops {
        let now = f.now;
        match op {
            Op::Receive {
                method,
                cseq_method,
                branch: b,
                host,
                reliable,
            } => {
                let req = make_request(METHODS[method], METHODS[cseq_method], &branch(b), host);
                let _ = f.layer.handle_request(req, remote(reliable), now);
            }
            Op::ReceiveResponse {
                status,
                method,
                branch: b,
            } => {
                let req = make_request(METHODS[method], METHODS[method], &branch(b), 0);
                let mut resp = response_to(&req, StatusCode(100), Some("t"));
                resp.status = StatusCode(status);
                let _ = f.layer.handle_response(resp, udp(), now);
            }
            Op::Send {
                method,
                branch: b,
                reliable,
            } => {
                let req = make_request(METHODS[method], METHODS[method], &branch(b), 0);
                let _ = f.layer.send_request(req, remote(reliable), now);
            }
            Op::Answer { which, status } => {
                if let Some((key, req)) = server_keys.get(which) {
                    let resp = response_to(req, StatusCode(status), Some("uas"));
                    let _ = f.layer.send_response(key, resp, now);
                }
            }
            Op::TransportError { which } => {
                if let Some(key) = sent_keys.get(which) {
                    f.layer.handle_transport_error(key);
                }
            }
            Op::Advance { ms: d } => {
                let until = f.elapsed() + ms(d);
                f.run_until(until);
            }
        }
        for t in f.transmits() {
            Message::parse(t.bytes.clone()).expect("every transmit parses");
            if let Some(k) = t.key {
                sent_keys.push(k);
            }
        }
        for e in f.events() {
            if let Event::Request { key, request, .. } = e {
                server_keys.push((key, request));
            }
        }
        assert!(f.layer.timers_consistent());
    }
    // The TU answers everything still open, then a long time passes.
    for (key, req) in &server_keys {
        let now = f.now;
        let _ = f
            .layer
            .send_response(key, response_to(req, StatusCode(500), Some("uas")), now);
    }
    let end = f.elapsed() + secs(600);
    f.run_until(end);
    for key in f.layer.keys() {
        assert!(
            key.is_client() && key.method() == &Method::Invite,
            "{key:?}"
        );
        assert_eq!(f.layer.state(&key), Some(State::Proceeding));
    }
    assert!(f.layer.timers_consistent());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_flows_never_panic_and_always_drain(ops in prop::collection::vec(op(), 0..60)) {
        run(ops);
    }
}

#[test]
fn zero_t1_is_clamped_and_does_not_spin() {
    let mut f = Flow::with_timers(TimerConfig {
        t1: Duration::ZERO,
        t2: Duration::ZERO,
        t4: Duration::ZERO,
    });
    f.send_request(invite("z9hG4bKzero"), udp());
    let sent = f.run_until(ms(10));
    assert!(!sent.is_empty() && sent.len() < 10);
}

#[test]
fn huge_timers_never_overflow() {
    let mut f = Flow::with_timers(TimerConfig {
        t1: Duration::MAX,
        t2: Duration::MAX,
        t4: Duration::MAX,
    });
    let key = f.send_request(invite("z9hG4bKhuge"), udp());
    assert_eq!(f.layer.poll_timeout(), None);
    f.run_until(secs(3600));
    assert_eq!(f.layer.state(&key), Some(State::Calling));
}
