//! Anti-replay per packet: check (before the ICV) + accept (after it).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use palisade_sa::replay::ReplayWindow;

const N: u64 = 4096;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(N));
    for esn in [false, true] {
        g.bench_function(
            BenchmarkId::new("in_order", if esn { "esn" } else { "32bit" }),
            |b| {
                let mut w = ReplayWindow::new(128, esn).unwrap();
                let mut next = (1u64 << 32) - 1000;
                if !esn {
                    next = 1;
                }
                b.iter(|| {
                    for _ in 0..N {
                        let full = w.check(next as u32).unwrap();
                        w.accept(black_box(full)).unwrap();
                        next += 1;
                        if !esn && next >= u64::from(u32::MAX) {
                            w = ReplayWindow::new(128, esn).unwrap();
                            next = 1;
                        }
                    }
                })
            },
        );
    }
    for window in [128u32, 1024, 4096] {
        // Each block of `window` numbers arrives in a scrambled order.
        let perm: Vec<u64> = (0..u64::from(window))
            .map(|i| (i * 40503 + 7) % u64::from(window))
            .collect();
        g.bench_function(BenchmarkId::new("random_within_window", window), |b| {
            let mut w = ReplayWindow::new(window, true).unwrap();
            let mut base = 1u64;
            b.iter(|| {
                let mut k = 0;
                for _ in 0..N {
                    let seq = base + perm[k];
                    if let Ok(full) = w.check(seq as u32) {
                        let _ = w.accept(black_box(full));
                    }
                    k += 1;
                    if k == perm.len() {
                        k = 0;
                        base += u64::from(window);
                    }
                }
            })
        });
    }
    g.bench_function("duplicate_check", |b| {
        let mut w = ReplayWindow::new(1024, true).unwrap();
        for s in 1..=5000 {
            w.accept(s).unwrap();
        }
        b.iter(|| {
            for s in 0..N {
                let _ = black_box(w.check(black_box((5000 - (s % 1000)) as u32)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
