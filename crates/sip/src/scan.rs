//! Lexical building blocks of the SIP grammar (RFC 3261 §25.1).
//!
//! Everything here works on byte slices and never panics: out-of-range
//! positions simply end a scan.

/// `token` characters: alphanum and `-.!%*_+`'~`.
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        c += 1;
    }
    t
};

/// Whether `b` is a `token` character.
#[inline]
pub fn is_token_char(b: u8) -> bool {
    TOKEN[b as usize]
}

/// Whether the whole slice is a non-empty `token`.
#[inline]
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token_char(b))
}

/// Whether `b` is linear white space inside an (unfolded) header value.
#[inline]
pub fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Strips leading and trailing white space.
#[inline]
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_ws(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_ws(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Index of the first byte at or after `i` that is not white space.
#[inline]
pub fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_ws(s[i]) {
        i += 1;
    }
    i
}

/// Given `s[i] == b'"'`, returns the index just past the closing quote,
/// honouring `\` escapes (quoted-pair), or `None` if unterminated.
pub fn quoted_end(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// Removes the quotes and quoted-pair escapes of a quoted string.
pub fn unquote(s: &[u8]) -> Vec<u8> {
    let inner = if s.len() >= 2 && s[0] == b'"' && s[s.len() - 1] == b'"' {
        &s[1..s.len() - 1]
    } else {
        s
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'\\' && i + 1 < inner.len() {
            out.push(inner[i + 1]);
            i += 2;
        } else {
            out.push(inner[i]);
            i += 1;
        }
    }
    out
}

/// Error of [`split_list`]: a quote or angle bracket was left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unbalanced;

/// Splits a header value at top-level commas (outside quotes and `<...>`),
/// trimming each element and skipping empty ones, as §7.3.1 allows for
/// headers whose grammar is a comma-separated list.
pub fn split_list(s: &[u8]) -> Result<Vec<&[u8]>, Unbalanced> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut in_angle = false;
    while i < s.len() {
        match s[i] {
            b'"' => {
                i = quoted_end(s, i).ok_or(Unbalanced)?;
                continue;
            }
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            b',' if !in_angle => {
                let part = trim(&s[start..i]);
                if !part.is_empty() {
                    out.push(part);
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if in_angle {
        return Err(Unbalanced);
    }
    let part = trim(&s[start..]);
    if !part.is_empty() {
        out.push(part);
    }
    Ok(out)
}

/// Case-insensitive ASCII equality.
#[inline]
pub fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Parses a non-negative decimal that must fit in `u32` (RFC 3261 limits
/// CSeq, Expires and Content-Length to 2^32-1). Leading zeros are fine.
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
        if v > u64::from(u32::MAX) {
            return None;
        }
    }
    Some(v as u32)
}

/// Decodes `%HH` escapes; other bytes pass through. Malformed escapes are
/// kept literally (RFC 4475 esc02 shows `%` that is not an escape).
pub fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && i + 2 < s.len()
            && let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One `;name[=value]` parameter as found in Via, name-addr headers and
/// URIs. Names and values are raw (still escaped / quoted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// Parameter name as written.
    pub name: &'a [u8],
    /// Value as written, if there was an `=`.
    pub value: Option<&'a [u8]>,
}

/// Error of [`parse_params`]: the text after a `;` is not a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadParam;

/// Parses `*( SEMI generic-param )` with optional white space around `;`
/// and `=` (header parameters allow LWS; URI parameters never contain it
/// because the URI scanner stops at white space). `s` starts at the first
/// `;` or is empty.
pub fn parse_params(s: &[u8]) -> Result<Vec<Param<'_>>, BadParam> {
    let mut out = Vec::new();
    let mut i = skip_ws(s, 0);
    while i < s.len() {
        if s[i] != b';' {
            return Err(BadParam);
        }
        i = skip_ws(s, i + 1);
        let ns = i;
        while i < s.len() && is_token_char(s[i]) {
            i += 1;
        }
        if ns == i {
            return Err(BadParam);
        }
        let name = &s[ns..i];
        i = skip_ws(s, i);
        let mut value = None;
        if i < s.len() && s[i] == b'=' {
            i = skip_ws(s, i + 1);
            let vs = i;
            if i < s.len() && s[i] == b'"' {
                i = quoted_end(s, i).ok_or(BadParam)?;
            } else if i < s.len() && s[i] == b'[' {
                // IPv6 reference as a parameter value (e.g. received=[::1]).
                while i < s.len() && s[i] != b']' {
                    i += 1;
                }
                if i == s.len() {
                    return Err(BadParam);
                }
                i += 1;
            } else {
                while i < s.len() && (is_token_char(s[i]) || s[i] == b':') {
                    i += 1;
                }
            }
            if vs == i {
                return Err(BadParam);
            }
            value = Some(&s[vs..i]);
            i = skip_ws(s, i);
        }
        out.push(Param { name, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_list_respects_quotes_and_brackets() {
        let v = split_list(br#""a, b" <sip:x@y;p=1,2>, <sip:z>"#).unwrap();
        assert_eq!(v, vec![&br#""a, b" <sip:x@y;p=1,2>"#[..], b"<sip:z>"]);
        assert!(split_list(br#""open"#).is_err());
        assert!(split_list(b"<sip:open").is_err());
    }

    #[test]
    fn params_with_white_space() {
        let p = parse_params(b" ;   tag    = 1918181833n").unwrap();
        assert_eq!(p[0].name, b"tag");
        assert_eq!(p[0].value, Some(&b"1918181833n"[..]));
        assert!(parse_params(b";;").is_err());
        assert!(parse_params(b";a=").is_err());
    }

    #[test]
    fn u32_limits() {
        assert_eq!(parse_u32(b"0009"), Some(9));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b""), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"%75se%72"), b"user");
        assert_eq!(percent_decode(b"RE%GISTER"), b"RE%GISTER");
        assert_eq!(percent_decode(b"a%2"), b"a%2");
        assert_eq!(percent_decode(b"%00"), b"\0");
    }
}
