//! Codec negotiation across legs on virtual time: plain relay when the
//! legs share a codec, transcoding both ways when they do not, and
//! renegotiation on re-offers.

use std::time::Instant;

use bytes::Bytes;
use sip::header::HeaderName;
use sip::transaction::TransactionKey;
use sip::{Message, Method, Request};

use super::tests::{
    drain, ended, invite_with, key_of, reply, requests, responses, start_configured,
};
use super::*;

/// The caller speaks PCMU only (and DTMF events).
const PCMU_OFFER: &str = "v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
    m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
    a=ptime:20\r\na=sendrecv\r\n";

fn answer(formats: &str, rtpmaps: &str) -> String {
    format!(
        "v=0\r\no=b 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n\
         m=audio 6000 RTP/AVP {formats}\r\n{rtpmaps}a=sendrecv\r\n"
    )
}

const TE: &str = "a=rtpmap:101 telephone-event/8000\r\n";

fn transcoding_config() -> CallConfig {
    CallConfig {
        transcodable: ["PCMU", "PCMA", "G722", "opus"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..CallConfig::default()
    }
}

fn with_body(mut req: Request, body: &str) -> Request {
    req.body = Bytes::from(body.to_owned());
    req
}

fn transcodings(out: &[Output]) -> Vec<Option<Transcoding>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Transcoding(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn body_of(bytes: &Bytes) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// Starts a PCMU-only call, answers it with `b_answer` and ACKs it; returns
/// the call, the offer B received, the answer A received and the outputs
/// of the answer.
fn answered(b_answer: &str, t0: Instant) -> (Call, String, String, Vec<Output>) {
    let inv = with_body(invite_with(""), PCMU_OFFER);
    let mut call = start_configured(inv, 1, transcoding_config(), t0);
    let (b_inv, _) = requests(&drain(&mut call), Method::Invite).remove(0);
    let offer = body_of(&b_inv.body).to_owned();
    call.on_response(&key_of(&b_inv), reply(&b_inv, 200, Some(b_answer)), t0);
    let out = drain(&mut call);
    let to_a = body_of(&responses(&out)[0].body).to_owned();
    let mut ack = invite_with("");
    ack.method = Method::Ack;
    call.on_ack(Side::A, &ack, t0);
    (call, offer, to_a, out)
}

#[test]
fn offer_to_b_appends_transcodable_codecs_after_the_callers() {
    let (_, offer, _, _) = answered(&answer("0 101", TE), Instant::now());
    // The caller's codecs first, in its order with its payload types, then
    // PCMA and G.722 on their static types and Opus on a free dynamic one;
    // G.729 is configured but not transcodable.
    assert!(
        offer.contains("m=audio 40002 RTP/AVP 0 101 8 9 96\r\n"),
        "{offer}"
    );
    assert!(offer.contains("a=rtpmap:96 opus/48000/2"), "{offer}");
    assert!(
        offer.contains("a=rtpmap:101 telephone-event/8000"),
        "{offer}"
    );
    assert!(offer.contains("a=ptime:20"), "{offer}");
}

#[test]
fn common_codec_is_relayed_without_transcoding() {
    let t0 = Instant::now();
    let (mut call, _, to_a, out) = answered(&answer("0 101", TE), t0);
    assert!(transcodings(&out).is_empty(), "{out:?}");
    assert!(to_a.contains("m=audio 40000 RTP/AVP 0 101\r\n"), "{to_a}");
    call.hangup(200, "test", t0);
    let end = ended(&drain(&mut call)).unwrap();
    assert_eq!(end.codec.as_deref(), Some("PCMU"));
    assert_eq!(end.codec_b.as_deref(), Some("PCMU"));
}

#[test]
fn no_common_codec_transcodes_both_ways_and_answers_a_with_its_codec() {
    let t0 = Instant::now();
    let (mut call, _, to_a, out) = answered(&answer("8 101", TE), t0);
    let plan = transcodings(&out);
    let expected = Transcoding {
        a: PayloadFormat {
            codec: "PCMU".into(),
            payload_type: 0,
            clock_rate: 8000,
            telephone_event: Some(TelephoneEvent {
                payload_type: 101,
                clock_rate: 8000,
            }),
        },
        b: PayloadFormat {
            codec: "PCMA".into(),
            payload_type: 8,
            clock_rate: 8000,
            telephone_event: Some(TelephoneEvent {
                payload_type: 101,
                clock_rate: 8000,
            }),
        },
    };
    assert_eq!(plan, vec![Some(expected)]);
    // A hears of its own codec only, with its DTMF format.
    assert!(to_a.contains("m=audio 40000 RTP/AVP 0 101\r\n"), "{to_a}");
    assert!(
        to_a.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15"),
        "{to_a}"
    );
    assert!(!to_a.contains("PCMA"), "{to_a}");
    call.hangup(200, "test", t0);
    let end = ended(&drain(&mut call)).unwrap();
    assert_eq!(end.codec.as_deref(), Some("PCMU"));
    assert_eq!(end.codec_b.as_deref(), Some("PCMA"));
}

#[test]
fn callee_without_dtmf_events_gets_none_and_neither_does_the_caller() {
    let (_, _, to_a, out) = answered(&answer("9", ""), Instant::now());
    let plan = transcodings(&out).remove(0).unwrap();
    assert_eq!(plan.b.codec, "G722");
    assert_eq!(plan.b.telephone_event, None);
    assert_eq!(plan.a.telephone_event, None);
    assert!(to_a.contains("m=audio 40000 RTP/AVP 0\r\n"), "{to_a}");
    assert!(!to_a.contains("telephone-event"), "{to_a}");
}

#[test]
fn without_transcodable_codecs_the_offer_is_unchanged() {
    let t0 = Instant::now();
    let inv = with_body(invite_with(""), PCMU_OFFER);
    let mut call = start_configured(inv, 1, CallConfig::default(), t0);
    let (b_inv, _) = requests(&drain(&mut call), Method::Invite).remove(0);
    assert!(body_of(&b_inv.body).contains("m=audio 40002 RTP/AVP 0 101\r\n"));
    // A caller with only a codec the engine cannot transcode (G.729) gets
    // nothing appended either.
    let g729 = PCMU_OFFER.replace("RTP/AVP 0 101", "RTP/AVP 18 101");
    let inv = with_body(invite_with(""), &g729);
    let mut call = start_configured(inv, 1, transcoding_config(), t0);
    let (b_inv, _) = requests(&drain(&mut call), Method::Invite).remove(0);
    assert!(body_of(&b_inv.body).contains("m=audio 40002 RTP/AVP 18 101\r\n"));
}

/// A's re-INVITE with `offer`, forwarded; B answers `b_answer`. Returns
/// the outputs of the answer and the body A received.
fn reoffer(call: &mut Call, cseq: u32, offer: &str, b_answer: &str) -> (Vec<Output>, String) {
    let t0 = Instant::now();
    let mut reinv = with_body(invite_with(""), offer);
    let tag = call.a.local_tag.clone();
    reinv
        .headers
        .set(HeaderName::To, format!("<sip:1002@pbx>;tag={tag}"));
    reinv
        .headers
        .set(HeaderName::CSeq, format!("{cseq} INVITE"));
    reinv.headers.set(
        HeaderName::Via,
        format!("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKre{cseq}"),
    );
    let key = TransactionKey::for_outgoing(&reinv).unwrap();
    call.on_request(Side::A, key, reinv, t0);
    let (fwd, _) = requests(&drain(call), Method::Invite).remove(0);
    call.on_response(&key_of(&fwd), reply(&fwd, 200, Some(b_answer)), t0);
    let out = drain(call);
    assert!(out.iter().any(|o| matches!(o, Output::Stateless { message: Message::Request(r), .. } if r.method == Method::Ack)));
    let to_a = body_of(&responses(&out)[0].body).to_owned();
    (out, to_a)
}

#[test]
fn reoffers_renegotiate_the_transcoding() {
    let t0 = Instant::now();
    let (mut call, _, _, out) = answered(&answer("8 101", TE), t0);
    assert!(matches!(transcodings(&out).as_slice(), [Some(_)]));

    // The caller now offers PCMA too and B keeps PCMA: plain relay again.
    let both = PCMU_OFFER.replace("RTP/AVP 0 101", "RTP/AVP 0 8 101");
    let (out, to_a) = reoffer(&mut call, 3, &both, &answer("8 101", TE));
    assert_eq!(transcodings(&out), vec![None]);
    assert!(to_a.contains("m=audio 40000 RTP/AVP 8 101\r\n"), "{to_a}");

    // Back to PCMU only, and B moves to G.722: transcoding with the new
    // codec on B's side.
    let (out, to_a) = reoffer(&mut call, 4, PCMU_OFFER, &answer("9 101", TE));
    let plan = transcodings(&out).remove(0).unwrap();
    assert_eq!(
        (plan.a.codec.as_str(), plan.b.codec.as_str()),
        ("PCMU", "G722")
    );
    assert_eq!(plan.b.payload_type, 9);
    assert!(to_a.contains("m=audio 40000 RTP/AVP 0 101\r\n"), "{to_a}");

    // The same again (a session refresh with SDP): nothing new to apply.
    let (out, _) = reoffer(&mut call, 5, PCMU_OFFER, &answer("9 101", TE));
    assert!(transcodings(&out).is_empty());
    call.hangup(200, "test", t0);
    let end = ended(&drain(&mut call)).unwrap();
    assert_eq!(end.codec_b.as_deref(), Some("G722"));
}

#[test]
fn delayed_offer_from_the_callee_is_extended_and_answered_in_the_ack() {
    let t0 = Instant::now();
    let mut inv = invite_with("");
    inv.body = Bytes::new();
    inv.headers.remove(&HeaderName::ContentType);
    let mut call = start_configured(inv, 1, transcoding_config(), t0);
    let (b_inv, _) = requests(&drain(&mut call), Method::Invite).remove(0);
    // B offers PCMA only; A sees PCMA plus what the engine can convert.
    let b_offer = answer("8 101", TE);
    call.on_response(&key_of(&b_inv), reply(&b_inv, 200, Some(&b_offer)), t0);
    let out = drain(&mut call);
    let to_a = body_of(&responses(&out)[0].body).to_owned();
    assert!(
        to_a.contains("m=audio 40000 RTP/AVP 8 101 0 9 96\r\n"),
        "{to_a}"
    );
    // A answers PCMU in its ACK: B gets PCMA, the relay transcodes.
    let mut ack = with_body(invite_with(""), PCMU_OFFER);
    ack.method = Method::Ack;
    call.on_ack(Side::A, &ack, t0);
    let out = drain(&mut call);
    let plan = transcodings(&out).remove(0).unwrap();
    assert_eq!(
        (plan.a.codec.as_str(), plan.b.codec.as_str()),
        ("PCMU", "PCMA")
    );
    let to_b = out
        .iter()
        .find_map(|o| match o {
            Output::Stateless {
                message: Message::Request(r),
                ..
            } if r.method == Method::Ack => Some(body_of(&r.body).to_owned()),
            _ => None,
        })
        .unwrap();
    assert!(to_b.contains("m=audio 40002 RTP/AVP 8 101\r\n"), "{to_b}");
}

#[test]
fn streams_carry_the_clock_rate_of_the_codec_in_use() {
    let t0 = Instant::now();
    let opus = "v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 111 0\r\na=rtpmap:111 opus/48000/2\r\na=sendrecv\r\n";
    let inv = with_body(invite_with(""), opus);
    let mut call = start_configured(inv, 1, transcoding_config(), t0);
    let out = drain(&mut call);
    let (b_inv, _) = requests(&out, Method::Invite).remove(0);
    let rates = |out: &[Output]| -> Vec<(Side, u32)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Media(c) => Some((c.side, c.clock_rate)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(rates(&out), vec![(Side::A, 48_000)]);
    let b_answer = answer("111", "a=rtpmap:111 opus/48000/2\r\n");
    call.on_response(&key_of(&b_inv), reply(&b_inv, 200, Some(&b_answer)), t0);
    let out = drain(&mut call);
    assert!(rates(&out).contains(&(Side::B, 48_000)), "{out:?}");
    assert!(rates(&out).iter().all(|(_, r)| *r == 48_000), "{out:?}");
}
