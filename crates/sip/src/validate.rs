//! Request checks made before acting on a request, each mapped to exactly
//! one status code (RFC 3261 §8.2, §16.3; RFC 4475 §3.1.2).
//!
//! [`check_request`] is the syntax gate: a request that fails it is answered
//! 400 and never reaches a transaction user. [`Capabilities::check`] is the
//! UAS gate (§8.2.1-§8.2.3): scheme, extensions, media types.

use crate::header::{HeaderName, NameAddr, Via};
use crate::message::{Method, Request, Response, StatusCode};
use crate::scan;
use crate::uri::Uri;

/// A reason to refuse a request, with the status to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Status code.
    pub status: StatusCode,
    /// Reason phrase naming the fault.
    pub reason: &'static str,
    /// Headers the answer must carry (e.g. Unsupported for 420).
    pub headers: Vec<(HeaderName, String)>,
}

impl Rejection {
    fn bad(reason: &'static str) -> Rejection {
        Rejection {
            status: StatusCode::BAD_REQUEST,
            reason,
            headers: Vec::new(),
        }
    }
}

const REQUIRED: [(HeaderName, &str); 5] = [
    (HeaderName::To, "Missing To"),
    (HeaderName::From, "Missing From"),
    (HeaderName::CallId, "Missing Call-ID"),
    (HeaderName::CSeq, "Missing CSeq"),
    (HeaderName::Via, "Missing Via"),
];

/// Syntax checks on a parsed request: mandatory headers, single-valued
/// headers, the typed headers the stack relies on, and scalar ranges.
pub fn check_request(req: &Request) -> Result<(), Rejection> {
    let h = &req.headers;
    for (name, reason) in &REQUIRED {
        if h.get(name).is_none() {
            return Err(Rejection::bad(reason));
        }
    }
    for header in h {
        if header.name.is_single() && h.count(&header.name) > 1 {
            return Err(Rejection::bad("Duplicate single-valued header"));
        }
    }
    let cseq = h.cseq().ok_or(Rejection::bad("Malformed CSeq"))?;
    if cseq.method != req.method {
        return Err(Rejection::bad("CSeq method does not match request method"));
    }
    for v in h.get_all(&HeaderName::Via) {
        Via::parse_all(v).map_err(|_| Rejection::bad("Malformed Via"))?;
    }
    for name in [HeaderName::From, HeaderName::To] {
        let v = h.get(&name).cloned().unwrap_or_default();
        NameAddr::parse(v).map_err(|_| match name {
            HeaderName::From => Rejection::bad("Malformed From"),
            _ => Rejection::bad("Malformed To"),
        })?;
    }
    for v in h.get_all(&HeaderName::Contact) {
        if scan::trim(v) == b"*" {
            continue;
        }
        let parts = scan::split_list(v).map_err(|_| Rejection::bad("Malformed Contact"))?;
        if parts.is_empty() {
            return Err(Rejection::bad("Malformed Contact"));
        }
        for p in parts {
            let na =
                NameAddr::parse(v.slice_ref(p)).map_err(|_| Rejection::bad("Malformed Contact"))?;
            if let Some(e) = na.param("expires")
                && e.and_then(|e| scan::parse_u32(e.as_bytes())).is_none()
            {
                return Err(Rejection::bad("Malformed Contact expires"));
            }
        }
    }
    for name in [HeaderName::Route, HeaderName::RecordRoute] {
        for v in h.get_all(&name) {
            let parts = scan::split_list(v).map_err(|_| Rejection::bad("Malformed Route"))?;
            for p in parts {
                NameAddr::parse(v.slice_ref(p)).map_err(|_| Rejection::bad("Malformed Route"))?;
            }
        }
    }
    if let Some(mf) = h.get(&HeaderName::MaxForwards) {
        match scan::parse_u32(scan::trim(mf)) {
            Some(n) if n <= 255 => {}
            _ => return Err(Rejection::bad("Malformed Max-Forwards")),
        }
    }
    if let Some(e) = h.get(&HeaderName::Expires)
        && scan::parse_u32(scan::trim(e)).is_none()
    {
        return Err(Rejection::bad("Malformed Expires"));
    }
    if let Some(d) = h.get(&HeaderName::Date)
        && !is_rfc1123_gmt(scan::trim(d))
    {
        return Err(Rejection::bad("Malformed Date"));
    }
    if let Uri::Sip(u) = &req.uri
        && u.has_headers()
    {
        return Err(Rejection::bad("Headers not allowed in Request-URI"));
    }
    Ok(())
}

/// Registrar checks on a REGISTER that passed [`check_request`] (§10.3
/// step 5): the To header holds the address-of-record, which must be a SIP
/// or SIPS URI (RFC 4475 unksm2), else 400.
pub fn check_register(req: &Request) -> Result<(), Rejection> {
    let to = req.headers.to().ok_or(Rejection::bad("Malformed To"))?;
    if !matches!(to.uri, Uri::Sip(_)) {
        return Err(Rejection::bad(
            "Address-of-record must be a SIP or SIPS URI",
        ));
    }
    Ok(())
}

/// Checks on a received response before it is matched to a transaction
/// (§18.1.2, §8.1.3.3). A response is never answered: on `Err` it is
/// dropped silently and the reason only logged. Rejects missing mandatory
/// headers, an unparseable top Via or CSeq, and scalar fields out of range
/// (RFC 4475 scalarlg: CSeq, Retry-After, 4-digit warn-code).
pub fn check_response(resp: &Response) -> Result<(), &'static str> {
    let h = &resp.headers;
    for (name, reason) in &REQUIRED {
        if h.get(name).is_none() {
            return Err(reason);
        }
    }
    for header in h {
        if header.name.is_single() && h.count(&header.name) > 1 {
            return Err("Duplicate single-valued header");
        }
    }
    h.cseq().ok_or("Malformed CSeq")?;
    h.top_via().ok_or("Malformed Via")?;
    h.from().ok_or("Malformed From")?;
    h.to().ok_or("Malformed To")?;
    if let Some(v) = h.get(&HeaderName::RetryAfter) {
        let v = scan::trim(v);
        let end = v
            .iter()
            .position(|&b| !b.is_ascii_digit())
            .unwrap_or(v.len());
        if scan::parse_u32(&v[..end]).is_none() {
            return Err("Malformed Retry-After");
        }
    }
    for w in h.list_values(&HeaderName::Warning) {
        // warning-value = warn-code SP warn-agent SP warn-text, 3DIGIT code.
        let code = w.split(|&b| b == b' ').next().unwrap_or_default();
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return Err("Malformed Warning");
        }
    }
    Ok(())
}

/// `Date: Sat, 13 Nov 2010 23:29:00 GMT` (§20.17: RFC 1123, GMT only).
fn is_rfc1123_gmt(d: &[u8]) -> bool {
    let parts: Vec<&[u8]> = d.split(|&b| b == b' ').filter(|p| !p.is_empty()).collect();
    let [wkday, day, month, year, time, zone] = parts[..] else {
        return false;
    };
    const DAYS: [&[u8]; 7] = [
        b"Mon,", b"Tue,", b"Wed,", b"Thu,", b"Fri,", b"Sat,", b"Sun,",
    ];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let digits = |s: &[u8], n| s.len() == n && s.iter().all(u8::is_ascii_digit);
    DAYS.contains(&wkday)
        && digits(day, 2)
        && MONTHS.contains(&month)
        && digits(year, 4)
        && time.len() == 8
        && time[2] == b':'
        && time[5] == b':'
        && digits(&time[..2], 2)
        && digits(&time[3..5], 2)
        && digits(&time[6..], 2)
        && zone == b"GMT"
}

/// What a UAS supports, for the checks of §8.2.1-§8.2.3.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Option tags we support (answer 420 to any other in Require).
    pub extensions: Vec<&'static str>,
    /// Body types we understand (answer 415 to others).
    pub content_types: Vec<&'static str>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            extensions: vec!["path", "outbound", "replaces", "timer", "100rel"],
            content_types: vec!["application/sdp"],
        }
    }
}

impl Capabilities {
    /// Checks scheme (416), Require (420) and body type (415).
    pub fn check(&self, req: &Request) -> Result<(), Rejection> {
        if !matches!(req.uri, Uri::Sip(_) | Uri::Tel(_)) {
            return Err(Rejection {
                status: StatusCode::UNSUPPORTED_URI_SCHEME,
                reason: "Unsupported URI Scheme",
                headers: Vec::new(),
            });
        }
        // §8.2.2.3: Require is not checked for ACK and CANCEL.
        if !matches!(req.method, Method::Ack | Method::Cancel) {
            let mut unsupported = Vec::new();
            for tag in req.headers.list_values(&HeaderName::Require) {
                let tag = String::from_utf8_lossy(&tag).to_string();
                if !self.extensions.iter().any(|e| e.eq_ignore_ascii_case(&tag)) {
                    unsupported.push(tag);
                }
            }
            if !unsupported.is_empty() {
                return Err(Rejection {
                    status: StatusCode::BAD_EXTENSION,
                    reason: "Bad Extension",
                    headers: vec![(HeaderName::Unsupported, unsupported.join(", "))],
                });
            }
        }
        if !req.body.is_empty() {
            let ctype = req
                .headers
                .get(&HeaderName::ContentType)
                .map(|v| {
                    let v = scan::trim(v);
                    let end = v.iter().position(|&b| b == b';').unwrap_or(v.len());
                    String::from_utf8_lossy(scan::trim(&v[..end])).to_ascii_lowercase()
                })
                .unwrap_or_default();
            let known =
                ctype.starts_with("multipart/") || self.content_types.iter().any(|c| *c == ctype);
            if !known {
                return Err(Rejection {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    reason: "Unsupported Media Type",
                    headers: vec![(HeaderName::Accept, self.content_types.join(", "))],
                });
            }
        }
        // §8.2.3 / §21.4.7: an INVITE's answer carries SDP; if Accept
        // excludes every type we can send, answer 406 (RFC 4475 sdp01).
        if req.method == Method::Invite && req.headers.get(&HeaderName::Accept).is_some() {
            let ranges = req.headers.list_values(&HeaderName::Accept);
            let acceptable = ranges.is_empty()
                || ranges.iter().any(|r| {
                    let r = &r[..r.iter().position(|&b| b == b';').unwrap_or(r.len())];
                    let r = scan::trim(r);
                    self.content_types.iter().any(|c| media_range_matches(r, c))
                });
            if !acceptable {
                return Err(Rejection {
                    status: StatusCode::NOT_ACCEPTABLE,
                    reason: "Not Acceptable",
                    headers: Vec::new(),
                });
            }
        }
        Ok(())
    }
}

/// Whether an Accept media-range (`*/*`, `type/*`, `type/sub`) covers
/// the media type `ctype`.
fn media_range_matches(range: &[u8], ctype: &str) -> bool {
    let ctype = ctype.as_bytes();
    if range == b"*/*" {
        return true;
    }
    if let Some(prefix) = range.strip_suffix(b"/*") {
        return ctype.len() > prefix.len()
            && ctype[..prefix.len()].eq_ignore_ascii_case(prefix)
            && ctype[prefix.len()] == b'/';
    }
    range.eq_ignore_ascii_case(ctype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(is_rfc1123_gmt(b"Sat, 13 Nov 2010 23:29:00 GMT"));
        assert!(!is_rfc1123_gmt(b"Fri, 01 Jan 2010 16:00:00 EST"));
        assert!(!is_rfc1123_gmt(b"yesterday"));
    }

    #[test]
    fn media_ranges() {
        assert!(media_range_matches(b"*/*", "application/sdp"));
        assert!(media_range_matches(b"Application/*", "application/sdp"));
        assert!(media_range_matches(b"application/SDP", "application/sdp"));
        assert!(!media_range_matches(b"text/*", "application/sdp"));
        assert!(!media_range_matches(b"app/*", "application/sdp"));
        assert!(!media_range_matches(
            b"text/nobodyKnowsThis",
            "application/sdp"
        ));
    }

    fn request(text: &str) -> Request {
        match crate::Message::parse(bytes::Bytes::copy_from_slice(text.as_bytes())).unwrap() {
            crate::Message::Request(r) => r,
            crate::Message::Response(_) => panic!("not a request"),
        }
    }

    const INVITE: &str = "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nAccept: application/sdp;level=1, text/html\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn accept_gives_406_only_when_nothing_matches() {
        let caps = Capabilities::default();
        assert!(caps.check(&request(INVITE)).is_ok());
        let r = request(&INVITE.replace("application/sdp;level=1, ", ""));
        assert_eq!(
            caps.check(&r).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
        let r = request(&INVITE.replace("application/sdp;level=1, text/html", "*/*"));
        assert!(caps.check(&r).is_ok());
        // Only INVITE answers carry SDP: an OPTIONS with the same Accept passes.
        let r = request(
            &INVITE
                .replace("application/sdp;level=1, ", "")
                .replace("INVITE", "OPTIONS"),
        );
        assert!(caps.check(&r).is_ok());
    }

    #[test]
    fn register_needs_sip_aor() {
        let r = request(&INVITE.replace("INVITE", "REGISTER"));
        assert!(check_register(&r).is_ok());
        let r = request(
            &INVITE
                .replace("INVITE", "REGISTER")
                .replace("To: <sip:b@example.com>", "To: <tel:+15551234>"),
        );
        assert_eq!(
            check_register(&r).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn response_gate() {
        let ok = "SIP/2.0 503 Busy\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@x>;tag=2\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nRetry-After: 18000;duration=3600\r\nWarning: 399 pbx \"x\"\r\nContent-Length: 0\r\n\r\n";
        let resp =
            |t: &str| match crate::Message::parse(bytes::Bytes::copy_from_slice(t.as_bytes()))
                .unwrap()
            {
                crate::Message::Response(r) => r,
                crate::Message::Request(_) => panic!(),
            };
        assert_eq!(check_response(&resp(ok)), Ok(()));
        assert_eq!(
            check_response(&resp(&ok.replace("Call-ID: c\r\n", ""))),
            Err("Missing Call-ID")
        );
        assert_eq!(
            check_response(&resp(&ok.replace("18000", "99999999999"))),
            Err("Malformed Retry-After")
        );
        assert_eq!(
            check_response(&resp(&ok.replace("399", "1812"))),
            Err("Malformed Warning")
        );
    }
}
