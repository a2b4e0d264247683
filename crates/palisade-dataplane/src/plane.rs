//! The per-packet decisions of the data plane, without any I/O: which policy a
//! packet from the TUN falls under and which SAs seal it, and which SA opens a
//! packet from the wire and whether what comes out may be delivered. The
//! [`crate::worker`] moves bytes between sockets and this; tests drive two
//! `Plane`s against each other in memory.

use palisade_sa::buf::PacketBuf;
use palisade_sa::counters::{DropCounters, DropReason, SaCounters};
use palisade_sa::encap::{classify, tcp_udp_v4_flow, Inbound};
use palisade_sa::lifetime::{LifetimeEvent, Timestamp};
use palisade_sa::sa::{Encap, Opened, SecurityAssociation};
use palisade_sa::sad::{SaHandle, Sad, SecurityProtocol};
use palisade_sa::selector::{Direction, Selector};
use palisade_sa::spd::{Action, Bundle, PolicyId, Protect, Spd};
use palisade_wire::ip::{IpPacket, IpProtocol};
use palisade_wire::{ipv4, ipv6};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// An SA as the data plane holds it.
pub struct InstalledSa {
    /// The operator's name for it (manual SA or CHILD_SA name), for status.
    pub name: String,
    pub sa: SecurityAssociation,
    /// Inbound SAs: what the decapsulated packet must match (RFC 4301 5.2
    /// step 4, "the packet must match the SA's selectors"). Empty = anything.
    selectors: Vec<Selector>,
    /// The last TCP/UDP-over-IPv4 flow ([`tcp_udp_v4_flow`]) that passed
    /// the selector check: the next packets of that flow pass without it
    /// (the answer depends on nothing else, and the selectors are fixed).
    accepted: Option<u128>,
}

impl InstalledSa {
    pub fn new(name: impl Into<String>, sa: SecurityAssociation, selectors: Vec<Selector>) -> Self {
        InstalledSa {
            name: name.into(),
            sa,
            selectors,
            accepted: None,
        }
    }

    /// What a decapsulated packet must match (empty = anything).
    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }

    /// RFC 4301 5.2 step 4 for the cleartext `packet` this SA opened: it
    /// must match one of the SA's selectors (a mismatch is counted on the
    /// SA). A packet of the flow that passed last passes at once.
    fn check_selectors(&mut self, packet: &[u8]) -> Result<(), DropReason> {
        if self.selectors.is_empty() {
            return Ok(());
        }
        let flow = tcp_udp_v4_flow(packet);
        if flow.is_some() && flow == self.accepted {
            return Ok(());
        }
        match self.sa.check_inbound_policy(packet, &self.selectors) {
            Ok(_) => {
                self.accepted = flow;
                Ok(())
            }
            Err(e) => Err(e.reason()),
        }
    }
}

/// How a sealed packet leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmit {
    /// Through a raw socket for `proto`, header included, to `dst`.
    Raw { dst: IpAddr, proto: u8 },
    /// Through the UDP socket bound to `src` (or the wildcard address and
    /// its port), sending the bytes from `offset` (the ESP header; the
    /// socket adds IP and UDP) to `dst`, with `tos` (DSCP and ECN) in the
    /// IP header the socket writes: the cleartext packet's, as a raw ESP
    /// tunnel copies them (RFC 4301 5.1.2.1, RFC 6040 normal mode).
    Udp {
        dst: SocketAddr,
        src: SocketAddr,
        offset: usize,
        tos: u8,
    },
}

/// The outcome for a packet read from the TUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutVerdict {
    Send(Transmit),
    Drop(DropReason),
    /// Sealed, the packet would exceed the path MTU learned for its outer
    /// destination ([`Plane::note_path_mtu`]) and may not be fragmented:
    /// it was dropped, and the buffer now holds an ICMP "fragmentation
    /// needed" (IPv4) or ICMPv6 "packet too big" for its sender, reporting
    /// `mtu`: write it to the TUN (RFC 4301 8.2).
    TooBig {
        mtu: u16,
    },
}

/// How long a learned path MTU is believed (Linux's default route MTU
/// expiry, `net.ipv4.route.mtu_expires`).
pub const PATH_MTU_TTL: Duration = Duration::from_secs(600);

/// Bytes of the cleartext packet kept to quote in an ICMP too-big.
const QUOTE: usize = 128;

/// The outcome for a packet read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InVerdict {
    /// The buffer holds a cleartext packet for the TUN.
    Deliver,
    /// An IKE message behind the non-ESP marker (the buffer holds it).
    Ike,
    /// Authentic but nothing to deliver: keepalive or dummy packet.
    Consumed,
    Drop(DropReason),
}

/// The NAT keepalive interval strongSwan uses (`charon.keep_alive`), and the
/// default of the daemon's `[daemon] nat_keepalive`.
pub const DEFAULT_NAT_KEEPALIVE: Duration = Duration::from_secs(20);

/// The payload of a NAT-keepalive packet (RFC 3948 2.3): one octet, 0xFF.
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

/// A peer that gets a NAT-keepalive (RFC 3948 4) from the UDP socket bound to
/// `src_port` whenever nothing was sent to `dst` from that port for `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepaliveTarget {
    /// Who registered it (manual SA name, IKE SA name); the key for removal.
    pub name: String,
    /// The local address to send from, when the worker has UDP sockets on
    /// `src_port` for several (`None`: any socket on the port).
    pub src: Option<IpAddr>,
    pub src_port: u16,
    pub dst: SocketAddr,
    pub interval: Duration,
    /// When something last left for `dst` (a protected packet, an IKE
    /// message noted with [`Plane::note_sent`], or a keepalive). `None` until
    /// the first [`Plane::poll_keepalives`], which starts the clock: the first
    /// keepalive is due one interval after registration, not at once.
    pub last_sent: Option<Timestamp>,
}

/// A NAT-keepalive to send now: [`NAT_KEEPALIVE`] from the UDP socket bound
/// to `src`:`src_port` (or any of `dst`'s family on that port) to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveTransmit {
    pub src: Option<IpAddr>,
    pub src_port: u16,
    pub dst: SocketAddr,
}

/// A packet met a PROTECT policy that has no SA (a trap): the key manager
/// should negotiate one for `policy`; `key` is the packet's selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquire {
    pub policy: PolicyId,
    pub key: palisade_sa::selector::SelectorKey,
}

/// An SA reached a lifetime limit it was configured with: `hard` = it is
/// unusable now (delete it), else soft (rekey it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifetimeHit {
    pub sa: SaHandle,
    pub hard: bool,
}

/// One [`Acquire`] per policy per this interval, so that a burst of packets
/// (or a retrying application) asks once.
pub const ACQUIRE_INTERVAL: Duration = Duration::from_secs(1);

/// The SPD and SAD of one data-plane worker, and the drops no SA owns.
pub struct Plane {
    /// Acquires not yet collected with [`Plane::take_acquires`].
    acquires: Vec<Acquire>,
    /// Lifetime limits reached, not yet collected with [`Plane::take_lifetime_hits`].
    lifetime_hits: Vec<LifetimeHit>,
    /// When each trap policy last asked.
    last_acquire: std::collections::HashMap<PolicyId, Timestamp>,
    pub spd: Spd,
    pub sad: Sad<InstalledSa>,
    /// Drops before an SA was found (unknown SPI, discard, no SA, malformed).
    pub drops: DropCounters,
    /// Packets and bytes the plane handled in each direction.
    pub totals: SaCounters,
    /// Peers behind (or in front of) a NAT that get keepalives.
    keepalives: Vec<KeepaliveTarget>,
    /// The interval [`crate::manual::install`] registers ESP-in-UDP SAs with;
    /// `None` = no keepalives for them.
    pub nat_keepalive: Option<Duration>,
    /// The MTU of the TUN: the largest cleartext packet that enters the
    /// tunnel (0 = not known). `tfc_padding = "mtu"` pads to it.
    pub inner_mtu: u16,
    /// Path MTUs below the TUN's, learned from ICMP about protected packets:
    /// (outer destination, MTU, when learned).
    path_mtu: Vec<(IpAddr, usize, Timestamp)>,
    /// Packets answered with ICMP too-big ([`OutVerdict::TooBig`]).
    pub too_big: u64,
}

impl Default for Plane {
    fn default() -> Self {
        Plane {
            acquires: Vec::new(),
            lifetime_hits: Vec::new(),
            last_acquire: std::collections::HashMap::new(),
            spd: Spd::default(),
            sad: Sad::default(),
            drops: DropCounters::default(),
            totals: SaCounters::default(),
            keepalives: Vec::new(),
            nat_keepalive: Some(DEFAULT_NAT_KEEPALIVE),
            inner_mtu: 0,
            path_mtu: Vec::new(),
            too_big: 0,
        }
    }
}

/// The selector fields of an IP packet (RFC 4301 4.4.1.1); the SA layer's
/// parser, so the outbound SPD lookup and the inbound SA check read packets
/// the same way.
pub use palisade_sa::encap::selector_key;

/// The outbound SPD's answer for one flow, for the packets that follow it
/// from the same TSO super-packet: the kernel cut those from one TCP
/// segment, so they share addresses, protocol and ports, which is the whole
/// selector key (RFC 4301 4.4.1.1), and the SPD cannot change between them
/// (the worker applies commands between reads, not within one). Start each
/// super-packet (and each packet read on its own) with
/// `FlowHint::default()`; only a PROTECT answer whose SAs are all
/// installed is kept, so a trap still raises its acquire.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlowHint(Option<(PolicyId, Protect)>);

/// What the outermost seal of a bundle left: its encapsulation, the offset
/// of the UDP/ESP/AH header, and for a bare ESP-in-UDP packet (no headers of
/// ours) the (local, remote) UDP ends the socket will use.
struct LastSeal {
    encap: Encap,
    l4_offset: usize,
    bare: Option<(SocketAddr, SocketAddr)>,
}

/// The IP version and the bytes of the IP and UDP headers in front of an
/// ESP-in-UDP payload between `a` and `b`: IPv4 (28) between IPv4
/// addresses, else IPv6 (48, v4 addresses mapped), as `rebuild_udp_outer`
/// builds them.
fn udp_outer(a: &SocketAddr, b: &SocketAddr) -> (palisade_wire::ip::Version, usize) {
    if a.is_ipv4() && b.is_ipv4() {
        (palisade_wire::ip::Version::V4, 28)
    } else {
        (palisade_wire::ip::Version::V6, 48)
    }
}

/// The SAs of a bundle in the order they seal: the first (ESP of an AH+ESP
/// bundle), then the one outside it if any (AH, RFC 4301 4.3). A `None`
/// handle is a trap.
fn bundle_sas(b: Bundle) -> (Option<SaHandle>, Option<Option<SaHandle>>) {
    match b {
        Bundle::Esp { sa } | Bundle::Ah { sa } => (sa, None),
        Bundle::AhEsp { ah, esp } => (esp, Some(ah)),
    }
}

/// Where an outer packet comes from and goes: source, destination, protocol.
fn outer_dst(packet: &[u8]) -> Option<(IpAddr, IpAddr, u8)> {
    match IpPacket::new_checked(packet).ok()? {
        IpPacket::V4(p) => Some((
            IpAddr::V4(p.src_addr()),
            IpAddr::V4(p.dst_addr()),
            p.protocol().0,
        )),
        IpPacket::V6(p) => Some((
            IpAddr::V6(p.src_addr()),
            IpAddr::V6(p.dst_addr()),
            p.next_header().0,
        )),
    }
}

impl Plane {
    pub fn new() -> Self {
        Self::default()
    }

    fn acquire(
        &mut self,
        now: Timestamp,
        policy: PolicyId,
        key: palisade_sa::selector::SelectorKey,
    ) {
        let interval = ACQUIRE_INTERVAL.as_nanos() as u64;
        match self.last_acquire.get(&policy) {
            Some(t) if now.0.saturating_sub(t.0) < interval => return,
            _ => {}
        }
        // Forget policies that have been quiet for a while, so the map stays
        // as small as the set of traps that are firing.
        if self.last_acquire.len() > 1024 {
            self.last_acquire
                .retain(|_, t| now.0.saturating_sub(t.0) < interval);
        }
        self.last_acquire.insert(policy, now);
        self.acquires.push(Acquire { policy, key });
    }

    /// The lifetime limits reached since the last call.
    pub fn take_lifetime_hits(&mut self) -> Vec<LifetimeHit> {
        std::mem::take(&mut self.lifetime_hits)
    }

    /// Note what a seal or open said about an SA's lifetime (a function of
    /// the list, so it can be called while the SA itself is borrowed).
    fn note_lifetime(hits: &mut Vec<LifetimeHit>, sa: SaHandle, ev: LifetimeEvent) {
        match ev {
            LifetimeEvent::None => {}
            LifetimeEvent::SoftExpired(_) => hits.push(LifetimeHit { sa, hard: false }),
            LifetimeEvent::HardExpired(_) => hits.push(LifetimeHit { sa, hard: true }),
        }
    }

    /// The acquires raised since the last call (none: no allocation).
    pub fn take_acquires(&mut self) -> Vec<Acquire> {
        std::mem::take(&mut self.acquires)
    }

    /// Register (or replace, by `name`) a NAT-keepalive target: from now on
    /// [`Plane::poll_keepalives`] asks for a keepalive to `dst` from the UDP
    /// socket bound to `src_port` whenever nothing left that way for
    /// `interval`. A zero interval is refused (returns false): to send none,
    /// do not register.
    pub fn add_keepalive(
        &mut self,
        name: impl Into<String>,
        src_port: u16,
        dst: SocketAddr,
        interval: Duration,
    ) -> bool {
        self.add_keepalive_from(name, None, src_port, dst, interval)
    }

    /// [`Plane::add_keepalive`] from the socket bound to `src` (when there
    /// are sockets on `src_port` for several local addresses).
    pub fn add_keepalive_from(
        &mut self,
        name: impl Into<String>,
        src: Option<IpAddr>,
        src_port: u16,
        dst: SocketAddr,
        interval: Duration,
    ) -> bool {
        if interval.is_zero() {
            return false;
        }
        let t = KeepaliveTarget {
            name: name.into(),
            src,
            src_port,
            dst,
            interval,
            last_sent: None,
        };
        match self.keepalives.iter_mut().find(|k| k.name == t.name) {
            Some(k) => *k = t,
            None => self.keepalives.push(t),
        }
        true
    }

    /// Stop the keepalives registered as `name`; false if there were none.
    pub fn remove_keepalive(&mut self, name: &str) -> bool {
        let before = self.keepalives.len();
        self.keepalives.retain(|k| k.name != name);
        self.keepalives.len() != before
    }

    /// The registered keepalive targets.
    pub fn keepalives(&self) -> &[KeepaliveTarget] {
        &self.keepalives
    }

    /// Something (e.g. an IKE message) left the UDP socket bound to
    /// `src_port` for `dst` at `now`: it resets that peer's keepalive timer.
    /// Protected packets sealed by [`Plane::outbound`] are noted already.
    pub fn note_sent(&mut self, now: Timestamp, src_port: u16, dst: SocketAddr) {
        for k in &mut self.keepalives {
            if k.src_port == src_port && k.dst == dst {
                k.last_sent = Some(now);
            }
        }
    }

    /// The keepalives due at `now`, each marked sent. Call it from the poll
    /// loop; sleep no longer than until [`Plane::next_keepalive`].
    pub fn poll_keepalives(&mut self, now: Timestamp, out: &mut Vec<KeepaliveTransmit>) {
        for k in &mut self.keepalives {
            match k.last_sent {
                None => k.last_sent = Some(now),
                Some(t) if now.0.saturating_sub(t.0) >= k.interval.as_nanos() as u64 => {
                    k.last_sent = Some(now);
                    // Two targets for the same peer and port need one packet.
                    let tx = KeepaliveTransmit {
                        src: k.src,
                        src_port: k.src_port,
                        dst: k.dst,
                    };
                    if !out.contains(&tx) {
                        out.push(tx);
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// When the next keepalive is due: the earliest `last_sent + interval`,
    /// or `now` for a target the clock has not started for. `None` without
    /// targets.
    pub fn next_keepalive(&self, now: Timestamp) -> Option<Timestamp> {
        self.keepalives
            .iter()
            .map(|k| match k.last_sent {
                None => now,
                Some(t) => Timestamp(t.0.saturating_add(k.interval.as_nanos() as u64)),
            })
            .min_by_key(|t| t.0)
    }

    /// An ICMP error said that packets to `dst` (an outer destination) may
    /// be at most `mtu` bytes. Believed for [`PATH_MTU_TTL`]; values below
    /// the IPv4/IPv6 minimum path MTU (576/1280: RFC 1191, RFC 8201) are
    /// raised to it.
    pub fn note_path_mtu(&mut self, now: Timestamp, dst: IpAddr, mtu: usize) {
        let mtu = mtu.max(if dst.is_ipv4() { 576 } else { 1280 });
        self.path_mtu
            .retain(|(d, _, t)| *d != dst && !expired(now, *t));
        self.path_mtu.push((dst, mtu, now));
    }

    /// The path MTU learned for the outer destination `dst`, if any.
    pub fn path_mtu(&self, now: Timestamp, dst: IpAddr) -> Option<usize> {
        self.path_mtu
            .iter()
            .find(|(d, _, t)| *d == dst && !expired(now, *t))
            .map(|(_, m, _)| *m)
    }

    /// Seal `buf` (an IP packet from the TUN) per the outbound SPD.
    pub fn outbound(&mut self, now: Timestamp, buf: &mut PacketBuf<'_>) -> OutVerdict {
        self.outbound_in_flow(now, buf, &mut FlowHint::default())
    }

    /// A dropped outbound packet, counted.
    fn drop_out(&mut self, reason: DropReason) -> OutVerdict {
        self.drops.record(reason);
        OutVerdict::Drop(reason)
    }

    /// [`Self::outbound`] for one segment of a super-packet: the SPD is
    /// asked only when `flow` holds no answer yet (see [`FlowHint`]). The
    /// verdict is counted here: a drop by reason, a packet sent as the IP
    /// packet that goes on the wire (for ESP-in-UDP with the headers the
    /// socket adds).
    pub fn outbound_in_flow(
        &mut self,
        now: Timestamp,
        buf: &mut PacketBuf<'_>,
        flow: &mut FlowHint,
    ) -> OutVerdict {
        // The selector key, when the SPD had to be asked (a trap's acquire
        // carries it).
        let mut asked = None;
        let (policy, protect) = match flow.0 {
            Some(known) => known,
            None => {
                let Ok(key) = selector_key(buf.data()) else {
                    return self.drop_out(DropReason::Malformed);
                };
                let answer = match self.spd.lookup(Direction::Outbound, &key) {
                    Some(p) => match p.spec.action {
                        Action::Protect(pr) => (p.id, pr),
                        Action::Discard => return self.drop_out(DropReason::PolicyDiscard),
                        // A packet only reaches the TUN because a route sent
                        // it there to be protected; BYPASS policies are
                        // honoured by not routing traffic into the TUN at
                        // all, so one here is a configuration conflict.
                        Action::Bypass => return self.drop_out(DropReason::PolicyDiscard),
                    },
                    None => return self.drop_out(DropReason::PolicyDiscard),
                };
                asked = Some(key);
                answer
            }
        };
        let (first, then) = bundle_sas(protect.bundle);
        // Keep a fresh answer for the flow only if no step of it is a trap.
        if asked.is_some() && first.is_some() && then.is_none_or(|h| h.is_some()) {
            flow.0 = Some((policy, protect));
        }
        // With a path MTU learned, keep the start of the cleartext for an
        // ICMP too-big quote (it is encrypted in place); only then, as even
        // zeroing the buffer shows in the per-packet cost.
        let inner_len = buf.len();
        let quote = (!self.path_mtu.is_empty()).then(|| {
            let n = inner_len.min(QUOTE);
            let mut q = [0u8; QUOTE];
            q[..n].copy_from_slice(&buf.data()[..n]);
            (q, n)
        });
        // DSCP and ECN for the outer header of ESP-in-UDP, which the UDP
        // socket writes (a raw ESP tunnel copies them in `encap::write_outer`;
        // in transport mode the header is the packet's own).
        let tos = tos_of(buf.data());
        // One SA, or ESP then AH outside it; scalars rather than a list, as
        // a list built per packet costs store-to-load stalls.
        let mut last = match self.seal_step(now, policy, first, asked.as_ref(), buf) {
            Ok(l) => l,
            Err(r) => return self.drop_out(r),
        };
        if let Some(outer) = then {
            last = match self.seal_step(now, policy, outer, asked.as_ref(), buf) {
                Ok(l) => l,
                Err(r) => return self.drop_out(r),
            };
        }
        let LastSeal {
            encap,
            l4_offset,
            bare,
        } = last;
        // Where the packet goes, what it takes on the wire, and how it leaves.
        let (dst, wire_len, t) = match bare {
            Some((local, remote)) => (
                remote.ip(),
                buf.len() + udp_outer(&local, &remote).1,
                Transmit::Udp {
                    dst: remote,
                    src: local,
                    offset: 0,
                    tos,
                },
            ),
            None => {
                let Some((src, dst, proto)) = outer_dst(buf.data()) else {
                    return self.drop_out(DropReason::Malformed);
                };
                let t = match encap {
                    Encap::None => Transmit::Raw { dst, proto },
                    Encap::Udp { src_port, dst_port } => Transmit::Udp {
                        dst: SocketAddr::new(dst, dst_port),
                        src: SocketAddr::new(src, src_port),
                        offset: l4_offset + 8,
                        tos,
                    },
                };
                (dst, buf.len(), t)
            }
        };
        if let Some((quote, qlen)) = &quote {
            let quote = &quote[..*qlen];
            if let Some(pmtu) = self.path_mtu(now, dst) {
                if wire_len > pmtu && may_not_fragment(quote) {
                    // The overhead of this packet, plus up to a cipher block
                    // (16) of padding that a shorter packet may need.
                    let overhead = wire_len - inner_len;
                    let mtu = pmtu.saturating_sub(overhead + 15);
                    return match too_big(buf, quote, mtu) {
                        Some(mtu) => {
                            self.too_big += 1;
                            OutVerdict::TooBig { mtu }
                        }
                        None => self.drop_out(DropReason::Malformed),
                    };
                }
            }
        }
        self.totals.count_out(wire_len as u64);
        if let Transmit::Udp { dst, src, .. } = &t {
            if !self.keepalives.is_empty() {
                self.note_sent(now, src.port(), *dst);
            }
        }
        OutVerdict::Send(t)
    }

    /// Seal `buf` with the SA behind `handle`, one step of `policy`'s bundle:
    /// what the seal left, or why the packet is dropped (a trap, `None`,
    /// asks the key manager for an SA with the `asked` selector key).
    #[inline(always)]
    fn seal_step(
        &mut self,
        now: Timestamp,
        policy: PolicyId,
        handle: Option<SaHandle>,
        asked: Option<&palisade_sa::selector::SelectorKey>,
        buf: &mut PacketBuf<'_>,
    ) -> Result<LastSeal, DropReason> {
        let Some(h) = handle else {
            // A trap (RFC 4301 5.1.1: PROTECT without an SA): ask the key
            // manager for one, at most once per interval per policy. (A flow
            // hint never holds a trap, so the key is at hand.)
            if let Some(key) = asked {
                self.acquire(now, policy, *key);
            }
            return Err(DropReason::NoSa);
        };
        let Some(entry) = self.sad.get_mut(h) else {
            return Err(DropReason::NoSa);
        };
        // ESP-in-UDP leaves through a UDP socket, which adds the outer
        // headers itself.
        match entry.sa.seal_udp_payload(now, buf) {
            Ok(sealed) => {
                let bare = if sealed.bare {
                    entry.sa.udp_ends()
                } else {
                    None
                };
                Self::note_lifetime(&mut self.lifetime_hits, h, sealed.lifetime);
                Ok(LastSeal {
                    encap: entry.sa.encap(),
                    l4_offset: sealed.l4_offset,
                    bare,
                })
            }
            Err(e) => {
                if let palisade_sa::sa::SealError::LifetimeExpired(x) = &e {
                    if x.first {
                        Self::note_lifetime(
                            &mut self.lifetime_hits,
                            h,
                            LifetimeEvent::HardExpired(x.limit),
                        );
                    }
                }
                // The SA counted the drop itself.
                Err(e.reason())
            }
        }
    }

    /// Open `buf` (a whole IP packet from the wire, UDP header included for
    /// ESP-in-UDP) and check the result against the SA's selectors.
    pub fn inbound(&mut self, now: Timestamp, buf: &mut PacketBuf<'_>) -> InVerdict {
        let len = buf.len() as u64;
        let verdict = self.inbound_inner(now, buf);
        match verdict {
            InVerdict::Deliver => self.totals.count_in(len),
            InVerdict::Drop(reason) => self.drops.record(reason),
            _ => {}
        }
        verdict
    }

    /// [`Self::inbound`] for a datagram from a UDP socket: `buf` holds the
    /// UDP payload that `src` sent to `local` (by reference: the worker calls
    /// this for each segment of a GRO datagram, and copies of a `SocketAddr`
    /// per call showed as store-forwarding stalls). ESP of a tunnel-mode SA is
    /// opened as it is (the kernel has checked the IP and UDP headers); the
    /// rest (keepalives, IKE, transport mode, unknown SPIs) takes the general
    /// path on a rebuilt outer header. `outer_ecn` is the ECN field the
    /// datagram arrived with (RFC 6040: a CE mark is passed on to the inner
    /// packet). On [`InVerdict::Ike`] `buf` holds the UDP payload, non-ESP
    /// marker included.
    pub fn inbound_udp(
        &mut self,
        now: Timestamp,
        buf: &mut PacketBuf<'_>,
        src: &SocketAddr,
        local: &SocketAddr,
        outer_ecn: u8,
    ) -> InVerdict {
        let data = buf.data();
        if data == NAT_KEEPALIVE {
            return InVerdict::Consumed;
        }
        let spi = match data {
            [0, 0, 0, 0, ..] => return InVerdict::Ike,
            // Shorter than an ESP header: the general path names the fault.
            [a, b, c, d, _, _, _, _, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
            _ => return self.inbound_rebuilt(now, buf, *src, *local),
        };
        let (outer, hdr) = udp_outer(src, local);
        let wire_len = data.len() + hdr;
        let Some((h, entry)) =
            self.sad
                .inbound_mut(spi, SecurityProtocol::Esp, local.ip(), src.ip())
        else {
            return self.inbound_rebuilt(now, buf, *src, *local);
        };
        if !matches!(entry.sa.mode(), palisade_sa::sa::Mode::Tunnel { .. })
            || entry.sa.encap() == Encap::None
        {
            return self.inbound_rebuilt(now, buf, *src, *local);
        }
        let opened = entry.sa.open_udp_payload(now, buf, outer, outer_ecn);
        let verdict = match Self::after_open(&mut self.lifetime_hits, h, entry, opened, buf.data())
        {
            // An ESP SA, and the payload started with an SPI: neither AH
            // nor IKE can come out of it.
            None | Some(InVerdict::Ike) => InVerdict::Drop(DropReason::Malformed),
            Some(v) => v,
        };
        match verdict {
            // Counted as the whole datagram, as the general path does.
            InVerdict::Deliver => self.totals.count_in(wire_len as u64),
            InVerdict::Drop(reason) => self.drops.record(reason),
            _ => {}
        }
        verdict
    }

    /// The general path for a UDP payload: rebuild an outer IP and UDP
    /// header in front of it and open the whole datagram.
    fn inbound_rebuilt(
        &mut self,
        now: Timestamp,
        buf: &mut PacketBuf<'_>,
        src: SocketAddr,
        local: SocketAddr,
    ) -> InVerdict {
        let before = buf.len();
        if rebuild_udp_outer(buf, src, local).is_err() {
            self.drops.record(DropReason::Malformed);
            return InVerdict::Drop(DropReason::Malformed);
        }
        let hdr = buf.len() - before;
        let verdict = self.inbound(now, buf);
        // Keep the promise about IKE: the UDP payload, without our header.
        if matches!(verdict, InVerdict::Ike) && buf.trim_front(hdr).is_err() {
            return InVerdict::Drop(DropReason::Malformed);
        }
        verdict
    }

    /// The verdict on what `entry` (handle `h`) made of a packet, now
    /// `packet`: lifetime limits reported, and for a cleartext packet the
    /// inbound policy check of RFC 4301 5.2 step 4 (the SA counts a mismatch
    /// itself, as it counts its other drops). `None`: the transport-mode AH
    /// of a bundle was opened and ESP follows.
    fn after_open(
        hits: &mut Vec<LifetimeHit>,
        h: SaHandle,
        entry: &mut InstalledSa,
        opened: Result<Opened, palisade_sa::sa::OpenError>,
        packet: &[u8],
    ) -> Option<InVerdict> {
        match &opened {
            Ok(Opened::Packet { lifetime, .. }) => Self::note_lifetime(hits, h, *lifetime),
            Err(palisade_sa::sa::OpenError::LifetimeExpired(x)) if x.first => {
                Self::note_lifetime(hits, h, LifetimeEvent::HardExpired(x.limit))
            }
            _ => {}
        }
        Some(match opened {
            Err(e) => InVerdict::Drop(e.reason()),
            Ok(Opened::Dummy { .. }) | Ok(Opened::Keepalive) => InVerdict::Consumed,
            Ok(Opened::Ike) => InVerdict::Ike,
            Ok(Opened::Packet { next_header, .. }) => {
                if next_header == IpProtocol::ESP
                    && entry.sa.protocol() == palisade_sa::sa::Protocol::Ah
                {
                    return None;
                }
                match entry.check_selectors(packet) {
                    Ok(()) => InVerdict::Deliver,
                    Err(reason) => InVerdict::Drop(reason),
                }
            }
        })
    }

    fn inbound_inner(&mut self, now: Timestamp, buf: &mut PacketBuf<'_>) -> InVerdict {
        // At most AH then ESP (an AH+ESP bundle), then the cleartext.
        for _ in 0..2 {
            let Ok((kind, dst)) = classify(buf.data()) else {
                return InVerdict::Drop(DropReason::Malformed);
            };
            let (spi, proto) = match kind {
                Inbound::Esp { spi } | Inbound::UdpEsp { spi } => (spi, SecurityProtocol::Esp),
                Inbound::Ah { spi } => (spi, SecurityProtocol::Ah),
                Inbound::Keepalive => return InVerdict::Consumed,
                Inbound::Ike => return InVerdict::Ike,
            };
            let src = match IpPacket::new_checked(buf.data()) {
                Ok(p) => p.src_addr(),
                Err(_) => return InVerdict::Drop(DropReason::Malformed),
            };
            let Some((h, entry)) = self.sad.inbound_mut(spi, proto, dst, src) else {
                return InVerdict::Drop(DropReason::UnknownSpi);
            };
            let opened = entry.sa.open(now, buf);
            match Self::after_open(&mut self.lifetime_hits, h, entry, opened, buf.data()) {
                Some(verdict) => return verdict,
                // Transport-mode AH of a bundle: ESP follows; open it next.
                None => continue,
            }
        }
        InVerdict::Drop(DropReason::Malformed)
    }
}

fn expired(now: Timestamp, learned: Timestamp) -> bool {
    now.0.saturating_sub(learned.0) > PATH_MTU_TTL.as_nanos() as u64
}

/// Whether the cleartext packet starting with `p` must not be fragmented on
/// its way: IPv6 (routers never fragment) or IPv4 with DF.
fn may_not_fragment(p: &[u8]) -> bool {
    match p.first().map(|b| b >> 4) {
        Some(6) => true,
        Some(4) => p.get(6).is_some_and(|b| b & 0x40 != 0),
        _ => false,
    }
}

/// The IPv4 TOS / IPv6 traffic class (DSCP and ECN) of the packet starting
/// with `p`; 0 if it is neither.
fn tos_of(p: &[u8]) -> u8 {
    match p {
        [b0, b1, ..] if b0 >> 4 == 4 => *b1,
        [b0, b1, ..] if b0 >> 4 == 6 => (b0 << 4) | (b1 >> 4),
        _ => 0,
    }
}

/// One's-complement checksum over `parts`, as if concatenated (each part
/// but the last of even length).
fn checksum(parts: &[&[u8]]) -> u16 {
    use palisade_wire::ip::checksum::{add, fold, sum};
    !fold(parts.iter().fold(0, |acc, p| add(acc, sum(p))))
}

/// Replace the contents of `buf` with an ICMP "fragmentation needed" (IPv4,
/// RFC 792/1191) or ICMPv6 "packet too big" (RFC 4443 3.2) for the sender
/// of the packet `quote` starts, reporting `mtu` (raised to the minimum of
/// the family). Its source is the packet's own destination: the error comes
/// out of the TUN, where a source address of this host would be dropped as
/// martian, and any source is accepted for it (RFC 1191, RFC 8201 do not
/// tie the MTU to the sender of the error). Returns the MTU reported.
fn too_big(buf: &mut PacketBuf<'_>, quote: &[u8], mtu: usize) -> Option<u16> {
    match quote.first().map(|b| b >> 4) {
        Some(4) if quote.len() >= 20 => {
            let ihl = usize::from(quote[0] & 0x0f) * 4;
            let q = &quote[..(ihl + 8).min(quote.len())];
            let sender = std::net::Ipv4Addr::new(quote[12], quote[13], quote[14], quote[15]);
            let from = std::net::Ipv4Addr::new(quote[16], quote[17], quote[18], quote[19]);
            let mtu = mtu.clamp(576, 65535) as u16;
            let total = 20 + 8 + q.len();
            buf.truncate(0);
            let out = buf.append(total).ok()?;
            out.fill(0);
            {
                let mut ip = ipv4::Packet::new_unchecked(&mut out[..20]);
                ip.set_version_and_header_len(20);
                ip.set_total_len(total as u16);
                ip.set_ttl(64);
                ip.set_protocol(IpProtocol::ICMP);
                ip.set_src_addr(from);
                ip.set_dst_addr(sender);
                ip.fill_checksum();
            }
            out[20] = 3; // destination unreachable
            out[21] = 4; // fragmentation needed and DF set
            out[26..28].copy_from_slice(&mtu.to_be_bytes());
            out[28..].copy_from_slice(q);
            let c = checksum(&[&out[20..]]);
            out[22..24].copy_from_slice(&c.to_be_bytes());
            Some(mtu)
        }
        Some(6) if quote.len() >= 40 => {
            let addr = |at: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&quote[at..at + 16]);
                std::net::Ipv6Addr::from(a)
            };
            let sender = addr(8);
            let from = addr(24);
            let mtu = mtu.clamp(1280, 65535) as u16;
            let total = 40 + 8 + quote.len();
            buf.truncate(0);
            let out = buf.append(total).ok()?;
            out.fill(0);
            {
                let mut ip = ipv6::Packet::new_unchecked(&mut out[..40]);
                ip.set_version();
                ip.set_payload_len((8 + quote.len()) as u16);
                ip.set_next_header(IpProtocol::ICMPV6);
                ip.set_hop_limit(64);
                ip.set_src_addr(from);
                ip.set_dst_addr(sender);
            }
            out[40] = 2; // packet too big
            out[44..48].copy_from_slice(&u32::from(mtu).to_be_bytes());
            out[48..].copy_from_slice(quote);
            let len = ((8 + quote.len()) as u32).to_be_bytes();
            let c = checksum(&[
                &from.octets(),
                &sender.octets(),
                &len,
                &[0, 0, 0, 58],
                &out[40..],
            ]);
            out[42..44].copy_from_slice(&c.to_be_bytes());
            Some(mtu)
        }
        _ => None,
    }
}

/// Build the outer IPv4 or IPv6 + UDP header that a UDP socket stripped, in
/// front of an ESP-in-UDP payload, so that [`Plane::inbound`] sees the packet
/// as it was on the wire. The UDP checksum is left 0 for IPv4 (RFC 3948 2.1
/// lets senders use 0) and computed for IPv6, where 0 is not allowed.
pub fn rebuild_udp_outer(
    buf: &mut PacketBuf<'_>,
    src: SocketAddr,
    dst: SocketAddr,
) -> Result<(), palisade_sa::buf::NoRoom> {
    let udp_len = 8 + buf.len();
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            let hdr = buf.prepend(28)?;
            hdr.fill(0);
            {
                let mut ip = ipv4::Packet::new_unchecked(&mut hdr[..20]);
                ip.set_version_and_header_len(20);
                ip.set_total_len((20 + udp_len) as u16);
                ip.set_ttl(64);
                ip.set_protocol(IpProtocol::UDP);
                ip.set_src_addr(*s.ip());
                ip.set_dst_addr(*d.ip());
                ip.fill_checksum();
            }
            write_udp(&mut hdr[20..28], s.port(), d.port(), udp_len);
        }
        _ => {
            let (s6, d6) = (to_v6(src.ip()), to_v6(dst.ip()));
            let hdr = buf.prepend(48)?;
            hdr.fill(0);
            {
                let mut ip = ipv6::Packet::new_unchecked(&mut hdr[..40]);
                ip.set_version();
                ip.set_payload_len(udp_len as u16);
                ip.set_next_header(IpProtocol::UDP);
                ip.set_hop_limit(64);
                ip.set_src_addr(s6);
                ip.set_dst_addr(d6);
            }
            write_udp(&mut hdr[40..48], src.port(), dst.port(), udp_len);
            palisade_wire::udp::Packet::new_unchecked(&mut buf.data_mut()[40..])
                .fill_checksum(&IpAddr::V6(s6), &IpAddr::V6(d6));
        }
    }
    Ok(())
}

/// Rebuild the fixed IPv6 header that an IPv6 raw socket stripped.
pub fn rebuild_v6_header(
    buf: &mut PacketBuf<'_>,
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    next_header: u8,
) -> Result<(), palisade_sa::buf::NoRoom> {
    let payload_len = buf.len();
    let hdr = buf.prepend(40)?;
    hdr.fill(0);
    let mut ip = ipv6::Packet::new_unchecked(&mut hdr[..]);
    ip.set_version();
    ip.set_payload_len(payload_len as u16);
    ip.set_next_header(IpProtocol(next_header));
    ip.set_hop_limit(64);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    Ok(())
}

fn to_v6(a: IpAddr) -> std::net::Ipv6Addr {
    match a {
        IpAddr::V6(v6) => v6,
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
    }
}

fn write_udp(h: &mut [u8], sport: u16, dport: u16, len: usize) {
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    h[6..8].copy_from_slice(&[0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4's TOS is byte 1; IPv6's traffic class spans bytes 0 and 1.
    #[test]
    fn tos_of_reads_both_versions() {
        assert_eq!(tos_of(&[0x45, 0xba, 0, 0]), 0xba);
        // Version 6, traffic class 0xb9, flow label 0x12345.
        assert_eq!(tos_of(&[0x6b, 0x91, 0x23, 0x45]), 0xb9);
        assert_eq!(tos_of(&[0x6b]), 0, "too short");
        assert_eq!(tos_of(&[0x55, 0xff]), 0, "neither version");
    }

    fn secs(s: u64) -> Timestamp {
        Timestamp(s * 1_000_000_000)
    }

    /// A UDP/IPv4 packet 10.1.0.1:1000 -> 10.2.0.1:2000 in a buffer with headroom.
    fn udp_packet(storage: &mut [u8]) -> PacketBuf<'_> {
        let pkt: [u8; 28] = [
            0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 1, 10, 2, 0, 1, 0x03, 0xe8,
            0x07, 0xd0, 0, 8, 0, 0,
        ];
        storage[128..156].copy_from_slice(&pkt);
        PacketBuf::new(storage, 128, 28).unwrap()
    }

    /// A PROTECT policy without an SA is a trap: the first packet raises an
    /// acquire with its selector, more packets within the interval do not,
    /// the next interval may again; nothing is sent meanwhile.
    #[test]
    fn trap_policy_raises_one_acquire_per_interval() {
        use palisade_sa::selector::AddrRange;
        use palisade_sa::spd::{Mode, PolicySpec, Protect};
        let mut p = Plane::new();
        let sel = Selector::between(
            AddrRange::prefix("10.1.0.0".parse().unwrap(), 16).unwrap(),
            AddrRange::prefix("10.2.0.0".parse().unwrap(), 16).unwrap(),
        );
        let id = p.spd.insert(PolicySpec {
            priority: 1,
            direction: Direction::Outbound,
            selector: sel,
            action: Action::Protect(Protect {
                bundle: Bundle::Esp { sa: None },
                mode: Mode::Tunnel,
            }),
        });
        let mut storage = vec![0u8; 512];
        // One flow hint throughout, as for the segments of a super-packet:
        // it never holds a trap, so each packet meets the trap itself.
        let mut flow = FlowHint::default();
        for t in [0, 1, 2] {
            let v = p.outbound_in_flow(
                Timestamp(t * 1_000_000),
                &mut udp_packet(&mut storage),
                &mut flow,
            );
            assert_eq!(v, OutVerdict::Drop(DropReason::NoSa));
            assert!(flow.0.is_none());
        }
        let a = p.take_acquires();
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].policy, id);
        assert_eq!(
            (
                a[0].key.src,
                a[0].key.dst,
                a[0].key.proto,
                a[0].key.sport,
                a[0].key.dport
            ),
            (
                "10.1.0.1".parse().unwrap(),
                "10.2.0.1".parse().unwrap(),
                17,
                Some(1000),
                Some(2000)
            )
        );
        assert!(p.take_acquires().is_empty());
        p.outbound(secs(2), &mut udp_packet(&mut storage));
        assert_eq!(p.take_acquires().len(), 1);
    }

    /// RFC 3948 4 with a fake clock: the first keepalive one interval after
    /// registration, then one per idle interval; traffic to the peer (sealed
    /// or noted) postpones it; removal stops it.
    #[test]
    fn keepalives_are_sent_only_after_an_idle_interval() {
        let mut p = Plane::new();
        let peer: SocketAddr = "203.0.113.2:4500".parse().unwrap();
        let other: SocketAddr = "203.0.113.3:4500".parse().unwrap();
        assert!(!p.add_keepalive("zero", 4500, peer, Duration::ZERO));
        assert!(p.add_keepalive("nat", 4500, peer, Duration::from_secs(20)));
        assert_eq!(p.next_keepalive(secs(100)), Some(secs(100)));
        let mut out = Vec::new();
        p.poll_keepalives(secs(100), &mut out);
        assert!(out.is_empty(), "nothing at registration");
        assert_eq!(p.next_keepalive(secs(100)), Some(secs(120)));
        p.poll_keepalives(Timestamp(secs(120).0 - 1), &mut out);
        assert!(out.is_empty(), "nothing before the interval");
        p.poll_keepalives(secs(120), &mut out);
        let ka = KeepaliveTransmit {
            src: None,
            src_port: 4500,
            dst: peer,
        };
        assert_eq!(out, vec![ka]);
        out.clear();
        p.poll_keepalives(secs(121), &mut out);
        assert!(out.is_empty(), "one per interval");
        // Traffic to the peer at 130 postpones the next one to 150.
        p.note_sent(secs(130), 4500, peer);
        // Traffic elsewhere, or from another port, does not.
        p.note_sent(secs(139), 4500, other);
        p.note_sent(secs(139), 4501, peer);
        assert_eq!(p.next_keepalive(secs(131)), Some(secs(150)));
        p.poll_keepalives(secs(149), &mut out);
        assert!(out.is_empty(), "traffic counts as liveness");
        p.poll_keepalives(secs(150), &mut out);
        assert_eq!(out, vec![ka]);
        out.clear();
        // Re-registering under the same name replaces, not duplicates.
        assert!(p.add_keepalive("nat", 4500, peer, Duration::from_secs(5)));
        assert_eq!(p.keepalives().len(), 1);
        p.poll_keepalives(secs(151), &mut out);
        p.poll_keepalives(secs(156), &mut out);
        assert_eq!(out, vec![ka]);
        assert!(p.remove_keepalive("nat"));
        assert!(!p.remove_keepalive("nat"));
        out.clear();
        p.poll_keepalives(secs(1000), &mut out);
        assert!(out.is_empty());
        assert_eq!(p.next_keepalive(secs(1000)), None);
    }

    /// The IPv6 + UDP header rebuilt in front of an ESP-in-UDP payload is
    /// well formed and carries a valid, non-zero UDP checksum (RFC 8200 8.1).
    #[test]
    fn rebuilt_ipv6_udp_outer_has_a_valid_checksum() {
        let payload = [0x00, 0x00, 0x10, 0x01, 0, 0, 0, 1, 0xaa, 0xbb, 0xcc];
        let mut storage = [0u8; 128];
        let mut buf = PacketBuf::with_packet(&mut storage, 64, &payload).unwrap();
        let src: SocketAddr = "[2001:db8::1]:4500".parse().unwrap();
        let dst: SocketAddr = "[2001:db8::2]:4500".parse().unwrap();
        rebuild_udp_outer(&mut buf, src, dst).unwrap();
        let pkt = buf.data();
        assert_eq!(pkt.len(), 48 + payload.len());
        let ip = ipv6::Packet::new_checked(pkt).unwrap();
        assert_eq!(ip.next_header(), IpProtocol::UDP);
        assert_eq!(usize::from(ip.payload_len()), 8 + payload.len());
        let udp = palisade_wire::udp::Packet::new_checked(&pkt[40..]).unwrap();
        assert_ne!(udp.checksum(), 0);
        assert!(udp.verify_checksum(&src.ip(), &dst.ip()));
        assert_eq!(&pkt[48..], &payload);
    }
}
