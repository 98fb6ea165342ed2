//! RTP and RTCP for media anchored on the PBX, sans-IO.
//!
//! - [`packet`]: zero-copy RTP header view, writer and in-place rewrite
//!   (RFC 3550 section 5).
//! - [`rtcp`]: compound RTCP parsing and SR/RR/SDES building (RFC 3550
//!   section 6, RFC 4585 feedback kept raw), RTP/RTCP demultiplexing
//!   (RFC 5761).
//! - [`stats`]: receive statistics, jitter and round-trip time (RFC 3550
//!   Appendix A).
//! - [`relay`]: latching, SSRC/sequence continuity and media timeout of one
//!   relayed stream direction.

pub mod packet;
pub mod relay;
pub mod rtcp;
pub mod rtcp_translate;
pub mod stats;

pub use packet::{Extension, RtpError, RtpHeader, RtpPacket, RtpPacketMut};
pub use relay::{
    Action, DropReason, LatchPolicy, RelayConfig, RelayCounters, RelayEvent, RtpRelay,
};
pub use rtcp::{Compound, NtpTime, ReportBlock, RtcpError, RtcpPacket, SenderInfo, is_rtcp};
pub use rtcp_translate::{ReceivedStream, RtcpTranslation, TimestampMap};
pub use stats::{ReceiveStats, RttEstimator, round_trip_time};
