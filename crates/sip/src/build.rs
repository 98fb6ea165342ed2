//! Building responses and stamping requests, the pieces of RFC 3261 §8.2.6
//! and §18.2 that every UAS and proxy needs.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use bytes::{Bytes, BytesMut};

use crate::header::{HeaderName, Via};
use crate::message::{Headers, Response, StatusCode};
use crate::scan;

/// Builds a response to a request from the request's headers (§8.2.6.2):
/// all Via lines, From, To (with `to_tag` added when the To has no tag and
/// the status is not 100), Call-ID and CSeq are copied. Callers add
/// Contact, Allow, bodies and the like.
pub fn response_to(
    request: &Headers,
    status: StatusCode,
    reason: &str,
    to_tag: Option<&str>,
) -> Response {
    let mut headers = Headers::new();
    for h in request {
        match h.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                headers.push(h.name.clone(), h.value.clone());
            }
            HeaderName::To => {
                let has_tag = crate::header::NameAddr::parse(h.value.clone())
                    .map(|n| n.tag().is_some())
                    .unwrap_or(true);
                match to_tag {
                    Some(tag) if !has_tag && status.0 != 100 => {
                        let mut v = BytesMut::with_capacity(h.value.len() + tag.len() + 5);
                        v.extend_from_slice(&h.value);
                        v.extend_from_slice(b";tag=");
                        v.extend_from_slice(tag.as_bytes());
                        headers.push(HeaderName::To, v.freeze());
                    }
                    _ => headers.push(HeaderName::To, h.value.clone()),
                }
            }
            // §8.2.6.1: a 100 Trying echoes Timestamp.
            HeaderName::Timestamp if status.0 == 100 => {
                headers.push(h.name.clone(), h.value.clone());
            }
            _ => {}
        }
    }
    Response {
        status,
        reason: Bytes::copy_from_slice(reason.as_bytes()),
        headers,
        body: Bytes::new(),
    }
}

/// A To tag that is the same for every retransmission of one request, so a
/// stateless responder answers them identically (§8.2.6.2, §16.11).
pub fn stateless_to_tag(request: &Headers) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    request.call_id().hash(&mut h);
    request.get(&HeaderName::From).hash(&mut h);
    request.get(&HeaderName::CSeq).hash(&mut h);
    if let Some(v) = request.top_via() {
        v.branch().hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

fn host_matches(host: &str, ip: IpAddr) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>().is_ok_and(|h| h == ip)
}

/// Stamps the top Via of a received request (§18.2.1, RFC 3581 §4): adds
/// `received` when sent-by differs from the packet's source address and
/// fills in a `rport` that the client asked for.
pub fn stamp_via(headers: &mut Headers, source: SocketAddr) {
    let Some(pos) = headers.0.iter().position(|h| h.name == HeaderName::Via) else {
        return;
    };
    let line = headers.0[pos].value.clone();
    let Ok(parts) = scan::split_list(&line) else {
        return;
    };
    let Some(first) = parts.first() else {
        return;
    };
    let Ok(via) = Via::parse(first) else {
        return;
    };
    let wants_rport = matches!(via.rport(), Some(None));
    let needs_received = !host_matches(via.host, source.ip()) || wants_rport;
    if !needs_received && !wants_rport {
        return;
    }
    let first_end = first.as_ptr() as usize - line.as_ptr() as usize + first.len();
    let mut out = BytesMut::with_capacity(line.len() + 48);
    let mut head: &[u8] = &line[..first_end];
    if wants_rport {
        // Replace the bare `rport` with `rport=PORT`.
        if let Some(p) = via
            .params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(b"rport"))
        {
            let at = p.name.as_ptr() as usize - line.as_ptr() as usize;
            out.extend_from_slice(&line[..at + p.name.len()]);
            out.extend_from_slice(format!("={}", source.port()).as_bytes());
            head = &line[at + p.name.len()..first_end];
        }
    }
    out.extend_from_slice(head);
    if needs_received && via.received().is_none() {
        let ip = match source.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        };
        out.extend_from_slice(format!(";received={ip}").as_bytes());
    }
    out.extend_from_slice(&line[first_end..]);
    headers.0[pos].value = out.freeze();
}

/// Where a response goes over an unreliable transport (§18.2.2, RFC 3581
/// §4): `received` (or sent-by) address, the `rport` value if there is one,
/// else the sent-by port or 5060.
pub fn response_destination(headers: &Headers) -> Option<SocketAddr> {
    let via = headers.top_via()?;
    let host = via.received().unwrap_or(via.host);
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let port = via.rport().flatten().or(via.port).unwrap_or(5060);
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    fn req(via: &str) -> Headers {
        let text = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: {via}\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: z\r\nCSeq: 7 OPTIONS\r\nX-Other: 1\r\n\r\n"
        );
        Message::parse(Bytes::from(text)).unwrap().headers().clone()
    }

    #[test]
    fn response_copies_and_tags() {
        let h = req("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK1");
        let r = response_to(&h, StatusCode::OK, "OK", Some("abc"));
        let names: Vec<_> = r.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["Via", "To", "From", "Call-ID", "CSeq"]);
        assert_eq!(r.headers.to().unwrap().tag(), Some("abc"));
        assert_eq!(stateless_to_tag(&h), stateless_to_tag(&h.clone()));
    }

    #[test]
    fn rport_and_received() {
        let src: SocketAddr = "192.0.2.9:40000".parse().unwrap();
        let mut h = req("SIP/2.0/UDP 10.0.0.1:5062;rport;branch=z9hG4bK1, SIP/2.0/UDP x");
        stamp_via(&mut h, src);
        assert_eq!(
            h.get(&HeaderName::Via).unwrap(),
            &Bytes::from_static(
                b"SIP/2.0/UDP 10.0.0.1:5062;rport=40000;branch=z9hG4bK1;received=192.0.2.9, SIP/2.0/UDP x"
            )
        );
        assert_eq!(response_destination(&h), Some(src));

        let mut h = req("SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bK1");
        stamp_via(&mut h, src);
        assert_eq!(
            h.get(&HeaderName::Via).unwrap(),
            &Bytes::from_static(b"SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bK1")
        );
        assert_eq!(response_destination(&h), "192.0.2.9:5062".parse().ok());

        let mut h = req("SIP/2.0/UDP host.example;branch=z9hG4bK1");
        stamp_via(&mut h, src);
        assert_eq!(response_destination(&h), "192.0.2.9:5060".parse().ok());
    }
}
