//! Combined-mode (AEAD) encryption transforms for ESP and IKEv2's SK payload:
//! AES-GCM (RFC 4106), AES-CCM (RFC 4309), AES-GMAC (RFC 4543) and
//! ChaCha20-Poly1305 (RFC 7634).
//!
//! All of them are built from keymat that *includes* the salt, exactly as IKE
//! derives it (RFC 5282 / RFC 4106 8.1: "KEYMAT = key | salt"): a 4-byte salt for
//! GCM, GMAC and ChaCha20-Poly1305, a 3-byte salt for CCM. The 8-byte IV that
//! travels in each packet is passed per call; the nonce is `salt | IV`.

mod ccm;
mod gcm;

pub use self::ccm::AesCcm;
pub use self::gcm::{AesGmac, LibAead};

use crate::Error;

/// The per-packet IV length of every ESP AEAD here (RFC 4106 3.1, RFC 4309 3.1,
/// RFC 4543 3.1, RFC 7634 2).
pub const ESP_IV_LEN: usize = 8;

/// An AEAD transform keyed with one SA's keymat.
///
/// Both operations work in place on the caller's buffer and take the ICV as a
/// separate slice, so the ESP layer can point them straight at the packet it is
/// building or parsing; the hot-path implementations do not allocate.
pub trait Aead: Send + Sync {
    /// IANA name with key size, e.g. "ENCR_AES_GCM_16 (256)".
    fn name(&self) -> &'static str;
    /// Keymat length in bytes, salt included (what the SA layer takes from
    /// prf+ output for this transform).
    fn key_len(&self) -> usize;
    /// Length of the explicit per-packet IV (8 for every ESP AEAD).
    fn iv_len(&self) -> usize {
        ESP_IV_LEN
    }
    /// ICV (authentication tag) length in bytes: 8, 12 or 16.
    fn icv_len(&self) -> usize;
    /// Encrypt `in_out` in place under `salt | iv`, authenticating `aad` too, and
    /// write the ICV to `icv_out` (exactly `icv_len()` bytes).
    ///
    /// For ENCR_NULL_AUTH_AES_GMAC nothing is encrypted: `aad | iv | in_out` is
    /// authenticated and `in_out` is left as is (RFC 4543 3.5).
    fn seal_in_place_detached(
        &self,
        iv: &[u8],
        aad: &[u8],
        in_out: &mut [u8],
        icv_out: &mut [u8],
    ) -> Result<(), Error>;
    /// Check `icv` over `aad` and the ciphertext in `in_out`, then decrypt in
    /// place. Fails with [`Error::IntegrityCheckFailed`] if the ICV does not match;
    /// the contents of `in_out` are then unspecified and must be dropped.
    fn open_in_place_detached(
        &self,
        iv: &[u8],
        aad: &[u8],
        in_out: &mut [u8],
        icv: &[u8],
    ) -> Result<(), Error>;
}

pub(crate) fn check_iv(name: &'static str, iv: &[u8]) -> Result<[u8; ESP_IV_LEN], Error> {
    iv.try_into().map_err(|_| Error::IvLength {
        name,
        got: iv.len(),
        expected: ESP_IV_LEN,
    })
}

pub(crate) fn check_icv_len(name: &'static str, icv: &[u8], want: usize) -> Result<(), Error> {
    if icv.len() == want {
        Ok(())
    } else {
        Err(Error::DataLength {
            name,
            got: icv.len(),
            why: "ICV must be icv_len() bytes",
        })
    }
}

pub(crate) fn check_keymat(name: &'static str, keymat: &[u8], want: usize) -> Result<(), Error> {
    if keymat.len() == want {
        Ok(())
    } else {
        Err(Error::KeyLength {
            name,
            got: keymat.len(),
            expected: want,
        })
    }
}
