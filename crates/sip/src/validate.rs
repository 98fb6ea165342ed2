//! Request checks made before acting on a request, each mapped to exactly
//! one status code (RFC 3261 §8.2, §16.3; RFC 4475 §3.1.2).
//!
//! [`check_request`] is the syntax gate: a request that fails it is answered
//! 400 and never reaches a transaction user. [`Capabilities::check`] is the
//! UAS gate (§8.2.1-§8.2.3): scheme, extensions, media types.

use crate::header::{HeaderName, NameAddr, Via};
use crate::message::{Method, Request, StatusCode};
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
    let cseq = h
        .cseq()
        .ok_or(Rejection::bad("Malformed CSeq"))?;
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
            let na = NameAddr::parse(v.slice_ref(p)).map_err(|_| Rejection::bad("Malformed Contact"))?;
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

/// `Date: Sat, 13 Nov 2010 23:29:00 GMT` (§20.17: RFC 1123, GMT only).
fn is_rfc1123_gmt(d: &[u8]) -> bool {
    let parts: Vec<&[u8]> = d.split(|&b| b == b' ').filter(|p| !p.is_empty()).collect();
    let [wkday, day, month, year, time, zone] = parts[..] else {
        return false;
    };
    const DAYS: [&[u8]; 7] = [b"Mon,", b"Tue,", b"Wed,", b"Thu,", b"Fri,", b"Sat,", b"Sun,"];
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
            let known = ctype.starts_with("multipart/")
                || self.content_types.iter().any(|c| *c == ctype);
            if !known {
                return Err(Rejection {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    reason: "Unsupported Media Type",
                    headers: vec![(HeaderName::Accept, self.content_types.join(", "))],
                });
            }
        }
        Ok(())
    }
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
}
