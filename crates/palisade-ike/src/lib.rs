//! IKEv2 (RFC 7296) engine, sans-IO.
//!
//! The shape follows quinn-proto: an [`Endpoint`] is fed datagrams and time,
//! and is polled for datagrams to send, events (SAs to install or remove) and
//! the next deadline. It reads no clock, does no I/O and starts no thread;
//! randomness comes through the [`Rng`] trait so a simulator can replay a run
//! from a seed.
//!
//! ```no_run
//! # use palisade_ike::*;
//! # fn demo(config: Config, now: std::time::Instant, local: std::net::SocketAddr,
//! #         remote: std::net::SocketAddr, bytes: &[u8]) {
//! let mut ike = Endpoint::new(config, SystemRng);
//! ike.initiate(now, "site-b").ok();
//! ike.handle_datagram(now, local, remote, bytes); // what arrived
//! ike.handle_timeout(now);                        // when poll_timeout() passed
//! while let Some(_t) = ike.poll_transmit() { /* send _t.bytes from _t.local to _t.remote */ }
//! while let Some(_ev) = ike.poll_event() { /* install / remove SAs */ }
//! let _next = ike.poll_timeout();
//! # }
//! ```
//!
//! What it does:
//! * IKE_SA_INIT: proposals by IANA id, NAT detection (and the move to port
//!   4500 with the non-ESP marker), INVALID_KE_PAYLOAD retry with the group
//!   the responder names, NO_PROPOSAL_CHOSEN logged with both sides' offers,
//!   stateless COOKIEs once `cookie_threshold` SAs are half open, and at
//!   most `half_open_per_source` half-open SAs per source address;
//! * the SK payload with AEAD (RFC 5282) or CBC + HMAC (RFC 7296 3.14);
//! * IKE_AUTH with a pre-shared key, identities IPv4/IPv6/FQDN/RFC822/KEY_ID,
//!   INITIAL_CONTACT, the first CHILD_SA (ESP, TS narrowing, transport mode);
//! * message IDs, retransmission with back-off and give-up, the response
//!   cache, dropping and counting of damaged or unauthenticated messages
//!   ([`Stats`]), keying tries;
//! * INFORMATIONAL: Delete of CHILD and IKE SAs, liveness checks (DPD);
//! * CREATE_CHILD_SA: additional CHILD_SAs, CHILD_SA rekey with or without
//!   PFS and the simultaneous-rekey tie-break (2.8.1), IKE SA rekey and its
//!   simultaneous-rekey tie-break (2.8.2: both ends keep the same new SA,
//!   which takes the CHILD_SAs), exchange collisions per 2.25 (a CHILD_SA
//!   rekey crossing its Delete, requests while an IKE SA is closing or busy
//!   answered with TEMPORARY_FAILURE, CHILD_SA_NOT_FOUND);
//! * lifetimes as strongSwan has them: rekey at `rekey_time` minus a random
//!   0..`rand_time`, delete at `life_time`, for CHILD_SAs and the IKE SA;
//!   either end rekeys on its own timer, and the tie-breaks settle the
//!   collisions the jitter does not avoid;
//!   byte/packet limits are counted by the data plane, which reports them
//!   through [`Endpoint::child_sa_expired`];
//! * connections added and removed at run time, status snapshots
//!   ([`Endpoint::ike_sa_infos`]);
//! * `start_action = trap`: [`Endpoint::acquire`] sets up the IKE SA or an
//!   additional CHILD_SA once per burst of packets, with the triggering
//!   packet's selectors first in TSi/TSr; as responder, a child that takes
//!   that packet is preferred (2.9); `DpdAction::Trap`.
//!
//! Not yet: certificates/EAP, IKE fragmentation (RFC 7383), MOBIKE,
//! reauthentication, IKEv1.

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
pub use endpoint::{
    ts_selectors, ChildSaInfo, DownReason, Endpoint, Event, IkeSaId, IkeSaInfo, IkeState,
    IkeTransforms, Stats, Transmit, TriggerPacket,
};
pub use error::Error;
pub use negotiate::{narrow, ts_display};
pub use rng::{Rng, SeededRng, SystemRng};

pub use palisade_wire::ikev2::{AddressRange, TrafficSelector};
