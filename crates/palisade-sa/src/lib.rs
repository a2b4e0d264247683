//! palisade-sa: the RFC 4301 databases (SPD, SAD, PAD) and the per-packet
//! transforms (ESP, AH, ESP-in-UDP), sans-IO: buffers in, buffers out, time passed in.

pub mod counters;
pub mod lifetime;
pub mod pad;
pub mod replay;
pub mod sad;
pub mod selector;
pub mod spd;

pub mod ah;
pub mod buf;
pub mod encap;
pub mod esp;
pub mod sa;
