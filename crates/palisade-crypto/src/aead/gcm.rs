//! AES-GCM (RFC 4106), AES-GMAC (RFC 4543) and ChaCha20-Poly1305 (RFC 7634) on
//! aws-lc-rs.
//!
//! aws-lc-rs only exposes 16-byte tags. Sealing with a truncated ICV (GCM-8 and
//! GCM-12) is the full-tag seal cut short, which is what GCM defines (SP 800-38D
//! 7.1 step 6: T = MSB_t(GCTR(J0, S))). Opening cannot be delegated because
//! aws-lc-rs insists on a full tag, so for those two the tag is recomputed here
//! from GHASH (RustCrypto `ghash`) and E(K, J0) before aws-lc-rs CTR decrypts.
//! GMAC likewise needs GHASH over several AAD pieces without copying them together.

use aws_lc_rs::aead::{self as lc, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use ghash::universal_hash::{KeyInit, UniversalHash};
use ghash::GHash;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{check_icv_len, check_iv, check_keymat, Aead, ESP_IV_LEN};
use crate::Error;

const SALT_LEN: usize = 4;
const TAG_LEN: usize = 16;

fn nonce(salt: &[u8; SALT_LEN], iv: &[u8; ESP_IV_LEN]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..SALT_LEN].copy_from_slice(salt);
    n[SALT_LEN..].copy_from_slice(iv);
    n
}

/// GCM's counter block `nonce | be32(counter)` (SP 800-38D 7.1: J0 has counter 1,
/// the payload keystream starts at 2).
fn counter_block(nonce: &[u8; 12], counter: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..12].copy_from_slice(nonce);
    b[12..].copy_from_slice(&counter.to_be_bytes());
    b
}

fn cipher_alg(key_len: usize) -> Option<&'static aws_lc_rs::cipher::Algorithm> {
    match key_len {
        16 => Some(&aws_lc_rs::cipher::AES_128),
        24 => Some(&aws_lc_rs::cipher::AES_192),
        32 => Some(&aws_lc_rs::cipher::AES_256),
        _ => None,
    }
}

/// The raw AES-GCM pieces aws-lc-rs does not expose: the GHASH key H and the
/// block cipher in counter mode (for E(K, J0) and for decryption).
struct GcmParts {
    ghash: GHash,
    ctr: EncryptingKey,
}

impl GcmParts {
    fn new(name: &'static str, key: &[u8]) -> Result<Self, Error> {
        let lib = |_| Error::Library(name);
        let alg = cipher_alg(key.len()).ok_or(Error::KeyLength {
            name,
            got: key.len(),
            expected: 32,
        })?;
        let ctr = EncryptingKey::ctr(UnboundCipherKey::new(alg, key).map_err(lib)?).map_err(lib)?;
        // H = E(K, 0^128): CTR with an all-zero counter block over one zero block.
        let mut h = Zeroizing::new([0u8; 16]);
        ctr.less_safe_encrypt(
            &mut *h,
            EncryptionContext::Iv128(FixedLength::from([0u8; 16])),
        )
        .map_err(lib)?;
        Ok(GcmParts {
            ghash: GHash::new((&*h).into()),
            ctr,
        })
    }

    /// CTR-mode XOR of `data` starting at counter block `block`.
    fn ctr_xor(&self, block: [u8; 16], data: &mut [u8]) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        // aws-lc increments all 128 bits while GCM increments the low 32; they
        // differ only after 2^32 blocks, far beyond any IP packet.
        self.ctr
            .less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(block)))
            .map(|_| ())
            .map_err(|_| Error::Library("AES-CTR"))
    }

    /// The full GCM tag over AAD given in pieces and ciphertext `ct`
    /// (SP 800-38D 7.1 steps 5-6).
    fn tag(&self, nonce: &[u8; 12], aad: &[&[u8]], ct: &[u8]) -> Result<[u8; 16], Error> {
        let mut s = GhashStream {
            g: self.ghash.clone(),
            buf: [0u8; 16],
            n: 0,
        };
        let mut aad_len = 0u64;
        for a in aad {
            s.absorb(a);
            aad_len += a.len() as u64;
        }
        s.pad();
        s.absorb(ct);
        s.pad();
        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&(aad_len * 8).to_be_bytes());
        lens[8..].copy_from_slice(&(ct.len() as u64 * 8).to_be_bytes());
        s.g.update(&[lens.into()]);
        let mut tag: [u8; 16] = s.g.finalize().into();
        let mut ek_j0 = [0u8; 16];
        self.ctr_xor(counter_block(nonce, 1), &mut ek_j0)?;
        for (t, k) in tag.iter_mut().zip(ek_j0.iter()) {
            *t ^= *k;
        }
        Ok(tag)
    }
}

/// GHASH over a byte stream that arrives in pieces of any length; `pad` closes a
/// section (AAD or ciphertext) with zero padding to the block boundary.
struct GhashStream {
    g: GHash,
    buf: [u8; 16],
    n: usize,
}

impl GhashStream {
    fn absorb(&mut self, mut data: &[u8]) {
        if self.n > 0 {
            let take = (16 - self.n).min(data.len());
            self.buf[self.n..self.n + take].copy_from_slice(&data[..take]);
            self.n += take;
            data = &data[take..];
            if self.n < 16 {
                return;
            }
            self.g.update(&[self.buf.into()]);
            self.n = 0;
        }
        let whole = data.len() / 16 * 16;
        // A whole number of blocks: update_padded adds no padding here.
        self.g.update_padded(&data[..whole]);
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.n = rest.len();
    }

    fn pad(&mut self) {
        if self.n > 0 {
            self.buf[self.n..].fill(0);
            self.g.update(&[self.buf.into()]);
            self.n = 0;
        }
    }
}

/// AES-GCM (any ICV length) or ChaCha20-Poly1305 through aws-lc-rs's AEAD.
pub struct AwsLcAead {
    name: &'static str,
    key: LessSafeKey,
    salt: Zeroizing<[u8; SALT_LEN]>,
    icv_len: usize,
    keymat_len: usize,
    /// Present for truncated GCM ICVs, which aws-lc-rs cannot open itself.
    truncated: Option<GcmParts>,
}

impl AwsLcAead {
    /// `keymat` = key | 4-byte salt. `icv_len` 16, or 8/12 for AES-GCM only.
    pub fn new(
        name: &'static str,
        alg: &'static lc::Algorithm,
        icv_len: usize,
        keymat: &[u8],
    ) -> Result<Self, Error> {
        let key_len = alg.key_len();
        check_keymat(name, keymat, key_len + SALT_LEN)?;
        let (key, salt) = keymat.split_at(key_len);
        let lib = |_| Error::Library(name);
        let truncated = match icv_len {
            TAG_LEN => None,
            8 | 12 if alg != &lc::CHACHA20_POLY1305 => Some(GcmParts::new(name, key)?),
            _ => return Err(Error::Library(name)),
        };
        let mut s = Zeroizing::new([0u8; SALT_LEN]);
        s.copy_from_slice(salt);
        Ok(AwsLcAead {
            name,
            key: LessSafeKey::new(UnboundKey::new(alg, key).map_err(lib)?),
            salt: s,
            icv_len,
            keymat_len: keymat.len(),
            truncated,
        })
    }
}

impl Aead for AwsLcAead {
    fn name(&self) -> &'static str {
        self.name
    }
    fn key_len(&self) -> usize {
        self.keymat_len
    }
    fn icv_len(&self) -> usize {
        self.icv_len
    }

    fn seal_in_place_detached(
        &self,
        iv: &[u8],
        aad: &[u8],
        in_out: &mut [u8],
        icv_out: &mut [u8],
    ) -> Result<(), Error> {
        let iv = check_iv(self.name, iv)?;
        check_icv_len(self.name, icv_out, self.icv_len)?;
        let n = Nonce::assume_unique_for_key(nonce(&self.salt, &iv));
        let tag = self
            .key
            .seal_in_place_separate_tag(n, Aad::from(aad), in_out)
            .map_err(|_| Error::Library(self.name))?;
        icv_out.copy_from_slice(&tag.as_ref()[..self.icv_len]);
        Ok(())
    }

    fn open_in_place_detached(
        &self,
        iv: &[u8],
        aad: &[u8],
        in_out: &mut [u8],
        icv: &[u8],
    ) -> Result<(), Error> {
        let iv = check_iv(self.name, iv)?;
        if icv.len() != self.icv_len {
            return Err(Error::IntegrityCheckFailed);
        }
        let nonce = nonce(&self.salt, &iv);
        match &self.truncated {
            None => self
                .key
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    icv,
                    in_out,
                )
                .map(|_| ())
                .map_err(|_| Error::IntegrityCheckFailed),
            Some(parts) => {
                // Verify before decrypting so no unauthenticated plaintext exists.
                let tag = parts.tag(&nonce, &[aad], in_out)?;
                if !bool::from(tag[..self.icv_len].ct_eq(icv)) {
                    return Err(Error::IntegrityCheckFailed);
                }
                parts.ctr_xor(counter_block(&nonce, 2), in_out)
            }
        }
    }
}

/// ENCR_NULL_AUTH_AES_GMAC (RFC 4543): GCM with nothing encrypted. The SPI,
/// sequence number, IV and the whole ESP payload are authenticated as AAD
/// (RFC 4543 3.5); the ICV is 16 bytes.
pub struct AesGmac {
    name: &'static str,
    parts: GcmParts,
    salt: Zeroizing<[u8; SALT_LEN]>,
    keymat_len: usize,
}

impl AesGmac {
    /// `keymat` = AES key (16/24/32 bytes) | 4-byte salt.
    pub fn new(name: &'static str, keymat: &[u8]) -> Result<Self, Error> {
        if !matches!(keymat.len(), 20 | 28 | 36) {
            return Err(Error::KeyLength {
                name,
                got: keymat.len(),
                expected: 36,
            });
        }
        let (key, salt) = keymat.split_at(keymat.len() - SALT_LEN);
        let mut s = Zeroizing::new([0u8; SALT_LEN]);
        s.copy_from_slice(salt);
        Ok(AesGmac {
            name,
            parts: GcmParts::new(name, key)?,
            salt: s,
            keymat_len: keymat.len(),
        })
    }

    fn tag(&self, iv: &[u8], aad: &[u8], payload: &[u8]) -> Result<[u8; 16], Error> {
        let iv = check_iv(self.name, iv)?;
        self.parts
            .tag(&nonce(&self.salt, &iv), &[aad, &iv, payload], &[])
    }
}

impl Aead for AesGmac {
    fn name(&self) -> &'static str {
        self.name
    }
    fn key_len(&self) -> usize {
        self.keymat_len
    }
    fn icv_len(&self) -> usize {
        TAG_LEN
    }

    fn seal_in_place_detached(
        &self,
        iv: &[u8],
        aad: &[u8],
        in_out: &mut [u8],
        icv_out: &mut [u8],
    ) -> Result<(), Error> {
        check_icv_len(self.name, icv_out, TAG_LEN)?;
        icv_out.copy_from_slice(&self.tag(iv, aad, in_out)?);
        Ok(())
    }

    fn open_in_place_detached(
        &self,
        iv: &[u8],
        aad: &[u8],
        in_out: &mut [u8],
        icv: &[u8],
    ) -> Result<(), Error> {
        let tag = self.tag(iv, aad, in_out)?;
        if icv.len() == TAG_LEN && bool::from(tag.ct_eq(icv)) {
            Ok(())
        } else {
            Err(Error::IntegrityCheckFailed)
        }
    }
}
