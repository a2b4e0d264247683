//! Criterion benchmarks of every ESP AEAD and cipher+integrity pair at four
//! packet sizes (see `sym_cases.rs`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

mod sym_cases;

fn bench(c: &mut Criterion) {
    for (name, case) in sym_cases::cases() {
        let mut g = c.benchmark_group(name);
        for &size in sym_cases::SIZES {
            let mut buf = vec![0x5au8; size];
            let mut icv = [0u8; 64];
            let iv = [7u8; 16];
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function(BenchmarkId::from_parameter(size), |b| {
                b.iter(|| case.seal(&iv, &mut buf, &mut icv))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
