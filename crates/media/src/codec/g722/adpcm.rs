//! The two SB-ADPCM band coders of ITU-T G.722 section 3 (encoder) and
//! section 4 (decoder): quantisers, inverse quantisers, scale factor
//! adaptation (LOGSCL/SCALEL, LOGSCH/SCALEH) and the shared adaptive
//! predictor of block 4 (two poles, six zeros).
//!
//! Constants are the tables of G.722 (Tables 6 to 9 and 11 to 14); the code is
//! written from the block descriptions of the recommendation.

/// Lower-band quantiser decision levels (multiples of the scale factor, Q12).
const Q6: [i32; 31] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0,
];
/// Lower-band code for a negative difference, by quantiser interval.
const ILN: [u8; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];
/// Lower-band code for a positive difference, by quantiser interval.
const ILP: [u8; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];
/// Six-bit inverse quantiser outputs (64 kbit/s mode), Q15 of the scale factor.
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Four-bit inverse quantiser outputs, used for prediction in every mode.
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// Higher-band inverse quantiser outputs.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// Lower-band log scale factor increments, by magnitude class.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// Four-bit code to magnitude class.
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Higher-band log scale factor increments, by magnitude class.
const WH: [i32; 3] = [0, -214, 798];
/// Two-bit code to magnitude class.
const RH2: [usize; 4] = [2, 1, 2, 1];
/// Antilog table for the scale factors.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

#[inline]
fn sat16(x: i32) -> i32 {
    x.clamp(-32768, 32767)
}

/// QUANTL: the 6-bit code of the lower-band difference `el` at scale `det`.
fn quantize_low(el: i32, det: i32) -> u8 {
    let wd = if el >= 0 { el } else { -(el + 1) };
    // First decision level above `wd` (binary search over Q6[1..30]), or
    // the last interval.
    let (mut i, mut hi) = (1, 30);
    while i < hi {
        let mid = (i + hi) / 2;
        if wd >= (Q6[mid] * det) >> 12 {
            i = mid + 1;
        } else {
            hi = mid;
        }
    }
    if el < 0 { ILN[i] } else { ILP[i] }
}

/// Which sub-band a [`Band`] codes; they differ in quantiser and scale limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sub {
    Low,
    High,
}

/// State of one sub-band ADPCM coder (identical in encoder and decoder).
#[derive(Debug, Clone)]
pub(super) struct Band {
    sub: Sub,
    /// Signal estimate for the current sample.
    s: i32,
    /// Zero-section part of the estimate.
    sz: i32,
    /// Reconstructed signal history, `r[1]` newest.
    r: [i32; 3],
    /// Pole coefficients `a[1]`, `a[2]`.
    a: [i32; 3],
    /// Partially reconstructed signal history, `p[1]` newest.
    p: [i32; 3],
    /// Quantised difference history, `d[1]` newest.
    d: [i32; 7],
    /// Zero coefficients `b[1]`..`b[6]`.
    b: [i32; 7],
    /// Log scale factor.
    nb: i32,
    /// Scale factor.
    det: i32,
}

impl Band {
    pub(super) fn new(sub: Sub) -> Self {
        Self {
            sub,
            s: 0,
            sz: 0,
            r: [0; 3],
            a: [0; 3],
            p: [0; 3],
            d: [0; 7],
            b: [0; 7],
            nb: 0,
            det: if sub == Sub::Low { 32 } else { 8 },
        }
    }

    /// Lower band, encoder: quantises `xl`, adapts, returns the 6-bit code.
    pub(super) fn encode_low(&mut self, xl: i32) -> u8 {
        let el = sat16(xl - self.s);
        let il = quantize_low(el, self.det);
        let dlt = (self.det * QM4[usize::from(il >> 2)]) >> 15;
        self.adapt_scale(RL42[usize::from(il >> 2)]);
        self.predict(dlt);
        il
    }

    /// Lower band, decoder: returns the reconstructed sample for a 6-bit code.
    pub(super) fn decode_low(&mut self, il: u8) -> i32 {
        let il = il & 0x3F;
        let dlt = (self.det * QM4[usize::from(il >> 2)]) >> 15;
        let full = (self.det * QM6[usize::from(il)]) >> 15;
        let rl = (self.s + full).clamp(-16384, 16383);
        self.adapt_scale(RL42[usize::from(il >> 2)]);
        self.predict(dlt);
        rl
    }

    /// Higher band, encoder: quantises `xh`, adapts, returns the 2-bit code.
    pub(super) fn encode_high(&mut self, xh: i32) -> u8 {
        let eh = sat16(xh - self.s);
        let wd = if eh >= 0 { eh } else { -(eh + 1) };
        let large = wd >= (564 * self.det) >> 12;
        let ih: u8 = match (eh < 0, large) {
            (true, true) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (false, false) => 3,
        };
        let dh = (self.det * QM2[usize::from(ih)]) >> 15;
        self.adapt_scale(RH2[usize::from(ih)]);
        self.predict(dh);
        ih
    }

    /// Higher band, decoder: returns the reconstructed sample for a 2-bit code.
    pub(super) fn decode_high(&mut self, ih: u8) -> i32 {
        let ih = ih & 0x03;
        let dh = (self.det * QM2[usize::from(ih)]) >> 15;
        let rh = (self.s + dh).clamp(-16384, 16383);
        self.adapt_scale(RH2[usize::from(ih)]);
        self.predict(dh);
        rh
    }

    /// LOGSCL/SCALEL (or LOGSCH/SCALEH): log-domain scale factor adaptation.
    fn adapt_scale(&mut self, class: usize) {
        let (inc, max, shift_base) = match self.sub {
            Sub::Low => (WL[class], 18432, 8),
            Sub::High => (WH[class], 22528, 10),
        };
        self.nb = (((self.nb * 127) >> 7) + inc).clamp(0, max);
        let wd1 = ILB[((self.nb >> 6) & 31) as usize];
        let wd2 = shift_base - (self.nb >> 11);
        let wd3 = if wd2 < 0 { wd1 << -wd2 } else { wd1 >> wd2 };
        self.det = wd3 << 2;
    }

    /// Block 4: reconstruct, adapt the pole and zero coefficients with the
    /// sign-sign algorithm, and compute the estimate for the next sample.
    fn predict(&mut self, d: i32) {
        let r = sat16(self.s + d);
        let p = sat16(d + self.sz);

        // UPPOL2
        let (sg0, sg1, sg2) = (p < 0, self.p[1] < 0, self.p[2] < 0);
        let wd1 = sat16(self.a[1] << 2);
        let wd2 = if sg0 == sg1 { -wd1 } else { wd1 }.min(32767);
        let wd3 = if sg0 == sg2 { 128 } else { -128 };
        let a2 = ((wd2 >> 7) + wd3 + ((self.a[2] * 32512) >> 15)).clamp(-12288, 12288);

        // UPPOL1
        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let lim = 15360 - a2;
        let a1 = (wd1 + ((self.a[1] * 32640) >> 15)).clamp(-lim, lim);

        // UPZERO
        let step = if d == 0 { 0 } else { 128 };
        let sgd = d < 0;
        for i in 1..7 {
            let wd2 = if (self.d[i] < 0) == sgd { step } else { -step };
            self.b[i] = wd2 + ((self.b[i] * 32640) >> 15);
        }

        // DELAYA
        for i in (2..7).rev() {
            self.d[i] = self.d[i - 1];
        }
        self.d[1] = d;
        self.p[2] = self.p[1];
        self.p[1] = p;
        self.r[2] = self.r[1];
        self.r[1] = r;
        self.a[1] = a1;
        self.a[2] = a2;

        // FILTEP, FILTEZ, PREDIC
        let sp =
            ((self.a[1] * sat16(self.r[1] * 2)) >> 15) + ((self.a[2] * sat16(self.r[2] * 2)) >> 15);
        let mut sz = 0;
        for i in 1..7 {
            sz += (self.b[i] * sat16(self.d[i] * 2)) >> 15;
        }
        self.sz = sat16(sz);
        self.s = sat16(sp + self.sz);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_search_quantiser_matches_linear_scan() {
        for det in [32, 100, 777, 4096, 20000, 32064] {
            for el in (-32768..32768).step_by(3) {
                let wd = if el >= 0 { el } else { -(el + 1) };
                let mut i = 1;
                while i < 30 && wd >= (Q6[i] * det) >> 12 {
                    i += 1;
                }
                let want = if el < 0 { ILN[i] } else { ILP[i] };
                assert_eq!(quantize_low(el, det), want, "el {el} det {det}");
            }
        }
    }
}
