//! The RTP side of the engine: the 20-slot pacer, per-call media streams
//! and their receivers.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::{Engine, SLOT, SLOTS};
use crate::net;
use crate::rtp::{self, Side, Stream};

/// Datagrams read from one RTP socket per readiness event.
const RECV_BATCH: usize = 16;

impl Engine {
    pub(super) fn pace(&mut self, now: Instant) {
        // Fell far behind (suspended, overloaded): skip instead of bursting.
        if now.saturating_duration_since(self.next_tick) > Duration::from_millis(100) {
            let behind = now.duration_since(self.next_tick).as_micros() as u64;
            self.report.sender_lag_us.record(behind);
            let skip = (behind / 1000) as usize;
            self.wheel_cursor = (self.wheel_cursor + skip) % SLOTS;
            self.next_tick += SLOT * skip as u32;
        }
        while now >= self.next_tick {
            let lag = now.duration_since(self.next_tick).as_micros() as u64;
            let mut slot = std::mem::take(&mut self.wheel[self.wheel_cursor]);
            if !slot.is_empty() {
                self.report.sender_lag_us.record(lag);
            }
            slot.retain(|&(i, g)| {
                let s = &mut self.streams[i as usize];
                if s.generation != g || !s.sending {
                    return false;
                }
                let d = if s.side == Side::Uac {
                    &mut self.report.fwd
                } else {
                    &mut self.report.rev
                };
                let before = (s.sent, s.send_errors);
                s.send(&mut self.pkt);
                d.sent += s.sent - before.0;
                d.send_errors += s.send_errors - before.1;
                true
            });
            self.wheel[self.wheel_cursor] = slot;
            self.wheel_cursor = (self.wheel_cursor + 1) % SLOTS;
            self.next_tick += SLOT;
        }
    }

    pub(super) fn open_stream(&mut self, side: Side, owner: u32) -> Option<usize> {
        let tries = (self.cfg.rtp_ports.1 - self.cfg.rtp_ports.0) as usize / 2 + 1;
        for _ in 0..tries {
            let port = self.ports.take()?;
            let Ok(sock) = net::bind_udp(SocketAddr::new(self.cfg.local_ip, port), None) else {
                continue; // in use by someone else: skip it for good
            };
            let fd = sock.as_raw_fd();
            let ssrc = self.rng.next_u64() as u32;
            let idx = match self.free_streams.pop() {
                Some(i) => {
                    let g = self.streams[i].generation.wrapping_add(1);
                    self.streams[i] = Stream::new(sock, fd, port, side, owner, ssrc, g);
                    i
                }
                None => {
                    self.streams
                        .push(Stream::new(sock, fd, port, side, owner, ssrc, 0));
                    self.streams.len() - 1
                }
            };
            if self.ep.add(fd, idx as u64).is_err() {
                self.close_stream(idx);
                return None;
            }
            return Some(idx);
        }
        None
    }

    pub(super) fn start_sending(&mut self, idx: usize) {
        let s = &mut self.streams[idx];
        if s.sending || s.remote.is_none() || s.sock.is_none() {
            return;
        }
        s.sending = true;
        // Spread streams over the slots; the first packet goes at the next
        // pass of this one.
        let slot = (self.wheel_cursor + 1 + self.wheel_rr) % SLOTS;
        self.wheel_rr = (self.wheel_rr + 7) % SLOTS;
        self.wheel[slot].push((idx as u32, s.generation));
    }

    pub(super) fn stop_sending(&mut self, idx: usize) {
        self.streams[idx].sending = false;
    }

    pub(super) fn close_stream(&mut self, idx: usize) {
        let s = &mut self.streams[idx];
        let Some(sock) = s.sock.take() else {
            return;
        };
        s.sending = false;
        self.ep.delete(sock.as_raw_fd());
        drop(sock);
        let d = if s.side == Side::Uac {
            &mut self.report.rev
        } else {
            &mut self.report.fwd
        };
        if s.received > 1 {
            d.jitter.record((s.jitter_ns / 1000.0) as u64);
        }
        self.ports.give(s.port);
        self.free_streams.push(idx);
    }

    /// Reads what is queued on stream `idx`'s socket (up to a cap, so one
    /// flooded socket cannot starve the others): reading one datagram per
    /// readiness event falls behind for good once a backlog forms.
    pub(super) fn recv_rtp(&mut self, idx: usize) {
        for _ in 0..RECV_BATCH {
            if !self.recv_rtp_one(idx) {
                return;
            }
        }
    }

    /// Reads and accounts one datagram; false when nothing was queued.
    fn recv_rtp_one(&mut self, idx: usize) -> bool {
        let Some(s) = self.streams.get(idx) else {
            return false;
        };
        if s.sock.is_none() {
            return false;
        }
        let fd = s.fd;
        let r = match net::recv_ts(fd, &mut self.rxbuf) {
            Ok(Some(r)) => r,
            _ => return false,
        };
        let side = s.side;
        let owner = s.owner;
        let (d, peer_side) = match side {
            Side::Uas => (&mut self.report.fwd, Side::Uac),
            Side::Uac => (&mut self.report.rev, Side::Uas),
        };
        let Some(p) = rtp::parse_probe(&self.rxbuf[..r.len]) else {
            d.foreign += 1;
            return true;
        };
        if p.side != peer_side as u8 {
            d.misrouted += 1;
            return true;
        }
        // Learn / check the pairing of the two ends of each call.
        let (uac_idx, uas_idx) = match side {
            Side::Uas => (p.owner as usize, owner as usize),
            Side::Uac => (owner as usize, p.owner as usize),
        };
        let (Some(c), Some(u)) = (self.calls.get(uac_idx), self.uas.get(uas_idx)) else {
            d.misrouted += 1;
            return true;
        };
        match (c.uas_peer, u.peer_call) {
            (None, None) => {
                self.calls[uac_idx].uas_peer = Some(uas_idx as u32);
                self.uas[uas_idx].peer_call = Some(uac_idx as u32);
            }
            (Some(a), Some(b)) if a as usize == uas_idx && b as usize == uac_idx => {}
            _ => {
                d.misrouted += 1;
                return true;
            }
        }
        let s = &mut self.streams[idx];
        let d = match side {
            Side::Uas => &mut self.report.fwd,
            Side::Uac => &mut self.report.rev,
        };
        s.on_probe(p.counter, p.send_ns, r.ts_ns, d);
        true
    }
}
