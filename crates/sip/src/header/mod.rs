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

/// (canonical name, variant) for every known header, plus compact forms.
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
        // Most messages use the canonical spelling: try it byte-exact first.
        for (name, variant) in KNOWN {
            if name.len() == raw.len() && name.as_bytes().eq_ignore_ascii_case(raw) {
                return variant.clone();
            }
        }
        HeaderName::Other(Bytes::copy_from_slice(raw))
    }

    /// The canonical spelling (or the name as written for unknown ones).
    pub fn as_str(&self) -> &str {
        if let HeaderName::Other(raw) = self {
            return std::str::from_utf8(raw).unwrap_or_default();
        }
        KNOWN
            .iter()
            .find(|(_, v)| v == self)
            .map(|(n, _)| *n)
            .unwrap_or_default()
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
    fn names_and_compact_forms() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"MaX-fOrWaRdS"), HeaderName::MaxForwards);
        assert_eq!(HeaderName::from_bytes(b"cseq").as_str(), "CSeq");
        assert_eq!(
            HeaderName::from_bytes(b"X-Custom").as_str(),
            "X-Custom"
        );
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
