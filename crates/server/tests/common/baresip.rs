//! A headless baresip 1.0 softphone for media interop tests (std only).
//!
//! Each [`Softphone`] gets its own config directory, SIP port, control port
//! and recording directory, plays a WAV file as its microphone and
//! (optionally) records what it hears. It is driven over the `ctrl_tcp`
//! module (netstring-framed JSON), so calls are placed only when the test is
//! ready (e.g. after both phones registered), and its stdout/stderr (`-v -s`:
//! debug log plus SIP trace) go to `baresip.log` for failure messages.
//!
//! Things learned from baresip 1.0.0 (Debian bookworm) that shape the config:
//! - UDP and TCP listen on `sip_listen`'s port and TLS on port + 1 (there is
//!   no `sip_transports` knob in 1.0), so both ports must be free.
//! - `stdio.so` fails under epoll when stdin is not a terminal ("epoll_ctl:
//!   Operation not permitted"); no UI module is loaded at all, `ctrl_tcp`
//!   plus `menu` (which provides the commands) is enough.
//! - `aufile` is a *source* only in 1.0 (it cannot play to a file). A player
//!   is still needed for a call's audio to start; `aubridge` provides one
//!   that needs no hardware (its thread never runs because no aubridge
//!   source uses the device, so the decoded audio is simply dropped).
//! - `aufile` requires 16-bit mono at the codec's rate (8000 Hz for G.711)
//!   and, when the file ends, reports an audio error that makes baresip
//!   HANG UP the call ("menu: audio error (0,end of file)"). The phone with
//!   the shorter file therefore ends the call; give the callee a longer one.
//! - `sndfile` is an audio filter: for every call it writes
//!   `snd_path/dump-YYYY-MM-DD-HH-MM-SS-dec.wav` (decoded audio received from
//!   the network, i.e. what the far end sent) and `...-enc.wav` (what this
//!   phone sent), 16-bit mono at the codec rate (8000 Hz for PCMU/PCMA). The
//!   decode side is driven by packet arrival: it starts with the first
//!   received packet, and missing packets are skipped, not filled with
//!   silence. Names have one-second resolution, hence one directory per
//!   phone.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound on one baresip's life, enforced twice (coreutils `timeout`
/// around it and baresip's own `-t`) so a crashed test leaks no processes.
const MAX_LIFETIME_SECS: u32 = 90;

/// How a [`Softphone`] is set up.
#[derive(Debug, Clone)]
pub struct SoftphoneConfig {
    /// User part of the AOR, e.g. "5001".
    pub user: String,
    /// Digest password (`auth_pass`); None: no credentials.
    pub password: Option<String>,
    /// Registrar/PBX port on 127.0.0.1. Some: the AOR is
    /// `sip:USER@127.0.0.1:PORT` and the phone registers there every
    /// `regint` seconds. None: a peer-to-peer phone with AOR
    /// `sip:USER@127.0.0.1:SIPPORT` that never registers (`regint=0`).
    pub registrar: Option<u16>,
    pub regint: u32,
    /// `answermode=auto`: answer incoming calls at once.
    pub auto_answer: bool,
    /// The "microphone": 16-bit mono 8 kHz WAV played by `aufile`. When it
    /// ends, this phone hangs up.
    pub source_wav: PathBuf,
    /// Load `sndfile` and record both directions of each call.
    pub record: bool,
    /// The account's `audio_codecs` (e.g. `["PCMU/8000/1"]`), in order:
    /// only these are offered and accepted. Empty: every loaded codec
    /// (G.711). Naming G722 also loads `g722.so`; its `aufile` source must
    /// then be 16 kHz, and its recordings are 16 kHz.
    pub audio_codecs: Vec<String>,
}

impl SoftphoneConfig {
    pub fn new(user: &str, source_wav: &Path) -> SoftphoneConfig {
        SoftphoneConfig {
            user: user.into(),
            password: None,
            registrar: None,
            regint: 0,
            auto_answer: false,
            source_wav: source_wav.into(),
            record: false,
            audio_codecs: Vec::new(),
        }
    }
}

/// A running baresip; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Softphone {
    pub name: String,
    pub dir: PathBuf,
    pub sip_port: u16,
    pub ctrl_port: u16,
    pub record_dir: PathBuf,
    pub config: SoftphoneConfig,
    child: Child,
}

/// A port free on 127.0.0.1 for UDP and TCP whose successor is free for TCP
/// too (baresip puts SIP/TLS there).
pub fn free_sip_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().unwrap().port();
        if port == u16::MAX {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port pair");
}

/// Whether baresip is installed, with a hint if not.
pub fn require_baresip() {
    assert!(
        Command::new("baresip").arg("-h").output().is_ok(),
        "baresip is not installed: apt-get install baresip-core (CI's scripts/test.sh does this)"
    );
}

impl Softphone {
    /// Writes `base/name/{config,accounts}` and starts baresip on it.
    pub fn start(base: &Path, name: &str, config: SoftphoneConfig) -> Softphone {
        let dir = base.join(name);
        let record_dir = dir.join("rec");
        std::fs::create_dir_all(&record_dir).unwrap();
        let sip_port = free_sip_port();
        let ctrl_port = super::free_port();
        std::fs::write(
            dir.join("config"),
            config_text(&config, sip_port, ctrl_port, &record_dir),
        )
        .unwrap();
        std::fs::write(dir.join("accounts"), account_line(&config, sip_port) + "\n").unwrap();
        let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
        let child = Command::new("timeout")
            .arg(MAX_LIFETIME_SECS.to_string())
            .args(["baresip", "-v", "-s", "-f"])
            .arg(&dir)
            .args(["-t", &MAX_LIFETIME_SECS.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn baresip");
        let phone = Softphone {
            name: name.into(),
            dir,
            sip_port,
            ctrl_port,
            record_dir,
            config,
            child,
        };
        if !phone.wait_log("baresip is ready", Duration::from_secs(10)) {
            panic!("{} did not start:\n{}", phone.name, phone.log_tail(60));
        }
        phone
    }

    /// This phone's address of record.
    pub fn aor(&self) -> String {
        let port = self.config.registrar.unwrap_or(self.sip_port);
        format!("sip:{}@127.0.0.1:{port}", self.config.user)
    }

    /// Where this phone can be reached directly (peer-to-peer calls).
    pub fn direct_uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.config.user, self.sip_port)
    }

    /// Places a call (menu's `dial` via ctrl_tcp).
    pub fn dial(&self, uri: &str) -> Result<String, String> {
        self.command("dial", uri)
    }

    /// Hangs up the current call.
    pub fn hangup(&self) -> Result<String, String> {
        self.command("hangup", "")
    }

    /// Runs a long command over ctrl_tcp: sends the netstring
    /// `LEN:{"command":..,"params":..,"token":..},` and waits for the
    /// matching `"response":true` message (event messages in between are
    /// skipped). Ok(data) or Err(reason).
    pub fn command(&self, command: &str, params: &str) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", self.ctrl_port)) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("ctrl_tcp connect to {}: {e}", self.ctrl_port));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let json = format!(
            "{{\"command\":\"{}\",\"params\":\"{}\",\"token\":\"t1\"}}",
            json_escape(command),
            json_escape(params)
        );
        stream
            .write_all(format!("{}:{json},", json.len()).as_bytes())
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            // Parse complete netstrings from the front of the buffer.
            while let Some(colon) = buf.iter().position(|&b| b == b':') {
                let len: usize = std::str::from_utf8(&buf[..colon])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("bad netstring: {}", String::from_utf8_lossy(&buf)))?;
                if buf.len() < colon + 1 + len + 1 {
                    break;
                }
                let msg = String::from_utf8_lossy(&buf[colon + 1..colon + 1 + len]).into_owned();
                buf.drain(..colon + 1 + len + 1);
                if msg.contains("\"response\":true") {
                    return if msg.contains("\"ok\":true") {
                        Ok(msg)
                    } else {
                        Err(msg)
                    };
                }
            }
            let n = stream
                .read(&mut chunk)
                .map_err(|e| format!("ctrl_tcp read: {e}"))?;
            if n == 0 {
                return Err("ctrl_tcp closed".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// The last `lines` lines of the log, without blank lines and the ANSI
    /// colour codes baresip puts around SIP traces and warnings.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = strip_ansi(&self.log());
        let all: Vec<&str> = log
            .split(['\n', '\r'])
            .filter(|l| !l.trim().is_empty())
            .collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        self.wait_log_count(needle, 1, within)
    }

    /// Waits until the log contains `needle` at least `count` times.
    pub fn wait_log_count(&self, needle: &str, count: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.log().matches(needle).count() >= count {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the end of a call ("Call with ... terminated"). Recordings
    /// are complete (WAV header fixed up) once this has been logged.
    pub fn wait_call_end(&self, within: Duration) -> bool {
        self.wait_log("terminated (duration", within)
    }

    /// The newest recording of what this phone received (`*-dec.wav`).
    pub fn received_wav(&self) -> Option<PathBuf> {
        self.newest_recording("-dec.wav")
    }

    /// The newest recording of what this phone sent (`*-enc.wav`).
    pub fn sent_wav(&self) -> Option<PathBuf> {
        self.newest_recording("-enc.wav")
    }

    fn newest_recording(&self, suffix: &str) -> Option<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.record_dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect();
        files.sort(); // names embed the time, so lexical order is time order
        files.pop()
    }

    /// Stops baresip: SIGTERM to `timeout`, which forwards it to baresip
    /// (a clean exit closes the recordings), then SIGKILL after 3 s.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Softphone {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `config` file. Every line is there for a reason:
fn config_text(c: &SoftphoneConfig, sip_port: u16, ctrl_port: u16, record_dir: &Path) -> String {
    let mut lines = vec![
        // epoll is the Linux default; explicit like the example config.
        "poll_method\tepoll".to_string(),
        // Own port on loopback only (TLS takes sip_port + 1).
        format!("sip_listen\t127.0.0.1:{sip_port}"),
        // Pin SDP/RTP to loopback; otherwise baresip picks the first
        // interface with a default route and offers that address.
        "net_interface\t127.0.0.1".to_string(),
        // RTP/RTCP ports (baresip retries random even ports in the range):
        // below the kernel's ephemeral range (32768+, where free_port()
        // finds SIP ports) and clear of the PBX relay's default 10000-20000,
        // so phones and relay never race for a port.
        "rtp_ports\t22000-29999".to_string(),
        "module_path\t/usr/lib/baresip/modules".to_string(),
        // G.711 only (PCMU, PCMA): what every PBX supports, lossless enough
        // that a clean call correlates at ~0.9999.
        "module\tg711.so".to_string(),
        // G.722 only when asked for: loaded by default, it would be offered
        // first and change the calls of tests that expect G.711.
        if c.audio_codecs
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("g722"))
        {
            "module\tg722.so".to_string()
        } else {
            String::new()
        },
        // WAV file as microphone.
        "module\taufile.so".to_string(),
        format!("audio_source\taufile,{}", c.source_wav.display()),
        // A hardware-free player (see the module docs); separate device
        // names so the ringtone player never shares the call's device.
        "module\taubridge.so".to_string(),
        "audio_player\taubridge,play".to_string(),
        "audio_alert\taubridge,alert".to_string(),
        // Reads `accounts`.
        "module_app\taccount.so".to_string(),
        // Provides the dial/hangup/answermode commands, honours
        // answermode, and hangs up on the aufile end-of-file audio error.
        "module_app\tmenu.so".to_string(),
        // No periodic "[0:00:01] audio=..." status line in the log.
        "statmode_default\toff".to_string(),
        "ringback_disabled\tyes".to_string(),
        // Remote control: dial when the test says so.
        "module_app\tctrl_tcp.so".to_string(),
        format!("ctrl_tcp_listen\t127.0.0.1:{ctrl_port}"),
    ];
    if c.record {
        // Audio filter recording each call's received (-dec) and sent
        // (-enc) audio as WAV.
        lines.push("module\tsndfile.so".into());
        lines.push(format!("snd_path\t{}", record_dir.display()));
    }
    lines.join("\n") + "\n"
}

/// The `accounts` line: `<sip:USER@HOST:PORT>;auth_pass=..;regint=..;answermode=..`.
fn account_line(c: &SoftphoneConfig, sip_port: u16) -> String {
    let port = c.registrar.unwrap_or(sip_port);
    let mut line = format!("<sip:{}@127.0.0.1:{port}>", c.user);
    if let Some(p) = &c.password {
        line += &format!(";auth_pass={p}");
    }
    // regint=0: never REGISTER (peer-to-peer); otherwise the interval.
    let regint = if c.registrar.is_some() { c.regint } else { 0 };
    line += &format!(";regint={regint}");
    if c.auto_answer {
        line += ";answermode=auto";
    }
    if !c.audio_codecs.is_empty() {
        line += &format!(";audio_codecs={}", c.audio_codecs.join(","));
    }
    line
}

/// Removes `ESC [ ... letter` sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
