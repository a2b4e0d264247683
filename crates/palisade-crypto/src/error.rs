//! One error type for the crate. Every variant names the thing that is wrong.

/// What went wrong in a crypto operation or a registry lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The transform ID is not in the IANA registry or palisade does not implement it.
    #[error("{kind} transform {id} is not supported")]
    Unsupported { kind: &'static str, id: u16 },
    /// A legacy transform was asked for without `allow_insecure`.
    #[error("{name} is insecure ({why}); set allow_insecure = true to use it")]
    Insecure {
        name: &'static str,
        why: &'static str,
    },
    /// A key of the wrong size was given.
    #[error("{name}: key is {got} bytes, expected {expected}")]
    KeyLength {
        name: &'static str,
        got: usize,
        expected: usize,
    },
    /// An IV/nonce of the wrong size was given.
    #[error("{name}: IV is {got} bytes, expected {expected}")]
    IvLength {
        name: &'static str,
        got: usize,
        expected: usize,
    },
    /// Data length is not acceptable (e.g. not a multiple of the block size).
    #[error("{name}: data length {got} is invalid ({why})")]
    DataLength {
        name: &'static str,
        got: usize,
        why: &'static str,
    },
    /// Integrity check (ICV / tag) did not verify.
    #[error("integrity check failed")]
    IntegrityCheckFailed,
    /// The peer's public key-exchange value is invalid.
    #[error("{group}: peer public value rejected ({why})")]
    InvalidPublicValue {
        group: &'static str,
        why: &'static str,
    },
    /// A signature did not verify, or a key could not be parsed.
    #[error("signature: {0}")]
    Signature(&'static str),
    /// The underlying library reported a failure it does not explain.
    #[error("{0}: operation failed in the crypto library")]
    Library(&'static str),
}
