//! Fuzzes the offloading TUN's two packet paths in user space, which read
//! what local programs and authenticated peers put in packets.
//!
//! The first byte picks a case:
//! * even: the rest is one read from the TUN (`virtio_net_hdr` and packet).
//!   Whatever `Offload::parse` accepts is cut into every segment; each one
//!   that comes out carries checksums that verify, and the TSO segments'
//!   payloads, put together, are the super-packet's payload.
//! * odd: the rest is a list of decrypted packets for `Coalescer::push`,
//!   each either raw bytes or a segment of one TCP flow over IPv4 or IPv6
//!   that the input shapes (payload length, sequence gaps, TOS or traffic
//!   class, TTL or hop limit, DF or flow label, PSH, ACK number, a spoiled
//!   checksum). What reaches the kernel, with its super-packets cut
//!   as the kernel cuts them, must be the packets pushed, in order: merged
//!   IPv4 ones differ at most in IP ID and IP checksum, everything else is
//!   written as it came.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_dataplane::tun::{Coalescer, Offload, WriteLog, VNET_HDR_LEN};
use palisade_wire::ip::checksum;

fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn sum(b: &[u8]) -> u64 {
    u64::from(checksum::sum(b))
}

/// The TCP pseudo-header sum of `ip` (IPv4, else IPv6) for `tcp_len` bytes,
/// with palisade-wire's scalar sum: this target's own reference, kept apart
/// from `tun`'s (AVX2) sums on purpose, so that it checks them.
fn pseudo(ip: &[u8], tcp_len: usize) -> u64 {
    let addrs = if ip[0] >> 4 == 4 {
        &ip[12..20]
    } else {
        &ip[8..40]
    };
    sum(addrs) + 6 + tcp_len as u64
}

/// The header fields of a read that `Offload` works from.
struct Hdr {
    gso: u8,
    csum_start: usize,
    needs_csum: bool,
}

fn hdr(read: &[u8]) -> Hdr {
    Hdr {
        needs_csum: read[0] & 1 != 0,
        gso: read[1] & 0x7f,
        csum_start: usize::from(u16::from_le_bytes([read[6], read[7]])),
    }
}

fn offload(read: &[u8]) {
    let Some(o) = Offload::parse(read) else {
        return;
    };
    let h = hdr(read);
    let pkt = &read[VNET_HDR_LEN..];
    let mut joined = Vec::new();
    let mut out = vec![0u8; 70_000];
    let mut cut = 0;
    for k in 0..o.count() {
        let Some(n) = o.segment(k, &mut out) else {
            continue;
        };
        cut += 1;
        let seg = &out[..n];
        if h.gso == 0 {
            assert_eq!(n, pkt.len(), "a plain packet keeps its length");
            continue;
        }
        let l4 = h.csum_start;
        if seg[0] >> 4 == 4 {
            let ihl = usize::from(seg[0] & 0x0f) * 4;
            assert_eq!(fold(sum(&seg[..ihl])), 0xffff, "IPv4 header checksum");
            assert_eq!(usize::from(u16::from_be_bytes([seg[2], seg[3]])), n);
        }
        assert_eq!(
            fold(pseudo(seg, n - l4) + sum(&seg[l4..])),
            0xffff,
            "TCP checksum of segment {k}"
        );
        let thl = usize::from(seg[l4 + 12] >> 4) * 4;
        joined.extend_from_slice(&seg[l4 + thl..]);
    }
    assert!(h.needs_csum || h.gso == 0);
    if h.gso != 0 && cut == o.count() {
        let thl = usize::from(pkt[h.csum_start + 12] >> 4) * 4;
        assert_eq!(
            joined,
            pkt[h.csum_start + thl..],
            "payload cut and put together"
        );
    }
}

/// One TCP segment of the fuzzed flow, over IPv4 or IPv6, shaped by 8
/// input bytes.
fn shaped(b: &[u8], seq: &mut u32) -> Vec<u8> {
    let len = usize::from(b[0]) * 8 + usize::from(b[1] & 7);
    let ecn = if b[2] & 1 != 0 { b[3] & 3 } else { 2 };
    let mut p = if b[2] & 64 == 0 {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[1] = ecn;
        p[2..4].copy_from_slice(&((40 + len) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&u16::from(b[4]).to_be_bytes());
        p[6] = if b[2] & 2 != 0 { 0 } else { 0x40 };
        p[8] = if b[2] & 4 != 0 { 63 } else { 64 };
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let c = !fold(sum(&p[..20]));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    } else {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[1] = ecn << 4;
        p[3] = if b[2] & 2 != 0 { 1 } else { 2 };
        p[4..6].copy_from_slice(&((20 + len) as u16).to_be_bytes());
        p[6] = 6;
        p[7] = if b[2] & 4 != 0 { 63 } else { 64 };
        p[8..12].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p[23] = 1;
        p[24..28].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p[39] = 2;
        p
    };
    let l4 = p.len();
    p.resize(l4 + 20, 0);
    p[l4..l4 + 2].copy_from_slice(&1234u16.to_be_bytes());
    p[l4 + 2..l4 + 4].copy_from_slice(&80u16.to_be_bytes());
    if b[2] & 8 != 0 {
        *seq = seq.wrapping_add(u32::from(b[5]));
    }
    p[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
    *seq = seq.wrapping_add(len as u32);
    p[l4 + 8..l4 + 12].copy_from_slice(&u32::from(b[2] >> 7).to_be_bytes());
    p[l4 + 12] = 5 << 4;
    p[l4 + 13] = if b[2] & 16 != 0 { 0x18 } else { 0x10 };
    p[l4 + 14..l4 + 16].copy_from_slice(&512u16.to_be_bytes());
    p.extend((0..len).map(|i| (i as u8) ^ b[6]));
    let c = !fold(pseudo(&p, p.len() - l4) + sum(&p[l4..]));
    p[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    if b[2] & 32 != 0 {
        let at = l4 + usize::from(b[7]) % (p.len() - l4);
        p[at] ^= 0x5a;
    }
    p
}

fn coalesce(mut data: &[u8]) {
    let mut pushed = Vec::new();
    let mut seq = 1_000u32;
    while let Some((&kind, rest)) = data.split_first() {
        if kind & 1 == 0 {
            let Some(b) = rest.get(..8) else { break };
            pushed.push(shaped(b, &mut seq));
            data = &rest[8..];
        } else {
            let n = usize::from(kind >> 1).min(rest.len());
            pushed.push(rest[..n].to_vec());
            data = &rest[n..];
        }
    }
    let log = WriteLog::new();
    let mut c = Coalescer::new();
    for p in &pushed {
        c.push(&log, p).expect("the log takes every write");
    }
    c.flush(&log).expect("the log takes every write");
    let mut got = Vec::new();
    let mut out = vec![0u8; 70_000];
    for w in log.take() {
        if w[..VNET_HDR_LEN] == [0u8; VNET_HDR_LEN] {
            got.push((w[VNET_HDR_LEN..].to_vec(), false));
            continue;
        }
        let o = Offload::parse(&w).expect("the kernel takes every super-packet");
        assert!(o.count() >= 2, "a super-packet merges at least two");
        for k in 0..o.count() {
            let n = o.segment(k, &mut out).expect("every segment cuts");
            got.push((out[..n].to_vec(), true));
        }
    }
    assert_eq!(got.len(), pushed.len(), "as many packets out as in");
    assert_eq!(c.packets, pushed.len() as u64);
    for (i, ((g, merged), p)) in got.iter().zip(&pushed).enumerate() {
        if !merged {
            assert_eq!(g, p, "packet {i} is written as it came");
            continue;
        }
        assert_eq!(g.len(), p.len(), "packet {i}");
        assert!(g.len() <= 65535, "packet {i}: more than an IP packet holds");
        if p[0] >> 4 == 6 {
            assert_eq!(g, p, "packet {i} merged and cut back");
            continue;
        }
        let same = |r: std::ops::Range<usize>| g[r.clone()] == p[r];
        assert!(
            same(0..4) && same(6..10) && same(12..p.len()),
            "packet {i} merged and cut back"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&case, rest)) = data.split_first() else {
        return;
    };
    if case & 1 == 0 {
        offload(rest);
    } else {
        coalesce(rest);
    }
});
