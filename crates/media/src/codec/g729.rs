//! G.729 Annex A (CS-ACELP, 8 kbit/s) through the system bcg729 library.
//!
//! **Licence: bcg729 is GPL-3.** This module is compiled only with the
//! `g729` cargo feature, which is off by default. A binary built with the
//! feature links bcg729 and must therefore be distributed under the GPL-3;
//! the default build (MIT OR Apache-2.0) contains nothing of it. Enable it
//! with `cargo build --release --features media/g729` after installing
//! Debian's `libbcg729-dev`; the build script fails with an explicit message
//! if the library is missing.
//!
//! RTP payload format of RFC 3551 section 4.5.6: payload type 18,
//! `G729/8000`, 8 kHz PCM. One G.729 frame is 10 ms (80 samples, 10 bytes);
//! the encoder takes any whole number of frames (the usual 20 ms packet is
//! 160 samples -> 20 bytes). The decoder takes zero or more 10-byte frames
//! optionally followed by one 2-byte Annex B SID frame (comfort noise).
//! Loss concealment is the decoder's own frame-erasure handling (G.729
//! section 4.4). VAD/DTX is not enabled on the encoder side: every frame is
//! a full speech frame.

use std::ptr::NonNull;

use super::{Codec, CodecError, CodecKind};

/// PCM sample rate and RTP clock rate.
pub const RATE: u32 = 8000;
/// Samples in one G.729 frame (10 ms).
pub const FRAME_SAMPLES: usize = 80;
/// Bytes in one encoded G.729 speech frame.
pub const FRAME_BYTES: usize = 10;
/// Bytes in one Annex B SID (comfort noise) frame.
pub const SID_BYTES: usize = 2;
/// Samples in the usual 20 ms packet.
pub const PACKET_SAMPLES: usize = 160;

/// Hand-written declarations of `<bcg729/encoder.h>` and `<bcg729/decoder.h>`
/// (bcg729 1.1.1). The build script links the library.
mod ffi {
    use std::marker::{PhantomData, PhantomPinned};

    /// Opaque `bcg729EncoderChannelContextStruct`.
    #[repr(C)]
    pub struct EncoderCtx {
        _data: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    /// Opaque `bcg729DecoderChannelContextStruct`.
    #[repr(C)]
    pub struct DecoderCtx {
        _data: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    unsafe extern "C" {
        pub fn initBcg729EncoderChannel(enable_vad: u8) -> *mut EncoderCtx;
        pub fn closeBcg729EncoderChannel(ctx: *mut EncoderCtx);
        pub fn bcg729Encoder(
            ctx: *mut EncoderCtx,
            input_frame: *const i16,
            bit_stream: *mut u8,
            bit_stream_length: *mut u8,
        );
        pub fn initBcg729DecoderChannel() -> *mut DecoderCtx;
        pub fn closeBcg729DecoderChannel(ctx: *mut DecoderCtx);
        pub fn bcg729Decoder(
            ctx: *mut DecoderCtx,
            bit_stream: *const u8,
            bit_stream_length: u8,
            frame_erasure_flag: u8,
            sid_frame_flag: u8,
            rfc3389_payload_flag: u8,
            signal: *mut i16,
        );
    }
}

/// What one call to the bcg729 decoder is fed.
#[derive(Clone, Copy)]
enum Frame<'a> {
    Speech(&'a [u8]),
    Sid(&'a [u8]),
    Erased,
}

/// The G.729A codec: one bcg729 encoder channel and one decoder channel.
///
/// Both channels are heap contexts allocated by bcg729, owned exclusively by
/// this struct and freed in `Drop`.
pub struct G729 {
    encoder: NonNull<ffi::EncoderCtx>,
    decoder: NonNull<ffi::DecoderCtx>,
}

// SAFETY: the two contexts are plain heap memory allocated by bcg729 and
// reachable only through this struct (never aliased or exposed). bcg729
// keeps all per-channel state in them and has no thread-local state, global
// mutable state or thread affinity, so moving the owner to another thread
// is sound. Every call into the library goes through `&mut self`, so a
// context is never used from two threads at once (G729 is deliberately not
// `Sync`).
unsafe impl Send for G729 {}

impl std::fmt::Debug for G729 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("G729").finish_non_exhaustive()
    }
}

impl Drop for G729 {
    fn drop(&mut self) {
        // SAFETY: both pointers came from the matching init function, are
        // non-null, and are freed exactly once, here.
        unsafe {
            ffi::closeBcg729EncoderChannel(self.encoder.as_ptr());
            ffi::closeBcg729DecoderChannel(self.decoder.as_ptr());
        }
    }
}

/// True if `len` bytes form a valid RFC 3551 G.729 payload: whole 10-byte
/// frames, optionally followed by one 2-byte SID frame.
pub fn valid_payload_len(len: usize) -> bool {
    matches!(len % FRAME_BYTES, 0 | SID_BYTES)
}

impl G729 {
    /// Creates an encoder/decoder pair (encoder VAD/DTX off).
    pub fn new() -> Result<Self, CodecError> {
        // SAFETY: plain constructors with no preconditions; NULL (allocation
        // failure) is checked below.
        let encoder = NonNull::new(unsafe { ffi::initBcg729EncoderChannel(0) })
            .ok_or_else(|| CodecError::Library("bcg729 encoder allocation failed".into()))?;
        let Some(decoder) = NonNull::new(unsafe { ffi::initBcg729DecoderChannel() }) else {
            // SAFETY: `encoder` is valid and not stored anywhere else.
            unsafe { ffi::closeBcg729EncoderChannel(encoder.as_ptr()) };
            return Err(CodecError::Library(
                "bcg729 decoder allocation failed".into(),
            ));
        };
        Ok(Self { encoder, decoder })
    }

    /// Decodes one payload, rejecting lengths that are not whole 10-byte
    /// frames plus an optional 2-byte SID frame. On error nothing is
    /// appended and the decoder state is unchanged.
    pub fn try_decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        if !valid_payload_len(payload.len()) {
            return Err(CodecError::BadPayloadLength {
                len: payload.len(),
                multiple: FRAME_BYTES,
            });
        }
        let (speech, sid) = payload.split_at(payload.len() - payload.len() % FRAME_BYTES);
        for frame in speech.chunks_exact(FRAME_BYTES) {
            self.decode_frame(Frame::Speech(frame), out);
        }
        if !sid.is_empty() {
            self.decode_frame(Frame::Sid(sid), out);
        }
        Ok(())
    }

    /// Runs the decoder on one 10 ms frame, appending 80 samples.
    fn decode_frame(&mut self, frame: Frame<'_>, out: &mut Vec<i16>) {
        // The library always gets a full 10-byte buffer, whatever it reads.
        let mut bits = [0u8; FRAME_BYTES];
        let (len, erased, sid) = match frame {
            Frame::Speech(b) => {
                bits.copy_from_slice(b);
                (FRAME_BYTES, 0u8, 0)
            }
            Frame::Sid(b) => {
                bits[..SID_BYTES].copy_from_slice(b);
                (SID_BYTES, 0, 1)
            }
            Frame::Erased => (FRAME_BYTES, 1, 0),
        };
        let start = out.len();
        out.resize(start + FRAME_SAMPLES, 0);
        // SAFETY: `decoder` is a live context owned by `self`; `bits` holds
        // 10 readable bytes (at least `len`); the output slice has exactly
        // the 80 samples the decoder writes.
        unsafe {
            ffi::bcg729Decoder(
                self.decoder.as_ptr(),
                bits.as_ptr(),
                len as u8,
                erased,
                sid,
                0,
                out[start..].as_mut_ptr(),
            );
        }
    }
}

impl Codec for G729 {
    fn kind(&self) -> CodecKind {
        CodecKind::G729
    }

    /// Encodes any non-zero whole number of 10 ms frames (160 samples for
    /// the usual 20 ms packet -> 20 bytes).
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if pcm.is_empty() || !pcm.len().is_multiple_of(FRAME_SAMPLES) {
            return Err(CodecError::BadFrameLength {
                len: pcm.len(),
                multiple: FRAME_SAMPLES,
            });
        }
        for frame in pcm.chunks_exact(FRAME_SAMPLES) {
            let mut bits = [0u8; FRAME_BYTES];
            let mut len = 0u8;
            // SAFETY: `encoder` is a live context owned by `self`; `frame`
            // has the 80 samples read, `bits` room for the at most 10
            // bytes written, `len` is a valid out-pointer.
            unsafe {
                ffi::bcg729Encoder(
                    self.encoder.as_ptr(),
                    frame.as_ptr(),
                    bits.as_mut_ptr(),
                    &mut len,
                );
            }
            // With VAD off every frame is a 10-byte speech frame.
            out.extend_from_slice(&bits[..usize::from(len).min(FRAME_BYTES)]);
        }
        Ok(())
    }

    /// Decodes whole frames and a trailing SID frame. A payload of invalid
    /// length is treated as corrupt and concealed like a lost packet of
    /// about the same duration (at least 10 ms); see [`G729::try_decode`]
    /// to reject it instead.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        if self.try_decode(payload, out).is_err() {
            let frames = payload.len().div_ceil(FRAME_BYTES).max(1);
            self.conceal(frames * FRAME_SAMPLES, out);
        }
    }

    /// Runs the decoder's frame-erasure concealment for `samples` samples
    /// (a whole number of 10 ms frames is synthesised; the last one is cut).
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> bool {
        let start = out.len();
        for _ in 0..samples.div_ceil(FRAME_SAMPLES) {
            self.decode_frame(Frame::Erased, out);
        }
        out.truncate(start + samples);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{aligned_snr_db, sine};
    use crate::transcode::Transcoder;

    /// 500 Hz + 1 kHz mix, one second at 8 kHz, peak about 12000.
    fn two_tones(len: usize) -> Vec<i16> {
        let a = sine(500.0, RATE, len, 6000.0);
        let b = sine(1000.0, RATE, len, 6000.0);
        a.iter().zip(&b).map(|(x, y)| x + y).collect()
    }

    fn round_trip(x: &[i16]) -> Vec<i16> {
        let mut c = G729::new().unwrap();
        let mut y = Vec::new();
        for frame in x.chunks_exact(PACKET_SAMPLES) {
            let mut p = Vec::new();
            c.encode(frame, &mut p).unwrap();
            assert_eq!(p.len(), 20, "20 bytes per 20 ms");
            c.decode(&p, &mut y);
        }
        y
    }

    #[test]
    fn round_trip_keeps_two_tones() {
        let x = two_tones(RATE as usize * 2);
        let y = round_trip(&x);
        assert_eq!(y.len(), x.len());
        let (snr, lag) = aligned_snr_db(&x, &y, 160, 1600);
        println!("g729 two-tone SNR {snr:.1} dB, delay {lag} samples");
        // Measured 8.7 dB with bcg729 1.1.1; the threshold leaves a margin.
        assert!(snr > 7.5, "SNR {snr:.1} dB");
    }

    /// Three incommensurate tones under a 3 Hz envelope: not periodic, so
    /// the cross-correlation finds the true codec delay.
    fn speechlike(len: usize) -> Vec<i16> {
        let a = sine(310.0, RATE, len, 4000.0);
        let b = sine(870.0, RATE, len, 3000.0);
        let c = sine(1430.0, RATE, len, 2000.0);
        let env = sine(3.0, RATE, len, 4000.0);
        (0..len)
            .map(|i| {
                let g = 0.6 + 0.4 * f64::from(env[i]) / 4000.0;
                ((f64::from(a[i]) + f64::from(b[i]) + f64::from(c[i])) * g) as i16
            })
            .collect()
    }

    #[test]
    fn round_trip_keeps_a_speechlike_signal() {
        let x = speechlike(RATE as usize * 2);
        let y = round_trip(&x);
        let (snr, lag) = aligned_snr_db(&x, &y, 400, 1600);
        println!("g729 speech-like SNR {snr:.1} dB, delay {lag} samples");
        // Measured 8.8 dB at a 12-sample delay with bcg729 1.1.1.
        assert!(snr > 7.5, "SNR {snr:.1} dB");
    }

    #[test]
    fn round_trip_keeps_a_tone() {
        let x = sine(1000.0, RATE, RATE as usize * 2, 8000.0);
        let y = round_trip(&x);
        let (snr, lag) = aligned_snr_db(&x, &y, 160, 1600);
        println!("g729 1 kHz SNR {snr:.1} dB, delay {lag} samples");
        // Measured 11.0 dB with bcg729 1.1.1.
        assert!(snr > 9.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn bad_lengths_are_rejected() {
        let mut c = G729::new().unwrap();
        let mut p = Vec::new();
        for n in [0, 1, 79, 81, 100, 159, 161] {
            assert_eq!(
                c.encode(&vec![0; n], &mut p),
                Err(CodecError::BadFrameLength {
                    len: n,
                    multiple: 80
                })
            );
        }
        assert!(p.is_empty());
        c.encode(&[0; 80], &mut p).unwrap();
        assert_eq!(p.len(), 10);
        c.encode(&[0; 240], &mut p).unwrap();
        assert_eq!(p.len(), 40);

        let mut out = Vec::new();
        for n in [1, 3, 9, 11, 15, 21] {
            assert!(c.try_decode(&vec![0x55; n], &mut out).is_err());
            assert!(out.is_empty());
        }
        // The infallible path conceals instead: 3 bytes -> one 10 ms frame.
        c.decode(&[0xFF; 3], &mut out);
        assert_eq!(out.len(), 80);
        out.clear();
        c.decode(&[0xA5; 25], &mut out);
        assert_eq!(out.len(), 240);
        out.clear();
        c.decode(&[], &mut out);
        assert!(out.is_empty());
        // Any multiple of 10 bytes, garbage or not, decodes.
        c.decode(&[0xA5; 30], &mut out);
        assert_eq!(out.len(), 240);
    }

    #[test]
    fn sid_frame_gives_comfort_noise_frame() {
        let mut c = G729::new().unwrap();
        let mut out = Vec::new();
        let x = two_tones(800);
        let mut p = Vec::new();
        c.encode(&x, &mut p).unwrap();
        c.decode(&p, &mut out);
        out.clear();
        // 20 bytes of speech + a 2-byte SID frame = 30 ms.
        c.try_decode(&[p[..20].to_vec(), vec![0x12, 0x34]].concat(), &mut out)
            .unwrap();
        assert_eq!(out.len(), 240);
        out.clear();
        c.try_decode(&[0x12, 0x34], &mut out).unwrap();
        assert_eq!(out.len(), 80);
        let rms = (out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 80.0).sqrt();
        // The SID energy index (bits 10-14) drives the comfort noise level.
        out.clear();
        for _ in 0..10 {
            c.try_decode(&[0x12, 0x00], &mut out).unwrap();
        }
        let quiet = out[720..]
            .iter()
            .map(|&s| f64::from(s).powi(2))
            .sum::<f64>()
            / 80.0;
        println!(
            "g729 SID comfort noise rms {rms:.1} (energy index 26), {:.1} (0)",
            quiet.sqrt()
        );
        assert!(quiet.sqrt() < rms);
    }

    #[test]
    fn concealment_produces_a_frame() {
        let mut c = G729::new().unwrap();
        let x = two_tones(1600);
        let mut p = Vec::new();
        c.encode(&x, &mut p).unwrap();
        let mut out = Vec::new();
        c.decode(&p, &mut out);
        out.clear();
        assert!(c.conceal(160, &mut out));
        assert_eq!(out.len(), 160);
        // Concealment extrapolates the tones rather than going silent.
        let energy: f64 = out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 160.0;
        assert!(energy.sqrt() > 500.0, "rms {}", energy.sqrt());
        out.clear();
        assert!(c.conceal(100, &mut out));
        assert_eq!(out.len(), 100);
    }

    #[test]
    fn transcodes_to_and_from_pcmu() {
        let x = two_tones(RATE as usize);
        // PCMU -> G.729 -> PCMU.
        let mut pcmu = CodecKind::Pcmu.create().unwrap();
        let mut to_g729 = Transcoder::new(CodecKind::Pcmu, CodecKind::G729).unwrap();
        let mut to_pcmu = Transcoder::new(CodecKind::G729, CodecKind::Pcmu).unwrap();
        let mut y = Vec::new();
        for frame in x.chunks_exact(PACKET_SAMPLES) {
            let mut u = Vec::new();
            pcmu.encode(frame, &mut u).unwrap();
            let mut g = Vec::new();
            to_g729.transcode(&u, &mut g).unwrap();
            assert_eq!(g.len(), 20);
            let mut back = Vec::new();
            to_pcmu.transcode(&g, &mut back).unwrap();
            assert_eq!(back.len(), 160);
            pcmu.decode(&back, &mut y);
        }
        let (snr, lag) = aligned_snr_db(&x, &y, 160, 1600);
        println!("PCMU->G729->PCMU SNR {snr:.1} dB, delay {lag}");
        // Measured 8.8 dB with bcg729 1.1.1.
        assert!(snr > 7.5, "SNR {snr:.1} dB");
        let mut lost = Vec::new();
        to_pcmu.conceal(160, &mut lost).unwrap();
        assert_eq!(lost.len(), 160);
    }

    #[test]
    fn metadata() {
        let c = G729::new().unwrap();
        assert_eq!(c.payload_type(), 18);
        assert_eq!(c.sample_rate(), 8000);
        assert_eq!(c.rtp_clock_rate(), 8000);
        assert_eq!(CodecKind::G729.rtpmap(), "G729/8000");
        assert_eq!(CodecKind::from_name("g729").unwrap(), CodecKind::G729);
        fn is_send<T: Send>() {}
        is_send::<G729>();
    }
}
