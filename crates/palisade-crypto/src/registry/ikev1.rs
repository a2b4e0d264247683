//! IKEv1 transform numbers as aliases of the IKEv2 IDs the rest of the crate uses.
//!
//! IKEv1 numbers the same algorithms differently, and in several spaces:
//! Phase 1 attributes (RFC 2409 Appendix A; AES from RFC 3602), and the IPsec
//! DOI's ESP transform IDs, AH transform IDs and Authentication Algorithm
//! attribute (RFC 2407 4.4.3, 4.4.4, 4.5; later entries from the IANA "ISAKMP"
//! and "IPsec DOI" registries). `None` marks an algorithm with no IKEv2 ID:
//! palisade implements one of those, HMAC-RIPEMD-160-96 (RFC 2857).

use super::{encr, integ_id, prf_id, IntegSizes};
use crate::integ::{HmacLegacy, Integ};
use crate::{Error, Policy};

/// One row of an alias table: the IKEv1 number, its IANA name, and the IKEv2
/// transform ID it means (if any).
pub type Alias = (u16, &'static str, Option<u16>);

/// Phase 1 Encryption Algorithm attribute (class 1), RFC 2409 Appendix A.
pub const PHASE1_ENCR: &[Alias] = &[
    (1, "DES-CBC", Some(encr::DES)),
    (2, "IDEA-CBC", Some(encr::IDEA)),
    (3, "Blowfish-CBC", Some(encr::BLOWFISH)),
    (4, "RC5-R16-B64-CBC", Some(encr::RC5)),
    (5, "3DES-CBC", Some(encr::TRIPLE_DES)),
    (6, "CAST-CBC", Some(encr::CAST)),
    (7, "AES-CBC", Some(encr::AES_CBC)),
    (8, "CAMELLIA-CBC", Some(encr::CAMELLIA_CBC)),
];

/// Phase 1 Hash Algorithm attribute (class 2). Without a negotiated PRF, IKEv1's
/// prf is the HMAC of this hash (RFC 2409 4), so it maps onto the IKEv2 PRF.
pub const PHASE1_HASH: &[Alias] = &[
    (1, "MD5", Some(prf_id::HMAC_MD5)),
    (2, "SHA", Some(prf_id::HMAC_SHA1)),
    (3, "Tiger", Some(prf_id::HMAC_TIGER)),
    (4, "SHA2-256", Some(prf_id::HMAC_SHA2_256)),
    (5, "SHA2-384", Some(prf_id::HMAC_SHA2_384)),
    (6, "SHA2-512", Some(prf_id::HMAC_SHA2_512)),
];

/// IPsec DOI ESP transform IDs (RFC 2407 4.4.4 and IANA). Note GMAC: 23 here,
/// 21 in IKEv2 (RFC 4543 9).
pub const ESP_TRANSFORM: &[Alias] = &[
    (1, "ESP_DES_IV64", Some(encr::DES_IV64)),
    (2, "ESP_DES", Some(encr::DES)),
    (3, "ESP_3DES", Some(encr::TRIPLE_DES)),
    (4, "ESP_RC5", Some(encr::RC5)),
    (5, "ESP_IDEA", Some(encr::IDEA)),
    (6, "ESP_CAST", Some(encr::CAST)),
    (7, "ESP_BLOWFISH", Some(encr::BLOWFISH)),
    (8, "ESP_3IDEA", Some(encr::THREE_IDEA)),
    (9, "ESP_DES_IV32", Some(encr::DES_IV32)),
    (10, "ESP_RC4", None),
    (11, "ESP_NULL", Some(encr::NULL)),
    (12, "ESP_AES-CBC", Some(encr::AES_CBC)),
    (13, "ESP_AES-CTR", Some(encr::AES_CTR)),
    (14, "ESP_AES-CCM_8", Some(encr::AES_CCM_8)),
    (15, "ESP_AES-CCM_12", Some(encr::AES_CCM_12)),
    (16, "ESP_AES-CCM_16", Some(encr::AES_CCM_16)),
    (18, "ESP_AES-GCM_8", Some(encr::AES_GCM_8)),
    (19, "ESP_AES-GCM_12", Some(encr::AES_GCM_12)),
    (20, "ESP_AES-GCM_16", Some(encr::AES_GCM_16)),
    (21, "ESP_SEED_CBC", None),
    (22, "ESP_CAMELLIA", Some(encr::CAMELLIA_CBC)),
    (23, "ESP_NULL_AUTH_AES-GMAC", Some(encr::NULL_AUTH_AES_GMAC)),
];

/// IPsec DOI Authentication Algorithm attribute (class 5, RFC 2407 4.5), which
/// names ESP's integrity transform.
pub const AUTH_ALGORITHM: &[Alias] = &[
    (1, "HMAC-MD5", Some(integ_id::HMAC_MD5_96)),
    (2, "HMAC-SHA", Some(integ_id::HMAC_SHA1_96)),
    (3, "DES-MAC", Some(integ_id::DES_MAC)),
    (4, "KPDK", Some(integ_id::KPDK_MD5)),
    (5, "HMAC-SHA2-256", Some(integ_id::HMAC_SHA2_256_128)),
    (6, "HMAC-SHA2-384", Some(integ_id::HMAC_SHA2_384_192)),
    (7, "HMAC-SHA2-512", Some(integ_id::HMAC_SHA2_512_256)),
    (8, "HMAC-RIPEMD", None),
    (9, "AES-XCBC-MAC", Some(integ_id::AES_XCBC_96)),
    (10, "SIG-RSA", None),
    (11, "AES-128-GMAC", Some(integ_id::AES_128_GMAC)),
    (12, "AES-192-GMAC", Some(integ_id::AES_192_GMAC)),
    (13, "AES-256-GMAC", Some(integ_id::AES_256_GMAC)),
];

/// IPsec DOI AH transform IDs (RFC 2407 4.4.3), by the integrity they use.
pub const AH_TRANSFORM: &[Alias] = &[
    (2, "AH_MD5", Some(integ_id::HMAC_MD5_96)),
    (3, "AH_SHA", Some(integ_id::HMAC_SHA1_96)),
    (4, "AH_DES", Some(integ_id::DES_MAC)),
    (5, "AH_SHA2-256", Some(integ_id::HMAC_SHA2_256_128)),
    (6, "AH_SHA2-384", Some(integ_id::HMAC_SHA2_384_192)),
    (7, "AH_SHA2-512", Some(integ_id::HMAC_SHA2_512_256)),
    (8, "AH_RIPEMD", None),
    (9, "AH_AES-XCBC-MAC", Some(integ_id::AES_XCBC_96)),
    (10, "AH_RSA", None),
    (11, "AH_AES-128-GMAC", Some(integ_id::AES_128_GMAC)),
    (12, "AH_AES-192-GMAC", Some(integ_id::AES_192_GMAC)),
    (13, "AH_AES-256-GMAC", Some(integ_id::AES_256_GMAC)),
];

/// The IKEv2 ID for IKEv1 number `id` in `table`; `kind` names the table in the
/// error ("IKEv1 ESP transform", ...).
pub fn to_ikev2(table: &[Alias], kind: &'static str, id: u16) -> Result<u16, Error> {
    table
        .iter()
        .find(|(n, _, _)| *n == id)
        .and_then(|(_, _, v2)| *v2)
        .ok_or(Error::Unsupported { kind, id })
}

/// IKEv1 name of number `id` in `table`.
pub fn name(table: &[Alias], id: u16) -> Option<&'static str> {
    table
        .iter()
        .find(|(n, _, _)| *n == id)
        .map(|(_, name, _)| *name)
}

const RIPEMD_AUTH_ALG: u16 = 8;
const RIPEMD_AH_TRANSFORM: u16 = 8;
const RIPEMD_WHY: &str =
    "HMAC-RIPEMD-160-96 is IKEv1-only (RFC 2857) and not among RFC 8221's ESP algorithms";

/// Key and ICV sizes for an IKEv1 Authentication Algorithm value.
pub fn integ_sizes(auth_alg: u16) -> Result<IntegSizes, Error> {
    if auth_alg == RIPEMD_AUTH_ALG {
        return Ok(IntegSizes {
            key_len: 20,
            icv_len: 12,
        });
    }
    super::integ_sizes(to_ikev2(
        AUTH_ALGORITHM,
        "IKEv1 Authentication Algorithm",
        auth_alg,
    )?)
}

/// A keyed integrity transform for an IKEv1 Authentication Algorithm value
/// (ESP), including HMAC-RIPEMD-160-96, which IKEv2 has no number for.
pub fn integ(auth_alg: u16, key: &[u8], policy: Policy) -> Result<Box<dyn Integ>, Error> {
    if auth_alg == RIPEMD_AUTH_ALG {
        policy.check_insecure("AUTH_HMAC_RIPEMD_160_96", RIPEMD_WHY)?;
        return Ok(Box::new(HmacLegacy::ripemd160_96(key)?));
    }
    super::integ(
        to_ikev2(AUTH_ALGORITHM, "IKEv1 Authentication Algorithm", auth_alg)?,
        key,
        policy,
    )
}

/// A keyed integrity transform for an IKEv1 AH transform ID.
pub fn ah_integ(ah_transform: u16, key: &[u8], policy: Policy) -> Result<Box<dyn Integ>, Error> {
    if ah_transform == RIPEMD_AH_TRANSFORM {
        return integ(RIPEMD_AUTH_ALG, key, policy);
    }
    super::integ(
        to_ikev2(AH_TRANSFORM, "IKEv1 AH transform", ah_transform)?,
        key,
        policy,
    )
}
