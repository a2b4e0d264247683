//! Fuzzes the IP-layer parsers: IPv4 (header, options, AH mutable-field
//! zeroing), IPv6 (header, extension-header walk, option TLVs, routing
//! prediction for AH) and UDP. Whatever parses must re-emit and re-parse to the
//! same Repr; the in-place AH preparations must be idempotent.
#![no_main]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use palisade_wire::ip::{checksum, IpPacket, IpProtocol, Version};
use palisade_wire::{ipv4, ipv6, udp};

fn ipv4_roundtrip(data: &[u8]) {
    let Ok(p) = ipv4::Packet::new_checked(data) else {
        return;
    };
    let _ = p.option_iter().count();
    let _ = (p.payload(), p.is_fragment(), p.src_addr(), p.dst_addr());
    if let Ok(r) = ipv4::Repr::parse(&p) {
        let mut out = vec![0u8; r.buffer_len()];
        let mut q = ipv4::Packet::new_unchecked(&mut out[..]);
        r.emit(&mut q).expect("a parsed IPv4 header re-emits");
        q.payload_mut().copy_from_slice(p.payload());
        let q = ipv4::Packet::new_checked(&out[..]).expect("emitted IPv4 is well formed");
        assert!(q.verify_checksum());
        assert_eq!(ipv4::Repr::parse(&q).expect("emitted IPv4 parses"), r);
        // Everything but the checksum (0 and 0xffff can both verify) is equal.
        assert_eq!(&out[..10], &data[..10]);
        assert_eq!(&out[12..r.header_len()], &data[12..r.header_len()]);
    }
    let mut copy = data.to_vec();
    let mut m = ipv4::Packet::new_checked(&mut copy[..]).expect("checked above");
    if m.zero_mutable_fields().is_ok() {
        let once = copy.clone();
        let mut m = ipv4::Packet::new_checked(&mut copy[..]).expect("still well formed");
        m.zero_mutable_fields().expect("zeroing twice succeeds");
        assert_eq!(copy, once);
    }
}

fn ipv6_roundtrip(data: &[u8]) {
    let Ok(p) = ipv6::Packet::new_checked(data) else {
        return;
    };
    let r = ipv6::Repr::parse(&p).expect("a checked IPv6 packet parses");
    let mut out = vec![0u8; r.buffer_len()];
    let mut q = ipv6::Packet::new_unchecked(&mut out[..]);
    r.emit(&mut q).expect("a parsed IPv6 header re-emits");
    q.payload_mut().copy_from_slice(p.payload());
    assert_eq!(&out[..], p.packet_bytes());

    let mut last_end = ipv6::HEADER_LEN;
    let mut it = p.ext_headers();
    for h in &mut it {
        let Ok(h) = h else { break };
        assert_eq!(h.offset, last_end);
        last_end = h.offset + h.len;
        assert!(last_end <= p.packet_bytes().len());
        if matches!(h.kind, IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_DEST_OPTS) {
            let area = &data[h.offset + 2..h.offset + h.len];
            let mut pos = 0;
            for o in ipv6::OptionIter::new(area) {
                let Ok(o) = o else { break };
                assert_eq!(o.offset, pos);
                pos += o.len;
                assert!(pos <= area.len());
            }
        }
    }
    if let Some(up) = it.upper_layer() {
        assert!(up.offset <= p.packet_bytes().len());
    }

    if let Ok(ins) = p.ipsec_insertion_point() {
        assert!(ins.offset <= p.packet_bytes().len());
        assert!(ins.next_header_field < ins.offset);
        assert_eq!(data[ins.next_header_field], ins.next_header.0);
    }

    let mut copy = data.to_vec();
    if ipv6::prepare_for_ah_icv(&mut copy).is_ok() {
        let once = copy.clone();
        ipv6::prepare_for_ah_icv(&mut copy).expect("preparing twice succeeds");
        assert_eq!(copy, once);
    }
}

fn udp_roundtrip(data: &[u8]) {
    let Ok(p) = udp::Packet::new_checked(data) else {
        return;
    };
    let r = udp::Repr::parse(&p).expect("a checked UDP datagram parses");
    let mut out = vec![0u8; r.buffer_len()];
    let mut q = udp::Packet::new_unchecked(&mut out[..]);
    r.emit(&mut q).expect("a parsed UDP header re-emits");
    q.payload_mut().copy_from_slice(p.payload());
    let (s4, d4) = (
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
    );
    let (s6, d6) = (
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    );
    for (s, d) in [(s4, d4), (s6, d6)] {
        q.fill_checksum(&s, &d);
        assert!(q.verify_checksum(&s, &d));
    }
    assert_eq!(
        udp::Repr::parse(&udp::Packet::new_checked(&out[..]).expect("valid")).expect("parses"),
        r
    );
    let _ = p.verify_checksum(&s4, &d4);
}

fuzz_target!(|data: &[u8]| {
    let _ = Version::of(data);
    let _ = IpPacket::new_checked(data).map(|p| (p.src_addr(), p.total_len()));
    ipv4_roundtrip(data);
    // Random bytes rarely carry a valid header checksum: also try with one.
    if let Ok(mut p) = ipv4::Packet::new_checked(data.to_vec()) {
        p.fill_checksum();
        ipv4_roundtrip(&p.into_inner());
    }
    ipv6_roundtrip(data);
    udp_roundtrip(data);
    // The raw TLV walkers and rewriters on arbitrary areas.
    let _ = ipv4::OptionIter::new(data).count();
    let _ = ipv6::OptionIter::new(data).count();
    let mut copy = data.to_vec();
    let _ = ipv4::zero_mutable_options(&mut copy);
    let mut copy = data.to_vec();
    let _ = ipv6::zero_mutable_option_data(&mut copy);
    let mut copy = data.to_vec();
    let mut dst = [0u8; 16];
    let _ = ipv6::predict_routing_at_destination(&mut dst, &mut copy);
    if data.len() >= 8 {
        let _ = checksum::update(checksum::data(data), &data[..4], &data[4..8]);
    }
});
