//! IANA transform numbers and the constructors that turn them into keyed
//! transforms.
//!
//! Numbers come from the IANA "Internet Key Exchange Version 2 (IKEv2) Parameters"
//! registry, Transform Type 1 (ENCR), 2 (PRF) and 3 (INTEG)
//! (<https://www.iana.org/assignments/ikev2-parameters>). IKEv1 numbers (RFC 2409
//! Appendix A, IPsec DOI RFC 2407 4.4 / 4.5) are kept in [`ikev1`] as aliases onto
//! these IDs, because the two protocols number the same algorithms differently.
//!
//! Every constructor checks the [`Policy`]: legacy transforms fail with
//! [`Error::Insecure`] naming the algorithm and the reason, unknown IDs with
//! [`Error::Unsupported`].

pub mod ikev1;

use crate::aead::{self, Aead};
use crate::cipher::{self, Cipher};
use crate::integ::{self, Integ};
use crate::prf::{self, Prf};
use crate::{Error, Policy};

/// IKEv2 Transform Type 1 (Encryption Algorithm) IDs.
pub mod encr {
    pub const DES_IV64: u16 = 1;
    pub const DES: u16 = 2;
    pub const TRIPLE_DES: u16 = 3;
    pub const RC5: u16 = 4;
    pub const IDEA: u16 = 5;
    pub const CAST: u16 = 6;
    pub const BLOWFISH: u16 = 7;
    pub const THREE_IDEA: u16 = 8;
    pub const DES_IV32: u16 = 9;
    pub const NULL: u16 = 11;
    pub const AES_CBC: u16 = 12;
    pub const AES_CTR: u16 = 13;
    pub const AES_CCM_8: u16 = 14;
    pub const AES_CCM_12: u16 = 15;
    pub const AES_CCM_16: u16 = 16;
    pub const AES_GCM_8: u16 = 18;
    pub const AES_GCM_12: u16 = 19;
    pub const AES_GCM_16: u16 = 20;
    pub const NULL_AUTH_AES_GMAC: u16 = 21;
    pub const CAMELLIA_CBC: u16 = 23;
    pub const CAMELLIA_CTR: u16 = 24;
    pub const CAMELLIA_CCM_8: u16 = 25;
    pub const CAMELLIA_CCM_12: u16 = 26;
    pub const CAMELLIA_CCM_16: u16 = 27;
    pub const CHACHA20_POLY1305: u16 = 28;
}

/// IKEv2 Transform Type 2 (Pseudorandom Function) IDs.
pub mod prf_id {
    pub const HMAC_MD5: u16 = 1;
    pub const HMAC_SHA1: u16 = 2;
    pub const HMAC_TIGER: u16 = 3;
    pub const AES128_XCBC: u16 = 4;
    pub const HMAC_SHA2_256: u16 = 5;
    pub const HMAC_SHA2_384: u16 = 6;
    pub const HMAC_SHA2_512: u16 = 7;
    pub const AES128_CMAC: u16 = 8;
}

/// IKEv2 Transform Type 3 (Integrity Algorithm) IDs.
pub mod integ_id {
    pub const NONE: u16 = 0;
    pub const HMAC_MD5_96: u16 = 1;
    pub const HMAC_SHA1_96: u16 = 2;
    pub const DES_MAC: u16 = 3;
    pub const KPDK_MD5: u16 = 4;
    pub const AES_XCBC_96: u16 = 5;
    pub const HMAC_MD5_128: u16 = 6;
    pub const HMAC_SHA1_160: u16 = 7;
    pub const AES_CMAC_96: u16 = 8;
    pub const AES_128_GMAC: u16 = 9;
    pub const AES_192_GMAC: u16 = 10;
    pub const AES_256_GMAC: u16 = 11;
    pub const HMAC_SHA2_256_128: u16 = 12;
    pub const HMAC_SHA2_384_192: u16 = 13;
    pub const HMAC_SHA2_512_256: u16 = 14;
}

/// IANA name of an ENCR transform ID, `None` if unassigned or unknown here.
pub fn encr_name(id: u16) -> Option<&'static str> {
    Some(match id {
        1 => "ENCR_DES_IV64",
        2 => "ENCR_DES",
        3 => "ENCR_3DES",
        4 => "ENCR_RC5",
        5 => "ENCR_IDEA",
        6 => "ENCR_CAST",
        7 => "ENCR_BLOWFISH",
        8 => "ENCR_3IDEA",
        9 => "ENCR_DES_IV32",
        11 => "ENCR_NULL",
        12 => "ENCR_AES_CBC",
        13 => "ENCR_AES_CTR",
        14 => "ENCR_AES_CCM_8",
        15 => "ENCR_AES_CCM_12",
        16 => "ENCR_AES_CCM_16",
        18 => "ENCR_AES_GCM_8",
        19 => "ENCR_AES_GCM_12",
        20 => "ENCR_AES_GCM_16",
        21 => "ENCR_NULL_AUTH_AES_GMAC",
        23 => "ENCR_CAMELLIA_CBC",
        24 => "ENCR_CAMELLIA_CTR",
        25 => "ENCR_CAMELLIA_CCM_8",
        26 => "ENCR_CAMELLIA_CCM_12",
        27 => "ENCR_CAMELLIA_CCM_16",
        28 => "ENCR_CHACHA20_POLY1305",
        _ => return None,
    })
}

/// IANA name of a PRF transform ID.
pub fn prf_name(id: u16) -> Option<&'static str> {
    Some(match id {
        1 => "PRF_HMAC_MD5",
        2 => "PRF_HMAC_SHA1",
        3 => "PRF_HMAC_TIGER",
        4 => "PRF_AES128_XCBC",
        5 => "PRF_HMAC_SHA2_256",
        6 => "PRF_HMAC_SHA2_384",
        7 => "PRF_HMAC_SHA2_512",
        8 => "PRF_AES128_CMAC",
        _ => return None,
    })
}

/// IANA name of an INTEG transform ID.
pub fn integ_name(id: u16) -> Option<&'static str> {
    Some(match id {
        0 => "NONE",
        1 => "AUTH_HMAC_MD5_96",
        2 => "AUTH_HMAC_SHA1_96",
        3 => "AUTH_DES_MAC",
        4 => "AUTH_KPDK_MD5",
        5 => "AUTH_AES_XCBC_96",
        6 => "AUTH_HMAC_MD5_128",
        7 => "AUTH_HMAC_SHA1_160",
        8 => "AUTH_AES_CMAC_96",
        9 => "AUTH_AES_128_GMAC",
        10 => "AUTH_AES_192_GMAC",
        11 => "AUTH_AES_256_GMAC",
        12 => "AUTH_HMAC_SHA2_256_128",
        13 => "AUTH_HMAC_SHA2_384_192",
        14 => "AUTH_HMAC_SHA2_512_256",
        _ => return None,
    })
}

const MD5_WHY: &str = "MD5 is broken (practical collisions, RFC 6151)";

/// The PRF for an IKEv2 PRF transform ID. PRFs are stateless (keyed per call), so
/// a static reference is returned.
pub fn prf(id: u16, policy: Policy) -> Result<&'static dyn Prf, Error> {
    Ok(match id {
        prf_id::HMAC_MD5 => {
            policy.check_insecure("PRF_HMAC_MD5", MD5_WHY)?;
            &prf::PRF_HMAC_MD5
        }
        prf_id::HMAC_SHA1 => &prf::PRF_HMAC_SHA1,
        prf_id::AES128_XCBC => &prf::PRF_AES128_XCBC,
        prf_id::HMAC_SHA2_256 => &prf::PRF_HMAC_SHA2_256,
        prf_id::HMAC_SHA2_384 => &prf::PRF_HMAC_SHA2_384,
        prf_id::HMAC_SHA2_512 => &prf::PRF_HMAC_SHA2_512,
        prf_id::AES128_CMAC => &prf::PRF_AES128_CMAC,
        _ => return Err(Error::Unsupported { kind: "PRF", id }),
    })
}

/// Key and ICV sizes of an INTEG transform, so the SA layer knows how much keymat
/// to take (RFC 7296 2.17) and how long the ICV on the wire is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegSizes {
    pub key_len: usize,
    pub icv_len: usize,
}

/// Key and ICV length of an INTEG transform ID (no policy check: sizes are facts).
pub fn integ_sizes(id: u16) -> Result<IntegSizes, Error> {
    let (key_len, icv_len) = match id {
        integ_id::NONE => (0, 0),
        integ_id::HMAC_MD5_96 => (16, 12),
        integ_id::HMAC_SHA1_96 => (20, 12),
        integ_id::AES_XCBC_96 => (16, 12),
        integ_id::AES_CMAC_96 => (16, 12),
        integ_id::HMAC_SHA2_256_128 => (32, 16),
        integ_id::HMAC_SHA2_384_192 => (48, 24),
        integ_id::HMAC_SHA2_512_256 => (64, 32),
        _ => return Err(Error::Unsupported { kind: "INTEG", id }),
    };
    Ok(IntegSizes { key_len, icv_len })
}

/// A keyed INTEG transform. `key` must be exactly [`integ_sizes`]`(id).key_len`
/// bytes. ID 0 (NONE) is not a transform: callers with an AEAD take no INTEG.
pub fn integ(id: u16, key: &[u8], policy: Policy) -> Result<Box<dyn Integ>, Error> {
    use aws_lc_rs::hmac as h;
    Ok(match id {
        integ_id::HMAC_MD5_96 => {
            policy.check_insecure("AUTH_HMAC_MD5_96", MD5_WHY)?;
            Box::new(integ::HmacLegacy::md5_96(key)?)
        }
        integ_id::HMAC_SHA1_96 => Box::new(integ::HmacAwsLc::new(
            "AUTH_HMAC_SHA1_96",
            h::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            12,
            key,
        )?),
        integ_id::AES_XCBC_96 => Box::new(integ::AesXcbc96::new(key)?),
        integ_id::AES_CMAC_96 => Box::new(integ::AesCmac96::new(key)?),
        integ_id::HMAC_SHA2_256_128 => Box::new(integ::HmacAwsLc::new(
            "AUTH_HMAC_SHA2_256_128",
            h::HMAC_SHA256,
            16,
            key,
        )?),
        integ_id::HMAC_SHA2_384_192 => Box::new(integ::HmacAwsLc::new(
            "AUTH_HMAC_SHA2_384_192",
            h::HMAC_SHA384,
            24,
            key,
        )?),
        integ_id::HMAC_SHA2_512_256 => Box::new(integ::HmacAwsLc::new(
            "AUTH_HMAC_SHA2_512_256",
            h::HMAC_SHA512,
            32,
            key,
        )?),
        _ => return Err(Error::Unsupported { kind: "INTEG", id }),
    })
}

const DES_WHY: &str = "56-bit key, exhaustively searchable";
const TDES_WHY: &str = "64-bit block (Sweet32 birthday attacks, RFC 8221 deprecates it)";

/// Whether an ENCR transform is an AEAD (no INTEG transform with it) or a plain
/// cipher that needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncrKind {
    Aead,
    Cipher,
}

/// What the SA layer must know about an ENCR transform before keying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncrInfo {
    pub kind: EncrKind,
    /// IANA name with key size, e.g. "ENCR_AES_GCM_16 (256)".
    pub name: &'static str,
    /// Keymat to take from prf+ output, salt or nonce included (RFC 7296 2.17).
    pub keymat_len: usize,
    /// Bytes of explicit IV in each packet.
    pub iv_len: usize,
    /// ICV bytes (AEAD only; 0 for plain ciphers, whose ICV comes from INTEG).
    pub icv_len: usize,
    /// Plaintext alignment the cipher needs (ESP still aligns to 4 bytes).
    pub block_size: usize,
    /// Legacy transform that needs `allow_insecure`.
    pub insecure: bool,
}

macro_rules! sized_name {
    ($base:literal, $bytes:expr) => {
        match $bytes {
            16 => concat!($base, " (128)"),
            24 => concat!($base, " (192)"),
            _ => concat!($base, " (256)"),
        }
    };
}

/// AES key size in bytes from the Key Length attribute, which AES transforms
/// require (RFC 7296 3.3.5).
fn aes_key_bytes(id: u16, key_bits: Option<u16>) -> Result<usize, Error> {
    match key_bits {
        Some(128) => Ok(16),
        Some(192) => Ok(24),
        Some(256) => Ok(32),
        _ => Err(Error::Unsupported {
            kind: "ENCR key length",
            id,
        }),
    }
}

/// A transform with one fixed key size: the Key Length attribute must be absent
/// (RFC 7296 3.3.5), but a peer that sends the right value is tolerated.
fn fixed_key(id: u16, key_bits: Option<u16>, bits: u16) -> Result<(), Error> {
    match key_bits {
        None => Ok(()),
        Some(b) if b == bits => Ok(()),
        Some(_) => Err(Error::Unsupported {
            kind: "ENCR key length",
            id,
        }),
    }
}

/// Sizes and kind of ENCR transform `id` with Key Length attribute `key_bits`
/// (`None` when the proposal has no Key Length attribute).
pub fn encr_info(id: u16, key_bits: Option<u16>) -> Result<EncrInfo, Error> {
    let aead = |name, key: usize, salt: usize, icv| EncrInfo {
        kind: EncrKind::Aead,
        name,
        keymat_len: key + salt,
        iv_len: 8,
        icv_len: icv,
        block_size: 1,
        insecure: false,
    };
    let ciph = |name, keymat_len, iv_len, block_size, insecure| EncrInfo {
        kind: EncrKind::Cipher,
        name,
        keymat_len,
        iv_len,
        icv_len: 0,
        block_size,
        insecure,
    };
    Ok(match id {
        encr::DES => {
            fixed_key(id, key_bits, 64)?;
            ciph("ENCR_DES", 8, 8, 8, true)
        }
        encr::TRIPLE_DES => {
            fixed_key(id, key_bits, 192)?;
            ciph("ENCR_3DES", 24, 8, 8, true)
        }
        encr::NULL => {
            fixed_key(id, key_bits, 0)?;
            ciph("ENCR_NULL", 0, 0, 1, false)
        }
        encr::AES_CBC => {
            let k = aes_key_bytes(id, key_bits)?;
            ciph(sized_name!("ENCR_AES_CBC", k), k, 16, 16, false)
        }
        encr::AES_CTR => {
            let k = aes_key_bytes(id, key_bits)?;
            ciph(sized_name!("ENCR_AES_CTR", k), k + 4, 8, 1, false)
        }
        encr::AES_CCM_8 => {
            let k = aes_key_bytes(id, key_bits)?;
            aead(sized_name!("ENCR_AES_CCM_8", k), k, 3, 8)
        }
        encr::AES_CCM_12 => {
            let k = aes_key_bytes(id, key_bits)?;
            aead(sized_name!("ENCR_AES_CCM_12", k), k, 3, 12)
        }
        encr::AES_CCM_16 => {
            let k = aes_key_bytes(id, key_bits)?;
            aead(sized_name!("ENCR_AES_CCM_16", k), k, 3, 16)
        }
        encr::AES_GCM_8 => {
            let k = aes_key_bytes(id, key_bits)?;
            aead(sized_name!("ENCR_AES_GCM_8", k), k, 4, 8)
        }
        encr::AES_GCM_12 => {
            let k = aes_key_bytes(id, key_bits)?;
            aead(sized_name!("ENCR_AES_GCM_12", k), k, 4, 12)
        }
        encr::AES_GCM_16 => {
            let k = aes_key_bytes(id, key_bits)?;
            aead(sized_name!("ENCR_AES_GCM_16", k), k, 4, 16)
        }
        encr::NULL_AUTH_AES_GMAC => {
            let k = aes_key_bytes(id, key_bits)?;
            aead(sized_name!("ENCR_NULL_AUTH_AES_GMAC", k), k, 4, 16)
        }
        encr::CHACHA20_POLY1305 => {
            fixed_key(id, key_bits, 256)?;
            aead("ENCR_CHACHA20_POLY1305", 32, 4, 16)
        }
        _ => return Err(Error::Unsupported { kind: "ENCR", id }),
    })
}

fn check_policy(id: u16, info: &EncrInfo, policy: Policy) -> Result<(), Error> {
    if info.insecure {
        let why = if id == encr::DES { DES_WHY } else { TDES_WHY };
        policy.check_insecure(info.name, why)?;
    }
    Ok(())
}

/// A keyed AEAD for ENCR transform `id`. `keymat` is key | salt, exactly
/// [`encr_info`]`(id, key_bits).keymat_len` bytes. Fails with
/// [`Error::Unsupported`] if `id` is not an AEAD.
pub fn aead(
    id: u16,
    key_bits: Option<u16>,
    keymat: &[u8],
    policy: Policy,
) -> Result<Box<dyn Aead>, Error> {
    use aws_lc_rs::aead as lc;
    let info = encr_info(id, key_bits)?;
    check_policy(id, &info, policy)?;
    if info.kind != EncrKind::Aead {
        return Err(Error::Unsupported { kind: "AEAD", id });
    }
    aead::check_keymat(info.name, keymat, info.keymat_len)?;
    let gcm_alg = |k: usize| match k {
        16 => &lc::AES_128_GCM,
        24 => &lc::AES_192_GCM,
        _ => &lc::AES_256_GCM,
    };
    Ok(match id {
        encr::AES_GCM_8 | encr::AES_GCM_12 | encr::AES_GCM_16 => Box::new(aead::LibAead::new(
            info.name,
            gcm_alg(info.keymat_len - 4),
            info.icv_len,
            keymat,
        )?),
        encr::CHACHA20_POLY1305 => Box::new(aead::LibAead::new(
            info.name,
            &lc::CHACHA20_POLY1305,
            16,
            keymat,
        )?),
        encr::AES_CCM_8 | encr::AES_CCM_12 | encr::AES_CCM_16 => {
            Box::new(aead::AesCcm::new(info.name, info.icv_len, keymat)?)
        }
        encr::NULL_AUTH_AES_GMAC => Box::new(aead::AesGmac::new(info.name, keymat)?),
        _ => return Err(Error::Unsupported { kind: "AEAD", id }),
    })
}

/// A keyed non-AEAD cipher for ENCR transform `id` (AES-CBC, AES-CTR, NULL, DES,
/// 3DES). `keymat` is exactly [`encr_info`]`(id, key_bits).keymat_len` bytes.
pub fn cipher(
    id: u16,
    key_bits: Option<u16>,
    keymat: &[u8],
    policy: Policy,
) -> Result<Box<dyn Cipher>, Error> {
    let info = encr_info(id, key_bits)?;
    check_policy(id, &info, policy)?;
    if info.kind != EncrKind::Cipher {
        return Err(Error::Unsupported {
            kind: "cipher (non-AEAD ENCR)",
            id,
        });
    }
    aead::check_keymat(info.name, keymat, info.keymat_len)?;
    Ok(match id {
        encr::NULL => Box::new(cipher::NullCipher),
        encr::AES_CBC => Box::new(cipher::CbcCipher::aes(info.name, keymat)?),
        encr::AES_CTR => Box::new(cipher::CtrCipher::aes(info.name, keymat)?),
        encr::DES => Box::new(cipher::CbcCipher::des(info.name, keymat)?),
        encr::TRIPLE_DES => Box::new(cipher::CbcCipher::des3(info.name, keymat)?),
        _ => {
            return Err(Error::Unsupported {
                kind: "cipher (non-AEAD ENCR)",
                id,
            })
        }
    })
}

/// Output length and preferred key length of a PRF transform (RFC 7296 2.14).
pub fn prf_sizes(id: u16) -> Result<(usize, usize), Error> {
    let p = prf(id, Policy::INSECURE)?;
    Ok((p.output_len(), p.key_len()))
}
