//! The SIP endpoint the transports feed: parses, validates and answers.
//!
//! Until call features exist it is a stateless UAS (RFC 3261 §8.2.7): it
//! answers OPTIONS with 200 and its capabilities, and refuses everything
//! else with the status §8.2 prescribes. Unparseable input is dropped and
//! logged at debug level; nothing on the network can make it panic.

use std::net::SocketAddr;

use bytes::Bytes;
use sip::build::{response_to, stamp_via, stateless_to_tag};
use sip::header::HeaderName;
use sip::validate::{Capabilities, Rejection, check_request};
use sip::{Headers, Message, Method, Request, StatusCode};
use tracing::debug;

use crate::config::TransportKind;

/// Methods this server handles (the Allow header).
const ALLOW: &str = "OPTIONS";
/// Methods it recognises but does not serve yet: 405 with Allow (§8.2.1).
const RECOGNISED: [Method; 12] = [
    Method::Invite,
    Method::Bye,
    Method::Register,
    Method::Info,
    Method::Update,
    Method::Prack,
    Method::Subscribe,
    Method::Notify,
    Method::Refer,
    Method::Message,
    Method::Publish,
    Method::Cancel,
];

/// A message to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Where to (for UDP; stream transports answer on the connection).
    pub dest: SocketAddr,
    /// The serialized message.
    pub bytes: Bytes,
}

/// Stateless request handling.
#[derive(Debug)]
pub struct Endpoint {
    caps: Capabilities,
    user_agent: String,
    max_message_size: usize,
}

impl Endpoint {
    /// An endpoint announcing `user_agent` in its Server header.
    pub fn new(user_agent: String, max_message_size: usize) -> Self {
        Endpoint {
            caps: Capabilities::default(),
            user_agent,
            max_message_size,
        }
    }

    /// Handles one received message; returns the answer, if any.
    pub fn handle(&self, data: Bytes, transport: TransportKind, source: SocketAddr) -> Option<Reply> {
        let msg = match Message::parse_with_limit(data, self.max_message_size) {
            Ok(m) => m,
            Err(e) => {
                debug!(%source, error = %e, "unparseable message");
                let status = e.status()?;
                let mut headers = e.headers?;
                stamp_via(&mut headers, source);
                return self.answer(&headers, status, e.detail, &[], transport, source);
            }
        };
        match msg {
            Message::Request(req) => self.handle_request(req, transport, source),
            Message::Response(r) => {
                debug!(%source, status = r.status.0, "stray response dropped");
                None
            }
        }
    }

    fn handle_request(
        &self,
        mut req: Request,
        transport: TransportKind,
        source: SocketAddr,
    ) -> Option<Reply> {
        stamp_via(&mut req.headers, source);
        if req.method == Method::Ack {
            // An ACK is never answered (§17.2.1); without a transaction it
            // is simply absorbed.
            return None;
        }
        if let Err(r) = check_request(&req) {
            debug!(%source, reason = r.reason, "request rejected");
            return self.reject(&req.headers, r, transport, source);
        }
        if req.method == Method::Options {
            if let Err(r) = self.caps.check(&req) {
                return self.reject(&req.headers, r, transport, source);
            }
            let extra = [
                (HeaderName::Allow, ALLOW.to_string()),
                (HeaderName::Accept, "application/sdp".to_string()),
                (HeaderName::Supported, self.caps.extensions.join(", ")),
            ];
            return self.answer(&req.headers, StatusCode::OK, "OK", &extra, transport, source);
        }
        if req.method == Method::Cancel {
            // No INVITE transaction can match yet (§9.2).
            return self.answer(
                &req.headers,
                StatusCode::NO_TRANSACTION,
                "Call/Transaction Does Not Exist",
                &[],
                transport,
                source,
            );
        }
        if RECOGNISED.contains(&req.method) {
            let extra = [(HeaderName::Allow, ALLOW.to_string())];
            return self.answer(
                &req.headers,
                StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed",
                &extra,
                transport,
                source,
            );
        }
        let extra = [(HeaderName::Allow, ALLOW.to_string())];
        self.answer(
            &req.headers,
            StatusCode::NOT_IMPLEMENTED,
            "Not Implemented",
            &extra,
            transport,
            source,
        )
    }

    fn reject(
        &self,
        headers: &Headers,
        r: Rejection,
        transport: TransportKind,
        source: SocketAddr,
    ) -> Option<Reply> {
        self.answer(headers, r.status, r.reason, &r.headers, transport, source)
    }

    fn answer(
        &self,
        headers: &Headers,
        status: StatusCode,
        reason: &str,
        extra: &[(HeaderName, String)],
        transport: TransportKind,
        source: SocketAddr,
    ) -> Option<Reply> {
        // A response needs the headers that route and identify it.
        for name in [HeaderName::Via, HeaderName::CallId, HeaderName::CSeq, HeaderName::From, HeaderName::To] {
            headers.get(&name)?;
        }
        let tag = stateless_to_tag(headers);
        let mut resp = response_to(headers, status, reason, Some(&tag));
        for (name, value) in extra {
            resp.headers.push(name.clone(), value.clone());
        }
        resp.headers.push(HeaderName::Server, self.user_agent.clone());
        let dest = match transport {
            TransportKind::Udp => sip::build::response_destination(&resp.headers).unwrap_or(source),
            TransportKind::Tcp => source,
        };
        Some(Reply {
            dest,
            bytes: Message::Response(resp).to_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoint {
        Endpoint::new("pbx-test".into(), 65535)
    }
    const SRC: &str = "127.0.0.1:5070";

    fn ask(text: &str) -> Option<Message> {
        let r = ep().handle(Bytes::from(text.to_string()), TransportKind::Udp, SRC.parse().unwrap())?;
        Some(Message::parse(r.bytes).unwrap())
    }

    fn request(method: &str, extra: &str) -> String {
        format!(
            "{method} sip:pbx@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\nTo: <sip:pbx@127.0.0.1>\r\nFrom: <sip:a@127.0.0.1>;tag=9\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    }

    fn status(m: &Message) -> u16 {
        match m {
            Message::Response(r) => r.status.0,
            Message::Request(_) => 0,
        }
    }

    #[test]
    fn options_gets_200_with_capabilities() {
        let m = ask(&request("OPTIONS", "")).unwrap();
        assert_eq!(status(&m), 200);
        assert_eq!(m.headers().get_str(&HeaderName::Allow), Some("OPTIONS"));
        assert!(m.headers().to().unwrap().tag().is_some());
        assert!(m.headers().get_str(&HeaderName::Via).unwrap().contains("rport=5070"));
    }

    #[test]
    fn statuses_for_what_is_not_served() {
        assert_eq!(status(&ask(&request("INVITE", "")).unwrap()), 405);
        assert_eq!(status(&ask(&request("NEWMETHOD", "")).unwrap()), 501);
        assert_eq!(status(&ask(&request("CANCEL", "")).unwrap()), 481);
        assert_eq!(status(&ask(&request("OPTIONS", "Require: nothing\r\n")).unwrap()), 420);
        assert!(ask(&request("ACK", "")).is_none());
        assert!(ask("SIP/2.0 200 OK\r\n\r\n").is_none());
        assert!(ask("\u{0}\u{1}garbage").is_none());
        let bad_version = request("OPTIONS", "").replacen("SIP/2.0", "SIP/3.0", 1);
        assert_eq!(status(&ask(&bad_version).unwrap()), 505);
    }
}
