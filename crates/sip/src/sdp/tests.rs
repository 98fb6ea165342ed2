//! Model, parser and serializer tests on phone-style descriptions.

use proptest::prelude::*;

use super::*;

const YEALINK: &str = "v=0\r\n\
o=- 20045 20045 IN IP4 192.168.1.50\r\n\
s=SDP data\r\n\
c=IN IP4 192.168.1.50\r\n\
t=0 0\r\n\
m=audio 11780 RTP/AVP 0 8 9 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

const WEBRTC: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=msid-semantic: WMS stream\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:8hhY\r\n\
a=ice-pwd:asd88fgpdd777uzjYhagZg\r\n\
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:3735928559 cname:4TOk42mSjXCkVIa6\r\n";

const AUDIO_VIDEO: &str = "v=0\r\n\
o=polycom 1700000000 1700000001 IN IP6 2001:db8::10\r\n\
s=Polycom IP Phone\r\n\
i=desk phone\r\n\
c=IN IP6 2001:db8::10\r\n\
b=AS:2048\r\n\
t=0 0\r\n\
a=sendonly\r\n\
m=audio 2222 RTP/AVP 9 0 18\r\n\
a=fmtp:18 annexb=no\r\n\
m=video 2224 RTP/AVP 109\r\n\
c=IN IP6 2001:db8::11\r\n\
b=TIAS:1920000\r\n\
a=rtpmap:109 H264/90000\r\n\
a=fmtp:109 profile-level-id=42801F\r\n\
a=recvonly\r\n";

fn parse(s: &str) -> SessionDescription {
    SessionDescription::parse(s.as_bytes()).expect("valid SDP")
}

#[test]
fn round_trips_are_byte_identical() {
    for sdp in [YEALINK, WEBRTC, AUDIO_VIDEO] {
        assert_eq!(parse(sdp).to_string(), sdp);
    }
}

#[test]
fn lf_only_input_is_accepted_and_written_with_crlf() {
    let lf = YEALINK.replace("\r\n", "\n");
    assert_eq!(parse(&lf).to_string(), YEALINK);
}

#[test]
fn yealink_views() {
    let sdp = parse(YEALINK);
    assert_eq!(sdp.origin.session_version, 20045);
    let m = &sdp.media[0];
    assert_eq!(
        (m.media.as_str(), m.port, m.protocol.as_str()),
        ("audio", 11780, "RTP/AVP")
    );
    assert_eq!(m.payload_types().collect::<Vec<_>>(), [0, 8, 9, 101]);
    let g722 = m.rtpmap(9).unwrap();
    assert_eq!(
        (
            g722.encoding.as_str(),
            g722.clock_rate,
            g722.channel_count()
        ),
        ("G722", 8000, 1)
    );
    assert_eq!(m.ptime(), Some(20));
    assert_eq!(m.maxptime(), None);
    let (pt, ev) = m.telephone_event(8000).unwrap();
    assert_eq!((pt, ev.to_string()), (101, "0-15".to_owned()));
    assert!(ev.contains(11) && !ev.contains(16));
    assert_eq!(sdp.direction_for(m), Direction::SendRecv);
    assert_eq!(
        sdp.connection_for(m).unwrap().ip(),
        Some("192.168.1.50".parse().unwrap())
    );
}

#[test]
fn webrtc_views() {
    let sdp = parse(WEBRTC);
    assert_eq!(sdp.origin.session_id, "4611731400430051336");
    assert_eq!(
        sdp.attribute("group").unwrap().value.as_deref(),
        Some("BUNDLE 0")
    );
    let m = &sdp.media[0];
    let opus = m.rtpmap(111).unwrap();
    assert_eq!((opus.clock_rate, opus.channels), (48000, Some(2)));
    assert_eq!(m.fmtp(111).unwrap().params, "minptime=10;useinbandfec=1");
    assert!(m.rtcp_mux());
    let rtcp = m.rtcp().unwrap();
    assert_eq!(rtcp.port, 9);
    assert_eq!(rtcp.connection.unwrap().address, "0.0.0.0");
    assert_eq!(m.telephone_event(48000).unwrap().0, 110);
    assert_eq!(m.telephone_event(8000).unwrap().0, 126);
    // No fmtp: RFC 4733 default events.
    assert_eq!(m.telephone_event(8000).unwrap().1, EventRanges::dtmf());
    assert_eq!(m.rtpmap(13).unwrap().encoding, "CN");
}

#[test]
fn ipv6_static_payloads_and_media_level_overrides() {
    let sdp = parse(AUDIO_VIDEO);
    assert_eq!(sdp.origin.address_type, AddressType::Ip6);
    assert_eq!(
        sdp.other[0],
        RawLine {
            kind: b'i',
            value: "desk phone".into()
        }
    );
    assert_eq!(
        sdp.bandwidths[0],
        Bandwidth {
            kind: "AS".into(),
            value: 2048
        }
    );
    let (audio, video) = (&sdp.media[0], &sdp.media[1]);
    // No rtpmap at all: the static table answers.
    assert_eq!(audio.rtpmap(18).unwrap().encoding, "G729");
    assert_eq!(audio.rtpmap(9).unwrap().clock_rate, 8000);
    assert_eq!(audio.rtpmap(97), None);
    assert_eq!(
        sdp.connection_for(audio).unwrap().ip(),
        Some("2001:db8::10".parse().unwrap())
    );
    assert_eq!(
        sdp.connection_for(video).unwrap().ip(),
        Some("2001:db8::11".parse().unwrap())
    );
    // Session says sendonly; video overrides it.
    assert_eq!(sdp.direction_for(audio), Direction::SendOnly);
    assert_eq!(sdp.direction_for(video), Direction::RecvOnly);
    assert_eq!(video.bandwidths[0].kind, "TIAS");
}

#[test]
fn set_direction_replaces_in_place() {
    let mut sdp = parse(YEALINK);
    sdp.media[0].set_direction(Direction::SendOnly);
    assert_eq!(sdp.to_string(), YEALINK.replace("a=sendrecv", "a=sendonly"));
    sdp.media[0].attributes.retain(|a| a.name != "sendonly");
    sdp.media[0].set_direction(Direction::Inactive);
    assert!(sdp.to_string().ends_with("a=inactive\r\n"));
}

#[test]
fn event_ranges() {
    let r = EventRanges::parse("0-16,32,36-40").unwrap();
    assert!(r.contains(16) && r.contains(32) && r.contains(38) && !r.contains(33));
    assert_eq!(r.to_string(), "0-16,32,36-40");
    let both = r.intersect(&EventRanges::dtmf()).unwrap();
    assert_eq!(both.to_string(), "0-15");
    assert_eq!(EventRanges::parse("5-1"), None);
    assert_eq!(EventRanges::parse("0-300"), None);
    assert_eq!(EventRanges::parse("x").map(|_| ()), None);
}

fn err(s: &str) -> SdpError {
    SessionDescription::parse(s.as_bytes()).unwrap_err()
}

#[test]
fn rejects_garbage_with_line_numbers() {
    let head = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n";
    assert_eq!(err(""), SdpError::Empty);
    assert_eq!(err("\r\n\r\n"), SdpError::Empty);
    assert_eq!(err("v=1\r\n"), SdpError::BadVersion { line: 1 });
    assert_eq!(err("hello"), SdpError::NoEquals { line: 1 });
    assert_eq!(
        err("v=0\r\ns=-\r\n"),
        SdpError::Misplaced {
            line: 2,
            ty: 's',
            why: "before o="
        }
    );
    assert_eq!(
        err("v=0\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\n"),
        SdpError::Missing('s')
    );
    assert_eq!(
        err("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n"),
        SdpError::Missing('t')
    );
    assert_eq!(err("v=0\r\n"), SdpError::Missing('o'));
    assert!(matches!(
        err(&format!("{head}X=1\r\n")),
        SdpError::BadType { line: 5, ty: 'X' }
    ));
    assert!(matches!(
        err(&format!("{head}1=1\r\n")),
        SdpError::BadType { line: 5, .. }
    ));
    assert_eq!(err(&format!("{head}a\r\n")), SdpError::NoEquals { line: 5 });
    for bad_m in [
        "m=audio 5000 RTP/AVP 128",
        "m=audio 5000 RTP/AVP PCMU",
        "m=audio 70000 RTP/AVP 0",
        "m=audio x RTP/AVP 0",
        "m=audio 5000 RTP/AVP",
        "m=audio",
    ] {
        let e = err(&format!("{head}{bad_m}\r\n"));
        assert!(
            matches!(e, SdpError::Invalid { line: 5, .. }),
            "{bad_m}: {e}"
        );
    }
    assert!(matches!(
        err("v=0\r\no=- x 1 IN IP4 h\r\n"),
        SdpError::Invalid { line: 2, .. }
    ));
    assert!(matches!(
        err("v=0\r\no=- 1 1 IN IP5 h\r\n"),
        SdpError::Invalid { line: 2, .. }
    ));
    assert!(matches!(
        err(&format!("{head}c=IN IP4\r\n")),
        SdpError::Invalid { line: 5, .. }
    ));
    assert!(matches!(
        err(&format!("{head}b=AS\r\n")),
        SdpError::Invalid { line: 5, .. }
    ));
    assert_eq!(
        err(&format!("{head}c=IN IP4 a\r\nc=IN IP4 b\r\n")),
        SdpError::Duplicate { line: 6, ty: 'c' }
    );
    assert!(matches!(
        err(&format!("{head}m=audio 1 RTP/AVP 0\r\nt=0 0\r\n")),
        SdpError::Misplaced {
            line: 6,
            ty: 't',
            ..
        }
    ));
    assert!(matches!(
        err("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n"),
        SdpError::Misplaced {
            line: 4,
            ty: 'm',
            ..
        }
    ));
    assert_eq!(
        SessionDescription::parse(b"v=0\r\no=\xff\r\n"),
        Err(SdpError::NotUtf8 { line: 2 })
    );
    let e = err(&format!("{head}m=audio 99999 RTP/AVP 0\r\n"));
    assert_eq!(e.to_string(), "line 5: invalid m= port: \"99999\"");
}

#[test]
fn unknown_lines_are_kept_in_place() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nu=http://x\r\ne=a@b\r\nt=0 0\r\nr=7d 1h 0 25h\r\n\
        z=2882844526 -1h\r\nk=prompt\r\nx=future\r\na=tool:t\r\nm=audio 1 RTP/AVP 0\r\ni=voice\r\n\
        c=IN IP4 1.2.3.4\r\nk=clear:x\r\ny=other\r\na=quality:10\r\n";
    let parsed = parse(sdp);
    assert_eq!(parsed.timings[0].repeats, ["7d 1h 0 25h"]);
    assert_eq!(parsed.to_string(), sdp);
}

#[test]
fn size_limits() {
    let big = vec![b'a'; MAX_SDP_LEN + 1];
    assert_eq!(
        SessionDescription::parse(&big),
        Err(SdpError::TooLarge(MAX_SDP_LEN + 1))
    );
    let mut many = String::from("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n");
    for _ in 0..MAX_SDP_LINES {
        many.push_str("a=x\r\n");
    }
    assert_eq!(
        SessionDescription::parse(many.as_bytes()),
        Err(SdpError::TooManyLines)
    );
}

fn arb_sdp() -> impl Strategy<Value = String> {
    let attr = prop_oneof![
        Just("a=sendonly".to_owned()),
        Just("a=rtcp-mux".to_owned()),
        (0u8..128, "[A-Za-z0-9-]{1,8}", 1u32..100_000)
            .prop_map(|(p, n, r)| format!("a=rtpmap:{p} {n}/{r}")),
        (0u8..128, "[ -~]{0,12}").prop_map(|(p, f)| format!("a=fmtp:{p} {f}")),
        "[a-z-]{1,8}(:[ -~]{0,10})?".prop_map(|a| format!("a={a}")),
    ];
    let media = (
        prop_oneof![Just("audio"), Just("video")],
        any::<u16>(),
        prop::collection::vec(0u8..128, 1..5),
        prop::collection::vec(attr.clone(), 0..5),
    )
        .prop_map(|(kind, port, pts, attrs)| {
            let pts: Vec<String> = pts.iter().map(u8::to_string).collect();
            let mut s = format!("m={kind} {port} RTP/AVP {}\r\n", pts.join(" "));
            for a in attrs {
                s.push_str(&a);
                s.push_str("\r\n");
            }
            s
        });
    (
        any::<u64>(),
        prop::collection::vec(attr, 0..4),
        prop::collection::vec(media, 0..3),
    )
        .prop_map(|(version, attrs, media)| {
            let mut s = format!(
                "v=0\r\no=- 7 {version} IN IP4 10.1.2.3\r\ns=-\r\nc=IN IP4 10.1.2.3\r\nt=0 0\r\n"
            );
            for a in attrs {
                s.push_str(&a);
                s.push_str("\r\n");
            }
            s.extend(media);
            s
        })
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = SessionDescription::parse(&bytes);
        let mut with_head = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n".to_vec();
        with_head.extend_from_slice(&bytes);
        if let Ok(sdp) = SessionDescription::parse(&with_head) {
            let again = SessionDescription::parse(&sdp.to_bytes()).unwrap();
            prop_assert_eq!(again.to_string(), sdp.to_string());
        }
    }

    #[test]
    fn serialize_then_parse_is_identity(text in arb_sdp()) {
        let sdp = SessionDescription::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(sdp.to_string(), text.clone());
        prop_assert_eq!(SessionDescription::parse(&sdp.to_bytes()).unwrap(), sdp);
    }
}

proptest! {
    #[test]
    fn negotiation_never_panics_and_answers_reparse(text in arb_sdp()) {
        let offer = SessionDescription::parse(text.as_bytes()).unwrap();
        let addr: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let codecs = vec![
            LocalCodec::new("opus", 48000).with_channels(2),
            LocalCodec::new("PCMU", 8000),
        ];
        let mut us = OfferAnswer::new("pbx", 1, addr, vec![LocalMedia::audio(addr, 4000, codecs)]);
        if let Ok(answer) = us.answer(&offer) {
            prop_assert_eq!(answer.streams.len(), offer.media.len());
            prop_assert_eq!(SessionDescription::parse(&answer.sdp.to_bytes()).unwrap(), answer.sdp);
        }
        us.create_offer();
        let _ = us.receive_answer(&offer);
    }
}
