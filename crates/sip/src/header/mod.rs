//! Header names and typed views of header values.
//!
//! The message keeps every header's raw value; the types here parse one on
//! demand (Via §20.42, name-addr headers §20.10/§20.20/§20.39, CSeq §20.16)
//! and borrow from it.

mod name_addr;
mod via;

pub use name_addr::NameAddr;
pub use via::Via;

use std::fmt;

use bytes::Bytes;

/// A header name. Known names are matched case-insensitively and in their
/// compact forms (§7.3.3); anything else is kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HeaderName {
    /// `Accept`
    Accept,
    /// `Accept-Encoding`
    AcceptEncoding,
    /// `Accept-Language`
    AcceptLanguage,
    /// `Alert-Info`
    AlertInfo,
    /// `Allow`
    Allow,
    /// `Allow-Events` (`u`)
    AllowEvents,
    /// `Authorization`
    Authorization,
    /// `Call-ID` (`i`)
    CallId,
    /// `Call-Info`
    CallInfo,
    /// `Contact` (`m`)
    Contact,
    /// `Content-Disposition`
    ContentDisposition,
    /// `Content-Encoding` (`e`)
    ContentEncoding,
    /// `Content-Language`
    ContentLanguage,
    /// `Content-Length` (`l`)
    ContentLength,
    /// `Content-Type` (`c`)
    ContentType,
    /// `CSeq`
    CSeq,
    /// `Date`
    Date,
    /// `Event` (`o`)
    Event,
    /// `Expires`
    Expires,
    /// `From` (`f`)
    From,
    /// `Max-Forwards`
    MaxForwards,
    /// `Min-Expires`
    MinExpires,
    /// `Min-SE`
    MinSe,
    /// `Path`
    Path,
    /// `Proxy-Authenticate`
    ProxyAuthenticate,
    /// `Proxy-Authorization`
    ProxyAuthorization,
    /// `Proxy-Require`
    ProxyRequire,
    /// `RAck`
    RAck,
    /// `Reason`
    Reason,
    /// `Record-Route`
    RecordRoute,
    /// `Refer-To` (`r`)
    ReferTo,
    /// `Referred-By` (`b`)
    ReferredBy,
    /// `Require`
    Require,
    /// `Retry-After`
    RetryAfter,
    /// `Route`
    Route,
    /// `RSeq`
    RSeq,
    /// `Server`
    Server,
    /// `Session-Expires` (`x`)
    SessionExpires,
    /// `Subject` (`s`)
    Subject,
    /// `Subscription-State`
    SubscriptionState,
    /// `Supported` (`k`)
    Supported,
    /// `Timestamp`
    Timestamp,
    /// `To` (`t`)
    To,
    /// `Unsupported`
    Unsupported,
    /// `User-Agent`
    UserAgent,
    /// `Via` (`v`)
    Via,
    /// `Warning`
    Warning,
    /// `WWW-Authenticate`
    WwwAuthenticate,
    /// Any other header, with its name exactly as written.
    Other(Bytes),
}

/// (canonical name, variant) for every known header.
#[cfg(test)]
const KNOWN: &[(&str, HeaderName)] = &[
    ("Accept", HeaderName::Accept),
    ("Accept-Encoding", HeaderName::AcceptEncoding),
    ("Accept-Language", HeaderName::AcceptLanguage),
    ("Alert-Info", HeaderName::AlertInfo),
    ("Allow", HeaderName::Allow),
    ("Allow-Events", HeaderName::AllowEvents),
    ("Authorization", HeaderName::Authorization),
    ("Call-ID", HeaderName::CallId),
    ("Call-Info", HeaderName::CallInfo),
    ("Contact", HeaderName::Contact),
    ("Content-Disposition", HeaderName::ContentDisposition),
    ("Content-Encoding", HeaderName::ContentEncoding),
    ("Content-Language", HeaderName::ContentLanguage),
    ("Content-Length", HeaderName::ContentLength),
    ("Content-Type", HeaderName::ContentType),
    ("CSeq", HeaderName::CSeq),
    ("Date", HeaderName::Date),
    ("Event", HeaderName::Event),
    ("Expires", HeaderName::Expires),
    ("From", HeaderName::From),
    ("Max-Forwards", HeaderName::MaxForwards),
    ("Min-Expires", HeaderName::MinExpires),
    ("Min-SE", HeaderName::MinSe),
    ("Path", HeaderName::Path),
    ("Proxy-Authenticate", HeaderName::ProxyAuthenticate),
    ("Proxy-Authorization", HeaderName::ProxyAuthorization),
    ("Proxy-Require", HeaderName::ProxyRequire),
    ("RAck", HeaderName::RAck),
    ("Reason", HeaderName::Reason),
    ("Record-Route", HeaderName::RecordRoute),
    ("Refer-To", HeaderName::ReferTo),
    ("Referred-By", HeaderName::ReferredBy),
    ("Require", HeaderName::Require),
    ("Retry-After", HeaderName::RetryAfter),
    ("Route", HeaderName::Route),
    ("RSeq", HeaderName::RSeq),
    ("Server", HeaderName::Server),
    ("Session-Expires", HeaderName::SessionExpires),
    ("Subject", HeaderName::Subject),
    ("Subscription-State", HeaderName::SubscriptionState),
    ("Supported", HeaderName::Supported),
    ("Timestamp", HeaderName::Timestamp),
    ("To", HeaderName::To),
    ("Unsupported", HeaderName::Unsupported),
    ("User-Agent", HeaderName::UserAgent),
    ("Via", HeaderName::Via),
    ("Warning", HeaderName::Warning),
    ("WWW-Authenticate", HeaderName::WwwAuthenticate),
];

impl HeaderName {
    /// Looks a name up, compact forms included. `raw` must be a token.
    #[inline]
    pub fn from_bytes(raw: &[u8]) -> HeaderName {
        if raw.len() == 1 {
            let compact = match raw[0].to_ascii_lowercase() {
                b'i' => Some(HeaderName::CallId),
                b'm' => Some(HeaderName::Contact),
                b'e' => Some(HeaderName::ContentEncoding),
                b'l' => Some(HeaderName::ContentLength),
                b'c' => Some(HeaderName::ContentType),
                b'f' => Some(HeaderName::From),
                b's' => Some(HeaderName::Subject),
                b'k' => Some(HeaderName::Supported),
                b't' => Some(HeaderName::To),
                b'v' => Some(HeaderName::Via),
                b'o' => Some(HeaderName::Event),
                b'r' => Some(HeaderName::ReferTo),
                b'b' => Some(HeaderName::ReferredBy),
                b'u' => Some(HeaderName::AllowEvents),
                b'x' => Some(HeaderName::SessionExpires),
                _ => None,
            };
            if let Some(n) = compact {
                return n;
            }
        }
        if let Some(known) = Self::lookup(raw) {
            return known;
        }
        HeaderName::Other(Bytes::copy_from_slice(raw))
    }

    /// Known (non-compact) names: dispatch on length and first letter, then
    /// one or two case-insensitive comparisons.
    #[inline]
    fn lookup(raw: &[u8]) -> Option<HeaderName> {
        let first = raw.first()?.to_ascii_lowercase();
        #[inline(always)]
        fn eq(raw: &[u8], name: &[u8], variant: HeaderName) -> Option<HeaderName> {
            // Canonical spelling first (one memcmp), then any case.
            (raw == name || raw.eq_ignore_ascii_case(name)).then_some(variant)
        }
        match (raw.len(), first) {
            (2, b't') => eq(raw, b"To", HeaderName::To),
            (3, b'v') => eq(raw, b"Via", HeaderName::Via),
            (4, b'c') => eq(raw, b"CSeq", HeaderName::CSeq),
            (4, b'd') => eq(raw, b"Date", HeaderName::Date),
            (4, b'f') => eq(raw, b"From", HeaderName::From),
            (4, b'p') => eq(raw, b"Path", HeaderName::Path),
            (4, b'r') => {
                eq(raw, b"RAck", HeaderName::RAck).or_else(|| eq(raw, b"RSeq", HeaderName::RSeq))
            }
            (5, b'a') => eq(raw, b"Allow", HeaderName::Allow),
            (5, b'e') => eq(raw, b"Event", HeaderName::Event),
            (5, b'r') => eq(raw, b"Route", HeaderName::Route),
            (6, b'a') => eq(raw, b"Accept", HeaderName::Accept),
            (6, b'm') => eq(raw, b"Min-SE", HeaderName::MinSe),
            (6, b'r') => eq(raw, b"Reason", HeaderName::Reason),
            (6, b's') => eq(raw, b"Server", HeaderName::Server),
            (7, b'c') => eq(raw, b"Call-ID", HeaderName::CallId)
                .or_else(|| eq(raw, b"Contact", HeaderName::Contact)),
            (7, b'e') => eq(raw, b"Expires", HeaderName::Expires),
            (7, b'r') => eq(raw, b"Require", HeaderName::Require),
            (7, b's') => eq(raw, b"Subject", HeaderName::Subject),
            (7, b'w') => eq(raw, b"Warning", HeaderName::Warning),
            (8, b'r') => eq(raw, b"Refer-To", HeaderName::ReferTo),
            (9, b'c') => eq(raw, b"Call-Info", HeaderName::CallInfo),
            (9, b's') => eq(raw, b"Supported", HeaderName::Supported),
            (9, b't') => eq(raw, b"Timestamp", HeaderName::Timestamp),
            (10, b'a') => eq(raw, b"Alert-Info", HeaderName::AlertInfo),
            (10, b'u') => eq(raw, b"User-Agent", HeaderName::UserAgent),
            (11, b'm') => eq(raw, b"Min-Expires", HeaderName::MinExpires),
            (11, b'r') => eq(raw, b"Referred-By", HeaderName::ReferredBy)
                .or_else(|| eq(raw, b"Retry-After", HeaderName::RetryAfter)),
            (11, b'u') => eq(raw, b"Unsupported", HeaderName::Unsupported),
            (12, b'a') => eq(raw, b"Allow-Events", HeaderName::AllowEvents),
            (12, b'c') => eq(raw, b"Content-Type", HeaderName::ContentType),
            (12, b'm') => eq(raw, b"Max-Forwards", HeaderName::MaxForwards),
            (12, b'r') => eq(raw, b"Record-Route", HeaderName::RecordRoute),
            (13, b'a') => eq(raw, b"Authorization", HeaderName::Authorization),
            (13, b'p') => eq(raw, b"Proxy-Require", HeaderName::ProxyRequire),
            (14, b'c') => eq(raw, b"Content-Length", HeaderName::ContentLength),
            (15, b'a') => eq(raw, b"Accept-Encoding", HeaderName::AcceptEncoding)
                .or_else(|| eq(raw, b"Accept-Language", HeaderName::AcceptLanguage)),
            (15, b's') => eq(raw, b"Session-Expires", HeaderName::SessionExpires),
            (16, b'c') => eq(raw, b"Content-Encoding", HeaderName::ContentEncoding)
                .or_else(|| eq(raw, b"Content-Language", HeaderName::ContentLanguage)),
            (16, b'w') => eq(raw, b"WWW-Authenticate", HeaderName::WwwAuthenticate),
            (18, b'p') => eq(raw, b"Proxy-Authenticate", HeaderName::ProxyAuthenticate),
            (18, b's') => eq(raw, b"Subscription-State", HeaderName::SubscriptionState),
            (19, b'c') => eq(raw, b"Content-Disposition", HeaderName::ContentDisposition),
            (19, b'p') => eq(raw, b"Proxy-Authorization", HeaderName::ProxyAuthorization),
            _ => None,
        }
    }

    /// The canonical spelling (or the name as written for unknown ones).
    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Accept => "Accept",
            HeaderName::AcceptEncoding => "Accept-Encoding",
            HeaderName::AcceptLanguage => "Accept-Language",
            HeaderName::AlertInfo => "Alert-Info",
            HeaderName::Allow => "Allow",
            HeaderName::AllowEvents => "Allow-Events",
            HeaderName::Authorization => "Authorization",
            HeaderName::CallId => "Call-ID",
            HeaderName::CallInfo => "Call-Info",
            HeaderName::Contact => "Contact",
            HeaderName::ContentDisposition => "Content-Disposition",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::ContentLanguage => "Content-Language",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::CSeq => "CSeq",
            HeaderName::Date => "Date",
            HeaderName::Event => "Event",
            HeaderName::Expires => "Expires",
            HeaderName::From => "From",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::MinSe => "Min-SE",
            HeaderName::Path => "Path",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::RAck => "RAck",
            HeaderName::Reason => "Reason",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::ReferredBy => "Referred-By",
            HeaderName::Require => "Require",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::Route => "Route",
            HeaderName::RSeq => "RSeq",
            HeaderName::Server => "Server",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::Subject => "Subject",
            HeaderName::SubscriptionState => "Subscription-State",
            HeaderName::Supported => "Supported",
            HeaderName::Timestamp => "Timestamp",
            HeaderName::To => "To",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Via => "Via",
            HeaderName::Warning => "Warning",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::Other(raw) => std::str::from_utf8(raw).unwrap_or_default(),
        }
    }

    /// Headers whose value is a comma-separated list (§7.3.1), so several
    /// header lines may be combined and one line may hold several values.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Accept
                | HeaderName::AcceptEncoding
                | HeaderName::AcceptLanguage
                | HeaderName::AlertInfo
                | HeaderName::Allow
                | HeaderName::AllowEvents
                | HeaderName::CallInfo
                | HeaderName::Contact
                | HeaderName::ContentEncoding
                | HeaderName::ContentLanguage
                | HeaderName::Path
                | HeaderName::ProxyRequire
                | HeaderName::RecordRoute
                | HeaderName::Require
                | HeaderName::Route
                | HeaderName::Supported
                | HeaderName::Unsupported
                | HeaderName::Via
                | HeaderName::Warning
        )
    }

    /// Headers that must appear at most once (§20; RFC 4475 multi01).
    pub fn is_single(&self) -> bool {
        matches!(
            self,
            HeaderName::CallId
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::CSeq
                | HeaderName::From
                | HeaderName::MaxForwards
                | HeaderName::To
                | HeaderName::Expires
                | HeaderName::MinExpires
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `CSeq` value (§20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (< 2^31 per §8.1.1.5, up to 2^32-1 accepted).
    pub seq: u32,
    /// Method token.
    pub method: crate::Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(v: &[u8]) -> Option<CSeq> {
        let v = crate::scan::trim(v);
        let split = v.iter().position(|&b| crate::scan::is_ws(b))?;
        let seq = crate::scan::parse_u32(&v[..split])?;
        let method = crate::scan::trim(&v[split..]);
        if !crate::scan::is_token(method) {
            return None;
        }
        Some(CSeq {
            seq,
            method: crate::Method::from_bytes(method),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_maps_both_ways() {
        for (name, variant) in KNOWN {
            assert_eq!(&HeaderName::from_bytes(name.as_bytes()), variant, "{name}");
            assert_eq!(
                &HeaderName::from_bytes(name.to_ascii_uppercase().as_bytes()),
                variant
            );
            assert_eq!(variant.as_str(), *name);
        }
        assert_eq!(
            HeaderName::from_bytes(b"Contacts"),
            HeaderName::Other(Bytes::from_static(b"Contacts"))
        );
        assert_eq!(
            HeaderName::from_bytes(b"Call-IE"),
            HeaderName::Other(Bytes::from_static(b"Call-IE"))
        );
    }

    #[test]
    fn names_and_compact_forms() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"cseq").as_str(), "CSeq");
        assert_eq!(HeaderName::from_bytes(b"X-Custom").as_str(), "X-Custom");
    }

    #[test]
    fn cseq_parses_and_rejects() {
        let c = CSeq::parse(b"0009\r\n  INVITE").unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.method, crate::Method::Invite);
        assert!(CSeq::parse(b"36893488147419103232 INVITE").is_none());
        assert!(CSeq::parse(b"1").is_none());
    }
}
