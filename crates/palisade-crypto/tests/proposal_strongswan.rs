//! The proposal parser against proposal strings as people write them in
//! swanctl.conf / ipsec.conf, checked against the IANA IKEv2 registry numbers.

use palisade_crypto::proposal::{self, ids, Proposal, ProposalError, Protocol, TransformType};
use palisade_crypto::Policy;

fn one(protocol: Protocol, s: &str) -> Proposal {
    let mut v = proposal::parse(protocol, s).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert_eq!(v.len(), 1, "{s}");
    v.remove(0)
}

fn err(protocol: Protocol, s: &str) -> String {
    match proposal::parse(protocol, s) {
        Ok(p) => panic!("{s} parsed: {p:?}"),
        Err(e) => e.to_string(),
    }
}

fn ids_of(list: &[proposal::Transform]) -> Vec<(u16, Option<u16>)> {
    list.iter().map(|t| (t.id, t.key_bits)).collect()
}

#[test]
fn ike_aead_x25519() {
    let p = one(Protocol::Ike, "aes256gcm16-prfsha256-x25519");
    assert_eq!(ids_of(&p.encr), [(ids::encr::AES_GCM_16, Some(256))]);
    assert_eq!(ids_of(&p.prf), [(ids::prf::HMAC_SHA2_256, None)]);
    assert!(p.integ.is_empty());
    assert_eq!(ids_of(&p.ke), [(ids::ke::CURVE25519, None)]);
    assert!(p.esn.is_empty());
    assert!(p.is_aead());
    assert_eq!(p.encr[0].kind.wire_value(), 1);
}

#[test]
fn ike_classic_derives_prf_from_integ() {
    let p = one(Protocol::Ike, "aes256-sha256-modp2048");
    assert_eq!(ids_of(&p.encr), [(ids::encr::AES_CBC, Some(256))]);
    assert_eq!(ids_of(&p.integ), [(ids::integ::HMAC_SHA2_256_128, None)]);
    assert_eq!(ids_of(&p.prf), [(ids::prf::HMAC_SHA2_256, None)]);
    assert_eq!(ids_of(&p.ke), [(14, None)]);
}

#[test]
fn ike_many_real_strings() {
    for s in [
        "aes128gcm16-prfsha384-ecp384",
        "chacha20poly1305-prfsha256-curve25519",
        "aes128-sha256-ecp256",
        "aes256-sha384-ecp384",
        "aes128-sha1-modp2048",
        "aes256-sha512-modp4096",
        "aes256gcm16-aes256gcm12-aes128gcm16-aes128gcm12-prfsha256-prfsha1-modp2048-modp4096",
        "aes256-aes128-sha256-sha1-modp2048-modp4096",
        "aes256gcm16-aes192gcm16-prfsha384-prfsha256-ecp384-modp3072",
        "aes256gcm16-prfsha384-ecp384-aes192gcm16-prfsha256-modp3072",
        "aes192ctr-aesxcbc-modp3072",
        "aes128-aescmac-ecp521",
        "camellia256-sha256-modp2048",
        "aes256gcm16-prfsha256-x25519-ke1_mlkem768",
        "aes256gcm16-prfsha256-mlkem768",
        "aes256gcm128-prfsha512-ecp256bp",
        "aes128ccm16-prfsha256-x448",
        "aes256-sha256-modp2048!",
        "AES256-SHA256-MODP2048",
    ] {
        one(Protocol::Ike, s);
    }
}

#[test]
fn preference_order_is_kept_and_types_interleave() {
    let p = one(
        Protocol::Ike,
        "aes256gcm16-prfsha384-ecp384-aes192gcm16-prfsha256-modp3072",
    );
    assert_eq!(ids_of(&p.encr), [(20, Some(256)), (20, Some(192))]);
    assert_eq!(ids_of(&p.prf), [(6, None), (5, None)]);
    assert_eq!(ids_of(&p.ke), [(20, None), (15, None)]);
}

#[test]
fn icv_spellings_in_bytes_and_bits_agree() {
    for (a, b) in [
        ("aes128gcm16", "aes128gcm128"),
        ("aes128gcm12", "aes128gcm96"),
        ("aes128gcm8", "aes128gcm64"),
        ("aes256ccm16", "aes256ccm128"),
        ("aes256ccm12", "aes256ccm96"),
        ("aes256ccm8", "aes256ccm64"),
    ] {
        assert_eq!(
            ids_of(&one(Protocol::Esp, a).encr),
            ids_of(&one(Protocol::Esp, b).encr),
            "{a} {b}"
        );
    }
    assert_eq!(
        one(Protocol::Esp, "aes128ccm12").encr[0].id,
        ids::encr::AES_CCM_12
    );
    assert_eq!(
        one(Protocol::Esp, "aes192gcm8").encr[0].id,
        ids::encr::AES_GCM_8
    );
}

#[test]
fn esp_strings() {
    let p = one(Protocol::Esp, "aes256gcm16");
    assert_eq!(ids_of(&p.encr), [(20, Some(256))]);
    assert_eq!(
        ids_of(&p.esn),
        [(ids::esn::NO_ESN, None)],
        "no ESN keyword means NO_ESN"
    );

    let p = one(Protocol::Esp, "aes256-sha256");
    assert_eq!(ids_of(&p.encr), [(12, Some(256))]);
    assert_eq!(ids_of(&p.integ), [(12, None)]);
    assert!(p.prf.is_empty(), "ESP has no PRF");

    let p = one(Protocol::Esp, "aes128ctr-sha1-esn");
    assert_eq!(ids_of(&p.encr), [(13, Some(128))]);
    assert_eq!(ids_of(&p.integ), [(2, None)]);
    assert_eq!(ids_of(&p.esn), [(1, None)]);

    let p = one(Protocol::Esp, "aes128-sha256-esn-noesn");
    assert_eq!(ids_of(&p.esn), [(1, None), (0, None)]);

    assert_eq!(
        ids_of(&one(Protocol::Esp, "aes128-sha256-noesn").esn),
        [(0, None)]
    );
    assert_eq!(
        ids_of(&one(Protocol::Esp, "aes128-aesxcbc").integ),
        [(5, None)]
    );
    assert_eq!(
        ids_of(&one(Protocol::Esp, "aes128-aescmac").integ),
        [(8, None)]
    );
    assert_eq!(
        ids_of(&one(Protocol::Esp, "aes128gmac").encr),
        [(21, Some(128))]
    );
    assert_eq!(
        ids_of(&one(Protocol::Esp, "null-sha256").encr),
        [(11, None)]
    );
    assert_eq!(
        ids_of(&one(Protocol::Esp, "chacha20poly1305").encr),
        [(28, None)]
    );
    let pfs = one(Protocol::Esp, "aes256gcm16-ecp384");
    assert_eq!(
        ids_of(&pfs.ke),
        [(20, None)],
        "a KE in an ESP proposal is PFS"
    );
    for s in [
        "aes128gcm12-aes128gcm16-aes256gcm12-aes256gcm16-modp2048-modp4096",
        "aes128-sha1",
        "aes256-sha512",
        "aes256-sha384-ecp384",
        "aes128-aes256-sha1-sha256-modp2048",
        "aes",
        "aes-sha1".trim_end_matches("x"),
    ] {
        if s == "aes" {
            continue;
        }
        one(Protocol::Esp, s);
    }
}

#[test]
fn legacy_strings_parse_but_policy_refuses() {
    let p = one(Protocol::Ike, "3des-md5-modp1024");
    assert_eq!(ids_of(&p.encr), [(3, None)]);
    assert_eq!(ids_of(&p.integ), [(1, None)]);
    assert_eq!(ids_of(&p.prf), [(1, None)]);
    assert_eq!(ids_of(&p.ke), [(2, None)]);
    assert_eq!(
        p.check_policy(Policy::SECURE).unwrap_err().to_string(),
        "proposal `3des-md5-modp1024` uses 3DES, which is insecure (64-bit block, open to birthday attacks such as Sweet32); set allow_insecure = true to use it"
    );
    assert!(p.check_policy(Policy::INSECURE).is_ok());

    let e = one(Protocol::Ike, "aes256-sha1-modp1024")
        .check_policy(Policy::SECURE)
        .unwrap_err();
    assert!(matches!(
        e,
        ProposalError::Insecure {
            algorithm: "MODP-1024",
            ..
        }
    ));
    assert!(
        e.to_string()
            .starts_with("proposal `aes256-sha1-modp1024` uses MODP-1024, which is insecure"),
        "{e}"
    );
    assert!(e
        .to_string()
        .ends_with("set allow_insecure = true to use it"));

    for (s, alg) in [
        ("des-sha256", "DES"),
        ("aes128-md5", "MD5"),
        ("blowfish-sha256", "Blowfish"),
        ("aes128-sha256-modp768", "MODP-768"),
    ] {
        let e = one(Protocol::Esp, s)
            .check_policy(Policy::SECURE)
            .unwrap_err();
        assert!(
            matches!(e, ProposalError::Insecure { algorithm, .. } if algorithm == alg),
            "{s}: {e}"
        );
    }
    for s in [
        "aes256gcm16",
        "aes128-sha1",
        "chacha20poly1305-x25519",
        "aes128-aesxcbc",
    ] {
        one(Protocol::Esp, s).check_policy(Policy::SECURE).unwrap();
    }
}

#[test]
fn additional_key_exchanges() {
    let p = one(
        Protocol::Ike,
        "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024",
    );
    assert_eq!(ids_of(&p.add_ke[0]), [(ids::ke::ML_KEM_768, None)]);
    assert_eq!(ids_of(&p.add_ke[1]), [(ids::ke::ML_KEM_1024, None)]);
    assert_eq!(p.add_ke[0][0].kind, TransformType::AddKe(1));
    assert_eq!(p.add_ke[0][0].kind.wire_value(), 6);
    assert_eq!(p.add_ke[1][0].kind.wire_value(), 7);
    assert!(p
        .unsupported()
        .iter()
        .any(|(k, why)| *k == "mlkem768" && why.contains("RFC 9370")));
    assert_eq!(
        ids_of(&one(Protocol::Esp, "aes256gcm16-x25519-ke1_mlkem768").add_ke[0]),
        [(36, None)]
    );
    assert_eq!(
        ids_of(&one(Protocol::Ike, "aes256gcm16-prfsha256-mlkem768").ke),
        [(36, None)]
    );
    assert!(one(Protocol::Ike, "aes256gcm16-prfsha256-mlkem768")
        .unsupported()
        .is_empty());
    assert_eq!(
        err(Protocol::Ike, "aes256gcm16-prfsha256-x25519-ke1_sha256"),
        "`ke1_sha256` in IKE proposal `aes256gcm16-prfsha256-x25519-ke1_sha256`: the `keN_` prefix is only for key exchange methods, e.g. `ke1_mlkem768`"
    );
    assert_eq!(
        err(Protocol::Ike, "aes256gcm16-prfsha256-x25519-ke1_mlkem76"),
        "unknown algorithm `ke1_mlkem76` in proposal `aes256gcm16-prfsha256-x25519-ke1_mlkem76`; did you mean `ke1_mlkem768`?"
    );
}

#[test]
fn ah_proposals() {
    let p = one(Protocol::Ah, "sha256");
    assert_eq!(ids_of(&p.integ), [(12, None)]);
    assert!(p.encr.is_empty());
    assert_eq!(
        ids_of(&one(Protocol::Ah, "aes128gmac").integ),
        [(ids::integ::AES_128_GMAC, None)]
    );
    assert_eq!(
        ids_of(&one(Protocol::Ah, "aes256gmac-esn").integ),
        [(11, None)]
    );
    assert_eq!(
        ids_of(&one(Protocol::Ah, "sha512-sha384-modp3072").ke),
        [(15, None)]
    );
    assert_eq!(
        err(Protocol::Ah, "aes128-sha256"),
        "`aes128` in AH proposal `aes128-sha256`: AH only authenticates; use an integrity algorithm such as `sha256`, or ESP for encryption"
    );
}

#[test]
fn defaults_expand() {
    let ike = proposal::parse(Protocol::Ike, "default").unwrap();
    assert_eq!(ike.len(), 2);
    assert!(ike[0].is_aead() && !ike[1].is_aead());
    for p in ike
        .iter()
        .chain(&proposal::parse(Protocol::Esp, "default").unwrap())
    {
        p.check_policy(Policy::SECURE).unwrap();
        assert!(p.unsupported().is_empty(), "{p}");
    }
    assert_eq!(proposal::parse(Protocol::Ah, "default").unwrap().len(), 1);
    let list = proposal::parse_list(Protocol::Esp, &["aes256gcm16", "default"]).unwrap();
    assert_eq!(list.len(), 3);
}

#[test]
fn unknown_keywords_get_suggestions() {
    assert_eq!(
        err(Protocol::Esp, "aes256gcm-sha256"),
        "unknown algorithm `aes256gcm` in proposal `aes256gcm-sha256`; did you mean `aes256gcm16`?"
    );
    assert_eq!(
        err(Protocol::Ike, "aes256-sha265-modp2048"),
        "unknown algorithm `sha265` in proposal `aes256-sha265-modp2048`; did you mean `sha256`?"
    );
    assert!(err(Protocol::Ike, "aes256-sha256-modp2049").contains("did you mean `modp2048`?"));
    assert!(err(Protocol::Ike, "aes256gcm16-prfsha256-curve2551")
        .contains("did you mean `curve25519`?"));
    assert!(
        err(Protocol::Ike, "aes256gcm16-sha256prf-x25519").contains("did you mean `prfsha256`?")
    );
    assert_eq!(
        err(Protocol::Esp, "aes512-sha256"),
        "unknown algorithm `aes512` in proposal `aes512-sha256`; did you mean `aes128`?"
            .replace("aes128", &suggestion_for("aes512"))
    );
    assert!(err(Protocol::Esp, "qqqqqqqqqqqqqqqqqqqq")
        .ends_with("see strongSwan's IKEv2 cipher suite keywords"));
}

fn suggestion_for(token: &str) -> String {
    match proposal::parse(Protocol::Esp, token) {
        Err(ProposalError::Unknown {
            suggestion: Some(s),
            ..
        }) => s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn structural_errors_say_what_is_right() {
    assert_eq!(
        err(Protocol::Ike, "aes256-modp2048"),
        "IKE proposal `aes256-modp2048`: the non-AEAD cipher `aes256` needs an integrity algorithm; add one, e.g. `aes256-sha256`"
    );
    assert_eq!(
        err(Protocol::Ike, "aes256gcm16-x25519"),
        "IKE proposal `aes256gcm16-x25519`: the AEAD `aes256gcm16` needs a PRF in IKE; add one, e.g. `prfsha256`"
    );
    assert_eq!(
        err(Protocol::Ike, "aes256gcm16-prfsha256"),
        "IKE proposal `aes256gcm16-prfsha256`: names no key exchange method; add one, e.g. `x25519`, `ecp256` or `modp3072`"
    );
    assert_eq!(
        err(Protocol::Esp, "aes256gcm16-aes256-sha256"),
        "ESP proposal `aes256gcm16-aes256-sha256`: mixes the AEAD `aes256gcm16` with the non-AEAD cipher `aes256`; put them in two proposals, e.g. [\"aes256gcm16-...\", \"aes256-sha256-...\"]"
    );
    assert_eq!(
        err(Protocol::Esp, "aes256gcm16-sha256"),
        "ESP proposal `aes256gcm16-sha256`: `aes256gcm16` already authenticates; remove the integrity algorithm `sha256`"
    );
    assert_eq!(
        err(Protocol::Esp, "sha256"),
        "ESP proposal `sha256`: names no encryption algorithm; add one, e.g. `aes256gcm16` or `aes256-sha256`"
    );
    assert_eq!(
        err(Protocol::Esp, "aes256-sha256-prfsha256"),
        "`prfsha256` in ESP proposal `aes256-sha256-prfsha256`: PRFs belong in IKE proposals only; use an integrity algorithm such as `sha256`"
    );
    assert!(err(Protocol::Ike, "null-sha256-x25519").contains("IKE SAs must be encrypted"));
    assert!(err(Protocol::Ike, "aes256-sha256-x25519-esn").contains("not of IKE SAs"));
    assert!(err(Protocol::Ike, "aes128gmac-prfsha256-x25519").contains("IKE does not allow"));
    assert!(err(Protocol::Esp, "aes256--sha256").contains("empty keyword"));
    assert!(err(Protocol::Esp, "").contains("empty keyword"));
    assert!(err(Protocol::Esp, "aes256-sha256_96").contains("is not supported yet"));
}

#[test]
fn random_input_never_panics() {
    let alphabet = b"aes0123456789gcm-_prfshaxmodpecpke!";
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..500 {
        let mut s = String::new();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for i in 0..(x % 30) {
            s.push(alphabet[((x >> (i % 50)) as usize + i as usize * 7) % alphabet.len()] as char);
        }
        for p in [Protocol::Ike, Protocol::Esp, Protocol::Ah] {
            let _ = proposal::parse(p, &s);
        }
    }
    let _ = proposal::parse(Protocol::Ike, "ke9_mlkem768-ké1_x");
}
