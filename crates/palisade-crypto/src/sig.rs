//! Signatures for IKE authentication: RSA PKCS#1 v1.5 and RSA-PSS, ECDSA over
//! P-256/384/521, Ed25519, all via aws-lc-rs `signature`.
//!
//! IKEv2 carries signatures in two ways, and [`Scheme`] names both:
//!
//! * the old per-algorithm AUTH methods: 1 "RSA Digital Signature" (PKCS#1 v1.5
//!   with SHA-1) and 9/10/11 "ECDSA with SHA-256/384/512 on the P-256/384/521
//!   curve" (RFC 4754), whose signature is the raw `r || s`, each zero-padded to
//!   the field length;
//! * AUTH method 14 "Digital Signature" (RFC 7427), where an AlgorithmIdentifier
//!   names the scheme and ECDSA signatures are DER `Ecdsa-Sig-Value`s; Ed25519
//!   rides on it too (RFC 8420).
//!
//! Private keys load from PKCS#8 DER. Public keys for verification may be a
//! SubjectPublicKeyInfo DER or the raw form of the key type (RSA: PKCS#1
//! `RSAPublicKey`; ECDSA: SEC 1 uncompressed point; Ed25519: 32 bytes).
//! SHA-1 schemes are verify-only and need `allow_insecure`.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, ParsedPublicKey,
    RsaEncoding, RsaKeyPair, VerificationAlgorithm,
};

use crate::{Error, Policy};

/// A signature scheme: algorithm, hash, and (for ECDSA) signature encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// RSASSA-PKCS1-v1_5 with SHA-1: IKEv2 AUTH method 1. Verify-only, legacy.
    RsaPkcs1Sha1,
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    /// RSASSA-PSS, MGF1 with the same hash, salt length = hash length (RFC 8247 2.5).
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    /// ECDSA, DER `Ecdsa-Sig-Value` (RFC 7427 / X.509 form).
    EcdsaP256Sha256,
    EcdsaP384Sha384,
    EcdsaP521Sha512,
    /// ECDSA, raw `r || s` (RFC 4754): IKEv2 AUTH method 9.
    EcdsaP256Sha256Raw,
    /// RFC 4754: IKEv2 AUTH method 10.
    EcdsaP384Sha384Raw,
    /// RFC 4754: IKEv2 AUTH method 11.
    EcdsaP521Sha512Raw,
    /// PureEdDSA over edwards25519 (RFC 8032, RFC 8420).
    Ed25519,
}

impl Scheme {
    /// Every scheme palisade knows.
    pub const ALL: [Scheme; 14] = [
        Scheme::RsaPkcs1Sha1,
        Scheme::RsaPkcs1Sha256,
        Scheme::RsaPkcs1Sha384,
        Scheme::RsaPkcs1Sha512,
        Scheme::RsaPssSha256,
        Scheme::RsaPssSha384,
        Scheme::RsaPssSha512,
        Scheme::EcdsaP256Sha256,
        Scheme::EcdsaP384Sha384,
        Scheme::EcdsaP521Sha512,
        Scheme::EcdsaP256Sha256Raw,
        Scheme::EcdsaP384Sha384Raw,
        Scheme::EcdsaP521Sha512Raw,
        Scheme::Ed25519,
    ];

    /// Name for logs and errors; for method-14 schemes it is the name of the
    /// RFC 7427 AlgorithmIdentifier (the X.509 signature algorithm).
    pub fn name(self) -> &'static str {
        match self {
            Scheme::RsaPkcs1Sha1 => "sha1WithRSAEncryption",
            Scheme::RsaPkcs1Sha256 => "sha256WithRSAEncryption",
            Scheme::RsaPkcs1Sha384 => "sha384WithRSAEncryption",
            Scheme::RsaPkcs1Sha512 => "sha512WithRSAEncryption",
            Scheme::RsaPssSha256 => "RSASSA-PSS (SHA-256)",
            Scheme::RsaPssSha384 => "RSASSA-PSS (SHA-384)",
            Scheme::RsaPssSha512 => "RSASSA-PSS (SHA-512)",
            Scheme::EcdsaP256Sha256 => "ecdsa-with-SHA256 (P-256)",
            Scheme::EcdsaP384Sha384 => "ecdsa-with-SHA384 (P-384)",
            Scheme::EcdsaP521Sha512 => "ecdsa-with-SHA512 (P-521)",
            Scheme::EcdsaP256Sha256Raw => "ECDSA with SHA-256 on the P-256 curve",
            Scheme::EcdsaP384Sha384Raw => "ECDSA with SHA-384 on the P-384 curve",
            Scheme::EcdsaP521Sha512Raw => "ECDSA with SHA-512 on the P-521 curve",
            Scheme::Ed25519 => "Ed25519",
        }
    }

    /// The IKEv2 AUTH method that carries this scheme: 1 and 9/10/11 for the
    /// fixed-algorithm methods, 14 (RFC 7427 Digital Signature) for the rest.
    pub fn ikev2_auth_method(self) -> u8 {
        match self {
            Scheme::RsaPkcs1Sha1 => 1,
            Scheme::EcdsaP256Sha256Raw => 9,
            Scheme::EcdsaP384Sha384Raw => 10,
            Scheme::EcdsaP521Sha512Raw => 11,
            _ => 14,
        }
    }

    /// The scheme of an IKEv2 fixed-algorithm AUTH method (1, 9, 10, 11).
    pub fn from_ikev2_auth_method(method: u8) -> Option<Scheme> {
        match method {
            1 => Some(Scheme::RsaPkcs1Sha1),
            9 => Some(Scheme::EcdsaP256Sha256Raw),
            10 => Some(Scheme::EcdsaP384Sha384Raw),
            11 => Some(Scheme::EcdsaP521Sha512Raw),
            _ => None,
        }
    }

    /// Why the scheme is legacy, if it is.
    pub fn insecure(self) -> Option<&'static str> {
        match self {
            Scheme::RsaPkcs1Sha1 => {
                Some("SHA-1 signatures are forgeable by chosen-prefix collisions (RFC 8247 3.2)")
            }
            _ => None,
        }
    }

    /// The DER AlgorithmIdentifier that names this scheme in an RFC 7427
    /// Digital Signature AUTH payload (RFC 7427 Appendix A; RFC 8420 for
    /// Ed25519). `None` for the raw-ECDSA schemes of AUTH methods 9/10/11.
    pub fn algorithm_identifier(self) -> Option<&'static [u8]> {
        match self {
            Scheme::RsaPkcs1Sha1 => Some(&RSA_SHA1_ALGID),
            Scheme::RsaPkcs1Sha256 => Some(&RSA_SHA256_ALGID),
            Scheme::RsaPkcs1Sha384 => Some(&RSA_SHA384_ALGID),
            Scheme::RsaPkcs1Sha512 => Some(&RSA_SHA512_ALGID),
            Scheme::RsaPssSha256 => Some(&PSS_SHA256_ALGID),
            Scheme::RsaPssSha384 => Some(&PSS_SHA384_ALGID),
            Scheme::RsaPssSha512 => Some(&PSS_SHA512_ALGID),
            Scheme::EcdsaP256Sha256 => Some(&ECDSA_SHA256_ALGID),
            Scheme::EcdsaP384Sha384 => Some(&ECDSA_SHA384_ALGID),
            Scheme::EcdsaP521Sha512 => Some(&ECDSA_SHA512_ALGID),
            Scheme::Ed25519 => Some(&ED25519_ALGID),
            Scheme::EcdsaP256Sha256Raw
            | Scheme::EcdsaP384Sha384Raw
            | Scheme::EcdsaP521Sha512Raw => None,
        }
    }

    /// The scheme an RFC 7427 AlgorithmIdentifier names. Matching is on the
    /// exact DER of Appendix A, except that the RSA PKCS#1 identifiers are also
    /// accepted without their NULL parameters (RFC 4055 section 2.1 allows both).
    /// ECDSA identifiers name only the hash; the curve comes from the key, and
    /// palisade pairs each hash with its usual curve (P-256/SHA-256, ...).
    pub fn from_algorithm_identifier(der: &[u8]) -> Option<Scheme> {
        let exact = Scheme::ALL
            .into_iter()
            .find(|s| s.algorithm_identifier() == Some(der));
        exact.or_else(|| {
            // 30 0b 06 09 <PKCS#1 OID>: the same identifier with parameters absent.
            let (head, oid) = (der.get(..2)?, der.get(2..)?);
            if head != [0x30, 0x0b] {
                return None;
            }
            [
                Scheme::RsaPkcs1Sha1,
                Scheme::RsaPkcs1Sha256,
                Scheme::RsaPkcs1Sha384,
                Scheme::RsaPkcs1Sha512,
            ]
            .into_iter()
            .find(|s| s.algorithm_identifier().and_then(|a| a.get(2..13)) == Some(oid))
        })
    }

    fn verification_algorithm(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Scheme::RsaPkcs1Sha1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            Scheme::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Scheme::RsaPkcs1Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Scheme::RsaPkcs1Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Scheme::RsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
            Scheme::RsaPssSha384 => &signature::RSA_PSS_2048_8192_SHA384,
            Scheme::RsaPssSha512 => &signature::RSA_PSS_2048_8192_SHA512,
            Scheme::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
            Scheme::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1,
            Scheme::EcdsaP521Sha512 => &signature::ECDSA_P521_SHA512_ASN1,
            Scheme::EcdsaP256Sha256Raw => &signature::ECDSA_P256_SHA256_FIXED,
            Scheme::EcdsaP384Sha384Raw => &signature::ECDSA_P384_SHA384_FIXED,
            Scheme::EcdsaP521Sha512Raw => &signature::ECDSA_P521_SHA512_FIXED,
            Scheme::Ed25519 => &signature::ED25519,
        }
    }

    fn rsa_encoding(self) -> Option<&'static dyn RsaEncoding> {
        match self {
            Scheme::RsaPkcs1Sha256 => Some(&signature::RSA_PKCS1_SHA256),
            Scheme::RsaPkcs1Sha384 => Some(&signature::RSA_PKCS1_SHA384),
            Scheme::RsaPkcs1Sha512 => Some(&signature::RSA_PKCS1_SHA512),
            Scheme::RsaPssSha256 => Some(&signature::RSA_PSS_SHA256),
            Scheme::RsaPssSha384 => Some(&signature::RSA_PSS_SHA384),
            Scheme::RsaPssSha512 => Some(&signature::RSA_PSS_SHA512),
            _ => None,
        }
    }

    fn ecdsa_signing(self) -> Option<&'static EcdsaSigningAlgorithm> {
        match self {
            Scheme::EcdsaP256Sha256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
            Scheme::EcdsaP384Sha384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
            Scheme::EcdsaP521Sha512 => Some(&signature::ECDSA_P521_SHA512_ASN1_SIGNING),
            Scheme::EcdsaP256Sha256Raw => Some(&signature::ECDSA_P256_SHA256_FIXED_SIGNING),
            Scheme::EcdsaP384Sha384Raw => Some(&signature::ECDSA_P384_SHA384_FIXED_SIGNING),
            Scheme::EcdsaP521Sha512Raw => Some(&signature::ECDSA_P521_SHA512_FIXED_SIGNING),
            _ => None,
        }
    }
}

// RFC 7427 Appendix A AlgorithmIdentifiers (byte-identical to libreswan
// include/ietf_constants.h ASN1_*_BLOB and to a DER encoder run over the OIDs).
const RSA_SHA1_ALGID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
];
const RSA_SHA256_ALGID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
const RSA_SHA384_ALGID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
];
const RSA_SHA512_ALGID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
];
const ECDSA_SHA256_ALGID: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
const ECDSA_SHA384_ALGID: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
const ECDSA_SHA512_ALGID: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04,
];
const ED25519_ALGID: [u8; 7] = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// RSASSA-PSS AlgorithmIdentifier with explicit parameters: hash `h` (last OID
/// byte of id-sha256/384/512), MGF1 with the same hash, salt length `salt`.
const fn pss_algid(h: u8, salt: u8) -> [u8; 67] {
    [
        0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34,
        0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, h,
        0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
        0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, h,
        0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, salt,
    ]
}
const PSS_SHA256_ALGID: [u8; 67] = pss_algid(0x01, 32);
const PSS_SHA384_ALGID: [u8; 67] = pss_algid(0x02, 48);
const PSS_SHA512_ALGID: [u8; 67] = pss_algid(0x03, 64);

/// Something that signs IKE AUTH payload data with a private key.
pub trait Signer: Send + Sync {
    fn scheme(&self) -> Scheme;
    /// Sign `msg` (the whole octets, hashing is part of the scheme).
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error>;
    /// The matching public key in raw form (RSA: PKCS#1 `RSAPublicKey` DER;
    /// ECDSA: SEC 1 uncompressed point; Ed25519: 32 bytes). [`verifier`] takes it.
    fn public_key(&self) -> &[u8];
}

/// Something that checks a signature with a public key.
pub trait Verifier: Send + Sync {
    fn scheme(&self) -> Scheme;
    /// `Ok(())` only if `signature` is a valid signature of `msg`.
    fn verify(&self, msg: &[u8], signature: &[u8]) -> Result<(), Error>;
}

enum KeyPairKind {
    Rsa(RsaKeyPair, &'static dyn RsaEncoding),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

struct AwsSigner {
    scheme: Scheme,
    key: KeyPairKind,
    rng: SystemRandom,
}

/// Load a private key from unencrypted PKCS#8 DER for `scheme`.
/// SHA-1 schemes cannot sign: palisade only verifies them for old peers.
pub fn signer_from_pkcs8(
    scheme: Scheme,
    pkcs8: &[u8],
    policy: Policy,
) -> Result<Box<dyn Signer>, Error> {
    let _ = policy;
    let rejected = |_| Error::Signature("private key is not valid PKCS#8 for this scheme");
    let key = if let Some(enc) = scheme.rsa_encoding() {
        KeyPairKind::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?, enc)
    } else if let Some(alg) = scheme.ecdsa_signing() {
        KeyPairKind::Ecdsa(EcdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(rejected)?)
    } else if scheme == Scheme::Ed25519 {
        KeyPairKind::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(rejected)?)
    } else {
        return Err(Error::Signature(
            "SHA-1 signatures are verify-only in palisade",
        ));
    };
    Ok(Box::new(AwsSigner {
        scheme,
        key,
        rng: SystemRandom::new(),
    }))
}

impl Signer for AwsSigner {
    fn scheme(&self) -> Scheme {
        self.scheme
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        let failed = |_| Error::Library("signature");
        match &self.key {
            KeyPairKind::Rsa(k, enc) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(*enc, &self.rng, msg, &mut sig).map_err(failed)?;
                Ok(sig)
            }
            KeyPairKind::Ecdsa(k) => Ok(k.sign(&self.rng, msg).map_err(failed)?.as_ref().to_vec()),
            KeyPairKind::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }

    fn public_key(&self) -> &[u8] {
        match &self.key {
            KeyPairKind::Rsa(k, _) => k.public_key().as_ref(),
            KeyPairKind::Ecdsa(k) => k.public_key().as_ref(),
            KeyPairKind::Ed25519(k) => k.public_key().as_ref(),
        }
    }
}

struct AwsVerifier {
    scheme: Scheme,
    key: ParsedPublicKey,
}

/// A verifier for `scheme` from a SubjectPublicKeyInfo DER or the raw public key.
/// The key is parsed (and for EC, checked to be on the curve) here, so a bad
/// key is reported as such and not as a bad signature.
pub fn verifier(
    scheme: Scheme,
    public_key: &[u8],
    policy: Policy,
) -> Result<Box<dyn Verifier>, Error> {
    if let Some(why) = scheme.insecure() {
        policy.check_insecure(scheme.name(), why)?;
    }
    let key = ParsedPublicKey::new(scheme.verification_algorithm(), public_key)
        .map_err(|_| Error::Signature("public key cannot be parsed for this scheme"))?;
    Ok(Box::new(AwsVerifier { scheme, key }))
}

impl Verifier for AwsVerifier {
    fn scheme(&self) -> Scheme {
        self.scheme
    }

    fn verify(&self, msg: &[u8], signature: &[u8]) -> Result<(), Error> {
        self.key
            .verify_sig(msg, signature)
            .map_err(|_| Error::Signature("signature does not verify"))
    }
}
