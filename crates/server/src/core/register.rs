//! REGISTER: digest authentication (see `auth`), then the registrar
//! (RFC 3261 §10.3).

use std::time::Instant;

use pbx::UnixMs;
use sip::Request;
use sip::transaction::Remote;
use tracing::debug;

use super::auth::Role;
use super::{Core, Persist, ReplyTo};

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
        let Some(username) = self.authenticate(Role::Registrar, &reply, &req, source, now, wall)
        else {
            return;
        };
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
}
