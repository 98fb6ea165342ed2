//! Relay CPU per call under G.711-like load, on loopback.
//!
//! N sessions, two "phones" each sending 50 packets/s of 172-byte RTP
//! (20 ms of PCMU) into their leg; the relay forwards to the other phone.
//! One generator thread paces all sends, one receiver thread drains all
//! phones every millisecond (without sleeping in `epoll_wait`, so the
//! relay's sends do not pay for waking it). After a warm-up second, the CPU time of the relay threads only
//! (`/proc/self/task/*/schedstat`) is measured over T seconds.
//!
//! ```text
//! relay_load [--mode engine|tokio] [--sessions 1000] [--secs 10]
//!            [--threads 2] [--ports 24000]
//! ```
//! `engine`: [`RelayEngine`] with `--threads` threads; `tokio`: one
//! [`RelaySession`] task per call on a multi-thread runtime with
//! `--threads` workers (what the server does today).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use media::rtp::RelayConfig;
use rtp_relay::{Leg, LegSetup, PortPool, PortRange, RelayEngine, RelaySession, SessionStats};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PACKET: usize = 172;
const PTIME: Duration = Duration::from_millis(20);

struct Args {
    mode: String,
    sessions: usize,
    secs: u64,
    threads: usize,
    ports: u16,
}

fn args() -> Args {
    let mut a = Args {
        mode: "engine".into(),
        sessions: 1000,
        secs: 10,
        threads: 2,
        ports: 24000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--mode" => a.mode = value,
            "--sessions" => a.sessions = value.parse().expect("--sessions"),
            "--secs" => a.secs = value.parse().expect("--secs"),
            "--threads" => a.threads = value.parse().expect("--threads"),
            "--ports" => a.ports = value.parse().expect("--ports"),
            _ => panic!("unknown flag {flag}"),
        }
    }
    assert!(
        a.mode == "engine" || a.mode == "tokio",
        "--mode engine|tokio"
    );
    a
}

enum Sessions {
    Engine(RelayEngine, Vec<rtp_relay::EngineSession>),
    Tokio(tokio::runtime::Runtime, Vec<RelaySession>),
}

impl Sessions {
    fn stats(&self) -> Vec<SessionStats> {
        match self {
            Sessions::Engine(_, s) => s.iter().map(|s| s.stats()).collect(),
            Sessions::Tokio(_, s) => s.iter().map(|s| s.stats()).collect(),
        }
    }
}

/// CPU nanoseconds of this process's threads whose name starts with
/// `prefix`.
fn thread_cpu_ns(prefix: &str) -> (u64, usize) {
    let mut total = 0;
    let mut count = 0;
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = entry.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let Ok(sched) = std::fs::read_to_string(dir.join("schedstat")) else {
            continue;
        };
        if let Some(ns) = sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            total += ns;
            count += 1;
        }
    }
    (total, count)
}

fn main() {
    let args = args();
    let n = args.sessions;
    let pool = PortPool::new(
        LOCALHOST,
        PortRange {
            start: args.ports,
            end: args.ports + (n * 4 + 40) as u16,
        },
    )
    .expect("pool");
    let phones: Vec<[UdpSocket; 2]> = (0..n)
        .map(|_| {
            [0, 1].map(|_| {
                let s = UdpSocket::bind((LOCALHOST, 0)).expect("phone socket");
                s.set_nonblocking(true).unwrap();
                s
            })
        })
        .collect();
    let config = |phone: &UdpSocket, out_ssrc: u32| RelayConfig {
        signalled: Some(phone.local_addr().unwrap()),
        media_timeout: Some(Duration::from_secs(30)),
        out_ssrc,
        ..RelayConfig::default()
    };
    let setups = phones.iter().enumerate().map(|(i, [pa, pb])| {
        let a = LegSetup {
            ports: pool.allocate().expect("ports"),
            relay: config(pa, 0x1000_0000 + i as u32),
        };
        let b = LegSetup {
            ports: pool.allocate().expect("ports"),
            relay: config(pb, 0x2000_0000 + i as u32),
        };
        (a, b)
    });
    let (events, mut event_rx) = tokio::sync::mpsc::unbounded_channel();
    let (sessions, targets, prefix): (Sessions, Vec<[SocketAddr; 2]>, &str) =
        if args.mode == "engine" {
            let engine = RelayEngine::new(args.threads).expect("engine");
            let s: Vec<_> = setups
                .enumerate()
                .map(|(i, (a, b))| engine.start_tagged(a, b, i as u64, events.clone()).unwrap())
                .collect();
            let t = s
                .iter()
                .map(|s| [s.local_addr(Leg::A), s.local_addr(Leg::B)])
                .collect();
            (Sessions::Engine(engine, s), t, "rtp-relay-")
        } else {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.threads)
                .thread_name("relay-tokio")
                .enable_all()
                .build()
                .unwrap();
            let s: Vec<_> = {
                let _guard = rt.enter();
                setups
                    .enumerate()
                    .map(|(i, (a, b))| {
                        RelaySession::start_tagged(a, b, i as u64, events.clone()).unwrap()
                    })
                    .collect()
            };
            let t = s
                .iter()
                .map(|s| [s.local_addr(Leg::A), s.local_addr(Leg::B)])
                .collect();
            (Sessions::Tokio(rt, s), t, "relay-tokio")
        };
    drop(events);

    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let phones = Arc::new(phones);

    // Receiver: one mio poll over all phones.
    let receiver = {
        let (stop, received, phones) = (stop.clone(), received.clone(), phones.clone());
        std::thread::Builder::new()
            .name("load-recv".into())
            .spawn(move || {
                use mio::{Events, Interest, Poll, Token};
                let mut poll = Poll::new().unwrap();
                let mut socks: Vec<mio::net::UdpSocket> = phones
                    .iter()
                    .flat_map(|p| p.iter())
                    .map(|s| mio::net::UdpSocket::from_std(s.try_clone().unwrap()))
                    .collect();
                for (i, s) in socks.iter_mut().enumerate() {
                    poll.registry()
                        .register(s, Token(i), Interest::READABLE)
                        .unwrap();
                }
                let mut events = Events::with_capacity(1024);
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    // Not parked in epoll_wait: a relayed packet then costs
                    // the relay's sendto no wake-up of this thread (a real
                    // phone is on another host), and loopback charges the
                    // relay only the delivery into the phone's socket.
                    std::thread::sleep(Duration::from_millis(1));
                    poll.poll(&mut events, Some(Duration::ZERO)).ok();
                    let mut got = 0;
                    for e in &events {
                        while socks[e.token().0].recv_from(&mut buf).is_ok() {
                            got += 1;
                        }
                    }
                    received.fetch_add(got, Ordering::Relaxed);
                }
            })
            .unwrap()
    };

    // Generator: every millisecond, the share of phones due in this tick.
    let generator = {
        let (stop, sent, phones) = (stop.clone(), sent.clone(), phones.clone());
        let targets = targets.clone();
        std::thread::Builder::new()
            .name("load-send".into())
            .spawn(move || {
                let ticks = PTIME.as_millis() as usize;
                let mut packets: Vec<[[u8; PACKET]; 2]> = (0..phones.len())
                    .map(|i| {
                        [0u32, 1].map(|side| {
                            let mut p = [0xD5u8; PACKET];
                            p[0] = 0x80;
                            p[1] = 0; // PCMU
                            p[8..12].copy_from_slice(
                                &(0xCAFE_0000 + 2 * i as u32 + side).to_be_bytes(),
                            );
                            p
                        })
                    })
                    .collect();
                let mut seq: u16 = 0;
                let start = Instant::now();
                let mut tick = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let due = start + Duration::from_millis(tick);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let slice = (tick as usize) % ticks;
                    if slice == 0 {
                        seq = seq.wrapping_add(1);
                    }
                    let ts = u32::from(seq) * 160;
                    let mut count = 0;
                    for i in (slice..phones.len()).step_by(ticks) {
                        for side in 0..2 {
                            let p = &mut packets[i][side];
                            p[2..4].copy_from_slice(&seq.to_be_bytes());
                            p[4..8].copy_from_slice(&ts.to_be_bytes());
                            if phones[i][side].send_to(p, targets[i][side]).is_ok() {
                                count += 1;
                            }
                        }
                    }
                    sent.fetch_add(count, Ordering::Relaxed);
                    tick += 1;
                }
            })
            .unwrap()
    };

    // Warm-up (everyone latched, buffers steady), then the measured window.
    std::thread::sleep(Duration::from_secs(1));
    let (cpu0, threads) = thread_cpu_ns(prefix);
    let (gen0, _) = thread_cpu_ns("load-send");
    let (sent0, recv0) = (
        sent.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
    );
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(args.secs));
    let (cpu1, _) = thread_cpu_ns(prefix);
    let (gen1, _) = thread_cpu_ns("load-send");
    let wall = t0.elapsed().as_secs_f64();
    let (sent1, recv1) = (
        sent.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
    );
    stop.store(true, Ordering::Relaxed);
    generator.join().unwrap();
    receiver.join().unwrap();

    let cpu = (cpu1 - cpu0) as f64 / 1e9;
    let (sent, relayed) = (sent1 - sent0, recv1 - recv0);
    let stats = sessions.stats();
    let (mut out, mut failed, mut dropped) = (0u64, 0u64, 0u64);
    for s in &stats {
        for leg in [&s.a, &s.b] {
            out += leg.relay.packets_out;
            failed += leg.send_failed;
            dropped += leg.relay.dropped_strangers + leg.relay.dropped_unexpected;
        }
    }
    let mut events = 0;
    while event_rx.try_recv().is_ok() {
        events += 1;
    }
    println!(
        "mode={} sessions={n} threads={} (measured {threads}) window={wall:.2}s",
        args.mode, args.threads
    );
    println!(
        "packets: sent {sent} ({:.0}/s), relayed+received {relayed} ({:.0}/s); session totals: out {out}, send_failed {failed}, dropped {dropped}, events {events}",
        sent as f64 / wall,
        relayed as f64 / wall
    );
    println!(
        "relay CPU: {cpu:.3} s = {:.1} % of a core; {:.2} us per relayed packet; {:.4} % of a core per session",
        100.0 * cpu / wall,
        1e6 * cpu / relayed.max(1) as f64,
        100.0 * cpu / wall / n as f64
    );
    // The floor on loopback: the generator does one sendto per packet and
    // little else (its sendto also delivers into the relay's socket).
    println!(
        "baseline: generator {:.2} us per sendto (one bare loopback send)",
        (gen1 - gen0) as f64 / 1e3 / sent.max(1) as f64
    );
    match sessions {
        Sessions::Engine(engine, s) => {
            drop(s);
            drop(engine);
        }
        Sessions::Tokio(rt, s) => {
            drop(s);
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
