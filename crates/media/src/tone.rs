//! Call-progress tone generation by country.
//!
//! Frequencies and cadences follow ITU-T E.180 Supplement 2 ("Various tones
//! used in national networks") and, for the generic profile, the CEPT/ETSI
//! recommendation (ETSI TR 101 041): 425 Hz everywhere. The US profile is the
//! North American Precise Tone Plan; the UK profile is BT SIN 350.
//!
//! Generation is a pure function of the absolute sample position, so a
//! caller can produce any 20 ms frame of a tone in any order (e.g. after a
//! hold or a jitter-buffer resync) with continuous phase and cadence.

use std::f64::consts::PI;

/// A progress tone kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToneKind {
    /// Dial tone.
    Dial,
    /// Ringback (the caller hears the callee ringing).
    Ringback,
    /// Busy.
    Busy,
    /// Congestion / reorder (network busy).
    Congestion,
    /// Call waiting.
    CallWaiting,
}

/// A national tone plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Country {
    /// North America (Precise Tone Plan).
    Us,
    /// United Kingdom.
    Uk,
    /// Generic European / ITU (425 Hz).
    Eu,
}

impl Country {
    /// From an ISO 3166 alpha-2 code; unknown codes get the generic plan.
    pub fn from_code(code: &str) -> Self {
        match code.to_ascii_uppercase().as_str() {
            "US" | "CA" => Country::Us,
            "GB" | "UK" => Country::Uk,
            _ => Country::Eu,
        }
    }
}

/// Frequencies and cadence of one tone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    /// Component frequencies in Hz (one or two, summed).
    pub freqs: &'static [f64],
    /// Alternating on/off durations in milliseconds, starting with "on";
    /// empty means continuous.
    pub cadence_ms: &'static [u32],
}

impl ToneSpec {
    /// The tone `kind` in `country`'s plan.
    pub fn lookup(country: Country, kind: ToneKind) -> Self {
        use Country::*;
        use ToneKind::*;
        let (freqs, cadence_ms): (&'static [f64], &'static [u32]) = match (country, kind) {
            (Us, Dial) => (&[350.0, 440.0], &[]),
            (Us, Ringback) => (&[440.0, 480.0], &[2000, 4000]),
            (Us, Busy) => (&[480.0, 620.0], &[500, 500]),
            (Us, Congestion) => (&[480.0, 620.0], &[250, 250]),
            (Us, CallWaiting) => (&[440.0], &[300, 9700]),
            (Uk, Dial) => (&[350.0, 440.0], &[]),
            (Uk, Ringback) => (&[400.0, 450.0], &[400, 200, 400, 2000]),
            (Uk, Busy) => (&[400.0], &[375, 375]),
            (Uk, Congestion) => (&[400.0], &[400, 350, 225, 525]),
            (Uk, CallWaiting) => (&[400.0], &[100, 3000]),
            (Eu, Dial) => (&[425.0], &[]),
            (Eu, Ringback) => (&[425.0], &[1000, 4000]),
            (Eu, Busy) => (&[425.0], &[500, 500]),
            (Eu, Congestion) => (&[425.0], &[250, 250]),
            (Eu, CallWaiting) => (&[425.0], &[200, 200, 200, 4400]),
        };
        Self { freqs, cadence_ms }
    }

    /// Length of one cadence cycle in milliseconds (0 for continuous).
    pub fn period_ms(&self) -> u32 {
        self.cadence_ms.iter().sum()
    }

    /// Whether the tone sounds at `ms` milliseconds from its start.
    pub fn is_on_at_ms(&self, ms: u64) -> bool {
        let period = u64::from(self.period_ms());
        if period == 0 {
            return true;
        }
        let mut t = ms % period;
        for (i, &d) in self.cadence_ms.iter().enumerate() {
            if t < u64::from(d) {
                return i % 2 == 0;
            }
            t -= u64::from(d);
        }
        false
    }
}

/// Per-component peak amplitude: about -13 dBm0 per component for
/// two-frequency tones, keeping the sum clear of clipping.
const AMPLITUDE: f64 = 4000.0;

/// Generates a tone at a fixed sample rate.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    spec: ToneSpec,
    rate: u32,
    amplitude: f64,
}

impl ToneGenerator {
    /// A generator for `country`'s `kind` tone at `rate` Hz.
    pub fn new(country: Country, kind: ToneKind, rate: u32) -> Self {
        Self::from_spec(ToneSpec::lookup(country, kind), rate)
    }

    /// A generator for an explicit spec.
    pub fn from_spec(spec: ToneSpec, rate: u32) -> Self {
        Self {
            spec,
            rate: rate.max(1),
            amplitude: AMPLITUDE,
        }
    }

    /// Sets the per-component peak amplitude (linear, 16-bit scale).
    pub fn set_amplitude(&mut self, amplitude: f64) {
        self.amplitude = amplitude.clamp(0.0, 16000.0);
    }

    /// The tone's spec.
    pub fn spec(&self) -> &ToneSpec {
        &self.spec
    }

    /// Fills `out` with the samples starting at absolute position `start`.
    pub fn fill(&self, start: u64, out: &mut [i16]) {
        let rate = u64::from(self.rate);
        let period_samples = u64::from(self.spec.period_ms()) * rate / 1000;
        for (i, s) in out.iter_mut().enumerate() {
            let n = start.wrapping_add(i as u64);
            let ms = (u128::from(n) * 1000 / u128::from(rate)) as u64;
            if !self.spec.is_on_at_ms(ms) {
                *s = 0;
                continue;
            }
            // Phase from the position within a cadence cycle keeps the f64
            // argument small on long calls; continuous tones use a long
            // fixed window (whole seconds, so the phase stays continuous for
            // integer frequencies).
            let wrap = if period_samples == 0 {
                rate * 3600
            } else {
                period_samples
            };
            let t = (n % wrap) as f64 / rate as f64;
            let v: f64 = self
                .spec
                .freqs
                .iter()
                .map(|f| (2.0 * PI * f * t).sin())
                .sum();
            *s = (self.amplitude * v).round().clamp(-32768.0, 32767.0) as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{power, tone_power};

    fn render(country: Country, kind: ToneKind, rate: u32, ms: u64) -> Vec<i16> {
        let g = ToneGenerator::new(country, kind, rate);
        let mut out = vec![0; (ms * u64::from(rate) / 1000) as usize];
        // In 20 ms frames, as a media loop would.
        let frame = rate as usize / 50;
        for (i, chunk) in out.chunks_mut(frame).enumerate() {
            g.fill((i * frame) as u64, chunk);
        }
        out
    }

    /// On/off state per 10 ms slice.
    fn cadence(x: &[i16], rate: u32) -> Vec<bool> {
        x.chunks(rate as usize / 100)
            .map(|c| power(c) > 1e5)
            .collect()
    }

    #[test]
    fn frequencies_match() {
        for country in [Country::Us, Country::Uk, Country::Eu] {
            for kind in [ToneKind::Dial, ToneKind::Ringback, ToneKind::Busy] {
                for rate in [8000, 16000] {
                    let spec = ToneSpec::lookup(country, kind);
                    let x = render(country, kind, rate, 200);
                    let total = power(&x);
                    let wanted: f64 = spec.freqs.iter().map(|&f| tone_power(&x, f, rate)).sum();
                    assert!(
                        wanted > 0.9 * total,
                        "{country:?} {kind:?}: {wanted} of {total}"
                    );
                    for f in spec.freqs {
                        let p = tone_power(&x, *f, rate);
                        assert!(
                            p > 0.8 * AMPLITUDE * AMPLITUDE / 2.0,
                            "{country:?} {kind:?} {f}"
                        );
                    }
                    assert!(tone_power(&x, 1000.0, rate) < total * 1e-3);
                }
            }
        }
    }

    #[test]
    fn cadences_match() {
        let check = |country, kind, expect: &[(bool, usize)]| {
            let x = render(country, kind, 8000, 12000);
            let got = cadence(&x, 8000);
            let mut want = Vec::new();
            while want.len() < got.len() {
                for &(on, tens) in expect {
                    want.extend(std::iter::repeat_n(on, tens));
                }
            }
            want.truncate(got.len());
            assert_eq!(got, want, "{country:?} {kind:?}");
        };
        check(
            Country::Us,
            ToneKind::Ringback,
            &[(true, 200), (false, 400)],
        );
        check(Country::Us, ToneKind::Busy, &[(true, 50), (false, 50)]);
        check(
            Country::Us,
            ToneKind::Congestion,
            &[(true, 25), (false, 25)],
        );
        check(Country::Us, ToneKind::Dial, &[(true, 1)]);
        check(
            Country::Uk,
            ToneKind::Ringback,
            &[(true, 40), (false, 20), (true, 40), (false, 200)],
        );
        check(
            Country::Eu,
            ToneKind::Ringback,
            &[(true, 100), (false, 400)],
        );
        check(
            Country::Eu,
            ToneKind::CallWaiting,
            &[(true, 20), (false, 20), (true, 20), (false, 440)],
        );
        check(
            Country::Uk,
            ToneKind::CallWaiting,
            &[(true, 10), (false, 300)],
        );
    }

    #[test]
    fn uk_busy_cadence_in_milliseconds() {
        let s = ToneSpec::lookup(Country::Uk, ToneKind::Busy);
        assert!(s.is_on_at_ms(0) && s.is_on_at_ms(374));
        assert!(!s.is_on_at_ms(375) && !s.is_on_at_ms(749));
        assert!(s.is_on_at_ms(750));
        assert_eq!(s.period_ms(), 750);
    }

    #[test]
    fn random_access_is_consistent() {
        let g = ToneGenerator::new(Country::Us, ToneKind::Ringback, 8000);
        let mut a = vec![0; 480];
        g.fill(1000, &mut a);
        let mut b = vec![0; 160];
        g.fill(1160, &mut b);
        assert_eq!(&a[160..320], &b[..]);
        assert_eq!(Country::from_code("gb"), Country::Uk);
        assert_eq!(Country::from_code("de"), Country::Eu);
        assert_eq!(Country::from_code("CA"), Country::Us);
    }
}
