//! WAV parsing and prompt conversion must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = media::wav::reader::parse(data);
    let _ = media::wav::read_prompt(data, 8000);
});
