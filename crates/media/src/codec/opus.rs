//! Opus (RFC 6716) through libopus, for RTP per RFC 7587.
//!
//! Mono, 48 kHz PCM, VoIP application mode, 32 kbit/s with in-band FEC.
//! Encoder input must be 2.5, 5, 10, 20, 40 or 60 ms (RFC 6716 section
//! 2.1.4); loss concealment is libopus's own PLC. Compiled only with the
//! `opus` cargo feature; libopus is BSD-3-Clause and is linked dynamically
//! from the system (Debian `libopus-dev`).

use super::{Codec, CodecError, CodecKind};

/// PCM sample rate and RTP clock rate.
pub const RATE: u32 = 48000;
/// Largest frame libopus can return: 120 ms at 48 kHz.
const MAX_FRAME: usize = 5760;
/// Largest Opus packet (RFC 6716 section 3.4, R5).
const MAX_PACKET: usize = 1275;
/// Encoder frame sizes accepted, in samples.
const FRAME_SIZES: [usize; 6] = [120, 240, 480, 960, 1920, 2880];

/// The Opus codec: one libopus encoder and decoder.
pub struct Opus {
    encoder: opus::Encoder,
    decoder: opus::Decoder,
    scratch: Vec<i16>,
    packet: Vec<u8>,
    /// Duration of the last decoded frame, used for concealment sizing.
    last_frame: usize,
}

impl std::fmt::Debug for Opus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opus").finish_non_exhaustive()
    }
}

fn lib_err(e: opus::Error) -> CodecError {
    CodecError::Library(e.to_string())
}

impl Opus {
    /// Creates an encoder/decoder pair.
    pub fn new() -> Result<Self, CodecError> {
        let mut encoder = opus::Encoder::new(RATE, opus::Channels::Mono, opus::Application::Voip)
            .map_err(lib_err)?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(32000))
            .map_err(lib_err)?;
        encoder.set_inband_fec(true).map_err(lib_err)?;
        let decoder = opus::Decoder::new(RATE, opus::Channels::Mono).map_err(lib_err)?;
        Ok(Self {
            encoder,
            decoder,
            scratch: vec![0; MAX_FRAME],
            packet: vec![0; MAX_PACKET],
            last_frame: 960,
        })
    }

    /// Sets the target bitrate in bits per second (6000..=510000).
    pub fn set_bitrate(&mut self, bps: i32) -> Result<(), CodecError> {
        self.encoder
            .set_bitrate(opus::Bitrate::Bits(bps.clamp(6000, 510_000)))
            .map_err(lib_err)
    }
}

impl Codec for Opus {
    fn kind(&self) -> CodecKind {
        CodecKind::Opus
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if !FRAME_SIZES.contains(&pcm.len()) {
            return Err(CodecError::BadFrameLength {
                len: pcm.len(),
                multiple: 120,
            });
        }
        let n = self
            .encoder
            .encode(pcm, &mut self.packet)
            .map_err(lib_err)?;
        out.extend_from_slice(&self.packet[..n]);
        Ok(())
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        if payload.is_empty() {
            return;
        }
        match self.decoder.decode(payload, &mut self.scratch, false) {
            Ok(n) => {
                self.last_frame = n.clamp(120, MAX_FRAME);
                out.extend_from_slice(&self.scratch[..n]);
            }
            // A corrupt packet is treated as lost.
            Err(_) => {
                let n = self.last_frame;
                self.conceal(n, out);
            }
        }
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> bool {
        let mut left = samples;
        let mut ok = true;
        while left > 0 {
            // libopus conceals in multiples of 2.5 ms.
            let chunk = left.next_multiple_of(120).min(MAX_FRAME);
            let take = chunk.min(left);
            match self.decoder.decode(&[], &mut self.scratch[..chunk], false) {
                Ok(n) => out.extend_from_slice(&self.scratch[..n.min(take)]),
                Err(_) => {
                    out.extend(std::iter::repeat_n(0, take));
                    ok = false;
                }
            }
            left -= take;
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{aligned_snr_db, sine};

    #[test]
    fn round_trip_keeps_a_tone() {
        let mut c = Opus::new().unwrap();
        let x = sine(1000.0, RATE, RATE as usize, 8000.0);
        let mut y = Vec::new();
        for frame in x.chunks(960) {
            let mut p = Vec::new();
            c.encode(frame, &mut p).unwrap();
            assert!(p.len() < 200);
            c.decode(&p, &mut y);
        }
        assert_eq!(y.len(), x.len());
        let (snr, lag) = aligned_snr_db(&x, &y, 960, 4800);
        println!("opus SNR {snr:.1} dB, delay {lag}");
        assert!(snr > 10.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn bad_input_is_handled() {
        let mut c = Opus::new().unwrap();
        let mut packet = Vec::new();
        assert!(c.encode(&[0; 100], &mut packet).is_err());
        let mut out = Vec::new();
        c.decode(&[0xFF; 3], &mut out);
        assert_eq!(out.len(), 960);
        out.clear();
        assert!(c.conceal(160, &mut out));
        assert_eq!(out.len(), 160);
        assert_eq!(CodecKind::from_name("OPUS").unwrap(), CodecKind::Opus);
    }
}
