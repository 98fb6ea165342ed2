//! Sans-IO media engine for the PBX.
//!
//! Everything here is a pure computation or a state machine: no sockets, no
//! threads, no clocks. Time enters as an argument (`std::time::Instant` or a
//! sample position) and effects are returned to the caller.
//!
//! Modules:
//! - [`codec`]: the [`codec::Codec`] trait, G.711 (ITU-T G.711), G.722
//!   (ITU-T G.722 SB-ADPCM) and, with the default `opus` feature, Opus
//!   through libopus (RFC 6716, RFC 7587).
//! - [`resample`]: rational polyphase windowed-sinc resampler (8/16/48 kHz).
//! - [`transcode`]: decode, resample, encode between any two codecs.
//! - [`dtmf`]: RFC 4733 telephone-events, SIP INFO dtmf-relay, Goertzel detector.
//! - [`tone`]: call-progress tones by country (ITU-T E.180).
//! - [`jitter`]: adaptive jitter buffer.
//! - [`wav`]: WAV prompt reader and crash-safe recording writer.
//! - [`mixer`]: mix-minus conference mixer.
//! - [`rtp`]: RTP/RTCP packets, receive statistics and the relay state of
//!   one call leg (RFC 3550, RFC 5761).
//! - [`prompts`]: built-in voice prompts (`prompts/` at the repository root),
//!   sequencing, numbers and frame-by-frame playback.

#![deny(missing_docs)]

pub mod codec;
pub mod dtmf;
pub mod jitter;
pub mod mixer;
pub mod prompts;
pub mod resample;
pub mod rtp;
pub mod tone;
pub mod transcode;
pub mod wav;

#[cfg(test)]
mod testutil;
