//! Building the few SIP messages a load generator sends, client-side digest
//! credentials (through `sip::auth`) and a minimal SDP reader.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use sip::auth;
use sip::{HeaderName, Request};

/// The RFC 3261 branch magic cookie plus a unique suffix.
pub fn branch(rng: &mut Rng) -> String {
    format!("z9hG4bK-lg{:016x}", rng.next_u64())
}

/// A tag or cnonce.
pub fn token(rng: &mut Rng) -> String {
    format!("{:012x}", rng.next_u64() & 0xffff_ffff_ffff)
}

/// xorshift64*: good enough for tags, SSRCs and branches.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and the process id.
    pub fn from_entropy() -> Rng {
        let t = crate::net::realtime_ns();
        Rng::new(t ^ (std::process::id() as u64) << 32 ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// From a seed (never zero internally).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `host` or `[v6]` for URIs and Via.
pub fn host_str(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// `host:port` for URIs and Via.
pub fn hostport(a: SocketAddr) -> String {
    format!("{}:{}", host_str(a.ip()), a.port())
}

/// The fields of an outgoing request.
pub struct RequestSpec<'a> {
    /// Method token.
    pub method: &'a str,
    /// Request-URI.
    pub ruri: &'a str,
    /// Our address for Via sent-by.
    pub via: SocketAddr,
    /// Via branch.
    pub branch: &'a str,
    /// Full From value (with tag).
    pub from: &'a str,
    /// Full To value.
    pub to: &'a str,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq number.
    pub cseq: u32,
    /// Contact value (without `Contact:`), if any.
    pub contact: Option<&'a str>,
    /// Route header values, in order.
    pub routes: &'a [String],
    /// Further `Name: value` lines (without CRLF).
    pub extra: &'a [String],
    /// SDP body, if any.
    pub sdp: Option<&'a str>,
}

/// Serialises a request.
pub fn request(s: &RequestSpec<'_>) -> Vec<u8> {
    let mut m = String::with_capacity(640 + s.sdp.map_or(0, str::len));
    let _ = write!(
        m,
        "{} {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={};rport\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
        s.method,
        s.ruri,
        hostport(s.via),
        s.branch,
        s.from,
        s.to,
        s.call_id,
        s.cseq,
        s.method
    );
    for r in s.routes {
        let _ = write!(m, "Route: {r}\r\n");
    }
    if let Some(c) = s.contact {
        let _ = write!(m, "Contact: {c}\r\n");
    }
    finish(m, s.extra, "User-Agent: pbx-loadgen", s.sdp)
}

/// Ends a message: the `extra` header lines, `agent` (User-Agent or
/// Server line), then Content-Type/Content-Length and the optional SDP body.
fn finish(mut m: String, extra: &[String], agent: &str, sdp: Option<&str>) -> Vec<u8> {
    for e in extra {
        m.push_str(e);
        m.push_str("\r\n");
    }
    m.push_str(agent);
    m.push_str("\r\n");
    match sdp {
        Some(b) => {
            let _ = write!(
                m,
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            );
        }
        None => m.push_str("Content-Length: 0\r\n\r\n"),
    }
    m.into_bytes()
}

/// A response to `req`: its Via lines, From, To (with `to_tag` added when it
/// has none), Call-ID and CSeq, then `extra` lines and an optional SDP body.
pub fn response(
    req: &Request,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[String],
    sdp: Option<&str>,
) -> Vec<u8> {
    let h = &req.headers;
    let mut m = String::with_capacity(512 + sdp.map_or(0, str::len));
    let _ = write!(m, "SIP/2.0 {code} {reason}\r\n");
    for v in h.get_all(&HeaderName::Via) {
        let _ = write!(m, "Via: {}\r\n", String::from_utf8_lossy(v));
    }
    if let Some(v) = h.get(&HeaderName::From) {
        let _ = write!(m, "From: {}\r\n", String::from_utf8_lossy(v));
    }
    if let Some(v) = h.get(&HeaderName::To) {
        let to = String::from_utf8_lossy(v);
        let has_tag = h.to().and_then(|t| t.tag().map(|_| ())).is_some();
        match to_tag {
            Some(t) if !has_tag => {
                let _ = write!(m, "To: {to};tag={t}\r\n");
            }
            _ => {
                let _ = write!(m, "To: {to}\r\n");
            }
        }
    }
    if let Some(v) = h.get(&HeaderName::CallId) {
        let _ = write!(m, "Call-ID: {}\r\n", String::from_utf8_lossy(v));
    }
    if let Some(v) = h.get(&HeaderName::CSeq) {
        let _ = write!(m, "CSeq: {}\r\n", String::from_utf8_lossy(v));
    }
    finish(m, extra, "Server: pbx-loadgen", sdp)
}

/// A PCMU-only audio offer/answer for `addr`.
pub fn sdp(addr: SocketAddr, session_id: u64) -> String {
    let (ipv, ip) = match addr.ip() {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    format!(
        "v=0\r\no=- {session_id} 1 IN {ipv} {ip}\r\ns=pbx-loadgen\r\nc=IN {ipv} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n",
        addr.port()
    )
}

/// The RTP address of the first audio stream of an SDP body (media-level
/// `c=` before session-level). `None` if absent, port 0 or unparsable.
pub fn sdp_audio_addr(body: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(body).ok()?;
    let mut session_c: Option<IpAddr> = None;
    let mut media_c: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            if seen_audio && port.is_some() {
                break; // only the first audio stream counts
            }
            let mut it = m.split_ascii_whitespace();
            if it.next() == Some("audio") {
                port = it.next().and_then(|p| p.split('/').next()?.parse().ok());
                in_audio = true;
                seen_audio = true;
            } else {
                in_audio = false;
            }
        } else if let Some(c) = line.strip_prefix("c=") {
            let ip = c
                .split_ascii_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next()?.parse().ok());
            if in_audio {
                media_c = ip;
            } else if !seen_audio {
                session_c = ip;
            }
        }
    }
    let port = port.filter(|&p| p != 0)?;
    Some(SocketAddr::new(media_c.or(session_c)?, port))
}

/// A credentials header value answering one of the `challenges`
/// (`WWW-Authenticate` / `Proxy-Authenticate` values): MD5 preferred, then
/// SHA-256; `qop=auth` when offered (nc 1 with a fresh cnonce).
pub fn authorization<'a>(
    challenges: impl IntoIterator<Item = &'a [u8]>,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> Option<String> {
    let mut best: Option<(auth::Algorithm, Vec<(String, String)>)> = None;
    for c in challenges {
        let Ok(params) = auth::parse_digest_params(c) else {
            continue;
        };
        let alg = match params.iter().find(|(k, _)| k == "algorithm") {
            None => auth::Algorithm::Md5,
            Some((_, v)) => match auth::Algorithm::parse(v) {
                Some(a) => a,
                None => continue,
            },
        };
        let better = match &best {
            None => true,
            Some((a, _)) => *a != auth::Algorithm::Md5 && alg == auth::Algorithm::Md5,
        };
        if better {
            best = Some((alg, params));
        }
    }
    let (alg, params) = best?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let realm = get("realm").unwrap_or_default();
    let nonce = get("nonce")?;
    let opaque = get("opaque");
    let qop = get("qop").and_then(|q| {
        q.split(',')
            .map(str::trim)
            .find(|t| t.eq_ignore_ascii_case("auth"))
            .map(|_| "auth".to_string())
    });
    let creds = auth::Credentials {
        username: username.to_string(),
        realm: realm.clone(),
        nonce: nonce.clone(),
        uri: uri.to_string(),
        response: String::new(),
        algorithm: Some(alg.as_str().to_string()),
        cnonce: qop.as_ref().map(|_| cnonce.to_string()),
        nc: qop.as_ref().map(|_| "00000001".to_string()),
        qop: qop.clone(),
        opaque: opaque.clone(),
    };
    let ha1 = auth::ha1(alg, username, &realm, password);
    let resp = auth::response(alg, &ha1, &creds, method);
    let mut v = format!(
        "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm={}",
        alg.as_str()
    );
    if qop.is_some() {
        let _ = write!(v, ", qop=auth, nc=00000001, cnonce=\"{cnonce}\"");
    }
    if let Some(o) = opaque {
        let _ = write!(v, ", opaque=\"{o}\"");
    }
    Some(v)
}

/// The leading decimal number of a Call-ID after a one-letter prefix
/// (`c123.…`): how the load generator finds its own calls and registrations.
pub fn call_index(call_id: &str, prefix: u8) -> Option<usize> {
    let b = call_id.as_bytes();
    if b.first() != Some(&prefix) {
        return None;
    }
    let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || b.get(1 + digits) != Some(&b'.') {
        return None;
    }
    call_id[1..1 + digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn digest_answer_verifies_against_the_server_side() {
        let now = Instant::now();
        let mut server = sip::auth::DigestAuth::new(
            "pbx",
            vec![auth::Algorithm::Md5, auth::Algorithm::Sha256],
            now,
            Duration::from_secs(60),
        );
        let ch = server.challenges(now, false);
        let v = authorization(
            ch.iter().map(|c| c.as_bytes()),
            "7000",
            "secret-pw",
            "INVITE",
            "sip:8000@127.0.0.1",
            "abc123",
        )
        .unwrap();
        assert!(v.contains("algorithm=MD5"), "{v}");
        let verdict = server.verify([v.as_bytes()], "INVITE", now, |u, a| {
            (u == "7000").then(|| auth::ha1(a, "7000", "pbx", "secret-pw"))
        });
        assert_eq!(
            verdict,
            sip::auth::Verdict::Authenticated {
                username: "7000".into()
            }
        );
        // Wrong password fails.
        let ch = server.challenges(now, false);
        let v = authorization(
            ch.iter().map(|c| c.as_bytes()),
            "7000",
            "nope",
            "INVITE",
            "sip:x",
            "c",
        )
        .unwrap();
        let verdict = server.verify([v.as_bytes()], "INVITE", now, |u, a| {
            (u == "7000").then(|| auth::ha1(a, "7000", "pbx", "secret-pw"))
        });
        assert!(matches!(verdict, sip::auth::Verdict::Failed { .. }));
    }

    #[test]
    fn digest_rfc2617_vector() {
        // RFC 2617 §3.5 example (qop=auth, nc=00000001, cnonce 0a4f113b).
        let v = authorization(
            [&b"Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""[..]],
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
        )
        .unwrap();
        assert!(
            v.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{v}"
        );
        assert!(v.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
        assert!(v.contains("qop=auth, nc=00000001, cnonce=\"0a4f113b\""));
    }

    #[test]
    fn sdp_round_trip() {
        let a: SocketAddr = "127.0.0.1:30000".parse().unwrap();
        assert_eq!(sdp_audio_addr(sdp(a, 1).as_bytes()), Some(a));
        let body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\nc=IN IP4 10.0.0.9\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\n";
        assert_eq!(sdp_audio_addr(body), Some("10.0.0.2:4000".parse().unwrap()));
        let body = b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n";
        assert_eq!(sdp_audio_addr(body), None);
    }

    #[test]
    fn call_ids() {
        assert_eq!(call_index("c42.abc@x", b'c'), Some(42));
        assert_eq!(call_index("r42.abc@x", b'c'), None);
        assert_eq!(call_index("c.abc", b'c'), None);
        assert_eq!(call_index("c12", b'c'), None);
    }
}
