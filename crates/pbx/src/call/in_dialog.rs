//! The established call: requests within either dialog (BYE ends the call;
//! re-INVITE, UPDATE, INFO and MESSAGE are forwarded to the other leg with
//! their SDP re-anchored), ACKs, and our 2xx retransmitted until its ACK
//! (RFC 3261 §13.3.1.4; the TU's job since RFC 6026).

use std::time::{Duration, Instant};

use bytes::Bytes;
use sip::build::response_to;
use sip::header::HeaderName;
use sip::transaction::{Remote, TransactionKey};
use sip::{Headers, Message, Method, Request, Response, StatusCode};

use super::forks::is_sdp;
use super::{ALLOW, Call, Disposition, Output, Phase, Side, anchor};

/// A request from one leg forwarded into the other.
#[derive(Debug)]
struct Forwarded {
    client: TransactionKey,
    server: TransactionKey,
    server_headers: Headers,
    from: Side,
    method: Method,
    /// CSeq of the forwarded request (for the ACK of an INVITE's 2xx).
    seq: u32,
    /// The ACK sent for its 2xx, for retransmitted 2xx.
    ack: Option<Message>,
}

/// A 2xx to an INVITE waiting for its ACK.
#[derive(Debug)]
struct Retransmit {
    side: Side,
    seq: u32,
    message: Message,
    dest: Remote,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

/// In-dialog bookkeeping of a call.
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub(super) remote_seq_a: u32,
    remote_seq_b: Option<u32>,
    forwarded: Vec<Forwarded>,
    retransmits: Vec<Retransmit>,
    /// The ACK for B's initial 2xx.
    pub(super) b_ack: Option<Message>,
}

impl Pending {
    pub(super) fn next_retransmit(&self) -> Option<Instant> {
        self.retransmits.iter().map(|r| r.next).min()
    }

    pub(super) fn clear_retransmits(&mut self) {
        self.retransmits.clear();
    }

    fn invite_pending(&self) -> bool {
        self.forwarded
            .iter()
            .any(|f| f.ack.is_none() && matches!(f.method, Method::Invite | Method::Update))
    }
}

fn cseq_of(headers: &Headers) -> u32 {
    headers.cseq().map_or(0, |c| c.seq)
}

impl Call {
    /// A request (not ACK or CANCEL) in the dialog of leg `side`.
    pub fn on_request(&mut self, side: Side, key: TransactionKey, req: Request, now: Instant) {
        let reply = |status: u16, reason: &str| Output::Respond {
            key: key.clone(),
            response: response_to(&req.headers, StatusCode(status), reason, None),
        };
        if self.phase == Phase::Ended {
            self.out
                .push_back(reply(481, "Call/Transaction Does Not Exist"));
            return;
        }
        if self.phase == Phase::Ringing {
            if side == Side::A && req.method == Method::Bye {
                // Some phones hang up an unanswered call with BYE.
                self.out.push_back(reply(200, "OK"));
                self.on_cancel(now);
            } else {
                self.out
                    .push_back(reply(481, "Call/Transaction Does Not Exist"));
            }
            return;
        }
        let local_tag = match side {
            Side::A => Some(self.a.local_tag.as_str()),
            Side::B => self.b.as_ref().map(|b| b.local_tag.as_str()),
        };
        let to_tag = req.headers.to().and_then(|t| t.tag().map(str::to_owned));
        if to_tag.as_deref() != local_tag {
            self.out
                .push_back(reply(481, "Call/Transaction Does Not Exist"));
            return;
        }
        // §12.2.2: CSeq must grow within a dialog.
        let seq = cseq_of(&req.headers);
        let last = match side {
            Side::A => Some(self.in_dialog.remote_seq_a),
            Side::B => self.in_dialog.remote_seq_b,
        };
        if last.is_some_and(|l| seq <= l) {
            self.out.push_back(reply(500, "CSeq Out of Order"));
            return;
        }
        match side {
            Side::A => self.in_dialog.remote_seq_a = seq,
            Side::B => self.in_dialog.remote_seq_b = Some(seq),
        }
        match req.method {
            Method::Bye => {
                self.out.push_back(reply(200, "OK"));
                self.send_bye(side.other());
                let text = match side {
                    Side::A => "caller hung up",
                    Side::B => "callee hung up",
                };
                self.end(Disposition::Answered, 200, text, now);
            }
            Method::Options => {
                let mut resp = response_to(&req.headers, StatusCode::OK, "OK", None);
                resp.headers.push(HeaderName::Allow, ALLOW);
                self.out.push_back(Output::Respond {
                    key,
                    response: resp,
                });
            }
            Method::Invite | Method::Update => {
                if self.in_dialog.invite_pending() {
                    self.out.push_back(reply(491, "Request Pending"));
                    return;
                }
                if let Some(d) = self.dialog_mut(side) {
                    d.refresh_target(&req.headers);
                }
                self.forward(side, key, req);
            }
            Method::Info | Method::Message => self.forward(side, key, req),
            _ => {
                let mut resp =
                    response_to(&req.headers, StatusCode(405), "Method Not Allowed", None);
                resp.headers.push(HeaderName::Allow, ALLOW);
                self.out.push_back(Output::Respond {
                    key,
                    response: resp,
                });
            }
        }
    }

    /// Sends `req` (from leg `from`) on into the other leg.
    fn forward(&mut self, from: Side, key: TransactionKey, req: Request) {
        let to = from.other();
        let branch = self.next_branch();
        let media = self.local_addrs(to).media;
        let is_offer = req.method == Method::Invite || req.method == Method::Update;
        let allowed = is_offer.then(|| self.config.codecs.clone());
        let mut body = None;
        if is_offer && !is_sdp(&req.headers, &req.body) {
            // The offer will come in the response; it is relayed as it is.
            self.offer = None;
        }
        if is_sdp(&req.headers, &req.body) {
            let extend = is_offer.then(|| self.offer_extension(from));
            let origin = match to {
                Side::A => &mut self.a_origin,
                Side::B => &mut self.b_origin,
            };
            let rewritten =
                anchor::rewrite_with(&req.body, media, origin, allowed.as_deref(), |m| {
                    extend.map(|e| e(m))
                });
            match rewritten {
                Ok((b, info, offer)) => {
                    if offer.is_some() {
                        self.offer = offer;
                    }
                    self.media(from, &info);
                    body = Some(b);
                }
                Err(problem) => {
                    let (status, reason) = problem.status();
                    self.out.push_back(Output::Respond {
                        key,
                        response: response_to(&req.headers, StatusCode(status), reason, None),
                    });
                    return;
                }
            }
        } else if !req.body.is_empty() {
            body = Some(req.body.clone());
        }
        let Some(dialog) = self.dialog_mut(to) else {
            self.out.push_back(Output::Respond {
                key,
                response: response_to(
                    &req.headers,
                    StatusCode(481),
                    "Call/Transaction Does Not Exist",
                    None,
                ),
            });
            return;
        };
        let mut fwd = dialog.request(req.method.clone(), &branch);
        let seq = dialog.local_seq;
        let dest = dialog.dest;
        if matches!(req.method, Method::Invite | Method::Update) {
            self.timer_request_headers(&mut fwd.headers);
        }
        if let Some(body) = body {
            let content_type = req
                .headers
                .get(&HeaderName::ContentType)
                .cloned()
                .unwrap_or_else(|| Bytes::from_static(b"application/sdp"));
            fwd.headers.push(HeaderName::ContentType, content_type);
            fwd.body = body;
        }
        let Ok(client) = TransactionKey::for_outgoing(&fwd) else {
            return;
        };
        self.in_dialog.forwarded.push(Forwarded {
            client,
            server: key,
            server_headers: req.headers,
            from,
            method: req.method,
            seq,
            ack: None,
        });
        self.out.push_back(Output::Request { request: fwd, dest });
    }

    /// A response to a client transaction of this call. Returns whether it
    /// belonged to the call.
    pub fn on_response(&mut self, key: &TransactionKey, resp: Response, now: Instant) -> bool {
        if self.refresh_response(key, &resp, now) {
            return true;
        }
        if let Some(fork) = self.fork_of(key) {
            self.fork_response(fork, resp, now);
            return true;
        }
        let Some(index) = self
            .in_dialog
            .forwarded
            .iter()
            .position(|f| &f.client == key)
        else {
            // Responses to our BYEs, CANCELs and PRACKs need nothing.
            return false;
        };
        let status = resp.status.0;
        if status < 200 {
            return true;
        }
        if let Some(ack) = self.in_dialog.forwarded[index].ack.clone() {
            // A retransmitted 2xx of a forwarded re-INVITE.
            let to = self.in_dialog.forwarded[index].from.other();
            if let Some(d) = self.dialog_mut(to) {
                let dest = d.dest;
                self.out.push_back(Output::Stateless { message: ack, dest });
            }
            return true;
        }
        let (from, method, seq) = {
            let f = &self.in_dialog.forwarded[index];
            (f.from, f.method.clone(), f.seq)
        };
        let mut back = response_to(
            &self.in_dialog.forwarded[index].server_headers,
            resp.status,
            &resp.reason_str(),
            None,
        );
        if (200..300).contains(&status) && matches!(method, Method::Invite | Method::Update) {
            if let Some(d) = self.dialog_mut(from.other()) {
                d.refresh_target(&resp.headers);
            }
            let contact = match from {
                Side::A => self.a.contact.clone(),
                Side::B => self
                    .b
                    .as_ref()
                    .map(|b| b.contact.clone())
                    .unwrap_or_default(),
            };
            back.headers.push(HeaderName::Contact, contact);
            // The request refreshed both legs' session timers.
            self.timers.refreshed_towards(from.other(), &resp, now);
            let request = self.in_dialog.forwarded[index].server_headers.clone();
            self.timers
                .refreshed_by_peer(from, &request, &mut back.headers, now);
        }
        if is_sdp(&resp.headers, &resp.body) {
            let media = self.local_addrs(from).media;
            let is_answer = matches!(method, Method::Invite | Method::Update);
            let answer = is_answer.then(|| self.answer_reader(from));
            let origin = match from {
                Side::A => &mut self.a_origin,
                Side::B => &mut self.b_origin,
            };
            if let Ok((body, info, outcome)) =
                anchor::rewrite_with(&resp.body, media, origin, None, |m| {
                    answer.and_then(|a| a(m))
                })
            {
                self.negotiated(outcome);
                back.headers.push(
                    HeaderName::ContentType,
                    Bytes::from_static(b"application/sdp"),
                );
                back.body = body;
                self.media(from.other(), &info);
            }
        } else if !resp.body.is_empty() {
            if let Some(ct) = resp.headers.get(&HeaderName::ContentType) {
                back.headers.push(HeaderName::ContentType, ct.clone());
            }
            back.body = resp.body.clone();
        }
        let server = self.in_dialog.forwarded[index].server.clone();
        let server_seq = cseq_of(&self.in_dialog.forwarded[index].server_headers);
        if method == Method::Invite && (200..300).contains(&status) {
            let branch = self.next_branch();
            if let Some(d) = self.dialog_mut(from.other()) {
                let ack = Message::Request(d.request_with_seq(Method::Ack, seq, &branch));
                let dest = d.dest;
                self.in_dialog.forwarded[index].ack = Some(ack.clone());
                self.out.push_back(Output::Stateless { message: ack, dest });
            }
            self.expect_ack(from, server_seq, back.clone(), now);
        } else {
            self.in_dialog.forwarded.remove(index);
        }
        self.out.push_back(Output::Respond {
            key: server,
            response: back,
        });
        true
    }

    /// A client transaction of this call timed out or failed to send.
    pub fn on_timeout(&mut self, key: &TransactionKey, now: Instant) -> bool {
        if self.fork_timeout(key, now) {
            return true;
        }
        let Some(index) = self
            .in_dialog
            .forwarded
            .iter()
            .position(|f| &f.client == key && f.ack.is_none())
        else {
            return false;
        };
        let f = self.in_dialog.forwarded.remove(index);
        self.out.push_back(Output::Respond {
            key: f.server,
            response: response_to(&f.server_headers, StatusCode(408), "Request Timeout", None),
        });
        true
    }

    /// An ACK in the dialog of `side` (for our 2xx to an INVITE).
    pub fn on_ack(&mut self, side: Side, req: &Request, _now: Instant) {
        let seq = cseq_of(&req.headers);
        self.in_dialog
            .retransmits
            .retain(|r| !(r.side == side && r.seq == seq));
        if side == Side::A && self.phase == Phase::Answered {
            self.phase = Phase::Confirmed;
            if self.b_ack_deferred.take().is_some() {
                // The caller's answer to the callee's offer.
                let mut body = None;
                if is_sdp(&req.headers, &req.body) {
                    let media = self.b_local.media;
                    let answer = self.answer_reader(Side::B);
                    if let Ok((b, info, outcome)) =
                        anchor::rewrite_with(&req.body, media, &mut self.b_origin, None, answer)
                    {
                        self.negotiated(outcome);
                        self.codec = info.codec.clone();
                        self.media(Side::A, &info);
                        body = Some(b);
                    }
                }
                self.send_ack_b(body);
            }
        }
    }

    /// Remembers a 2xx sent to `side` for retransmission until its ACK.
    pub(super) fn expect_ack(&mut self, side: Side, seq: u32, resp: Response, now: Instant) {
        let dest = match side {
            Side::A => self.a.dest,
            Side::B => match &self.b {
                Some(b) => b.dest,
                None => return,
            },
        };
        let t1 = self.config.t1;
        let give_up = now + t1 * 64;
        let reliable = dest.transport.is_reliable();
        self.in_dialog.retransmits.push(Retransmit {
            side,
            seq,
            message: Message::Response(resp),
            dest,
            next: if reliable { give_up } else { now + t1 },
            interval: t1,
            give_up,
        });
    }

    pub(super) fn retransmit_due(&mut self, now: Instant) {
        let mut lost_ack = false;
        let t2 = self.config.t2;
        let mut i = 0;
        while i < self.in_dialog.retransmits.len() {
            let r = &mut self.in_dialog.retransmits[i];
            if r.next > now {
                i += 1;
                continue;
            }
            if now >= r.give_up {
                lost_ack |= r.side == Side::A;
                self.in_dialog.retransmits.remove(i);
                continue;
            }
            r.interval = (r.interval * 2).min(t2);
            r.next = (now + r.interval).min(r.give_up);
            self.out.push_back(Output::Stateless {
                message: r.message.clone(),
                dest: r.dest,
            });
            i += 1;
        }
        if lost_ack && self.phase == Phase::Answered {
            // §13.3.1.4: no ACK in 64·T1: the session is over.
            for side in [Side::A, Side::B] {
                self.send_bye(side);
            }
            self.end(Disposition::Answered, 408, "no ACK from caller", now);
        }
    }

    /// Sends BYE on leg `side`, if it has a dialog.
    pub(super) fn send_bye(&mut self, side: Side) {
        let branch = self.next_branch();
        if let Some(d) = self.dialog_mut(side) {
            let bye = d.request(Method::Bye, &branch);
            let dest = d.dest;
            self.out.push_back(Output::Request { request: bye, dest });
        }
    }
}
