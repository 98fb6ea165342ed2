//! Content-Length framing for stream transports (RFC 3261 §18.3).
//!
//! A [`StreamFramer`] takes bytes as they arrive on a TCP/TLS connection and
//! yields whole messages. CRLF keep-alives between messages (RFC 5626 §3.5.1)
//! are reported separately so the transport can answer a double-CRLF ping
//! with a single CRLF pong.

use bytes::{Buf, Bytes, BytesMut};

/// What [`StreamFramer::next_frame`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete message (start line through body).
    Message(Bytes),
    /// A keep-alive ping (`CRLFCRLF`): answer with a pong (`CRLF`).
    Ping,
    /// A keep-alive pong (a lone `CRLF`).
    Pong,
}

/// The stream cannot be framed any more: the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Headers did not end within the size limit.
    #[error("headers exceed the size limit")]
    HeadersTooLarge,
    /// Content-Length says more than the size limit allows.
    #[error("body exceeds the size limit")]
    BodyTooLarge,
    /// Content-Length is missing a number or repeated differently.
    #[error("malformed Content-Length")]
    BadContentLength,
}

/// Accumulates stream bytes and cuts them into messages.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max_size: usize,
}

impl StreamFramer {
    /// A framer that refuses messages larger than `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        StreamFramer {
            buf: BytesMut::with_capacity(4096),
            max_size,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Buffered bytes not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Cuts the next frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        // Keep-alives: leading CRLFs between messages.
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            return Ok(Some(Frame::Ping));
        }
        if self.buf.starts_with(b"\r\n") {
            if self.buf.len() == 2 {
                self.buf.advance(2);
                return Ok(Some(Frame::Pong));
            }
            // CRLF followed by something else: a pong, then more.
            if self.buf[2] != b'\r' {
                self.buf.advance(2);
                return Ok(Some(Frame::Pong));
            }
            if self.buf.len() < 4 {
                return Ok(None);
            }
        }
        let head_end = match memchr::memmem::find(&self.buf, b"\r\n\r\n") {
            Some(p) => p + 4,
            None => {
                if self.buf.len() > self.max_size {
                    return Err(FramingError::HeadersTooLarge);
                }
                return Ok(None);
            }
        };
        let body_len = content_length(&self.buf[..head_end])?;
        let total = head_end
            .checked_add(body_len)
            .ok_or(FramingError::BodyTooLarge)?;
        if total > self.max_size {
            return Err(FramingError::BodyTooLarge);
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        Ok(Some(Frame::Message(self.buf.split_to(total).freeze())))
    }
}

/// Finds Content-Length (or `l`) in a header block; absent means 0.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let mut found: Option<usize> = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = crate::scan::trim(&line[..colon]);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let n = crate::scan::parse_u32(crate::scan::trim(&line[colon + 1..]))
                .ok_or(FramingError::BadContentLength)? as usize;
            if found.is_some_and(|f| f != n) {
                return Err(FramingError::BadContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\n\r\nhello";

    #[test]
    fn frames_split_and_joined_messages() {
        let mut f = StreamFramer::new(1000);
        f.push(&MSG[..10]);
        assert_eq!(f.next_frame(), Ok(None));
        f.push(&MSG[10..]);
        f.push(MSG);
        f.push(b"\r\n\r\n");
        assert_eq!(
            f.next_frame(),
            Ok(Some(Frame::Message(Bytes::from_static(MSG))))
        );
        assert_eq!(
            f.next_frame(),
            Ok(Some(Frame::Message(Bytes::from_static(MSG))))
        );
        assert_eq!(f.next_frame(), Ok(Some(Frame::Ping)));
        assert_eq!(f.next_frame(), Ok(None));
        assert_eq!(f.buffered(), 0);
    }

    /// Found by the stream_framing fuzz target: keep-alives are reported
    /// differently depending on how the CRLFs arrive (a lone CRLF is a pong,
    /// CRLFCRLF a ping), but the messages around them are the same.
    #[test]
    fn keep_alives_split_across_reads() {
        let mut whole = StreamFramer::new(1000);
        whole.push(b"\r\n\r\n");
        whole.push(MSG);
        assert_eq!(whole.next_frame(), Ok(Some(Frame::Ping)));
        assert_eq!(
            whole.next_frame(),
            Ok(Some(Frame::Message(Bytes::from_static(MSG))))
        );

        let mut split = StreamFramer::new(1000);
        split.push(b"\r\n");
        assert_eq!(split.next_frame(), Ok(Some(Frame::Pong)));
        split.push(b"\r\n");
        split.push(MSG);
        assert_eq!(split.next_frame(), Ok(Some(Frame::Pong)));
        assert_eq!(
            split.next_frame(),
            Ok(Some(Frame::Message(Bytes::from_static(MSG))))
        );
        assert_eq!(split.buffered(), 0);
    }

    #[test]
    fn limits() {
        let mut f = StreamFramer::new(40);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 100\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::BodyTooLarge));
        let mut f = StreamFramer::new(40);
        f.push(&[b'x'; 41]);
        assert_eq!(f.next_frame(), Err(FramingError::HeadersTooLarge));
        let mut f = StreamFramer::new(400);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -3\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::BadContentLength));
    }
}
