//! SDP parser (RFC 8866 §5, §9 grammar), strict on structure, lenient on
//! line endings (LF-only is accepted) and on the order of optional lines.
//!
//! Input is bounded ([`MAX_SDP_LEN`], [`MAX_SDP_LINES`]) before any
//! allocation proportional to it, and no input makes the parser panic.

use super::model::{
    AddressType, Attribute, Bandwidth, Connection, MediaDescription, Origin, RawLine,
    SessionDescription, Timing,
};

/// Largest body accepted; real offers are a few KiB even with ICE candidates.
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// Largest number of lines accepted.
pub const MAX_SDP_LINES: usize = 1000;

/// Why a body is not a usable session description. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP body is {0} bytes; the limit is {MAX_SDP_LEN}")]
    TooLarge(usize),
    #[error("SDP body has more than {MAX_SDP_LINES} lines")]
    TooManyLines,
    #[error("SDP body is empty")]
    Empty,
    #[error("line {line}: not valid UTF-8")]
    NotUtf8 { line: usize },
    #[error("line {line}: expected `<letter>=<value>`")]
    NoEquals { line: usize },
    #[error("line {line}: line type {ty:?} is not a lowercase letter a-z")]
    BadType { line: usize, ty: char },
    #[error("line {line}: the first line must be `v=0`")]
    BadVersion { line: usize },
    #[error("line {line}: `{ty}=` is not allowed here ({why})")]
    Misplaced {
        line: usize,
        ty: char,
        why: &'static str,
    },
    #[error("line {line}: duplicate `{ty}=` line")]
    Duplicate { line: usize, ty: char },
    #[error("line {line}: invalid {field}: {value:?}")]
    Invalid {
        line: usize,
        field: &'static str,
        value: String,
    },
    #[error("missing required `{0}=` line")]
    Missing(char),
}

fn invalid(line: usize, field: &'static str, value: &str) -> SdpError {
    // Cap the echoed value: errors end up in logs and responses.
    let value = value.chars().take(64).collect();
    SdpError::Invalid { line, field, value }
}

impl SessionDescription {
    /// Parses a body such as an INVITE's `application/sdp` payload.
    pub fn parse(input: &[u8]) -> Result<Self, SdpError> {
        parse(input)
    }
}

impl std::str::FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, SdpError> {
        parse(s.as_bytes())
    }
}

struct Partial {
    origin: Option<Origin>,
    session_name: Option<String>,
    connection: Option<Connection>,
    bandwidths: Vec<Bandwidth>,
    timings: Vec<Timing>,
    other: Vec<RawLine>,
    attributes: Vec<Attribute>,
}

fn parse(input: &[u8]) -> Result<SessionDescription, SdpError> {
    if input.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge(input.len()));
    }
    let lines = input
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)));
    let mut s = Partial {
        origin: None,
        session_name: None,
        connection: None,
        bandwidths: Vec::new(),
        timings: Vec::new(),
        other: Vec::new(),
        attributes: Vec::new(),
    };
    let mut media: Vec<MediaDescription> = Vec::new();
    let mut seen_version = false;
    for (n, raw) in lines {
        // Trailing blank lines are common padding; blank lines elsewhere
        // carry nothing, so skipping them loses no information.
        if raw.is_empty() {
            continue;
        }
        if n > MAX_SDP_LINES {
            return Err(SdpError::TooManyLines);
        }
        let text = std::str::from_utf8(raw).map_err(|_| SdpError::NotUtf8 { line: n })?;
        let (ty, value) = split_type(n, text)?;
        if !seen_version {
            if ty != b'v' || value != "0" {
                return Err(SdpError::BadVersion { line: n });
            }
            seen_version = true;
            continue;
        }
        if ty == b'm' {
            if s.origin.is_none() || s.session_name.is_none() || s.timings.is_empty() {
                return Err(SdpError::Misplaced {
                    line: n,
                    ty: 'm',
                    why: "before o=, s= and t=",
                });
            }
            media.push(parse_media_line(n, value)?);
            continue;
        }
        match media.last_mut() {
            Some(m) => media_line(n, ty, value, m)?,
            None => session_line(n, ty, value, &mut s)?,
        }
    }
    if !seen_version {
        return Err(SdpError::Empty);
    }
    Ok(SessionDescription {
        origin: s.origin.ok_or(SdpError::Missing('o'))?,
        session_name: s.session_name.ok_or(SdpError::Missing('s'))?,
        connection: s.connection,
        bandwidths: s.bandwidths,
        timings: if s.timings.is_empty() {
            return Err(SdpError::Missing('t'));
        } else {
            s.timings
        },
        other: s.other,
        attributes: s.attributes,
        media,
    })
}

fn split_type(n: usize, text: &str) -> Result<(u8, &str), SdpError> {
    let bytes = text.as_bytes();
    if bytes.len() < 2 || bytes[1] != b'=' {
        return Err(SdpError::NoEquals { line: n });
    }
    let ty = bytes[0];
    if !ty.is_ascii_lowercase() {
        let ty = text.chars().next().unwrap_or('\0');
        return Err(SdpError::BadType { line: n, ty });
    }
    Ok((ty, &text[2..]))
}

fn session_line(n: usize, ty: u8, value: &str, s: &mut Partial) -> Result<(), SdpError> {
    if ty != b'o' && ty != b'v' && s.origin.is_none() {
        return Err(SdpError::Misplaced {
            line: n,
            ty: char::from(ty),
            why: "before o=",
        });
    }
    match ty {
        b'v' => return Err(SdpError::Duplicate { line: n, ty: 'v' }),
        b'o' => {
            if s.origin.is_some() {
                return Err(SdpError::Duplicate { line: n, ty: 'o' });
            }
            s.origin = Some(parse_origin(n, value)?);
        }
        b's' => {
            if s.session_name.is_some() {
                return Err(SdpError::Duplicate { line: n, ty: 's' });
            }
            s.session_name = Some(value.to_owned());
        }
        b'c' => {
            if s.connection.is_some() {
                return Err(SdpError::Duplicate { line: n, ty: 'c' });
            }
            s.connection = Some(parse_connection(n, value)?);
        }
        b'b' => s.bandwidths.push(parse_bandwidth(n, value)?),
        b't' => s.timings.push(parse_timing(n, value)?),
        b'r' => match s.timings.last_mut() {
            Some(t) => t.repeats.push(value.to_owned()),
            None => {
                return Err(SdpError::Misplaced {
                    line: n,
                    ty: 'r',
                    why: "before t=",
                });
            }
        },
        b'a' => s.attributes.push(parse_attribute(n, value)?),
        _ => s.other.push(RawLine {
            kind: ty,
            value: value.to_owned(),
        }),
    }
    Ok(())
}

fn media_line(n: usize, ty: u8, value: &str, m: &mut MediaDescription) -> Result<(), SdpError> {
    match ty {
        b'c' => {
            if m.connection.is_some() {
                return Err(SdpError::Duplicate { line: n, ty: 'c' });
            }
            m.connection = Some(parse_connection(n, value)?);
        }
        b'b' => m.bandwidths.push(parse_bandwidth(n, value)?),
        b'a' => m.attributes.push(parse_attribute(n, value)?),
        b'v' | b'o' | b's' | b't' | b'r' | b'z' => {
            let ty = char::from(ty);
            return Err(SdpError::Misplaced {
                line: n,
                ty,
                why: "session-level line after m=",
            });
        }
        _ => m.other.push(RawLine {
            kind: ty,
            value: value.to_owned(),
        }),
    }
    Ok(())
}

/// A token as RFC 8866 §9 defines it, loosely: non-empty, no spaces or controls.
fn token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() || b >= 0x80)
}

fn address_type(n: usize, s: &str) -> Result<AddressType, SdpError> {
    match s {
        "IP4" => Ok(AddressType::Ip4),
        "IP6" => Ok(AddressType::Ip6),
        _ => Err(invalid(n, "address type (expected IP4 or IP6)", s)),
    }
}

fn parse_origin(n: usize, value: &str) -> Result<Origin, SdpError> {
    let f: Vec<&str> = value.split(' ').collect();
    let [user, id, version, net, addr_type, addr] = f[..] else {
        return Err(invalid(n, "o= (expected 6 fields)", value));
    };
    if !token(user) || !token(addr) {
        return Err(invalid(n, "o=", value));
    }
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(n, "o= session id", id));
    }
    let session_version = version
        .parse()
        .map_err(|_| invalid(n, "o= session version", version))?;
    if net != "IN" {
        return Err(invalid(n, "o= network type (expected IN)", net));
    }
    Ok(Origin {
        username: user.to_owned(),
        session_id: id.to_owned(),
        session_version,
        address_type: address_type(n, addr_type)?,
        address: addr.to_owned(),
    })
}

fn parse_connection(n: usize, value: &str) -> Result<Connection, SdpError> {
    let f: Vec<&str> = value.split(' ').collect();
    let [net, addr_type, addr] = f[..] else {
        return Err(invalid(n, "c= (expected `IN <IP4|IP6> <address>`)", value));
    };
    if net != "IN" {
        return Err(invalid(n, "c= network type (expected IN)", net));
    }
    if !token(addr) {
        return Err(invalid(n, "c= address", addr));
    }
    Ok(Connection {
        address_type: address_type(n, addr_type)?,
        address: addr.to_owned(),
    })
}

fn parse_bandwidth(n: usize, value: &str) -> Result<Bandwidth, SdpError> {
    let (kind, v) = value
        .split_once(':')
        .ok_or_else(|| invalid(n, "b=", value))?;
    if !token(kind) || kind.contains(':') {
        return Err(invalid(n, "b= type", kind));
    }
    let value = v.parse().map_err(|_| invalid(n, "b= value", v))?;
    Ok(Bandwidth {
        kind: kind.to_owned(),
        value,
    })
}

fn parse_timing(n: usize, value: &str) -> Result<Timing, SdpError> {
    let (a, b) = value
        .split_once(' ')
        .ok_or_else(|| invalid(n, "t=", value))?;
    let start = a.parse().map_err(|_| invalid(n, "t= start", a))?;
    let stop = b.parse().map_err(|_| invalid(n, "t= stop", b))?;
    Ok(Timing {
        start,
        stop,
        repeats: Vec::new(),
    })
}

fn parse_attribute(n: usize, value: &str) -> Result<Attribute, SdpError> {
    let (name, v) = match value.split_once(':') {
        Some((name, v)) => (name, Some(v.to_owned())),
        None => (value, None),
    };
    if !token(name) {
        return Err(invalid(n, "attribute name", name));
    }
    Ok(Attribute {
        name: name.to_owned(),
        value: v,
    })
}

fn parse_media_line(n: usize, value: &str) -> Result<MediaDescription, SdpError> {
    let mut f = value.split(' ');
    let media = f
        .next()
        .filter(|m| token(m))
        .ok_or_else(|| invalid(n, "m= media", value))?;
    let port_field = f
        .next()
        .ok_or_else(|| invalid(n, "m= (missing port)", value))?;
    let (port, count) = match port_field.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (port_field, None),
    };
    let port = port
        .parse()
        .map_err(|_| invalid(n, "m= port", port_field))?;
    let port_count = match count {
        Some(c) => Some(
            c.parse()
                .map_err(|_| invalid(n, "m= port count", port_field))?,
        ),
        None => None,
    };
    let protocol = f
        .next()
        .filter(|p| token(p))
        .ok_or_else(|| invalid(n, "m= protocol", value))?;
    let formats: Vec<String> = f.map(str::to_owned).collect();
    if formats.is_empty() || formats.iter().any(|f| !token(f)) {
        return Err(invalid(n, "m= format list", value));
    }
    // RTP profiles list payload type numbers (RFC 3551 §3): 0..=127.
    let is_rtp = protocol.split('/').any(|p| p == "RTP");
    let not_pt = |f: &&String| !f.parse::<u8>().is_ok_and(|pt| pt < 128);
    if let Some(bad) = formats.iter().find(not_pt).filter(|_| is_rtp) {
        return Err(invalid(n, "m= payload type", bad));
    }
    Ok(MediaDescription {
        media: media.to_owned(),
        port,
        port_count,
        protocol: protocol.to_owned(),
        formats,
        connection: None,
        bandwidths: Vec::new(),
        other: Vec::new(),
        attributes: Vec::new(),
    })
}
