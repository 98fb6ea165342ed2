//! SIP INFO DTMF relay: the `application/dtmf-relay` body.
//!
//! Not an RFC but a widely deployed convention (Cisco, Asterisk, FreeSWITCH):
//! `Signal=<key>` and `Duration=<milliseconds>` lines separated by CRLF.
//! Parsing is lenient about case, whitespace and line endings, and accepts
//! `Signal=10`/`11` as `*`/`#` as some gateways send event codes.

use super::{Digit, DtmfError};

/// A parsed dtmf-relay body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfRelay {
    /// The key pressed.
    pub digit: Digit,
    /// Duration in milliseconds (default 250 if absent).
    pub duration_ms: u32,
}

/// Default duration when the body has no `Duration=` line.
pub const DEFAULT_DURATION_MS: u32 = 250;

impl DtmfRelay {
    /// Parses a body such as `"Signal=5\r\nDuration=160\r\n"`.
    pub fn parse(body: &str) -> Result<Self, DtmfError> {
        let mut digit = None;
        let mut duration_ms = DEFAULT_DURATION_MS;
        for line in body.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "signal" => {
                    let mut chars = value.chars();
                    digit = Some(match (chars.next(), chars.next()) {
                        (Some(c), None) => Digit::from_char(c)?,
                        _ => {
                            let code: u8 = value.parse().map_err(|_| DtmfError::MissingSignal)?;
                            Digit::from_event(code)?
                        }
                    });
                }
                "duration" => {
                    duration_ms = value
                        .parse()
                        .map_err(|_| DtmfError::BadDuration(value.to_owned()))?;
                }
                _ => {}
            }
        }
        Ok(Self {
            digit: digit.ok_or(DtmfError::MissingSignal)?,
            duration_ms,
        })
    }

    /// Formats the body, `"Signal=5\r\nDuration=160\r\n"`.
    pub fn format(&self) -> String {
        format!("Signal={}\r\nDuration={}\r\n", self.digit, self.duration_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let r = DtmfRelay::parse("Signal=5\r\nDuration=160").unwrap();
        assert_eq!(r.digit.as_char(), '5');
        assert_eq!(r.duration_ms, 160);
        assert_eq!(r.format(), "Signal=5\r\nDuration=160\r\n");
        assert_eq!(DtmfRelay::parse(&r.format()).unwrap(), r);
    }

    #[test]
    fn lenient_forms() {
        let r = DtmfRelay::parse("signal = #\nDURATION= 100\n").unwrap();
        assert_eq!((r.digit.as_char(), r.duration_ms), ('#', 100));
        let r = DtmfRelay::parse("Signal=10").unwrap();
        assert_eq!((r.digit.as_char(), r.duration_ms), ('*', 250));
        assert_eq!(DtmfRelay::parse("Signal=d").unwrap().digit.as_char(), 'D');
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(DtmfRelay::parse(""), Err(DtmfError::MissingSignal));
        assert_eq!(
            DtmfRelay::parse("Duration=100"),
            Err(DtmfError::MissingSignal)
        );
        assert!(DtmfRelay::parse("Signal=x").is_err());
        assert!(DtmfRelay::parse("Signal=99").is_err());
        assert!(DtmfRelay::parse("Signal=1\r\nDuration=-5").is_err());
        assert!(DtmfRelay::parse("Signal=").is_err());
    }
}
