//! ITU-T G.722 7 kHz audio coding at 64 kbit/s (sub-band ADPCM).
//!
//! Structure (G.722 section 1.4): a 24-tap quadrature mirror filter pair
//! splits 16 kHz audio into two 8 kHz sub-bands (section 3.2, transmit QMF;
//! section 4.4, receive QMF); the lower band is coded with 6-bit ADPCM and
//! the higher band with 2-bit ADPCM (see `adpcm`). Each octet carries one
//! sample pair: `ih << 6 | il` (section 3.7, mode 1).
//!
//! Written in-house from the recommendation's block descriptions. It has not
//! been checked against the ITU-T test sequences, so bit exactness with other
//! implementations is not claimed; round-trip quality is tested below.
//! Concealment is the generic [`PitchPlc`] on decoded audio, not G.722
//! Appendix III/IV.

mod adpcm;

use self::adpcm::{Band, Sub};
use super::{Codec, CodecError, CodecKind, PitchPlc};

/// QMF coefficients h0..h23 (G.722 table 11), scaled by 2^13.
const QMF: [i16; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// Even-indexed coefficients h0, h2, ..., h22.
const QMF_EVEN: [i16; 12] = split_qmf(0);
/// Odd-indexed coefficients h1, h3, ..., h23.
const QMF_ODD: [i16; 12] = split_qmf(1);

const fn split_qmf(first: usize) -> [i16; 12] {
    let mut out = [0; 12];
    let mut i = 0;
    while i < 12 {
        out[i] = QMF[2 * i + first];
        i += 1;
    }
    out
}

/// Sum of products of two 12-element i16 vectors (a pattern compilers
/// turn into multiply-add instructions).
#[inline]
fn dot12(a: &[i16; 12], b: &[i16; 12]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

/// Shifts a history one place (index 0 newest) and inserts `v`.
#[inline]
fn push_front(h: &mut [i16; 12], v: i16) {
    h.copy_within(0..11, 1);
    h[0] = v;
}

/// G.722 encoder state.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    /// Transmit QMF input history, split by parity: `even[i]` is
    /// x(j - 2i) and `odd[i]` is x(j - 2i - 1), with x(j) the newest sample.
    even: [i16; 12],
    odd: [i16; 12],
    low: Band,
    high: Band,
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    /// Creates an encoder in the reset state.
    pub fn new() -> Self {
        Self {
            even: [0; 12],
            odd: [0; 12],
            low: Band::new(Sub::Low),
            high: Band::new(Sub::High),
        }
    }

    /// Encodes one pair of 16 kHz samples into one octet.
    #[inline]
    pub fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        push_front(&mut self.even, second);
        push_front(&mut self.odd, first);
        let even = dot12(&QMF_EVEN, &self.even);
        let odd = dot12(&QMF_ODD, &self.odd);
        let xl = (even + odd) >> 14;
        let xh = (even - odd) >> 14;
        let il = self.low.encode_low(xl);
        let ih = self.high.encode_high(xh);
        (ih << 6) | il
    }

    /// Encodes `pcm` (even length) appending one octet per sample pair.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if !pcm.len().is_multiple_of(2) {
            return Err(CodecError::BadFrameLength {
                len: pcm.len(),
                multiple: 2,
            });
        }
        out.reserve(pcm.len() / 2);
        for pair in pcm.chunks_exact(2) {
            out.push(self.encode_pair(pair[0], pair[1]));
        }
        Ok(())
    }
}

/// G.722 decoder state.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    /// Receive QMF histories of `rl - rh` and `rl + rh`, index 0 newest.
    xd: [i16; 12],
    xs: [i16; 12],
    low: Band,
    high: Band,
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    /// Creates a decoder in the reset state.
    pub fn new() -> Self {
        Self {
            xd: [0; 12],
            xs: [0; 12],
            low: Band::new(Sub::Low),
            high: Band::new(Sub::High),
        }
    }

    /// Decodes one octet into a pair of 16 kHz samples.
    #[inline]
    pub fn decode_octet(&mut self, octet: u8) -> [i16; 2] {
        let rl = self.low.decode_low(octet & 0x3F);
        let rh = self.high.decode_high(octet >> 6);
        // rl and rh are limited to 15 bits, so both fit in 16.
        push_front(&mut self.xd, (rl - rh) as i16);
        push_front(&mut self.xs, (rl + rh) as i16);
        let first = dot12(&QMF_EVEN, &self.xd);
        let second = dot12(&QMF_ODD, &self.xs);
        [
            (first >> 11).clamp(-32768, 32767) as i16,
            (second >> 11).clamp(-32768, 32767) as i16,
        ]
    }

    /// Decodes `payload`, appending two samples per octet.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len() * 2);
        for &b in payload {
            out.extend_from_slice(&self.decode_octet(b));
        }
    }
}

/// G.722 codec (payload type 9): 16 kHz PCM, 8 kHz RTP clock.
#[derive(Debug, Clone)]
pub struct G722 {
    encoder: G722Encoder,
    decoder: G722Decoder,
    plc: PitchPlc,
}

impl Default for G722 {
    fn default() -> Self {
        Self::new()
    }
}

impl G722 {
    /// Creates a G.722 codec in the reset state.
    pub fn new() -> Self {
        Self {
            encoder: G722Encoder::new(),
            decoder: G722Decoder::new(),
            plc: PitchPlc::new(16000),
        }
    }
}

impl Codec for G722 {
    fn kind(&self) -> CodecKind {
        CodecKind::G722
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.encoder.encode(pcm, out)
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let start = out.len();
        self.decoder.decode(payload, out);
        self.plc.good(&mut out[start..]);
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> bool {
        self.plc.conceal(samples, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Noise, aligned_snr_db, sine};

    fn round_trip(x: &[i16]) -> Vec<i16> {
        let mut c = G722::new();
        let mut enc = Vec::new();
        for frame in x.chunks(320) {
            c.encode(frame, &mut enc).unwrap();
        }
        assert_eq!(enc.len(), x.len() / 2);
        let mut dec = Vec::new();
        for frame in enc.chunks(160) {
            c.decode(frame, &mut dec);
        }
        dec
    }

    #[test]
    fn sine_snr_in_passband() {
        for freq in [300.0, 1000.0, 3000.0, 6000.0] {
            let x = sine(freq, 16000, 16000, 8000.0);
            let y = round_trip(&x);
            let (snr, lag) = aligned_snr_db(&x, &y, 64, 1600);
            println!("G.722 {freq} Hz: SNR {snr:.1} dB, delay {lag}");
            assert!(snr > 20.0, "{freq} Hz: SNR {snr:.1} dB (lag {lag})");
            assert_eq!(lag, 22, "group delay");
        }
    }

    #[test]
    fn silence_stays_quiet_and_loud_input_is_safe() {
        let y = round_trip(&[0; 3200]);
        assert!(y.iter().all(|&s| s.abs() < 64));
        let mut n = Noise::new(7);
        let x: Vec<i16> = (0..16000)
            .map(|i| {
                if i % 50 < 25 {
                    i16::MAX
                } else {
                    (n.next_f64() * 32767.0) as i16
                }
            })
            .collect();
        let y = round_trip(&x);
        assert_eq!(y.len(), x.len());
    }

    #[test]
    fn every_octet_decodes() {
        let mut d = G722Decoder::new();
        let all: Vec<u8> = (0..=255).cycle().take(4096).collect();
        let mut out = Vec::new();
        d.decode(&all, &mut out);
        assert_eq!(out.len(), 8192);
    }

    #[test]
    fn odd_frame_rejected() {
        let mut c = G722::new();
        let mut out = Vec::new();
        assert_eq!(
            c.encode(&[0; 3], &mut out),
            Err(CodecError::BadFrameLength {
                len: 3,
                multiple: 2
            })
        );
    }
}
