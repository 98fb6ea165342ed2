//! Registrar and location service (RFC 3261 §10.3), with RFC 5626 flow
//! keys (`+sip.instance`/`reg-id`) and RFC 3327 Path.
//!
//! Sans-IO: [`Registrar::handle_register`] takes an authenticated REGISTER
//! and the time, and returns the response plus the [`Change`]s for the
//! caller to persist. Bindings expire through [`Registrar::poll_timeout`] /
//! [`Registrar::handle_timeout`], so tests jump through virtual time.

mod binding;

pub use binding::{Binding, BindingKey, derive_mac};

use std::collections::BTreeSet;

use ahash::HashMap;

use bytes::Bytes;
use sip::build::{response_to, stateless_to_tag};
use sip::header::{HeaderName, NameAddr};
use sip::transaction::Remote;
use sip::{Request, Response, StatusCode};

use crate::UnixMs;

/// Registrar settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shorter requested expiries are refused with 423 (default 60 s).
    pub min_expires: u32,
    /// Longer requested expiries are shortened to this (default 3600 s).
    pub max_expires: u32,
    /// Expiry when the REGISTER states none (default 3600 s).
    pub default_expires: u32,
    /// Most contacts per AOR; a new one beyond it replaces the least
    /// recently registered (default 10).
    pub max_contacts: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 10,
        }
    }
}

/// What happened to a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new contact.
    Registered,
    /// An existing contact re-registered.
    Refreshed,
    /// Removed by the phone (expires=0, wildcard) or replaced.
    Unregistered,
    /// Timed out.
    Expired,
}

impl ChangeKind {
    /// Lower-case name for logs and history rows.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Registered => "registered",
            ChangeKind::Refreshed => "refreshed",
            ChangeKind::Unregistered => "unregistered",
            ChangeKind::Expired => "expired",
        }
    }
}

/// A change for the caller to persist and log.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The binding (its final state; for removals, the last state).
    pub binding: Binding,
}

/// The result of one REGISTER.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterOutcome {
    /// The answer to send.
    pub response: Response,
    /// Bindings added, refreshed or removed.
    pub changes: Vec<Change>,
}

/// The location service.
#[derive(Debug, Default)]
pub struct Registrar {
    cfg: RegistrarConfig,
    by_aor: HashMap<String, Vec<Binding>>,
    expiry: BTreeSet<(UnixMs, String, BindingKey)>,
}

struct ContactRequest {
    uri: String,
    expires: u32,
    q: Option<f32>,
    instance_id: Option<String>,
    reg_id: Option<u32>,
}

fn reject(req: &Request, status: u16, reason: &str) -> RegisterOutcome {
    let tag = stateless_to_tag(&req.headers);
    RegisterOutcome {
        response: response_to(&req.headers, StatusCode(status), reason, Some(&tag)),
        changes: Vec::new(),
    }
}

fn has_option(req: &Request, name: HeaderName, tag: &str) -> bool {
    req.headers
        .list_values(&name)
        .iter()
        .any(|v| v.eq_ignore_ascii_case(tag.as_bytes()))
}

impl Registrar {
    /// An empty location service.
    pub fn new(cfg: RegistrarConfig) -> Registrar {
        Registrar {
            cfg,
            ..Registrar::default()
        }
    }

    /// The settings.
    pub fn config(&self) -> &RegistrarConfig {
        &self.cfg
    }

    /// Restores persisted bindings (at start-up); expired ones are skipped
    /// and returned as [`ChangeKind::Expired`] changes.
    pub fn restore(&mut self, bindings: Vec<Binding>, now: UnixMs) -> Vec<Change> {
        let mut expired = Vec::new();
        for b in bindings {
            if b.expires_at <= now {
                expired.push(Change {
                    kind: ChangeKind::Expired,
                    binding: b,
                });
            } else {
                self.insert(b);
            }
        }
        expired
    }

    /// Current bindings of an AOR, highest `q` first.
    pub fn lookup(&self, aor: &str) -> Vec<&Binding> {
        let mut v: Vec<&Binding> = self
            .by_aor
            .get(aor)
            .map(|b| b.iter().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.q.unwrap_or(1.0).total_cmp(&a.q.unwrap_or(1.0)));
        v
    }

    /// Every binding.
    pub fn all(&self) -> impl Iterator<Item = &Binding> {
        self.by_aor.values().flatten()
    }

    /// Number of bindings.
    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.expiry.is_empty()
    }

    /// The earliest expiry.
    pub fn poll_timeout(&self) -> Option<UnixMs> {
        self.expiry.first().map(|(t, _, _)| *t)
    }

    /// Removes bindings whose time has come.
    pub fn handle_timeout(&mut self, now: UnixMs) -> Vec<Change> {
        let mut out = Vec::new();
        while let Some((t, aor, key)) = self.expiry.first().cloned() {
            if t > now {
                break;
            }
            if let Some(b) = self.remove(&aor, &key) {
                out.push(Change {
                    kind: ChangeKind::Expired,
                    binding: b,
                });
            } else {
                self.expiry.pop_first();
            }
        }
        out
    }

    fn insert(&mut self, b: Binding) {
        self.expiry.insert((b.expires_at, b.aor.clone(), b.key()));
        self.by_aor.entry(b.aor.clone()).or_default().push(b);
    }

    fn remove(&mut self, aor: &str, key: &BindingKey) -> Option<Binding> {
        let list = self.by_aor.get_mut(aor)?;
        let at = list.iter().position(|b| &b.key() == key)?;
        let b = list.swap_remove(at);
        if list.is_empty() {
            self.by_aor.remove(aor);
        }
        self.expiry.remove(&(b.expires_at, b.aor.clone(), b.key()));
        Some(b)
    }

    /// Handles a REGISTER whose sender authenticated as `username`.
    pub fn handle_register(
        &mut self,
        req: &Request,
        source: Remote,
        username: &str,
        now: UnixMs,
    ) -> RegisterOutcome {
        let Some(to) = req.headers.to() else {
            return reject(req, 400, "Malformed To");
        };
        let Some(aor) = to.uri.as_sip().and_then(|u| u.user_decoded()) else {
            return reject(req, 404, "Not Found");
        };
        let aor = String::from_utf8_lossy(&aor).into_owned();
        if aor != username {
            return reject(req, 403, "Forbidden: not your address of record");
        }
        let Some(cseq) = req.headers.cseq() else {
            return reject(req, 400, "Malformed CSeq");
        };
        let call_id = req.headers.call_id().unwrap_or_default().to_string();
        let header_expires = req
            .headers
            .get_str(&HeaderName::Expires)
            .and_then(|e| e.trim().parse::<u32>().ok());

        let contacts = req.headers.list_values(&HeaderName::Contact);
        let mut changes = Vec::new();
        if contacts.iter().any(|c| sip::scan::trim(c) == b"*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                return reject(
                    req,
                    400,
                    "Wildcard Contact needs Expires: 0 and no other contact",
                );
            }
            for b in self.by_aor.get(&aor).into_iter().flatten() {
                if b.call_id == call_id && b.cseq >= cseq.seq {
                    return reject(req, 400, "CSeq out of order");
                }
            }
            let keys: Vec<BindingKey> = self
                .by_aor
                .get(&aor)
                .into_iter()
                .flatten()
                .map(Binding::key)
                .collect();
            for key in keys {
                if let Some(b) = self.remove(&aor, &key) {
                    changes.push(Change {
                        kind: ChangeKind::Unregistered,
                        binding: b,
                    });
                }
            }
            return self.ok(req, &aor, changes, now);
        }

        let mut wanted = Vec::with_capacity(contacts.len());
        for c in &contacts {
            let Ok(na) = NameAddr::parse(c.clone()) else {
                return reject(req, 400, "Malformed Contact");
            };
            let expires = match na.param("expires") {
                Some(Some(e)) => match e.parse::<u32>() {
                    Ok(e) => e,
                    Err(_) => return reject(req, 400, "Malformed Contact expires"),
                },
                Some(None) => return reject(req, 400, "Malformed Contact expires"),
                None => header_expires.unwrap_or(self.cfg.default_expires),
            };
            let q = match na.param("q") {
                Some(Some(q)) => match q.parse::<f32>() {
                    Ok(q) if (0.0..=1.0).contains(&q) => Some(q),
                    _ => return reject(req, 400, "Malformed q value"),
                },
                Some(None) => return reject(req, 400, "Malformed q value"),
                None => None,
            };
            let instance_id = na
                .param("+sip.instance")
                .flatten()
                .map(|v| String::from_utf8_lossy(&sip::scan::unquote(v.as_bytes())).into_owned());
            let reg_id = na.param("reg-id").flatten().and_then(|r| r.parse().ok());
            wanted.push(ContactRequest {
                uri: na.uri.as_str().to_string(),
                expires,
                q,
                instance_id,
                reg_id,
            });
        }
        if let Some(short) = wanted
            .iter()
            .find(|c| c.expires != 0 && c.expires < self.cfg.min_expires)
        {
            let _ = short;
            let mut out = reject(req, 423, "Interval Too Brief");
            out.response
                .headers
                .push(HeaderName::MinExpires, self.cfg.min_expires.to_string());
            return out;
        }
        // §10.3 step 7: a REGISTER older than what made a binding aborts.
        for c in &wanted {
            let key = match (&c.instance_id, c.reg_id) {
                (Some(i), Some(r)) => BindingKey::Flow(i.clone(), r),
                _ => BindingKey::Contact(c.uri.clone()),
            };
            if let Some(b) = self
                .by_aor
                .get(&aor)
                .into_iter()
                .flatten()
                .find(|b| b.key() == key)
                && b.call_id == call_id
                && b.cseq >= cseq.seq
            {
                return reject(req, 400, "CSeq out of order");
            }
        }
        let user_agent = req
            .headers
            .get_str(&HeaderName::UserAgent)
            .map(str::to_string);
        let path: Vec<String> = if has_option(req, HeaderName::Supported, "path") {
            req.headers
                .list_values(&HeaderName::Path)
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        } else {
            Vec::new()
        };
        let mut touched = Vec::new();
        for c in wanted {
            let key = match (&c.instance_id, c.reg_id) {
                (Some(i), Some(r)) => BindingKey::Flow(i.clone(), r),
                _ => BindingKey::Contact(c.uri.clone()),
            };
            let old = self.remove(&aor, &key);
            if c.expires == 0 {
                if let Some(b) = old {
                    changes.push(Change {
                        kind: ChangeKind::Unregistered,
                        binding: b,
                    });
                }
                continue;
            }
            let expires = c.expires.min(self.cfg.max_expires);
            let mac = derive_mac(c.instance_id.as_deref(), user_agent.as_deref());
            let binding = Binding {
                aor: aor.clone(),
                contact: c.uri,
                expires_at: now + u64::from(expires) * 1000,
                q: c.q,
                call_id: call_id.clone(),
                cseq: cseq.seq,
                source: source.addr,
                transport: source.transport,
                user_agent: user_agent.clone(),
                instance_id: c.instance_id,
                reg_id: c.reg_id,
                path: path.clone(),
                mac,
                first_seen: old.as_ref().map_or(now, |o| o.first_seen),
                last_seen: now,
            };
            let kind = if old.is_some() {
                ChangeKind::Refreshed
            } else {
                ChangeKind::Registered
            };
            touched.push(binding.key());
            self.insert(binding.clone());
            changes.push(Change { kind, binding });
        }
        // Too many contacts: drop the least recently registered others.
        while self.by_aor.get(&aor).map_or(0, Vec::len) > self.cfg.max_contacts {
            let Some(oldest) = self.by_aor[&aor]
                .iter()
                .filter(|b| !touched.contains(&b.key()))
                .min_by_key(|b| b.last_seen)
                .map(Binding::key)
            else {
                break;
            };
            if let Some(b) = self.remove(&aor, &oldest) {
                changes.push(Change {
                    kind: ChangeKind::Unregistered,
                    binding: b,
                });
            }
        }
        let mut out = self.ok(req, &aor, changes, now);
        if !path.is_empty() {
            for p in &path {
                out.response.headers.push(HeaderName::Path, p.clone());
            }
        }
        let flows = out.changes.iter().any(|c| c.binding.reg_id.is_some());
        if flows && has_option(req, HeaderName::Supported, "outbound") {
            out.response.headers.push(HeaderName::Require, "outbound");
        }
        out
    }

    /// 200 OK listing every current contact of the AOR with its remaining
    /// time (§10.3 step 8).
    fn ok(&self, req: &Request, aor: &str, changes: Vec<Change>, now: UnixMs) -> RegisterOutcome {
        let tag = stateless_to_tag(&req.headers);
        let mut response = response_to(&req.headers, StatusCode::OK, "OK", Some(&tag));
        for b in self.lookup(aor) {
            let mut v = format!("<{}>;expires={}", b.contact, b.remaining_s(now));
            if let Some(q) = b.q {
                v.push_str(&format!(";q={q}"));
            }
            if let Some(i) = &b.instance_id {
                v.push_str(&format!(";+sip.instance=\"{i}\""));
            }
            if let Some(r) = b.reg_id {
                v.push_str(&format!(";reg-id={r}"));
            }
            response.headers.push(HeaderName::Contact, Bytes::from(v));
        }
        RegisterOutcome { response, changes }
    }
}

#[cfg(test)]
mod tests;
