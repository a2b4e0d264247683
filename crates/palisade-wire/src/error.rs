//! Parse errors that say which field is wrong.

/// A parse or emit failure. `field` names the protocol field at fault, e.g.
/// "IPv4 total length" or "IKEv2 SA proposal transform length".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the structure does.
    #[error("{field}: truncated (need {need} bytes, have {have})")]
    Truncated { field: &'static str, need: usize, have: usize },
    /// A field holds a value that is not allowed.
    #[error("{field}: invalid value {value}")]
    Invalid { field: &'static str, value: u64 },
    /// A field is inconsistent with another one (lengths that do not add up...).
    #[error("{field}: {why}")]
    Malformed { field: &'static str, why: &'static str },
    /// The output buffer is too small for emit.
    #[error("{field}: output buffer too small (need {need} bytes, have {have})")]
    BufferTooSmall { field: &'static str, need: usize, have: usize },
}

pub type Result<T> = core::result::Result<T, Error>;
