use std::io::Cursor;

use super::reader::parse;
use super::*;
use crate::testutil::{aligned_snr_db, sine};

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("media-wav-{}-{name}.wav", std::process::id()))
}

/// Builds a WAV in memory with an arbitrary fmt.
fn build(format: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(4 + 8 + 16 + 8 + 10 + 8 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVE");
    v.extend_from_slice(b"fmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&format.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    let block = channels * bits / 8;
    v.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    v.extend_from_slice(&block.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    // An unknown chunk with odd size and pad byte must be skipped.
    v.extend_from_slice(b"LIST");
    v.extend_from_slice(&9u32.to_le_bytes());
    v.extend_from_slice(&[0; 10]);
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn reads_8_and_16_bit_mono_and_stereo() {
    let w = build(1, 1, 8000, 8, &[128, 255, 0]);
    assert_eq!(parse(&w).unwrap().1, [0, 127 << 8, -128 << 8]);
    let data: Vec<u8> = [100i16, -100, 300, 500]
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let w = build(1, 2, 8000, 16, &data);
    let (info, s) = parse(&w).unwrap();
    assert_eq!((info.channels, info.bits), (2, 16));
    assert_eq!(read_prompt(&w, 8000).unwrap(), [0, 400]);
    let w = build(7, 1, 8000, 8, &[0xFF, 0x80]);
    assert_eq!(parse(&w).unwrap().1, [0, 32124]);
    assert_eq!(s.len(), 4);
}

#[test]
fn prompts_are_resampled_to_8_or_16_khz() {
    for rate in [8000u32, 11025, 16000, 22050, 44100, 48000] {
        let x = sine(440.0, rate, rate as usize, 8000.0);
        let data: Vec<u8> = x.iter().flat_map(|s| s.to_le_bytes()).collect();
        let w = build(1, 1, rate, 16, &data);
        for out_rate in [8000, 16000] {
            let y = read_prompt(&w, out_rate).unwrap();
            assert_eq!(y.len(), out_rate as usize, "{rate} -> {out_rate}");
            let want = sine(440.0, out_rate, y.len(), 8000.0);
            let (snr, lag) = aligned_snr_db(&want, &y, 8, 100);
            assert_eq!(lag, 0, "{rate} -> {out_rate}: delay compensated");
            assert!(snr > 35.0, "{rate} -> {out_rate}: {snr:.1} dB");
        }
    }
}

#[test]
fn rejects_bad_files() {
    assert!(matches!(parse(b"RIFX"), Err(WavError::NotWave)));
    assert!(matches!(
        parse(b"RIFF\0\0\0\0WAVE"),
        Err(WavError::MissingChunk("fmt"))
    ));
    assert!(matches!(
        parse(&build(3, 1, 8000, 32, &[0; 8])),
        Err(WavError::Unsupported {
            format: 3,
            bits: 32
        })
    ));
    assert!(matches!(
        parse(&build(1, 0, 8000, 16, &[])),
        Err(WavError::BadFormat { .. })
    ));
    // Truncated everywhere: never panics.
    let good = build(1, 2, 16000, 16, &[1; 64]);
    for n in 0..good.len() {
        let _ = parse(&good[..n]);
    }
}

#[test]
fn stereo_recording_round_trip() {
    let mut w = WavWriter::new(Cursor::new(Vec::new()), 8000, Layout::Stereo).unwrap();
    w.write_legs(&[1, 2, 3], &[-1, -2]).unwrap();
    w.write_mono(&[7]).unwrap();
    assert_eq!(w.frames(), 4);
    let bytes = w.finalize().unwrap().into_inner();
    let (info, s) = parse(&bytes).unwrap();
    assert_eq!((info.channels, info.sample_rate), (2, 8000));
    assert_eq!(s, [1, -1, 2, -2, 3, 0, 7, 7]);
    assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 36 + 16);
}

#[test]
fn mono_mix_saturates() {
    let mut w = WavWriter::new(Cursor::new(Vec::new()), 16000, Layout::Mono).unwrap();
    w.write_legs(&[30000, 5], &[30000, -6]).unwrap();
    let bytes = w.finalize().unwrap().into_inner();
    assert_eq!(parse(&bytes).unwrap().1, [32767, -1]);
}

#[test]
fn crash_after_flush_leaves_readable_file() {
    let path = temp_path("crash");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = WavWriter::new(file, 8000, Layout::Stereo).unwrap();
    w.set_flush_every(8000);
    let a = sine(400.0, 8000, 8000, 5000.0);
    let b = sine(900.0, 8000, 8000, 5000.0);
    // 2.5 s: automatic flushes at 1 s and 2 s, half a second unflushed.
    for _ in 0..2 {
        w.write_legs(&a, &b).unwrap();
    }
    w.write_legs(&a[..4000], &b[..4000]).unwrap();
    w.get_ref().unwrap().sync_data().unwrap();
    // Crash: no destructor, no finalize.
    std::mem::forget(w);
    let bytes = std::fs::read(&path).unwrap();
    let (info, s) = parse(&bytes).unwrap();
    assert_eq!(info.channels, 2);
    assert_eq!(s.len(), 2 * 16000);
    let data_size = u32::from_le_bytes(bytes[40..44].try_into().unwrap());
    assert_eq!(data_size as usize, bytes.len() - 44);
    let left: Vec<i16> = s.iter().step_by(2).copied().collect();
    assert_eq!(&left[8000..], &a[..]);
    // A clean drop flushes the rest.
    let file = std::fs::File::create(&path).unwrap();
    let mut w = WavWriter::new(file, 8000, Layout::Mono).unwrap();
    w.write_mono(&[1, 2, 3]).unwrap();
    drop(w);
    assert_eq!(parse(&std::fs::read(&path).unwrap()).unwrap().1, [1, 2, 3]);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn reads_files_written_by_sox() {
    // 5 ms (or 2 ms) of a 440 Hz sine in several layouts, made with SoX.
    let cases: [(&[u8], u32, u16, usize); 4] = [
        (
            include_bytes!("../../fuzz/seeds/s16_stereo.wav"),
            8000,
            2,
            40,
        ),
        (
            include_bytes!("../../fuzz/seeds/u8_mono.wav"),
            22050,
            1,
            110,
        ),
        (include_bytes!("../../fuzz/seeds/ulaw.wav"), 8000, 1, 40),
        (include_bytes!("../../fuzz/seeds/s24.wav"), 48000, 1, 96),
    ];
    for (bytes, rate, channels, frames) in cases {
        let (info, s) = parse(bytes).unwrap();
        assert_eq!((info.sample_rate, info.channels), (rate, channels));
        assert!(
            s.len().abs_diff(frames * usize::from(channels)) <= 1,
            "{info:?}: {}",
            s.len()
        );
        assert!(s.iter().any(|&v| v.abs() > 10000), "{info:?}");
        let prompt = read_prompt(bytes, 8000).unwrap();
        assert!(prompt.len().abs_diff(frames * 8000 / rate as usize) <= 1);
    }
}
