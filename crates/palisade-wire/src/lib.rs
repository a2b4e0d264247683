//! palisade-wire: bytes <-> typed views, in the style of smoltcp's `wire` module.
//!
//! Each protocol has a `Packet<T: AsRef<[u8]>>` view with a checked constructor
//! (`new_checked`) whose accessors never panic afterwards, and a `Repr` that parses
//! from and emits to a view. No crypto, no I/O, no allocation on the data path.

pub mod error;

pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod udp;

pub mod ah;
pub mod esp;
pub mod udp_encap;

pub mod ikev2;

pub use error::{Error, Result};
