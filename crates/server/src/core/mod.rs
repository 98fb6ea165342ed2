//! The SIP core task: one owner for the sans-IO state machines (transaction
//! layer, digest authenticator, brute-force guard, registrar), fed by the
//! transports and the clock, sending through [`Outbound`].
//!
//! Requests are checked in RFC 3261 §8.2 order: syntax (400), blocked
//! source (403 or silence), method (405/501), scheme/extensions/body
//! (416/420/415), then the method's handler. Unparseable input is answered
//! statelessly where the RFC asks for it and dropped otherwise.

mod auth;
mod calls;
mod directory;
mod limits;
mod recent;
mod register;
mod trunks;

pub use calls::Calls;
pub use directory::{Credentials, Directory, Profile};
pub use trunks::Routing;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pbx::UnixMs;
use pbx::guard::{Access, AuditEvent, Guard, GuardConfig};
use pbx::registrar::{Change, Registrar, RegistrarConfig};
use sip::auth::{Algorithm, DigestAuth};
use sip::build::{response_to, stamp_via, stateless_to_tag};
use sip::header::HeaderName;
use sip::transaction::{Event, Remote, TransactionKey, TransactionLayer};
use sip::validate::{Capabilities, check_register, check_request, check_response};
use sip::{Headers, Message, Method, Request, Response, StatusCode};
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::config::{BlockedResponse, Config, DigestAlgorithm};
use crate::transport::{Inbound, Outbound};

/// Methods served (the Allow header).
const ALLOW: &str = pbx::call::ALLOW;
/// Methods recognised but not served yet: 405 with Allow (§8.2.1).
const RECOGNISED: [Method; 4] = [
    Method::Subscribe,
    Method::Notify,
    Method::Refer,
    Method::Publish,
];
/// Methods that only exist within a call's dialog.
const IN_DIALOG: [Method; 5] = [
    Method::Bye,
    Method::Info,
    Method::Update,
    Method::Prack,
    Method::Message,
];

/// State changes for the database writer.
#[derive(Debug, Clone)]
pub enum Persist {
    /// A binding was added, refreshed, removed or expired.
    Binding(Change),
    /// A security event for the audit log.
    Audit(AuditEvent),
    /// A call ended: its detail record, and what each phone reported over
    /// RTCP about the stream it received (legs A and B).
    Cdr(Box<pbx::call::CallEnd>, [Option<rtp_relay::RtcpQuality>; 2]),
}

/// Control messages from the rest of the server.
#[derive(Debug)]
pub enum Control {
    /// Replace the directory (extensions changed).
    Directory(Directory),
    /// Replace the dialplan (database rules changed).
    Dialplan(pbx::dialplan::Dialplan),
}

/// How an answer leaves: through a server transaction, or statelessly.
///
/// REGISTER and OPTIONS are answered statelessly (RFC 3261 §8.2.7), as
/// Kamailio's registrar does: both are idempotent, a retransmission is
/// simply processed again, and no transaction has to be kept for Timer J
/// (32 s on UDP) per request, which at thousands of registrations a second
/// would be hundreds of thousands of live transactions.
#[derive(Debug, Clone)]
pub(crate) enum ReplyTo {
    /// Through this server transaction.
    Transaction(TransactionKey),
    /// Straight back to where the request came from.
    Stateless(Remote),
}

/// The core's state.
pub struct Core {
    layer: TransactionLayer,
    auth: DigestAuth,
    guard: Guard,
    registrar: Registrar,
    directory: Directory,
    caps: Capabilities,
    user_agent: bytes::Bytes,
    max_message_size: usize,
    silent_block: bool,
    out: Outbound,
    /// Changes waiting for the database writer, which collects them on its
    /// own schedule (no wake-up per change); `None` when nothing persists.
    persist: Option<Vec<Persist>>,
    /// The deadline the timer task sleeps until.
    armed: Option<Instant>,
    /// Final answers to recent REGISTERs, for their retransmissions.
    recent: recent::RecentReplies,
    /// Calls in progress.
    calls: Calls,
    /// Digest realm (also the host of the B legs' From and To).
    auth_realm: String,
    /// Dialplan and trunks.
    routing: Routing,
}

/// A random 64-bit value from the OS source (seeds for tags, branches,
/// Call-IDs, SSRCs; not for secrets).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u64::from_le_bytes(b)
}

/// Wall-clock milliseconds (for state that outlives the process).
pub fn unix_ms() -> UnixMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Core {
    /// A core configured from `cfg`.
    pub fn new(
        cfg: &Config,
        directory: Directory,
        out: Outbound,
        persist: bool,
        media: Option<crate::media::MediaManager>,
        now: Instant,
    ) -> Core {
        let t = &cfg.sip.timers;
        let layer = TransactionLayer::new(sip::transaction::Config {
            timers: sip::transaction::TimerConfig {
                t1: Duration::from_millis(t.t1_ms),
                t2: Duration::from_millis(t.t2_ms),
                t4: Duration::from_millis(t.t4_ms),
            },
            tag_seed: random_u64(),
        });
        let sec = &cfg.security;
        let guard = Guard::new(GuardConfig {
            max_failures: sec.max_failures,
            window_ms: sec.window_s * 1000,
            block_ms: sec.block_s * 1000,
            trusted: sec
                .trusted_networks
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            silent: sec.blocked_response == BlockedResponse::Silent,
        });
        let r = &cfg.registrar;
        let registrar = Registrar::new(RegistrarConfig {
            min_expires: r.min_expires_s,
            max_expires: r.max_expires_s,
            default_expires: r.default_expires_s,
            max_contacts: r.max_contacts,
        });
        Core {
            layer,
            auth: DigestAuth::new(
                &cfg.sip.realm,
                sec.digest_algorithms
                    .iter()
                    .map(|a| match a {
                        DigestAlgorithm::Md5 => Algorithm::Md5,
                        DigestAlgorithm::Sha256 => Algorithm::Sha256,
                    })
                    .collect(),
                now,
                Duration::from_secs(sec.nonce_ttl_s),
            ),
            guard,
            registrar,
            directory,
            caps: Capabilities::default(),
            user_agent: bytes::Bytes::from(cfg.sip.user_agent.clone()),
            max_message_size: cfg.sip.max_message_size,
            silent_block: sec.blocked_response == BlockedResponse::Silent,
            out,
            persist: persist.then(Vec::new),
            armed: None,
            recent: recent::RecentReplies::new(32_768),
            calls: Calls::new(
                pbx::call::CallConfig {
                    no_answer: Duration::from_secs(cfg.calls.no_answer_timeout_s),
                    t1: Duration::from_millis(t.t1_ms),
                    t2: Duration::from_millis(t.t2_ms),
                    codecs: cfg.calls.codecs.clone(),
                    transcodable: cfg.calls.transcodable_codecs(),
                    session_timers: cfg.calls.session_config(),
                },
                media,
                &cfg.sip.listen,
            ),
            auth_realm: cfg.sip.realm.clone(),
            routing: Routing::new(&cfg.dialplan, &cfg.trunks),
        }
    }

    /// Starts what runs on its own: the trunks' registrations.
    pub fn start(&mut self, now: Instant, wall: UnixMs) {
        self.start_trunk_registrations(now);
        self.flush(now, wall);
    }

    /// Calls in progress.
    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    /// The registrar (for restoring persisted bindings at start-up).
    pub fn registrar_mut(&mut self) -> &mut Registrar {
        &mut self.registrar
    }

    /// Applies a control message.
    pub fn control(&mut self, c: Control) {
        match c {
            Control::Directory(d) => self.directory = d,
            Control::Dialplan(d) => self.routing.set_dialplan(d),
        }
    }

    /// The earliest moment the core must run again.
    pub fn poll_timeout(&self, now: Instant, wall: UnixMs) -> Option<Instant> {
        let to_instant = |ms: UnixMs| now + Duration::from_millis(ms.saturating_sub(wall));
        [
            self.layer.poll_timeout(),
            self.registrar.poll_timeout().map(to_instant),
            self.guard.poll_timeout().map(to_instant),
            self.calls.next_deadline(),
            self.trunk_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs whatever is due.
    pub fn handle_timeout(&mut self, now: Instant, wall: UnixMs) {
        self.layer.handle_timeout(now);
        for change in self.registrar.handle_timeout(wall) {
            debug!(aor = %change.binding.aor, contact = %change.binding.contact, "binding expired");
            self.persist(Persist::Binding(change));
        }
        self.guard.handle_timeout(wall);
        self.call_timers(now);
        self.trunk_timers(now);
        self.flush(now, wall);
    }

    /// A relay event of call `id`.
    pub fn handle_media_event(
        &mut self,
        id: u64,
        ev: rtp_relay::SessionEvent,
        now: Instant,
        wall: UnixMs,
    ) {
        if ev.event == media::rtp::RelayEvent::MediaTimeout {
            self.call_media_timeout(id, now);
        }
        self.flush(now, wall);
    }

    /// Handles one message from the network.
    pub fn handle_inbound(&mut self, msg: Inbound, now: Instant, wall: UnixMs) {
        let source = msg.source;
        let parsed = match Message::parse_with_limit(msg.data, self.max_message_size) {
            Ok(m) => m,
            Err(e) => {
                debug!(source = %source.addr, error = %e, "unparseable message");
                if let (Some(status), Some(mut headers)) = (e.status(), e.headers) {
                    stamp_via(&mut headers, source.addr);
                    self.stateless(&headers, status, e.detail, &[], source);
                }
                return;
            }
        };
        match parsed {
            Message::Request(mut req) => {
                stamp_via(&mut req.headers, source.addr);
                if req.method != Method::Ack {
                    if let Err(r) = check_request(&req) {
                        debug!(source = %source.addr, reason = r.reason, "request rejected");
                        self.stateless(&req.headers, r.status, r.reason, &r.headers, source);
                        return;
                    }
                    match self.guard.check(source.addr.ip(), wall) {
                        Access::Allowed => {}
                        Access::Forbidden => {
                            self.stateless(&req.headers, StatusCode(403), "Forbidden", &[], source);
                            self.flush(now, wall);
                            return;
                        }
                        Access::Ignore => {
                            self.flush(now, wall);
                            return;
                        }
                    }
                }
                let dialog_options = req.method == Method::Options
                    && req.headers.to().is_some_and(|t| t.tag().is_some());
                if matches!(req.method, Method::Register | Method::Options) && !dialog_options {
                    self.dispatch(ReplyTo::Stateless(source), req, source, now, wall);
                } else if let Err(e) = self.layer.handle_request(req, source, now) {
                    debug!(source = %source.addr, error = %e, "request refused by the transaction layer");
                }
            }
            Message::Response(resp) => {
                if let Err(reason) = check_response(&resp) {
                    debug!(source = %source.addr, reason, "malformed response dropped");
                    return;
                }
                if let Err(e) = self.layer.handle_response(resp, source, now) {
                    debug!(source = %source.addr, error = %e, "stray response dropped");
                }
            }
        }
        self.flush(now, wall);
    }

    /// Messages of these transactions could not be delivered (a TCP
    /// connect failed after the send was queued): they fail now.
    pub fn transport_errors(&mut self, keys: &[TransactionKey], now: Instant, wall: UnixMs) {
        for key in keys {
            self.layer.handle_transport_error(key);
        }
        self.flush(now, wall);
    }

    /// Sends what the layer queued and dispatches its events.
    fn flush(&mut self, now: Instant, wall: UnixMs) {
        loop {
            while let Some(t) = self.layer.poll_transmit() {
                if !self.out.send_for(t.dest, &t.bytes, t.key.as_ref())
                    && let Some(key) = t.key
                {
                    self.layer.handle_transport_error(&key);
                }
            }
            let Some(event) = self.layer.poll_event() else {
                break;
            };
            match event {
                Event::Request {
                    key,
                    request,
                    source,
                } => self.dispatch(ReplyTo::Transaction(key), request, source, now, wall),
                Event::Response { key, response } => {
                    if !self.trunk_response(&key, &response, now) {
                        self.call_response(&key, response, now);
                    }
                }
                Event::Ack { request, .. } => self.call_ack(&request, now),
                Event::Cancelled { invite, .. } => self.call_cancelled(&invite, now),
                Event::Timeout { key, .. } | Event::TransportError { key } => {
                    if key.is_client() && !self.trunk_failure(&key, now) {
                        self.call_timeout(&key, now);
                    }
                }
                Event::Terminated { key } => {
                    self.call_transaction_ended(&key);
                    self.trunk_transaction_ended(&key);
                }
            }
        }
        while let Some(ev) = self.guard.poll_event() {
            if let AuditEvent::Lockout {
                source,
                username,
                until,
                ..
            } = &ev
            {
                warn!(%source, %username, until, "source blocked after repeated authentication failures");
            }
            self.persist(Persist::Audit(ev));
        }
    }

    fn dispatch(
        &mut self,
        reply: ReplyTo,
        req: Request,
        source: Remote,
        now: Instant,
        wall: UnixMs,
    ) {
        let known = matches!(
            req.method,
            Method::Options | Method::Register | Method::Invite
        ) || IN_DIALOG.contains(&req.method);
        if !known {
            let (status, reason) = if RECOGNISED.contains(&req.method) {
                (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
            } else {
                (StatusCode::NOT_IMPLEMENTED, "Not Implemented")
            };
            let allow = [(HeaderName::Allow, ALLOW.to_string())];
            self.respond(&reply, &req.headers, status, reason, &allow, now);
            return;
        }
        if let Err(r) = self.caps.check(&req) {
            self.respond(&reply, &req.headers, r.status, r.reason, &r.headers, now);
            return;
        }
        let in_dialog = req.headers.to().is_some_and(|t| t.tag().is_some());
        if let ReplyTo::Transaction(key) = &reply
            && (IN_DIALOG.contains(&req.method) || (in_dialog && req.method == Method::Options))
        {
            return self.in_dialog(key.clone(), req, now);
        }
        match req.method {
            Method::Invite => self.invite(reply, req, source, now, wall),
            Method::Options => {
                let extra = [
                    (HeaderName::Allow, ALLOW.to_string()),
                    (HeaderName::Accept, "application/sdp".to_string()),
                    (HeaderName::Supported, self.caps.extensions.join(", ")),
                ];
                self.respond(&reply, &req.headers, StatusCode::OK, "OK", &extra, now);
            }
            _ => match check_register(&req) {
                Ok(()) => self.register(reply, req, source, now, wall),
                Err(r) => self.respond(&reply, &req.headers, r.status, r.reason, &r.headers, now),
            },
        }
    }

    fn finish(&self, mut resp: Response) -> Response {
        resp.headers
            .push(HeaderName::Server, self.user_agent.clone());
        resp
    }

    /// Answers `request`.
    fn respond(
        &mut self,
        reply: &ReplyTo,
        request: &Headers,
        status: StatusCode,
        reason: &str,
        extra: &[(HeaderName, String)],
        now: Instant,
    ) {
        let tag = stateless_to_tag(request);
        let mut resp = response_to(request, status, reason, Some(&tag));
        for (name, value) in extra {
            resp.headers.push(name.clone(), value.clone());
        }
        self.send_response(reply, resp, now);
    }

    /// Sends a final answer to a REGISTER and remembers it for
    /// retransmissions of that request.
    fn send_remembered(
        &mut self,
        reply: &ReplyTo,
        request: &Headers,
        resp: Response,
        now: Instant,
    ) {
        let ReplyTo::Stateless(dest) = reply else {
            return self.send_response(reply, resp, now);
        };
        let key = self.recent.key(request, dest);
        let bytes = Message::Response(self.finish(resp)).to_bytes();
        self.out.send(*dest, &bytes);
        self.recent.insert(key, bytes);
    }

    fn send_response(&mut self, reply: &ReplyTo, resp: Response, now: Instant) {
        let resp = self.finish(resp);
        match reply {
            ReplyTo::Transaction(key) => {
                if let Err(e) = self.layer.send_response(key, resp, now) {
                    debug!(error = %e, "response not sent");
                }
            }
            ReplyTo::Stateless(dest) => {
                self.out.send(*dest, &Message::Response(resp).to_bytes());
            }
        }
    }

    /// Answers outside any transaction (the request could not have one).
    fn stateless(
        &mut self,
        headers: &Headers,
        status: StatusCode,
        reason: &str,
        extra: &[(HeaderName, String)],
        source: Remote,
    ) {
        // Without a Via nothing identifies the request to its sender; the
        // other headers are copied when present (RFC 4475 insuf lacks
        // To, From and Call-ID and still deserves its 400).
        if headers.get(&HeaderName::Via).is_none() {
            return;
        }
        let tag = stateless_to_tag(headers);
        let mut resp = response_to(headers, status, reason, Some(&tag));
        for (name, value) in extra {
            resp.headers.push(name.clone(), value.clone());
        }
        let resp = self.finish(resp);
        // Symmetric response routing, as the transaction layer does: back
        // to where the request came from (RFC 3581 behaviour even without
        // rport; the Via of a request that failed validation may be junk).
        let dest = source;
        self.out.send(dest, &Message::Response(resp).to_bytes());
    }

    fn persist(&mut self, p: Persist) {
        if let Some(pending) = &mut self.persist {
            pending.push(p);
        }
    }

    /// Hands the pending changes to the database writer.
    pub fn take_persist(&mut self) -> Vec<Persist> {
        self.persist
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

/// Granularity of the core's timers.
pub const TIMER_TICK: Duration = Duration::from_millis(10);

/// The core shared by the transport tasks and the timer task. Messages are
/// handled on the task that received them (no hand-off between threads on
/// the hot path); the timer task sleeps until the core's next deadline and
/// is woken when a message brings that deadline forward.
pub struct SharedCore {
    core: Mutex<Core>,
    timer: Notify,
}

impl SharedCore {
    /// Wraps a core.
    pub fn new(core: Core) -> Arc<SharedCore> {
        Arc::new(SharedCore {
            core: Mutex::new(core),
            timer: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock would be a bug; keep serving.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles one message from a transport.
    pub fn handle(&self, msg: Inbound) {
        let (now, wall) = (Instant::now(), unix_ms());
        let mut core = self.lock();
        core.handle_inbound(msg, now, wall);
        self.rearm(core, now, wall);
    }

    /// Wakes the timer task if the core's next deadline moved earlier.
    fn rearm(&self, mut core: MutexGuard<'_, Core>, now: Instant, wall: UnixMs) {
        let next = core.poll_timeout(now, wall);
        // Wake the timer task only for a deadline clearly earlier than the
        // one it sleeps until (it serves a TIMER_TICK grid anyway).
        if next.is_some_and(|n| core.armed.is_none_or(|a| n + TIMER_TICK <= a)) {
            core.armed = next;
            drop(core);
            self.timer.notify_one();
        }
    }

    /// Fails these transactions (see [`Core::transport_errors`]).
    pub fn transport_errors(&self, keys: &[TransactionKey]) {
        let (now, wall) = (Instant::now(), unix_ms());
        let mut core = self.lock();
        core.transport_errors(keys, now, wall);
        self.rearm(core, now, wall);
    }

    /// Applies a control message.
    pub fn control(&self, c: Control) {
        self.lock().control(c);
    }

    /// Starts what runs on its own (see [`Core::start`]).
    pub fn start(&self) {
        let (now, wall) = (Instant::now(), unix_ms());
        let mut core = self.lock();
        core.start(now, wall);
        self.rearm(core, now, wall);
    }

    /// Feeds relay events to the calls until the channel closes.
    pub async fn run_media_events(
        self: Arc<Self>,
        mut events: tokio::sync::mpsc::UnboundedReceiver<crate::media::CallMediaEvent>,
    ) {
        while let Some((id, ev)) = events.recv().await {
            let (now, wall) = (Instant::now(), unix_ms());
            let mut core = self.lock();
            core.handle_media_event(id, ev, now, wall);
            self.rearm(core, now, wall);
        }
    }

    /// Hangs up every call (at shutdown, while the transports still send).
    pub fn hang_up_all(&self) -> usize {
        let (now, wall) = (Instant::now(), unix_ms());
        let mut core = self.lock();
        let n = core.calls().summary().0;
        core.hang_up_all(now);
        core.flush(now, wall);
        n
    }

    /// Calls, relays and free RTP port pairs (see [`Calls::summary`]).
    pub fn call_summary(&self) -> (usize, usize, usize) {
        self.lock().calls().summary()
    }

    /// Takes the changes waiting for the database writer.
    pub fn take_persist(&self) -> Vec<Persist> {
        self.lock().take_persist()
    }

    /// Runs the core's timers forever. Deadlines are served on a
    /// [`TIMER_TICK`] grid: under load thousands of transaction timers fall
    /// due every second, and waking once per tick for all of them costs far
    /// less than once per timer (SIP timers are hundreds of milliseconds).
    pub async fn run_timers(self: Arc<Self>) {
        let mut last_run = Instant::now();
        loop {
            let deadline = {
                let now = Instant::now();
                let mut core = self.lock();
                let d = core
                    .poll_timeout(now, unix_ms())
                    .unwrap_or(now + Duration::from_secs(3600))
                    .max(last_run + TIMER_TICK);
                core.armed = Some(d);
                d
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => {
                    last_run = Instant::now();
                    self.lock().handle_timeout(last_run, unix_ms());
                }
                _ = self.timer.notified() => {}
            }
        }
    }
}
