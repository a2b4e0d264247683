//! The inbound and outbound refusal paths, each counted on the SA, and the
//! outcomes that are not packets (dummy, keepalive, IKE), plus tunnel header
//! rules (ECN, DF), the NAT checksum fix-up and the inbound selector check.

mod xform_common;

use palisade_crypto::registry::{self, encr as e, integ_id as i};
use palisade_crypto::Policy;
use palisade_sa::buf::PacketBuf;
use palisade_sa::counters::DropReason;
use palisade_sa::encap::{self, Inbound};
use palisade_sa::lifetime::{LifetimeConfig, Limits, Timestamp};
use palisade_sa::sa::{
    DfBit, Encap, Mode, OpenError, Opened, Protocol, SaConfig, SealError, SecurityAssociation,
};
use palisade_sa::selector::{AddrRange, Selector};
use palisade_wire::ip::{checksum, IpProtocol};
use palisade_wire::{ipv4, udp};
use xform_common::*;

const HKEY_LEN: usize = 32;

fn null_sha(mode: Mode) -> SaConfig {
    let mut c = SaConfig::new(0x3000_0003, Protocol::Esp, mode);
    c.encr = encr(e::NULL, None, 0);
    c.integ = integ(i::HMAC_SHA2_256_128, HKEY_LEN);
    c
}

fn tunnel4() -> Mode {
    Mode::Tunnel {
        src: v4([192, 0, 2, 1]),
        dst: v4([192, 0, 2, 2]),
    }
}

fn inner() -> Vec<u8> {
    v4_udp([10, 0, 0, 1], [10, 0, 0, 2], &payload(50), 0, true)
}

#[test]
fn tamper_every_byte_region_is_an_icv_failure() {
    let cfg = null_sha(tunnel4());
    let (mut out, mut inb) = pair(&cfg);
    let wire = seal(&mut out, &inner());
    // Every byte from the sequence number on (the SPI selects the SA).
    for pos in 24..wire.len() {
        let mut bad = wire.clone();
        bad[pos] ^= 0x10;
        let (r, _) = open(&mut inb, &bad);
        assert_eq!(r.unwrap_err(), OpenError::IcvFailure, "byte {pos}");
    }
    let n = (wire.len() - 24) as u64;
    assert_eq!(inb.counters().drops.get(DropReason::IcvFailure), n);
    // The window did not move: the genuine packet still opens, once.
    assert!(open(&mut inb, &wire).0.is_ok());
    assert!(matches!(open(&mut inb, &wire).0, Err(OpenError::Replay(_))));
    assert_eq!(inb.counters().drops.get(DropReason::Replay), 1);
}

#[test]
fn wrong_spi_and_malformed_are_counted() {
    let cfg = null_sha(tunnel4());
    let (mut out, mut inb) = pair(&cfg);
    let mut wire = seal(&mut out, &inner());
    let (r, _) = open(&mut inb, &wire[..30]);
    assert_eq!(r.unwrap_err().reason(), DropReason::Malformed);
    wire[20] ^= 1;
    let (r, _) = open(&mut inb, &wire);
    assert!(matches!(r, Err(OpenError::WrongSpi { .. })));
    let (r, _) = open(&mut inb, &[0x45]);
    assert_eq!(r.unwrap_err().reason(), DropReason::Malformed);
    assert_eq!(inb.counters().drops.get(DropReason::Malformed), 2);
    assert_eq!(inb.counters().drops.get(DropReason::UnknownSpi), 1);
}

/// An ESP packet with NULL encryption whose plaintext we write ourselves and
/// authenticate with the SA's key, to reach the checks after the ICV.
fn forge(plain: &[u8], seq: u32) -> Vec<u8> {
    let mut esp = Vec::new();
    esp.extend_from_slice(&0x3000_0003u32.to_be_bytes());
    esp.extend_from_slice(&seq.to_be_bytes());
    esp.extend_from_slice(plain);
    let key = integ(i::HMAC_SHA2_256_128, HKEY_LEN).unwrap().key;
    let m = registry::integ(i::HMAC_SHA2_256_128, key.as_bytes(), Policy::SECURE).unwrap();
    let mut icv = [0u8; 16];
    m.compute(&[&esp], &mut icv).unwrap();
    esp.extend_from_slice(&icv);
    let repr = ipv4::Repr {
        src_addr: [192, 0, 2, 1].into(),
        dst_addr: [192, 0, 2, 2].into(),
        protocol: IpProtocol::ESP,
        payload_len: esp.len(),
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 7,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        options: &[],
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut b[..]))
        .unwrap();
    b[20..].copy_from_slice(&esp);
    b
}

#[test]
fn bad_padding_after_a_good_icv() {
    let (_, mut inb) = pair(&null_sha(tunnel4()));
    let mut plain = inner();
    // 54-byte packet + 2 padding bytes "1, 3" (should be 1, 2) + pad len 2 + NH 4.
    plain.extend_from_slice(&[1, 3, 2, 4]);
    let (r, _) = open(&mut inb, &forge(&plain, 1));
    assert!(matches!(r, Err(OpenError::BadPadding(_))), "{r:?}");
    // Pad length beyond the plaintext.
    let (r, _) = open(&mut inb, &forge(&[0, 0, 200, 4], 2));
    assert_eq!(r.unwrap_err().reason(), DropReason::BadPadding);
    assert_eq!(inb.counters().drops.get(DropReason::BadPadding), 2);
    // Correct padding is accepted.
    let mut ok = inner();
    ok.extend_from_slice(&[1, 2, 2, 4]);
    assert!(matches!(
        open(&mut inb, &forge(&ok, 3)).0,
        Ok(Opened::Packet { seq: 3, .. })
    ));
}

#[test]
fn dummy_packets_are_discarded_and_counted() {
    for mode in [tunnel4(), Mode::Transport] {
        let (mut out, mut inb) = pair(&null_sha(mode));
        let mut s = vec![0u8; 2000];
        // Transport mode sends the dummy under a bare IP header.
        let mut hdr = inner()[..20].to_vec();
        hdr[2..4].copy_from_slice(&20u16.to_be_bytes());
        ipv4::Packet::new_unchecked(&mut hdr[..]).fill_checksum();
        let start = if mode == Mode::Transport { hdr } else { vec![] };
        let mut b = PacketBuf::with_packet(&mut s, 200, &start).unwrap();
        out.seal_dummy(Timestamp(0), &mut b, 100).unwrap();
        let wire = b.data().to_vec();
        assert!(wire.len() > 100);
        let (r, _) = open(&mut inb, &wire);
        assert_eq!(r.unwrap(), Opened::Dummy { seq: 1 });
        assert_eq!(inb.dummies_received(), 1);
        assert_eq!(inb.counters().drops.total(), 0);
        assert_eq!(inb.counters().packets_in, 0);
    }
}

#[test]
fn tfc_padding_is_sent_and_stripped() {
    let mut cfg = null_sha(tunnel4());
    cfg.tfc_pad_to = 1000;
    let (mut out, mut inb) = pair(&cfg);
    let pkt = inner();
    let wire = seal(&mut out, &pkt);
    assert!(wire.len() >= 20 + 8 + 1000 + 2 + 16, "{}", wire.len());
    let (r, got) = open(&mut inb, &wire);
    assert!(r.is_ok());
    assert_eq!(got, pkt);
}

#[test]
fn sequence_number_never_wraps() {
    let (mut out, _) = pair(&null_sha(tunnel4()));
    out.set_last_seq(u64::from(u32::MAX) - 1);
    let mut s = vec![0u8; 2000];
    let mut b = PacketBuf::with_packet(&mut s, 200, &inner()).unwrap();
    assert_eq!(
        out.seal(Timestamp(0), &mut b).unwrap().seq,
        u64::from(u32::MAX)
    );
    let mut b = PacketBuf::with_packet(&mut s, 200, &inner()).unwrap();
    let err = out.seal(Timestamp(0), &mut b).unwrap_err();
    assert!(matches!(err, SealError::SequenceExhausted(_)));
    assert!(err.to_string().contains("rekey"));
    assert_eq!(b.data(), &inner()[..], "refused packet left untouched");
    assert_eq!(out.counters().drops.get(DropReason::SequenceExhausted), 1);
}

#[test]
fn esn_crosses_2_pow_32() {
    let mut cfg = null_sha(tunnel4());
    cfg.esn = true;
    let (mut out, mut inb) = pair(&cfg);
    out.set_last_seq((1 << 32) - 2);
    inb.replay_window_mut()
        .unwrap()
        .accept((1 << 32) - 5)
        .unwrap();
    let mut seqs = vec![];
    for _ in 0..4 {
        let wire = seal(&mut out, &inner());
        match open(&mut inb, &wire).0.unwrap() {
            Opened::Packet { seq, .. } => seqs.push(seq),
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(
        seqs,
        vec![(1 << 32) - 1, 1 << 32, (1 << 32) + 1, (1 << 32) + 2]
    );
    // A receiver that guesses the wrong high half fails the ICV: the high
    // half really is in the ICV input.
    let mut lagging = SecurityAssociation::new(cfg.clone(), Timestamp(0)).unwrap();
    lagging.replay_window_mut().unwrap().accept(10).unwrap();
    let wire = seal(&mut out, &inner());
    assert_eq!(
        open(&mut lagging, &wire).0.unwrap_err(),
        OpenError::IcvFailure
    );
}

#[test]
fn hard_lifetime_refuses_both_ways() {
    let mut cfg = null_sha(tunnel4());
    cfg.lifetime = LifetimeConfig {
        soft: Limits {
            packets: Some(1),
            ..Limits::default()
        },
        hard: Limits {
            packets: Some(2),
            ..Limits::default()
        },
    };
    let (mut out, mut inb) = pair(&cfg);
    let w1 = seal(&mut out, &inner());
    let w2 = seal(&mut out, &inner());
    let mut s = vec![0u8; 2000];
    let mut b = PacketBuf::with_packet(&mut s, 200, &inner()).unwrap();
    assert!(matches!(
        out.seal(Timestamp(0), &mut b),
        Err(SealError::LifetimeExpired(_))
    ));
    assert_eq!(out.counters().drops.get(DropReason::LifetimeExpired), 1);
    let r1 = open(&mut inb, &w1).0.unwrap();
    assert!(matches!(
        r1,
        Opened::Packet {
            lifetime: palisade_sa::lifetime::LifetimeEvent::SoftExpired(_),
            ..
        }
    ));
    assert!(open(&mut inb, &w2).0.is_ok());
    let w3 = seal(
        &mut SecurityAssociation::new(null_sha(tunnel4()), Timestamp(0)).unwrap(),
        &inner(),
    );
    let w3 = {
        // sequence 3 from a fresh sender: same keys, different number.
        let mut fresh = SecurityAssociation::new(null_sha(tunnel4()), Timestamp(0)).unwrap();
        fresh.set_last_seq(2);
        let _ = w3;
        seal(&mut fresh, &inner())
    };
    assert_eq!(
        open(&mut inb, &w3).0.unwrap_err().reason(),
        DropReason::LifetimeExpired
    );
}

#[test]
fn no_room_is_an_error_not_a_panic() {
    let (mut out, _) = pair(&null_sha(tunnel4()));
    let pkt = inner();
    let mut s = vec![0u8; pkt.len() + 10];
    let mut b = PacketBuf::with_packet(&mut s, 5, &pkt).unwrap();
    assert!(matches!(
        out.seal(Timestamp(0), &mut b),
        Err(SealError::NoRoom(_))
    ));
    assert_eq!(b.data(), &pkt[..]);
    assert_eq!(out.seq_counter().last(), 0, "no sequence number spent");
}

#[test]
fn ecn_rfc6040_on_decapsulation() {
    let (mut out, mut inb) = pair(&null_sha(tunnel4()));
    // Inner ECT(0); a router marks the outer CE (and fixes the checksum).
    let pkt = v4_udp([10, 0, 0, 1], [10, 0, 0, 2], &payload(20), 0b10, false);
    let mut wire = seal(&mut out, &pkt);
    assert_eq!(wire[1] & 3, 0b10, "encapsulation copies ECN");
    wire[1] |= 3;
    let mut p = ipv4::Packet::new_unchecked(&mut wire[..]);
    p.fill_checksum();
    let (r, got) = open(&mut inb, &wire);
    assert!(r.is_ok());
    let g = ipv4::Packet::new_checked(&got[..]).unwrap();
    assert_eq!(g.ecn(), 3, "CE propagated");
    assert!(g.verify_checksum());
    // Not-ECT inner with CE outer: dropped.
    let pkt = v4_udp([10, 0, 0, 1], [10, 0, 0, 2], &payload(20), 0, false);
    let mut wire = seal(&mut out, &pkt);
    wire[1] |= 3;
    ipv4::Packet::new_unchecked(&mut wire[..]).fill_checksum();
    assert_eq!(open(&mut inb, &wire).0.unwrap_err(), OpenError::EcnDrop);
}

#[test]
fn df_and_dscp_of_the_outer_header() {
    let pkt_df = v4_udp([10, 0, 0, 1], [10, 0, 0, 2], &payload(20), 0xb8, true);
    let pkt_nodf = v4_udp([10, 0, 0, 1], [10, 0, 0, 2], &payload(20), 0xb8, false);
    for (df, pkt, want) in [
        (DfBit::Copy, &pkt_df, true),
        (DfBit::Copy, &pkt_nodf, false),
        (DfBit::Set, &pkt_nodf, true),
        (DfBit::Clear, &pkt_df, false),
    ] {
        let mut cfg = null_sha(tunnel4());
        cfg.df = df;
        let (mut out, _) = pair(&cfg);
        let wire = seal(&mut out, pkt);
        let p = ipv4::Packet::new_checked(&wire[..]).unwrap();
        assert_eq!(p.dont_frag(), want, "{df:?}");
        assert_eq!(p.dscp(), 0xb8 >> 2, "DSCP copied");
        assert!(p.verify_checksum());
    }
    // v6 inner in v4 outer: DF set.
    let (mut out, _) = pair(&null_sha(tunnel4()));
    let wire = seal(&mut out, &v6_udp(1, 2, &payload(5), 0, &[]));
    assert!(ipv4::Packet::new_checked(&wire[..]).unwrap().dont_frag());
}

#[test]
fn udp_encap_keepalive_ike_and_classify() {
    let mut cfg = null_sha(tunnel4());
    cfg.encap = Encap::Udp {
        src_port: 4500,
        dst_port: 4500,
    };
    let (mut out, mut inb) = pair(&cfg);
    let wire = seal(&mut out, &inner());
    assert_eq!(wire[9], 17);
    assert_eq!(&wire[20..24], &[0x11, 0x94, 0x11, 0x94]);
    assert_eq!(&wire[26..28], &[0, 0], "IPv4 ESP-in-UDP checksum is zero");
    assert_eq!(
        encap::classify(&wire).unwrap().0,
        Inbound::UdpEsp { spi: 0x3000_0003 }
    );
    let udp_pkt = |payload: &[u8]| {
        let mut p = wire[..28].to_vec();
        p.extend_from_slice(payload);
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    };
    let ka = udp_pkt(&[0xff]);
    assert_eq!(encap::classify(&ka).unwrap().0, Inbound::Keepalive);
    assert_eq!(open(&mut inb, &ka).0.unwrap(), Opened::Keepalive);
    let ike = udp_pkt(&[0, 0, 0, 0, 1, 2, 3, 4, 5]);
    assert_eq!(encap::classify(&ike).unwrap().0, Inbound::Ike);
    let (r, got) = open(&mut inb, &ike);
    assert_eq!(r.unwrap(), Opened::Ike);
    assert_eq!(got, vec![1, 2, 3, 4, 5]);
    assert_eq!(inb.counters().drops.total(), 0);
    assert!(matches!(open(&mut inb, &wire).0, Ok(Opened::Packet { .. })));
}

#[test]
fn udp_encap_over_ipv6_has_a_valid_checksum() {
    let mut cfg = null_sha(Mode::Tunnel {
        src: v6(1),
        dst: v6(2),
    });
    cfg.encap = Encap::Udp {
        src_port: 4500,
        dst_port: 4500,
    };
    let (mut out, mut inb) = pair(&cfg);
    let mut wire = seal(&mut out, &inner());
    let u = udp::Packet::new_checked(&wire[40..]).unwrap();
    assert_ne!(u.checksum(), 0);
    assert!(u.verify_checksum(&v6(1), &v6(2)));
    assert!(open(&mut inb, &wire.clone()).0.is_ok());
    // A corrupted UDP checksum is malformed (before the ICV).
    wire[46] ^= 1;
    assert_eq!(
        open(&mut inb, &wire).0.unwrap_err().reason(),
        DropReason::Malformed
    );
}

#[test]
fn transport_udp_encap_fixes_checksum_after_nat() {
    let mut cfg = null_sha(Mode::Transport);
    cfg.encap = Encap::Udp {
        src_port: 4500,
        dst_port: 4500,
    };
    let (mut out, mut inb) = pair(&cfg);
    let pkt = v4_udp([10, 0, 0, 1], [192, 0, 2, 2], &payload(40), 0, true);
    let mut wire = seal(&mut out, &pkt);
    // A NAT rewrites the source address (and the IPv4 header checksum).
    wire[12..16].copy_from_slice(&[203, 0, 113, 9]);
    ipv4::Packet::new_unchecked(&mut wire[..]).fill_checksum();
    let (r, got) = open(&mut inb, &wire);
    assert!(r.is_ok(), "{r:?}");
    let p = ipv4::Packet::new_checked(&got[..]).unwrap();
    assert_eq!(p.src_addr(), std::net::Ipv4Addr::new(203, 0, 113, 9));
    let u = udp::Packet::new_checked(p.payload()).unwrap();
    assert!(
        u.verify_checksum(&v4([203, 0, 113, 9]), &v4([192, 0, 2, 2])),
        "inner UDP checksum recomputed"
    );
    assert_eq!(u.payload(), &payload(40)[..]);
    let _ = checksum::data(&[]);
}

#[test]
fn inbound_selector_check() {
    let (mut out, mut inb) = pair(&null_sha(tunnel4()));
    let wire = seal(&mut out, &inner());
    let (r, got) = open(&mut inb, &wire);
    assert!(r.is_ok());
    // Inbound: local = destination 10.0.0.2, remote = source 10.0.0.1.
    let ok = Selector::between(
        "10.0.0.0/24".parse::<AddrRange>().unwrap(),
        "10.0.0.1/32".parse().unwrap(),
    );
    let other = Selector::between("10.9.0.0/16".parse::<AddrRange>().unwrap(), AddrRange::Any);
    let key = inb.check_inbound_policy(&got, &[other, ok]).unwrap();
    assert_eq!(
        (key.proto, key.sport, key.dport),
        (17, Some(1111), Some(2222))
    );
    let e = inb.check_inbound_policy(&got, &[other]).unwrap_err();
    assert_eq!(e.reason(), DropReason::PolicyMismatch);
    assert_eq!(inb.counters().drops.get(DropReason::PolicyMismatch), 1);
}

#[test]
fn bundle_ah_outside_esp() {
    use palisade_sa::sa::Bundle;
    for mode in [
        tunnel4(),
        Mode::Tunnel {
            src: v6(1),
            dst: v6(2),
        },
        Mode::Transport,
    ] {
        let esp_cfg = null_sha(mode);
        let mut ah_cfg = SaConfig::new(0x4000_0004, Protocol::Ah, Mode::Transport);
        ah_cfg.integ = integ(i::HMAC_SHA1_96, 20);
        let mk = || {
            Bundle::new(
                SecurityAssociation::new(esp_cfg.clone(), Timestamp(0)).unwrap(),
                SecurityAssociation::new(ah_cfg.clone(), Timestamp(0)).unwrap(),
            )
            .unwrap()
        };
        let (mut tx, mut rx) = (mk(), mk());
        for pkt in [inner(), v6_udp(3, 4, &payload(30), 0, &[])] {
            if mode == Mode::Transport && pkt[0] >> 4 == 6 {
                continue;
            }
            let mut s = vec![0u8; 3000];
            let mut b = PacketBuf::with_packet(&mut s, 300, &pkt).unwrap();
            tx.seal(Timestamp(0), &mut b).unwrap();
            let wire = b.data().to_vec();
            assert!(matches!(
                encap::classify(&wire).unwrap().0,
                Inbound::Ah { spi: 0x4000_0004 }
            ));
            let mut s2 = vec![0u8; 3000];
            let mut b2 = PacketBuf::with_packet(&mut s2, 300, &wire).unwrap();
            assert!(
                matches!(rx.open(Timestamp(0), &mut b2), Ok(Opened::Packet { .. })),
                "{mode:?}"
            );
            assert_eq!(b2.data(), &pkt[..]);
            // Tampering with a fresh packet fails AH's ICV.
            let mut s4 = vec![0u8; 3000];
            let mut b4 = PacketBuf::with_packet(&mut s4, 300, &pkt).unwrap();
            tx.seal(Timestamp(0), &mut b4).unwrap();
            let mut bad = b4.data().to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            let mut s3 = vec![0u8; 3000];
            let mut b3 = PacketBuf::with_packet(&mut s3, 300, &bad).unwrap();
            assert_eq!(
                rx.open(Timestamp(0), &mut b3).unwrap_err(),
                OpenError::IcvFailure
            );
        }
    }
}

#[test]
fn ah_ignores_mutable_fields_and_covers_immutable_ones() {
    let mut cfg = SaConfig::new(0x5000_0005, Protocol::Ah, Mode::Transport);
    cfg.integ = integ(i::HMAC_SHA2_256_128, 32);
    let (mut out, mut inb) = pair(&cfg);
    // IPv4: routers change TTL, TOS and the checksum.
    let pkt = inner();
    let mut wire = seal(&mut out, &pkt);
    wire[8] -= 3;
    wire[1] = 0x03;
    ipv4::Packet::new_unchecked(&mut wire[..]).fill_checksum();
    let (r, got) = open(&mut inb, &wire);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(got[8], pkt[8] - 3);
    // Source address is immutable.
    let mut wire = seal(&mut out, &pkt);
    wire[12] ^= 1;
    ipv4::Packet::new_unchecked(&mut wire[..]).fill_checksum();
    assert_eq!(open(&mut inb, &wire).0.unwrap_err(), OpenError::IcvFailure);
    // IPv6: hop limit, flow label and a may-change option's data change en
    // route; a may-not-change option's data is covered.
    let pkt6 = v6_udp(
        1,
        2,
        &payload(10),
        0,
        &[(IpProtocol::HOP_BY_HOP, opts_header(0x3e))],
    );
    let mut wire = seal(&mut out, &pkt6);
    wire[7] -= 1;
    wire[3] ^= 0x55;
    wire[44] ^= 0xff;
    assert!(open(&mut inb, &wire).0.is_ok());
    let pkt6 = v6_udp(
        1,
        2,
        &payload(10),
        0,
        &[(IpProtocol::HOP_BY_HOP, opts_header(0x1e))],
    );
    let mut wire = seal(&mut out, &pkt6);
    wire[44] ^= 0xff;
    assert_eq!(open(&mut inb, &wire).0.unwrap_err(), OpenError::IcvFailure);
    // AH sits after Hop-by-Hop: next header of HbH is 51.
    let wire = seal(&mut out, &pkt6);
    assert_eq!(wire[40], 51);
    assert_eq!(wire[6], 0);
}
