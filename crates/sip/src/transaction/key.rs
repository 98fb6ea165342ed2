//! Transaction keys: how a message finds its transaction
//! (RFC 3261 §17.1.3 for client transactions, §17.2.3 for server
//! transactions, §9.2 for CANCEL).
//!
//! A request carrying an RFC 3261 branch (`z9hG4bK…`) is keyed by branch,
//! sent-by and method, with ACK mapped to INVITE so that the ACK for a
//! non-2xx final response finds its INVITE transaction, while CANCEL keeps
//! its own method and forms its own transaction. A request without the
//! magic cookie (RFC 2543) falls back to Request-URI, From tag, Call-ID,
//! CSeq number and the whole top Via. The To tag, which §17.2.3 also lists,
//! is left out of the fallback key: the INVITE carries none while its ACK
//! does, so it cannot be part of an exact-match key.

use std::sync::Arc;

use crate::header::HeaderName;
use crate::message::{Headers, Method, Request, Response};
use crate::scan;

use super::TransactionError;

/// Identifies one transaction inside a
/// [`TransactionLayer`](super::TransactionLayer). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey(Arc<KeyKind>);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum KeyKind {
    /// Client transactions: our own branch and the CSeq method (§17.1.3).
    Client { branch: String, method: Method },
    /// Server transactions with an RFC 3261 branch (§17.2.3).
    Server {
        branch: String,
        sent_by: String,
        method: Method,
    },
    /// Server transactions of RFC 2543 peers (§17.2.3, last paragraphs).
    Legacy {
        request_uri: String,
        from_tag: String,
        call_id: String,
        cseq: u32,
        top_via: String,
        method: Method,
    },
}

impl TransactionKey {
    fn new(kind: KeyKind) -> Self {
        TransactionKey(Arc::new(kind))
    }

    /// Whether this is a client transaction (created by `send_request`).
    pub fn is_client(&self) -> bool {
        matches!(*self.0, KeyKind::Client { .. })
    }

    /// The method of the transaction (INVITE for an ACK's key).
    pub fn method(&self) -> &Method {
        match &*self.0 {
            KeyKind::Client { method, .. }
            | KeyKind::Server { method, .. }
            | KeyKind::Legacy { method, .. } => method,
        }
    }

    /// The same key with another method: finds the INVITE a CANCEL or an
    /// ACK refers to.
    pub(crate) fn with_method(&self, m: Method) -> TransactionKey {
        let mut k = (*self.0).clone();
        match &mut k {
            KeyKind::Client { method, .. }
            | KeyKind::Server { method, .. }
            | KeyKind::Legacy { method, .. } => *method = m,
        }
        TransactionKey(Arc::new(k))
    }

    /// The key of a client transaction for a request we send. The request
    /// must carry a top Via with an RFC 3261 branch and a CSeq.
    pub fn for_outgoing(req: &Request) -> Result<TransactionKey, TransactionError> {
        let via = req.headers.top_via().ok_or(TransactionError::MissingVia)?;
        if !via.has_rfc3261_branch() {
            return Err(TransactionError::MissingBranch);
        }
        let branch = via.branch().unwrap_or_default().to_owned();
        let cseq = req.headers.cseq().ok_or(TransactionError::MissingCSeq)?;
        if cseq.method != req.method {
            return Err(TransactionError::CSeqMismatch);
        }
        Ok(TransactionKey::new(KeyKind::Client {
            branch,
            method: req.method.clone(),
        }))
    }

    /// The key of the client transaction a response belongs to (§17.1.3).
    pub(crate) fn for_response(resp: &Response) -> Result<TransactionKey, TransactionError> {
        let via = resp.headers.top_via().ok_or(TransactionError::MissingVia)?;
        let branch = via.branch().ok_or(TransactionError::MissingBranch)?;
        let cseq = resp.headers.cseq().ok_or(TransactionError::MissingCSeq)?;
        Ok(TransactionKey::new(KeyKind::Client {
            branch: branch.to_owned(),
            method: cseq.method,
        }))
    }

    /// The key of the server transaction a received request belongs to
    /// (§17.2.3). ACK is keyed as INVITE.
    pub(crate) fn for_request(req: &Request) -> Result<TransactionKey, TransactionError> {
        let via = req.headers.top_via().ok_or(TransactionError::MissingVia)?;
        let cseq = req.headers.cseq().ok_or(TransactionError::MissingCSeq)?;
        if cseq.method != req.method {
            return Err(TransactionError::CSeqMismatch);
        }
        let method = match req.method {
            Method::Ack => Method::Invite,
            ref m => m.clone(),
        };
        if via.has_rfc3261_branch() {
            let port = via.port.unwrap_or(default_port(via.transport));
            return Ok(TransactionKey::new(KeyKind::Server {
                branch: via.branch().unwrap_or_default().to_owned(),
                sent_by: format!("{}:{}", via.host.to_ascii_lowercase(), port),
                method,
            }));
        }
        Ok(TransactionKey::new(KeyKind::Legacy {
            request_uri: req.uri.as_str().to_owned(),
            from_tag: req
                .headers
                .from()
                .and_then(|n| n.tag().map(str::to_owned))
                .unwrap_or_default(),
            call_id: req
                .headers
                .call_id()
                .ok_or(TransactionError::MissingCallId)?
                .to_owned(),
            cseq: cseq.seq,
            top_via: top_via_raw(&req.headers),
            method,
        }))
    }
}

fn default_port(transport: &str) -> u16 {
    if transport.eq_ignore_ascii_case("TLS") || transport.eq_ignore_ascii_case("WSS") {
        5061
    } else {
        5060
    }
}

fn top_via_raw(headers: &Headers) -> String {
    headers
        .get(&HeaderName::Via)
        .and_then(|v| {
            scan::split_list(v)
                .ok()?
                .into_iter()
                .next()
                .map(|s| String::from_utf8_lossy(s).into_owned())
        })
        .unwrap_or_default()
}
