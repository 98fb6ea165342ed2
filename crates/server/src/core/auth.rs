//! Digest authentication of requests, with brute-force accounting: as
//! registrar (REGISTER: `Authorization`, 401) and as proxy (INVITE:
//! `Proxy-Authorization`, 407; RFC 3261 §22). Unknown users and wrong
//! passwords get the same fresh challenge, so nothing tells them apart.

use std::time::Instant;

use pbx::UnixMs;
use sip::auth::Verdict;
use sip::header::HeaderName;
use sip::transaction::Remote;
use sip::{Request, StatusCode};
use tracing::debug;

use super::{Core, ReplyTo};

/// Which kind of challenge a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// As registrar: `Authorization`, 401 with `WWW-Authenticate`.
    Registrar,
    /// As proxy: `Proxy-Authorization`, 407 with `Proxy-Authenticate`.
    Proxy,
}

impl Role {
    fn credentials(self) -> HeaderName {
        match self {
            Role::Registrar => HeaderName::Authorization,
            Role::Proxy => HeaderName::ProxyAuthorization,
        }
    }
}

impl Core {
    /// Checks `req`'s credentials. Returns the authenticated username;
    /// otherwise the request has been answered (a challenge, or 403 once
    /// the source is blocked) and `None` is returned.
    pub(super) fn authenticate(
        &mut self,
        role: Role,
        reply: &ReplyTo,
        req: &Request,
        source: Remote,
        now: Instant,
        wall: UnixMs,
    ) -> Option<String> {
        let header = role.credentials();
        let credentials = req.headers.get_all(&header).map(|v| &v[..]);
        let directory = &self.directory;
        let verdict = self
            .auth
            .verify(credentials, req.method.as_str(), now, |user, alg| {
                directory.ha1(user, alg)
            });
        match verdict {
            Verdict::Authenticated { username } => {
                self.guard.record_success(source.addr.ip());
                return Some(username);
            }
            Verdict::Challenge => self.challenge(role, reply, req, false, now),
            Verdict::Stale => self.challenge(role, reply, req, true, now),
            Verdict::Failed { username, reason } => {
                debug!(source = %source.addr, method = req.method.as_str(), %username, reason, "authentication failed");
                let blocked = self
                    .guard
                    .record_failure(source.addr.ip(), &username, reason, wall);
                if blocked && !self.silent_block {
                    self.respond(reply, &req.headers, StatusCode(403), "Forbidden", &[], now);
                } else {
                    self.challenge(role, reply, req, false, now);
                }
            }
        }
        None
    }

    fn challenge(&mut self, role: Role, reply: &ReplyTo, req: &Request, stale: bool, now: Instant) {
        let (header, status, reason) = match role {
            Role::Registrar => (HeaderName::WwwAuthenticate, 401, "Unauthorized"),
            Role::Proxy => (
                HeaderName::ProxyAuthenticate,
                407,
                "Proxy Authentication Required",
            ),
        };
        let extra: Vec<(HeaderName, String)> = self
            .auth
            .challenges(now, stale)
            .into_iter()
            .map(|c| (header.clone(), c))
            .collect();
        self.respond(reply, &req.headers, StatusCode(status), reason, &extra, now);
    }
}
