//! Session Description Protocol (RFC 8866, formerly RFC 4566) and the
//! offer/answer model (RFC 3264), sans-IO.
//!
//! - [`model`]: the description tree, typed attribute views and the
//!   serializer (CRLF, RFC 8866 §5 order, unknown lines kept in place).
//! - [`parse`]: the bounded, non-panicking parser with line-numbered errors.
//! - [`outcome`]: negotiated streams and the offer/answer error enums.
//! - [`negotiate`]: [`OfferAnswer`], one side of an exchange: offers,
//!   answers, answer checks, hold and resume.

pub mod model;
pub mod negotiate;
pub mod outcome;
pub mod parse;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_negotiate;

pub use model::{
    AddressType, Attribute, Bandwidth, Connection, Direction, EventRanges, Fmtp, MediaDescription,
    Origin, RawLine, Rtcp, RtpMap, SessionDescription, Timing, static_payload,
};
pub use negotiate::{
    Answer, AnswerError, CodecOrder, LocalCodec, LocalMedia, NegotiatedStream, OfferAnswer,
    OfferError, RejectReason, TelephoneEvent,
};
pub use parse::{MAX_SDP_LEN, MAX_SDP_LINES, SdpError};
