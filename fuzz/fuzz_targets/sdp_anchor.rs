//! The call engine's SDP rewriting (media anchoring) on arbitrary bytes:
//! it must not panic, and what it accepts must come out as SDP that parses
//! and sends the audio stream to the PBX's relay address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pbx::call::anchor::{DEFAULT_CODECS, Origin, rewrite};
use sip::sdp::{Connection, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let local = "192.0.2.1:40000".parse().unwrap();
    let allowed: Vec<String> = DEFAULT_CODECS.iter().map(|s| s.to_string()).collect();
    for filter in [Some(&allowed[..]), None] {
        let mut origin = Origin::new(7);
        let Ok((body, _info)) = rewrite(data, local, &mut origin, filter) else {
            continue;
        };
        let sdp = SessionDescription::parse(&body).expect("rewritten SDP parses");
        let audio = sdp
            .media
            .iter()
            .find(|m| m.port != 0)
            .expect("an audio stream stays enabled");
        assert_eq!(audio.port, 40_000);
        let ip = sdp.connection_for(audio).and_then(Connection::ip);
        assert_eq!(ip, Some(local.ip()));
        // Rewriting our own output again is stable.
        let (again, _) = rewrite(&body, local, &mut origin, filter).expect("accepted again");
        assert_eq!(again, body);
    }
});
