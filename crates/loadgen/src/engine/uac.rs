//! The caller (UAC) side: placing calls, INVITE/CANCEL/BYE sending and
//! the call timers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Engine, T1, back_off, send_udp};
use crate::rtp::Side;
use crate::sipmsg::{self, RequestSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UacState {
    Calling,
    Proceeding,
    Confirmed,
    Draining,
    Byeing,
    Done,
    Failed,
}

pub(super) struct UacCall {
    pub(super) state: UacState,
    pub(super) call_id: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) ruri: String,
    pub(super) caller: usize,
    pub(super) cseq: u32,
    pub(super) invite_cseq: u32,
    pub(super) branch: String,
    pub(super) sdp: String,
    pub(super) pending: Vec<u8>,
    pub(super) retrans_at: Instant,
    pub(super) retrans_iv: Duration,
    pub(super) deadline: Instant,
    pub(super) nack: Option<(u32, Vec<u8>)>,
    pub(super) ack2xx: Option<Vec<u8>>,
    pub(super) auth_tries: u8,
    pub(super) setup_start: Instant,
    pub(super) got_provisional: bool,
    pub(super) remote_target: String,
    pub(super) routes: Vec<String>,
    pub(super) stream: Option<usize>,
    pub(super) uas_peer: Option<u32>,
    pub(super) hold_until: Instant,
    pub(super) bye_at: Instant,
}

impl Engine {
    pub(super) fn launch_calls(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.calls_start).as_secs_f64();
        let due = ((elapsed * self.cfg.rate) as usize + 1).min(self.cfg.calls);
        while self.calls.len() < due {
            self.start_call(now);
        }
    }

    pub(super) fn start_call(&mut self, now: Instant) {
        let i = self.calls.len();
        let caller_i = i % self.cfg.callers.len();
        let caller = self.cfg.callers[caller_i].clone();
        let callee = &self.cfg.callees[i % self.cfg.callees.len()];
        let host = if self.cfg.direct {
            sipmsg::hostport(self.uas_addr)
        } else {
            self.domain.clone()
        };
        let tag = sipmsg::token(&mut self.rng);
        let mut call = UacCall {
            state: UacState::Calling,
            call_id: format!(
                "c{i}.{}@{}",
                self.run_id,
                sipmsg::host_str(self.cfg.local_ip)
            ),
            from: format!(
                "<sip:{caller}@{}>;tag={tag}",
                if self.cfg.direct {
                    host.clone()
                } else {
                    self.domain.clone()
                }
            ),
            to: format!("<sip:{callee}@{host}>"),
            ruri: format!("sip:{callee}@{host}"),
            caller: caller_i,
            cseq: 0,
            invite_cseq: 0,
            branch: String::new(),
            sdp: String::new(),
            pending: Vec::new(),
            retrans_at: now,
            retrans_iv: T1,
            deadline: now,
            nack: None,
            ack2xx: None,
            auth_tries: 0,
            setup_start: now,
            got_provisional: false,
            remote_target: String::new(),
            routes: Vec::new(),
            stream: None,
            uas_peer: None,
            hold_until: now,
            bye_at: now,
        };
        self.report.attempted += 1;
        let stream = self.open_stream(Side::Uac, i as u32);
        let Some(si) = stream else {
            call.state = UacState::Failed;
            self.calls.push(call);
            *self.report.failed.entry(1).or_default() += 1;
            eprintln!("loadgen: out of RTP ports (call {i})");
            return;
        };
        call.stream = Some(si);
        let rtp = SocketAddr::new(self.cfg.local_ip, self.streams[si].port);
        call.sdp = sipmsg::sdp(rtp, self.rng.next_u64() >> 12);
        self.calls.push(call);
        self.active_calls.push(i);
        self.send_invite(i, None, now);
    }

    pub(super) fn send_invite(&mut self, i: usize, auth: Option<String>, now: Instant) {
        let branch = sipmsg::branch(&mut self.rng);
        let c = &mut self.calls[i];
        c.cseq += 1;
        c.invite_cseq = c.cseq;
        c.branch = branch;
        let caller = &self.cfg.callers[c.caller];
        let contact = format!("<sip:{caller}@{}>", sipmsg::hostport(self.uac_addr));
        let extra: Vec<String> = auth.into_iter().collect();
        c.pending = sipmsg::request(&RequestSpec {
            method: "INVITE",
            ruri: &c.ruri,
            via: self.uac_addr,
            branch: &c.branch,
            from: &c.from,
            to: &c.to,
            call_id: &c.call_id,
            cseq: c.cseq,
            contact: Some(&contact),
            routes: &[],
            extra: &extra,
            sdp: Some(&c.sdp),
        });
        c.state = UacState::Calling;
        c.setup_start = now;
        c.retrans_iv = T1;
        c.retrans_at = now + T1;
        c.deadline = now + self.cfg.timeout;
        send_udp(&self.uac_sock, &self.calls[i].pending, self.target);
    }

    pub(super) fn fail_call(&mut self, i: usize, code: u16) {
        let c = &mut self.calls[i];
        c.state = UacState::Failed;
        *self.report.failed.entry(code).or_default() += 1;
        let id = c.call_id.clone();
        if let Some(s) = c.stream.take() {
            self.close_stream(s);
        }
        self.log(|| format!("call {id} failed: {code}"));
    }

    pub(super) fn end_call(&mut self, i: usize) {
        let c = &mut self.calls[i];
        c.state = UacState::Done;
        if let Some(s) = c.stream.take() {
            self.close_stream(s);
        }
        self.concurrent = self.concurrent.saturating_sub(1);
    }

    /// Stops both ends' media of call `i` (the UAS end if paired).
    pub(super) fn stop_media(&mut self, i: usize) {
        if let Some(s) = self.calls[i].stream {
            self.stop_sending(s);
        }
        if let Some(u) = self.calls[i].uas_peer
            && let Some(s) = self.uas[u as usize].stream
        {
            self.stop_sending(s);
        }
    }

    pub(super) fn scan_calls(&mut self, now: Instant) {
        let mut k = 0;
        while k < self.active_calls.len() {
            let i = self.active_calls[k];
            let c = &mut self.calls[i];
            match c.state {
                UacState::Calling | UacState::Proceeding => {
                    if now >= c.deadline {
                        if c.got_provisional {
                            self.send_cancel(i);
                        }
                        self.fail_call(i, 0);
                    } else if c.state == UacState::Calling && now >= c.retrans_at {
                        c.retrans_iv *= 2; // Timer A doubles without cap
                        c.retrans_at = now + c.retrans_iv;
                        send_udp(&self.uac_sock, &self.calls[i].pending, self.target);
                    }
                }
                UacState::Confirmed => {
                    if now >= c.hold_until {
                        c.state = UacState::Draining;
                        c.bye_at = now + self.cfg.drain;
                        self.stop_media(i);
                    }
                }
                UacState::Draining => {
                    if now >= c.bye_at {
                        self.send_bye(i, None, now);
                    }
                }
                UacState::Byeing => {
                    if now >= c.deadline {
                        self.report.bye_failed += 1;
                        self.end_call(i);
                    } else if now >= c.retrans_at {
                        back_off(&mut c.retrans_iv, &mut c.retrans_at, now);
                        send_udp(&self.uac_sock, &self.calls[i].pending, self.target);
                    }
                }
                UacState::Done | UacState::Failed => {}
            }
            if matches!(self.calls[i].state, UacState::Done | UacState::Failed) {
                self.active_calls.swap_remove(k);
            } else {
                k += 1;
            }
        }
    }

    pub(super) fn send_cancel(&mut self, i: usize) {
        let c = &self.calls[i];
        let b = self.invite_txn(i, "CANCEL", &c.to, c.invite_cseq);
        send_udp(&self.uac_sock, &b, self.target);
    }

    /// A request in the INVITE transaction of call `i` (CANCEL, ACK of a
    /// non-2xx): its Request-URI and branch, no Contact, routes or body.
    pub(super) fn invite_txn(&self, i: usize, method: &str, to: &str, cseq: u32) -> Vec<u8> {
        let c = &self.calls[i];
        sipmsg::request(&RequestSpec {
            method,
            ruri: &c.ruri,
            via: self.uac_addr,
            branch: &c.branch,
            from: &c.from,
            to,
            call_id: &c.call_id,
            cseq,
            contact: None,
            routes: &[],
            extra: &[],
            sdp: None,
        })
    }

    pub(super) fn in_dialog(
        &mut self,
        i: usize,
        method: &str,
        cseq: u32,
        branch: &str,
        extra: &[String],
    ) -> Vec<u8> {
        let c = &self.calls[i];
        let ruri = if c.remote_target.is_empty() {
            &c.ruri
        } else {
            &c.remote_target
        };
        sipmsg::request(&RequestSpec {
            method,
            ruri,
            via: self.uac_addr,
            branch,
            from: &c.from,
            to: &c.to,
            call_id: &c.call_id,
            cseq,
            contact: None,
            routes: &c.routes,
            extra,
            sdp: None,
        })
    }

    pub(super) fn send_bye(&mut self, i: usize, auth: Option<String>, now: Instant) {
        let branch = sipmsg::branch(&mut self.rng);
        self.calls[i].cseq += 1;
        let cseq = self.calls[i].cseq;
        let extra: Vec<String> = auth.into_iter().collect();
        let b = self.in_dialog(i, "BYE", cseq, &branch, &extra);
        let c = &mut self.calls[i];
        c.pending = b;
        c.state = UacState::Byeing;
        c.retrans_iv = T1;
        c.retrans_at = now + T1;
        c.deadline = now + self.cfg.timeout;
        send_udp(&self.uac_sock, &self.calls[i].pending, self.target);
    }
}
