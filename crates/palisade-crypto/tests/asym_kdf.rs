//! IKEv2 and IKEv1 key derivation against NIST CAVP SP 800-135 component-test
//! vectors (via strongSwan's and libreswan's test suites), plus the
//! RFC 7296 / RFC 2409 rules that have no published vectors, checked by
//! recomputing them step by step with an HMAC defined here.

use palisade_crypto::kdf::{ikev1, ikev2};
use palisade_crypto::prf::Prf;
use palisade_crypto::Error;
use serde_json::Value;

/// A test-local HMAC PRF on aws-lc-rs, independent of the crate's own PRFs.
struct TestHmac {
    name: &'static str,
    alg: aws_lc_rs::hmac::Algorithm,
    key_len: usize,
}

impl Prf for TestHmac {
    fn name(&self) -> &'static str {
        self.name
    }
    fn output_len(&self) -> usize {
        self.alg.digest_algorithm().output_len
    }
    fn key_len(&self) -> usize {
        self.key_len
    }
    fn compute(&self, key: &[u8], data: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&aws_lc_rs::hmac::Key::new(self.alg, key));
        data.iter().for_each(|d| ctx.update(d));
        out.copy_from_slice(ctx.sign().as_ref());
        Ok(())
    }
}

fn hmac(name: &str) -> TestHmac {
    use aws_lc_rs::hmac::*;
    let (name, alg) = match name {
        "PRF_HMAC_SHA1" => ("PRF_HMAC_SHA1", HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        "PRF_HMAC_SHA2_256" => ("PRF_HMAC_SHA2_256", HMAC_SHA256),
        "PRF_HMAC_SHA2_384" => ("PRF_HMAC_SHA2_384", HMAC_SHA384),
        "PRF_HMAC_SHA2_512" => ("PRF_HMAC_SHA2_512", HMAC_SHA512),
        other => panic!("no test PRF {other}"),
    };
    TestHmac {
        name,
        alg,
        key_len: alg.digest_algorithm().output_len,
    }
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex in vector file")
}

fn load(path: &str) -> Value {
    let full = format!("{}/tests/vectors/asym/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("field {k} missing"))
}

fn spi(v: &Value, k: &str) -> [u8; 8] {
    h(s(v, k)).try_into().expect("8-byte SPI/cookie")
}

#[test]
fn cavp_ikev2_via_strongswan() {
    let doc = load("kdf/strongswan_ikev2_prf.json");
    let mut n = 0;
    for v in doc["vectors"].as_array().unwrap() {
        let prf = hmac(s(v, "prf"));
        let (key, salt, out) = (h(s(v, "key")), h(s(v, "salt")), h(s(v, "out")));
        let got = match s(v, "kdf") {
            // SKEYSEED = prf(Ni | Nr, g^ir): salt is Ni | Nr, key is g^ir. Split the
            // salt anywhere: the KDF only sees the concatenation.
            "KDF_PRF" => {
                ikev2::skeyseed(&prf, &salt[..salt.len() / 2], &salt[salt.len() / 2..], &key)
                    .unwrap()
            }
            // prf+(SKEYSEED, Ni | Nr | SPIi | SPIr): run it through the child KEYMAT
            // entry point, which is prf+(key, pieces...) with no other input.
            "KDF_PRF_PLUS" => {
                ikev2::child_keymat(&prf, &key, &[], &salt[..3], &salt[3..], out.len()).unwrap()
            }
            other => panic!("{other}"),
        };
        assert_eq!(got.as_bytes(), &out[..], "{}", s(v, "name"));
        n += 1;
    }
    assert_eq!(n, 13);
}

#[test]
fn cavp_ikev2_full_chain_via_libreswan() {
    let doc = load("kdf/libreswan_cavp.json");
    for v in doc["ikev2"].as_array().unwrap() {
        let prf = hmac(s(v, "prf"));
        let (ni, nr, gir, gir_new) = (
            h(s(v, "ni")),
            h(s(v, "nr")),
            h(s(v, "gir")),
            h(s(v, "gir_new")),
        );
        let skeyseed = ikev2::skeyseed(&prf, &ni, &nr, &gir).unwrap();
        assert_eq!(skeyseed.as_bytes(), &h(s(v, "skeyseed"))[..], "SKEYSEED");

        // 1056 bits = SK_d(20) + 2*SK_a(20) + 2*SK_e(16) + 2*SK_p(20) with HMAC-SHA1.
        let lens = ikev2::IkeKeyLengths {
            integ: 20,
            encr: 16,
        };
        let keys = ikev2::ike_sa_keys(
            &prf,
            skeyseed.as_bytes(),
            &ni,
            &nr,
            &spi(v, "spii"),
            &spi(v, "spir"),
            lens,
        )
        .unwrap();
        let dkm: Vec<u8> = [
            &keys.sk_d,
            &keys.sk_ai,
            &keys.sk_ar,
            &keys.sk_ei,
            &keys.sk_er,
            &keys.sk_pi,
            &keys.sk_pr,
        ]
        .iter()
        .flat_map(|k| k.as_bytes().to_vec())
        .collect();
        assert_eq!(dkm, h(s(v, "dkm")), "DKM = SK_d | SK_ai | ... | SK_pr");
        let sk_d = keys.sk_d.as_bytes();
        assert_eq!(sk_d.len(), 20);

        let child = ikev2::child_keymat(&prf, sk_d, &[], &ni, &nr, 132).unwrap();
        assert_eq!(child.as_bytes(), &h(s(v, "dkm_child"))[..], "DKM(Child SA)");
        let child_dh = ikev2::child_keymat(&prf, sk_d, &[&gir_new], &ni, &nr, 132).unwrap();
        assert_eq!(
            child_dh.as_bytes(),
            &h(s(v, "dkm_child_dh"))[..],
            "DKM(Child SA D-H)"
        );
        let rekey = ikev2::rekey_skeyseed(&prf, sk_d, &gir_new, &ni, &nr).unwrap();
        assert_eq!(
            rekey.as_bytes(),
            &h(s(v, "skeyseed_rekey"))[..],
            "SKEYSEED(Rekey)"
        );

        // The split helper takes initiator keys first, encryption before integrity.
        let split = ikev2::child_sa_keys(&prf, sk_d, &[&gir_new], &ni, &nr, 36, 30).unwrap();
        let all = h(s(v, "dkm_child_dh"));
        assert_eq!(split.encr_i.as_bytes(), &all[..36]);
        assert_eq!(split.integ_i.as_bytes(), &all[36..66]);
        assert_eq!(split.encr_r.as_bytes(), &all[66..102]);
        assert_eq!(split.integ_r.as_bytes(), &all[102..132]);
    }
}

#[test]
fn cavp_ikev1_via_libreswan() {
    let doc = load("kdf/libreswan_cavp.json");
    for (section, psk) in [("ikev1_psk", true), ("ikev1_sig", false)] {
        for v in doc[section].as_array().unwrap() {
            let prf = hmac(s(v, "prf"));
            let (ni, nr, gxy) = (h(s(v, "ni")), h(s(v, "nr")), h(s(v, "gxy")));
            let skeyid = if psk {
                ikev1::skeyid_psk(&prf, &h(s(v, "psk")), &ni, &nr).unwrap()
            } else {
                ikev1::skeyid_sig(&prf, &ni, &nr, &gxy).unwrap()
            };
            assert_eq!(
                skeyid.as_bytes(),
                &h(s(v, "skeyid"))[..],
                "{section} SKEYID"
            );
            let set = ikev1::skeyid_set(
                &prf,
                skeyid.as_bytes(),
                &gxy,
                &spi(v, "cky_i"),
                &spi(v, "cky_r"),
            )
            .unwrap();
            assert_eq!(
                set.d.as_bytes(),
                &h(s(v, "skeyid_d"))[..],
                "{section} SKEYID_d"
            );
            assert_eq!(
                set.a.as_bytes(),
                &h(s(v, "skeyid_a"))[..],
                "{section} SKEYID_a"
            );
            assert_eq!(
                set.e.as_bytes(),
                &h(s(v, "skeyid_e"))[..],
                "{section} SKEYID_e"
            );
        }
    }
}

fn prf1(prf: &dyn Prf, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0; prf.output_len()];
    prf.compute(key, data, &mut out).unwrap();
    out
}

#[test]
fn fixed_key_prf_takes_half_of_each_nonce() {
    // An HMAC that calls itself AES-XCBC: the KDF must then key SKEYSEED with
    // Ni[..8] | Nr[..8] (RFC 7296 2.14), and use whole nonces otherwise.
    let xcbc_like = TestHmac {
        name: "PRF_AES128_XCBC",
        alg: aws_lc_rs::hmac::HMAC_SHA256,
        key_len: 16,
    };
    let (ni, nr, g) = ([1u8; 32], [2u8; 24], [3u8; 256]);
    let got = ikev2::skeyseed(&xcbc_like, &ni, &nr, &g).unwrap();
    assert_eq!(
        got.as_bytes(),
        prf1(&xcbc_like, &[[1u8; 8], [2u8; 8]].concat(), &[&g])
    );
    let hmac = hmac("PRF_HMAC_SHA2_256");
    let got = ikev2::skeyseed(&hmac, &ni, &nr, &g).unwrap();
    assert_eq!(
        got.as_bytes(),
        prf1(&hmac, &[&ni[..], &nr[..]].concat(), &[&g])
    );
    // Nonces too short to give half the key each are refused, not read past.
    assert!(ikev2::skeyseed(&xcbc_like, &[1; 4], &[2; 4], &g).is_err());
}

#[test]
fn ikev1_appendix_b_key_expansion() {
    let prf = hmac("PRF_HMAC_SHA1");
    let e = [7u8; 20];
    // Long enough: the leading bytes of SKEYID_e.
    assert_eq!(
        ikev1::encryption_key(&prf, &e, 16).unwrap().as_bytes(),
        &e[..16]
    );
    // 32-byte key from a 20-byte SKEYID_e: K1 = prf(e, 0), K2 = prf(e, K1).
    let k1 = prf1(&prf, &e, &[&[0]]);
    let k2 = prf1(&prf, &e, &[&k1]);
    let want = [k1, k2].concat();
    assert_eq!(
        ikev1::encryption_key(&prf, &e, 32).unwrap().as_bytes(),
        &want[..32]
    );
}

#[test]
fn ikev1_quick_mode_keymat() {
    let prf = hmac("PRF_HMAC_SHA1");
    let (d, g, spi, ni, nr) = (
        [9u8; 20],
        [5u8; 128],
        [0xaa, 0xbb, 0xcc, 0xdd],
        [1u8; 16],
        [2u8; 16],
    );
    let proto = 3u8; // PROTO_IPSEC_ESP
    let k1 = prf1(&prf, &d, &[&[proto], &spi, &ni, &nr]);
    let k2 = prf1(&prf, &d, &[&k1, &[proto], &spi, &ni, &nr]);
    let got = ikev1::quick_mode_keymat(&prf, &d, None, proto, &spi, &ni, &nr, 36).unwrap();
    assert_eq!(got.as_bytes(), &[k1, k2].concat()[..36]);
    let p1 = prf1(&prf, &d, &[&g, &[proto], &spi, &ni, &nr]);
    let p2 = prf1(&prf, &d, &[&p1, &g, &[proto], &spi, &ni, &nr]);
    let got = ikev1::quick_mode_keymat(&prf, &d, Some(&g), proto, &spi, &ni, &nr, 40).unwrap();
    assert_eq!(got.as_bytes(), &[p1, p2].concat()[..40]);
}

#[test]
fn ikev1_ivs() {
    use sha1::Digest;
    let (gxi, gxr) = ([1u8; 128], [2u8; 128]);
    let want = sha1::Sha1::new()
        .chain_update(gxi)
        .chain_update(gxr)
        .finalize();
    assert_eq!(
        ikev1::phase1_iv(ikev1::Hash::Sha1, &gxi, &gxr, 16).unwrap(),
        &want[..16]
    );
    let last = [0x5au8; 16];
    let want = sha1::Sha1::new()
        .chain_update(last)
        .chain_update(0x01020304u32.to_be_bytes())
        .finalize();
    assert_eq!(
        ikev1::phase2_iv(ikev1::Hash::Sha1, &last, 0x01020304, 16).unwrap(),
        &want[..16]
    );
    let want = md5::Md5::new()
        .chain_update(last)
        .chain_update([0, 0, 0, 7])
        .finalize();
    assert_eq!(
        ikev1::phase2_iv(ikev1::Hash::Md5, &last, 7, 8).unwrap(),
        &want[..8]
    );
    // MD5 (16 bytes) cannot give a 32-byte block.
    assert!(ikev1::phase1_iv(ikev1::Hash::Md5, &gxi, &gxr, 32).is_err());
}

#[test]
fn ikev1_skeyid_public_key_encryption() {
    use sha1::Digest;
    let prf = hmac("PRF_HMAC_SHA1");
    let (ni, nr, ci, cr) = ([1u8; 16], [2u8; 16], [3u8; 8], [4u8; 8]);
    let key = sha1::Sha1::new()
        .chain_update(ni)
        .chain_update(nr)
        .finalize();
    let want = prf1(&prf, &key, &[&ci, &cr]);
    let got = ikev1::skeyid_pke(&prf, ikev1::Hash::Sha1, &ni, &nr, &ci, &cr).unwrap();
    assert_eq!(got.as_bytes(), &want[..]);
}
