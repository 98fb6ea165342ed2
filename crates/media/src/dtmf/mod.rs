//! DTMF in its three transports.
//!
//! - [`rfc4733`]: RTP telephone-event payloads (RFC 4733 section 2.3), a
//!   sender state machine and a de-duplicating receiver.
//! - [`info`]: SIP INFO `application/dtmf-relay` bodies (the de-facto format,
//!   `Signal=5` / `Duration=160`).
//! - [`detect`]: in-band detection on 8 kHz PCM with Goertzel filters
//!   (frequencies of ITU-T Q.23, acceptance criteria after Q.24).

pub mod detect;
pub mod info;
pub mod rfc4733;

pub use detect::{DetectorConfig, DtmfDetector};
pub use rfc4733::{DtmfEvent, DtmfReceiver, DtmfSender, TelephoneEvent};

use thiserror::Error;

/// Errors parsing DTMF from the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DtmfError {
    /// A telephone-event payload must be at least four octets.
    #[error("telephone-event payload too short: {0} octets")]
    Truncated(usize),
    /// The event code is not a DTMF digit (RFC 4733 events 0-15).
    #[error("event {0} is not a DTMF digit")]
    NotDtmf(u8),
    /// The character is not one of `0-9 * # A-D`.
    #[error("invalid DTMF character {0:?}")]
    BadDigit(char),
    /// The dtmf-relay body has no usable `Signal=` line.
    #[error("dtmf-relay body without a valid Signal line")]
    MissingSignal,
    /// The `Duration=` value is not a number.
    #[error("invalid Duration value {0:?}")]
    BadDuration(String),
}

/// One of the sixteen DTMF keys, `0-9 * # A-D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(u8);

impl Digit {
    /// All sixteen digits in RFC 4733 event-code order.
    pub const ALL: [char; 16] = [
        '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
    ];

    /// From a key character (letters in either case).
    pub fn from_char(c: char) -> Result<Self, DtmfError> {
        let upper = c.to_ascii_uppercase();
        Self::ALL
            .iter()
            .position(|&d| d == upper)
            .map(|i| Digit(i as u8))
            .ok_or(DtmfError::BadDigit(c))
    }

    /// From an RFC 4733 event code (0-15).
    pub fn from_event(code: u8) -> Result<Self, DtmfError> {
        if code < 16 {
            Ok(Digit(code))
        } else {
            Err(DtmfError::NotDtmf(code))
        }
    }

    /// The key character.
    pub fn as_char(self) -> char {
        Self::ALL[usize::from(self.0)]
    }

    /// The RFC 4733 event code.
    pub fn event_code(self) -> u8 {
        self.0
    }

    /// Low-group and high-group frequencies in Hz (ITU-T Q.23).
    pub fn frequencies(self) -> (f64, f64) {
        let (row, col) = match self.as_char() {
            '1' => (0, 0),
            '2' => (0, 1),
            '3' => (0, 2),
            'A' => (0, 3),
            '4' => (1, 0),
            '5' => (1, 1),
            '6' => (1, 2),
            'B' => (1, 3),
            '7' => (2, 0),
            '8' => (2, 1),
            '9' => (2, 2),
            'C' => (2, 3),
            '*' => (3, 0),
            '0' => (3, 1),
            '#' => (3, 2),
            _ => (3, 3),
        };
        (detect::ROWS[row], detect::COLS[col])
    }
}

impl std::fmt::Display for Digit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_round_trip() {
        for (i, c) in Digit::ALL.iter().enumerate() {
            let d = Digit::from_char(*c).unwrap();
            assert_eq!(d.event_code() as usize, i);
            assert_eq!(Digit::from_event(i as u8).unwrap(), d);
            assert_eq!(d.to_string(), c.to_string());
        }
        assert_eq!(Digit::from_char('a').unwrap().as_char(), 'A');
        assert!(Digit::from_char('x').is_err());
        assert!(Digit::from_event(16).is_err());
        assert_eq!(
            Digit::from_char('5').unwrap().frequencies(),
            (770.0, 1336.0)
        );
    }
}
