//! A registered contact (RFC 3261 §10.3 "binding") and what is derived from
//! it: the key that identifies it, NAT detection, the phone's MAC address.

use std::net::{IpAddr, SocketAddr};

use sip::transaction::Transport;

use crate::UnixMs;

/// One contact bound to an address of record.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The address of record: the extension's SIP username.
    pub aor: String,
    /// The contact URI (without `<>` and header parameters).
    pub contact: String,
    /// When the binding expires.
    pub expires_at: UnixMs,
    /// `q` preference 0.0..=1.0, if given.
    pub q: Option<f32>,
    /// Call-ID of the REGISTER that made or refreshed it.
    pub call_id: String,
    /// CSeq of that REGISTER.
    pub cseq: u32,
    /// Where the REGISTER came from (after NAT): requests to the contact
    /// go here when the contact is not directly reachable.
    pub source: SocketAddr,
    /// Transport of the REGISTER.
    pub transport: Transport,
    /// User-Agent of the phone.
    pub user_agent: Option<String>,
    /// `+sip.instance` (RFC 5626), e.g. `<urn:uuid:...>`.
    pub instance_id: Option<String>,
    /// `reg-id` (RFC 5626).
    pub reg_id: Option<u32>,
    /// Path header values (RFC 3327), in order.
    pub path: Vec<String>,
    /// The phone's MAC address (lower-case, colon-separated), if derivable.
    pub mac: Option<String>,
    /// First registration of this contact.
    pub first_seen: UnixMs,
    /// Latest registration of this contact.
    pub last_seen: UnixMs,
}

/// What identifies a binding within its AOR: the instance and reg-id of an
/// RFC 5626 flow, else the contact URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BindingKey {
    /// `+sip.instance` with `reg-id`.
    Flow(String, u32),
    /// The contact URI.
    Contact(String),
}

impl Binding {
    /// This binding's key.
    pub fn key(&self) -> BindingKey {
        match (&self.instance_id, self.reg_id) {
            (Some(i), Some(r)) => BindingKey::Flow(i.clone(), r),
            _ => BindingKey::Contact(self.contact.clone()),
        }
    }

    /// Seconds left, rounded up.
    pub fn remaining_s(&self, now: UnixMs) -> u64 {
        self.expires_at.saturating_sub(now).div_ceil(1000)
    }

    /// Whether the contact's IP address differs from the one the REGISTER
    /// came from (a NAT between phone and PBX): then requests go to
    /// `source`. A differing port alone is not taken as NAT: one host may
    /// register a contact that another of its processes serves.
    pub fn behind_nat(&self) -> bool {
        let Ok(uri) = sip::uri::SipUri::parse_str(&self.contact) else {
            return true;
        };
        let host = uri.host().trim_start_matches('[').trim_end_matches(']');
        let Ok(ip) = host.parse::<IpAddr>() else {
            return true;
        };
        ip != self.source.ip()
    }

    /// Where to send requests for this binding: the contact's own address
    /// when it is reachable, the REGISTER's source (received/rport) when a
    /// NAT is in the way or the flow is connection-oriented (RFC 5626).
    pub fn target(&self) -> SocketAddr {
        if self.transport.is_reliable() {
            return self.source;
        }
        self.reconnect_target()
    }

    /// Where to open a new connection once the REGISTER's one has closed:
    /// the contact's address, unless a NAT hides it (then the source).
    pub fn reconnect_target(&self) -> SocketAddr {
        if self.behind_nat() {
            return self.source;
        }
        self.contact_addr().unwrap_or(self.source)
    }

    /// The address in the contact URI, when its host is an IP address.
    fn contact_addr(&self) -> Option<SocketAddr> {
        let uri = sip::uri::SipUri::parse_str(&self.contact).ok()?;
        let ip = uri
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        Some(SocketAddr::new(ip, uri.port().unwrap_or(5060)))
    }
}

/// Derives a MAC address from `+sip.instance` (a version-1 UUID carries the
/// MAC as its node field) or from a User-Agent that embeds one (Yealink,
/// Grandstream, Snom and others append it).
pub fn derive_mac(instance_id: Option<&str>, user_agent: Option<&str>) -> Option<String> {
    if let Some(inst) = instance_id {
        let inst = inst.trim_matches(|c| c == '<' || c == '>' || c == '"');
        if let Some(uuid) = inst
            .strip_prefix("urn:uuid:")
            .or_else(|| inst.strip_prefix("URN:UUID:"))
        {
            let parts: Vec<&str> = uuid.split('-').collect();
            // Version nibble is the first hex digit of the third group.
            if parts.len() == 5 && parts[2].starts_with('1') && parts[4].len() == 12 {
                return format_mac(parts[4]);
            }
        }
    }
    let ua = user_agent?;
    for token in ua.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ';') {
        let hex: String = token.chars().filter(|c| *c != ':' && *c != '-').collect();
        let separators_ok = token.len() == 12 || token.len() == 17;
        if separators_ok && hex.len() == 12 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            // Avoid mistaking a 12-digit decimal version number for a MAC.
            if token.len() == 12 && hex.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            return format_mac(&hex);
        }
    }
    None
}

fn format_mac(hex12: &str) -> Option<String> {
    if hex12.len() != 12 || !hex12.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let lower = hex12.to_ascii_lowercase();
    if lower == "000000000000" || lower == "ffffffffffff" {
        return None;
    }
    let pairs: Vec<&str> = (0..6).map(|i| &lower[i * 2..i * 2 + 2]).collect();
    Some(pairs.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            derive_mac(
                Some("\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\""),
                None
            )
            .as_deref(),
            Some("00:a0:c9:1e:6b:f6")
        );
        // Version-4 UUIDs carry no MAC.
        assert_eq!(
            derive_mac(
                Some("<urn:uuid:f81d4fae-7dec-41d0-a765-00a0c91e6bf6>"),
                None
            ),
            None
        );
        assert_eq!(
            derive_mac(None, Some("Yealink SIP-T46S 66.85.0.5 80:5e:c0:12:34:56")).as_deref(),
            Some("80:5e:c0:12:34:56")
        );
        assert_eq!(
            derive_mac(None, Some("Grandstream GXP2170 1.0.11.3 000B82AABBCC")).as_deref(),
            Some("00:0b:82:aa:bb:cc")
        );
        assert_eq!(
            derive_mac(None, Some("baresip v1.0.0 (x86_64/linux)")),
            None
        );
        assert_eq!(derive_mac(None, Some("Phone 201811250000")), None);
    }

    #[test]
    fn nat_detection_and_target() {
        let mut b = Binding {
            aor: "100".into(),
            contact: "sip:100@192.168.1.20:5062".into(),
            expires_at: 0,
            q: None,
            call_id: "c".into(),
            cseq: 1,
            source: "203.0.113.5:40000".parse().unwrap(),
            transport: Transport::Udp,
            user_agent: None,
            instance_id: None,
            reg_id: None,
            path: vec![],
            mac: None,
            first_seen: 0,
            last_seen: 0,
        };
        assert!(b.behind_nat());
        assert_eq!(b.target(), b.source);
        b.source = "192.168.1.20:5062".parse().unwrap();
        assert!(!b.behind_nat());
        b.contact = "sip:100@127.0.0.1:16200".into();
        b.source = "127.0.0.1:15061".parse().unwrap();
        // Same host, another port (SIPp UAS behind a SIPp registrar client):
        // the contact is used as given.
        assert!(!b.behind_nat());
        assert_eq!(b.target(), "127.0.0.1:16200".parse().unwrap());
        // Over TCP: the REGISTER's connection, or a new one to the contact.
        b.transport = Transport::Tcp;
        assert_eq!(b.target(), b.source);
        assert_eq!(b.reconnect_target(), "127.0.0.1:16200".parse().unwrap());
        b.source = "203.0.113.5:40000".parse().unwrap();
        assert_eq!(b.reconnect_target(), b.source);
    }
}
