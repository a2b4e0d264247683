//! Non-AEAD encryption transforms (ENCR without integrity): AES-CBC (RFC 3602),
//! AES-CTR (RFC 3686), ENCR_NULL (RFC 2410), and legacy DES-CBC (RFC 2405) and
//! 3DES-CBC (RFC 2451). ESP pairs them with an [`Integ`](crate::integ::Integ).
//!
//! All on aws-lc-rs's unpadded `cipher` API: ESP does its own padding
//! (RFC 4303 2.4), so the cipher must not add any.

use aws_lc_rs::cipher::{
    self as lc, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext,
    UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use zeroize::Zeroizing;

use crate::Error;

/// A non-AEAD cipher keyed with one SA's keymat. The IV is the explicit IV that
/// travels in the ESP payload.
pub trait Cipher: Send + Sync {
    /// IANA name with key size, e.g. "ENCR_AES_CBC (128)".
    fn name(&self) -> &'static str;
    /// Block size in bytes: ESP pads the plaintext to a multiple of it
    /// (1 for stream-like modes, where ESP's 4-byte alignment still applies).
    fn block_size(&self) -> usize;
    /// Length of the per-packet IV (16 for AES, 8 for DES/3DES and AES-CTR, 0 for
    /// NULL).
    fn iv_len(&self) -> usize;
    /// Keymat length in bytes (for AES-CTR including the 4-byte nonce).
    fn key_len(&self) -> usize;
    /// Encrypt `data` in place. CBC requires a whole number of blocks.
    fn encrypt_in_place(&self, iv: &[u8], data: &mut [u8]) -> Result<(), Error>;
    /// Decrypt `data` in place. CBC requires a whole number of blocks.
    fn decrypt_in_place(&self, iv: &[u8], data: &mut [u8]) -> Result<(), Error>;
}

/// Which aws-lc-rs cipher and block size a CBC transform uses.
#[derive(Clone, Copy)]
enum Block {
    Aes,
    Des,
}

/// CBC mode (RFC 3602 for AES, RFC 2405 / RFC 2451 for DES / 3DES).
pub struct CbcCipher {
    name: &'static str,
    block: Block,
    enc: EncryptingKey,
    dec: DecryptingKey,
    key_len: usize,
}

impl CbcCipher {
    /// AES-CBC with a 16-, 24- or 32-byte key.
    pub fn aes(name: &'static str, key: &[u8]) -> Result<Self, Error> {
        let alg = match key.len() {
            16 => &lc::AES_128,
            24 => &lc::AES_192,
            32 => &lc::AES_256,
            n => {
                return Err(Error::KeyLength {
                    name,
                    got: n,
                    expected: 32,
                })
            }
        };
        Self::build(name, alg, Block::Aes, key)
    }

    /// Single DES-CBC, 8-byte key (parity bits included). Legacy.
    #[allow(deprecated)]
    pub fn des(name: &'static str, key: &[u8]) -> Result<Self, Error> {
        if key.len() != 8 {
            return Err(Error::KeyLength {
                name,
                got: key.len(),
                expected: 8,
            });
        }
        Self::build(name, &lc::DES_FOR_LEGACY_USE_ONLY, Block::Des, key)
    }

    /// 3DES-EDE3-CBC, 24-byte key. Legacy.
    #[allow(deprecated)]
    pub fn des3(name: &'static str, key: &[u8]) -> Result<Self, Error> {
        if key.len() != 24 {
            return Err(Error::KeyLength {
                name,
                got: key.len(),
                expected: 24,
            });
        }
        Self::build(name, &lc::DES_EDE3_FOR_LEGACY_USE_ONLY, Block::Des, key)
    }

    fn build(
        name: &'static str,
        alg: &'static lc::Algorithm,
        block: Block,
        key: &[u8],
    ) -> Result<Self, Error> {
        // aws-lc-rs refuses weak and semi-weak DES keys here (and equal 3DES
        // subkeys); such keymat is as likely as guessing the key, so it is
        // reported as a library failure rather than given its own error.
        let unbound = || UnboundCipherKey::new(alg, key).map_err(|_| Error::Library(name));
        let enc = EncryptingKey::cbc(unbound()?).map_err(|_| Error::Library(name))?;
        let dec = DecryptingKey::cbc(unbound()?).map_err(|_| Error::Library(name))?;
        Ok(CbcCipher {
            name,
            block,
            enc,
            dec,
            key_len: key.len(),
        })
    }

    fn check(&self, iv: &[u8], data: &[u8]) -> Result<(), Error> {
        let bs = self.block_size();
        if iv.len() != bs {
            return Err(Error::IvLength {
                name: self.name,
                got: iv.len(),
                expected: bs,
            });
        }
        if !data.len().is_multiple_of(bs) {
            return Err(Error::DataLength {
                name: self.name,
                got: data.len(),
                why: "CBC needs a whole number of cipher blocks",
            });
        }
        Ok(())
    }

    fn enc_ctx(&self, iv: &[u8]) -> Result<EncryptionContext, Error> {
        let err = |_| Error::IvLength {
            name: self.name,
            got: iv.len(),
            expected: self.block_size(),
        };
        Ok(match self.block {
            Block::Aes => EncryptionContext::Iv128(FixedLength::try_from(iv).map_err(err)?),
            Block::Des => EncryptionContext::Iv64(FixedLength::try_from(iv).map_err(err)?),
        })
    }
}

impl Cipher for CbcCipher {
    fn name(&self) -> &'static str {
        self.name
    }
    fn block_size(&self) -> usize {
        match self.block {
            Block::Aes => 16,
            Block::Des => 8,
        }
    }
    fn iv_len(&self) -> usize {
        self.block_size()
    }
    fn key_len(&self) -> usize {
        self.key_len
    }

    fn encrypt_in_place(&self, iv: &[u8], data: &mut [u8]) -> Result<(), Error> {
        self.check(iv, data)?;
        if data.is_empty() {
            return Ok(());
        }
        let ctx = self.enc_ctx(iv)?;
        self.enc
            .less_safe_encrypt(data, ctx)
            .map(|_| ())
            .map_err(|_| Error::Library(self.name))
    }

    fn decrypt_in_place(&self, iv: &[u8], data: &mut [u8]) -> Result<(), Error> {
        self.check(iv, data)?;
        if data.is_empty() {
            return Ok(());
        }
        let ctx: DecryptionContext = self.enc_ctx(iv)?.into();
        self.dec
            .decrypt(data, ctx)
            .map(|_| ())
            .map_err(|_| Error::Library(self.name))
    }
}

/// AES-CTR for ESP (RFC 3686). Keymat is the AES key followed by a 4-byte nonce;
/// each packet's counter block is `nonce | IV (8) | be32 counter`, the counter
/// starting at 1 (RFC 3686 4).
pub struct CtrCipher {
    name: &'static str,
    key: EncryptingKey,
    nonce: Zeroizing<[u8; 4]>,
    key_len: usize,
}

impl CtrCipher {
    pub fn aes(name: &'static str, keymat: &[u8]) -> Result<Self, Error> {
        let alg = match keymat.len() {
            20 => &lc::AES_128,
            28 => &lc::AES_192,
            36 => &lc::AES_256,
            n => {
                return Err(Error::KeyLength {
                    name,
                    got: n,
                    expected: 36,
                })
            }
        };
        let (key, nonce) = keymat.split_at(keymat.len() - 4);
        let lib = |_| Error::Library(name);
        let key = EncryptingKey::ctr(UnboundCipherKey::new(alg, key).map_err(lib)?).map_err(lib)?;
        let mut n = Zeroizing::new([0u8; 4]);
        n.copy_from_slice(nonce);
        Ok(CtrCipher {
            name,
            key,
            nonce: n,
            key_len: keymat.len(),
        })
    }

    fn xor(&self, iv: &[u8], data: &mut [u8]) -> Result<(), Error> {
        if iv.len() != 8 {
            return Err(Error::IvLength {
                name: self.name,
                got: iv.len(),
                expected: 8,
            });
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut block = [0u8; 16];
        block[..4].copy_from_slice(&*self.nonce);
        block[4..12].copy_from_slice(iv);
        block[12..].copy_from_slice(&1u32.to_be_bytes());
        // aws-lc increments the whole 128-bit block, RFC 3686 only the low 32
        // bits; identical until 2^32 blocks, far beyond any packet.
        self.key
            .less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(block)))
            .map(|_| ())
            .map_err(|_| Error::Library(self.name))
    }
}

impl Cipher for CtrCipher {
    fn name(&self) -> &'static str {
        self.name
    }
    fn block_size(&self) -> usize {
        // RFC 3686 3.2: AES-CTR needs no padding beyond ESP's 4-byte alignment.
        1
    }
    fn iv_len(&self) -> usize {
        8
    }
    fn key_len(&self) -> usize {
        self.key_len
    }
    fn encrypt_in_place(&self, iv: &[u8], data: &mut [u8]) -> Result<(), Error> {
        self.xor(iv, data)
    }
    fn decrypt_in_place(&self, iv: &[u8], data: &mut [u8]) -> Result<(), Error> {
        self.xor(iv, data)
    }
}

/// ENCR_NULL (RFC 2410): no confidentiality, no IV, block size 1.
pub struct NullCipher;

impl Cipher for NullCipher {
    fn name(&self) -> &'static str {
        "ENCR_NULL"
    }
    fn block_size(&self) -> usize {
        1
    }
    fn iv_len(&self) -> usize {
        0
    }
    fn key_len(&self) -> usize {
        0
    }
    fn encrypt_in_place(&self, iv: &[u8], _data: &mut [u8]) -> Result<(), Error> {
        if iv.is_empty() {
            Ok(())
        } else {
            Err(Error::IvLength {
                name: "ENCR_NULL",
                got: iv.len(),
                expected: 0,
            })
        }
    }
    fn decrypt_in_place(&self, iv: &[u8], data: &mut [u8]) -> Result<(), Error> {
        self.encrypt_in_place(iv, data)
    }
}
