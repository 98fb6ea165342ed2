//! name-addr / addr-spec headers: From, To, Contact, Route, Record-Route,
//! Refer-To (RFC 3261 §20.10, §20.20, §20.39, §25.1).

use bytes::Bytes;

use crate::scan::{self, Param};
use crate::uri::{Uri, UriError};

/// Why a name-addr value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameAddrError {
    /// A quoted display name is not closed (RFC 4475 quotbal).
    #[error("unterminated quoted string")]
    Unterminated,
    /// The display name holds characters that are not tokens (baddn).
    #[error("display name must be quoted")]
    BadDisplayName,
    /// `<` without `>`.
    #[error("missing '>'")]
    MissingBracket,
    /// The URI itself is malformed (includes spaces inside `<>`, badaspec).
    #[error("bad URI: {0}")]
    Uri(#[from] UriError),
    /// A URI with `?` or `,` that is not in `<>` (regbadct).
    #[error("URI with headers must be enclosed in <>")]
    Unenclosed,
    /// Text after the URI that is not `;param` (badinv01).
    #[error("bad header parameter")]
    BadParam,
}

/// A parsed name-addr or addr-spec with its header parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    value: Bytes,
    display: Option<(usize, usize)>,
    /// The URI.
    pub uri: Uri,
    params_at: usize,
    bracketed: bool,
}

impl NameAddr {
    /// Parses one value (not a comma-separated list: split it first).
    pub fn parse(value: Bytes) -> Result<NameAddr, NameAddrError> {
        let v = &value[..];
        let mut i = scan::skip_ws(v, 0);
        let mut display = None;
        let lt = if v.get(i) == Some(&b'"') {
            let end = scan::quoted_end(v, i).ok_or(NameAddrError::Unterminated)?;
            display = Some((i, end));
            let j = scan::skip_ws(v, end);
            if v.get(j) != Some(&b'<') {
                return Err(NameAddrError::MissingBracket);
            }
            Some(j)
        } else {
            // An unquoted display name is `*(token LWS)`; find the `<`.
            match memchr::memchr(b'<', v) {
                Some(lt) => {
                    let name = scan::trim(&v[i..lt]);
                    if !name
                        .iter()
                        .all(|&b| scan::is_token_char(b) || scan::is_ws(b))
                    {
                        return Err(NameAddrError::BadDisplayName);
                    }
                    if !name.is_empty() {
                        display = Some((i, i + name.len()));
                    }
                    Some(lt)
                }
                None => None,
            }
        };
        let (uri, params_at, bracketed) = match lt {
            Some(lt) => {
                let gt = memchr::memchr(b'>', &v[lt..]).ok_or(NameAddrError::MissingBracket)? + lt;
                let uri = Uri::parse(value.slice(lt + 1..gt))?;
                (uri, gt + 1, true)
            }
            None => {
                let s = i;
                while i < v.len() && !scan::is_ws(v[i]) && v[i] != b';' {
                    if matches!(v[i], b'?' | b',') {
                        return Err(NameAddrError::Unenclosed);
                    }
                    i += 1;
                }
                (Uri::parse(value.slice(s..i))?, i, false)
            }
        };
        scan::parse_params(&v[params_at..]).map_err(|_| NameAddrError::BadParam)?;
        Ok(NameAddr {
            display,
            uri,
            params_at,
            bracketed,
            value,
        })
    }

    /// Parses from a string (copies it).
    pub fn parse_str(s: &str) -> Result<NameAddr, NameAddrError> {
        NameAddr::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// The display name as written (quotes included), if any.
    pub fn display_raw(&self) -> Option<&[u8]> {
        self.display.map(|(s, e)| &self.value[s..e])
    }

    /// The display name without quotes and escapes.
    pub fn display_name(&self) -> Option<String> {
        self.display_raw()
            .map(|d| String::from_utf8_lossy(&scan::unquote(d)).into_owned())
    }

    /// Header parameters (after the URI), e.g. `tag`, `expires`, `q`.
    pub fn params(&self) -> Vec<Param<'_>> {
        scan::parse_params(&self.value[self.params_at..]).unwrap_or_default()
    }

    /// A header parameter by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params()
            .into_iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|p| p.value.map(|v| std::str::from_utf8(v).unwrap_or_default()))
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    /// Whether the URI was written inside `<>`.
    pub fn is_bracketed(&self) -> bool {
        self.bracketed
    }

    /// The whole value as received.
    pub fn raw(&self) -> &Bytes {
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let n = NameAddr::parse_str(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display_name().as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse_str("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name().as_deref(), Some("caller"));
        let n = NameAddr::parse_str(" sip:vivekg@example.com ;   tag    = 1918").unwrap();
        assert_eq!(n.uri.as_str(), "sip:vivekg@example.com");
        assert_eq!(n.tag(), Some("1918"));
        assert!(!n.is_bracketed());
    }

    #[test]
    fn rejections() {
        use NameAddrError::*;
        let e = |s| NameAddr::parse_str(s).unwrap_err();
        assert_eq!(e(r#""Mr. J. User <sip:j.user@example.com>"#), Unterminated);
        assert_eq!(e("Bell, Alexander <sip:a@b>"), BadDisplayName);
        assert!(matches!(e("< sip:t.watson@example.org >"), Uri(_)));
        assert_eq!(e("sip:user@example.com?Route=%3Csip:x%3E"), Unenclosed);
        assert_eq!(e(r#""Joe" <sip:joe@example.org>;;;;"#), BadParam);
    }
}
