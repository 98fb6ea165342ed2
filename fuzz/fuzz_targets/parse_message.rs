//! Parses arbitrary bytes as one SIP message (datagram semantics). On
//! success: runs every validator and typed header view, then checks that
//! the serialized form parses back to the same message and that
//! serialization is a fixed point.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip::header::{NameAddr, Via};
use sip::uri::Uri;
use sip::validate::{self, Capabilities};
use sip::{HeaderName, Message};

fn exercise_uri(u: &Uri) {
    let _ = (u.as_str(), u.scheme());
    if let Some(s) = u.as_sip() {
        let _ = (s.user(), s.user_decoded(), s.password(), s.host(), s.port());
        let _ = (
            s.params(),
            s.transport(),
            s.is_loose_route(),
            s.headers_raw(),
        );
    }
    if let Uri::Tel(t) = u {
        let _ = (t.number(), t.is_global(), t.params());
    }
}

fn exercise_name_addr(v: &Bytes) {
    if let Ok(na) = NameAddr::parse(v.clone()) {
        let _ = (
            na.display_name(),
            na.params(),
            na.tag(),
            na.param("expires"),
        );
        exercise_uri(&na.uri);
    }
}

fn exercise(msg: &Message) {
    let h = msg.headers();
    if let Some(v) = h.top_via() {
        let _ = (v.branch(), v.has_rfc3261_branch(), v.received(), v.rport());
    }
    for v in h.get_all(&HeaderName::Via) {
        let _ = Via::parse_all(v);
    }
    let _ = (h.cseq(), h.call_id());
    if let Some(f) = h.from() {
        exercise_uri(&f.uri);
    }
    if let Some(t) = h.to() {
        let _ = t.tag();
    }
    for name in [
        HeaderName::Contact,
        HeaderName::Route,
        HeaderName::RecordRoute,
    ] {
        for v in h.list_values(&name) {
            exercise_name_addr(&v);
        }
    }
    for name in [
        HeaderName::Require,
        HeaderName::Supported,
        HeaderName::Accept,
    ] {
        let _ = h.list_values(&name);
    }
    match msg {
        Message::Request(r) => {
            exercise_uri(&r.uri);
            let _ = validate::check_request(r);
            let _ = Capabilities::default().check(r);
            let _ = validate::check_register(r);
        }
        Message::Response(r) => {
            let _ = (r.reason_str(), r.status.default_reason());
            let _ = validate::check_response(r);
        }
    }
}

/// The message minus Content-Length (the serializer always writes the
/// body's real length, adding the header when it was absent).
fn without_length(m: &Message) -> Message {
    let mut m = m.clone();
    m.headers_mut().remove(&HeaderName::ContentLength);
    m
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    exercise(&msg);
    let wire = msg.to_bytes();
    let again = match Message::parse(wire.clone()) {
        Ok(m) => m,
        Err(e) => panic!("serialized form does not parse ({e}): {wire:?}"),
    };
    assert_eq!(
        without_length(&msg),
        without_length(&again),
        "round trip changed the message"
    );
    assert_eq!(again.to_bytes(), wire, "serialization is not a fixed point");
});
