//! SIP trunks in the core: the dialplan that sends calls out, the
//! destinations a trunk call rings (with failover), inbound calls from a
//! trunk's address (DID → extension), and the outbound registrations of
//! trunks that register (driving [`pbx::trunk::TrunkRegistration`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use ahash::HashMap;
use bytes::Bytes;
use pbx::call::{Target, TargetAuth};
use pbx::dialplan::{Action, CallClass, Dialplan};
use pbx::trunk::{Secret, TrunkConfig, TrunkEvent, TrunkRegistration};
use sip::transaction::{Remote, TransactionKey, Transport};
use sip::{Request, Response, Uri};
use tracing::{info, warn};

use super::{Core, Profile};
use crate::config::{DialplanEntry, TrunkEntry};

/// Where a dialled number goes.
pub(super) enum Destination {
    /// An extension's registered contacts.
    Extension(Profile),
    /// Out through these destinations: the first rung, the rest failover.
    Trunks(Vec<Target>),
}

/// Trunks and the dialplan, as the core uses them.
pub struct Routing {
    dialplan: Dialplan,
    trunks: Vec<TrunkEntry>,
    registrations: Vec<(usize, TrunkRegistration)>,
    registration_keys: HashMap<TransactionKey, usize>,
}

impl Routing {
    /// Routing from the configuration (its `[[dialplan]]` rules alone,
    /// until [`Routing::set_dialplan`] adds the database's).
    pub fn new(entries: &[DialplanEntry], trunks: &[TrunkEntry]) -> Routing {
        Routing {
            dialplan: Dialplan::new(
                entries
                    .iter()
                    .filter_map(crate::dialplan::config_rule)
                    .collect(),
            ),
            trunks: trunks.to_vec(),
            registrations: Vec::new(),
            registration_keys: HashMap::default(),
        }
    }

    /// Replaces the dialplan (built off the hot path by
    /// [`crate::dialplan::watch`]). Only calls routed from now on see it.
    pub fn set_dialplan(&mut self, dialplan: Dialplan) {
        self.dialplan = dialplan;
    }

    fn trunk_target(&self, name: &str, number: &str, caller: &Profile) -> Option<Target> {
        let t = self.trunks.iter().find(|t| t.name == name)?;
        let domain = t.domain.clone().unwrap_or_else(|| t.host.ip().to_string());
        let host = match t.host.ip() {
            IpAddr::V6(ip) => format!("[{ip}]:{}", t.host.port()),
            IpAddr::V4(ip) => format!("{ip}:{}", t.host.port()),
        };
        let caller_id = t.caller_id.as_deref().unwrap_or(&caller.number);
        Some(Target {
            uri: format!("sip:{number}@{host}"),
            dest: Remote::new(Transport::Udp, t.host),
            to_uri: Some(format!("sip:{number}@{domain}")),
            from_uri: Some(format!("sip:{caller_id}@{domain}")),
            credentials: match (&t.username, &t.password) {
                (Some(u), Some(p)) => Some(TargetAuth {
                    username: u.clone(),
                    password: p.clone(),
                }),
                _ => None,
            },
            trunk: Some(t.name.clone()),
        })
    }

    /// The trunk a request from `source` belongs to (IP-authenticated peer).
    pub(super) fn trunk_from(&self, source: IpAddr) -> Option<&TrunkEntry> {
        self.trunks.iter().find(|t| t.host.ip() == source)
    }
}

/// The user part of a SIP URI, decoded (a dialled number or DID).
pub(super) fn user_of(uri: &Uri) -> Option<String> {
    uri.as_sip()
        .and_then(|u| u.user_decoded())
        .map(|u| String::from_utf8_lossy(&u).into_owned())
}

impl Core {
    /// Routes `dialled` for `caller`: the dialplan when there is one, else
    /// extension numbers only. Err: the SIP status and reason to refuse with.
    pub(super) fn route(
        &self,
        dialled: &str,
        caller: &Profile,
    ) -> Result<Destination, (u16, String)> {
        let not_found = || (404, "Not Found".to_string());
        let extension = |number: &str| {
            self.directory
                .by_number(number)
                .cloned()
                .map(Destination::Extension)
                .ok_or_else(not_found)
        };
        if self.routing.dialplan.rules().is_empty() {
            return extension(dialled);
        }
        let route = self
            .routing
            .dialplan
            .route(dialled, caller.class)
            .map_err(|e| {
                let reason = if e.status() == 403 {
                    "Forbidden"
                } else {
                    "Not Found"
                };
                (e.status(), reason.to_string())
            })?;
        match route.action {
            Action::Extension => extension(&route.number),
            Action::Trunk(names) => {
                let targets: Vec<Target> = names
                    .iter()
                    .filter_map(|n| self.routing.trunk_target(n, &route.number, caller))
                    .collect();
                if targets.is_empty() {
                    return Err((503, "Service Unavailable".into()));
                }
                Ok(Destination::Trunks(targets))
            }
            Action::Reject(status) => Err((status, "Rejected".into())),
            Action::Application { .. } => Err((501, "Not Implemented".into())),
        }
    }

    /// An INVITE from a trunk's address: the DID (Request-URI user, else
    /// the To user) names the extension; the caller is the From user.
    pub(super) fn inbound_from_trunk(
        &self,
        req: &Request,
        trunk: &TrunkEntry,
    ) -> Option<(Profile, Profile)> {
        let dids = [
            user_of(&req.uri),
            req.headers.to().and_then(|t| user_of(&t.uri)),
        ];
        let extension = dids
            .iter()
            .flatten()
            .find_map(|d| trunk.dids.get(d))
            .or(trunk.default_extension.as_ref())?;
        let callee = self.directory.by_number(extension)?.clone();
        let from = req.headers.from()?;
        let caller = Profile {
            number: user_of(&from.uri).unwrap_or_else(|| "anonymous".into()),
            username: String::new(),
            display_name: from.display_name(),
            class: CallClass::Internal,
            max_calls: u32::MAX,
        };
        Some((caller, callee))
    }

    /// Starts the registrations of trunks with `register = true`.
    pub(super) fn start_trunk_registrations(&mut self, now: Instant) {
        for (index, t) in self.routing.trunks.clone().iter().enumerate() {
            let (true, Some(user), Some(password)) = (t.register, &t.username, &t.password) else {
                continue;
            };
            let local_ip = self
                .calls
                .media_mut()
                .map_or(IpAddr::from([127, 0, 0, 1]), |m| {
                    m.local_ip_towards(t.host.ip())
                });
            let local = self.calls.sip_addr(local_ip);
            let domain = t.domain.clone().unwrap_or_else(|| t.host.ip().to_string());
            let uris = (
                Uri::parse(Bytes::from(format!("sip:{}", host_port(t.host)))),
                Uri::parse(Bytes::from(format!("sip:{user}@{domain}"))),
                Uri::parse(Bytes::from(format!("sip:{user}@{}", host_port(local)))),
            );
            let (Ok(registrar), Ok(aor), Ok(contact)) = uris else {
                warn!(trunk = %t.name, "trunk URIs do not parse; not registering");
                continue;
            };
            let mut config = TrunkConfig::new(
                registrar,
                Transport::Udp,
                aor,
                user,
                Secret::new(password.clone()),
                contact,
                &host_port(local),
            );
            config.expires = t.register_expires_s;
            let mut reg = TrunkRegistration::new(config, super::random_u64());
            reg.start(now);
            self.routing.registrations.push((index, reg));
        }
        self.drain_trunk_registrations(now);
    }

    /// Sends what the registrations queued and logs their events.
    fn drain_trunk_registrations(&mut self, now: Instant) {
        for i in 0..self.routing.registrations.len() {
            let (index, _) = self.routing.registrations[i];
            let host = self.routing.trunks[index].host;
            while let Some(req) = self.routing.registrations[i].1.poll_request() {
                match self
                    .layer
                    .send_request(req, Remote::new(Transport::Udp, host), now)
                {
                    Ok(key) => {
                        self.routing.registration_keys.insert(key, i);
                    }
                    Err(e) => warn!(error = %e, "trunk REGISTER not sent"),
                }
            }
            let name = self.routing.trunks[index].name.clone();
            while let Some(ev) = self.routing.registrations[i].1.poll_event() {
                match ev {
                    TrunkEvent::Registered { expires } => {
                        info!(trunk = %name, expires, "trunk registered");
                    }
                    TrunkEvent::Failed { status, reason } => {
                        warn!(trunk = %name, status = status.0, %reason, "trunk registration failed");
                    }
                    TrunkEvent::Unregistered => info!(trunk = %name, "trunk unregistered"),
                }
            }
        }
    }

    /// A response for a trunk REGISTER; false if `key` is not one.
    pub(super) fn trunk_response(
        &mut self,
        key: &TransactionKey,
        resp: &Response,
        now: Instant,
    ) -> bool {
        let Some(&i) = self.routing.registration_keys.get(key) else {
            return false;
        };
        self.routing.registrations[i].1.handle_response(resp, now);
        self.drain_trunk_registrations(now);
        true
    }

    /// A trunk REGISTER timed out; false if `key` is not one.
    pub(super) fn trunk_failure(&mut self, key: &TransactionKey, now: Instant) -> bool {
        let Some(&i) = self.routing.registration_keys.get(key) else {
            return false;
        };
        self.routing.registrations[i].1.handle_failure(now);
        self.drain_trunk_registrations(now);
        true
    }

    /// Forgets a finished REGISTER transaction.
    pub(super) fn trunk_transaction_ended(&mut self, key: &TransactionKey) {
        self.routing.registration_keys.remove(key);
    }

    /// The earliest refresh or retry.
    pub(super) fn trunk_deadline(&self) -> Option<Instant> {
        self.routing
            .registrations
            .iter()
            .filter_map(|(_, r)| r.poll_timeout())
            .min()
    }

    /// Runs due refreshes and retries.
    pub(super) fn trunk_timers(&mut self, now: Instant) {
        for (_, reg) in &mut self.routing.registrations {
            if reg.poll_timeout().is_some_and(|t| t <= now) {
                reg.handle_timeout(now);
            }
        }
        self.drain_trunk_registrations(now);
    }
}

fn host_port(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    }
}
