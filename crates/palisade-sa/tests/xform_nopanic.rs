//! The fuzz target's property (fuzz/fuzz_targets/sa_open.rs) run in `cargo
//! test` with a deterministic generator: random and mutated packets into
//! `open` for several SAs never panic, and everything refused is counted.

mod xform_common;

use palisade_crypto::registry::{encr as e, integ_id as i};
use palisade_sa::buf::PacketBuf;
use palisade_sa::lifetime::Timestamp;
use palisade_sa::sa::{Encap, Mode, Protocol, SaConfig, SecurityAssociation};
use xform_common::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn configs() -> Vec<SaConfig> {
    let mut v = vec![];
    let t4 = Mode::Tunnel {
        src: v4([192, 0, 2, 1]),
        dst: v4([192, 0, 2, 2]),
    };
    let t6 = Mode::Tunnel {
        src: v6(1),
        dst: v6(2),
    };
    for (mode, encap, esn) in [
        (t4, Encap::None, false),
        (Mode::Transport, Encap::None, true),
        (
            t6,
            Encap::Udp {
                src_port: 4500,
                dst_port: 4500,
            },
            false,
        ),
        (
            Mode::Transport,
            Encap::Udp {
                src_port: 4500,
                dst_port: 4500,
            },
            false,
        ),
    ] {
        let mut c = SaConfig::new(0x0101_0101, Protocol::Esp, mode);
        c.encr = encr(e::NULL, None, 0);
        c.integ = integ(i::HMAC_SHA2_256_128, 32);
        c.encap = encap;
        c.esn = esn;
        v.push(c.clone());
        c.encr = encr(e::AES_GCM_16, Some(128), 20);
        c.integ = None;
        v.push(c.clone());
        c.encr = encr(e::AES_CBC, Some(128), 16);
        c.integ = integ(i::HMAC_SHA1_96, 20);
        v.push(c);
    }
    for mode in [Mode::Transport, t4, t6] {
        let mut c = SaConfig::new(0x0101_0101, Protocol::Ah, mode);
        c.integ = integ(i::HMAC_SHA2_256_128, 32);
        v.push(c);
    }
    v
}

#[test]
fn random_and_mutated_packets_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds = [
        inner(),
        v6_udp(
            1,
            2,
            &payload(33),
            0,
            &[(palisade_wire::ip::IpProtocol::HOP_BY_HOP, opts_header(0x3e))],
        ),
    ];
    for cfg in configs() {
        let mut tx = SecurityAssociation::new(cfg.clone(), Timestamp(0)).unwrap();
        let mut rx = SecurityAssociation::new(cfg, Timestamp(0)).unwrap();
        let mut opened = 0u64;
        let mut refused = 0u64;
        for round in 0..2000u32 {
            // A genuine packet, then mutated: flipped bytes, truncation,
            // growth, or pure noise.
            let mut wire = seal(&mut tx, &seeds[(round % 2) as usize]);
            match rng.next() % 5 {
                0 => {}
                1 => {
                    for _ in 0..1 + rng.next() % 4 {
                        let p = (rng.next() as usize) % wire.len();
                        wire[p] ^= 1 << (rng.next() % 8);
                    }
                }
                2 => wire.truncate((rng.next() as usize) % wire.len()),
                3 => wire.extend((0..rng.next() % 40).map(|x| x as u8)),
                _ => {
                    let n = (rng.next() % 200) as usize;
                    wire = (0..n).map(|_| rng.next() as u8).collect();
                    if n > 0 && rng.next().is_multiple_of(2) {
                        wire[0] = 0x45;
                    }
                }
            }
            let mut s = vec![0u8; wire.len() + 600];
            let mut b = PacketBuf::with_packet(&mut s, 300, &wire).unwrap();
            match rx.open(Timestamp(0), &mut b) {
                Ok(_) => opened += 1,
                Err(_) => refused += 1,
            }
        }
        assert_eq!(
            rx.counters().drops.total(),
            refused,
            "every refusal counted"
        );
        assert!(opened > 0);
    }
}

fn inner() -> Vec<u8> {
    v4_udp([10, 0, 0, 1], [10, 0, 0, 2], &payload(40), 0, true)
}
