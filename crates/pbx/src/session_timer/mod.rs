//! Session timers for one dialog leg (RFC 4028), sans-IO.
//!
//! - [`SessionExpires`] and [`MinSe`] parse and format the two headers
//!   (§4, §5).
//! - [`answer`] is the UAS side: it checks an INVITE against our Min-SE
//!   (422, §8.1), picks the interval and the refresher and says which
//!   headers go into the 2xx (§9).
//! - [`UacSession`] is the UAC side: headers for the INVITE (§7.1), the
//!   2xx (§7.2) and the 422 retry (§7.4).
//! - [`SessionTimer`] runs the negotiated timer: the refresher is told to
//!   refresh at half the interval (§7.2, §9), the other side ends the
//!   session at interval − min(32 s, interval/3) (§10).

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use sip::scan::{eq_ignore_case, parse_params, parse_u32, trim};
use sip::{HeaderName, Headers, Response, StatusCode};

/// The smallest session interval RFC 4028 allows (§4), in seconds.
pub const MIN_INTERVAL: u32 = 90;

/// 422 Session Interval Too Small (§6).
pub const INTERVAL_TOO_SMALL: StatusCode = StatusCode(422);

/// A malformed Session-Expires or Min-SE value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The delta-seconds is missing, not a number or out of range.
    #[error("the delta-seconds is not a number")]
    NotANumber,
    /// The value is below the 90 s floor of §4.
    #[error("{0} s is below the minimum of 90 s")]
    TooSmall(u32),
    /// The text after the number is not a parameter list.
    #[error("malformed parameters")]
    BadParam,
    /// `refresher` is neither `uac` nor `uas`.
    #[error("refresher must be uac or uas")]
    BadRefresher,
}

/// Which side of the dialog sends the refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The side that sent the INVITE.
    Uac,
    /// The side that answered it.
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

fn parse_delta(s: &[u8]) -> Result<u32, HeaderError> {
    let n = parse_u32(s).ok_or(HeaderError::NotANumber)?;
    if n < MIN_INTERVAL {
        return Err(HeaderError::TooSmall(n));
    }
    Ok(n)
}

/// `Session-Expires: delta-seconds [;refresher=uac|uas]` (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// The session interval in seconds.
    pub interval: u32,
    /// Who refreshes, when named.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parses a header value. Unknown parameters are ignored (§4 allows
    /// extensions).
    pub fn parse(value: &[u8]) -> Result<SessionExpires, HeaderError> {
        let value = trim(value);
        let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
        let interval = parse_delta(trim(&value[..end]))?;
        let mut refresher = None;
        for p in parse_params(&value[end..]).map_err(|_| HeaderError::BadParam)? {
            if eq_ignore_case(p.name, b"refresher") {
                refresher = Some(match p.value {
                    Some(v) if eq_ignore_case(v, b"uac") => Refresher::Uac,
                    Some(v) if eq_ignore_case(v, b"uas") => Refresher::Uas,
                    _ => return Err(HeaderError::BadRefresher),
                });
            }
        }
        Ok(SessionExpires {
            interval,
            refresher,
        })
    }
}

impl fmt::Display for SessionExpires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.interval)?;
        if let Some(r) = self.refresher {
            write!(f, ";refresher={}", r.as_str())?;
        }
        Ok(())
    }
}

/// `Min-SE: delta-seconds` (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinSe(pub u32);

impl MinSe {
    /// Parses a header value; generic parameters are ignored.
    pub fn parse(value: &[u8]) -> Result<MinSe, HeaderError> {
        let value = trim(value);
        let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
        parse_params(&value[end..]).map_err(|_| HeaderError::BadParam)?;
        parse_delta(trim(&value[..end])).map(MinSe)
    }
}

impl fmt::Display for MinSe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Our session timer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// The interval we ask for or accept at most, in seconds (default 1800).
    pub session_expires: u32,
    /// The smallest interval we accept, in seconds (default 90).
    pub min_se: u32,
    /// As UAC: run a timer (refreshing ourselves) even when the 2xx has no
    /// Session-Expires (default false).
    pub insist: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            session_expires: 1800,
            min_se: MIN_INTERVAL,
            insist: false,
        }
    }
}

/// The outcome of a negotiation: the interval and who refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The session interval in seconds.
    pub interval: u32,
    /// Who refreshes.
    pub refresher: Refresher,
}

impl Negotiated {
    /// Whether the side playing `role` sends the refreshes.
    pub fn we_refresh(&self, role: Refresher) -> bool {
        self.refresher == role
    }

    /// The interval as a duration.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.interval))
    }
}

fn supports_timer(headers: &Headers) -> bool {
    headers
        .list_values(&HeaderName::Supported)
        .iter()
        .any(|v| eq_ignore_case(trim(v), b"timer"))
}

fn min_se_of(headers: &Headers) -> Result<Option<MinSe>, HeaderError> {
    headers
        .get(&HeaderName::MinSe)
        .map(|v| MinSe::parse(v))
        .transpose()
}

/// The UAS decision on an INVITE (or UPDATE) carrying session timer
/// headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Answer [`INTERVAL_TOO_SMALL`] with `Min-SE: min_se` (§8.1).
    Reject {
        /// Our Min-SE, for the 422's Min-SE header.
        min_se: MinSe,
    },
    /// Accept; [`Accept::apply`] writes the 2xx headers.
    Accept(Accept),
}

/// An accepted session timer, as the UAS puts it in its 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// The interval and the refresher.
    pub negotiated: Negotiated,
    /// Whether the UAC supports timer, so the 2xx carries `Require: timer`.
    pub require_timer: bool,
}

impl Accept {
    /// Writes `Session-Expires` (and `Require: timer` when the UAC
    /// supports it) into the 2xx headers.
    pub fn apply(&self, headers: &mut Headers) {
        let se = SessionExpires {
            interval: self.negotiated.interval,
            refresher: Some(self.negotiated.refresher),
        };
        headers.set(HeaderName::SessionExpires, se.to_string());
        if self.require_timer {
            headers.push(HeaderName::Require, "timer");
        }
    }
}

/// The UAS side (§9): decides on an INVITE's headers. A malformed
/// Session-Expires or Min-SE is an error for a 400.
pub fn answer(config: &SessionConfig, request: &Headers) -> Result<Answer, HeaderError> {
    let uac_timer = supports_timer(request);
    let theirs = request
        .get(&HeaderName::SessionExpires)
        .map(|v| SessionExpires::parse(v))
        .transpose()?;
    let their_min = min_se_of(request)?.map_or(MIN_INTERVAL, |m| m.0);
    let floor = config.min_se.max(their_min);
    let (interval, refresher) = match theirs {
        Some(se) if se.interval < config.min_se => {
            return Ok(Answer::Reject {
                min_se: MinSe(config.min_se),
            });
        }
        // §9: a UAS may lower the interval, never below either Min-SE.
        Some(se) => (
            se.interval.min(config.session_expires.max(floor)),
            se.refresher,
        ),
        None => (config.session_expires.max(floor), None),
    };
    // A UAC without `timer` support never refreshes, whatever a proxy
    // wrote in the request.
    let refresher = match (uac_timer, refresher) {
        (false, _) => Refresher::Uas,
        (true, Some(r)) => r,
        (true, None) => Refresher::Uac,
    };
    Ok(Answer::Accept(Accept {
        negotiated: Negotiated {
            interval,
            refresher,
        },
        require_timer: uac_timer,
    }))
}

/// Why a 422 cannot be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    /// The response is not a 422.
    #[error("status {0} is not 422")]
    NotA422(StatusCode),
    /// The 422 has no usable Min-SE.
    #[error("422 without a valid Min-SE: {0}")]
    MinSe(#[from] HeaderError),
    /// The 422 asks for no more than we already sent: retrying would loop.
    #[error("422 Min-SE {asked} does not exceed the {sent} s already sent")]
    NoProgress {
        /// The 422's Min-SE.
        asked: u32,
        /// The interval of the rejected request.
        sent: u32,
    },
}

/// The UAC side of one leg (§7).
#[derive(Debug, Clone)]
pub struct UacSession {
    config: SessionConfig,
    interval: u32,
    min_se: u32,
}

impl UacSession {
    /// A UAC asking for the configured interval.
    pub fn new(config: SessionConfig) -> UacSession {
        let min_se = config.min_se.max(MIN_INTERVAL);
        UacSession {
            config,
            interval: config.session_expires.max(min_se),
            min_se,
        }
    }

    /// The interval the next request asks for, in seconds.
    pub fn interval(&self) -> u32 {
        self.interval
    }

    /// Writes `Session-Expires`, `Min-SE` and `Supported: timer` into an
    /// INVITE. The refresher is left to the UAS (§7.1).
    pub fn request_headers(&self, headers: &mut Headers) {
        let se = SessionExpires {
            interval: self.interval,
            refresher: None,
        };
        headers.set(HeaderName::SessionExpires, se.to_string());
        headers.set(HeaderName::MinSe, MinSe(self.min_se).to_string());
        if !supports_timer(headers) {
            headers.push(HeaderName::Supported, "timer");
        }
    }

    /// Takes a 422 (§7.4): the retry asks for the 422's Min-SE, which
    /// also becomes our Min-SE. Returns the new interval.
    pub fn handle_422(&mut self, response: &Response) -> Result<u32, RetryError> {
        if response.status != INTERVAL_TOO_SMALL {
            return Err(RetryError::NotA422(response.status));
        }
        let asked = min_se_of(&response.headers)?
            .ok_or(HeaderError::NotANumber)?
            .0;
        if asked <= self.interval {
            return Err(RetryError::NoProgress {
                asked,
                sent: self.interval,
            });
        }
        self.interval = asked;
        self.min_se = asked;
        Ok(asked)
    }

    /// Takes the 2xx (§7.2). `None`: no session timer on this leg.
    pub fn handle_success(&self, response: &Response) -> Result<Option<Negotiated>, HeaderError> {
        match response.headers.get(&HeaderName::SessionExpires) {
            Some(v) => {
                let se = SessionExpires::parse(v)?;
                Ok(Some(Negotiated {
                    interval: se.interval,
                    // A UAS that omits the refresher left it to us.
                    refresher: se.refresher.unwrap_or(Refresher::Uac),
                }))
            }
            None if self.config.insist => Ok(Some(Negotiated {
                interval: self.interval,
                refresher: Refresher::Uac,
            })),
            None => Ok(None),
        }
    }
}

/// What the running timer asks of the call engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Send a session refresh (re-INVITE or UPDATE) now.
    Refresh,
    /// The session expired without a refresh: send BYE.
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    Refresh(Instant),
    Expiry(Instant),
}

/// The session timer of one dialog leg.
#[derive(Debug, Clone)]
pub struct SessionTimer {
    started: Instant,
    interval: Duration,
    deadline: Option<Deadline>,
    events: VecDeque<Event>,
}

impl SessionTimer {
    /// Starts the timer after a 2xx. `we_refresh` when this side is the
    /// refresher.
    pub fn start(interval: Duration, we_refresh: bool, now: Instant) -> SessionTimer {
        let mut t = SessionTimer {
            started: now,
            interval,
            deadline: None,
            events: VecDeque::new(),
        };
        t.arm(now, interval, we_refresh);
        t
    }

    /// A refresh succeeded, in either direction: restart with the
    /// interval it negotiated.
    pub fn refreshed(&mut self, now: Instant, interval: Duration, we_refresh: bool) {
        self.arm(now, interval, we_refresh);
    }

    fn arm(&mut self, now: Instant, interval: Duration, we_refresh: bool) {
        self.started = now;
        self.interval = interval;
        self.deadline = Some(if we_refresh {
            Deadline::Refresh(now + interval / 2)
        } else {
            Deadline::Expiry(self.expiry())
        });
    }

    /// §10: the side that does not refresh gives up min(32 s, interval/3)
    /// before the interval ends.
    fn expiry(&self) -> Instant {
        let margin = Duration::from_secs(32).min(self.interval / 3);
        self.started + self.interval - margin
    }

    /// When [`SessionTimer::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline.map(|d| match d {
            Deadline::Refresh(at) | Deadline::Expiry(at) => at,
        })
    }

    /// Fires a due deadline. After a refresh request, the session still
    /// expires if no refresh succeeds in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.deadline {
            Some(Deadline::Refresh(at)) if now >= at => {
                self.events.push_back(Event::Refresh);
                self.deadline = Some(Deadline::Expiry(self.expiry()));
                self.handle_timeout(now);
            }
            Some(Deadline::Expiry(at)) if now >= at => {
                self.events.push_back(Event::Expired);
                self.deadline = None;
            }
            _ => {}
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
