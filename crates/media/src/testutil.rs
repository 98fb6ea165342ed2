//! Signal helpers shared by the unit tests.

use std::f64::consts::PI;

/// A sine of `freq` Hz, `len` samples at `rate`, peak `amp`.
pub fn sine(freq: f64, rate: u32, len: usize, amp: f64) -> Vec<i16> {
    (0..len)
        .map(|n| (amp * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin()).round() as i16)
        .collect()
}

/// Signal-to-noise ratio of `got` against `want` (same alignment), in dB.
pub fn snr_db(want: &[i16], got: &[i16]) -> f64 {
    let n = want.len().min(got.len());
    let mut sig = 0.0;
    let mut noise = 0.0;
    for i in 0..n {
        let w = f64::from(want[i]);
        let e = f64::from(got[i]) - w;
        sig += w * w;
        noise += e * e;
    }
    10.0 * (sig / noise.max(1e-9)).log10()
}

/// Delay (in samples, 0..max_lag) of `got` relative to `want` maximising
/// cross-correlation.
pub fn best_lag(want: &[i16], got: &[i16], max_lag: usize) -> usize {
    let mut best = (f64::MIN, 0);
    for lag in 0..max_lag {
        let n = want.len().min(got.len().saturating_sub(lag));
        let c: f64 = (0..n)
            .map(|i| f64::from(want[i]) * f64::from(got[i + lag]))
            .sum();
        if c > best.0 {
            best = (c, lag);
        }
    }
    best.1
}

/// SNR after aligning `got` to `want` by cross-correlation, skipping `skip`
/// samples of start-up transient.
pub fn aligned_snr_db(want: &[i16], got: &[i16], max_lag: usize, skip: usize) -> (f64, usize) {
    let lag = best_lag(want, got, max_lag);
    let end = want.len().min(got.len() - lag);
    (snr_db(&want[skip..end], &got[skip + lag..end + lag]), lag)
}

/// Deterministic white noise (xorshift), uniform in [-amp, amp].
pub struct Noise(u64);

impl Noise {
    /// Creates a generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// Next sample in [-1, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// Power of `freq` in `x` (Goertzel), normalised to the mean power a sine
/// of that frequency contributes.
pub fn tone_power(x: &[i16], freq: f64, rate: u32) -> f64 {
    let coeff = 2.0 * (2.0 * PI * freq / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s0 = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * p / (x.len() as f64 * x.len() as f64)
}

/// Mean power of `x`.
pub fn power(x: &[i16]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64
}
