//! URIs: SIP and SIPS (RFC 3261 §19.1, §25.1), tel (RFC 3966) and any other
//! absolute URI kept opaque.
//!
//! A parsed URI keeps its raw bytes and remembers where its parts are, so
//! forwarding writes exactly what was received and nothing is copied.

use std::fmt;

use bytes::Bytes;

use crate::scan::{self, Param};

/// Why a URI was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// No `scheme:` prefix.
    #[error("URI has no scheme")]
    NoScheme,
    /// A character that no URI may contain (white space, `<`, `>`, `"`...).
    #[error("illegal character in URI")]
    IllegalChar,
    /// The host part is empty or not a hostname / IPv4 / `[IPv6]`.
    #[error("bad host in URI")]
    BadHost,
    /// The port is not a number in 0..=65535.
    #[error("bad port in URI")]
    BadPort,
    /// A `;param` or `?header` section does not follow the grammar.
    #[error("bad parameter in URI")]
    BadParam,
    /// A tel URI without a number.
    #[error("bad telephone number in URI")]
    BadTel,
}

/// Byte range into the URI's raw text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u16,
    end: u16,
}

impl Span {
    fn new(start: usize, end: usize) -> Self {
        // Callers cap URIs at u16::MAX bytes before building spans.
        Span {
            start: start as u16,
            end: end as u16,
        }
    }
    fn get<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        raw.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
    fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

fn as_str(b: &[u8]) -> &str {
    // URIs are validated as ASCII when parsed.
    std::str::from_utf8(b).unwrap_or_default()
}

/// Any URI that may appear in a Request-URI or a name-addr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// `tel:` (RFC 3966).
    Tel(TelUri),
    /// Any other `scheme:...` (kept opaque, e.g. `http:`, `im:`).
    Other(OtherUri),
}

impl Uri {
    /// Parses any absolute URI.
    pub fn parse(raw: Bytes) -> Result<Uri, UriError> {
        let colon = memchr::memchr(b':', &raw).ok_or(UriError::NoScheme)?;
        let scheme = &raw[..colon];
        if scheme.is_empty()
            || !scheme[0].is_ascii_alphabetic()
            || !scheme
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(UriError::NoScheme);
        }
        if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
            SipUri::parse(raw).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case(b"tel") {
            TelUri::parse(raw).map(Uri::Tel)
        } else {
            OtherUri::parse(raw).map(Uri::Other)
        }
    }

    /// Parses from a string (copies it).
    pub fn parse_str(s: &str) -> Result<Uri, UriError> {
        Uri::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// The URI text exactly as received.
    pub fn as_str(&self) -> &str {
        as_str(self.raw())
    }

    /// The URI bytes exactly as received.
    pub fn raw(&self) -> &Bytes {
        match self {
            Uri::Sip(u) => &u.raw,
            Uri::Tel(u) => &u.raw,
            Uri::Other(u) => &u.raw,
        }
    }

    /// The scheme, lower-cased by convention of the variants
    /// (`sip`, `sips`, `tel`, or the other scheme as written).
    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Other(u) => u.scheme(),
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Characters allowed anywhere in a URI's text: printable ASCII other than
/// white space, `<`, `>`, `"` and backslash (RFC 3986 §2 plus SIP's marks).
fn uri_char(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\' | b'{' | b'}' | b'|')
}

/// Kind of host in a SIP URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A DNS name.
    Domain,
    /// A dotted IPv4 address.
    Ipv4,
    /// A bracketed IPv6 reference.
    Ipv6,
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    raw: Bytes,
    secure: bool,
    user: Option<Span>,
    password: Option<Span>,
    host: Span,
    host_kind: HostKind,
    port: Option<u16>,
    params: Span,
    headers: Span,
}

impl SipUri {
    /// Parses a SIP/SIPS URI (the scheme must be `sip` or `sips`).
    pub fn parse(raw: Bytes) -> Result<SipUri, UriError> {
        if raw.len() > u16::MAX as usize {
            return Err(UriError::IllegalChar);
        }
        if !raw.iter().all(|&b| uri_char(b)) {
            return Err(UriError::IllegalChar);
        }
        let colon = memchr::memchr(b':', &raw).ok_or(UriError::NoScheme)?;
        let secure = match &raw[..colon] {
            s if s.eq_ignore_ascii_case(b"sip") => false,
            s if s.eq_ignore_ascii_case(b"sips") => true,
            _ => return Err(UriError::NoScheme),
        };
        let s = &raw[..];
        let mut i = colon + 1;
        let (mut user, mut password) = (None, None);
        if let Some(at) = memchr::memchr(b'@', &s[i..]) {
            let at = i + at;
            let userinfo = &s[i..at];
            match memchr::memchr(b':', userinfo) {
                Some(c) => {
                    user = Some(Span::new(i, i + c));
                    password = Some(Span::new(i + c + 1, at));
                }
                None => user = Some(Span::new(i, at)),
            }
            if userinfo.is_empty() || userinfo[0] == b':' {
                return Err(UriError::BadHost);
            }
            i = at + 1;
        }
        let hs = i;
        let host_kind;
        if s.get(i) == Some(&b'[') {
            let close = memchr::memchr(b']', &s[i..]).ok_or(UriError::BadHost)? + i;
            let inner = &s[i + 1..close];
            if inner.is_empty()
                || !inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(UriError::BadHost);
            }
            i = close + 1;
            host_kind = HostKind::Ipv6;
        } else {
            while i < s.len()
                && (s[i].is_ascii_alphanumeric() || matches!(s[i], b'-' | b'.' | b'_'))
            {
                i += 1;
            }
            let host = &s[hs..i];
            if host.is_empty() || host[0] == b'-' || host[0] == b'.' {
                return Err(UriError::BadHost);
            }
            host_kind = if host.iter().all(|&b| b.is_ascii_digit() || b == b'.')
                && host.iter().filter(|&&b| b == b'.').count() == 3
            {
                HostKind::Ipv4
            } else {
                HostKind::Domain
            };
        }
        let host = Span::new(hs, i);
        let mut port = None;
        if s.get(i) == Some(&b':') {
            let ps = i + 1;
            i = ps;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &s[ps..i];
            port = Some(
                scan::parse_u32(digits)
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or(UriError::BadPort)?,
            );
        }
        let ps = i;
        while i < s.len() && s[i] != b'?' {
            i += 1;
        }
        let params = Span::new(ps, i);
        if !params.is_empty() {
            if s[ps] != b';' {
                return Err(UriError::BadHost);
            }
            scan::parse_params(params.get(s)).map_err(|_| UriError::BadParam)?;
        }
        let headers = if i < s.len() {
            Span::new(i + 1, s.len())
        } else {
            Span::new(s.len(), s.len())
        };
        Ok(SipUri {
            raw,
            secure,
            user,
            password,
            host,
            host_kind,
            port,
            params,
            headers,
        })
    }

    /// Parses from a string (copies it).
    pub fn parse_str(s: &str) -> Result<SipUri, UriError> {
        SipUri::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// `true` for `sips:`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }
    /// The user part as written (may hold `%` escapes), if any.
    pub fn user(&self) -> Option<&str> {
        self.user.map(|s| as_str(s.get(&self.raw)))
    }
    /// The user part with `%` escapes decoded.
    pub fn user_decoded(&self) -> Option<Vec<u8>> {
        self.user.map(|s| scan::percent_decode(s.get(&self.raw)))
    }
    /// The password part, if any (deprecated by RFC 3261 but legal).
    pub fn password(&self) -> Option<&str> {
        self.password.map(|s| as_str(s.get(&self.raw)))
    }
    /// The host as written (IPv6 with brackets).
    pub fn host(&self) -> &str {
        as_str(self.host.get(&self.raw))
    }
    /// What kind of host this is.
    pub fn host_kind(&self) -> HostKind {
        self.host_kind
    }
    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// All `;` parameters.
    pub fn params(&self) -> Vec<Param<'_>> {
        scan::parse_params(self.params.get(&self.raw)).unwrap_or_default()
    }
    /// A parameter by case-insensitive name: `Some(None)` when present
    /// without value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params()
            .into_iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|p| p.value.map(as_str))
    }
    /// The `transport` parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.param("transport")
            .flatten()
            .map(|t| t.to_ascii_lowercase())
    }
    /// Whether the `lr` parameter is present (loose routing).
    pub fn is_loose_route(&self) -> bool {
        self.param("lr").is_some()
    }
    /// The raw `?` headers section (without the `?`), empty if none.
    pub fn headers_raw(&self) -> &str {
        as_str(self.headers.get(&self.raw))
    }
    /// Whether the URI carries `?header=value` parts (forbidden in a
    /// Request-URI, §19.1.1).
    pub fn has_headers(&self) -> bool {
        !self.headers.is_empty()
    }
    /// The URI text.
    pub fn as_str(&self) -> &str {
        as_str(&self.raw)
    }
    /// The raw bytes.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    raw: Bytes,
    number: Span,
    params: Span,
}

impl TelUri {
    /// Parses a tel URI.
    pub fn parse(raw: Bytes) -> Result<TelUri, UriError> {
        if raw.len() > u16::MAX as usize || !raw.iter().all(|&b| uri_char(b)) {
            return Err(UriError::IllegalChar);
        }
        let start = memchr::memchr(b':', &raw).ok_or(UriError::NoScheme)? + 1;
        let end = memchr::memchr(b';', &raw[start..]).map_or(raw.len(), |p| p + start);
        let number = &raw[start..end];
        let digits_ok = number.iter().all(|&b| {
            b.is_ascii_hexdigit() || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
        });
        if number.is_empty() || !digits_ok {
            return Err(UriError::BadTel);
        }
        if end < raw.len() {
            scan::parse_params(&raw[end..]).map_err(|_| UriError::BadParam)?;
        }
        Ok(TelUri {
            number: Span::new(start, end),
            params: Span::new(end, raw.len()),
            raw,
        })
    }
    /// The number as written, visual separators included.
    pub fn number(&self) -> &str {
        as_str(self.number.get(&self.raw))
    }
    /// Whether it is a global number (`+` prefix).
    pub fn is_global(&self) -> bool {
        self.number().starts_with('+')
    }
    /// The `;` parameters.
    pub fn params(&self) -> Vec<Param<'_>> {
        scan::parse_params(self.params.get(&self.raw)).unwrap_or_default()
    }
}

/// An absolute URI of a scheme this stack does not interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherUri {
    raw: Bytes,
    scheme_len: usize,
}

impl OtherUri {
    /// Parses `scheme:rest` with no further structure.
    pub fn parse(raw: Bytes) -> Result<OtherUri, UriError> {
        if !raw.iter().all(|&b| uri_char(b)) {
            return Err(UriError::IllegalChar);
        }
        let scheme_len = memchr::memchr(b':', &raw).ok_or(UriError::NoScheme)?;
        Ok(OtherUri { raw, scheme_len })
    }
    /// The scheme as written.
    pub fn scheme(&self) -> &str {
        as_str(&self.raw[..self.scheme_len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        SipUri::parse_str(s).unwrap()
    }

    #[test]
    fn full_sip_uri() {
        let u = sip("sips:alice:secret@[2001:db8::1]:5061;transport=TCP;lr?subject=x");
        assert!(u.is_secure());
        assert_eq!(u.user(), Some("alice"));
        assert_eq!(u.password(), Some("secret"));
        assert_eq!(u.host(), "[2001:db8::1]");
        assert_eq!(u.host_kind(), HostKind::Ipv6);
        assert_eq!(u.port(), Some(5061));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert!(u.is_loose_route());
        assert!(u.has_headers());
        assert_eq!(u.headers_raw(), "subject=x");
    }

    #[test]
    fn escaped_user_parts() {
        let u = sip("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(u.user_decoded().unwrap(), b"sips:user@example.com");
        assert_eq!(u.host(), "example.net");
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user(), Some("user;par=u%40example.net"));
        assert_eq!(u.host(), "example.com");
    }

    #[test]
    fn rejects_bad_uris() {
        assert!(SipUri::parse_str("sip:user@example.com; lr").is_err());
        assert!(SipUri::parse_str("sip:user@").is_err());
        assert!(SipUri::parse_str("sip:user@host:99999").is_err());
        assert!(SipUri::parse_str("sip:user@host:").is_err());
        assert!(SipUri::parse_str("<sip:user@host>").is_err());
        assert!(Uri::parse_str("nocolon").is_err());
    }

    #[test]
    fn other_schemes() {
        let t = Uri::parse_str("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        let Uri::Tel(t) = t else { panic!() };
        assert!(t.is_global());
        assert_eq!(t.number(), "+1-201-555-0123");
        let o = Uri::parse_str("name:John_Smith").unwrap();
        assert_eq!(o.scheme(), "name");
    }
}
