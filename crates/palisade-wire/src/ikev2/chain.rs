//! The generic payload header and the walk along a payload chain
//! (RFC 7296 sections 2.5 and 3.2).
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Each payload's type is named by the *previous* header's Next Payload field
//! (the IKE header's for the first one). The SK and SKF payloads are different:
//! their Next Payload names the first payload *inside* the ciphertext, so the
//! chain ends with them and they must be last (RFC 7296 section 3.14).

use super::consts::payload;
use crate::{Error, Result};

/// Size of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;

const CRITICAL: u8 = 0x80;

/// A read/write view of a generic payload header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenericPayload<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GenericPayload<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        GenericPayload { buffer }
    }

    /// Checks the header fits and that Payload Length covers the header and
    /// fits in the buffer; afterwards no accessor panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = GenericPayload::new_unchecked(buffer);
        let have = p.buffer.as_ref().len();
        if have < GENERIC_HEADER_LEN {
            return Err(Error::Truncated {
                field: "IKEv2 payload header",
                need: GENERIC_HEADER_LEN,
                have,
            });
        }
        let len = usize::from(p.payload_length());
        if len < GENERIC_HEADER_LEN {
            return Err(Error::Invalid {
                field: "IKEv2 payload length",
                value: len as u64,
            });
        }
        if len > have {
            return Err(Error::Truncated {
                field: "IKEv2 payload length",
                need: len,
                have,
            });
        }
        Ok(p)
    }

    pub fn next_payload(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[1] & CRITICAL != 0
    }
    /// Length of the payload including this 4-byte header.
    pub fn payload_length(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }
    /// The payload body (after the generic header, up to Payload Length).
    pub fn body(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.payload_length()).min(b.len());
        &b[GENERIC_HEADER_LEN.min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GenericPayload<T> {
    pub fn set_next_payload(&mut self, v: u8) {
        self.buffer.as_mut()[0] = v;
    }
    /// Sets the C bit and clears the reserved bits (RFC 7296: send them zero).
    pub fn set_critical(&mut self, v: bool) {
        self.buffer.as_mut()[1] = if v { CRITICAL } else { 0 };
    }
    pub fn set_payload_length(&mut self, v: u16) {
        self.buffer.as_mut()[2..4].copy_from_slice(&v.to_be_bytes());
    }
}

/// True for the payload types this codec parses (RFC 7296 section 3.2 and SKF).
pub fn is_known(t: u8) -> bool {
    matches!(t, payload::SA..=payload::EAP | payload::SKF)
}

/// One payload met on the chain, body not yet interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// This payload's type (from the previous Next Payload field).
    pub payload_type: u8,
    /// This payload's own Next Payload field. For SK/SKF it is the type of the
    /// first payload inside the ciphertext.
    pub next_payload: u8,
    pub critical: bool,
    /// Offset of the generic header within the chain buffer.
    pub offset: usize,
    /// The bytes after the generic header. Callers that must hash a payload
    /// exactly as received (IDi/IDr for AUTH, RFC 7296 section 2.15) use these.
    pub body: &'a [u8],
}

/// Walks a payload chain. Known payloads are yielded; unknown ones without the
/// critical bit are skipped, as RFC 7296 section 2.5 requires; an unknown one
/// with the critical bit ends the walk with
/// [`Error::UnsupportedCriticalPayload`] so the engine can answer
/// UNSUPPORTED_CRITICAL_PAYLOAD. After an error the iterator yields nothing.
#[derive(Debug, Clone)]
pub struct PayloadIter<'a> {
    buf: &'a [u8],
    pos: usize,
    next: u8,
    index: usize,
    done: bool,
    inside_sk: bool,
}

impl<'a> PayloadIter<'a> {
    /// A chain in a plaintext message: `first` is the IKE header's Next Payload.
    pub fn new(first: u8, chain: &'a [u8]) -> Self {
        PayloadIter {
            buf: chain,
            pos: 0,
            next: first,
            index: 0,
            done: false,
            inside_sk: false,
        }
    }

    /// A decrypted chain from inside SK/SKF: `first` is the SK header's Next
    /// Payload. SK/SKF may not nest, so meeting one here is an error.
    pub fn new_inner(first: u8, chain: &'a [u8]) -> Self {
        PayloadIter {
            inside_sk: true,
            ..PayloadIter::new(first, chain)
        }
    }

    fn fail(&mut self, e: Error) -> Option<Result<RawPayload<'a>>> {
        self.done = true;
        Some(Err(e))
    }
}

impl<'a> Iterator for PayloadIter<'a> {
    type Item = Result<RawPayload<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let rest = self.buf.get(self.pos..).unwrap_or(&[]);
            if self.next == payload::NO_NEXT_PAYLOAD {
                self.done = true;
                if !rest.is_empty() {
                    return Some(Err(Error::Malformed {
                        field: "IKEv2 payload chain",
                        why: "bytes follow the last payload",
                    }));
                }
                return None;
            }
            self.index += 1;
            let view = match GenericPayload::new_checked(rest) {
                Ok(v) => v,
                Err(e) => {
                    let e = match e {
                        Error::Truncated { need, have, .. } if need == GENERIC_HEADER_LEN => {
                            Error::Truncated {
                                field: "header",
                                need,
                                have,
                            }
                        }
                        Error::Truncated { need, have, .. } => Error::Truncated {
                            field: "length",
                            need,
                            have,
                        },
                        Error::Invalid { value, .. } => Error::Invalid {
                            field: "length",
                            value,
                        },
                        other => other,
                    };
                    return self.fail(e.within("IKEv2 payload", self.index));
                }
            };
            let payload_type = self.next;
            let raw = RawPayload {
                payload_type,
                next_payload: view.next_payload(),
                critical: view.critical(),
                offset: self.pos,
                body: rest
                    .get(GENERIC_HEADER_LEN..usize::from(view.payload_length()))
                    .unwrap_or(&[]),
            };
            self.pos += usize::from(view.payload_length());
            self.next = raw.next_payload;
            if !is_known(payload_type) {
                if raw.critical {
                    return self.fail(Error::UnsupportedCriticalPayload { payload_type });
                }
                continue;
            }
            if payload_type == payload::SK || payload_type == payload::SKF {
                self.done = true;
                if self.inside_sk {
                    return Some(Err(Error::Malformed {
                        field: "IKEv2 Encrypted payload",
                        why: "nested inside another Encrypted payload",
                    }));
                }
                if self.pos != self.buf.len() {
                    return Some(Err(Error::Malformed {
                        field: "IKEv2 Encrypted payload",
                        why: "not the last payload of the message",
                    }));
                }
            }
            return Some(Ok(raw));
        }
    }
}

/// A bounds-checked cursor over a payload body: every read names its field.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        let have = self.remaining();
        if n > have {
            return Err(Error::Truncated {
                field,
                need: n,
                have,
            });
        }
        let s = &self.buf[self.pos..self.pos + n]; // ok: n <= remaining checked above
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.bytes(1, field)?[0])
    }
    pub fn u16(&mut self, field: &'static str) -> Result<u16> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut a = [0; N];
        a.copy_from_slice(self.bytes(N, field)?);
        Ok(a)
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }
}

/// Converts a length to the u16 a length field holds, or names the field.
pub(crate) fn len16(n: usize, field: &'static str) -> Result<u16> {
    u16::try_from(n).map_err(|_| Error::Invalid {
        field,
        value: n as u64,
    })
}

/// Patches a 2-byte big-endian length at `at` in `out`. Only called on
/// placeholders the emitter itself pushed, so the range is always there.
pub(crate) fn patch16(out: &mut [u8], at: usize, v: u16) {
    // ok: emitter-written placeholder, never input
    out[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
