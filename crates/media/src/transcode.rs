//! Transcoding between any two codecs of [`crate::codec`]: decode, resample
//! if the PCM rates differ, encode.
//!
//! PCMU <-> PCMA skips the linear domain entirely and maps each octet through
//! a 256-entry table (ITU-T G.711 section 3 allows direct A/µ conversion);
//! identical codecs are passed through untouched.

use crate::codec::{Codec, CodecError, CodecKind, g711};
use crate::resample::Resampler;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Passthrough,
    UlawToAlaw,
    AlawToUlaw,
    Linear,
}

/// Converts payloads of one codec into payloads of another.
pub struct Transcoder {
    from: CodecKind,
    to: CodecKind,
    path: Path,
    decoder: Box<dyn Codec>,
    encoder: Box<dyn Codec>,
    resampler: Option<Resampler>,
    pcm: Vec<i16>,
    resampled: Vec<i16>,
    /// Last payload on the byte-level paths, decoded only if concealment
    /// is needed (so the fast path stays a table lookup).
    last: Vec<u8>,
    /// Whether `last` has been fed to the decoder's concealment history.
    primed: bool,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("path", &self.path)
            .finish()
    }
}

impl Transcoder {
    /// Creates a transcoder from payloads of `from` to payloads of `to`.
    pub fn new(from: CodecKind, to: CodecKind) -> Result<Self, CodecError> {
        let path = match (from, to) {
            (a, b) if a == b => Path::Passthrough,
            (CodecKind::Pcmu, CodecKind::Pcma) => Path::UlawToAlaw,
            (CodecKind::Pcma, CodecKind::Pcmu) => Path::AlawToUlaw,
            _ => Path::Linear,
        };
        // Codec rates are 8 or 16 kHz, which the resampler always supports.
        let resampler = if from.sample_rate() == to.sample_rate() {
            None
        } else {
            Resampler::new(from.sample_rate(), to.sample_rate()).ok()
        };
        Ok(Self {
            from,
            to,
            path,
            decoder: from.create()?,
            encoder: to.create()?,
            resampler,
            pcm: Vec::with_capacity(1920),
            resampled: Vec::with_capacity(1920),
            last: Vec::new(),
            primed: true,
        })
    }

    /// Source codec.
    pub fn from(&self) -> CodecKind {
        self.from
    }

    /// Destination codec.
    pub fn to(&self) -> CodecKind {
        self.to
    }

    /// Encodes whole encoder units of the pending PCM and keeps the rest:
    /// G.722 encodes sample pairs, Opus 20 ms frames (up to 60 ms per call),
    /// G.729 10 ms frames (all whole frames pending, no cap).
    fn encode_pending(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let src = if self.resampler.is_some() {
            &mut self.resampled
        } else {
            &mut self.pcm
        };
        let unit = self.to.frame_multiple();
        let mut whole = src.len() - src.len() % unit;
        let capped = unit > 2;
        // G.729 packets are any number of 10 ms frames.
        #[cfg(feature = "g729")]
        let capped = capped && self.to != CodecKind::G729;
        if capped && whole > 3 * unit {
            // Packet-based codecs (Opus) take at most 60 ms per packet.
            whole = 3 * unit;
        }
        if whole == 0 {
            return Ok(());
        }
        self.encoder.encode(&src[..whole], out)?;
        src.drain(..whole);
        Ok(())
    }

    /// Transcodes one payload, appending the result to `out`.
    pub fn transcode(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if self.path == Path::Linear {
            self.decoder.decode(payload, &mut self.pcm);
            return self.linear_tail(out);
        }
        match self.path {
            Path::UlawToAlaw => out.extend(payload.iter().map(|&b| g711::ulaw_to_alaw(b))),
            Path::AlawToUlaw => out.extend(payload.iter().map(|&b| g711::alaw_to_ulaw(b))),
            _ => out.extend_from_slice(payload),
        }
        self.last.clear();
        self.last.extend_from_slice(payload);
        self.primed = false;
        Ok(())
    }

    /// Produces a destination payload standing in for a lost source packet
    /// of `samples` source-rate samples, using the decoder's concealment.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if !self.primed {
            // Byte-level paths skip decoding; give the concealment its
            // history now, once per run of losses so the fade progresses.
            self.decoder.decode(&self.last, &mut self.pcm);
            self.pcm.clear();
            self.primed = true;
        }
        self.decoder.conceal(samples, &mut self.pcm);
        if self.path == Path::Linear {
            return self.linear_tail(out);
        }
        // G.711 fast paths: re-encode the concealed PCM directly.
        let pcm = std::mem::take(&mut self.pcm);
        self.encoder.encode(&pcm, out)?;
        self.pcm = pcm;
        self.pcm.clear();
        Ok(())
    }

    fn linear_tail(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if let Some(r) = &mut self.resampler {
            r.process(&self.pcm, &mut self.resampled);
            self.pcm.clear();
        }
        self.encode_pending(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{aligned_snr_db, sine};

    #[test]
    fn fast_paths_match_tables() {
        let mut t = Transcoder::new(CodecKind::Pcmu, CodecKind::Pcma).unwrap();
        let input: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        t.transcode(&input, &mut out).unwrap();
        assert_eq!(out.len(), 256);
        let mut back = Vec::new();
        Transcoder::new(CodecKind::Pcma, CodecKind::Pcmu)
            .unwrap()
            .transcode(&out, &mut back)
            .unwrap();
        // µ -> A -> µ is lossless except near zero where A-law is coarser.
        let same = input.iter().zip(&back).filter(|(a, b)| a == b).count();
        assert!(same > 200, "{same}");
        let mut p = Transcoder::new(CodecKind::G722, CodecKind::G722).unwrap();
        let mut o = Vec::new();
        p.transcode(&[1, 2, 3], &mut o).unwrap();
        assert_eq!(o, [1, 2, 3]);
    }

    #[test]
    fn every_pair_preserves_a_tone() {
        for &from in CodecKind::ALL {
            for &to in CodecKind::ALL {
                let mut src = from.create().unwrap();
                let mut sink = to.create().unwrap();
                let rate = from.sample_rate();
                let x = sine(1000.0, rate, rate as usize, 8000.0);
                let mut t = Transcoder::new(from, to).unwrap();
                let mut decoded = Vec::new();
                for frame in x.chunks(rate as usize / 50) {
                    let mut enc = Vec::new();
                    src.encode(frame, &mut enc).unwrap();
                    let mut mid = Vec::new();
                    t.transcode(&enc, &mut mid).unwrap();
                    sink.decode(&mid, &mut decoded);
                }
                let want = sine(1000.0, to.sample_rate(), decoded.len(), 8000.0);
                let skip = to.sample_rate() as usize / 10;
                let max_lag = to.sample_rate() as usize / 50;
                let (snr, _) = aligned_snr_db(&want, &decoded, max_lag, skip);
                println!("{from:?}->{to:?}: {snr:.1} dB");
                // Opus is perceptual: it keeps the tone but not the waveform
                // as closely as the waveform coders.
                let min = if from.frame_multiple() > 2 || to.frame_multiple() > 2 {
                    10.0
                } else {
                    25.0
                };
                // G.729 is CS-ACELP: about 9-11 dB on a pure tone, less in
                // tandem with Opus.
                #[cfg(feature = "g729")]
                let min = if from == CodecKind::G729 || to == CodecKind::G729 {
                    7.5
                } else {
                    min
                };
                assert!(snr > min, "{from:?}->{to:?}: {snr:.1} dB");
                let expect = x.len() * to.sample_rate() as usize / rate as usize;
                assert!(decoded.len().abs_diff(expect) <= 2);
            }
        }
    }

    #[test]
    fn conceal_produces_a_frame() {
        for (from, to, n) in [
            (CodecKind::Pcmu, CodecKind::G722, 80),
            (CodecKind::Pcmu, CodecKind::Pcma, 160),
        ] {
            let mut t = Transcoder::new(from, to).unwrap();
            let mut out = Vec::new();
            t.transcode(&[0x10; 160], &mut out).unwrap();
            out.clear();
            t.conceal(160, &mut out).unwrap();
            assert!(out.len().abs_diff(n * to.sample_rate() as usize / 8000) <= 2);
            if to == CodecKind::Pcma {
                // Concealment replays the loud last frame, not silence.
                assert!(out.iter().all(|&b| g711::alaw_to_linear(b) < -1000));
            }
        }
    }
}
