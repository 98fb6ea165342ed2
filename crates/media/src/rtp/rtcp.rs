//! RTCP compound packets (RFC 3550 section 6) and feedback headers
//! (RFC 4585 section 6.1), zero-copy.
//!
//! [`Compound::parse`] validates every packet of a compound datagram (version,
//! length words, report block counts, SDES chunks, BYE lists) and then hands
//! out typed borrowed views. SR, RR, SDES and BYE are decoded; APP and the
//! RTPFB/PSFB feedback messages are kept raw with their common header fields.
//! The compound is not required to start with SR/RR, so reduced-size RTCP
//! (RFC 5506) is accepted. [`is_rtcp`] separates RTCP from RTP on a muxed
//! port (RFC 5761 section 4).

use thiserror::Error;

use super::packet::be32;

/// Packet type of a sender report.
pub const PT_SR: u8 = 200;
/// Packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// Packet type of source description.
pub const PT_SDES: u8 = 202;
/// Packet type of goodbye.
pub const PT_BYE: u8 = 203;
/// Packet type of application-defined.
pub const PT_APP: u8 = 204;
/// Transport-layer feedback (RFC 4585).
pub const PT_RTPFB: u8 = 205;
/// Payload-specific feedback (RFC 4585).
pub const PT_PSFB: u8 = 206;
/// SDES item type of the canonical name.
pub const SDES_CNAME: u8 = 1;

const REPORT_BLOCK_LEN: usize = 24;
const SENDER_INFO_LEN: usize = 20;

/// True when a datagram on a muxed RTP/RTCP port is RTCP: its second octet
/// without the marker bit is in 64..=95, i.e. packet types 192-223
/// (RFC 5761 section 4).
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] >> 6 == 2 && (64..=95).contains(&(data[1] & 0x7f))
}

/// Why a datagram is not valid RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtcpError {
    /// Fewer than the four octets of a common header remain.
    #[error("RTCP packet truncated at offset {0}")]
    Truncated(usize),
    /// The version field is not 2.
    #[error("RTCP version {0}, expected 2")]
    BadVersion(u8),
    /// The length field points past the end of the datagram.
    #[error("RTCP length at offset {0} exceeds the datagram")]
    LengthOverrun(usize),
    /// The body is too short for its type and count.
    #[error("RTCP packet type {0} body too short for its count")]
    BodyTooShort(u8),
    /// An SDES chunk is not terminated inside its packet.
    #[error("unterminated SDES chunk")]
    BadSdes,
    /// An empty datagram.
    #[error("empty RTCP datagram")]
    Empty,
    /// The output buffer cannot hold the packet being written.
    #[error("buffer too small: need {needed} octets, have {available}")]
    BufferTooSmall {
        /// Octets the packet needs.
        needed: usize,
        /// Octets the buffer has.
        available: usize,
    },
    /// More than 31 report blocks, or an SDES item over 255 octets.
    #[error("too many items for one RTCP packet")]
    TooMany,
}

/// A 64-bit NTP timestamp (seconds since 1900 in the high 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// The middle 32 bits, as carried in LSR (section 6.4.1).
    pub fn compact(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// One reception report block (section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed; duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received, or 0.
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    fn read(b: &[u8]) -> Self {
        // Sign-extend the 24-bit cumulative count.
        let cumulative = i32::from_be_bytes([b[5], b[6], b[7], 0]) >> 8;
        Self {
            ssrc: be32(&b[0..4]),
            fraction_lost: b[4],
            cumulative_lost: cumulative,
            highest_seq: be32(&b[8..12]),
            jitter: be32(&b[12..16]),
            lsr: be32(&b[16..20]),
            dlsr: be32(&b[20..24]),
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        out[4] = self.fraction_lost;
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff);
        out[5..8].copy_from_slice(&lost.to_be_bytes()[1..4]);
        out[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.lsr.to_be_bytes());
        out[20..24].copy_from_slice(&self.dlsr.to_be_bytes());
    }
}

/// The sender information of an SR (section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// Wall-clock time of the report.
    pub ntp: NtpTime,
    /// RTP timestamp corresponding to `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent since the start.
    pub packet_count: u32,
    /// Payload octets sent since the start.
    pub octet_count: u32,
}

/// Report blocks borrowed from an SR or RR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a>(&'a [u8]);

impl ReportBlocks<'_> {
    /// Iterates the blocks.
    pub fn iter(&self) -> impl Iterator<Item = ReportBlock> + '_ {
        self.0.chunks_exact(REPORT_BLOCK_LEN).map(ReportBlock::read)
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.0.len() / REPORT_BLOCK_LEN
    }

    /// True without blocks.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An SDES chunk: one source and its raw items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    /// The source described.
    pub ssrc: u32,
    items: &'a [u8],
}

impl<'a> SdesChunk<'a> {
    /// Items as `(type, value)`, stopping at the terminating null.
    pub fn items(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        let mut rest = self.items;
        std::iter::from_fn(move || {
            let (&kind, tail) = rest.split_first()?;
            if kind == 0 {
                return None;
            }
            let (&len, tail) = tail.split_first()?;
            let value = tail.get(..usize::from(len))?;
            rest = &tail[usize::from(len)..];
            Some((kind, value))
        })
    }

    /// The CNAME item, if present.
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items().find(|(k, _)| *k == SDES_CNAME).map(|(_, v)| v)
    }
}

/// One packet of a compound datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// Sender report.
    SenderReport {
        /// Sender information.
        info: SenderInfo,
        /// Reception report blocks.
        blocks: ReportBlocks<'a>,
    },
    /// Receiver report.
    ReceiverReport {
        /// SSRC of the reporter.
        ssrc: u32,
        /// Reception report blocks.
        blocks: ReportBlocks<'a>,
    },
    /// Source description: the chunks area (see [`RtcpPacket::sdes_chunks`]).
    SourceDescription {
        /// Number of chunks.
        count: u8,
        /// The raw chunks.
        chunks: &'a [u8],
    },
    /// Goodbye.
    Bye {
        /// Raw SSRC/CSRC list (four octets each).
        sources: &'a [u8],
        /// Optional reason text.
        reason: Option<&'a [u8]>,
    },
    /// APP, RTPFB, PSFB and unknown types, kept raw.
    Other(RawRtcp<'a>),
}

/// A packet kept raw with its common header decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRtcp<'a> {
    /// Packet type (204 APP, 205 RTPFB, 206 PSFB, ...).
    pub packet_type: u8,
    /// The 5-bit count/subtype/FMT field.
    pub count: u8,
    /// The whole packet including its header, without padding removed.
    pub data: &'a [u8],
}

impl RawRtcp<'_> {
    /// For RTPFB/PSFB: `(sender SSRC, media SSRC)` (RFC 4585 section 6.1).
    pub fn feedback_ssrcs(&self) -> Option<(u32, u32)> {
        let b = self.data.get(4..12)?;
        Some((be32(&b[0..4]), be32(&b[4..8])))
    }
}

impl<'a> RtcpPacket<'a> {
    /// SDES chunks; empty for other packet types.
    pub fn sdes_chunks(&self) -> impl Iterator<Item = SdesChunk<'a>> + 'a {
        let mut rest = match self {
            RtcpPacket::SourceDescription { chunks, .. } => *chunks,
            _ => &[],
        };
        std::iter::from_fn(move || {
            let (ssrc, end) = sdes_chunk_end(rest)?;
            let chunk = SdesChunk {
                ssrc,
                items: &rest[4..end],
            };
            rest = &rest[end..];
            Some(chunk)
        })
    }

    /// BYE sources; empty for other packet types.
    pub fn bye_sources(&self) -> impl Iterator<Item = u32> + 'a {
        let src: &'a [u8] = match self {
            RtcpPacket::Bye { sources, .. } => sources,
            _ => &[],
        };
        src.chunks_exact(4).map(be32)
    }
}

/// Returns the SSRC and the 32-bit aligned end of the chunk at `b[0..]`.
fn sdes_chunk_end(b: &[u8]) -> Option<(u32, usize)> {
    let ssrc = be32(b.get(0..4)?);
    let mut at = 4;
    loop {
        match *b.get(at)? {
            0 => break,
            _ => at += 2 + usize::from(*b.get(at + 1)?),
        }
    }
    // Null terminator, then pad to the next word.
    let end = (at + 1).div_ceil(4) * 4;
    (end <= b.len()).then_some((ssrc, end))
}

/// Parses one packet at `buf[at..]`, returning it and the next offset.
fn parse_one(buf: &[u8], at: usize) -> Result<(RtcpPacket<'_>, usize), RtcpError> {
    let head = buf.get(at..at + 4).ok_or(RtcpError::Truncated(at))?;
    let version = head[0] >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion(version));
    }
    let count = head[0] & 0x1f;
    let pt = head[1];
    let len = 4 * (usize::from(u16::from_be_bytes([head[2], head[3]])) + 1);
    let packet = buf.get(at..at + len).ok_or(RtcpError::LengthOverrun(at))?;
    let mut body = &packet[4..];
    if head[0] & 0x20 != 0 {
        let pad = usize::from(*body.last().ok_or(RtcpError::BodyTooShort(pt))?);
        if pad == 0 || pad > body.len() {
            return Err(RtcpError::BodyTooShort(pt));
        }
        body = &body[..body.len() - pad];
    }
    let short = RtcpError::BodyTooShort(pt);
    let blocks_len = REPORT_BLOCK_LEN * usize::from(count);
    let parsed = match pt {
        PT_SR => {
            let info = body.get(..4 + SENDER_INFO_LEN).ok_or(short)?;
            let blocks = body.get(24..24 + blocks_len).ok_or(short)?;
            RtcpPacket::SenderReport {
                info: SenderInfo {
                    ssrc: be32(&info[0..4]),
                    ntp: NtpTime(
                        (u64::from(be32(&info[4..8])) << 32) | u64::from(be32(&info[8..12])),
                    ),
                    rtp_timestamp: be32(&info[12..16]),
                    packet_count: be32(&info[16..20]),
                    octet_count: be32(&info[20..24]),
                },
                blocks: ReportBlocks(blocks),
            }
        }
        PT_RR => RtcpPacket::ReceiverReport {
            ssrc: be32(body.get(0..4).ok_or(short)?),
            blocks: ReportBlocks(body.get(4..4 + blocks_len).ok_or(short)?),
        },
        PT_SDES => {
            let mut rest = body;
            for _ in 0..count {
                let (_, end) = sdes_chunk_end(rest).ok_or(RtcpError::BadSdes)?;
                rest = &rest[end..];
            }
            RtcpPacket::SourceDescription {
                count,
                chunks: &body[..body.len() - rest.len()],
            }
        }
        PT_BYE => {
            let n = 4 * usize::from(count);
            let sources = body.get(..n).ok_or(short)?;
            let reason = match body.get(n) {
                Some(&len) => Some(body.get(n + 1..n + 1 + usize::from(len)).ok_or(short)?),
                None => None,
            };
            RtcpPacket::Bye { sources, reason }
        }
        _ => {
            if (pt == PT_RTPFB || pt == PT_PSFB) && body.len() < 8 {
                return Err(short);
            }
            RtcpPacket::Other(RawRtcp {
                packet_type: pt,
                count,
                data: packet,
            })
        }
    };
    Ok((parsed, at + len))
}

/// A validated compound RTCP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compound<'a> {
    buf: &'a [u8],
}

impl<'a> Compound<'a> {
    /// Validates every packet in `buf`. Never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        if buf.is_empty() {
            return Err(RtcpError::Empty);
        }
        let mut at = 0;
        while at < buf.len() {
            at = parse_one(buf, at)?.1;
        }
        Ok(Self { buf })
    }

    /// The packets in order.
    pub fn packets(&self) -> impl Iterator<Item = RtcpPacket<'a>> + 'a {
        let buf = self.buf;
        let mut at = 0;
        std::iter::from_fn(move || {
            // Validated in `parse`, so this only ends at the buffer's end.
            let (p, next) = parse_one(buf, at).ok()?;
            at = next;
            Some(p)
        })
    }

    /// Every report block of every SR and RR, with the reporter's SSRC.
    pub fn report_blocks(&self) -> impl Iterator<Item = (u32, ReportBlock)> + 'a {
        self.packets().flat_map(|p| {
            let (reporter, blocks) = match p {
                RtcpPacket::SenderReport { info, blocks } => (info.ssrc, blocks.0),
                RtcpPacket::ReceiverReport { ssrc, blocks } => (ssrc, blocks.0),
                _ => (0, &[][..]),
            };
            blocks
                .chunks_exact(REPORT_BLOCK_LEN)
                .map(move |b| (reporter, ReportBlock::read(b)))
        })
    }
}

fn check_room(needed: usize, out: &[u8]) -> Result<(), RtcpError> {
    if out.len() < needed {
        return Err(RtcpError::BufferTooSmall {
            needed,
            available: out.len(),
        });
    }
    Ok(())
}

fn write_header(out: &mut [u8], count: usize, pt: u8, len: usize) {
    out[0] = 0x80 | count as u8;
    out[1] = pt;
    out[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
}

fn write_blocks(out: &mut [u8], blocks: &[ReportBlock]) {
    for (b, chunk) in blocks.iter().zip(out.chunks_exact_mut(REPORT_BLOCK_LEN)) {
        b.write(chunk);
    }
}

/// Writes a receiver report into `out`; returns its length.
pub fn write_receiver_report(
    ssrc: u32,
    blocks: &[ReportBlock],
    out: &mut [u8],
) -> Result<usize, RtcpError> {
    if blocks.len() > 31 {
        return Err(RtcpError::TooMany);
    }
    let len = 8 + REPORT_BLOCK_LEN * blocks.len();
    check_room(len, out)?;
    write_header(out, blocks.len(), PT_RR, len);
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    write_blocks(&mut out[8..len], blocks);
    Ok(len)
}

/// Writes a sender report into `out`; returns its length.
pub fn write_sender_report(
    info: &SenderInfo,
    blocks: &[ReportBlock],
    out: &mut [u8],
) -> Result<usize, RtcpError> {
    if blocks.len() > 31 {
        return Err(RtcpError::TooMany);
    }
    let len = 28 + REPORT_BLOCK_LEN * blocks.len();
    check_room(len, out)?;
    write_header(out, blocks.len(), PT_SR, len);
    out[4..8].copy_from_slice(&info.ssrc.to_be_bytes());
    out[8..16].copy_from_slice(&info.ntp.0.to_be_bytes());
    out[16..20].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
    out[20..24].copy_from_slice(&info.packet_count.to_be_bytes());
    out[24..28].copy_from_slice(&info.octet_count.to_be_bytes());
    write_blocks(&mut out[28..len], blocks);
    Ok(len)
}

/// Writes an SDES packet with one chunk carrying only a CNAME; returns its
/// length. Append it after an SR/RR to form the minimal compound packet.
pub fn write_sdes_cname(ssrc: u32, cname: &[u8], out: &mut [u8]) -> Result<usize, RtcpError> {
    let item_len = u8::try_from(cname.len()).map_err(|_| RtcpError::TooMany)?;
    let len = (4 + 4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    check_room(len, out)?;
    write_header(out, 1, PT_SDES, len);
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    out[8] = SDES_CNAME;
    out[9] = item_len;
    out[10..10 + cname.len()].copy_from_slice(cname);
    out[10 + cname.len()..len].fill(0);
    Ok(len)
}

#[cfg(test)]
mod tests;
