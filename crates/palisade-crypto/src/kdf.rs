//! Key derivation for IKEv2 (RFC 7296 sections 2.14, 2.17, 2.18; RFC 9370) and
//! IKEv1 (RFC 2409 section 5 and Appendix B).
//!
//! Everything is written against `&dyn Prf`, so the negotiated PRF (IKEv2) or the
//! HMAC of the negotiated hash (IKEv1) plugs in unchanged. All outputs are
//! [`Secret`]s. Inputs that come from the peer (nonces, SPIs) are public; the
//! DH/KEM shared secrets, PSKs and derived keys are passed as slices and never
//! copied outside a `Secret` or a zeroizing buffer.

use zeroize::Zeroizing;

use crate::prf::{prf_plus, Prf};
use crate::{Error, Secret};

/// One PRF call into a fresh `Secret` of `prf.output_len()` bytes.
fn prf_secret(prf: &dyn Prf, key: &[u8], data: &[&[u8]]) -> Result<Secret, Error> {
    let mut out = Secret::zeroed(prf.output_len());
    prf.compute(key, data, out.as_mut_bytes())?;
    Ok(out)
}

/// Cut consecutive pieces of the given lengths out of `keymat`.
fn split(keymat: &Secret, lens: &[usize]) -> Vec<Secret> {
    let mut at = 0;
    lens.iter()
        .map(|&n| {
            let piece = Secret::from_slice(&keymat.as_bytes()[at..at + n]);
            at += n;
            piece
        })
        .collect()
}

/// IKEv2 key derivation (RFC 7296).
pub mod ikev2 {
    use super::*;

    /// RFC 7296 2.14: "If the negotiated PRF takes a fixed-length key and the
    /// lengths of Ni and Nr do not add up to that length, half the bits must come
    /// from Ni and half from Nr, taking the first bits of each." The PRFs that
    /// do so are AES-XCBC-PRF-128 and AES-CMAC-PRF-128 (128-bit keys, so 64 bits
    /// of each nonce); every HMAC PRF takes Ni | Nr whole.
    pub fn prf_takes_fixed_key(prf: &dyn Prf) -> bool {
        matches!(prf.name(), "PRF_AES128_XCBC" | "PRF_AES128_CMAC")
    }

    /// SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 2.14), with the fixed-key rule
    /// of [`prf_takes_fixed_key`]. `g_ir` is the DH or KEM shared secret
    /// (MODP values already zero-padded to the prime length).
    pub fn skeyseed(prf: &dyn Prf, ni: &[u8], nr: &[u8], g_ir: &[u8]) -> Result<Secret, Error> {
        let key_len = prf.key_len();
        if prf_takes_fixed_key(prf) && ni.len() + nr.len() != key_len {
            let half = key_len / 2;
            let (Some(ni_half), Some(nr_half)) = (ni.get(..half), nr.get(..key_len - half)) else {
                return Err(Error::DataLength {
                    name: "SKEYSEED",
                    got: ni.len().min(nr.len()),
                    why: "a nonce is shorter than half the PRF's fixed key (RFC 7296 2.14)",
                });
            };
            let key = Zeroizing::new([ni_half, nr_half].concat());
            return prf_secret(prf, &key, &[g_ir]);
        }
        let key = Zeroizing::new([ni, nr].concat());
        prf_secret(prf, &key, &[g_ir])
    }

    /// SKEYSEED for a rekeyed IKE SA (RFC 7296 2.18):
    /// `prf(SK_d (old), g^ir (new) | Ni | Nr)` with the new exchange's nonces.
    /// The same formula chains RFC 9370 additional key exchanges:
    /// `SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)`.
    pub fn rekey_skeyseed(
        prf: &dyn Prf,
        sk_d_old: &[u8],
        g_ir_new: &[u8],
        ni: &[u8],
        nr: &[u8],
    ) -> Result<Secret, Error> {
        prf_secret(prf, sk_d_old, &[g_ir_new, ni, nr])
    }

    /// Key sizes of the negotiated IKE SA transforms, in bytes. SK_d, SK_pi and
    /// SK_pr take the PRF's preferred key length (RFC 7296 2.14).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct IkeKeyLengths {
        /// SK_ai / SK_ar: the integrity key length; 0 with an AEAD.
        pub integ: usize,
        /// SK_ei / SK_er: the cipher key length including any salt
        /// (e.g. 36 for AES-256-GCM: 32 + 4, RFC 5282).
        pub encr: usize,
    }

    /// The seven IKE SA keys, in the order prf+ produces them.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct IkeSaKeys {
        pub sk_d: Secret,
        pub sk_ai: Secret,
        pub sk_ar: Secret,
        pub sk_ei: Secret,
        pub sk_er: Secret,
        pub sk_pi: Secret,
        pub sk_pr: Secret,
    }

    /// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
    ///   = prf+ (SKEYSEED, Ni | Nr | SPIi | SPIr)   (RFC 7296 2.14)
    pub fn ike_sa_keys(
        prf: &dyn Prf,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
        lens: IkeKeyLengths,
    ) -> Result<IkeSaKeys, Error> {
        let p = prf.key_len();
        let sizes = [p, lens.integ, lens.integ, lens.encr, lens.encr, p, p];
        let mut keymat = Secret::zeroed(sizes.iter().sum());
        prf_plus(
            prf,
            skeyseed,
            &[ni, nr, spi_i, spi_r],
            keymat.as_mut_bytes(),
        )?;
        let mut k = split(&keymat, &sizes).into_iter();
        let mut next = || k.next().unwrap_or_default();
        Ok(IkeSaKeys {
            sk_d: next(),
            sk_ai: next(),
            sk_ar: next(),
            sk_ei: next(),
            sk_er: next(),
            sk_pi: next(),
            sk_pr: next(),
        })
    }

    /// CHILD_SA KEYMAT (RFC 7296 2.17):
    /// `prf+(SK_d, Ni | Nr)`, or with PFS `prf+(SK_d, g^ir (new) | Ni | Nr)`.
    /// `new_shared` holds the new exchange's shared secrets in order: empty
    /// without PFS, one for plain PFS, and for RFC 9370 additional key exchanges
    /// `g^ir (new) | SK(1) | ... | SK(n)`.
    pub fn child_keymat(
        prf: &dyn Prf,
        sk_d: &[u8],
        new_shared: &[&[u8]],
        ni: &[u8],
        nr: &[u8],
        len: usize,
    ) -> Result<Secret, Error> {
        let mut seed: Vec<&[u8]> = new_shared.to_vec();
        seed.push(ni);
        seed.push(nr);
        let mut keymat = Secret::zeroed(len);
        prf_plus(prf, sk_d, &seed, keymat.as_mut_bytes())?;
        Ok(keymat)
    }

    /// The four keys of a CHILD_SA pair.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ChildSaKeys {
        /// Initiator-to-responder encryption key (with salt, if any).
        pub encr_i: Secret,
        pub integ_i: Secret,
        /// Responder-to-initiator encryption key.
        pub encr_r: Secret,
        pub integ_r: Secret,
    }

    /// Split CHILD_SA KEYMAT as RFC 7296 2.17 says: initiator-to-responder keys
    /// first, and within a direction the encryption key before the integrity key.
    pub fn child_sa_keys(
        prf: &dyn Prf,
        sk_d: &[u8],
        new_shared: &[&[u8]],
        ni: &[u8],
        nr: &[u8],
        encr_len: usize,
        integ_len: usize,
    ) -> Result<ChildSaKeys, Error> {
        let keymat = child_keymat(prf, sk_d, new_shared, ni, nr, 2 * (encr_len + integ_len))?;
        let mut k = split(&keymat, &[encr_len, integ_len, encr_len, integ_len]).into_iter();
        let mut next = || k.next().unwrap_or_default();
        Ok(ChildSaKeys {
            encr_i: next(),
            integ_i: next(),
            encr_r: next(),
            integ_r: next(),
        })
    }
}

/// IKEv1 key derivation (RFC 2409 section 5, Appendix B).
pub mod ikev1 {
    use super::*;

    /// SKEYID for signature authentication: `prf(Ni_b | Nr_b, g^xy)`.
    pub fn skeyid_sig(
        prf: &dyn Prf,
        ni_b: &[u8],
        nr_b: &[u8],
        g_xy: &[u8],
    ) -> Result<Secret, Error> {
        let key = Zeroizing::new([ni_b, nr_b].concat());
        prf_secret(prf, &key, &[g_xy])
    }

    /// SKEYID for pre-shared-key authentication: `prf(pre-shared-key, Ni_b | Nr_b)`.
    pub fn skeyid_psk(
        prf: &dyn Prf,
        psk: &[u8],
        ni_b: &[u8],
        nr_b: &[u8],
    ) -> Result<Secret, Error> {
        prf_secret(prf, psk, &[ni_b, nr_b])
    }

    /// SKEYID for public key encryption authentication (both the original and
    /// the revised mode): `prf(hash(Ni_b | Nr_b), CKY-I | CKY-R)`.
    pub fn skeyid_pke(
        prf: &dyn Prf,
        hash: Hash,
        ni_b: &[u8],
        nr_b: &[u8],
        cky_i: &[u8; 8],
        cky_r: &[u8; 8],
    ) -> Result<Secret, Error> {
        let key = Zeroizing::new(hash.digest(&[ni_b, nr_b]));
        prf_secret(prf, &key, &[cky_i, cky_r])
    }

    /// SKEYID_d, SKEYID_a, SKEYID_e.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SkeyidSet {
        pub d: Secret,
        pub a: Secret,
        pub e: Secret,
    }

    /// RFC 2409 section 5:
    /// ```text
    /// SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
    /// SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
    /// SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
    /// ```
    pub fn skeyid_set(
        prf: &dyn Prf,
        skeyid: &[u8],
        g_xy: &[u8],
        cky_i: &[u8; 8],
        cky_r: &[u8; 8],
    ) -> Result<SkeyidSet, Error> {
        let d = prf_secret(prf, skeyid, &[g_xy, cky_i, cky_r, &[0]])?;
        let a = prf_secret(prf, skeyid, &[d.as_bytes(), g_xy, cky_i, cky_r, &[1]])?;
        let e = prf_secret(prf, skeyid, &[a.as_bytes(), g_xy, cky_i, cky_r, &[2]])?;
        Ok(SkeyidSet { d, a, e })
    }

    /// The phase-1 encryption key from SKEYID_e (RFC 2409 Appendix B): the
    /// leading bytes of SKEYID_e when it is long enough, otherwise of
    /// `K1 | K2 | ...` with `K1 = prf(SKEYID_e, 0)` (one zero octet) and
    /// `Kn = prf(SKEYID_e, Kn-1)`.
    pub fn encryption_key(prf: &dyn Prf, skeyid_e: &[u8], key_len: usize) -> Result<Secret, Error> {
        if skeyid_e.len() >= key_len {
            return Ok(Secret::from_slice(&skeyid_e[..key_len]));
        }
        let mut out = Vec::with_capacity(key_len + prf.output_len());
        let mut k = prf_secret(prf, skeyid_e, &[&[0]])?;
        loop {
            out.extend_from_slice(k.as_bytes());
            if out.len() >= key_len {
                break;
            }
            k = prf_secret(prf, skeyid_e, &[k.as_bytes()])?;
        }
        out.truncate(key_len);
        Ok(Secret::new(out))
    }

    /// Quick Mode KEYMAT for one SA (RFC 2409 section 5.5), expanded to `len`
    /// bytes:
    /// ```text
    /// K1 = prf(SKEYID_d, [ g(qm)^xy | ] protocol | SPI | Ni_b | Nr_b)
    /// Kn = prf(SKEYID_d, Kn-1 | [ g(qm)^xy | ] protocol | SPI | Ni_b | Nr_b)
    /// ```
    /// `g_qm_xy` is `Some` with PFS. `spi` is the SPI of the SA being keyed
    /// (the receiver's SPI for each direction); `protocol` its ISAKMP protocol ID.
    // One argument per input of the RFC's formula, in its order.
    #[allow(clippy::too_many_arguments)]
    pub fn quick_mode_keymat(
        prf: &dyn Prf,
        skeyid_d: &[u8],
        g_qm_xy: Option<&[u8]>,
        protocol: u8,
        spi: &[u8],
        ni_b: &[u8],
        nr_b: &[u8],
        len: usize,
    ) -> Result<Secret, Error> {
        let proto = [protocol];
        let mut tail: Vec<&[u8]> = Vec::with_capacity(5);
        if let Some(g) = g_qm_xy {
            tail.push(g);
        }
        tail.extend_from_slice(&[&proto[..], spi, ni_b, nr_b]);
        let mut out = Vec::with_capacity(len + prf.output_len());
        let mut k = prf_secret(prf, skeyid_d, &tail)?;
        loop {
            out.extend_from_slice(k.as_bytes());
            if out.len() >= len {
                break;
            }
            let mut parts: Vec<&[u8]> = vec![k.as_bytes()];
            parts.extend_from_slice(&tail);
            k = prf_secret(prf, skeyid_d, &parts)?;
        }
        out.truncate(len);
        Ok(Secret::new(out))
    }

    /// The hash IKEv1 negotiated for phase 1 (its HMAC is the PRF; the plain hash
    /// makes the IVs).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Hash {
        Md5,
        Sha1,
        Sha256,
        Sha384,
        Sha512,
    }

    impl Hash {
        fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
            use aws_lc_rs::digest;
            let alg = match self {
                Hash::Md5 => {
                    use md5::Digest;
                    let mut h = md5::Md5::new();
                    parts.iter().for_each(|p| h.update(p));
                    return h.finalize().to_vec();
                }
                Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
                Hash::Sha256 => &digest::SHA256,
                Hash::Sha384 => &digest::SHA384,
                Hash::Sha512 => &digest::SHA512,
            };
            let mut ctx = digest::Context::new(alg);
            parts.iter().for_each(|p| ctx.update(p));
            ctx.finish().as_ref().to_vec()
        }
    }

    fn truncated(hash: Hash, parts: &[&[u8]], block_len: usize) -> Result<Vec<u8>, Error> {
        let mut d = hash.digest(parts);
        if d.len() < block_len {
            return Err(Error::DataLength {
                name: "IKEv1 IV",
                got: d.len(),
                why: "hash shorter than the cipher block",
            });
        }
        d.truncate(block_len);
        Ok(d)
    }

    /// Phase-1 IV (RFC 2409 Appendix B): `hash(g^xi | g^xr)` truncated to the
    /// cipher's block size. The DH public values are not secret.
    pub fn phase1_iv(
        hash: Hash,
        g_xi: &[u8],
        g_xr: &[u8],
        block_len: usize,
    ) -> Result<Vec<u8>, Error> {
        truncated(hash, &[g_xi, g_xr], block_len)
    }

    /// Phase-2 (and informational) IV (RFC 2409 Appendix B):
    /// `hash(last phase-1 CBC output block | M-ID)` truncated to the block size.
    pub fn phase2_iv(
        hash: Hash,
        last_phase1_block: &[u8],
        message_id: u32,
        block_len: usize,
    ) -> Result<Vec<u8>, Error> {
        truncated(
            hash,
            &[last_phase1_block, &message_id.to_be_bytes()],
            block_len,
        )
    }
}
