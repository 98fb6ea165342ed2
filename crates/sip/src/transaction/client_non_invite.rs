//! Non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).
//!
//! Trying → Proceeding on 1xx; → Completed on a final response, which
//! absorbs retransmitted responses until Timer K. On unreliable transports
//! Timer E retransmits the request, doubling up to T2 while Trying and at
//! T2 while Proceeding; Timer F ends the transaction with a timeout.

use std::time::Duration;

use bytes::Bytes;

use super::{Event, Io, Remote, State, Timer, request_bytes};
use crate::message::{Request, Response};

#[derive(Debug)]
pub(crate) struct ClientNonInvite {
    bytes: Bytes,
    dest: Remote,
    state: State,
    /// Current Timer E interval.
    interval: Duration,
}

impl ClientNonInvite {
    /// Sends the request and arms Timers E (unreliable only) and F.
    pub(crate) fn start(request: &Request, dest: Remote, io: &mut Io<'_>) -> Self {
        let bytes = request_bytes(request);
        io.transmit(dest, bytes.clone());
        let t1 = io.config.t1;
        if !dest.transport.is_reliable() {
            io.start(Timer::E, t1);
        }
        io.start(Timer::F, io.config.t1x64());
        ClientNonInvite {
            bytes,
            dest,
            state: State::Trying,
            interval: t1,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn on_response(&mut self, response: Response, io: &mut Io<'_>) {
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return;
        }
        if response.status.is_provisional() {
            self.state = State::Proceeding;
        } else {
            io.stop(Timer::E);
            io.stop(Timer::F);
            let k = io.config.t4_or_zero(self.dest.transport.is_reliable());
            if k.is_zero() {
                self.state = State::Terminated;
            } else {
                self.state = State::Completed;
                io.start(Timer::K, k);
            }
        }
        io.event(Event::Response {
            key: io.key.clone(),
            response,
        });
    }

    pub(crate) fn on_timer(&mut self, timer: Timer, io: &mut Io<'_>) {
        match (timer, self.state) {
            (Timer::E, State::Trying) => {
                io.transmit(self.dest, self.bytes.clone());
                self.interval = io.config.backoff_capped(self.interval);
                io.start(Timer::E, self.interval);
            }
            (Timer::E, State::Proceeding) => {
                io.transmit(self.dest, self.bytes.clone());
                self.interval = io.config.t2;
                io.start(Timer::E, self.interval);
            }
            (Timer::F, State::Trying | State::Proceeding) => {
                self.state = State::Terminated;
                io.event(Event::Timeout {
                    key: io.key.clone(),
                    timer,
                });
            }
            (Timer::K, State::Completed) => self.state = State::Terminated,
            _ => {}
        }
    }
}
