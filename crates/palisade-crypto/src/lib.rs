//! palisade-crypto: every transform the IPsec and IKE RFCs define, by IANA number.
//!
//! The rest of palisade sees only the small traits in this crate ([`Aead`],
//! [`Cipher`], [`Integ`], [`Prf`], key exchange, signatures) and the registry that
//! maps IANA transform IDs to implementations. aws-lc-rs does the work wherever it
//! can; RustCrypto crates fill the gaps (see docs/ARCHITECTURE.md).
//!
//! Legacy transforms (DES, 3DES, MD5, RIPEMD-160, MODP-768/1024) are refused unless
//! the caller passes a [`Policy`] with `allow_insecure` set.

pub mod error;
pub mod policy;
pub mod secret;

pub mod aead;
pub mod cipher;
pub mod integ;
pub mod prf;
pub mod proposal;
pub mod registry;

pub mod kat;
pub mod kat_asym;
pub mod kat_sym;

pub mod kdf;
pub mod kex;
pub mod sig;

pub use error::Error;
pub use policy::Policy;
pub use secret::Secret;
