//! Published ESP packets, opened by `open` and reproduced byte-exact by
//! `seal`.
//!
//! RFC 7634 Appendix A ("ESP Example"): ChaCha20-Poly1305 in tunnel mode,
//! IPv4 inner packet (ICMP echo). Key 80..9f, salt a0a1a2a3, SPI 0x01020304,
//! sequence number 5, IV 10..17. The bytes are the RFC's (strongSwan's copy in
//! crates/palisade-crypto/tests/vectors/sym/strongswan_chacha20poly1305.json,
//! vector "ESP example from RFC 7634"). The RFC shows only the ESP packet;
//! the outer IPv4 header here is ours.

mod xform_common;

use palisade_crypto::registry::encr;
use palisade_crypto::Secret;
use palisade_sa::buf::PacketBuf;
use palisade_sa::lifetime::Timestamp;
use palisade_sa::sa::{EncrConfig, Mode, Opened, Protocol, SaConfig, SecurityAssociation};
use palisade_wire::ip::IpProtocol;
use xform_common::*;

fn unhex(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).unwrap()
}

const INNER: &str = "45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec10
    000736270809 0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223
    2425262728292a2b2c2d2e2f3031323334353637";

const ESP: &str = "0102030400000005 1011121314151617
    24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c6
    14ee8099d52844eb61aa95dfab4c02f72aa71e7c4c4f64c9befe2facc638e8f3
    cbec163fac469b502773f6fb94e664da9165b82829f641e076aaa8266b7fb0f7
    b11b369907e1ad43";

fn rfc7634_sa() -> SecurityAssociation {
    let mut c = SaConfig::new(
        0x0102_0304,
        Protocol::Esp,
        Mode::Tunnel {
            src: v4([203, 0, 113, 5]),
            dst: v4([192, 0, 2, 5]),
        },
    );
    c.encr = Some(EncrConfig {
        id: encr::CHACHA20_POLY1305,
        key_bits: None,
        keymat: Secret::new(unhex(
            "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f a0a1a2a3",
        )),
    });
    SecurityAssociation::new(c, Timestamp(0)).unwrap()
}

fn outer_v4(esp: &[u8]) -> Vec<u8> {
    use palisade_wire::ipv4;
    let repr = ipv4::Repr {
        src_addr: [203, 0, 113, 5].into(),
        dst_addr: [192, 0, 2, 5].into(),
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
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut b[..]))
        .unwrap();
    b[20..].copy_from_slice(esp);
    b
}

#[test]
fn rfc7634_open() {
    let mut sa = rfc7634_sa();
    let (r, got) = open(&mut sa, &outer_v4(&unhex(ESP)));
    assert_eq!(
        r.unwrap(),
        Opened::Packet {
            seq: 5,
            next_header: IpProtocol::IPV4,
            lifetime: palisade_sa::lifetime::LifetimeEvent::None
        }
    );
    assert_eq!(got, unhex(INNER));
}

#[test]
fn rfc7634_seal_byte_exact() {
    let mut sa = rfc7634_sa();
    sa.set_last_seq(4);
    let mut s = vec![0u8; 1000];
    let mut b = PacketBuf::with_packet(&mut s, 100, &unhex(INNER)).unwrap();
    let sealed = sa
        .seal_with_iv(Timestamp(0), &mut b, &unhex("1011121314151617"))
        .unwrap();
    assert_eq!(sealed.seq, 5);
    assert_eq!(sealed.l4_offset, 20);
    assert_eq!(&b.data()[20..], &unhex(ESP)[..]);
    // The outer header: 203.0.113.5 -> 192.0.2.5, protocol 50, DSCP/ECN and DF
    // copied from the inner header (all zero here).
    assert_eq!(&b.data()[..2], &[0x45, 0x00]);
    assert_eq!(b.data()[9], 50);
    assert_eq!(&b.data()[12..20], &[203, 0, 113, 5, 192, 0, 2, 5]);
}

#[test]
fn rfc7634_tampered_and_replayed() {
    let mut sa = rfc7634_sa();
    let good = outer_v4(&unhex(ESP));
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    let (r, _) = open(&mut sa, &bad);
    assert_eq!(
        r.unwrap_err().reason(),
        palisade_sa::counters::DropReason::IcvFailure
    );
    assert!(open(&mut sa, &good).0.is_ok());
    let (r, _) = open(&mut sa, &good);
    assert_eq!(
        r.unwrap_err().reason(),
        palisade_sa::counters::DropReason::Replay
    );
    let d = &sa.counters().drops;
    assert_eq!(
        (
            d.get(palisade_sa::counters::DropReason::IcvFailure),
            d.get(palisade_sa::counters::DropReason::Replay)
        ),
        (1, 1)
    );
}
