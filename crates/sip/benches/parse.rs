//! Parser and serializer throughput on typical PBX traffic.
//!
//! Run: `cargo bench -p sip --bench parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sip::Message;

/// A softphone INVITE with an SDP offer (PCMU, PCMA, telephone-event).
const INVITE: &str = concat!(
    "INVITE sip:bob@pbx.example.com SIP/2.0\r\n",
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n",
    "Max-Forwards: 70\r\n",
    "From: \"Alice Smith\" <sip:alice@pbx.example.com>;tag=1928301774\r\n",
    "To: \"Bob Jones\" <sip:bob@pbx.example.com>\r\n",
    "Call-ID: a84b4c76e66710@192.0.2.10\r\n",
    "CSeq: 314159 INVITE\r\n",
    "Contact: \"Alice Smith\" <sip:alice@192.0.2.10:5060;transport=udp>\r\n",
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY\r\n",
    "Supported: replaces, timer, 100rel\r\n",
    "Accept: application/sdp\r\n",
    "Allow-Events: talk, hold, conference\r\n",
    "Session-Expires: 1800;refresher=uac\r\n",
    "User-Agent: ExamplePhone/4.2.1\r\n",
    "Content-Type: application/sdp\r\n",
    "Content-Length: 238\r\n",
    "\r\n",
    "v=0\r\n",
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n",
    "s=-\r\n",
    "c=IN IP4 192.0.2.10\r\n",
    "t=0 0\r\n",
    "m=audio 49170 RTP/AVP 0 8 101\r\n",
    "a=rtpmap:0 PCMU/8000\r\n",
    "a=rtpmap:8 PCMA/8000\r\n",
    "a=rtpmap:101 telephone-event/8000\r\n",
    "a=fmtp:101 0-16\r\n",
    "a=ptime:20\r\n",
    "a=sendrecv\r\n",
);

/// A REGISTER carrying Digest credentials.
const REGISTER: &str = concat!(
    "REGISTER sip:pbx.example.com SIP/2.0\r\n",
    "Via: SIP/2.0/TCP 192.0.2.20:49152;branch=z9hG4bKnashds7;rport\r\n",
    "Max-Forwards: 70\r\n",
    "From: <sip:1001@pbx.example.com>;tag=a73kszlfl\r\n",
    "To: <sip:1001@pbx.example.com>\r\n",
    "Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.20\r\n",
    "CSeq: 2 REGISTER\r\n",
    "Contact: <sip:1001@192.0.2.20:49152;transport=tcp>;expires=3600\r\n",
    "Authorization: Digest username=\"1001\", realm=\"pbx.example.com\", nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", uri=\"sip:pbx.example.com\", response=\"dfe56131d1958046689d83306477ecc\", algorithm=MD5, cseq=2, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n",
    "User-Agent: ExamplePhone/4.2.1\r\n",
    "Content-Length: 0\r\n",
    "\r\n",
);

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    for (name, text) in [("invite_sdp", INVITE), ("register_auth", REGISTER)] {
        let buf = Bytes::from_static(text.as_bytes());
        assert!(Message::parse(buf.clone()).is_ok(), "{name} must parse");
        g.bench_function(name, |b| {
            b.iter(|| Message::parse(black_box(buf.clone())).unwrap())
        });
    }
    g.finish();
}

fn bench_serialize(c: &mut Criterion) {
    let mut g = c.benchmark_group("serialize");
    g.throughput(Throughput::Elements(1));
    for (name, text) in [("invite_sdp", INVITE), ("register_auth", REGISTER)] {
        let msg = Message::parse(Bytes::from_static(text.as_bytes())).unwrap();
        assert_eq!(msg.to_bytes().len(), text.len(), "{name} round trips");
        let mut out = Vec::with_capacity(2048);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                black_box(&msg).write_to(&mut out);
                black_box(out.len())
            })
        });
        g.bench_function(format!("{name}_to_bytes"), |b| {
            b.iter(|| black_box(&msg).to_bytes())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_parse, bench_serialize);
criterion_main!(benches);
