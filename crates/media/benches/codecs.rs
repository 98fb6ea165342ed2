//! Cost per 20 ms frame of the media hot paths: codec encode/decode, every
//! transcoding pair, resampling, DTMF detection and a 50-party mix.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use media::codec::CodecKind;
use media::dtmf::DtmfDetector;
use media::mixer::Mixer;
use media::resample::Resampler;
use media::transcode::Transcoder;

fn speechish(rate: u32, len: usize) -> Vec<i16> {
    (0..len)
        .map(|n| {
            let t = n as f64 / f64::from(rate);
            (6000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 3000.0 * (2.0 * std::f64::consts::PI * 1250.0 * t).sin()) as i16
        })
        .collect()
}

fn frame_len(kind: CodecKind) -> usize {
    kind.sample_rate() as usize / 50
}

fn codecs(c: &mut Criterion) {
    for &kind in CodecKind::ALL {
        let pcm = speechish(kind.sample_rate(), frame_len(kind));
        let mut codec = kind.create().unwrap();
        let mut out = Vec::with_capacity(400);
        c.bench_function(&format!("encode_20ms/{}", kind.name()), |b| {
            b.iter(|| {
                out.clear();
                codec.encode(black_box(&pcm), &mut out).unwrap();
            })
        });
        let mut payload = Vec::new();
        codec.encode(&pcm, &mut payload).unwrap();
        let mut dec = Vec::with_capacity(400);
        c.bench_function(&format!("decode_20ms/{}", kind.name()), |b| {
            b.iter(|| {
                dec.clear();
                codec.decode(black_box(&payload), &mut dec);
            })
        });
    }
}

fn transcoding(c: &mut Criterion) {
    for &from in CodecKind::ALL {
        for &to in CodecKind::ALL {
            if from == to {
                continue;
            }
            let pcm = speechish(from.sample_rate(), frame_len(from));
            let mut payload = Vec::new();
            from.create().unwrap().encode(&pcm, &mut payload).unwrap();
            let mut t = Transcoder::new(from, to).unwrap();
            let mut out = Vec::with_capacity(400);
            c.bench_function(
                &format!("transcode_20ms/{}->{}", from.name(), to.name()),
                |b| {
                    b.iter(|| {
                        out.clear();
                        t.transcode(black_box(&payload), &mut out).unwrap();
                    })
                },
            );
        }
    }
}

fn resampling(c: &mut Criterion) {
    for (from, to) in [
        (8000, 16000),
        (16000, 8000),
        (8000, 48000),
        (48000, 8000),
        (16000, 48000),
        (48000, 16000),
    ] {
        let pcm = speechish(from, from as usize / 50);
        let mut r = Resampler::new(from, to).unwrap();
        let mut out = Vec::with_capacity(1000);
        c.bench_function(&format!("resample_20ms/{from}->{to}"), |b| {
            b.iter(|| {
                out.clear();
                r.process(black_box(&pcm), &mut out);
            })
        });
    }
}

fn dtmf(c: &mut Criterion) {
    let pcm = speechish(8000, 160);
    let mut d = DtmfDetector::default();
    c.bench_function("dtmf_detect_20ms", |b| {
        b.iter(|| {
            d.feed(black_box(&pcm));
            while d.poll().is_some() {}
        })
    });
}

fn mixer(c: &mut Criterion) {
    for rate in [8000u32, 16000] {
        let frame = rate as usize / 50;
        let mut m = Mixer::new(frame);
        let ids: Vec<_> = (0..50).map(|_| m.add()).collect();
        let pcm = speechish(rate, frame);
        c.bench_function(&format!("mix_50_participants_20ms/{rate}"), |b| {
            b.iter(|| {
                for &id in &ids {
                    m.put(id, black_box(&pcm));
                }
                m.mix();
                black_box(m.output(ids[0]));
            })
        });
    }
}

/// G.729 (feature `g729`, GPL-3 bcg729): codec and G.729<->PCMU under one
/// lower-case prefix, so `cargo bench ... -- g729` selects exactly these.
#[cfg(feature = "g729")]
fn g729(c: &mut Criterion) {
    let kind = CodecKind::G729;
    let pcm = speechish(8000, 160);
    let mut codec = kind.create().unwrap();
    let mut out = Vec::with_capacity(64);
    c.bench_function("g729/encode_20ms", |b| {
        b.iter(|| {
            out.clear();
            codec.encode(black_box(&pcm), &mut out).unwrap();
        })
    });
    let mut payload = Vec::new();
    codec.encode(&pcm, &mut payload).unwrap();
    let mut dec = Vec::with_capacity(160);
    c.bench_function("g729/decode_20ms", |b| {
        b.iter(|| {
            dec.clear();
            codec.decode(black_box(&payload), &mut dec);
        })
    });
    c.bench_function("g729/conceal_20ms", |b| {
        b.iter(|| {
            dec.clear();
            codec.conceal(black_box(160), &mut dec);
        })
    });
    let mut ulaw = Vec::new();
    CodecKind::Pcmu
        .create()
        .unwrap()
        .encode(&pcm, &mut ulaw)
        .unwrap();
    for (from, to, input) in [
        (CodecKind::Pcmu, kind, &ulaw),
        (kind, CodecKind::Pcmu, &payload),
    ] {
        let mut t = Transcoder::new(from, to).unwrap();
        c.bench_function(
            &format!("g729/transcode_20ms/{}->{}", from.name(), to.name()),
            |b| {
                b.iter(|| {
                    out.clear();
                    t.transcode(black_box(input), &mut out).unwrap();
                })
            },
        );
    }
}

#[cfg(feature = "g729")]
criterion_group!(benches, codecs, transcoding, resampling, dtmf, mixer, g729);
#[cfg(not(feature = "g729"))]
criterion_group!(benches, codecs, transcoding, resampling, dtmf, mixer);
criterion_main!(benches);
