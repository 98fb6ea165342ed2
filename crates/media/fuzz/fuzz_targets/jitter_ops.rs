//! The jitter buffer survives any sequence of pushes and pops.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::jitter::{JitterBuffer, JitterConfig};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let mut jb = JitterBuffer::new(JitterConfig::default());
    for op in data.chunks_exact(8) {
        now += Duration::from_millis(u64::from(op[0] % 64));
        if op[1] & 1 == 0 {
            let seq = u16::from_be_bytes([op[2], op[3]]);
            let ts = u32::from_be_bytes([op[4], op[5], op[6], op[7]]);
            jb.push(seq, ts, Bytes::copy_from_slice(&op[4..]), now);
        } else {
            let _ = jb.pop(now);
        }
    }
    let _ = jb.stats();
});
