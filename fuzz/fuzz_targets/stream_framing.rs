//! Feeds a byte stream to `StreamFramer` in pseudo-random chunks and checks
//! that the messages cut are the same as when the whole stream arrives at
//! once, that an error happens in both cases or neither, and that every
//! frame can be handed to the parser.
//!
//! Keep-alive CRLFs are timing-dependent by design (RFC 5626 §3.5.1): a lone
//! `CRLF` that arrives by itself is a pong, while the same bytes followed by
//! `\r` and more data start a message. So frames are compared without their
//! leading CR/LF bytes (which the parser skips anyway, RFC 3261 §7.5), and
//! the bytes left buffered are not compared.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip::Message;
use sip::framing::{Frame, StreamFramer};

const MAX: usize = 4096;

/// Drains the framer; returns whether it failed.
fn drain(f: &mut StreamFramer, out: &mut Vec<Bytes>) -> bool {
    loop {
        match f.next_frame() {
            Ok(Some(Frame::Message(m))) => {
                assert!(!m.is_empty() && m.len() <= MAX);
                let _ = Message::parse(m.clone());
                let start = m
                    .iter()
                    .position(|&b| b != b'\r' && b != b'\n')
                    .unwrap_or(m.len());
                out.push(m.slice(start..));
            }
            Ok(Some(Frame::Ping | Frame::Pong)) => {}
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (seed, stream) = data.split_at(2);
    let mut rng = u32::from(u16::from_le_bytes([seed[0], seed[1]])) | 1;

    let mut whole = StreamFramer::new(MAX);
    whole.push(stream);
    let mut expected = Vec::new();
    let whole_failed = drain(&mut whole, &mut expected);

    let mut chunked = StreamFramer::new(MAX);
    let mut got = Vec::new();
    let mut chunked_failed = false;
    let mut rest = stream;
    while !rest.is_empty() && !chunked_failed {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let n = (rng as usize % 64 + 1).min(rest.len());
        chunked.push(&rest[..n]);
        rest = &rest[n..];
        chunked_failed = drain(&mut chunked, &mut got);
    }
    assert_eq!(whole_failed, chunked_failed, "error in one feeding only");
    if !whole_failed {
        assert_eq!(expected, got, "chunking changed the frames");
    } else {
        // Frames cut before the failure agree as far as both got.
        let n = expected.len().min(got.len());
        assert_eq!(expected[..n], got[..n]);
    }
});
