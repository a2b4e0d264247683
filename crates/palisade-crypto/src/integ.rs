//! Integrity transforms (IKEv2 transform type 3): the ICV algorithms of ESP, AH and
//! IKEv2's SK payload.
//!
//! Every transform is keyed once, when the SA is installed, and then computes over
//! several input slices so that the ESP layer can MAC `header | payload | ESN-high`
//! without first copying them into one buffer (RFC 4303 3.3.2.1).

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::Error;

/// The longest ICV any integrity transform here produces (untruncated SHA-512).
pub(crate) const MAX_MAC_LEN: usize = 64;

/// A keyed integrity transform with a truncated ICV.
pub trait Integ: Send + Sync {
    /// IANA name, e.g. "AUTH_HMAC_SHA2_256_128".
    fn name(&self) -> &'static str;
    /// Key length in bytes (the keymat the SA layer must take for it).
    fn key_len(&self) -> usize;
    /// ICV length in bytes after truncation (e.g. 12 for HMAC-SHA1-96).
    fn icv_len(&self) -> usize;
    /// `out = truncate(MAC(key, parts[0] | parts[1] | ...))`; `out.len()` must be
    /// exactly `icv_len()`.
    fn compute(&self, parts: &[&[u8]], out: &mut [u8]) -> Result<(), Error>;
    /// Recompute the ICV over `parts` and compare it with `icv` in constant time, so
    /// a forger learns nothing from timing. Fails with
    /// [`Error::IntegrityCheckFailed`] on mismatch or on an ICV of the wrong length.
    fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> Result<(), Error> {
        let n = self.icv_len();
        if icv.len() != n || n > MAX_MAC_LEN {
            return Err(Error::IntegrityCheckFailed);
        }
        let mut expected = [0u8; MAX_MAC_LEN];
        self.compute(parts, &mut expected[..n])?;
        if bool::from(expected[..n].ct_eq(icv)) {
            Ok(())
        } else {
            Err(Error::IntegrityCheckFailed)
        }
    }
}

fn check_out(name: &'static str, out: &[u8], want: usize) -> Result<(), Error> {
    if out.len() == want {
        Ok(())
    } else {
        Err(Error::DataLength {
            name,
            got: out.len(),
            why: "ICV buffer must be icv_len() bytes",
        })
    }
}

fn check_key(name: &'static str, key: &[u8], want: usize) -> Result<(), Error> {
    if key.len() == want {
        Ok(())
    } else {
        Err(Error::KeyLength {
            name,
            got: key.len(),
            expected: want,
        })
    }
}

/// HMAC with SHA-1 or SHA-2 (RFC 2404, RFC 4868) via aws-lc-rs. The key is
/// pre-hashed into inner/outer states once; each packet clones that state.
pub struct HmacAwsLc {
    name: &'static str,
    key: aws_lc_rs::hmac::Key,
    key_len: usize,
    icv_len: usize,
}

impl HmacAwsLc {
    /// Key length is the hash output length (RFC 2404 3, RFC 4868 2.1.1).
    pub fn new(
        name: &'static str,
        alg: aws_lc_rs::hmac::Algorithm,
        icv_len: usize,
        key: &[u8],
    ) -> Result<Self, Error> {
        let key_len = alg.digest_algorithm().output_len;
        check_key(name, key, key_len)?;
        if icv_len == 0 || icv_len > key_len {
            return Err(Error::DataLength {
                name,
                got: icv_len,
                why: "ICV longer than the HMAC output",
            });
        }
        Ok(HmacAwsLc {
            name,
            key: aws_lc_rs::hmac::Key::new(alg, key),
            key_len,
            icv_len,
        })
    }
}

impl Integ for HmacAwsLc {
    fn name(&self) -> &'static str {
        self.name
    }
    fn key_len(&self) -> usize {
        self.key_len
    }
    fn icv_len(&self) -> usize {
        self.icv_len
    }
    fn compute(&self, parts: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
        check_out(self.name, out, self.icv_len)?;
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(p);
        }
        let tag = ctx.sign();
        out.copy_from_slice(&tag.as_ref()[..self.icv_len]);
        Ok(())
    }
}

/// The RustCrypto HMACs kept for legacy hashes that aws-lc-rs does not offer as
/// HMAC: MD5 (RFC 2403) and RIPEMD-160 (RFC 2857).
#[derive(Clone)]
enum LegacyMac {
    Md5(hmac::Hmac<md5::Md5>),
    Ripemd160(hmac::Hmac<ripemd::Ripemd160>),
}

/// HMAC-MD5-96 or HMAC-RIPEMD-160-96, keyed once; each packet clones the keyed
/// state.
pub struct HmacLegacy {
    name: &'static str,
    mac: LegacyMac,
    key_len: usize,
}

impl HmacLegacy {
    /// AUTH_HMAC_MD5_96 (RFC 2403): 16-byte key, 12-byte ICV.
    pub fn md5_96(key: &[u8]) -> Result<Self, Error> {
        use hmac::Mac;
        let name = "AUTH_HMAC_MD5_96";
        check_key(name, key, 16)?;
        let mac = hmac::Hmac::<md5::Md5>::new_from_slice(key).map_err(|_| Error::KeyLength {
            name,
            got: key.len(),
            expected: 16,
        })?;
        Ok(HmacLegacy {
            name,
            mac: LegacyMac::Md5(mac),
            key_len: 16,
        })
    }

    /// HMAC-RIPEMD-160-96 (RFC 2857): 20-byte key, 12-byte ICV. IKEv1/ESP only.
    pub fn ripemd160_96(key: &[u8]) -> Result<Self, Error> {
        use hmac::Mac;
        let name = "AUTH_HMAC_RIPEMD_160_96";
        check_key(name, key, 20)?;
        let mac =
            hmac::Hmac::<ripemd::Ripemd160>::new_from_slice(key).map_err(|_| Error::KeyLength {
                name,
                got: key.len(),
                expected: 20,
            })?;
        Ok(HmacLegacy {
            name,
            mac: LegacyMac::Ripemd160(mac),
            key_len: 20,
        })
    }
}

impl Integ for HmacLegacy {
    fn name(&self) -> &'static str {
        self.name
    }
    fn key_len(&self) -> usize {
        self.key_len
    }
    fn icv_len(&self) -> usize {
        12
    }
    fn compute(&self, parts: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
        use hmac::Mac;
        check_out(self.name, out, 12)?;
        match &self.mac {
            LegacyMac::Md5(m) => {
                let mut m = m.clone();
                for p in parts {
                    m.update(p);
                }
                out.copy_from_slice(&m.finalize().into_bytes()[..12]);
            }
            LegacyMac::Ripemd160(m) => {
                let mut m = m.clone();
                for p in parts {
                    m.update(p);
                }
                out.copy_from_slice(&m.finalize().into_bytes()[..12]);
            }
        }
        Ok(())
    }
}

/// AES-XCBC-MAC (RFC 3566), written here because neither aws-lc-rs nor RustCrypto
/// has it. Holds the three derived keys: K1 as an expanded AES key, K2 and K3 as
/// the whitening blocks for the last message block.
pub struct AesXcbcMac {
    k1: aes::Aes128,
    k2: Zeroizing<[u8; 16]>,
    k3: Zeroizing<[u8; 16]>,
}

impl AesXcbcMac {
    /// RFC 3566 2.4 step 1: K1 = E(K, 0x01..), K2 = E(K, 0x02..), K3 = E(K, 0x03..).
    pub fn new(key: &[u8; 16]) -> Self {
        use aes::cipher::{BlockEncrypt, KeyInit};
        let k = aes::Aes128::new(key.into());
        let derive = |byte: u8| {
            let mut b = Zeroizing::new([byte; 16]);
            k.encrypt_block((&mut *b).into());
            b
        };
        let k1 = derive(0x01);
        let k2 = derive(0x02);
        let k3 = derive(0x03);
        AesXcbcMac {
            k1: aes::Aes128::new((&*k1).into()),
            k2,
            k3,
        }
    }

    /// MAC of the concatenation of `parts` (full 16-byte tag).
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 16] {
        use aes::cipher::BlockEncrypt;
        // E holds the CBC state; `buf` the last (possibly full) block, because
        // step 3 treats the final block differently and we only know it is final
        // once no more input follows.
        let mut e = Zeroizing::new([0u8; 16]);
        let mut buf = Zeroizing::new([0u8; 16]);
        let mut buf_len = 0usize;
        for part in parts {
            let mut data: &[u8] = part;
            while !data.is_empty() {
                if buf_len == 16 {
                    for (x, y) in e.iter_mut().zip(buf.iter()) {
                        *x ^= *y;
                    }
                    self.k1.encrypt_block((&mut *e).into());
                    buf_len = 0;
                }
                let take = (16 - buf_len).min(data.len());
                buf[buf_len..buf_len + take].copy_from_slice(&data[..take]);
                buf_len += take;
                data = &data[take..];
            }
        }
        let whitening = if buf_len == 16 {
            &*self.k2
        } else {
            // RFC 3566 2.4 step 3b: pad with a single 1 bit then zeros.
            buf[buf_len] = 0x80;
            for b in &mut buf[buf_len + 1..] {
                *b = 0;
            }
            &*self.k3
        };
        for i in 0..16 {
            e[i] ^= buf[i] ^ whitening[i];
        }
        self.k1.encrypt_block((&mut *e).into());
        *e
    }
}

/// AUTH_AES_XCBC_96 (RFC 3566): 16-byte key, 12-byte ICV.
pub struct AesXcbc96 {
    mac: AesXcbcMac,
}

impl AesXcbc96 {
    pub fn new(key: &[u8]) -> Result<Self, Error> {
        let key: &[u8; 16] = key.try_into().map_err(|_| Error::KeyLength {
            name: "AUTH_AES_XCBC_96",
            got: key.len(),
            expected: 16,
        })?;
        Ok(AesXcbc96 {
            mac: AesXcbcMac::new(key),
        })
    }
}

impl Integ for AesXcbc96 {
    fn name(&self) -> &'static str {
        "AUTH_AES_XCBC_96"
    }
    fn key_len(&self) -> usize {
        16
    }
    fn icv_len(&self) -> usize {
        12
    }
    fn compute(&self, parts: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
        check_out(self.name(), out, 12)?;
        out.copy_from_slice(&self.mac.mac(parts)[..12]);
        Ok(())
    }
}

/// AES-CMAC over aws-lc-rs, with the 16-byte tag.
pub(crate) fn aes_cmac(key: &aws_lc_rs::cmac::Key, parts: &[&[u8]]) -> Result<[u8; 16], Error> {
    let mut ctx = aws_lc_rs::cmac::Context::with_key(key);
    for p in parts {
        ctx.update(p)
            .map_err(|_| Error::Library("AES-CMAC update"))?;
    }
    let tag = ctx.sign().map_err(|_| Error::Library("AES-CMAC sign"))?;
    let mut out = [0u8; 16];
    let t = tag.as_ref();
    if t.len() != 16 {
        return Err(Error::Library("AES-CMAC tag length"));
    }
    out.copy_from_slice(t);
    Ok(out)
}

/// AUTH_AES_CMAC_96 (RFC 4494): 16-byte key, 12-byte ICV.
pub struct AesCmac96 {
    key: aws_lc_rs::cmac::Key,
}

impl AesCmac96 {
    pub fn new(key: &[u8]) -> Result<Self, Error> {
        check_key("AUTH_AES_CMAC_96", key, 16)?;
        let key = aws_lc_rs::cmac::Key::new(aws_lc_rs::cmac::AES_128, key)
            .map_err(|_| Error::Library("AUTH_AES_CMAC_96 key"))?;
        Ok(AesCmac96 { key })
    }
}

impl Integ for AesCmac96 {
    fn name(&self) -> &'static str {
        "AUTH_AES_CMAC_96"
    }
    fn key_len(&self) -> usize {
        16
    }
    fn icv_len(&self) -> usize {
        12
    }
    fn compute(&self, parts: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
        check_out(self.name(), out, 12)?;
        out.copy_from_slice(&aes_cmac(&self.key, parts)?[..12]);
        Ok(())
    }
}
