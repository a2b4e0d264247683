//! Random bytes into every IP-layer parser and in-place rewriter: errors are
//! fine, panics are not. The fuzz targets `wire_ip` and `wire_esp_ah` do the
//! same with coverage guidance; this keeps a cheap version in `cargo test`.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade_wire::ip::{self, checksum, IpPacket, IpProtocol, Version};
use palisade_wire::{ah, esp, ipv4, ipv6, udp, udp_encap};
use proptest::prelude::*;

fn byte0(data: &[u8]) -> u8 {
    data.first().copied().unwrap_or(0)
}

fn exercise_ip(data: &[u8]) {
    let _ = Version::of(data);
    if let Ok(p) = IpPacket::new_checked(data) {
        let _ = (p.src_addr(), p.dst_addr(), p.total_len(), p.version());
    }
    if let Ok(p) = ipv4::Packet::new_checked(data) {
        let _ = p.verify_checksum();
        let _ = p.payload();
        for o in p.option_iter() {
            let _ = o;
        }
        let _ = ipv4::Repr::parse(&p);
        let mut copy = data.to_vec();
        let mut m = ipv4::Packet::new_checked(&mut copy[..]).unwrap();
        let _ = m.zero_mutable_fields();
    }
    // Unchecked views must not panic either.
    let u = ipv4::Packet::new_unchecked(data);
    let _ = (
        u.options(),
        u.payload(),
        u.header(),
        u.verify_checksum(),
        u.src_addr(),
    );
    let u6 = ipv6::Packet::new_unchecked(data);
    let _ = (u6.payload(), u6.dst_addr(), u6.flow_label());
    for h in u6.ext_headers() {
        let _ = h;
    }
    if let Ok(p) = ipv6::Packet::new_checked(data) {
        let _ = ipv6::Repr::parse(&p);
        let _ = p.upper_layer();
        let _ = p.ipsec_insertion_point();
        for h in p.ext_headers().flatten() {
            if let Some(area) = data.get(h.offset + 2..h.offset + h.len) {
                for o in ipv6::OptionIter::new(area) {
                    let _ = o;
                }
            }
        }
    }
    let mut copy = data.to_vec();
    let _ = ipv6::prepare_for_ah_icv(&mut copy);
    let mut copy = data.to_vec();
    let _ = ipv4::zero_mutable_options(&mut copy);
    let mut copy = data.to_vec();
    let _ = ipv6::zero_mutable_option_data(&mut copy);
    let mut copy = data.to_vec();
    let mut dst = [0u8; 16];
    let _ = ipv6::predict_routing_at_destination(&mut dst, &mut copy);
    let _ = ipv4::source_route_final_destination(data);
    let _ = (
        ip::ecn::decapsulate(byte0(data), 3),
        ip::ecn::encapsulate(byte0(data)),
    );
    for o in ipv4::OptionIter::new(data) {
        let _ = o;
    }
}

fn exercise_transport(data: &[u8]) {
    let a4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let a6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    if let Ok(p) = udp::Packet::new_checked(data) {
        let _ = udp::Repr::parse(&p);
        let _ = (p.verify_checksum(&a4, &a4), p.verify_checksum(&a6, &a6));
    }
    let _ = udp::Packet::new_unchecked(data).payload();
    if let Ok(p) = esp::Packet::new_checked(data) {
        let _ = esp::Repr::parse(&p);
        let _ = p.layout(8, 16);
        let _ = p.layout(16, 12);
        let _ = p.icv(32);
    }
    let _ = esp::Trailer::parse(data);
    let _ = esp::Trailer::parse_unchecked_padding(data);
    for v in [Version::V4, Version::V6] {
        if let Ok(p) = ah::Packet::new_checked(data) {
            let _ = ah::Repr::parse(&p, v, 12);
            let _ = ah::Repr::parse(&p, v, 16);
            let _ = (p.icv(12), p.icv_field(), p.payload());
        }
    }
    if let Ok(pl) = udp_encap::Payload::classify(data) {
        let mut out = vec![0u8; pl.buffer_len()];
        let _ = pl.emit(&mut out);
    }
    let _ = checksum::update(0x1234, data, data);
    let _ = checksum::pseudo_header(&a4, &a6, IpProtocol::UDP, data.len() as u32);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..160)) {
        exercise_ip(&data);
        exercise_transport(&data);
    }

    /// Random bytes behind a plausible first byte reach deeper code.
    #[test]
    fn plausible_headers_never_panic(
        first in prop_oneof![Just(0x45u8), 0x46u8..0x50, Just(0x60)],
        next in prop_oneof![Just(0u8), Just(43), Just(44), Just(50), Just(51), Just(59), Just(60), any::<u8>()],
        len in any::<u16>(),
        rest in proptest::collection::vec(any::<u8>(), 40..200),
    ) {
        let mut d = rest;
        d[0] = first;
        if first == 0x60 {
            let plen = (len as usize % (d.len() - 39)) as u16;
            d[4..6].copy_from_slice(&plen.to_be_bytes());
            d[6] = next;
        } else {
            let tl = (len as usize % (d.len() + 1)) as u16;
            d[2..4].copy_from_slice(&tl.to_be_bytes());
            d[9] = next;
        }
        exercise_ip(&d);
        exercise_transport(&d[20..]);
    }
}
