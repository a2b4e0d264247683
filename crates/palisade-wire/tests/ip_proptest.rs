//! parse(emit(x)) == x for generated Reprs of every IP-layer format, and the
//! checksum identities the SA layer relies on.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade_wire::ip::{checksum, IpProtocol, Version};
use palisade_wire::{ah, esp, ipv4, ipv6, udp, udp_encap};
use proptest::prelude::*;

/// A well-formed IPv4 options area: a sequence of NOPs and TLV options, ended
/// with EOL and zero padding to a multiple of 4, at most 40 bytes.
fn v4_options() -> impl Strategy<Value = Vec<u8>> {
    let one = prop_oneof![
        Just(vec![1u8]),
        (2u8..=255, proptest::collection::vec(any::<u8>(), 0..6)).prop_map(|(k, d)| {
            let mut v = vec![k, (d.len() + 2) as u8];
            v.extend(d);
            v
        }),
    ];
    proptest::collection::vec(one, 0..6).prop_map(|opts| {
        let mut area = Vec::new();
        for o in opts {
            if area.len() + o.len() > 39 {
                break;
            }
            area.extend(o);
        }
        if area.len() % 4 != 0 {
            area.push(0);
        }
        while area.len() % 4 != 0 {
            area.push(0);
        }
        area
    })
}

prop_compose! {
    fn v4_fields()(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), proto in any::<u8>(),
        payload_len in 0usize..200, ttl in any::<u8>(), dscp in 0u8..64, ecn in 0u8..4,
        ident in any::<u16>(), df in any::<bool>(), mf in any::<bool>(), off in 0u16..0x2000,
        options in v4_options(),
    ) -> (ipv4::Repr<'static>, Vec<u8>) {
        let repr = ipv4::Repr {
            src_addr: Ipv4Addr::from(src), dst_addr: Ipv4Addr::from(dst),
            protocol: IpProtocol(proto), payload_len, ttl, dscp, ecn, ident,
            dont_frag: df, more_frags: mf, frag_offset: off << 3, options: &[],
        };
        (repr, options)
    }
}

prop_compose! {
    fn v6_repr()(
        src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), nh in any::<u8>(),
        payload_len in 0usize..200, hop in any::<u8>(), tc in any::<u8>(), fl in 0u32..0x10_0000,
    ) -> ipv6::Repr {
        ipv6::Repr {
            src_addr: Ipv6Addr::from(src), dst_addr: Ipv6Addr::from(dst),
            next_header: IpProtocol(nh), payload_len, hop_limit: hop,
            traffic_class: tc, flow_label: fl,
        }
    }
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V4), Just(Version::V6)]
}

proptest! {
    #[test]
    fn ipv4_roundtrip((base, options) in v4_fields()) {
        let repr = ipv4::Repr { options: &options, ..base };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..])).unwrap();
        let p = ipv4::Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(p.verify_checksum());
        prop_assert_eq!(ipv4::Repr::parse(&p).unwrap(), repr);
        // Zeroing mutable fields never fails on a well-formed header.
        let mut b2 = buf.clone();
        ipv4::Packet::new_checked(&mut b2[..]).unwrap().zero_mutable_fields().unwrap();
    }

    #[test]
    fn ipv6_roundtrip(repr in v6_repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ipv6::Packet::new_unchecked(&mut buf[..])).unwrap();
        let p = ipv6::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(ipv6::Repr::parse(&p).unwrap(), repr);
    }

    #[test]
    fn udp_roundtrip_and_checksum(
        sp in any::<u16>(), dp in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..100),
        v6 in any::<bool>(), a in any::<[u8; 16]>(), b in any::<[u8; 16]>(),
    ) {
        let repr = udp::Repr { src_port: sp, dst_port: dp, payload_len: payload.len() };
        let mut buf = vec![0u8; repr.buffer_len()];
        let mut p = udp::Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p).unwrap();
        p.payload_mut().copy_from_slice(&payload);
        let (s, d) = if v6 {
            (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))
        } else {
            let (a4, b4) = ([a[0], a[1], a[2], a[3]], [b[0], b[1], b[2], b[3]]);
            (IpAddr::V4(Ipv4Addr::from(a4)), IpAddr::V4(Ipv4Addr::from(b4)))
        };
        p.fill_checksum(&s, &d);
        prop_assert_ne!(p.checksum(), 0);
        let p = udp::Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(p.verify_checksum(&s, &d));
        prop_assert_eq!(udp::Repr::parse(&p).unwrap(), repr);
        prop_assert_eq!(p.payload(), &payload[..]);
    }

    #[test]
    fn esp_header_roundtrip(spi in 1u32.., seq in any::<u32>()) {
        let repr = esp::Repr { spi, seq_number: seq };
        let mut buf = [0u8; esp::HEADER_LEN];
        repr.emit(&mut esp::Packet::new_unchecked(&mut buf[..])).unwrap();
        prop_assert_eq!(esp::Repr::parse(&esp::Packet::new_checked(&buf[..]).unwrap()).unwrap(), repr);
    }

    #[test]
    fn esp_trailer_roundtrip(
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        block in prop_oneof![Just(1usize), Just(4), Just(8), Just(16), 1usize..=64],
        nh in any::<u8>(),
    ) {
        let pad = esp::pad_len(payload.len(), block).unwrap();
        prop_assert!(pad <= 255);
        let total = esp::padded_len(payload.len(), block).unwrap();
        prop_assert_eq!(total % esp::alignment(block).unwrap(), 0);
        prop_assert_eq!(total % 4, 0);
        let mut buf = payload.clone();
        buf.resize(total, 0);
        let n = esp::write_padded_trailer(&mut buf, payload.len(), block, IpProtocol(nh)).unwrap();
        prop_assert_eq!(n, total);
        let t = esp::Trailer::parse(&buf).unwrap();
        prop_assert_eq!(t.payload_len, payload.len());
        prop_assert_eq!(usize::from(t.pad_len), pad);
        prop_assert_eq!(t.next_header, IpProtocol(nh));
        prop_assert_eq!(&buf[..payload.len()], &payload[..]);
    }

    #[test]
    fn ah_roundtrip(nh in any::<u8>(), spi in 1u32.., seq in any::<u32>(), icv_len in 0usize..=64, v in version()) {
        let repr = ah::Repr { next_header: IpProtocol(nh), spi, seq_number: seq, icv_len, version: v };
        let len = repr.buffer_len();
        prop_assert_eq!(len % v.ah_alignment(), 0);
        prop_assert!(len >= 12 + icv_len && len < 12 + icv_len + v.ah_alignment());
        let mut buf = vec![0xa5u8; len + 3];
        repr.emit(&mut ah::Packet::new_unchecked(&mut buf[..])).unwrap();
        let p = ah::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(p.header_len(), len);
        prop_assert_eq!(ah::Repr::parse(&p, v, icv_len).unwrap(), repr);
        prop_assert_eq!(p.payload(), &[0xa5u8; 3][..]);
    }

    #[test]
    fn udp_encap_roundtrip(kind in 0u8..3, body in proptest::collection::vec(any::<u8>(), 0..64), spi in 1u32..) {
        let mut esp_bytes = spi.to_be_bytes().to_vec();
        esp_bytes.extend_from_slice(&[0, 0, 0, 1]);
        esp_bytes.extend_from_slice(&body);
        let pl = match kind {
            0 => udp_encap::Payload::Keepalive,
            1 => udp_encap::Payload::Ike(&body),
            _ => udp_encap::Payload::Esp(&esp_bytes),
        };
        let mut buf = vec![0u8; pl.buffer_len()];
        prop_assert_eq!(pl.emit(&mut buf).unwrap(), buf.len());
        prop_assert_eq!(udp_encap::Payload::classify(&buf).unwrap(), pl);
    }

    /// RFC 1624 incremental update agrees with recomputation (modulo the two
    /// representations of zero, which a receiver treats alike).
    #[test]
    fn incremental_checksum(data in proptest::collection::vec(any::<u8>(), 10..64), at in 0usize..4, new in any::<[u8; 4]>()) {
        let mut d = data.clone();
        let at = at * 2;
        let c = checksum::data(&d);
        let old = d[at..at + 4].to_vec();
        d[at..at + 4].copy_from_slice(&new);
        let inc = checksum::update(c, &old, &new).unwrap();
        let full = checksum::data(&d);
        prop_assert!(inc == full || (inc == 0 && full == 0xffff) || (inc == 0xffff && full == 0));
    }
}
