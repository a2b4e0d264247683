//! Parse errors that say which field is wrong.

/// A parse or emit failure. `field` names the protocol field at fault, e.g.
/// "IPv4 total length" or "IKEv2 SA proposal transform length".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the structure does.
    #[error("{field}: truncated (need {need} bytes, have {have})")]
    Truncated {
        field: &'static str,
        need: usize,
        have: usize,
    },
    /// A field holds a value that is not allowed.
    #[error("{field}: invalid value {value}")]
    Invalid { field: &'static str, value: u64 },
    /// A field is inconsistent with another one (lengths that do not add up...).
    #[error("{field}: {why}")]
    Malformed {
        field: &'static str,
        why: &'static str,
    },
    /// The output buffer is too small for emit.
    #[error("{field}: output buffer too small (need {need} bytes, have {have})")]
    BufferTooSmall {
        field: &'static str,
        need: usize,
        have: usize,
    },
    /// An IKEv2 payload of a type this implementation does not know, sent with
    /// the critical bit set. RFC 7296 section 2.5 says the whole message must
    /// then be rejected and, for a request, answered with
    /// UNSUPPORTED_CRITICAL_PAYLOAD carrying this type, so the type is kept.
    #[error("IKEv2 payload type {payload_type}: not supported and marked critical")]
    UnsupportedCriticalPayload { payload_type: u8 },
    /// A fault inside numbered elements of nested lists, e.g. "IKEv2 SA proposal 2
    /// transform 3 length: truncated (need 8 bytes, have 4)". `field` is a
    /// `&'static str`, so the positions are carried here instead of in the name.
    #[error("{at} {field}: {fault}")]
    Located {
        at: Location,
        field: &'static str,
        fault: Fault,
    },
}

impl Error {
    /// Places this error inside the `index`-th (1-based) element of the list
    /// `list` (e.g. "IKEv2 SA proposal", 2). Called from the inside out, so
    /// the outermost list ends up first. Deeper than three lists, the innermost
    /// positions are dropped (the message stays readable; nothing nests deeper).
    pub fn within(self, list: &'static str, index: usize) -> Error {
        let step = (list, u16::try_from(index).unwrap_or(u16::MAX));
        let (at, field, fault) = match self {
            Error::Truncated { field, need, have } => {
                (Location::default(), field, Fault::Truncated { need, have })
            }
            Error::Invalid { field, value } => {
                (Location::default(), field, Fault::Invalid { value })
            }
            Error::Malformed { field, why } => {
                (Location::default(), field, Fault::Malformed { why })
            }
            Error::Located { at, field, fault } => (at, field, fault),
            other => return other,
        };
        Error::Located {
            at: at.prepend(step),
            field,
            fault,
        }
    }
}

/// Positions in nested numbered lists, outermost first: up to three
/// (list name, 1-based index) steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    pub steps: [(&'static str, u16); 3],
    pub depth: u8,
}

impl Location {
    fn prepend(self, step: (&'static str, u16)) -> Location {
        let mut steps = [("", 0); 3];
        steps[0] = step;
        let keep = usize::from(self.depth).min(2);
        steps[1..1 + keep].copy_from_slice(&self.steps[..keep]);
        Location {
            steps,
            depth: keep as u8 + 1,
        }
    }
}

impl core::fmt::Display for Location {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, (name, index)) in self.steps.iter().take(usize::from(self.depth)).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name} {index}")?;
        }
        Ok(())
    }
}

/// What is wrong, without the field name: the payload of [`Error::Located`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Truncated { need: usize, have: usize },
    Invalid { value: u64 },
    Malformed { why: &'static str },
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Fault::Truncated { need, have } => {
                write!(f, "truncated (need {need} bytes, have {have})")
            }
            Fault::Invalid { value } => write!(f, "invalid value {value}"),
            Fault::Malformed { why } => f.write_str(why),
        }
    }
}

pub type Result<T> = core::result::Result<T, Error>;
