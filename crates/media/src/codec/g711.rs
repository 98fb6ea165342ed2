//! ITU-T G.711 pulse code modulation: µ-law (PCMU) and A-law (PCMA).
//!
//! Encoding follows the segment/mantissa description of G.711 section 2
//! (tables 1a and 2a), on 16-bit input scaled as 14-bit (µ-law) or 13-bit
//! (A-law) magnitudes. Decoding and the µ-law <-> A-law maps are 256-entry
//! tables built at compile time, so transcoding a 20 ms frame is 160 loads.

use super::{Codec, CodecError, CodecKind, PitchPlc};

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// Encodes one 16-bit linear sample to a µ-law byte.
#[inline]
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    let mut x = sample as i32;
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    if x > ULAW_CLIP {
        x = ULAW_CLIP;
    }
    x += ULAW_BIAS;
    // x >= 0x84, so its top set bit is between 7 and 14.
    let exponent = (31 - (x as u32).leading_zeros() as i32) - 7;
    let mantissa = (x >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one µ-law byte to a 16-bit linear sample.
#[inline]
pub const fn ulaw_to_linear(byte: u8) -> i16 {
    ULAW_DECODE[byte as usize]
}

const fn ulaw_decode_calc(byte: u8) -> i16 {
    let u = !byte;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Encodes one 16-bit linear sample to an A-law byte.
#[inline]
pub const fn linear_to_alaw(sample: i16) -> u8 {
    let mut x = sample as i32;
    // A-law sets the sign bit for positive values.
    let sign = if x >= 0 {
        0x80
    } else {
        x = -x - 1;
        0
    };
    let code = if x < 256 {
        x >> 4
    } else {
        let exponent = (31 - (x as u32).leading_zeros() as i32) - 7;
        (exponent << 4) | ((x >> (exponent + 3)) & 0x0F)
    };
    ((sign | code) as u8) ^ 0x55
}

/// Decodes one A-law byte to a 16-bit linear sample.
#[inline]
pub const fn alaw_to_linear(byte: u8) -> i16 {
    ALAW_DECODE[byte as usize]
}

const fn alaw_decode_calc(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0F) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_decode_table(ulaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw {
            ulaw_decode_calc(i as u8)
        } else {
            alaw_decode_calc(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW_DECODE: [i16; 256] = build_decode_table(true);
static ALAW_DECODE: [i16; 256] = build_decode_table(false);

/// For every code of one law, the code of the other law whose decoded value
/// is nearest (ties to the smaller magnitude), so tandem conversion adds at
/// most half a step of error.
const fn build_cross(from_ulaw: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let v = if from_ulaw {
            ulaw_decode_calc(i as u8)
        } else {
            alaw_decode_calc(i as u8)
        } as i32;
        let mut best = 0u8;
        let mut best_err = i32::MAX;
        let mut j = 0;
        while j < 256 {
            let w = if from_ulaw {
                alaw_decode_calc(j as u8)
            } else {
                ulaw_decode_calc(j as u8)
            } as i32;
            let err = (w - v).abs();
            let better = err < best_err || (err == best_err && w.abs() < v.abs());
            // Keep the sign of the source so +0 and -0 stay distinct.
            if better && (w >= 0) == (v >= 0) {
                best = j as u8;
                best_err = err;
            }
            j += 1;
        }
        t[i] = best;
        i += 1;
    }
    t
}

static ULAW_TO_ALAW: [u8; 256] = build_cross(true);
static ALAW_TO_ULAW: [u8; 256] = build_cross(false);

/// Converts a µ-law byte to the A-law byte for the same linear value.
#[inline]
pub fn ulaw_to_alaw(byte: u8) -> u8 {
    ULAW_TO_ALAW[byte as usize]
}

/// Converts an A-law byte to the µ-law byte for the same linear value.
#[inline]
pub fn alaw_to_ulaw(byte: u8) -> u8 {
    ALAW_TO_ULAW[byte as usize]
}

/// Transcodes a PCMU payload to PCMA in place.
pub fn ulaw_to_alaw_in_place(buf: &mut [u8]) {
    for b in buf {
        *b = ULAW_TO_ALAW[*b as usize];
    }
}

/// Transcodes a PCMA payload to PCMU in place.
pub fn alaw_to_ulaw_in_place(buf: &mut [u8]) {
    for b in buf {
        *b = ALAW_TO_ULAW[*b as usize];
    }
}

/// G.711 µ-law codec (PCMU, payload type 0).
#[derive(Debug, Clone, Default)]
pub struct Pcmu {
    plc: PitchPlc,
}

impl Pcmu {
    /// Creates a PCMU codec.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Codec for Pcmu {
    fn kind(&self) -> CodecKind {
        CodecKind::Pcmu
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend(pcm.iter().map(|&s| linear_to_ulaw(s)));
        Ok(())
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let start = out.len();
        out.extend(payload.iter().map(|&b| ULAW_DECODE[b as usize]));
        self.plc.good(&mut out[start..]);
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> bool {
        self.plc.conceal(samples, out)
    }
}

/// G.711 A-law codec (PCMA, payload type 8).
#[derive(Debug, Clone, Default)]
pub struct Pcma {
    plc: PitchPlc,
}

impl Pcma {
    /// Creates a PCMA codec.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Codec for Pcma {
    fn kind(&self) -> CodecKind {
        CodecKind::Pcma
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend(pcm.iter().map(|&s| linear_to_alaw(s)));
        Ok(())
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let start = out.len();
        out.extend(payload.iter().map(|&b| ALAW_DECODE[b as usize]));
        self.plc.good(&mut out[start..]);
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> bool {
        self.plc.conceal(samples, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{sine, snr_db};

    #[test]
    fn known_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn every_code_round_trips() {
        for b in 0..=255u8 {
            let lin = ulaw_to_linear(b);
            // 0x7F and 0xFF both decode to 0; encoding 0 gives 0xFF.
            if b != 0x7F {
                assert_eq!(linear_to_ulaw(lin), b, "ulaw {b:#x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw {b:#x}");
        }
    }

    #[test]
    fn monotonic_encoding() {
        let mut prev = i16::MIN;
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            let d = ulaw_to_linear(linear_to_ulaw(x));
            assert!(d >= prev);
            prev = d;
            let err = (i32::from(alaw_to_linear(linear_to_alaw(x))) - i32::from(x)).abs();
            assert!(err <= 1024, "alaw error {err} at {x}");
        }
    }

    #[test]
    fn cross_tables_are_consistent() {
        for b in 0..=255u8 {
            let a = ulaw_to_alaw(b);
            let err = (i32::from(alaw_to_linear(a)) - i32::from(ulaw_to_linear(b))).abs();
            let step = (i32::from(ulaw_to_linear(b)).abs() / 16).max(16);
            assert!(err <= step, "{b:#x}: {err}");
            let a2 = alaw_to_ulaw(b);
            let err = (i32::from(ulaw_to_linear(a2)) - i32::from(alaw_to_linear(b))).abs();
            let step = (i32::from(alaw_to_linear(b)).abs() / 16).max(16);
            assert!(err <= step, "{b:#x}: {err}");
        }
    }

    #[test]
    fn sine_snr_above_30_db() {
        let x = sine(1013.0, 8000, 8000, 10000.0);
        for mut codec in [
            Box::new(Pcmu::new()) as Box<dyn Codec>,
            Box::new(Pcma::new()),
        ] {
            let mut enc = Vec::new();
            codec.encode(&x, &mut enc).unwrap();
            assert_eq!(enc.len(), x.len());
            let mut dec = Vec::new();
            codec.decode(&enc, &mut dec);
            let snr = snr_db(&x, &dec);
            println!("{}: SNR {snr:.1} dB", codec.name());
            assert!(snr > 30.0, "{} SNR {snr:.1} dB", codec.name());
        }
    }

    #[test]
    fn conceal_after_decode() {
        let mut c = Pcmu::new();
        let mut out = Vec::new();
        c.decode(&[0x80; 160], &mut out);
        out.clear();
        assert!(c.conceal(160, &mut out));
        assert_eq!(out.len(), 160);
    }
}
