//! The calls' RTP relays: ports from the configured pool, one
//! [`RelaySession`] per call, the transcoding transforms negotiation asks
//! for, and the relay events fed back to the core.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ahash::HashMap;
use media::codec::{CodecError, CodecKind};
use pbx::call::{Side, StreamChange, Transcoding};
use rtp_relay::{
    KernelForwarder, Leg, LegSetup, PortPool, PortRange, RelaySession, SessionEvent, SessionStats,
    Transcode, TranscodeCounters, TranscodeStats,
};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::config::{KernelForwarding, MediaSection};

/// Why a call could not get media.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// No free port pair (or the sockets could not be bound).
    #[error("no RTP ports available: {0}")]
    Ports(#[from] rtp_relay::Error),
}

/// A relay event of one call, for the core.
pub type CallMediaEvent = (u64, SessionEvent);

/// The relays of all calls.
pub struct MediaManager {
    pool: PortPool,
    runtime: Handle,
    timeout: Option<Duration>,
    public: Option<IpAddr>,
    sessions: HashMap<u64, Relay>,
    events: mpsc::UnboundedSender<CallMediaEvent>,
    /// Local address that routes to a peer, by peer IP.
    routes: HashMap<IpAddr, IpAddr>,
    /// In-kernel forwarding of latched streams, when available.
    kernel: Option<Arc<KernelForwarder>>,
}

/// A call's relay and what was last applied to each leg (remote, timeout,
/// transcoding).
struct Relay {
    session: RelaySession,
    applied: [Option<(Option<SocketAddr>, Option<Duration>)>; 2],
    /// RTP clock rate last set per leg (the relay starts at 8000).
    clock_rates: [u32; 2],
    transcoding: Option<Transcoding>,
    /// Counters of the transforms installed now, per leg (A's incoming, B's
    /// incoming).
    counters: Option<[Arc<TranscodeCounters>; 2]>,
    /// What transforms replaced earlier in the call counted.
    earlier: [TranscodeStats; 2],
}

/// The relay's view of one leg's negotiated format.
fn relay_format(f: &pbx::call::PayloadFormat) -> Result<rtp_relay::PayloadFormat, CodecError> {
    Ok(rtp_relay::PayloadFormat {
        codec: CodecKind::from_name(&f.codec)?,
        payload_type: f.payload_type,
        telephone_event: f.telephone_event.map(|t| (t.payload_type, t.clock_rate)),
    })
}

/// The transforms of RTP arriving on leg A (A's codec to B's) and on leg B
/// (the reverse).
fn transforms(plan: &Transcoding) -> Result<(Transcode, Transcode), CodecError> {
    let (a, b) = (relay_format(&plan.a)?, relay_format(&plan.b)?);
    Ok((Transcode::new(a, b)?, Transcode::new(b, a)?))
}

fn add(x: TranscodeStats, y: TranscodeStats) -> TranscodeStats {
    TranscodeStats {
        converted: x.converted + y.converted,
        events: x.events + y.events,
        comfort_noise: x.comfort_noise + y.comfort_noise,
        dropped: x.dropped + y.dropped,
    }
}

fn leg(side: Side) -> Leg {
    match side {
        Side::A => Leg::A,
        Side::B => Leg::B,
    }
}

fn random_u32() -> u32 {
    crate::core::random_u64() as u32
}

impl MediaManager {
    /// A manager for `cfg`; relay events go to `events`.
    pub fn new(
        cfg: &MediaSection,
        runtime: Handle,
        events: mpsc::UnboundedSender<CallMediaEvent>,
    ) -> anyhow::Result<MediaManager> {
        let (start, end) = cfg.port_range().map_err(anyhow::Error::msg)?;
        let pool = PortPool::new(cfg.bind_address, PortRange { start, end })?;
        let kernel = kernel_forwarder(cfg.kernel_forwarding, pool.available())?;
        Ok(MediaManager {
            pool,
            runtime,
            timeout: (cfg.media_timeout_s > 0).then(|| Duration::from_secs(cfg.media_timeout_s)),
            public: cfg.public_address,
            sessions: HashMap::default(),
            events,
            routes: HashMap::default(),
            kernel,
        })
    }

    /// The interfaces RTP is forwarded on in the kernel; empty when it is
    /// relayed in user space only.
    pub fn kernel_interfaces(&self) -> Vec<String> {
        self.kernel
            .as_ref()
            .map(|k| k.interfaces().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Free port pairs (for tests and metrics).
    pub fn available_ports(&self) -> usize {
        self.pool.available()
    }

    /// Live relays.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The address the PBX has towards `peer` (the source address the OS
    /// picks for it), for SDP and SIP headers.
    pub fn local_ip_towards(&mut self, peer: IpAddr) -> IpAddr {
        if let Some(ip) = self.routes.get(&peer) {
            return *ip;
        }
        let unspecified: IpAddr = match peer {
            IpAddr::V4(_) => [0, 0, 0, 0].into(),
            IpAddr::V6(_) => [0u16; 8].into(),
        };
        // connect() on UDP sends nothing; it asks the routing table.
        let ip = UdpSocket::bind(SocketAddr::new(unspecified, 0))
            .and_then(|s| {
                s.connect(SocketAddr::new(peer, 9))?;
                s.local_addr()
            })
            .map(|a| a.ip())
            .unwrap_or(unspecified);
        if self.routes.len() > 4096 {
            self.routes.clear();
        }
        self.routes.insert(peer, ip);
        ip
    }

    /// Starts the relay of call `id`; returns the local RTP addresses of
    /// legs A and B as written into SDP (towards `a_peer` and `b_peer`).
    pub fn start(
        &mut self,
        id: u64,
        a_peer: IpAddr,
        b_peer: IpAddr,
    ) -> Result<(SocketAddr, SocketAddr), MediaError> {
        let a = self.pool.allocate()?;
        let b = self.pool.allocate()?;
        let (a_port, b_port) = (a.port(), b.port());
        let setup = |ports| LegSetup {
            ports,
            relay: media::rtp::RelayConfig {
                signalled: None,
                // Armed on answer: a ringing call has no media yet.
                media_timeout: None,
                out_ssrc: random_u32(),
                initial_sequence: random_u32() as u16,
                initial_timestamp: random_u32(),
                ..Default::default()
            },
            transform: None,
        };
        let (a, b) = (setup(a), setup(b));
        let _guard = self.runtime.enter();
        let session =
            RelaySession::start_tagged(a, b, id, self.events.clone(), self.kernel.clone())?;
        self.sessions.insert(
            id,
            Relay {
                session,
                applied: [None; 2],
                clock_rates: [8000; 2],
                transcoding: None,
                counters: None,
                earlier: [TranscodeStats::default(); 2],
            },
        );
        let a_ip = self.public.unwrap_or_else(|| self.local_ip_towards(a_peer));
        let b_ip = self.public.unwrap_or_else(|| self.local_ip_towards(b_peer));
        Ok((SocketAddr::new(a_ip, a_port), SocketAddr::new(b_ip, b_port)))
    }

    /// Applies what signalling learnt about one side's stream.
    /// Only what changed reaches the relay task: a relatch to the same
    /// address would drop the latch (and wake the task for nothing).
    pub fn apply(&mut self, id: u64, change: StreamChange) {
        let Some(relay) = self.sessions.get_mut(&id) else {
            return;
        };
        let leg = leg(change.side);
        let sending = change.answered && change.remote.is_some() && change.direction.sends();
        let timeout = if sending { self.timeout } else { None };
        let slot = &mut relay.applied[change.side as usize];
        let (old_remote, old_timeout) = slot.unwrap_or((None, None));
        if slot.is_none() || old_remote != change.remote {
            relay.session.relatch(leg, change.remote);
        }
        if old_timeout != timeout {
            relay.session.set_media_timeout(leg, timeout);
        }
        *slot = Some((change.remote, timeout));
        let rate = &mut relay.clock_rates[change.side as usize];
        if change.clock_rate != 0 && *rate != change.clock_rate {
            *rate = change.clock_rate;
            relay.session.set_clock_rate(leg, change.clock_rate);
        }
        debug!(call = id, ?leg, remote = ?change.remote, direction = change.direction.as_str(), "media");
    }

    /// Installs, replaces (`Some`) or removes (`None`) the transcoding of
    /// call `id`'s relay, as the latest negotiation says.
    pub fn transcode(&mut self, id: u64, plan: Option<Transcoding>) {
        let Some(relay) = self.sessions.get_mut(&id) else {
            return;
        };
        if relay.transcoding == plan {
            return;
        }
        if let Some([a, b]) = relay.counters.take() {
            relay.earlier = [
                add(relay.earlier[0], a.snapshot()),
                add(relay.earlier[1], b.snapshot()),
            ];
        }
        let built = plan.as_ref().map(transforms).transpose();
        match built {
            Ok(Some((a_in, b_in))) => {
                debug!(call = id, a = %plan_name(&plan, Side::A), b = %plan_name(&plan, Side::B), "transcoding");
                relay.counters = Some([a_in.counters(), b_in.counters()]);
                relay.session.set_transform(Leg::A, Some(Box::new(a_in)));
                relay.session.set_transform(Leg::B, Some(Box::new(b_in)));
                relay.transcoding = plan;
            }
            Ok(None) => {
                debug!(call = id, "transcoding off: the legs share a codec");
                relay.session.set_transform(Leg::A, None);
                relay.session.set_transform(Leg::B, None);
                relay.transcoding = None;
            }
            Err(e) => {
                // Negotiation only appends codecs the engine has; this is a
                // configuration mismatch, and the call relays untouched.
                warn!(call = id, error = %e, "cannot transcode");
                relay.session.set_transform(Leg::A, None);
                relay.session.set_transform(Leg::B, None);
                relay.transcoding = None;
            }
        }
    }

    /// What the transcoding of call `id` did so far, for RTP arriving on
    /// leg A and on leg B; `None` if it was never transcoded.
    pub fn transcoded(&self, id: u64) -> Option<[TranscodeStats; 2]> {
        let relay = self.sessions.get(&id)?;
        let now = relay
            .counters
            .as_ref()
            .map(|[a, b]| [a.snapshot(), b.snapshot()])
            .unwrap_or_default();
        let total = [add(relay.earlier[0], now[0]), add(relay.earlier[1], now[1])];
        (relay.counters.is_some() || total != [TranscodeStats::default(); 2]).then_some(total)
    }

    /// Stops the relay of call `id`; its ports return to the pool once the
    /// relay task has closed them. Returns the last counters.
    pub fn stop(&mut self, id: u64) -> Option<SessionStats> {
        let relay = self.sessions.remove(&id)?;
        let stats = relay.session.stats();
        // Dropping aborts the task; its sockets close and the ports return
        // when the runtime drops it (no task spawned just to await it).
        drop(relay);
        Some(stats)
    }
}

/// Loads and attaches the kernel forwarder as `mode` asks, sized for
/// `pairs` port pairs (one rule per RTP port at most).
fn kernel_forwarder(
    mode: KernelForwarding,
    pairs: usize,
) -> anyhow::Result<Option<Arc<KernelForwarder>>> {
    if mode == KernelForwarding::Off {
        return Ok(None);
    }
    let loaded =
        KernelForwarder::new(u32::try_from(pairs).unwrap_or(u32::MAX)).and_then(|mut k| {
            k.attach_all()?;
            Ok(k)
        });
    match (loaded, mode) {
        (Ok(k), _) => Ok(Some(Arc::new(k))),
        (Err(e), KernelForwarding::On) => Err(anyhow::Error::new(e)
            .context("[media] kernel_forwarding = \"on\", but the kernel forwarder cannot run")),
        (Err(e), _) => {
            tracing::info!(reason = %e, "RTP is relayed in user space only (kernel forwarding unavailable)");
            Ok(None)
        }
    }
}

fn plan_name(plan: &Option<Transcoding>, side: Side) -> &str {
    plan.as_ref().map_or("-", |p| p.side(side).codec.as_str())
}

impl Drop for MediaManager {
    fn drop(&mut self) {
        if !self.sessions.is_empty() {
            warn!(calls = self.sessions.len(), "relays dropped at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pbx::call::PayloadFormat;
    use sip::sdp::Direction;
    use tokio::net::UdpSocket;

    fn g711(codec: &str, pt: u8) -> PayloadFormat {
        PayloadFormat {
            codec: codec.into(),
            payload_type: pt,
            clock_rate: 8000,
            telephone_event: None,
        }
    }

    /// An RTP packet with payload type `pt` and a 160-octet payload.
    fn rtp(pt: u8, seq: u16, payload: u8) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend([payload; 160]);
        p
    }

    /// Sends packets from phone A to its relay port until phone B receives
    /// one with payload type `pt`, and returns it. The relay task takes
    /// commands (remote addresses, transforms) and packets in any order, so
    /// the first packets may still meet the previous state (or no
    /// destination yet, and be dropped).
    async fn relayed_as(a: &UdpSocket, b: &UdpSocket, relay_a: SocketAddr, pt: u8) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        for seq in 1..50 {
            a.send_to(&rtp(0, seq, 0x10), relay_a).await.unwrap();
            let received =
                tokio::time::timeout(Duration::from_millis(200), b.recv_from(&mut buf)).await;
            if let Ok(Ok((n, _))) = received
                && buf[1] & 0x7f == pt
            {
                return buf[..n].to_vec();
            }
        }
        panic!("never relayed with payload type {pt}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transforms_are_installed_and_removed_as_negotiated() {
        let cfg = MediaSection {
            rtp_ports: "31000-31099".into(),
            bind_address: [127, 0, 0, 1].into(),
            ..MediaSection::default()
        };
        let (events, _rx) = mpsc::unbounded_channel();
        let mut media = MediaManager::new(&cfg, Handle::current(), events).unwrap();
        let loopback: IpAddr = [127, 0, 0, 1].into();
        let (relay_a, _) = media.start(1, loopback, loopback).unwrap();
        let phone_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let phone_b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for (side, phone) in [(Side::A, &phone_a), (Side::B, &phone_b)] {
            media.apply(
                1,
                StreamChange {
                    side,
                    remote: Some(phone.local_addr().unwrap()),
                    direction: Direction::SendRecv,
                    answered: true,
                    clock_rate: 8000,
                },
            );
        }
        let plan = Transcoding {
            a: g711("PCMU", 0),
            b: g711("PCMA", 8),
        };
        media.transcode(1, Some(plan.clone()));
        let out = relayed_as(&phone_a, &phone_b, relay_a, 8).await;
        // A's PCMU leaves as PCMA, octet by octet through the G.711 table.
        assert_eq!(out.len(), 12 + 160);
        assert!(
            out[12..]
                .iter()
                .all(|&b| b == media::codec::g711::ulaw_to_alaw(0x10))
        );
        // The same plan again changes nothing; then the legs share a codec
        // and the relay forwards untouched.
        media.transcode(1, Some(plan));
        media.transcode(1, None);
        let out = relayed_as(&phone_a, &phone_b, relay_a, 0).await;
        assert_eq!(out[12], 0x10);
        let stats = media.transcoded(1).expect("it transcoded");
        assert!(
            stats[0].converted >= 1 && stats[1].converted == 0,
            "{stats:?}"
        );
        media.stop(1);
    }
}
