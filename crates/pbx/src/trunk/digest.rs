//! The client side of HTTP Digest for SIP (RFC 3261 §22.2, RFC 2617,
//! RFC 7616): reading a `WWW-Authenticate` / `Proxy-Authenticate`
//! challenge and answering it with `qop=auth`, a client nonce and an
//! incrementing nonce count.

use sip::auth::{self, Algorithm, Credentials};

/// One parsed `Digest` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`
    pub realm: String,
    /// `nonce`
    pub nonce: String,
    /// `opaque`, echoed back unchanged.
    pub opaque: Option<String>,
    /// The algorithm (MD5 when absent).
    pub algorithm: Algorithm,
    /// Whether the server offers `qop=auth` (otherwise the RFC 2069 form).
    pub qop_auth: bool,
    /// `stale=true`: the password was right, only the nonce expired.
    pub stale: bool,
}

impl Challenge {
    /// Parses `Digest k=v, k="v", ...`. `None` for other schemes, an
    /// unsupported algorithm, a `qop` without `auth`, or bad syntax.
    pub fn parse(value: &[u8]) -> Option<Challenge> {
        let params = auth::parse_digest_params(value).ok()?;
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = Algorithm::Md5;
        let mut qop = None;
        let mut stale = false;
        for (name, value) in params {
            match name.as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => opaque = Some(value),
                "algorithm" => algorithm = Algorithm::parse(&value)?,
                "qop" => qop = Some(value),
                "stale" => stale = value.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        let qop_auth = match &qop {
            None => false,
            Some(q) => q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")),
        };
        if qop.is_some() && !qop_auth {
            return None;
        }
        Some(Challenge {
            realm: realm?,
            nonce: nonce.filter(|n| !n.is_empty())?,
            opaque,
            algorithm,
            qop_auth,
            stale,
        })
    }

    /// The header value answering this challenge for `method` to `uri`,
    /// with nonce count `nc` (ignored without qop) and client nonce `cnonce`.
    pub fn answer(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let alg = self.algorithm;
        let c = Credentials {
            username: username.to_string(),
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            uri: uri.to_string(),
            qop: self.qop_auth.then(|| "auth".to_string()),
            nc: self.qop_auth.then(|| format!("{nc:08x}")),
            cnonce: self.qop_auth.then(|| cnonce.to_string()),
            ..Default::default()
        };
        let ha1 = auth::ha1(alg, username, &self.realm, password);
        let resp = auth::response(alg, &ha1, &c, method);
        let mut out = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{resp}\", algorithm={}",
            quote(username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(uri),
            alg.as_str()
        );
        if self.qop_auth {
            out.push_str(&format!(", qop=auth, nc={nc:08x}, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{}\"", quote(o)));
        }
        out
    }
}

/// Escapes `"` and `\` for a quoted-string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = Challenge::parse(
            br#"Digest realm="sip.example", nonce="abc", algorithm=SHA-256, qop="auth,auth-int", opaque="o", stale=TRUE"#,
        )
        .unwrap();
        assert_eq!(c.realm, "sip.example");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert!(c.qop_auth && c.stale);
        assert_eq!(c.opaque.as_deref(), Some("o"));
        assert!(Challenge::parse(br#"Digest realm="r", nonce="n", algorithm=MD5-sess"#).is_none());
        assert!(Challenge::parse(br#"Digest realm="r", nonce="n", qop="auth-int""#).is_none());
        assert!(Challenge::parse(br#"Basic realm="r""#).is_none());
        assert!(Challenge::parse(br#"Digest realm="r"#).is_none());
    }

    /// RFC 2617 §3.5 values, through the answer path.
    #[test]
    fn answer_matches_rfc2617() {
        let c = Challenge {
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".into()),
            algorithm: Algorithm::Md5,
            qop_auth: true,
            stale: false,
        };
        let a = c.answer(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert!(
            a.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{a}"
        );
        assert!(a.contains("nc=00000001"));
        let parsed = Credentials::parse(a.as_bytes()).unwrap();
        assert_eq!(
            parsed.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
    }
}
