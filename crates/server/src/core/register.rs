//! REGISTER: digest authentication, brute-force accounting, then the
//! registrar (RFC 3261 §10.3, §22). Unknown users and wrong passwords get
//! the same 401 with a fresh challenge, so nothing tells them apart.

use std::time::Instant;

use pbx::UnixMs;
use sip::header::HeaderName;
use sip::transaction::Remote;
use sip::{Request, StatusCode};
use tracing::debug;

use super::{Core, Persist, ReplyTo};
use sip::auth::Verdict;

impl Core {
    pub(super) fn register(
        &mut self,
        reply: ReplyTo,
        req: Request,
        source: Remote,
        now: Instant,
        wall: UnixMs,
    ) {
        // A retransmission of a REGISTER already answered gets that answer
        // again: processing it anew would see its nonce count as a replay.
        if let ReplyTo::Stateless(dest) = &reply {
            let key = self.recent.key(&req.headers, dest);
            if let Some(answer) = self.recent.get(key).cloned() {
                self.out.send(*dest, &answer);
                return;
            }
        }
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
                self.send_remembered(&reply, &req.headers, outcome.response, now);
            }
            Verdict::Challenge => self.challenge(&reply, &req, false, now),
            Verdict::Stale => self.challenge(&reply, &req, true, now),
            Verdict::Failed { username, reason } => {
                debug!(source = %source.addr, %username, reason, "authentication failed");
                let blocked = self
                    .guard
                    .record_failure(source.addr.ip(), &username, reason, wall);
                if blocked && !self.silent_block {
                    self.respond(&reply, &req.headers, StatusCode(403), "Forbidden", &[], now);
                } else {
                    self.challenge(&reply, &req, false, now);
                }
            }
        }
    }

    fn challenge(&mut self, reply: &ReplyTo, req: &Request, stale: bool, now: Instant) {
        let extra: Vec<(HeaderName, String)> = self
            .auth
            .challenges(now, stale)
            .into_iter()
            .map(|c| (HeaderName::WwwAuthenticate, c))
            .collect();
        self.respond(
            reply,
            &req.headers,
            StatusCode(401),
            "Unauthorized",
            &extra,
            now,
        );
    }
}
