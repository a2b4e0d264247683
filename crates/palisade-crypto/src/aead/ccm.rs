//! AES-CCM for ESP (RFC 4309) on RustCrypto `ccm`, because aws-lc-rs has no CCM
//! in its Rust API.
//!
//! RFC 4309 4: the 11-byte nonce is the 3-byte salt from the keymat followed by
//! the 8-byte IV, which leaves a 4-byte length field (L = 4). ICV of 8, 12 or 16.

use ccm::aead::generic_array::GenericArray;
use ccm::aead::AeadInPlace;
use ccm::consts::{U11, U12, U16, U8};
use ccm::{Ccm, KeyInit};
use zeroize::Zeroizing;

use super::{check_icv_len, check_iv, check_keymat, Aead};
use crate::Error;

const SALT_LEN: usize = 3;

enum Inner {
    A128x8(Ccm<aes::Aes128, U8, U11>),
    A128x12(Ccm<aes::Aes128, U12, U11>),
    A128x16(Ccm<aes::Aes128, U16, U11>),
    A192x8(Ccm<aes::Aes192, U8, U11>),
    A192x12(Ccm<aes::Aes192, U12, U11>),
    A192x16(Ccm<aes::Aes192, U16, U11>),
    A256x8(Ccm<aes::Aes256, U8, U11>),
    A256x12(Ccm<aes::Aes256, U12, U11>),
    A256x16(Ccm<aes::Aes256, U16, U11>),
}

/// Runs `$body` with `$c` bound to whichever concrete CCM instance `$inner` holds.
macro_rules! with_ccm {
    ($inner:expr, $c:ident => $body:expr) => {
        match $inner {
            Inner::A128x8($c) => $body,
            Inner::A128x12($c) => $body,
            Inner::A128x16($c) => $body,
            Inner::A192x8($c) => $body,
            Inner::A192x12($c) => $body,
            Inner::A192x16($c) => $body,
            Inner::A256x8($c) => $body,
            Inner::A256x12($c) => $body,
            Inner::A256x16($c) => $body,
        }
    };
}

/// ENCR_AES_CCM_8/12/16 with a 128-, 192- or 256-bit key.
pub struct AesCcm {
    name: &'static str,
    inner: Inner,
    salt: Zeroizing<[u8; SALT_LEN]>,
    icv_len: usize,
    keymat_len: usize,
}

impl AesCcm {
    /// `keymat` = AES key | 3-byte salt; `icv_len` is 8, 12 or 16.
    pub fn new(name: &'static str, icv_len: usize, keymat: &[u8]) -> Result<Self, Error> {
        let key_len = keymat.len().saturating_sub(SALT_LEN);
        if !matches!(key_len, 16 | 24 | 32) {
            check_keymat(name, keymat, 32 + SALT_LEN)?;
        }
        let (key, salt) = keymat.split_at(key_len);
        let bad = |_| Error::KeyLength {
            name,
            got: keymat.len(),
            expected: key_len + SALT_LEN,
        };
        let inner = match (key_len, icv_len) {
            (16, 8) => Inner::A128x8(Ccm::new_from_slice(key).map_err(bad)?),
            (16, 12) => Inner::A128x12(Ccm::new_from_slice(key).map_err(bad)?),
            (16, 16) => Inner::A128x16(Ccm::new_from_slice(key).map_err(bad)?),
            (24, 8) => Inner::A192x8(Ccm::new_from_slice(key).map_err(bad)?),
            (24, 12) => Inner::A192x12(Ccm::new_from_slice(key).map_err(bad)?),
            (24, 16) => Inner::A192x16(Ccm::new_from_slice(key).map_err(bad)?),
            (32, 8) => Inner::A256x8(Ccm::new_from_slice(key).map_err(bad)?),
            (32, 12) => Inner::A256x12(Ccm::new_from_slice(key).map_err(bad)?),
            (32, 16) => Inner::A256x16(Ccm::new_from_slice(key).map_err(bad)?),
            _ => return Err(Error::Library(name)),
        };
        let mut s = Zeroizing::new([0u8; SALT_LEN]);
        s.copy_from_slice(salt);
        Ok(AesCcm {
            name,
            inner,
            salt: s,
            icv_len,
            keymat_len: keymat.len(),
        })
    }

    fn nonce(&self, iv: &[u8]) -> Result<[u8; 11], Error> {
        let iv = check_iv(self.name, iv)?;
        let mut n = [0u8; 11];
        n[..SALT_LEN].copy_from_slice(&*self.salt);
        n[SALT_LEN..].copy_from_slice(&iv);
        Ok(n)
    }
}

impl Aead for AesCcm {
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
        let nonce = self.nonce(iv)?;
        check_icv_len(self.name, icv_out, self.icv_len)?;
        let n = GenericArray::from_slice(&nonce);
        let name = self.name;
        with_ccm!(&self.inner, c => {
            let tag = c
                .encrypt_in_place_detached(n, aad, in_out)
                .map_err(|_| Error::DataLength { name, got: in_out.len(), why: "too long for CCM" })?;
            icv_out.copy_from_slice(&tag);
        });
        Ok(())
    }

    fn open_in_place_detached(
        &self,
        iv: &[u8],
        aad: &[u8],
        in_out: &mut [u8],
        icv: &[u8],
    ) -> Result<(), Error> {
        let nonce = self.nonce(iv)?;
        if icv.len() != self.icv_len {
            return Err(Error::IntegrityCheckFailed);
        }
        let n = GenericArray::from_slice(&nonce);
        with_ccm!(&self.inner, c => c
            .decrypt_in_place_detached(n, aad, in_out, GenericArray::from_slice(icv))
            .map_err(|_| Error::IntegrityCheckFailed))
    }
}
