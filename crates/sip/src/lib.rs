//! Sans-IO SIP stack (RFC 3261).
//!
//! This crate owns no sockets, tasks or clocks. It turns bytes into typed
//! [`Message`]s and back, and runs the transaction state machines
//! ([`transaction`]) on an explicit clock so that tests can jump through
//! virtual time. The server crate wraps it with tokio transports.
//!
//! Layout:
//! - [`message`]: the message model (requests, responses, headers, bodies),
//!   the parser (RFC 3261 §7, §25) and the serializer.
//! - [`uri`]: SIP, SIPS, tel and other absolute URIs (RFC 3261 §19, RFC 3966).
//! - [`header`]: typed views of the headers the stack interprets (Via,
//!   name-addr headers, CSeq, ...), parsed on demand from the raw value.
//! - [`framing`]: Content-Length framing for stream transports (§18.3).
//! - [`validate`]: the request checks a UAS/proxy makes before acting, each
//!   mapped to one status code in one place.
//! - [`transaction`]: client and server transactions (§17, RFC 6026).
//! - [`sdp`]: SDP model, parser, serializer and offer/answer (RFC 8866, RFC 3264).

pub mod auth;
pub mod build;
pub mod framing;
pub mod header;
pub mod message;
pub mod scan;
pub mod sdp;
pub mod transaction;
pub mod uri;
pub mod validate;

pub use header::HeaderName;
pub use message::{Headers, Message, Method, ParseError, Request, Response, StatusCode};
pub use uri::Uri;
