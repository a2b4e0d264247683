//! Known packets and error cases for the IP-layer views.
//!
//! The ESP packet is RFC 7634 Appendix A ("ESP Example"): SPI 0x01020304,
//! sequence number 5, IV 10..17, and the plaintext/ciphertext/tag as published.
//! The bytes were taken from strongSwan's copy of that vector
//! (src/libstrongswan/plugins/test_vectors/test_vectors/chacha20poly1305.c,
//! "ESP example from RFC 7634"), found with the project's code search. The
//! outer IPv4 header is built here (the vector copy carries only the ESP part),
//! so only the ESP bytes and the inner packet are published data.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade_wire::ip::{checksum, IpPacket, IpProtocol, Version};
use palisade_wire::{ah, esp, ipv4, ipv6, udp, udp_encap, Error};

const RFC7634_SPI_SEQ: [u8; 8] = [0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x05];
const RFC7634_IV: [u8; 8] = [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17];

/// The decrypted ESP payload: an ICMP echo request in IPv4 (tunnel mode),
/// 2 padding bytes, pad length 2, next header 4.
const RFC7634_PLAIN: &str = "45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec10\
    000736270809 0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223\
    2425262728292a2b2c2d2e2f303132333435363701020204";

/// Ciphertext (88 bytes) followed by the 16-byte Poly1305 tag.
const RFC7634_CIPHER_TAG: &str = "24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c6\
    14ee8099d52844eb61aa95dfab4c02f72aa71e7c4c4f64c9befe2facc638e8f3\
    cbec163fac469b502773f6fb94e664da9165b82829f641e076aaa8266b7fb0f7\
    b11b369907e1ad43";

fn unhex(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).unwrap()
}

fn rfc7634_esp() -> Vec<u8> {
    let mut v = RFC7634_SPI_SEQ.to_vec();
    v.extend_from_slice(&RFC7634_IV);
    v.extend_from_slice(&unhex(RFC7634_CIPHER_TAG));
    v
}

/// An outer IPv4 header around the RFC 7634 ESP packet.
fn rfc7634_outer() -> Vec<u8> {
    let esp = rfc7634_esp();
    let repr = ipv4::Repr {
        src_addr: Ipv4Addr::new(203, 0, 113, 5),
        dst_addr: Ipv4Addr::new(192, 0, 2, 5),
        protocol: IpProtocol::ESP,
        payload_len: esp.len(),
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 0x2345,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        options: &[],
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    let mut p = ipv4::Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut p).unwrap();
    p.payload_mut().copy_from_slice(&esp);
    buf
}

#[test]
fn rfc7634_esp_packet_layout() {
    let pkt = rfc7634_outer();
    assert_eq!(pkt.len(), 140);
    let ip = match IpPacket::new_checked(&pkt[..]).unwrap() {
        IpPacket::V4(p) => p,
        IpPacket::V6(_) => panic!("v6"),
    };
    assert!(ip.verify_checksum());
    let repr = ipv4::Repr::parse(&ip).unwrap();
    assert_eq!(repr.protocol, IpProtocol::ESP);
    assert_eq!(repr.payload_len, 120);

    let esp_pkt = esp::Packet::new_checked(ip.payload()).unwrap();
    let e = esp::Repr::parse(&esp_pkt).unwrap();
    assert_eq!(e.spi, 0x0102_0304);
    assert_eq!(e.seq_number, 5);
    // ChaCha20-Poly1305 in ESP: 8-byte IV, 16-byte ICV (RFC 7634 2).
    let l = esp_pkt.layout(8, 16).unwrap();
    assert_eq!(&esp_pkt.as_bytes()[l.iv.clone()], &RFC7634_IV);
    assert_eq!(l.ciphertext.len(), 88);
    assert_eq!(esp_pkt.header(), &RFC7634_SPI_SEQ);
    assert_eq!(esp_pkt.icv(16).unwrap(), &unhex(RFC7634_CIPHER_TAG)[88..]);
}

#[test]
fn rfc7634_plaintext_trailer_and_inner_packet() {
    let plain = unhex(RFC7634_PLAIN);
    assert_eq!(plain.len(), 88);
    let t = esp::Trailer::parse(&plain).unwrap();
    assert_eq!(t.pad_len, 2);
    assert_eq!(t.next_header, IpProtocol::IPV4);
    assert_eq!(t.payload_len, 84);
    assert!(!t.is_dummy());
    // The sender padded to ChaCha20's 4-byte alignment with the least padding.
    assert_eq!(esp::pad_len(84, 1), Ok(2));

    let inner = ipv4::Packet::new_checked(&plain[..t.payload_len]).unwrap();
    let r = ipv4::Repr::parse(&inner).unwrap();
    assert_eq!(r.src_addr, Ipv4Addr::new(198, 51, 100, 5));
    assert_eq!(r.dst_addr, Ipv4Addr::new(192, 0, 2, 5));
    assert_eq!(r.protocol, IpProtocol::ICMP);
    assert_eq!(r.ttl, 64);
    assert_eq!(inner.checksum(), 0xe778);
    // The ICMP checksum over the ICMP message is valid too.
    assert_eq!(checksum::fold(checksum::sum(inner.payload())), 0xffff);

    // Re-emitting the parsed header gives the published bytes.
    let mut again = plain[..84].to_vec();
    again[..20].fill(0);
    r.emit(&mut ipv4::Packet::new_unchecked(&mut again[..]))
        .unwrap();
    assert_eq!(&again[..], &plain[..84]);

    // Writing the trailer ourselves reproduces the published one.
    let mut mine = plain[..84].to_vec();
    mine.resize(88, 0);
    let n = esp::write_padded_trailer(&mut mine, 84, 1, IpProtocol::IPV4).unwrap();
    assert_eq!(n, 88);
    assert_eq!(mine, plain);
}

#[test]
fn esp_padding_must_be_monotonic() {
    let mut plain = unhex(RFC7634_PLAIN);
    plain[85] = 7;
    assert_eq!(
        esp::Trailer::parse(&plain),
        Err(Error::Invalid {
            field: "ESP padding",
            value: 7
        })
    );
    assert!(esp::Trailer::parse_unchecked_padding(&plain).is_ok());
    // Pad length longer than the plaintext.
    assert_eq!(
        esp::Trailer::parse(&[1, 2, 9, 4]),
        Err(Error::Malformed {
            field: "ESP pad length",
            why: "longer than the decrypted payload"
        })
    );
    assert!(matches!(
        esp::Trailer::parse(&[4]),
        Err(Error::Truncated {
            field: "ESP trailer",
            ..
        })
    ));
    // A dummy packet (RFC 4303 2.6).
    let t = esp::Trailer::parse(&[0xde, 0xad, 0, 59]).unwrap();
    assert!(t.is_dummy());
}

#[test]
fn esp_errors_name_fields() {
    assert!(matches!(
        esp::Packet::new_checked(&[1u8, 2, 3][..]),
        Err(Error::Truncated {
            field: "ESP header",
            need: 8,
            have: 3
        })
    ));
    let zero_spi = [0u8, 0, 0, 0, 0, 0, 0, 1];
    let p = esp::Packet::new_checked(&zero_spi[..]).unwrap();
    assert_eq!(
        esp::Repr::parse(&p),
        Err(Error::Invalid {
            field: "ESP SPI",
            value: 0
        })
    );
    let e = rfc7634_esp();
    let p = esp::Packet::new_checked(&e[..]).unwrap();
    assert!(matches!(
        p.layout(8, 200),
        Err(Error::Truncated {
            field: "ESP payload (IV + trailer + ICV)",
            ..
        })
    ));
}

#[test]
fn ipv4_errors_name_fields() {
    let good = rfc7634_outer();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..10].to_vec(), "IPv4 header"),
        (
            {
                let mut b = good.clone();
                b[0] = 0x55;
                b
            },
            "IPv4 version",
        ),
        (
            {
                let mut b = good.clone();
                b[0] = 0x44;
                b
            },
            "IPv4 IHL",
        ),
        (
            {
                let mut b = good.clone();
                b[2..4].copy_from_slice(&0x0200u16.to_be_bytes());
                b
            },
            "IPv4 total length",
        ),
        (
            {
                let mut b = good.clone();
                b[2..4].copy_from_slice(&10u16.to_be_bytes());
                b
            },
            "IPv4 total length",
        ),
    ];
    for (bytes, field) in cases {
        let err = ipv4::Packet::new_checked(&bytes[..]).unwrap_err();
        let got = match err {
            Error::Truncated { field, .. }
            | Error::Invalid { field, .. }
            | Error::Malformed { field, .. }
            | Error::BufferTooSmall { field, .. } => field,
            other => panic!("unexpected {other}"),
        };
        assert_eq!(got, field, "{err}");
    }
    let mut bad_sum = good.clone();
    bad_sum[10] ^= 1;
    let p = ipv4::Packet::new_checked(&bad_sum[..]).unwrap();
    assert!(matches!(
        ipv4::Repr::parse(&p),
        Err(Error::Invalid {
            field: "IPv4 header checksum",
            ..
        })
    ));
    // The message is readable on its own.
    assert_eq!(
        Error::Truncated {
            field: "IPv4 header",
            need: 20,
            have: 10
        }
        .to_string(),
        "IPv4 header: truncated (need 20 bytes, have 10)"
    );
}

/// An IPv4 header with options: Record Route (mutable), Router Alert
/// (immutable), NOP, EOL padding.
fn v4_with_options() -> Vec<u8> {
    let options = [
        7, 7, 4, 10, 0, 0, 1, // RR, len 7, pointer 4, one slot
        148, 4, 0, 0, // Router Alert
        1, 0, // NOP, EOL
        0, 0, 0, 0, 0, // padding to 20... trimmed below
    ];
    let options = &options[..16];
    let repr = ipv4::Repr {
        src_addr: Ipv4Addr::new(10, 0, 0, 1),
        dst_addr: Ipv4Addr::new(10, 0, 0, 2),
        protocol: IpProtocol::AH,
        payload_len: 4,
        ttl: 17,
        dscp: 46,
        ecn: 1,
        ident: 7,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        options,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..]))
        .unwrap();
    buf
}

#[test]
fn ipv4_options_and_ah_mutable_fields() {
    let mut buf = v4_with_options();
    let p = ipv4::Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(p.header_len(), 36);
    assert_eq!((p.dscp(), p.ecn(), p.dont_frag()), (46, 1, true));
    let kinds: Vec<u8> = p.option_iter().map(|o| o.unwrap().kind).collect();
    assert_eq!(kinds, vec![7, 148, 1, 0]);
    assert_eq!(ipv4::option_mutability(7), ipv4::OptionMutability::Mutable);
    assert_eq!(
        ipv4::option_mutability(148),
        ipv4::OptionMutability::Immutable
    );
    let r = ipv4::Repr::parse(&p).unwrap();
    assert_eq!(r.options.len(), 16);

    let mut p = ipv4::Packet::new_checked(&mut buf[..]).unwrap();
    p.zero_mutable_fields().unwrap();
    assert_eq!((p.tos(), p.ttl(), p.checksum()), (0, 0, 0));
    assert!(!p.dont_frag());
    assert_eq!(p.ident(), 7); // immutable
    assert_eq!(
        p.options(),
        &[0, 0, 0, 0, 0, 0, 0, 148, 4, 0, 0, 1, 0, 0, 0, 0]
    );

    // A bad option length is reported by field.
    let mut bad = v4_with_options();
    bad[21] = 1;
    let mut p = ipv4::Packet::new_checked(&mut bad[..]).unwrap();
    p.fill_checksum();
    let p = ipv4::Packet::new_checked(&bad[..]).unwrap();
    assert_eq!(
        ipv4::Repr::parse(&p),
        Err(Error::Invalid {
            field: "IPv4 option length",
            value: 1
        })
    );
}

fn v6(next: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let repr = ipv6::Repr {
        src_addr: "2001:db8::1".parse().unwrap(),
        dst_addr: "2001:db8::2".parse().unwrap(),
        next_header: next,
        payload_len: payload.len(),
        hop_limit: 64,
        traffic_class: 0xb8,
        flow_label: 0xabcde,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    let mut p = ipv6::Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut p).unwrap();
    p.payload_mut().copy_from_slice(payload);
    buf
}

/// HBH (Router Alert + a may-change option) -> Routing type 0 (2 addresses,
/// 2 segments left) -> Destination Options -> AH (ICV 12) -> UDP.
fn v6_chain() -> Vec<u8> {
    let mut p = Vec::new();
    // Hop-by-Hop: next 43, len 1 (16 bytes): Router Alert (5, len 2), option
    // 0x3e (may change) with 4 data bytes, PadN with 2.
    p.extend_from_slice(&[
        43, 1, 5, 2, 0, 0, 0x3e, 4, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 0, 0,
    ]);
    // Routing type 0: next 60, len 4 (2 addresses), type 0, segments left 2.
    p.extend_from_slice(&[60, 4, 0, 2, 0, 0, 0, 0]);
    let a1: Ipv6Addr = "2001:db8::a1".parse().unwrap();
    let a2: Ipv6Addr = "2001:db8::a2".parse().unwrap();
    p.extend_from_slice(&a1.octets());
    p.extend_from_slice(&a2.octets());
    // Destination options: next 51, len 0 (8 bytes): PadN (4 bytes), Pad1 x2.
    p.extend_from_slice(&[51, 0, 1, 2, 0, 0, 0, 0]);
    // AH for v6 with a 12-byte ICV: 24 bytes, payload len 4.
    let ah_start = p.len();
    p.resize(ah_start + 24, 0);
    ah::Repr {
        next_header: IpProtocol::UDP,
        spi: 0x1000,
        seq_number: 1,
        icv_len: 12,
        version: Version::V6,
    }
    .emit(&mut ah::Packet::new_unchecked(&mut p[ah_start..]))
    .unwrap();
    ah::Packet::new_unchecked(&mut p[ah_start..])
        .set_icv(&[0x55; 12])
        .unwrap();
    // UDP, 8 bytes header + 4 payload.
    p.extend_from_slice(&[0x11, 0x94, 0x11, 0x94, 0, 12, 0, 0, 1, 2, 3, 4]);
    v6(IpProtocol::HOP_BY_HOP, &p)
}

#[test]
fn ipv6_extension_header_walk() {
    let buf = v6_chain();
    let p = ipv6::Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(p.traffic_class(), 0xb8);
    assert_eq!(p.flow_label(), 0xabcde);
    let hs: Vec<_> = p.ext_headers().map(|h| h.unwrap()).collect();
    let kinds: Vec<(u8, usize, usize)> = hs.iter().map(|h| (h.kind.0, h.offset, h.len)).collect();
    assert_eq!(
        kinds,
        vec![(0, 40, 16), (43, 56, 40), (60, 96, 8), (51, 104, 24)]
    );
    let up = p.upper_layer().unwrap();
    assert_eq!(up.protocol, IpProtocol::UDP);
    assert_eq!(up.offset, 128);
    assert!(!up.non_first_fragment);

    // Options of the Hop-by-Hop header.
    let hbh = &buf[42..56];
    let opts: Vec<_> = ipv6::OptionIter::new(hbh).map(|o| o.unwrap()).collect();
    assert_eq!(
        opts.iter().map(|o| o.kind).collect::<Vec<_>>(),
        vec![5, 0x3e, 1]
    );
    assert!(!ipv6::option_may_change(5));
    assert!(ipv6::option_may_change(0x3e));

    // The AH header found by the walk.
    let a = ah::Packet::new_checked(&buf[104..]).unwrap();
    let r = ah::Repr::parse(&a, Version::V6, 12).unwrap();
    assert_eq!(
        (r.spi, r.seq_number, r.next_header),
        (0x1000, 1, IpProtocol::UDP)
    );
    assert_eq!(a.icv(12).unwrap(), &[0x55; 12]);
}

#[test]
fn ipv6_prepare_for_ah() {
    let mut buf = v6_chain();
    let orig_dst = ipv6::Packet::new_checked(&buf[..]).unwrap().dst_addr();
    ipv6::prepare_for_ah_icv(&mut buf).unwrap();
    let p = ipv6::Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(
        (p.traffic_class(), p.flow_label(), p.hop_limit()),
        (0, 0, 0)
    );
    // The final destination is the last address; the list now starts with the
    // original destination; segments left 0.
    assert_eq!(p.dst_addr(), "2001:db8::a2".parse::<Ipv6Addr>().unwrap());
    assert_eq!(&buf[64..80], &orig_dst.octets());
    assert_eq!(
        &buf[80..96],
        &"2001:db8::a1".parse::<Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(buf[59], 0);
    // Router Alert data kept, may-change option data zeroed, type/len kept.
    assert_eq!(&buf[42..56], &[5, 2, 0, 0, 0x3e, 4, 0, 0, 0, 0, 1, 2, 0, 0]);
    // The receiver's view (already at destination) is unchanged by a second run.
    let snapshot = buf.clone();
    ipv6::prepare_for_ah_icv(&mut buf).unwrap();
    assert_eq!(buf, snapshot);
    // AH ICV zeroing.
    let mut a = ah::Packet::new_checked(&mut buf[104..]).unwrap();
    a.zero_icv();
    assert_eq!(a.icv(12).unwrap(), &[0; 12]);
}

#[test]
fn ipv6_errors_name_fields() {
    let good = v6_chain();
    assert!(matches!(
        ipv6::Packet::new_checked(&good[..39]),
        Err(Error::Truncated {
            field: "IPv6 header",
            ..
        })
    ));
    let mut b = good.clone();
    b[0] = 0x40;
    assert!(matches!(
        ipv6::Packet::new_checked(&b[..]),
        Err(Error::Invalid {
            field: "IPv6 version",
            value: 4
        })
    ));
    assert!(matches!(
        ipv6::Packet::new_checked(&good[..good.len() - 1]),
        Err(Error::Truncated {
            field: "IPv6 payload length",
            ..
        })
    ));
    // A routing header that claims more than the packet holds.
    let mut b = good.clone();
    b[57] = 200;
    let p = ipv6::Packet::new_checked(&b[..]).unwrap();
    assert!(matches!(
        p.upper_layer(),
        Err(Error::Truncated {
            field: "IPv6 Routing header",
            ..
        })
    ));
    // Hop-by-Hop anywhere but first.
    let mut b = good.clone();
    b[56] = 0; // routing header's next header -> HBH
    let p = ipv6::Packet::new_checked(&b[..]).unwrap();
    assert!(matches!(
        p.upper_layer(),
        Err(Error::Malformed {
            field: "IPv6 Hop-by-Hop Options header",
            ..
        })
    ));
    // Unpredictable routing type for AH.
    let mut b = good.clone();
    b[58] = 3;
    assert_eq!(
        ipv6::prepare_for_ah_icv(&mut b),
        Err(Error::Invalid {
            field: "IPv6 Routing type (unpredictable for AH)",
            value: 3
        })
    );
}

#[test]
fn ipv6_esp_terminates_and_fragments() {
    let buf = v6(IpProtocol::ESP, &rfc7634_esp());
    let p = ipv6::Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(p.ext_headers().count(), 0);
    let up = p.upper_layer().unwrap();
    assert_eq!((up.protocol, up.offset), (IpProtocol::ESP, 40));

    // Non-first fragment: offset 8, next header UDP.
    let frag = [17u8, 0, 0, 8, 0, 0, 0, 1, 0xde, 0xad];
    let buf = v6(IpProtocol::IPV6_FRAGMENT, &frag);
    let p = ipv6::Packet::new_checked(&buf[..]).unwrap();
    let up = p.upper_layer().unwrap();
    assert!(up.non_first_fragment);
    assert_eq!((up.protocol, up.offset), (IpProtocol::UDP, 48));

    // No next header.
    let buf = v6(IpProtocol::NO_NEXT_HEADER, &[]);
    let p = ipv6::Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(
        p.upper_layer().unwrap().protocol,
        IpProtocol::NO_NEXT_HEADER
    );
}

#[test]
fn routing_type2_and_srh_prediction() {
    let home: Ipv6Addr = "2001:db8::100".parse().unwrap();
    let coa: Ipv6Addr = "2001:db8::200".parse().unwrap();
    let mut rh = vec![59, 2, 2, 1, 0, 0, 0, 0];
    rh.extend_from_slice(&home.octets());
    let mut dst = coa.octets();
    ipv6::predict_routing_at_destination(&mut dst, &mut rh).unwrap();
    assert_eq!(dst, home.octets());
    assert_eq!(&rh[8..], &coa.octets());
    assert_eq!(rh[3], 0);

    // SRH with 2 segments, segments left 1: destination becomes segment 0.
    let s0: Ipv6Addr = "2001:db8::50".parse().unwrap();
    let s1: Ipv6Addr = "2001:db8::51".parse().unwrap();
    let mut srh = vec![59, 4, 4, 1, 1, 0, 0, 0];
    srh.extend_from_slice(&s0.octets());
    srh.extend_from_slice(&s1.octets());
    let mut dst = s1.octets();
    ipv6::predict_routing_at_destination(&mut dst, &mut srh).unwrap();
    assert_eq!(dst, s0.octets());
    assert_eq!(srh[3], 0);
}

#[test]
fn ah_alignment_rules() {
    // HMAC-SHA-256-128 (ICV 16): 28 bytes over IPv4, 32 over IPv6.
    for (v, len) in [(Version::V4, 28), (Version::V6, 32)] {
        let r = ah::Repr {
            next_header: IpProtocol::TCP,
            spi: 0xdead_beef,
            seq_number: 42,
            icv_len: 16,
            version: v,
        };
        assert_eq!(r.buffer_len(), len);
        let mut buf = vec![0xffu8; len];
        r.emit(&mut ah::Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        let p = ah::Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), len);
        assert_eq!(p.reserved(), 0);
        assert!(p.icv_field().iter().all(|&b| b == 0));
        assert_eq!(ah::Repr::parse(&p, v, 16), Ok(r));
    }
    // A 28-byte header (v4 form) is refused for IPv6.
    let r = ah::Repr {
        next_header: IpProtocol::TCP,
        spi: 1,
        seq_number: 1,
        icv_len: 16,
        version: Version::V4,
    };
    let mut buf = vec![0u8; 28];
    r.emit(&mut ah::Packet::new_unchecked(&mut buf[..]))
        .unwrap();
    let p = ah::Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(
        ah::Repr::parse(&p, Version::V6, 16),
        Err(Error::Invalid {
            field: "AH payload length",
            value: 5
        })
    );
    // Payload Len 0 is below the fixed header.
    let mut b = buf.clone();
    b[1] = 0;
    assert_eq!(
        ah::Packet::new_checked(&b[..]).unwrap_err(),
        Error::Invalid {
            field: "AH payload length",
            value: 0
        }
    );
    // SPI 0.
    let mut b = buf.clone();
    b[4..8].fill(0);
    let p = ah::Packet::new_checked(&b[..]).unwrap();
    assert_eq!(
        ah::Repr::parse(&p, Version::V4, 16),
        Err(Error::Invalid {
            field: "AH SPI",
            value: 0
        })
    );
    // Truncated.
    assert!(matches!(
        ah::Packet::new_checked(&buf[..20]),
        Err(Error::Truncated {
            field: "AH payload length",
            need: 28,
            have: 20
        })
    ));
}

#[test]
fn udp_checksums() {
    let src4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let dst4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let src6 = IpAddr::V6("2001:db8::1".parse().unwrap());
    let dst6 = IpAddr::V6("2001:db8::2".parse().unwrap());
    let r = udp::Repr {
        src_port: udp::PORT_NAT_T,
        dst_port: udp::PORT_NAT_T,
        payload_len: 5,
    };
    for (s, d) in [(src4, dst4), (src6, dst6)] {
        let mut buf = vec![0u8; r.buffer_len()];
        let mut p = udp::Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut p).unwrap();
        p.payload_mut().copy_from_slice(b"hello");
        p.fill_checksum(&s, &d);
        let p = udp::Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(&s, &d));
        assert!(!p.verify_checksum(&d, &IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))));
        assert_eq!(udp::Repr::parse(&p), Ok(r));
    }
    // Zero checksum: allowed over IPv4, not over IPv6.
    let mut buf = vec![0u8; 13];
    r.emit(&mut udp::Packet::new_unchecked(&mut buf[..]))
        .unwrap();
    let p = udp::Packet::new_checked(&buf[..]).unwrap();
    assert!(p.verify_checksum(&src4, &dst4));
    assert!(!p.verify_checksum(&src6, &dst6));
    // Errors.
    assert_eq!(
        udp::Packet::new_checked(&buf[..4]).unwrap_err(),
        Error::Truncated {
            field: "UDP header",
            need: 8,
            have: 4
        }
    );
    let mut b = buf.clone();
    b[5] = 3;
    assert_eq!(
        udp::Packet::new_checked(&b[..]).unwrap_err(),
        Error::Invalid {
            field: "UDP length",
            value: 3
        }
    );
}

#[test]
fn transport_mode_nat_fixup() {
    // RFC 3948 3.1.2: after decapsulation, fix the inner UDP checksum for the
    // address the NAT rewrote, incrementally.
    let orig_src = Ipv4Addr::new(10, 0, 0, 5);
    let nat_src = Ipv4Addr::new(198, 51, 100, 7);
    let dst = Ipv4Addr::new(192, 0, 2, 2);
    let r = udp::Repr {
        src_port: 1234,
        dst_port: 53,
        payload_len: 7,
    };
    let mut buf = vec![0u8; r.buffer_len()];
    let mut p = udp::Packet::new_unchecked(&mut buf[..]);
    r.emit(&mut p).unwrap();
    p.payload_mut().copy_from_slice(b"example");
    p.fill_checksum(&IpAddr::V4(orig_src), &IpAddr::V4(dst));
    let fixed = checksum::update(p.checksum(), &orig_src.octets(), &nat_src.octets()).unwrap();
    p.set_checksum(fixed);
    assert!(p.verify_checksum(&IpAddr::V4(nat_src), &IpAddr::V4(dst)));
}

#[test]
fn udp_encap_forms() {
    use udp_encap::Payload;
    let esp = rfc7634_esp();
    for pl in [
        Payload::Keepalive,
        Payload::Ike(b"ike!"),
        Payload::Esp(&esp),
    ] {
        let mut buf = vec![0u8; pl.buffer_len()];
        assert_eq!(pl.emit(&mut buf), Ok(buf.len()));
        assert_eq!(Payload::classify(&buf), Ok(pl));
    }
    assert_eq!(
        Payload::Esp(&[0, 0, 0, 0, 1, 1, 1, 1]).emit(&mut [0u8; 8]),
        Err(Error::Invalid {
            field: "UDP-encapsulated ESP SPI",
            value: 0
        })
    );
    assert!(matches!(
        Payload::classify(&[0xfe, 1]),
        Err(Error::Truncated { .. })
    ));
    assert!(matches!(
        Payload::Keepalive.emit(&mut []),
        Err(Error::BufferTooSmall { .. })
    ));
}

#[test]
fn ipv4_source_route_destination_is_predicted_for_ah() {
    // Loose Source Route with two addresses still to visit, then EOL.
    let options = [131u8, 11, 4, 10, 9, 9, 1, 10, 9, 9, 2, 0];
    let repr = ipv4::Repr {
        src_addr: Ipv4Addr::new(10, 0, 0, 1),
        dst_addr: Ipv4Addr::new(10, 9, 9, 0), // the first hop
        protocol: IpProtocol::AH,
        payload_len: 0,
        ttl: 9,
        dscp: 0,
        ecn: 0,
        ident: 1,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        options: &options,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..]))
        .unwrap();
    assert_eq!(
        ipv4::source_route_final_destination(&options),
        Ok(Some(Ipv4Addr::new(10, 9, 9, 2)))
    );
    let mut p = ipv4::Packet::new_checked(&mut buf[..]).unwrap();
    p.zero_mutable_fields().unwrap();
    assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 9, 9, 2));
    assert!(p.options().iter().all(|&b| b == 0));
    // A completed route (pointer past the end) leaves the destination alone.
    let done = [131u8, 11, 12, 10, 9, 9, 1, 10, 9, 9, 2, 0];
    assert_eq!(ipv4::source_route_final_destination(&done), Ok(None));
}

#[test]
fn ipv6_transport_mode_insertion_point() {
    // HBH -> Routing -> Destination Options -> AH -> UDP: ESP would go after
    // the Routing header (the Destination Options are for the final node).
    let buf = v6_chain();
    let p = ipv6::Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(
        p.ipsec_insertion_point().unwrap(),
        ipv6::InsertionPoint {
            offset: 96,
            next_header: IpProtocol::IPV6_DEST_OPTS,
            next_header_field: 56,
        }
    );
    // Destination Options before a Routing header stay in front.
    let mut pl = vec![43u8, 0, 1, 4, 0, 0, 0, 0]; // DestOpts -> Routing
    pl.extend_from_slice(&[17, 0, 4, 0, 0, 0, 0, 0]); // Routing type 4, SL 0 -> UDP
    pl.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
    let buf = v6(IpProtocol::IPV6_DEST_OPTS, &pl);
    let p = ipv6::Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(
        p.ipsec_insertion_point().unwrap(),
        ipv6::InsertionPoint {
            offset: 56,
            next_header: IpProtocol::UDP,
            next_header_field: 48,
        }
    );
    // No extension headers: right after the fixed header.
    let buf = v6(IpProtocol::TCP, &[0; 20]);
    let p = ipv6::Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(
        p.ipsec_insertion_point().unwrap(),
        ipv6::InsertionPoint {
            offset: 40,
            next_header: IpProtocol::TCP,
            next_header_field: 6,
        }
    );
}
