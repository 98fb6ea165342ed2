//! The forwarding program, generated instruction by instruction.
//!
//! It runs on TCX ingress for every packet of the interfaces it is attached
//! to. A packet is forwarded in the kernel only if all of these hold, and
//! handed on untouched (`TCX_NEXT`) otherwise, so the user-space relay sees
//! it as before:
//! - IPv4 without options or fragmentation, UDP, RTP version 2 and not an
//!   RTCP packet type (RFC 5761 section 4);
//! - (source address, source port, destination port) is a key of the map,
//!   i.e. a latched stream of a relay session;
//! - its SSRC is the one the entry was installed for (a new source goes to
//!   user space, which re-computes the offsets and replaces the entry).
//!
//! Forwarding rewrites what the user-space relay rewrites: addresses and
//! ports (the packet now leaves the PBX's other leg towards the other
//! phone), SSRC, sequence number and timestamp offsets, and payload type
//! renumbering; fixes the IPv4 and UDP checksums incrementally (the kernel
//! helpers handle partial and complete checksum offload); counts the packet
//! and notes its time and the newest sequence number sent. A destination on
//! this host leaves through the loopback interface (redirected to its
//! egress, so it is delivered, and seen by packet captures, like a packet
//! the PBX sent); any other leaves the interface that holds the new source
//! address, routed by the kernel, which fills in (and if need be resolves)
//! the next hop's MAC address (`bpf_redirect_neigh`).

use crate::asm::{Alu, Asm, Cond, FP, Insn, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, Reg, Size};

/// Map key: the latched source and the PBX port it sends to.
/// `remote_ip` (4, network order), `local_port` (2, network order),
/// `remote_port` (2, network order).
pub const KEY_SIZE: usize = 8;

/// Offsets in the map value.
pub mod value {
    /// New source IPv4 address (network order).
    pub const SRC_IP: usize = 0;
    /// New destination IPv4 address.
    pub const DST_IP: usize = 4;
    /// New source UDP port (network order).
    pub const SRC_PORT: usize = 8;
    /// New destination UDP port.
    pub const DST_PORT: usize = 10;
    /// SSRC the entry applies to (network order).
    pub const IN_SSRC: usize = 12;
    /// SSRC written (network order).
    pub const OUT_SSRC: usize = 16;
    /// Added to the timestamp (host order).
    pub const TS_OFFSET: usize = 20;
    /// Added to the sequence number (host order).
    pub const SEQ_OFFSET: usize = 24;
    /// [`super::FLAG_REMOTE`] and friends.
    pub const FLAGS: usize = 26;
    /// Four (incoming, outgoing) payload type pairs; unused ones hold 0xff.
    pub const PT_MAP: usize = 28;
    /// Number of payload type pairs.
    pub const PT_PAIRS: usize = 4;
    /// Newest outgoing sequence number (host order), kept by the program.
    pub const LAST_SEQ: usize = 36;
    /// Outgoing timestamp of that packet (host order).
    pub const LAST_TS: usize = 40;
    /// Off this host: the interface to send from (the one holding the new
    /// source address).
    pub const EGRESS_IFINDEX: usize = 44;
    /// Packets forwarded (atomic).
    pub const PACKETS: usize = 48;
    /// UDP payload octets forwarded (atomic).
    pub const BYTES: usize = 56;
    /// `CLOCK_MONOTONIC` nanoseconds of the last packet forwarded.
    pub const LAST_NS: usize = 64;
    /// Size of the value.
    pub const SIZE: usize = 72;
}

/// The destination is not on this host: redirect to the egress interface
/// with the neighbour's address (else: out through loopback).
pub const FLAG_REMOTE: u8 = 1;

/// TCX verdicts.
pub const TCX_NEXT: i32 = -1;
/// `TC_ACT_REDIRECT`.
pub const TCX_REDIRECT: u32 = 7;

/// The loopback interface's index, the same in every network namespace.
const LOOPBACK_IFINDEX: i32 = 1;

/// Kernel helper ids (uapi `__BPF_FUNC_MAPPER` order).
mod helper {
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const KTIME_GET_NS: i32 = 5;
    pub const SKB_STORE_BYTES: i32 = 9;
    pub const L3_CSUM_REPLACE: i32 = 10;
    pub const L4_CSUM_REPLACE: i32 = 11;
    pub const REDIRECT: i32 = 23;
    pub const SKB_LOAD_BYTES: i32 = 26;
    pub const CSUM_DIFF: i32 = 28;
    pub const REDIRECT_NEIGH: i32 = 152;
}

/// `struct __sk_buff` fields.
const SKB_PROTOCOL: i16 = 16;
const ETH_P_IP_BE: i32 = 0x0008;
const BPF_F_PSEUDO_HDR: i32 = 0x10;
const BPF_F_MARK_MANGLED_0: i32 = 0x20;

/// Frame offsets: Ethernet (14), IPv4 without options (20), UDP (8), RTP.
const ETH_LEN: i32 = 14;
const IP_CSUM: i32 = ETH_LEN + 10;
const IP_ADDRS: i32 = ETH_LEN + 12;
const UDP: i32 = ETH_LEN + 20;
const UDP_CSUM: i32 = UDP + 6;
const RTP: i32 = UDP + 8;

/// Stack layout (offsets from the frame pointer, all naturally aligned).
/// The original IPv4 + UDP + RTP fixed headers, 40 octets, copied here.
const OLD: i16 = -64;
const OLD_FRAG: i16 = OLD + 6;
const OLD_PROTO: i16 = OLD + 9;
const OLD_ADDRS: i16 = OLD + 12;
const OLD_SADDR: i16 = OLD + 12;
const OLD_PORTS: i16 = OLD + 20;
const OLD_SPORT: i16 = OLD + 20;
const OLD_DPORT: i16 = OLD + 22;
const OLD_UDP_LEN: i16 = OLD + 24;
const OLD_RTP: i16 = OLD + 28;
const OLD_SEQ: i16 = OLD_RTP + 2;
const OLD_TS: i16 = OLD_RTP + 4;
const OLD_SSRC: i16 = OLD_RTP + 8;
/// The map key.
const KEY: i16 = -72;
/// New addresses (8), ports (4) and RTP header (12).
const NEW_ADDRS: i16 = -80;
const NEW_PORTS: i16 = -84;
const NEW_RTP: i16 = -96;
/// New timestamp, host order, for the entry's newest packet.
const NEW_TS_HOST: i16 = -100;

/// The program, reading the forwarding map `map_fd`.
pub fn build(map_fd: i32) -> Vec<Insn> {
    let mut a = Asm::default();
    let next = a.label();
    let skb = R6;
    let entry = R7;

    a.mov_reg(skb, R1);
    a.load(Size::W, R2, skb, SKB_PROTOCOL);
    a.jump_imm(Cond::Ne, R2, ETH_P_IP_BE, next);
    // Copy IPv4 + UDP + RTP headers; a shorter packet fails here.
    a.mov_reg(R1, skb);
    a.mov_imm(R2, ETH_LEN);
    stack_ptr(&mut a, R3, OLD);
    a.mov_imm(R4, 40);
    a.call(helper::SKB_LOAD_BYTES);
    a.jump_imm(Cond::Ne, R0, 0, next);
    // IPv4, no options.
    a.load(Size::B, R2, FP, OLD);
    a.jump_imm(Cond::Ne, R2, 0x45, next);
    a.load(Size::B, R2, FP, OLD_PROTO);
    a.jump_imm(Cond::Ne, R2, 17, next);
    // Neither a fragment nor more to come.
    a.load(Size::H, R2, FP, OLD_FRAG);
    a.swap_be(R2, 16);
    a.alu_imm(Alu::And, R2, 0x3fff);
    a.jump_imm(Cond::Ne, R2, 0, next);
    // RTP version 2.
    a.load(Size::B, R2, FP, OLD_RTP);
    a.alu_imm(Alu::And, R2, 0xc0);
    a.jump_imm(Cond::Ne, R2, 0x80, next);
    // Not RTCP: payload types 64-95 are RTCP's range (RFC 5761).
    let rtp_type = a.label();
    a.load(Size::B, R9, FP, OLD_RTP + 1);
    a.mov_reg(R2, R9);
    a.alu_imm(Alu::And, R2, 0x7f);
    a.jump_imm(Cond::Lt, R2, 64, rtp_type);
    a.jump_imm(Cond::Gt, R2, 95, rtp_type);
    a.jump(next);
    a.bind(rtp_type);

    // Key: remote IP, local port, remote port.
    a.load(Size::W, R2, FP, OLD_SADDR);
    a.store(Size::W, FP, KEY, R2);
    a.load(Size::H, R2, FP, OLD_DPORT);
    a.store(Size::H, FP, KEY + 4, R2);
    a.load(Size::H, R2, FP, OLD_SPORT);
    a.store(Size::H, FP, KEY + 6, R2);
    a.load_map_fd(R1, map_fd);
    stack_ptr(&mut a, R2, KEY);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.jump_imm(Cond::Eq, R0, 0, next);
    a.mov_reg(entry, R0);
    // The source the offsets were made for.
    a.load(Size::W, R2, FP, OLD_SSRC);
    a.load(Size::W, R3, entry, value::IN_SSRC as i16);
    a.jump_reg(Cond::Ne, R2, R3, next);

    // New addresses and ports.
    a.load(Size::W, R2, entry, value::SRC_IP as i16);
    a.store(Size::W, FP, NEW_ADDRS, R2);
    a.load(Size::W, R2, entry, value::DST_IP as i16);
    a.store(Size::W, FP, NEW_ADDRS + 4, R2);
    a.load(Size::H, R2, entry, value::SRC_PORT as i16);
    a.store(Size::H, FP, NEW_PORTS, R2);
    a.load(Size::H, R2, entry, value::DST_PORT as i16);
    a.store(Size::H, FP, NEW_PORTS + 2, R2);
    // New RTP header: first octet as is, payload type renumbered.
    a.load(Size::B, R2, FP, OLD_RTP);
    a.store(Size::B, FP, NEW_RTP, R2);
    let pt_done = a.label();
    a.mov_reg(R2, R9);
    a.alu_imm(Alu::And, R2, 0x7f);
    for pair in 0..value::PT_PAIRS {
        let skip = a.label();
        let at = (value::PT_MAP + 2 * pair) as i16;
        a.load(Size::B, R3, entry, at);
        a.jump_reg(Cond::Ne, R3, R2, skip);
        a.load(Size::B, R2, entry, at + 1);
        a.jump(pt_done);
        a.bind(skip);
    }
    a.bind(pt_done);
    a.alu_imm(Alu::And, R9, 0x80);
    a.alu_reg(Alu::Or, R9, R2);
    a.store(Size::B, FP, NEW_RTP + 1, R9);
    // Sequence number: kept in R8 (host order) for the entry.
    a.load(Size::H, R8, FP, OLD_SEQ);
    a.swap_be(R8, 16);
    a.load(Size::H, R3, entry, value::SEQ_OFFSET as i16);
    a.alu_reg(Alu::Add, R8, R3);
    a.alu_imm(Alu::And, R8, 0xffff);
    a.mov_reg(R2, R8);
    a.swap_be(R2, 16);
    a.store(Size::H, FP, NEW_RTP + 2, R2);
    // Timestamp.
    a.load(Size::W, R2, FP, OLD_TS);
    a.swap_be(R2, 32);
    a.load(Size::W, R3, entry, value::TS_OFFSET as i16);
    a.add32_reg(R2, R3);
    a.store(Size::W, FP, NEW_TS_HOST, R2);
    a.swap_be(R2, 32);
    a.store(Size::W, FP, NEW_RTP + 4, R2);
    // SSRC.
    a.load(Size::W, R2, entry, value::OUT_SSRC as i16);
    a.store(Size::W, FP, NEW_RTP + 8, R2);

    // IPv4 header checksum and UDP pseudo-header: the address change.
    csum_diff(&mut a, OLD_ADDRS, NEW_ADDRS, 8, None);
    a.mov_reg(R9, R0);
    csum_replace(&mut a, skb, helper::L3_CSUM_REPLACE, IP_CSUM, R9, 0);
    let pseudo = BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0;
    csum_replace(&mut a, skb, helper::L4_CSUM_REPLACE, UDP_CSUM, R9, pseudo);
    // UDP checksum: ports and RTP header.
    csum_diff(&mut a, OLD_PORTS, NEW_PORTS, 4, None);
    a.mov_reg(R9, R0);
    csum_diff(&mut a, OLD_RTP, NEW_RTP, 12, Some(R9));
    a.mov_reg(R9, R0);
    let flags = BPF_F_MARK_MANGLED_0;
    csum_replace(&mut a, skb, helper::L4_CSUM_REPLACE, UDP_CSUM, R9, flags);
    // The new header fields.
    store_bytes(&mut a, skb, IP_ADDRS, NEW_ADDRS, 8);
    store_bytes(&mut a, skb, UDP, NEW_PORTS, 4);
    store_bytes(&mut a, skb, RTP, NEW_RTP, 12);

    // Counters: packets, payload octets, time, newest sequence number.
    a.mov_imm(R2, 1);
    a.atomic_add64(entry, value::PACKETS as i16, R2);
    a.load(Size::H, R2, FP, OLD_UDP_LEN);
    a.swap_be(R2, 16);
    a.alu_imm(Alu::Sub, R2, 8);
    a.atomic_add64(entry, value::BYTES as i16, R2);
    a.call(helper::KTIME_GET_NS);
    a.store(Size::DW, entry, value::LAST_NS as i16, R0);
    let older = a.label();
    a.load(Size::H, R3, entry, value::LAST_SEQ as i16);
    a.mov_reg(R2, R8);
    a.alu_reg(Alu::Sub, R2, R3);
    a.alu_imm(Alu::Lsh, R2, 48);
    a.alu_imm(Alu::Arsh, R2, 48);
    a.jump_imm(Cond::Sle, R2, 0, older);
    a.store(Size::H, entry, value::LAST_SEQ as i16, R8);
    a.load(Size::W, R2, FP, NEW_TS_HOST);
    a.store(Size::W, entry, value::LAST_TS as i16, R2);
    a.bind(older);

    // Verdict.
    let redirect = a.label();
    a.load(Size::B, R2, entry, value::FLAGS as i16);
    a.jump_imm(Cond::Set, R2, FLAG_REMOTE as i32, redirect);
    // On this host: out through loopback, as if the PBX had sent it, so
    // packet captures on `lo` see it like any other relayed packet.
    a.mov_imm(R1, LOOPBACK_IFINDEX);
    a.mov_imm(R2, 0);
    a.call(helper::REDIRECT);
    a.exit();
    a.bind(redirect);
    // Off this host: out of the interface holding the new source address,
    // the kernel routing it and filling in the next hop's MAC address
    // (resolving it first if need be).
    a.load(Size::W, R1, entry, value::EGRESS_IFINDEX as i16);
    a.mov_imm(R2, 0);
    a.mov_imm(R3, 0);
    a.mov_imm(R4, 0);
    a.call(helper::REDIRECT_NEIGH);
    a.exit();

    a.bind(next);
    a.mov_imm(R0, TCX_NEXT);
    a.exit();
    a.finish()
}

/// `bpf_skb_store_bytes(skb, offset, fp + from, len, 0)`.
fn store_bytes(a: &mut Asm, skb: Reg, offset: i32, from: i16, len: i32) {
    a.mov_reg(R1, skb);
    a.mov_imm(R2, offset);
    stack_ptr(a, R3, from);
    a.mov_imm(R4, len);
    a.mov_imm(R5, 0);
    a.call(helper::SKB_STORE_BYTES);
}

/// `reg = fp + off`.
fn stack_ptr(a: &mut Asm, reg: Reg, off: i16) {
    a.mov_reg(reg, FP);
    a.alu_imm(Alu::Add, reg, i32::from(off));
}

/// `R0 = bpf_csum_diff(fp + old, len, fp + new, len, seed or 0)`.
fn csum_diff(a: &mut Asm, old: i16, new: i16, len: i32, seed: Option<Reg>) {
    match seed {
        Some(r) => a.mov_reg(R5, r),
        None => a.mov_imm(R5, 0),
    }
    stack_ptr(a, R1, old);
    a.mov_imm(R2, len);
    stack_ptr(a, R3, new);
    a.mov_imm(R4, len);
    a.call(helper::CSUM_DIFF);
}

/// `bpf_l3_csum_replace` / `bpf_l4_csum_replace(skb, offset, 0, diff,
/// flags)`: applies a checksum difference.
fn csum_replace(a: &mut Asm, skb: Reg, helper: i32, offset: i32, diff: Reg, flags: i32) {
    a.mov_reg(R1, skb);
    a.mov_imm(R2, offset);
    a.mov_imm(R3, 0);
    a.mov_reg(R4, diff);
    a.mov_imm(R5, flags);
    a.call(helper);
}
