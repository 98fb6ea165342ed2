//! Back-to-back user agent: one call, two legs (RFC 3261 §6 "B2BUA", RFC 7092).
//!
//! Leg A is the caller's dialog, in which the PBX is the UAS; leg B is the
//! dialog the PBX creates towards the callee, as UAC. Until B answers, B
//! is a set of forks, one INVITE per registered contact of the callee,
//! ringing in parallel; the first 2xx wins and the others are cancelled.
//! Media is anchored on the PBX (see [`anchor`]).
//!
//! Sans-IO: the server feeds transaction-layer events and the clock in and
//! drains [`Output`]s (responses, requests, stateless messages, media
//! changes, and finally the call summary).
//!
//! Modules: [`dialog`] (the PBX's dialog state), [`anchor`] (SDP
//! rewriting), [`codecs`] (codec negotiation across legs and the transcoding
//! plan), `forks` (the B side until answer), `in_dialog` (requests
//! within the established call, 2xx retransmission).

pub mod anchor;
pub mod codecs;
pub mod dialog;
mod forks;
mod in_dialog;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_codecs;
mod timers;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip::build::response_to;
use sip::header::HeaderName;
use sip::sdp::Direction;
use sip::transaction::{Remote, TransactionKey};
use sip::{Headers, Message, Request, Response, StatusCode};

use crate::UnixMs;
use anchor::Origin;
pub use codecs::{PayloadFormat, TelephoneEvent, Transcoding};
use dialog::{Dialog, contact_uri, record_route, without_tag};

/// Methods the PBX accepts within a call (the Allow header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK, REGISTER";

/// Call settings.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Ring time before the call is given up with 480.
    pub no_answer: Duration,
    /// T1 and T2 for retransmitting our 2xx until its ACK (§13.3.1.4).
    pub t1: Duration,
    /// T2.
    pub t2: Duration,
    /// Codecs passed between legs, by name.
    pub codecs: Vec<String>,
    /// Codecs the media engine can decode and encode, by name: offers are
    /// extended with those of `codecs` the offerer lacks, so legs without a
    /// common codec are transcoded (see [`codecs`]). Empty: no transcoding.
    pub transcodable: Vec<String>,
    /// Session timers (RFC 4028) on both legs; `None` turns them off.
    pub session_timers: Option<crate::session_timer::SessionConfig>,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            no_answer: Duration::from_secs(60),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            codecs: anchor::DEFAULT_CODECS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            transcodable: Vec::new(),
            session_timers: Some(crate::session_timer::SessionConfig::default()),
        }
    }
}

/// The two legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The caller's leg.
    A,
    /// The callee's leg.
    B,
}

impl Side {
    /// The other leg.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// The PBX's addresses facing one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddrs {
    /// Advertised SIP address (Via sent-by, Contact).
    pub sip: SocketAddr,
    /// The relay's RTP address for this leg (SDP).
    pub media: SocketAddr,
}

/// One destination to ring: a registered contact of the callee, or a trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Request-URI (the contact).
    pub uri: String,
    /// Where to send (the registrar's target, NAT-aware).
    pub dest: Remote,
    /// To header URI; default `sip:CALLEE@DOMAIN`.
    pub to_uri: Option<String>,
    /// From header URI (caller ID towards a trunk); default
    /// `sip:CALLER@DOMAIN`.
    pub from_uri: Option<String>,
    /// Credentials for a 401/407 from this destination (trunks).
    pub credentials: Option<TargetAuth>,
    /// The trunk's name, for the CDR.
    pub trunk: Option<String>,
}

impl Target {
    /// A registered contact.
    pub fn contact(uri: String, dest: Remote) -> Target {
        Target {
            uri,
            dest,
            to_uri: None,
            from_uri: None,
            credentials: None,
            trunk: None,
        }
    }
}

/// Digest credentials the PBX answers a challenge with.
#[derive(Clone, PartialEq, Eq)]
pub struct TargetAuth {
    /// Username.
    pub username: String,
    /// Password (never logged).
    pub password: String,
}

impl std::fmt::Debug for TargetAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TargetAuth({}, <redacted>)", self.username)
    }
}

/// Who is calling whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parties {
    /// Caller number (the authenticated extension).
    pub caller: String,
    /// Caller display name, if any.
    pub caller_name: Option<String>,
    /// The number called, after dialplan rewriting.
    pub callee: String,
    /// Host part for the B leg's From and To.
    pub domain: String,
}

/// Everything needed to start a call from an INVITE.
#[derive(Debug, Clone)]
pub struct NewCall {
    /// The server's handle for the call.
    pub id: u64,
    /// Random seed for tags, branches and the B leg's Call-ID.
    pub seed: u64,
    /// The caller's INVITE.
    pub invite: Request,
    /// Its server transaction.
    pub key: TransactionKey,
    /// Where it came from.
    pub source: Remote,
    /// Addresses facing the caller.
    pub a_local: LocalAddrs,
    /// Addresses facing the callee.
    pub b_local: LocalAddrs,
    /// Parties.
    pub parties: Parties,
    /// Destinations to ring in parallel (at least one).
    pub targets: Vec<Target>,
    /// Destinations tried one after the other when every earlier one
    /// failed with 5xx, 408 or no answer at all (trunk failover).
    pub failover: Vec<Target>,
    /// The trunk leg A came in on, if any (for the CDR).
    pub trunk: Option<String>,
    /// Prefix of every Via branch this PBX writes (loop detection).
    pub branch_prefix: String,
}

/// A change the relay must apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamChange {
    /// Whose stream.
    pub side: Side,
    /// Where that side wants RTP (None while it gave 0.0.0.0 or port 0).
    pub remote: Option<SocketAddr>,
    /// Direction as that side wrote it (no media timeout while it does
    /// not send).
    pub direction: Direction,
    /// Whether the call is answered (media timeouts apply only then).
    pub answered: bool,
    /// RTP clock rate of the first codec that side's SDP lists (the one in
    /// use once it answered).
    pub clock_rate: u32,
}

/// How the call ended, in CDR terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Answered, then hung up.
    Answered,
    /// Rang out.
    NoAnswer,
    /// Busy or declined.
    Busy,
    /// Unreachable or refused.
    Failed,
    /// The caller gave up.
    Cancelled,
}

/// The summary of a finished call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnd {
    /// The server's handle.
    pub id: u64,
    /// Caller's Call-ID (leg A).
    pub a_call_id: String,
    /// The PBX's Call-ID towards the callee (leg B).
    pub b_call_id: String,
    /// Parties.
    pub parties: Parties,
    /// Start (INVITE received), unix ms.
    pub start: UnixMs,
    /// Answer, unix ms.
    pub answer: Option<UnixMs>,
    /// End, unix ms.
    pub end: UnixMs,
    /// Outcome.
    pub disposition: Disposition,
    /// SIP status describing the end, and text.
    pub cause: (u16, String),
    /// Codec of leg A (from the answer).
    pub codec: Option<String>,
    /// Codec of leg B: the same as leg A's unless the call was transcoded.
    pub codec_b: Option<String>,
    /// Trunk of the B leg, if it went out through one.
    pub trunk: Option<String>,
}

/// What the call asks the server to do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Answer a server transaction.
    Respond {
        /// The transaction.
        key: TransactionKey,
        /// The response.
        response: Response,
    },
    /// Start a client transaction.
    Request {
        /// The request.
        request: Request,
        /// Where to.
        dest: Remote,
    },
    /// Send outside any transaction (ACK for 2xx, 2xx retransmissions).
    Stateless {
        /// The message.
        message: Message,
        /// Where to.
        dest: Remote,
    },
    /// Update the relay.
    Media(StreamChange),
    /// Start, change (`Some`) or stop (`None`) transcoding between the
    /// legs; emitted when a negotiation changes it.
    Transcoding(Option<Transcoding>),
    /// The call is over (media can be released, CDR written). Later
    /// messages (responses to BYE and CANCEL) are still absorbed until
    /// [`Call::is_finished`].
    Ended(CallEnd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Forks ringing.
    Ringing,
    /// 2xx sent to the caller, waiting for its ACK.
    Answered,
    /// Both legs confirmed.
    Confirmed,
    /// Over.
    Ended,
}

/// One B2BUA call.
#[derive(Debug)]
pub struct Call {
    id: u64,
    seed: u64,
    counter: u64,
    config: CallConfig,
    phase: Phase,
    parties: Parties,
    branch_prefix: String,
    // Leg A.
    a: Dialog,
    a_key: TransactionKey,
    a_invite: Headers,
    a_origin: Origin,
    a_had_offer: bool,
    // Leg B.
    b_call_id: String,
    b_tag: String,
    b_local: LocalAddrs,
    b_origin: Origin,
    b_offer: Option<Bytes>,
    forks: Vec<forks::Fork>,
    failover: VecDeque<Target>,
    max_forwards: u32,
    /// Trunk of the answering (or last tried) destination.
    trunk: Option<String>,
    b: Option<Dialog>,
    /// CSeq of the INVITE that B answered (its ACK reuses it).
    b_invite_seq: u32,
    /// The ACK for B's 2xx waits for A's ACK when the offer came in B's 2xx.
    b_ack_deferred: Option<u32>,
    /// B's answer from a provisional response, as sent to A.
    early_answer: Option<Bytes>,
    a_local: LocalAddrs,
    in_dialog: in_dialog::Pending,
    no_answer_at: Option<Instant>,
    start: Instant,
    start_wall: UnixMs,
    answered_at: Option<Instant>,
    codec: Option<String>,
    /// The last offer passed between the legs, to read its answer.
    offer: Option<codecs::SentOffer>,
    /// What the relay was last told to transcode.
    transcoding: Option<Transcoding>,
    /// The last stream change of each side.
    streams: [Option<StreamChange>; 2],
    /// Session timers of both legs.
    timers: timers::Timers,
    out: VecDeque<Output>,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Call {
    /// Starts a call: checks and anchors the offer, rings every target.
    /// Problems (bad SDP, no targets) are answered at once and end the call.
    pub fn start(new: NewCall, config: CallConfig, now: Instant, wall: UnixMs) -> Call {
        let h = &new.invite.headers;
        let from = h.get_str(&HeaderName::From).unwrap_or_default();
        let to = h.get_str(&HeaderName::To).unwrap_or_default();
        let a_call_id = h.call_id().unwrap_or_default().to_owned();
        let remote_tag = h
            .from()
            .and_then(|f| f.tag().map(str::to_owned))
            .unwrap_or_default();
        let remote_seq = h.cseq().map_or(0, |c| c.seq);
        let mut call = Call {
            id: new.id,
            seed: new.seed,
            counter: 0,
            phase: Phase::Ringing,
            parties: new.parties,
            branch_prefix: new.branch_prefix,
            a: Dialog {
                call_id: a_call_id,
                local_tag: String::new(),
                remote_tag,
                local_uri: without_tag(to),
                remote_uri: without_tag(from),
                local_seq: 0,
                remote_target: contact_uri(h).unwrap_or_else(|| new.invite.uri.as_str().into()),
                route_set: record_route(h),
                dest: new.source,
                sent_by: new.a_local.sip.to_string(),
                contact: format!(
                    "<sip:pbx@{};transport={}>",
                    new.a_local.sip,
                    new.source.transport.as_str().to_ascii_lowercase()
                ),
            },
            a_key: new.key,
            a_invite: new.invite.headers.clone(),
            a_origin: Origin::new(splitmix(new.seed) >> 16),
            a_had_offer: !new.invite.body.is_empty(),
            b_call_id: String::new(),
            b_tag: String::new(),
            b_local: new.b_local,
            b_origin: Origin::new(splitmix(new.seed ^ 1) >> 16),
            b_offer: None,
            forks: Vec::new(),
            failover: new.failover.into_iter().collect(),
            max_forwards: 70,
            trunk: new.trunk,
            b: None,
            b_invite_seq: 1,
            b_ack_deferred: None,
            early_answer: None,
            a_local: new.a_local,
            in_dialog: in_dialog::Pending::default(),
            no_answer_at: Some(now + config.no_answer),
            start: now,
            start_wall: wall,
            answered_at: None,
            codec: None,
            offer: None,
            transcoding: None,
            streams: [None; 2],
            timers: timers::Timers::new(config.session_timers),
            config,
            out: VecDeque::new(),
        };
        // The A leg's remote CSeq starts at the INVITE's.
        call.in_dialog.remote_seq_a = remote_seq;
        call.a.local_tag = call.next_token();
        call.b_call_id = format!("{}{}", call.next_token(), call.next_token());
        call.b_tag = call.next_token();
        if call.a_had_offer {
            let allowed = call.config.codecs.clone();
            let extend = call.offer_extension(Side::A);
            match anchor::rewrite_with(
                &new.invite.body,
                call.b_local.media,
                &mut call.b_origin,
                Some(&allowed),
                extend,
            ) {
                Ok((body, info, offer)) => {
                    call.offer = Some(offer);
                    call.codec = info.codec.clone();
                    call.b_offer = Some(body);
                    call.media(Side::A, &info);
                }
                Err(problem) => {
                    let (status, reason) = problem.status();
                    call.reject(status, reason, Disposition::Failed, now);
                    return call;
                }
            }
        }
        if let Err(refusal) = call.timers.negotiate_a(h) {
            match refusal {
                timers::Refusal::TooSmall(min_se) => {
                    let mut resp = call.a_response(422, "Session Interval Too Small");
                    resp.headers.push(HeaderName::MinSe, min_se.to_string());
                    call.respond_a(resp);
                    call.end(Disposition::Failed, 422, "Session Interval Too Small", now);
                }
                timers::Refusal::Malformed => {
                    call.reject(400, "Bad Session-Expires", Disposition::Failed, now);
                }
            }
            return call;
        }
        if new.targets.is_empty() {
            call.reject(480, "Temporarily Unavailable", Disposition::Failed, now);
            return call;
        }
        call.max_forwards = h
            .get_str(&HeaderName::MaxForwards)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(70)
            .saturating_sub(1);
        for target in new.targets {
            call.ring(target);
        }
        call
    }

    /// The server's handle.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The Call-IDs of both legs (for routing in-dialog messages).
    pub fn call_ids(&self) -> (&str, &str) {
        (&self.a.call_id, &self.b_call_id)
    }

    /// Which leg a Call-ID belongs to.
    pub fn side_of(&self, call_id: &str) -> Option<Side> {
        if call_id == self.a.call_id {
            Some(Side::A)
        } else if call_id == self.b_call_id {
            Some(Side::B)
        } else {
            None
        }
    }

    /// Whether the call is over and no transaction of it remains open.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Ended && self.forks.iter().all(forks::Fork::is_final)
    }

    /// Whether the call has been answered.
    pub fn is_answered(&self) -> bool {
        self.answered_at.is_some()
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Call::handle_timeout`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.no_answer_at,
            self.in_dialog.next_retransmit(),
            self.timers.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs what is due: the no-answer timer, 2xx retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.no_answer_at.is_some_and(|t| t <= now) {
            self.no_answer_at = None;
            if self.phase == Phase::Ringing {
                self.cancel_forks("no answer");
                self.reject(480, "Temporarily Unavailable", Disposition::NoAnswer, now);
            }
        }
        self.retransmit_due(now);
        self.session_timers_due(now);
    }

    /// The caller cancelled its INVITE (the layer already answered the
    /// CANCEL with 200).
    pub fn on_cancel(&mut self, now: Instant) {
        if self.phase == Phase::Ringing {
            self.cancel_forks("caller cancelled");
            self.reject(487, "Request Terminated", Disposition::Cancelled, now);
        }
    }

    /// The relay saw no media for too long: hang up both legs (only an
    /// answered call; ringing has no media to lose).
    pub fn on_media_timeout(&mut self, now: Instant) {
        if self.is_answered() {
            self.hangup(408, "media timeout", now);
        }
    }

    /// Ends the call from the PBX's side (media timeout, shutdown, admin).
    pub fn hangup(&mut self, code: u16, text: &str, now: Instant) {
        match self.phase {
            Phase::Ringing => {
                self.cancel_forks(text);
                self.reject(code, text, Disposition::Failed, now);
            }
            Phase::Answered | Phase::Confirmed => {
                for side in [Side::A, Side::B] {
                    self.send_bye(side);
                }
                self.end(Disposition::Answered, code, text, now);
            }
            Phase::Ended => {}
        }
    }

    // ---- helpers shared by the submodules ----

    /// A fresh random-looking token (tags, Call-ID parts).
    fn next_token(&mut self) -> String {
        self.counter += 1;
        format!(
            "{:016x}",
            splitmix(self.seed ^ self.counter.rotate_left(32))
        )
    }

    /// A fresh Via branch with this PBX's prefix.
    fn next_branch(&mut self) -> String {
        let token = self.next_token();
        format!("{}{}", self.branch_prefix, token)
    }

    fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::A => (self.phase != Phase::Ringing).then_some(&mut self.a),
            Side::B => self.b.as_mut(),
        }
    }

    fn local_addrs(&self, side: Side) -> LocalAddrs {
        match side {
            Side::A => self.a_local,
            Side::B => self.b_local,
        }
    }

    fn media(&mut self, side: Side, info: &anchor::StreamInfo) {
        let change = StreamChange {
            side,
            remote: info.remote,
            direction: info.direction,
            answered: self.answered_at.is_some(),
            clock_rate: info.clock_rate,
        };
        self.streams[side as usize] = Some(change);
        self.out.push_back(Output::Media(change));
    }

    /// On answer: both streams again, now with media timeouts.
    fn media_answered(&mut self) {
        for mut change in self.streams.into_iter().flatten() {
            change.answered = true;
            self.out.push_back(Output::Media(change));
        }
    }

    /// A response to the caller's INVITE with our tag and Contact.
    fn a_response(&self, status: u16, reason: &str) -> Response {
        let mut resp = response_to(
            &self.a_invite,
            StatusCode(status),
            reason,
            Some(&self.a.local_tag),
        );
        if status < 300 && status > 100 {
            resp.headers
                .push(HeaderName::Contact, self.a.contact.clone());
        }
        if status < 300 {
            resp.headers.push(HeaderName::Allow, ALLOW);
        }
        resp
    }

    fn respond_a(&mut self, resp: Response) {
        self.out.push_back(Output::Respond {
            key: self.a_key.clone(),
            response: resp,
        });
    }

    /// Fails the caller's INVITE and ends the call.
    fn reject(&mut self, status: u16, reason: &str, disposition: Disposition, now: Instant) {
        let resp = self.a_response(status, reason);
        self.respond_a(resp);
        self.end(disposition, status, reason, now);
    }

    fn wall(&self, at: Instant) -> UnixMs {
        self.start_wall + at.saturating_duration_since(self.start).as_millis() as u64
    }

    fn end(&mut self, disposition: Disposition, code: u16, text: &str, now: Instant) {
        if self.phase == Phase::Ended {
            return;
        }
        self.phase = Phase::Ended;
        self.no_answer_at = None;
        self.in_dialog.clear_retransmits();
        let (codec, codec_b) = self.leg_codecs();
        let end = CallEnd {
            id: self.id,
            a_call_id: self.a.call_id.clone(),
            b_call_id: self.b_call_id.clone(),
            parties: self.parties.clone(),
            start: self.start_wall,
            answer: self.answered_at.map(|t| self.wall(t)),
            end: self.wall(now),
            disposition,
            cause: (code, text.to_owned()),
            codec,
            codec_b,
            trunk: self.trunk.clone(),
        };
        self.out.push_back(Output::Ended(end));
    }
}
