//! Zero-copy RTP fixed header (RFC 3550 section 5.1, 5.3.1).
//!
//! [`RtpPacket`] is a validated view over a received datagram: every length
//! field (CSRC count, header extension, padding) has been checked against the
//! buffer, so the accessors cannot fail. [`RtpPacketMut`] rewrites the header
//! fields a relay changes (SSRC, sequence, timestamp, payload type, marker)
//! in place, leaving the payload untouched. [`RtpHeader`] writes a new packet
//! into a caller-owned buffer.

use thiserror::Error;

/// Length of the fixed RTP header, without CSRCs or extension.
pub const FIXED_HEADER_LEN: usize = 12;

/// Why a datagram is not a valid RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Shorter than the 12-octet fixed header.
    #[error("RTP packet too short: {0} octets")]
    TooShort(usize),
    /// The version field is not 2.
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// The CSRC list runs past the end of the datagram.
    #[error("CSRC count {0} exceeds the packet length")]
    CsrcOverrun(u8),
    /// The header extension runs past the end of the datagram.
    #[error("header extension exceeds the packet length")]
    ExtensionOverrun,
    /// The padding count is zero or larger than what follows the header.
    #[error("invalid padding length {0}")]
    BadPadding(u8),
    /// The output buffer cannot hold the packet being written.
    #[error("buffer too small: need {needed} octets, have {available}")]
    BufferTooSmall {
        /// Octets the packet needs.
        needed: usize,
        /// Octets the buffer has.
        available: usize,
    },
    /// More than 15 CSRCs were given to the writer.
    #[error("too many CSRCs: {0}, at most 15")]
    TooManyCsrcs(usize),
    /// A header extension body must be a whole number of 32-bit words.
    #[error("header extension length {0} is not a multiple of 4")]
    UnalignedExtension(usize),
}

/// The header extension of section 5.3.1: a 16-bit profile-defined value
/// (0xBEDE for RFC 8285 one-byte headers) and the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The "defined by profile" field.
    pub profile: u16,
    /// The extension body, a multiple of four octets.
    pub data: &'a [u8],
}

/// A validated RTP packet borrowed from its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    header_len: usize,
    payload_end: usize,
}

/// Checks the length fields and returns `(header_len, payload_end)`.
fn layout(buf: &[u8]) -> Result<(usize, usize), RtpError> {
    if buf.len() < FIXED_HEADER_LEN {
        return Err(RtpError::TooShort(buf.len()));
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let cc = buf[0] & 0x0f;
    let mut header_len = FIXED_HEADER_LEN + 4 * usize::from(cc);
    if header_len > buf.len() {
        return Err(RtpError::CsrcOverrun(cc));
    }
    if buf[0] & 0x10 != 0 {
        let Some(ext) = buf.get(header_len..header_len + 4) else {
            return Err(RtpError::ExtensionOverrun);
        };
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        header_len += 4 + 4 * words;
        if header_len > buf.len() {
            return Err(RtpError::ExtensionOverrun);
        }
    }
    let mut payload_end = buf.len();
    if buf[0] & 0x20 != 0 {
        // The last octet counts itself (section 5.1), so zero is invalid.
        let pad = buf[buf.len() - 1];
        if pad == 0 || usize::from(pad) > buf.len() - header_len {
            return Err(RtpError::BadPadding(pad));
        }
        payload_end -= usize::from(pad);
    }
    Ok((header_len, payload_end))
}

impl<'a> RtpPacket<'a> {
    /// Validates `buf` as an RTP packet. Never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let (header_len, payload_end) = layout(buf)?;
        Ok(Self {
            buf,
            header_len,
            payload_end,
        })
    }

    /// The version field (always 2 once parsed).
    pub fn version(&self) -> u8 {
        self.buf[0] >> 6
    }

    /// Whether the P bit is set.
    pub fn has_padding(&self) -> bool {
        self.buf[0] & 0x20 != 0
    }

    /// Octets of padding at the end (0 without the P bit).
    pub fn padding_len(&self) -> usize {
        self.buf.len() - self.payload_end
    }

    /// The CSRC count.
    pub fn csrc_count(&self) -> u8 {
        self.buf[0] & 0x0f
    }

    /// The contributing sources.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let end = FIXED_HEADER_LEN + 4 * usize::from(self.csrc_count());
        self.buf[FIXED_HEADER_LEN..end].chunks_exact(4).map(be32)
    }

    /// The header extension, if the X bit is set.
    pub fn extension(&self) -> Option<Extension<'a>> {
        if self.buf[0] & 0x10 == 0 {
            return None;
        }
        let start = FIXED_HEADER_LEN + 4 * usize::from(self.csrc_count());
        Some(Extension {
            profile: u16::from_be_bytes([self.buf[start], self.buf[start + 1]]),
            data: &self.buf[start + 4..self.header_len],
        })
    }

    /// The marker bit.
    pub fn marker(&self) -> bool {
        self.buf[1] & 0x80 != 0
    }

    /// The 7-bit payload type.
    pub fn payload_type(&self) -> u8 {
        self.buf[1] & 0x7f
    }

    /// The sequence number.
    pub fn sequence(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }

    /// The media timestamp.
    pub fn timestamp(&self) -> u32 {
        be32(&self.buf[4..8])
    }

    /// The synchronisation source.
    pub fn ssrc(&self) -> u32 {
        be32(&self.buf[8..12])
    }

    /// Header length including CSRCs and extension.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload, without header, extension or padding.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len..self.payload_end]
    }

    /// The whole datagram.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
}

pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A validated RTP packet whose header can be rewritten in place for relaying.
#[derive(Debug)]
pub struct RtpPacketMut<'a> {
    buf: &'a mut [u8],
    header_len: usize,
    payload_end: usize,
}

impl<'a> RtpPacketMut<'a> {
    /// Validates `buf` as an RTP packet (same checks as [`RtpPacket::parse`]).
    pub fn new(buf: &'a mut [u8]) -> Result<Self, RtpError> {
        let (header_len, payload_end) = layout(buf)?;
        Ok(Self {
            buf,
            header_len,
            payload_end,
        })
    }

    /// A read-only view of the packet. The setters only touch fixed-header
    /// fields that take part in no length, so the layout stays valid.
    pub fn view(&self) -> RtpPacket<'_> {
        RtpPacket {
            buf: self.buf,
            header_len: self.header_len,
            payload_end: self.payload_end,
        }
    }

    /// Sets the marker bit.
    pub fn set_marker(&mut self, marker: bool) {
        self.buf[1] = (self.buf[1] & 0x7f) | if marker { 0x80 } else { 0 };
    }

    /// Sets the payload type (the high bit of `pt` is ignored).
    pub fn set_payload_type(&mut self, pt: u8) {
        self.buf[1] = (self.buf[1] & 0x80) | (pt & 0x7f);
    }

    /// Sets the sequence number.
    pub fn set_sequence(&mut self, seq: u16) {
        self.buf[2..4].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        self.buf[4..8].copy_from_slice(&ts.to_be_bytes());
    }

    /// Sets the SSRC.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }
}

/// Fields of a packet to be written by [`RtpHeader::write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader<'a> {
    /// The marker bit.
    pub marker: bool,
    /// The payload type (0-127).
    pub payload_type: u8,
    /// The sequence number.
    pub sequence: u16,
    /// The media timestamp.
    pub timestamp: u32,
    /// The synchronisation source.
    pub ssrc: u32,
    /// Contributing sources, at most 15.
    pub csrcs: &'a [u32],
    /// An optional header extension; its data must be 32-bit aligned.
    pub extension: Option<Extension<'a>>,
}

impl RtpHeader<'_> {
    /// Octets this header takes on the wire.
    pub fn len(&self) -> usize {
        FIXED_HEADER_LEN + 4 * self.csrcs.len() + self.extension.map_or(0, |e| 4 + e.data.len())
    }

    /// Always false: a header has at least the fixed 12 octets.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes header and `payload` (no padding) into `out`; returns the
    /// packet length.
    pub fn write(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
        if self.csrcs.len() > 15 {
            return Err(RtpError::TooManyCsrcs(self.csrcs.len()));
        }
        if let Some(ext) = self.extension
            && (ext.data.len() % 4 != 0 || ext.data.len() / 4 > usize::from(u16::MAX))
        {
            return Err(RtpError::UnalignedExtension(ext.data.len()));
        }
        let header_len = self.len();
        let needed = header_len + payload.len();
        if out.len() < needed {
            return Err(RtpError::BufferTooSmall {
                needed,
                available: out.len(),
            });
        }
        let x = if self.extension.is_some() { 0x10 } else { 0 };
        out[0] = 0x80 | x | self.csrcs.len() as u8;
        out[1] = (self.payload_type & 0x7f) | if self.marker { 0x80 } else { 0 };
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let mut at = FIXED_HEADER_LEN;
        for csrc in self.csrcs {
            out[at..at + 4].copy_from_slice(&csrc.to_be_bytes());
            at += 4;
        }
        if let Some(ext) = self.extension {
            out[at..at + 2].copy_from_slice(&ext.profile.to_be_bytes());
            out[at + 2..at + 4].copy_from_slice(&((ext.data.len() / 4) as u16).to_be_bytes());
            out[at + 4..at + 4 + ext.data.len()].copy_from_slice(ext.data);
            at += 4 + ext.data.len();
        }
        out[at..needed].copy_from_slice(payload);
        Ok(needed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let mut buf = [0u8; 64];
        let n = RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 0xfffe,
            timestamp: 160_000,
            ssrc: 0xdead_beef,
            csrcs: &[1, 2],
            extension: Some(Extension {
                profile: 0xbede,
                data: &[0x10, 0xaa, 0, 0],
            }),
        }
        .write(b"hello", &mut buf)
        .unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn round_trip() {
        let buf = sample();
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.version(), 2);
        assert!(p.marker());
        assert_eq!(p.payload_type(), 8);
        assert_eq!(p.sequence(), 0xfffe);
        assert_eq!(p.timestamp(), 160_000);
        assert_eq!(p.ssrc(), 0xdead_beef);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), [1, 2]);
        let ext = p.extension().unwrap();
        assert_eq!(ext.profile, 0xbede);
        assert_eq!(ext.data, [0x10, 0xaa, 0, 0]);
        assert_eq!(p.header_len(), 12 + 8 + 8);
        assert_eq!(p.payload(), b"hello");
        assert!(!p.has_padding());
    }

    #[test]
    fn padding_is_excluded_from_payload() {
        let mut buf = [0u8; 32];
        let n = RtpHeader::default()
            .write(&[1, 2, 3, 0, 0, 3], &mut buf)
            .unwrap();
        buf[0] |= 0x20;
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!(p.payload(), [1, 2, 3]);
        assert_eq!(p.padding_len(), 3);
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::TooShort(11)));
        let mut v1 = [0u8; 12];
        v1[0] = 0x40;
        assert_eq!(RtpPacket::parse(&v1), Err(RtpError::BadVersion(1)));
        let mut cc = [0u8; 16];
        cc[0] = 0x82;
        assert_eq!(RtpPacket::parse(&cc), Err(RtpError::CsrcOverrun(2)));
        // Padding count larger than everything after the header.
        let mut pad = [0u8; 14];
        pad[0] = 0xa0;
        pad[13] = 3;
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::BadPadding(3)));
        pad[13] = 0;
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::BadPadding(0)));
        // Extension header missing, then extension length beyond the packet.
        let mut ext = [0u8; 18];
        ext[0] = 0x90;
        assert_eq!(
            RtpPacket::parse(&ext[..14]),
            Err(RtpError::ExtensionOverrun)
        );
        ext[15] = 2;
        assert_eq!(RtpPacket::parse(&ext), Err(RtpError::ExtensionOverrun));
    }

    #[test]
    fn rewrite_in_place_keeps_payload() {
        let mut buf = sample();
        let mut p = RtpPacketMut::new(&mut buf).unwrap();
        p.set_ssrc(7);
        p.set_sequence(9);
        p.set_timestamp(11);
        p.set_payload_type(0);
        p.set_marker(false);
        let v = p.view();
        assert_eq!(
            (v.ssrc(), v.sequence(), v.timestamp(), v.payload_type()),
            (7, 9, 11, 0)
        );
        assert!(!v.marker());
        assert_eq!(v.payload(), b"hello");
        assert_eq!(v.csrcs().collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn writer_rejects_small_buffer_and_bad_input() {
        let mut small = [0u8; 13];
        assert!(matches!(
            RtpHeader::default().write(b"ab", &mut small),
            Err(RtpError::BufferTooSmall { needed: 14, .. })
        ));
        let csrcs = [0u32; 16];
        let h = RtpHeader {
            csrcs: &csrcs,
            ..Default::default()
        };
        assert_eq!(h.write(b"", &mut [0; 128]), Err(RtpError::TooManyCsrcs(16)));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = RtpPacket::parse(&data) {
                let _ = (p.payload(), p.extension(), p.csrcs().count(), p.ssrc());
                prop_assert!(p.header_len() + p.payload().len() + p.padding_len() == data.len());
            }
        }

        #[test]
        fn write_parse_round_trip(
            marker: bool,
            pt in 0u8..128,
            seq: u16,
            ts: u32,
            ssrc: u32,
            csrcs in proptest::collection::vec(any::<u32>(), 0..16),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut buf = [0u8; 256];
            let h = RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc, csrcs: &csrcs, extension: None };
            let n = h.write(&payload, &mut buf).unwrap();
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            prop_assert_eq!((p.marker(), p.payload_type(), p.sequence(), p.timestamp(), p.ssrc()), (marker, pt, seq, ts, ssrc));
            prop_assert_eq!(p.csrcs().collect::<Vec<_>>(), csrcs);
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        #[test]
        fn random_v2_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 12..100)) {
            data[0] = (data[0] & 0x3f) | 0x80;
            if let Ok(p) = RtpPacket::parse(&data) {
                let _ = (p.payload(), p.extension(), p.csrcs().count());
            }
        }
    }
}
