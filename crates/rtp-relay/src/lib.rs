//! Tokio shell for media anchored on the PBX.
//!
//! - [`pool`]: RTP/RTCP port pairs (even RTP port, RTCP on the next odd one,
//!   RFC 3550 section 11) bound from a configured range and returned when
//!   the allocation is dropped.
//! - [`session`]: one call's media: two legs, each a socket pair and a
//!   sans-IO [`media::rtp::RtpRelay`] for what arrives on it, driven by one
//!   tokio task per session.
//! - [`quality`]: what each phone reports in RTCP about the media it
//!   receives (loss, jitter) and the PBX↔phone round-trip time, per leg.
//! - [`transcode`]: the [`PacketTransform`] converting each RTP packet
//!   between the codecs of legs that share none.
//!
//! The protocol logic (latching, SSRC/sequence continuity, media timeout)
//! lives in `media::rtp::relay`; this crate only owns sockets, tasks and the
//! real clock.

pub mod pool;
pub mod quality;
pub mod session;
pub mod transcode;

pub use pool::{PortLease, PortPair, PortPool, PortRange};
pub use quality::{RtcpMonitor, RtcpQuality};
pub use rtp_kernel::KernelForwarder;
pub use session::{
    Leg, LegSetup, LegStats, PacketTransform, RelaySession, SessionEvent, SessionStats,
};
pub use transcode::{PayloadFormat, Transcode, TranscodeCounters, TranscodeStats};

use std::net::IpAddr;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every port pair of the range is allocated or failed to bind.
    #[error("no free RTP port pair on {ip} in {range}; widen the range or release sessions")]
    Exhausted {
        /// The address the pool binds on.
        ip: IpAddr,
        /// The configured range.
        range: PortRange,
    },
    /// The range holds no even/odd pair.
    #[error("port range {0} holds no even/odd RTP/RTCP pair")]
    EmptyRange(PortRange),
    /// A socket operation failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}
