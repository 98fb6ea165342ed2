//! WAV (RIFF WAVE) files: prompts in, recordings out.
//!
//! Format per the Microsoft/IBM RIFF specification (1991) and the
//! WAVE_FORMAT_EXTENSIBLE addendum: a `RIFF` header, a `fmt ` chunk and a
//! `data` chunk. [`reader`] accepts 8/16/24/32-bit linear PCM, G.711 A-law
//! and µ-law (format tags 6 and 7), any channel count and rate, and returns
//! mono at 8 or 16 kHz for playback. [`writer`] records a call as stereo
//! (one leg per channel) or mono (legs mixed) and rewrites the RIFF and data
//! sizes at every flush, so a crash leaves a valid file up to the last flush.

pub mod reader;
pub mod writer;

pub use reader::{WavInfo, read_prompt};
pub use writer::{Layout, WavWriter};

use thiserror::Error;

/// Errors reading or writing WAV files.
#[derive(Debug, Error)]
pub enum WavError {
    /// Not a RIFF/WAVE file.
    #[error("not a RIFF WAVE file")]
    NotWave,
    /// A chunk header or the `fmt ` chunk is cut short.
    #[error("truncated {0} chunk")]
    Truncated(&'static str),
    /// The file has no `fmt ` or no `data` chunk.
    #[error("missing {0} chunk")]
    MissingChunk(&'static str),
    /// Encoding not supported (format tag, bit depth).
    #[error("unsupported WAV encoding: format {format}, {bits} bits")]
    Unsupported {
        /// Format tag.
        format: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// Zero channels or zero sample rate.
    #[error("invalid fmt chunk: {channels} channels at {rate} Hz")]
    BadFormat {
        /// Channel count.
        channels: u16,
        /// Sample rate.
        rate: u32,
    },
    /// The requested output rate cannot be produced.
    #[error(transparent)]
    Resample(#[from] crate::resample::ResampleError),
    /// I/O error from the underlying writer.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests;
