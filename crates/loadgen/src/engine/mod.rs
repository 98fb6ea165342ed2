//! The single-threaded event loop: registrations, UAC and UAS call state
//! machines, the RTP pacer and receivers.

mod register;
mod rtp_io;
mod uac;
mod uac_in;
mod uas;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip::{HeaderName, Message, Request, Response};

use crate::Config;
use crate::net::{self, Epoll};
use crate::report::Report;
use crate::rtp::{PACKET_LEN, PortPool, Side, Stream};
use crate::sipmsg::{self, Rng};
use register::{Reg, RegState};
use uac::UacCall;
use uas::UasCall;

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const SLOTS: usize = 20;
const SLOT: Duration = Duration::from_millis(1);
const SCAN_EVERY: Duration = Duration::from_millis(5);
const DIRECT_REALM: &str = "loadgen";
const TOKEN_UAC: u64 = u64::MAX;
const TOKEN_UAS: u64 = u64::MAX - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Register,
    Calls,
    Finish,
}

struct Engine {
    cfg: Config,
    rng: Rng,
    run_id: String,
    ep: Epoll,
    uac_sock: UdpSocket,
    uas_sock: UdpSocket,
    uac_addr: SocketAddr,
    uas_addr: SocketAddr,
    target: SocketAddr,
    domain: String,
    calls: Vec<UacCall>,
    active_calls: Vec<usize>,
    uas: Vec<UasCall>,
    uas_map: HashMap<String, usize>,
    active_uas: Vec<usize>,
    regs: Vec<Reg>,
    regs_next: usize,
    regs_inflight: usize,
    streams: Vec<Stream>,
    free_streams: Vec<usize>,
    wheel: Vec<Vec<(u32, u32)>>,
    wheel_cursor: usize,
    wheel_rr: usize,
    next_tick: Instant,
    ports: PortPool,
    pkt: [u8; PACKET_LEN],
    rxbuf: Vec<u8>,
    report: Report,
    concurrent: u64,
    phase: Phase,
    start: Instant,
    calls_start: Instant,
    finish_at: Option<Instant>,
    /// Direct mode with challenge: the authenticating side.
    direct_auth: Option<sip::auth::DigestAuth>,
    /// Call-ID → branch of INVITEs answered 407 (to check their ACK).
    challenged: HashMap<String, String>,
}

/// Runs a load test to completion and returns its report.
pub fn run(cfg: Config) -> anyhow::Result<Report> {
    let mut e = Engine::new(cfg)?;
    e.main_loop()?;
    Ok(e.finish())
}

/// Sends one SIP datagram; errors (ICMP unreachable, full buffer) are
/// left to the retransmission timers.
fn send_udp(sock: &UdpSocket, bytes: &[u8], to: SocketAddr) {
    let _ = sock.send_to(bytes, to);
}

/// Doubles a retransmission interval (capped at T2) and re-arms its timer.
fn back_off(iv: &mut Duration, at: &mut Instant, now: Instant) {
    *iv = (*iv * 2).min(T2);
    *at = now + *iv;
}

/// The `Authorization` (401) or `Proxy-Authorization` (407) header line
/// answering the digest challenge in `resp`; `None` if it has none usable.
fn challenge_reply(
    rng: &mut Rng,
    resp: &Response,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> Option<String> {
    let (chal, hdr) = if resp.status.0 == 401 {
        (HeaderName::WwwAuthenticate, "Authorization")
    } else {
        (HeaderName::ProxyAuthenticate, "Proxy-Authorization")
    };
    let cnonce = sipmsg::token(rng);
    let cred = sipmsg::authorization(
        resp.headers.get_all(&chal).map(|b| &b[..]),
        user,
        password,
        method,
        uri,
        &cnonce,
    )?;
    Some(format!("{hdr}: {cred}"))
}

fn bind_sip(ip: std::net::IpAddr, port: u16) -> anyhow::Result<UdpSocket> {
    net::bind_udp(SocketAddr::new(ip, port), Some(8 << 20))
        .map_err(|e| anyhow::anyhow!("bind SIP {ip}:{port}: {e}"))
}

impl Engine {
    fn new(cfg: Config) -> anyhow::Result<Engine> {
        anyhow::ensure!(
            cfg.calls == 0 || !cfg.callers.is_empty(),
            "no caller extensions"
        );
        anyhow::ensure!(
            cfg.calls == 0 || !cfg.callees.is_empty(),
            "no callee extensions"
        );
        anyhow::ensure!(cfg.rate > 0.0, "rate must be positive");
        anyhow::ensure!(cfg.rtp_ports.0 <= cfg.rtp_ports.1, "empty RTP port range");
        let uac_sock = bind_sip(cfg.local_ip, cfg.sip_port_uac)?;
        let uas_sock = bind_sip(cfg.local_ip, cfg.sip_port_uas)?;
        let uac_addr = uac_sock.local_addr()?;
        let uas_addr = uas_sock.local_addr()?;
        let ep = Epoll::new(1024)?;
        ep.add(uac_sock.as_raw_fd(), TOKEN_UAC)?;
        ep.add(uas_sock.as_raw_fd(), TOKEN_UAS)?;
        let target = if cfg.direct { uas_addr } else { cfg.server };
        let domain = cfg.domain.clone().unwrap_or_else(|| {
            if target.port() == 5060 {
                sipmsg::host_str(target.ip())
            } else {
                sipmsg::hostport(target)
            }
        });
        let mut rng = Rng::from_entropy();
        let run_id = sipmsg::token(&mut rng);
        let now = Instant::now();
        let mut pkt = [0xffu8; PACKET_LEN]; // PCMU silence after the probe
        pkt[..12].fill(0);
        let regs = if cfg.direct || !cfg.register {
            Vec::new()
        } else {
            // Each callee once, even if listed twice.
            let mut seen = std::collections::HashSet::new();
            cfg.callees
                .iter()
                .filter(|c| seen.insert(c.as_str()))
                .enumerate()
                .map(|(i, user)| Reg {
                    state: RegState::Idle,
                    call_id: format!("r{i}.{run_id}@{}", sipmsg::host_str(cfg.local_ip)),
                    from: user.clone(),
                    cseq: 0,
                    pending: Vec::new(),
                    retrans_at: now,
                    retrans_iv: T1,
                    deadline: now,
                    tries: 0,
                })
                .collect()
        };
        let report = Report {
            mode: if cfg.direct { "direct" } else { "pbx" },
            ..Report::default()
        };
        Ok(Engine {
            phase: if regs.is_empty() {
                Phase::Calls
            } else {
                Phase::Register
            },
            ports: PortPool::new(cfg.rtp_ports.0, cfg.rtp_ports.1),
            rng,
            run_id,
            ep,
            uac_sock,
            uas_sock,
            uac_addr,
            uas_addr,
            target,
            domain,
            calls: Vec::with_capacity(cfg.calls),
            active_calls: Vec::new(),
            uas: Vec::new(),
            uas_map: HashMap::new(),
            active_uas: Vec::new(),
            regs,
            regs_next: 0,
            regs_inflight: 0,
            streams: Vec::new(),
            free_streams: Vec::new(),
            wheel: vec![Vec::new(); SLOTS],
            wheel_cursor: 0,
            wheel_rr: 0,
            next_tick: now,
            pkt,
            rxbuf: vec![0; 65536],
            report,
            concurrent: 0,
            start: now,
            calls_start: now,
            finish_at: None,
            direct_auth: (cfg.direct && cfg.direct_challenge).then(|| {
                sip::auth::DigestAuth::new(
                    DIRECT_REALM,
                    vec![sip::auth::Algorithm::Md5],
                    now,
                    Duration::from_secs(300),
                )
            }),
            challenged: HashMap::new(),
            cfg,
        })
    }

    fn log(&self, msg: impl FnOnce() -> String) {
        if self.cfg.verbose {
            eprintln!("loadgen: {}", msg());
        }
    }

    // ----------------------------------------------------------------- loop

    fn main_loop(&mut self) -> anyhow::Result<()> {
        let mut ready = Vec::with_capacity(1024);
        let mut next_scan = Instant::now();
        let mut next_progress = self.cfg.progress.map(|p| Instant::now() + p);
        let hard_deadline = Instant::now()
            + Duration::from_secs_f64(self.cfg.calls as f64 / self.cfg.rate)
            + self.cfg.hold
            + self.cfg.timeout * 3
            + Duration::from_secs(30 + self.regs.len() as u64 / 50);
        loop {
            let now = Instant::now();
            self.pace(now);
            if now >= next_scan {
                self.scan(now);
                next_scan = now + SCAN_EVERY;
                if self.phase == Phase::Finish || now >= hard_deadline {
                    if now >= hard_deadline {
                        eprintln!("loadgen: hard deadline reached, stopping");
                    }
                    return Ok(());
                }
            }
            if let Some(p) = next_progress
                && now >= p
            {
                self.progress(now);
                next_progress = Some(p + self.cfg.progress.unwrap_or_default());
            }
            let until = self.next_tick.min(next_scan);
            let wait = until.saturating_duration_since(Instant::now());
            self.ep.wait(wait, &mut ready)?;
            for &tok in &ready {
                match tok {
                    TOKEN_UAC => self.drain_sip(Side::Uac),
                    TOKEN_UAS => self.drain_sip(Side::Uas),
                    t => self.recv_rtp(t as usize),
                }
            }
        }
    }

    fn progress(&self, now: Instant) {
        let t = now.duration_since(self.start).as_secs_f64();
        let cpu = net::process_cpu_us() as f64 / 1e6;
        eprintln!(
            "loadgen: t={t:.0}s registered={} attempted={} established={} failed={} up={} rtp fwd {}/{} rev {}/{} cpu={:.1}%",
            self.report.registered,
            self.report.attempted,
            self.report.established,
            self.report.failed_total(),
            self.concurrent,
            self.report.fwd.received,
            self.report.fwd.sent,
            self.report.rev.received,
            self.report.rev.sent,
            cpu / t.max(0.001) * 100.0
        );
    }

    fn finish(mut self) -> Report {
        // Streams still open (hard deadline): account their jitter.
        for i in 0..self.streams.len() {
            self.close_stream(i);
        }
        let mut r = self.report;
        r.duration_s = self.start.elapsed().as_secs_f64();
        r.cpu_us = net::process_cpu_us();
        r
    }

    // ----------------------------------------------------------------- SIP I/O

    fn drain_sip(&mut self, side: Side) {
        for _ in 0..256 {
            let sock = if side == Side::Uac {
                &self.uac_sock
            } else {
                &self.uas_sock
            };
            let r = match net::recv_ts(sock.as_raw_fd(), &mut self.rxbuf) {
                Ok(Some(r)) => r,
                _ => return,
            };
            let buf = Bytes::copy_from_slice(&self.rxbuf[..r.len]);
            if buf.iter().all(|b| b.is_ascii_whitespace()) {
                continue; // keep-alive
            }
            let msg = match Message::parse(buf) {
                Ok(m) => m,
                Err(e) => {
                    self.log(|| format!("unparsable SIP from {}: {e}", r.from));
                    continue;
                }
            };
            let now = Instant::now();
            match (side, msg) {
                (Side::Uac, Message::Response(resp)) => self.uac_response(resp, now),
                (Side::Uas, Message::Response(resp)) => self.reg_response(resp, now),
                (Side::Uac, Message::Request(req)) => self.uac_request(req, r.from, now),
                (Side::Uas, Message::Request(req)) => self.uas_request(req, r.from, now),
            }
        }
    }

    fn respond(&self, side: Side, req: &Request, to: SocketAddr, code: u16, reason: &str) {
        let b = sipmsg::response(req, code, reason, None, &[], None);
        let sock = if side == Side::Uac {
            &self.uac_sock
        } else {
            &self.uas_sock
        };
        send_udp(sock, &b, to);
    }

    /// 481 to a request for a dialog we do not know.
    fn no_such_call(&self, side: Side, req: &Request, to: SocketAddr) {
        self.respond(side, req, to, 481, "Call/Transaction Does Not Exist");
    }

    /// Answers a re-INVITE with 200 + our SDP (`contact` is the Contact
    /// value) and follows the new remote RTP address, if any.
    fn answer_reinvite(
        &mut self,
        side: Side,
        req: &Request,
        to: SocketAddr,
        stream: Option<usize>,
        contact: &str,
        sdp: &str,
    ) {
        if let (Some(addr), Some(s)) = (sipmsg::sdp_audio_addr(&req.body), stream) {
            self.streams[s].remote = Some(addr);
        }
        let extra = [format!("Contact: {contact}")];
        let b = sipmsg::response(req, 200, "OK", None, &extra, Some(sdp));
        let sock = if side == Side::Uac {
            &self.uac_sock
        } else {
            &self.uas_sock
        };
        send_udp(sock, &b, to);
    }

    // ----------------------------------------------------------------- scan

    fn scan(&mut self, now: Instant) {
        match self.phase {
            Phase::Register => {
                self.scan_regs(now);
                if self.regs_next >= self.regs.len() && self.regs_inflight == 0 {
                    self.report.register_s = now.duration_since(self.start).as_secs_f64();
                    self.phase = Phase::Calls;
                    self.calls_start = now;
                }
            }
            Phase::Calls => {
                self.launch_calls(now);
            }
            Phase::Finish => {}
        }
        self.scan_calls(now);
        self.scan_uas(now);
        if self.phase == Phase::Calls
            && self.calls.len() >= self.cfg.calls
            && self.active_calls.is_empty()
        {
            // Let the UAS side see its last BYEs (and ACK timeouts) through.
            let fin = *self
                .finish_at
                .get_or_insert(now + Duration::from_millis(300));
            if now >= fin || self.active_uas.is_empty() {
                self.phase = Phase::Finish;
            }
        }
    }
}
