//! Non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8).
//!
//! Trying: the request went to the TU; retransmissions are discarded until
//! the TU answers. Proceeding (after a 1xx) and Completed (after a final
//! response) resend the last response for every retransmission; Timer J
//! ends Completed (zero on reliable transports).

use bytes::Bytes;

use super::{Io, Remote, State, Timer, TransactionError, response_bytes};
use crate::message::Response;

#[derive(Debug)]
pub(crate) struct ServerNonInvite {
    source: Remote,
    state: State,
    last: Option<Bytes>,
}

impl ServerNonInvite {
    pub(crate) fn start(source: Remote) -> Self {
        ServerNonInvite {
            source,
            state: State::Trying,
            last: None,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// A retransmission of the request.
    pub(crate) fn on_retransmission(&mut self, io: &mut Io<'_>) {
        if let (State::Proceeding | State::Completed, Some(last)) = (self.state, &self.last) {
            io.transmit(self.source, last.clone());
        }
    }

    /// A response from the TU.
    pub(crate) fn send_response(
        &mut self,
        response: &Response,
        io: &mut Io<'_>,
    ) -> Result<(), TransactionError> {
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return Err(TransactionError::InvalidState(self.state));
        }
        let bytes = response_bytes(response);
        io.transmit(self.source, bytes.clone());
        self.last = Some(bytes);
        if response.status.is_provisional() {
            self.state = State::Proceeding;
            return Ok(());
        }
        let j = io.config.timer_j(self.source.transport.is_reliable());
        if j.is_zero() {
            self.state = State::Terminated;
        } else {
            self.state = State::Completed;
            io.start(Timer::J, j);
        }
        Ok(())
    }

    pub(crate) fn on_timer(&mut self, timer: Timer, _io: &mut Io<'_>) {
        if (timer, self.state) == (Timer::J, State::Completed) {
            self.state = State::Terminated;
        }
    }
}
