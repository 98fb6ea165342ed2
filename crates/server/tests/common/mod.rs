//! Shared helpers for end-to-end tests: run the real `pbx` binary on
//! loopback ports of its own and talk to it over real sockets.

#![allow(dead_code)]

pub mod audio;
pub mod baresip;
pub mod sipp;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running PBX, stopped (SIGKILL) on drop if still alive.
pub struct Pbx {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

/// A free port on 127.0.0.1 for both UDP and TCP (best effort).
/// True where the PBX's kernel RTP forwarding must be active: running as
/// root (CI) unless `PBX_SKIP_BPF_TESTS` says the kernel cannot.
pub fn kernel_forwarding_expected() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    root && std::env::var_os("PBX_SKIP_BPF_TESTS").is_none()
}

pub fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// Path of the repository root (for tests/sipp scenarios and shared/).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn spawn(dir: &std::path::Path) -> Child {
    // Append: a restart keeps the log of the first run.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("pbx.log"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_pbx"))
        .arg("--config")
        .arg(dir.join("pbx.toml"))
        .env("RUST_LOG", "debug,sqlx=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn pbx")
}

impl Pbx {
    /// Starts the binary with `extra` TOML appended to a config that listens
    /// on 127.0.0.1 (and ::1 when `ipv6`) at a free port; waits until it
    /// answers OPTIONS.
    pub fn start(extra: &str, ipv6: bool) -> Pbx {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("pbx-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let listen = if ipv6 {
            format!("[\"127.0.0.1:{port}\", \"[::1]:{port}\"]")
        } else {
            format!("[\"127.0.0.1:{port}\"]")
        };
        let config = dir.join("pbx.toml");
        let mut f = std::fs::File::create(&config).unwrap();
        write!(
            f,
            "[sip]\nlisten = {listen}\n{extra}\n[storage]\ndata_dir = {:?}\n",
            dir.join("data")
        )
        .unwrap();
        let child = spawn(&dir);
        let pbx = Pbx { child, port, dir };
        pbx.wait_ready();
        pbx
    }

    /// Stops the server with SIGTERM and starts it again on the same
    /// configuration and data directory.
    pub fn restart(&mut self) {
        let status = self
            .terminate(Duration::from_secs(10))
            .expect("pbx did not stop");
        assert!(status.success(), "pbx exited with {status:?}");
        self.child = spawn(&self.dir);
        self.wait_ready();
    }

    /// Runs a `pbx` subcommand against this server's configuration.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_pbx"))
            .arg("--config")
            .arg(self.dir.join("pbx.toml"))
            .args(args)
            .output()
            .expect("run pbx cli")
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if options_status(self.addr(), Duration::from_millis(200)) == Some(200) {
                return;
            }
        }
        panic!("pbx did not answer OPTIONS; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pbx.log")).unwrap_or_default()
    }

    /// Waits up to `within` for `needle` in the log (written by a
    /// background thread, so a line may land a moment after the event).
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit status (at most `within`).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Pbx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A minimal OPTIONS request from `local`.
pub fn options_request(local: SocketAddr, transport: &str, branch: &str) -> String {
    format!(
        "OPTIONS sip:pbx@{local} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK{branch};rport\r\nFrom: <sip:test@{local}>;tag=t{branch}\r\nTo: <sip:pbx@{local}>\r\nCall-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends one OPTIONS over UDP and returns the status code of the answer.
pub fn options_status(target: SocketAddr, wait: Duration) -> Option<u16> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    sock.set_read_timeout(Some(wait)).ok()?;
    let local = sock.local_addr().ok()?;
    let branch = format!("{}", local.port());
    sock.send_to(options_request(local, "UDP", &branch).as_bytes(), target)
        .ok()?;
    let mut buf = [0u8; 65535];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    status_of(&buf[..n])
}

/// The status code of a response's first line.
pub fn status_of(data: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(data).ok()?;
    let line = text.lines().next()?;
    line.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Whether `sipp` is installed; the interop tests need it (CI installs it).
pub fn require_sipp() {
    let ok = Command::new("sipp").arg("-v").output().is_ok();
    assert!(
        ok,
        "sipp is not installed: apt-get install sip-tester (CI's .ci/run does this)"
    );
}

/// The value of `name="..."` in a challenge line (empty if absent).
pub fn quoted_param(line: &str, name: &str) -> String {
    line.split(&format!("{name}=\""))
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string()
}

/// A tiny UDP SIP client for REGISTER tests.
pub struct Phone {
    pub sock: UdpSocket,
    pub user: String,
    pub domain: String,
    pub call_id: String,
    pub cseq: u32,
    /// The last request sent (to test retransmissions).
    pub last_request: String,
}

impl Phone {
    /// A phone bound to `local_ip` (any 127.x.y.z works on Linux loopback).
    pub fn new(local_ip: &str, user: &str, domain: &str) -> Phone {
        let sock = UdpSocket::bind((local_ip, 0)).expect("bind phone");
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let call_id = format!("{}-{user}@test", sock.local_addr().unwrap().port());
        Phone {
            sock,
            user: user.into(),
            domain: domain.into(),
            call_id,
            cseq: 0,
            last_request: String::new(),
        }
    }

    fn register_text(&mut self, expires: u32, auth: Option<&str>) -> String {
        self.cseq += 1;
        let local = self.sock.local_addr().unwrap();
        let (u, d) = (&self.user, &self.domain);
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "REGISTER sip:{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{}x{};rport\r\nFrom: <sip:{u}@{d}>;tag=ph{}\r\nTo: <sip:{u}@{d}>\r\nCall-ID: {}\r\nCSeq: {} REGISTER\r\nContact: <sip:{u}@{local}>\r\nExpires: {expires}\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n",
            self.cseq,
            local.port(),
            local.port(),
            self.call_id,
            self.cseq
        )
    }

    /// Sends and returns the whole response text (None on timeout).
    pub fn exchange(&mut self, text: &str, target: SocketAddr) -> Option<String> {
        self.last_request = text.to_string();
        self.sock.send_to(text.as_bytes(), target).ok()?;
        let mut buf = [0u8; 65535];
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            let resp = String::from_utf8_lossy(&buf[..n]).into_owned();
            // Skip provisional responses.
            if status_of(resp.as_bytes()).is_some_and(|s| s >= 200) {
                return Some(resp);
            }
        }
    }

    /// REGISTER with digest authentication using `password`; returns the
    /// final status (None: no answer at all).
    pub fn register(&mut self, password: &str, expires: u32, target: SocketAddr) -> Option<u16> {
        self.register_with(sip::auth::Algorithm::Md5, password, expires, target)
    }

    /// Like [`Phone::register`], answering the challenge for `alg`.
    pub fn register_with(
        &mut self,
        alg: sip::auth::Algorithm,
        password: &str,
        expires: u32,
        target: SocketAddr,
    ) -> Option<u16> {
        let first = self.register_text(expires, None);
        let resp = self.exchange(&first, target)?;
        let status = status_of(resp.as_bytes())?;
        if status != 401 {
            return Some(status);
        }
        let challenge = resp
            .lines()
            .find(|l| {
                l.starts_with("WWW-Authenticate:")
                    && l.contains(&format!("algorithm={},", alg.as_str()))
            })?
            .to_string();
        let (realm, nonce) = (
            quoted_param(&challenge, "realm"),
            quoted_param(&challenge, "nonce"),
        );
        let uri = format!("sip:{}", self.domain);
        let creds = sip::auth::Credentials {
            username: self.user.clone(),
            realm: realm.clone(),
            nonce: nonce.clone(),
            uri: uri.clone(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("abcdef".into()),
            ..Default::default()
        };
        let ha1 = sip::auth::ha1(alg, &self.user, &realm, password);
        let response = sip::auth::response(alg, &ha1, &creds, "REGISTER");
        let auth = format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"abcdef\"",
            self.user,
            alg.as_str()
        );
        let second = self.register_text(expires, Some(&auth));
        let resp = self.exchange(&second, target)?;
        status_of(resp.as_bytes())
    }

    /// An INVITE to `to` with `body` as SDP, authenticated against the
    /// 407 challenge with `password`; returns the final status after
    /// ACKing it (None: no answer). `extra` is added to the headers.
    pub fn invite_status(
        &mut self,
        password: &str,
        to: &str,
        body: &str,
        extra: &str,
        target: SocketAddr,
    ) -> Option<u16> {
        let local = self.sock.local_addr().unwrap();
        let (u, d) = (self.user.clone(), self.domain.clone());
        let call_id = format!("inv{}-{}", self.cseq + 100, self.call_id);
        let mf = if extra.contains("Max-Forwards") {
            ""
        } else {
            "Max-Forwards: 70\r\n"
        };
        let text = |cseq: u32, auth: &str, branch: &str| {
            format!(
                "INVITE sip:{to}@{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\nFrom: <sip:{u}@{d}>;tag=inv{cseq}\r\nTo: <sip:{to}@{d}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{u}@{local}>\r\n{mf}{extra}{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let ack = |resp: &str, cseq: u32, branch: &str| {
            let to_line = resp
                .lines()
                .find(|l| l.starts_with("To:"))
                .unwrap_or("To: <sip:x@x>");
            format!(
                "ACK sip:{to}@{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\nFrom: <sip:{u}@{d}>;tag=inv{cseq}\r\n{to_line}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
        };
        self.cseq += 2;
        let first_seq = self.cseq;
        let branch1 = format!("z9hG4bKinv{first_seq}a");
        let resp = self.exchange(&text(first_seq, "", &branch1), target)?;
        let status = status_of(resp.as_bytes())?;
        let _ = self
            .sock
            .send_to(ack(&resp, first_seq, &branch1).as_bytes(), target);
        if status != 407 {
            return Some(status);
        }
        let challenge = resp
            .lines()
            .find(|l| l.starts_with("Proxy-Authenticate:"))?
            .to_string();
        let (realm, nonce) = (
            quoted_param(&challenge, "realm"),
            quoted_param(&challenge, "nonce"),
        );
        let uri = format!("sip:{to}@{d}");
        let alg = sip::auth::Algorithm::Md5;
        let creds = sip::auth::Credentials {
            username: u.clone(),
            realm: realm.clone(),
            nonce: nonce.clone(),
            uri: uri.clone(),
            ..Default::default()
        };
        let ha1 = sip::auth::ha1(alg, &u, &realm, password);
        let response = sip::auth::response(alg, &ha1, &creds, "INVITE");
        let auth = format!(
            "Proxy-Authorization: Digest username=\"{u}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5\r\n"
        );
        let seq = first_seq + 1;
        let branch2 = format!("z9hG4bKinv{seq}b");
        let resp = self.exchange(&text(seq, &auth, &branch2), target)?;
        let status = status_of(resp.as_bytes())?;
        if status >= 300 {
            let _ = self
                .sock
                .send_to(ack(&resp, seq, &branch2).as_bytes(), target);
        }
        Some(status)
    }
}
