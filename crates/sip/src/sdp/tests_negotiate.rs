//! Offer/answer tests (RFC 3264), written as exchanges between two sides.

use std::net::IpAddr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn g711_g722() -> Vec<LocalCodec> {
    vec![
        LocalCodec::new("G722", 8000),
        LocalCodec::new("PCMA", 8000),
        LocalCodec::new("PCMU", 8000),
    ]
}

fn pbx(codecs: Vec<LocalCodec>) -> OfferAnswer {
    OfferAnswer::new(
        "pbx",
        1000,
        ip("10.0.0.1"),
        vec![LocalMedia::audio(ip("10.0.0.1"), 40000, codecs)],
    )
}

fn sdp(s: &str) -> SessionDescription {
    SessionDescription::parse(s.as_bytes()).unwrap()
}

const PHONE_OFFER: &str = "v=0\r\no=- 20045 20045 IN IP4 192.168.1.50\r\ns=-\r\n\
c=IN IP4 192.168.1.50\r\nt=0 0\r\nm=audio 11780 RTP/AVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

fn offer_with(direction: &str) -> SessionDescription {
    sdp(&PHONE_OFFER.replace("a=sendrecv", direction))
}

#[test]
fn answer_picks_common_codec_in_our_order_and_keeps_event_pt() {
    let mut us = pbx(g711_g722());
    let answer = us.answer(&sdp(PHONE_OFFER)).unwrap();
    let s = answer.streams[0].as_ref().unwrap();
    assert_eq!(
        (s.codec.payload_type, s.codec.encoding.as_str()),
        (9, "G722")
    );
    assert_eq!(s.remote, "192.168.1.50:11780".parse().unwrap());
    let te = s.telephone_event.as_ref().unwrap();
    assert_eq!(
        (te.payload_type, te.events.to_string()),
        (101, "0-15".to_owned())
    );
    assert_eq!(s.ptime, Some(20));
    let text = answer.sdp.to_string();
    assert_eq!(
        text,
        "v=0\r\no=pbx 1000 1000 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 9 8 0 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
         a=ptime:20\r\na=sendrecv\r\n"
    );
    // The answer parses and reads back the same way.
    assert_eq!(sdp(&text), answer.sdp);
}

#[test]
fn answer_in_offerer_order() {
    let mut us = pbx(g711_g722());
    us.order = CodecOrder::Theirs;
    let answer = us.answer(&sdp(PHONE_OFFER)).unwrap();
    assert_eq!(answer.streams[0].as_ref().unwrap().codec.encoding, "PCMU");
    assert_eq!(answer.sdp.media[0].formats, ["0", "8", "9", "101"]);
}

#[test]
fn dynamic_payload_types_keep_offerer_numbers() {
    let offer = sdp(
        "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
         m=audio 5004 RTP/AVP 120 0 97\r\na=rtpmap:120 opus/48000/2\r\na=fmtp:120 useinbandfec=1\r\n\
         a=rtpmap:97 telephone-event/48000\r\na=rtcp-mux\r\n",
    );
    let mut codecs = vec![LocalCodec::new("opus", 48000).with_channels(2)];
    codecs.extend(g711_g722());
    let mut local = LocalMedia::audio(ip("10.0.0.1"), 40000, codecs);
    local.rtcp_mux = true;
    let mut us = OfferAnswer::new("pbx", 5, ip("10.0.0.1"), vec![local]);
    let answer = us.answer(&offer).unwrap();
    let s = answer.streams[0].as_ref().unwrap();
    assert_eq!((s.codec.payload_type, s.codec.clock_rate), (120, 48000));
    assert_eq!(s.fmtp.as_deref(), Some("useinbandfec=1"));
    assert_eq!(s.telephone_event.as_ref().unwrap().payload_type, 97);
    assert!(s.rtcp_mux);
    let m = &answer.sdp.media[0];
    assert_eq!(m.formats, ["120", "0", "97"]);
    assert!(m.rtcp_mux());
    assert_eq!(s.ptime, None);
}

#[test]
fn no_common_codec_is_488() {
    let mut us = pbx(vec![LocalCodec::new("G729", 8000)]);
    let err = us.answer(&sdp(PHONE_OFFER)).unwrap_err();
    assert_eq!(
        err,
        OfferError::NotAcceptable(vec![RejectReason::NoCommonCodec(0)])
    );
    assert_eq!(err.status_code(), 488);
}

#[test]
fn unsupported_stream_is_rejected_with_port_zero() {
    let offer = sdp(&format!(
        "{PHONE_OFFER}m=video 11782 RTP/AVP 109\r\na=rtpmap:109 H264/90000\r\n\
         m=audio 11784 RTP/SAVP 0\r\nm=audio 0 RTP/AVP 0\r\n"
    ));
    let mut us = pbx(g711_g722());
    let answer = us.answer(&offer).unwrap();
    assert!(answer.streams[0].is_ok());
    assert_eq!(
        answer.streams[1],
        Err(RejectReason::UnsupportedMedia {
            index: 1,
            media: "video".into()
        })
    );
    assert!(matches!(
        answer.streams[2],
        Err(RejectReason::UnsupportedProtocol { index: 2, .. })
    ));
    assert_eq!(answer.streams[3], Err(RejectReason::Disabled(3)));
    let ports: Vec<u16> = answer.sdp.media.iter().map(|m| m.port).collect();
    assert_eq!(ports, [40000, 0, 0, 0]);
    assert_eq!(answer.sdp.media[1].to_string(), "m=video 0 RTP/AVP 109\r\n");
}

#[test]
fn direction_mapping_table() {
    use Direction::*;
    // (offered, local policy, answered)
    let table = [
        (SendRecv, SendRecv, SendRecv),
        (SendOnly, SendRecv, RecvOnly),
        (RecvOnly, SendRecv, SendOnly),
        (Inactive, SendRecv, Inactive),
        (SendRecv, SendOnly, SendOnly),
        (SendOnly, SendOnly, Inactive),
        (RecvOnly, SendOnly, SendOnly),
    ];
    for (offered, policy, expected) in table {
        let mut us = pbx(g711_g722());
        us.direction = policy;
        let answer = us
            .answer(&offer_with(&format!("a={}", offered.as_str())))
            .unwrap();
        let m = &answer.sdp.media[0];
        assert_eq!(m.direction(), Some(expected), "{offered:?} with {policy:?}");
        assert_eq!(answer.streams[0].as_ref().unwrap().direction, expected);
    }
}

#[test]
fn session_level_direction_and_ipv6_media_connection() {
    let offer = sdp(
        "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nt=0 0\r\na=sendonly\r\n\
         m=audio 6000 RTP/AVP 8\r\nc=IN IP6 2001:db8::2\r\n",
    );
    let mut us = OfferAnswer::new(
        "pbx",
        9,
        ip("2001:db8::100"),
        vec![LocalMedia::audio(ip("2001:db8::100"), 40000, g711_g722())],
    );
    let answer = us.answer(&offer).unwrap();
    let s = answer.streams[0].as_ref().unwrap();
    assert_eq!(s.remote, "[2001:db8::2]:6000".parse().unwrap());
    assert_eq!(s.direction, Direction::RecvOnly);
    assert!(s.telephone_event.is_none());
    assert!(
        answer
            .sdp
            .to_string()
            .contains("c=IN IP6 2001:db8::100\r\n")
    );
}

#[test]
fn offer_without_address_is_rejected() {
    let offer = sdp("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n");
    let err = pbx(g711_g722()).answer(&offer).unwrap_err();
    assert_eq!(
        err,
        OfferError::NotAcceptable(vec![RejectReason::NoAddress(0)])
    );
}

/// The phone side of our offers: answers PCMU with its own address.
fn phone_answer(offer: &SessionDescription, direction: &str) -> SessionDescription {
    let mut phone = OfferAnswer::new(
        "phone",
        77,
        ip("192.168.1.50"),
        vec![LocalMedia::audio(
            ip("192.168.1.50"),
            11780,
            vec![LocalCodec::new("PCMU", 8000)],
        )],
    );
    phone.direction = Direction::from_attribute(direction).unwrap();
    phone.answer(offer).unwrap().sdp
}

#[test]
fn create_offer_allocates_static_and_dynamic_payload_types() {
    let mut codecs = g711_g722();
    codecs.insert(
        0,
        LocalCodec::new("opus", 48000)
            .with_channels(2)
            .with_fmtp("useinbandfec=1"),
    );
    let mut us = OfferAnswer::new(
        "pbx",
        1,
        ip("10.0.0.1"),
        vec![LocalMedia::audio(ip("10.0.0.1"), 40000, codecs)],
    );
    let offer = us.create_offer();
    let m = &offer.media[0];
    assert_eq!(m.formats, ["96", "9", "8", "0", "97", "98"]);
    assert_eq!(m.rtpmap(96).unwrap().value(), "96 opus/48000/2");
    assert_eq!(m.fmtp(96).unwrap().params, "useinbandfec=1");
    assert_eq!(m.telephone_event(48000).unwrap(), (97, EventRanges::dtmf()));
    assert_eq!(m.telephone_event(8000).unwrap(), (98, EventRanges::dtmf()));
    assert_eq!(m.connection, None);
    assert_eq!(offer.connection.as_ref().unwrap().address, "10.0.0.1");
    assert_eq!(sdp(&offer.to_string()), offer);
}

#[test]
fn offer_answer_round_trip_between_two_sides() {
    let mut us = pbx(g711_g722());
    let offer = us.create_offer();
    let answer = phone_answer(&offer, "sendrecv");
    let streams = us.receive_answer(&answer).unwrap();
    let s = streams[0].as_ref().unwrap();
    assert_eq!(
        (s.codec.payload_type, s.codec.encoding.as_str()),
        (0, "PCMU")
    );
    assert_eq!(s.remote, "192.168.1.50:11780".parse().unwrap());
    assert_eq!(s.direction, Direction::SendRecv);
    assert_eq!(s.telephone_event.as_ref().unwrap().payload_type, 96);
    assert_eq!(us.current().len(), 1);
    // No offer outstanding any more.
    assert_eq!(us.receive_answer(&answer), Err(AnswerError::NoPendingOffer));
}

#[test]
fn hold_and_resume_bump_version_and_direction() {
    let mut us = pbx(g711_g722());
    let first = us.create_offer();
    us.receive_answer(&phone_answer(&first, "sendrecv"))
        .unwrap();

    let hold = us.hold_offer();
    assert_eq!(
        hold.origin.session_version,
        first.origin.session_version + 1
    );
    assert_eq!(hold.media[0].direction(), Some(Direction::SendOnly));
    let held = us.receive_answer(&phone_answer(&hold, "sendrecv")).unwrap();
    assert_eq!(held[0].as_ref().unwrap().direction, Direction::SendOnly);

    let resume = us.resume_offer();
    assert_eq!(
        resume.origin.session_version,
        first.origin.session_version + 2
    );
    assert_eq!(resume.media[0].direction(), Some(Direction::SendRecv));
    assert_eq!(resume.origin.session_id, first.origin.session_id);
}

#[test]
fn hold_while_held_by_peer_is_inactive() {
    let mut us = pbx(g711_g722());
    // The phone put us on hold: its offer is sendonly, so we are recvonly.
    us.answer(&offer_with("a=sendonly")).unwrap();
    assert_eq!(
        us.current()[0].as_ref().unwrap().direction,
        Direction::RecvOnly
    );
    let hold = us.hold_offer();
    assert_eq!(hold.media[0].direction(), Some(Direction::Inactive));
    // Our answer was version 1000; this offer is the next SDP.
    assert_eq!(hold.origin.session_version, 1001);
}

#[test]
fn answer_validation_errors() {
    let mut us = pbx(g711_g722());
    let offer = us.create_offer();
    let good = phone_answer(&offer, "sendrecv");
    let check = |us: &mut OfferAnswer, text: String| {
        us.pending_for_test(offer.clone());
        us.receive_answer(&sdp(&text))
    };
    let text = good.to_string();

    let extra = format!("{text}m=video 0 RTP/AVP 31\r\n");
    assert_eq!(
        check(&mut us, extra),
        Err(AnswerError::StreamCount {
            offered: 1,
            answered: 2
        })
    );

    let unoffered = text.replace("RTP/AVP 0 96", "RTP/AVP 18 96");
    let e = check(&mut us, unoffered);
    assert_eq!(
        e,
        Err(AnswerError::UnofferedFormat {
            index: 0,
            format: "18".into()
        })
    );

    let remapped = text.replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 PCMA/8000");
    assert_eq!(
        check(&mut us, remapped),
        Err(AnswerError::Remapped {
            index: 0,
            payload_type: 0
        })
    );

    let video = text.replace("m=audio", "m=video");
    assert_eq!(check(&mut us, video), Err(AnswerError::MediaMismatch(0)));

    let events_only = text.replace("RTP/AVP 0 96", "RTP/AVP 96");
    assert_eq!(check(&mut us, events_only), Err(AnswerError::NoCodec(0)));

    let no_addr = text.replace("c=IN IP4 192.168.1.50\r\n", "");
    assert_eq!(check(&mut us, no_addr), Err(AnswerError::NoAddress(0)));

    let rejected = text.replace("m=audio 11780", "m=audio 0");
    assert_eq!(check(&mut us, rejected), Ok(vec![None]));

    // We offered sendonly (hold); an answer that also sends contradicts it.
    let hold = us.hold_offer();
    let bad = phone_answer(&hold, "sendrecv")
        .to_string()
        .replace("a=recvonly", "a=sendrecv");
    let e = us.receive_answer(&sdp(&bad));
    assert!(
        matches!(e, Err(AnswerError::Direction { index: 0, .. })),
        "{e:?}"
    );
}
