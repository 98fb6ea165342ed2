//! In-band DTMF detection on 8 kHz linear PCM.
//!
//! Eight Goertzel filters (G. Goertzel, 1958) measure the ITU-T Q.23 row and
//! column frequencies over blocks of 205 samples (25.6 ms). A block holds a
//! digit when, as Q.24 asks of receivers:
//! - the strongest row and column tones are both above a minimum level;
//! - their level difference (twist) is within limits, "normal" (row louder)
//!   and "reverse" (column louder) separately;
//! - each stands clear of the other tones of its group;
//! - together they carry most of the block's energy (signal-to-noise check),
//!   which rejects speech, music and single tones.
//!
//! A digit is reported once, when two consecutive blocks agree; two blocks
//! without it re-arm the detector. Tones of 60 ms or more with pauses of
//! 60 ms or more are reliably detected.

use std::collections::VecDeque;

use super::Digit;

/// Low-group (row) frequencies, Hz.
pub const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// High-group (column) frequencies, Hz.
pub const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Sample rate the detector expects.
pub const SAMPLE_RATE: u32 = 8000;

/// Acceptance thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// Samples per analysis block.
    pub block: usize,
    /// Minimum mean power of each tone (a sine of amplitude A has A²/2).
    pub min_tone_power: f32,
    /// Maximum row-over-column level difference, dB.
    pub normal_twist_db: f32,
    /// Maximum column-over-row level difference, dB.
    pub reverse_twist_db: f32,
    /// Minimum margin of each tone over the rest of its group, dB.
    pub group_margin_db: f32,
    /// Minimum share of block energy in the two tones (0..1).
    pub min_energy_share: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            block: 205,
            // About -45 dBFS per tone.
            min_tone_power: 8000.0,
            normal_twist_db: 8.0,
            reverse_twist_db: 6.0,
            group_margin_db: 6.0,
            min_energy_share: 0.6,
        }
    }
}

fn db_to_ratio(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

/// A digit found in the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// The key.
    pub digit: Digit,
    /// Sample position (from the first sample fed) of the end of the block
    /// that confirmed it.
    pub at_sample: u64,
}

/// Streaming DTMF detector: [`DtmfDetector::feed`] audio, then
/// [`DtmfDetector::poll`] detections.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    cfg: DetectorConfig,
    coeff: [f32; 8],
    s1: [f32; 8],
    s2: [f32; 8],
    energy: f32,
    filled: usize,
    samples: u64,
    previous: Option<Digit>,
    current: Option<Digit>,
    found: VecDeque<Detection>,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new(DetectorConfig::default())
    }
}

impl DtmfDetector {
    /// Creates a detector with the given thresholds.
    pub fn new(cfg: DetectorConfig) -> Self {
        let mut coeff = [0.0; 8];
        for (i, f) in ROWS.iter().chain(COLS.iter()).enumerate() {
            coeff[i] =
                (2.0 * (2.0 * std::f64::consts::PI * f / f64::from(SAMPLE_RATE)).cos()) as f32;
        }
        Self {
            cfg: DetectorConfig {
                block: cfg.block.max(64),
                ..cfg
            },
            coeff,
            s1: [0.0; 8],
            s2: [0.0; 8],
            energy: 0.0,
            filled: 0,
            samples: 0,
            previous: None,
            current: None,
            found: VecDeque::new(),
        }
    }

    /// Feeds 8 kHz PCM.
    pub fn feed(&mut self, pcm: &[i16]) {
        for &x in pcm {
            let x = f32::from(x);
            self.energy += x * x;
            for k in 0..8 {
                let s0 = x + self.coeff[k] * self.s1[k] - self.s2[k];
                self.s2[k] = self.s1[k];
                self.s1[k] = s0;
            }
            self.filled += 1;
            self.samples += 1;
            if self.filled == self.cfg.block {
                let digit = self.classify();
                self.advance(digit);
                self.s1 = [0.0; 8];
                self.s2 = [0.0; 8];
                self.energy = 0.0;
                self.filled = 0;
            }
        }
    }

    /// Next detected digit, in order.
    pub fn poll(&mut self) -> Option<Detection> {
        self.found.pop_front()
    }

    /// The digit currently held down, if any.
    pub fn current(&self) -> Option<Digit> {
        self.current
    }

    fn advance(&mut self, digit: Option<Digit>) {
        match digit {
            Some(d) if self.previous == Some(d) && self.current != Some(d) => {
                self.current = Some(d);
                self.found.push_back(Detection {
                    digit: d,
                    at_sample: self.samples,
                });
            }
            None if self.previous.is_none() => self.current = None,
            _ => {}
        }
        self.previous = digit;
    }

    fn classify(&self) -> Option<Digit> {
        let n = self.cfg.block as f32;
        // Mean power of a sine at each frequency.
        let power: [f32; 8] = std::array::from_fn(|k| {
            let (a, b) = (self.s1[k], self.s2[k]);
            2.0 * (a * a + b * b - self.coeff[k] * a * b) / (n * n)
        });
        let strongest = |group: &[f32]| {
            let mut best = 0;
            for i in 1..group.len() {
                if group[i] > group[best] {
                    best = i;
                }
            }
            best
        };
        let (rows, cols) = power.split_at(4);
        let (r, c) = (strongest(rows), strongest(cols));
        let (rp, cp) = (rows[r], cols[c]);
        let cfg = &self.cfg;
        if rp < cfg.min_tone_power || cp < cfg.min_tone_power {
            return None;
        }
        if rp > cp * db_to_ratio(cfg.normal_twist_db) || cp > rp * db_to_ratio(cfg.reverse_twist_db)
        {
            return None;
        }
        let margin = db_to_ratio(cfg.group_margin_db);
        let clear = |group: &[f32], best: usize| {
            group
                .iter()
                .enumerate()
                .all(|(i, &p)| i == best || p * margin < group[best])
        };
        if !clear(rows, r) || !clear(cols, c) {
            return None;
        }
        let mean_energy = self.energy / n;
        if rp + cp < cfg.min_energy_share * mean_energy {
            return None;
        }
        Digit::from_char(KEYPAD[r][c]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Noise;

    /// Digits `tone_ms` on, `gap_ms` off, with the column tone `twist_db`
    /// louder than the row tone and white noise at `snr_db` below the tones.
    fn dial(
        digits: &str,
        tone_ms: usize,
        gap_ms: usize,
        twist_db: f64,
        snr_db: f64,
        seed: u64,
    ) -> Vec<i16> {
        let mut noise = Noise::new(seed);
        let row_amp = 6000.0;
        let col_amp = row_amp * 10f64.powf(twist_db / 20.0);
        let signal_power = (row_amp * row_amp + col_amp * col_amp) / 2.0;
        // Uniform noise in [-a, a] has power a²/3.
        let noise_amp = (3.0 * signal_power / 10f64.powf(snr_db / 10.0)).sqrt();
        let mut out = Vec::new();
        let mut n = 0usize;
        for c in digits.chars() {
            let (fr, fc) = Digit::from_char(c).unwrap().frequencies();
            for i in 0..(tone_ms + gap_ms) * 8 {
                let t = n as f64 / 8000.0;
                let tone = if i < tone_ms * 8 {
                    row_amp * (2.0 * std::f64::consts::PI * fr * t).sin()
                        + col_amp * (2.0 * std::f64::consts::PI * fc * t).sin()
                } else {
                    0.0
                };
                out.push(
                    (tone + noise_amp * noise.next_f64())
                        .round()
                        .clamp(-32768.0, 32767.0) as i16,
                );
                n += 1;
            }
        }
        out
    }

    fn detect(pcm: &[i16]) -> String {
        let mut d = DtmfDetector::default();
        let mut s = String::new();
        for frame in pcm.chunks(160) {
            d.feed(frame);
            while let Some(x) = d.poll() {
                s.push(x.digit.as_char());
            }
        }
        s
    }

    const ALL: &str = "0123456789*#ABCD";

    #[test]
    fn clean_digits() {
        assert_eq!(detect(&dial(ALL, 100, 100, 0.0, 60.0, 1)), ALL);
    }

    #[test]
    fn noisy_and_twisted_digits() {
        for (twist, seed) in [(4.0, 2), (-4.0, 3), (0.0, 4)] {
            let pcm = dial(ALL, 100, 100, twist, 20.0, seed);
            assert_eq!(detect(&pcm), ALL, "twist {twist} dB");
        }
    }

    #[test]
    fn short_tones_and_repeats() {
        assert_eq!(detect(&dial("1155", 60, 60, 0.0, 30.0, 5)), "1155");
    }

    #[test]
    fn rejects_excessive_twist() {
        assert_eq!(detect(&dial("5", 200, 50, 12.0, 40.0, 6)), "");
        assert_eq!(detect(&dial("5", 200, 50, -12.0, 40.0, 7)), "");
    }

    #[test]
    fn no_false_detection_on_noise_speechlike_or_tone() {
        let mut noise = Noise::new(9);
        let white: Vec<i16> = (0..80000)
            .map(|_| (noise.next_f64() * 12000.0) as i16)
            .collect();
        assert_eq!(detect(&white), "");
        // Speech-like: a 120 Hz pulse train through formant-ish resonances,
        // with a syllabic envelope.
        let mut y1 = 0.0f64;
        let mut y2 = 0.0f64;
        let mut speech = Vec::new();
        for n in 0..80000 {
            let excitation = if n % 66 == 0 { 8000.0 } else { 0.0 } + 300.0 * noise.next_f64();
            let f = 500.0 + 400.0 * ((n as f64) / 3000.0).sin();
            let r: f64 = 0.97;
            let w = 2.0 * std::f64::consts::PI * f / 8000.0;
            let y = excitation + 2.0 * r * w.cos() * y1 - r * r * y2;
            y2 = y1;
            y1 = y;
            let env = 0.5 + 0.5 * ((n as f64) / 800.0).sin();
            speech.push((y * 0.05 * env).clamp(-32768.0, 32767.0) as i16);
        }
        assert_eq!(detect(&speech), "");
        let tone: Vec<i16> = (0..16000)
            .map(|n| {
                (10000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 8000.0).sin()) as i16
            })
            .collect();
        assert_eq!(detect(&tone), "");
        // A single DTMF row tone is not a digit either.
        let single: Vec<i16> = (0..16000)
            .map(|n| {
                (10000.0 * (2.0 * std::f64::consts::PI * 770.0 * n as f64 / 8000.0).sin()) as i16
            })
            .collect();
        assert_eq!(detect(&single), "");
    }

    #[test]
    fn quiet_tones_ignored() {
        let mut pcm = dial("7", 200, 50, 0.0, 60.0, 8);
        for s in &mut pcm {
            *s /= 200;
        }
        assert_eq!(detect(&pcm), "");
    }
}
