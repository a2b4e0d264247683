//! ENCR transforms (AEADs and plain ciphers) against published vectors.
//!
//! - `strongswan_*.json`: strongSwan's transcriptions, each vector naming its
//!   origin (RFC 3602 4, RFC 3686 6, McGrew & Viega GCM spec, Linux testmgr /
//!   FIPS CAVS CCM with 11-byte nonces, RFC 7539/8439 and RFC 7634 Appendix A
//!   ChaCha20-Poly1305, NESSIE DES set 8, NIST 3DES MMT). Vectors strongSwan made
//!   itself are run too but not counted as independent coverage.
//! - `mcgrew_gcm_esp.json`: draft-mcgrew-gcm-test-01 ESP packets (GCM and GMAC).

use std::collections::BTreeMap;

use palisade_crypto::registry::{self, encr};
use palisade_crypto::{Error, Policy};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/sym/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hx(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap_or("")).expect("hex")
}

/// Seal `pt` and compare with `ct | icv`, then open it back and check that a
/// flipped ICV bit is refused.
// One argument per field of a published vector.
#[allow(clippy::too_many_arguments)]
fn check_aead(
    id: u16,
    bits: Option<u16>,
    keymat: &[u8],
    iv: &[u8],
    aad: &[u8],
    pt: &[u8],
    ct: &[u8],
    icv: &[u8],
    what: &str,
) {
    let aead =
        registry::aead(id, bits, keymat, Policy::SECURE).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(aead.icv_len(), icv.len(), "{what}: ICV length");
    assert_eq!(aead.key_len(), keymat.len(), "{what}: keymat length");
    let mut buf = pt.to_vec();
    let mut tag = vec![0u8; aead.icv_len()];
    aead.seal_in_place_detached(iv, aad, &mut buf, &mut tag)
        .expect(what);
    assert_eq!(hex::encode(&buf), hex::encode(ct), "{what}: ciphertext");
    assert_eq!(hex::encode(&tag), hex::encode(icv), "{what}: ICV");
    aead.open_in_place_detached(iv, aad, &mut buf, &tag)
        .expect(what);
    assert_eq!(hex::encode(&buf), hex::encode(pt), "{what}: open");
    let mut c = ct.to_vec();
    let mut bad = icv.to_vec();
    bad[icv.len() - 1] ^= 0x80;
    assert_eq!(
        aead.open_in_place_detached(iv, aad, &mut c, &bad),
        Err(Error::IntegrityCheckFailed),
        "{what}: forged ICV"
    );
    if !ct.is_empty() {
        let mut c = ct.to_vec();
        c[0] ^= 1;
        assert_eq!(
            aead.open_in_place_detached(iv, aad, &mut c, icv),
            Err(Error::IntegrityCheckFailed),
            "{what}: forged data"
        );
    }
}

fn strongswan_aead(alg: &str) -> Option<u16> {
    Some(match alg {
        "ENCR_AES_GCM_ICV8" => encr::AES_GCM_8,
        "ENCR_AES_GCM_ICV12" => encr::AES_GCM_12,
        "ENCR_AES_GCM_ICV16" => encr::AES_GCM_16,
        "ENCR_AES_CCM_ICV8" => encr::AES_CCM_8,
        "ENCR_AES_CCM_ICV12" => encr::AES_CCM_12,
        "ENCR_AES_CCM_ICV16" => encr::AES_CCM_16,
        "ENCR_CHACHA20_POLY1305" => encr::CHACHA20_POLY1305,
        _ => return None,
    })
}

#[test]
fn strongswan_aead_vectors() {
    let mut ran: BTreeMap<String, usize> = BTreeMap::new();
    for file in [
        "strongswan_aes_gcm.json",
        "strongswan_aes_ccm.json",
        "strongswan_chacha20poly1305.json",
    ] {
        for v in load(file)["vectors"].as_array().expect("vectors") {
            let alg = v["alg"].as_str().expect("alg");
            let name = format!("{file} {}", v["name"].as_str().unwrap_or("?"));
            let Some(id) = strongswan_aead(alg) else {
                panic!("{name}: unmapped {alg}")
            };
            // strongSwan takes key_size + salt_size bytes of the literal (one
            // self-made vector, aes_ccm15, carries extra bytes).
            let salt = v["salt_size"].as_u64().expect("salt_size") as usize;
            let key_size = v["key_size"].as_u64().expect("key_size") as u16;
            let bits = if id == encr::CHACHA20_POLY1305 {
                None
            } else {
                Some(key_size * 8)
            };
            let keymat = hx(v, "key")[..key_size as usize + salt].to_vec();
            let pt = hx(v, "plain");
            let out = hx(v, "cipher");
            let (ct, icv) = out.split_at(pt.len());
            check_aead(
                id,
                bits,
                &keymat,
                &hx(v, "iv"),
                &hx(v, "adata"),
                &pt,
                ct,
                icv,
                &name,
            );
            if v["independent"].as_bool() == Some(true) {
                *ran.entry(format!("{alg}/{}", key_size * 8)).or_default() += 1;
            }
        }
    }
    eprintln!("independent AEAD vectors per transform: {ran:?}");
    for must in [
        "ENCR_AES_GCM_ICV8/128",
        "ENCR_AES_GCM_ICV12/128",
        "ENCR_AES_GCM_ICV16/128",
        "ENCR_AES_GCM_ICV16/192",
        "ENCR_AES_GCM_ICV16/256",
        "ENCR_AES_CCM_ICV8/128",
        "ENCR_AES_CCM_ICV8/256",
        "ENCR_AES_CCM_ICV12/256",
        "ENCR_AES_CCM_ICV16/128",
        "ENCR_AES_CCM_ICV16/192",
        "ENCR_AES_CCM_ICV16/256",
        "ENCR_CHACHA20_POLY1305/256",
    ] {
        assert!(ran.contains_key(must), "no independent vector for {must}");
    }
}

#[test]
fn rfc7634_appendix_a_esp_packet() {
    // RFC 7634 Appendix A: the ESP example (strongSwan's "ESP example from RFC 7634").
    let doc = load("strongswan_chacha20poly1305.json");
    let v = doc["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .find(|v| {
            v["source"]
                .as_str()
                .unwrap_or("")
                .contains("ESP example from RFC 7634")
        })
        .expect("RFC 7634 ESP vector present");
    let pt = hx(v, "plain");
    let out = hx(v, "cipher");
    let (ct, icv) = out.split_at(pt.len());
    // AAD is SPI | sequence number (8 bytes) for an SA without ESN.
    assert_eq!(hx(v, "adata").len(), 8);
    check_aead(
        encr::CHACHA20_POLY1305,
        None,
        &hx(v, "key"),
        &hx(v, "iv"),
        &hx(v, "adata"),
        &pt,
        ct,
        icv,
        "RFC 7634 A",
    );
}

#[test]
fn mcgrew_gcm_and_gmac_esp_packets() {
    let doc = load("mcgrew_gcm_esp.json");
    let mut gcm = 0;
    let mut gmac = 0;
    for v in doc["vectors"].as_array().expect("vectors") {
        let name = v["name"].as_str().expect("name");
        let id = match v["encr"].as_str() {
            Some("ENCR_AES_GCM_16") => {
                gcm += 1;
                encr::AES_GCM_16
            }
            Some("ENCR_NULL_AUTH_AES_GMAC") => {
                gmac += 1;
                encr::NULL_AUTH_AES_GMAC
            }
            other => panic!("{name}: {other:?}"),
        };
        let bits = v["key_bits"].as_u64().map(|b| b as u16);
        check_aead(
            id,
            bits,
            &hx(v, "keymat"),
            &hx(v, "iv"),
            &hx(v, "aad"),
            &hx(v, "plaintext"),
            &hx(v, "ciphertext"),
            &hx(v, "icv"),
            name,
        );
    }
    assert!(gcm >= 5 && gmac >= 1);
}

#[test]
fn strongswan_cipher_vectors() {
    let mut ran: BTreeMap<String, usize> = BTreeMap::new();
    for file in [
        "strongswan_aes_cbc.json",
        "strongswan_aes_ctr.json",
        "strongswan_des.json",
        "strongswan_3des_cbc.json",
        "strongswan_null.json",
    ] {
        for v in load(file)["vectors"].as_array().expect("vectors") {
            let alg = v["alg"].as_str().expect("alg");
            let name = format!("{file} {}", v["name"].as_str().unwrap_or("?"));
            let key_size = v["key_size"].as_u64().expect("key_size") as u16;
            let (id, bits) = match alg {
                "ENCR_AES_CBC" => (encr::AES_CBC, Some(key_size * 8)),
                "ENCR_AES_CTR" => (encr::AES_CTR, Some(key_size * 8)),
                "ENCR_DES" => (encr::DES, None),
                "ENCR_3DES" => (encr::TRIPLE_DES, None),
                "ENCR_NULL" => (encr::NULL, None),
                "ENCR_DES_ECB" => continue,
                other => panic!("{name}: unmapped {other}"),
            };
            let key = hx(v, "key");
            let iv = hx(v, "iv");
            let pt = hx(v, "plain");
            let ct = hx(v, "cipher");
            // Legacy ciphers need allow_insecure; say so when it is missing.
            if matches!(id, encr::DES | encr::TRIPLE_DES) {
                assert!(matches!(
                    registry::cipher(id, bits, &key, Policy::SECURE),
                    Err(Error::Insecure { .. })
                ));
            }
            let c = registry::cipher(id, bits, &key, Policy::INSECURE)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c.key_len(), key.len(), "{name}");
            assert_eq!(c.iv_len(), iv.len(), "{name}");
            let mut buf = pt.clone();
            c.encrypt_in_place(&iv, &mut buf).expect(&name);
            assert_eq!(hex::encode(&buf), hex::encode(&ct), "{name}: encrypt");
            c.decrypt_in_place(&iv, &mut buf).expect(&name);
            assert_eq!(hex::encode(&buf), hex::encode(&pt), "{name}: decrypt");
            *ran.entry(alg.to_string()).or_default() += 1;
        }
    }
    eprintln!("cipher vectors per transform: {ran:?}");
    for must in [
        "ENCR_AES_CBC",
        "ENCR_AES_CTR",
        "ENCR_DES",
        "ENCR_3DES",
        "ENCR_NULL",
    ] {
        assert!(ran.contains_key(must), "no vector for {must}");
    }
}

#[test]
fn cbc_refuses_partial_blocks_and_bad_iv() {
    let c = registry::cipher(encr::AES_CBC, Some(128), &[7; 16], Policy::SECURE).expect("cbc");
    let mut data = [0u8; 17];
    assert!(matches!(
        c.encrypt_in_place(&[0; 16], &mut data),
        Err(Error::DataLength { .. })
    ));
    assert!(matches!(
        c.decrypt_in_place(&[0; 16], &mut data[..16]),
        Ok(())
    ));
    assert!(matches!(
        c.encrypt_in_place(&[0; 8], &mut data[..16]),
        Err(Error::IvLength { .. })
    ));
    // CTR takes any length.
    let ctr = registry::cipher(encr::AES_CTR, Some(256), &[7; 36], Policy::SECURE).expect("ctr");
    let mut odd = [1u8; 33];
    ctr.encrypt_in_place(&[9; 8], &mut odd)
        .expect("ctr odd length");
    ctr.decrypt_in_place(&[9; 8], &mut odd)
        .expect("ctr odd length");
    assert_eq!(odd, [1u8; 33]);
}

#[test]
fn registry_rejects_bad_ids_sizes_and_keymat() {
    assert!(matches!(
        registry::aead(999, Some(128), &[0; 20], Policy::SECURE),
        Err(Error::Unsupported {
            kind: "ENCR",
            id: 999
        })
    ));
    assert!(matches!(
        registry::aead(encr::AES_GCM_16, Some(100), &[0; 20], Policy::SECURE),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        registry::aead(encr::AES_GCM_16, None, &[0; 20], Policy::SECURE),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        registry::aead(encr::AES_GCM_16, Some(128), &[0; 16], Policy::SECURE),
        Err(Error::KeyLength { .. })
    ));
    assert!(matches!(
        registry::aead(encr::AES_CBC, Some(128), &[0; 16], Policy::SECURE),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        registry::cipher(encr::AES_GCM_16, Some(128), &[0; 20], Policy::SECURE),
        Err(Error::Unsupported { .. })
    ));
    let info = registry::encr_info(encr::AES_GCM_16, Some(256)).expect("info");
    assert_eq!((info.keymat_len, info.iv_len, info.icv_len), (36, 8, 16));
    assert_eq!(info.name, "ENCR_AES_GCM_16 (256)");
    assert_eq!(
        registry::encr_info(encr::AES_CCM_8, Some(128))
            .expect("ccm")
            .keymat_len,
        19
    );
    assert_eq!(
        registry::encr_info(encr::AES_CTR, Some(192))
            .expect("ctr")
            .keymat_len,
        28
    );
    assert_eq!(
        registry::encr_info(encr::CHACHA20_POLY1305, None)
            .expect("chacha")
            .keymat_len,
        36
    );
    // Wrong IV length and short ICV buffers are errors, not panics.
    let a = registry::aead(encr::AES_GCM_8, Some(128), &[1; 20], Policy::SECURE).expect("gcm8");
    let mut buf = [0u8; 10];
    assert!(matches!(
        a.seal_in_place_detached(&[0; 12], &[], &mut buf, &mut [0; 8]),
        Err(Error::IvLength { .. })
    ));
    assert!(matches!(
        a.seal_in_place_detached(&[0; 8], &[], &mut buf, &mut [0; 16]),
        Err(Error::DataLength { .. })
    ));
    assert_eq!(
        a.open_in_place_detached(&[0; 8], &[], &mut buf, &[0; 7]),
        Err(Error::IntegrityCheckFailed)
    );
}
