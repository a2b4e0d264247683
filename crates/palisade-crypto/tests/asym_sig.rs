//! Signatures: RFC 4754 (IKEv2 ECDSA AUTH), RFC 8032 (Ed25519), Wycheproof
//! (ECDSA P1363 + DER, RSA PKCS#1 v1.5, RSA-PSS, Ed25519), sign/verify round trips.

use palisade_crypto::sig::{self, Scheme};
use palisade_crypto::{Error, Policy};
use serde_json::Value;

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

#[test]
fn rfc4754_ikev2_ecdsa_auth() {
    let doc = load("rfc/rfc4754_ecdsa.json");
    for v in doc["vectors"].as_array().unwrap() {
        let method = v["auth_method"].as_u64().unwrap() as u8;
        let scheme = Scheme::from_ikev2_auth_method(method).unwrap();
        assert_eq!(scheme.ikev2_auth_method(), method);
        let point = [vec![4u8], h(s(v, "gwx")), h(s(v, "gwy"))].concat();
        let verifier = sig::verifier(scheme, &point, Policy::SECURE).unwrap();
        let rs = [h(s(v, "r")), h(s(v, "s"))].concat();
        let msg = s(v, "msg_ascii").as_bytes();
        verifier
            .verify(msg, &rs)
            .unwrap_or_else(|e| panic!("method {method}: {e}"));
        let mut bad = rs.clone();
        bad[5] ^= 1;
        assert!(verifier.verify(msg, &bad).is_err());
        assert!(verifier.verify(b"abd", &rs).is_err());
    }
}

/// PKCS#8 v1 wrapper for a raw Ed25519 seed (RFC 8410 section 7).
fn ed25519_pkcs8(seed: &[u8]) -> Vec<u8> {
    [&h("302e020100300506032b657004220420")[..], seed].concat()
}

#[test]
fn rfc8032_ed25519() {
    let doc = load("rfc/rfc8032_ed25519.json");
    for v in doc["vectors"].as_array().unwrap() {
        let name = s(v, "name");
        let signer = sig::signer_from_pkcs8(
            Scheme::Ed25519,
            &ed25519_pkcs8(&h(s(v, "secret"))),
            Policy::SECURE,
        )
        .unwrap();
        assert_eq!(signer.public_key(), &h(s(v, "public"))[..], "{name}");
        let msg = h(s(v, "msg"));
        assert_eq!(
            signer.sign(&msg).unwrap(),
            h(s(v, "sig")),
            "{name}: signature"
        );
        let verifier = sig::verifier(Scheme::Ed25519, &h(s(v, "public")), Policy::SECURE).unwrap();
        verifier.verify(&msg, &h(s(v, "sig"))).unwrap();
    }
}

/// Run a Wycheproof signature-verification file against `scheme`, with the
/// group's public key taken from `key_field` (a hex string or a path into the group).
fn wycheproof_verify(file: &str, scheme: Scheme, key_of: impl Fn(&Value) -> Vec<u8>) {
    let doc = load(&format!("wycheproof/{file}"));
    let (mut valid, mut invalid) = (0, 0);
    for g in doc["testGroups"].as_array().unwrap() {
        let key = key_of(g);
        let verifier = sig::verifier(scheme, &key, Policy::SECURE)
            .unwrap_or_else(|e| panic!("{file}: key: {e}"));
        for t in g["tests"].as_array().unwrap() {
            let id = &t["tcId"];
            let got = verifier.verify(&h(s(t, "msg")), &h(s(t, "sig")));
            match s(t, "result") {
                "valid" => {
                    got.unwrap_or_else(|e| panic!("{file} tcId {id} ({}): {e}", s(t, "comment")));
                    valid += 1;
                }
                "invalid" => {
                    assert_eq!(
                        got,
                        Err(Error::Signature("signature does not verify")),
                        "{file} tcId {id}: {}",
                        s(t, "comment")
                    );
                    invalid += 1;
                }
                _ => {}
            }
        }
    }
    assert!(
        valid > 0 && invalid > 0,
        "{file}: {valid} valid, {invalid} invalid"
    );
}

#[test]
fn wycheproof_ecdsa_p1363_raw() {
    let key = |g: &Value| h(s(&g["publicKey"], "uncompressed"));
    wycheproof_verify(
        "ecdsa_secp256r1_sha256_p1363_test.json",
        Scheme::EcdsaP256Sha256Raw,
        key,
    );
    wycheproof_verify(
        "ecdsa_secp384r1_sha384_p1363_test.json",
        Scheme::EcdsaP384Sha384Raw,
        key,
    );
    wycheproof_verify(
        "ecdsa_secp521r1_sha512_p1363_test.json",
        Scheme::EcdsaP521Sha512Raw,
        key,
    );
}

#[test]
fn wycheproof_ecdsa_der() {
    // SubjectPublicKeyInfo this time, to exercise the other key format.
    let key = |g: &Value| h(s(g, "publicKeyDer"));
    wycheproof_verify(
        "ecdsa_secp256r1_sha256_test.json",
        Scheme::EcdsaP256Sha256,
        key,
    );
    wycheproof_verify(
        "ecdsa_secp384r1_sha384_test.json",
        Scheme::EcdsaP384Sha384,
        key,
    );
    wycheproof_verify(
        "ecdsa_secp521r1_sha512_test.json",
        Scheme::EcdsaP521Sha512,
        key,
    );
}

#[test]
fn wycheproof_rsa_pkcs1() {
    // PKCS#1 RSAPublicKey for one file, SubjectPublicKeyInfo for the others.
    wycheproof_verify(
        "rsa_signature_2048_sha256_test.json",
        Scheme::RsaPkcs1Sha256,
        |g| h(s(g, "publicKeyAsn")),
    );
    wycheproof_verify(
        "rsa_signature_2048_sha384_test.json",
        Scheme::RsaPkcs1Sha384,
        |g| h(s(g, "publicKeyDer")),
    );
    wycheproof_verify(
        "rsa_signature_2048_sha512_test.json",
        Scheme::RsaPkcs1Sha512,
        |g| h(s(g, "publicKeyDer")),
    );
}

#[test]
fn wycheproof_rsa_pss() {
    let key = |g: &Value| h(s(g, "publicKeyDer"));
    wycheproof_verify(
        "rsa_pss_2048_sha256_mgf1_32_test.json",
        Scheme::RsaPssSha256,
        key,
    );
    wycheproof_verify(
        "rsa_pss_2048_sha384_mgf1_48_test.json",
        Scheme::RsaPssSha384,
        key,
    );
    wycheproof_verify(
        "rsa_pss_4096_sha512_mgf1_64_test.json",
        Scheme::RsaPssSha512,
        key,
    );
}

#[test]
fn wycheproof_ed25519() {
    wycheproof_verify("ed25519_test.json", Scheme::Ed25519, |g| {
        h(s(&g["publicKey"], "pk"))
    });
}

fn pkcs8_for(scheme: Scheme) -> Vec<u8> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature as awssig;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    match scheme {
        Scheme::Ed25519 => awssig::Ed25519KeyPair::generate_pkcs8(&rng)
            .unwrap()
            .as_ref()
            .to_vec(),
        Scheme::EcdsaP256Sha256 | Scheme::EcdsaP256Sha256Raw => {
            awssig::EcdsaKeyPair::generate_pkcs8(&awssig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .unwrap()
                .as_ref()
                .to_vec()
        }
        Scheme::EcdsaP384Sha384 | Scheme::EcdsaP384Sha384Raw => {
            awssig::EcdsaKeyPair::generate_pkcs8(&awssig::ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
                .unwrap()
                .as_ref()
                .to_vec()
        }
        Scheme::EcdsaP521Sha512 | Scheme::EcdsaP521Sha512Raw => {
            awssig::EcdsaKeyPair::generate_pkcs8(&awssig::ECDSA_P521_SHA512_ASN1_SIGNING, &rng)
                .unwrap()
                .as_ref()
                .to_vec()
        }
        _ => {
            let k = awssig::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            let der: aws_lc_rs::encoding::Pkcs8V1Der = k.as_der().unwrap();
            der.as_ref().to_vec()
        }
    }
}

#[test]
fn sign_verify_round_trip_every_scheme() {
    let mut rsa_key = None;
    for scheme in Scheme::ALL {
        if scheme == Scheme::RsaPkcs1Sha1 {
            continue;
        }
        let der = if scheme.name().contains("RSA") {
            rsa_key.get_or_insert_with(|| pkcs8_for(scheme)).clone()
        } else {
            pkcs8_for(scheme)
        };
        let signer = sig::signer_from_pkcs8(scheme, &der, Policy::SECURE).unwrap();
        assert_eq!(signer.scheme(), scheme);
        let msg = b"IKE_AUTH octets";
        let signature = signer.sign(msg).unwrap();
        let verifier = sig::verifier(scheme, signer.public_key(), Policy::SECURE).unwrap();
        verifier
            .verify(msg, &signature)
            .unwrap_or_else(|e| panic!("{}: {e}", scheme.name()));
        assert!(
            verifier.verify(b"other octets", &signature).is_err(),
            "{}",
            scheme.name()
        );
        if matches!(
            scheme,
            Scheme::EcdsaP256Sha256Raw | Scheme::EcdsaP384Sha384Raw | Scheme::EcdsaP521Sha512Raw
        ) {
            let field = (signature.len()) / 2;
            assert!(
                matches!(field, 32 | 48 | 66),
                "raw r||s is fixed width: {}",
                signature.len()
            );
        }
    }
}

#[test]
fn sha1_is_verify_only_and_legacy() {
    let der = pkcs8_for(Scheme::RsaPkcs1Sha256);
    assert!(matches!(
        sig::signer_from_pkcs8(Scheme::RsaPkcs1Sha1, &der, Policy::INSECURE),
        Err(Error::Signature(_))
    ));
    let signer = sig::signer_from_pkcs8(Scheme::RsaPkcs1Sha256, &der, Policy::SECURE).unwrap();
    assert!(matches!(
        sig::verifier(Scheme::RsaPkcs1Sha1, signer.public_key(), Policy::SECURE),
        Err(Error::Insecure { .. })
    ));
    assert!(sig::verifier(Scheme::RsaPkcs1Sha1, signer.public_key(), Policy::INSECURE).is_ok());
}

#[test]
fn bad_keys_are_reported_as_keys() {
    assert!(matches!(
        sig::verifier(Scheme::EcdsaP256Sha256Raw, &[4; 65], Policy::SECURE),
        Err(Error::Signature(_))
    ));
    assert!(matches!(
        sig::verifier(Scheme::Ed25519, &[1; 31], Policy::SECURE),
        Err(Error::Signature(_))
    ));
    assert!(matches!(
        sig::signer_from_pkcs8(Scheme::EcdsaP256Sha256, &[0x30, 0], Policy::SECURE),
        Err(Error::Signature(_))
    ));
    // A P-256 key cannot sign for P-384.
    let p256 = pkcs8_for(Scheme::EcdsaP256Sha256);
    assert!(sig::signer_from_pkcs8(Scheme::EcdsaP384Sha384, &p256, Policy::SECURE).is_err());
}

#[test]
fn rfc7427_algorithm_identifiers() {
    // RFC 7427 Appendix A.4.3, RSASSA-PSS with SHA-256 (as in libreswan's ietf_constants.h).
    let pss256 = h(concat!(
        "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a",
        "06092a864886f70d010108300d06096086480165030402010500a203020120"
    ));
    assert_eq!(
        Scheme::RsaPssSha256.algorithm_identifier(),
        Some(&pss256[..])
    );
    assert_eq!(
        Scheme::from_algorithm_identifier(&pss256),
        Some(Scheme::RsaPssSha256)
    );
    // A.1.2 sha256WithRSAEncryption, with and without the NULL parameters.
    assert_eq!(
        Scheme::from_algorithm_identifier(&h("300d06092a864886f70d01010b0500")),
        Some(Scheme::RsaPkcs1Sha256)
    );
    assert_eq!(
        Scheme::from_algorithm_identifier(&h("300b06092a864886f70d01010b")),
        Some(Scheme::RsaPkcs1Sha256)
    );
    // A.3.3 ecdsa-with-sha384; RFC 8420 Ed25519.
    assert_eq!(
        Scheme::from_algorithm_identifier(&h("300a06082a8648ce3d040303")),
        Some(Scheme::EcdsaP384Sha384)
    );
    assert_eq!(
        Scheme::from_algorithm_identifier(&h("300506032b6570")),
        Some(Scheme::Ed25519)
    );
    assert_eq!(
        Scheme::from_algorithm_identifier(&h("300506032b6571")),
        None,
        "Ed448 is not implemented"
    );
    assert_eq!(Scheme::from_algorithm_identifier(&[]), None);
    for scheme in Scheme::ALL {
        match scheme.algorithm_identifier() {
            Some(a) => {
                assert_eq!(
                    scheme.ikev2_auth_method(),
                    if scheme == Scheme::RsaPkcs1Sha1 {
                        1
                    } else {
                        14
                    }
                );
                assert_eq!(Scheme::from_algorithm_identifier(a), Some(scheme));
            }
            None => assert!(matches!(scheme.ikev2_auth_method(), 9..=11)),
        }
    }
}
