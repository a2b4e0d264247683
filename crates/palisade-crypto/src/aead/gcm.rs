//! AES-GCM (RFC 4106), AES-GMAC (RFC 4543) and ChaCha20-Poly1305 (RFC 7634) on
//! aws-lc-rs, and AES-128/256-GCM with the full 16-byte ICV on ring.
//!
//! Why two libraries: on CPUs with VAES and VPCLMULQDQ but without AVX-512
//! (AMD Zen 3, the machines this is built on) ring 0.17.14 has an AVX2 VAES
//! AES-GCM and aws-lc 0.47 does not; sealing a 1420-byte ESP payload takes
//! 340 ns with ring and 565 ns with aws-lc-rs (AES-256, 1.7x; AES-128 1.8x;
//! one seal loop over both libraries, 2026-11). ChaCha20-Poly1305 runs at parity, so it stays on
//! aws-lc-rs, as does AES-192-GCM, which ring does not offer.
//!
//! Both libraries only expose 16-byte tags. Sealing with a truncated ICV (GCM-8 and
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

/// A keyed AEAD of one of the two libraries. (The whole transform is boxed
/// behind `dyn Aead`, so the size of the ring variant costs nothing.)
#[allow(clippy::large_enum_variant)]
enum LibKey {
    AwsLc(LessSafeKey),
    Ring(RingKey),
}

/// ring's key, wiped when dropped: ring keeps the AES round keys and the
/// GHASH table inline in the key and does not clear them itself.
struct RingKey(std::mem::ManuallyDrop<ring::aead::LessSafeKey>);

impl Drop for RingKey {
    fn drop(&mut self) {
        let p = (&mut *self.0 as *mut ring::aead::LessSafeKey).cast::<u8>();
        for i in 0..std::mem::size_of::<ring::aead::LessSafeKey>() {
            // SAFETY: p..p+size is the key's own memory, which we own
            // exclusively; it is never read or dropped after this (it sits in
            // a ManuallyDrop and ring's key owns no heap memory or other
            // resources that a drop would have to release).
            unsafe { std::ptr::write_volatile(p.add(i), 0) };
        }
    }
}

/// ring's algorithm for AES-GCM with a full tag, if ring has it.
fn ring_gcm(alg: &'static lc::Algorithm, icv_len: usize) -> Option<&'static ring::aead::Algorithm> {
    if icv_len != TAG_LEN {
        None
    } else if alg == &lc::AES_128_GCM {
        Some(&ring::aead::AES_128_GCM)
    } else if alg == &lc::AES_256_GCM {
        Some(&ring::aead::AES_256_GCM)
    } else {
        None
    }
}

/// AES-GCM (any ICV length) or ChaCha20-Poly1305 through a library's AEAD:
/// ring for AES-128/256-GCM-16, aws-lc-rs for the rest (see the module notes).
pub struct LibAead {
    name: &'static str,
    key: LibKey,
    salt: Zeroizing<[u8; SALT_LEN]>,
    icv_len: usize,
    keymat_len: usize,
    /// Present for truncated GCM ICVs, which aws-lc-rs cannot open itself.
    truncated: Option<GcmParts>,
}

impl LibAead {
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
        let key = match ring_gcm(alg, icv_len) {
            Some(r) => LibKey::Ring(RingKey(std::mem::ManuallyDrop::new(
                ring::aead::LessSafeKey::new(
                    ring::aead::UnboundKey::new(r, key).map_err(|_| Error::Library(name))?,
                ),
            ))),
            None => LibKey::AwsLc(LessSafeKey::new(UnboundKey::new(alg, key).map_err(lib)?)),
        };
        Ok(LibAead {
            name,
            key,
            salt: s,
            icv_len,
            keymat_len: keymat.len(),
            truncated,
        })
    }
}

impl Aead for LibAead {
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
        let n = nonce(&self.salt, &iv);
        let fail = Error::Library(self.name);
        match &self.key {
            LibKey::AwsLc(k) => {
                let tag = k
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(n),
                        Aad::from(aad),
                        in_out,
                    )
                    .map_err(|_| fail)?;
                icv_out.copy_from_slice(&tag.as_ref()[..self.icv_len]);
            }
            LibKey::Ring(k) => {
                let tag =
                    k.0.seal_in_place_separate_tag(
                        ring::aead::Nonce::assume_unique_for_key(n),
                        ring::aead::Aad::from(aad),
                        in_out,
                    )
                    .map_err(|_| fail)?;
                icv_out.copy_from_slice(&tag.as_ref()[..self.icv_len]);
            }
        }
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
        match (&self.truncated, &self.key) {
            (None, LibKey::AwsLc(k)) => k
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    icv,
                    in_out,
                )
                .map(|_| ())
                .map_err(|_| Error::IntegrityCheckFailed),
            (None, LibKey::Ring(k)) => {
                let tag: [u8; TAG_LEN] = icv.try_into().map_err(|_| Error::IntegrityCheckFailed)?;
                k.0.open_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::from(aad),
                    ring::aead::Tag::from(tag),
                    in_out,
                    0..,
                )
                .map(|_| ())
                .map_err(|_| Error::IntegrityCheckFailed)
            }
            (Some(parts), _) => {
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
