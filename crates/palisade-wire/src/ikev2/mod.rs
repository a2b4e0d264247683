//! IKEv2 messages (RFC 7296 section 3, RFC 7383 for fragments).
//!
//! Layers, bottom up:
//! - [`Header`] and [`GenericPayload`]: smoltcp-style checked views;
//! - [`PayloadIter`]: walks a payload chain, skips unknown non-critical
//!   payloads and stops at unknown critical ones (RFC 7296 section 2.5);
//! - one Repr per payload ([`SaPayload`], [`NotifyPayload`], ...) with
//!   `parse(body)` and `emit(&mut Vec<u8>)`;
//! - [`Message`]: header + payload list, and [`locate_encrypted`] /
//!   [`parse_inner_chain`] for the Encrypted payload.
//!
//! Where bytes must be hashed exactly as received (IDi/IDr bodies for AUTH,
//! RFC 7296 section 2.15), walk the chain with [`PayloadIter`] and use
//! [`RawPayload::body`] rather than re-emitting the Repr.
//!
//! IKE is the control plane, so Reprs own their data in `Vec`s; parsing still
//! never panics and never reads past the buffer, and every error names the
//! field ("IKEv2 SA proposal 2 transform 3 length: ...").

pub mod consts;

mod chain;
mod cp;
mod header;
mod message;
mod payloads;
mod sa;
mod ts;

pub use chain::{is_known, GenericPayload, PayloadIter, RawPayload, GENERIC_HEADER_LEN};
pub use cp::{CpAttribute, CpPayload};
pub use header::{Header, HeaderRepr, HEADER_LEN, MAJOR_VERSION};
pub use message::{
    emit_chain, locate_encrypted, notifies_in, notify_for_parse_error, parse_chain,
    parse_inner_chain, EncryptedLocation, Message, Payload,
};
pub use payloads::{
    AuthPayload, CertPayload, CertReqPayload, DeletePayload, EapPayload, IdPayload, KePayload,
    NoncePayload, NotifyPayload, SkPayload, SkfPayload, VendorIdPayload, SKF_FIELDS_LEN,
};
pub use sa::{Proposal, SaPayload, Transform, TransformAttribute};
pub use ts::{AddressRange, TrafficSelector, TsPayload};
