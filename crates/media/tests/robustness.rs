//! Property tests: no parser or decoder panics on arbitrary input, and
//! stateful components survive arbitrary call sequences.

use std::time::{Duration, Instant};

use media::codec::CodecKind;
use media::dtmf::info::DtmfRelay;
use media::dtmf::rfc4733::TelephoneEvent;
use media::dtmf::{DtmfDetector, DtmfReceiver};
use media::jitter::{JitterBuffer, JitterConfig, Pop};
use media::transcode::Transcoder;
use media::wav;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoders_accept_any_payload(payload in proptest::collection::vec(any::<u8>(), 0..400)) {
        for &kind in CodecKind::ALL {
            let mut c = kind.create().unwrap();
            let mut out = Vec::new();
            c.decode(&payload, &mut out);
            match kind {
                CodecKind::Pcmu | CodecKind::Pcma => prop_assert_eq!(out.len(), payload.len()),
                CodecKind::G722 => prop_assert_eq!(out.len(), 2 * payload.len()),
                // 10 ms per 10-byte frame or SID; bad lengths are concealed.
                #[cfg(feature = "g729")]
                CodecKind::G729 => prop_assert_eq!(out.len(), 80 * payload.len().div_ceil(10)),
                // Opus output depends on the packet's TOC; it must not panic.
                #[allow(unreachable_patterns)]
                _ => {}
            }
            c.conceal(160, &mut out);
        }
    }

    #[test]
    fn transcoders_accept_any_payload(payload in proptest::collection::vec(any::<u8>(), 0..400)) {
        for &from in CodecKind::ALL {
            for &to in CodecKind::ALL {
                let mut t = Transcoder::new(from, to).unwrap();
                let mut out = Vec::new();
                prop_assert!(t.transcode(&payload, &mut out).is_ok());
            }
        }
    }

    #[test]
    fn encoders_accept_any_pcm(pcm in proptest::collection::vec(any::<i16>(), 0..400)) {
        for &kind in CodecKind::ALL {
            let mut c = kind.create().unwrap();
            let mut out = Vec::new();
            let r = c.encode(&pcm, &mut out);
            let valid = match kind {
                CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => {
                    pcm.len() % kind.frame_multiple() == 0
                }
                #[cfg(feature = "g729")]
                CodecKind::G729 => !pcm.is_empty() && pcm.len().is_multiple_of(80),
                #[allow(unreachable_patterns)]
                _ => [120, 240].contains(&pcm.len()),
            };
            prop_assert_eq!(r.is_ok(), valid);
        }
    }

    #[test]
    fn wav_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = wav::reader::parse(&bytes);
        let mut with_header = b"RIFF\x00\x00\x00\x00WAVEfmt ".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = wav::read_prompt(&with_header, 8000);
    }

    #[test]
    fn dtmf_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16), body in "\\PC{0,64}") {
        let _ = TelephoneEvent::parse(&bytes);
        let _ = DtmfRelay::parse(&body);
        let mut r = DtmfReceiver::new();
        let _ = r.handle(1, &bytes, Instant::now());
        while r.poll_event().is_some() {}
    }

    #[test]
    fn detector_never_panics(pcm in proptest::collection::vec(any::<i16>(), 0..2000)) {
        let mut d = DtmfDetector::default();
        d.feed(&pcm);
        while d.poll().is_some() {}
    }

    #[test]
    fn jitter_buffer_survives_any_packet_sequence(
        ops in proptest::collection::vec((any::<u16>(), any::<u32>(), 0u64..100, any::<bool>()), 0..300)
    ) {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut now = t0;
        for (seq, ts, advance_ms, pop) in ops {
            now += Duration::from_millis(advance_ms);
            jb.push(seq, ts, bytes::Bytes::from_static(&[0]), now);
            if pop && let Pop::Frame(f) = jb.pop(now) {
                prop_assert_eq!(&f.payload[..], &[0u8][..]);
            }
        }
        prop_assert!(jb.level() <= 1 << 17);
    }
}
