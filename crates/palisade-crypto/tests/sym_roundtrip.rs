//! Property tests: for random keys, IVs, AAD and payloads, every ENCR transform
//! opens what it sealed, refuses a single flipped bit, and the truncated GCM ICVs
//! are prefixes of the full one; INTEG results do not depend on how the input is
//! split into parts. AES-GCM-16, which runs on ring, is checked against
//! aws-lc-rs's AES-GCM byte for byte.

use palisade_crypto::registry::{self, encr, integ_id};
use palisade_crypto::{Error, Policy};
use proptest::prelude::*;

const AEADS: &[(u16, Option<u16>)] = &[
    (encr::AES_GCM_16, Some(128)),
    (encr::AES_GCM_12, Some(192)),
    (encr::AES_GCM_8, Some(256)),
    (encr::AES_CCM_16, Some(256)),
    (encr::AES_CCM_12, Some(128)),
    (encr::AES_CCM_8, Some(192)),
    (encr::NULL_AUTH_AES_GMAC, Some(128)),
    (encr::CHACHA20_POLY1305, None),
];

const INTEGS: &[u16] = &[
    integ_id::HMAC_MD5_96,
    integ_id::HMAC_SHA1_96,
    integ_id::AES_XCBC_96,
    integ_id::AES_CMAC_96,
    integ_id::HMAC_SHA2_256_128,
    integ_id::HMAC_SHA2_384_192,
    integ_id::HMAC_SHA2_512_256,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Sizes up to 3000 bytes cover ring's bulk loops (several 128- and
    /// 256-byte strides) and every tail length.
    #[test]
    fn gcm16_matches_aws_lc(bits in prop_oneof![Just(128u16), Just(256)], key in any::<[u8; 36]>(),
                            iv in any::<[u8; 8]>(), aad in proptest::collection::vec(any::<u8>(), 0..24),
                            pt in proptest::collection::vec(any::<u8>(), 0..3000)) {
        use aws_lc_rs::aead as lc;
        let klen = bits as usize / 8;
        let keymat = [&key[..klen], &key[32..]].concat();
        let a = registry::aead(encr::AES_GCM_16, Some(bits), &keymat, Policy::SECURE).unwrap();
        let mut ours = pt.clone();
        let mut icv = [0u8; 16];
        a.seal_in_place_detached(&iv, &aad, &mut ours, &mut icv).unwrap();
        let alg = if bits == 128 { &lc::AES_128_GCM } else { &lc::AES_256_GCM };
        let other = lc::LessSafeKey::new(lc::UnboundKey::new(alg, &key[..klen]).unwrap());
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&key[32..]);
        nonce[4..].copy_from_slice(&iv);
        let mut theirs = pt.clone();
        let tag = other.seal_in_place_separate_tag(lc::Nonce::assume_unique_for_key(nonce),
                                                   lc::Aad::from(&aad[..]), &mut theirs).unwrap();
        prop_assert_eq!(&ours, &theirs);
        prop_assert_eq!(&icv[..], tag.as_ref());
        // And ring opens what aws-lc-rs sealed.
        a.open_in_place_detached(&iv, &aad, &mut theirs, tag.as_ref()).unwrap();
        prop_assert_eq!(&theirs, &pt);
    }

    #[test]
    fn aead_round_trip_and_tamper(which in 0..AEADS.len(), seed in any::<u8>(), iv in any::<[u8; 8]>(),
                                  aad in proptest::collection::vec(any::<u8>(), 0..40),
                                  pt in proptest::collection::vec(any::<u8>(), 0..300), flip in any::<usize>()) {
        let (id, bits) = AEADS[which];
        let info = registry::encr_info(id, bits).unwrap();
        let keymat: Vec<u8> = (0..info.keymat_len).map(|i| seed.wrapping_add(i as u8)).collect();
        let a = registry::aead(id, bits, &keymat, Policy::SECURE).unwrap();
        let mut buf = pt.clone();
        let mut icv = vec![0u8; a.icv_len()];
        a.seal_in_place_detached(&iv, &aad, &mut buf, &mut icv).unwrap();
        let sealed = buf.clone();
        a.open_in_place_detached(&iv, &aad, &mut buf, &icv).unwrap();
        prop_assert_eq!(&buf, &pt);
        // Flip one bit anywhere in ciphertext | ICV | AAD: must be refused.
        let total = sealed.len() + icv.len() + aad.len();
        let at = flip % total;
        let (mut c, mut t, mut d) = (sealed.clone(), icv.clone(), aad.clone());
        if at < c.len() { c[at] ^= 1 } else if at < c.len() + t.len() { t[at - c.len()] ^= 1 } else { d[at - c.len() - t.len()] ^= 1 }
        prop_assert_eq!(a.open_in_place_detached(&iv, &d, &mut c, &t), Err(Error::IntegrityCheckFailed));
    }

    #[test]
    fn truncated_gcm_is_a_prefix_of_gcm16(bits in prop_oneof![Just(128u16), Just(192), Just(256)], iv in any::<[u8; 8]>(),
                                          aad in proptest::collection::vec(any::<u8>(), 0..40),
                                          pt in proptest::collection::vec(any::<u8>(), 0..200)) {
        let keymat = vec![0x33u8; bits as usize / 8 + 4];
        let mut full = pt.clone();
        let mut full_icv = [0u8; 16];
        registry::aead(encr::AES_GCM_16, Some(bits), &keymat, Policy::SECURE).unwrap()
            .seal_in_place_detached(&iv, &aad, &mut full, &mut full_icv).unwrap();
        for (id, n) in [(encr::AES_GCM_12, 12), (encr::AES_GCM_8, 8)] {
            let a = registry::aead(id, Some(bits), &keymat, Policy::SECURE).unwrap();
            let mut buf = pt.clone();
            let mut icv = vec![0u8; n];
            a.seal_in_place_detached(&iv, &aad, &mut buf, &mut icv).unwrap();
            prop_assert_eq!(&buf, &full);
            prop_assert_eq!(&icv[..], &full_icv[..n]);
            // The truncated open path (own GHASH + CTR) must accept the
            // full-tag seal's ciphertext.
            a.open_in_place_detached(&iv, &aad, &mut buf, &full_icv[..n]).unwrap();
            prop_assert_eq!(&buf, &pt);
        }
    }

    #[test]
    fn cipher_round_trip(which in 0..5usize, seed in any::<u8>(), blocks in 0..40usize, extra in 0..16usize) {
        let (id, bits) = [(encr::AES_CBC, Some(128u16)), (encr::AES_CBC, Some(256)), (encr::AES_CTR, Some(192)),
                          (encr::TRIPLE_DES, None), (encr::NULL, None)][which];
        let info = registry::encr_info(id, bits).unwrap();
        // Distinct bytes so 3DES's three subkeys differ.
        let keymat: Vec<u8> = (0..info.keymat_len).map(|i| seed ^ (i as u8).wrapping_mul(29)).collect();
        let c = registry::cipher(id, bits, &keymat, Policy::INSECURE).unwrap();
        let len = blocks * c.block_size() + if c.block_size() == 1 { extra } else { 0 };
        let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let iv = vec![seed; c.iv_len()];
        let mut buf = pt.clone();
        c.encrypt_in_place(&iv, &mut buf).unwrap();
        if id != encr::NULL && len >= 8 { prop_assert_ne!(&buf, &pt); }
        c.decrypt_in_place(&iv, &mut buf).unwrap();
        prop_assert_eq!(buf, pt);
    }

    #[test]
    fn integ_parts_do_not_matter(which in 0..INTEGS.len(), data in proptest::collection::vec(any::<u8>(), 0..200),
                                 cut1 in any::<usize>(), cut2 in any::<usize>()) {
        let id = INTEGS[which];
        let key = vec![0x5cu8; registry::integ_sizes(id).unwrap().key_len];
        let i = registry::integ(id, &key, Policy::INSECURE).unwrap();
        let mut whole = vec![0u8; i.icv_len()];
        i.compute(&[&data], &mut whole).unwrap();
        let a = cut1 % (data.len() + 1);
        let b = a + cut2 % (data.len() - a + 1);
        let mut parts = vec![0u8; i.icv_len()];
        i.compute(&[&data[..a], &[], &data[a..b], &data[b..]], &mut parts).unwrap();
        prop_assert_eq!(&whole, &parts);
        i.verify(&[&data[..a], &data[a..]], &whole).unwrap();
    }
}
