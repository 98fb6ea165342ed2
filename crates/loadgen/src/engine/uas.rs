//! The callee (UAS) side: answering INVITEs (with optional direct-mode
//! proxy authentication), ACK/BYE handling and 200 retransmission.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::{HeaderName, Method, Request};

use super::{DIRECT_REALM, Engine, T1, back_off, send_udp};
use crate::rtp::Side;
use crate::sipmsg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UasState {
    WaitAck,
    Confirmed,
    Ended,
}

pub(super) struct UasCall {
    pub(super) state: UasState,
    pub(super) to_tag: String,
    pub(super) contact: String,
    pub(super) sdp: String,
    pub(super) last_response: Vec<u8>,
    pub(super) src: SocketAddr,
    pub(super) retrans_at: Instant,
    pub(super) retrans_iv: Duration,
    pub(super) deadline: Instant,
    pub(super) stream: Option<usize>,
    pub(super) peer_call: Option<u32>,
}

impl Engine {
    pub(super) fn uas_request(&mut self, req: Request, from: SocketAddr, now: Instant) {
        let Some(call_id) = req.headers.call_id().map(str::to_string) else {
            return;
        };
        let known = self.uas_map.get(&call_id).copied();
        match req.method {
            Method::Invite => match known {
                None => {
                    if self.direct_auth.is_some() && !self.direct_check(&req, &call_id, from, now) {
                        return;
                    }
                    self.uas_new_invite(req, call_id, from, now)
                }
                Some(u) => {
                    let has_tag = req.headers.to().is_some_and(|t| t.tag().is_some());
                    if !has_tag {
                        // Retransmitted initial INVITE.
                        let b = self.uas[u].last_response.clone();
                        send_udp(&self.uas_sock, &b, from);
                    } else {
                        let c = &self.uas[u];
                        let (stream, contact, sdp) = (c.stream, c.contact.clone(), c.sdp.clone());
                        self.answer_reinvite(Side::Uas, &req, from, stream, &contact, &sdp);
                    }
                }
            },
            Method::Ack => {
                if known.is_none()
                    && let Some(b) = self.challenged.get(&call_id)
                    && req.headers.top_via().and_then(|v| v.branch()) == Some(b.as_str())
                {
                    self.report.uas_challenge_acks += 1;
                }
                if let Some(u) = known
                    && self.uas[u].state == UasState::WaitAck
                {
                    self.uas[u].state = UasState::Confirmed;
                    if let Some(s) = self.uas[u].stream {
                        self.start_sending(s);
                    }
                }
            }
            Method::Bye => match known {
                Some(u) => {
                    self.respond(Side::Uas, &req, from, 200, "OK");
                    self.uas_end(u);
                }
                None => self.no_such_call(Side::Uas, &req, from),
            },
            Method::Cancel => {
                // We answer at once, so a CANCEL always comes too late.
                self.respond(Side::Uas, &req, from, 200, "OK");
            }
            Method::Options | Method::Info | Method::Notify | Method::Update => {
                self.respond(Side::Uas, &req, from, 200, "OK");
            }
            _ => self.respond(Side::Uas, &req, from, 501, "Not Implemented"),
        }
    }

    /// Direct-mode proxy authentication: `true` to go on with the INVITE;
    /// otherwise a 407 (no credentials) or 403 (bad ones) was sent.
    pub(super) fn direct_check(
        &mut self,
        req: &Request,
        call_id: &str,
        from: SocketAddr,
        now: Instant,
    ) -> bool {
        let Some(auth) = self.direct_auth.as_mut() else {
            return true;
        };
        let creds: Vec<&[u8]> = req
            .headers
            .get_all(&HeaderName::ProxyAuthorization)
            .map(|b| &b[..])
            .collect();
        let verdict = if creds.is_empty() {
            sip::auth::Verdict::Challenge
        } else {
            let pw = self
                .cfg
                .direct_challenge_password
                .as_ref()
                .unwrap_or(&self.cfg.caller_password);
            auth.verify(creds, "INVITE", now, |user, alg| {
                Some(sip::auth::ha1(alg, user, DIRECT_REALM, pw))
            })
        };
        match verdict {
            sip::auth::Verdict::Authenticated { .. } => true,
            sip::auth::Verdict::Challenge | sip::auth::Verdict::Stale => {
                let ch = auth.challenges(now, verdict == sip::auth::Verdict::Stale);
                let extra: Vec<String> = ch
                    .iter()
                    .map(|c| format!("Proxy-Authenticate: {c}"))
                    .collect();
                let tag = sipmsg::token(&mut self.rng);
                let b = sipmsg::response(
                    req,
                    407,
                    "Proxy Authentication Required",
                    Some(&tag),
                    &extra,
                    None,
                );
                send_udp(&self.uas_sock, &b, from);
                if let Some(br) = req
                    .headers
                    .top_via()
                    .and_then(|v| v.branch().map(str::to_string))
                {
                    self.challenged.insert(call_id.to_string(), br);
                }
                self.report.uas_challenges += 1;
                false
            }
            sip::auth::Verdict::Failed { .. } => {
                self.report.uas_auth_failed += 1;
                let b = sipmsg::response(req, 403, "Forbidden", None, &[], None);
                send_udp(&self.uas_sock, &b, from);
                false
            }
        }
    }

    pub(super) fn uas_new_invite(
        &mut self,
        req: Request,
        call_id: String,
        from: SocketAddr,
        now: Instant,
    ) {
        self.report.uas_invites += 1;
        let u = self.uas.len();
        let Some(si) = self.open_stream(Side::Uas, u as u32) else {
            self.respond(Side::Uas, &req, from, 503, "Out Of RTP Ports");
            return;
        };
        self.streams[si].remote = sipmsg::sdp_audio_addr(&req.body);
        let user = req
            .uri
            .as_sip()
            .and_then(|s| s.user().map(str::to_string))
            .unwrap_or_else(|| "loadgen".into());
        let contact = format!("<sip:{user}@{}>", sipmsg::hostport(self.uas_addr));
        let to_tag = sipmsg::token(&mut self.rng);
        let sdp = sipmsg::sdp(
            SocketAddr::new(self.cfg.local_ip, self.streams[si].port),
            self.rng.next_u64() >> 12,
        );
        let extra = [format!("Contact: {contact}")];
        let ringing = sipmsg::response(&req, 180, "Ringing", Some(&to_tag), &extra, None);
        send_udp(&self.uas_sock, &ringing, from);
        let ok = sipmsg::response(&req, 200, "OK", Some(&to_tag), &extra, Some(&sdp));
        send_udp(&self.uas_sock, &ok, from);
        self.uas.push(UasCall {
            state: UasState::WaitAck,
            to_tag,
            contact,
            sdp,
            last_response: ok,
            src: from,
            retrans_at: now + T1,
            retrans_iv: T1,
            deadline: now + self.cfg.timeout,
            stream: Some(si),
            peer_call: None,
        });
        self.uas_map.insert(call_id, u);
        self.active_uas.push(u);
    }

    pub(super) fn uas_end(&mut self, u: usize) {
        let c = &mut self.uas[u];
        c.state = UasState::Ended;
        if let Some(s) = c.stream.take() {
            self.close_stream(s);
        }
    }

    pub(super) fn scan_uas(&mut self, now: Instant) {
        let mut k = 0;
        while k < self.active_uas.len() {
            let u = self.active_uas[k];
            let c = &mut self.uas[u];
            if c.state == UasState::WaitAck {
                if now >= c.deadline {
                    self.report.ack_timeouts += 1;
                    let tag = c.to_tag.clone();
                    self.log(|| format!("no ACK for 200 (to-tag {tag})"));
                    self.uas_end(u);
                } else if now >= c.retrans_at {
                    back_off(&mut c.retrans_iv, &mut c.retrans_at, now);
                    send_udp(&self.uas_sock, &self.uas[u].last_response, self.uas[u].src);
                }
            }
            if self.uas[u].state == UasState::Ended {
                self.active_uas.swap_remove(k);
            } else {
                k += 1;
            }
        }
    }
}
