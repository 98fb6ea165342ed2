//! The Via header (RFC 3261 §20.42, §18.2.1; rport per RFC 3581).

use crate::scan::{self, Param};

/// Why a Via value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed Via: {0}")]
pub struct ViaError(pub &'static str);

/// One Via value (a header line may hold several; see [`Via::parse_all`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name, `SIP`.
    pub protocol: &'a [u8],
    /// Protocol version, `2.0`.
    pub version: &'a [u8],
    /// Transport as written (`UDP`, `TCP`, `TLS`, `WS`, anything else).
    pub transport: &'a str,
    /// sent-by host (IPv6 with brackets).
    pub host: &'a str,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters (branch, received, rport, maddr, ttl, ...).
    pub params: Vec<Param<'a>>,
}

fn as_str(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

impl<'a> Via<'a> {
    /// Parses every Via value of one header line.
    pub fn parse_all(value: &'a [u8]) -> Result<Vec<Via<'a>>, ViaError> {
        let parts = scan::split_list(value).map_err(|_| ViaError("unbalanced quotes"))?;
        if parts.is_empty() {
            return Err(ViaError("empty"));
        }
        parts.into_iter().map(Via::parse).collect()
    }

    /// Parses a single via-parm.
    pub fn parse(v: &'a [u8]) -> Result<Via<'a>, ViaError> {
        let mut i = scan::skip_ws(v, 0);
        let mut fields: [&[u8]; 3] = [b""; 3];
        for (n, field) in fields.iter_mut().enumerate() {
            let s = i;
            while i < v.len() && scan::is_token_char(v[i]) {
                i += 1;
            }
            if s == i {
                return Err(ViaError("bad sent-protocol"));
            }
            *field = &v[s..i];
            i = scan::skip_ws(v, i);
            if n < 2 {
                if v.get(i) != Some(&b'/') {
                    return Err(ViaError("bad sent-protocol"));
                }
                i = scan::skip_ws(v, i + 1);
            }
        }
        // sent-by
        let hs = i;
        if v.get(i) == Some(&b'[') {
            while i < v.len() && v[i] != b']' {
                i += 1;
            }
            if i == v.len() {
                return Err(ViaError("unterminated IPv6 reference"));
            }
            i += 1;
        } else {
            while i < v.len()
                && (v[i].is_ascii_alphanumeric() || matches!(v[i], b'-' | b'.' | b'_'))
            {
                i += 1;
            }
        }
        if hs == i {
            return Err(ViaError("missing sent-by host"));
        }
        let host = &v[hs..i];
        i = scan::skip_ws(v, i);
        let mut port = None;
        if v.get(i) == Some(&b':') {
            i = scan::skip_ws(v, i + 1);
            let ps = i;
            while i < v.len() && v[i].is_ascii_digit() {
                i += 1;
            }
            port = Some(
                scan::parse_u32(&v[ps..i])
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or(ViaError("bad port"))?,
            );
        }
        let params = scan::parse_params(&v[i..]).map_err(|_| ViaError("bad parameter"))?;
        Ok(Via {
            protocol: fields[0],
            version: fields[1],
            transport: as_str(fields[2]),
            host: as_str(host),
            port,
            params,
        })
    }

    /// A parameter value by case-insensitive name; `Some(None)` if present
    /// without a value.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|p| p.value.map(as_str))
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.param("branch").flatten()
    }

    /// Whether the branch carries the RFC 3261 magic cookie, so that it can
    /// be used alone as the transaction key (§17.2.3). A bare cookie is not
    /// unique and does not count (RFC 4475 badbranch).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > 7 && b.as_bytes()[..7].eq_ignore_ascii_case(b"z9hG4bK"))
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.param("received").flatten()
    }

    /// The `rport` parameter: `Some(None)` when requested without value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.and_then(|p| p.parse().ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tortuous_via() {
        let v = Via::parse_all(
            b"SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239, SIP/2.0/TCP h:5070;rport;received=[::1]",
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].transport, "UDP");
        assert_eq!(v[0].host, "192.168.255.111");
        assert_eq!(v[0].branch(), Some("z9hG4bK30239"));
        assert_eq!(v[1].port, Some(5070));
        assert_eq!(v[1].rport(), Some(None));
        assert_eq!(v[1].received(), Some("[::1]"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Via::parse_all(b"192.0.2.15;;,;,,").is_err());
        assert!(Via::parse_all(b"SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(Via::parse(b"SIP/2.0/UDP").is_err());
        assert!(Via::parse(b"SIP/2.0/UDP h:99999").is_err());
    }

    #[test]
    fn bare_cookie_is_not_rfc3261() {
        let v = Via::parse(b"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK").unwrap();
        assert!(!v.has_rfc3261_branch());
    }
}
