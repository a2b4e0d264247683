//! Pseudo-random functions (IKEv2 transform type 2) and prf+ (RFC 7296 2.13).
//!
//! The PRFs are stateless values (the key is an argument of every call), so the
//! registry hands out `&'static dyn Prf` and nothing needs to be allocated or freed.

use zeroize::Zeroizing;

use crate::integ::{aes_cmac, AesXcbcMac};
use crate::{Error, Secret};

/// The longest PRF output (HMAC-SHA2-512).
pub const MAX_PRF_OUTPUT: usize = 64;

/// A keyed PRF. The key is given per call because IKE keys its PRFs with many
/// different values (nonces, SKEYSEED, SK_d, SK_p*).
pub trait Prf: Send + Sync {
    /// Human name, e.g. "PRF_HMAC_SHA2_256".
    fn name(&self) -> &'static str;
    /// Output length in bytes.
    fn output_len(&self) -> usize;
    /// The key length used for derived PRF keys (SK_d, SK_pi, SK_pr), RFC 7296 2.14.
    fn key_len(&self) -> usize;
    /// `out = prf(key, data[0] | data[1] | ...)`; `out.len() == output_len()`.
    fn compute(&self, key: &[u8], data: &[&[u8]], out: &mut [u8]) -> Result<(), Error>;
}

/// prf+ of RFC 7296 2.13:
///
/// ```text
/// prf+ (K,S) = T1 | T2 | T3 | T4 | ...
/// T1 = prf (K, S | 0x01)
/// T2 = prf (K, T1 | S | 0x02)
/// ...
/// ```
///
/// `seed` is S given in pieces (e.g. `Ni | Nr | SPIi | SPIr`) so that callers need
/// not concatenate. Fills all of `out`. The counter is one octet, so at most
/// 255 * `output_len()` bytes can be produced; more is an error, as the RFC says.
pub fn prf_plus(prf: &dyn Prf, key: &[u8], seed: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
    let n = prf.output_len();
    if n == 0 || n > MAX_PRF_OUTPUT {
        return Err(Error::Library("prf+: PRF output length out of range"));
    }
    if out.len() > 255 * n {
        return Err(Error::DataLength {
            name: "prf+",
            got: out.len(),
            why: "more than 255 PRF blocks requested (RFC 7296 2.13)",
        });
    }
    let mut t = Zeroizing::new([0u8; MAX_PRF_OUTPUT]);
    for (i, chunk) in out.chunks_mut(n).enumerate() {
        // i < 255 by the length check above.
        let counter = [(i + 1) as u8];
        let prev = Zeroizing::new(*t);
        let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
        if i > 0 {
            parts.push(&prev[..n]);
        }
        parts.extend_from_slice(seed);
        parts.push(&counter);
        prf.compute(key, &parts, &mut t[..n])?;
        chunk.copy_from_slice(&t[..chunk.len()]);
    }
    Ok(())
}

/// prf+ into a fresh [`Secret`] of `len` bytes.
pub fn prf_plus_secret(
    prf: &dyn Prf,
    key: &[u8],
    seed: &[&[u8]],
    len: usize,
) -> Result<Secret, Error> {
    let mut s = Secret::zeroed(len);
    prf_plus(prf, key, seed, s.as_mut_bytes())?;
    Ok(s)
}

fn check_out(name: &'static str, out: &[u8], want: usize) -> Result<(), Error> {
    if out.len() == want {
        Ok(())
    } else {
        Err(Error::DataLength {
            name,
            got: out.len(),
            why: "PRF output buffer must be output_len() bytes",
        })
    }
}

/// PRF_HMAC_SHA1 and PRF_HMAC_SHA2_* (RFC 2104, RFC 4868) via aws-lc-rs. HMAC takes
/// any key length (longer keys are hashed, RFC 2104 2).
pub struct HmacPrf {
    name: &'static str,
    alg: aws_lc_rs::hmac::Algorithm,
}

/// PRF_HMAC_SHA1 (IANA 2).
pub static PRF_HMAC_SHA1: HmacPrf = HmacPrf {
    name: "PRF_HMAC_SHA1",
    alg: aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
};
/// PRF_HMAC_SHA2_256 (IANA 5).
pub static PRF_HMAC_SHA2_256: HmacPrf = HmacPrf {
    name: "PRF_HMAC_SHA2_256",
    alg: aws_lc_rs::hmac::HMAC_SHA256,
};
/// PRF_HMAC_SHA2_384 (IANA 6).
pub static PRF_HMAC_SHA2_384: HmacPrf = HmacPrf {
    name: "PRF_HMAC_SHA2_384",
    alg: aws_lc_rs::hmac::HMAC_SHA384,
};
/// PRF_HMAC_SHA2_512 (IANA 7).
pub static PRF_HMAC_SHA2_512: HmacPrf = HmacPrf {
    name: "PRF_HMAC_SHA2_512",
    alg: aws_lc_rs::hmac::HMAC_SHA512,
};

impl Prf for HmacPrf {
    fn name(&self) -> &'static str {
        self.name
    }
    fn output_len(&self) -> usize {
        self.alg.digest_algorithm().output_len
    }
    fn key_len(&self) -> usize {
        // RFC 7296 2.14: for HMAC the preferred key length is the output length.
        self.output_len()
    }
    fn compute(&self, key: &[u8], data: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
        check_out(self.name, out, self.output_len())?;
        let k = aws_lc_rs::hmac::Key::new(self.alg, key);
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&k);
        for d in data {
            ctx.update(d);
        }
        out.copy_from_slice(ctx.sign().as_ref());
        Ok(())
    }
}

/// PRF_HMAC_MD5 (IANA 1, RFC 2104). Legacy: MD5 collisions are practical.
pub struct HmacMd5Prf;
/// PRF_HMAC_MD5 (IANA 1).
pub static PRF_HMAC_MD5: HmacMd5Prf = HmacMd5Prf;

impl Prf for HmacMd5Prf {
    fn name(&self) -> &'static str {
        "PRF_HMAC_MD5"
    }
    fn output_len(&self) -> usize {
        16
    }
    fn key_len(&self) -> usize {
        16
    }
    fn compute(&self, key: &[u8], data: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
        use hmac::Mac;
        check_out(self.name(), out, 16)?;
        // HMAC accepts every key length, so this cannot fail; map it anyway.
        let mut m = hmac::Hmac::<md5::Md5>::new_from_slice(key)
            .map_err(|_| Error::Library("PRF_HMAC_MD5 key"))?;
        for d in data {
            m.update(d);
        }
        out.copy_from_slice(&m.finalize().into_bytes());
        Ok(())
    }
}

/// PRF_AES128_XCBC (IANA 4, RFC 4434): AES-XCBC-MAC with a variable-length key.
pub struct AesXcbcPrf;
/// PRF_AES128_XCBC (IANA 4).
pub static PRF_AES128_XCBC: AesXcbcPrf = AesXcbcPrf;

impl Prf for AesXcbcPrf {
    fn name(&self) -> &'static str {
        "PRF_AES128_XCBC"
    }
    fn output_len(&self) -> usize {
        16
    }
    fn key_len(&self) -> usize {
        16
    }
    fn compute(&self, key: &[u8], data: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
        check_out(self.name(), out, 16)?;
        // RFC 4434 2: a 128-bit key is used as is; a shorter key is padded on the
        // right with zero bits; a longer key is first reduced with
        // AES-XCBC-PRF-128 under the all-zero key.
        let mut k = Zeroizing::new([0u8; 16]);
        if key.len() <= 16 {
            k[..key.len()].copy_from_slice(key);
        } else {
            *k = AesXcbcMac::new(&[0u8; 16]).mac(&[key]);
        }
        out.copy_from_slice(&AesXcbcMac::new(&k).mac(data));
        Ok(())
    }
}

/// PRF_AES128_CMAC (IANA 8, RFC 4615): AES-CMAC with a variable-length key.
pub struct AesCmacPrf;
/// PRF_AES128_CMAC (IANA 8).
pub static PRF_AES128_CMAC: AesCmacPrf = AesCmacPrf;

impl Prf for AesCmacPrf {
    fn name(&self) -> &'static str {
        "PRF_AES128_CMAC"
    }
    fn output_len(&self) -> usize {
        16
    }
    fn key_len(&self) -> usize {
        16
    }
    fn compute(&self, key: &[u8], data: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
        use aws_lc_rs::cmac;
        check_out(self.name(), out, 16)?;
        let lib = |_| Error::Library("PRF_AES128_CMAC key");
        // RFC 4615 3: a 128-bit key is used as is; any other length is reduced to
        // K' = AES-CMAC(0^128, key).
        let k = if key.len() == 16 {
            cmac::Key::new(cmac::AES_128, key).map_err(lib)?
        } else {
            let zero = cmac::Key::new(cmac::AES_128, &[0u8; 16]).map_err(lib)?;
            let derived = Zeroizing::new(aes_cmac(&zero, &[key])?);
            cmac::Key::new(cmac::AES_128, &*derived).map_err(lib)?
        };
        out.copy_from_slice(&aes_cmac(&k, data)?);
        Ok(())
    }
}
