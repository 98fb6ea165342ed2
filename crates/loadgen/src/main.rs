//! `pbx-loadgen`: both ends of N concurrent relayed G.711 calls through a
//! SIP server, over UDP.
//!
//! ```text
//! pbx-loadgen --server 127.0.0.1:5060 --calls 1000 --rate 100 --hold 30s \
//!     --caller-range 7000-7999 --callee-range 8000-8999 --password SECRET \
//!     --local-ip 127.0.0.1 --sip-port-uac 17000 --sip-port-uas 17001 \
//!     --rtp-ports 30000-39999
//! pbx-loadgen --direct --calls 1000 --hold 20s      # self-test, no server
//! ```
//!
//! Options (see `--help`):
//! - `--server ADDR` SIP server (default 127.0.0.1:5060); `--domain HOST`
//!   host part of URIs (default: the server address).
//! - `--direct` self-test: the UAC calls the UAS socket directly, no
//!   registration, no authentication; `--direct-challenge` adds a 407
//!   challenge from the UAS side (realm `loadgen`, the caller password).
//! - `--calls N`, `--rate CPS`, `--hold DURATION` (`30s`, `500ms`, `2m`).
//! - `--caller-range A-B` / `--callers-csv FILE`, `--callee-range A-B` /
//!   `--callees-csv FILE` (first CSV column, `pbx extension import` format).
//! - `--password PW` for both; `--caller-password`, `--callee-password`
//!   override it (also from `LOADGEN_PASSWORD`).
//! - `--local-ip`, `--sip-port-uac`, `--sip-port-uas`, `--rtp-ports A-B`
//!   (even ports only: four ports per concurrent call).
//! - `--timeout DURATION` transaction timeout (32s), `--drain DURATION`
//!   media-stop → BYE pause (200ms), `--register-window N` (100),
//!   `--register-expires S` (3600), `--skip-register` (an earlier
//!   `--calls 0` run registered the callees).
//! - `--progress DURATION` progress line on stderr (5s; `0` = off),
//!   `--verbose`.
//! - `--max-failed N` (0), `--max-loss PCT` (none): thresholds for the exit
//!   status (1 = thresholds exceeded, 2 = error).
//!
//! Output: the text report, then one JSON line (last line of stdout).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use loadgen::{Config, parse_range, read_csv_numbers};

/// SIP/RTP load generator: plays both ends of N simultaneous G.711 calls
/// through a SIP server (UAS side registers the callees and answers, UAC
/// side calls them, both stream 20 ms PCMU through the server's relay).
/// Prints a text report and one JSON line; exit status 1 when failures or
/// loss exceed the thresholds.
#[derive(Debug, Parser)]
#[command(name = "pbx-loadgen", version)]
struct Args {
    /// SIP server address (UDP).
    #[arg(long, default_value = "127.0.0.1:5060")]
    server: SocketAddr,
    /// Host part of From/To/Request-URIs (default: the server address,
    /// without the port when it is 5060).
    #[arg(long)]
    domain: Option<String>,
    /// Self-test without a server: the UAC sends INVITE straight to the
    /// UAS port; no REGISTER, no authentication.
    #[arg(long)]
    direct: bool,
    /// With --direct: the called side answers each first INVITE with 407
    /// and checks the retry's Proxy-Authorization (realm "loadgen", the
    /// caller password), exercising the challenge path without a server.
    #[arg(long, requires = "direct")]
    direct_challenge: bool,
    /// Number of calls to place.
    #[arg(long, default_value_t = 100)]
    calls: usize,
    /// New calls per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long each call stays up after its 200 OK (e.g. 30s, 500ms, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    hold: Duration,
    /// Caller extensions as a range, e.g. 7000-7999 (round-robin).
    #[arg(long, default_value = "7000-7999")]
    caller_range: String,
    /// Caller extensions from a CSV file (first column) instead of a range.
    #[arg(long)]
    callers_csv: Option<PathBuf>,
    /// Callee extensions as a range, e.g. 8000-8999 (all are registered).
    #[arg(long, default_value = "8000-8999")]
    callee_range: String,
    /// Callee extensions from a CSV file (first column) instead of a range.
    #[arg(long)]
    callees_csv: Option<PathBuf>,
    /// SIP password of every extension.
    #[arg(
        long,
        env = "LOADGEN_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    password: String,
    /// Password of the callers if different.
    #[arg(long)]
    caller_password: Option<String>,
    /// Password of the callees if different.
    #[arg(long)]
    callee_password: Option<String>,
    /// Local address to bind and advertise.
    #[arg(long, default_value = "127.0.0.1")]
    local_ip: IpAddr,
    /// UDP port of the calling side's SIP socket.
    #[arg(long, default_value_t = 17000)]
    sip_port_uac: u16,
    /// UDP port of the called side's SIP socket (the registered Contact).
    #[arg(long, default_value_t = 17001)]
    sip_port_uas: u16,
    /// RTP port range; even ports are used (the odd one above is left for
    /// RTCP), so four ports per concurrent call.
    #[arg(long, default_value = "30000-39999")]
    rtp_ports: String,
    /// Transaction timeout (no final response, no ACK).
    #[arg(long, default_value = "32s", value_parser = parse_duration)]
    timeout: Duration,
    /// Pause between stopping media and sending BYE.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    drain: Duration,
    /// REGISTER transactions in flight at once.
    #[arg(long, default_value_t = 100)]
    register_window: usize,
    /// Do not register the callees (an earlier run did: `--calls 0`
    /// registers and exits).
    #[arg(long)]
    skip_register: bool,
    /// Requested registration expiry, seconds.
    #[arg(long, default_value_t = 3600)]
    register_expires: u32,
    /// Progress line on stderr this often (0 = off).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    progress: Duration,
    /// Failures (failed + dropped calls + failed registrations) tolerated
    /// before the exit status is 1.
    #[arg(long, default_value_t = 0)]
    max_failed: u64,
    /// RTP loss % tolerated (per direction) before the exit status is 1.
    #[arg(long)]
    max_loss: Option<f64>,
    /// Log unexpected SIP events to stderr.
    #[arg(long, short)]
    verbose: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" | "" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn numbers(range: &str, csv: &Option<PathBuf>) -> Result<Vec<String>, String> {
    match csv {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(read_csv_numbers(&text))
        }
        None => parse_range(range),
    }
}

fn main() -> ExitCode {
    let a = Args::parse();
    let setup = || -> Result<Config, String> {
        let rtp = parse_range(&a.rtp_ports)?;
        let lo: u16 = rtp[0].parse().map_err(|_| "bad --rtp-ports")?;
        let hi: u16 = rtp[rtp.len() - 1].parse().map_err(|_| "bad --rtp-ports")?;
        Ok(Config {
            server: a.server,
            domain: a.domain.clone(),
            direct: a.direct,
            direct_challenge: a.direct_challenge,
            direct_challenge_password: None,
            calls: a.calls,
            rate: a.rate,
            hold: a.hold,
            callers: numbers(&a.caller_range, &a.callers_csv)?,
            callees: numbers(&a.callee_range, &a.callees_csv)?,
            caller_password: a
                .caller_password
                .clone()
                .unwrap_or_else(|| a.password.clone()),
            callee_password: a
                .callee_password
                .clone()
                .unwrap_or_else(|| a.password.clone()),
            local_ip: a.local_ip,
            sip_port_uac: a.sip_port_uac,
            sip_port_uas: a.sip_port_uas,
            rtp_ports: (lo, hi),
            timeout: a.timeout,
            drain: a.drain,
            register_window: a.register_window,
            register: !a.skip_register,
            register_expires: a.register_expires,
            progress: (!a.progress.is_zero()).then_some(a.progress),
            verbose: a.verbose,
        })
    };
    let cfg = match setup() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pbx-loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    match loadgen::run(cfg) {
        Ok(mut r) => {
            r.max_failed = a.max_failed;
            r.max_loss_pct = a.max_loss;
            print!("{}", r.text());
            println!("{}", r.json());
            if r.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("pbx-loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}
