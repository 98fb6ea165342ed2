//! Message parser (RFC 3261 §7, §25).
//!
//! One pass over the buffer: the start line, then header lines (folded
//! continuation lines are joined), then the body by Content-Length. Header
//! values stay slices of the input; only folded values are copied.

use bytes::Bytes;

use super::{Header, Headers, Message, Method, Request, Response, StatusCode};
use crate::header::HeaderName;
use crate::scan;
use crate::uri::Uri;

/// What went wrong, coarse enough to pick a reaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Nothing but white space.
    Empty,
    /// The start line is neither a request line nor a status line.
    BadStartLine,
    /// SIP version other than 2.0.
    BadVersion,
    /// A Request-URI that does not parse.
    BadRequestUri,
    /// A status code outside 100..=699 or not three digits.
    BadStatusCode,
    /// A header line without a name, colon or with an illegal name.
    BadHeader,
    /// Content-Length missing a number, negative, too big, or repeated.
    BadContentLength,
    /// Content-Length larger than the bytes that arrived.
    Truncated,
    /// The message is larger than the configured limit.
    TooLarge,
}

/// A parse failure. For requests whose headers could be read, the headers
/// are kept so that the caller can answer with [`ParseError::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Category.
    pub kind: ParseErrorKind,
    /// Human-readable detail, used as the reason phrase of the answer.
    pub detail: &'static str,
    /// Whether the start line looked like a request.
    pub is_request: bool,
    /// The headers that were read, if the failure allows answering.
    pub headers: Option<Headers>,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    fn new(kind: ParseErrorKind, detail: &'static str) -> Self {
        ParseError {
            kind,
            detail,
            is_request: false,
            headers: None,
        }
    }

    /// The status to answer a request with, or `None` when the message must
    /// be dropped silently (responses are never answered; neither is input
    /// whose start line is not recognisable).
    pub fn status(&self) -> Option<StatusCode> {
        if !self.is_request {
            return None;
        }
        Some(match self.kind {
            ParseErrorKind::BadVersion => StatusCode::VERSION_NOT_SUPPORTED,
            ParseErrorKind::TooLarge => StatusCode::TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        })
    }
}

enum StartLine {
    Request(Method, Uri),
    Response(StatusCode, Bytes),
}

/// Line end: index of `\n` (or the buffer end) and the index where the
/// line's content ends (before `\r`).
#[inline]
fn line_end(buf: &[u8], from: usize) -> (usize, usize) {
    let nl = memchr::memchr(b'\n', &buf[from..]).map_or(buf.len(), |p| from + p);
    let end = if nl > from && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    (nl, end)
}

fn is_sip_version(v: &[u8]) -> bool {
    v.eq_ignore_ascii_case(b"SIP/2.0")
}

fn looks_like_version(v: &[u8]) -> bool {
    v.len() >= 4 && v[..4].eq_ignore_ascii_case(b"SIP/")
}

fn parse_start_line(buf: &Bytes, s: usize, e: usize) -> Result<StartLine, ParseError> {
    let line = &buf[s..e];
    if looks_like_version(line) {
        let sp = memchr::memchr(b' ', line).ok_or(ParseError::new(
            ParseErrorKind::BadStartLine,
            "bad status line",
        ))?;
        if !is_sip_version(&line[..sp]) {
            return Err(ParseError::new(
                ParseErrorKind::BadVersion,
                "unsupported version",
            ));
        }
        let rest = &line[sp + 1..];
        let code_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let code = &rest[..code_end];
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::new(
                ParseErrorKind::BadStatusCode,
                "bad status code",
            ));
        }
        let code = code.iter().fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&code) {
            return Err(ParseError::new(
                ParseErrorKind::BadStatusCode,
                "bad status code",
            ));
        }
        let reason_at = (s + sp + 1 + code_end + 1).min(e);
        return Ok(StartLine::Response(
            StatusCode(code),
            buf.slice(reason_at..e),
        ));
    }
    let mut err = ParseError::new(ParseErrorKind::BadStartLine, "malformed request line");
    let first = memchr::memchr(b' ', line).ok_or(err.clone())?;
    let last = memchr::memrchr(b' ', line).ok_or(err.clone())?;
    let method = &line[..first];
    if !scan::is_token(method) {
        return Err(err);
    }
    err.is_request = true;
    if first == last {
        return Err(err);
    }
    let version = &line[last + 1..];
    if version.is_empty() {
        err.detail = "trailing white space in request line";
        return Err(err);
    }
    if !is_sip_version(version) {
        if looks_like_version(version) {
            err.kind = ParseErrorKind::BadVersion;
            err.detail = "unsupported version";
        }
        return Err(err);
    }
    let uri = Uri::parse(buf.slice(s + first + 1..s + last)).map_err(|_| ParseError {
        kind: ParseErrorKind::BadRequestUri,
        detail: "malformed Request-URI",
        is_request: true,
        headers: None,
    })?;
    Ok(StartLine::Request(Method::from_bytes(method), uri))
}

/// Joins folded lines: drops each line break, keeping the white space
/// that follows it (the fold is equivalent to that white space, §7.3.1).
fn unfold(raw: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(raw.len());
    for &b in raw {
        if b != b'\r' && b != b'\n' {
            out.push(b);
        }
    }
    Bytes::from(out)
}

/// Parses one message from `buf`. With `datagram`, a missing Content-Length
/// means "the rest of the datagram is the body" (§18.3), and bytes after
/// Content-Length are ignored (RFC 4475 dblreq).
pub(crate) fn parse(buf: Bytes, max_size: usize) -> Result<Message, ParseError> {
    if buf.len() > max_size {
        let mut e = ParseError::new(ParseErrorKind::TooLarge, "message too large");
        e.is_request = !looks_like_version(&buf[..buf.len().min(4)]);
        return Err(e);
    }
    let b = &buf[..];
    // §7.5: ignore CRLFs before the start line (also keep-alive pings).
    let mut pos = 0;
    while pos < b.len() && (b[pos] == b'\r' || b[pos] == b'\n') {
        pos += 1;
    }
    if pos == b.len() {
        return Err(ParseError::new(ParseErrorKind::Empty, "empty message"));
    }
    let (nl, end) = line_end(b, pos);
    let start = parse_start_line(&buf, pos, end);
    let is_request = match &start {
        Ok(StartLine::Request(..)) => true,
        Ok(StartLine::Response(..)) => false,
        Err(e) => e.is_request,
    };
    pos = nl + 1;

    let mut headers = Headers::new();
    let mut first_error: Option<ParseError> = None;
    let mut content_length: Option<usize> = None;
    let fail = |kind, detail| ParseError {
        kind,
        detail,
        is_request,
        headers: None,
    };
    while pos < b.len() {
        let (nl, end) = line_end(b, pos);
        if end == pos {
            pos = nl + 1;
            break;
        }
        // Extend over continuation lines (starting with SP or HTAB).
        let (mut nl, mut end) = (nl, end);
        let mut folded = false;
        while nl + 1 < b.len() && matches!(b[nl + 1], b' ' | b'\t') {
            let (n2, e2) = line_end(b, nl + 1);
            nl = n2;
            end = e2;
            folded = true;
        }
        let line = &b[pos..end];
        let Some(colon) = memchr::memchr(b':', line) else {
            first_error.get_or_insert(fail(ParseErrorKind::BadHeader, "header line without colon"));
            pos = nl + 1;
            continue;
        };
        let name = scan::trim(&line[..colon]);
        if !scan::is_token(name) {
            first_error.get_or_insert(fail(ParseErrorKind::BadHeader, "malformed header name"));
            pos = nl + 1;
            continue;
        }
        let value = scan::trim(&line[colon + 1..]);
        let value = if folded {
            unfold(value)
        } else {
            buf.slice_ref(value)
        };
        let name = HeaderName::from_bytes(name);
        if name == HeaderName::ContentLength {
            match (content_length, scan::parse_u32(&value)) {
                (None, Some(n)) => content_length = Some(n as usize),
                (Some(_), _) => {
                    first_error.get_or_insert(fail(
                        ParseErrorKind::BadContentLength,
                        "multiple Content-Length values",
                    ));
                }
                (None, None) => {
                    first_error.get_or_insert(fail(
                        ParseErrorKind::BadContentLength,
                        "malformed Content-Length",
                    ));
                }
            }
        }
        headers.0.push(Header { name, value });
        pos = nl + 1;
    }
    let pos = pos.min(b.len());
    let remaining = b.len() - pos;
    let body = match content_length {
        Some(n) if n > remaining => {
            first_error.get_or_insert(fail(
                ParseErrorKind::Truncated,
                "Content-Length exceeds message",
            ));
            Bytes::new()
        }
        Some(n) => buf.slice(pos..pos + n),
        None => buf.slice(pos..),
    };
    let start = match start {
        Ok(s) => s,
        Err(mut e) => {
            if e.is_request {
                e.headers = Some(headers);
            }
            return Err(e);
        }
    };
    if let Some(mut e) = first_error {
        if e.is_request {
            e.headers = Some(headers);
        }
        return Err(e);
    }
    Ok(match start {
        StartLine::Request(method, uri) => Message::Request(Request {
            method,
            uri,
            headers,
            body,
        }),
        StartLine::Response(status, reason) => Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }),
    })
}

/// Default limit on one message (UDP datagrams are smaller anyway).
pub const DEFAULT_MAX_SIZE: usize = 64 * 1024;

impl Message {
    /// Parses one message held entirely in `buf` (a datagram, or one frame
    /// cut by [`crate::framing`]), with the default size limit.
    pub fn parse(buf: Bytes) -> Result<Message, ParseError> {
        parse(buf, DEFAULT_MAX_SIZE)
    }

    /// Parses with an explicit size limit (413 above it).
    pub fn parse_with_limit(buf: Bytes, max_size: usize) -> Result<Message, ParseError> {
        parse(buf, max_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Message, ParseError> {
        Message::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    const OPTIONS: &str = "OPTIONS sip:user@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:user@example.com>\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn simple_request() {
        let Message::Request(r) = p(OPTIONS).unwrap() else {
            panic!()
        };
        assert_eq!(r.method, Method::Options);
        assert_eq!(r.uri.as_str(), "sip:user@example.com");
        assert_eq!(r.headers.len(), 7);
        assert_eq!(r.headers.call_id(), Some("x"));
        assert!(r.body.is_empty());
    }

    #[test]
    fn status_lines() {
        let Message::Response(r) = p("SIP/2.0 100 \r\nCSeq: 1 INVITE\r\n\r\n").unwrap() else {
            panic!()
        };
        assert_eq!(r.status, StatusCode(100));
        assert!(r.reason.is_empty());
        let e = p("SIP/2.0 4294967301 better not break\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), None);
        let e = p("SIP/2.0 099 x\r\n\r\n").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::BadStatusCode);
    }

    #[test]
    fn request_line_errors_keep_headers() {
        let e = p(&OPTIONS.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia")).unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::VERSION_NOT_SUPPORTED));
        assert!(e.headers.unwrap().call_id().is_some());
        let e = p(&OPTIONS.replace("OPTIONS sip", "OPTIONS  sip")).unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
        let e = p(&OPTIONS.replace("SIP/2.0\r\nVia", "SIP/2.0 \r\nVia")).unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn content_length_rules() {
        let m = OPTIONS.replace("Content-Length: 0", "Content-Length: 4") + "abcdEXTRA";
        assert_eq!(&p(&m).unwrap().body()[..], b"abcd");
        let m = OPTIONS.replace("Content-Length: 0", "Content-Length: 40") + "abcd";
        assert_eq!(p(&m).unwrap_err().kind, ParseErrorKind::Truncated);
        let m = OPTIONS.replace("Content-Length: 0", "Content-Length: -1");
        assert_eq!(p(&m).unwrap_err().kind, ParseErrorKind::BadContentLength);
        let m = OPTIONS.replace("Content-Length: 0", "Content-Length: 0\r\nl: 0");
        assert_eq!(p(&m).unwrap_err().kind, ParseErrorKind::BadContentLength);
        let m = OPTIONS.replace("Content-Length: 0\r\n", "") + "body";
        assert_eq!(&p(&m).unwrap().body()[..], b"body");
    }

    #[test]
    fn folding_and_garbage() {
        let m = OPTIONS.replace("Call-ID: x", "Call-ID:\r\n   x\r\nX-Folded: a\r\n\tb");
        let msg = p(&m).unwrap();
        assert_eq!(msg.headers().call_id(), Some("x"));
        assert_eq!(
            msg.headers()
                .get(&HeaderName::Other(Bytes::from_static(b"X-Folded"))),
            Some(&Bytes::from_static(b"a\tb"))
        );
        assert_eq!(p("\r\n\r\n").unwrap_err().kind, ParseErrorKind::Empty);
        assert_eq!(p("garbage").unwrap_err().status(), None);
        let too_big = "x".repeat(DEFAULT_MAX_SIZE + 1);
        assert_eq!(p(&too_big).unwrap_err().kind, ParseErrorKind::TooLarge);
    }
}
