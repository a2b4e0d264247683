//! Helpers shared by the xform_* integration tests: packet builders and SA
//! pairs.
#![allow(dead_code)]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade_crypto::Secret;
use palisade_sa::buf::PacketBuf;
use palisade_sa::lifetime::Timestamp;
use palisade_sa::sa::{EncrConfig, IntegConfig, Opened, SaConfig, SecurityAssociation};
use palisade_wire::ip::IpProtocol;
use palisade_wire::{ipv4, ipv6, udp};

pub const HEADROOM: usize = 128;
pub const CAP: usize = 10_000;

pub fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

pub fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

/// A UDP datagram (valid checksum) in an IPv4 packet.
pub fn v4_udp(src: [u8; 4], dst: [u8; 4], payload: &[u8], tos: u8, df: bool) -> Vec<u8> {
    let (s, d) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
    let ulen = 8 + payload.len();
    let repr = ipv4::Repr {
        src_addr: s,
        dst_addr: d,
        protocol: IpProtocol::UDP,
        payload_len: ulen,
        ttl: 63,
        dscp: tos >> 2,
        ecn: tos & 3,
        ident: 0x1234,
        dont_frag: df,
        more_frags: false,
        frag_offset: 0,
        options: &[],
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut b[..]))
        .unwrap();
    let mut u = udp::Packet::new_unchecked(&mut b[20..]);
    udp::Repr {
        src_port: 1111,
        dst_port: 2222,
        payload_len: payload.len(),
    }
    .emit(&mut u)
    .unwrap();
    u.payload_mut().copy_from_slice(payload);
    u.fill_checksum(&IpAddr::V4(s), &IpAddr::V4(d));
    b
}

/// A UDP datagram in an IPv6 packet, optionally after extension headers
/// given as (type, bytes-with-next-header-placeholder).
pub fn v6_udp(
    src: u16,
    dst: u16,
    payload: &[u8],
    tc: u8,
    exts: &[(IpProtocol, Vec<u8>)],
) -> Vec<u8> {
    let (s, d) = match (v6(src), v6(dst)) {
        (IpAddr::V6(a), IpAddr::V6(b)) => (a, b),
        _ => unreachable!(),
    };
    let ext_len: usize = exts.iter().map(|e| e.1.len()).sum();
    let ulen = 8 + payload.len();
    let first = exts.first().map(|e| e.0).unwrap_or(IpProtocol::UDP);
    let repr = ipv6::Repr {
        src_addr: s,
        dst_addr: d,
        next_header: first,
        payload_len: ext_len + ulen,
        hop_limit: 64,
        traffic_class: tc,
        flow_label: 0x12345,
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut b[..]))
        .unwrap();
    let mut off = 40;
    for (i, (_, bytes)) in exts.iter().enumerate() {
        b[off..off + bytes.len()].copy_from_slice(bytes);
        b[off] = exts.get(i + 1).map(|e| e.0).unwrap_or(IpProtocol::UDP).0;
        off += bytes.len();
    }
    let mut u = udp::Packet::new_unchecked(&mut b[off..]);
    udp::Repr {
        src_port: 1111,
        dst_port: 2222,
        payload_len: payload.len(),
    }
    .emit(&mut u)
    .unwrap();
    u.payload_mut().copy_from_slice(payload);
    u.fill_checksum(&IpAddr::V6(s), &IpAddr::V6(d));
    b
}

/// A Hop-by-Hop or Destination Options header of 8 bytes holding one option
/// of type `opt` (0x3e: may change en route; 0x1e: may not) with 4 data
/// bytes.
pub fn opts_header(opt: u8) -> Vec<u8> {
    vec![0, 0, opt, 4, 0xaa, 0xbb, 0xcc, 0xdd]
}

pub fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

pub fn encr(id: u16, key_bits: Option<u16>, len: usize) -> Option<EncrConfig> {
    Some(EncrConfig {
        id,
        key_bits,
        keymat: Secret::new(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(13).wrapping_add(1))
                .collect(),
        ),
    })
}

pub fn integ(id: u16, len: usize) -> Option<IntegConfig> {
    Some(IntegConfig {
        id,
        key: Secret::new(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(29).wrapping_add(7))
                .collect(),
        ),
    })
}

pub fn pair(cfg: &SaConfig) -> (SecurityAssociation, SecurityAssociation) {
    let a = SecurityAssociation::new(cfg.clone(), Timestamp(0)).unwrap();
    let b = SecurityAssociation::new(cfg.clone(), Timestamp(0)).unwrap();
    (a, b)
}

/// Seals `pkt` with `out`, returns the wire bytes.
pub fn seal(out: &mut SecurityAssociation, pkt: &[u8]) -> Vec<u8> {
    let mut s = vec![0u8; CAP];
    let mut b = PacketBuf::with_packet(&mut s, HEADROOM, pkt).unwrap();
    out.seal(Timestamp(1), &mut b).unwrap();
    b.data().to_vec()
}

/// Opens `wire` with `inb`; returns the outcome and the resulting bytes.
pub fn open(
    inb: &mut SecurityAssociation,
    wire: &[u8],
) -> (Result<Opened, palisade_sa::sa::OpenError>, Vec<u8>) {
    let mut s = vec![0u8; CAP];
    let mut b = PacketBuf::with_packet(&mut s, HEADROOM, wire).unwrap();
    let r = inb.open(Timestamp(2), &mut b);
    (r, b.data().to_vec())
}
