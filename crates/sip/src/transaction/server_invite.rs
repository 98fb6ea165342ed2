//! INVITE server transaction (RFC 3261 §17.2.1, Figure 7, as corrected by
//! RFC 6026 §8.5-§8.7).
//!
//! Proceeding: retransmitted INVITEs get the last provisional response
//! again; if the TU has not answered within 200 ms the transaction sends
//! `100 Trying` itself (Timer "Trying"), and a retransmission arriving before
//! that gets `100 Trying` at once. A 2xx from the TU moves to Accepted
//! (RFC 6026): the transaction never retransmits the 2xx itself (the TU
//! does, through this transaction while it lives), absorbs INVITE
//! retransmissions, and passes any matching ACK to the TU, until Timer L.
//! A 300-699 moves to Completed: Timer G retransmits it (unreliable
//! transports), Timer H gives up waiting for the ACK, and the ACK moves to
//! Confirmed, which absorbs further ACKs until Timer I.

use std::time::Duration;

use bytes::Bytes;

use super::messages::response_to;
use super::{Event, Io, Remote, State, Timer, TransactionError, response_bytes};
use crate::message::{Request, Response, StatusCode};

/// How long the TU has to answer before `100 Trying` goes out (§17.2.1).
pub(crate) const TRYING_DELAY: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub(crate) struct ServerInvite {
    request: Request,
    source: Remote,
    state: State,
    /// The last response sent, for retransmission.
    last: Option<Bytes>,
    /// The To tag of the responses sent so far (for the 200 to a CANCEL).
    to_tag: Option<String>,
    /// Current Timer G interval.
    interval: Duration,
}

impl ServerInvite {
    pub(crate) fn start(request: Request, source: Remote, io: &mut Io<'_>) -> Self {
        io.start(Timer::Trying, TRYING_DELAY);
        ServerInvite {
            request,
            source,
            state: State::Proceeding,
            last: None,
            to_tag: None,
            interval: io.config.t1,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn to_tag(&self) -> Option<&str> {
        self.to_tag.as_deref()
    }

    fn send_trying(&mut self, io: &mut Io<'_>) {
        io.stop(Timer::Trying);
        let trying = response_bytes(&response_to(&self.request, StatusCode::TRYING, None));
        io.transmit(self.source, trying.clone());
        self.last = Some(trying);
    }

    /// A retransmission of the INVITE.
    pub(crate) fn on_retransmission(&mut self, io: &mut Io<'_>) {
        match (self.state, &self.last) {
            (State::Proceeding, None) => self.send_trying(io),
            (State::Proceeding | State::Completed, Some(last)) => {
                io.transmit(self.source, last.clone());
            }
            _ => {}
        }
    }

    /// An ACK matching this transaction.
    pub(crate) fn on_ack(&mut self, request: Request, source: Remote, io: &mut Io<'_>) {
        match self.state {
            State::Completed => {
                io.stop(Timer::G);
                io.stop(Timer::H);
                let i = io.config.t4_or_zero(self.source.transport.is_reliable());
                if i.is_zero() {
                    self.state = State::Terminated;
                } else {
                    self.state = State::Confirmed;
                    io.start(Timer::I, i);
                }
            }
            State::Accepted => io.event(Event::Ack {
                key: Some(io.key.clone()),
                request,
                source,
            }),
            _ => {}
        }
    }

    /// A response from the TU.
    pub(crate) fn send_response(
        &mut self,
        response: &Response,
        io: &mut Io<'_>,
    ) -> Result<(), TransactionError> {
        let status = response.status;
        match self.state {
            State::Proceeding => {}
            State::Accepted if status.is_success() => {
                io.transmit(self.source, response_bytes(response));
                return Ok(());
            }
            state => return Err(TransactionError::InvalidState(state)),
        }
        io.stop(Timer::Trying);
        if let Some(tag) = response
            .headers
            .to()
            .and_then(|t| t.tag().map(str::to_owned))
        {
            self.to_tag = Some(tag);
        }
        let bytes = response_bytes(response);
        io.transmit(self.source, bytes.clone());
        if status.is_provisional() {
            self.last = Some(bytes);
        } else if status.is_success() {
            self.last = None;
            self.state = State::Accepted;
            io.start(Timer::L, io.config.t1x64());
        } else {
            self.last = Some(bytes);
            self.state = State::Completed;
            if !self.source.transport.is_reliable() {
                io.start(Timer::G, self.interval);
            }
            io.start(Timer::H, io.config.t1x64());
        }
        Ok(())
    }

    pub(crate) fn on_timer(&mut self, timer: Timer, io: &mut Io<'_>) {
        match (timer, self.state) {
            (Timer::Trying, State::Proceeding) if self.last.is_none() => self.send_trying(io),
            (Timer::G, State::Completed) => {
                if let Some(last) = &self.last {
                    io.transmit(self.source, last.clone());
                }
                self.interval = io.config.backoff_capped(self.interval);
                io.start(Timer::G, self.interval);
            }
            (Timer::H, State::Completed) => {
                self.state = State::Terminated;
                io.event(Event::Timeout {
                    key: io.key.clone(),
                    timer,
                });
            }
            (Timer::I, State::Confirmed) | (Timer::L, State::Accepted) => {
                self.state = State::Terminated;
            }
            _ => {}
        }
    }
}
