//! Parses arbitrary bytes as SDP; on success the serialized form must parse
//! and re-serialize to the same text (lines in unusual places are moved to
//! their canonical place once, so the first serialization is the fixed
//! point, not the input), and answering it as an offer must not panic and
//! must give an answer that parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::sdp::{LocalCodec, LocalMedia, OfferAnswer, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = SessionDescription::parse(data) else {
        return;
    };
    let text = sdp.to_string();
    let again = SessionDescription::parse(text.as_bytes()).expect("serialized SDP parses");
    assert_eq!(again.to_string(), text, "serialization is a fixed point");
    let ip = "192.0.2.1".parse().unwrap();
    let media = vec![LocalMedia::audio(
        ip,
        40_000,
        vec![LocalCodec::new("PCMU", 8000), LocalCodec::new("opus", 48000).with_channels(2)],
    )];
    let mut oa = OfferAnswer::new("pbx", 1, ip, media);
    if let Ok(answer) = oa.answer(&sdp) {
        let text = answer.sdp.to_string();
        SessionDescription::parse(text.as_bytes()).expect("our answer parses");
    }
});
