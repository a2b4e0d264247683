//! `palisade selftest`: every transform's known-answer test, then a short
//! throughput check of the data-plane transforms, printed as one table.

use palisade_crypto::kat::KatResult;
use std::process::ExitCode;

pub fn run(throughput: bool, json: bool) -> ExitCode {
    let mut results = palisade_crypto::kat_sym::known_answer_tests();
    results.extend(palisade_crypto::kat_asym::known_answer_tests());
    let speeds = if throughput {
        crate::selftest::speed::measure()
    } else {
        Vec::new()
    };
    let failed = results.iter().filter(|r| !r.ok).count();
    if json {
        print_json(&results, &speeds);
    } else {
        print_table(&results, &speeds);
        if failed == 0 {
            println!("\nall {} known-answer tests passed", results.len());
        } else {
            println!("\n{failed} of {} known-answer tests FAILED", results.len());
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_table(results: &[KatResult], speeds: &[speed::Speed]) {
    let width = results
        .iter()
        .map(|r| r.transform.len())
        .max()
        .unwrap_or(9)
        .max(9);
    println!("known-answer tests");
    println!(
        "{:<width$}  {:<5}  {:>5}  {:<6}  source",
        "transform", "type", "id", "KAT"
    );
    for r in results {
        let id = if r.iana_id == 0 {
            "-".to_string()
        } else {
            r.iana_id.to_string()
        };
        let ok = if r.ok { "ok" } else { "FAILED" };
        println!(
            "{:<width$}  {:<5}  {:>5}  {:<6}  {}",
            r.transform, r.kind, id, ok, r.source
        );
    }
    if !speeds.is_empty() {
        println!(
            "\nthroughput, one core, {}-byte packets (seal only)",
            speed::PACKET
        );
        for s in speeds {
            println!("  {:<34} {:>8.0} MB/s", s.transform, s.mb_per_s);
        }
    }
}

fn print_json(results: &[KatResult], speeds: &[speed::Speed]) {
    let rows: Vec<_> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "transform": r.transform, "type": r.kind, "iana_id": r.iana_id,
                "ok": r.ok, "source": r.source,
            })
        })
        .collect();
    let speeds: Vec<_> = speeds
        .iter()
        .map(|s| serde_json::json!({"transform": s.transform, "mb_per_s": s.mb_per_s}))
        .collect();
    println!(
        "{}",
        serde_json::json!({"known_answer_tests": rows, "throughput": speeds})
    );
}

pub mod speed {
    //! A short throughput check of the ESP data-path transforms at a typical
    //! tunnel packet size. It is a sanity check for the operator (is this
    //! machine using AES-NI?), not a benchmark: see scripts/bench-crypto.sh.

    use palisade_crypto::registry::{self, encr, integ_id};
    use palisade_crypto::Policy;
    use std::time::{Duration, Instant};

    /// Packet size measured: a full-size packet inside a 1500-byte path.
    pub const PACKET: usize = 1420;

    pub struct Speed {
        pub transform: String,
        pub mb_per_s: f64,
    }

    /// Run `op` over 1420-byte packets for about `budget`; MB/s.
    fn rate(budget: Duration, mut op: impl FnMut(&mut [u8])) -> f64 {
        let mut buf = vec![0x5a_u8; PACKET];
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < budget {
            for _ in 0..64 {
                op(&mut buf);
            }
            n += 64;
        }
        (n as f64 * PACKET as f64) / start.elapsed().as_secs_f64() / 1e6
    }

    fn aead(name: &str, id: u16, bits: u16) -> Option<Speed> {
        let info = registry::encr_info(id, Some(bits)).ok()?;
        let key = vec![7u8; info.keymat_len];
        let aead = registry::aead(id, Some(bits), &key, Policy::SECURE).ok()?;
        let (iv, aad) = ([1u8; 8], [2u8; 8]);
        let mut icv = vec![0u8; aead.icv_len()];
        let mb = rate(Duration::from_millis(150), |buf| {
            let _ = aead.seal_in_place_detached(&iv, &aad, buf, &mut icv);
        });
        Some(Speed {
            transform: name.into(),
            mb_per_s: mb,
        })
    }

    fn cipher_integ(name: &str, id: u16, bits: u16, integ: u16) -> Option<Speed> {
        let info = registry::encr_info(id, Some(bits)).ok()?;
        let key = vec![7u8; info.keymat_len];
        let cipher = registry::cipher(id, Some(bits), &key, Policy::SECURE).ok()?;
        let sizes = registry::integ_sizes(integ).ok()?;
        let mac = registry::integ(integ, &vec![9u8; sizes.key_len], Policy::SECURE).ok()?;
        let iv = vec![1u8; cipher.iv_len()];
        let mut icv = vec![0u8; mac.icv_len()];
        let mb = rate(Duration::from_millis(150), |buf| {
            let _ = cipher.encrypt_in_place(&iv, buf);
            let _ = mac.compute(&[&buf[..]], &mut icv);
        });
        Some(Speed {
            transform: name.into(),
            mb_per_s: mb,
        })
    }

    pub fn measure() -> Vec<Speed> {
        [
            aead("AES-256-GCM-16", encr::AES_GCM_16, 256),
            aead("AES-128-GCM-16", encr::AES_GCM_16, 128),
            aead("ChaCha20-Poly1305", encr::CHACHA20_POLY1305, 256),
            aead("AES-128-CCM-16", encr::AES_CCM_16, 128),
            cipher_integ(
                "AES-256-CBC + HMAC-SHA2-256-128",
                encr::AES_CBC,
                256,
                integ_id::HMAC_SHA2_256_128,
            ),
            cipher_integ(
                "AES-128-CTR + HMAC-SHA1-96",
                encr::AES_CTR,
                128,
                integ_id::HMAC_SHA1_96,
            ),
            cipher_integ(
                "AES-128-CBC + AES-XCBC-96",
                encr::AES_CBC,
                128,
                integ_id::AES_XCBC_96,
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
