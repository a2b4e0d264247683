//! ML-KEM-512/768/1024 (FIPS 203) as IKEv2 key exchange methods 35-37, via
//! aws-lc-rs. RFC 9370 (and draft-ietf-ipsecme-ikev2-mlkem): the initiator
//! sends its encapsulation key, the responder answers with a ciphertext, and
//! the 32-byte K is the shared secret.

use aws_lc_rs::kem::{self, AlgorithmId, Ciphertext, DecapsulationKey, EncapsulationKey};

use super::{check_len, GroupInfo, KeyExchange};
use crate::{Error, Secret};

fn algorithm(info: &GroupInfo) -> Result<(&'static kem::Algorithm<AlgorithmId>, usize), Error> {
    // The second value is k, the module rank, which fixes where the
    // encapsulation key sits inside an expanded decapsulation key.
    match info.id {
        super::ML_KEM_512 => Ok((&kem::ML_KEM_512, 2)),
        super::ML_KEM_768 => Ok((&kem::ML_KEM_768, 3)),
        super::ML_KEM_1024 => Ok((&kem::ML_KEM_1024, 4)),
        id => Err(Error::Unsupported { kind: "KE", id }),
    }
}

pub(super) fn generate(info: &'static GroupInfo) -> Result<Box<dyn KeyExchange>, Error> {
    let (alg, _) = algorithm(info)?;
    let dk = DecapsulationKey::generate(alg).map_err(|_| Error::Library(info.name))?;
    let ek = dk
        .encapsulation_key()
        .map_err(|_| Error::Library(info.name))?;
    let public = ek
        .key_bytes()
        .map_err(|_| Error::Library(info.name))?
        .as_ref()
        .to_vec();
    Ok(Box::new(MlKem { info, dk, public }))
}

/// FIPS 203 expanded decapsulation key: dk_PKE (384k) || ek (384k + 32) || H(ek) || z.
pub(super) fn from_decapsulation_key(
    info: &'static GroupInfo,
    dk_bytes: &[u8],
) -> Result<Box<dyn KeyExchange>, Error> {
    let (alg, k) = algorithm(info)?;
    let bad_len = Error::KeyLength {
        name: info.name,
        got: dk_bytes.len(),
        expected: 768 * k + 96,
    };
    let dk = DecapsulationKey::new(alg, dk_bytes).map_err(|_| bad_len.clone())?;
    let public = dk_bytes.get(384 * k..768 * k + 32).ok_or(bad_len)?.to_vec();
    Ok(Box::new(MlKem { info, dk, public }))
}

/// The responder's side: encapsulate to the initiator's key.
pub(super) fn encapsulate(
    info: &'static GroupInfo,
    ek_bytes: &[u8],
) -> Result<(Vec<u8>, Secret), Error> {
    let (alg, k) = algorithm(info)?;
    check_len(
        info,
        ek_bytes.len(),
        info.initiator_len,
        "encapsulation key has the wrong length (FIPS 203)",
    )?;
    // FIPS 203 section 7.2 input check. aws-lc does not run it on import (an
    // out-of-range key is silently reduced), so we do.
    if !ek_bytes.get(..384 * k).is_some_and(coefficients_in_range) {
        return Err(Error::InvalidPublicValue {
            group: info.name,
            why: "encapsulation key has a coefficient >= q (FIPS 203 section 7.2 modulus check)",
        });
    }
    let ek = EncapsulationKey::new(alg, ek_bytes).map_err(|_| Error::InvalidPublicValue {
        group: info.name,
        why: "encapsulation key rejected by aws-lc",
    })?;
    let (ct, k) = ek.encapsulate().map_err(|_| Error::Library(info.name))?;
    Ok((ct.as_ref().to_vec(), Secret::from_slice(k.as_ref())))
}

struct MlKem {
    info: &'static GroupInfo,
    dk: DecapsulationKey<AlgorithmId>,
    public: Vec<u8>,
}

impl KeyExchange for MlKem {
    fn group(&self) -> u16 {
        self.info.id
    }

    fn public_value(&self) -> &[u8] {
        &self.public
    }

    fn complete(self: Box<Self>, peer: &[u8]) -> Result<Secret, Error> {
        // FIPS 203 section 7.3: the only input check decapsulation needs is the length;
        // a wrong ciphertext yields the implicit-rejection key, never an error.
        check_len(
            self.info,
            peer.len(),
            self.info.responder_len,
            "ciphertext has the wrong length (FIPS 203)",
        )?;
        let k = self
            .dk
            .decapsulate(Ciphertext::from(peer))
            .map_err(|_| Error::Library(self.info.name))?;
        Ok(Secret::from_slice(k.as_ref()))
    }
}

/// FIPS 203 section 7.2: `ByteEncode12(ByteDecode12(t)) == t`, i.e. every 12-bit
/// little-endian coefficient packed in `t` (two per three bytes) is below q = 3329.
fn coefficients_in_range(t: &[u8]) -> bool {
    const Q: u16 = 3329;
    t.chunks_exact(3).all(|b| {
        let (b0, b1, b2) = (u16::from(b[0]), u16::from(b[1]), u16::from(b[2]));
        let c0 = b0 | ((b1 & 0x0f) << 8);
        let c1 = (b1 >> 4) | (b2 << 4);
        c0 < Q && c1 < Q
    })
}
