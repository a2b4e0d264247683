//! Two data planes, A and B, joined in memory: what A seals from its TUN, B
//! opens and delivers, and every way a packet can be refused is counted.

use palisade_crypto::{Policy, Secret};
use palisade_dataplane::plane::{FlowHint, InVerdict, InstalledSa, OutVerdict, Plane, Transmit};
use palisade_sa::buf::PacketBuf;
use palisade_sa::counters::DropReason;
use palisade_sa::lifetime::Timestamp;
use palisade_sa::sa::{Encap, EncrConfig, Mode, Protocol, SaConfig, SecurityAssociation};
use palisade_sa::sad::{InboundKey, SaScope, SecurityProtocol};
use palisade_sa::selector::{AddrRange, Direction, Selector};
use palisade_sa::spd::{Action, Bundle, PolicySpec, Protect};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const GCM16: u16 = 20;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn gcm_sa(spi: u32, src: &str, dst: &str, key: u8, encap: Encap) -> SecurityAssociation {
    let mut c = SaConfig::new(
        spi,
        Protocol::Esp,
        Mode::Tunnel {
            src: ip(src),
            dst: ip(dst),
        },
    );
    c.encr = Some(EncrConfig {
        id: GCM16,
        key_bits: Some(256),
        keymat: Secret::new(vec![key; 36]),
    });
    c.policy = Policy::SECURE;
    c.encap = encap;
    SecurityAssociation::new(c, Timestamp(0)).unwrap()
}

/// A plane for a gateway at `me` protecting `local_net` <-> `remote_net`
/// with the peer `peer`, its SAs encapsulated as `encap` says.
fn plane_with(
    me: &str,
    peer: &str,
    local_net: (&str, u8),
    remote_net: (&str, u8),
    spi_out: u32,
    spi_in: u32,
    encap: Encap,
) -> Plane {
    let mut p = Plane::new();
    let sel = Selector::between(
        AddrRange::prefix(ip(local_net.0), local_net.1).unwrap(),
        AddrRange::prefix(ip(remote_net.0), remote_net.1).unwrap(),
    );
    let out_key = if spi_out == 0x1000 { 1 } else { 2 };
    let in_key = if spi_in == 0x1000 { 1 } else { 2 };
    let out = p
        .sad
        .insert_outbound(InstalledSa::new(
            "out",
            gcm_sa(spi_out, me, peer, out_key, encap),
            vec![],
        ))
        .unwrap();
    p.sad
        .insert_inbound(
            InboundKey {
                spi: spi_in,
                proto: SecurityProtocol::Esp,
                scope: SaScope::Unicast,
            },
            InstalledSa::new("in", gcm_sa(spi_in, peer, me, in_key, encap), vec![sel]),
        )
        .unwrap();
    p.spd.insert(PolicySpec {
        priority: 10,
        direction: Direction::Outbound,
        selector: sel,
        action: Action::Protect(Protect {
            bundle: Bundle::Esp { sa: Some(out) },
            mode: palisade_sa::spd::Mode::Tunnel,
        }),
    });
    p
}

fn udp_v4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let mut ip = palisade_wire::ipv4::Packet::new_unchecked(&mut p[..]);
    ip.fill_checksum();
    p[20..22].copy_from_slice(&1234u16.to_be_bytes());
    p[22..24].copy_from_slice(&5678u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

fn pair() -> (Plane, Plane) {
    pair_with(Encap::None)
}

/// A (192.0.2.1, 10.1/16) and B (192.0.2.2, 10.2/16), SAs with `encap`.
fn pair_with(encap: Encap) -> (Plane, Plane) {
    let a = plane_with(
        "192.0.2.1",
        "192.0.2.2",
        ("10.1.0.0", 16),
        ("10.2.0.0", 16),
        0x1000,
        0x2000,
        encap,
    );
    let b = plane_with(
        "192.0.2.2",
        "192.0.2.1",
        ("10.2.0.0", 16),
        ("10.1.0.0", 16),
        0x2000,
        0x1000,
        encap,
    );
    (a, b)
}

/// A as [`pair_with`] makes it, but with a policy that protects traffic from
/// any source to 10.2/16: what it sends from outside 10.1/16, B's SA refuses.
fn a_from_anywhere(encap: Encap) -> Plane {
    plane_with(
        "192.0.2.1",
        "192.0.2.2",
        ("0.0.0.0", 0),
        ("10.2.0.0", 16),
        0x1000,
        0x2000,
        encap,
    )
}

/// ESP-in-UDP on port 4500 both ways.
const UDP_4500: Encap = Encap::Udp {
    src_port: 4500,
    dst_port: 4500,
};

/// A's and B's ends of the ESP-in-UDP flow: (A's address, B's local address).
fn udp_ends() -> (SocketAddr, SocketAddr) {
    (
        "192.0.2.1:4500".parse().unwrap(),
        "192.0.2.2:4500".parse().unwrap(),
    )
}

#[test]
fn a_seals_b_opens_and_delivers_the_original() {
    let (mut a, mut b) = pair();
    let original = udp_v4([10, 1, 0, 5], [10, 2, 0, 7], b"through the tunnel");
    let mut storage = vec![0u8; 2048];
    let mut buf = PacketBuf::with_packet(&mut storage, 128, &original).unwrap();
    let verdict = a.outbound(Timestamp(1), &mut buf);
    assert_eq!(
        verdict,
        OutVerdict::Send(Transmit::Raw {
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            proto: 50
        })
    );
    assert!(
        !buf.data().windows(7).any(|w| w == b"through"),
        "no plaintext on the wire"
    );
    let wire = buf.data().to_vec();

    let mut storage = vec![0u8; 2048];
    let mut buf = PacketBuf::with_packet(&mut storage, 128, &wire).unwrap();
    assert_eq!(b.inbound(Timestamp(2), &mut buf), InVerdict::Deliver);
    assert_eq!(buf.data(), &original[..]);

    // The same packet again is a replay.
    let mut storage = vec![0u8; 2048];
    let mut buf = PacketBuf::with_packet(&mut storage, 128, &wire).unwrap();
    assert_eq!(
        b.inbound(Timestamp(3), &mut buf),
        InVerdict::Drop(DropReason::Replay)
    );
    assert_eq!(b.drops.get(DropReason::Replay), 1);
}

/// A flow hint carries the SPD's PROTECT answer from one segment of a
/// super-packet to the next: the SPD is not asked again (shown here with a
/// packet no policy covers, which the hint's answer still seals; the worker
/// only ever hands the hint packets of one flow). A DISCARD answer is not
/// kept, and a fresh hint asks the SPD again.
#[test]
fn a_flow_hint_keeps_only_a_protect_answer() {
    let (mut a, _) = pair();
    let covered = udp_v4([10, 1, 0, 5], [10, 2, 0, 7], b"segment");
    let stray = udp_v4([10, 1, 0, 5], [10, 9, 0, 7], b"no policy");
    let send = |a: &mut Plane, pkt: &[u8], flow: &mut FlowHint| {
        let mut storage = vec![0u8; 2048];
        let mut buf = PacketBuf::with_packet(&mut storage, 128, pkt).unwrap();
        a.outbound_in_flow(Timestamp(1), &mut buf, flow)
    };
    let sent = |v: OutVerdict| matches!(v, OutVerdict::Send(Transmit::Raw { .. }));

    let mut flow = FlowHint::default();
    assert_eq!(
        send(&mut a, &stray, &mut flow),
        OutVerdict::Drop(DropReason::PolicyDiscard)
    );
    assert!(
        sent(send(&mut a, &covered, &mut flow)),
        "DISCARD was not kept"
    );
    assert!(sent(send(&mut a, &stray, &mut flow)), "PROTECT was kept");
    let mut fresh = FlowHint::default();
    assert_eq!(
        send(&mut a, &stray, &mut fresh),
        OutVerdict::Drop(DropReason::PolicyDiscard)
    );
    assert_eq!(a.drops.get(DropReason::PolicyDiscard), 2);
}

#[test]
fn traffic_outside_every_policy_is_discarded_not_sent_in_clear() {
    let (mut a, _) = pair();
    let stray = udp_v4([10, 1, 0, 5], [10, 9, 0, 7], b"no policy");
    let mut storage = vec![0u8; 2048];
    let mut buf = PacketBuf::with_packet(&mut storage, 128, &stray).unwrap();
    assert_eq!(
        a.outbound(Timestamp(1), &mut buf),
        OutVerdict::Drop(DropReason::PolicyDiscard)
    );
    assert_eq!(a.drops.get(DropReason::PolicyDiscard), 1);
}

#[test]
fn tampered_unknown_spi_and_wrong_inner_addresses_are_dropped_and_counted() {
    let (mut a, mut b) = pair();
    let seal = |a: &mut Plane, pkt: &[u8]| {
        let mut storage = vec![0u8; 2048];
        let mut buf = PacketBuf::with_packet(&mut storage, 128, pkt).unwrap();
        assert!(matches!(
            a.outbound(Timestamp(1), &mut buf),
            OutVerdict::Send(_)
        ));
        buf.data().to_vec()
    };
    let open = |b: &mut Plane, wire: &[u8]| {
        let mut storage = vec![0u8; 2048];
        let mut buf = PacketBuf::with_packet(&mut storage, 128, wire).unwrap();
        b.inbound(Timestamp(2), &mut buf)
    };
    let mut wire = seal(&mut a, &udp_v4([10, 1, 0, 5], [10, 2, 0, 7], b"payload"));
    let last = wire.len() - 1;
    wire[last] ^= 1;
    assert_eq!(open(&mut b, &wire), InVerdict::Drop(DropReason::IcvFailure));

    let mut wire = seal(&mut a, &udp_v4([10, 1, 0, 5], [10, 2, 0, 7], b"payload"));
    wire[20..24].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    assert_eq!(open(&mut b, &wire), InVerdict::Drop(DropReason::UnknownSpi));

    // A good packet first, so that B's SA remembers an accepted flow (the
    // spoof below differs from it only in its source address).
    let wire = seal(&mut a, &udp_v4([10, 1, 0, 5], [10, 2, 0, 7], b"payload"));
    assert_eq!(open(&mut b, &wire), InVerdict::Deliver);

    // A authentic packet whose inner addresses are outside the SA's selectors:
    // A's policy for 10.2/16 is widened to everything, B's SA still allows 10.1/16 only.
    let mut a_wide = a_from_anywhere(Encap::None);
    let wire = seal(
        &mut a_wide,
        &udp_v4([172, 16, 0, 1], [10, 2, 0, 7], b"spoofed"),
    );
    assert_eq!(
        open(&mut b, &wire),
        InVerdict::Drop(DropReason::PolicyMismatch)
    );
    assert_eq!(b.drops.get(DropReason::PolicyMismatch), 1);
    assert_eq!(b.drops.get(DropReason::IcvFailure), 1);
    assert_eq!(b.drops.get(DropReason::UnknownSpi), 1);
}

/// ESP-in-UDP as the worker's UDP socket hands it over (the payload only):
/// tunnel-mode ESP opens without an outer header, and every other kind of
/// datagram (keepalive, IKE, unknown SPI, forgery, replay, wrong inner
/// addresses) gets the same verdict and count as on the general path.
#[test]
fn udp_payloads_open_without_an_outer_header() {
    let (mut a, mut b) = pair_with(UDP_4500);
    let (from, local) = udp_ends();
    // What A sends from its UDP socket: the datagram's payload.
    let seal = |a: &mut Plane, pkt: &[u8]| {
        let mut storage = vec![0u8; 2048];
        let mut buf = PacketBuf::with_packet(&mut storage, 128, pkt).unwrap();
        match a.outbound(Timestamp(1), &mut buf) {
            OutVerdict::Send(Transmit::Udp { offset, dst, .. }) => {
                assert_eq!(dst, local);
                // No outer headers of ours: the socket adds them.
                assert_eq!(offset, 0);
                assert_eq!(
                    &buf.data()[..4],
                    &0x1000u32.to_be_bytes(),
                    "starts with the SPI"
                );
                buf.data()[offset..].to_vec()
            }
            other => panic!("{other:?}"),
        }
    };
    let open = |b: &mut Plane, payload: &[u8]| {
        let mut storage = vec![0u8; 2048];
        let mut buf = PacketBuf::with_packet(&mut storage, 128, payload).unwrap();
        let v = b.inbound_udp(Timestamp(2), &mut buf, &from, &local, 0);
        (v, buf.data().to_vec())
    };
    let original = udp_v4([10, 1, 0, 5], [10, 2, 0, 7], b"through the tunnel");
    let wire = seal(&mut a, &original);
    assert_eq!(open(&mut b, &wire), (InVerdict::Deliver, original.clone()));
    assert_eq!(b.totals.packets_in, 1);
    assert_eq!(open(&mut b, &wire).0, InVerdict::Drop(DropReason::Replay));

    let mut forged = seal(&mut a, &original);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        open(&mut b, &forged).0,
        InVerdict::Drop(DropReason::IcvFailure)
    );
    let mut unknown = seal(&mut a, &original);
    unknown[..4].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    assert_eq!(
        open(&mut b, &unknown).0,
        InVerdict::Drop(DropReason::UnknownSpi)
    );
    assert_eq!(open(&mut b, &[0xff]).0, InVerdict::Consumed);
    let ike = [0u8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    assert_eq!(open(&mut b, &ike), (InVerdict::Ike, ike.to_vec()));
    assert_eq!(
        open(&mut b, &[1, 2, 3]).0,
        InVerdict::Drop(DropReason::Malformed)
    );

    let mut a_wide = a_from_anywhere(UDP_4500);
    // Past the sequence numbers B has seen from A.
    for _ in 0..4 {
        seal(&mut a_wide, &original);
    }
    let spoofed = seal(
        &mut a_wide,
        &udp_v4([172, 16, 0, 1], [10, 2, 0, 7], b"spoofed"),
    );
    assert_eq!(
        open(&mut b, &spoofed).0,
        InVerdict::Drop(DropReason::PolicyMismatch)
    );
    for r in [
        DropReason::Replay,
        DropReason::IcvFailure,
        DropReason::UnknownSpi,
        DropReason::PolicyMismatch,
        DropReason::Malformed,
    ] {
        assert_eq!(b.drops.get(r), 1, "{r:?}");
    }
    assert_eq!(b.totals.packets_in, 1);
}

/// RFC 6040 on the UDP-payload path: the outer ECN the socket reports is
/// passed on. A CE mark on the outer header marks an ECN-capable inner
/// packet CE (IPv4 checksum still right); over a Not-ECT inner packet, which
/// cannot carry it, the packet is dropped (RFC 6040 4.2).
#[test]
fn udp_payload_path_passes_the_outer_ce_mark_on() {
    let (mut a, mut b) = pair_with(UDP_4500);
    let (from, local) = udp_ends();
    let mut through = |inner_ecn: u8, outer_ecn: u8| {
        let mut pkt = udp_v4([10, 1, 0, 5], [10, 2, 0, 7], b"ecn");
        pkt[1] = inner_ecn;
        palisade_wire::ipv4::Packet::new_unchecked(&mut pkt[..]).fill_checksum();
        let mut storage = vec![0u8; 2048];
        let mut buf = PacketBuf::with_packet(&mut storage, 128, &pkt).unwrap();
        assert!(matches!(
            a.outbound(Timestamp(1), &mut buf),
            OutVerdict::Send(_)
        ));
        let wire = buf.data().to_vec();
        let mut storage = vec![0u8; 2048];
        let mut buf = PacketBuf::with_packet(&mut storage, 128, &wire).unwrap();
        let v = b.inbound_udp(Timestamp(2), &mut buf, &from, &local, outer_ecn);
        (v, buf.data().to_vec())
    };
    let (v, got) = through(0b10, 0b11);
    assert_eq!(v, InVerdict::Deliver);
    assert_eq!(got[1] & 3, 0b11, "ECT(0) inner under a CE outer becomes CE");
    assert!(palisade_wire::ipv4::Packet::new_checked(&got[..])
        .unwrap()
        .verify_checksum());
    let (v, got) = through(0b10, 0b00);
    assert_eq!(
        (v, got[1] & 3),
        (InVerdict::Deliver, 0b10),
        "no mark: unchanged"
    );
    let (v, _) = through(0b00, 0b11);
    assert!(matches!(v, InVerdict::Drop(_)), "CE over Not-ECT: {v:?}");
}

/// ESP-in-UDP carries the cleartext packet's DSCP and ECN in the outer
/// header, as raw ESP does (RFC 4301 5.1.2.1, RFC 6040 normal mode): the
/// socket writes that header, so the verdict hands the TOS byte over.
#[test]
fn udp_transmit_carries_the_inner_tos() {
    let (mut a, _) = pair_with(UDP_4500);
    for tos in [0u8, 0x02, 0x03, 0xb8, 0xba, 0xff] {
        let mut pkt = udp_v4([10, 1, 0, 5], [10, 2, 0, 7], b"marked");
        pkt[1] = tos;
        let mut ip = palisade_wire::ipv4::Packet::new_unchecked(&mut pkt[..]);
        ip.fill_checksum();
        let mut storage = vec![0u8; 2048];
        let mut buf = PacketBuf::with_packet(&mut storage, 128, &pkt).unwrap();
        match a.outbound(Timestamp(1), &mut buf) {
            OutVerdict::Send(Transmit::Udp { tos: outer, .. }) => {
                assert_eq!(outer, tos, "inner TOS {tos:#04x}")
            }
            other => panic!("{other:?}"),
        }
    }
}
