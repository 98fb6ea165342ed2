//! What offer/answer produces (RFC 3264 §6, §7): the negotiated streams and
//! the reasons a stream or a whole offer or answer was refused.

use std::net::SocketAddr;

use super::model::{Direction, EventRanges, RtpMap, SessionDescription};

/// The RFC 4733 payload negotiated for a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub payload_type: u8,
    pub events: EventRanges,
}

/// The outcome of offer/answer for one accepted `m=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedStream {
    /// Position of the `m=` line.
    pub index: usize,
    pub media: String,
    /// The first common codec, with the payload type used on the wire.
    pub codec: RtpMap,
    pub fmtp: Option<String>,
    pub telephone_event: Option<TelephoneEvent>,
    pub remote: SocketAddr,
    /// Our direction: whether we may send and should expect to receive.
    pub direction: Direction,
    pub ptime: Option<u32>,
    pub rtcp_mux: bool,
}

/// Why one offered `m=` line was answered with port 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("stream {0} was disabled by the offerer (port 0)")]
    Disabled(usize),
    #[error("stream {index}: media type {media:?} not supported")]
    UnsupportedMedia { index: usize, media: String },
    #[error("stream {index}: transport {protocol:?} not supported")]
    UnsupportedProtocol { index: usize, protocol: String },
    #[error("stream {0}: no codec in common")]
    NoCommonCodec(usize),
    #[error("stream {0}: no usable IP address in c=")]
    NoAddress(usize),
}

/// Why an offer cannot be answered at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// Every stream was rejected: respond 488 Not Acceptable Here.
    #[error("no acceptable media stream: {0:?}")]
    NotAcceptable(Vec<RejectReason>),
}

impl OfferError {
    /// The SIP status for the INVITE/UPDATE carrying the offer (RFC 3261 §21.4.26).
    pub fn status_code(&self) -> u16 {
        488
    }
}

/// Why an answer to our offer is unusable (RFC 3264 §6, §7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("no offer is outstanding")]
    NoPendingOffer,
    #[error("answer has {answered} m= lines, the offer had {offered}")]
    StreamCount { offered: usize, answered: usize },
    #[error("stream {0}: media type or transport differs from the offer")]
    MediaMismatch(usize),
    #[error("stream {index}: payload type {format} was not offered")]
    UnofferedFormat { index: usize, format: String },
    #[error("stream {index}: payload type {payload_type} remapped to another codec")]
    Remapped { index: usize, payload_type: u8 },
    #[error("stream {0}: no audio/video codec in the answer")]
    NoCodec(usize),
    #[error("stream {0}: no usable IP address in c=")]
    NoAddress(usize),
    #[error("stream {index}: direction {answered:?} contradicts the offered {offered:?}")]
    Direction {
        index: usize,
        offered: Direction,
        answered: Direction,
    },
}

/// An answer to send plus what was negotiated, stream by stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub sdp: SessionDescription,
    pub streams: Vec<Result<NegotiatedStream, RejectReason>>,
}
