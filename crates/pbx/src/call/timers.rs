//! Session timers on both legs of a call (RFC 4028), each leg negotiated
//! on its own: on leg A the PBX is the UAS of the caller's INVITE, on leg B
//! the UAC of its own. Where the PBX is the refresher it sends UPDATE
//! (without SDP) at half the interval; where the phone is, a refresh must
//! arrive before the interval ends, or the call is hung up. A re-INVITE
//! or UPDATE forwarded through the call refreshes both legs.

use std::time::Instant;

use sip::header::HeaderName;
use sip::transaction::TransactionKey;
use sip::{Headers, Method, Response, StatusCode};

use super::{Call, Output, Phase, Side};
use crate::session_timer::{
    self, Answer, Event, HeaderError, Negotiated, Refresher, SessionConfig, SessionExpires,
    SessionTimer, UacSession,
};

/// Session timer state of a call.
#[derive(Debug, Default)]
pub(super) struct Timers {
    /// Settings; `None` disables session timers.
    config: Option<SessionConfig>,
    /// What leg A's INVITE negotiated (applied to its 2xx).
    a_accept: Option<session_timer::Accept>,
    /// Our UAC side on leg B (request headers, 422 retries).
    b_uac: Option<UacSession>,
    /// Running timers per leg, with the negotiated interval.
    running: [Option<(SessionTimer, Negotiated)>; 2],
    /// Our UPDATE refreshes in flight: client key → leg.
    refreshes: Vec<(TransactionKey, Side)>,
}

/// Why the caller's INVITE cannot have the session timer it asks for.
pub(super) enum Refusal {
    /// 422 with our Min-SE.
    TooSmall(u32),
    /// 400: malformed Session-Expires or Min-SE.
    Malformed,
}

impl Timers {
    /// Timers with `config` (None: off).
    pub(super) fn new(config: Option<SessionConfig>) -> Timers {
        Timers {
            config,
            b_uac: config.map(UacSession::new),
            ..Timers::default()
        }
    }

    /// Negotiates leg A from the caller's INVITE (§9). A caller that
    /// neither supports timers nor asks for one gets none: refreshing it
    /// would take UPDATE or re-INVITE support the phone may lack, and a
    /// failed refresh would end a healthy call.
    pub(super) fn negotiate_a(&mut self, invite: &Headers) -> Result<(), Refusal> {
        let Some(config) = self.config else {
            return Ok(());
        };
        let supports = invite
            .list_values(&HeaderName::Supported)
            .iter()
            .any(|v| v.eq_ignore_ascii_case(b"timer"));
        if !supports && invite.get(&HeaderName::SessionExpires).is_none() {
            return Ok(());
        }
        match session_timer::answer(&config, invite) {
            Ok(Answer::Accept(accept)) => {
                self.a_accept = Some(accept);
                Ok(())
            }
            Ok(Answer::Reject { min_se }) => Err(Refusal::TooSmall(min_se.0)),
            Err(HeaderError::TooSmall(_)) => Err(Refusal::TooSmall(config.min_se)),
            Err(_) => Err(Refusal::Malformed),
        }
    }

    /// Session timer headers for an INVITE on leg B (§7.1).
    pub(super) fn b_request_headers(&self, headers: &mut Headers) {
        if let Some(uac) = &self.b_uac {
            uac.request_headers(headers);
        }
    }

    /// A 422 from a fork: the retry interval, if the INVITE can be retried.
    pub(super) fn b_retry_422(&mut self, resp: &Response) -> bool {
        self.b_uac
            .as_mut()
            .is_some_and(|uac| uac.handle_422(resp).is_ok())
    }

    /// Adds leg A's Session-Expires to its 2xx and starts both timers
    /// (B's from B's 2xx).
    pub(super) fn answered(&mut self, to_a: &mut Headers, b_ok: &Response, now: Instant) {
        if let Some(accept) = self.a_accept {
            accept.apply(to_a);
            let n = accept.negotiated;
            self.running[0] = Some((
                SessionTimer::start(n.duration(), n.we_refresh(Refresher::Uas), now),
                n,
            ));
        }
        if let Some(Ok(Some(n))) = self.b_uac.as_ref().map(|u| u.handle_success(b_ok)) {
            self.running[1] = Some((
                SessionTimer::start(n.duration(), n.we_refresh(Refresher::Uac), now),
                n,
            ));
        }
    }

    /// A refresh request from `side` succeeded; `back` is our 2xx to it.
    /// Re-negotiates that leg as UAS of the refresh (§9).
    pub(super) fn refreshed_by_peer(
        &mut self,
        side: Side,
        request: &Headers,
        back: &mut Headers,
        now: Instant,
    ) {
        let (Some(config), Some(_)) = (self.config, &self.running[side as usize]) else {
            return;
        };
        if let Ok(Answer::Accept(accept)) = session_timer::answer(&config, request) {
            accept.apply(back);
            let n = accept.negotiated;
            if let Some((timer, neg)) = &mut self.running[side as usize] {
                timer.refreshed(now, n.duration(), n.we_refresh(Refresher::Uas));
                *neg = n;
            }
        }
    }

    /// A refresh we forwarded to `side` was accepted with `resp`.
    pub(super) fn refreshed_towards(&mut self, side: Side, resp: &Response, now: Instant) {
        let Some((timer, neg)) = &mut self.running[side as usize] else {
            return;
        };
        let n = match resp.headers.get(&HeaderName::SessionExpires) {
            Some(v) => match SessionExpires::parse(v) {
                Ok(se) => Negotiated {
                    interval: se.interval,
                    refresher: se.refresher.unwrap_or(Refresher::Uac),
                },
                Err(_) => *neg,
            },
            None => Negotiated {
                interval: neg.interval,
                refresher: Refresher::Uac,
            },
        };
        timer.refreshed(now, n.duration(), n.we_refresh(Refresher::Uac));
        *neg = n;
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.running
            .iter()
            .flatten()
            .filter_map(|(t, _)| t.poll_timeout())
            .min()
    }

    /// Whether `key` is one of our refresh UPDATEs; takes it out.
    fn take_refresh(&mut self, key: &TransactionKey) -> Option<Side> {
        let i = self.refreshes.iter().position(|(k, _)| k == key)?;
        Some(self.refreshes.remove(i).1)
    }
}

impl Call {
    /// Adds the session timer headers of the request we forward to `to`
    /// (a refresh in that leg, where we are the UAC).
    pub(super) fn timer_request_headers(&self, headers: &mut Headers) {
        self.timers.b_request_headers(headers);
    }

    /// Runs the session timers: refreshes where we refresh, hang-up where
    /// the phone did not refresh in time.
    pub(super) fn session_timers_due(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Answered | Phase::Confirmed) {
            return;
        }
        let mut refresh = Vec::new();
        let mut expired = false;
        for (i, slot) in self.timers.running.iter_mut().enumerate() {
            let Some((timer, n)) = slot else { continue };
            timer.handle_timeout(now);
            while let Some(ev) = timer.poll_event() {
                match ev {
                    Event::Refresh => refresh.push((if i == 0 { Side::A } else { Side::B }, *n)),
                    Event::Expired => expired = true,
                }
            }
        }
        if expired {
            self.hangup(408, "session timer expired", now);
            return;
        }
        for (side, n) in refresh {
            self.send_refresh(side, n);
        }
    }

    /// An UPDATE without SDP as session refresh (§7.4, §9), refresher=uac.
    fn send_refresh(&mut self, side: Side, n: Negotiated) {
        let branch = self.next_branch();
        let Some(dialog) = self.dialog_mut(side) else {
            return;
        };
        let mut update = dialog.request(Method::Update, &branch);
        let dest = dialog.dest;
        let se = SessionExpires {
            interval: n.interval,
            refresher: Some(Refresher::Uac),
        };
        update
            .headers
            .push(HeaderName::SessionExpires, se.to_string());
        update.headers.push(HeaderName::Supported, "timer");
        if let Ok(key) = TransactionKey::for_outgoing(&update) {
            self.timers.refreshes.push((key, side));
        }
        self.out.push_back(Output::Request {
            request: update,
            dest,
        });
    }

    /// The answer to one of our refresh UPDATEs; false if `key` is not one.
    pub(super) fn refresh_response(
        &mut self,
        key: &TransactionKey,
        resp: &Response,
        now: Instant,
    ) -> bool {
        if resp.status.0 < 200 {
            return self.timers.refreshes.iter().any(|(k, _)| k == key);
        }
        let Some(side) = self.timers.take_refresh(key) else {
            return false;
        };
        match resp.status {
            s if s.is_success() => self.timers.refreshed_towards(side, resp, now),
            // §10: the dialog is gone.
            StatusCode(481) | StatusCode(408) => self.hangup(408, "session refresh failed", now),
            // Otherwise the timer runs on; the session expires unless a
            // refresh succeeds in time.
            _ => {}
        }
        true
    }
}
