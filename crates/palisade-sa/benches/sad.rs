//! Inbound SAD lookup at 100,000 SAs (hits in random order, and misses).

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use palisade_sa::sad::{InboundKey, SaScope, Sad, SecurityProtocol};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Stand-in for the transform's SA: about the size of one (keys, window,
/// counters, lifetime) so the slab's cache behaviour is realistic.
#[allow(dead_code)]
struct FakeSa([u64; 48]);

fn bench(c: &mut Criterion) {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sad = Sad::with_capacity(100_000);
    let mut spis = Vec::with_capacity(100_000);
    while spis.len() < 100_000 {
        let spi = (r.next() >> 32) as u32;
        let key = InboundKey {
            spi,
            proto: SecurityProtocol::Esp,
            scope: SaScope::Unicast,
        };
        if sad.insert_inbound(key, FakeSa([spi as u64; 48])).is_ok() {
            spis.push(spi);
        }
    }
    let probe: Vec<u32> = (0..4096)
        .map(|_| spis[(r.next() % spis.len() as u64) as usize])
        .collect();
    let miss: Vec<u32> = (0..4096)
        .map(|_| (r.next() >> 32) as u32)
        .filter(|s| !sad.spi_in_use(*s, SecurityProtocol::Esp))
        .collect();
    let (dst, src): (IpAddr, IpAddr) = (
        "192.0.2.1".parse().unwrap(),
        "198.51.100.1".parse().unwrap(),
    );
    let mut g = c.benchmark_group("sad_100k");
    g.throughput(Throughput::Elements(probe.len() as u64));
    g.bench_function("lookup_hit", |b| {
        b.iter(|| {
            for &spi in &probe {
                black_box(sad.lookup_inbound(black_box(spi), SecurityProtocol::Esp, dst, src));
            }
        })
    });
    g.bench_function("lookup_hit_and_touch", |b| {
        b.iter(|| {
            for &spi in &probe {
                if let Some((_, sa)) =
                    sad.inbound_mut(black_box(spi), SecurityProtocol::Esp, dst, src)
                {
                    sa.0[0] = sa.0[0].wrapping_add(1);
                }
            }
        })
    });
    g.throughput(Throughput::Elements(miss.len() as u64));
    g.bench_function("lookup_miss", |b| {
        b.iter(|| {
            for &spi in &miss {
                black_box(sad.lookup_inbound(black_box(spi), SecurityProtocol::Esp, dst, src));
            }
        })
    });
    g.finish();
    eprintln!(
        "sad_100k: SAD overhead {} bytes per SA (excluding the SA value)",
        sad.overhead_bytes_per_sa()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
