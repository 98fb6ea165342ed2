//! Serializer (RFC 3261 §7). Header values are written as stored; the
//! Content-Length always states the body's real length, so a message built
//! or edited in memory frames correctly on stream transports (§18.3).

use std::fmt;

use bytes::Bytes;

use super::{Headers, Message, Request, Response};
use crate::header::HeaderName;

fn write_headers(out: &mut Vec<u8>, headers: &Headers, body_len: usize) {
    let mut wrote_length = false;
    for h in headers {
        if h.name == HeaderName::ContentLength {
            if wrote_length {
                continue;
            }
            wrote_length = true;
            write_content_length(out, body_len);
            continue;
        }
        out.extend_from_slice(h.name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&h.value);
        out.extend_from_slice(b"\r\n");
    }
    if !wrote_length {
        write_content_length(out, body_len);
    }
    out.extend_from_slice(b"\r\n");
}

fn write_content_length(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(b"Content-Length: ");
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

impl Request {
    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.uri.raw());
        out.extend_from_slice(b" SIP/2.0\r\n");
        write_headers(out, &self.headers, self.body.len());
        out.extend_from_slice(&self.body);
    }
}

impl Response {
    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"SIP/2.0 ");
        let code = self.status.0;
        out.extend_from_slice(&[
            b'0' + (code / 100 % 10) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
            b' ',
        ]);
        out.extend_from_slice(&self.reason);
        out.extend_from_slice(b"\r\n");
        write_headers(out, &self.headers, self.body.len());
        out.extend_from_slice(&self.body);
    }
}

impl Message {
    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Message::Request(r) => r.write_to(out),
            Message::Response(r) => r.write_to(out),
        }
    }

    /// The wire form as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(512 + self.body().len());
        self.write_to(&mut out);
        Bytes::from(out)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_unknown_headers_and_order() {
        let text = "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nX-Odd-Name: ;;,,;;,;\r\nTo: <sip:bob@example.com>\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";
        let m = Message::parse(Bytes::from_static(text.as_bytes())).unwrap();
        assert_eq!(m.to_bytes(), Bytes::from_static(text.as_bytes()));
    }

    #[test]
    fn content_length_follows_body() {
        let text = "SIP/2.0 200 OK\r\nl: 0\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let Message::Response(mut r) = Message::parse(Bytes::from_static(text.as_bytes())).unwrap()
        else {
            panic!()
        };
        r.body = Bytes::from_static(b"hello");
        let out = Message::Response(r).to_bytes();
        assert_eq!(
            &out[..],
            b"SIP/2.0 200 OK\r\nContent-Length: 5\r\nCSeq: 1 OPTIONS\r\n\r\nhello"
        );
    }
}
