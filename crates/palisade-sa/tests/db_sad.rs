//! SAD at scale: 100,000 inbound SAs plus outbound ones, every one found by its
//! SPI, removal and handle staleness, and the memory each SA costs.

use std::collections::HashSet;
use std::net::IpAddr;

use palisade_sa::counters::SaCounters;
use palisade_sa::lifetime::{Lifetime, LifetimeConfig, Timestamp};
use palisade_sa::replay::{ReplayWindow, SeqCounter};
use palisade_sa::sad::{InboundKey, SaHandle, SaScope, Sad, SecurityProtocol};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The per-SA state this crate's databases module contributes to an SA.
#[allow(dead_code)]
struct DbState {
    window: ReplayWindow,
    seq: SeqCounter,
    lifetime: Lifetime,
    counters: SaCounters,
}

#[test]
fn hundred_thousand_sas() {
    const N: usize = 100_000;
    let mut r = Rng(42);
    let mut sad: Sad<DbState> = Sad::with_capacity(N);
    let mut inserted: Vec<(u32, SaHandle)> = Vec::with_capacity(N);
    let mut spis = HashSet::new();
    while inserted.len() < N {
        let spi = (r.next() >> 32) as u32;
        let key = InboundKey {
            spi,
            proto: SecurityProtocol::Esp,
            scope: SaScope::Unicast,
        };
        let state = DbState {
            window: ReplayWindow::with_default_size(true),
            seq: SeqCounter::new(true),
            lifetime: Lifetime::new(LifetimeConfig::default(), Timestamp(0)),
            counters: SaCounters::default(),
        };
        match sad.insert_inbound(key, state) {
            Ok(h) => {
                assert!(spis.insert(spi));
                inserted.push((spi, h));
            }
            Err(e) => assert!(spi < 256 || spis.contains(&spi), "{e}"),
        }
    }
    assert_eq!(sad.len(), N);
    let (d, s): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
    for &(spi, h) in &inserted {
        assert_eq!(
            sad.lookup_inbound(spi, SecurityProtocol::Esp, d, s),
            Some(h)
        );
        assert_eq!(sad.lookup_inbound(spi, SecurityProtocol::Ah, d, s), None);
    }
    // Remove every other one; the rest stay findable, the removed go stale.
    for (i, &(spi, h)) in inserted.iter().enumerate() {
        if i % 2 == 0 {
            assert!(sad.remove(h).is_some());
            assert!(sad.get(h).is_none());
            assert!(sad
                .lookup_inbound(spi, SecurityProtocol::Esp, d, s)
                .is_none());
        }
    }
    assert_eq!(sad.len(), N / 2);
    for &(spi, h) in inserted.iter().skip(1).step_by(2) {
        assert_eq!(
            sad.lookup_inbound(spi, SecurityProtocol::Esp, d, s),
            Some(h)
        );
    }
    // Outbound SAs reuse the freed slots.
    for _ in 0..N / 2 {
        let h = sad
            .insert_outbound(DbState {
                window: ReplayWindow::with_default_size(false),
                seq: SeqCounter::new(false),
                lifetime: Lifetime::new(LifetimeConfig::default(), Timestamp(0)),
                counters: SaCounters::default(),
            })
            .unwrap();
        assert!((h.index() as usize) < N);
    }
    assert_eq!(sad.len(), N);

    let state = std::mem::size_of::<DbState>();
    let window_heap = 4 * 8; // 128-packet window: 4 words
    let overhead = sad.overhead_bytes_per_sa();
    println!(
        "bytes per SA: SAD bookkeeping {overhead} + replay/lifetime/counters state {state} + window bitmap {window_heap} = {}",
        overhead + state + window_heap
    );
    assert!(
        overhead < 128,
        "SAD overhead per SA grew to {overhead} bytes"
    );
}
