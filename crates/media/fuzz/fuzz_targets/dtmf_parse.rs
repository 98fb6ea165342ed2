//! RFC 4733 payloads, dtmf-relay bodies and the receiver state machine.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use media::dtmf::DtmfReceiver;
use media::dtmf::info::DtmfRelay;
use media::dtmf::rfc4733::TelephoneEvent;

fuzz_target!(|data: &[u8]| {
    let _ = TelephoneEvent::parse(data);
    if let Ok(body) = std::str::from_utf8(data) {
        if let Ok(r) = DtmfRelay::parse(body) {
            assert_eq!(DtmfRelay::parse(&r.format()).ok(), Some(r));
        }
    }
    // Treat the input as a train of (timestamp, payload) packets.
    let t0 = Instant::now();
    let mut rx = DtmfReceiver::new();
    for (i, chunk) in data.chunks(6).enumerate() {
        let ts = u32::from(chunk[0]) << 8;
        let now = t0 + Duration::from_millis(20 * i as u64);
        let _ = rx.handle(ts, &chunk[1..], now);
        rx.handle_timeout(now);
        while rx.poll_event().is_some() {}
    }
});
