//! The palisade daemon and CLI, as a library so that the integration tests
//! and the data plane can reach the config, the control socket and the
//! daemon loop. `main.rs` is only argument parsing.

pub mod cli;
pub mod config;
pub mod control;
pub mod ike;
pub mod mtu;
pub mod userspace;
