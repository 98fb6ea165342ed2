//! Callee registrations (REGISTER with digest authentication), sent by the
//! UAS socket before calls start.

use std::time::{Duration, Instant};

use sip::{Method, Response};

use super::{Engine, T1, T2, back_off, challenge_reply, send_udp};
use crate::sipmsg::{self, RequestSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RegState {
    Idle,
    Pending,
    Done,
    Failed,
}

pub(super) struct Reg {
    pub(super) state: RegState,
    pub(super) call_id: String,
    pub(super) from: String,
    pub(super) cseq: u32,
    pub(super) pending: Vec<u8>,
    pub(super) retrans_at: Instant,
    pub(super) retrans_iv: Duration,
    pub(super) deadline: Instant,
    pub(super) tries: u8,
}

impl Engine {
    pub(super) fn scan_regs(&mut self, now: Instant) {
        while self.regs_next < self.regs.len()
            && self.regs_inflight < self.cfg.register_window.max(1)
        {
            let i = self.regs_next;
            self.regs_next += 1;
            self.regs_inflight += 1;
            self.regs[i].state = RegState::Pending;
            self.send_register(i, None, now);
        }
        for i in 0..self.regs.len().min(self.regs_next) {
            let r = &mut self.regs[i];
            if r.state != RegState::Pending {
                continue;
            }
            if now >= r.deadline {
                r.state = RegState::Failed;
                self.regs_inflight -= 1;
                *self.report.register_failed.entry(0).or_default() += 1;
                continue;
            }
            if now >= r.retrans_at {
                back_off(&mut r.retrans_iv, &mut r.retrans_at, now);
                let b = r.pending.clone();
                send_udp(&self.uas_sock, &b, self.target);
            }
        }
    }

    pub(super) fn send_register(&mut self, i: usize, auth: Option<String>, now: Instant) {
        let branch = sipmsg::branch(&mut self.rng);
        let tag = sipmsg::token(&mut self.rng);
        let r = &mut self.regs[i];
        r.cseq += 1;
        let user = r.from.clone();
        let aor = format!("<sip:{user}@{}>", self.domain);
        let from = format!("{aor};tag={tag}");
        let contact = format!(
            "<sip:{user}@{}>;expires={}",
            sipmsg::hostport(self.uas_addr),
            self.cfg.register_expires
        );
        let ruri = format!("sip:{}", self.domain);
        let mut extra = vec![format!("Expires: {}", self.cfg.register_expires)];
        if let Some(a) = auth {
            extra.push(a);
        }
        let b = sipmsg::request(&RequestSpec {
            method: "REGISTER",
            ruri: &ruri,
            via: self.uas_addr,
            branch: &branch,
            from: &from,
            to: &aor,
            call_id: &r.call_id,
            cseq: r.cseq,
            contact: Some(&contact),
            routes: &[],
            extra: &extra,
            sdp: None,
        });
        r.pending = b;
        r.retrans_iv = T1;
        r.retrans_at = now + T1;
        r.deadline = now + self.cfg.timeout;
        let b = r.pending.clone();
        send_udp(&self.uas_sock, &b, self.target);
    }

    pub(super) fn reg_response(&mut self, resp: Response, now: Instant) {
        let Some(cseq) = resp.headers.cseq() else {
            return;
        };
        if cseq.method != Method::Register {
            self.log(|| {
                format!(
                    "UAS side got a {} response to {}",
                    resp.status.0, cseq.method
                )
            });
            return;
        }
        let Some(i) = resp
            .headers
            .call_id()
            .and_then(|c| sipmsg::call_index(c, b'r'))
        else {
            return;
        };
        let Some(r) = self.regs.get_mut(i) else {
            return;
        };
        if r.state != RegState::Pending || cseq.seq != r.cseq {
            return;
        }
        let code = resp.status.0;
        if code < 200 {
            r.retrans_at = now + T2;
            return;
        }
        if (code == 401 || code == 407) && r.tries < 2 {
            r.tries += 1;
            let uri = format!("sip:{}", self.domain);
            let auth = challenge_reply(
                &mut self.rng,
                &resp,
                &r.from,
                &self.cfg.callee_password,
                "REGISTER",
                &uri,
            );
            if auth.is_some() {
                self.report.register_challenges += 1;
                self.send_register(i, auth, now);
                return;
            }
        }
        let r = &mut self.regs[i];
        self.regs_inflight -= 1;
        if (200..300).contains(&code) {
            r.state = RegState::Done;
            self.report.registered += 1;
        } else {
            r.state = RegState::Failed;
            *self.report.register_failed.entry(code).or_default() += 1;
            let user = r.from.clone();
            self.log(|| format!("REGISTER {user} failed: {code}"));
        }
    }
}
