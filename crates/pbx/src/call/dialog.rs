//! The PBX's side of one dialog (RFC 3261 §12): what it needs to send
//! requests within the dialog and to recognise the peer's.

use bytes::Bytes;
use sip::header::HeaderName;
use sip::transaction::Remote;
use sip::{Headers, Method, Request, Uri};

/// One dialog as seen by the PBX (one leg of a call).
#[derive(Debug, Clone)]
pub struct Dialog {
    /// The Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// Our URI as a header value without tag (From of our requests).
    pub local_uri: String,
    /// The peer's URI without tag (To of our requests).
    pub remote_uri: String,
    /// CSeq of the last request we sent.
    pub local_seq: u32,
    /// The peer's target (its Contact URI): the Request-URI of our requests.
    pub remote_target: String,
    /// Route set, in the order Route headers are written.
    pub route_set: Vec<String>,
    /// Where our requests go (the flow the peer uses: its source address
    /// for phones behind NAT, the registrar's target for callees).
    pub dest: Remote,
    /// Our sent-by (`host:port`) for Via.
    pub sent_by: String,
    /// Our Contact header value.
    pub contact: String,
}

impl Dialog {
    /// A new request in this dialog with the next CSeq (ACK and CANCEL are
    /// built elsewhere: they reuse a CSeq).
    pub fn request(&mut self, method: Method, branch: &str) -> Request {
        self.local_seq += 1;
        let seq = self.local_seq;
        self.request_with_seq(method, seq, branch)
    }

    /// A request with a given CSeq number (ACK for a 2xx uses the INVITE's).
    pub fn request_with_seq(&self, method: Method, seq: u32, branch: &str) -> Request {
        let mut headers = Headers::new();
        headers.push(
            HeaderName::Via,
            format!(
                "SIP/2.0/{} {};branch={branch};rport",
                self.dest.transport.as_str(),
                self.sent_by
            ),
        );
        headers.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        for route in &self.route_set {
            headers.push(HeaderName::Route, route.clone());
        }
        headers.push(
            HeaderName::From,
            format!("{};tag={}", self.local_uri, self.local_tag),
        );
        headers.push(
            HeaderName::To,
            format!("{};tag={}", self.remote_uri, self.remote_tag),
        );
        headers.push(HeaderName::CallId, self.call_id.clone());
        headers.push(HeaderName::CSeq, format!("{seq} {method}"));
        if method != Method::Ack && method != Method::Cancel {
            headers.push(HeaderName::Contact, self.contact.clone());
        }
        let uri = Uri::parse(Bytes::from(self.remote_target.clone()))
            .unwrap_or_else(|_| Uri::parse_str("sip:invalid").expect("static URI"));
        Request {
            method,
            uri,
            headers,
            body: Bytes::new(),
        }
    }

    /// A target refresh (re-INVITE, UPDATE with Contact) moved the peer.
    pub fn refresh_target(&mut self, headers: &Headers) {
        if let Some(target) = contact_uri(headers) {
            self.remote_target = target;
        }
    }
}

/// The URI of the first Contact, without brackets or parameters.
pub fn contact_uri(headers: &Headers) -> Option<String> {
    let value = headers.get_str(&HeaderName::Contact)?;
    let first = value.split(',').next()?.trim();
    let uri = match (first.find('<'), first.find('>')) {
        (Some(open), Some(close)) if open < close => &first[open + 1..close],
        _ => first.split(';').next()?.trim(),
    };
    (!uri.is_empty() && uri != "*").then(|| uri.to_owned())
}

/// A From/To value without its `tag` parameter.
pub fn without_tag(value: &str) -> String {
    // Parameters of the header (not of the URI) follow the `>` when the
    // URI is bracketed; otherwise they follow the URI directly.
    let params_from = value.rfind('>').map_or(0, |i| i + 1);
    let (head, params) = value.split_at(params_from);
    let kept: Vec<&str> = params
        .split(';')
        .enumerate()
        .filter(|(i, p)| {
            *i == 0
                || !p
                    .trim()
                    .get(..4)
                    .is_some_and(|s| s.eq_ignore_ascii_case("tag="))
        })
        .map(|(_, p)| p)
        .collect();
    format!("{head}{}", kept.join(";")).trim().to_owned()
}

/// The Record-Route values of a message, in order.
pub fn record_route(headers: &Headers) -> Vec<String> {
    headers
        .list_values(&HeaderName::RecordRoute)
        .iter()
        .map(|v| String::from_utf8_lossy(v).trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_removed_from_header_params_only() {
        assert_eq!(
            without_tag("\"A\" <sip:1@h;tag=uri>;tag=abc;x=1"),
            "\"A\" <sip:1@h;tag=uri>;x=1"
        );
        assert_eq!(without_tag("sip:1@h;TAG=abc"), "sip:1@h");
        assert_eq!(without_tag("<sip:1@h>"), "<sip:1@h>");
    }

    #[test]
    fn contact_uri_is_extracted() {
        let mut h = Headers::new();
        h.push(
            HeaderName::Contact,
            Bytes::from_static(b"\"x\" <sip:a@1.2.3.4:5;ob>;expires=3"),
        );
        assert_eq!(contact_uri(&h).as_deref(), Some("sip:a@1.2.3.4:5;ob"));
        let mut h = Headers::new();
        h.push(HeaderName::Contact, Bytes::from_static(b"sip:b@h;x=1"));
        assert_eq!(contact_uri(&h).as_deref(), Some("sip:b@h"));
    }
}
