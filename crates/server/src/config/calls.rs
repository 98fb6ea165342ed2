//! `[media]` and `[calls]`: the RTP relay and call handling.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// `[media]`: where relayed RTP lives.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSection {
    /// Relay port range `"START-END"` (even RTP ports, RTCP on the next odd
    /// one); default `10000-20000`.
    pub rtp_ports: String,
    /// Address the relay sockets bind to (default all IPv4 interfaces).
    pub bind_address: IpAddr,
    /// Address written into SDP when the PBX is behind NAT; by default the
    /// local address that routes to each phone.
    pub public_address: Option<IpAddr>,
    /// Hang up a call after this many seconds without RTP from a leg that
    /// should be sending (0 disables).
    pub media_timeout_s: u64,
}

impl Default for MediaSection {
    fn default() -> Self {
        MediaSection {
            rtp_ports: "10000-20000".into(),
            bind_address: IpAddr::from([0, 0, 0, 0]),
            public_address: None,
            media_timeout_s: 30,
        }
    }
}

impl MediaSection {
    /// The relay port range, checked.
    pub fn port_range(&self) -> Result<(u16, u16), String> {
        let (start, end) = self
            .rtp_ports
            .split_once('-')
            .ok_or_else(|| format!("\"{}\" is not START-END", self.rtp_ports))?;
        let parse = |s: &str| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| format!("\"{}\": {s:?} is not a port number", self.rtp_ports))
        };
        let (start, end) = (parse(start)?, parse(end)?);
        if start < 1024 || end <= start || end - start < 3 {
            return Err(format!(
                "\"{}\" must be a range of at least 4 ports above 1023",
                self.rtp_ports
            ));
        }
        Ok((start, end))
    }
}

/// `[calls]`: call handling.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CallsSection {
    /// Seconds a call rings before it is given up with 480.
    pub no_answer_timeout_s: u64,
    /// Codecs passed between the legs, by SDP name, in preference order.
    pub codecs: Vec<String>,
}

impl Default for CallsSection {
    fn default() -> Self {
        CallsSection {
            no_answer_timeout_s: 60,
            codecs: pbx::call::anchor::DEFAULT_CODECS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}
