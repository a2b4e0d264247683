//! Known-answer tests for key exchange, signatures and KDFs, for
//! `palisade selftest`. One published (or independently computed) vector per
//! method; the vectors live in `data.rs`, generated from the vendored files in
//! `tests/vectors/asym/`, each of which names its source.

mod data;

use crate::kat::KatResult;
use crate::kdf::{ikev1, ikev2};
use crate::kex;
use crate::sig::{self, Scheme};
use crate::{Error, Policy};

/// Hex to bytes without panicking; a malformed constant just fails its test.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Turn a fallible check into a pass/fail: any error is a failure.
fn passed(check: impl FnOnce() -> Result<bool, Error>) -> bool {
    matches!(check(), Ok(true))
}

fn bad() -> Error {
    Error::Library("known-answer test constant")
}

fn hx(s: &str) -> Result<Vec<u8>, Error> {
    unhex(s).ok_or_else(bad)
}

fn result(
    transform: String,
    kind: &'static str,
    iana_id: u16,
    ok: bool,
    source: &'static str,
) -> KatResult {
    KatResult {
        transform,
        kind,
        iana_id,
        ok,
        source,
    }
}

/// Every key exchange, signature and KDF known-answer test.
pub fn known_answer_tests() -> Vec<KatResult> {
    let mut out = Vec::new();
    kex_tests(&mut out);
    sig_tests(&mut out);
    kdf_tests(&mut out);
    out
}

fn kex_tests(out: &mut Vec<KatResult>) {
    let p = Policy::INSECURE;
    for &(group, x, peer_x, digest) in data::MODP {
        let ok = passed(|| {
            let a = kex::from_private_key(group, &hx(x)?, p)?;
            let b = kex::from_private_key(group, &hx(peer_x)?, p)?;
            let b_pub = b.public_value().to_vec();
            let z_b = b.complete(a.public_value())?;
            let z_a = a.complete(&b_pub)?;
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, z_a.as_bytes());
            Ok(z_a == z_b && d.as_ref() == hx(digest)?.as_slice())
        });
        let name = kex::group_name(group).unwrap_or("MODP");
        out.push(result(
            name.into(),
            "KE",
            group,
            ok,
            "Python pow() cross-check (tests/vectors/asym/modp)",
        ));
    }
    for &(group, i, gr, girx) in data::ECP {
        let ok = passed(|| {
            Ok(kex::from_private_key(group, &hx(i)?, p)?
                .complete(&hx(gr)?)?
                .as_bytes()
                == hx(girx)?)
        });
        let name = kex::group_name(group).unwrap_or("ECP");
        out.push(result(name.into(), "KE", group, ok, "RFC 5903 section 8"));
    }
    let (k, u, z) = data::X25519;
    let ok = passed(|| {
        Ok(kex::from_private_key(kex::CURVE25519, &hx(k)?, p)?
            .complete(&hx(u)?)?
            .as_bytes()
            == hx(z)?)
    });
    out.push(result(
        "CURVE_25519".into(),
        "KE",
        kex::CURVE25519,
        ok,
        "RFC 7748 section 5.2",
    ));
    for &(group, dk, c, k) in data::MLKEM {
        let ok = passed(|| {
            Ok(kex::from_private_key(group, &hx(dk)?, p)?
                .complete(&hx(c)?)?
                .as_bytes()
                == hx(k)?)
        });
        let name = kex::group_name(group).unwrap_or("ML_KEM");
        out.push(result(
            name.into(),
            "KE",
            group,
            ok,
            "Wycheproof mlkem semi_expanded_decaps tcId 1",
        ));
    }
}

fn scheme_by_name(name: &str) -> Option<Scheme> {
    Scheme::ALL.into_iter().find(|s| format!("{s:?}") == name)
}

fn sig_tests(out: &mut Vec<KatResult>) {
    for &(scheme, key, msg, signature, source) in data::SIG {
        let found = scheme_by_name(scheme);
        let ok = passed(|| {
            let scheme = found.ok_or_else(bad)?;
            let v = sig::verifier(scheme, &hx(key)?, Policy::SECURE)?;
            let (msg, signature) = (hx(msg)?, hx(signature)?);
            let good = v.verify(&msg, &signature).is_ok();
            // A flipped message bit must fail: a verifier that accepts all is no verifier.
            let mut other = msg.clone();
            other.push(0);
            Ok(good && v.verify(&other, &signature).is_err())
        });
        let name = found.map(Scheme::name).unwrap_or("unknown scheme");
        out.push(result(name.into(), "SIG", 0, ok, source));
    }
    let (seed, public, msg, signature) = data::ED25519;
    let ok = passed(|| {
        // PKCS#8 v1 (RFC 8410) around the raw seed.
        let pkcs8 = [hx("302e020100300506032b657004220420")?, hx(seed)?].concat();
        let signer = sig::signer_from_pkcs8(Scheme::Ed25519, &pkcs8, Policy::SECURE)?;
        let s = signer.sign(&hx(msg)?)?;
        sig::verifier(Scheme::Ed25519, &hx(public)?, Policy::SECURE)?.verify(&hx(msg)?, &s)?;
        Ok(signer.public_key() == hx(public)?.as_slice() && s == hx(signature)?)
    });
    out.push(result(
        "Ed25519".into(),
        "SIG",
        0,
        ok,
        "RFC 8032 section 7.1 TEST 2",
    ));
}

fn kdf_tests(out: &mut Vec<KatResult>) {
    let p = Policy::INSECURE;
    let (g, nonces, skeyseed, seed, keymat) = data::IKEV2_SHA256;
    let ok = passed(|| {
        let prf = crate::registry::prf(5, p)?;
        let n = hx(nonces)?;
        let s = ikev2::skeyseed(prf, &n, &[], &hx(g)?)?;
        // prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) through the KEYMAT entry point.
        let km = ikev2::child_keymat(prf, s.as_bytes(), &[], &hx(seed)?, &[], hx(keymat)?.len())?;
        Ok(s.as_bytes() == hx(skeyseed)? && km.as_bytes() == hx(keymat)?)
    });
    out.push(result(
        "IKEv2 SKEYSEED + prf+ (PRF_HMAC_SHA2_256)".into(),
        "KDF",
        5,
        ok,
        "NIST CAVP SP 800-135 via strongSwan kdf_prf*.c",
    ));

    let [ni, nr, gir, gir_new, spii, spir, skeyseed, dkm, dkm_child_dh, rekey] = data::IKEV2_SHA1;
    let ok = passed(|| {
        let prf = crate::registry::prf(2, p)?;
        let (ni, nr, gir_new) = (hx(ni)?, hx(nr)?, hx(gir_new)?);
        let spi = |s: &str| -> Result<[u8; 8], Error> { hx(s)?.try_into().map_err(|_| bad()) };
        let s = ikev2::skeyseed(prf, &ni, &nr, &hx(gir)?)?;
        let lens = ikev2::IkeKeyLengths {
            integ: 20,
            encr: 16,
        };
        let k = ikev2::ike_sa_keys(prf, s.as_bytes(), &ni, &nr, &spi(spii)?, &spi(spir)?, lens)?;
        let all: Vec<u8> = [
            &k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr,
        ]
        .iter()
        .flat_map(|x| x.as_bytes().iter().copied())
        .collect();
        let child = ikev2::child_keymat(prf, k.sk_d.as_bytes(), &[&gir_new], &ni, &nr, 132)?;
        let re = ikev2::rekey_skeyseed(prf, k.sk_d.as_bytes(), &gir_new, &ni, &nr)?;
        Ok(s.as_bytes() == hx(skeyseed)?
            && all == hx(dkm)?
            && child.as_bytes() == hx(dkm_child_dh)?
            && re.as_bytes() == hx(rekey)?)
    });
    out.push(result(
        "IKEv2 SK_*, CHILD_SA KEYMAT, rekey (PRF_HMAC_SHA1)".into(),
        "KDF",
        2,
        ok,
        "NIST CAVP SP 800-135 via libreswan programs/cavp",
    ));

    let [cky_i, cky_r, ni, nr, gxy, psk, skeyid, d, a, e] = data::IKEV1_PSK_SHA1;
    let ok = passed(|| {
        let prf = crate::registry::prf(2, p)?;
        let ck = |s: &str| -> Result<[u8; 8], Error> { hx(s)?.try_into().map_err(|_| bad()) };
        let id = ikev1::skeyid_psk(prf, &hx(psk)?, &hx(ni)?, &hx(nr)?)?;
        let set = ikev1::skeyid_set(prf, id.as_bytes(), &hx(gxy)?, &ck(cky_i)?, &ck(cky_r)?)?;
        Ok(id.as_bytes() == hx(skeyid)?
            && set.d.as_bytes() == hx(d)?
            && set.a.as_bytes() == hx(a)?
            && set.e.as_bytes() == hx(e)?)
    });
    out.push(result(
        "IKEv1 SKEYID (PSK) and SKEYID_d/a/e (HMAC-SHA1)".into(),
        "KDF",
        2,
        ok,
        "NIST CAVP SP 800-135 via libreswan programs/cavp",
    ));

    let [cky_i, cky_r, ni, nr, gxy, skeyid, d, a, e] = data::IKEV1_SIG_SHA1;
    let ok = passed(|| {
        let prf = crate::registry::prf(2, p)?;
        let ck = |s: &str| -> Result<[u8; 8], Error> { hx(s)?.try_into().map_err(|_| bad()) };
        let id = ikev1::skeyid_sig(prf, &hx(ni)?, &hx(nr)?, &hx(gxy)?)?;
        let set = ikev1::skeyid_set(prf, id.as_bytes(), &hx(gxy)?, &ck(cky_i)?, &ck(cky_r)?)?;
        Ok(id.as_bytes() == hx(skeyid)?
            && set.d.as_bytes() == hx(d)?
            && set.a.as_bytes() == hx(a)?
            && set.e.as_bytes() == hx(e)?)
    });
    out.push(result(
        "IKEv1 SKEYID (signatures) and SKEYID_d/a/e (HMAC-SHA1)".into(),
        "KDF",
        2,
        ok,
        "NIST CAVP SP 800-135 via libreswan programs/cavp",
    ));
}
