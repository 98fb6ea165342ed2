//! SIP transactions (RFC 3261 §17, with the RFC 6026 corrections), sans-IO.
//!
//! A [`TransactionLayer`] owns every client and server transaction, keyed
//! per §17.1.3 / §17.2.3 ([`TransactionKey`]). It never touches a socket
//! or a clock. The caller (the transport shell) feeds it:
//! - received messages: [`TransactionLayer::handle_request`],
//!   [`TransactionLayer::handle_response`] (or
//!   [`TransactionLayer::handle_message`]),
//! - the time: [`TransactionLayer::handle_timeout`] whenever
//!   [`TransactionLayer::poll_timeout`] is reached,
//! - transport failures: [`TransactionLayer::handle_transport_error`];
//!
//! and the transaction user (TU: UA core, dialogs) feeds it:
//! - [`TransactionLayer::send_request`] (starts a client transaction),
//! - [`TransactionLayer::send_response`] (answers a server transaction),
//! - [`TransactionLayer::send_stateless`] (ACK for 2xx, 2xx retransmitted
//!   after the transaction ended).
//!
//! Then the caller drains [`TransactionLayer::poll_transmit`] (bytes to
//! send) and [`TransactionLayer::poll_event`] (what the TU must see).
//!
//! Choices the RFC leaves open:
//! - An INVITE server transaction sends `100 Trying` on its own 200 ms after
//!   the INVITE if the TU has not sent any response by then (§17.2.1), and
//!   at once if the INVITE is retransmitted before that.
//! - CANCEL (§9.2) is answered by the layer: `200 OK` when it matches an
//!   INVITE server transaction (then, if that INVITE has no final response
//!   yet, [`Event::Cancelled`] asks the TU to answer it with 487), `481`
//!   otherwise. CANCEL of non-INVITE requests is answered 481.
//! - Responses go back to the address and transport the request came from
//!   (symmetric response routing, RFC 3581 style), not to the Via sent-by.
//! - Timer B/F/H expiry is [`Event::Timeout`]; the TU treats it as a 408
//!   (§8.1.3.1).
//! - Responses matching no client transaction are dropped (RFC 6026 §7.3);
//!   `handle_response` reports them as [`TransactionError::NoTransaction`].
//! - After the TU sends a CANCEL, the INVITE client transaction gives up
//!   64·T1 later if no final response came (§9.1), as a Timer B timeout.
//! - Timer D is max(32 s, 64·T1) on unreliable transports.
//!
//! What stays with the TU: answering every request it receives (a server
//! transaction in Trying/Proceeding waits for it indefinitely), sending
//! CANCEL only after a provisional response (§9.1), ACKing 2xx and
//! retransmitting its own 2xx (§13.3.1.4, RFC 6026), Timer C (proxies).
//!
//! Layout: [`layer`](TransactionLayer) routes; `client_invite`,
//! `client_non_invite`, `server_invite`, `server_non_invite` are the four
//! state machines of §17; `key` is matching; `timers` is the timer table;
//! `messages` builds responses, ACK and CANCEL.

mod client_invite;
mod client_non_invite;
mod key;
mod layer;
mod messages;
mod server_invite;
mod server_non_invite;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use key::TransactionKey;
pub use layer::TransactionLayer;
pub use messages::{ack_for, cancel_for, response_to};
pub use timers::{Timer, TimerConfig};

use crate::message::{Request, Response};
use timers::TimerTable;

/// A transport protocol (§18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: unreliable, so transactions retransmit.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket (RFC 7118).
    Wss,
}

impl Transport {
    /// Whether the transport is reliable: no retransmissions, and Timers
    /// D, I, J, K are zero (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The token used in Via headers and stored bindings (`UDP`, `TCP`,
    /// `TLS`, `WS`, `WSS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// Reads a transport token, case-insensitively.
    pub fn from_token(token: &str) -> Option<Transport> {
        [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Ws,
            Transport::Wss,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(token))
    }
}

/// A peer: where a message came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Remote {
    /// The transport.
    pub transport: Transport,
    /// The peer's address (for stream transports, identifies the
    /// connection to use).
    pub addr: SocketAddr,
}

impl Remote {
    /// A peer over `transport` at `addr`.
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        Remote { transport, addr }
    }
}

/// Bytes the caller must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The transaction that sent them (`None` for stateless sends). Pass it
    /// to [`TransactionLayer::handle_transport_error`] if sending fails.
    pub key: Option<TransactionKey>,
    /// Where to.
    pub dest: Remote,
    /// One serialized SIP message.
    pub bytes: Bytes,
}

/// The state of a transaction (Figures 5-8 of RFC 3261, plus Accepted from
/// RFC 6026).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// INVITE client: request sent, no response yet.
    Calling,
    /// Non-INVITE client or server: no response yet.
    Trying,
    /// A provisional response was received or sent.
    Proceeding,
    /// A 2xx to INVITE was received or sent (RFC 6026).
    Accepted,
    /// A final (non-2xx for INVITE) response was received or sent.
    Completed,
    /// INVITE server: the ACK for a non-2xx arrived.
    Confirmed,
    /// Done; the transaction is removed.
    Terminated,
}

/// Something the TU must know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new request created a server transaction; answer it with
    /// [`TransactionLayer::send_response`] and `key`.
    Request {
        /// The new server transaction.
        key: TransactionKey,
        /// The request.
        request: Request,
        /// Where it came from.
        source: Remote,
    },
    /// A response for a client transaction: provisional, final, and in
    /// Accepted state every further 2xx (RFC 6026), which the TU ACKs.
    Response {
        /// The client transaction.
        key: TransactionKey,
        /// The response.
        response: Response,
    },
    /// An ACK for a 2xx: it matched an INVITE server transaction in
    /// Accepted state (`key` is `Some`) or no transaction at all.
    Ack {
        /// The INVITE server transaction, if still alive.
        key: Option<TransactionKey>,
        /// The ACK.
        request: Request,
        /// Where it came from.
        source: Remote,
    },
    /// A CANCEL matched an INVITE server transaction that has no final
    /// response yet. The layer answered the CANCEL with 200; the TU should
    /// answer the INVITE with 487 (§9.2).
    Cancelled {
        /// The INVITE server transaction.
        invite: TransactionKey,
        /// The CANCEL.
        request: Request,
        /// Where it came from.
        source: Remote,
    },
    /// Timer B or F (no final response: treat as 408, §8.1.3.1) or Timer H
    /// (no ACK for a non-2xx final response) fired.
    Timeout {
        /// The transaction.
        key: TransactionKey,
        /// Which timer.
        timer: Timer,
    },
    /// The caller reported that sending failed (§17.1.4, §17.2.4).
    TransportError {
        /// The transaction.
        key: TransactionKey,
    },
    /// The transaction ended and was removed; its key is free again. Also
    /// reported for the CANCEL transactions the layer answers itself.
    Terminated {
        /// The transaction.
        key: TransactionKey,
    },
}

/// Why a message or a TU call was refused. Nothing is queued when one of
/// these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// No parsable top Via.
    #[error("message has no valid Via header")]
    MissingVia,
    /// The top Via has no branch (responses) or no RFC 3261 branch
    /// (requests the TU sends must start with `z9hG4bK`).
    #[error("top Via has no z9hG4bK branch")]
    MissingBranch,
    /// No parsable CSeq.
    #[error("message has no valid CSeq header")]
    MissingCSeq,
    /// No Call-ID (needed to match RFC 2543 requests).
    #[error("message has no Call-ID header")]
    MissingCallId,
    /// The CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    /// ACK is not sent through a transaction: use `send_stateless`.
    #[error("ACK is not a transaction; send it statelessly")]
    AckNotATransaction,
    /// `send_request` with a branch already in use.
    #[error("a transaction with this branch and method already exists")]
    DuplicateTransaction,
    /// No transaction has this key (never existed or already terminated),
    /// or a response matched none (a stray response, dropped).
    #[error("no such transaction")]
    NoTransaction,
    /// `send_response` on a client transaction.
    #[error("not a server transaction")]
    NotServerTransaction,
    /// The transaction cannot send this response in its state (e.g. a
    /// second final response).
    #[error("response not allowed in state {0:?}")]
    InvalidState(State),
    /// A status code outside 100..=699.
    #[error("invalid status code {0}")]
    InvalidStatus(u16),
}

/// Layer configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    /// T1, T2, T4.
    pub timers: TimerConfig,
    /// Seed for the To tags the layer generates (481 to CANCEL); the shell
    /// should take it from the OS random source.
    pub tag_seed: u64,
}

/// The outputs shared by all transactions: one transmit queue, one event
/// queue, one timer table.
#[derive(Debug, Default)]
struct Outputs {
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    timers: TimerTable,
}

/// What a state machine may do: send, tell the TU, arm timers; always on
/// behalf of one transaction at one instant.
struct Io<'a> {
    key: &'a TransactionKey,
    now: Instant,
    config: &'a TimerConfig,
    out: &'a mut Outputs,
}

impl Io<'_> {
    fn transmit(&mut self, dest: Remote, bytes: Bytes) {
        self.out.transmits.push_back(Transmit {
            key: Some(self.key.clone()),
            dest,
            bytes,
        });
    }
    fn event(&mut self, event: Event) {
        self.out.events.push_back(event);
    }
    fn start(&mut self, timer: Timer, after: Duration) {
        // A deadline beyond what `Instant` can hold never fires.
        match self.now.checked_add(after) {
            Some(at) => self.out.timers.set(self.key, timer, at),
            None => self.out.timers.cancel(self.key, timer),
        }
    }
    fn stop(&mut self, timer: Timer) {
        self.out.timers.cancel(self.key, timer);
    }
}

fn request_bytes(r: &Request) -> Bytes {
    let mut out = Vec::with_capacity(512 + r.body.len());
    r.write_to(&mut out);
    Bytes::from(out)
}

fn response_bytes(r: &Response) -> Bytes {
    let mut out = Vec::with_capacity(512 + r.body.len());
    r.write_to(&mut out);
    Bytes::from(out)
}
