//! Messages a transaction layer builds itself: responses to requests
//! (§8.2.6), the ACK for a non-2xx final response (§17.1.1.3) and CANCEL
//! (§9.1).

use bytes::Bytes;

use crate::header::HeaderName;
use crate::message::{Headers, Method, Request, Response, StatusCode};
use crate::scan;

/// Builds a response to `req` with the default reason phrase for
/// `status` (see [`crate::build::response_to`] for what is copied).
pub fn response_to(req: &Request, status: StatusCode, to_tag: Option<&str>) -> Response {
    crate::build::response_to(&req.headers, status, status.default_reason(), to_tag)
}

/// The first value of the first Via line, as written.
fn top_via_value(headers: &Headers) -> Option<Bytes> {
    let v = headers.get(&HeaderName::Via)?;
    let first = scan::split_list(v).ok()?.into_iter().next()?;
    Some(v.slice_ref(first))
}

/// Headers shared by ACK and CANCEL built from an INVITE: one Via (the
/// INVITE's top Via, so the same branch), Max-Forwards, Route set, From,
/// Call-ID and a CSeq with the INVITE's number and `method`.
fn derived_request(invite: &Request, method: Method, to: Bytes) -> Request {
    let mut headers = Headers::new();
    if let Some(via) = top_via_value(&invite.headers) {
        headers.push(HeaderName::Via, via);
    }
    headers.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
    for route in invite.headers.get_all(&HeaderName::Route) {
        headers.push(HeaderName::Route, route.clone());
    }
    if let Some(from) = invite.headers.get(&HeaderName::From) {
        headers.push(HeaderName::From, from.clone());
    }
    headers.push(HeaderName::To, to);
    if let Some(call_id) = invite.headers.get(&HeaderName::CallId) {
        headers.push(HeaderName::CallId, call_id.clone());
    }
    let seq = invite.headers.cseq().map(|c| c.seq).unwrap_or_default();
    headers.push(HeaderName::CSeq, format!("{seq} {method}"));
    Request {
        method,
        uri: invite.uri.clone(),
        headers,
        body: Bytes::new(),
    }
}

/// The ACK a client transaction sends for a non-2xx final response
/// (§17.1.1.3): same Request-URI, Call-ID, From, CSeq number and top Via
/// (branch) as the INVITE, the INVITE's Route headers, and the To of the
/// response (with its tag).
pub fn ack_for(invite: &Request, response: &Response) -> Request {
    let to = response
        .headers
        .get(&HeaderName::To)
        .or_else(|| invite.headers.get(&HeaderName::To))
        .cloned()
        .unwrap_or_default();
    derived_request(invite, Method::Ack, to)
}

/// A CANCEL for `invite` (§9.1): same Request-URI, Call-ID, To, From,
/// CSeq number, top Via and Route headers. Send it with
/// [`TransactionLayer::send_request`](super::TransactionLayer::send_request)
/// to the INVITE's destination; it is a transaction of its own.
pub fn cancel_for(invite: &Request) -> Request {
    let to = invite
        .headers
        .get(&HeaderName::To)
        .cloned()
        .unwrap_or_default();
    derived_request(invite, Method::Cancel, to)
}
