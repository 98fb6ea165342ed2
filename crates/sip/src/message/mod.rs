//! The SIP message model (RFC 3261 §7).
//!
//! A [`Message`] keeps every header value as the bytes received
//! ([`Bytes`] slices of the one input buffer), so forwarding is faithful and
//! parsing allocates only the header table. Typed views live in
//! [`crate::header`] and are parsed on demand.

mod parse;
mod serialize;

pub use parse::{ParseError, ParseErrorKind};

use std::fmt;

use bytes::Bytes;

use crate::header::{CSeq, HeaderName, NameAddr, Via};
use crate::uri::Uri;

/// A request method. Methods are case-sensitive (§7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// REGISTER
    Register,
    /// OPTIONS
    Options,
    /// INFO (RFC 6086)
    Info,
    /// UPDATE (RFC 3311)
    Update,
    /// PRACK (RFC 3262)
    Prack,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// REFER (RFC 3515)
    Refer,
    /// MESSAGE (RFC 3428)
    Message,
    /// PUBLISH (RFC 3903)
    Publish,
    /// Any other token.
    Other(Bytes),
}

impl Method {
    /// Maps a method token.
    pub fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            other => Method::Other(Bytes::copy_from_slice(other)),
        }
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(b) => std::str::from_utf8(b).unwrap_or_default(),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A response status code, 100..=699.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// 100 Trying
    pub const TRYING: StatusCode = StatusCode(100);
    /// 180 Ringing
    pub const RINGING: StatusCode = StatusCode(180);
    /// 200 OK
    pub const OK: StatusCode = StatusCode(200);
    /// 400 Bad Request
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    /// 404 Not Found
    pub const NOT_FOUND: StatusCode = StatusCode(404);
    /// 405 Method Not Allowed
    pub const METHOD_NOT_ALLOWED: StatusCode = StatusCode(405);
    /// 406 Not Acceptable
    pub const NOT_ACCEPTABLE: StatusCode = StatusCode(406);
    /// 408 Request Timeout
    pub const REQUEST_TIMEOUT: StatusCode = StatusCode(408);
    /// 413 Request Entity Too Large
    pub const TOO_LARGE: StatusCode = StatusCode(413);
    /// 415 Unsupported Media Type
    pub const UNSUPPORTED_MEDIA_TYPE: StatusCode = StatusCode(415);
    /// 416 Unsupported URI Scheme
    pub const UNSUPPORTED_URI_SCHEME: StatusCode = StatusCode(416);
    /// 420 Bad Extension
    pub const BAD_EXTENSION: StatusCode = StatusCode(420);
    /// 481 Call/Transaction Does Not Exist
    pub const NO_TRANSACTION: StatusCode = StatusCode(481);
    /// 483 Too Many Hops
    pub const TOO_MANY_HOPS: StatusCode = StatusCode(483);
    /// 487 Request Terminated
    pub const REQUEST_TERMINATED: StatusCode = StatusCode(487);
    /// 500 Server Internal Error
    pub const SERVER_ERROR: StatusCode = StatusCode(500);
    /// 501 Not Implemented
    pub const NOT_IMPLEMENTED: StatusCode = StatusCode(501);
    /// 503 Service Unavailable
    pub const SERVICE_UNAVAILABLE: StatusCode = StatusCode(503);
    /// 505 Version Not Supported
    pub const VERSION_NOT_SUPPORTED: StatusCode = StatusCode(505);

    /// 1xx
    pub fn is_provisional(self) -> bool {
        self.0 < 200
    }
    /// 2xx
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }
    /// ≥ 200
    pub fn is_final(self) -> bool {
        self.0 >= 200
    }

    /// The default reason phrase (§21).
    pub fn default_reason(self) -> &'static str {
        match self.0 {
            100 => "Trying",
            180 => "Ringing",
            181 => "Call Is Being Forwarded",
            182 => "Queued",
            183 => "Session Progress",
            200 => "OK",
            202 => "Accepted",
            300 => "Multiple Choices",
            301 => "Moved Permanently",
            302 => "Moved Temporarily",
            305 => "Use Proxy",
            380 => "Alternative Service",
            400 => "Bad Request",
            401 => "Unauthorized",
            402 => "Payment Required",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            410 => "Gone",
            413 => "Request Entity Too Large",
            414 => "Request-URI Too Long",
            415 => "Unsupported Media Type",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            421 => "Extension Required",
            422 => "Session Interval Too Small",
            423 => "Interval Too Brief",
            480 => "Temporarily Unavailable",
            481 => "Call/Transaction Does Not Exist",
            482 => "Loop Detected",
            483 => "Too Many Hops",
            484 => "Address Incomplete",
            485 => "Ambiguous",
            486 => "Busy Here",
            487 => "Request Terminated",
            488 => "Not Acceptable Here",
            491 => "Request Pending",
            493 => "Undecipherable",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Server Time-out",
            505 => "Version Not Supported",
            513 => "Message Too Large",
            600 => "Busy Everywhere",
            603 => "Decline",
            604 => "Does Not Exist Anywhere",
            606 => "Not Acceptable",
            _ => "Unknown",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One header line: its name and its raw value (trimmed, unfolded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name.
    pub name: HeaderName,
    /// The value bytes.
    pub value: Bytes,
}

/// The headers of a message, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// An empty table.
    pub fn new() -> Self {
        Headers(Vec::with_capacity(16))
    }
    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&Bytes> {
        self.0.iter().find(|h| &h.name == name).map(|h| &h.value)
    }
    /// The first value of `name` as text.
    pub fn get_str(&self, name: &HeaderName) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }
    /// All values of `name`, one per header line.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| &h.value)
    }
    /// How many header lines carry `name`.
    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }
    /// Appends a header line.
    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }
    /// Inserts a header line before all others of the same name (or at the
    /// top), as a proxy does with Via and Record-Route.
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let at = self.0.iter().position(|h| h.name == name).unwrap_or(0);
        self.0.insert(
            at,
            Header {
                name,
                value: value.into(),
            },
        );
    }
    /// Replaces every line of `name` with one line holding `value`.
    pub fn set(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(at) => {
                self.0[at].value = value;
                let mut i = at + 1;
                while i < self.0.len() {
                    if self.0[i].name == name {
                        self.0.remove(i);
                    } else {
                        i += 1;
                    }
                }
            }
            None => self.push(name, value),
        }
    }
    /// Removes every line of `name`.
    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }
    /// Iterates over all header lines.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }
    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The top-most Via value (first value of the first Via line).
    pub fn top_via(&self) -> Option<Via<'_>> {
        let v = self.get(&HeaderName::Via)?;
        let first = crate::scan::split_list(v).ok()?.into_iter().next()?;
        Via::parse(first).ok()
    }
    /// The parsed CSeq.
    pub fn cseq(&self) -> Option<CSeq> {
        CSeq::parse(self.get(&HeaderName::CSeq)?)
    }
    /// The Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.get_str(&HeaderName::CallId)
    }
    /// The parsed From header.
    pub fn from(&self) -> Option<NameAddr> {
        NameAddr::parse(self.get(&HeaderName::From)?.clone()).ok()
    }
    /// The parsed To header.
    pub fn to(&self) -> Option<NameAddr> {
        NameAddr::parse(self.get(&HeaderName::To)?.clone()).ok()
    }
    /// Every value of a list header as its own slice (e.g. each Contact),
    /// in order across lines. Values with unbalanced quotes are skipped.
    pub fn list_values(&self, name: &HeaderName) -> Vec<Bytes> {
        let mut out = Vec::new();
        for v in self.get_all(name) {
            if let Ok(parts) = crate::scan::split_list(v) {
                out.extend(parts.into_iter().map(|p| v.slice_ref(p)));
            }
        }
        out
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
    /// Headers in order.
    pub headers: Headers,
    /// The body (exactly Content-Length bytes).
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase as received (may be empty, may be UTF-8).
    pub reason: Bytes,
    /// Headers in order.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// The reason phrase as text (lossy).
    pub fn reason_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.reason)
    }
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// The headers of either kind.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
    /// Mutable headers of either kind.
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }
    /// The body of either kind.
    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }
}
