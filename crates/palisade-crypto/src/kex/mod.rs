//! Key exchange methods (IKEv2 transform type 4) by IANA number: finite-field
//! Diffie-Hellman (MODP), ECDH over NIST curves (ECP), X25519 and ML-KEM.
//!
//! One interface covers both Diffie-Hellman and KEMs, because IKEv2 (RFC 7296,
//! RFC 9370) moves them through the same KE payload:
//!
//! * the initiator calls [`initiate`], sends [`KeyExchange::public_value`], and
//!   later feeds the responder's KE data to [`KeyExchange::complete`];
//! * the responder calls [`respond`] with the initiator's KE data and gets back
//!   its own KE data plus the shared secret in one step. For DH that is
//!   "generate a key pair and agree"; for ML-KEM it is "encapsulate".
//!
//! Every value that comes from the peer is validated before use (RFC 6989 for
//! MODP, on-curve checks for ECP, the all-zero check of RFC 8031 for X25519,
//! exact lengths for everything) and rejected with
//! [`Error::InvalidPublicValue`] naming the group.

mod ecp;
mod mlkem;
mod modp;

use crate::{Error, Policy, Secret};

pub const MODP_768: u16 = 1;
pub const MODP_1024: u16 = 2;
pub const MODP_1536: u16 = 5;
pub const MODP_2048: u16 = 14;
pub const MODP_3072: u16 = 15;
pub const MODP_4096: u16 = 16;
pub const MODP_6144: u16 = 17;
pub const MODP_8192: u16 = 18;
pub const ECP_256: u16 = 19;
pub const ECP_384: u16 = 20;
pub const ECP_521: u16 = 21;
pub const CURVE25519: u16 = 31;
pub const ML_KEM_512: u16 = 35;
pub const ML_KEM_768: u16 = 36;
pub const ML_KEM_1024: u16 = 37;

/// The family a key exchange method belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// Finite-field DH over an RFC 2409 / RFC 3526 safe prime, generator 2.
    Modp,
    /// ECDH over a NIST prime curve, RFC 5903 encoding.
    Ecp,
    /// X25519, RFC 8031.
    Curve25519,
    /// A key encapsulation mechanism (RFC 9370 context).
    Kem,
}

/// Static facts about one key exchange method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupInfo {
    /// IANA transform ID (transform type 4).
    pub id: u16,
    /// Short name used in logs and errors, e.g. "MODP_2048".
    pub name: &'static str,
    pub kind: GroupKind,
    /// Length of the initiator's KE data (DH public value or KEM encapsulation key).
    pub initiator_len: usize,
    /// Length of the responder's KE data (DH public value or KEM ciphertext).
    pub responder_len: usize,
    /// Length of the shared secret (g^ir for DH, K for a KEM).
    pub shared_len: usize,
    /// Why the method is legacy, if it is; such methods need `allow_insecure`.
    pub insecure: Option<&'static str>,
}

const fn dh(
    id: u16,
    name: &'static str,
    kind: GroupKind,
    pub_len: usize,
    shared: usize,
) -> GroupInfo {
    GroupInfo {
        id,
        name,
        kind,
        initiator_len: pub_len,
        responder_len: pub_len,
        shared_len: shared,
        insecure: None,
    }
}

const WEAK_MODP: &str =
    "finite-field group below 1536 bits, breakable with precomputation (RFC 8247 section 2.4)";

/// Every key exchange method palisade implements, in IANA order.
pub const GROUPS: &[GroupInfo] = &[
    GroupInfo {
        insecure: Some(WEAK_MODP),
        ..dh(MODP_768, "MODP_768", GroupKind::Modp, 96, 96)
    },
    GroupInfo {
        insecure: Some(WEAK_MODP),
        ..dh(MODP_1024, "MODP_1024", GroupKind::Modp, 128, 128)
    },
    dh(MODP_1536, "MODP_1536", GroupKind::Modp, 192, 192),
    dh(MODP_2048, "MODP_2048", GroupKind::Modp, 256, 256),
    dh(MODP_3072, "MODP_3072", GroupKind::Modp, 384, 384),
    dh(MODP_4096, "MODP_4096", GroupKind::Modp, 512, 512),
    dh(MODP_6144, "MODP_6144", GroupKind::Modp, 768, 768),
    dh(MODP_8192, "MODP_8192", GroupKind::Modp, 1024, 1024),
    dh(ECP_256, "ECP_256", GroupKind::Ecp, 64, 32),
    dh(ECP_384, "ECP_384", GroupKind::Ecp, 96, 48),
    dh(ECP_521, "ECP_521", GroupKind::Ecp, 132, 66),
    dh(CURVE25519, "CURVE_25519", GroupKind::Curve25519, 32, 32),
    GroupInfo {
        id: ML_KEM_512,
        name: "ML_KEM_512",
        kind: GroupKind::Kem,
        initiator_len: 800,
        responder_len: 768,
        shared_len: 32,
        insecure: None,
    },
    GroupInfo {
        id: ML_KEM_768,
        name: "ML_KEM_768",
        kind: GroupKind::Kem,
        initiator_len: 1184,
        responder_len: 1088,
        shared_len: 32,
        insecure: None,
    },
    GroupInfo {
        id: ML_KEM_1024,
        name: "ML_KEM_1024",
        kind: GroupKind::Kem,
        initiator_len: 1568,
        responder_len: 1568,
        shared_len: 32,
        insecure: None,
    },
];

/// Facts about key exchange method `id`, or `None` if palisade does not implement it.
pub fn group_info(id: u16) -> Option<&'static GroupInfo> {
    GROUPS.iter().find(|g| g.id == id)
}

/// Short name of key exchange method `id` ("MODP_2048", "ECP_256", "CURVE_25519",
/// "ML_KEM_768", ...), or `None` if palisade does not implement it.
pub fn group_name(id: u16) -> Option<&'static str> {
    group_info(id).map(|g| g.name)
}

/// Length of the KE payload data the initiator sends for `id` (for DH this is
/// also what the responder sends; for a KEM the responder sends
/// [`GroupInfo::responder_len`] bytes).
pub fn public_value_len(id: u16) -> Option<usize> {
    group_info(id).map(|g| g.initiator_len)
}

/// Whether `id` is a KEM (the two sides send different kinds of value).
pub fn is_kem(id: u16) -> bool {
    matches!(
        group_info(id),
        Some(GroupInfo {
            kind: GroupKind::Kem,
            ..
        })
    )
}

/// One side's half of a key exchange, created by [`initiate`] (or, for
/// known-answer tests, [`from_private_key`]).
pub trait KeyExchange: Send + Sync {
    /// IANA transform ID of the method.
    fn group(&self) -> u16;
    /// What goes into our KE payload: the DH public value (MODP: zero-padded to
    /// the prime length; ECP: x || y; X25519: u) or the ML-KEM encapsulation key.
    fn public_value(&self) -> &[u8];
    /// Consume the peer's KE data (DH public value or KEM ciphertext) and return
    /// the shared secret. Consumes `self` so the private key is used once.
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<Secret, Error>;
}

fn lookup(id: u16, policy: Policy) -> Result<&'static GroupInfo, Error> {
    let info = group_info(id).ok_or(Error::Unsupported { kind: "KE", id })?;
    if let Some(why) = info.insecure {
        policy.check_insecure(info.name, why)?;
    }
    Ok(info)
}

/// Start a key exchange as the initiator: generate a fresh private key for
/// `group` and return the object holding it. Legacy groups (MODP-768/1024) are
/// refused unless `policy.allow_insecure`.
pub fn initiate(group: u16, policy: Policy) -> Result<Box<dyn KeyExchange>, Error> {
    let info = lookup(group, policy)?;
    match info.kind {
        GroupKind::Modp => modp::generate(info),
        GroupKind::Ecp | GroupKind::Curve25519 => ecp::generate(info),
        GroupKind::Kem => mlkem::generate(info),
    }
}

/// Answer a key exchange as the responder: validate the initiator's KE data
/// `peer_value`, and return our KE data and the shared secret. For DH this
/// generates a key pair and agrees; for ML-KEM it encapsulates to the
/// initiator's encapsulation key and returns the ciphertext.
pub fn respond(group: u16, peer_value: &[u8], policy: Policy) -> Result<(Vec<u8>, Secret), Error> {
    let info = lookup(group, policy)?;
    if info.kind == GroupKind::Kem {
        return mlkem::encapsulate(info, peer_value);
    }
    let ours = initiate(group, policy)?;
    let public = ours.public_value().to_vec();
    let secret = ours.complete(peer_value)?;
    Ok((public, secret))
}

/// Build a key exchange from a known private key. This exists for known-answer
/// tests (RFC 5903, RFC 7748, Wycheproof, `palisade selftest`); live exchanges
/// must use [`initiate`] so that every private key is fresh.
///
/// `private` is: MODP: the exponent x, big-endian, 1 to 80 bytes; ECP: the
/// scalar, big-endian, exactly the field length; X25519: the 32-byte scalar;
/// ML-KEM: the FIPS 203 expanded decapsulation key (which embeds the
/// encapsulation key that becomes the public value).
pub fn from_private_key(
    group: u16,
    private: &[u8],
    policy: Policy,
) -> Result<Box<dyn KeyExchange>, Error> {
    let info = lookup(group, policy)?;
    match info.kind {
        GroupKind::Modp => modp::from_exponent(info, private),
        GroupKind::Ecp | GroupKind::Curve25519 => ecp::from_scalar(info, private),
        GroupKind::Kem => mlkem::from_decapsulation_key(info, private),
    }
}

/// Reject peer data whose length is not the one the group defines.
fn check_len(
    info: &GroupInfo,
    got: usize,
    expected: usize,
    why: &'static str,
) -> Result<(), Error> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::InvalidPublicValue {
            group: info.name,
            why,
        })
    }
}
