//! Packet loss concealment by pitch-period repetition.
//!
//! After ITU-T G.711 Appendix I, simplified: on the first lost frame the
//! pitch period of the recent history is estimated (normalised
//! autocorrelation over 2.5-15 ms lags) and the last period is repeated.
//! The first 10 ms play at full level, then the level falls by 20 % per
//! 10 ms, reaching silence after 60 ms. When audio resumes, the first 4 ms
//! of the good frame are cross-faded with the continued synthetic signal so
//! there is no click. Codec-agnostic: it only sees decoded PCM.

/// Concealment state for one decoder.
#[derive(Debug, Clone)]
pub struct PitchPlc {
    rate: u32,
    /// Most recent good output, newest last.
    history: Vec<i16>,
    /// One pitch period being repeated during a loss.
    cycle: Vec<i16>,
    pos: usize,
    /// Samples concealed in the current run of losses (0: not concealing).
    concealed: usize,
}

impl Default for PitchPlc {
    fn default() -> Self {
        Self::new(8000)
    }
}

impl PitchPlc {
    /// A concealer for PCM at `rate` Hz.
    pub fn new(rate: u32) -> Self {
        let rate = rate.clamp(4000, 192_000);
        Self {
            rate,
            history: Vec::new(),
            cycle: Vec::new(),
            pos: 0,
            concealed: 0,
        }
    }

    fn ms(&self, ms: usize) -> usize {
        ms * self.rate as usize / 1000
    }

    fn max_pitch(&self) -> usize {
        self.ms(15)
    }

    /// Level (Q15) for the `n`-th concealed sample of a loss run.
    fn gain_q15(&self, n: usize) -> i32 {
        let ten_ms = self.ms(10).max(1);
        if n < ten_ms {
            return 1 << 15;
        }
        // 20 % per 10 ms after the first 10 ms.
        let drop = (n - ten_ms) * (1 << 15) / (5 * ten_ms);
        (1i32 << 15).saturating_sub(drop as i32).max(0)
    }

    fn next_synthetic(&mut self) -> i16 {
        if self.cycle.is_empty() {
            return 0;
        }
        let g = self.gain_q15(self.concealed);
        let v = (i32::from(self.cycle[self.pos]) * g) >> 15;
        self.pos = (self.pos + 1) % self.cycle.len();
        self.concealed += 1;
        v as i16
    }

    /// Records a successfully decoded frame; after a loss, smooths its start
    /// into the concealed signal (hence `&mut`).
    pub fn good(&mut self, pcm: &mut [i16]) {
        if self.concealed > 0 {
            let overlap = self.ms(4).min(pcm.len());
            for (i, s) in pcm.iter_mut().take(overlap).enumerate() {
                let syn = i32::from(self.next_synthetic());
                let w = i as i32;
                let n = overlap as i32;
                *s = ((syn * (n - w) + i32::from(*s) * w) / n) as i16;
            }
            self.concealed = 0;
        }
        let keep = 2 * self.max_pitch() + self.ms(5);
        self.history.extend_from_slice(pcm);
        if self.history.len() > keep {
            let excess = self.history.len() - keep;
            self.history.drain(..excess);
        }
    }

    /// Best pitch period of the history by normalised autocorrelation.
    fn estimate_pitch(&self) -> usize {
        let h = &self.history;
        let (min_p, max_p) = (self.ms(5) / 2, self.max_pitch());
        let window = max_p.min(h.len().saturating_sub(max_p));
        let recent = &h[h.len() - window..];
        let mut best = (f64::MIN, max_p);
        for p in min_p.max(1)..=max_p {
            let past = &h[h.len() - window - p..h.len() - p];
            let (mut xy, mut yy) = (0.0f64, 0.0f64);
            for (&x, &y) in recent.iter().zip(past) {
                xy += f64::from(x) * f64::from(y);
                yy += f64::from(y) * f64::from(y);
            }
            let score = if yy > 0.0 { xy / yy.sqrt() } else { 0.0 };
            // Prefer the shortest lag among near-equal peaks (harmonics).
            if score > best.0 * 1.000_001 {
                best = (score, p);
            }
        }
        best.1
    }

    /// Appends `samples` samples for lost audio. Returns false (and appends
    /// silence) if nothing has been decoded yet.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> bool {
        if self.history.is_empty() {
            out.extend(std::iter::repeat_n(0, samples));
            return false;
        }
        if self.concealed == 0 {
            // With little history (the call just started), repeat all of it.
            let enough = self.max_pitch() + self.ms(5);
            let p = if self.history.len() >= enough {
                self.estimate_pitch()
            } else {
                self.history.len()
            };
            self.cycle.clear();
            self.cycle
                .extend_from_slice(&self.history[self.history.len() - p..]);
            self.pos = 0;
        }
        out.reserve(samples);
        for _ in 0..samples {
            let v = self.next_synthetic();
            out.push(v);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{sine, snr_db};

    #[test]
    fn silence_without_history() {
        let mut p = PitchPlc::new(8000);
        let mut out = Vec::new();
        assert!(!p.conceal(160, &mut out));
        assert_eq!(out, [0; 160]);
    }

    #[test]
    fn periodic_signal_is_continued() {
        // 200 Hz voiced-like tone with a harmonic; lose the 6th frame.
        let x: Vec<i16> = sine(200.0, 8000, 1600, 6000.0)
            .iter()
            .zip(sine(600.0, 8000, 1600, 2000.0))
            .map(|(a, b)| a + b)
            .collect();
        let mut p = PitchPlc::new(8000);
        for f in x[..800].chunks(160) {
            p.good(&mut f.to_vec());
        }
        let mut out = Vec::new();
        assert!(p.conceal(80, &mut out));
        // The first 10 ms are at full level and should track the signal.
        let snr = snr_db(&x[800..880], &out);
        assert!(snr > 20.0, "SNR {snr:.1} dB");
        // Recovery is click-free: the cross-faded start stays close.
        let mut next = x[880..1040].to_vec();
        p.good(&mut next);
        let step = (i32::from(next[0]) - i32::from(out[79])).abs();
        assert!(step < 2000, "step {step}");
    }

    #[test]
    fn long_losses_fade_to_silence() {
        let x = sine(150.0, 16000, 3200, 8000.0);
        let mut p = PitchPlc::new(16000);
        p.good(&mut x.clone());
        let mut out = Vec::new();
        for _ in 0..4 {
            p.conceal(320, &mut out);
        }
        let peak = |s: &[i16]| s.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        assert!(peak(&out[..160]) > 7000);
        assert!(peak(&out[640..800]) < peak(&out[..160]));
        assert_eq!(peak(&out[960..]), 0);
    }
}
