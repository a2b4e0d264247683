//! The control socket: a Unix stream socket, root-only, speaking one JSON
//! object per line in each direction.
//!
//! ```text
//! -> {"cmd":"status"}
//! <- {"ok":true,"data":{"daemon":{...},"sas":[...],"policies":[...],"connections":[...]}}
//! -> {"cmd":"reload"}
//! <- {"ok":false,"error":"/etc/palisade/palisade.toml:12:10: manual SA `lab`: ..."}
//! ```
//!
//! Commands: `ping`, `status`, `sa_list`, `policy_list`, `reload`, `stop`.
//! A connection may send several requests; each gets one response line.
//!
//! The daemon's state comes from a [`Dataplane`](dataplane::Dataplane): the
//! data plane implements that trait to install SAs and report counters; until
//! it exists, [`ConfigOnly`](dataplane::ConfigOnly) reports the configured SAs
//! with zero counters.

pub mod client;
pub mod dataplane;
pub mod protocol;
pub mod server;

pub use protocol::{Request, Response};
