//! The B side until answer: one INVITE per contact (parallel forking),
//! provisional responses relayed to the caller, the first 2xx bridged and
//! the other forks cancelled, and the best failure chosen when all fail
//! (RFC 3261 §16.7 step 6, simplified for a B2BUA).

use std::time::Instant;

use bytes::Bytes;
use sip::header::HeaderName;
use sip::transaction::{Remote, TransactionKey, cancel_for};
use sip::{Headers, Message, Method, Request, Response, Uri};

use super::dialog::{Dialog, contact_uri, record_route, without_tag};
use super::{ALLOW, Call, Disposition, Output, Phase, Side, Target, anchor};

#[derive(Debug, Clone, PartialEq, Eq)]
enum ForkState {
    /// INVITE sent, nothing back.
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// CANCEL sent, waiting for the INVITE's final response.
    Cancelling,
    /// This fork answered.
    Answered,
    /// Final non-2xx (or timeout, as 408).
    Failed(u16, String),
}

/// One INVITE towards one destination.
#[derive(Debug)]
pub(super) struct Fork {
    key: TransactionKey,
    request: Request,
    dest: Remote,
    target: Target,
    state: ForkState,
    /// §9.1: a CANCEL waits for a provisional response.
    cancel_on_provisional: bool,
    /// CSeq of the current INVITE.
    invite_seq: u32,
    /// Highest CSeq used in this fork (PRACKs count up from the INVITE's).
    seq: u32,
    /// Whether a challenge was answered already (a second one fails).
    authenticated: bool,
}

impl Fork {
    /// Whether the fork's INVITE transaction has its final response.
    pub(super) fn is_final(&self) -> bool {
        matches!(self.state, ForkState::Answered | ForkState::Failed(..))
    }
}

const CANCEL_REASON_ANSWERED: &str = "SIP;cause=200;text=\"Call completed elsewhere\"";

impl Call {
    /// Sends the INVITE to one destination.
    pub(super) fn ring(&mut self, target: Target) {
        let Some(request) = self.b_invite(&target, 1, None) else {
            return;
        };
        let Ok(key) = TransactionKey::for_outgoing(&request) else {
            return;
        };
        if target.trunk.is_some() {
            self.trunk = target.trunk.clone();
        }
        self.out.push_back(Output::Request {
            request: request.clone(),
            dest: target.dest,
        });
        self.forks.push(Fork {
            key,
            request,
            dest: target.dest,
            target,
            state: ForkState::Calling,
            cancel_on_provisional: false,
            invite_seq: 1,
            seq: 1,
            authenticated: false,
        });
    }

    /// The B leg's INVITE to `target` with CSeq `seq` and, when answering
    /// a challenge, its credentials header.
    fn b_invite(
        &mut self,
        target: &Target,
        seq: u32,
        auth: Option<(HeaderName, String)>,
    ) -> Option<Request> {
        let uri = Uri::parse(Bytes::from(target.uri.clone())).ok()?;
        let branch = self.next_branch();
        let transport = target.dest.transport.as_str();
        let p = &self.parties;
        let display = p
            .caller_name
            .as_deref()
            .map(|n| format!("\"{}\" ", n.replace(['"', '\\'], "")))
            .unwrap_or_default();
        let from_uri = target
            .from_uri
            .clone()
            .unwrap_or_else(|| format!("sip:{}@{}", p.caller, p.domain));
        let to_uri = target
            .to_uri
            .clone()
            .unwrap_or_else(|| format!("sip:{}@{}", p.callee, p.domain));
        let mut headers = Headers::new();
        headers.push(
            HeaderName::Via,
            format!(
                "SIP/2.0/{transport} {};branch={branch};rport",
                self.b_local.sip
            ),
        );
        headers.push(HeaderName::MaxForwards, self.max_forwards.to_string());
        headers.push(
            HeaderName::From,
            format!("{display}<{from_uri}>;tag={}", self.b_tag),
        );
        headers.push(HeaderName::To, format!("<{to_uri}>"));
        headers.push(HeaderName::CallId, self.b_call_id.clone());
        headers.push(HeaderName::CSeq, format!("{seq} INVITE"));
        headers.push(
            HeaderName::Contact,
            format!(
                "<sip:pbx@{};transport={}>",
                self.b_local.sip,
                transport.to_ascii_lowercase()
            ),
        );
        headers.push(HeaderName::Allow, ALLOW);
        headers.push(HeaderName::Supported, Bytes::from_static(b"100rel"));
        self.timers.b_request_headers(&mut headers);
        if let Some((name, value)) = auth {
            headers.push(name, value);
        }
        let body = self.b_offer.clone().unwrap_or_default();
        if !body.is_empty() {
            headers.push(
                HeaderName::ContentType,
                Bytes::from_static(b"application/sdp"),
            );
        }
        Some(Request {
            method: Method::Invite,
            uri,
            headers,
            body,
        })
    }

    /// Answers a 401/407 from a destination we hold credentials for:
    /// the INVITE again with CSeq + 1 and the digest (RFC 3261 §22.2).
    /// Returns false when the challenge cannot be answered.
    fn answer_challenge(&mut self, index: usize, resp: &Response) -> bool {
        let fork = &self.forks[index];
        let Some(creds) = fork.target.credentials.clone() else {
            return false;
        };
        if fork.authenticated || self.phase != Phase::Ringing {
            return false;
        }
        let (challenge_header, answer_header) = if resp.status.0 == 407 {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        } else {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        };
        let Some(challenge) = resp
            .headers
            .get_all(&challenge_header)
            .find_map(|v| crate::trunk::Challenge::parse(v))
        else {
            return false;
        };
        let uri = fork.target.uri.clone();
        let cnonce = self.next_token();
        let value = challenge.answer(&creds.username, &creds.password, "INVITE", &uri, 1, &cnonce);
        let sent = self.resend_fork(index, Some((answer_header, value)));
        self.forks[index].authenticated = true;
        sent
    }

    /// Sends fork `index`'s INVITE again with CSeq + 1 (after a challenge
    /// or a 422), with `auth` as credentials.
    fn resend_fork(&mut self, index: usize, auth: Option<(HeaderName, String)>) -> bool {
        if self.phase != Phase::Ringing || self.forks[index].seq > 8 {
            return false;
        }
        let target = self.forks[index].target.clone();
        let seq = self.forks[index].seq + 1;
        let Some(request) = self.b_invite(&target, seq, auth) else {
            return false;
        };
        let Ok(key) = TransactionKey::for_outgoing(&request) else {
            return false;
        };
        self.out.push_back(Output::Request {
            request: request.clone(),
            dest: target.dest,
        });
        let fork = &mut self.forks[index];
        fork.key = key;
        fork.request = request;
        fork.invite_seq = seq;
        fork.seq = seq;
        fork.state = ForkState::Calling;
        true
    }

    /// Sends CANCEL to every fork still ringing (or arms it for forks that
    /// have not answered provisionally yet).
    pub(super) fn cancel_forks(&mut self, reason: &str) {
        let reason = if reason == "answered" {
            CANCEL_REASON_ANSWERED.to_owned()
        } else {
            format!("SIP;cause=487;text=\"{}\"", reason.replace('"', ""))
        };
        for fork in &mut self.forks {
            match fork.state {
                ForkState::Calling => fork.cancel_on_provisional = true,
                ForkState::Proceeding => {
                    let mut cancel = cancel_for(&fork.request);
                    cancel.headers.push(HeaderName::Reason, reason.clone());
                    self.out.push_back(Output::Request {
                        request: cancel,
                        dest: fork.dest,
                    });
                    fork.state = ForkState::Cancelling;
                }
                _ => {}
            }
        }
    }

    /// The fork whose INVITE transaction `key` is.
    pub(super) fn fork_of(&self, key: &TransactionKey) -> Option<usize> {
        self.forks.iter().position(|f| &f.key == key)
    }

    /// A response to fork `index`'s INVITE.
    pub(super) fn fork_response(&mut self, index: usize, resp: Response, now: Instant) {
        let status = resp.status.0;
        match status {
            100 => {}
            101..=199 => self.fork_provisional(index, resp),
            200..=299 => self.fork_answered(index, resp, now),
            401 | 407 if self.answer_challenge(index, &resp) => {}
            422 if self.timers.b_retry_422(&resp) && self.resend_fork(index, None) => {}
            _ => {
                let reason = resp.reason_str().into_owned();
                self.fork_failed(index, status, reason, now);
            }
        }
    }

    /// A fork's INVITE timed out (Timer B) or could not be sent.
    pub(super) fn fork_timeout(&mut self, key: &TransactionKey, now: Instant) -> bool {
        let Some(index) = self.fork_of(key) else {
            return false;
        };
        if !self.forks[index].is_final() {
            self.fork_failed(index, 408, "Request Timeout".into(), now);
        }
        true
    }

    fn fork_provisional(&mut self, index: usize, resp: Response) {
        let fork = &mut self.forks[index];
        if fork.state == ForkState::Calling {
            fork.state = ForkState::Proceeding;
        }
        if fork.cancel_on_provisional && fork.state == ForkState::Proceeding {
            fork.cancel_on_provisional = false;
            let cancel = cancel_for(&fork.request);
            fork.state = ForkState::Cancelling;
            let dest = fork.dest;
            self.out.push_back(Output::Request {
                request: cancel,
                dest,
            });
            return;
        }
        self.prack_if_reliable(index, &resp);
        if self.phase != Phase::Ringing {
            return;
        }
        let mut to_a = self.a_response(resp.status.0, &resp.reason_str());
        let answer = self.answer_reader(Side::A);
        if is_sdp(&resp.headers, &resp.body)
            && let Ok((body, info, outcome)) = anchor::rewrite_with(
                &resp.body,
                self.a_local.media,
                &mut self.a_origin,
                None,
                answer,
            )
        {
            self.negotiated(outcome);
            to_a.headers.push(
                HeaderName::ContentType,
                Bytes::from_static(b"application/sdp"),
            );
            to_a.body = body.clone();
            self.codec = info.codec.clone().or(self.codec.take());
            self.media(Side::B, &info);
            // A reliable 183 carries B's only answer (RFC 3262); the
            // caller got it unreliably and needs it again in the 200.
            self.early_answer = Some(body);
        }
        self.respond_a(to_a);
    }

    /// RFC 3262: acknowledge a reliable provisional response.
    fn prack_if_reliable(&mut self, index: usize, resp: &Response) {
        let required = resp
            .headers
            .list_values(&HeaderName::Require)
            .iter()
            .any(|v| v.eq_ignore_ascii_case(b"100rel"));
        let rseq = resp
            .headers
            .get_str(&HeaderName::RSeq)
            .and_then(|v| v.trim().parse::<u32>().ok());
        let (true, Some(rseq)) = (required, rseq) else {
            return;
        };
        let branch = self.next_branch();
        self.forks[index].seq += 1;
        let early = self.fork_dialog(index, resp);
        let fork = &self.forks[index];
        let mut prack = early.request_with_seq(Method::Prack, fork.seq, &branch);
        prack.headers.remove(&HeaderName::Contact);
        prack.headers.push(
            HeaderName::RAck,
            format!("{rseq} {} INVITE", fork.invite_seq),
        );
        self.out.push_back(Output::Request {
            request: prack,
            dest: fork.dest,
        });
    }

    /// The (early or confirmed) B-leg dialog a response to fork `index`
    /// establishes (§12.1.2): remote tag and target from the response, the
    /// route set its Record-Route reversed, our CSeq where the fork is.
    fn fork_dialog(&self, index: usize, resp: &Response) -> Dialog {
        let fork = &self.forks[index];
        let header = |name: &HeaderName| fork.request.headers.get_str(name).unwrap_or("");
        Dialog {
            call_id: self.b_call_id.clone(),
            local_tag: self.b_tag.clone(),
            remote_tag: resp
                .headers
                .to()
                .and_then(|t| t.tag().map(str::to_owned))
                .unwrap_or_default(),
            local_uri: without_tag(header(&HeaderName::From)),
            remote_uri: without_tag(resp.headers.get_str(&HeaderName::To).unwrap_or("")),
            local_seq: fork.seq,
            remote_target: contact_uri(&resp.headers)
                .unwrap_or_else(|| fork.request.uri.as_str().to_owned()),
            route_set: record_route(&resp.headers).into_iter().rev().collect(),
            dest: fork.dest,
            sent_by: self.b_local.sip.to_string(),
            contact: header(&HeaderName::Contact).to_owned(),
        }
    }

    fn fork_answered(&mut self, index: usize, resp: Response, now: Instant) {
        let winner = self.b.is_some() && self.forks[index].state == ForkState::Answered;
        if winner {
            // Retransmitted 2xx: our ACK was lost; send it again.
            if let Some(ack) = self.in_dialog.b_ack.clone() {
                let dest = self.forks[index].dest;
                self.out.push_back(Output::Stateless { message: ack, dest });
            }
            return;
        }
        let fork = &mut self.forks[index];
        fork.state = ForkState::Answered;
        let invite_seq = fork.invite_seq;
        let trunk = fork.target.trunk.clone();
        let dialog = self.fork_dialog(index, &resp);
        if self.phase != Phase::Ringing || self.b.is_some() {
            // Answered too late (another fork won, or the caller left):
            // confirm and release it at once.
            let mut late = dialog;
            let branch = self.next_branch();
            let ack = late.request_with_seq(Method::Ack, invite_seq, &branch);
            let branch = self.next_branch();
            let bye = late.request(Method::Bye, &branch);
            self.out.push_back(Output::Stateless {
                message: Message::Request(ack),
                dest: late.dest,
            });
            self.out.push_back(Output::Request {
                request: bye,
                dest: late.dest,
            });
            return;
        }
        self.cancel_forks("answered");
        self.b_invite_seq = invite_seq;
        if trunk.is_some() {
            self.trunk = trunk;
        }
        // The answer (or, for a caller without offer, B's offer) for A.
        let allowed = (!self.a_had_offer).then(|| self.config.codecs.clone());
        let mut to_a = self.a_response(200, "OK");
        let mut sdp_ok = false;
        // An answer to the caller's offer, or (delayed offer) B's offer.
        let answer = self.answer_reader(Side::A);
        let extend = (!self.a_had_offer).then(|| self.offer_extension(Side::B));
        let negotiate = |m: &mut _| match extend {
            Some(extend) => (None, Some(extend(m))),
            None => (answer(m), None),
        };
        if is_sdp(&resp.headers, &resp.body)
            && let Ok((body, info, (outcome, offer))) = anchor::rewrite_with(
                &resp.body,
                self.a_local.media,
                &mut self.a_origin,
                allowed.as_deref(),
                negotiate,
            )
        {
            if offer.is_some() {
                self.offer = offer;
            }
            self.negotiated(outcome);
            to_a.headers.push(
                HeaderName::ContentType,
                Bytes::from_static(b"application/sdp"),
            );
            to_a.body = body;
            self.codec = info.codec.clone().or(self.codec.take());
            self.media(Side::B, &info);
            sdp_ok = true;
        } else if resp.body.is_empty()
            && self.a_had_offer
            && let Some(body) = self.early_answer.clone()
        {
            to_a.headers.push(
                HeaderName::ContentType,
                Bytes::from_static(b"application/sdp"),
            );
            to_a.body = body;
            sdp_ok = true;
        }
        self.b = Some(dialog);
        self.answered_at = Some(now);
        self.no_answer_at = None;
        self.phase = Phase::Answered;
        self.media_answered();
        if !sdp_ok && self.a_had_offer {
            // No usable answer to the caller's offer: the call cannot
            // have media. Confirm B and hang it up; fail A.
            self.send_ack_b(None);
            self.send_bye(Side::B);
            self.answered_at = None;
            self.phase = Phase::Ringing;
            self.reject(502, "Bad Gateway", Disposition::Failed, now);
            return;
        }
        if self.a_had_offer {
            self.send_ack_b(None);
        } else {
            self.b_ack_deferred = Some(1);
        }
        self.timers.answered(&mut to_a.headers, &resp, now);
        let seq = self.a_invite.cseq().map_or(0, |c| c.seq);
        self.respond_a(to_a.clone());
        self.expect_ack(Side::A, seq, to_a, now);
    }

    /// Sends (and remembers, for 2xx retransmissions) the ACK for B's 2xx.
    pub(super) fn send_ack_b(&mut self, body: Option<Bytes>) {
        let branch = self.next_branch();
        let Some(b) = &self.b else { return };
        let mut ack = b.request_with_seq(Method::Ack, self.b_invite_seq, &branch);
        if let Some(body) = body {
            ack.headers.push(
                HeaderName::ContentType,
                Bytes::from_static(b"application/sdp"),
            );
            ack.body = body;
        }
        let message = Message::Request(ack);
        self.in_dialog.b_ack = Some(message.clone());
        let dest = b.dest;
        self.out.push_back(Output::Stateless { message, dest });
    }

    fn fork_failed(&mut self, index: usize, status: u16, reason: String, now: Instant) {
        self.forks[index].state = ForkState::Failed(status, reason);
        if status >= 600 && self.phase == Phase::Ringing {
            // §16.7: a 6xx ends the search.
            self.cancel_forks("global failure");
        }
        if self.phase != Phase::Ringing || !self.forks.iter().all(Fork::is_final) {
            return;
        }
        let failures: Vec<(u16, &str)> = self
            .forks
            .iter()
            .filter_map(|f| match &f.state {
                ForkState::Failed(s, r) => Some((*s, r.as_str())),
                _ => None,
            })
            .collect();
        let (status, reason) = best_failure(&failures);
        let reason = reason.to_owned();
        // Trunk failover: a server failure or silence moves to the next
        // destination; a definite answer (busy, not found...) does not.
        let retry =
            (500..600).contains(&status) || failures.iter().all(|(s, _)| *s == 408 || *s == 480);
        if retry && let Some(next) = self.failover.pop_front() {
            self.ring(next);
            return;
        }
        let disposition = match status {
            486 | 600 | 603 => Disposition::Busy,
            _ => Disposition::Failed,
        };
        self.reject(status, &reason, disposition, now);
    }
}

/// Whether a body is SDP.
pub(super) fn is_sdp(headers: &Headers, body: &[u8]) -> bool {
    !body.is_empty()
        && headers
            .get_str(&HeaderName::ContentType)
            .is_none_or(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"))
}

/// The response the caller gets when every fork failed: a 6xx, else busy,
/// else the lowest class; a contact that never answered (408) reads as
/// 480 Temporarily Unavailable to the caller.
fn best_failure<'a>(failures: &[(u16, &'a str)]) -> (u16, &'a str) {
    if let Some(f) = failures.iter().find(|(s, _)| *s >= 600) {
        return *f;
    }
    if let Some(f) = failures.iter().find(|(s, _)| *s == 486) {
        return *f;
    }
    let chosen = failures
        .iter()
        .filter(|(s, _)| *s != 408)
        .min_by_key(|(s, _)| s / 100)
        .copied();
    chosen.unwrap_or((480, "Temporarily Unavailable"))
}
