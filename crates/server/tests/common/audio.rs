//! Audio helpers for media interop tests (std only): a deterministic test
//! signal, 16-bit PCM WAV reading/writing, crude resampling to 8 kHz, G.711
//! mu-law (to model what a call does to the signal) and normalized
//! cross-correlation with a best-lag search.
//!
//! The self checks live in [`self_check`] rather than in `#[cfg(test)]`
//! because every integration test that says `mod common;` would otherwise
//! compile and run them again; `tests/baresip_call.rs` calls it once.
//! Standalone: `rustc --edition 2024 -O` a main with
//! `#[path = ".../audio.rs"] mod audio;` calling `audio::self_check()`.

#![allow(dead_code)]

use std::path::Path;

/// The narrowband rate everything is compared at.
pub const RATE: u32 = 8000;

/// A small deterministic PRNG (xorshift64*), so the test signal is the same
/// on every run and machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn gauss(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// White Gaussian noise band-limited to the telephone band (300-3400 Hz at
/// 8 kHz), `seconds` long, RMS about -20 dBFS with 20 ms fades. Noise has a
/// single sharp autocorrelation peak (no periodicity to lock onto the wrong
/// lag) and survives G.711 with an SNR of ~38 dB, which makes it a good probe
/// for "did the same audio come out the other end".
pub fn test_signal(seconds: f64, seed: u64) -> Vec<i16> {
    let n = (seconds * RATE as f64) as usize;
    let mut rng = Rng(seed | 1);
    let taps = bandpass_fir(300.0, 3400.0, RATE as f64, 129);
    let noise: Vec<f64> = (0..n + taps.len()).map(|_| rng.gauss()).collect();
    let mut out: Vec<f64> = (0..n)
        .map(|i| {
            taps.iter()
                .enumerate()
                .map(|(k, h)| h * noise[i + k])
                .sum::<f64>()
        })
        .collect();
    let rms = (out.iter().map(|x| x * x).sum::<f64>() / n.max(1) as f64).sqrt();
    let gain = 3277.0 / rms.max(1e-9); // -20 dBFS
    let fade = (RATE as usize / 50).min(n / 2); // 20 ms
    for (i, x) in out.iter_mut().enumerate() {
        let edge = i.min(n - 1 - i);
        let env = if edge < fade {
            edge as f64 / fade as f64
        } else {
            1.0
        };
        *x *= gain * env;
    }
    out.iter()
        .map(|x| x.round().clamp(-20000.0, 20000.0) as i16)
        .collect()
}

/// Windowed-sinc (Hamming) band-pass FIR.
fn bandpass_fir(lo: f64, hi: f64, rate: f64, len: usize) -> Vec<f64> {
    let (f1, f2) = (lo / rate, hi / rate);
    let mid = (len - 1) as f64 / 2.0;
    let sinc = |x: f64| {
        if x.abs() < 1e-12 {
            1.0
        } else {
            (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
        }
    };
    (0..len)
        .map(|i| {
            let m = i as f64 - mid;
            let w = 0.54 - 0.46 * (2.0 * std::f64::consts::PI * i as f64 / (len - 1) as f64).cos();
            (2.0 * f2 * sinc(2.0 * f2 * m) - 2.0 * f1 * sinc(2.0 * f1 * m)) * w
        })
        .collect()
}

/// Writes mono 16-bit PCM WAV (canonical 44-byte header).
pub fn write_wav(path: &Path, rate: u32, samples: &[i16]) -> std::io::Result<()> {
    std::fs::write(path, wav_bytes(rate, samples))
}

pub fn wav_bytes(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes()); // byte rate
    b.extend_from_slice(&2u16.to_le_bytes()); // block align
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// A decoded WAV file, mixed down to mono.
#[derive(Debug, Clone)]
pub struct Wav {
    pub rate: u32,
    pub channels: u16,
    pub samples: Vec<i16>,
}

pub fn read_wav(path: &Path) -> Result<Wav, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_wav(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses RIFF/WAVE with 16-bit PCM (format 1, or WAVE_FORMAT_EXTENSIBLE),
/// walking the chunk list (libsndfile may add chunks before `data`, e.g.
/// PEAK or LIST). Tolerates a `data` size of 0/0xFFFFFFFF or one past the
/// end of file (a writer killed before it fixed up the header). Multi-channel
/// audio is averaged to mono.
pub fn parse_wav(b: &[u8]) -> Result<Wav, String> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    let mut pos = 12;
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let size = u32_at(pos + 4) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            if body + 16 > b.len() {
                return Err("truncated fmt chunk".into());
            }
            let mut format = u16_at(body);
            if format == 0xFFFE && size >= 26 && body + 26 <= b.len() {
                format = u16_at(body + 24); // SubFormat GUID's first two bytes
            }
            fmt = Some((
                format,
                u16_at(body + 2),
                u32_at(body + 4),
                u16_at(body + 14),
            ));
        } else if id == b"data" {
            let (format, channels, rate, bits) = fmt.ok_or("data chunk before fmt chunk")?;
            if format != 1 || bits != 16 {
                return Err(format!(
                    "unsupported sample format {format} with {bits} bits (want 16-bit PCM)"
                ));
            }
            if channels == 0 {
                return Err("zero channels".into());
            }
            let avail = b.len() - body;
            let len = if size == 0 || size > avail {
                avail
            } else {
                size
            };
            let frame = 2 * channels as usize;
            let samples = b[body..body + len - len % frame]
                .chunks_exact(frame)
                .map(|f| {
                    let sum: i32 = f
                        .chunks_exact(2)
                        .map(|s| i16::from_le_bytes([s[0], s[1]]) as i32)
                        .sum();
                    (sum / channels as i32) as i16
                })
                .collect();
            return Ok(Wav {
                rate,
                channels,
                samples,
            });
        }
        // Chunks are padded to even sizes.
        pos = body.saturating_add(size).saturating_add(size & 1);
    }
    Err("no data chunk".into())
}

/// Converts to 8 kHz: integer ratios (16k, 48k) average each group of
/// samples (a crude low-pass) then decimate; other rates use linear
/// interpolation. Good enough for correlating telephone-band audio.
pub fn to_8k(wav: &Wav) -> Vec<i16> {
    resample(&wav.samples, wav.rate, RATE)
}

pub fn resample(x: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || x.is_empty() {
        return x.to_vec();
    }
    if from > to && from.is_multiple_of(to) {
        let k = (from / to) as usize;
        return x
            .chunks_exact(k)
            .map(|c| (c.iter().map(|&s| s as i32).sum::<i32>() / k as i32) as i16)
            .collect();
    }
    let n = (x.len() as u64 * to as u64 / from as u64) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 * from as f64 / to as f64;
            let j = t.floor() as usize;
            let f = t - j as f64;
            let a = x[j.min(x.len() - 1)] as f64;
            let b = x[(j + 1).min(x.len() - 1)] as f64;
            (a + (b - a) * f).round() as i16
        })
        .collect()
}

/// Root mean square of the samples (0 for none).
pub fn rms(x: &[i16]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// G.711 mu-law encoding of one sample (the classic Sun reference).
pub fn ulaw_encode(pcm: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = pcm as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exponent = (7 - (s.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 as i32 | mantissa) as u8
}

pub fn ulaw_decode(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Normalized cross-correlation of `sent` against `received`.
///
/// Searches every lag in `-max_lag..=max_lag` where lag `L` pairs
/// `sent[i]` with `received[i + L]` (positive: the received copy starts `L`
/// samples later, the normal case for a call). For each lag the coefficient
/// is `sum(x*y) / sqrt(sum(x^2) * sum(y^2))` over the overlapping window only
/// (means removed first), so silence before/after the received copy does not
/// dilute it. Overlaps shorter than half of `sent` (or 0.25 s) are skipped so
/// a few samples cannot produce a spurious 1.0. Returns `(lag, coefficient)`
/// of the maximum; `(0, 0.0)` if nothing qualifies.
///
/// Uses an FFT for the raw cross-products and prefix sums for the windowed
/// energies: O((n+m) log(n+m)), ~tens of ms for seconds of 8 kHz audio even
/// in a debug build.
pub fn best_correlation(sent: &[i16], received: &[i16], max_lag: usize) -> (isize, f64) {
    let (n, m) = (sent.len(), received.len());
    if n == 0 || m == 0 {
        return (0, 0.0);
    }
    let centered = |v: &[i16]| {
        let mean = v.iter().map(|&s| s as f64).sum::<f64>() / v.len() as f64;
        v.iter().map(|&s| s as f64 - mean).collect::<Vec<f64>>()
    };
    let (x, y) = (centered(sent), centered(received));
    // Prefix sums of squares for the energies of any window.
    let prefix = |v: &[f64]| {
        let mut p = vec![0.0; v.len() + 1];
        for (i, s) in v.iter().enumerate() {
            p[i + 1] = p[i] + s * s;
        }
        p
    };
    let (px, py) = (prefix(&x), prefix(&y));
    let cross = cross_products(&x, &y);
    let min_overlap = (n / 2).max(RATE as usize / 4).min(n).min(m);
    let mut best = (0isize, 0.0f64);
    let max_lag = max_lag as isize;
    for lag in -max_lag..=max_lag {
        // Overlap: i in [i0, i1) with 0 <= i < n and 0 <= i + lag < m.
        let i0 = 0.max(-lag);
        let i1 = (n as isize).min(m as isize - lag);
        if i1 - i0 < min_overlap as isize || i1 <= i0 {
            continue;
        }
        let (i0, i1) = (i0 as usize, i1 as usize);
        let (j0, j1) = ((i0 as isize + lag) as usize, (i1 as isize + lag) as usize);
        let ex = px[i1] - px[i0];
        let ey = py[j1] - py[j0];
        if ex <= 0.0 || ey <= 0.0 {
            continue;
        }
        // cross[k] = sum_i x[i] * y[i + lag] stored at k = lag + (n - 1).
        let c = cross[(lag + n as isize - 1) as usize] / (ex * ey).sqrt();
        if c > best.1 {
            best = (lag, c);
        }
    }
    best
}

/// `out[lag + n - 1] = sum_i x[i] * y[i + lag]` for lag in `-(n-1)..m`.
fn cross_products(x: &[f64], y: &[f64]) -> Vec<f64> {
    let (n, m) = (x.len(), y.len());
    let size = (n + m).next_power_of_two();
    // Correlation = convolution of reversed x with y.
    let mut a: Vec<(f64, f64)> = vec![(0.0, 0.0); size];
    let mut b: Vec<(f64, f64)> = vec![(0.0, 0.0); size];
    for (i, v) in x.iter().enumerate() {
        a[n - 1 - i].0 = *v;
    }
    for (i, v) in y.iter().enumerate() {
        b[i].0 = *v;
    }
    fft(&mut a, false);
    fft(&mut b, false);
    for (p, q) in a.iter_mut().zip(&b) {
        *p = (p.0 * q.0 - p.1 * q.1, p.0 * q.1 + p.1 * q.0);
    }
    fft(&mut a, true);
    // (reversed x conv y)[k] = sum_i x[i] y[k - (n-1) + i]: lag = k - (n-1).
    a.iter()
        .take(n + m - 1)
        .map(|c| c.0 / size as f64)
        .collect()
}

/// In-place iterative radix-2 FFT (unnormalized); `inverse` flips the sign.
fn fft(a: &mut [(f64, f64)], inverse: bool) {
    let n = a.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            a.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = 2.0 * std::f64::consts::PI / len as f64 * if inverse { 1.0 } else { -1.0 };
        let (wr, wi) = (ang.cos(), ang.sin());
        for start in (0..n).step_by(len) {
            let (mut cr, mut ci) = (1.0f64, 0.0f64);
            for k in 0..len / 2 {
                let (ur, ui) = a[start + k];
                let (vr0, vi0) = a[start + k + len / 2];
                let (vr, vi) = (vr0 * cr - vi0 * ci, vr0 * ci + vi0 * cr);
                a[start + k] = (ur + vr, ui + vi);
                a[start + k + len / 2] = (ur - vr, ui - vi);
                (cr, ci) = (cr * wr - ci * wi, cr * wi + ci * wr);
            }
        }
        len <<= 1;
    }
}

/// Per-window view of a received copy: splits `sent` into `windows` equal
/// pieces and finds each one's best lag in `received` independently, within
/// `search` samples of `lag`. A healthy call gives the same lag (give or take
/// jitter-buffer adjustments) and a high coefficient in every window; a gap,
/// a slip or a stretch of silence shows up as one bad or shifted window.
/// Returned lags are relative to the start of `sent`, like `lag`.
pub fn windowed_correlation(
    sent: &[i16],
    received: &[i16],
    lag: isize,
    windows: usize,
    search: usize,
) -> Vec<(isize, f64)> {
    let w = sent.len() / windows.max(1);
    (0..windows)
        .map(|k| {
            let piece = &sent[k * w..(k + 1) * w];
            let start = k as isize * w as isize + lag;
            let from = (start - search as isize).clamp(0, received.len() as isize) as usize;
            let to = ((start + (w + search) as isize).max(0) as usize).min(received.len());
            if from >= to {
                return (lag, 0.0);
            }
            let (l, c) = best_correlation(piece, &received[from..to], w + search);
            (from as isize + l - k as isize * w as isize, c)
        })
        .collect()
}

/// How well a received recording matches what was sent.
#[derive(Debug, Clone)]
pub struct AudioMatch {
    /// Best lag (received relative to sent, samples at 8 kHz) and its
    /// normalized cross-correlation over the whole signal.
    pub lag: isize,
    pub coef: f64,
    /// Per-0.5 s-window best (lag, coefficient) near `lag`.
    pub windows: Vec<(isize, f64)>,
    /// Median of the window coefficients.
    pub median_window: f64,
    pub received_samples: usize,
    pub received_rms: f64,
}

impl AudioMatch {
    /// Whether the received audio is recognisably the sent audio: either the
    /// whole signal correlates at `threshold` at one lag, or the median
    /// 0.5 s window does (the latter tolerates a slip: a single 20 ms frame
    /// dropped mid-call splits the signal into two halves at different lags
    /// and halves the whole-signal coefficient to ~0.51 while every window
    /// still scores ~1.0; it also tolerates losing the first packets).
    pub fn passes(&self, threshold: f64) -> bool {
        self.coef >= threshold || self.median_window >= threshold
    }
}

impl std::fmt::Display for AudioMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "best lag {} samples ({:.1} ms), coefficient {:.4}, median 0.5 s window {:.4}; received {} samples ({:.2} s at 8 kHz), rms {:.0}; windows (lag:coef)",
            self.lag,
            self.lag as f64 * 1000.0 / RATE as f64,
            self.coef,
            self.median_window,
            self.received_samples,
            self.received_samples as f64 / RATE as f64,
            self.received_rms
        )?;
        for (l, c) in &self.windows {
            write!(f, " {l}:{c:.3}")?;
        }
        Ok(())
    }
}

/// Compares 8 kHz `sent` with `received` (already at 8 kHz), searching lags
/// up to `max_lag` samples either way.
pub fn compare(sent: &[i16], received: &[i16], max_lag: usize) -> AudioMatch {
    let (lag, coef) = best_correlation(sent, received, max_lag);
    let windows_n = (sent.len() / (RATE as usize / 2)).max(1);
    // Windows search +-0.25 s around the global lag: a slip is a few frames.
    let windows = windowed_correlation(sent, received, lag, windows_n, RATE as usize / 4);
    let mut coefs: Vec<f64> = windows.iter().map(|w| w.1).collect();
    coefs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median_window = coefs.get(coefs.len() / 2).copied().unwrap_or(0.0);
    AudioMatch {
        lag,
        coef,
        windows,
        median_window,
        received_samples: received.len(),
        received_rms: rms(received),
    }
}

/// Self checks of the functions above (panics on failure). Kept out of
/// `#[cfg(test)]` on purpose; see the module docs.
pub fn self_check() {
    let sig = test_signal(4.0, 42);
    assert_eq!(sig.len(), 32000);
    assert_eq!(sig, test_signal(4.0, 42), "signal is deterministic");
    let level = rms(&sig);
    assert!((2500.0..4000.0).contains(&level), "rms {level}");

    // WAV round trip, including an extra chunk before `data`.
    let bytes = wav_bytes(8000, &sig[..100]);
    let wav = parse_wav(&bytes).unwrap();
    assert_eq!((wav.rate, wav.channels), (8000, 1));
    assert_eq!(wav.samples, sig[..100]);
    let mut odd = bytes[..36].to_vec();
    odd.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
    odd.extend_from_slice(&bytes[36..]);
    assert_eq!(parse_wav(&odd).unwrap().samples, sig[..100]);
    let mut unsized_data = bytes.clone();
    unsized_data[40..44].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(parse_wav(&unsized_data).unwrap().samples.len(), 100);

    // Resampling: 48k and 16k copies come back to (about) the original.
    let up48: Vec<i16> = sig.iter().flat_map(|&s| [s; 6]).collect();
    assert_eq!(resample(&up48, 48000, 8000), sig);
    let up16 = resample(&sig, 8000, 16000);
    assert_eq!(up16.len(), 64000);
    let (l, c) = best_correlation(&sig, &resample(&up16, 16000, 8000), 100);
    assert!(l == 0 && c > 0.9, "16k round trip: lag {l} coef {c}");

    // Identical.
    let (l, c) = best_correlation(&sig, &sig, 8000);
    assert!(l == 0 && c > 0.999, "identical: lag {l} coef {c}");

    // Delayed by 1234 samples, with trailing silence like a real recording.
    let mut delayed = vec![0i16; 1234];
    delayed.extend_from_slice(&sig);
    delayed.extend(std::iter::repeat_n(0, 4000));
    let (l, c) = best_correlation(&sig, &delayed, 16000);
    assert!(l == 1234 && c > 0.999, "delayed: lag {l} coef {c}");

    // Received copy missing its first 0.5 s: negative lag.
    let (l, c) = best_correlation(&sig, &sig[4000..], 16000);
    assert!(l == -4000 && c > 0.999, "late start: lag {l} coef {c}");

    // Through G.711 mu-law.
    let law: Vec<i16> = delayed
        .iter()
        .map(|&s| ulaw_decode(ulaw_encode(s)))
        .collect();
    let (l, c) = best_correlation(&sig, &law, 16000);
    assert!(l == 1234 && c > 0.99, "mu-law: lag {l} coef {c}");
    for s in [0i16, 1, -1, 100, -100, 1000, 8000, -8000, 32767, -32768] {
        let back = ulaw_decode(ulaw_encode(s)) as i32;
        assert!(
            (back - s as i32).abs() <= (s as i32).abs() / 16 + 8,
            "{s} -> {back}"
        );
    }

    // Unrelated noise (another seed): no correlation.
    let other = test_signal(5.0, 7);
    let (l, c) = best_correlation(&sig, &other, 16000);
    assert!(c < 0.2, "unrelated: lag {l} coef {c}");
    // Silence: nothing.
    assert_eq!(best_correlation(&sig, &vec![0; 40000], 16000).1, 0.0);

    // A 20 ms slip mid-call: whole-signal coefficient ~0.5, windows fine.
    let mut slipped = delayed[..17234].to_vec();
    slipped.extend_from_slice(&delayed[17394..]);
    let m = compare(&sig, &slipped, 16000);
    assert!(
        m.coef < 0.6 && m.median_window > 0.99 && m.passes(0.6),
        "slip: {m}"
    );
    let m = compare(&sig, &other, 16000);
    assert!(!m.passes(0.2), "unrelated: {m}");
    assert!(!compare(&sig, &[], 16000).passes(0.01));

    // Windows of the delayed copy all agree.
    let w = windowed_correlation(&sig, &delayed, 1234, 4, 400);
    assert_eq!(w.len(), 4);
    for (l, c) in w {
        assert!(l == 1234 && c > 0.999, "window: lag {l} coef {c}");
    }
}
