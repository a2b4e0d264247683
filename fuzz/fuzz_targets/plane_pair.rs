//! Two data planes joined in memory, as two daemons' workers are across the
//! wire, driven by a stream of cleartext packets the input shapes. This
//! exercises the per-flow shortcuts (the worker's `FlowHint` carrying the
//! SPD's answer, the SAD remembering the last inbound SA, the SA
//! remembering the last flow that passed its selector check) against what
//! the policies say, packet by packet:
//! * A protects any source to 10.2.0.0/16 and fd00:2::/32 (ESP-in-UDP,
//!   AES-256-GCM), so it seals exactly the packets for those and sends
//!   nothing else;
//! * B's inbound SA allows only 10.1.0.0/16 -> 10.2.0.0/16 and fd00:1::/32
//!   -> fd00:2::/32 (RFC 4301 5.2 step 4), so of what A seals it delivers
//!   exactly those from 10.1/16 or fd00:1::/32, byte for byte, and counts
//!   the rest as policy mismatches.
//!
//! Each 6 input bytes make one packet: byte 0 picks IPv4 or IPv6, the
//! protocol (TCP, UDP, ICMP, GRE), a source inside or outside B's selectors,
//! a destination inside or outside A's, a non-first fragment (no ports;
//! over IPv6 behind a Fragment header), whether the flow hint is dropped
//! even though the flow goes on, and whether B is reloaded first (its pair
//! uninstalled and installed again, same SPIs, with 10.1.0.0/24 or /16 as
//! the IPv4 source selector: the remembered SA and flow must not outlive
//! it); bytes 1-5 are the hosts, ports and payload length. As the worker
//! does, the hint is always dropped when the packet's selector key differs
//! from the one before.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_crypto::Secret;
use palisade_dataplane::manual::{self, DirKeys, Installed, ManualSpec, Wire};
use palisade_dataplane::plane::{FlowHint, InVerdict, OutVerdict, Plane, Transmit};
use palisade_sa::buf::PacketBuf;
use palisade_sa::counters::DropReason;
use palisade_sa::encap::selector_key;
use palisade_sa::lifetime::Timestamp;
use palisade_wire::ipv4;
use std::net::{IpAddr, SocketAddr};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a literal address")
}

fn keys(byte: u8) -> DirKeys {
    DirKeys {
        enc: Some(Secret::new(vec![byte; 36])),
        ..DirKeys::default()
    }
}

/// One gateway's manual SA pair, as the daemon's config describes it.
fn gateway(
    me: &str,
    peer: &str,
    local: [(&str, u8); 2],
    remote: [(&str, u8); 2],
    a: bool,
) -> ManualSpec {
    let (spi_in, spi_out) = if a {
        (0x2000, 0x1000)
    } else {
        (0x1000, 0x2000)
    };
    let (kin, kout) = if a { (0xb0, 0xa0) } else { (0xa0, 0xb0) };
    let wire = Wire::EspUdp {
        local_port: 4500,
        remote_port: 4500,
    };
    ManualSpec {
        spi_in,
        spi_out,
        // ENCR_AES_GCM_16, 256-bit key.
        encr: Some((20, Some(256))),
        keys_in: keys(kin),
        keys_out: keys(kout),
        local_ts: local.iter().map(|&(a, l)| (ip(a), l)).collect(),
        remote_ts: remote.iter().map(|&(a, l)| (ip(a), l)).collect(),
        ..ManualSpec::esp_tunnel("fuzz", ip(me), ip(peer), wire)
    }
}

/// A plane with `spec` installed, and what was installed.
fn plane(spec: &ManualSpec) -> (Plane, Installed) {
    let mut plane = Plane::new();
    let installed = manual::install(&mut plane, spec, 1).expect("the fuzz SAs install");
    (plane, installed)
}

/// The cleartext packet 6 input bytes describe, whether its source is in
/// 10.1/16 (fd00:1::/32) and its destination in 10.2/16 (fd00:2::/32); an
/// IPv4 source is in 10.1.0.0/24 when `b[1]` is even.
fn packet(b: &[u8]) -> (Vec<u8>, bool, bool) {
    let v6 = b[0] & 64 != 0;
    let proto = [6u8, 17, if v6 { 58 } else { 1 }, 47][usize::from(b[0] & 3)];
    let src_in = b[0] & 4 == 0;
    let dst_in = b[0] & 8 == 0;
    // Over IPv6 a non-first fragment behind a Fragment header.
    let fragment = b[0] & 16 != 0;
    let l4 = match proto {
        6 => 20,
        17 | 1 | 58 => 8,
        _ => 4,
    };
    let ip_len = match (v6, fragment) {
        (false, _) => 20,
        (true, false) => 40,
        (true, true) => 48,
    };
    let len = ip_len + l4 + usize::from(b[5]);
    let mut p = vec![0u8; len];
    let (src_net, dst_net) = (if src_in { 1 } else { 9 }, if dst_in { 2 } else { 3 });
    if v6 {
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        p[6] = if fragment { 44 } else { proto };
        p[7] = 64;
        p[8..12].copy_from_slice(&[0xfd, 0, 0, src_net]);
        p[23] = b[1];
        p[24..28].copy_from_slice(&[0xfd, 0, 0, dst_net]);
        p[39] = b[2];
        if fragment {
            p[40] = proto;
            p[42..44].copy_from_slice(&(16u16 << 3).to_be_bytes()); // offset 128
        }
    } else {
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        if fragment {
            p[6..8].copy_from_slice(&0x0010u16.to_be_bytes()); // offset 128 bytes
        }
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&[10, src_net, b[1] & 1, b[1]]);
        p[16..20].copy_from_slice(&[10, dst_net, 0, b[2]]);
        ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
    }
    let t = &mut p[ip_len..];
    t[0] = b[3];
    t[1] = 1;
    t[2] = b[4];
    t[3] = 2;
    if proto == 6 {
        t[12] = 5 << 4;
        t[13] = 0x10;
    }
    for (i, x) in t[l4..].iter_mut().enumerate() {
        *x = i as u8 ^ b[3];
    }
    (p, src_in, dst_in)
}

fuzz_target!(|data: &[u8]| {
    let (mut a, _) = plane(&gateway(
        "192.0.2.1",
        "192.0.2.2",
        [("0.0.0.0", 0), ("::", 0)],
        [("10.2.0.0", 16), ("fd00:2::", 32)],
        true,
    ));
    let b_spec = |narrow: bool| {
        gateway(
            "192.0.2.2",
            "192.0.2.1",
            [("10.2.0.0", 16), ("fd00:2::", 32)],
            [("10.1.0.0", if narrow { 24 } else { 16 }), ("fd00:1::", 32)],
            false,
        )
    };
    let mut narrow = false;
    let (mut b, mut b_installed) = plane(&b_spec(narrow));
    let from: SocketAddr = "192.0.2.1:4500".parse().expect("a literal address");
    let local: SocketAddr = "192.0.2.2:4500".parse().expect("a literal address");
    let mut hint = FlowHint::default();
    let mut last_key = None;
    let (mut sent, mut delivered, mut mismatched) = (0u64, 0u64, 0u64);
    for (n, b6) in data.chunks_exact(6).enumerate() {
        let now = Timestamp(n as u64);
        if b6[0] & 128 != 0 {
            // A reload of B between two of the worker's batches: the pair
            // goes and comes back with the same SPIs but other selectors
            // (10.1.0.0/24 or /16), as a changed config would have it.
            manual::uninstall(&mut b, &b_installed);
            narrow = b6[5] & 1 != 0;
            b_installed =
                manual::install(&mut b, &b_spec(narrow), 1).expect("the fuzz SAs install again");
        }
        let (original, src_in, dst_in) = packet(b6);
        let src_in = src_in && !(narrow && original[0] >> 4 == 4 && original[14] != 0);
        let key = selector_key(&original).expect("a shaped packet has a selector key");
        if last_key != Some(key) || b6[0] & 32 != 0 {
            hint = FlowHint::default();
        }
        last_key = Some(key);
        let mut storage = vec![0u8; 2048];
        let mut buf = PacketBuf::with_packet(&mut storage, 128, &original).expect("room");
        let wire = match a.outbound_in_flow(now, &mut buf, &mut hint) {
            OutVerdict::Send(Transmit::Udp { offset, dst, .. }) => {
                assert!(dst_in, "packet {n} to outside 10.2/16 was sealed");
                assert_eq!(dst, local);
                buf.data()[offset..].to_vec()
            }
            other => {
                assert!(!dst_in, "packet {n} for 10.2/16 not sent: {other:?}");
                continue;
            }
        };
        sent += 1;
        let mut storage = vec![0u8; 2048];
        let mut buf = PacketBuf::with_packet(&mut storage, 128, &wire).expect("room");
        match b.inbound_udp(now, &mut buf, &from, &local, 0) {
            InVerdict::Deliver => {
                assert!(src_in, "packet {n} from outside 10.1/16 was delivered");
                assert_eq!(buf.data(), &original[..], "packet {n} changed on the way");
                delivered += 1;
            }
            InVerdict::Drop(DropReason::PolicyMismatch) => {
                assert!(
                    !src_in,
                    "packet {n} from 10.1/16 refused by the selector check"
                );
                mismatched += 1;
            }
            other => panic!("packet {n}: unexpected {other:?}"),
        }
    }
    assert_eq!(a.totals.packets_out, sent);
    assert_eq!(b.totals.packets_in, delivered);
    assert_eq!(b.drops.get(DropReason::PolicyMismatch), mismatched);
});
