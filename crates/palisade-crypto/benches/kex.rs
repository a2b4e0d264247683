//! Full key exchanges (initiator generate, responder answer, initiator
//! complete) per group: what one IKE_SA_INIT costs both peers together.

use criterion::{criterion_group, criterion_main, Criterion};
use palisade_crypto::kex;
use palisade_crypto::Policy;

fn full_exchange(group: u16) {
    let i = kex::initiate(group, Policy::SECURE).expect("initiate");
    let (ker, k_r) = kex::respond(group, i.public_value(), Policy::SECURE).expect("respond");
    let k_i = i.complete(&ker).expect("complete");
    assert_eq!(k_i, k_r);
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("kex_full_exchange");
    for (name, id) in [
        ("x25519", kex::CURVE25519),
        ("ecp256", kex::ECP_256),
        ("modp2048", kex::MODP_2048),
        ("mlkem768", kex::ML_KEM_768),
    ] {
        g.bench_function(name, |b| b.iter(|| full_exchange(id)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
