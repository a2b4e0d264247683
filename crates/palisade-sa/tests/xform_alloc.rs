//! No allocation per packet: seal + open of 1000 packets after warm-up, for
//! AES-GCM, AES-CBC + HMAC-SHA-256, ChaCha20-Poly1305, AH, and ESP-in-UDP,
//! counted by a global allocator that counts only on this test's thread.

mod xform_common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use palisade_crypto::registry::{encr as e, integ_id as i};
use palisade_sa::buf::PacketBuf;
use palisade_sa::lifetime::Timestamp;
use palisade_sa::sa::{Encap, Mode, Opened, Protocol, SaConfig, SecurityAssociation};
use xform_common::*;

struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.with(|o| o.get()) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if ON.with(|o| o.get()) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static A: Counting = Counting;

fn run(name: &str, cfg: SaConfig) -> u64 {
    let mut out = SecurityAssociation::new(cfg.clone(), Timestamp(0)).unwrap();
    let mut inb = SecurityAssociation::new(cfg, Timestamp(0)).unwrap();
    let pkt = v4_udp([10, 0, 0, 1], [10, 0, 0, 2], &payload(1000), 0, true);
    let mut storage = vec![0u8; 4096];
    let mut once = |on: bool| {
        let mut b = PacketBuf::with_packet(&mut storage, 256, &pkt).unwrap();
        ON.with(|o| o.set(on));
        out.seal(Timestamp(1), &mut b).unwrap();
        let r = inb.open(Timestamp(1), &mut b);
        ON.with(|o| o.set(false));
        assert!(matches!(r, Ok(Opened::Packet { .. })), "{name}: {r:?}");
        assert_eq!(b.data(), &pkt[..]);
    };
    for _ in 0..10 {
        once(false);
    }
    COUNT.with(|c| c.set(0));
    for _ in 0..1000 {
        once(true);
    }
    let n = COUNT.with(|c| c.get());
    eprintln!("{name}: {n} allocations in 1000 seal+open");
    n
}

fn esp(
    id: u16,
    bits: u16,
    keymat: usize,
    integ_id: u16,
    ilen: usize,
    mode: Mode,
    encap: Encap,
) -> SaConfig {
    let mut c = SaConfig::new(0x4242_0001, Protocol::Esp, mode);
    c.encr = encr(id, Some(bits), keymat);
    c.integ = if integ_id == 0 {
        None
    } else {
        integ(integ_id, ilen)
    };
    c.encap = encap;
    c
}

#[test]
fn zero_allocations_per_packet() {
    let tunnel = Mode::Tunnel {
        src: v4([192, 0, 2, 1]),
        dst: v4([192, 0, 2, 2]),
    };
    let tunnel6 = Mode::Tunnel {
        src: v6(1),
        dst: v6(2),
    };
    let udp = Encap::Udp {
        src_port: 4500,
        dst_port: 4500,
    };
    let mut ah = SaConfig::new(0x4242_0002, Protocol::Ah, Mode::Transport);
    ah.integ = integ(i::HMAC_SHA2_256_128, 32);
    let cases = vec![
        (
            "aes256gcm16 tunnel",
            esp(e::AES_GCM_16, 256, 36, 0, 0, tunnel, Encap::None),
        ),
        (
            "aes256cbc+sha256 tunnel",
            esp(
                e::AES_CBC,
                256,
                32,
                i::HMAC_SHA2_256_128,
                32,
                tunnel,
                Encap::None,
            ),
        ),
        (
            "chacha20poly1305 tunnel v6",
            esp(e::CHACHA20_POLY1305, 256, 36, 0, 0, tunnel6, Encap::None),
        ),
        ("ah sha256 transport", ah),
        (
            "aes128gcm16 esp-in-udp v6",
            esp(e::AES_GCM_16, 128, 20, 0, 0, tunnel6, udp),
        ),
        (
            "aes128gcm16 esp-in-udp transport",
            esp(e::AES_GCM_16, 128, 20, 0, 0, Mode::Transport, udp),
        ),
    ];
    let mut total = 0;
    for (name, cfg) in cases {
        total += run(name, cfg);
    }
    assert_eq!(total, 0, "allocations on the packet path");
}
