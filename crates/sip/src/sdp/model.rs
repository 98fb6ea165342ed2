//! The SDP data model (RFC 8866 §5) and its serializer.
//!
//! Lines the stack interprets (`v o s c b t m a`) are typed; every other line
//! is kept as a [`RawLine`] and re-emitted at its RFC 8866 §5 position, so a
//! well-formed description round-trips byte for byte. Attributes are stored
//! raw, in order; the typed views ([`RtpMap`], [`Fmtp`], [`Direction`], ...)
//! are computed from them on demand.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

/// `o=` (RFC 8866 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    /// Kept as text: only uniqueness matters and some stacks exceed `u64`.
    pub session_id: String,
    pub session_version: u64,
    pub address_type: AddressType,
    pub address: String,
}

/// `IP4` or `IP6` in `o=` and `c=`; the network type is always `IN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    Ip4,
    Ip6,
}

impl AddressType {
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() { Self::Ip4 } else { Self::Ip6 }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip4 => "IP4",
            Self::Ip6 => "IP6",
        }
    }
}

/// `c=` (RFC 8866 §5.7). `address` may carry a multicast `/ttl` suffix or be
/// a host name, so it is kept as text; [`Connection::ip`] parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub address_type: AddressType,
    pub address: String,
}

impl Connection {
    pub fn new(ip: IpAddr) -> Self {
        Self {
            address_type: AddressType::of(ip),
            address: ip.to_string(),
        }
    }

    /// The unicast address, if the value is a literal IP of the declared type.
    pub fn ip(&self) -> Option<IpAddr> {
        let ip: IpAddr = self.address.parse().ok()?;
        (AddressType::of(ip) == self.address_type).then_some(ip)
    }
}

/// `b=<type>:<kbps>` (RFC 8866 §5.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    pub kind: String,
    pub value: u64,
}

/// `t=` with the `r=` lines that follow it (RFC 8866 §5.9, §5.10).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timing {
    pub start: u64,
    pub stop: u64,
    pub repeats: Vec<String>,
}

/// A line kept verbatim: `i u e p z k` and unknown lowercase types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    pub kind: u8,
    pub value: String,
}

impl RawLine {
    /// Lines that RFC 8866 §5 places before `c=` (`i u e p`).
    fn before_connection(&self) -> bool {
        matches!(self.kind, b'i' | b'u' | b'e' | b'p')
    }
}

/// `a=<name>[:<value>]` (RFC 8866 §5.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    pub fn flag(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            value: None,
        }
    }

    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            value: Some(value.into()),
        }
    }
}

/// A whole session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    pub session_name: String,
    pub connection: Option<Connection>,
    pub bandwidths: Vec<Bandwidth>,
    /// At least one `t=`; `t=0 0` for VoIP.
    pub timings: Vec<Timing>,
    pub other: Vec<RawLine>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<MediaDescription>,
}

/// One `m=` section (RFC 8866 §5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `text`, `application`, `message`, ...
    pub media: String,
    /// 0 marks a rejected or disabled stream (RFC 3264 §6).
    pub port: u16,
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ...
    pub protocol: String,
    /// Payload type numbers for RTP protocols, opaque tokens otherwise.
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    pub bandwidths: Vec<Bandwidth>,
    pub other: Vec<RawLine>,
    pub attributes: Vec<Attribute>,
}

/// Media direction (RFC 3264 §5.1, §6.1), seen from the side that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Self::SendRecv,
            (true, false) => Self::SendOnly,
            (false, true) => Self::RecvOnly,
            (false, false) => Self::Inactive,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// The same stream described from the other end.
    pub fn reverse(self) -> Self {
        Self::from_flags(self.receives(), self.sends())
    }

    /// Both constraints at once: sending only if both allow it, and so on.
    pub fn intersect(self, other: Self) -> Self {
        Self::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    pub fn from_attribute(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Self::SendRecv,
            "sendonly" => Self::SendOnly,
            "recvonly" => Self::RecvOnly,
            "inactive" => Self::Inactive,
            _ => return None,
        })
    }
}

/// `a=rtpmap:<pt> <name>/<clock>[/<channels>]`, or a static entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

impl RtpMap {
    /// Channel count with the RFC 8866 §6.6 default of one.
    pub fn channel_count(&self) -> u16 {
        self.channels.unwrap_or(1)
    }

    pub fn parse(value: &str) -> Option<Self> {
        let (pt, rest) = value.split_once(' ')?;
        let mut parts = rest.trim().split('/');
        let encoding = parts.next().filter(|e| !e.is_empty())?.to_owned();
        let clock_rate = parts.next()?.parse().ok()?;
        let channels = match parts.next() {
            Some(c) => Some(c.parse().ok()?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            payload_type: pt.parse().ok()?,
            encoding,
            clock_rate,
            channels,
        })
    }

    pub fn value(&self) -> String {
        let mut v = format!(
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        );
        if let Some(c) = self.channels {
            let _ = write!(v, "/{c}");
        }
        v
    }
}

/// RFC 3551 §6 static payload types the PBX understands without `a=rtpmap`.
/// G.722 is listed at 8000 Hz on purpose (RFC 3551 §4.5.2).
pub fn static_payload(pt: u8) -> Option<RtpMap> {
    let (name, rate) = match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        13 => ("CN", 8000),
        18 => ("G729", 8000),
        _ => return None,
    };
    Some(RtpMap {
        payload_type: pt,
        encoding: name.to_owned(),
        clock_rate: rate,
        channels: None,
    })
}

/// `a=fmtp:<pt> <params>`; params stay raw, codec specific.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    pub payload_type: u8,
    pub params: String,
}

/// `a=rtcp:<port> [IN IP4 <addr>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    pub port: u16,
    pub connection: Option<Connection>,
}

/// RFC 4733 §2.4.1 event list such as `0-15,66`, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRanges(pub Vec<(u8, u8)>);

impl EventRanges {
    /// The telephone-event default when no fmtp is given (RFC 4733 §2.4.1).
    pub fn dtmf() -> Self {
        Self(vec![(0, 15)])
    }

    pub fn parse(s: &str) -> Option<Self> {
        let mut out = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let v = item.parse().ok()?;
                    (v, v)
                }
            };
            if lo > hi {
                return None;
            }
            out.push((lo, hi));
        }
        Some(Self(out))
    }

    pub fn contains(&self, event: u8) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&event))
    }

    /// Events both lists allow, or `None` when they share none.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        let mut out: Vec<(u8, u8)> = Vec::new();
        for e in 0..=u8::MAX {
            if !(self.contains(e) && other.contains(e)) {
                continue;
            }
            match out.last_mut() {
                Some((_, hi)) if *hi < u8::MAX && *hi + 1 == e => *hi = e,
                _ => out.push((e, e)),
            }
        }
        (!out.is_empty()).then_some(Self(out))
    }
}

impl fmt::Display for EventRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            if lo == hi {
                write!(f, "{lo}")?
            } else {
                write!(f, "{lo}-{hi}")?
            }
        }
        Ok(())
    }
}

fn find<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a Attribute> {
    attrs.iter().find(|a| a.name == name)
}

fn direction_in(attrs: &[Attribute]) -> Option<Direction> {
    attrs
        .iter()
        .rev()
        .find_map(|a| Direction::from_attribute(&a.name))
}

impl SessionDescription {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        find(&self.attributes, name)
    }

    /// The session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_in(&self.attributes)
    }

    /// The connection that applies to a media section: its own or the session's.
    pub fn connection_for<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// Media direction with the media level overriding the session level.
    pub fn direction_for(&self, media: &MediaDescription) -> Direction {
        media.direction().or(self.direction()).unwrap_or_default()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl MediaDescription {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        find(&self.attributes, name)
    }

    pub fn has_flag(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    /// Media-level direction attribute only; see [`SessionDescription::direction_for`].
    pub fn direction(&self) -> Option<Direction> {
        direction_in(&self.attributes)
    }

    /// Replaces any direction attribute, keeping its position if it had one.
    pub fn set_direction(&mut self, dir: Direction) {
        let attr = Attribute::flag(dir.as_str());
        match self
            .attributes
            .iter()
            .position(|a| Direction::from_attribute(&a.name).is_some())
        {
            Some(i) => {
                self.attributes[i] = attr;
                let mut j = i + 1;
                while j < self.attributes.len() {
                    if Direction::from_attribute(&self.attributes[j].name).is_some() {
                        self.attributes.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => self.attributes.push(attr),
        }
    }

    pub fn rtpmaps(&self) -> impl Iterator<Item = RtpMap> + '_ {
        self.attributes
            .iter()
            .filter(|a| a.name == "rtpmap")
            .filter_map(|a| RtpMap::parse(a.value.as_deref()?))
    }

    /// The mapping for a payload type: `a=rtpmap` first, then the static table.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        self.rtpmaps()
            .find(|m| m.payload_type == pt)
            .or_else(|| static_payload(pt))
    }

    pub fn fmtp(&self, pt: u8) -> Option<Fmtp> {
        self.attributes
            .iter()
            .filter(|a| a.name == "fmtp")
            .find_map(|a| {
                let (p, params) = a.value.as_deref()?.split_once(' ')?;
                let payload_type = p.parse().ok().filter(|&p: &u8| p == pt)?;
                Some(Fmtp {
                    payload_type,
                    params: params.trim().to_owned(),
                })
            })
    }

    /// Formats that are RTP payload type numbers, in offer order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse().ok().filter(|&p: &u8| p < 128))
    }

    fn number(&self, name: &str) -> Option<u32> {
        self.attribute(name)?.value.as_deref()?.trim().parse().ok()
    }

    pub fn ptime(&self) -> Option<u32> {
        self.number("ptime")
    }

    pub fn maxptime(&self) -> Option<u32> {
        self.number("maxptime")
    }

    pub fn rtcp_mux(&self) -> bool {
        self.has_flag("rtcp-mux")
    }

    pub fn rtcp(&self) -> Option<Rtcp> {
        let value = self.attribute("rtcp")?.value.as_deref()?;
        let mut it = value.split_ascii_whitespace();
        let port = it.next()?.parse().ok()?;
        let connection = match (it.next(), it.next(), it.next()) {
            (None, ..) => None,
            (Some("IN"), Some(t), Some(addr)) => Some(Connection {
                address_type: match t {
                    "IP4" => AddressType::Ip4,
                    "IP6" => AddressType::Ip6,
                    _ => return None,
                },
                address: addr.to_owned(),
            }),
            _ => return None,
        };
        Some(Rtcp { port, connection })
    }

    /// The telephone-event payload type (RFC 4733) at `clock_rate`, with its events.
    pub fn telephone_event(&self, clock_rate: u32) -> Option<(u8, EventRanges)> {
        let map = self.rtpmaps().find(|m| {
            m.encoding.eq_ignore_ascii_case("telephone-event")
                && m.clock_rate == clock_rate
                && self.payload_types().any(|p| p == m.payload_type)
        })?;
        let events = match self.fmtp(map.payload_type) {
            Some(f) => EventRanges::parse(&f.params)?,
            None => EventRanges::dtmf(),
        };
        Some((map.payload_type, events))
    }
}

fn write_common(
    f: &mut fmt::Formatter<'_>,
    conn: Option<&Connection>,
    bws: &[Bandwidth],
) -> fmt::Result {
    if let Some(c) = conn {
        write!(f, "c=IN {} {}\r\n", c.address_type.as_str(), c.address)?;
    }
    for b in bws {
        write!(f, "b={}:{}\r\n", b.kind, b.value)?;
    }
    Ok(())
}

fn write_raw<'a>(
    f: &mut fmt::Formatter<'_>,
    lines: impl Iterator<Item = &'a RawLine>,
) -> fmt::Result {
    for l in lines {
        write!(f, "{}={}\r\n", char::from(l.kind), l.value)?;
    }
    Ok(())
}

fn write_attrs(f: &mut fmt::Formatter<'_>, attrs: &[Attribute]) -> fmt::Result {
    for a in attrs {
        match &a.value {
            Some(v) => write!(f, "a={}:{}\r\n", a.name, v)?,
            None => write!(f, "a={}\r\n", a.name)?,
        }
    }
    Ok(())
}

/// Serializes in RFC 8866 §5 order with CRLF line endings.
impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        f.write_str("v=0\r\n")?;
        write!(
            f,
            "o={} {} {} IN {} {}\r\n",
            o.username,
            o.session_id,
            o.session_version,
            o.address_type.as_str(),
            o.address
        )?;
        write!(f, "s={}\r\n", self.session_name)?;
        write_raw(f, self.other.iter().filter(|l| l.before_connection()))?;
        write_common(f, self.connection.as_ref(), &self.bandwidths)?;
        for t in &self.timings {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={r}\r\n")?;
            }
        }
        write_raw(f, self.other.iter().filter(|l| !l.before_connection()))?;
        write_attrs(f, &self.attributes)?;
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.media, self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.protocol)?;
        for fmt in &self.formats {
            write!(f, " {fmt}")?;
        }
        f.write_str("\r\n")?;
        write_raw(f, self.other.iter().filter(|l| l.kind == b'i'))?;
        write_common(f, self.connection.as_ref(), &self.bandwidths)?;
        write_raw(f, self.other.iter().filter(|l| l.kind != b'i'))?;
        write_attrs(f, &self.attributes)
    }
}
