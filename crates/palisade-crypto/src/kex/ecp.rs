//! ECDH over the NIST curves (RFC 5903) and X25519 (RFC 8031), via aws-lc-rs.
//!
//! RFC 5903 section 7: the KE payload carries x || y, each zero-padded to the
//! field length, *without* the 0x04 prefix of SEC 1; the shared secret is the x
//! coordinate only. aws-lc-rs speaks SEC 1 uncompressed points, so we strip
//! and add the prefix at this boundary. aws-lc decodes the point with
//! `EC_POINT_oct2point`, which rejects points that are not on the curve; the
//! identity has no uncompressed encoding, so it cannot get through either.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey};
use subtle::ConstantTimeEq;

use super::{check_len, GroupInfo, GroupKind, KeyExchange};
use crate::{Error, Secret};

fn algorithm(info: &GroupInfo) -> Result<&'static agreement::Algorithm, Error> {
    match info.id {
        super::ECP_256 => Ok(&agreement::ECDH_P256),
        super::ECP_384 => Ok(&agreement::ECDH_P384),
        super::ECP_521 => Ok(&agreement::ECDH_P521),
        super::CURVE25519 => Ok(&agreement::X25519),
        id => Err(Error::Unsupported { kind: "KE", id }),
    }
}

pub(super) fn generate(info: &'static GroupInfo) -> Result<Box<dyn KeyExchange>, Error> {
    let key = PrivateKey::generate(algorithm(info)?).map_err(|_| Error::Library(info.name))?;
    EcExchange::boxed(info, key)
}

pub(super) fn from_scalar(
    info: &'static GroupInfo,
    scalar: &[u8],
) -> Result<Box<dyn KeyExchange>, Error> {
    let key =
        PrivateKey::from_private_key(algorithm(info)?, scalar).map_err(|_| Error::KeyLength {
            name: info.name,
            got: scalar.len(),
            expected: info.shared_len,
        })?;
    EcExchange::boxed(info, key)
}

struct EcExchange {
    info: &'static GroupInfo,
    key: PrivateKey,
    /// Our KE payload data: x || y for ECP, u for X25519.
    public: Vec<u8>,
}

impl EcExchange {
    fn boxed(info: &'static GroupInfo, key: PrivateKey) -> Result<Box<dyn KeyExchange>, Error> {
        let public = key
            .compute_public_key()
            .map_err(|_| Error::Library(info.name))?;
        let public = match info.kind {
            // SEC 1 uncompressed: 0x04 || x || y. Keep x || y.
            GroupKind::Ecp => public.as_ref().get(1..).unwrap_or_default().to_vec(),
            _ => public.as_ref().to_vec(),
        };
        if public.len() != info.initiator_len {
            return Err(Error::Library(info.name));
        }
        Ok(Box::new(EcExchange { info, key, public }))
    }
}

impl KeyExchange for EcExchange {
    fn group(&self) -> u16 {
        self.info.id
    }

    fn public_value(&self) -> &[u8] {
        &self.public
    }

    fn complete(self: Box<Self>, peer: &[u8]) -> Result<Secret, Error> {
        let info = self.info;
        let alg = algorithm(info)?;
        let secret = match info.kind {
            GroupKind::Ecp => {
                check_len(
                    info,
                    peer.len(),
                    info.initiator_len,
                    "length is not 2x the field length (RFC 5903 section 7)",
                )?;
                let mut sec1 = Vec::with_capacity(peer.len() + 1);
                sec1.push(0x04);
                sec1.extend_from_slice(peer);
                agreement::agree(
                    &self.key,
                    UnparsedPublicKey::new(alg, &sec1),
                    Error::InvalidPublicValue {
                        group: info.name,
                        why: "point is not on the curve",
                    },
                    |z| Ok(Secret::from_slice(z)),
                )?
            }
            _ => {
                check_len(
                    info,
                    peer.len(),
                    info.initiator_len,
                    "length is not 32 bytes (RFC 8031 section 3)",
                )?;
                let low_order = Error::InvalidPublicValue {
                    group: info.name,
                    why: "low-order point: shared secret is all zero (RFC 8031 section 2)",
                };
                let z = agreement::agree(
                    &self.key,
                    UnparsedPublicKey::new(alg, peer),
                    low_order.clone(),
                    |z| Ok(Secret::from_slice(z)),
                )?;
                // RFC 8031 section 2: MUST check for the all-zero value and abort.
                // (aws-lc already refuses it; this keeps the rule visible and independent.)
                if bool::from(z.as_bytes().ct_eq(&[0u8; 32])) {
                    return Err(low_order);
                }
                z
            }
        };
        if secret.len() != info.shared_len {
            return Err(Error::Library(info.name));
        }
        Ok(secret)
    }
}
