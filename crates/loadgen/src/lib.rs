//! SIP/RTP load generator: plays both ends of N simultaneous G.711 calls
//! through a SIP server (a PBX/B2BUA that relays media) over UDP.
//!
//! - The **UAS side** (one SIP socket) registers the callee extensions
//!   (REGISTER, 401 digest challenge, Authorization) with Contact
//!   `sip:USER@LOCAL_IP:UAS_PORT`, answers INVITEs with 180 and 200 + SDP
//!   (PCMU, its own RTP port per call), retransmits the 200 until ACK and
//!   answers BYE.
//! - The **UAC side** (one SIP socket) places calls at a given rate:
//!   INVITE, the 407 challenge is ACKed on the same branch and the INVITE
//!   re-sent with CSeq+1 and Proxy-Authorization (401/Authorization work
//!   too), provisional responses, 200 → ACK (re-ACK of retransmitted 200s),
//!   media, then BYE after the hold time.
//! - **RTP**: one single-threaded pacer sends a 20 ms PCMU packet for every
//!   active stream (each call side has its own socket), spread over 20
//!   one-millisecond slots; epoll delivers received packets, read with
//!   kernel timestamps (`SO_TIMESTAMPNS`). Each payload starts with a probe
//!   (sender, counter, send time), so loss, misrouting, jitter and transit
//!   are measured even if the relay rewrites SSRC/sequence/timestamp.
//! - `direct` mode: no server; the UAC sends INVITE straight to the UAS
//!   socket and the UAS does not register (self-test).
//!
//! Everything runs on one thread: SIP at benchmark rates costs little next
//! to 100,000 packets per second of RTP, and one thread leaves the other
//! core(s) to the server under test.

pub mod engine;
pub mod hist;
pub mod net;
pub mod report;
pub mod rtp;
pub mod sipmsg;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use engine::run;
pub use report::Report;

/// A run's parameters.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SIP server (PBX). Ignored in direct mode.
    pub server: SocketAddr,
    /// Host part of From/To/Request-URIs and the REGISTER Request-URI
    /// (default: the server address).
    pub domain: Option<String>,
    /// Direct self-test: UAC → UAS without a server, no registration.
    pub direct: bool,
    /// Direct mode only: the UAS side also plays the authenticating proxy,
    /// answering each new INVITE without credentials with 407 and checking
    /// the Proxy-Authorization of the retry (realm `loadgen`, the caller
    /// password), to exercise the challenge path without a server.
    pub direct_challenge: bool,
    /// The password that direct-mode authenticator expects (default: the
    /// caller password).
    pub direct_challenge_password: Option<String>,
    /// Calls to place.
    pub calls: usize,
    /// New calls per second.
    pub rate: f64,
    /// How long each call stays up after its 200 OK.
    pub hold: Duration,
    /// Calling extensions (used round-robin).
    pub callers: Vec<String>,
    /// Called extensions (used round-robin; all registered first).
    pub callees: Vec<String>,
    /// Password of the callers (digest for INVITE/BYE challenges).
    pub caller_password: String,
    /// Password of the callees (REGISTER).
    pub callee_password: String,
    /// Address to bind and advertise.
    pub local_ip: IpAddr,
    /// UAC SIP port.
    pub sip_port_uac: u16,
    /// UAS SIP port.
    pub sip_port_uas: u16,
    /// RTP port range (inclusive); even ports only (RTP/RTCP pairs), so
    /// four ports per call (both ends).
    pub rtp_ports: (u16, u16),
    /// Transaction timeout: no final response to INVITE/BYE/REGISTER, no
    /// ACK for a 200 (RFC 3261 uses 64×T1 = 32 s).
    pub timeout: Duration,
    /// Pause between stopping media and sending BYE (lets in-flight
    /// packets arrive so they are not counted as lost).
    pub drain: Duration,
    /// REGISTER transactions in flight at once.
    pub register_window: usize,
    /// Register the callees first (ignored in direct mode). Off when an
    /// earlier run already registered them.
    pub register: bool,
    /// Registration expiry requested.
    pub register_expires: u32,
    /// Progress line on stderr every so often (None: quiet).
    pub progress: Option<Duration>,
    /// Log unexpected SIP events on stderr.
    pub verbose: bool,
}

impl Config {
    /// A small direct-mode configuration on `local_ip`, for tests.
    pub fn direct(calls: usize, hold: Duration, sip_port: u16, rtp: (u16, u16)) -> Config {
        Config {
            server: SocketAddr::from(([127, 0, 0, 1], sip_port + 1)),
            domain: None,
            direct: true,
            direct_challenge: false,
            direct_challenge_password: None,
            calls,
            rate: 100.0,
            hold,
            callers: (0..calls.max(1)).map(|i| format!("{}", 7000 + i)).collect(),
            callees: (0..calls.max(1)).map(|i| format!("{}", 8000 + i)).collect(),
            caller_password: String::new(),
            callee_password: String::new(),
            local_ip: IpAddr::from([127, 0, 0, 1]),
            sip_port_uac: sip_port,
            sip_port_uas: sip_port + 1,
            rtp_ports: rtp,
            timeout: Duration::from_secs(32),
            drain: Duration::from_millis(200),
            register_window: 100,
            register: true,
            register_expires: 3600,
            progress: None,
            verbose: false,
        }
    }
}

/// Parses `A-B` into the inclusive list of numbers (keeping the width of
/// `A`, so `0100-0199` gives `0100`…), or one number.
pub fn parse_range(s: &str) -> Result<Vec<String>, String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let lo: u64 = a
        .trim()
        .parse()
        .map_err(|_| format!("bad range start {a:?}"))?;
    let hi: u64 = b
        .trim()
        .parse()
        .map_err(|_| format!("bad range end {b:?}"))?;
    if hi < lo {
        return Err(format!("empty range {s:?}"));
    }
    if hi - lo > 10_000_000 {
        return Err(format!("range too large {s:?}"));
    }
    let width = a.trim().len();
    Ok((lo..=hi).map(|n| format!("{n:0width$}")).collect())
}

/// Reads extension numbers from a CSV file: the first column of each line
/// (`number,password[,name]` as `pbx extension import` takes); a first line
/// starting with `number` is a header; blank lines and `#` comments skipped.
pub fn read_csv_numbers(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') || (i == 0 && l.starts_with("number")) {
                return None;
            }
            Some(l.split(',').next()?.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("7000-7002").unwrap(), ["7000", "7001", "7002"]);
        assert_eq!(parse_range("0098-0100").unwrap(), ["0098", "0099", "0100"]);
        assert_eq!(parse_range("42").unwrap(), ["42"]);
        assert!(parse_range("9-1").is_err());
        assert_eq!(
            read_csv_numbers("number,password\n100,pw\n\n# x\n101,pw,Name\n"),
            ["100", "101"]
        );
    }
}
