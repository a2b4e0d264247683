//! Wycheproof (https://github.com/C2SP/wycheproof, `testvectors_v1/`, copied into
//! `tests/vectors/sym/wycheproof/`) for every group whose parameters IPsec uses:
//! AES-GCM and ChaCha20-Poly1305 with 12-byte nonces (4-byte salt + 8-byte IV),
//! AES-CCM with 11-byte nonces (3-byte salt + 8-byte IV), HMAC-SHA1/SHA2 and
//! AES-CMAC. Valid cases must seal to the expected bytes and open; invalid ones
//! must be refused. Each test asserts that at least one case ran.

use palisade_crypto::registry::{self, encr, integ_id, prf_id};
use palisade_crypto::{Error, Policy};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!(
        "{}/tests/vectors/sym/wycheproof/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hx(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap_or("")).expect("hex")
}

struct Counts {
    valid: usize,
    invalid: usize,
}

/// Runs one AEAD case: `salt` bytes of the nonce go into the keymat, the other 8
/// are the ESP IV; `icv_len` may truncate a valid case's tag (GCM-8/12).
fn aead_case(id: u16, bits: Option<u16>, salt: usize, icv_len: usize, t: &Value, c: &mut Counts) {
    let (key, nonce, aad, msg, ct, tag) = (
        hx(t, "key"),
        hx(t, "iv"),
        hx(t, "aad"),
        hx(t, "msg"),
        hx(t, "ct"),
        hx(t, "tag"),
    );
    let what = format!("tcId {} ({})", t["tcId"], t["comment"]);
    let mut keymat = key.clone();
    keymat.extend_from_slice(&nonce[..salt]);
    let iv = &nonce[salt..];
    let aead =
        registry::aead(id, bits, &keymat, Policy::SECURE).unwrap_or_else(|e| panic!("{what}: {e}"));
    match t["result"].as_str() {
        Some("valid") => {
            let mut buf = msg.clone();
            let mut icv = vec![0u8; icv_len];
            aead.seal_in_place_detached(iv, &aad, &mut buf, &mut icv)
                .expect(&what);
            assert_eq!(hex::encode(&buf), hex::encode(&ct), "{what}: ciphertext");
            assert_eq!(
                hex::encode(&icv),
                hex::encode(&tag[..icv_len]),
                "{what}: tag"
            );
            aead.open_in_place_detached(iv, &aad, &mut buf, &icv)
                .expect(&what);
            assert_eq!(buf, msg, "{what}: open");
            c.valid += 1;
        }
        Some("invalid") if icv_len == tag.len() => {
            let mut buf = ct.clone();
            assert_eq!(
                aead.open_in_place_detached(iv, &aad, &mut buf, &tag),
                Err(Error::IntegrityCheckFailed),
                "{what}"
            );
            c.invalid += 1;
        }
        _ => {}
    }
}

fn run_aead(
    file: &str,
    nonce_bits: u64,
    salt: usize,
    ids: &[(u16, usize)],
    key_bits_attr: bool,
) -> Counts {
    // GCM's short tags are prefixes of the full one; CCM's are not (the tag
    // length is an input to CCM), so CCM only runs groups of its own tag size.
    let truncatable = ids
        .iter()
        .any(|&(id, _)| matches!(id, encr::AES_GCM_8 | encr::AES_GCM_12 | encr::AES_GCM_16));
    let mut c = Counts {
        valid: 0,
        invalid: 0,
    };
    for g in load(file)["testGroups"].as_array().expect("groups") {
        if g["ivSize"].as_u64() != Some(nonce_bits) {
            continue;
        }
        let tag_bytes = g["tagSize"].as_u64().expect("tagSize") as usize / 8;
        let key_bits = g["keySize"].as_u64().expect("keySize") as u16;
        let bits = if key_bits_attr { Some(key_bits) } else { None };
        for &(id, icv_len) in ids {
            // Full-length groups test every ICV length up to theirs; shorter
            // groups only the matching one.
            if icv_len > tag_bytes || ((!truncatable || tag_bytes != 16) && icv_len != tag_bytes) {
                continue;
            }
            for t in g["tests"].as_array().expect("tests") {
                aead_case(id, bits, salt, icv_len, t, &mut c);
            }
        }
    }
    c
}

#[test]
fn wycheproof_aes_gcm() {
    let c = run_aead(
        "aes_gcm_test.json",
        96,
        4,
        &[
            (encr::AES_GCM_16, 16),
            (encr::AES_GCM_12, 12),
            (encr::AES_GCM_8, 8),
        ],
        true,
    );
    eprintln!("aes_gcm: {} valid, {} invalid", c.valid, c.invalid);
    assert!(c.valid >= 1 && c.invalid >= 1);
}

#[test]
fn wycheproof_aes_ccm() {
    let c = run_aead(
        "aes_ccm_test.json",
        88,
        3,
        &[
            (encr::AES_CCM_16, 16),
            (encr::AES_CCM_12, 12),
            (encr::AES_CCM_8, 8),
        ],
        true,
    );
    eprintln!("aes_ccm: {} valid, {} invalid", c.valid, c.invalid);
    // Wycheproof's 11-byte-nonce CCM groups hold valid cases only.
    assert!(c.valid >= 1);
}

#[test]
fn wycheproof_chacha20_poly1305() {
    let c = run_aead(
        "chacha20_poly1305_test.json",
        96,
        4,
        &[(encr::CHACHA20_POLY1305, 16)],
        false,
    );
    eprintln!(
        "chacha20_poly1305: {} valid, {} invalid",
        c.valid, c.invalid
    );
    assert!(c.valid >= 1 && c.invalid >= 1);
}

/// MAC groups: the full tag through the PRF (any key length), and the truncated
/// ICV through the INTEG transform when key and ICV sizes are IPsec's.
fn run_mac(file: &str, prf: u16, integ: u16) -> Counts {
    let mut c = Counts {
        valid: 0,
        invalid: 0,
    };
    let p = registry::prf(prf, Policy::SECURE).expect("prf");
    let sizes = registry::integ_sizes(integ).expect("integ");
    for g in load(file)["testGroups"].as_array().expect("groups") {
        let key_bytes = g["keySize"].as_u64().expect("keySize") as usize / 8;
        let tag_bytes = g["tagSize"].as_u64().expect("tagSize") as usize / 8;
        for t in g["tests"].as_array().expect("tests") {
            let (key, msg, tag) = (hx(t, "key"), hx(t, "msg"), hx(t, "tag"));
            let what = format!("{file} tcId {} ({})", t["tcId"], t["comment"]);
            let valid = t["result"].as_str() == Some("valid");
            // AES-CMAC-PRF re-keys non-128-bit keys (RFC 4615), so only 16-byte
            // keys are plain AES-CMAC; HMAC takes any key.
            let prf_applies = prf != prf_id::AES128_CMAC || key_bytes == 16;
            if prf_applies && tag.len() == tag_bytes {
                let mut out = vec![0u8; p.output_len()];
                p.compute(&key, &[&msg], &mut out).expect(&what);
                assert_eq!(out[..tag_bytes] == tag[..], valid, "{what}: PRF");
                if valid {
                    c.valid += 1
                } else {
                    c.invalid += 1
                }
            }
            if key_bytes == sizes.key_len && tag_bytes >= sizes.icv_len && tag.len() == tag_bytes {
                let i = registry::integ(integ, &key, Policy::SECURE).expect(&what);
                let r = i.verify(&[&msg], &tag[..sizes.icv_len]);
                if valid {
                    r.expect(&what);
                    c.valid += 1;
                } else if tag_bytes == sizes.icv_len {
                    assert_eq!(r, Err(Error::IntegrityCheckFailed), "{what}: INTEG");
                    c.invalid += 1;
                }
            }
        }
    }
    c
}

#[test]
fn wycheproof_hmac_and_cmac() {
    for (file, prf, integ) in [
        (
            "hmac_sha1_test.json",
            prf_id::HMAC_SHA1,
            integ_id::HMAC_SHA1_96,
        ),
        (
            "hmac_sha256_test.json",
            prf_id::HMAC_SHA2_256,
            integ_id::HMAC_SHA2_256_128,
        ),
        (
            "hmac_sha384_test.json",
            prf_id::HMAC_SHA2_384,
            integ_id::HMAC_SHA2_384_192,
        ),
        (
            "hmac_sha512_test.json",
            prf_id::HMAC_SHA2_512,
            integ_id::HMAC_SHA2_512_256,
        ),
        (
            "aes_cmac_test.json",
            prf_id::AES128_CMAC,
            integ_id::AES_CMAC_96,
        ),
    ] {
        let c = run_mac(file, prf, integ);
        eprintln!("{file}: {} valid, {} invalid", c.valid, c.invalid);
        assert!(c.valid >= 1 && c.invalid >= 1, "{file}");
    }
}
