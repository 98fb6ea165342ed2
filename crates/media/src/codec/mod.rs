//! Audio codecs behind one [`Codec`] trait.
//!
//! - [`g711`]: ITU-T G.711 µ-law (PCMU, RTP payload type 0) and A-law (PCMA,
//!   payload type 8), table driven; includes a direct µ-law <-> A-law byte map.
//! - [`g722`]: ITU-T G.722 sub-band ADPCM at 64 kbit/s (payload type 9),
//!   16 kHz audio with an 8 kHz RTP clock (RFC 3551 section 4.5.2).
//! - `opus` (cargo feature `opus`): Opus (RFC 6716) through libopus, RTP
//!   payload format of RFC 7587 (48 kHz clock, dynamic payload type).
//! - `g729` (cargo feature `g729`, **off by default**): G.729 Annex A
//!   (payload type 18) through the system bcg729 library. bcg729 is GPL-3:
//!   a binary built with this feature must be distributed under the GPL-3.
//!
//! Codecs work on whole frames: encode takes 16-bit linear PCM at
//! [`Codec::sample_rate`], decode returns the same. Neither ever panics on
//! input: odd payload lengths are decoded as far as they make sense.

pub mod g711;
pub mod g722;
#[cfg(feature = "g729")]
pub mod g729;
#[cfg(feature = "opus")]
pub mod opus;
mod plc;

pub use g711::{Pcma, Pcmu};
pub use g722::G722;
#[cfg(feature = "g729")]
pub use g729::G729;
#[cfg(feature = "opus")]
pub use opus::Opus;
pub use plc::PitchPlc;

use thiserror::Error;

/// Errors returned by codecs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The PCM frame length does not fit the codec (e.g. odd sample count for G.722).
    #[error("invalid PCM frame length {len}: must be a multiple of {multiple}")]
    BadFrameLength {
        /// Number of samples supplied.
        len: usize,
        /// Required multiple.
        multiple: usize,
    },
    /// An encoded payload has a length the codec cannot parse (G.729:
    /// whole 10-byte frames plus an optional 2-byte SID frame).
    #[error("invalid payload length {len}: must be a multiple of {multiple}")]
    BadPayloadLength {
        /// Number of bytes supplied.
        len: usize,
        /// Frame size in bytes.
        multiple: usize,
    },
    /// The codec name is not known to [`CodecKind::from_name`].
    #[error("unknown codec {0:?}")]
    Unknown(String),
    /// The codec library reported an error.
    #[error("codec library error: {0}")]
    Library(String),
}

/// The codecs this crate implements, for negotiation and construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 64 kbit/s.
    G722,
    /// Opus, mono, 48 kHz (feature `opus`).
    #[cfg(feature = "opus")]
    Opus,
    /// G.729 Annex A, 8 kbit/s (feature `g729`; links GPL-3 bcg729).
    #[cfg(feature = "g729")]
    G729,
}

impl CodecKind {
    /// All implemented codecs.
    pub const ALL: &'static [CodecKind] = &[
        CodecKind::Pcmu,
        CodecKind::Pcma,
        CodecKind::G722,
        #[cfg(feature = "opus")]
        CodecKind::Opus,
        #[cfg(feature = "g729")]
        CodecKind::G729,
    ];

    /// Encoding name as written in an SDP `a=rtpmap` line.
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::G722 => "G722",
            #[cfg(feature = "opus")]
            CodecKind::Opus => "opus",
            #[cfg(feature = "g729")]
            CodecKind::G729 => "G729",
        }
    }

    /// Looks a codec up by its rtpmap encoding name (case-insensitive).
    pub fn from_name(name: &str) -> Result<Self, CodecError> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| CodecError::Unknown(name.to_owned()))
    }

    /// Default RTP payload type: static for G.711, G.722 and G.729 (RFC 3551
    /// table 4), the conventional dynamic 111 for Opus.
    pub fn payload_type(self) -> u8 {
        match self {
            CodecKind::Pcmu => 0,
            CodecKind::Pcma => 8,
            CodecKind::G722 => 9,
            #[cfg(feature = "opus")]
            CodecKind::Opus => 111,
            #[cfg(feature = "g729")]
            CodecKind::G729 => 18,
        }
    }

    /// Channel count written in the rtpmap line (Opus is always `/2`,
    /// RFC 7587 section 7, though this crate encodes mono).
    pub fn rtpmap_channels(self) -> u8 {
        match self {
            #[cfg(feature = "opus")]
            CodecKind::Opus => 2,
            _ => 1,
        }
    }

    /// The value of an SDP `a=rtpmap:` attribute after the payload type,
    /// e.g. `PCMU/8000`, `G722/8000`, `opus/48000/2` (RFC 4566 section 6).
    pub fn rtpmap(self) -> String {
        match self.rtpmap_channels() {
            1 => format!("{}/{}", self.name(), self.rtp_clock_rate()),
            ch => format!("{}/{}/{ch}", self.name(), self.rtp_clock_rate()),
        }
    }

    /// Encoder input lengths must be a multiple of this many samples.
    pub fn frame_multiple(self) -> usize {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => 1,
            CodecKind::G722 => 2,
            // 20 ms at 48 kHz; the encoder also takes 2.5, 5 and 10 ms.
            #[cfg(feature = "opus")]
            CodecKind::Opus => 960,
            // 10 ms frames; a 20 ms packet is two of them.
            #[cfg(feature = "g729")]
            CodecKind::G729 => 80,
        }
    }

    /// Audio sampling rate of the PCM the codec consumes and produces.
    pub fn sample_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => 8000,
            CodecKind::G722 => 16000,
            #[cfg(feature = "opus")]
            CodecKind::Opus => 48000,
            #[cfg(feature = "g729")]
            CodecKind::G729 => 8000,
        }
    }

    /// RTP clock rate (8000 for G.722 by historical error, RFC 3551 4.5.2).
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            #[cfg(feature = "opus")]
            CodecKind::Opus => 48000,
            _ => 8000,
        }
    }

    /// Creates a fresh codec instance (encoder and decoder state).
    pub fn create(self) -> Result<Box<dyn Codec>, CodecError> {
        Ok(match self {
            CodecKind::Pcmu => Box::new(Pcmu::new()),
            CodecKind::Pcma => Box::new(Pcma::new()),
            CodecKind::G722 => Box::new(G722::new()),
            #[cfg(feature = "opus")]
            CodecKind::Opus => Box::new(Opus::new()?),
            #[cfg(feature = "g729")]
            CodecKind::G729 => Box::new(G729::new()?),
        })
    }
}

/// A speech codec: an encoder and a decoder with their state.
pub trait Codec: Send {
    /// Which codec this is.
    fn kind(&self) -> CodecKind;

    /// Encoding name as written in an SDP `a=rtpmap` line.
    fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Default (static) RTP payload type.
    fn payload_type(&self) -> u8 {
        self.kind().payload_type()
    }

    /// PCM sample rate in Hz.
    fn sample_rate(&self) -> u32 {
        self.kind().sample_rate()
    }

    /// RTP timestamp clock rate in Hz.
    fn rtp_clock_rate(&self) -> u32 {
        self.kind().rtp_clock_rate()
    }

    /// Encodes one frame of PCM, appending the payload to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Decodes one payload, appending PCM to `out`. Never fails: every byte
    /// string is a valid (if odd) payload for the codecs implemented here.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>);

    /// Packet loss concealment: appends `samples` samples (at
    /// [`Codec::sample_rate`]) standing in for a lost frame. Returns false if the codec has nothing better than silence.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_metadata() {
        assert_eq!(CodecKind::Pcmu.rtpmap(), "PCMU/8000");
        assert_eq!(CodecKind::Pcma.rtpmap(), "PCMA/8000");
        assert_eq!(CodecKind::G722.rtpmap(), "G722/8000");
        assert_eq!(CodecKind::from_name("g722").unwrap(), CodecKind::G722);
        #[cfg(not(feature = "g729"))]
        assert!(CodecKind::from_name("G729").is_err());
        for &k in CodecKind::ALL {
            let c = k.create().unwrap();
            assert_eq!(c.kind(), k);
            assert_eq!(c.name(), k.name());
            assert_eq!(c.payload_type(), k.payload_type());
            assert_eq!(c.sample_rate(), k.sample_rate());
            assert_eq!(c.rtp_clock_rate(), k.rtp_clock_rate());
        }
        #[cfg(feature = "opus")]
        assert_eq!(CodecKind::Opus.rtpmap(), "opus/48000/2");
    }
}
