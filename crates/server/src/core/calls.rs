//! INVITE and in-dialog requests: caller authentication (proxy digest),
//! routing to the callee's registered contacts, media allocation, and the
//! glue between the transaction layer and the [`pbx::call::Call`] machines.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use ahash::HashMap;
use pbx::UnixMs;
use pbx::call::{Call, CallConfig, CallEnd, LocalAddrs, NewCall, Output, Parties, Target};
use sip::header::HeaderName;
use sip::transaction::{Remote, TransactionKey};
use sip::{Request, StatusCode};
use tracing::{debug, info};

use super::auth::Role;
use super::limits::CallLimits;
use super::random_u64;
use super::trunks::{Destination, user_of};
use super::{Core, Persist, ReplyTo};
use crate::media::MediaManager;

/// All calls and the indexes that route messages to them.
pub struct Calls {
    calls: HashMap<u64, Call>,
    by_call_id: HashMap<String, u64>,
    by_server_invite: HashMap<TransactionKey, u64>,
    by_client: HashMap<TransactionKey, u64>,
    timers: BTreeSet<(Instant, u64)>,
    deadlines: HashMap<u64, Instant>,
    next_id: u64,
    config: CallConfig,
    /// Every Via branch we write starts with this (loop detection).
    branch_prefix: String,
    media: Option<MediaManager>,
    /// The SIP port we listen on, per address family (v4, v6).
    sip_ports: (u16, u16),
    /// Calls per extension, for `max_calls`.
    limits: CallLimits,
}

impl Calls {
    /// Calls with `config`; `media` is `None` when no relay is available
    /// (INVITEs then get 503).
    pub fn new(config: CallConfig, media: Option<MediaManager>, listen: &[SocketAddr]) -> Calls {
        let port = |v6: bool| {
            listen
                .iter()
                .find(|a| a.is_ipv6() == v6)
                .or(listen.first())
                .map_or(5060, SocketAddr::port)
        };
        Calls {
            calls: HashMap::default(),
            by_call_id: HashMap::default(),
            by_server_invite: HashMap::default(),
            by_client: HashMap::default(),
            timers: BTreeSet::new(),
            deadlines: HashMap::default(),
            next_id: 1,
            config,
            branch_prefix: format!("z9hG4bK-{:08x}-", random_u64() as u32),
            media,
            sip_ports: (port(false), port(true)),
            limits: CallLimits::default(),
        }
    }

    /// Live calls (ended calls still draining transactions included),
    /// running relays and free RTP port pairs, for the logs.
    pub fn summary(&self) -> (usize, usize, usize) {
        let (relays, free) = self
            .media
            .as_ref()
            .map_or((0, 0), |m| (m.sessions(), m.available_ports()));
        (self.calls.len(), relays, free)
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// The media manager, if any.
    pub(super) fn media_mut(&mut self) -> Option<&mut MediaManager> {
        self.media.as_mut()
    }

    /// Our SIP address on `ip` (the listening port of its family).
    pub(super) fn sip_addr(&self, ip: IpAddr) -> SocketAddr {
        let port = if ip.is_ipv6() {
            self.sip_ports.1
        } else {
            self.sip_ports.0
        };
        SocketAddr::new(ip, port)
    }
}

impl Core {
    /// An INVITE: a new call, or a re-INVITE within one.
    pub(super) fn invite(
        &mut self,
        reply: ReplyTo,
        req: Request,
        source: Remote,
        now: Instant,
        wall: UnixMs,
    ) {
        let ReplyTo::Transaction(key) = reply else {
            return;
        };
        if req.headers.to().is_some_and(|t| t.tag().is_some()) {
            return self.in_dialog(key, req, now);
        }
        let respond = |core: &mut Core, status: u16, reason: &str| {
            core.respond(
                &ReplyTo::Transaction(key.clone()),
                &req.headers,
                StatusCode(status),
                reason,
                &[],
                now,
            );
        };
        // Loops: our own branch in the Via path means the INVITE came back.
        let prefix = self.calls.branch_prefix.clone();
        let looped = req
            .headers
            .list_values(&HeaderName::Via)
            .iter()
            .any(|v| v.windows(prefix.len()).any(|w| w == prefix.as_bytes()));
        if looped {
            return respond(self, 482, "Loop Detected");
        }
        // Reliable provisional responses towards callers are not offered
        // (Supported lists 100rel for PRACK on the callee side only).
        let requires_100rel = req
            .headers
            .list_values(&HeaderName::Require)
            .iter()
            .any(|v| v.eq_ignore_ascii_case(b"100rel"));
        if requires_100rel {
            return self.respond(
                &ReplyTo::Transaction(key.clone()),
                &req.headers,
                StatusCode(420),
                "Bad Extension",
                &[(HeaderName::Unsupported, "100rel".to_string())],
                now,
            );
        }
        let max_forwards = req
            .headers
            .get_str(&HeaderName::MaxForwards)
            .and_then(|v| v.trim().parse::<u32>().ok());
        if max_forwards == Some(0) {
            return respond(self, 483, "Too Many Hops");
        }
        // The caller is a trunk (trusted by address) or one of our
        // extensions (proxy digest, RFC 3261 §22.3).
        let (caller, targets, failover, trunk) = if let Some(t) =
            self.routing.trunk_from(source.addr.ip())
        {
            let name = t.name.clone();
            let Some((caller, callee)) = self.inbound_from_trunk(&req, &t.clone()) else {
                debug!(trunk = %name, uri = %req.uri.as_str(), "inbound DID not routed");
                return respond(self, 404, "Not Found");
            };
            info!(trunk = %name, caller = %caller.number, callee = %callee.number, "inbound call");
            let targets = self.contacts_of(&callee);
            (
                caller,
                (callee.number.clone(), targets, Some(callee.max_calls)),
                Vec::new(),
                Some(name),
            )
        } else {
            let Some(caller) = self.authenticate_caller(&key, &req, source, now, wall) else {
                return;
            };
            if self.calls.limits.at_limit(&caller.number, caller.max_calls) {
                info!(caller = %caller.number, max_calls = caller.max_calls, "call refused: caller at its call limit");
                return respond(self, 403, "Call Limit Reached");
            }
            let dialled = user_of(&req.uri).unwrap_or_default();
            match self.route(&dialled, &caller) {
                Ok(Destination::Extension(callee)) => {
                    let targets = self.contacts_of(&callee);
                    let callee = (callee.number.clone(), targets, Some(callee.max_calls));
                    (caller, callee, Vec::new(), None)
                }
                Ok(Destination::Trunks(mut targets)) => {
                    let first = targets.remove(0);
                    (caller, (dialled.clone(), vec![first], None), targets, None)
                }
                Err((status, reason)) => {
                    debug!(caller = %caller.number, %dialled, status, "not routed");
                    return respond(self, status, &reason);
                }
            }
        };
        let (callee_number, targets, callee_max_calls) = targets;
        if let Some(max) = callee_max_calls
            && self.calls.limits.at_limit(&callee_number, max)
        {
            info!(callee = %callee_number, max_calls = max, "callee at its call limit: busy");
            return respond(self, 486, "Busy Here");
        }
        if targets.is_empty() {
            return respond(self, 480, "Temporarily Unavailable");
        }
        let id = self.calls.next_id;
        let b_peer = targets[0].dest.addr.ip();
        let Some(media) = self.calls.media.as_mut() else {
            return respond(self, 503, "Service Unavailable");
        };
        let (a_media, b_media) = match media.start(id, source.addr.ip(), b_peer) {
            Ok(addrs) => addrs,
            Err(e) => {
                info!(error = %e, "call refused");
                return respond(self, 503, "Service Unavailable");
            }
        };
        let a_ip = media.local_ip_towards(source.addr.ip());
        let b_ip = media.local_ip_towards(b_peer);
        self.calls.next_id += 1;
        let from_trunk = trunk.is_some();
        let new = NewCall {
            id,
            seed: random_u64(),
            invite: req.clone(),
            key: key.clone(),
            source,
            a_local: LocalAddrs {
                sip: self.calls.sip_addr(a_ip),
                media: a_media,
            },
            b_local: LocalAddrs {
                sip: self.calls.sip_addr(b_ip),
                media: b_media,
            },
            parties: Parties {
                caller: caller.number.clone(),
                caller_name: caller.display_name.clone(),
                callee: callee_number.clone(),
                domain: self.auth_realm.clone(),
            },
            targets,
            failover,
            trunk,
            branch_prefix: prefix,
        };
        debug!(call = id, caller = %caller.number, callee = %callee_number, "call");
        let call = Call::start(new, self.calls.config.clone(), now, wall);
        let (a_id, b_id) = call.call_ids();
        self.calls.by_call_id.insert(a_id.to_owned(), id);
        self.calls.by_call_id.insert(b_id.to_owned(), id);
        self.calls.by_server_invite.insert(key, id);
        self.calls.calls.insert(id, call);
        // Trunk callers and dialled outside numbers have no limit here.
        let counted = [
            (!from_trunk).then(|| caller.number.clone()),
            callee_max_calls.map(|_| callee_number.clone()),
        ];
        self.calls
            .limits
            .begin(id, counted.into_iter().flatten().collect());
        self.drive(id, now);
    }

    /// The registered contacts of an extension.
    fn contacts_of(&self, callee: &super::Profile) -> Vec<Target> {
        self.registrar
            .lookup(&callee.username)
            .into_iter()
            .map(|b| {
                // The REGISTER's connection is gone: open a new one to the
                // contact (RFC 3261 §18.1.1) rather than to its old port.
                let addr = if b.transport.is_reliable() && !self.out.has_connection(b.source) {
                    b.reconnect_target()
                } else {
                    b.target()
                };
                Target::contact(b.contact.clone(), Remote::new(b.transport, addr))
            })
            .collect()
    }

    /// Checks the caller's Proxy-Authorization; answers 407/403 itself and
    /// returns None when the INVITE cannot proceed.
    fn authenticate_caller(
        &mut self,
        key: &TransactionKey,
        req: &Request,
        source: Remote,
        now: Instant,
        wall: UnixMs,
    ) -> Option<super::Profile> {
        let reply = ReplyTo::Transaction(key.clone());
        let username = self.authenticate(Role::Proxy, &reply, req, source, now, wall)?;
        let profile = self.directory.profile(&username).cloned();
        if profile.is_none() {
            self.respond(&reply, &req.headers, StatusCode(403), "Forbidden", &[], now);
        }
        profile
    }

    /// A request within a call's dialog (BYE, re-INVITE, UPDATE, INFO, ...).
    pub(super) fn in_dialog(&mut self, key: TransactionKey, req: Request, now: Instant) {
        let call_id = req.headers.call_id().unwrap_or_default();
        let found = self.calls.by_call_id.get(call_id).copied().and_then(|id| {
            let side = self.calls.calls.get(&id)?.side_of(call_id)?;
            Some((id, side))
        });
        let Some((id, side)) = found else {
            return self.respond(
                &ReplyTo::Transaction(key),
                &req.headers,
                StatusCode(481),
                "Call/Transaction Does Not Exist",
                &[],
                now,
            );
        };
        if let Some(call) = self.calls.calls.get_mut(&id) {
            call.on_request(side, key, req, now);
        }
        self.drive(id, now);
    }

    /// An ACK for a 2xx (the layer passes those to the TU).
    pub(super) fn call_ack(&mut self, req: &Request, now: Instant) {
        let call_id = req.headers.call_id().unwrap_or_default();
        let Some(&id) = self.calls.by_call_id.get(call_id) else {
            return;
        };
        if let Some(call) = self.calls.calls.get_mut(&id)
            && let Some(side) = call.side_of(call_id)
        {
            call.on_ack(side, req, now);
        }
        self.drive(id, now);
    }

    /// The caller's CANCEL matched its INVITE.
    pub(super) fn call_cancelled(&mut self, invite: &TransactionKey, now: Instant) {
        let Some(&id) = self.calls.by_server_invite.get(invite) else {
            return;
        };
        if let Some(call) = self.calls.calls.get_mut(&id) {
            call.on_cancel(now);
        }
        self.drive(id, now);
    }

    /// A response to one of the calls' client transactions.
    pub(super) fn call_response(
        &mut self,
        key: &TransactionKey,
        resp: sip::Response,
        now: Instant,
    ) {
        let Some(&id) = self.calls.by_client.get(key) else {
            return;
        };
        if let Some(call) = self.calls.calls.get_mut(&id) {
            call.on_response(key, resp, now);
        }
        self.drive(id, now);
    }

    /// A client transaction of a call timed out or failed.
    pub(super) fn call_timeout(&mut self, key: &TransactionKey, now: Instant) {
        let Some(&id) = self.calls.by_client.get(key) else {
            return;
        };
        if let Some(call) = self.calls.calls.get_mut(&id) {
            call.on_timeout(key, now);
        }
        self.drive(id, now);
    }

    /// A transaction ended: forget its key.
    pub(super) fn call_transaction_ended(&mut self, key: &TransactionKey) {
        if key.is_client() {
            self.calls.by_client.remove(key);
        } else {
            self.calls.by_server_invite.remove(key);
        }
    }

    /// The relay reported no media on a call.
    pub(super) fn call_media_timeout(&mut self, id: u64, now: Instant) {
        if let Some(call) = self.calls.calls.get_mut(&id) {
            info!(call = id, "media timeout, hanging up");
            call.on_media_timeout(now);
        }
        self.drive(id, now);
    }

    /// Ends every call (shutdown): BYE to answered legs, CANCEL and 503
    /// to ringing ones.
    pub(super) fn hang_up_all(&mut self, now: Instant) {
        let ids: Vec<u64> = self.calls.calls.keys().copied().collect();
        for id in ids {
            if let Some(call) = self.calls.calls.get_mut(&id) {
                call.hangup(503, "PBX shutting down", now);
            }
            self.drive(id, now);
        }
    }

    /// Runs the call timers that are due.
    pub(super) fn call_timers(&mut self, now: Instant) {
        while let Some(&(t, id)) = self.calls.timers.first() {
            if t > now {
                break;
            }
            self.calls.timers.remove(&(t, id));
            self.calls.deadlines.remove(&id);
            if let Some(call) = self.calls.calls.get_mut(&id) {
                call.handle_timeout(now);
            }
            self.drive(id, now);
        }
    }

    /// Carries out what call `id` asked for, then files its next deadline
    /// or removes it when finished.
    fn drive(&mut self, id: u64, now: Instant) {
        loop {
            let Some(output) = self.calls.calls.get_mut(&id).and_then(Call::poll_output) else {
                break;
            };
            match output {
                Output::Respond { key, response } => {
                    self.send_response(&ReplyTo::Transaction(key), response, now);
                }
                Output::Request { mut request, dest } => {
                    request
                        .headers
                        .push(HeaderName::UserAgent, self.user_agent.clone());
                    match self.layer.send_request(request, dest, now) {
                        Ok(key) => {
                            self.calls.by_client.insert(key, id);
                        }
                        Err(e) => debug!(call = id, error = %e, "request not sent"),
                    }
                }
                Output::Stateless { message, dest } => {
                    self.layer.send_stateless(&message, dest);
                }
                Output::Media(change) => {
                    if let Some(m) = self.calls.media.as_mut() {
                        m.apply(id, change);
                    }
                }
                Output::Transcoding(plan) => {
                    if let Some(m) = self.calls.media.as_mut() {
                        m.transcode(id, plan);
                    }
                }
                Output::Ended(end) => self.call_ended(end),
            }
        }
        let Some(call) = self.calls.calls.get(&id) else {
            return;
        };
        if call.is_finished() {
            let call = self.calls.calls.remove(&id).expect("present");
            let (a, b) = call.call_ids();
            self.calls.by_call_id.remove(a);
            self.calls.by_call_id.remove(b);
            if let Some(t) = self.calls.deadlines.remove(&id) {
                self.calls.timers.remove(&(t, id));
            }
            return;
        }
        let next = call.poll_timeout();
        let old = self.calls.deadlines.get(&id).copied();
        if next != old {
            if let Some(t) = old {
                self.calls.timers.remove(&(t, id));
                self.calls.deadlines.remove(&id);
            }
            if let Some(t) = next {
                self.calls.timers.insert((t, id));
                self.calls.deadlines.insert(id, t);
            }
        }
    }

    fn call_ended(&mut self, end: CallEnd) {
        self.calls.limits.end(end.id);
        let transcoded = self.calls.media.as_ref().and_then(|m| m.transcoded(end.id));
        let stats = self.calls.media.as_mut().and_then(|m| m.stop(end.id));
        info!(
            call = end.id,
            caller = %end.parties.caller,
            callee = %end.parties.callee,
            disposition = ?end.disposition,
            cause = end.cause.0,
            text = %end.cause.1,
            rtp_a_in = stats.map_or(0, |s| s.a.relay.packets_in),
            rtp_b_in = stats.map_or(0, |s| s.b.relay.packets_in),
            rtp_kernel = stats.map_or(0, |s| s.a.kernel_forwarded + s.b.kernel_forwarded),
            codec_a = end.codec.as_deref().unwrap_or("-"),
            codec_b = end.codec_b.as_deref().unwrap_or("-"),
            transcoded_a_in = transcoded.map_or(0, |t| t[0].converted),
            transcoded_b_in = transcoded.map_or(0, |t| t[1].converted),
            transcode_dropped = transcoded.map_or(0, |t| t[0].dropped + t[1].dropped),
            "call ended"
        );
        if tracing::enabled!(tracing::Level::DEBUG) {
            let (calls, relays, free) = self.calls.summary();
            debug!(calls, relays, ports_free = free, "call and port usage");
        }
        let quality = |q: rtp_relay::RtcpQuality| (q.reports > 0).then_some(q);
        let reported = [
            stats.and_then(|s| quality(s.a.quality)),
            stats.and_then(|s| quality(s.b.quality)),
        ];
        self.persist(Persist::Cdr(Box::new(end), reported));
    }
}
