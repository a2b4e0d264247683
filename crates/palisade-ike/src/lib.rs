//! IKEv2 (RFC 7296) engine, sans-IO.
//!
//! The shape follows quinn-proto: an [`Endpoint`] is fed datagrams and time,
//! and is polled for datagrams to send, events (SAs to install or remove) and
//! the next deadline. It reads no clock, does no I/O and starts no thread;
//! randomness comes through the [`Rng`] trait so a simulator can replay a run
//! from a seed.
//!
//! Supported today: IKE_SA_INIT (NAT detection, INVALID_KE_PAYLOAD retry,
//! COOKIE under load), IKE_AUTH with a pre-shared key and the first CHILD_SA
//! (ESP, traffic selector narrowing, transport mode), message IDs with
//! retransmission and a response cache, INFORMATIONAL (Delete of CHILD and IKE
//! SAs, liveness checks), CREATE_CHILD_SA to rekey a CHILD_SA (with or
//! without PFS).

mod config;
mod endpoint;
mod error;
mod negotiate;
mod protect;
mod rng;

pub use config::{
    ChildConfig, Config, Connection, DpdAction, EspProposal, Identity, IkeProposal, Mode,
    Retransmit,
};
pub use endpoint::{ChildSaInfo, DownReason, Endpoint, Event, IkeSaId, Stats, Transmit};
pub use error::Error;
pub use negotiate::{narrow, ts_display};
pub use rng::{Rng, SeededRng, SystemRng};

pub use palisade_wire::ikev2::{AddressRange, TrafficSelector};
