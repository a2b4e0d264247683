//! The selftest known-answer tests for key exchange, signatures and KDFs all pass,
//! and cover every implemented key exchange method.

use palisade_crypto::{kat_asym, kex};

#[test]
fn all_asymmetric_kats_pass() {
    let results = kat_asym::known_answer_tests();
    for r in &results {
        assert!(
            r.ok,
            "{} ({}, {}) failed: {}",
            r.transform, r.kind, r.iana_id, r.source
        );
    }
    for g in kex::GROUPS {
        assert!(
            results.iter().any(|r| r.kind == "KE" && r.iana_id == g.id),
            "no KAT for {}",
            g.name
        );
    }
    assert_eq!(results.iter().filter(|r| r.kind == "SIG").count(), 13);
    assert_eq!(results.iter().filter(|r| r.kind == "KDF").count(), 4);
}
