//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616,
//! RFC 8760): challenges, credential parsing, response computation,
//! stateless signed nonces with expiry (`stale=true`) and nonce-count replay
//! protection.
//!
//! Sans-IO: the caller passes the time and looks HA1 values up itself (the
//! server keeps them in memory), so a check costs two hash computations.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use aws_lc_rs::{digest, hmac, rand};
use md5::{Digest as _, Md5};

use crate::scan;

/// Digest algorithm (RFC 7616 §3.3; the `-sess` variants are not offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5, the RFC 2617 default every SIP phone supports.
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The token used in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Reads an `algorithm` token (`MD5`, `SHA-256`, any case).
    pub fn parse(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lower-case hex of the hash of `parts` joined by `:`.
    pub fn hex(self, parts: &[&[u8]]) -> String {
        match self {
            Algorithm::Md5 => {
                let mut h = Md5::new();
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        h.update(b":");
                    }
                    h.update(p);
                }
                to_hex(&h.finalize())
            }
            Algorithm::Sha256 => {
                let mut h = digest::Context::new(&digest::SHA256);
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        h.update(b":");
                    }
                    h.update(p);
                }
                to_hex(h.finish().as_ref())
            }
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// HA1 = H(username:realm:password) (RFC 7616 §3.4.2).
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hex(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// The request-digest for the given HA1 (RFC 7616 §3.4.1; without `qop`
/// the RFC 2069 form H(HA1:nonce:HA2)).
pub fn response(alg: Algorithm, ha1: &str, c: &Credentials, method: &str) -> String {
    let ha2 = alg.hex(&[method.as_bytes(), c.uri.as_bytes()]);
    match &c.qop {
        Some(qop) => alg.hex(&[
            ha1.as_bytes(),
            c.nonce.as_bytes(),
            c.nc.as_deref().unwrap_or("").as_bytes(),
            c.cnonce.as_deref().unwrap_or("").as_bytes(),
            qop.as_bytes(),
            ha2.as_bytes(),
        ]),
        None => alg.hex(&[ha1.as_bytes(), c.nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Parsed `Authorization` / `Proxy-Authorization` digest credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// `username`
    pub username: String,
    /// `realm`
    pub realm: String,
    /// `nonce`
    pub nonce: String,
    /// `uri` (digest-uri)
    pub uri: String,
    /// `response`
    pub response: String,
    /// `algorithm` (MD5 when absent)
    pub algorithm: Option<String>,
    /// `cnonce`
    pub cnonce: Option<String>,
    /// `nc` (8 hex digits)
    pub nc: Option<String>,
    /// `qop`
    pub qop: Option<String>,
    /// `opaque`
    pub opaque: Option<String>,
}

/// Why credentials could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// Not the Digest scheme.
    #[error("not a Digest credential")]
    NotDigest,
    /// A parameter list that does not follow the grammar.
    #[error("malformed Digest parameters")]
    Malformed,
    /// `username`, `realm`, `nonce`, `uri` or `response` missing.
    #[error("missing Digest parameter")]
    Missing,
}

/// Why a `Digest` parameter list could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestParamsError {
    /// Not the Digest scheme.
    NotDigest,
    /// The list does not follow the auth-param grammar.
    Malformed,
}

/// Reads `Digest k=v, k="v", ...` (credentials and challenges share the
/// grammar, RFC 7616 §3.3-3.4) into `(lower-case name, unquoted value)`
/// pairs, in order.
pub fn parse_digest_params(value: &[u8]) -> Result<Vec<(String, String)>, DigestParamsError> {
    let v = scan::trim(value);
    if v.len() < 7 || !v[..6].eq_ignore_ascii_case(b"Digest") || !scan::is_ws(v[6]) {
        return Err(DigestParamsError::NotDigest);
    }
    let mut params = Vec::new();
    let mut i = 7;
    loop {
        i = scan::skip_ws(v, i);
        if i >= v.len() {
            break;
        }
        let ns = i;
        while i < v.len() && scan::is_token_char(v[i]) {
            i += 1;
        }
        let name = &v[ns..i];
        i = scan::skip_ws(v, i);
        if name.is_empty() || v.get(i) != Some(&b'=') {
            return Err(DigestParamsError::Malformed);
        }
        i = scan::skip_ws(v, i + 1);
        let value = if v.get(i) == Some(&b'"') {
            let end = scan::quoted_end(v, i).ok_or(DigestParamsError::Malformed)?;
            let s = scan::unquote(&v[i..end]);
            i = end;
            s
        } else {
            let vs = i;
            while i < v.len() && v[i] != b',' && !scan::is_ws(v[i]) {
                i += 1;
            }
            v[vs..i].to_vec()
        };
        let value = String::from_utf8(value).map_err(|_| DigestParamsError::Malformed)?;
        params.push((String::from_utf8_lossy(name).to_ascii_lowercase(), value));
        i = scan::skip_ws(v, i);
        match v.get(i) {
            Some(b',') => i += 1,
            None => break,
            Some(_) => return Err(DigestParamsError::Malformed),
        }
    }
    Ok(params)
}

impl Credentials {
    /// Parses `Digest k=v, k="v", ...`.
    pub fn parse(value: &[u8]) -> Result<Credentials, CredentialsError> {
        let params = parse_digest_params(value).map_err(|e| match e {
            DigestParamsError::NotDigest => CredentialsError::NotDigest,
            DigestParamsError::Malformed => CredentialsError::Malformed,
        })?;
        let mut c = Credentials::default();
        for (name, value) in params {
            match name.as_str() {
                "username" => c.username = value,
                "realm" => c.realm = value,
                "nonce" => c.nonce = value,
                "uri" => c.uri = value,
                "response" => c.response = value,
                "algorithm" => c.algorithm = Some(value),
                "cnonce" => c.cnonce = Some(value),
                "nc" => c.nc = Some(value),
                "qop" => c.qop = Some(value),
                "opaque" => c.opaque = Some(value),
                _ => {}
            }
        }
        if c.username.is_empty() || c.nonce.is_empty() || c.uri.is_empty() || c.response.is_empty()
        {
            return Err(CredentialsError::Missing);
        }
        Ok(c)
    }

    /// The algorithm asked for (MD5 when absent); `None` if unsupported.
    pub fn algorithm(&self) -> Option<Algorithm> {
        match &self.algorithm {
            None => Some(Algorithm::Md5),
            Some(a) => Algorithm::parse(a),
        }
    }
}

/// State of a nonce presented by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    /// Issued by us and still fresh.
    Fresh,
    /// Issued by us but expired: challenge again with `stale=true`.
    Stale,
    /// Not ours (forged, from before a restart, or garbage).
    Invalid,
}

/// Issues nonces that carry their own issue time and an HMAC, so checking
/// one needs no table (nonce = hex(seconds, counter, tag)).
#[derive(Debug)]
pub struct NonceIssuer {
    key: hmac::Key,
    epoch: Instant,
    ttl: Duration,
    counter: u64,
}

impl NonceIssuer {
    /// A new issuer with a random key; nonces live `ttl`.
    pub fn new(epoch: Instant, ttl: Duration) -> NonceIssuer {
        let mut key = [0u8; 32];
        // The system RNG only fails on a broken host; fall back to the epoch
        // address so the server still runs (nonces stay unguessable enough
        // for replay protection but are logged as a warning by the caller).
        let _ = rand::fill(&mut key);
        let mut seed = [0u8; 8];
        let _ = rand::fill(&mut seed);
        NonceIssuer {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            epoch,
            ttl,
            counter: u64::from_le_bytes(seed),
        }
    }

    /// A fresh nonce.
    pub fn issue(&mut self, now: Instant) -> String {
        let secs = now.saturating_duration_since(self.epoch).as_secs() as u32;
        self.counter = self.counter.wrapping_add(1);
        let mut body = [0u8; 12];
        body[..4].copy_from_slice(&secs.to_be_bytes());
        body[4..].copy_from_slice(&self.counter.to_be_bytes());
        let tag = hmac::sign(&self.key, &body);
        let mut s = to_hex(&body);
        s.push_str(&to_hex(&tag.as_ref()[..12]));
        s
    }

    /// Checks a nonce's signature and age.
    pub fn check(&self, nonce: &str, now: Instant) -> NonceState {
        self.check_serial(nonce, now).0
    }

    /// Checks a nonce and returns its serial number (the issue counter,
    /// unique per nonce) along with its state.
    pub fn check_serial(&self, nonce: &str, now: Instant) -> (NonceState, u64) {
        let Some(raw) = from_hex(nonce) else {
            return (NonceState::Invalid, 0);
        };
        if raw.len() != 24 {
            return (NonceState::Invalid, 0);
        }
        let tag = hmac::sign(&self.key, &raw[..12]);
        if !constant_time_eq(&tag.as_ref()[..12], &raw[12..]) {
            return (NonceState::Invalid, 0);
        }
        let secs = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let mut serial = [0u8; 8];
        serial.copy_from_slice(&raw[4..12]);
        let serial = u64::from_be_bytes(serial);
        let issued = self.epoch + Duration::from_secs(u64::from(secs));
        if now.saturating_duration_since(issued) > self.ttl {
            (NonceState::Stale, serial)
        } else {
            (NonceState::Fresh, serial)
        }
    }

    /// How long nonces live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Compares without an early exit, so timing does not leak the position of
/// the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid credentials for this user.
    Authenticated {
        /// The authenticated username.
        username: String,
    },
    /// No usable credentials for our realm: send a challenge.
    Challenge,
    /// Right password but an expired nonce or a nonce count already used:
    /// challenge again with `stale=true` (RFC 7616 §3.3).
    Stale,
    /// Wrong password, unknown user or an unsupported algorithm. Counted as
    /// a failure; answered like [`Verdict::Challenge`] so
    /// an attacker cannot tell which it was.
    Failed {
        /// The username claimed.
        username: String,
        /// Why (for the audit log only).
        reason: &'static str,
    },
}

/// A digest authenticator for one realm: issues challenges and checks
/// credentials, tracking nonce counts for replay protection.
#[derive(Debug)]
pub struct DigestAuth {
    realm: String,
    issuer: NonceIssuer,
    /// Highest nonce-count seen per nonce (qop=auth): slot `serial %
    /// NONCE_SLOTS` holds `(serial, nc)`. A fixed table (Kamailio's
    /// approach) keeps memory bounded at any registration rate; a nonce
    /// whose slot a newer nonce took is answered as stale.
    counts: Vec<(u64, u32)>,
    algorithms: Vec<Algorithm>,
}

/// Nonces whose counts are remembered at once (4 MiB of slots).
const NONCE_SLOTS: usize = 1 << 18;

impl DigestAuth {
    /// An authenticator for `realm` offering `algorithms` (in preference
    /// order; each becomes one challenge header, RFC 8760 §2.4).
    pub fn new(realm: &str, algorithms: Vec<Algorithm>, now: Instant, nonce_ttl: Duration) -> Self {
        DigestAuth {
            realm: realm.to_string(),
            issuer: NonceIssuer::new(now, nonce_ttl),
            counts: vec![(0, 0); NONCE_SLOTS],
            algorithms,
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Challenge header values (`WWW-Authenticate` / `Proxy-Authenticate`),
    /// one per offered algorithm, all with the same fresh nonce.
    pub fn challenges(&mut self, now: Instant, stale: bool) -> Vec<String> {
        let nonce = self.issuer.issue(now);
        self.algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
                    self.realm,
                    a.as_str(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// Checks every credentials header value for our realm. `ha1_of`
    /// returns the stored HA1 for a username and algorithm (None = unknown
    /// user, which is handled exactly like a wrong password).
    pub fn verify<'a>(
        &mut self,
        credentials: impl IntoIterator<Item = &'a [u8]>,
        method: &str,
        now: Instant,
        ha1_of: impl Fn(&str, Algorithm) -> Option<String>,
    ) -> Verdict {
        let mut ours = None;
        for value in credentials {
            if let Ok(c) = Credentials::parse(value)
                && c.realm == self.realm
            {
                ours = Some(c);
                break;
            }
        }
        let Some(c) = ours else {
            return Verdict::Challenge;
        };
        let fail = |reason| Verdict::Failed {
            username: c.username.clone(),
            reason,
        };
        let Some(alg) = c.algorithm().filter(|a| self.algorithms.contains(a)) else {
            return fail("unsupported algorithm");
        };
        let (nonce_state, serial) = self.issuer.check_serial(&c.nonce, now);
        if nonce_state == NonceState::Invalid {
            // Old nonces (e.g. from before a restart) are common and
            // harmless: challenge again without counting a failure.
            return Verdict::Challenge;
        }
        if let Some(qop) = &c.qop
            && !qop.eq_ignore_ascii_case("auth")
        {
            return fail("unsupported qop");
        }
        // The user's real HA1, or a dummy that is computed the same way so an
        // unknown user takes as long as a known one with a wrong password.
        let known = ha1_of(&c.username, alg);
        let ha1 = known
            .clone()
            .unwrap_or_else(|| ha1(alg, &c.username, &self.realm, "\u{0}no-such-user"));
        let expected = response(alg, &ha1, &c, method);
        let matches = constant_time_eq(
            expected.as_bytes(),
            c.response.to_ascii_lowercase().as_bytes(),
        );
        if known.is_none() {
            return fail("unknown user");
        }
        if !matches {
            return fail("wrong password");
        }
        if nonce_state == NonceState::Stale {
            return Verdict::Stale;
        }
        if c.qop.is_some() {
            let Some(nc) =
                c.nc.as_deref()
                    .and_then(|n| u32::from_str_radix(n, 16).ok())
            else {
                return fail("bad nonce count");
            };
            let slot = &mut self.counts[(serial as usize) & (NONCE_SLOTS - 1)];
            if slot.0 != serial {
                // Serials grow by one per nonce: a slot holding a later
                // serial means this nonce's count was forgotten.
                if slot.0 != 0 && (slot.0.wrapping_sub(serial) as i64) > 0 {
                    return Verdict::Stale;
                }
                *slot = (serial, 0);
            }
            if nc <= slot.1 {
                // The password was right, so this is a replay or a client
                // reusing a nonce: demand a fresh nonce, count no failure.
                return Verdict::Stale;
            }
            slot.1 = nc;
        }
        Verdict::Authenticated {
            username: c.username.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5 example, computed by the MD5 path.
    #[test]
    fn rfc2617_example() {
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let c = Credentials {
            username: "Mufasa".into(),
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("0a4f113b".into()),
            ..Default::default()
        };
        assert_eq!(
            response(Algorithm::Md5, &ha1, &c, "GET"),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    /// RFC 7616 §3.9.1 example (SHA-256).
    #[test]
    fn rfc7616_sha256_example() {
        let ha1 = ha1(
            Algorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let c = Credentials {
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
            uri: "/dir/index.html".into(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into()),
            ..Default::default()
        };
        assert_eq!(
            response(Algorithm::Sha256, &ha1, &c, "GET"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn parses_credentials() {
        let c = Credentials::parse(
            br#"Digest username="100", realm="pbx", nonce="abc", uri="sip:pbx", response="0123", algorithm=MD5, cnonce="x y", qop=auth, nc=00000001"#,
        )
        .unwrap();
        assert_eq!(c.username, "100");
        assert_eq!(c.cnonce.as_deref(), Some("x y"));
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert_eq!(
            Credentials::parse(b"Basic abc"),
            Err(CredentialsError::NotDigest)
        );
        assert_eq!(
            Credentials::parse(br#"Digest username="a""#),
            Err(CredentialsError::Missing)
        );
        assert_eq!(
            Credentials::parse(br#"Digest username="a"#),
            Err(CredentialsError::Malformed)
        );
    }

    fn answer(auth: &mut DigestAuth, user: &str, pw: &str, nc: u32, now: Instant) -> String {
        let ch = auth.challenges(now, false).remove(0);
        let nonce = ch
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        answer_nonce(user, pw, &nonce, nc)
    }

    fn answer_nonce(user: &str, pw: &str, nonce: &str, nc: u32) -> String {
        let c = Credentials {
            username: user.into(),
            realm: "pbx".into(),
            nonce: nonce.into(),
            uri: "sip:pbx".into(),
            qop: Some("auth".into()),
            nc: Some(format!("{nc:08x}")),
            cnonce: Some("c".into()),
            ..Default::default()
        };
        let r = response(
            Algorithm::Md5,
            &ha1(Algorithm::Md5, user, "pbx", pw),
            &c,
            "REGISTER",
        );
        format!(
            "Digest username=\"{user}\", realm=\"pbx\", nonce=\"{nonce}\", uri=\"sip:pbx\", response=\"{r}\", algorithm=MD5, qop=auth, nc={nc:08x}, cnonce=\"c\""
        )
    }

    #[test]
    fn verify_outcomes() {
        let t0 = Instant::now();
        let mut auth = DigestAuth::new("pbx", vec![Algorithm::Md5], t0, Duration::from_secs(30));
        let lookup = |u: &str, a| (u == "100").then(|| ha1(a, "100", "pbx", "secret"));
        let good = answer(&mut auth, "100", "secret", 1, t0);
        let v = auth.verify([good.as_bytes()], "REGISTER", t0, lookup);
        assert_eq!(
            v,
            Verdict::Authenticated {
                username: "100".into()
            }
        );
        // Same nc again: a replay gets a fresh (stale) challenge.
        let v = auth.verify([good.as_bytes()], "REGISTER", t0, lookup);
        assert_eq!(v, Verdict::Stale);
        let bad = answer(&mut auth, "100", "wrong", 1, t0);
        assert!(matches!(
            auth.verify([bad.as_bytes()], "REGISTER", t0, lookup),
            Verdict::Failed {
                reason: "wrong password",
                ..
            }
        ));
        let unknown = answer(&mut auth, "999", "x", 1, t0);
        assert!(matches!(
            auth.verify([unknown.as_bytes()], "REGISTER", t0, lookup),
            Verdict::Failed {
                reason: "unknown user",
                ..
            }
        ));
        // Expired nonce with the right password: stale.
        let late = answer(&mut auth, "100", "secret", 1, t0);
        let v = auth.verify(
            [late.as_bytes()],
            "REGISTER",
            t0 + Duration::from_secs(31),
            lookup,
        );
        assert_eq!(v, Verdict::Stale);
        // Forged nonce: plain challenge.
        let forged = answer_nonce(
            "100",
            "secret",
            "00112233445566778899aabbccddeeff0011223344556677",
            1,
        );
        assert_eq!(
            auth.verify([forged.as_bytes()], "REGISTER", t0, lookup),
            Verdict::Challenge
        );
        assert_eq!(auth.verify([], "REGISTER", t0, lookup), Verdict::Challenge);
    }

    #[test]
    fn forgotten_nonce_counts_are_stale_not_replayable() {
        let t0 = Instant::now();
        let mut auth = DigestAuth::new("pbx", vec![Algorithm::Md5], t0, Duration::from_secs(30));
        let lookup = |u: &str, a| (u == "100").then(|| ha1(a, "100", "pbx", "secret"));
        let nonce_of = |ch: String| {
            ch.split("nonce=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_string()
        };
        let first = nonce_of(auth.challenges(t0, false).remove(0));
        let a1 = answer_nonce("100", "secret", &first, 1);
        assert!(matches!(
            auth.verify([a1.as_bytes()], "REGISTER", t0, lookup),
            Verdict::Authenticated { .. }
        ));
        // NONCE_SLOTS later nonces: the last one lands in the first's slot.
        let mut last = String::new();
        for _ in 0..NONCE_SLOTS {
            last = nonce_of(auth.challenges(t0, false).remove(0));
        }
        let b1 = answer_nonce("100", "secret", &last, 1);
        assert!(matches!(
            auth.verify([b1.as_bytes()], "REGISTER", t0, lookup),
            Verdict::Authenticated { .. }
        ));
        // The first nonce's count is gone: even a higher nc gets a fresh
        // challenge rather than being accepted unchecked.
        let a2 = answer_nonce("100", "secret", &first, 2);
        assert_eq!(
            auth.verify([a2.as_bytes()], "REGISTER", t0, lookup),
            Verdict::Stale
        );
    }
}
