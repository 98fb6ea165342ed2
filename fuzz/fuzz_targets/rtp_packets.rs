//! Feeds arbitrary bytes to the RTP and RTCP parsers, to a relay stream and
//! to the relay's RTCP translation: nothing may panic, the relay's in-place
//! rewrite must keep the packet parseable, and a translated compound packet
//! must parse exactly when the original did.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use media::rtp::{
    Action, Compound, ReceivedStream, RelayConfig, RtcpTranslation, RtpPacket, RtpRelay,
};

fuzz_target!(|data: &[u8]| {
    let _ = RtpPacket::parse(data);
    if let Ok(c) = Compound::parse(data) {
        for _ in c.packets() {}
        for _ in c.report_blocks() {}
    }
    let now = Instant::now();
    let src = "192.0.2.7:4000".parse().unwrap();
    let config = RelayConfig {
        signalled: Some(src),
        ..RelayConfig::default()
    };
    let mut relay = RtpRelay::new(config, now);
    let mut buf = data.to_vec();
    if let Action::Forward(len) = relay.handle_packet(src, &mut buf, now) {
        RtpPacket::parse(&buf[..len]).expect("forwarded packets parse");
    }
    let mut rtcp = data.to_vec();
    let translation = RtcpTranslation {
        sender_ssrc: 0xA0A0_0001,
        timestamp_offset: Some(12345),
        timestamp_map: Some(media::rtp::TimestampMap {
            first: 1000,
            advance: 160_000,
            last_in: 161_000,
            from_rate: 8000,
            to_rate: 48_000,
        }),
        received: Some(ReceivedStream {
            seen_ssrc: u32::from_be_bytes([0, 0, 0, 1]),
            original_ssrc: 7,
            sequence_offset: 500,
            clock_rates: Some((48_000, 8000)),
        }),
    };
    if media::rtp::rtcp_translate::translate(&mut rtcp, &translation) {
        assert_eq!(rtcp.len(), data.len());
        assert_eq!(Compound::parse(&rtcp).is_ok(), Compound::parse(data).is_ok());
    }
    relay.handle_timeout(now + Duration::from_secs(60));
    while relay.poll_event().is_some() {}
});
