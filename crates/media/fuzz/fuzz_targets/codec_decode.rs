//! Every decoder and transcoder accepts any payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::codec::CodecKind;
use media::transcode::Transcoder;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let kinds = CodecKind::ALL;
    let from = kinds[usize::from(selector) % kinds.len()];
    let to = kinds[usize::from(selector / 16) % kinds.len()];
    if let Ok(mut c) = from.create() {
        let mut pcm = Vec::new();
        c.decode(payload, &mut pcm);
        c.conceal(160, &mut pcm);
    }
    if let Ok(mut t) = Transcoder::new(from, to) {
        let mut out = Vec::new();
        let _ = t.transcode(payload, &mut out);
        let _ = t.conceal(160, &mut out);
    }
});
