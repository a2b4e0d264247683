//! Two data planes joined in memory, as two daemons' workers are across the
//! wire, driven by a stream of cleartext packets the input shapes. This
//! exercises the per-flow shortcuts (the worker's `FlowHint` carrying the
//! SPD's answer, the SAD remembering the last inbound SA, the SA
//! remembering the last flow that passed its selector check) against what
//! the policies say, packet by packet:
//! * A protects any source to 10.2.0.0/16 and fd00:2::/32 (AES-256-GCM,
//!   HMAC-SHA-256 in AH), so it seals exactly the packets for those and sends
//!   nothing else;
//! * B's inbound SA allows only 10.1.0.0/16 -> 10.2.0.0/16 and fd00:1::/32
//!   -> fd00:2::/32 (RFC 4301 5.2 step 4), so of what A seals it delivers
//!   exactly those from 10.1/16 or fd00:1::/32, byte for byte, and counts
//!   the rest as policy mismatches.
//!
//! * A rekey (RFC 7296 2.8) goes one step at a time, as IKE takes them: B
//!   installs the new pair, A installs it and must seal with it from then
//!   on (it ranks first, as the daemon ranks a new CHILD_SA), and each side
//!   deletes its oldest pair on its own time; packets wait on the wire for
//!   up to 7 others, so they overtake one another across all of this, and
//!   B must deliver each one whose SA it still has (and whose source its
//!   selectors allow) and count the others as unknown SPIs.
//!
//! An input's first byte picks how A's packets cross: ESP in UDP 4500
//! (into B's `inbound_udp`), raw ESP, or ESP inside AH (into `inbound`).
//! Each 7 bytes after it make one step. Byte 0 picks IPv4 or IPv6, the
//! protocol (TCP, UDP, ICMP, GRE), a source inside or outside B's selectors,
//! a destination inside or outside A's, a non-first fragment (no ports;
//! over IPv6 behind a Fragment header), whether the flow hint is dropped
//! even though the flow goes on, and whether B is reloaded first (its pairs
//! uninstalled and installed again, same SPIs, with 10.1.0.0/24 or /16 as
//! the IPv4 source selector: the remembered SA and flow must not outlive
//! it); bytes 1-5 are the hosts, ports and payload length; byte 6 is a
//! rekey step (low 3 bits) and how many packets this one waits for on the
//! wire (next 3). As the worker does, the hint is always dropped when the
//! packet's selector key differs from the one before.
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
        ah_auth: Some(Secret::new(vec![byte ^ 0x55; 32])),
        ..DirKeys::default()
    }
}

/// How A's packets cross to B, chosen by an input's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carry {
    /// ESP in UDP 4500, into B's `inbound_udp`.
    EspUdp,
    /// Raw ESP (IP protocol 50), into B's `inbound`.
    Esp,
    /// ESP inside AH (RFC 4301 4.3), raw.
    AhEsp,
}

impl Carry {
    /// The SPI of generation 0 of the outermost SA from A to B.
    fn outer_spi(self) -> u32 {
        match self {
            Carry::AhEsp => 0x4000,
            _ => 0x2000,
        }
    }
}

/// One gateway's manual SA pair, as the daemon's config describes it.
fn gateway(
    me: &str,
    peer: &str,
    local: [(&str, u8); 2],
    remote: [(&str, u8); 2],
    a: bool,
    generation: u8,
    carry: Carry,
) -> ManualSpec {
    let (spi_in, spi_out) = if a {
        (0x1000, 0x2000)
    } else {
        (0x2000, 0x1000)
    };
    let (ah_in, ah_out) = if a {
        (0x3000, 0x4000)
    } else {
        (0x4000, 0x3000)
    };
    let g = u32::from(generation);
    // Each generation has keys of its own: a packet opened with another
    // generation's SA fails its ICV.
    let (kin, kout) = if a { (0xb0, 0xa0) } else { (0xa0, 0xb0) };
    let (kin, kout) = (kin ^ generation, kout ^ generation);
    let wire = match carry {
        Carry::EspUdp => Wire::EspUdp {
            local_port: 4500,
            remote_port: 4500,
        },
        Carry::Esp => Wire::Esp,
        Carry::AhEsp => Wire::AhEsp,
    };
    ManualSpec {
        spi_in: spi_in + g,
        spi_out: spi_out + g,
        ah_spi_in: ah_in + g,
        ah_spi_out: ah_out + g,
        // AUTH_HMAC_SHA2_256_128, used only by AH+ESP.
        ah_integ: (carry == Carry::AhEsp).then_some(12),
        // ENCR_AES_GCM_16, 256-bit key.
        encr: Some((20, Some(256))),
        keys_in: keys(kin),
        keys_out: keys(kout),
        local_ts: local.iter().map(|&(a, l)| (ip(a), l)).collect(),
        remote_ts: remote.iter().map(|&(a, l)| (ip(a), l)).collect(),
        ..ManualSpec::esp_tunnel(&format!("fuzz-{generation}"), ip(me), ip(peer), wire)
    }
}

/// The cleartext packet the first 6 bytes of a step describe, whether its source is in
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

/// One side's installed SA pairs, oldest first, by generation.
type Pairs = Vec<(u8, Installed)>;

/// Install generation `generation` of a side's pair, ranked before every
/// older one (as the daemon ranks a new CHILD_SA before the one it rekeys).
fn add_pair(plane: &mut Plane, pairs: &mut Pairs, spec: &ManualSpec, generation: u8) {
    let installed =
        manual::install(plane, spec, 1000 - u32::from(generation)).expect("the fuzz SAs install");
    pairs.push((generation, installed));
}

/// A packet on the wire between A and B, delivered once `due` packets have
/// been sent (so packets overtake one another, across rekeys and reloads).
struct InFlight {
    due: usize,
    n: usize,
    wire: Vec<u8>,
    /// The outermost SPI.
    spi: u32,
    original: Vec<u8>,
    src_in: bool,
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let carry = [Carry::EspUdp, Carry::Esp, Carry::AhEsp][usize::from(first % 3)];
    let a_spec = |generation: u8| {
        gateway(
            "192.0.2.1",
            "192.0.2.2",
            [("0.0.0.0", 0), ("::", 0)],
            [("10.2.0.0", 16), ("fd00:2::", 32)],
            true,
            generation,
            carry,
        )
    };
    let b_spec = |narrow: bool, generation: u8| {
        gateway(
            "192.0.2.2",
            "192.0.2.1",
            [("10.2.0.0", 16), ("fd00:2::", 32)],
            [("10.1.0.0", if narrow { 24 } else { 16 }), ("fd00:1::", 32)],
            false,
            generation,
            carry,
        )
    };
    let (mut a, mut b) = (Plane::new(), Plane::new());
    let (mut a_pairs, mut b_pairs) = (Pairs::new(), Pairs::new());
    let mut narrow = false;
    add_pair(&mut a, &mut a_pairs, &a_spec(0), 0);
    add_pair(&mut b, &mut b_pairs, &b_spec(narrow, 0), 0);
    let from: SocketAddr = "192.0.2.1:4500".parse().expect("a literal address");
    let local: SocketAddr = "192.0.2.2:4500".parse().expect("a literal address");
    let mut hint = FlowHint::default();
    let mut last_key = None;
    let mut wire: Vec<InFlight> = Vec::new();
    let (mut sent, mut delivered, mut mismatched, mut unknown) = (0u64, 0u64, 0u64, 0u64);
    let chunks = data.chunks_exact(7);
    let steps = chunks.len();
    for (n, b7) in chunks
        .map(Some)
        .chain(std::iter::repeat_n(None, 8))
        .enumerate()
    {
        let now = Timestamp(n as u64);
        let control = b7.map_or(0, |b| b[6]);
        if b7.is_some_and(|b| b[0] & 128 != 0) {
            // A reload of B between two of the worker's batches: its pairs
            // go and come back with the same SPIs but other selectors
            // (10.1.0.0/24 or /16), as a changed config would have it.
            narrow = b7.is_some_and(|b| b[5] & 1 != 0);
            for (generation, installed) in std::mem::take(&mut b_pairs) {
                manual::uninstall(&mut b, &installed);
                add_pair(
                    &mut b,
                    &mut b_pairs,
                    &b_spec(narrow, generation),
                    generation,
                );
            }
        }
        // A rekey, one step at a time as IKE takes them (RFC 7296 2.8): B
        // (the responder) installs the new pair before it answers, A
        // installs it when the answer arrives and seals with it from then
        // on, and each side deletes the old pair on its own time, while
        // packets sealed with it may still be on the wire. The worker
        // applies such changes between reads, so A's flow hint starts over.
        let newest = |pairs: &Pairs| pairs.last().map_or(0, |p| p.0);
        match control & 7 {
            4 if newest(&b_pairs) == newest(&a_pairs) && newest(&b_pairs) < 200 => {
                let g = newest(&b_pairs) + 1;
                add_pair(&mut b, &mut b_pairs, &b_spec(narrow, g), g);
            }
            5 if newest(&b_pairs) > newest(&a_pairs) => {
                let g = newest(&b_pairs);
                add_pair(&mut a, &mut a_pairs, &a_spec(g), g);
                hint = FlowHint::default();
            }
            6 if a_pairs.len() > 1 => {
                manual::uninstall(&mut a, &a_pairs.remove(0).1);
                hint = FlowHint::default();
            }
            7 if b_pairs.len() > 1 => manual::uninstall(&mut b, &b_pairs.remove(0).1),
            _ => {}
        }
        if let Some(b7) = b7 {
            let (original, src_in, dst_in) = packet(b7);
            let key = selector_key(&original).expect("a shaped packet has a selector key");
            if last_key != Some(key) || b7[0] & 32 != 0 {
                hint = FlowHint::default();
            }
            last_key = Some(key);
            let mut storage = vec![0u8; 2048];
            let mut buf = PacketBuf::with_packet(&mut storage, 128, &original).expect("room");
            // What goes on the wire, and where its outermost SPI is.
            let sealed = match a.outbound_in_flow(now, &mut buf, &mut hint) {
                OutVerdict::Send(Transmit::Udp { offset, dst, .. }) if carry == Carry::EspUdp => {
                    assert_eq!(dst, local);
                    Some((buf.data()[offset..].to_vec(), 0))
                }
                OutVerdict::Send(Transmit::Raw { dst, proto }) if carry != Carry::EspUdp => {
                    assert_eq!(dst, local.ip());
                    assert_eq!(proto, if carry == Carry::AhEsp { 51 } else { 50 });
                    // Behind the outer IPv4 header (and AH's first 4 bytes).
                    Some((buf.data().to_vec(), if proto == 51 { 24 } else { 20 }))
                }
                OutVerdict::Send(t) => panic!("packet {n}: {t:?} for {carry:?}"),
                other => {
                    assert!(!dst_in, "packet {n} for 10.2/16 not sent: {other:?}");
                    None
                }
            };
            if let Some((bytes, spi_at)) = sealed {
                assert!(dst_in, "packet {n} to outside 10.2/16 was sealed");
                let spi = u32::from_be_bytes(bytes[spi_at..spi_at + 4].try_into().expect("4"));
                assert_eq!(
                    spi,
                    carry.outer_spi() + u32::from(newest(&a_pairs)),
                    "packet {n} not sealed with A's newest SA"
                );
                sent += 1;
                wire.push(InFlight {
                    due: n + usize::from(control >> 3 & 7),
                    n,
                    wire: bytes,
                    spi,
                    original,
                    src_in,
                });
            }
        }
        // Deliver what is due, in the order it falls due.
        wire.sort_by_key(|p| p.due);
        let ready = wire.partition_point(|p| p.due <= n || n >= steps + 7);
        for p in wire.drain(..ready) {
            let known = b_pairs
                .iter()
                .any(|(g, _)| carry.outer_spi() + u32::from(*g) == p.spi);
            let src_in = p.src_in && !(narrow && p.original[0] >> 4 == 4 && p.original[14] != 0);
            let sent_as = p.n;
            let mut storage = vec![0u8; 2048];
            let mut buf = PacketBuf::with_packet(&mut storage, 128, &p.wire).expect("room");
            let verdict = match carry {
                Carry::EspUdp => b.inbound_udp(now, &mut buf, &from, &local, 0),
                _ => b.inbound(now, &mut buf),
            };
            match verdict {
                InVerdict::Deliver => {
                    assert!(known, "packet {sent_as} delivered by a deleted SA");
                    assert!(
                        src_in,
                        "packet {sent_as} from outside 10.1/16 was delivered"
                    );
                    assert_eq!(
                        buf.data(),
                        &p.original[..],
                        "packet {sent_as} changed on the way"
                    );
                    delivered += 1;
                }
                InVerdict::Drop(DropReason::PolicyMismatch) => {
                    assert!(
                        known && !src_in,
                        "packet {sent_as} from 10.1/16 refused by the selector check"
                    );
                    mismatched += 1;
                }
                InVerdict::Drop(DropReason::UnknownSpi) => {
                    assert!(!known, "packet {sent_as} refused though B has its SA");
                    unknown += 1;
                }
                other => panic!("packet {sent_as}: unexpected {other:?}"),
            }
        }
    }
    assert!(wire.is_empty());
    assert_eq!(a.totals.packets_out, sent);
    assert_eq!(b.totals.packets_in, delivered);
    assert_eq!(b.drops.get(DropReason::PolicyMismatch), mismatched);
    assert_eq!(b.drops.get(DropReason::UnknownSpi), unknown);
});
