//! Key exchange: published vectors (RFC 5903, RFC 7748, Wycheproof), an
//! independent MODP implementation (Python), peer-value validation, policy.
//! Every vector file under tests/vectors/asym names its source.

use palisade_crypto::kex::{self, KeyExchange};
use palisade_crypto::{Error, Policy};
use serde_json::Value;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).expect("hex in vector file")
}

fn load(path: &str) -> Value {
    let full = format!("{}/tests/vectors/asym/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("field {k} missing in {v}"))
}

fn fixed(private: &[u8], group: u16) -> Box<dyn KeyExchange> {
    kex::from_private_key(group, private, Policy::INSECURE).expect("private key accepted")
}

#[test]
fn rfc5903_section8_ecp() {
    let doc = load("rfc/rfc5903_ecp.json");
    for v in doc["vectors"].as_array().unwrap() {
        let group = v["group"].as_u64().unwrap() as u16;
        let gi = [h(s(v, "gix")), h(s(v, "giy"))].concat();
        let gr = [h(s(v, "grx")), h(s(v, "gry"))].concat();
        let girx = h(s(v, "girx"));
        let i = fixed(&h(s(v, "i")), group);
        assert_eq!(
            i.public_value(),
            &gi[..],
            "group {group}: KEi data is x || y"
        );
        assert_eq!(
            i.complete(&gr).unwrap().as_bytes(),
            &girx[..],
            "group {group}: initiator g^ir"
        );
        let r = fixed(&h(s(v, "r")), group);
        assert_eq!(r.public_value(), &gr[..], "group {group}: KEr data");
        assert_eq!(
            r.complete(&gi).unwrap().as_bytes(),
            &girx[..],
            "group {group}: responder g^ir"
        );
    }
}

#[test]
fn rfc7748_x25519() {
    let doc = load("rfc/rfc7748_x25519.json");
    for v in doc["scalar_mult"].as_array().unwrap() {
        let got = fixed(&h(s(v, "scalar")), kex::CURVE25519)
            .complete(&h(s(v, "u")))
            .unwrap();
        assert_eq!(got.as_bytes(), &h(s(v, "out"))[..]);
    }
    let d = &doc["dh"];
    let alice = fixed(&h(s(d, "alice_private")), kex::CURVE25519);
    let bob = fixed(&h(s(d, "bob_private")), kex::CURVE25519);
    assert_eq!(alice.public_value(), &h(s(d, "alice_public"))[..]);
    assert_eq!(bob.public_value(), &h(s(d, "bob_public"))[..]);
    let k = h(s(d, "shared"));
    assert_eq!(
        alice.complete(&h(s(d, "bob_public"))).unwrap().as_bytes(),
        &k[..]
    );
    assert_eq!(
        bob.complete(&h(s(d, "alice_public"))).unwrap().as_bytes(),
        &k[..]
    );
}

/// Wycheproof private keys are hex integers (maybe with a sign byte, maybe
/// shorter than the field); IKE wants the fixed-width big-endian scalar.
fn scalar_of_width(hex_int: &str, width: usize) -> Option<Vec<u8>> {
    let raw = h(hex_int);
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    let digits = &raw[start..];
    if digits.len() > width {
        return None;
    }
    let mut out = vec![0u8; width - digits.len()];
    out.extend_from_slice(digits);
    Some(out)
}

#[test]
fn wycheproof_ecdh_ecpoint() {
    for (file, group, width) in [
        ("ecdh_secp256r1_ecpoint_test.json", kex::ECP_256, 32),
        ("ecdh_secp384r1_ecpoint_test.json", kex::ECP_384, 48),
        ("ecdh_secp521r1_ecpoint_test.json", kex::ECP_521, 66),
    ] {
        let doc = load(&format!("wycheproof/{file}"));
        let (mut checked, mut not_ike_encodable) = (0, 0);
        for g in doc["testGroups"].as_array().unwrap() {
            for t in g["tests"].as_array().unwrap() {
                let id = &t["tcId"];
                let public = h(s(t, "public"));
                let result = s(t, "result");
                // The IKE KE payload (RFC 5903) can only carry an uncompressed point
                // without its 0x04 tag; compressed or malformed encodings cannot reach us
                // in that form. Feed the raw bytes anyway when they are not 0x04 || x || y:
                // they must be refused (wrong length) unless they happen to be 2*width long.
                let ike = if public.len() == 2 * width + 1 && public[0] == 4 {
                    public[1..].to_vec()
                } else {
                    not_ike_encodable += 1;
                    public.clone()
                };
                let Some(private) = scalar_of_width(s(t, "private"), width) else {
                    continue;
                };
                let got = match kex::from_private_key(group, &private, Policy::SECURE) {
                    Ok(k) => k.complete(&ike),
                    Err(e) => Err(e),
                };
                let shared = h(s(t, "shared"));
                match (result, &got, ike.len() == public.len()) {
                    ("valid", Ok(z), false) => {
                        assert_eq!(z.as_bytes(), &shared[..], "{file} tcId {id}")
                    }
                    ("valid", Err(e), false) => {
                        panic!("{file} tcId {id}: valid vector refused: {e}")
                    }
                    ("invalid", Ok(_), _) => panic!("{file} tcId {id}: invalid vector accepted"),
                    ("acceptable", Ok(z), _) => {
                        assert_eq!(z.as_bytes(), &shared[..], "{file} tcId {id}")
                    }
                    (_, Ok(_), true) => panic!("{file} tcId {id}: non-IKE encoding accepted"),
                    _ => {}
                }
                checked += 1;
            }
        }
        assert!(checked > 100, "{file}: only {checked} tests ran");
        eprintln!("{file}: {checked} tests, {not_ike_encodable} with encodings IKE cannot carry");
    }
}

#[test]
fn wycheproof_x25519() {
    let doc = load("wycheproof/x25519_test.json");
    let mut n = 0;
    for g in doc["testGroups"].as_array().unwrap() {
        for t in g["tests"].as_array().unwrap() {
            let id = &t["tcId"];
            let got = fixed(&h(s(t, "private")), kex::CURVE25519).complete(&h(s(t, "public")));
            let shared = h(s(t, "shared"));
            if shared.iter().all(|&b| b == 0) {
                // RFC 8031 section 2: an all-zero result MUST be rejected.
                match got {
                    Err(Error::InvalidPublicValue {
                        group: "CURVE_25519",
                        ..
                    }) => {}
                    other => panic!("x25519 tcId {id}: all-zero secret not rejected: {other:?}"),
                }
            } else {
                match (s(t, "result"), got) {
                    ("invalid", Ok(_)) => panic!("x25519 tcId {id}: invalid accepted"),
                    ("valid", Err(e)) => panic!("x25519 tcId {id}: valid refused: {e}"),
                    (_, Ok(z)) => assert_eq!(z.as_bytes(), &shared[..], "x25519 tcId {id}"),
                    _ => {}
                }
            }
            n += 1;
        }
    }
    assert!(n > 400);
}

/// ML-KEM decapsulation with Wycheproof's expanded decapsulation keys. Note the
/// Wycheproof file names aws-lc as the generator of these particular tests.
#[test]
fn wycheproof_mlkem_decaps() {
    for (file, group) in [
        ("mlkem_512_semi_expanded_decaps_test.json", kex::ML_KEM_512),
        ("mlkem_768_semi_expanded_decaps_test.json", kex::ML_KEM_768),
        (
            "mlkem_1024_semi_expanded_decaps_test.json",
            kex::ML_KEM_1024,
        ),
    ] {
        let doc = load(&format!("wycheproof/{file}"));
        for g in doc["testGroups"].as_array().unwrap() {
            for t in g["tests"].as_array().unwrap() {
                let id = &t["tcId"];
                let got =
                    kex::from_private_key(group, &h(s(t, "dk")), Policy::SECURE).and_then(|k| {
                        if t.get("ek")
                            .and_then(Value::as_str)
                            .is_some_and(|ek| !ek.is_empty())
                            && s(t, "result") == "valid"
                        {
                            assert_eq!(
                                k.public_value(),
                                &h(s(t, "ek"))[..],
                                "{file} tcId {id}: ek inside dk"
                            );
                        }
                        k.complete(&h(s(t, "c")))
                    });
                match (s(t, "result"), got) {
                    ("valid", Ok(k)) => {
                        assert_eq!(k.as_bytes(), &h(s(t, "K"))[..], "{file} tcId {id}")
                    }
                    ("valid", Err(e)) => panic!("{file} tcId {id}: {e}"),
                    ("invalid", Ok(_)) => {
                        panic!("{file} tcId {id}: invalid accepted ({})", s(t, "comment"))
                    }
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn modp_matches_python_pow() {
    let doc = load("modp/modp_python.json");
    for v in doc["vectors"].as_array().unwrap() {
        let group = v["group"].as_u64().unwrap() as u16;
        let a = fixed(&h(s(v, "x")), group);
        assert_eq!(
            a.public_value(),
            &h(s(v, "gx"))[..],
            "MODP {group}: 2^x mod p"
        );
        let z = a.complete(&h(s(v, "peer_gx"))).unwrap();
        assert_eq!(z.as_bytes(), &h(s(v, "shared"))[..], "MODP {group}: shared");
        let b = fixed(&h(s(v, "peer_x")), group);
        assert_eq!(
            b.complete(&h(s(v, "gx"))).unwrap().as_bytes(),
            &h(s(v, "shared"))[..]
        );
    }
}

fn assert_rejected(group: u16, peer: &[u8], what: &str) {
    let ke = kex::initiate(group, Policy::INSECURE).unwrap();
    match ke.complete(peer) {
        Err(Error::InvalidPublicValue { group: g, .. }) => {
            assert_eq!(Some(g), kex::group_name(group))
        }
        other => panic!("group {group}: {what} not rejected: {other:?}"),
    }
}

#[test]
fn modp_rejects_bad_peer_values() {
    let doc = load("modp/modp_python.json");
    for v in doc["vectors"].as_array().unwrap() {
        let group = v["group"].as_u64().unwrap() as u16;
        let p = h(s(v, "prime"));
        let len = p.len();
        let int = |n: u8| {
            let mut b = vec![0u8; len];
            b[len - 1] = n;
            b
        };
        let mut p_minus_1 = p.clone();
        p_minus_1[len - 1] -= 1;
        // p ends in 64 one bits, so p + 1 carries: ...ffff + 1 = ..0000 + carry.
        let mut p_plus_1 = p.clone();
        for b in p_plus_1.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        assert_rejected(group, &int(0), "0");
        assert_rejected(group, &int(1), "1");
        assert_rejected(group, &p_minus_1, "p-1");
        assert_rejected(group, &p, "p");
        assert_rejected(group, &p_plus_1, "p+1");
        assert_rejected(group, &vec![0xff; len], "2^n-1");
        assert_rejected(group, &int(2)[1..], "short value");
        assert_rejected(group, &[int(2), vec![0]].concat(), "long value");
        // 2 and p-2 are the extremes that must pass.
        let mut p_minus_2 = p.clone();
        p_minus_2[len - 1] -= 2;
        for ok in [int(2), p_minus_2] {
            kex::initiate(group, Policy::INSECURE)
                .unwrap()
                .complete(&ok)
                .unwrap();
        }
    }
}

#[test]
fn ecp_and_x25519_reject_bad_peer_values() {
    for (group, len) in [(kex::ECP_256, 64), (kex::ECP_384, 96), (kex::ECP_521, 132)] {
        assert_rejected(group, &vec![0xaa; len], "point off the curve");
        assert_rejected(group, &vec![0; len], "(0, 0)");
        assert_rejected(group, &vec![0; len - 1], "short value");
        let good = kex::initiate(group, Policy::SECURE)
            .unwrap()
            .public_value()
            .to_vec();
        assert_rejected(group, &[&[4u8][..], &good].concat(), "SEC 1 tagged point");
    }
    assert_rejected(kex::CURVE25519, &[0; 32], "u = 0 (low order)");
    let mut one = [0u8; 32];
    one[0] = 1;
    assert_rejected(kex::CURVE25519, &one, "u = 1 (low order)");
    assert_rejected(kex::CURVE25519, &[9; 31], "short value");
}

#[test]
fn mlkem_rejects_bad_lengths_and_keys() {
    for g in [kex::ML_KEM_512, kex::ML_KEM_768, kex::ML_KEM_1024] {
        let info = kex::group_info(g).unwrap();
        assert_rejected(g, &vec![0; info.responder_len - 1], "short ciphertext");
        assert!(matches!(
            kex::respond(g, &vec![0; info.initiator_len + 1], Policy::SECURE),
            Err(Error::InvalidPublicValue { .. })
        ));
        // Coefficients of 0xfff exceed q = 3329: the FIPS 203 modulus check must fail.
        assert!(matches!(
            kex::respond(g, &vec![0xff; info.initiator_len], Policy::SECURE),
            Err(Error::InvalidPublicValue { .. })
        ));
        // One coefficient of a real key raised to exactly q.
        let ek = kex::initiate(g, Policy::SECURE)
            .unwrap()
            .public_value()
            .to_vec();
        let mut bad = ek.clone();
        bad[0] = 0x01; // c0 = 0xd01 = 3329
        bad[1] = (bad[1] & 0xf0) | 0x0d;
        assert!(matches!(
            kex::respond(g, &bad, Policy::SECURE),
            Err(Error::InvalidPublicValue { .. })
        ));
        bad[0] = 0x00; // c0 = 3328 is fine
        assert!(kex::respond(g, &bad, Policy::SECURE).is_ok());
        assert!(kex::respond(g, &ek, Policy::SECURE).is_ok());
    }
}

#[test]
fn every_group_round_trips() {
    for info in kex::GROUPS {
        let i = kex::initiate(info.id, Policy::INSECURE).unwrap();
        assert_eq!(i.group(), info.id);
        assert_eq!(i.public_value().len(), info.initiator_len, "{}", info.name);
        let (ker, k_r) = kex::respond(info.id, i.public_value(), Policy::INSECURE).unwrap();
        assert_eq!(ker.len(), info.responder_len, "{}", info.name);
        let k_i = i.complete(&ker).unwrap();
        assert_eq!(k_i, k_r, "{}", info.name);
        assert_eq!(k_i.len(), info.shared_len, "{}", info.name);
        assert_eq!(kex::public_value_len(info.id), Some(info.initiator_len));
        assert_eq!(kex::is_kem(info.id), info.kind == kex::GroupKind::Kem);
    }
}

#[test]
fn legacy_groups_need_allow_insecure() {
    for g in [kex::MODP_768, kex::MODP_1024] {
        match kex::initiate(g, Policy::SECURE) {
            Err(Error::Insecure { name, why }) => {
                assert_eq!(Some(name), kex::group_name(g));
                assert!(why.contains("1536"), "{why}");
            }
            other => panic!("group {g}: {:?}", other.map(|k| k.group())),
        }
        assert!(kex::respond(g, &[0; 128], Policy::SECURE).is_err());
        assert!(kex::initiate(g, Policy::INSECURE).is_ok());
    }
    assert!(matches!(
        kex::initiate(22, Policy::INSECURE),
        Err(Error::Unsupported { kind: "KE", id: 22 })
    ));
    assert_eq!(kex::group_name(kex::ML_KEM_768), Some("ML_KEM_768"));
    assert_eq!(kex::group_name(3), None);
}

/// Wycheproof's CCTV/modulus encapsulation keys (independent of aws-lc): each
/// has a coefficient >= q and must be refused by the responder.
#[test]
fn wycheproof_mlkem_modulus_overflow() {
    let doc = load("wycheproof/mlkem_encaps_modulus_subset.json");
    let mut n = 0;
    for (bits, group) in [
        ("512", kex::ML_KEM_512),
        ("768", kex::ML_KEM_768),
        ("1024", kex::ML_KEM_1024),
    ] {
        for g in doc["files"][bits].as_array().unwrap() {
            for t in g["tests"].as_array().unwrap() {
                let got = kex::respond(group, &h(s(t, "ek")), Policy::SECURE);
                assert!(
                    matches!(got, Err(Error::InvalidPublicValue { .. })),
                    "ML-KEM-{bits} tcId {}: modulus overflow not refused",
                    t["tcId"]
                );
                n += 1;
            }
        }
    }
    assert_eq!(n, 36);
}

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Arbitrary peer data of arbitrary or exact length never panics: it is
        /// either refused with an error naming the group, or gives a secret of
        /// the group's length.
        #[test]
        fn arbitrary_peer_values(
            pick in 0usize..11,
            exact in any::<bool>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..1600),
        ) {
            let groups = [
                kex::MODP_768, kex::MODP_1536, kex::MODP_2048, kex::ECP_256, kex::ECP_384,
                kex::ECP_521, kex::CURVE25519, kex::ML_KEM_512, kex::ML_KEM_768, kex::ML_KEM_1024, kex::MODP_1024,
            ];
            let g = groups[pick];
            let info = kex::group_info(g).unwrap();
            let mut peer = bytes;
            if exact {
                peer.resize(info.responder_len, 0x5a);
            }
            match kex::initiate(g, Policy::INSECURE).unwrap().complete(&peer) {
                Ok(z) => prop_assert_eq!(z.len(), info.shared_len),
                Err(Error::InvalidPublicValue { group, .. }) => prop_assert_eq!(group, info.name),
                Err(e) => prop_assert!(false, "{}: unexpected error {e}", info.name),
            }
            let mut ek = peer.clone();
            if exact {
                ek.resize(info.initiator_len, 0x11);
            }
            if let Err(e) = kex::respond(g, &ek, Policy::INSECURE) {
                prop_assert!(matches!(e, Error::InvalidPublicValue { .. }), "{}: {e}", info.name);
            }
        }
    }
}
