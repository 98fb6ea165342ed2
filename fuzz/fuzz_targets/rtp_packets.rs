//! Feeds arbitrary bytes to the RTP and RTCP parsers and to a relay stream:
//! nothing may panic, and the relay's in-place rewrite must keep the
//! packet parseable.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use media::rtp::{Action, Compound, RelayConfig, RtpPacket, RtpRelay};

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
    relay.handle_timeout(now + Duration::from_secs(60));
    while relay.poll_event().is_some() {}
});
