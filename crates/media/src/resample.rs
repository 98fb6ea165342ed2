//! Sample-rate conversion by a rational polyphase windowed-sinc FIR.
//!
//! The converter upsamples by `L`, low-pass filters and downsamples by `M`
//! (`L/M` = output rate / input rate, reduced by their gcd), computing only
//! the outputs that survive decimation: one polyphase branch per output
//! (Crochiere and Rabiner, "Multirate Digital Signal Processing", ch. 4).
//! The prototype filter is a Kaiser-windowed sinc whose stop band starts at
//! the lower of the two Nyquist frequencies, so downsampling does not alias.
//!
//! Streaming: state carries across calls, so a call can be split into 20 ms
//! frames with no seams. The group delay is [`Resampler::delay`] output samples.

use thiserror::Error;

/// Errors constructing a [`Resampler`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResampleError {
    /// A rate was zero or the reduced ratio is too large to filter sensibly.
    #[error("unsupported conversion {from} Hz -> {to} Hz")]
    Unsupported {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
    },
}

/// Taps per polyphase branch per unit of the larger of `L` and `M`.
const ZERO_CROSSINGS: usize = 30;
/// Branch lengths are padded with zero taps to a multiple of this.
const LANES: usize = 8;
/// Kaiser window shape (about 80 dB stop-band attenuation).
const KAISER_BETA: f64 = 8.0;
/// Largest reduced `L` or `M` accepted (44.1 kHz <-> 48 kHz is 147/160).
const MAX_FACTOR: u32 = 640;

/// Streaming rational resampler for mono 16-bit PCM.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    up: usize,
    down: usize,
    taps: usize,
    /// Group delay in output samples.
    delay: usize,
    /// `down / up` and `down % up`: input advance per output.
    step_whole: usize,
    step_frac: usize,
    /// Branch `p` holds `h[p + k*L]`, stored reversed for a forward dot product.
    branches: Vec<f32>,
    /// Last `taps - 1` inputs followed by pending ones.
    buf: Vec<f32>,
    /// Index in `buf` of the newest input the next output uses.
    next: usize,
    /// Polyphase branch of the next output.
    phase: usize,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Zeroth-order modified Bessel function of the first kind (series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..64 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

impl Resampler {
    /// Creates a converter from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        if from == 0 || to == 0 {
            return Err(ResampleError::Unsupported { from, to });
        }
        let g = gcd(from, to);
        let (up, down) = (to / g, from / g);
        if up > MAX_FACTOR || down > MAX_FACTOR {
            return Err(ResampleError::Unsupported { from, to });
        }
        let (up, down) = (up as usize, down as usize);
        let factor = up.max(down);
        // A symmetric prototype whose centre is a whole number of output
        // samples, so the group delay is an integer; zero-padded to a multiple
        // of `L` taps.
        let centre = if up == down {
            0
        } else {
            (ZERO_CROSSINGS * factor / 2).div_ceil(down) * down
        };
        let proto_len = 2 * centre + 1;
        let taps = proto_len.div_ceil(up).next_multiple_of(LANES);
        let len = taps * up;
        // Cut-off in cycles per sample of the upsampled stream: half-way
        // through a transition band ending at the lower Nyquist frequency.
        let transition = (KAISER_BETA + 1.5) / (std::f64::consts::PI * ZERO_CROSSINGS as f64);
        let cutoff = (0.5 - transition / 2.0).max(0.3) / factor as f64;
        let i0_beta = bessel_i0(KAISER_BETA);
        let proto: Vec<f64> = (0..len)
            .map(|n| {
                if up == down {
                    return 1.0;
                }
                if n >= proto_len {
                    return 0.0;
                }
                let t = n as f64 - centre as f64;
                let sinc = if t == 0.0 {
                    2.0 * cutoff
                } else {
                    (2.0 * std::f64::consts::PI * cutoff * t).sin() / (std::f64::consts::PI * t)
                };
                let w = t / centre as f64;
                let window = bessel_i0(KAISER_BETA * (1.0 - w * w).max(0.0).sqrt()) / i0_beta;
                sinc * window * up as f64
            })
            .collect();
        let mut branches = vec![0.0f32; len];
        for p in 0..up {
            for k in 0..taps {
                branches[p * taps + (taps - 1 - k)] = proto[p + k * up] as f32;
            }
        }
        Ok(Self {
            from,
            to,
            up,
            down,
            taps,
            delay: centre / down,
            step_whole: down / up,
            step_frac: down % up,
            branches,
            buf: vec![0.0; taps - 1],
            next: taps - 1,
            phase: 0,
        })
    }

    /// Input rate in Hz.
    pub fn input_rate(&self) -> u32 {
        self.from
    }

    /// Output rate in Hz.
    pub fn output_rate(&self) -> u32 {
        self.to
    }

    /// Group delay of the filter, in output samples (exact).
    pub fn delay(&self) -> usize {
        self.delay
    }

    /// Number of output samples `input` samples will produce, give or take one.
    pub fn output_len(&self, input: usize) -> usize {
        input * self.up / self.down
    }

    /// Converts `input`, appending the produced samples to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.up == self.down {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend(input.iter().map(|&s| f32::from(s)));
        out.reserve(self.output_len(input.len()) + 1);
        let taps = self.taps;
        while self.next < self.buf.len() {
            let window = &self.buf[self.next + 1 - taps..=self.next];
            let branch = &self.branches[self.phase * taps..(self.phase + 1) * taps];
            let acc = dot(window, branch);
            out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
            // Advance by down/up input samples without a division.
            self.next += self.step_whole;
            self.phase += self.step_frac;
            if self.phase >= self.up {
                self.phase -= self.up;
                self.next += 1;
            }
        }
        // Keep the history the next outputs need.
        let keep_from = (self.next + 1).saturating_sub(taps).min(self.buf.len());
        self.buf.drain(..keep_from);
        self.next -= keep_from;
    }

    /// Clears the history, as if newly created.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf.resize(self.taps - 1, 0.0);
        self.next = self.taps - 1;
        self.phase = 0;
    }
}

/// Dot product in eight independent lanes so the compiler vectorises it;
/// branch lengths are multiples of [`LANES`].
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{aligned_snr_db, power, sine, tone_power};

    fn convert(from: u32, to: u32, x: &[i16], frame: usize) -> Vec<i16> {
        let mut r = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        for chunk in x.chunks(frame) {
            r.process(chunk, &mut out);
        }
        out
    }

    #[test]
    fn tone_survives_every_pair() {
        let rates = [8000, 16000, 48000];
        for from in rates {
            for to in rates {
                let x = sine(1000.0, from, from as usize, 10000.0);
                let y = convert(from, to, &x, from as usize / 50);
                let expect = x.len() * to as usize / from as usize;
                assert!(
                    y.len().abs_diff(expect) <= 1,
                    "{from}->{to} len {}",
                    y.len()
                );
                let want = sine(1000.0, to, y.len(), 10000.0);
                let (snr, lag) = aligned_snr_db(&want, &y, to as usize / 100, to as usize / 10);
                println!("{from}->{to}: SNR {snr:.1} dB, delay {lag}");
                assert!(snr > 40.0, "{from}->{to}: SNR {snr:.1} dB");
            }
        }
    }

    #[test]
    fn downsampling_rejects_aliases() {
        // 6 kHz at 16 kHz or 48 kHz would alias to 2 kHz at 8 kHz.
        for from in [16000, 48000] {
            let x = sine(6000.0, from, from as usize, 10000.0);
            let y = convert(from, 8000, &x, 320);
            let tail = &y[800..];
            let alias = tone_power(tail, 2000.0, 8000);
            let input = power(&x);
            let atten = 10.0 * (input / alias.max(1e-9)).log10();
            println!("{from}->8000 alias attenuation {atten:.1} dB");
            assert!(atten > 60.0, "{from}: {atten:.1} dB");
            let total = 10.0 * (input / power(tail).max(1e-9)).log10();
            assert!(total > 50.0, "{from}: residual {total:.1} dB");
        }
    }

    #[test]
    fn upsampling_images_suppressed() {
        let x = sine(1000.0, 8000, 8000, 10000.0);
        let y = convert(8000, 48000, &x, 160);
        let tail = &y[4800..];
        let image = tone_power(tail, 7000.0, 48000);
        let atten = 10.0 * (power(&x) / image.max(1e-9)).log10();
        assert!(atten > 60.0, "image attenuation {atten:.1} dB");
    }

    #[test]
    fn odd_rates_and_errors() {
        assert!(Resampler::new(0, 8000).is_err());
        assert!(Resampler::new(44101, 8000).is_err());
        let x = sine(440.0, 44100, 4410, 8000.0);
        let y = convert(44100, 16000, &x, 441);
        assert!(y.len().abs_diff(1600) <= 1);
        let mut r = Resampler::new(16000, 8000).unwrap();
        let mut out = Vec::new();
        r.process(&[], &mut out);
        r.process(&[1], &mut out);
        r.reset();
        assert!(r.delay() > 0);
    }
}
