//! One security association (RFC 4301 4.4.2): a one-way ESP or AH flow with its
//! keys, sequence counter or anti-replay window, lifetime and counters.
//!
//! An SA is built once from an [`SaConfig`] (all the checks that can fail are
//! done here, with errors that name the setting) and then transforms packets
//! in place in a [`PacketBuf`]: [`SecurityAssociation::seal`] for outbound,
//! [`SecurityAssociation::open`] for inbound. Both live in `esp.rs`/`ah.rs`.
//! An AH+ESP bundle is two SAs composed by [`Bundle`].

use core::net::{IpAddr, SocketAddr};

use palisade_crypto::{Policy, Secret};
use palisade_wire::ip::IpProtocol;

use crate::buf::{NoRoom, PacketBuf};
use crate::counters::{DropReason, SaCounters};
use crate::esp::EspCrypto;
use crate::lifetime::{Lifetime, LifetimeConfig, LifetimeEvent, LifetimeExpired, Timestamp};
use crate::replay::{ReplayError, ReplayWindow, SeqCounter, SeqExhausted};
use crate::selector::{Direction, Selector, SelectorKey};

/// Which IPsec protocol the SA carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 4303.
    Esp,
    /// RFC 4302.
    Ah,
}

/// RFC 4301 4.1: transport protects the payload of the packet; tunnel wraps the
/// whole packet in a new outer header between the two tunnel endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Transport,
    /// The outer header goes from `src` to `dst`; either may be v4 or v6
    /// independently of the inner packet (v4-in-v6 and v6-in-v4 work).
    Tunnel {
        src: IpAddr,
        dst: IpAddr,
    },
}

/// ESP in UDP (RFC 3948) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    None,
    /// UDP header with these ports between the IP header and ESP (normally
    /// 4500 both ways, or the NAT-mapped source port).
    Udp {
        src_port: u16,
        dst_port: u16,
    },
}

/// DF bit of an IPv4 outer header (RFC 4301 8.1: "copy DF bit from inner
/// header, set, or clear", per SA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DfBit {
    /// Copy from an IPv4 inner header; an IPv6 inner packet sets DF because
    /// IPv6 is never fragmented by routers (RFC 8200 5).
    #[default]
    Copy,
    Set,
    Clear,
}

/// The encryption transform (ESP only): IKEv2 ENCR ID, key size in bits (the
/// Key Length attribute; `None` for fixed-size transforms), and the keymat
/// including any salt/nonce (RFC 4106 8.1, RFC 4309 7.1, RFC 7634 4, RFC 3686
/// 5.1): exactly `palisade_crypto::registry::encr_info(id, key_bits).keymat_len`
/// bytes.
#[derive(Debug, Clone)]
pub struct EncrConfig {
    pub id: u16,
    pub key_bits: Option<u16>,
    pub keymat: Secret,
}

/// The integrity transform: IKEv2 INTEG ID and key.
#[derive(Debug, Clone)]
pub struct IntegConfig {
    pub id: u16,
    pub key: Secret,
}

/// Everything an SA needs to be built.
#[derive(Debug, Clone)]
pub struct SaConfig {
    pub spi: u32,
    pub protocol: Protocol,
    pub mode: Mode,
    /// ESP only. ENCR_NULL (11) with an integrity transform gives
    /// integrity-only ESP.
    pub encr: Option<EncrConfig>,
    /// Required for AH and for ESP with a non-AEAD cipher; must be `None` with
    /// an AEAD (RFC 7296 3.3: an AEAD proposal has no INTEG transform).
    pub integ: Option<IntegConfig>,
    /// Extended sequence numbers (RFC 4304).
    pub esn: bool,
    /// Anti-replay window in packets, 0 = anti-replay off (not allowed with
    /// ESN, which needs the window to infer the high half).
    pub replay_window: u32,
    pub encap: Encap,
    /// ESP tunnel mode only: pad every inner packet up to this many bytes
    /// (RFC 4303 2.7 TFC padding); 0 = off.
    pub tfc_pad_to: u16,
    pub df: DfBit,
    /// TTL / hop limit of outer headers built in tunnel mode.
    pub outer_ttl: u8,
    pub lifetime: LifetimeConfig,
    /// Which legacy transforms are acceptable.
    pub policy: Policy,
}

impl SaConfig {
    /// A config with the common defaults: no encap, no TFC, DF copied, TTL 64,
    /// 128-packet window, no lifetime limits, secure transforms only.
    pub fn new(spi: u32, protocol: Protocol, mode: Mode) -> Self {
        SaConfig {
            spi,
            protocol,
            mode,
            encr: None,
            integ: None,
            esn: false,
            replay_window: crate::replay::DEFAULT_WINDOW,
            encap: Encap::None,
            tfc_pad_to: 0,
            df: DfBit::Copy,
            outer_ttl: 64,
            lifetime: LifetimeConfig::default(),
            policy: Policy::SECURE,
        }
    }
}

/// Why an SA could not be built; each names the setting at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("SPI 0 is reserved (RFC 4303 2.1) and cannot name an SA")]
    ZeroSpi,
    #[error("SPIs 1-255 are reserved by IANA (RFC 4303 2.1): {0}")]
    ReservedSpi(u32),
    #[error("{0}")]
    Transform(&'static str),
    #[error("crypto: {0}")]
    Crypto(#[from] palisade_crypto::Error),
    #[error("anti-replay window: {0}")]
    Window(#[from] crate::replay::WindowSizeError),
    #[error("ESN needs an anti-replay window to infer the high 32 bits (RFC 4303 A2); replay_window is 0")]
    EsnWithoutWindow,
    #[error("tunnel mode with UDP encapsulation or not, outer addresses {0}")]
    Tunnel(&'static str),
}

/// Why a packet could not be sealed. The packet is left unchanged except on
/// `Crypto` and `NoRoom` after growth (then it must be dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    NoRoom(#[from] NoRoom),
    #[error("packet to protect: {0}")]
    Malformed(#[from] palisade_wire::Error),
    #[error("{0}")]
    SequenceExhausted(#[from] SeqExhausted),
    #[error("{0}")]
    LifetimeExpired(#[from] LifetimeExpired),
    #[error("crypto: {0}")]
    Crypto(#[from] palisade_crypto::Error),
    #[error("seal called on an SA configured for {0}")]
    WrongUse(&'static str),
}

impl SealError {
    /// The drop counter this error is charged to.
    pub fn reason(&self) -> DropReason {
        match self {
            SealError::SequenceExhausted(_) => DropReason::SequenceExhausted,
            SealError::LifetimeExpired(_) => DropReason::LifetimeExpired,
            _ => DropReason::Malformed,
        }
    }
}

/// Why an inbound packet was dropped. Every variant is counted on the SA (see
/// [`OpenError::reason`]) before it is returned: nothing is dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("malformed: {0}")]
    Malformed(#[from] palisade_wire::Error),
    #[error("packet carries SPI {got:#010x}, this SA is {want:#010x}")]
    WrongSpi { got: u32, want: u32 },
    #[error("{0}")]
    Replay(#[from] ReplayError),
    #[error("ICV verification failed")]
    IcvFailure,
    #[error("bad ESP padding: {0}")]
    BadPadding(palisade_wire::Error),
    #[error("{0}")]
    LifetimeExpired(#[from] LifetimeExpired),
    /// RFC 6040 3.2: Not-ECT inner with CE outer "MUST be dropped".
    #[error("outer header is CE but the inner packet is not ECN-capable (RFC 6040: drop)")]
    EcnDrop,
    #[error("{0}")]
    NoRoom(#[from] NoRoom),
    /// RFC 4301 5.2 step 4: the decapsulated packet is not one this SA's
    /// selectors allow.
    #[error("inner packet {0:?} does not match the SA's selectors")]
    PolicyMismatch(SelectorKey),
}

impl OpenError {
    /// The drop counter this error is charged to.
    pub fn reason(&self) -> DropReason {
        match self {
            OpenError::WrongSpi { .. } => DropReason::UnknownSpi,
            OpenError::Replay(_) => DropReason::Replay,
            OpenError::IcvFailure => DropReason::IcvFailure,
            OpenError::BadPadding(_) => DropReason::BadPadding,
            OpenError::LifetimeExpired(_) => DropReason::LifetimeExpired,
            OpenError::PolicyMismatch(_) => DropReason::PolicyMismatch,
            OpenError::Malformed(_) | OpenError::EcnDrop | OpenError::NoRoom(_) => {
                DropReason::Malformed
            }
        }
    }
}

/// A packet was protected; `buf` now holds the whole outer IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    /// The full (64-bit with ESN) sequence number used.
    pub seq: u64,
    /// Offset in the packet of the UDP header (ESP-in-UDP) or of the ESP/AH
    /// header: what a socket that adds its own IP header sends from. For
    /// ESP-in-UDP over a UDP socket send from `l4_offset + 8`.
    pub l4_offset: usize,
    /// A soft lifetime was reached: start rekeying.
    pub lifetime: LifetimeEvent,
    /// The packet has no outer IP or UDP header: it is the UDP payload
    /// (from [`SecurityAssociation::seal_udp_payload`]); send all of it.
    pub bare: bool,
}

/// What an inbound packet turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// `buf` holds the inner IP packet (tunnel) or the rebuilt packet without
    /// ESP/AH (transport).
    Packet {
        seq: u64,
        /// The protocol the ESP trailer / AH header named.
        next_header: IpProtocol,
        lifetime: LifetimeEvent,
    },
    /// An authentic dummy packet (next header 59, RFC 4303 2.6), counted and
    /// to be discarded.
    Dummy { seq: u64 },
    /// A NAT-keepalive on a UDP-encapsulated SA (RFC 3948 2.3): ignore.
    Keepalive,
    /// An IKE message on port 4500 behind the non-ESP marker; `buf` now holds
    /// the IKE message (marker removed). Hand it to IKE.
    Ike,
}

/// A one-way SA. See the module docs.
pub struct SecurityAssociation {
    pub(crate) spi: u32,
    pub(crate) protocol: Protocol,
    pub(crate) mode: Mode,
    pub(crate) encap: Encap,
    pub(crate) esn: bool,
    pub(crate) tfc_pad_to: u16,
    pub(crate) df: DfBit,
    pub(crate) outer_ttl: u8,
    pub(crate) crypto: EspCrypto,
    pub(crate) seq: SeqCounter,
    pub(crate) window: Option<ReplayWindow>,
    pub(crate) lifetime: Lifetime,
    pub(crate) counters: SaCounters,
    pub(crate) dummies_in: u64,
    pub(crate) ip_ident: u16,
    /// [`Self::udp_ends`], worked out when the SA is made or moved.
    udp_ends: Option<(SocketAddr, SocketAddr)>,
}

/// The (local, remote) UDP ends of a tunnel-mode ESP-in-UDP SA.
fn udp_ends_of(mode: Mode, encap: Encap) -> Option<(SocketAddr, SocketAddr)> {
    match (mode, encap) {
        (Mode::Tunnel { src, dst }, Encap::Udp { src_port, dst_port }) => Some((
            SocketAddr::new(src, src_port),
            SocketAddr::new(dst, dst_port),
        )),
        _ => None,
    }
}

impl core::fmt::Debug for SecurityAssociation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecurityAssociation")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("protocol", &self.protocol)
            .field("mode", &self.mode)
            .field("encap", &self.encap)
            .field("esn", &self.esn)
            .field("transform", &self.crypto.describe())
            .finish()
    }
}

impl SecurityAssociation {
    /// Builds the SA: checks the configuration, keys the transforms, allocates
    /// the replay window. `now` starts the lifetime clock.
    pub fn new(config: SaConfig, now: Timestamp) -> Result<Self, ConfigError> {
        if config.spi == 0 {
            return Err(ConfigError::ZeroSpi);
        }
        if config.spi < 256 {
            return Err(ConfigError::ReservedSpi(config.spi));
        }
        if config.esn && config.replay_window == 0 {
            return Err(ConfigError::EsnWithoutWindow);
        }
        if let Mode::Tunnel { src, dst } = config.mode {
            if src.is_ipv4() != dst.is_ipv4() {
                return Err(ConfigError::Tunnel("must be the same IP version"));
            }
        }
        let crypto = match config.protocol {
            Protocol::Esp => {
                EspCrypto::new_esp(config.encr.as_ref(), config.integ.as_ref(), config.policy)?
            }
            Protocol::Ah => {
                if config.encr.is_some() {
                    return Err(ConfigError::Transform("AH has no encryption transform"));
                }
                if config.encap != Encap::None {
                    return Err(ConfigError::Transform(
                        "AH cannot be UDP-encapsulated (RFC 3948 covers ESP only)",
                    ));
                }
                EspCrypto::new_ah(config.integ.as_ref(), config.policy)?
            }
        };
        let window = if config.replay_window == 0 {
            None
        } else {
            Some(ReplayWindow::new(config.replay_window, config.esn)?)
        };
        Ok(SecurityAssociation {
            spi: config.spi,
            protocol: config.protocol,
            mode: config.mode,
            encap: config.encap,
            esn: config.esn,
            tfc_pad_to: config.tfc_pad_to,
            df: config.df,
            outer_ttl: config.outer_ttl,
            crypto,
            seq: SeqCounter::new(config.esn),
            window,
            lifetime: Lifetime::new(config.lifetime, now),
            counters: SaCounters::default(),
            dummies_in: 0,
            ip_ident: (config.spi as u16) ^ 0x5a5a,
            udp_ends: udp_ends_of(config.mode, config.encap),
        })
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn encap(&self) -> Encap {
        self.encap
    }

    /// Move the SA to new tunnel endpoints and UDP ports, keeping its keys,
    /// sequence number, replay window, lifetime and counters (what a NAT
    /// rebinding or a peer's new address needs; RFC 7296 2.23, RFC 4555).
    /// The mode (transport or tunnel) and whether ESP is UDP-encapsulated
    /// stay as they are: changing those is a new SA.
    pub fn update_endpoints(&mut self, mode: Mode, encap: Encap) -> Result<(), ConfigError> {
        match (self.mode, mode) {
            (Mode::Transport, Mode::Transport) => {}
            (Mode::Tunnel { .. }, Mode::Tunnel { src, dst }) => {
                if src.is_ipv4() != dst.is_ipv4() {
                    return Err(ConfigError::Tunnel("must be the same IP version"));
                }
            }
            _ => {
                return Err(ConfigError::Tunnel(
                    "cannot switch between transport and tunnel mode in place",
                ))
            }
        }
        if matches!(self.encap, Encap::None) != matches!(encap, Encap::None) {
            return Err(ConfigError::Transform(
                "UDP encapsulation cannot be turned on or off in place",
            ));
        }
        self.mode = mode;
        self.encap = encap;
        self.udp_ends = udp_ends_of(mode, encap);
        Ok(())
    }

    /// For a tunnel-mode ESP-in-UDP SA, the UDP socket addresses its
    /// packets leave from and go to, (local, remote): what a bare packet
    /// ([`Sealed::bare`]) is sent with. `None` for any other SA.
    #[inline]
    pub fn udp_ends(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.udp_ends
    }

    pub fn esn(&self) -> bool {
        self.esn
    }

    /// Per-SA traffic and drop counters.
    pub fn counters(&self) -> &SaCounters {
        &self.counters
    }

    /// Authentic dummy packets received and discarded.
    pub fn dummies_received(&self) -> u64 {
        self.dummies_in
    }

    /// Lifetime state (for timers: [`Lifetime::check`], `next_deadline`).
    pub fn lifetime(&self) -> &Lifetime {
        &self.lifetime
    }

    pub fn lifetime_mut(&mut self) -> &mut Lifetime {
        &mut self.lifetime
    }

    /// Outbound sequence counter.
    pub fn seq_counter(&self) -> &SeqCounter {
        &self.seq
    }

    /// Sets the last sequence number sent (the next packet carries `last + 1`).
    /// For tests and for resuming; never moves backwards.
    pub fn set_last_seq(&mut self, last: u64) {
        self.seq.advance_to(last);
    }

    /// Inbound anti-replay window, if enabled.
    pub fn replay_window(&self) -> Option<&ReplayWindow> {
        self.window.as_ref()
    }

    /// The window itself, e.g. to restore state or to start a test near
    /// 2^32. Moving it is the caller's responsibility.
    #[doc(hidden)]
    pub fn replay_window_mut(&mut self) -> Option<&mut ReplayWindow> {
        self.window.as_mut()
    }

    /// Most bytes one [`Self::seal`] adds in front of (headroom) and behind
    /// (tailroom) the packet, for sizing buffers: outer IPv6 header (40) +
    /// UDP (8) + ESP header/IV or AH header, and TFC + padding + trailer + ICV.
    pub fn overhead(&self) -> (usize, usize) {
        let head = 40 + 8 + 8 + self.crypto.iv_len().max(self.crypto.ah_header_len());
        let tail = usize::from(self.tfc_pad_to) + 255 + 2 + self.crypto.icv_len();
        (head, tail)
    }

    /// Counts and returns an outbound error.
    #[inline]
    pub(crate) fn drop_out(&mut self, e: SealError) -> SealError {
        self.counters.drop_packet(e.reason());
        e
    }

    /// Counts and returns an inbound error.
    #[inline]
    pub(crate) fn drop_in(&mut self, e: OpenError) -> OpenError {
        self.counters.drop_packet(e.reason());
        e
    }

    /// The next outbound sequence number, after the lifetime accepted the
    /// packet. Errors are counted by the caller.
    pub(crate) fn next_seq(
        &mut self,
        now: Timestamp,
        bytes: usize,
    ) -> Result<(u64, LifetimeEvent), SealError> {
        // Sequence first: an exhausted counter must not charge the lifetime.
        if self.seq.remaining() == 0 {
            return Err(match self.seq.clone().take_next() {
                Err(e) => SealError::SequenceExhausted(e),
                Ok(_) => SealError::WrongUse("sequence"),
            });
        }
        let ev = self.lifetime.charge(now, bytes as u64)?;
        let seq = self.seq.take_next()?;
        Ok((seq, ev))
    }

    /// Before the ICV: replay check (returns the full sequence number) and
    /// hard-lifetime check. Errors are counted by the caller.
    pub(crate) fn pre_icv(&mut self, seq_low: u32) -> Result<u64, OpenError> {
        if self.lifetime.is_expired() {
            let e = OpenError::LifetimeExpired(LifetimeExpired {
                limit: crate::lifetime::LimitKind::Time,
                first: false,
            });
            return Err(e);
        }
        match &self.window {
            Some(w) => Ok(w.check(seq_low)?),
            None => Ok(u64::from(seq_low)),
        }
    }

    /// After the ICV verified: move the window, charge the lifetime.
    pub(crate) fn post_icv(
        &mut self,
        now: Timestamp,
        seq: u64,
        bytes: usize,
    ) -> Result<LifetimeEvent, OpenError> {
        if let Some(w) = &mut self.window {
            w.accept(seq)?;
        }
        Ok(self.lifetime.charge(now, bytes as u64)?)
    }

    /// Protects one packet in place. `buf` holds an IP packet (v4 or v6); on
    /// success it holds the outer packet. Allocation-free.
    pub fn seal(&mut self, now: Timestamp, buf: &mut PacketBuf<'_>) -> Result<Sealed, SealError> {
        self.seal_as(now, buf, false)
    }

    /// [`Self::seal`] for a UDP socket: a tunnel-mode ESP-in-UDP SA leaves
    /// out the outer IP and UDP headers, which the socket adds, and returns
    /// [`Sealed::bare`]; `buf` then holds the UDP payload. Any other SA seals
    /// as [`Self::seal`] does. Byte counts and lifetimes include the headers
    /// left out, as if they were there.
    pub fn seal_udp_payload(
        &mut self,
        now: Timestamp,
        buf: &mut PacketBuf<'_>,
    ) -> Result<Sealed, SealError> {
        self.seal_as(now, buf, true)
    }

    /// [`Self::seal`] (`bare` false) or [`Self::seal_udp_payload`] (true).
    fn seal_as(
        &mut self,
        now: Timestamp,
        buf: &mut PacketBuf<'_>,
        bare: bool,
    ) -> Result<Sealed, SealError> {
        let result = match self.protocol {
            Protocol::Esp => crate::esp::seal(self, now, buf, None, None, bare),
            Protocol::Ah => crate::ah::seal(self, now, buf),
        };
        result.map_err(|e| self.drop_out(e))
    }

    /// Sends an ESP dummy packet (next header 59, RFC 4303 2.6) of `len`
    /// zero bytes of payload; `buf` must be empty with room around it. In
    /// transport mode `buf` must hold the IP header to send it under (with
    /// no payload). Receivers discard it after the ICV.
    pub fn seal_dummy(
        &mut self,
        now: Timestamp,
        buf: &mut PacketBuf<'_>,
        len: usize,
    ) -> Result<Sealed, SealError> {
        if self.protocol != Protocol::Esp {
            return Err(SealError::WrongUse("AH (dummy packets are ESP only)"));
        }
        crate::esp::seal(self, now, buf, None, Some(len), false).map_err(|e| self.drop_out(e))
    }

    /// Like [`Self::seal`] with a caller-chosen IV, for known-answer tests
    /// against published packets. Never use it for traffic: a repeated IV
    /// with a counter mode or AEAD destroys confidentiality and integrity.
    #[doc(hidden)]
    pub fn seal_with_iv(
        &mut self,
        now: Timestamp,
        buf: &mut PacketBuf<'_>,
        iv: &[u8],
    ) -> Result<Sealed, SealError> {
        if self.protocol != Protocol::Esp {
            return Err(SealError::WrongUse("AH (no IV)"));
        }
        crate::esp::seal(self, now, buf, Some(iv), None, false).map_err(|e| self.drop_out(e))
    }

    /// The inbound policy check of RFC 4301 5.2 step 4, after [`Self::open`]
    /// returned [`Opened::Packet`]: "check that the packet ... matches the
    /// selectors of the SA". `packet` is the opened packet (`buf.data()`);
    /// it passes if any of `selectors` (the SA's traffic selectors, oriented
    /// local = this host) matches. A mismatch is counted as
    /// `PolicyMismatch` on this SA and returned as an error; on success the
    /// packet's key is returned for the caller's SPD checks.
    #[inline]
    pub fn check_inbound_policy(
        &mut self,
        packet: &[u8],
        selectors: &[Selector],
    ) -> Result<SelectorKey, OpenError> {
        let key = match crate::encap::selector_key(packet) {
            Ok(k) => k,
            Err(e) => {
                let e = OpenError::Malformed(e);
                return Err(self.drop_in(e));
            }
        };
        if selectors
            .iter()
            .any(|s| s.matches(&key, Direction::Inbound))
        {
            Ok(key)
        } else {
            Err(self.drop_in(OpenError::PolicyMismatch(key)))
        }
    }

    /// Verifies and removes the protection in place. `buf` holds the received
    /// IP packet (with the UDP header for ESP-in-UDP). Every drop is counted
    /// on this SA before the error is returned. Allocation-free.
    pub fn open(&mut self, now: Timestamp, buf: &mut PacketBuf<'_>) -> Result<Opened, OpenError> {
        let result = match self.protocol {
            Protocol::Esp => crate::esp::open(self, now, buf),
            Protocol::Ah => crate::ah::open(self, now, buf),
        };
        result.map_err(|e| self.drop_in(e))
    }

    /// [`Self::open`] for ESP-in-UDP of a tunnel-mode SA as a UDP socket
    /// delivers it: `buf` holds the UDP payload from the ESP header on (no
    /// IP or UDP header, which the kernel has checked; `outer` is their IP
    /// version and `outer_ecn` the ECN field of the outer header, for RFC
    /// 6040 decapsulation). Saves rebuilding a header only to parse it again.
    /// Any other SA refuses it (transport mode needs the outer header to
    /// restore the packet); drops are counted as in [`Self::open`].
    pub fn open_udp_payload(
        &mut self,
        now: Timestamp,
        buf: &mut PacketBuf<'_>,
        outer: palisade_wire::ip::Version,
        outer_ecn: u8,
    ) -> Result<Opened, OpenError> {
        let result = match self.protocol {
            Protocol::Esp => crate::esp::open_udp_tunnel(self, now, buf, outer, outer_ecn),
            Protocol::Ah => Err(OpenError::Malformed(palisade_wire::Error::Malformed {
                field: "UDP payload",
                why: "AH is never UDP-encapsulated",
            })),
        };
        result.map_err(|e| self.drop_in(e))
    }
}

/// AH+ESP on the same traffic (RFC 4301 4.5 "SA bundles"): ESP inside, AH
/// outside. The ESP SA carries the mode (transport or tunnel); the AH SA must
/// be in transport mode and then protects the whole result, outer header
/// included.
#[derive(Debug)]
pub struct Bundle {
    pub esp: SecurityAssociation,
    pub ah: SecurityAssociation,
}

impl Bundle {
    /// Checks the shapes: `esp` is ESP, `ah` is AH in transport mode, neither
    /// UDP-encapsulated.
    pub fn new(esp: SecurityAssociation, ah: SecurityAssociation) -> Result<Self, ConfigError> {
        if esp.protocol != Protocol::Esp || ah.protocol != Protocol::Ah {
            return Err(ConfigError::Transform(
                "bundle needs an ESP SA and an AH SA",
            ));
        }
        if ah.mode != Mode::Transport {
            return Err(ConfigError::Transform(
                "the AH SA of a bundle must be in transport mode (the ESP SA carries the tunnel)",
            ));
        }
        if esp.encap != Encap::None {
            return Err(ConfigError::Transform(
                "AH cannot protect UDP-encapsulated ESP across a NAT",
            ));
        }
        Ok(Bundle { esp, ah })
    }

    /// ESP first, then AH over the result.
    pub fn seal(&mut self, now: Timestamp, buf: &mut PacketBuf<'_>) -> Result<Sealed, SealError> {
        self.esp.seal(now, buf)?;
        self.ah.seal(now, buf)
    }

    /// AH first, then ESP.
    pub fn open(&mut self, now: Timestamp, buf: &mut PacketBuf<'_>) -> Result<Opened, OpenError> {
        match self.ah.open(now, buf)? {
            Opened::Packet { next_header, .. } if next_header == IpProtocol::ESP => {
                self.esp.open(now, buf)
            }
            Opened::Packet { .. } => {
                let e = OpenError::Malformed(palisade_wire::Error::Malformed {
                    field: "AH next header",
                    why: "bundle expects ESP inside AH",
                });
                Err(self.ah.drop_in(e))
            }
            other => Ok(other),
        }
    }
}
