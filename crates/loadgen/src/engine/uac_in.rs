//! The caller (UAC) side: responses to INVITE and BYE, and requests from
//! the far end (BYE, re-INVITE).

use std::net::SocketAddr;
use std::time::Instant;

use sip::{HeaderName, Method, Request, Response};

use super::uac::UacState;
use super::{Engine, T2, challenge_reply, send_udp};
use crate::rtp::Side;
use crate::sipmsg;

impl Engine {
    pub(super) fn uac_response(&mut self, resp: Response, now: Instant) {
        let Some(cseq) = resp.headers.cseq() else {
            return;
        };
        let Some(i) = resp
            .headers
            .call_id()
            .and_then(|c| sipmsg::call_index(c, b'c'))
        else {
            return;
        };
        if i >= self.calls.len() || resp.headers.call_id() != Some(self.calls[i].call_id.as_str()) {
            return;
        }
        match cseq.method {
            Method::Invite => self.invite_response(i, resp, cseq.seq, now),
            Method::Bye => self.bye_response(i, resp, cseq.seq, now),
            _ => {}
        }
    }

    pub(super) fn invite_response(&mut self, i: usize, resp: Response, seq: u32, now: Instant) {
        let code = resp.status.0;
        let c = &mut self.calls[i];
        if seq != c.invite_cseq {
            // An earlier (challenged) INVITE: re-ACK its retransmitted final response.
            if code >= 300
                && let Some((n, ack)) = &c.nack
                && *n == seq
            {
                send_udp(&self.uac_sock, ack, self.target);
            }
            return;
        }
        if code < 200 {
            if c.state == UacState::Calling {
                c.state = UacState::Proceeding;
            }
            c.got_provisional = true;
            return;
        }
        let to_value = resp
            .headers
            .get(&HeaderName::To)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| c.to.clone());
        if code >= 300 {
            // ACK for a non-2xx final response: same branch, same CSeq
            // number (RFC 3261 §17.1.1.3).
            let ack = self.invite_txn(i, "ACK", &to_value, seq);
            send_udp(&self.uac_sock, &ack, self.target);
            let c = &mut self.calls[i];
            let in_progress = matches!(c.state, UacState::Calling | UacState::Proceeding);
            c.nack = Some((seq, ack));
            if !in_progress {
                return;
            }
            if (code == 401 || code == 407) && c.auth_tries < 2 {
                c.auth_tries += 1;
                let c = &self.calls[i];
                let auth = challenge_reply(
                    &mut self.rng,
                    &resp,
                    &self.cfg.callers[c.caller],
                    &self.cfg.caller_password,
                    "INVITE",
                    &c.ruri,
                );
                if auth.is_some() {
                    self.report.invite_challenges += 1;
                    self.send_invite(i, auth, now);
                    return;
                }
            }
            self.fail_call(i, code);
            return;
        }
        // 2xx
        if let Some(ack) = &c.ack2xx {
            send_udp(&self.uac_sock, ack, self.target); // retransmitted 200
            return;
        }
        let contact = resp
            .headers
            .get(&HeaderName::Contact)
            .and_then(|v| sip::header::NameAddr::parse(v.clone()).ok())
            .map(|n| n.uri.as_str().to_string());
        c.remote_target = contact.unwrap_or_else(|| c.ruri.clone());
        c.routes = resp
            .headers
            .list_values(&HeaderName::RecordRoute)
            .iter()
            .rev()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        c.to = to_value;
        let was = c.state;
        let seq_ack = seq;
        let branch = sipmsg::branch(&mut self.rng);
        let ack = self.in_dialog(i, "ACK", seq_ack, &branch, &[]);
        send_udp(&self.uac_sock, &ack, self.target);
        let c = &mut self.calls[i];
        c.ack2xx = Some(ack);
        if !matches!(was, UacState::Calling | UacState::Proceeding) {
            // A 200 after we gave up (timeout): hang it up.
            if was == UacState::Failed {
                let branch = sipmsg::branch(&mut self.rng);
                self.calls[i].cseq += 1;
                let cseq = self.calls[i].cseq;
                let bye = self.in_dialog(i, "BYE", cseq, &branch, &[]);
                send_udp(&self.uac_sock, &bye, self.target);
            }
            return;
        }
        self.report
            .setup_us
            .record(now.duration_since(c.setup_start).as_micros() as u64);
        self.report.established += 1;
        self.concurrent += 1;
        self.report.peak_concurrent = self.report.peak_concurrent.max(self.concurrent);
        c.state = UacState::Confirmed;
        c.hold_until = now + self.cfg.hold;
        match (sipmsg::sdp_audio_addr(&resp.body), c.stream) {
            (Some(addr), Some(s)) => {
                self.streams[s].remote = Some(addr);
                self.start_sending(s);
            }
            _ => self.report.no_media += 1,
        }
    }

    pub(super) fn bye_response(&mut self, i: usize, resp: Response, seq: u32, now: Instant) {
        let c = &mut self.calls[i];
        if c.state != UacState::Byeing || seq != c.cseq {
            return;
        }
        let code = resp.status.0;
        if code < 200 {
            c.retrans_iv = T2;
            return;
        }
        if (code == 401 || code == 407) && c.auth_tries < 4 {
            c.auth_tries += 1;
            let uri = if c.remote_target.is_empty() {
                &c.ruri
            } else {
                &c.remote_target
            };
            let auth = challenge_reply(
                &mut self.rng,
                &resp,
                &self.cfg.callers[c.caller],
                &self.cfg.caller_password,
                "BYE",
                uri,
            );
            if auth.is_some() {
                self.report.invite_challenges += 1;
                self.send_bye(i, auth, now);
                return;
            }
        }
        if (200..300).contains(&code) {
            self.report.completed += 1;
        } else {
            self.report.bye_failed += 1;
        }
        self.end_call(i);
    }

    pub(super) fn uac_request(&mut self, req: Request, from: SocketAddr, now: Instant) {
        let _ = now;
        let idx = req
            .headers
            .call_id()
            .and_then(|c| sipmsg::call_index(c, b'c'))
            .filter(|&i| {
                i < self.calls.len()
                    && req.headers.call_id() == Some(self.calls[i].call_id.as_str())
            });
        match req.method {
            Method::Ack => {}
            Method::Bye => {
                let Some(i) = idx else {
                    self.no_such_call(Side::Uac, &req, from);
                    return;
                };
                self.respond(Side::Uac, &req, from, 200, "OK");
                match self.calls[i].state {
                    UacState::Confirmed => {
                        self.report.dropped += 1;
                        self.stop_media(i);
                        self.end_call(i);
                    }
                    UacState::Draining | UacState::Byeing => {
                        self.report.completed += 1;
                        self.end_call(i);
                    }
                    _ => {}
                }
            }
            Method::Invite => {
                // Re-INVITE: answer with our SDP, follow a new remote address.
                let Some(i) = idx else {
                    self.no_such_call(Side::Uac, &req, from);
                    return;
                };
                let c = &self.calls[i];
                let contact = format!(
                    "<sip:{}@{}>",
                    self.cfg.callers[c.caller],
                    sipmsg::hostport(self.uac_addr)
                );
                let (stream, sdp) = (c.stream, c.sdp.clone());
                self.answer_reinvite(Side::Uac, &req, from, stream, &contact, &sdp);
            }
            Method::Options | Method::Info | Method::Notify | Method::Update | Method::Cancel => {
                self.respond(Side::Uac, &req, from, 200, "OK");
            }
            _ => self.respond(Side::Uac, &req, from, 501, "Not Implemented"),
        }
    }
}
