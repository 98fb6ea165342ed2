//! REGISTER: digest authentication, brute-force accounting, then the
//! registrar (RFC 3261 §10.3, §22). Unknown users and wrong passwords get
//! the same 401 with a fresh challenge, so nothing tells them apart.

use std::time::Instant;

use pbx::UnixMs;
use sip::header::HeaderName;
use sip::transaction::{Remote, TransactionKey};
use sip::{Request, StatusCode};
use tracing::debug;

use super::{Core, Persist};
use sip::auth::Verdict;

impl Core {
    pub(super) fn register(
        &mut self,
        key: TransactionKey,
        req: Request,
        source: Remote,
        now: Instant,
        wall: UnixMs,
    ) {
        let credentials = req
            .headers
            .get_all(&HeaderName::Authorization)
            .map(|v| &v[..]);
        let directory = &self.directory;
        let verdict = self.auth.verify(credentials, "REGISTER", now, |user, alg| {
            directory.ha1(user, alg)
        });
        match verdict {
            Verdict::Authenticated { username } => {
                self.guard.record_success(source.addr.ip());
                let outcome = self
                    .registrar
                    .handle_register(&req, source, &username, wall);
                for change in outcome.changes {
                    debug!(
                        aor = %change.binding.aor,
                        contact = %change.binding.contact,
                        kind = change.kind.as_str(),
                        "binding"
                    );
                    self.persist(Persist::Binding(change));
                }
                self.send_response(&key, outcome.response, now);
            }
            Verdict::Challenge => self.challenge(&key, &req, false, now),
            Verdict::Stale => self.challenge(&key, &req, true, now),
            Verdict::Failed { username, reason } => {
                debug!(source = %source.addr, %username, reason, "authentication failed");
                let blocked = self
                    .guard
                    .record_failure(source.addr.ip(), &username, reason, wall);
                if blocked && !self.silent_block {
                    self.respond(&key, &req.headers, StatusCode(403), "Forbidden", &[], now);
                } else {
                    self.challenge(&key, &req, false, now);
                }
            }
        }
    }

    fn challenge(&mut self, key: &TransactionKey, req: &Request, stale: bool, now: Instant) {
        let extra: Vec<(HeaderName, String)> = self
            .auth
            .challenges(now, stale)
            .into_iter()
            .map(|c| (HeaderName::WwwAuthenticate, c))
            .collect();
        self.respond(
            key,
            &req.headers,
            StatusCode(401),
            "Unauthorized",
            &extra,
            now,
        );
    }
}
