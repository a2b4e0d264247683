//! The IKEv2 endpoint: every IKE SA of one daemon, fed datagrams and time.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use palisade_crypto::kdf::ikev2 as kdf;
use palisade_crypto::kex::{self, KeyExchange};
use palisade_crypto::{registry, Secret};
use palisade_wire::ikev2::consts::{auth, exchange, notify, protocol};
use palisade_wire::ikev2::{
    AuthPayload, DeletePayload, Header, HeaderRepr, IdPayload, KePayload, Message, NoncePayload,
    NotifyPayload, Payload, SaPayload, TrafficSelector, TsPayload,
};
use tracing::{debug, info, warn};

use crate::config::{lifetimes, Config, Connection, DpdAction, Identity, Mode};
use crate::negotiate::{self, Chosen};
use crate::protect::{self, IkeKeys};
use crate::rng::Rng;
use crate::Error;

const NONCE_LEN: usize = 32;
const NON_ESP_MARKER: [u8; 4] = [0; 4];
const NATT_PORT: u16 = 4500;
/// COOKIE / INVALID_KE_PAYLOAD round trips accepted before giving up.
const MAX_INIT_RETRIES: u32 = 4;

/// A datagram to send from `local` to `remote`. On port 4500 the non-ESP
/// marker is already included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub bytes: Vec<u8>,
}

/// An IKE SA, named by our own SPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IkeSaId(pub u64);

impl std::fmt::Display for IkeSaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A negotiated CHILD_SA pair, everything the data plane needs to install it.
/// "Inbound" is what the peer sends us (our SPI), "outbound" what we send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaInfo {
    pub ike_sa: IkeSaId,
    pub connection: String,
    pub name: String,
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    /// ENCR IANA id and key length (bits) if the transform has one.
    pub encr: (u16, Option<u16>),
    /// INTEG IANA id; `None` with an AEAD.
    pub integ: Option<u16>,
    pub esn: bool,
    /// Key exchange used for PFS when this SA came from a rekey.
    pub pfs_group: Option<u16>,
    pub inbound_encr_key: Secret,
    pub inbound_integ_key: Secret,
    pub outbound_encr_key: Secret,
    pub outbound_integ_key: Secret,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub mode: Mode,
    /// ESP in UDP (RFC 3948) because a NAT was detected.
    pub encap: bool,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Inbound SPI of the CHILD_SA this one replaces.
    pub rekeys: Option<u32>,
    /// We sent the request of the exchange that created it: when this event
    /// comes, the peer has installed it too (it answered). Created by the
    /// peer's request, the peer installs it only once our answer arrives, so
    /// it should not carry our traffic before the peer shows it has it
    /// (its Delete of the SA this one replaces, RFC 7296 2.8).
    pub initiator: bool,
}

impl ChildSaInfo {
    /// The negotiated selectors as SPD selectors ([`ts_selectors`]).
    pub fn selectors(&self) -> Vec<palisade_sa::selector::Selector> {
        ts_selectors(&self.local_ts, &self.remote_ts)
    }
}

/// Traffic selectors as RFC 4301 SPD selectors from the local side's point
/// of view: one per (local, remote) pair of the same address family whose
/// protocols agree. Ports 0-65535 are ANY, the RFC 4301 "OPAQUE" form (start
/// 65535, end 0) is OPAQUE.
pub fn ts_selectors(
    local_ts: &[TrafficSelector],
    remote_ts: &[TrafficSelector],
) -> Vec<palisade_sa::selector::Selector> {
    use palisade_sa::selector::{AddrRange as Range, PortRange, Selector};
    fn addr(t: &TrafficSelector) -> Option<Range> {
        let (s, e) = match t.addresses {
            palisade_wire::ikev2::AddressRange::V4 { start, end } => (start.into(), end.into()),
            palisade_wire::ikev2::AddressRange::V6 { start, end } => (start.into(), end.into()),
        };
        Range::range(s, e).ok()
    }
    fn ports(t: &TrafficSelector) -> PortRange {
        match (t.start_port, t.end_port) {
            (0, 65535) => PortRange::Any,
            (65535, 0) => PortRange::Opaque,
            (lo, hi) => PortRange::range(lo, hi).unwrap_or(PortRange::Opaque),
        }
    }
    let mut out = Vec::new();
    for l in local_ts {
        for r in remote_ts {
            let proto = match (l.ip_protocol, r.ip_protocol) {
                (0, 0) => None,
                (0, p) | (p, 0) => Some(p),
                (p, q) if p == q => Some(p),
                _ => continue,
            };
            let (Some(local), Some(remote)) = (addr(l), addr(r)) else {
                continue;
            };
            if l.ts_type() != r.ts_type() {
                continue;
            }
            out.push(Selector {
                local,
                remote,
                proto,
                local_port: ports(l),
                remote_port: ports(r),
            });
        }
    }
    out
}

/// Where an IKE SA is in its life, as shown to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IkeState {
    /// IKE_SA_INIT or IKE_AUTH under way (either role).
    Connecting,
    Established,
    /// Established, and a rekey of the IKE SA itself is in flight.
    Rekeying,
    /// A Delete is under way, or the SA was replaced by a rekey and waits
    /// for its Delete.
    Deleting,
}

impl std::fmt::Display for IkeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IkeState::Connecting => "connecting",
            IkeState::Established => "established",
            IkeState::Rekeying => "rekeying",
            IkeState::Deleting => "deleting",
        })
    }
}

/// The transforms an IKE SA uses (IANA ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeTransforms {
    /// ENCR id and key length (bits) if the transform has one.
    pub encr: (u16, Option<u16>),
    pub prf: u16,
    /// `None` with an AEAD.
    pub integ: Option<u16>,
    pub ke: u16,
}

/// A snapshot of one IKE SA for status displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    pub id: IkeSaId,
    pub connection: String,
    pub state: IkeState,
    /// We sent the IKE_SA_INIT that made it (or the rekey that replaced it).
    pub initiator: bool,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub spi_i: [u8; 8],
    /// All zero until the responder has answered.
    pub spi_r: [u8; 8],
    /// Once authenticated.
    pub remote_id: Option<Identity>,
    /// A NAT was detected between us (IKE and ESP on port 4500).
    pub nat: bool,
    pub created: Instant,
    pub established: Option<Instant>,
    /// Once IKE_SA_INIT has completed.
    pub transforms: Option<IkeTransforms>,
    pub children: Vec<ChildSaInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We deleted it (`delete_ike_sa`), and the peer confirmed or did not answer.
    DeletedLocally,
    DeletedByPeer,
    /// The peer stopped answering our requests.
    Timeout,
    /// Liveness check failed; `action` is what the engine did about it:
    /// `Restart`, it initiates the connection again; `Trap`, the daemon is to
    /// keep the connection's trap policies; `Clear` (also for a connection
    /// removed meanwhile), nothing.
    DeadPeer {
        action: DpdAction,
    },
    /// The peer started over (INITIAL_CONTACT in a new IKE SA).
    Replaced,
    /// Negotiation failed; the text says why for the operator.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    IkeSaUp {
        ike_sa: IkeSaId,
        connection: String,
        initiator: bool,
        local: SocketAddr,
        remote: SocketAddr,
        spi_i: [u8; 8],
        spi_r: [u8; 8],
        remote_id: Option<Identity>,
        nat_detected: bool,
    },
    IkeSaDown {
        ike_sa: IkeSaId,
        connection: String,
        reason: DownReason,
    },
    ChildSaInstalled(ChildSaInfo),
    ChildSaDeleted {
        ike_sa: IkeSaId,
        name: String,
        inbound_spi: u32,
        outbound_spi: u32,
    },
    /// An authenticated message moved the IKE SA to new addresses (RFC 7296
    /// 2.23: the NAT rebound, or the peer floated): the SA's CHILD_SAs now
    /// send to `remote` (their `local`/`remote` in later events too), and the
    /// data plane must update their ESP-in-UDP ports and tunnel endpoints.
    IkeSaMoved {
        ike_sa: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// The IKE SA was rekeyed (RFC 7296 1.3.2): its CHILD_SAs now belong to
    /// `new`; `old` is gone without anything going down.
    IkeSaRekeyed {
        old: IkeSaId,
        new: IkeSaId,
    },
    /// The IKE SA is fine but this CHILD_SA could not be negotiated.
    ChildSaFailed {
        ike_sa: IkeSaId,
        name: String,
        reason: String,
    },
}

/// Counters of what was dropped and why, and of protocol work done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub malformed: u64,
    pub unknown_spi: u64,
    pub integrity_failed: u64,
    /// Requests outside the window, responses to nothing, wrong state.
    pub unexpected: u64,
    /// Retransmitted requests answered from the response cache.
    pub duplicate_requests: u64,
    pub retransmits: u64,
    pub cookies_sent: u64,
    /// IKE_SA_INIT requests dropped because their source IP already holds
    /// `half_open_per_source` half-open SAs.
    pub half_open_limited: u64,
    pub auth_failed: u64,
}

impl Stats {
    /// Every counter by a stable snake_case name, for status output.
    pub fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("received", self.received),
            ("malformed", self.malformed),
            ("unknown_spi", self.unknown_spi),
            ("integrity_failed", self.integrity_failed),
            ("unexpected", self.unexpected),
            ("duplicate_requests", self.duplicate_requests),
            ("retransmits", self.retransmits),
            ("cookies_sent", self.cookies_sent),
            ("half_open_limited", self.half_open_limited),
            ("auth_failed", self.auth_failed),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    InitSent,
    AuthSent,
    RespAwaitAuth,
    Established,
    Deleting,
}

/// Work waiting for the (size 1) request window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    DeleteChild(u32),
    DeleteIke,
    Dpd,
    Rekey(u32),
    RekeyIke,
    /// An additional CHILD_SA for this child config index, with the packet
    /// that triggered it if it was acquired.
    NewChild(usize, Option<TriggerPacket>),
}

enum Req {
    Init,
    Auth,
    DeleteChild(u32),
    DeleteIke,
    Dpd,
    Rekey {
        cfg: usize,
        old_inbound: Option<u32>,
        new_spi: u32,
        ni: Vec<u8>,
        kex: Option<Box<dyn KeyExchange>>,
    },
    RekeyIke {
        new_spi: u64,
        ni: Vec<u8>,
        kex: Box<dyn KeyExchange>,
    },
}

struct Pending {
    msg_id: u32,
    bytes: Vec<u8>,
    sent: u32,
    next_at: Instant,
    req: Req,
}

struct Child {
    info: ChildSaInfo,
    cfg: usize,
    installed: Instant,
    /// When the rekey timer fires (rekey_time minus jitter), if configured.
    rekey_at: Option<Instant>,
    /// When the hard lifetime ends, if configured; cleared once acted on.
    expire_at: Option<Instant>,
    rekey_started: bool,
    /// The peer rekeyed this SA too: (their nonce Ni, our nonce Nr, the new
    /// SA's inbound SPI) for the simultaneous-rekey tie-break (2.8.1).
    peer_rekey: Option<(Vec<u8>, Vec<u8>, u32)>,
    /// Replaced by a finished rekey; waiting for its Delete.
    replaced: bool,
}

struct IkeSa {
    conn: usize,
    initiator: bool,
    spi_i: [u8; 8],
    spi_r: [u8; 8],
    local: SocketAddr,
    remote: SocketAddr,
    st: St,
    // IKE_SA_INIT
    kex: Option<Box<dyn KeyExchange>>,
    group: u16,
    cookie: Option<Vec<u8>>,
    init_retries: u32,
    ni: Vec<u8>,
    nr: Vec<u8>,
    init_req: Vec<u8>,
    init_resp: Vec<u8>,
    keys: Option<IkeKeys>,
    // exchanges
    next_req_id: u32,
    peer_req_id: u32,
    last_resp: Option<(u32, Vec<u8>)>,
    pending: Option<Pending>,
    queue: VecDeque<Intent>,
    children: Vec<Child>,
    /// Initiator's first CHILD_SA under negotiation: (config index, our SPI).
    auth_child: Option<(usize, u32)>,
    created: Instant,
    last_rx: Instant,
    nat: bool,
    peer_id: Option<Identity>,
    /// Replaced by a rekeyed IKE SA (our SPI there) at this time; it lingers
    /// only for the Delete exchange.
    rekeyed: Option<(u64, Instant)>,
    ike_rekey_started: bool,
    /// Initiator: which try of the connection's `keying_tries` this is.
    attempt: u32,
    /// Unauthenticated error notifications seen in IKE_SA_INIT responses.
    init_errors: u32,
    init_error: Option<String>,
    /// When IKE_AUTH completed (or the rekey that made this SA).
    established: Option<Instant>,
    /// Rekey timer (ike_rekey_time minus jitter) and hard lifetime end.
    rekey_at: Option<Instant>,
    expire_at: Option<Instant>,
    /// Initiator: the CHILD_SA to set up in IKE_AUTH (config index, the
    /// packet that triggered it), and whether the connection's other
    /// children follow (`initiate`) or not (`acquire`).
    first_child: Option<(usize, Option<TriggerPacket>)>,
    all_children: bool,
    /// 2.8.2: we answered the peer's IKE SA rekey while ours was in flight:
    /// (the new IKE SA it made, its Ni, its Nr). Settled when our response
    /// arrives, or when the peer deletes this SA.
    ike_collision: Option<(u64, Vec<u8>, Vec<u8>)>,
    /// Made by a colliding IKE SA rekey and not announced (no
    /// `IkeSaRekeyed` yet): its end is silent.
    hidden: bool,
    /// The redundant one of two colliding rekeys, since then: it waits for
    /// (or sends) its Delete, and is dropped silently after the linger time.
    redundant: Option<Instant>,
    /// `delete_ike_sa` was called: a rekey finishing meanwhile passes the
    /// deletion on to the successor.
    delete_requested: bool,
}

/// What an initiated IKE SA is to set up.
struct Plan {
    first: Option<(usize, Option<TriggerPacket>)>,
    all: bool,
    /// Further CHILD_SAs (`Intent::NewChild`) queued for after IKE_AUTH.
    more: VecDeque<Intent>,
}

impl Plan {
    fn all() -> Plan {
        Plan {
            first: Some((0, None)),
            all: true,
            more: VecDeque::new(),
        }
    }
}

/// The packet that hit a trap policy (RFC 7296 2.9): its exact selectors go
/// first in TSi/TSr so the responder can pick the right policy. Ports are
/// used with TCP, UDP, SCTP and UDP-Lite; other protocols get any port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TriggerPacket {
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    /// IP protocol number (0: unknown, then any).
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

impl TriggerPacket {
    /// (TSi, TSr) for it: source first, as we send it.
    fn selectors(&self) -> Option<(TrafficSelector, TrafficSelector)> {
        use palisade_wire::ikev2::AddressRange;
        use std::net::IpAddr;
        let ports = |p: u16| match self.protocol {
            6 | 17 | 132 | 136 => (p, p),
            _ => (0, 65535),
        };
        let one = |a: IpAddr, port: u16| {
            let (start_port, end_port) = ports(port);
            let addresses = match a {
                IpAddr::V4(a) => AddressRange::V4 { start: a, end: a },
                IpAddr::V6(a) => AddressRange::V6 { start: a, end: a },
            };
            TrafficSelector {
                ip_protocol: self.protocol,
                start_port,
                end_port,
                addresses,
            }
        };
        (self.src.is_ipv4() == self.dst.is_ipv4())
            .then(|| (one(self.src, self.src_port), one(self.dst, self.dst_port)))
    }
}

impl std::fmt::Display for TriggerPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} -> {}:{} proto {}",
            self.src, self.src_port, self.dst, self.dst_port, self.protocol
        )
    }
}

/// The TSi/TSr we propose for a new CHILD_SA of `cfg`: the triggering
/// packet's selectors first (if any), then the configured ranges (2.9).
fn proposed_ts(
    cfg: &crate::config::ChildConfig,
    trigger: Option<TriggerPacket>,
) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
    let mut l = Vec::new();
    let mut r = Vec::new();
    if let Some((tsi, tsr)) = trigger.and_then(|t| t.selectors()) {
        l.push(tsi);
        r.push(tsr);
    }
    l.extend(cfg.local_ts.iter().copied());
    r.extend(cfg.remote_ts.iter().copied());
    (l, r)
}

/// A rekeyed (or redundant) IKE SA waits for its Delete at least this long
/// before it is dropped, and at least as long as the peer may retransmit a
/// request on it (see `Endpoint::linger`).
const REKEYED_LINGER: Duration = Duration::from_secs(30);
/// A rekey that failed (the peer was busy, say) is tried again after this
/// plus a random half of it.
const REKEY_RETRY: Duration = Duration::from_secs(10);

impl IkeSa {
    fn our_spi(&self) -> u64 {
        u64::from_be_bytes(if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        })
    }
    fn header(&self, exchange_type: u8, response: bool, message_id: u32) -> HeaderRepr {
        HeaderRepr {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            minor_version: 0,
            exchange_type,
            initiator: self.initiator,
            version: false,
            response,
            message_id,
        }
    }
    fn up(&self) -> bool {
        matches!(self.st, St::Established | St::Deleting)
    }
}

enum Fate {
    Keep,
    Kill(DownReason),
}

/// The response to the request that ended an IKE SA (the peer's Delete,
/// mostly), kept for a while after the SA is gone: the peer may not have
/// got it and retransmits the request (RFC 7296 2.1), and must get the same
/// answer rather than silence. strongSwan 5.9 needs this even on a clean
/// network: after losing a simultaneous IKE SA rekey (2.8.2) it sends the
/// Delete of its redundant SA before it files that SA, and drops an answer
/// that comes back sooner; unanswered, it keeps retransmitting for its
/// whole schedule (seconds to minutes) before giving the SA up.
struct Answered {
    spi_i: [u8; 8],
    spi_r: [u8; 8],
    /// We were the original initiator of the gone IKE SA.
    initiator: bool,
    message_id: u32,
    response: Vec<u8>,
    until: Instant,
}

/// The IKEv2 engine.
pub struct Endpoint {
    config: Config,
    rng: Box<dyn Rng>,
    sas: HashMap<u64, IkeSa>,
    /// Responder: (peer, SPIi) of each IKE_SA_INIT we answered -> our SPI.
    init_index: HashMap<(SocketAddr, [u8; 8]), u64>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    cookie_secret: [u8; 32],
    /// Per entry of `config.connections`: false once removed. Entries are
    /// never renumbered (IKE SAs point at them by index).
    live: Vec<bool>,
    /// IKE SAs ended by a request we answered, by our SPI: that answer,
    /// for the peer's retransmissions.
    answered: HashMap<u64, Answered>,
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn find<'a, T>(payloads: &'a [Payload], f: impl Fn(&'a Payload) -> Option<&'a T>) -> Option<&'a T> {
    payloads.iter().find_map(f)
}

fn sa_of(p: &Payload) -> Option<&SaPayload> {
    match p {
        Payload::Sa(x) => Some(x),
        _ => None,
    }
}
fn ke_of(p: &Payload) -> Option<&KePayload> {
    match p {
        Payload::Ke(x) => Some(x),
        _ => None,
    }
}
fn nonce_of(p: &Payload) -> Option<&NoncePayload> {
    match p {
        Payload::Nonce(x) => Some(x),
        _ => None,
    }
}
fn tsi_of(p: &Payload) -> Option<&TsPayload> {
    match p {
        Payload::TsI(x) => Some(x),
        _ => None,
    }
}
fn tsr_of(p: &Payload) -> Option<&TsPayload> {
    match p {
        Payload::TsR(x) => Some(x),
        _ => None,
    }
}
fn notify(payloads: &[Payload], t: u16) -> Option<&NotifyPayload> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == t => Some(n),
        _ => None,
    })
}
fn first_error(payloads: &[Payload]) -> Option<u16> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.is_error() => Some(n.notify_type),
        _ => None,
    })
}
fn notify_name(t: u16) -> String {
    match t {
        notify::NO_PROPOSAL_CHOSEN => "NO_PROPOSAL_CHOSEN".into(),
        notify::INVALID_KE_PAYLOAD => "INVALID_KE_PAYLOAD".into(),
        notify::AUTHENTICATION_FAILED => "AUTHENTICATION_FAILED".into(),
        notify::TS_UNACCEPTABLE => "TS_UNACCEPTABLE".into(),
        notify::INVALID_SYNTAX => "INVALID_SYNTAX".into(),
        notify::TEMPORARY_FAILURE => "TEMPORARY_FAILURE".into(),
        notify::CHILD_SA_NOT_FOUND => "CHILD_SA_NOT_FOUND".into(),
        notify::NO_ADDITIONAL_SAS => "NO_ADDITIONAL_SAS".into(),
        notify::INTERNAL_ADDRESS_FAILURE => "INTERNAL_ADDRESS_FAILURE".into(),
        notify::UNSUPPORTED_CRITICAL_PAYLOAD => "UNSUPPORTED_CRITICAL_PAYLOAD".into(),
        other => format!("notify {other}"),
    }
}
fn id_body(id: &IdPayload) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + id.data.len());
    v.extend_from_slice(&[id.id_type, 0, 0, 0]);
    v.extend_from_slice(&id.data);
    v
}
fn addr_matches(want: Option<SocketAddr>, got: SocketAddr) -> bool {
    match want {
        None => true,
        Some(w) => w.ip() == got.ip(),
    }
}

/// Sizes of a CHILD_SA's keys: (encr keymat, integ key).
fn child_key_lens(c: &Chosen) -> Result<(usize, usize), Error> {
    let e = registry::encr_info(c.encr.0, c.encr.1)?.keymat_len;
    let i = match c.integ {
        Some(i) => registry::integ_sizes(i)?.key_len,
        None => 0,
    };
    Ok((e, i))
}

impl Endpoint {
    pub fn new(config: Config, rng: impl Rng + 'static) -> Self {
        let mut rng: Box<dyn Rng> = Box::new(rng);
        let mut cookie_secret = [0u8; 32];
        rng.fill(&mut cookie_secret);
        let config_len = config.connections.len();
        Endpoint {
            config,
            rng,
            sas: HashMap::new(),
            init_index: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            cookie_secret,
            live: vec![true; config_len],
            answered: HashMap::new(),
        }
    }

    /// The configuration, with removed connections still in
    /// `connections` (see [`Endpoint::connection_names`] for the live ones).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Names of the connections in use (added and not removed), in the
    /// order they were added.
    pub fn connection_names(&self) -> Vec<String> {
        self.config
            .connections
            .iter()
            .zip(&self.live)
            .filter(|(_, &l)| l)
            .map(|(c, _)| c.name.clone())
            .collect()
    }

    fn live_conn(&self, name: &str) -> Option<usize> {
        self.config
            .connections
            .iter()
            .zip(&self.live)
            .position(|(c, &l)| l && c.name == name)
    }

    fn is_live(&self, ci: usize) -> bool {
        self.live.get(ci).copied().unwrap_or(false)
    }

    /// Add a connection: from now on it can be initiated and accepts peers
    /// as responder. Its name must not be taken by a live connection.
    pub fn add_connection(&mut self, c: Connection) -> Result<(), Error> {
        if c.name.is_empty() {
            return Err(Error::BadConfig {
                name: c.name,
                why: "the connection name is empty".into(),
            });
        }
        if self.live_conn(&c.name).is_some() {
            return Err(Error::ConnectionExists(c.name));
        }
        self.config.connections.push(c);
        self.live.push(true);
        Ok(())
    }

    /// Retire connection `name`: it is no longer initiated nor matched as
    /// responder, and each of its IKE SAs is deleted (INFORMATIONAL with
    /// Delete; the usual `ChildSaDeleted`/`IkeSaDown` events follow). A
    /// half-open SA the peer is setting up with us is left to pick another
    /// connection in IKE_AUTH, or to fail there.
    pub fn remove_connection(&mut self, now: Instant, name: &str) -> Result<(), Error> {
        let ci = self
            .live_conn(name)
            .ok_or_else(|| Error::UnknownConnection(name.to_string()))?;
        // ok: live_conn found ci, and live has one entry per connection
        self.live[ci] = false;
        let mut ids: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, s)| s.conn == ci && s.st != St::RespAwaitAuth)
            .map(|(&k, _)| k)
            .collect();
        ids.sort();
        info!(connection = name, ike_sas = ids.len(), "connection removed");
        for id in ids {
            self.delete_ike_sa(now, IkeSaId(id))?;
        }
        Ok(())
    }

    fn state_of(sa: &IkeSa) -> IkeState {
        if sa.redundant.is_some() || sa.rekeyed.is_some() {
            return IkeState::Deleting;
        }
        if sa.hidden {
            return IkeState::Rekeying;
        }
        match sa.st {
            St::InitSent | St::AuthSent | St::RespAwaitAuth => IkeState::Connecting,
            St::Deleting => IkeState::Deleting,
            St::Established
                if sa.queue.contains(&Intent::DeleteIke)
                    || sa
                        .pending
                        .as_ref()
                        .is_some_and(|p| matches!(p.req, Req::DeleteIke)) =>
            {
                IkeState::Deleting
            }
            St::Established if sa.ike_rekey_started => IkeState::Rekeying,
            St::Established => IkeState::Established,
        }
    }

    fn info_of(&self, sa: &IkeSa) -> IkeSaInfo {
        IkeSaInfo {
            id: IkeSaId(sa.our_spi()),
            connection: self.conn(sa).name.clone(),
            state: Self::state_of(sa),
            initiator: sa.initiator,
            local: sa.local,
            remote: sa.remote,
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            remote_id: sa.peer_id.clone(),
            nat: sa.nat,
            created: sa.created,
            established: sa.established,
            transforms: sa.keys.as_ref().map(|k| IkeTransforms {
                encr: k.chosen.encr,
                prf: k.chosen.prf.unwrap_or(0),
                integ: k.chosen.integ.filter(|_| !k.chosen.is_aead()),
                ke: k.chosen.ke.unwrap_or(sa.group),
            }),
            children: sa.children.iter().map(|c| c.info.clone()).collect(),
        }
    }

    /// A snapshot of one IKE SA, `None` if there is no such SA.
    pub fn ike_sa_info(&self, id: IkeSaId) -> Option<IkeSaInfo> {
        self.sas.get(&id.0).map(|sa| self.info_of(sa))
    }

    /// Snapshots of every IKE SA (half-open ones included), by id.
    pub fn ike_sa_infos(&self) -> Vec<IkeSaInfo> {
        let mut v: Vec<IkeSaInfo> = self.sas.values().map(|sa| self.info_of(sa)).collect();
        v.sort_by_key(|i| i.id);
        v
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// IKE SAs in any state (half-open ones included).
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }
    pub fn ike_sas(&self) -> Vec<IkeSaId> {
        let mut v: Vec<IkeSaId> = self.sas.keys().map(|&k| IkeSaId(k)).collect();
        v.sort();
        v
    }
    /// Whether the IKE SA completed IKE_AUTH.
    pub fn is_established(&self, id: IkeSaId) -> bool {
        self.sas.get(&id.0).is_some_and(|s| s.st == St::Established)
    }
    /// The CHILD_SAs currently installed under an IKE SA.
    pub fn child_sas(&self, id: IkeSaId) -> Vec<ChildSaInfo> {
        self.sas
            .get(&id.0)
            .map(|s| s.children.iter().map(|c| c.info.clone()).collect())
            .unwrap_or_default()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest time `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        for sa in self.sas.values() {
            if let Some(p) = &sa.pending {
                at(p.next_at);
            }
            if let Some(t) = sa.rekeyed.map(|r| r.1).or(sa.redundant) {
                at(t + self.linger());
            }
            match sa.st {
                St::RespAwaitAuth => at(sa.created + self.config.half_open_timeout),
                St::Established if sa.pending.is_none() && !sa.hidden => {
                    let conn = &self.config.connections[sa.conn]; // ok: conn indexes config, never changed
                    if let Some(d) = conn.dpd_delay {
                        at(sa.last_rx + d);
                    }
                    if let Some(t) = sa.rekey_at.filter(|_| !sa.ike_rekey_started && !sa.hidden) {
                        at(t);
                    }
                    if let Some(t) = sa.expire_at {
                        at(t);
                    }
                    for c in &sa.children {
                        if let Some(t) = c.rekey_at.filter(|_| !c.rekey_started && !c.replaced) {
                            at(t);
                        }
                        if let Some(t) = c.expire_at {
                            at(t);
                        }
                    }
                }
                _ => {}
            }
        }
        t
    }

    // ---------------------------------------------------------------- API

    /// Start an IKE SA (and its first CHILD_SA) for connection `name`.
    pub fn initiate(&mut self, now: Instant, name: &str) -> Result<IkeSaId, Error> {
        let ci = self
            .live_conn(name)
            .ok_or_else(|| Error::UnknownConnection(name.to_string()))?;
        self.initiate_attempt(now, ci, 1, Plan::all())
    }

    /// `start_action = trap`: a packet matched the trap policy of `child`
    /// of `connection`. Without an IKE SA for the connection, one is
    /// initiated whose first (and only) CHILD_SA is `child`, with the
    /// packet's own selectors first in TSi/TSr (RFC 7296 2.9); with an
    /// established one, an additional CHILD_SA is negotiated on it. If an
    /// IKE SA is being set up, or a CHILD_SA for `child` is being negotiated,
    /// nothing new starts, so a burst of packets causes one negotiation. The
    /// IKE SA that carries (or will carry) the CHILD_SA is returned.
    pub fn acquire(
        &mut self,
        now: Instant,
        connection: &str,
        child: &str,
        packet: Option<TriggerPacket>,
    ) -> Result<IkeSaId, Error> {
        let ci = self
            .live_conn(connection)
            .ok_or_else(|| Error::UnknownConnection(connection.to_string()))?;
        let conn = &self.config.connections[ci]; // ok: live_conn found it
        let cc = conn
            .children
            .iter()
            .position(|c| c.name == child)
            .ok_or_else(|| Error::UnknownChild {
                connection: connection.to_string(),
                child: child.to_string(),
            })?;
        if let Some(p) = packet {
            let cfg = &conn.children[cc]; // ok: position() found it
            let inside = p.selectors().is_some_and(|(l, r)| {
                negotiate::within(&[l], &cfg.local_ts) && negotiate::within(&[r], &cfg.remote_ts)
            });
            if !inside {
                return Err(Error::TriggerOutsideSelectors {
                    connection: connection.to_string(),
                    child: child.to_string(),
                    packet: p.to_string(),
                });
            }
        }
        let usable = |s: &IkeSa| {
            s.conn == ci
                && s.rekeyed.is_none()
                && !s.hidden
                && Self::state_of(s) != IkeState::Deleting
                && (s.initiator || s.st != St::RespAwaitAuth)
        };
        let mut cands: Vec<(bool, u64)> = self
            .sas
            .iter()
            .filter(|(_, s)| usable(s))
            .map(|(&k, s)| (s.st != St::Established, k))
            .collect();
        cands.sort();
        let Some(&(connecting, id)) = cands.first() else {
            let plan = Plan {
                first: Some((cc, packet)),
                all: false,
                more: VecDeque::new(),
            };
            let id = self.initiate_attempt(now, ci, 1, plan)?;
            debug!(connection, child, ike_sa = %id, "acquire: initiating");
            return Ok(id);
        };
        let sa = self.sas.get_mut(&id).ok_or(Error::UnknownIkeSa(id))?;
        let busy = sa
            .queue
            .iter()
            .any(|i| matches!(i, Intent::NewChild(c, _) if *c == cc))
            || sa.pending.as_ref().is_some_and(
                |p| matches!(p.req, Req::Rekey { cfg, old_inbound: None, .. } if cfg == cc),
            )
            || (connecting
                && (sa.all_children
                    || sa.first_child.is_some_and(|f| f.0 == cc)
                    || sa.auth_child.is_some_and(|a| a.0 == cc)));
        if busy {
            debug!(connection, child, ike_sa = %IkeSaId(id), "acquire: already under way");
            return Ok(IkeSaId(id));
        }
        debug!(connection, child, ike_sa = %IkeSaId(id), "acquire: additional CHILD_SA");
        sa.queue.push_back(Intent::NewChild(cc, packet));
        self.pump(now, id);
        Ok(IkeSaId(id))
    }

    fn initiate_attempt(
        &mut self,
        now: Instant,
        ci: usize,
        attempt: u32,
        plan: Plan,
    ) -> Result<IkeSaId, Error> {
        let conn = &self.config.connections[ci]; // ok: callers pass a live index
        let name = conn.name.clone();
        let name = name.as_str();
        let remote = conn
            .remote_addr
            .ok_or_else(|| Error::NoRemoteAddress(name.to_string()))?;
        let local = conn.local_addr.unwrap_or_else(|| match remote {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 500)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 500)),
        });
        let group = conn
            .ike_proposals
            .first()
            .and_then(|p| p.ke.first().copied())
            .ok_or_else(|| Error::BadConfig {
                name: name.to_string(),
                why: "no IKE proposal with a key exchange method".into(),
            })?;
        let kex = kex::initiate(group, conn.policy)?;
        let spi = self.fresh_spi();
        let mut ni = vec![0; NONCE_LEN];
        self.rng.fill(&mut ni);
        let mut sa = IkeSa {
            conn: ci,
            initiator: true,
            spi_i: spi.to_be_bytes(),
            spi_r: [0; 8],
            local,
            remote,
            st: St::InitSent,
            kex: Some(kex),
            group,
            cookie: None,
            init_retries: 0,
            ni,
            nr: Vec::new(),
            init_req: Vec::new(),
            init_resp: Vec::new(),
            keys: None,
            next_req_id: 1,
            peer_req_id: 0,
            last_resp: None,
            pending: None,
            queue: VecDeque::new(),
            children: Vec::new(),
            auth_child: None,
            created: now,
            last_rx: now,
            nat: false,
            peer_id: None,
            rekeyed: None,
            ike_rekey_started: false,
            attempt,
            init_errors: 0,
            init_error: None,
            established: None,
            rekey_at: None,
            expire_at: None,
            first_child: plan.first,
            all_children: plan.all,
            ike_collision: None,
            hidden: false,
            redundant: None,
            delete_requested: false,
        };
        sa.queue = plan.more;
        self.send_init(now, &mut sa)?;
        info!(connection = name, ike_sa = %IkeSaId(spi), %remote, "initiating IKE SA");
        self.sas.insert(spi, sa);
        Ok(IkeSaId(spi))
    }

    /// Delete an IKE SA and its CHILD_SAs (INFORMATIONAL with Delete).
    /// An IKE SA that was rekeyed meanwhile is followed to its successor;
    /// one being rekeyed is deleted once the rekey is through (its
    /// successor, that is).
    pub fn delete_ike_sa(&mut self, now: Instant, id: IkeSaId) -> Result<(), Error> {
        let id = self.current(id);
        let sa = self.sas.get_mut(&id.0).ok_or(Error::UnknownIkeSa(id.0))?;
        sa.delete_requested = true;
        if !sa.up() {
            let sa = self.sas.remove(&id.0).ok_or(Error::UnknownIkeSa(id.0))?;
            self.finish(now, sa, DownReason::DeletedLocally);
            return Ok(());
        }
        sa.queue.retain(|i| *i == Intent::DeleteIke);
        if sa.queue.is_empty() {
            sa.queue.push_back(Intent::DeleteIke);
        }
        self.pump(now, id.0);
        Ok(())
    }

    /// `id`, or the IKE SA that replaced it (and so on) if it was rekeyed
    /// meanwhile: the caller may hold an id from before an `IkeSaRekeyed`.
    fn current(&self, id: IkeSaId) -> IkeSaId {
        let mut id = id;
        while let Some((new, _)) = self.sas.get(&id.0).and_then(|s| s.rekeyed) {
            id = IkeSaId(new);
        }
        id
    }

    /// Delete one CHILD_SA, named by its inbound SPI.
    pub fn delete_child_sa(
        &mut self,
        now: Instant,
        id: IkeSaId,
        inbound_spi: u32,
    ) -> Result<(), Error> {
        let id = self.current(id);
        let sa = self.sas.get_mut(&id.0).ok_or(Error::UnknownIkeSa(id.0))?;
        if !sa
            .children
            .iter()
            .any(|c| c.info.inbound_spi == inbound_spi)
        {
            return Err(Error::UnknownChildSa {
                ike: id.0,
                spi: inbound_spi,
            });
        }
        sa.queue.push_back(Intent::DeleteChild(inbound_spi));
        self.pump(now, id.0);
        Ok(())
    }

    /// Rekey the IKE SA (CREATE_CHILD_SA with an IKE proposal, 1.3.2).
    pub fn rekey_ike_sa(&mut self, now: Instant, id: IkeSaId) -> Result<(), Error> {
        let id = self.current(id);
        let sa = self.sas.get_mut(&id.0).ok_or(Error::UnknownIkeSa(id.0))?;
        sa.ike_rekey_started = true;
        sa.queue.push_back(Intent::RekeyIke);
        self.pump(now, id.0);
        Ok(())
    }

    /// When the CHILD_SA with inbound SPI `inbound_spi` under IKE SA `id`
    /// will be rekeyed (the jittered time, `None` once a rekey is under way or
    /// none is configured) and when it expires.
    pub fn child_sa_deadlines(
        &self,
        id: IkeSaId,
        inbound_spi: u32,
    ) -> Option<(Option<Instant>, Option<Instant>)> {
        let sa = self.sas.get(&self.current(id).0)?;
        let c = sa
            .children
            .iter()
            .find(|c| c.info.inbound_spi == inbound_spi)?;
        Some((
            c.rekey_at.filter(|_| !c.rekey_started && !c.replaced),
            c.expire_at,
        ))
    }

    /// Send a liveness check (an empty INFORMATIONAL request) now, as DPD
    /// does when the peer has been quiet; an unanswered one ends the IKE SA
    /// like any request. Behind a NAT it also refreshes the peer's view of
    /// our address.
    pub fn send_liveness_check(&mut self, now: Instant, id: IkeSaId) -> Result<(), Error> {
        let id = self.current(id);
        let sa = self.sas.get_mut(&id.0).ok_or(Error::UnknownIkeSa(id.0))?;
        sa.queue.push_back(Intent::Dpd);
        self.pump(now, id.0);
        Ok(())
    }

    /// Rekey one CHILD_SA (CREATE_CHILD_SA with REKEY_SA).
    pub fn rekey_child_sa(
        &mut self,
        now: Instant,
        id: IkeSaId,
        inbound_spi: u32,
    ) -> Result<(), Error> {
        let id = self.current(id);
        let sa = self.sas.get_mut(&id.0).ok_or(Error::UnknownIkeSa(id.0))?;
        let c = sa
            .children
            .iter_mut()
            .find(|c| c.info.inbound_spi == inbound_spi)
            .ok_or(Error::UnknownChildSa {
                ike: id.0,
                spi: inbound_spi,
            })?;
        c.rekey_started = true;
        sa.queue.push_back(Intent::Rekey(inbound_spi));
        self.pump(now, id.0);
        Ok(())
    }

    /// The data plane reports that a CHILD_SA (named by its inbound SPI)
    /// reached a volume limit (`rekey_bytes`/`rekey_packets`: `hard` false,
    /// the SA is rekeyed; `life_*`: `hard` true, it is deleted). `ike` may
    /// be an IKE SA that was rekeyed (and even deleted) since: the CHILD_SA
    /// is then looked up by its inbound SPI under the IKE SA holding it now.
    pub fn child_sa_expired(
        &mut self,
        now: Instant,
        ike: IkeSaId,
        inbound_spi: u32,
        hard: bool,
    ) -> Result<(), Error> {
        let mut id = self.current(ike).0;
        if !self.sas.contains_key(&id) {
            id = self
                .sas
                .iter()
                .find(|(_, s)| s.children.iter().any(|c| c.info.inbound_spi == inbound_spi))
                .map(|(&k, _)| k)
                .ok_or(Error::UnknownIkeSa(ike.0))?;
        }
        let sa = self.sas.get_mut(&id).ok_or(Error::UnknownIkeSa(ike.0))?;
        let c = sa
            .children
            .iter_mut()
            .find(|c| c.info.inbound_spi == inbound_spi)
            .ok_or(Error::UnknownChildSa {
                ike: ike.0,
                spi: inbound_spi,
            })?;
        if hard {
            info!(ike_sa = %IkeSaId(id), child = %c.info.name, "CHILD_SA {inbound_spi:08x}: hard limit reached, deleting it");
            c.expire_at = None;
            if !sa.queue.contains(&Intent::DeleteChild(inbound_spi)) {
                sa.queue.push_back(Intent::DeleteChild(inbound_spi));
            }
        } else if !c.rekey_started && !c.replaced {
            debug!(ike_sa = %IkeSaId(id), child = %c.info.name, "CHILD_SA {inbound_spi:08x}: soft limit reached, rekeying it");
            c.rekey_started = true;
            sa.queue.push_back(Intent::Rekey(inbound_spi));
        }
        self.pump(now, id);
        Ok(())
    }

    // ----------------------------------------------------------- plumbing

    fn fresh_spi(&mut self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            let v = u64::from_be_bytes(b);
            if v != 0 && !self.sas.contains_key(&v) {
                return v;
            }
        }
    }

    fn fresh_child_spi(&mut self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            self.rng.fill(&mut b);
            let v = u32::from_be_bytes(b);
            // 1..=255 are reserved by IANA (RFC 4303 2.1).
            if v > 255 {
                return v;
            }
        }
    }

    /// A random duration in 0..d.
    fn draw(&mut self, d: Duration) -> Duration {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if n == 0 {
            return Duration::ZERO;
        }
        let mut b = [0u8; 8];
        self.rng.fill(&mut b);
        Duration::from_nanos(u64::from_le_bytes(b) % n)
    }

    /// (rekey at, expire at) for an SA starting `now`.
    fn deadlines(
        &mut self,
        now: Instant,
        rekey: Option<Duration>,
        life: Option<Duration>,
        rand: Option<Duration>,
    ) -> (Option<Instant>, Option<Instant>) {
        let (r, l) = lifetimes(rekey, life, rand, |d| self.draw(d));
        (r.map(|r| now + r), l.map(|l| now + l))
    }

    fn ike_deadlines(&mut self, now: Instant, conn: usize) -> (Option<Instant>, Option<Instant>) {
        let (r, l, j) = match self.config.connections.get(conn) {
            Some(c) => (c.ike_rekey_time, c.ike_life_time, c.ike_rand_time),
            None => return (None, None),
        };
        self.deadlines(now, r, l, j)
    }

    /// How long a replaced IKE SA stays for the peer: a request it sent on
    /// the SA before it learnt of the rekey (a colliding rekey, say) is
    /// retransmitted for up to the whole retransmission schedule, and must
    /// still find the SA to get its (cached) answer.
    fn linger(&self) -> Duration {
        let rt = self.config.retransmit;
        let schedule: Duration = (0..rt.tries.min(32))
            .map(|n| {
                rt.initial
                    .saturating_mul(1 << n.min(16))
                    .min(rt.max_interval)
            })
            .sum();
        schedule.max(REKEYED_LINGER) + rt.initial
    }

    /// When to try a failed rekey again.
    fn retry_at(&mut self, now: Instant) -> Instant {
        now + REKEY_RETRY + self.draw(REKEY_RETRY / 2)
    }

    fn send(&mut self, local: SocketAddr, remote: SocketAddr, bytes: &[u8]) {
        let mut out = Vec::with_capacity(bytes.len() + 4);
        if local.port() == NATT_PORT || remote.port() == NATT_PORT {
            out.extend_from_slice(&NON_ESP_MARKER);
        }
        out.extend_from_slice(bytes);
        self.transmits.push_back(Transmit {
            local,
            remote,
            bytes: out,
        });
    }

    fn conn(&self, sa: &IkeSa) -> &Connection {
        &self.config.connections[sa.conn] // ok: conn indexes config, never changed
    }

    /// Remove every trace of an IKE SA and report it.
    fn finish(&mut self, _now: Instant, sa: IkeSa, reason: DownReason) {
        let id = IkeSaId(sa.our_spi());
        if let Some((cand, _, _)) = &sa.ike_collision {
            // Its would-be successor goes with it, unannounced.
            if let Some(c) = self.sas.remove(cand) {
                self.finish(_now, c, reason.clone());
            }
        }
        if sa.hidden || sa.redundant.is_some() {
            debug!(ike_sa = %id, "IKE SA of a colliding rekey removed: {reason:?}");
            return;
        }
        if let Some((new, _)) = sa.rekeyed {
            // Its CHILD_SAs moved to the new IKE SA; nothing went down.
            debug!(ike_sa = %id, new = %IkeSaId(new), "rekeyed IKE SA removed: {reason:?}");
            return;
        }
        for c in &sa.children {
            self.events.push_back(Event::ChildSaDeleted {
                ike_sa: id,
                name: c.info.name.clone(),
                inbound_spi: c.info.inbound_spi,
                outbound_spi: c.info.outbound_spi,
            });
        }
        if !sa.initiator {
            self.init_index.remove(&(sa.remote, sa.spi_i));
        }
        let name = self.conn(&sa).name.clone();
        match &reason {
            DownReason::Failed(why) => {
                warn!(connection = %name, ike_sa = %id, "IKE SA failed: {why}")
            }
            r => info!(connection = %name, ike_sa = %id, "IKE SA down: {r:?}"),
        }
        if sa.up() || matches!(reason, DownReason::Failed(_) | DownReason::Timeout) {
            self.events.push_back(Event::IkeSaDown {
                ike_sa: id,
                connection: name.clone(),
                reason: reason.clone(),
            });
        }
        let restart = DownReason::DeadPeer {
            action: DpdAction::Restart,
        };
        if reason == restart && self.is_live(sa.conn) {
            let _ = self.initiate_attempt(_now, sa.conn, 1, Plan::all());
        }
        // Setting up failed on a timeout (lost or damaged IKE_SA_INIT, say):
        // start over while keying tries remain.
        let tries = self.conn(&sa).keying_tries;
        if sa.initiator
            && !sa.up()
            && reason == DownReason::Timeout
            && sa.attempt > 0
            && sa.attempt < tries
            && self.is_live(sa.conn)
        {
            info!(connection = %name, "retrying, keying try {} of {tries}", sa.attempt + 1);
            // What was asked of this attempt is asked of the next.
            let plan = Plan {
                first: sa.first_child,
                all: sa.all_children,
                more: sa
                    .queue
                    .iter()
                    .filter(|i| matches!(i, Intent::NewChild(..)))
                    .copied()
                    .collect(),
            };
            let _ = self.initiate_attempt(_now, sa.conn, sa.attempt + 1, plan);
        }
    }

    fn set_pending(&mut self, now: Instant, sa: &mut IkeSa, msg_id: u32, bytes: Vec<u8>, req: Req) {
        self.send(sa.local, sa.remote, &bytes);
        sa.pending = Some(Pending {
            msg_id,
            bytes,
            sent: 1,
            next_at: now + self.config.retransmit.initial,
            req,
        });
    }

    // -------------------------------------------------------- IKE_SA_INIT

    fn send_init(&mut self, now: Instant, sa: &mut IkeSa) -> Result<(), Error> {
        let conn = self.conn(sa).clone();
        let kex = sa.kex.as_ref().ok_or(Error::BadConfig {
            name: conn.name.clone(),
            why: "internal: no key exchange".into(),
        })?;
        let mut payloads = Vec::new();
        if let Some(c) = &sa.cookie {
            payloads.push(Payload::Notify(NotifyPayload::new(
                notify::COOKIE,
                c.clone(),
            )));
        }
        // The group we send a KE for goes first so the responder sees it preferred.
        let mut props = conn.ike_proposals.clone();
        for p in &mut props {
            if let Some(pos) = p.ke.iter().position(|&g| g == sa.group) {
                p.ke.remove(pos);
                p.ke.insert(0, sa.group);
            }
        }
        payloads.push(Payload::Sa(negotiate::ike_sa_payload(&props, Vec::new())));
        payloads.push(Payload::Ke(KePayload {
            group: sa.group,
            data: kex.public_value().to_vec(),
        }));
        payloads.push(Payload::Nonce(NoncePayload {
            data: sa.ni.clone(),
        }));
        payloads.push(Payload::Notify(NotifyPayload::new(
            notify::NAT_DETECTION_SOURCE_IP,
            protect::nat_hash(&sa.spi_i, &[0; 8], sa.local),
        )));
        payloads.push(Payload::Notify(NotifyPayload::new(
            notify::NAT_DETECTION_DESTINATION_IP,
            protect::nat_hash(&sa.spi_i, &[0; 8], sa.remote),
        )));
        let msg = Message {
            header: sa.header(exchange::IKE_SA_INIT, false, 0),
            payloads,
        };
        let bytes = msg.to_vec()?;
        sa.init_req = bytes.clone();
        self.set_pending(now, sa, 0, bytes, Req::Init);
        Ok(())
    }

    fn respond_plain(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        spi_i: [u8; 8],
        n: NotifyPayload,
    ) {
        let msg = Message {
            header: HeaderRepr {
                spi_i,
                spi_r: [0; 8],
                minor_version: 0,
                exchange_type: exchange::IKE_SA_INIT,
                initiator: false,
                version: false,
                response: true,
                message_id: 0,
            },
            payloads: vec![Payload::Notify(n)],
        };
        if let Ok(b) = msg.to_vec() {
            self.send(local, remote, &b);
        }
    }

    fn half_open(&self) -> usize {
        self.sas
            .values()
            .filter(|s| s.st == St::RespAwaitAuth)
            .count()
    }

    fn responder_init(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &HeaderRepr,
        bytes: &[u8],
    ) {
        if hdr.message_id != 0 || hdr.spi_r != [0; 8] || !hdr.initiator {
            self.stats.unexpected += 1;
            return;
        }
        if let Some(&ours) = self.init_index.get(&(remote, hdr.spi_i)) {
            let resend = self
                .sas
                .get(&ours)
                .filter(|s| s.init_req == bytes)
                .map(|s| (s.local, s.remote, s.init_resp.clone()));
            match resend {
                Some((l, r, b)) => {
                    self.stats.duplicate_requests += 1;
                    self.send(l, r, &b);
                    return;
                }
                None => {
                    // Same SPIi, other bytes: a new attempt by the peer (or
                    // the first copy was damaged). A half-open SA is
                    // replaced; an established one is kept.
                    let half_open = self
                        .sas
                        .get(&ours)
                        .is_some_and(|s| s.st == St::RespAwaitAuth);
                    if !half_open {
                        self.stats.unexpected += 1;
                        return;
                    }
                    self.sas.remove(&ours);
                    self.init_index.remove(&(remote, hdr.spi_i));
                }
            }
        }
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                debug!(%remote, "IKE_SA_INIT request dropped: {e}");
                self.stats.malformed += 1;
                return;
            }
        };
        let p = &msg.payloads;
        let (Some(sa_p), Some(ke_p), Some(nonce_p)) =
            (find(p, sa_of), find(p, ke_of), find(p, nonce_of))
        else {
            self.stats.malformed += 1;
            self.respond_plain(
                local,
                remote,
                hdr.spi_i,
                NotifyPayload::new(notify::INVALID_SYNTAX, vec![]),
            );
            return;
        };
        let Some(ci) = self
            .config
            .connections
            .iter()
            .zip(&self.live)
            .position(|(c, &l)| {
                l && addr_matches(c.remote_addr, remote) && addr_matches(c.local_addr, local)
            })
        else {
            info!(%remote, "IKE_SA_INIT from a peer no connection accepts");
            self.respond_plain(
                local,
                remote,
                hdr.spi_i,
                NotifyPayload::new(notify::NO_PROPOSAL_CHOSEN, vec![]),
            );
            return;
        };
        // COOKIE (2.6): only when many SAs are half open, and without state.
        if self.half_open() >= self.config.cookie_threshold {
            let want = protect::cookie(&self.cookie_secret, &nonce_p.data, remote, &hdr.spi_i);
            let ok = matches!(p.first(), Some(Payload::Notify(n)) if n.notify_type == notify::COOKIE && ct_eq(&n.data, &want));
            if !ok {
                self.stats.cookies_sent += 1;
                self.respond_plain(
                    local,
                    remote,
                    hdr.spi_i,
                    NotifyPayload::new(notify::COOKIE, want),
                );
                return;
            }
        }
        let from_source = self
            .sas
            .values()
            .filter(|s| s.st == St::RespAwaitAuth && s.remote.ip() == remote.ip())
            .count();
        if from_source >= self.config.half_open_per_source {
            debug!(%remote, "IKE_SA_INIT dropped: {from_source} half-open SAs from this address");
            self.stats.half_open_limited += 1;
            return;
        }
        let conn = self.config.connections[ci].clone(); // ok: position() found it
        let Some((chosen, number)) = negotiate::select_ike(sa_p, &conn.ike_proposals) else {
            warn!(
                connection = %conn.name, %remote,
                "NO_PROPOSAL_CHOSEN: we accept {}, they offered {}",
                negotiate::sa_display(&negotiate::ike_sa_payload(&conn.ike_proposals, vec![])),
                negotiate::sa_display(sa_p)
            );
            self.respond_plain(
                local,
                remote,
                hdr.spi_i,
                NotifyPayload::new(notify::NO_PROPOSAL_CHOSEN, vec![]),
            );
            return;
        };
        let group = chosen.ke.unwrap_or(0);
        if ke_p.group != group {
            debug!(%remote, "INVALID_KE_PAYLOAD: KE for {} but we chose {}", ke_p.group, group);
            self.respond_plain(
                local,
                remote,
                hdr.spi_i,
                NotifyPayload::invalid_ke_payload(group),
            );
            return;
        }
        let (our_ke, shared) = match kex::respond(group, &ke_p.data, conn.policy) {
            Ok(x) => x,
            Err(e) => {
                info!(%remote, "IKE_SA_INIT: peer's KE rejected: {e}");
                self.stats.malformed += 1;
                self.respond_plain(
                    local,
                    remote,
                    hdr.spi_i,
                    NotifyPayload::new(notify::INVALID_SYNTAX, vec![]),
                );
                return;
            }
        };
        let spi = self.fresh_spi();
        let spi_r = spi.to_be_bytes();
        let mut nr = vec![0; NONCE_LEN];
        self.rng.fill(&mut nr);
        let nat = Self::nat_detected(p, &hdr.spi_i, &[0; 8], remote, local);
        let response = Message {
            header: HeaderRepr {
                spi_i: hdr.spi_i,
                spi_r,
                minor_version: 0,
                exchange_type: exchange::IKE_SA_INIT,
                initiator: false,
                version: false,
                response: true,
                message_id: 0,
            },
            payloads: vec![
                Payload::Sa(SaPayload {
                    proposals: vec![chosen.to_proposal(number, protocol::IKE, vec![])],
                }),
                Payload::Ke(KePayload {
                    group,
                    data: our_ke,
                }),
                Payload::Nonce(NoncePayload { data: nr.clone() }),
                Payload::Notify(NotifyPayload::new(
                    notify::NAT_DETECTION_SOURCE_IP,
                    protect::nat_hash(&hdr.spi_i, &spi_r, local),
                )),
                Payload::Notify(NotifyPayload::new(
                    notify::NAT_DETECTION_DESTINATION_IP,
                    protect::nat_hash(&hdr.spi_i, &spi_r, remote),
                )),
            ],
        };
        let keys = IkeKeys::derive(
            chosen,
            conn.policy,
            &shared,
            &nonce_p.data,
            &nr,
            &hdr.spi_i,
            &spi_r,
            false,
            None,
        );
        let (Ok(resp), Ok(keys)) = (response.to_vec(), keys) else {
            warn!(%remote, "IKE_SA_INIT: could not build the response");
            return;
        };
        self.send(local, remote, &resp);
        let sa = IkeSa {
            conn: ci,
            initiator: false,
            spi_i: hdr.spi_i,
            spi_r,
            local,
            remote,
            st: St::RespAwaitAuth,
            kex: None,
            group,
            cookie: None,
            init_retries: 0,
            ni: nonce_p.data.clone(),
            nr,
            init_req: bytes.to_vec(),
            init_resp: resp.clone(),
            keys: Some(keys),
            next_req_id: 0,
            peer_req_id: 1,
            last_resp: Some((0, resp)),
            pending: None,
            queue: VecDeque::new(),
            children: Vec::new(),
            auth_child: None,
            created: now,
            last_rx: now,
            nat,
            peer_id: None,
            rekeyed: None,
            ike_rekey_started: false,
            attempt: 0,
            init_errors: 0,
            init_error: None,
            established: None,
            rekey_at: None,
            expire_at: None,
            first_child: None,
            all_children: false,
            ike_collision: None,
            hidden: false,
            redundant: None,
            delete_requested: false,
        };
        self.init_index.insert((remote, hdr.spi_i), spi);
        self.sas.insert(spi, sa);
    }

    /// RFC 7296 2.23: a NAT is between us when a hash does not match.
    fn nat_detected(
        p: &[Payload],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
        src: SocketAddr,
        dst: SocketAddr,
    ) -> bool {
        let srcs: Vec<&NotifyPayload> = p
            .iter()
            .filter_map(|x| match x {
                Payload::Notify(n) if n.notify_type == notify::NAT_DETECTION_SOURCE_IP => Some(n),
                _ => None,
            })
            .collect();
        let dst_n = notify(p, notify::NAT_DETECTION_DESTINATION_IP);
        if srcs.is_empty() || dst_n.is_none() {
            return false;
        }
        let src_ok = srcs
            .iter()
            .any(|n| n.data == protect::nat_hash(spi_i, spi_r, src));
        let dst_ok = dst_n.is_some_and(|n| n.data == protect::nat_hash(spi_i, spi_r, dst));
        !(src_ok && dst_ok)
    }

    fn initiator_init_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        hdr: &HeaderRepr,
        bytes: &[u8],
    ) -> Fate {
        let Ok(msg) = Message::parse(bytes) else {
            self.stats.malformed += 1;
            return Fate::Keep;
        };
        let p = &msg.payloads;
        let conn = self.conn(sa).clone();
        if let Some(c) = notify(p, notify::COOKIE) {
            sa.init_retries += 1;
            if sa.init_retries > MAX_INIT_RETRIES || c.data.is_empty() || c.data.len() > 64 {
                return Fate::Kill(DownReason::Failed(
                    "responder keeps asking for a COOKIE".into(),
                ));
            }
            sa.cookie = Some(c.data.clone());
            return match self.send_init(now, sa) {
                Ok(()) => Fate::Keep,
                Err(e) => Fate::Kill(DownReason::Failed(e.to_string())),
            };
        }
        if let Some(n) = notify(p, notify::INVALID_KE_PAYLOAD) {
            sa.init_retries += 1;
            let g = n.data_u16().unwrap_or(0);
            let ours = conn.ike_proposals.iter().any(|pr| pr.ke.contains(&g));
            if !ours || g == sa.group || sa.init_retries > MAX_INIT_RETRIES {
                return Fate::Kill(DownReason::Failed(format!(
                    "peer `{}`: INVALID_KE_PAYLOAD asks for group {g}, which we do not offer",
                    conn.name
                )));
            }
            debug!(connection = %conn.name, "INVALID_KE_PAYLOAD: retrying with group {g}");
            sa.group = g;
            sa.kex = match kex::initiate(g, conn.policy) {
                Ok(k) => Some(k),
                Err(e) => return Fate::Kill(DownReason::Failed(e.to_string())),
            };
            return match self.send_init(now, sa) {
                Ok(()) => Fate::Keep,
                Err(e) => Fate::Kill(DownReason::Failed(e.to_string())),
            };
        }
        if let Some(err) = first_error(p) {
            let offered =
                negotiate::sa_display(&negotiate::ike_sa_payload(&conn.ike_proposals, vec![]));
            let why = format!(
                "peer `{}`: {} in IKE_SA_INIT; we offered {offered}",
                conn.name,
                notify_name(err)
            );
            // 2.21.1: an unprotected error may be forged or damaged; give up
            // only when the peer repeats it, or when the exchange times out.
            sa.init_errors += 1;
            if sa.init_errors >= 3 {
                return Fate::Kill(DownReason::Failed(why));
            }
            debug!("{why} (unauthenticated, waiting for more)");
            sa.init_error = Some(why);
            if let Some(p) = sa.pending.as_mut() {
                p.next_at = p.next_at.min(now);
            }
            return Fate::Keep;
        }
        let (Some(sa_p), Some(ke_p), Some(nonce_p)) =
            (find(p, sa_of), find(p, ke_of), find(p, nonce_of))
        else {
            self.stats.malformed += 1;
            return Fate::Keep;
        };
        let Some(chosen) = negotiate::accept_ike(sa_p, &conn.ike_proposals) else {
            return Fate::Kill(DownReason::Failed(format!(
                "peer `{}` answered with a proposal we did not offer: {}",
                conn.name,
                negotiate::sa_display(sa_p)
            )));
        };
        if chosen.ke != Some(sa.group) || ke_p.group != sa.group || hdr.spi_r == [0; 8] {
            self.stats.malformed += 1;
            return Fate::Keep;
        }
        let Some(kex) = sa.kex.take() else {
            return Fate::Keep;
        };
        let shared = match kex.complete(&ke_p.data) {
            Ok(s) => s,
            Err(e) => return Fate::Kill(DownReason::Failed(format!("peer `{}`: {e}", conn.name))),
        };
        sa.spi_r = hdr.spi_r;
        sa.nr = nonce_p.data.clone();
        sa.init_resp = bytes.to_vec();
        sa.nat = Self::nat_detected(p, &sa.spi_i, &sa.spi_r, sa.remote, sa.local);
        let keys = match IkeKeys::derive(
            chosen,
            conn.policy,
            &shared,
            &sa.ni,
            &sa.nr,
            &sa.spi_i,
            &sa.spi_r,
            true,
            None,
        ) {
            Ok(k) => k,
            Err(e) => return Fate::Kill(DownReason::Failed(e.to_string())),
        };
        sa.keys = Some(keys);
        sa.pending = None;
        if sa.nat && sa.local.port() != NATT_PORT {
            // 2.23: after a NAT is detected, move to port 4500.
            sa.local.set_port(NATT_PORT);
            sa.remote.set_port(NATT_PORT);
        }
        match self.send_auth(now, sa) {
            Ok(()) => Fate::Keep,
            Err(e) => Fate::Kill(DownReason::Failed(e.to_string())),
        }
    }

    // ------------------------------------------------------------ IKE_AUTH

    fn send_auth(&mut self, now: Instant, sa: &mut IkeSa) -> Result<(), Error> {
        let conn = self.conn(sa).clone();
        let keys = sa.keys.as_ref().ok_or(Error::UnknownIkeSa(sa.our_spi()))?;
        let idi = conn.local_id.to_payload();
        let auth_v = keys.psk_auth(&conn.psk, true, &sa.init_req, &sa.nr, &id_body(&idi))?;
        let mut inner = vec![Payload::IdI(idi)];
        if conn.initial_contact {
            inner.push(Payload::Notify(NotifyPayload::new(
                notify::INITIAL_CONTACT,
                vec![],
            )));
        }
        if let Some(r) = &conn.remote_id {
            inner.push(Payload::IdR(r.to_payload()));
        }
        inner.push(Payload::Auth(AuthPayload {
            method: auth::SHARED_KEY_MIC,
            data: auth_v.as_bytes().to_vec(),
        }));
        let first = sa
            .first_child
            .and_then(|(ci, pkt)| Some((ci, pkt, conn.children.get(ci)?)));
        if let Some((ci, pkt, child)) = first {
            let (tsi, tsr) = proposed_ts(child, pkt);
            let spi = self.fresh_child_spi();
            if child.mode == Mode::Transport {
                inner.push(Payload::Notify(NotifyPayload::new(
                    notify::USE_TRANSPORT_MODE,
                    vec![],
                )));
            }
            inner.push(Payload::Sa(negotiate::esp_sa_payload(
                &child.esp_proposals,
                spi,
                false,
            )));
            inner.push(Payload::TsI(TsPayload { selectors: tsi }));
            inner.push(Payload::TsR(TsPayload { selectors: tsr }));
            sa.auth_child = Some((ci, spi));
        }
        let id = sa.next_req_id;
        sa.next_req_id += 1;
        let keys = sa.keys.as_ref().ok_or(Error::UnknownIkeSa(sa.our_spi()))?;
        let bytes = keys.out.seal(
            self.rng.as_mut(),
            sa.header(exchange::IKE_AUTH, false, id),
            &inner,
        )?;
        sa.st = St::AuthSent;
        self.set_pending(now, sa, id, bytes, Req::Auth);
        Ok(())
    }

    /// Pick the connection for a peer identity: one naming it exactly, else
    /// one that accepts any identity, among those that fit the addresses.
    fn conn_for_peer(&self, sa: &IkeSa, id: &Identity) -> Option<usize> {
        let cands: Vec<usize> = (0..self.config.connections.len())
            .filter(|&i| {
                let c = &self.config.connections[i]; // ok: i < len
                self.is_live(i)
                    && addr_matches(c.remote_addr, sa.remote)
                    && addr_matches(c.local_addr, sa.local)
            })
            .collect();
        cands
            .iter()
            .copied()
            .find(|&i| self.config.connections[i].remote_id.as_ref() == Some(id)) // ok: i < len
            .or_else(|| {
                cands
                    .iter()
                    .copied()
                    .find(|&i| self.config.connections[i].remote_id.is_none()) // ok: i < len
            })
    }

    fn responder_auth(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        inner: &[Payload],
    ) -> (Vec<Payload>, Fate) {
        let idi = inner.iter().find_map(|p| match p {
            Payload::IdI(x) => Some(x),
            _ => None,
        });
        let auth_p = inner.iter().find_map(|p| match p {
            Payload::Auth(x) => Some(x),
            _ => None,
        });
        let fail = |why: String| {
            (
                vec![Payload::Notify(NotifyPayload::new(
                    notify::AUTHENTICATION_FAILED,
                    vec![],
                ))],
                Fate::Kill(DownReason::Failed(why)),
            )
        };
        let (Some(idi), Some(auth_p)) = (idi, auth_p) else {
            return fail("IKE_AUTH without IDi or AUTH".into());
        };
        let Some(peer) = Identity::from_payload(idi) else {
            return fail(format!(
                "peer identity of type {} not supported",
                idi.id_type
            ));
        };
        let Some(ci) = self.conn_for_peer(sa, &peer) else {
            self.stats.auth_failed += 1;
            return fail(format!(
                "no connection accepts peer identity `{peer}` from {}",
                sa.remote
            ));
        };
        sa.conn = ci;
        let conn = self.conn(sa).clone();
        let Some(keys) = sa.keys.as_ref() else {
            return fail("internal: no keys".into());
        };
        let expect = keys.psk_auth(&conn.psk, true, &sa.init_req, &sa.nr, &id_body(idi));
        let ok = auth_p.method == auth::SHARED_KEY_MIC
            && expect
                .as_ref()
                .is_ok_and(|e| ct_eq(e.as_bytes(), &auth_p.data));
        if !ok {
            self.stats.auth_failed += 1;
            return fail(format!(
                "peer `{}` ({peer}): AUTHENTICATION_FAILED: AUTH method {} does not verify with our PSK",
                conn.name, auth_p.method
            ));
        }
        let idr = conn.local_id.to_payload();
        let Ok(our_auth) = keys.psk_auth(&conn.psk, false, &sa.init_resp, &sa.ni, &id_body(&idr))
        else {
            return fail("internal: AUTH computation failed".into());
        };
        sa.peer_id = Some(peer.clone());
        sa.st = St::Established;
        sa.established = Some(now);
        (sa.rekey_at, sa.expire_at) = self.ike_deadlines(now, sa.conn);
        sa.last_rx = now;
        if notify(inner, notify::INITIAL_CONTACT).is_some() {
            self.initial_contact(now, sa.conn, &peer);
        }
        let id = IkeSaId(sa.our_spi());
        info!(connection = %conn.name, ike_sa = %id, remote = %sa.remote, peer = %peer, "IKE SA established (responder)");
        self.events.push_back(Event::IkeSaUp {
            ike_sa: id,
            connection: conn.name.clone(),
            initiator: false,
            local: sa.local,
            remote: sa.remote,
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            remote_id: Some(peer),
            nat_detected: sa.nat,
        });
        let mut out = vec![
            Payload::IdR(idr),
            Payload::Auth(AuthPayload {
                method: auth::SHARED_KEY_MIC,
                data: our_auth.as_bytes().to_vec(),
            }),
        ];
        if find(inner, sa_of).is_some() {
            let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
            out.extend(self.respond_child(now, sa, inner, &ni, &nr, None, None));
        }
        (out, Fate::Keep)
    }

    /// RFC 7296 2.4: INITIAL_CONTACT says the peer holds no other SA with
    /// us, so the ones it set up earlier (before a restart) are stale. Only
    /// SAs the peer initiated are dropped, so that simultaneous initiation,
    /// where both sides send INITIAL_CONTACT, does not lose the crossing SA.
    fn initial_contact(&mut self, now: Instant, conn: usize, peer: &Identity) {
        let stale: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, s)| {
                !s.initiator
                    && s.conn == conn
                    && s.up()
                    && s.rekeyed.is_none()
                    && !s.hidden
                    && s.peer_id.as_ref() == Some(peer)
            })
            .map(|(&k, _)| k)
            .collect();
        for k in stale {
            if let Some(old) = self.sas.remove(&k) {
                info!(ike_sa = %IkeSaId(k), %peer, "INITIAL_CONTACT: dropping the peer's stale IKE SA");
                self.finish(now, old, DownReason::Replaced);
            }
        }
    }

    /// Responder half of a CHILD_SA negotiation (IKE_AUTH or CREATE_CHILD_SA).
    /// `pfs_shared` is the KE result for a rekey with PFS; `rekeys` the
    /// inbound SPI of the SA being replaced.
    #[allow(clippy::too_many_arguments)]
    fn respond_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        inner: &[Payload],
        ni: &[u8],
        nr: &[u8],
        pfs: Option<(u16, &Secret)>,
        rekeys: Option<u32>,
    ) -> Vec<Payload> {
        let conn = self.conn(sa).clone();
        let id = IkeSaId(sa.our_spi());
        let err = |t: u16| vec![Payload::Notify(NotifyPayload::new(t, vec![]))];
        let (Some(sa_p), Some(tsi), Some(tsr)) =
            (find(inner, sa_of), find(inner, tsi_of), find(inner, tsr_of))
        else {
            return err(notify::INVALID_SYNTAX);
        };
        // 2.9: the first TSi/TSr may be the exact selectors of the packet
        // that made the peer start this; a child that takes that packet is
        // preferred over the first one that merely overlaps.
        let mut fits = None;
        let first = (tsi.selectors.first(), tsr.selectors.first());
        for want_first in [true, false] {
            for (i, c) in conn.children.iter().enumerate() {
                if want_first {
                    let (Some(fi), Some(fr)) = first else { break };
                    if !negotiate::within(&[*fi], &c.remote_ts)
                        || !negotiate::within(&[*fr], &c.local_ts)
                    {
                        continue;
                    }
                }
                let ti = negotiate::narrow(&tsi.selectors, &c.remote_ts);
                let tr = negotiate::narrow(&tsr.selectors, &c.local_ts);
                if !ti.is_empty() && !tr.is_empty() {
                    fits = Some((i, ti, tr));
                    break;
                }
            }
            if fits.is_some() {
                break;
            }
        }
        let Some((ci, ts_i, ts_r)) = fits else {
            let ours: Vec<String> = conn
                .children
                .iter()
                .map(|c| {
                    format!(
                        "{}: {} === {}",
                        c.name,
                        negotiate::ts_display(&c.remote_ts),
                        negotiate::ts_display(&c.local_ts)
                    )
                })
                .collect();
            warn!(
                connection = %conn.name, ike_sa = %id,
                "TS_UNACCEPTABLE: peer proposed TSi {} TSr {}; we have [{}]",
                negotiate::ts_display(&tsi.selectors),
                negotiate::ts_display(&tsr.selectors),
                ours.join("; ")
            );
            self.events.push_back(Event::ChildSaFailed {
                ike_sa: id,
                name: String::new(),
                reason: "TS_UNACCEPTABLE".into(),
            });
            return err(notify::TS_UNACCEPTABLE);
        };
        let cfg = &conn.children[ci]; // ok: found above
        let Some((chosen, number, their_spi)) =
            negotiate::select_esp(sa_p, &cfg.esp_proposals, pfs.is_some())
        else {
            warn!(
                connection = %conn.name, ike_sa = %id, child = %cfg.name,
                "NO_PROPOSAL_CHOSEN for the CHILD_SA: we accept {}, they offered {}",
                negotiate::sa_display(&negotiate::esp_sa_payload(&cfg.esp_proposals, 0, pfs.is_some())),
                negotiate::sa_display(sa_p)
            );
            self.events.push_back(Event::ChildSaFailed {
                ike_sa: id,
                name: cfg.name.clone(),
                reason: "NO_PROPOSAL_CHOSEN".into(),
            });
            return err(notify::NO_PROPOSAL_CHOSEN);
        };
        if let (Some((g, _)), Some(k)) = (pfs, chosen.ke) {
            if g != k {
                return vec![Payload::Notify(NotifyPayload::invalid_ke_payload(k))];
            }
        }
        let transport =
            cfg.mode == Mode::Transport && notify(inner, notify::USE_TRANSPORT_MODE).is_some();
        let our_spi = self.fresh_child_spi();
        let shared: Vec<&[u8]> = pfs.iter().map(|(_, s)| s.as_bytes()).collect();
        let Some(info) = self.child_info(
            sa,
            &conn,
            cfg.name.clone(),
            chosen,
            our_spi,
            their_spi,
            &shared,
            ni,
            nr,
            ts_r.clone(),
            ts_i.clone(),
            transport,
            rekeys,
            false,
        ) else {
            return err(notify::NO_PROPOSAL_CHOSEN);
        };
        self.install_child(now, sa, info, ci);
        let mut out = vec![Payload::Sa(SaPayload {
            proposals: vec![chosen.to_proposal(
                number,
                protocol::ESP,
                our_spi.to_be_bytes().to_vec(),
            )],
        })];
        if transport {
            out.insert(
                0,
                Payload::Notify(NotifyPayload::new(notify::USE_TRANSPORT_MODE, vec![])),
            );
        }
        out.push(Payload::TsI(TsPayload { selectors: ts_i }));
        out.push(Payload::TsR(TsPayload { selectors: ts_r }));
        out
    }

    /// CHILD_SA keys (2.17) oriented for us.
    #[allow(clippy::too_many_arguments)]
    fn child_info(
        &self,
        sa: &IkeSa,
        conn: &Connection,
        name: String,
        chosen: Chosen,
        inbound_spi: u32,
        outbound_spi: u32,
        shared: &[&[u8]],
        ni: &[u8],
        nr: &[u8],
        local_ts: Vec<TrafficSelector>,
        remote_ts: Vec<TrafficSelector>,
        transport: bool,
        rekeys: Option<u32>,
        exchange_initiator: bool,
    ) -> Option<ChildSaInfo> {
        let keys = sa.keys.as_ref()?;
        let (el, il) = child_key_lens(&chosen).ok()?;
        let k = kdf::child_sa_keys(keys.prf, keys.sk_d.as_bytes(), shared, ni, nr, el, il).ok()?;
        // Keys for initiator-to-responder traffic come first (2.17).
        let (inb_e, inb_i, out_e, out_i) = if exchange_initiator {
            (k.encr_r, k.integ_r, k.encr_i, k.integ_i)
        } else {
            (k.encr_i, k.integ_i, k.encr_r, k.integ_r)
        };
        Some(ChildSaInfo {
            ike_sa: IkeSaId(sa.our_spi()),
            connection: conn.name.clone(),
            name,
            inbound_spi,
            outbound_spi,
            encr: chosen.encr,
            integ: chosen.integ,
            esn: chosen.esn.unwrap_or(false),
            pfs_group: if shared.is_empty() { None } else { chosen.ke },
            inbound_encr_key: inb_e,
            inbound_integ_key: inb_i,
            outbound_encr_key: out_e,
            outbound_integ_key: out_i,
            local_ts,
            remote_ts,
            mode: if transport {
                Mode::Transport
            } else {
                Mode::Tunnel
            },
            encap: sa.nat,
            local: sa.local,
            remote: sa.remote,
            rekeys,
            initiator: exchange_initiator,
        })
    }

    fn install_child(&mut self, now: Instant, sa: &mut IkeSa, info: ChildSaInfo, cfg: usize) {
        let (rekey_at, expire_at) = match self.conn(sa).children.get(cfg) {
            Some(c) => {
                let (r, l, j) = (c.rekey_time, c.life_time, c.rand_time);
                self.deadlines(now, r, l, j)
            }
            None => (None, None),
        };
        info!(
            ike_sa = %info.ike_sa, child = %info.name,
            "CHILD_SA installed: SPIs in {:08x} out {:08x}, {} === {}",
            info.inbound_spi, info.outbound_spi,
            negotiate::ts_display(&info.local_ts), negotiate::ts_display(&info.remote_ts)
        );
        self.events.push_back(Event::ChildSaInstalled(info.clone()));
        sa.children.push(Child {
            info,
            cfg,
            installed: now,
            rekey_at,
            expire_at,
            rekey_started: false,
            peer_rekey: None,
            replaced: false,
        });
    }

    fn initiator_auth_response(&mut self, now: Instant, sa: &mut IkeSa, inner: &[Payload]) -> Fate {
        let conn = self.conn(sa).clone();
        let idr = inner.iter().find_map(|p| match p {
            Payload::IdR(x) => Some(x),
            _ => None,
        });
        let auth_p = inner.iter().find_map(|p| match p {
            Payload::Auth(x) => Some(x),
            _ => None,
        });
        let (Some(idr), Some(auth_p)) = (idr, auth_p) else {
            let why = first_error(inner).map_or("no IDr/AUTH".to_string(), notify_name);
            return Fate::Kill(DownReason::Failed(format!(
                "peer `{}`: IKE_AUTH failed: {why}",
                conn.name
            )));
        };
        let peer = Identity::from_payload(idr);
        if let Some(want) = &conn.remote_id {
            if peer.as_ref() != Some(want) {
                return Fate::Kill(DownReason::Failed(format!(
                    "peer `{}` identified as {:?}, we expect {want}",
                    conn.name, peer
                )));
            }
        }
        let Some(keys) = sa.keys.as_ref() else {
            return Fate::Kill(DownReason::Failed("internal: no keys".into()));
        };
        let expect = keys.psk_auth(&conn.psk, false, &sa.init_resp, &sa.ni, &id_body(idr));
        let ok = auth_p.method == auth::SHARED_KEY_MIC
            && expect
                .as_ref()
                .is_ok_and(|e| ct_eq(e.as_bytes(), &auth_p.data));
        if !ok {
            self.stats.auth_failed += 1;
            // 2.21.2: an initiator-side error goes out in its own
            // INFORMATIONAL, so the responder drops its (established) SA.
            let note = [Payload::Notify(NotifyPayload::new(
                notify::AUTHENTICATION_FAILED,
                vec![],
            ))];
            let id = sa.next_req_id;
            if let Ok(b) = keys.out.seal(
                self.rng.as_mut(),
                sa.header(exchange::INFORMATIONAL, false, id),
                &note,
            ) {
                self.send(sa.local, sa.remote, &b);
            }
            return Fate::Kill(DownReason::Failed(format!(
                "peer `{}`: responder's AUTH does not verify with our PSK",
                conn.name
            )));
        }
        sa.st = St::Established;
        sa.established = Some(now);
        (sa.rekey_at, sa.expire_at) = self.ike_deadlines(now, sa.conn);
        sa.peer_id = peer.clone();
        let id = IkeSaId(sa.our_spi());
        info!(connection = %conn.name, ike_sa = %id, remote = %sa.remote, "IKE SA established (initiator)");
        self.events.push_back(Event::IkeSaUp {
            ike_sa: id,
            connection: conn.name.clone(),
            initiator: true,
            local: sa.local,
            remote: sa.remote,
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            remote_id: peer,
            nat_detected: sa.nat,
        });
        // CHILD_SAs beyond the first come through CREATE_CHILD_SA (1.3.1).
        if sa.all_children {
            let first = sa.first_child.map(|f| f.0);
            for ci in (0..conn.children.len()).filter(|&i| Some(i) != first) {
                sa.queue.push_back(Intent::NewChild(ci, None));
            }
        }
        if let Some((ci, our_spi)) = sa.auth_child.take() {
            let cfg = &conn.children[ci]; // ok: auth_child indexes this connection's children
            let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
            match self.initiator_child(sa, &conn, ci, inner, our_spi, &ni, &nr, &[], None) {
                Ok(info) => self.install_child(now, sa, info, ci),
                Err(why) => {
                    warn!(connection = %conn.name, ike_sa = %id, child = %cfg.name, "CHILD_SA failed: {why}");
                    self.events.push_back(Event::ChildSaFailed {
                        ike_sa: id,
                        name: cfg.name.clone(),
                        reason: why,
                    });
                }
            }
        }
        Fate::Keep
    }

    /// Initiator half of a CHILD_SA: check the responder's SA and TS.
    #[allow(clippy::too_many_arguments)]
    fn initiator_child(
        &self,
        sa: &IkeSa,
        conn: &Connection,
        ci: usize,
        inner: &[Payload],
        our_spi: u32,
        ni: &[u8],
        nr: &[u8],
        shared: &[&[u8]],
        rekeys: Option<u32>,
    ) -> Result<ChildSaInfo, String> {
        let cfg = conn.children.get(ci).ok_or("internal: child config")?;
        if let Some(e) = first_error(inner) {
            let mut why = notify_name(e);
            if e == notify::TS_UNACCEPTABLE {
                why.push_str(&format!(
                    ": we proposed TSi {} TSr {}",
                    negotiate::ts_display(&cfg.local_ts),
                    negotiate::ts_display(&cfg.remote_ts)
                ));
            }
            return Err(why);
        }
        let (Some(sa_p), Some(tsi), Some(tsr)) =
            (find(inner, sa_of), find(inner, tsi_of), find(inner, tsr_of))
        else {
            return Err("response lacks SA, TSi or TSr".into());
        };
        let Some((chosen, their_spi)) =
            negotiate::accept_esp(sa_p, &cfg.esp_proposals, !shared.is_empty())
        else {
            return Err(format!(
                "responder chose {}, which we did not offer",
                negotiate::sa_display(sa_p)
            ));
        };
        // The narrowed selectors must lie within what we proposed.
        if !negotiate::within(&tsi.selectors, &cfg.local_ts)
            || !negotiate::within(&tsr.selectors, &cfg.remote_ts)
            || tsi.selectors.is_empty()
            || tsr.selectors.is_empty()
        {
            return Err(format!(
                "responder's selectors {} === {} are wider than ours",
                negotiate::ts_display(&tsi.selectors),
                negotiate::ts_display(&tsr.selectors)
            ));
        }
        let transport = notify(inner, notify::USE_TRANSPORT_MODE).is_some();
        self.child_info(
            sa,
            conn,
            cfg.name.clone(),
            chosen,
            our_spi,
            their_spi,
            shared,
            ni,
            nr,
            tsi.selectors.clone(),
            tsr.selectors.clone(),
            transport,
            rekeys,
            true,
        )
        .ok_or_else(|| "CHILD_SA key derivation failed".to_string())
    }

    // ---------------------------------------------------- datagram input

    /// Feed one datagram received on `local` from `remote`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.stats.received += 1;
        let mut bytes = data;
        if local.port() == NATT_PORT || remote.port() == NATT_PORT {
            if bytes == [0xff] {
                return; // NAT keepalive (RFC 3948 2.3)
            }
            match bytes.strip_prefix(&NON_ESP_MARKER[..]) {
                Some(rest) => bytes = rest,
                None => {
                    self.stats.unexpected += 1; // ESP belongs to the data plane
                    return;
                }
            }
        }
        let hdr = match Header::new_checked(bytes).and_then(|h| HeaderRepr::parse(&h)) {
            Ok(h) => h,
            Err(e) => {
                debug!(%remote, "dropped: {e}");
                self.stats.malformed += 1;
                return;
            }
        };
        if hdr.exchange_type == exchange::IKE_SA_INIT && !hdr.response {
            self.responder_init(now, local, remote, &hdr, bytes);
            return;
        }
        let ours = u64::from_be_bytes(if hdr.initiator { hdr.spi_r } else { hdr.spi_i });
        let Some(mut sa) = self.sas.remove(&ours) else {
            if !self.answer_again(now, ours, &hdr, (local, remote)) {
                self.stats.unknown_spi += 1;
            }
            return;
        };
        if sa.initiator == hdr.initiator
            || (sa.initiator && sa.st != St::InitSent && hdr.spi_r != sa.spi_r)
        {
            self.stats.unexpected += 1;
            self.sas.insert(ours, sa);
            return;
        }
        let fate = if hdr.response {
            self.handle_response(now, &mut sa, &hdr, bytes, (local, remote))
        } else {
            self.handle_request(now, &mut sa, &hdr, bytes, (local, remote))
        };
        match fate {
            Fate::Keep => {
                self.sas.insert(ours, sa);
                self.pump(now, ours);
            }
            Fate::Kill(reason) => {
                if !hdr.response {
                    self.keep_answer(now, &sa, hdr.message_id);
                }
                self.finish(now, sa, reason)
            }
        }
    }

    /// `sa` ends with request `message_id`: keep our answer to it, if we
    /// sent one, for the peer's retransmissions (see [`Answered`]).
    fn keep_answer(&mut self, now: Instant, sa: &IkeSa, message_id: u32) {
        let Some((id, response)) = &sa.last_resp else {
            return;
        };
        if *id != message_id {
            return;
        }
        self.answered.retain(|_, a| a.until > now);
        let until = now + self.linger();
        self.answered.insert(
            sa.our_spi(),
            Answered {
                spi_i: sa.spi_i,
                spi_r: sa.spi_r,
                initiator: sa.initiator,
                message_id,
                response: response.clone(),
                until,
            },
        );
    }

    /// A request for an IKE SA that is gone: if it is a retransmission of
    /// the request that ended it, answer it again (2.11: where it came
    /// from). Whether it was.
    fn answer_again(
        &mut self,
        now: Instant,
        ours: u64,
        hdr: &HeaderRepr,
        (local, remote): (SocketAddr, SocketAddr),
    ) -> bool {
        let Some(a) = self.answered.get(&ours) else {
            return false;
        };
        if hdr.response
            || a.until <= now
            || (a.spi_i, a.spi_r) != (hdr.spi_i, hdr.spi_r)
            || a.initiator == hdr.initiator
            || a.message_id != hdr.message_id
        {
            return false;
        }
        let response = a.response.clone();
        self.stats.duplicate_requests += 1;
        debug!(ike_sa = %IkeSaId(ours), %remote, "request for a deleted IKE SA answered again");
        self.send(local, remote, &response);
        true
    }

    fn handle_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        hdr: &HeaderRepr,
        bytes: &[u8],
        path: (SocketAddr, SocketAddr),
    ) -> Fate {
        let Some(pending) = sa.pending.as_ref() else {
            self.stats.unexpected += 1;
            return Fate::Keep;
        };
        if pending.msg_id != hdr.message_id {
            self.stats.unexpected += 1;
            return Fate::Keep;
        }
        if sa.st == St::InitSent {
            if hdr.exchange_type != exchange::IKE_SA_INIT {
                self.stats.unexpected += 1;
                return Fate::Keep;
            }
            return self.initiator_init_response(now, sa, hdr, bytes);
        }
        let Some(keys) = sa.keys.as_ref() else {
            self.stats.unexpected += 1;
            return Fate::Keep;
        };
        let inner = match keys.inb.open(bytes) {
            Ok(i) => i,
            Err(e) => {
                debug!("response dropped: {e:?}");
                self.stats.integrity_failed += 1;
                return Fate::Keep;
            }
        };
        sa.last_rx = now;
        self.follow(sa, path);
        let Some(pending) = sa.pending.take() else {
            return Fate::Keep;
        };
        match pending.req {
            Req::Init => Fate::Keep,
            Req::Auth => self.initiator_auth_response(now, sa, &inner),
            Req::Dpd => Fate::Keep,
            Req::DeleteIke => Fate::Kill(DownReason::DeletedLocally),
            Req::DeleteChild(spi) => {
                self.remove_child(sa, spi);
                Fate::Keep
            }
            Req::Rekey {
                cfg,
                old_inbound,
                new_spi,
                ni,
                kex,
            } => {
                self.rekey_response(now, sa, &inner, cfg, old_inbound, new_spi, ni, kex);
                Fate::Keep
            }
            Req::RekeyIke { new_spi, ni, kex } => {
                self.ike_rekey_response(now, sa, &inner, new_spi, ni, kex);
                Fate::Keep
            }
        }
    }

    /// RFC 7296 2.23: behind a NAT, an authenticated message from a new
    /// address or port moves the IKE SA there (the NAT may have rebound, or
    /// the peer floated to 4500).
    fn follow(&mut self, sa: &mut IkeSa, (local, remote): (SocketAddr, SocketAddr)) {
        if (sa.nat || local.port() == NATT_PORT) && (sa.local, sa.remote) != (local, remote) {
            debug!(from = %sa.remote, to = %remote, "IKE SA moves to the peer's new address");
            sa.local = local;
            sa.remote = remote;
            // Installed CHILD_SAs follow; before IKE_AUTH there are none and
            // the first CHILD_SA takes the addresses from the IKE SA.
            if sa.up() {
                for c in sa.children.iter_mut() {
                    c.info.local = local;
                    c.info.remote = remote;
                }
                self.events.push_back(Event::IkeSaMoved {
                    ike_sa: IkeSaId(sa.our_spi()),
                    local,
                    remote,
                });
            }
        }
    }

    fn remove_child(&mut self, sa: &mut IkeSa, inbound_spi: u32) {
        if let Some(pos) = sa
            .children
            .iter()
            .position(|c| c.info.inbound_spi == inbound_spi)
        {
            let c = sa.children.remove(pos);
            info!(ike_sa = %c.info.ike_sa, child = %c.info.name, "CHILD_SA deleted: SPIs in {:08x} out {:08x}", c.info.inbound_spi, c.info.outbound_spi);
            self.events.push_back(Event::ChildSaDeleted {
                ike_sa: c.info.ike_sa,
                name: c.info.name,
                inbound_spi: c.info.inbound_spi,
                outbound_spi: c.info.outbound_spi,
            });
        }
    }

    fn handle_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        hdr: &HeaderRepr,
        bytes: &[u8],
        path: (SocketAddr, SocketAddr),
    ) -> Fate {
        if hdr.message_id.wrapping_add(1) == sa.peer_req_id {
            match &sa.last_resp {
                Some((id, resp)) if *id == hdr.message_id => {
                    // The peer did not get our answer: resend it unchanged.
                    // (An IKE_SA_INIT retransmit is caught by init_index.)
                    self.stats.duplicate_requests += 1;
                    // 2.11: answer where the retransmission came from.
                    let resp = resp.clone();
                    self.send(path.0, path.1, &resp);
                }
                _ => self.stats.unexpected += 1,
            }
            return Fate::Keep;
        }
        if hdr.message_id != sa.peer_req_id {
            self.stats.unexpected += 1;
            return Fate::Keep;
        }
        let Some(keys) = sa.keys.as_ref() else {
            self.stats.unexpected += 1;
            return Fate::Keep;
        };
        let parsed = match keys.inb.open(bytes) {
            Ok(i) => Ok(i),
            Err(protect::OpenError::Locate(e)) => {
                debug!("request dropped, outer payloads: {e}");
                self.stats.malformed += 1;
                return Fate::Keep;
            }
            Err(protect::OpenError::Parse(e)) => {
                debug!("request with bad inner payloads: {e}");
                self.stats.malformed += 1;
                Err(e)
            }
            Err(e) => {
                debug!("request dropped: {e:?}");
                self.stats.integrity_failed += 1;
                return Fate::Keep;
            }
        };
        // The message is authentic from here on.
        sa.last_rx = now;
        self.follow(sa, path);
        let inner = match parsed {
            Ok(i) => i,
            Err(e) => {
                // Authentic but unreadable: answer with what went wrong
                // (UNSUPPORTED_CRITICAL_PAYLOAD, INVALID_SYNTAX), 2.21.
                let n = palisade_wire::ikev2::notify_for_parse_error(&e);
                let fate = if sa.st == St::RespAwaitAuth {
                    Fate::Kill(DownReason::Failed(format!("peer's IKE_AUTH request: {e}")))
                } else {
                    Fate::Keep
                };
                self.reply(sa, hdr, vec![Payload::Notify(n)]);
                return fate;
            }
        };
        let deletes_ike = inner
            .iter()
            .any(|p| matches!(p, Payload::Delete(d) if d.protocol_id == protocol::IKE));
        if sa.hidden && sa.redundant.is_none() && !deletes_ike {
            self.adopt_from_old(now, sa);
        }
        let (reply, fate) = match (sa.st, hdr.exchange_type) {
            (St::RespAwaitAuth, exchange::IKE_AUTH) => {
                // Remember that the peer's NAT may have moved it to 4500.
                self.responder_auth(now, sa, &inner)
            }
            (St::Established | St::Deleting, exchange::INFORMATIONAL) => {
                self.informational_request(now, sa, &inner)
            }
            (St::Established, exchange::CREATE_CHILD_SA) if !Self::closing(sa) => {
                (self.create_child_request(now, sa, &inner), Fate::Keep)
            }
            // 2.25.2: we are closing this IKE SA.
            (St::Established | St::Deleting, exchange::CREATE_CHILD_SA) => (
                vec![Payload::Notify(NotifyPayload::new(
                    notify::TEMPORARY_FAILURE,
                    vec![],
                ))],
                Fate::Keep,
            ),
            _ => {
                self.stats.unexpected += 1;
                return Fate::Keep;
            }
        };
        self.reply(sa, hdr, reply);
        fate
    }

    /// Send (and cache) the encrypted response to request `hdr`.
    fn reply(&mut self, sa: &mut IkeSa, hdr: &HeaderRepr, payloads: Vec<Payload>) {
        let header = sa.header(hdr.exchange_type, true, hdr.message_id);
        if let Some(keys) = sa.keys.as_ref() {
            match keys.out.seal(self.rng.as_mut(), header, &payloads) {
                Ok(resp) => {
                    self.send(sa.local, sa.remote, &resp);
                    sa.last_resp = Some((hdr.message_id, resp));
                }
                Err(e) => warn!("could not build a response: {e}"),
            }
        }
        sa.peer_req_id = sa.peer_req_id.wrapping_add(1);
    }

    fn informational_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        inner: &[Payload],
    ) -> (Vec<Payload>, Fate) {
        if notify(inner, notify::AUTHENTICATION_FAILED).is_some() {
            let why = format!(
                "peer `{}` could not authenticate us (AUTHENTICATION_FAILED)",
                self.conn(sa).name
            );
            return (Vec::new(), Fate::Kill(DownReason::Failed(why)));
        }
        let mut out_spis = Vec::new();
        for p in inner {
            let Payload::Delete(d) = p else { continue };
            match d.protocol_id {
                protocol::IKE => {
                    if let Some((theirs, _, _)) = sa.ike_collision.take() {
                        // 2.8.2: the peer rekeyed without noticing our rekey
                        // (or settled the collision its way) and now deletes
                        // the old SA: its new one survives, ours is forgotten.
                        self.adopt(now, sa, theirs);
                    }
                    return (Vec::new(), Fate::Kill(DownReason::DeletedByPeer));
                }
                protocol::ESP => {
                    for s in &d.spis {
                        let Ok(b) = <[u8; 4]>::try_from(&s[..]) else {
                            continue;
                        };
                        let theirs = u32::from_be_bytes(b);
                        if let Some(c) = sa.children.iter().find(|c| c.info.outbound_spi == theirs)
                        {
                            let inb = c.info.inbound_spi;
                            out_spis.push(inb.to_be_bytes().to_vec());
                            self.remove_child(sa, inb);
                        }
                    }
                }
                _ => {}
            }
        }
        let reply = if out_spis.is_empty() {
            Vec::new()
        } else {
            vec![Payload::Delete(DeletePayload {
                protocol_id: protocol::ESP,
                spi_size: 4,
                spis: out_spis,
            })]
        };
        (reply, Fate::Keep)
    }

    // ------------------------------------------------------ CREATE_CHILD_SA

    fn create_child_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        inner: &[Payload],
    ) -> Vec<Payload> {
        let err = |t: u16| vec![Payload::Notify(NotifyPayload::new(t, vec![]))];
        let ike_proposal = find(inner, sa_of)
            .is_some_and(|p| p.proposals.iter().any(|p| p.protocol_id == protocol::IKE));
        if ike_proposal && notify(inner, notify::REKEY_SA).is_none() {
            return self.ike_rekey_request(now, sa, inner);
        }
        // With REKEY_SA this rekeys a CHILD_SA (2.8), without it it
        // creates an additional one (1.3.1).
        let old_inbound = match notify(inner, notify::REKEY_SA) {
            None => None,
            Some(rekey) => {
                let Ok(b) = <[u8; 4]>::try_from(&rekey.spi[..]) else {
                    return err(notify::INVALID_SYNTAX);
                };
                let theirs_old = u32::from_be_bytes(b);
                let Some(old) = sa
                    .children
                    .iter()
                    .find(|c| c.info.outbound_spi == theirs_old)
                else {
                    return vec![Payload::Notify(NotifyPayload {
                        protocol_id: protocol::ESP,
                        spi: rekey.spi.clone(),
                        notify_type: notify::CHILD_SA_NOT_FOUND,
                        data: vec![],
                    })];
                };
                let ours = old.info.inbound_spi;
                // 2.25.1: replaced already, or we are closing it.
                let closing = sa.queue.contains(&Intent::DeleteChild(ours))
                    || sa
                        .pending
                        .as_ref()
                        .is_some_and(|p| matches!(p.req, Req::DeleteChild(s) if s == ours));
                if old.replaced || closing {
                    return err(notify::TEMPORARY_FAILURE);
                }
                Some(ours)
            }
        };
        let Some(nonce) = find(inner, nonce_of) else {
            return err(notify::INVALID_SYNTAX);
        };
        let ni = nonce.data.clone();
        let mut nr = vec![0; NONCE_LEN];
        self.rng.fill(&mut nr);
        let conn = self.conn(sa).clone();
        let mut ke_out = None;
        let shared = match find(inner, ke_of) {
            None => None,
            Some(ke) => {
                let policy = conn.policy;
                match kex::respond(ke.group, &ke.data, policy) {
                    Ok((pubv, s)) => {
                        ke_out = Some(KePayload {
                            group: ke.group,
                            data: pubv,
                        });
                        Some((ke.group, s))
                    }
                    Err(_) => {
                        return vec![Payload::Notify(NotifyPayload::invalid_ke_payload(ke.group))]
                    }
                }
            }
        };
        let before = sa.children.len();
        let mut out = self.respond_child(
            now,
            sa,
            inner,
            &ni,
            &nr,
            shared.as_ref().map(|(g, s)| (*g, s)),
            old_inbound,
        );
        if sa.children.len() > before {
            // Installed: note it for the simultaneous-rekey tie-break.
            let new_inbound = sa.children.last().map(|c| c.info.inbound_spi).unwrap_or(0);
            if let Some(o) = sa
                .children
                .iter_mut()
                .find(|c| Some(c.info.inbound_spi) == old_inbound)
            {
                o.peer_rekey = Some((ni.clone(), nr.clone(), new_inbound));
                // The peer's rekey does our job: ours is not started unless
                // it is already in flight (then 2.8.1 settles it).
                o.rekey_started = true;
            }
            if let Some(old) = old_inbound {
                sa.queue.retain(|i| *i != Intent::Rekey(old));
            }
            let pos = out
                .iter()
                .position(|p| matches!(p, Payload::Sa(_)))
                .map_or(0, |p| p + 1);
            out.insert(pos, Payload::Nonce(NoncePayload { data: nr }));
            if let Some(k) = ke_out {
                out.insert(pos + 1, Payload::Ke(k));
            }
        }
        out
    }

    /// CREATE_CHILD_SA for child config `ci`: a rekey of `old_inbound`, or
    /// with `None` an additional CHILD_SA.
    fn send_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        ci: usize,
        old_inbound: Option<u32>,
        trigger: Option<TriggerPacket>,
    ) -> Result<(), Error> {
        let conn = self.conn(sa).clone();
        let Some(cfg) = conn.children.get(ci) else {
            return Ok(());
        };
        let (local_ts, remote_ts, transport) = match old_inbound {
            Some(spi) => {
                let Some(old) = sa.children.iter().find(|c| c.info.inbound_spi == spi) else {
                    return Ok(());
                };
                (
                    old.info.local_ts.clone(),
                    old.info.remote_ts.clone(),
                    old.info.mode == Mode::Transport,
                )
            }
            None => {
                let (l, r) = proposed_ts(cfg, trigger);
                (l, r, cfg.mode == Mode::Transport)
            }
        };
        let pfs_group = cfg
            .esp_proposals
            .first()
            .and_then(|p| p.ke.first().copied());
        let new_spi = self.fresh_child_spi();
        let mut ni = vec![0; NONCE_LEN];
        self.rng.fill(&mut ni);
        let kex = match pfs_group {
            Some(g) => Some(kex::initiate(g, conn.policy)?),
            None => None,
        };
        let mut inner = Vec::new();
        if let Some(old) = old_inbound {
            inner.push(Payload::Notify(NotifyPayload {
                protocol_id: protocol::ESP,
                spi: old.to_be_bytes().to_vec(),
                notify_type: notify::REKEY_SA,
                data: vec![],
            }));
        }
        if transport {
            inner.push(Payload::Notify(NotifyPayload::new(
                notify::USE_TRANSPORT_MODE,
                vec![],
            )));
        }
        inner.push(Payload::Sa(negotiate::esp_sa_payload(
            &cfg.esp_proposals,
            new_spi,
            pfs_group.is_some(),
        )));
        inner.push(Payload::Nonce(NoncePayload { data: ni.clone() }));
        if let (Some(k), Some(g)) = (&kex, pfs_group) {
            inner.push(Payload::Ke(KePayload {
                group: g,
                data: k.public_value().to_vec(),
            }));
        }
        inner.push(Payload::TsI(TsPayload {
            selectors: local_ts,
        }));
        inner.push(Payload::TsR(TsPayload {
            selectors: remote_ts,
        }));
        let id = sa.next_req_id;
        let keys = sa.keys.as_ref().ok_or(Error::UnknownIkeSa(sa.our_spi()))?;
        let bytes = keys.out.seal(
            self.rng.as_mut(),
            sa.header(exchange::CREATE_CHILD_SA, false, id),
            &inner,
        )?;
        sa.next_req_id += 1;
        self.set_pending(
            now,
            sa,
            id,
            bytes,
            Req::Rekey {
                cfg: ci,
                old_inbound,
                new_spi,
                ni,
                kex,
            },
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn rekey_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        inner: &[Payload],
        ci: usize,
        old_inbound: Option<u32>,
        new_spi: u32,
        ni: Vec<u8>,
        kex: Option<Box<dyn KeyExchange>>,
    ) {
        let conn = self.conn(sa).clone();
        let id = IkeSaId(sa.our_spi());
        // The peer deleted the SA we were rekeying while our request was
        // out (its Delete crossed our request, 2.25.1).
        let orphan =
            old_inbound.is_some_and(|spi| !sa.children.iter().any(|c| c.info.inbound_spi == spi));
        let linger = self.linger();
        let young = |sa: &IkeSa, spi: u32| {
            sa.children
                .iter()
                .any(|c| c.info.inbound_spi == spi && now < c.installed + linger)
        };
        match (old_inbound, notify(inner, notify::CHILD_SA_NOT_FOUND)) {
            // An SA we made as responder that the peer does not know yet: our
            // answer may still be on its way (lost, and the peer
            // retransmitting), so this is a temporary failure for a while.
            (Some(spi), Some(_)) if young(sa, spi) => {
                debug!(ike_sa = %id, "CHILD_SA_NOT_FOUND for the young {spi:08x}: trying again later");
            }
            (Some(spi), Some(_)) => {
                // 2.25: the peer does not know the SA: drop it silently and
                // set the child up from scratch.
                debug!(ike_sa = %id, "CHILD_SA_NOT_FOUND for {spi:08x}: setting it up anew");
                if sa.children.iter().any(|c| c.info.inbound_spi == spi) {
                    self.remove_child(sa, spi);
                    sa.queue.push_back(Intent::NewChild(ci, None));
                }
                return;
            }
            _ => {}
        }
        let name = conn
            .children
            .get(ci)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let retry = self.retry_at(now);
        let fail = |this: &mut Self, sa: &mut IkeSa, why: String| {
            info!(ike_sa = %id, child = %name, "CREATE_CHILD_SA failed: {why}");
            if old_inbound.is_none() {
                this.events.push_back(Event::ChildSaFailed {
                    ike_sa: id,
                    name: name.clone(),
                    reason: why,
                });
                return;
            }
            if let Some(o) = sa
                .children
                .iter_mut()
                .find(|c| Some(c.info.inbound_spi) == old_inbound)
            {
                // A timed rekey is tried again a little later (the peer may
                // have been busy); a manual one is left to the caller.
                o.rekey_started = false;
                if o.rekey_at.is_some() {
                    o.rekey_at = Some(retry);
                }
            }
        };
        let Some(nonce) = find(inner, nonce_of) else {
            let why = first_error(inner).map_or("no Nonce in the response".into(), notify_name);
            fail(self, sa, why);
            return;
        };
        let nr = nonce.data.clone();
        let shared = match (kex, find(inner, ke_of)) {
            (None, _) => None,
            (Some(k), Some(ke)) if ke.group == k.group() => match k.complete(&ke.data) {
                Ok(s) => Some(s),
                Err(e) => {
                    fail(self, sa, e.to_string());
                    return;
                }
            },
            (Some(_), _) => {
                fail(self, sa, "PFS KE missing or of another group".into());
                return;
            }
        };
        let sh: Vec<&[u8]> = shared.iter().map(|s| s.as_bytes()).collect();
        let info =
            match self.initiator_child(sa, &conn, ci, inner, new_spi, &ni, &nr, &sh, old_inbound) {
                Ok(i) => i,
                Err(why) => {
                    fail(self, sa, why);
                    return;
                }
            };
        self.install_child(now, sa, info, ci);
        if orphan {
            // The peer made it before it deleted the old one; it replaces
            // nothing now, and the peer meant the child gone: delete it too.
            debug!(ike_sa = %id, "rekeyed CHILD_SA {new_spi:08x}: the old one was deleted meanwhile, deleting it");
            sa.queue.push_back(Intent::DeleteChild(new_spi));
            return;
        }
        let Some(old_inbound) = old_inbound else {
            return;
        };
        let Some(old) = sa
            .children
            .iter_mut()
            .find(|c| c.info.inbound_spi == old_inbound)
        else {
            return;
        };
        old.replaced = true;
        // 2.8.1: on a simultaneous rekey, the SA created with the lowest of
        // the four nonces is redundant and deleted by the side that created it.
        let ours_min = ni.as_slice().min(nr.as_slice()).to_vec();
        let to_delete = match &old.peer_rekey {
            Some((p_ni, p_nr, _)) if ours_min.as_slice() < p_ni.as_slice().min(p_nr.as_slice()) => {
                debug!(ike_sa = %id, "simultaneous rekey lost: deleting our redundant CHILD_SA");
                new_spi
            }
            Some(_) => old_inbound,
            None => old_inbound,
        };
        sa.queue.push_back(Intent::DeleteChild(to_delete));
    }

    /// The IKE SA that replaces `old` (1.3.2, 2.18): new SPIs and keys, the
    /// same peer, and all of `old`'s CHILD_SAs.
    #[allow(clippy::too_many_arguments)]
    fn successor(
        &mut self,
        now: Instant,
        old: &mut IkeSa,
        initiator: bool,
        spi_i: [u8; 8],
        spi_r: [u8; 8],
        ni: Vec<u8>,
        nr: Vec<u8>,
        group: u16,
        keys: IkeKeys,
        adopt: bool,
    ) -> u64 {
        let new = IkeSa {
            conn: old.conn,
            initiator,
            spi_i,
            spi_r,
            local: old.local,
            remote: old.remote,
            st: St::Established,
            kex: None,
            group,
            cookie: None,
            init_retries: 0,
            ni,
            nr,
            init_req: Vec::new(),
            init_resp: Vec::new(),
            keys: Some(keys),
            next_req_id: 0,
            peer_req_id: 0,
            last_resp: None,
            pending: None,
            queue: VecDeque::new(),
            children: Vec::new(),
            auth_child: None,
            created: now,
            last_rx: now,
            nat: old.nat,
            peer_id: old.peer_id.clone(),
            rekeyed: None,
            ike_rekey_started: false,
            attempt: 0,
            init_errors: 0,
            init_error: None,
            established: Some(now),
            rekey_at: None,
            expire_at: None,
            first_child: None,
            all_children: false,
            ike_collision: None,
            hidden: false,
            redundant: None,
            delete_requested: false,
        };
        let new_id = new.our_spi();
        let mut new = new;
        (new.rekey_at, new.expire_at) = self.ike_deadlines(now, new.conn);
        new.hidden = !adopt;
        if adopt {
            self.adopt_into(now, old, &mut new);
        }
        self.sas.insert(new_id, new);
        self.pump(now, new_id);
        new_id
    }

    /// `new` replaces `old` (1.3.2): it takes the CHILD_SAs and the work
    /// queued for them, and the daemon hears of the rekey.
    fn adopt_into(&mut self, now: Instant, old: &mut IkeSa, new: &mut IkeSa) {
        let (old_id, new_id) = (old.our_spi(), new.our_spi());
        new.hidden = false;
        new.redundant = None;
        new.children.extend(std::mem::take(&mut old.children));
        for c in &mut new.children {
            c.info.ike_sa = IkeSaId(new_id);
        }
        // Work queued on the old SA that is about CHILD_SAs moves along.
        let moved: Vec<Intent> = old
            .queue
            .iter()
            .filter(|i| {
                matches!(
                    i,
                    Intent::DeleteChild(_) | Intent::Rekey(_) | Intent::NewChild(..)
                )
            })
            .copied()
            .collect();
        old.queue.retain(|i| !moved.contains(i));
        new.queue.extend(moved);
        if old.delete_requested {
            new.delete_requested = true;
            new.queue.retain(|i| *i == Intent::DeleteIke);
            new.queue.push_back(Intent::DeleteIke);
        }
        old.rekeyed = Some((new_id, now));
        info!(old = %IkeSaId(old_id), new = %IkeSaId(new_id), "IKE SA rekeyed");
        self.events.push_back(Event::IkeSaRekeyed {
            old: IkeSaId(old_id),
            new: IkeSaId(new_id),
        });
    }

    /// `adopt_into` with the new SA in the table.
    fn adopt(&mut self, now: Instant, old: &mut IkeSa, new_id: u64) {
        if let Some(mut new) = self.sas.remove(&new_id) {
            self.adopt_into(now, old, &mut new);
            self.sas.insert(new_id, new);
            self.pump(now, new_id);
        }
    }

    /// A request other than its Delete arrived on `sa`, made by a colliding
    /// rekey and not yet settled here: the peer keeps it, so it is the
    /// survivor (the old SA's answer to our own rekey is then moot).
    fn adopt_from_old(&mut self, now: Instant, sa: &mut IkeSa) {
        let me = sa.our_spi();
        let old_id = self
            .sas
            .iter()
            .find(|(_, o)| o.ike_collision.as_ref().is_some_and(|c| c.0 == me))
            .map(|(&k, _)| k);
        if let Some(mut old) = old_id.and_then(|k| self.sas.remove(&k)) {
            debug!(ike_sa = %IkeSaId(me), "the peer uses the IKE SA of its colliding rekey: it survives");
            old.ike_collision = None;
            self.adopt_into(now, &mut old, sa);
            old.st = St::Deleting;
            self.sas.insert(old.our_spi(), old);
        }
    }

    /// We are closing this IKE SA (2.25.2: a rekey request is then answered
    /// with TEMPORARY_FAILURE).
    fn closing(sa: &IkeSa) -> bool {
        sa.st == St::Deleting
            || sa.queue.contains(&Intent::DeleteIke)
            || sa
                .pending
                .as_ref()
                .is_some_and(|p| matches!(p.req, Req::DeleteIke))
    }

    fn ike_rekey_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        inner: &[Payload],
    ) -> Vec<Payload> {
        let err = |t: u16| vec![Payload::Notify(NotifyPayload::new(t, vec![]))];
        // 2.8.2: a rekey of ours in flight is a collision, settled when our
        // response arrives. Already rekeyed, being closed, or busy with a
        // CHILD_SA exchange whose result must stay on this SA: 2.25, the
        // peer retries later.
        let colliding = sa
            .pending
            .as_ref()
            .is_some_and(|p| matches!(p.req, Req::RekeyIke { .. }));
        let busy = sa
            .pending
            .as_ref()
            .is_some_and(|p| !matches!(p.req, Req::RekeyIke { .. } | Req::Dpd));
        if sa.rekeyed.is_some() || sa.ike_collision.is_some() || Self::closing(sa) || busy {
            return err(notify::TEMPORARY_FAILURE);
        }
        let conn = self.conn(sa).clone();
        let (Some(sa_p), Some(nonce), Some(ke)) = (
            find(inner, sa_of),
            find(inner, nonce_of),
            find(inner, ke_of),
        ) else {
            return err(notify::INVALID_SYNTAX);
        };
        let Some((chosen, number)) = negotiate::select_ike(sa_p, &conn.ike_proposals) else {
            warn!(
                connection = %conn.name,
                "IKE SA rekey: NO_PROPOSAL_CHOSEN: we accept {}, they offered {}",
                negotiate::sa_display(&negotiate::ike_sa_payload(&conn.ike_proposals, vec![])),
                negotiate::sa_display(sa_p)
            );
            return err(notify::NO_PROPOSAL_CHOSEN);
        };
        let Some(spi_i) = sa_p
            .proposals
            .iter()
            .find(|p| p.number == number && p.protocol_id == protocol::IKE)
            .and_then(|p| <[u8; 8]>::try_from(&p.spi[..]).ok())
        else {
            return err(notify::INVALID_SYNTAX);
        };
        let group = chosen.ke.unwrap_or(0);
        if ke.group != group {
            return vec![Payload::Notify(NotifyPayload::invalid_ke_payload(group))];
        }
        let Ok((our_ke, shared)) = kex::respond(group, &ke.data, conn.policy) else {
            return err(notify::INVALID_SYNTAX);
        };
        let mut nr = vec![0; NONCE_LEN];
        self.rng.fill(&mut nr);
        let spi_r = self.fresh_spi().to_be_bytes();
        let Some(old_keys) = sa.keys.as_ref() else {
            return err(notify::TEMPORARY_FAILURE);
        };
        let keys = match IkeKeys::derive(
            chosen,
            conn.policy,
            &shared,
            &nonce.data,
            &nr,
            &spi_i,
            &spi_r,
            false,
            Some(&old_keys.sk_d),
        ) {
            Ok(k) => k,
            Err(_) => return err(notify::NO_PROPOSAL_CHOSEN),
        };
        let new_id = self.successor(
            now,
            sa,
            false,
            spi_i,
            spi_r,
            nonce.data.clone(),
            nr.clone(),
            group,
            keys,
            !colliding,
        );
        if colliding {
            debug!(ike_sa = %IkeSaId(sa.our_spi()), "simultaneous IKE SA rekey");
            sa.ike_collision = Some((new_id, nonce.data.clone(), nr.clone()));
        } else {
            // Only the peer's Delete (or the linger timer) is still expected here.
            sa.st = St::Deleting;
        }
        vec![
            Payload::Sa(SaPayload {
                proposals: vec![chosen.to_proposal(number, protocol::IKE, spi_r.to_vec())],
            }),
            Payload::Nonce(NoncePayload { data: nr }),
            Payload::Ke(KePayload {
                group,
                data: our_ke,
            }),
        ]
    }

    fn send_ike_rekey(&mut self, now: Instant, sa: &mut IkeSa) -> Result<(), Error> {
        if sa.rekeyed.is_some() {
            return Ok(());
        }
        let conn = self.conn(sa).clone();
        let new_spi = self.fresh_spi();
        let mut ni = vec![0; NONCE_LEN];
        self.rng.fill(&mut ni);
        let kex = kex::initiate(sa.group, conn.policy)?;
        let mut props = conn.ike_proposals.clone();
        for p in &mut props {
            if let Some(pos) = p.ke.iter().position(|&g| g == sa.group) {
                p.ke.remove(pos);
                p.ke.insert(0, sa.group);
            }
        }
        let inner = vec![
            Payload::Sa(negotiate::ike_sa_payload(
                &props,
                new_spi.to_be_bytes().to_vec(),
            )),
            Payload::Nonce(NoncePayload { data: ni.clone() }),
            Payload::Ke(KePayload {
                group: sa.group,
                data: kex.public_value().to_vec(),
            }),
        ];
        let id = sa.next_req_id;
        let keys = sa.keys.as_ref().ok_or(Error::UnknownIkeSa(sa.our_spi()))?;
        let bytes = keys.out.seal(
            self.rng.as_mut(),
            sa.header(exchange::CREATE_CHILD_SA, false, id),
            &inner,
        )?;
        sa.next_req_id += 1;
        self.set_pending(now, sa, id, bytes, Req::RekeyIke { new_spi, ni, kex });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn ike_rekey_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        inner: &[Payload],
        new_spi: u64,
        ni: Vec<u8>,
        kex: Box<dyn KeyExchange>,
    ) {
        if sa.rekeyed.is_some() {
            return; // the peer's rekey won meanwhile
        }
        let id = IkeSaId(sa.our_spi());
        let collision = sa.ike_collision.take();
        let result = self.ike_rekey_result(now, sa, inner, new_spi, &ni, kex);
        match (result, collision) {
            (Err(why), None) => {
                info!(ike_sa = %id, "IKE SA rekey failed: {why}");
                sa.ike_rekey_started = false;
                if sa.rekey_at.is_some() {
                    sa.rekey_at = Some(self.retry_at(now));
                }
            }
            (Err(why), Some((theirs, _, _))) => {
                // 2.8.2: the peer finished its rekey without noticing ours.
                debug!(ike_sa = %id, "our IKE SA rekey failed ({why}), the peer's stands");
                self.adopt(now, sa, theirs);
                sa.st = St::Deleting;
            }
            (Ok((ours, _)), None) => {
                self.adopt(now, sa, ours);
                // The rekey initiator deletes the old IKE SA (1.3.2).
                sa.queue.clear();
                sa.queue.push_back(Intent::DeleteIke);
            }
            (Ok((ours, nr)), Some((theirs, p_ni, p_nr))) => {
                // 2.8.2: the new IKE SA with the lowest nonce is deleted by
                // the side that made it; the other takes the CHILD_SAs, and
                // its maker deletes the old SA.
                let ours_min = ni.as_slice().min(nr.as_slice());
                if ours_min < p_ni.as_slice().min(p_nr.as_slice()) {
                    debug!(ike_sa = %id, "simultaneous IKE SA rekey lost: deleting our new SA");
                    self.adopt(now, sa, theirs);
                    sa.st = St::Deleting;
                    if let Some(o) = self.sas.get_mut(&ours) {
                        o.redundant = Some(now);
                        o.queue.push_back(Intent::DeleteIke);
                    }
                    self.pump(now, ours);
                } else {
                    debug!(ike_sa = %id, "simultaneous IKE SA rekey won");
                    self.adopt(now, sa, ours);
                    sa.queue.clear();
                    sa.queue.push_back(Intent::DeleteIke);
                    if let Some(t) = self.sas.get_mut(&theirs) {
                        t.redundant = Some(now);
                        t.st = St::Deleting;
                    }
                }
            }
        }
    }

    /// Our IKE SA rekey's response: the new SA (not yet adopted) and Nr, or
    /// why it failed.
    fn ike_rekey_result(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        inner: &[Payload],
        new_spi: u64,
        ni: &[u8],
        kex: Box<dyn KeyExchange>,
    ) -> Result<(u64, Vec<u8>), String> {
        let conn = self.conn(sa).clone();
        let (Some(sa_p), Some(nonce), Some(ke)) = (
            find(inner, sa_of),
            find(inner, nonce_of),
            find(inner, ke_of),
        ) else {
            return Err(first_error(inner).map_or("incomplete response".into(), notify_name));
        };
        let Some(chosen) = negotiate::accept_ike(sa_p, &conn.ike_proposals) else {
            return Err(format!(
                "responder chose {}, which we did not offer",
                negotiate::sa_display(sa_p)
            ));
        };
        let spi_r = sa_p
            .proposals
            .first()
            .and_then(|p| <[u8; 8]>::try_from(&p.spi[..]).ok());
        let (Some(spi_r), true) = (
            spi_r,
            chosen.ke == Some(kex.group()) && ke.group == kex.group(),
        ) else {
            return Err("bad SPI or KE in the response".into());
        };
        let group = kex.group();
        let shared = match kex.complete(&ke.data) {
            Ok(s) => s,
            Err(e) => return Err(e.to_string()),
        };
        let Some(old_keys) = sa.keys.as_ref() else {
            return Err("internal: no keys".into());
        };
        let spi_i = new_spi.to_be_bytes();
        let keys = match IkeKeys::derive(
            chosen,
            conn.policy,
            &shared,
            ni,
            &nonce.data,
            &spi_i,
            &spi_r,
            true,
            Some(&old_keys.sk_d),
        ) {
            Ok(k) => k,
            Err(e) => return Err(e.to_string()),
        };
        let nr = nonce.data.clone();
        let ours = self.successor(
            now,
            sa,
            true,
            spi_i,
            spi_r,
            ni.to_vec(),
            nr.clone(),
            group,
            keys,
            false,
        );
        Ok((ours, nr))
    }

    // ---------------------------------------------------------- timers

    /// Run the timers whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.answered.retain(|_, a| a.until > now);
        let ids: Vec<u64> = self.sas.keys().copied().collect();
        for id in ids {
            let Some(mut sa) = self.sas.remove(&id) else {
                continue;
            };
            match self.timers(now, &mut sa) {
                Fate::Keep => {
                    self.sas.insert(id, sa);
                    self.pump(now, id);
                }
                Fate::Kill(r) => self.finish(now, sa, r),
            }
        }
    }

    fn timers(&mut self, now: Instant, sa: &mut IkeSa) -> Fate {
        let rt = self.config.retransmit;
        if sa.st == St::RespAwaitAuth && now >= sa.created + self.config.half_open_timeout {
            return Fate::Kill(DownReason::Timeout);
        }
        if let Some(at) = sa.rekeyed.map(|r| r.1).or(sa.redundant) {
            if now >= at + self.linger() {
                return Fate::Kill(DownReason::DeletedLocally);
            }
        }
        let noted = sa.init_error.clone();
        if let Some(p) = sa.pending.as_mut() {
            if now >= p.next_at {
                if p.sent >= rt.tries {
                    if let Some(why) = noted {
                        return Fate::Kill(DownReason::Failed(why));
                    }
                    let dpd = matches!(p.req, Req::Dpd);
                    let was_delete = matches!(p.req, Req::DeleteIke);
                    let action = if self.is_live(sa.conn) {
                        self.conn(sa).dpd_action
                    } else {
                        DpdAction::Clear
                    };
                    return Fate::Kill(if was_delete {
                        DownReason::DeletedLocally
                    } else if dpd {
                        DownReason::DeadPeer { action }
                    } else {
                        DownReason::Timeout
                    });
                }
                let shift = p.sent.min(16);
                let wait = rt.initial.saturating_mul(1 << shift).min(rt.max_interval);
                p.sent += 1;
                p.next_at = now + wait;
                let b = p.bytes.clone();
                self.stats.retransmits += 1;
                self.send(sa.local, sa.remote, &b);
            }
            return Fate::Keep;
        }
        if sa.st != St::Established || sa.hidden {
            // A colliding rekey's SA idles until it is settled.
            return Fate::Keep;
        }
        let conn = self.conn(sa).clone();
        if let Some(d) = conn.dpd_delay {
            if now >= sa.last_rx + d && sa.queue.is_empty() {
                sa.queue.push_back(Intent::Dpd);
            }
        }
        if sa.expire_at.is_some_and(|t| now >= t) {
            // 2.8: the hard lifetime is over and no rekey replaced the SA.
            info!(connection = %conn.name, ike_sa = %IkeSaId(sa.our_spi()), "IKE SA lifetime over, deleting it");
            sa.expire_at = None;
            sa.queue.clear();
            sa.queue.push_back(Intent::DeleteIke);
            return Fate::Keep;
        }
        if !sa.ike_rekey_started && !sa.hidden && sa.rekey_at.is_some_and(|t| now >= t) {
            sa.ike_rekey_started = true;
            sa.queue.push_back(Intent::RekeyIke);
        }
        for c in sa.children.iter_mut() {
            let spi = c.info.inbound_spi;
            if c.expire_at.is_some_and(|t| now >= t) {
                info!(ike_sa = %c.info.ike_sa, child = %c.info.name, "CHILD_SA {spi:08x}: lifetime over, deleting it");
                c.expire_at = None;
                sa.queue.push_back(Intent::DeleteChild(spi));
            } else if !c.rekey_started && !c.replaced && c.rekey_at.is_some_and(|t| now >= t) {
                c.rekey_started = true;
                sa.queue.push_back(Intent::Rekey(spi));
            }
        }
        Fate::Keep
    }

    /// Start the next queued exchange if the window is free.
    fn pump(&mut self, now: Instant, id: u64) {
        let Some(mut sa) = self.sas.remove(&id) else {
            return;
        };
        let mut fate = Fate::Keep;
        while sa.pending.is_none() && sa.st == St::Established {
            let Some(intent) = sa.queue.pop_front() else {
                break;
            };
            let r = match intent {
                Intent::Rekey(spi) => {
                    let ci = sa
                        .children
                        .iter()
                        .find(|c| c.info.inbound_spi == spi)
                        .map(|c| c.cfg);
                    match ci {
                        Some(ci) => self.send_child(now, &mut sa, ci, Some(spi), None),
                        None => Ok(()),
                    }
                }
                Intent::NewChild(ci, pkt) => self.send_child(now, &mut sa, ci, None, pkt),
                Intent::DeleteChild(spi) => self.send_info(now, &mut sa, Req::DeleteChild(spi)),
                Intent::DeleteIke => self.send_info(now, &mut sa, Req::DeleteIke),
                Intent::Dpd => self.send_info(now, &mut sa, Req::Dpd),
                Intent::RekeyIke => self.send_ike_rekey(now, &mut sa),
            };
            if let Err(e) = r {
                fate = Fate::Kill(DownReason::Failed(e.to_string()));
                break;
            }
        }
        match fate {
            Fate::Keep => {
                self.sas.insert(id, sa);
            }
            Fate::Kill(r) => self.finish(now, sa, r),
        }
    }

    fn send_info(&mut self, now: Instant, sa: &mut IkeSa, req: Req) -> Result<(), Error> {
        let inner = match &req {
            Req::DeleteChild(spi) => {
                if !sa.children.iter().any(|c| c.info.inbound_spi == *spi) {
                    return Ok(());
                }
                vec![Payload::Delete(DeletePayload {
                    protocol_id: protocol::ESP,
                    spi_size: 4,
                    spis: vec![spi.to_be_bytes().to_vec()],
                })]
            }
            Req::DeleteIke => {
                sa.st = St::Deleting;
                vec![Payload::Delete(DeletePayload {
                    protocol_id: protocol::IKE,
                    spi_size: 0,
                    spis: vec![],
                })]
            }
            _ => Vec::new(),
        };
        let id = sa.next_req_id;
        let keys = sa.keys.as_ref().ok_or(Error::UnknownIkeSa(sa.our_spi()))?;
        let bytes = keys.out.seal(
            self.rng.as_mut(),
            sa.header(exchange::INFORMATIONAL, false, id),
            &inner,
        )?;
        sa.next_req_id += 1;
        self.set_pending(now, sa, id, bytes, req);
        Ok(())
    }
}
