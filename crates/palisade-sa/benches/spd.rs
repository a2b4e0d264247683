//! SPD lookup at 10,000 policies: the index against the linear reference.
//!
//! The policy set mixes what a gateway carries: site-to-site subnet pairs,
//! port-specific rules, host pairs, IPv6 prefixes, a few broad BYPASS/DISCARD
//! rules ahead of them and a catch-all DISCARD at the end.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use palisade_sa::selector::{AddrRange, Direction, PortRange, Selector, SelectorKey};
use palisade_sa::spd::{Action, Bundle, Mode, PolicySpec, Protect, Spd};

/// xorshift64*: deterministic keys without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

pub fn policies(n: usize) -> Vec<PolicySpec> {
    let esp = Action::Protect(Protect {
        bundle: Bundle::Esp { sa: None },
        mode: Mode::Tunnel,
    });
    let p = |prio, local: String, remote: String, action| PolicySpec {
        priority: prio,
        direction: Direction::Outbound,
        selector: Selector::between(local.parse().unwrap(), remote.parse().unwrap()),
        action,
    };
    let mut v = Vec::with_capacity(n);
    // Broad rules first.
    v.push(p(1, "any".into(), "192.168.0.0/16".into(), Action::Bypass));
    let mut icmp = p(1, "any".into(), "any".into(), Action::Discard);
    icmp.selector.proto = Some(1);
    icmp.selector.local_port = PortRange::icmp(Some(5), 0..=255).unwrap();
    v.push(icmp);
    let mut i = 0usize;
    while v.len() < n - 1 {
        let (a, b) = ((i / 256) as u8, (i % 256) as u8);
        match i % 10 {
            0..=5 => v.push(p(
                100,
                format!("10.{a}.{b}.0/24"),
                format!("172.{}.{b}.0/24", 16 + a % 16),
                esp,
            )),
            6 | 7 => {
                let mut s = p(
                    50,
                    format!("10.{a}.{b}.0/24"),
                    format!("100.{a}.{b}.0/24"),
                    esp,
                );
                s.selector.proto = Some(6);
                s.selector.remote_port =
                    PortRange::port(if i.is_multiple_of(2) { 443 } else { 80 });
                v.push(s);
            }
            8 => v.push(p(
                100,
                format!("10.200.{a}.{b}"),
                format!("198.{a}.{b}.7"),
                esp,
            )),
            _ => v.push(p(
                100,
                format!("fd00:{a}:{b}::/48"),
                format!("fd01:{a}:{b}::/48"),
                esp,
            )),
        }
        i += 1;
    }
    v.push(p(u32::MAX, "any".into(), "any".into(), Action::Discard));
    v
}

fn keys(n: usize) -> Vec<SelectorKey> {
    let mut r = Rng(0x1234_5678_9abc_def1);
    (0..n)
        .map(|_| {
            let x = r.next();
            let (a, b, h) = ((x % 4) as u8, (x >> 8) as u8, (x >> 16) as u8 | 1);
            let (src, dst, proto): (IpAddr, IpAddr, u8) = match (x >> 24) % 6 {
                0 | 1 => ([10, a, b, h].into(), [172, 16 + a, b, h].into(), 17),
                2 => ([10, a, b, h].into(), [100, a, b, h].into(), 6),
                3 => ([10, 200, a, b].into(), [198, a, b, 7].into(), 6),
                4 => (
                    format!("fd00:{a}:{b}::{h}").parse().unwrap(),
                    format!("fd01:{a}:{b}::1").parse().unwrap(),
                    17,
                ),
                _ => ([10, a, b, h].into(), [203, 0, 113, h].into(), 17), // falls to the catch-all
            };
            SelectorKey::new(
                src,
                dst,
                proto,
                40000,
                if x >> 40 & 1 == 0 { 443 } else { 80 },
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut spd = Spd::new();
    spd.extend(policies(10_000));
    let keys = keys(4096);
    let mut g = c.benchmark_group("spd_10k");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("indexed", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(spd.lookup(Direction::Outbound, black_box(k)));
            }
        })
    });
    let few = &keys[..64];
    g.throughput(Throughput::Elements(few.len() as u64));
    g.bench_function("linear", |b| {
        b.iter(|| {
            for k in few {
                black_box(spd.lookup_linear(Direction::Outbound, black_box(k)));
            }
        })
    });
    g.finish();
    eprintln!(
        "spd_10k: {} policies, {} index list entries",
        spd.len(),
        spd.index_entries()
    );
    let _ = AddrRange::Any;
}

criterion_group!(benches, bench);
criterion_main!(benches);
