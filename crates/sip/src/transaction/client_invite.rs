//! INVITE client transaction (RFC 3261 §17.1.1, Figure 5, as corrected by
//! RFC 6026 §8.4).
//!
//! Calling → Proceeding on 1xx; → Completed on 300-699, where the
//! transaction sends the ACK itself (§17.1.1.3) and absorbs retransmitted
//! final responses until Timer D; → Accepted on 2xx (RFC 6026), where
//! every 2xx (the first and its retransmissions, and 2xx from other forks)
//! goes to the TU, which sends the ACK, until Timer M. After the TU sends
//! a CANCEL, Timer B also ends Proceeding (§9.1).

use std::time::Duration;

use bytes::Bytes;

use super::messages::ack_for;
use super::{Event, Io, Remote, State, Timer, request_bytes};
use crate::message::{Request, Response};

#[derive(Debug)]
pub(crate) struct ClientInvite {
    request: Request,
    bytes: Bytes,
    dest: Remote,
    state: State,
    /// Current Timer A interval (doubles on every retransmission).
    interval: Duration,
    /// The ACK for a non-2xx final response, resent for each retransmission
    /// of that response.
    ack: Option<Bytes>,
    /// A CANCEL for this INVITE was sent: Timer B guards Proceeding too.
    cancelled: bool,
}

impl ClientInvite {
    /// Sends the INVITE and arms Timers A (unreliable only) and B.
    pub(crate) fn start(request: Request, dest: Remote, io: &mut Io<'_>) -> Self {
        let bytes = request_bytes(&request);
        io.transmit(dest, bytes.clone());
        let t1 = io.config.t1;
        if !dest.transport.is_reliable() {
            io.start(Timer::A, t1);
        }
        io.start(Timer::B, io.config.t1x64());
        ClientInvite {
            request,
            bytes,
            dest,
            state: State::Calling,
            interval: t1,
            ack: None,
            cancelled: false,
        }
    }

    /// The TU sent a CANCEL for this INVITE. §9.1: if no final response
    /// arrives within 64·T1, the transaction is destroyed; Timer B, re-armed
    /// here, does that in Calling and Proceeding alike.
    pub(crate) fn on_cancel_sent(&mut self, io: &mut Io<'_>) {
        if matches!(self.state, State::Calling | State::Proceeding) {
            self.cancelled = true;
            io.start(Timer::B, io.config.t1x64());
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn on_response(&mut self, response: Response, io: &mut Io<'_>) {
        let status = response.status;
        match self.state {
            State::Calling | State::Proceeding => {
                io.stop(Timer::A);
                if status.is_final() || !self.cancelled {
                    io.stop(Timer::B);
                }
                if status.is_provisional() {
                    self.state = State::Proceeding;
                } else if status.is_success() {
                    self.state = State::Accepted;
                    io.start(Timer::M, io.config.t1x64());
                } else {
                    let ack = request_bytes(&ack_for(&self.request, &response));
                    io.transmit(self.dest, ack.clone());
                    self.ack = Some(ack);
                    let d = io.config.timer_d(self.dest.transport.is_reliable());
                    if d.is_zero() {
                        self.state = State::Terminated;
                    } else {
                        self.state = State::Completed;
                        io.start(Timer::D, d);
                    }
                }
                io.event(Event::Response {
                    key: io.key.clone(),
                    response,
                });
            }
            // RFC 6026 §8.4: 2xx in Accepted go to the TU; nothing else does.
            State::Accepted if status.is_success() => io.event(Event::Response {
                key: io.key.clone(),
                response,
            }),
            State::Completed if status.is_final() && !status.is_success() => {
                if let Some(ack) = &self.ack {
                    io.transmit(self.dest, ack.clone());
                }
            }
            _ => {}
        }
    }

    pub(crate) fn on_timer(&mut self, timer: Timer, io: &mut Io<'_>) {
        match (timer, self.state) {
            (Timer::A, State::Calling) => {
                io.transmit(self.dest, self.bytes.clone());
                self.interval = self.interval.saturating_mul(2);
                io.start(Timer::A, self.interval);
            }
            (Timer::B, State::Calling | State::Proceeding) => {
                self.state = State::Terminated;
                io.event(Event::Timeout {
                    key: io.key.clone(),
                    timer,
                });
            }
            (Timer::D, State::Completed) | (Timer::M, State::Accepted) => {
                self.state = State::Terminated;
            }
            _ => {}
        }
    }
}
