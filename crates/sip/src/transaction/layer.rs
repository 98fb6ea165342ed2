//! The [`TransactionLayer`]: owns the transactions, routes messages,
//! timers and TU calls to them (RFC 3261 §17.1.3, §17.2.3, §9.2).

use ahash::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use super::client_invite::ClientInvite;
use super::client_non_invite::ClientNonInvite;
use super::server_invite::ServerInvite;
use super::server_non_invite::ServerNonInvite;
use super::{
    Config, Event, Io, Outputs, Remote, State, Timer, TransactionError, TransactionKey, Transmit,
    response_to,
};
use crate::message::{Message, Method, Request, Response, StatusCode};

#[derive(Debug)]
enum Transaction {
    InviteClient(ClientInvite),
    NonInviteClient(ClientNonInvite),
    InviteServer(ServerInvite),
    NonInviteServer(ServerNonInvite),
}

impl Transaction {
    fn state(&self) -> State {
        match self {
            Transaction::InviteClient(t) => t.state(),
            Transaction::NonInviteClient(t) => t.state(),
            Transaction::InviteServer(t) => t.state(),
            Transaction::NonInviteServer(t) => t.state(),
        }
    }
    fn on_timer(&mut self, timer: Timer, io: &mut Io<'_>) {
        match self {
            Transaction::InviteClient(t) => t.on_timer(timer, io),
            Transaction::NonInviteClient(t) => t.on_timer(timer, io),
            Transaction::InviteServer(t) => t.on_timer(timer, io),
            Transaction::NonInviteServer(t) => t.on_timer(timer, io),
        }
    }
}

/// All transactions of one SIP element. See the [module docs](super).
#[derive(Debug)]
pub struct TransactionLayer {
    config: Config,
    transactions: HashMap<TransactionKey, Transaction>,
    out: Outputs,
    tags: u64,
}

impl Default for TransactionLayer {
    fn default() -> Self {
        TransactionLayer::new(Config::default())
    }
}

impl TransactionLayer {
    /// An empty layer.
    ///
    /// T1 is raised to at least 1 ms and T2 to at least T1, so that
    /// retransmission intervals are never zero.
    pub fn new(mut config: Config) -> Self {
        let t = &mut config.timers;
        t.t1 = t.t1.max(std::time::Duration::from_millis(1));
        t.t2 = t.t2.max(t.t1);
        TransactionLayer {
            config,
            transactions: HashMap::default(),
            out: Outputs::default(),
            tags: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.transactions.len()
    }

    /// Whether there are no live transactions.
    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty()
    }

    /// The keys of all live transactions.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> Vec<TransactionKey> {
        self.transactions.keys().cloned().collect()
    }

    /// Whether every armed timer belongs to a live transaction.
    #[cfg(test)]
    pub(crate) fn timers_consistent(&self) -> bool {
        self.out
            .timers
            .keys()
            .all(|k| self.transactions.contains_key(k))
    }

    /// The state of a live transaction.
    pub fn state(&self, key: &TransactionKey) -> Option<State> {
        self.transactions.get(key).map(Transaction::state)
    }

    /// Runs `f` on transaction `key` with an [`Io`] for it, then removes the
    /// transaction if it terminated.
    fn with<R>(
        &mut self,
        key: &TransactionKey,
        now: Instant,
        f: impl FnOnce(&mut Transaction, &mut Io<'_>) -> R,
    ) -> Option<R> {
        let txn = self.transactions.get_mut(key)?;
        let mut io = Io {
            key,
            now,
            config: &self.config.timers,
            out: &mut self.out,
        };
        let r = f(txn, &mut io);
        if txn.state() == State::Terminated {
            self.remove(key);
        }
        Some(r)
    }

    fn insert(&mut self, key: TransactionKey, txn: Transaction) {
        let terminated = txn.state() == State::Terminated;
        self.transactions.insert(key.clone(), txn);
        if terminated {
            self.remove(&key);
        }
    }

    fn remove(&mut self, key: &TransactionKey) {
        if self.transactions.remove(key).is_some() {
            self.out.timers.cancel_all(key);
            self.out
                .events
                .push_back(Event::Terminated { key: key.clone() });
        }
    }

    fn new_tag(&mut self) -> String {
        self.tags = self.tags.wrapping_add(1);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.config.tag_seed, self.tags).hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Starts a client transaction for `request` (anything but ACK) and
    /// sends it to `dest`. The request must carry a top Via with a
    /// `z9hG4bK` branch unique to it, and a CSeq naming its method.
    pub fn send_request(
        &mut self,
        request: Request,
        dest: Remote,
        now: Instant,
    ) -> Result<TransactionKey, TransactionError> {
        if request.method == Method::Ack {
            return Err(TransactionError::AckNotATransaction);
        }
        let key = TransactionKey::for_outgoing(&request)?;
        if self.transactions.contains_key(&key) {
            return Err(TransactionError::DuplicateTransaction);
        }
        let mut io = Io {
            key: &key,
            now,
            config: &self.config.timers,
            out: &mut self.out,
        };
        let is_cancel = request.method == Method::Cancel;
        let txn = if request.method == Method::Invite {
            Transaction::InviteClient(ClientInvite::start(request, dest, &mut io))
        } else {
            Transaction::NonInviteClient(ClientNonInvite::start(&request, dest, &mut io))
        };
        self.insert(key.clone(), txn);
        if is_cancel {
            // §9.1: give up on the INVITE 64·T1 after cancelling it.
            self.with(&key.with_method(Method::Invite), now, |txn, io| {
                if let Transaction::InviteClient(t) = txn {
                    t.on_cancel_sent(io);
                }
            });
        }
        Ok(key)
    }

    /// Sends `response` through server transaction `key` (§17.2). For an
    /// INVITE in Accepted state, further 2xx are the TU's retransmissions.
    pub fn send_response(
        &mut self,
        key: &TransactionKey,
        response: Response,
        now: Instant,
    ) -> Result<(), TransactionError> {
        if !(100..=699).contains(&response.status.0) {
            return Err(TransactionError::InvalidStatus(response.status.0));
        }
        self.with(key, now, |txn, io| match txn {
            Transaction::InviteServer(t) => t.send_response(&response, io),
            Transaction::NonInviteServer(t) => t.send_response(&response, io),
            _ => Err(TransactionError::NotServerTransaction),
        })
        .unwrap_or(Err(TransactionError::NoTransaction))
    }

    /// Sends a message outside any transaction: the ACK for a 2xx (§13.2.2.4)
    /// or a 2xx retransmitted after its transaction ended (§13.3.1.4).
    pub fn send_stateless(&mut self, message: &Message, dest: Remote) {
        self.out.transmits.push_back(Transmit {
            key: None,
            dest,
            bytes: message.to_bytes(),
        });
    }

    /// A parsed message from the network.
    pub fn handle_message(
        &mut self,
        message: Message,
        source: Remote,
        now: Instant,
    ) -> Result<(), TransactionError> {
        match message {
            Message::Request(r) => self.handle_request(r, source, now),
            Message::Response(r) => self.handle_response(r, source, now),
        }
    }

    /// A request from the network (§17.2.3): a retransmission is absorbed
    /// by its transaction, an ACK goes to its INVITE transaction or to the
    /// TU, a CANCEL is answered here, anything else creates a server
    /// transaction and reaches the TU as [`Event::Request`].
    pub fn handle_request(
        &mut self,
        request: Request,
        source: Remote,
        now: Instant,
    ) -> Result<(), TransactionError> {
        let key = TransactionKey::for_request(&request)?;
        match request.method {
            Method::Ack => {
                let matched = self.with(&key, now, |txn, io| {
                    if let Transaction::InviteServer(t) = txn {
                        t.on_ack(request.clone(), source, io);
                    }
                });
                if matched.is_none() {
                    self.out.events.push_back(Event::Ack {
                        key: None,
                        request,
                        source,
                    });
                }
            }
            _ if self.transactions.contains_key(&key) => {
                self.with(&key, now, |txn, io| match txn {
                    Transaction::InviteServer(t) => t.on_retransmission(io),
                    Transaction::NonInviteServer(t) => t.on_retransmission(io),
                    _ => {}
                });
            }
            Method::Cancel => self.handle_cancel(key, request, source, now),
            _ => {
                let mut io = Io {
                    key: &key,
                    now,
                    config: &self.config.timers,
                    out: &mut self.out,
                };
                let txn = if request.method == Method::Invite {
                    Transaction::InviteServer(ServerInvite::start(request.clone(), source, &mut io))
                } else {
                    Transaction::NonInviteServer(ServerNonInvite::start(source))
                };
                self.insert(key.clone(), txn);
                self.out.events.push_back(Event::Request {
                    key,
                    request,
                    source,
                });
            }
        }
        Ok(())
    }

    /// A new CANCEL (§9.2): its own server transaction, answered here.
    fn handle_cancel(
        &mut self,
        key: TransactionKey,
        request: Request,
        source: Remote,
        now: Instant,
    ) {
        let invite_key = key.with_method(Method::Invite);
        let invite = match self.transactions.get(&invite_key) {
            Some(Transaction::InviteServer(t)) => Some((t.state(), t.to_tag().map(str::to_owned))),
            _ => None,
        };
        let (status, tag) = match &invite {
            Some((_, Some(tag))) => (StatusCode::OK, tag.clone()),
            Some((_, None)) => (StatusCode::OK, self.new_tag()),
            None => (StatusCode::NO_TRANSACTION, self.new_tag()),
        };
        let response = response_to(&request, status, Some(&tag));
        let mut io = Io {
            key: &key,
            now,
            config: &self.config.timers,
            out: &mut self.out,
        };
        let mut txn = ServerNonInvite::start(source);
        // A fresh transaction in Trying always accepts a final response.
        let _ = txn.send_response(&response, &mut io);
        self.insert(key, Transaction::NonInviteServer(txn));
        if let Some((State::Proceeding, _)) = invite {
            self.out.events.push_back(Event::Cancelled {
                invite: invite_key,
                request,
                source,
            });
        }
    }

    /// A response from the network (§17.1.3). Responses matching no client
    /// transaction are dropped and reported as
    /// [`TransactionError::NoTransaction`].
    pub fn handle_response(
        &mut self,
        response: Response,
        _source: Remote,
        now: Instant,
    ) -> Result<(), TransactionError> {
        let key = TransactionKey::for_response(&response)?;
        self.with(&key, now, |txn, io| match txn {
            Transaction::InviteClient(t) => t.on_response(response, io),
            Transaction::NonInviteClient(t) => t.on_response(response, io),
            _ => {}
        })
        .ok_or(TransactionError::NoTransaction)
    }

    /// Sending a message of transaction `key` failed (§17.1.4, §17.2.4):
    /// the transaction ends and the TU gets [`Event::TransportError`].
    pub fn handle_transport_error(&mut self, key: &TransactionKey) {
        if self.transactions.contains_key(key) {
            self.out
                .events
                .push_back(Event::TransportError { key: key.clone() });
            self.remove(key);
        }
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((key, timer)) = self.out.timers.pop_due(now) {
            self.with(&key, now, |txn, io| txn.on_timer(timer, io));
        }
    }

    /// The earliest timer deadline; call [`handle_timeout`] then.
    ///
    /// [`handle_timeout`]: TransactionLayer::handle_timeout
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.out.timers.next()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }
}
