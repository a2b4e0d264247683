//! Inbound ESP/AH processing must never panic, whatever arrives.
//!
//! The first byte picks a case:
//! * 0-3: the rest is a whole received packet, opened by a fixed SA (AES-GCM
//!   tunnel IPv4, AES-CBC+HMAC transport IPv6, ESP-in-UDP GCM tunnel IPv6,
//!   AH transport). Almost everything stops at the ICV, which is the point:
//!   header walking, length arithmetic and the UDP/keepalive/IKE split run
//!   on hostile input.
//! * 4-5: the rest is the *plaintext* of an ESP packet (payload, padding,
//!   trailer) that the harness authenticates itself with ENCR_NULL +
//!   HMAC-SHA-256, so the code after the ICV -- trailer and padding checks,
//!   inner header parsing, transport-mode reassembly, ECN -- sees arbitrary
//!   bytes (4: tunnel over IPv4 with the input's first byte as outer ECN,
//!   5: transport over IPv6).
//! * 6-7: the rest is an IP packet to seal (tunnel IPv4 / transport IPv6);
//!   if seal accepts it, open must give back the same packet in tunnel mode.
//!
//! Every input (after the case byte) is also read as a cleartext packet by
//! both readers of the inbound selector check, which must agree.
//!
//! Cases 2 and 4 also go through `open_udp_payload` (ESP-in-UDP as a UDP
//! socket delivers it, no outer headers): 2 with the bytes as they come, 4
//! with the authentic ESP part opened by a UDP-encapsulated twin of its SA.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use palisade_crypto::registry::{self, encr as e, integ_id as i};
use palisade_crypto::{Policy, Secret};
use palisade_sa::buf::PacketBuf;
use palisade_sa::encap::{key_flow, selector_key, tcp_udp_v4_flow};
use palisade_sa::lifetime::Timestamp;
use palisade_sa::sa::{
    Encap, EncrConfig, IntegConfig, Mode, Opened, Protocol, SaConfig, SecurityAssociation,
};
use palisade_wire::ip::Version;

const SPI: u32 = 0x0101_0101;
const HKEY: [u8; 32] = [9; 32];

fn v4(a: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, a))
}

fn v6(a: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, a))
}

fn sa(case: u8) -> SecurityAssociation {
    sa_with(case, false)
}

/// The SA of `case`; with `udp`, UDP-encapsulated (port 4500) whatever the case.
fn sa_with(case: u8, udp: bool) -> SecurityAssociation {
    let gcm = || {
        Some(EncrConfig {
            id: e::AES_GCM_16,
            key_bits: Some(128),
            keymat: Secret::new(vec![7; 20]),
        })
    };
    let sha = || {
        Some(IntegConfig {
            id: i::HMAC_SHA2_256_128,
            key: Secret::new(HKEY.to_vec()),
        })
    };
    let null = || {
        Some(EncrConfig {
            id: e::NULL,
            key_bits: None,
            keymat: Secret::new(vec![]),
        })
    };
    let (proto, mode, encr, integ, encap) = match case {
        0 | 6 => (
            Protocol::Esp,
            Mode::Tunnel {
                src: v4(1),
                dst: v4(2),
            },
            gcm(),
            None,
            Encap::None,
        ),
        1 | 7 => (
            Protocol::Esp,
            Mode::Transport,
            Some(EncrConfig {
                id: e::AES_CBC,
                key_bits: Some(128),
                keymat: Secret::new(vec![7; 16]),
            }),
            sha(),
            Encap::None,
        ),
        2 => (
            Protocol::Esp,
            Mode::Tunnel {
                src: v6(1),
                dst: v6(2),
            },
            gcm(),
            None,
            Encap::Udp {
                src_port: 4500,
                dst_port: 4500,
            },
        ),
        3 => (Protocol::Ah, Mode::Transport, None, sha(), Encap::None),
        4 => (
            Protocol::Esp,
            Mode::Tunnel {
                src: v4(1),
                dst: v4(2),
            },
            null(),
            sha(),
            Encap::None,
        ),
        _ => (Protocol::Esp, Mode::Transport, null(), sha(), Encap::None),
    };
    let mut c = SaConfig::new(SPI, proto, mode);
    c.encr = encr;
    c.integ = integ;
    c.encap = if udp {
        Encap::Udp {
            src_port: 4500,
            dst_port: 4500,
        }
    } else {
        encap
    };
    SecurityAssociation::new(c, Timestamp(0)).expect("fixed SA config")
}

/// Outer header + ESP(SPI, seq 1, `plain`) + HMAC-SHA-256-128 over the ESP
/// part, i.e. a packet that passes the ICV whatever `plain` holds.
fn authentic(case: u8, plain: &[u8], ecn: u8) -> Vec<u8> {
    let mut esp = Vec::with_capacity(plain.len() + 24);
    esp.extend_from_slice(&SPI.to_be_bytes());
    esp.extend_from_slice(&1u32.to_be_bytes());
    esp.extend_from_slice(plain);
    let m = registry::integ(i::HMAC_SHA2_256_128, &HKEY, Policy::SECURE).expect("hmac");
    let mut icv = [0u8; 16];
    m.compute(&[&esp], &mut icv).expect("icv");
    esp.extend_from_slice(&icv);
    let mut pkt = Vec::new();
    if case == 4 {
        let total = (20 + esp.len()) as u16;
        pkt.extend_from_slice(&[0x45, ecn & 3]);
        pkt.extend_from_slice(&total.to_be_bytes());
        pkt.extend_from_slice(&[0, 1, 0, 0, 64, 50, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
        let mut sum = 0u32;
        for w in pkt.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let c = !(sum as u16);
        pkt[10..12].copy_from_slice(&c.to_be_bytes());
    } else {
        pkt.extend_from_slice(&[0x60, 0, 0, 0]);
        pkt.extend_from_slice(&(esp.len() as u16).to_be_bytes());
        pkt.extend_from_slice(&[50, 64]);
        for a in [1u16, 2] {
            if let IpAddr::V6(x) = v6(a) {
                pkt.extend_from_slice(&x.octets());
            }
        }
    }
    pkt.extend_from_slice(&esp);
    pkt
}

/// The inbound selector check's two readers of a cleartext packet agree:
/// where `tcp_udp_v4_flow` gives a flow number, `selector_key` reads the
/// packet too and finds exactly those fields (so an answer cached per flow
/// is the answer for the key).
fn flow_number_matches_selector_key(packet: &[u8]) {
    let key = selector_key(packet);
    if let Some(flow) = tcp_udp_v4_flow(packet) {
        let k = key.expect("a packet with a flow number has a selector key");
        assert_eq!(key_flow(&k), Some(flow), "{k:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    flow_number_matches_selector_key(rest);
    let case = sel % 8;
    let mut s = sa(case);
    let mut storage = vec![0u8; rest.len() + 1024];
    match case {
        0..=3 => {
            if let Ok(mut b) = PacketBuf::with_packet(&mut storage, 256, rest) {
                let _ = s.open(Timestamp(1), &mut b);
            }
            if case == 2 {
                let mut s = sa(case);
                if let Ok(mut b) = PacketBuf::with_packet(&mut storage, 256, rest) {
                    let _ = s.open_udp_payload(Timestamp(1), &mut b, Version::V6, rest.len() as u8);
                }
            }
        }
        4 | 5 => {
            let (ecn, plain) = rest
                .split_first()
                .map(|(a, b)| (*a, b))
                .unwrap_or((0, rest));
            let pkt = authentic(case, plain, ecn);
            storage.resize(pkt.len() + 1024, 0);
            if let Ok(mut b) = PacketBuf::with_packet(&mut storage, 256, &pkt) {
                let _ = s.open(Timestamp(1), &mut b);
            }
            if case == 4 {
                // The ICV covers only the ESP part, so it passes for a UDP twin too.
                let mut twin = sa_with(case, true);
                if let Ok(mut b) = PacketBuf::with_packet(&mut storage, 256, &pkt[20..]) {
                    let _ = twin.open_udp_payload(Timestamp(1), &mut b, Version::V4, ecn);
                }
            }
        }
        _ => {
            let mut rx = sa(case);
            if let Ok(mut b) = PacketBuf::with_packet(&mut storage, 256, rest) {
                if s.seal(Timestamp(1), &mut b).is_ok() {
                    let r = rx.open(Timestamp(1), &mut b);
                    if case == 6 {
                        assert!(
                            matches!(r, Ok(Opened::Packet { .. })),
                            "sealed packet did not open: {r:?}"
                        );
                        assert_eq!(b.data(), rest.get(..b.data().len()).unwrap_or(&[]));
                    }
                }
            }
        }
    }
});
