//! Media anchoring: SDP passing between the legs is rewritten so that both
//! phones send RTP to the PBX's relay ports.
//!
//! The PBX does not terminate the offer/answer exchange; it rewrites each
//! SDP in flight (as rtpengine does for Kamailio): the caller's offer goes
//! to the callee with the PBX's address and the codecs the media engine
//! knows, and the callee's answer comes back the same way. When both legs
//! agree on one codec, the relay forwards packets without decoding them;
//! offers also list codecs the PBX can transcode to, for phones that share
//! none (see [`super::codecs`]).

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use sip::sdp::{Connection, Direction, MediaDescription, SessionDescription, static_payload};

/// Codecs offered across legs unless configured otherwise (the media
/// engine can decode all of them; G.729 is relayed only).
pub const DEFAULT_CODECS: &[&str] = &["PCMU", "PCMA", "G722", "opus", "G729", "telephone-event"];

/// Why an SDP body cannot be used, with the SIP status it earns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpProblem {
    /// Not parsable: 400.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No audio stream or no codec in common: 488.
    #[error("not acceptable: {0}")]
    NotAcceptable(&'static str),
}

impl SdpProblem {
    /// SIP status and reason phrase.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            SdpProblem::Malformed(_) => (400, "Bad Request"),
            SdpProblem::NotAcceptable(_) => (488, "Not Acceptable Here"),
        }
    }
}

/// What one side's SDP says about its audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Where the side wants RTP (None: on hold with 0.0.0.0, or port 0).
    pub remote: Option<SocketAddr>,
    /// Direction as written by that side.
    pub direction: Direction,
    /// First codec listed (the one in use after an answer).
    pub codec: Option<String>,
    /// Its RTP clock rate.
    pub clock_rate: u32,
}

/// The `o=` line state of what the PBX sends to one leg: the version must
/// grow whenever the content changes (RFC 3264 §8).
#[derive(Debug, Clone)]
pub struct Origin {
    session_id: u64,
    version: u64,
    last_sent: Option<Bytes>,
}

impl Origin {
    /// A fresh origin with this session id.
    pub fn new(session_id: u64) -> Self {
        Origin {
            session_id,
            version: 1,
            last_sent: None,
        }
    }
}

/// Attributes that describe the phone's own transport and make no sense
/// once the PBX relays (ICE, DTLS, SSRC signalling, explicit RTCP port).
const TRANSPORT_ATTRIBUTES: &[&str] = &[
    "rtcp",
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "candidate",
    "end-of-candidates",
    "remote-candidates",
    "fingerprint",
    "setup",
    "ssrc",
    "ssrc-group",
    "msid",
    "msid-semantic",
    "group",
];

pub(super) fn codec_of(m: &MediaDescription, pt: u8) -> Option<(String, u32)> {
    m.rtpmap(pt)
        .or_else(|| static_payload(pt))
        .map(|r| (r.encoding, r.clock_rate))
}

/// The audio stream of a description: the first `m=audio` with a port.
fn audio_index(sdp: &SessionDescription) -> Option<usize> {
    sdp.media
        .iter()
        .position(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)
}

/// Parses `body` and describes its audio stream.
pub fn inspect(body: &[u8]) -> Result<(SessionDescription, usize, StreamInfo), SdpProblem> {
    let sdp = SessionDescription::parse(body).map_err(|e| SdpProblem::Malformed(e.to_string()))?;
    let index = audio_index(&sdp).ok_or(SdpProblem::NotAcceptable("no audio stream"))?;
    let m = &sdp.media[index];
    if !m.protocol.eq_ignore_ascii_case("RTP/AVP") && !m.protocol.eq_ignore_ascii_case("RTP/AVPF") {
        return Err(SdpProblem::NotAcceptable("only RTP/AVP audio is relayed"));
    }
    let ip = sdp
        .connection_for(m)
        .and_then(Connection::ip)
        .ok_or_else(|| SdpProblem::Malformed("audio stream has no usable c= address".into()))?;
    let remote = (!ip.is_unspecified()).then(|| SocketAddr::new(ip, m.port));
    let first = m.payload_types().next().and_then(|pt| codec_of(m, pt));
    let info = StreamInfo {
        remote,
        direction: sdp.direction_for(m),
        clock_rate: first.as_ref().map_or(8000, |c| c.1),
        codec: first.map(|c| c.0),
    };
    Ok((sdp, index, info))
}

/// Rewrites an SDP received from one leg for sending to the other: the
/// audio stream points at `local` (the relay port facing the receiver),
/// other streams are disabled (port 0), transport attributes are removed
/// and, when `allowed` is given (offers), codecs outside it are dropped.
/// Returns the new body and what the sender's SDP said.
pub fn rewrite(
    body: &[u8],
    local: SocketAddr,
    origin: &mut Origin,
    allowed: Option<&[String]>,
) -> Result<(Bytes, StreamInfo), SdpProblem> {
    rewrite_with(body, local, origin, allowed, |_| ()).map(|(body, info, ())| (body, info))
}

/// Like [`rewrite`], with `edit` applied to the audio stream after codec
/// filtering (the codec negotiation across legs: offers extended with
/// transcodable codecs, answers narrowed to the offerer's codec).
pub(crate) fn rewrite_with<T>(
    body: &[u8],
    local: SocketAddr,
    origin: &mut Origin,
    allowed: Option<&[String]>,
    edit: impl FnOnce(&mut MediaDescription) -> T,
) -> Result<(Bytes, StreamInfo, T), SdpProblem> {
    let (mut sdp, index, info) = inspect(body)?;
    if let Some(allowed) = allowed {
        filter_codecs(&mut sdp.media[index], allowed)?;
    }
    let edited = edit(&mut sdp.media[index]);
    sdp.connection = Some(Connection::new(local.ip()));
    sdp.attributes
        .retain(|a| !TRANSPORT_ATTRIBUTES.contains(&a.name.as_str()));
    for (i, m) in sdp.media.iter_mut().enumerate() {
        m.connection = None;
        if i == index {
            m.port = local.port();
            m.port_count = None;
            m.attributes
                .retain(|a| !TRANSPORT_ATTRIBUTES.contains(&a.name.as_str()));
        } else {
            m.port = 0;
        }
    }
    Ok((stamp_origin(sdp, local.ip(), origin), info, edited))
}

/// Sets the PBX's `o=` line, bumping the version only when the content
/// changed since the last SDP sent on this leg.
fn stamp_origin(mut sdp: SessionDescription, ip: IpAddr, origin: &mut Origin) -> Bytes {
    sdp.origin.username = "pbx".into();
    sdp.origin.session_id = origin.session_id.to_string();
    sdp.origin.address_type = sip::sdp::AddressType::of(ip);
    sdp.origin.address = ip.to_string();
    sdp.origin.session_version = origin.version;
    let body = Bytes::from(sdp.to_bytes());
    match &origin.last_sent {
        Some(last) if *last == body => body,
        Some(_) => {
            origin.version += 1;
            sdp.origin.session_version = origin.version;
            let body = Bytes::from(sdp.to_bytes());
            origin.last_sent = Some(body.clone());
            body
        }
        None => {
            origin.last_sent = Some(body.clone());
            body
        }
    }
}

/// Keeps the payload types whose codec is in `allowed` (by name,
/// case-insensitive), with their rtpmap/fmtp lines.
fn filter_codecs(m: &mut MediaDescription, allowed: &[String]) -> Result<(), SdpProblem> {
    let keep: Vec<u8> = m
        .payload_types()
        .filter(|&pt| {
            codec_of(m, pt)
                .is_some_and(|(name, _)| allowed.iter().any(|a| a.eq_ignore_ascii_case(&name)))
        })
        .collect();
    let has_audio_codec = keep.iter().any(|&pt| {
        codec_of(m, pt).is_some_and(|(name, _)| !name.eq_ignore_ascii_case("telephone-event"))
    });
    if !has_audio_codec {
        return Err(SdpProblem::NotAcceptable("no supported codec offered"));
    }
    m.formats
        .retain(|f| f.parse::<u8>().is_ok_and(|pt| keep.contains(&pt)));
    m.attributes.retain(|a| {
        if a.name != "rtpmap" && a.name != "fmtp" {
            return true;
        }
        let pt = a
            .value
            .as_deref()
            .and_then(|v| v.split_ascii_whitespace().next())
            .and_then(|p| p.parse::<u8>().ok());
        pt.is_some_and(|pt| keep.contains(&pt))
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0 8 98 101\r\na=rtpmap:98 FOO/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\na=rtcp:4001\r\na=ptime:20\r\na=sendrecv\r\n\
        m=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";

    fn allowed() -> Vec<String> {
        DEFAULT_CODECS.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn offer_is_anchored_and_filtered() {
        let local: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let mut origin = Origin::new(77);
        let (body, info) = rewrite(OFFER.as_bytes(), local, &mut origin, Some(&allowed())).unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert_eq!(info.remote, Some("192.0.2.10:4000".parse().unwrap()));
        assert_eq!(info.codec.as_deref(), Some("PCMU"));
        assert!(text.contains("c=IN IP4 10.0.0.1\r\n"), "{text}");
        assert!(text.contains("m=audio 40000 RTP/AVP 0 8 101\r\n"), "{text}");
        assert!(!text.contains("FOO") && !text.contains("a=rtcp:"), "{text}");
        assert!(text.contains("m=video 0 "), "{text}");
        assert!(text.contains("o=pbx 77 1 IN IP4 10.0.0.1"), "{text}");
        // Same content again: same version; new content: version + 1.
        let (again, _) = rewrite(OFFER.as_bytes(), local, &mut origin, Some(&allowed())).unwrap();
        assert_eq!(again, body);
        let hold = OFFER.replace("a=sendrecv", "a=sendonly");
        let (held, info) = rewrite(hold.as_bytes(), local, &mut origin, Some(&allowed())).unwrap();
        assert_eq!(info.direction, Direction::SendOnly);
        assert!(std::str::from_utf8(&held).unwrap().contains("o=pbx 77 2 "));
    }

    #[test]
    fn unknown_codecs_only_is_488_and_garbage_is_400() {
        let local: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let only_foo = OFFER.replace("RTP/AVP 0 8 98 101", "RTP/AVP 98 101");
        let e = rewrite(
            only_foo.as_bytes(),
            local,
            &mut Origin::new(1),
            Some(&allowed()),
        );
        assert_eq!(e.unwrap_err().status().0, 488);
        let e = rewrite(b"v=0\r\nthis is not sdp", local, &mut Origin::new(1), None);
        assert_eq!(e.unwrap_err().status().0, 400);
        let srtp = OFFER.replace("m=audio 4000 RTP/AVP", "m=audio 4000 RTP/SAVP");
        let e = rewrite(srtp.as_bytes(), local, &mut Origin::new(1), None);
        assert_eq!(e.unwrap_err().status().0, 488);
    }

    #[test]
    fn hold_address_gives_no_remote() {
        let held = OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
        let (_, _, info) = inspect(held.as_bytes()).unwrap();
        assert_eq!(info.remote, None);
    }
}
