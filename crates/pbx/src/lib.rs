//! PBX logic, written as sans-IO state machines.
//!
//! Each feature is a module that takes events with an explicit time and
//! returns what to do; the server crate owns sockets, tasks, the clock and
//! the database, and applies the returned changes.
//!
//! - [`registrar`]: REGISTER handling and the location service
//!   (RFC 3261 §10, RFC 5626 outbound basics, RFC 3327 Path).
//! - [`guard`]: brute-force protection: failure counting per source and
//!   per username, temporary blocks, trusted networks.
//! - [`dialplan`]: ordered rules from dialed number to routing decision,
//!   with permission classes and number rewriting.
//! - [`trunk`]: outbound registration of SIP trunks with digest
//!   authentication (RFC 3261 §10.2, RFC 7616).
//! - [`call`]: the back-to-back user agent of one call: forking, CANCEL,
//!   BYE, re-INVITE forwarding, media anchoring by SDP rewriting.
//! - [`session_timer`]: session timers for one dialog leg (RFC 4028).

pub mod call;
pub mod dialplan;
pub mod guard;
pub mod registrar;
pub mod session_timer;
pub mod trunk;

/// Milliseconds since the Unix epoch: the time input of the cores that
/// persist state (bindings must survive a restart, so they carry wall time).
pub type UnixMs = u64;
