//! Outbound registration of a SIP trunk (RFC 3261 §10.2), with the client
//! side of digest authentication (RFC 2617, RFC 7616, RFC 8760).
//!
//! Sans-IO: a [`TrunkRegistration`] builds the REGISTER requests
//! ([`TrunkRegistration::poll_request`]); the caller sends each through its
//! transaction layer and feeds back the final response
//! ([`TrunkRegistration::handle_response`]) or a transaction timeout
//! ([`TrunkRegistration::handle_failure`]). Refreshes and retries run off
//! [`TrunkRegistration::poll_timeout`] / [`TrunkRegistration::handle_timeout`],
//! and what the rest of the PBX must know comes out of
//! [`TrunkRegistration::poll_event`].
//!
//! Choices:
//! - One Call-ID and From tag for the registration's lifetime, CSeq +1 per
//!   request (§10.2.4), a new branch per request.
//! - A nonce is reused for refreshes with nc+1 until the server challenges
//!   again. A challenge answering credentials freshly computed for the
//!   previous challenge, without `stale=true`, means wrong credentials.
//! - Refresh at half the granted expiry: earlier than expiry−30 s for every
//!   expiry of 60 s and more, and still before expiry for short ones.
//! - Failures retry after a backoff that doubles from `retry_min` up to
//!   `retry_max`; it resets on success.

mod digest;

#[cfg(test)]
mod tests;

pub use digest::Challenge;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip::header::{HeaderName, NameAddr};
use sip::transaction::Transport;
use sip::{Headers, Method, Request, Response, StatusCode, Uri};

/// A password that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One trunk's registration settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// The registrar's URI: the Request-URI and the digest `uri`
    /// (e.g. `sip:sip.provider.example`).
    pub registrar: Uri,
    /// The transport the caller sends over (named in the Via).
    pub transport: Transport,
    /// The address-of-record, `sip:user@domain` (From and To).
    pub aor: Uri,
    /// The digest username (often the AOR user).
    pub username: String,
    /// The digest password.
    pub password: Secret,
    /// Only answer challenges for this realm; any realm when `None`.
    pub realm: Option<String>,
    /// The expiry asked for, in seconds (default 3600).
    pub expires: u32,
    /// Our Contact URI.
    pub contact: Uri,
    /// The Via sent-by (`host:port` of the local socket).
    pub sent_by: String,
    /// The first retry delay after a failure (default 30 s).
    pub retry_min: Duration,
    /// The longest retry delay (default 600 s).
    pub retry_max: Duration,
}

impl TrunkConfig {
    /// Settings with the defaults for expiry and backoff.
    pub fn new(
        registrar: Uri,
        transport: Transport,
        aor: Uri,
        username: &str,
        password: Secret,
        contact: Uri,
        sent_by: &str,
    ) -> TrunkConfig {
        TrunkConfig {
            registrar,
            transport,
            aor,
            username: username.to_string(),
            password,
            realm: None,
            expires: 3600,
            contact,
            sent_by: sent_by.to_string(),
            retry_min: Duration::from_secs(30),
            retry_max: Duration::from_secs(600),
        }
    }
}

/// Where a registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkState {
    /// Not started.
    Idle,
    /// A REGISTER is outstanding (first registration or a retry).
    Registering,
    /// Registered; a refresh is scheduled.
    Registered {
        /// The granted expiry in seconds.
        expires: u32,
    },
    /// The last attempt failed; a retry is scheduled.
    Failed,
    /// The removing REGISTER (Expires: 0) is outstanding.
    Unregistering,
    /// Stopped: nothing scheduled.
    Stopped,
}

/// What the rest of the PBX must know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrunkEvent {
    /// The registrar accepted the binding (first time or refresh).
    Registered {
        /// The granted expiry in seconds.
        expires: u32,
    },
    /// An attempt failed; a retry is scheduled.
    Failed {
        /// The final status (408 for a transaction timeout).
        status: StatusCode,
        /// Why, for logs and the admin view.
        reason: String,
    },
    /// The binding was removed (or the registration was stopped before
    /// one existed).
    Unregistered,
}

/// The credentials currently in use.
#[derive(Debug, Clone)]
struct Auth {
    challenge: Challenge,
    /// `Proxy-Authorization` (407) rather than `Authorization` (401).
    proxy: bool,
    /// The last nonce count sent.
    nc: u32,
    /// Whether the credentials on the outstanding request answer a
    /// challenge just received (not a reuse of an older nonce).
    fresh: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Refresh,
    Retry,
}

/// The outbound registration of one trunk.
#[derive(Debug)]
pub struct TrunkRegistration {
    config: TrunkConfig,
    state: TrunkState,
    seed: u64,
    counter: u64,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The expiry asked for now (raised by a 423).
    expires: u32,
    /// The CSeq of the outstanding REGISTER.
    outstanding: Option<u32>,
    /// Whether the outstanding REGISTER carried credentials.
    sent_auth: bool,
    auth: Option<Auth>,
    /// Challenges answered since the last final outcome; bounds a server
    /// that says `stale=true` forever.
    challenges: u8,
    backoff: Duration,
    timer: Option<(Instant, Timer)>,
    requests: VecDeque<Request>,
    events: VecDeque<TrunkEvent>,
}

/// Challenges answered in a row before giving up.
const MAX_CHALLENGES: u8 = 3;

/// SplitMix64: spreads the caller's seed over identifiers that must not
/// repeat (branch, cnonce) without owning a random source.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl TrunkRegistration {
    /// A registration for `config`. `seed` must differ per trunk and per
    /// process start (take it from the system RNG): Call-ID, tag, branches
    /// and client nonces derive from it.
    pub fn new(config: TrunkConfig, seed: u64) -> TrunkRegistration {
        let host = config
            .sent_by
            .rsplit_once(':')
            .map_or(config.sent_by.as_str(), |(h, _)| h)
            .to_string();
        TrunkRegistration {
            call_id: format!("{:016x}@{host}", mix(seed)),
            from_tag: format!("{:012x}", mix(seed ^ 0x0074_6167) & 0xffff_ffff_ffff),
            expires: config.expires,
            backoff: config.retry_min,
            config,
            state: TrunkState::Idle,
            seed,
            counter: 0,
            cseq: 0,
            outstanding: None,
            sent_auth: false,
            auth: None,
            challenges: 0,
            timer: None,
            requests: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Where the registration stands.
    pub fn state(&self) -> TrunkState {
        self.state
    }

    /// The settings.
    pub fn config(&self) -> &TrunkConfig {
        &self.config
    }

    /// Sends the first REGISTER.
    pub fn start(&mut self, _now: Instant) {
        if matches!(self.state, TrunkState::Idle | TrunkState::Stopped) {
            self.state = TrunkState::Registering;
            self.expires = self.config.expires;
            self.send_register();
        }
    }

    /// Removes the binding: a REGISTER with Expires: 0, then
    /// [`TrunkEvent::Unregistered`]. Without a binding to remove (never
    /// registered, or failing) it stops at once.
    pub fn stop(&mut self, _now: Instant) {
        self.timer = None;
        match self.state {
            TrunkState::Registered { .. } | TrunkState::Registering => {
                self.state = TrunkState::Unregistering;
                self.send_register();
            }
            TrunkState::Idle | TrunkState::Failed => {
                self.outstanding = None;
                self.state = TrunkState::Stopped;
                self.events.push_back(TrunkEvent::Unregistered);
            }
            TrunkState::Unregistering | TrunkState::Stopped => {}
        }
    }

    /// A final response to the outstanding REGISTER. Responses to older
    /// requests (other CSeq or Call-ID) and provisional ones are ignored.
    pub fn handle_response(&mut self, resp: &Response, now: Instant) {
        let Some(cseq) = self.outstanding else {
            return;
        };
        let ours = resp
            .headers
            .cseq()
            .is_some_and(|c| c.seq == cseq && c.method == Method::Register)
            && resp.headers.call_id() == Some(self.call_id.as_str());
        if !ours || !resp.status.is_final() {
            return;
        }
        self.outstanding = None;
        match resp.status.0 {
            200..=299 => self.on_success(resp, now),
            401 | 407 => self.on_challenge(resp, now),
            423 => self.on_too_brief(resp, now),
            _ => self.fail(resp.status, resp.reason_str().into_owned(), now),
        }
    }

    /// The transaction for the outstanding REGISTER timed out or its
    /// transport failed (handled as 408, §8.1.3.1).
    pub fn handle_failure(&mut self, now: Instant) {
        if self.outstanding.take().is_some() {
            self.fail(
                StatusCode::REQUEST_TIMEOUT,
                "Request Timeout".to_string(),
                now,
            );
        }
    }

    /// Runs a due refresh or retry.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some((at, timer)) = self.timer else {
            return;
        };
        if now < at {
            return;
        }
        self.timer = None;
        if timer == Timer::Retry {
            self.state = TrunkState::Registering;
        }
        self.send_register();
    }

    /// The next REGISTER to send.
    pub fn poll_request(&mut self) -> Option<Request> {
        self.requests.pop_front()
    }

    /// When [`TrunkRegistration::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer.map(|(at, _)| at)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TrunkEvent> {
        self.events.pop_front()
    }

    fn on_success(&mut self, resp: &Response, now: Instant) {
        if self.state == TrunkState::Unregistering {
            self.finish_stop();
            return;
        }
        self.challenges = 0;
        if let Some(a) = &mut self.auth {
            a.fresh = false;
        }
        let granted = self.granted_expires(&resp.headers).unwrap_or(self.expires);
        if granted == 0 {
            // The registrar dropped our binding although we asked to keep it.
            self.fail(resp.status, "Binding not kept (expires=0)".to_string(), now);
            return;
        }
        self.backoff = self.config.retry_min;
        self.state = TrunkState::Registered { expires: granted };
        self.events
            .push_back(TrunkEvent::Registered { expires: granted });
        let after = Duration::from_secs(u64::from((granted / 2).max(1)));
        self.timer = Some((now + after, Timer::Refresh));
    }

    /// The expiry of the Contact matching ours, else the Expires header.
    fn granted_expires(&self, h: &Headers) -> Option<u32> {
        let mine = self.config.contact.as_str();
        let from_contact = h
            .list_values(&HeaderName::Contact)
            .into_iter()
            .filter_map(|v| NameAddr::parse(v).ok())
            .find(|na| na.uri.as_str().eq_ignore_ascii_case(mine))
            .and_then(|na| na.param("expires").flatten().and_then(parse_secs));
        from_contact.or_else(|| h.get_str(&HeaderName::Expires).and_then(parse_secs))
    }

    fn on_challenge(&mut self, resp: &Response, now: Instant) {
        let proxy = resp.status.0 == 407;
        let name = if proxy {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        // RFC 8760 §2.4: the server lists its preferred algorithm first; take
        // the first challenge we can answer for the configured realm.
        let challenge = resp
            .headers
            .get_all(&name)
            .filter_map(|v| Challenge::parse(v))
            .find(|c| self.config.realm.as_deref().is_none_or(|r| r == c.realm));
        let Some(challenge) = challenge else {
            self.fail(resp.status, "No usable digest challenge".to_string(), now);
            return;
        };
        if self.challenges >= MAX_CHALLENGES {
            self.auth = None;
            self.fail(resp.status, "Too many challenges".to_string(), now);
            return;
        }
        if self.sent_auth
            && !challenge.stale
            && self
                .auth
                .as_ref()
                .is_some_and(|a| a.fresh || a.challenge.nonce == challenge.nonce)
        {
            self.auth = None;
            self.fail(resp.status, "Authentication failed".to_string(), now);
            return;
        }
        self.challenges += 1;
        self.auth = Some(Auth {
            challenge,
            proxy,
            nc: 0,
            fresh: true,
        });
        self.send_register();
    }

    fn on_too_brief(&mut self, resp: &Response, now: Instant) {
        let min = resp
            .headers
            .get_str(&HeaderName::MinExpires)
            .and_then(parse_secs);
        match min {
            Some(min) if min > self.expires && self.state != TrunkState::Unregistering => {
                self.expires = min;
                self.send_register();
            }
            _ => self.fail(resp.status, resp.reason_str().into_owned(), now),
        }
    }

    fn fail(&mut self, status: StatusCode, reason: String, now: Instant) {
        self.challenges = 0;
        if self.state == TrunkState::Unregistering {
            // Nothing more to try: the binding expires on its own.
            self.finish_stop();
            return;
        }
        self.state = TrunkState::Failed;
        self.events.push_back(TrunkEvent::Failed { status, reason });
        self.timer = Some((now + self.backoff, Timer::Retry));
        self.backoff = (self.backoff * 2).min(self.config.retry_max);
    }

    fn finish_stop(&mut self) {
        self.state = TrunkState::Stopped;
        self.timer = None;
        self.events.push_back(TrunkEvent::Unregistered);
    }

    fn next_unique(&mut self) -> u64 {
        self.counter += 1;
        mix(self
            .seed
            .wrapping_add(self.counter.wrapping_mul(0x2545_f491_4f6c_dd1d)))
    }

    fn send_register(&mut self) {
        // Only the newest request matters; one not yet taken is superseded.
        self.requests.clear();
        self.cseq += 1;
        let branch = self.next_unique();
        let expires = if self.state == TrunkState::Unregistering {
            0
        } else {
            self.expires
        };
        let c = &self.config;
        let mut h = Headers::new();
        h.push(
            HeaderName::Via,
            format!(
                "SIP/2.0/{} {};branch=z9hG4bK{branch:016x};rport",
                c.transport.as_str(),
                c.sent_by
            ),
        );
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!("<{}>;tag={}", c.aor.as_str(), self.from_tag),
        );
        h.push(HeaderName::To, format!("<{}>", c.aor.as_str()));
        h.push(HeaderName::CallId, self.call_id.clone());
        h.push(HeaderName::CSeq, format!("{} REGISTER", self.cseq));
        h.push(
            HeaderName::Contact,
            format!("<{}>;expires={expires}", c.contact.as_str()),
        );
        h.push(HeaderName::Expires, expires.to_string());
        let cnonce = format!("{:016x}", self.next_unique());
        let c = &self.config;
        self.sent_auth = false;
        if let Some(a) = &mut self.auth {
            a.nc += 1;
            let value = a.challenge.answer(
                &c.username,
                c.password.expose(),
                "REGISTER",
                c.registrar.as_str(),
                a.nc,
                &cnonce,
            );
            let name = if a.proxy {
                HeaderName::ProxyAuthorization
            } else {
                HeaderName::Authorization
            };
            h.push(name, value);
            self.sent_auth = true;
        }
        h.push(HeaderName::ContentLength, "0");
        self.outstanding = Some(self.cseq);
        self.requests.push_back(Request {
            method: Method::Register,
            uri: c.registrar.clone(),
            headers: h,
            body: Bytes::new(),
        });
    }
}

fn parse_secs(s: &str) -> Option<u32> {
    sip::scan::parse_u32(sip::scan::trim(s.as_bytes()))
}
