//! Manually keyed SA pairs (RFC 4301 4.5 "manual keying"): the neutral
//! description the daemon's config is turned into, and its installation into a
//! [`Plane`] plus the host configuration (routes, rules, sockets) it needs.

use crate::netcfg::{NetCfgError, NetConfig};
use crate::plane::{InstalledSa, Plane};
use crate::sock::{RawSocket, IPPROTO_AH, IPPROTO_ESP};
use crate::worker::{RawEndpoint, UdpEndpoint};
use palisade_crypto::{Policy, Secret};
use palisade_sa::lifetime::Timestamp;
use palisade_sa::sa::{
    Encap, EncrConfig, IntegConfig, Mode, Protocol, SaConfig, SecurityAssociation,
};
use palisade_sa::sad::{InboundKey, SaHandle, SaScope, SecurityProtocol};
use palisade_sa::selector::{AddrRange, Direction, Selector};
use palisade_sa::spd::{Action, Bundle, PolicySpec, Protect};
use std::net::{IpAddr, SocketAddr, UdpSocket};

/// The mark on palisade's own ESP/AH packets, so policy routing lets them out
/// through the normal tables instead of back into the TUN.
pub const BYPASS_MARK: u32 = 0x5a1;
/// Routing table for transport-mode peers.
pub const TRANSPORT_TABLE: u32 = 0x5a1;

/// How the protected packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Esp,
    EspUdp { local_port: u16, remote_port: u16 },
    Ah,
    AhEsp,
}

/// Keys for one direction.
#[derive(Clone, Default)]
pub struct DirKeys {
    /// ESP encryption keymat (salt/nonce included for AEAD and CTR).
    pub enc: Option<Secret>,
    /// ESP integrity key (non-AEAD).
    pub esp_auth: Option<Secret>,
    /// AH integrity key.
    pub ah_auth: Option<Secret>,
}

/// One manually keyed SA pair as the daemon's config describes it.
#[derive(Clone)]
pub struct ManualSpec {
    pub name: String,
    pub tunnel: bool,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub wire: Wire,
    /// ESP SPIs (in = what the peer puts on packets to us).
    pub spi_in: u32,
    pub spi_out: u32,
    /// AH SPIs for `ah+esp` (AH alone uses `spi_in`/`spi_out`).
    pub ah_spi_in: u32,
    pub ah_spi_out: u32,
    /// ESP transforms: (ENCR id, key bits) and INTEG id (None with an AEAD).
    pub encr: Option<(u16, Option<u16>)>,
    pub esp_integ: Option<u16>,
    /// AH integrity transform.
    pub ah_integ: Option<u16>,
    pub keys_in: DirKeys,
    pub keys_out: DirKeys,
    /// Local and remote traffic selectors as prefixes.
    pub local_ts: Vec<(IpAddr, u8)>,
    pub remote_ts: Vec<(IpAddr, u8)>,
    pub esn: bool,
    pub replay_window: u32,
    /// TFC padding (RFC 4303 2.7): pad every outbound ESP payload to this
    /// many bytes (0 = off).
    pub tfc_pad_to: u16,
    /// TFC padding to the TUN MTU instead (`tfc_padding = "mtu"`): every
    /// payload as long as the largest packet the TUN lets in, so every
    /// protected packet has the size of a full one. [`install`] resolves it
    /// from [`Plane::inner_mtu`].
    pub tfc_pad_to_mtu: bool,
    pub allow_insecure: bool,
    /// Volume (and time) limits of each SA of the pair; manual SAs have none.
    /// The plane reports reaching them as [`crate::plane::LifetimeHit`]s.
    pub lifetime: palisade_sa::lifetime::LifetimeConfig,
}

impl std::fmt::Debug for ManualSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are deliberately left out.
        f.debug_struct("ManualSpec")
            .field("name", &self.name)
            .field("tunnel", &self.tunnel)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("wire", &self.wire)
            .field("spi_in", &format_args!("{:#x}", self.spi_in))
            .field("spi_out", &format_args!("{:#x}", self.spi_out))
            .finish_non_exhaustive()
    }
}

/// Why a manual SA could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("manual SA `{name}`: {what}: {source}")]
    Sa {
        name: String,
        what: &'static str,
        source: palisade_sa::sa::ConfigError,
    },
    #[error("manual SA `{name}`: SPI {spi:#x} is already in use: {source}")]
    Sad {
        name: String,
        spi: u32,
        source: palisade_sa::sad::SadError,
    },
    #[error("manual SA `{name}`: traffic selector {addr}/{len} is invalid")]
    Selector { name: String, addr: IpAddr, len: u8 },
    #[error(transparent)]
    Net(#[from] NetCfgError),
    #[error("manual SA `{0}`: tfc_padding = \"mtu\" needs the TUN MTU, which the data plane was not given")]
    NoMtu(String),
    #[error("manual SA `{0}`: its outbound SA cannot seal a test packet to measure its overhead")]
    Probe(String),
    #[error(transparent)]
    Worker(#[from] crate::worker::WorkerGone),
    #[error("opening a socket for {what}: {source}")]
    Socket {
        what: String,
        source: std::io::Error,
    },
}

/// Handles of what [`install`] put into the plane, to remove it on reload.
#[derive(Debug, Clone, Default)]
pub struct Installed {
    pub sas: Vec<SaHandle>,
    pub policies: Vec<palisade_sa::spd::PolicyId>,
    /// The NAT-keepalive target registered under the SA's name (ESP-in-UDP
    /// with [`Plane::nat_keepalive`] set).
    pub keepalive: Option<String>,
}

fn prefixes(
    name: &str,
    ts: &[(IpAddr, u8)],
    fallback: IpAddr,
) -> Result<Vec<AddrRange>, InstallError> {
    if ts.is_empty() {
        return Ok(vec![AddrRange::host(fallback)]);
    }
    ts.iter()
        .map(|&(addr, len)| {
            AddrRange::prefix(addr, len).map_err(|_| InstallError::Selector {
                name: name.into(),
                addr,
                len,
            })
        })
        .collect()
}

impl ManualSpec {
    /// An ESP tunnel-mode pair between `local` and `remote` over `wire`
    /// with nothing chosen yet: no SPIs, transforms, keys or selectors;
    /// replay window 1024, no ESN, TFC padding or lifetimes. For code that
    /// builds its own pairs (benches, fuzzing) to complete with struct
    /// update syntax; the daemon builds its specs from the config.
    pub fn esp_tunnel(name: &str, local: IpAddr, remote: IpAddr, wire: Wire) -> ManualSpec {
        ManualSpec {
            name: name.into(),
            tunnel: true,
            local,
            remote,
            wire,
            spi_in: 0,
            spi_out: 0,
            ah_spi_in: 0,
            ah_spi_out: 0,
            encr: None,
            esp_integ: None,
            ah_integ: None,
            keys_in: DirKeys::default(),
            keys_out: DirKeys::default(),
            local_ts: Vec::new(),
            remote_ts: Vec::new(),
            esn: false,
            replay_window: 1024,
            tfc_pad_to: 0,
            tfc_pad_to_mtu: false,
            allow_insecure: false,
            lifetime: Default::default(),
        }
    }

    fn sa_config(&self, protocol: Protocol, spi: u32, inbound: bool) -> SaConfig {
        let (src, dst) = if inbound {
            (self.remote, self.local)
        } else {
            (self.local, self.remote)
        };
        let mode = if self.tunnel && (protocol == Protocol::Esp || self.wire == Wire::Ah) {
            Mode::Tunnel { src, dst }
        } else {
            Mode::Transport
        };
        let mut c = SaConfig::new(spi, protocol, mode);
        c.lifetime = self.lifetime;
        let keys = if inbound {
            &self.keys_in
        } else {
            &self.keys_out
        };
        match protocol {
            Protocol::Esp => {
                c.encr = self.encr.map(|(id, bits)| EncrConfig {
                    id,
                    key_bits: bits,
                    keymat: keys.enc.clone().unwrap_or_default(),
                });
                c.integ = self.esp_integ.map(|id| IntegConfig {
                    id,
                    key: keys.esp_auth.clone().unwrap_or_default(),
                });
                c.tfc_pad_to = if inbound { 0 } else { self.tfc_pad_to };
                if let Wire::EspUdp {
                    local_port,
                    remote_port,
                } = self.wire
                {
                    c.encap = if inbound {
                        Encap::Udp {
                            src_port: remote_port,
                            dst_port: local_port,
                        }
                    } else {
                        Encap::Udp {
                            src_port: local_port,
                            dst_port: remote_port,
                        }
                    };
                }
            }
            Protocol::Ah => {
                c.integ = self.ah_integ.map(|id| IntegConfig {
                    id,
                    key: keys.ah_auth.clone().unwrap_or_default(),
                });
            }
        }
        c.esn = self.esn;
        c.replay_window = self.replay_window;
        c.policy = if self.allow_insecure {
            Policy::INSECURE
        } else {
            Policy::SECURE
        };
        c
    }

    fn build(
        &self,
        protocol: Protocol,
        spi: u32,
        inbound: bool,
    ) -> Result<SecurityAssociation, InstallError> {
        let what = match (protocol, inbound) {
            (Protocol::Esp, true) => "inbound ESP SA",
            (Protocol::Esp, false) => "outbound ESP SA",
            (Protocol::Ah, true) => "inbound AH SA",
            (Protocol::Ah, false) => "outbound AH SA",
        };
        SecurityAssociation::new(self.sa_config(protocol, spi, inbound), Timestamp(0)).map_err(
            |source| InstallError::Sa {
                name: self.name.clone(),
                what,
                source,
            },
        )
    }

    /// The selectors this pair protects (local x remote prefixes).
    pub fn selectors(&self) -> Result<Vec<Selector>, InstallError> {
        let local = prefixes(&self.name, &self.local_ts, self.local)?;
        let remote = prefixes(&self.name, &self.remote_ts, self.remote)?;
        Ok(local
            .iter()
            .flat_map(|l| remote.iter().map(move |r| Selector::between(*l, *r)))
            .collect())
    }
}

/// Put the SAs and outbound policies of `spec` into `plane`.
pub fn install(
    plane: &mut Plane,
    spec: &ManualSpec,
    priority: u32,
) -> Result<Installed, InstallError> {
    install_with_selectors(plane, spec, spec.selectors()?, priority)
}

/// [`install`] with explicit selectors instead of the prefixes of
/// `spec.local_ts`/`remote_ts` (IKE traffic selectors are ranges with
/// protocols and ports).
pub fn install_with_selectors(
    plane: &mut Plane,
    spec: &ManualSpec,
    selectors: Vec<Selector>,
    priority: u32,
) -> Result<Installed, InstallError> {
    let resolved;
    let spec = if spec.tfc_pad_to_mtu {
        if plane.inner_mtu == 0 {
            return Err(InstallError::NoMtu(spec.name.clone()));
        }
        let mut s = spec.clone();
        s.tfc_pad_to = plane.inner_mtu;
        s.tfc_pad_to_mtu = false;
        resolved = s;
        &resolved
    } else {
        spec
    };
    let mut done = Installed::default();
    let add_in = |plane: &mut Plane, protocol: Protocol, spi: u32, done: &mut Installed| {
        let sa = spec.build(protocol, spi, true)?;
        let proto = if protocol == Protocol::Esp {
            SecurityProtocol::Esp
        } else {
            SecurityProtocol::Ah
        };
        // The outer SA of a bundle (AH) opens to ESP, not to the inner packet:
        // only the innermost SA checks the selectors.
        let sels = if protocol == Protocol::Ah && spec.wire == Wire::AhEsp {
            vec![]
        } else {
            selectors.clone()
        };
        let key = InboundKey {
            spi,
            proto,
            scope: SaScope::Unicast,
        };
        let h = plane
            .sad
            .insert_inbound(key, InstalledSa::new(format!("{} in", spec.name), sa, sels))
            .map_err(|source| InstallError::Sad {
                name: spec.name.clone(),
                spi,
                source,
            })?;
        done.sas.push(h);
        Ok::<_, InstallError>(h)
    };
    let add_out = |plane: &mut Plane, protocol: Protocol, spi: u32, done: &mut Installed| {
        let sa = spec.build(protocol, spi, false)?;
        let h = plane
            .sad
            .insert_outbound(InstalledSa::new(format!("{} out", spec.name), sa, vec![]))
            .map_err(|source| InstallError::Sad {
                name: spec.name.clone(),
                spi,
                source,
            })?;
        done.sas.push(h);
        Ok::<_, InstallError>(h)
    };
    let bundle = match spec.wire {
        Wire::Esp | Wire::EspUdp { .. } => {
            add_in(plane, Protocol::Esp, spec.spi_in, &mut done)?;
            Bundle::Esp {
                sa: Some(add_out(plane, Protocol::Esp, spec.spi_out, &mut done)?),
            }
        }
        Wire::Ah => {
            add_in(plane, Protocol::Ah, spec.spi_in, &mut done)?;
            Bundle::Ah {
                sa: Some(add_out(plane, Protocol::Ah, spec.spi_out, &mut done)?),
            }
        }
        Wire::AhEsp => {
            add_in(plane, Protocol::Esp, spec.spi_in, &mut done)?;
            add_in(plane, Protocol::Ah, spec.ah_spi_in, &mut done)?;
            let esp = add_out(plane, Protocol::Esp, spec.spi_out, &mut done)?;
            let ah = add_out(plane, Protocol::Ah, spec.ah_spi_out, &mut done)?;
            Bundle::AhEsp {
                ah: Some(ah),
                esp: Some(esp),
            }
        }
    };
    let mode = if spec.tunnel {
        palisade_sa::spd::Mode::Tunnel
    } else {
        palisade_sa::spd::Mode::Transport
    };
    for selector in selectors {
        done.policies.push(plane.spd.insert(PolicySpec {
            priority,
            direction: Direction::Outbound,
            selector,
            action: Action::Protect(Protect { bundle, mode }),
        }));
    }
    // RFC 3948 4: keep the NAT mapping towards the peer alive.
    if let (
        Wire::EspUdp {
            local_port,
            remote_port,
        },
        Some(interval),
    ) = (spec.wire, plane.nat_keepalive)
    {
        let dst = SocketAddr::new(spec.remote, remote_port);
        if plane.add_keepalive_from(
            spec.name.clone(),
            Some(spec.local),
            local_port,
            dst,
            interval,
        ) {
            done.keepalive = Some(spec.name.clone());
        }
    }
    Ok(done)
}

/// The largest inner packet (bytes, IP header included) that `spec`'s
/// outbound SA or bundle seals into at most `wire_mtu` bytes on the wire,
/// outer IP (and UDP) header included: the MTU the TUN may offer so that
/// nothing the tunnel sends must be fragmented. Measured, not estimated: a
/// throwaway copy of the outbound SA seals test packets from `wire_mtu`
/// bytes down until one fits (the sealed size grows monotonically with the
/// inner size; ESP padding makes it a step function). TFC padding is left
/// out: it pads up to a size, never past the packet. `None` if nothing fits.
pub fn max_inner_len(spec: &ManualSpec, wire_mtu: usize) -> Result<Option<usize>, InstallError> {
    let mut probe = spec.clone();
    probe.tfc_pad_to = 0;
    probe.tfc_pad_to_mtu = false;
    let mut sas = Vec::new();
    match spec.wire {
        Wire::Esp | Wire::EspUdp { .. } => {
            sas.push(probe.build(Protocol::Esp, spec.spi_out, false)?)
        }
        Wire::Ah => sas.push(probe.build(Protocol::Ah, spec.spi_out, false)?),
        Wire::AhEsp => {
            sas.push(probe.build(Protocol::Esp, spec.spi_out, false)?);
            sas.push(probe.build(Protocol::Ah, spec.ah_spi_out, false)?);
        }
    }
    // The inner packet's addresses: what the tunnel carries, or the peers.
    let (src, dst) = if spec.tunnel {
        let l = spec.local_ts.first().map_or(spec.local, |t| t.0);
        let r = spec
            .remote_ts
            .iter()
            .map(|t| t.0)
            .find(|a| a.is_ipv4() == l.is_ipv4())
            .unwrap_or(l);
        (l, r)
    } else {
        (spec.local, spec.remote)
    };
    const HEAD: usize = 256;
    let mut storage = vec![0u8; HEAD + wire_mtu + 1024];
    let name = &spec.name;
    let mut sealed = |len: usize| -> Result<usize, InstallError> {
        let storage = &mut storage[..];
        storage[HEAD..HEAD + len].fill(0);
        write_probe_header(&mut storage[HEAD..HEAD + len], src, dst);
        let mut buf = palisade_sa::buf::PacketBuf::new(storage, HEAD, len)
            .map_err(|_| InstallError::Probe(name.clone()))?;
        for sa in sas.iter_mut() {
            sa.seal(Timestamp(0), &mut buf)
                .map_err(|_| InstallError::Probe(name.clone()))?;
        }
        Ok(buf.len())
    };
    let min = if src.is_ipv4() { 28 } else { 48 };
    // Step down by the excess until something fits, then bisect between
    // that and the last size that did not.
    let (mut lo, mut hi) = (0, wire_mtu + 1);
    let mut len = wire_mtu;
    while len >= min {
        let n = sealed(len)?;
        if n <= wire_mtu {
            lo = len;
            break;
        }
        hi = len;
        len = len.saturating_sub((n - wire_mtu).max(1));
    }
    if lo == 0 {
        return Ok(None);
    }
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if sealed(mid)? <= wire_mtu {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Some(lo))
}

/// A UDP-in-IP header for a probe packet of `p.len()` bytes.
fn write_probe_header(p: &mut [u8], src: IpAddr, dst: IpAddr) {
    let len = p.len();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = palisade_wire::ipv4::Packet::new_unchecked(&mut p[..20]);
            ip.set_version_and_header_len(20);
            ip.set_total_len(len as u16);
            ip.set_ttl(64);
            ip.set_protocol(palisade_wire::ip::IpProtocol::UDP);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            ip.fill_checksum();
            p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
        }
        _ => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(a) => a,
                IpAddr::V4(a) => a.to_ipv6_mapped(),
            };
            let mut ip = palisade_wire::ipv6::Packet::new_unchecked(&mut p[..40]);
            ip.set_version();
            ip.set_payload_len((len - 40) as u16);
            ip.set_next_header(palisade_wire::ip::IpProtocol::UDP);
            ip.set_hop_limit(64);
            ip.set_src_addr(v6(src));
            ip.set_dst_addr(v6(dst));
            p[44..46].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        }
    }
}

/// The TUN MTU: `configured`, lowered where an SA's overhead would push a
/// full-size packet past the MTU of the route to its peer (the packet would
/// then be fragmented on the outside, or dropped if the outer size is
/// refused), so the kernel tells senders the size that fits (ICMP
/// "fragmentation needed" / "packet too big", EMSGSIZE locally) instead.
/// Never below 576 (IPv4's minimum datagram); IPv6 through the tunnel needs
/// 1280, which is warned about.
pub fn tun_mtu(configured: u16, specs: &[ManualSpec]) -> u16 {
    let mut mtu = configured;
    for spec in specs {
        let Some((dev, link)) = crate::netcfg::route_mtu(spec.remote, BYPASS_MARK) else {
            continue;
        };
        match max_inner_len(spec, link) {
            Ok(Some(fit)) if fit < usize::from(mtu) => {
                let fit = fit.max(576) as u16;
                tracing::warn!(
                    "TUN MTU lowered from {mtu} to {fit}: SA `{}` adds {} bytes to a full packet and the route to {} (dev {dev}) has MTU {link}",
                    spec.name,
                    link - usize::from(fit),
                    spec.remote
                );
                if fit < 1280 {
                    tracing::warn!(
                        "IPv6 needs a TUN MTU of 1280: raise the MTU towards {}",
                        spec.remote
                    );
                }
                mtu = fit;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("cannot measure the overhead of `{}`: {e}", spec.name),
        }
    }
    mtu
}

/// Move the SAs [`install`] made to new outer addresses and UDP ports in
/// place (a NAT rebinding, RFC 7296 2.23): keys, sequence numbers, replay
/// windows and counters stay. Also moves the pair's NAT-keepalive target.
pub fn move_endpoints(
    plane: &mut Plane,
    installed: &Installed,
    local: SocketAddr,
    remote: SocketAddr,
) -> Result<(), palisade_sa::sa::ConfigError> {
    for h in &installed.sas {
        let Some(entry) = plane.sad.get_mut(*h) else {
            continue;
        };
        // install() names them "<name> in" and "<name> out".
        let inbound = entry.name.ends_with(" in");
        let (src, dst) = if inbound {
            (remote, local)
        } else {
            (local, remote)
        };
        let mode = match entry.sa.mode() {
            Mode::Transport => Mode::Transport,
            Mode::Tunnel { .. } => Mode::Tunnel {
                src: src.ip(),
                dst: dst.ip(),
            },
        };
        let encap = match entry.sa.encap() {
            Encap::None => Encap::None,
            Encap::Udp { .. } => Encap::Udp {
                src_port: src.port(),
                dst_port: dst.port(),
            },
        };
        entry.sa.update_endpoints(mode, encap)?;
    }
    if let (Some(name), Some(interval)) = (&installed.keepalive, plane.nat_keepalive) {
        plane.add_keepalive_from(
            name.clone(),
            Some(local.ip()),
            local.port(),
            remote,
            interval,
        );
    }
    Ok(())
}

/// Remove what [`install`] added.
pub fn uninstall(plane: &mut Plane, installed: &Installed) {
    if let Some(name) = &installed.keepalive {
        plane.remove_keepalive(name);
    }
    for id in &installed.policies {
        plane.spd.remove(*id);
    }
    for h in &installed.sas {
        plane.sad.remove(*h);
    }
}

/// One routing change an SA pair needs. Pairs that protect the same traffic
/// (a rekeyed SA and its successor) need the same items: [`RouteItem::key`]
/// lets a caller share them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteItem {
    /// Tunnel mode: a remote selector into the TUN, with our host selector
    /// (if there is one) as the source for locally originated traffic.
    Tunnel { cidr: String, src: Option<String> },
    /// Transport mode: the peer into the TUN through palisade's own table,
    /// by a rule that palisade's marked packets skip.
    Transport { cidr: String, local: String },
}

impl RouteItem {
    /// Names the change: equal keys, equal changes.
    pub fn key(&self) -> String {
        match self {
            RouteItem::Tunnel { cidr, .. } => cidr.clone(),
            RouteItem::Transport { cidr, .. } => format!("transport {cidr}"),
        }
    }

    /// Make the change through `net` (which can undo it), routing into `dev`.
    pub fn apply(&self, net: &mut NetConfig, dev: &str) -> Result<(), NetCfgError> {
        match self {
            RouteItem::Tunnel { cidr, src } => net.route_add(cidr, dev, None, src.as_deref()),
            RouteItem::Transport { cidr, local } => {
                net.route_add(cidr, dev, Some(TRANSPORT_TABLE), Some(local))?;
                net.rule_add(cidr, BYPASS_MARK, TRANSPORT_TABLE, 1000)
            }
        }
    }
}

/// The routing an SA pair between `local` and `remote` protecting
/// `local_ts` <-> `remote_ts` needs: the remote selectors into the TUN in
/// tunnel mode (the first host selector on our side as their source), the
/// peer itself through palisade's table in transport mode.
pub fn route_items(
    tunnel: bool,
    local: IpAddr,
    remote: IpAddr,
    local_ts: &[(IpAddr, u8)],
    remote_ts: &[(IpAddr, u8)],
) -> Vec<RouteItem> {
    let host_len = |a: &IpAddr| if a.is_ipv4() { 32 } else { 128 };
    if tunnel {
        let src = local_ts
            .iter()
            .find(|(a, len)| *len == host_len(a))
            .map(|(a, _)| a.to_string());
        remote_ts
            .iter()
            .map(|(addr, len)| RouteItem::Tunnel {
                cidr: format!("{addr}/{len}"),
                src: src.clone(),
            })
            .collect()
    } else {
        vec![RouteItem::Transport {
            cidr: format!("{remote}/{}", host_len(&remote)),
            local: local.to_string(),
        }]
    }
}

/// Route what `spec` protects into the TUN `dev` ([`route_items`]).
pub fn route(net: &mut NetConfig, dev: &str, spec: &ManualSpec) -> Result<(), InstallError> {
    for item in route_items(
        spec.tunnel,
        spec.local,
        spec.remote,
        &spec.local_ts,
        &spec.remote_ts,
    ) {
        item.apply(net, dev)?;
    }
    Ok(())
}

/// Open the raw and UDP sockets that every spec needs (one per local address,
/// protocol and port), marked to bypass the TUN.
pub fn sockets(specs: &[ManualSpec]) -> Result<(Vec<RawEndpoint>, Vec<UdpEndpoint>), InstallError> {
    let (raw, udp) = socket_needs(specs);
    open_sockets(&raw, &udp)
}

/// Give the running worker the sockets `specs` need that it lacks (a reload
/// that adds an SA on a new local address or UDP port): they are opened in
/// the worker thread, next to the ones it has, and join its poll set.
/// A socket on the wildcard address of the family (as IKE opens them)
/// already covers every address for its protocol or port. Returns how many
/// sockets were opened.
pub fn add_sockets(
    handle: &crate::worker::Handle,
    specs: &[ManualSpec],
) -> Result<usize, InstallError> {
    let (raw_needs, udp_needs) = socket_needs(specs);
    handle.with_sockets(move |raw, udp| {
        let covers = |have: IpAddr, want: IpAddr| {
            have == want || (have.is_unspecified() && have.is_ipv6() == want.is_ipv6())
        };
        let raw_new: Vec<(IpAddr, u8)> = raw_needs
            .into_iter()
            .filter(|&(a, p)| {
                !raw.iter()
                    .any(|r| r.sock.protocol() == p && covers(r.local, a))
            })
            .collect();
        let udp_new: Vec<SocketAddr> = udp_needs
            .into_iter()
            .filter(|n| {
                !udp.iter()
                    .any(|u| u.local.port() == n.port() && covers(u.local.ip(), n.ip()))
            })
            .collect();
        let (r, u) = open_sockets(&raw_new, &udp_new)?;
        let n = r.len() + u.len();
        for e in &r {
            tracing::info!(
                "opened a raw socket for IP protocol {} on {}",
                e.sock.protocol(),
                e.local
            );
        }
        for e in &u {
            tracing::info!("opened an ESP-in-UDP socket on {}", e.local);
        }
        raw.extend(r);
        udp.extend(u);
        Ok(n)
    })?
}

/// Close the running worker's sockets that nothing needs any more (a reload
/// removed or moved the last SA on a local address or UDP port), the
/// counterpart of [`add_sockets`]. A socket stays when a need names exactly
/// its address and protocol (raw) or address and port (UDP): every socket
/// was opened for such a need, and a wildcard one stays only if it is still
/// named. The caller includes what else uses the sockets (IKE's port 4500 and
/// ESP sockets). Returns how many sockets were closed.
pub fn retain_sockets(
    handle: &crate::worker::Handle,
    raw_needs: Vec<(IpAddr, u8)>,
    udp_needs: Vec<SocketAddr>,
) -> Result<usize, crate::worker::WorkerGone> {
    handle.with_sockets(move |raw, udp| {
        let before = raw.len() + udp.len();
        raw.retain(|r| {
            let keep = raw_needs.contains(&(r.local, r.sock.protocol()));
            if !keep {
                tracing::info!(
                    "closed the raw socket for IP protocol {} on {}: no SA uses it any more",
                    r.sock.protocol(),
                    r.local
                );
            }
            keep
        });
        udp.retain(|u| {
            let keep = udp_needs.contains(&u.local);
            if !keep {
                tracing::info!(
                    "closed the ESP-in-UDP socket on {}: no SA uses it any more",
                    u.local
                );
            }
            keep
        });
        before - raw.len() - udp.len()
    })
}

/// The (local address, IP protocol) raw sockets and the UDP sockets `specs`
/// need, for [`open_sockets`].
pub fn socket_needs(specs: &[ManualSpec]) -> (Vec<(IpAddr, u8)>, Vec<SocketAddr>) {
    let mut raw = Vec::new();
    let mut udp = Vec::new();
    for spec in specs {
        let protos: &[u8] = match spec.wire {
            Wire::Esp => &[IPPROTO_ESP],
            Wire::EspUdp { .. } => &[],
            Wire::Ah => &[IPPROTO_AH],
            Wire::AhEsp => &[IPPROTO_AH, IPPROTO_ESP],
        };
        raw.extend(protos.iter().map(|&p| (spec.local, p)));
        if let Wire::EspUdp { local_port, .. } = spec.wire {
            udp.push(SocketAddr::new(spec.local, local_port));
        }
    }
    (raw, udp)
}

/// Open a raw socket per (local address, IP protocol) and a UDP socket per
/// local address and port, each once however often it is named, marked to
/// bypass the TUN. An unspecified address (0.0.0.0, ::) receives on every
/// local address of its family.
pub fn open_sockets(
    raw_needs: &[(IpAddr, u8)],
    udp_needs: &[SocketAddr],
) -> Result<(Vec<RawEndpoint>, Vec<UdpEndpoint>), InstallError> {
    let mut raw: Vec<RawEndpoint> = Vec::new();
    let mut udp: Vec<UdpEndpoint> = Vec::new();
    for &(local, proto) in raw_needs {
        if raw
            .iter()
            .any(|r| r.local == local && r.sock.protocol() == proto)
        {
            continue;
        }
        let what = || format!("IP protocol {proto} on {local}");
        let sock =
            RawSocket::open(local.is_ipv6(), proto, Some(BYPASS_MARK)).map_err(|source| {
                InstallError::Socket {
                    what: what(),
                    source,
                }
            })?;
        if !local.is_unspecified() {
            sock.bind(local).map_err(|source| InstallError::Socket {
                what: what(),
                source,
            })?;
        }
        grow_receive_buffer(std::os::fd::AsRawFd::as_raw_fd(&sock));
        raw.push(RawEndpoint { local, sock });
    }
    for &local in udp_needs {
        if udp.iter().any(|u| u.local == local) {
            continue;
        }
        let what = || format!("ESP-in-UDP on {local}");
        let sock = bind_udp(local).map_err(|source| InstallError::Socket {
            what: what(),
            source,
        })?;
        crate::sock::set_mark(std::os::fd::AsRawFd::as_raw_fd(&sock), BYPASS_MARK).map_err(
            |source| InstallError::Socket {
                what: what(),
                source,
            },
        )?;
        grow_receive_buffer(std::os::fd::AsRawFd::as_raw_fd(&sock));
        udp.push(UdpEndpoint { local, sock });
    }
    Ok((raw, udp))
}

/// A UDP socket on `local`; an IPv6 wildcard is IPv6-only so that an IPv4
/// wildcard socket on the same port can exist beside it.
pub fn bind_udp(local: SocketAddr) -> std::io::Result<UdpSocket> {
    if !(local.is_ipv6() && local.ip().is_unspecified()) {
        return UdpSocket::bind(local);
    }
    // SAFETY: socket(2) with constant arguments; checked below.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and owned by nothing else.
    let sock = unsafe { <UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: setting an int option on a socket we own.
    if unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    let addr = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: local.port().to_be(),
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
        sin6_scope_id: 0,
    };
    // SAFETY: binding our socket to a live sockaddr_in6 of the given size.
    if unsafe {
        libc::bind(
            fd,
            &addr as *const libc::sockaddr_in6 as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

/// A burst of tunnel traffic (a TCP window's worth of segments) must not
/// overflow the socket between two wake-ups of the worker: ask for 4 MiB
/// (SO_RCVBUFFORCE, which root may use beyond rmem_max; else SO_RCVBUF, which
/// the kernel caps at net.core.rmem_max).
fn grow_receive_buffer(fd: std::os::fd::RawFd) {
    let size: libc::c_int = 4 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setting an int option on a socket we own.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tunnel: bool, wire: Wire, encr: (u16, Option<u16>), integ: Option<u16>) -> ManualSpec {
        let keys = DirKeys {
            enc: Some(Secret::new(vec![7u8; if encr.0 == 20 { 36 } else { 32 }])),
            esp_auth: integ.map(|_| Secret::new(vec![9u8; 32])),
            ah_auth: None,
        };
        ManualSpec {
            name: "t".into(),
            tunnel,
            local: "192.0.2.1".parse().unwrap(),
            remote: "192.0.2.2".parse().unwrap(),
            wire,
            spi_in: 0x1001,
            spi_out: 0x1002,
            ah_spi_in: 0,
            ah_spi_out: 0,
            encr: Some(encr),
            esp_integ: integ,
            ah_integ: None,
            keys_in: keys.clone(),
            keys_out: keys,
            local_ts: if tunnel {
                vec![("10.1.0.0".parse().unwrap(), 24)]
            } else {
                vec![]
            },
            remote_ts: if tunnel {
                vec![("10.2.0.0".parse().unwrap(), 24)]
            } else {
                vec![]
            },
            esn: false,
            replay_window: 64,
            tfc_pad_to: 0,
            tfc_pad_to_mtu: false,
            allow_insecure: false,
            lifetime: Default::default(),
        }
    }

    /// The measured MTU matches RFC 4303/4106 arithmetic: outer IPv4 (20,
    /// tunnel only) + UDP (8, ESP-in-UDP) + SPI/seq (8) + IV + payload
    /// padded with its 2-byte trailer to the block (16 for CBC, and for GCM,
    /// which palisade pads to whole AES blocks) + ICV (16).
    #[test]
    fn max_inner_len_matches_the_esp_overhead() {
        const GCM: (u16, Option<u16>) = (20, Some(256));
        const CBC: (u16, Option<u16>) = (12, Some(256));
        let udp = Wire::EspUdp {
            local_port: 4500,
            remote_port: 4500,
        };
        // 20 + 8 + 8 + roundup16(L + 2) + 16 <= 1500  =>  L = 1438.
        assert_eq!(
            max_inner_len(&spec(true, Wire::Esp, GCM, None), 1500).unwrap(),
            Some(1438)
        );
        // 8 more for UDP: roundup16(L + 2) <= 1440  =>  L = 1438.
        assert_eq!(
            max_inner_len(&spec(true, udp, GCM, None), 1500).unwrap(),
            Some(1438)
        );
        // CBC: 20 + 8 + 16 + roundup16(L + 2) + 16 <= 1500  =>  L = 1438.
        assert_eq!(
            max_inner_len(&spec(true, Wire::Esp, CBC, Some(12)), 1500).unwrap(),
            Some(1438)
        );
        // Transport keeps the 20-byte header: 20 + 8 + 8 + roundup16(L - 18) + 16.
        assert_eq!(
            max_inner_len(&spec(false, Wire::Esp, GCM, None), 1500).unwrap(),
            Some(1458)
        );
        // TFC padding does not change the answer.
        let mut tfc = spec(true, Wire::Esp, GCM, None);
        tfc.tfc_pad_to = 1400;
        tfc.tfc_pad_to_mtu = true;
        assert_eq!(max_inner_len(&tfc, 1500).unwrap(), Some(1438));
        assert_eq!(
            max_inner_len(&spec(true, Wire::Esp, GCM, None), 60).unwrap(),
            None
        );
    }

    /// `tfc_pad_to_mtu` becomes padding to the plane's inner MTU, and is
    /// refused while the plane does not know it.
    #[test]
    fn tfc_padding_to_the_mtu_needs_and_uses_the_inner_mtu() {
        let mut s = spec(true, Wire::Esp, (20, Some(256)), None);
        s.tfc_pad_to_mtu = true;
        let mut plane = Plane::new();
        assert!(matches!(
            install(&mut plane, &s, 1),
            Err(InstallError::NoMtu(_))
        ));
        plane.inner_mtu = 1400;
        let done = install(&mut plane, &s, 1).unwrap();
        assert_eq!(done.sas.len(), 2);
    }

    fn packet(len: usize, df: bool) -> Vec<u8> {
        let mut p = vec![0u8; len];
        write_probe_header(
            &mut p,
            "10.1.0.1".parse().unwrap(),
            "10.2.0.1".parse().unwrap(),
        );
        if df {
            p[6] = 0x40;
            p[10..12].fill(0);
            let mut ip = palisade_wire::ipv4::Packet::new_unchecked(&mut p[..20]);
            ip.fill_checksum();
        }
        p
    }

    fn sum_ok(data: &[u8]) -> bool {
        let mut s: u32 = 0;
        for w in data.chunks(2) {
            s += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        s == 0xffff
    }

    /// RFC 4301 8.2: with a path MTU learned for the peer (1300), a DF
    /// packet that would exceed it once sealed is not sent; the sender gets
    /// an ICMP "fragmentation needed" from this gateway quoting its packet,
    /// with an MTU that fits: 1300 - 60 (this packet's overhead) - 15. A
    /// packet without DF, or small enough, is sealed and sent as before,
    /// and the learned MTU expires.
    #[test]
    fn too_big_df_packets_get_icmp_frag_needed() {
        use crate::plane::{OutVerdict, PATH_MTU_TTL};
        use palisade_sa::buf::PacketBuf;
        let s = spec(true, Wire::Esp, (20, Some(256)), None);
        let mut plane = Plane::new();
        install(&mut plane, &s, 1).unwrap();
        let out = |plane: &mut Plane, p: &[u8], now: u64| {
            let mut storage = vec![0u8; 4096];
            let mut buf = PacketBuf::with_packet(&mut storage, 128, p).unwrap();
            let v = plane.outbound(Timestamp(now), &mut buf);
            (v, buf.data().to_vec())
        };
        let (v, _) = out(&mut plane, &packet(1400, true), 1);
        assert!(matches!(v, OutVerdict::Send(_)), "{v:?}");
        plane.note_path_mtu(Timestamp(2), s.remote, 1300);
        let big = packet(1400, true);
        let (v, icmp) = out(&mut plane, &big, 3);
        assert_eq!(v, OutVerdict::TooBig { mtu: 1225 });
        assert_eq!(plane.too_big, 1);
        assert_eq!(icmp.len(), 20 + 8 + 28);
        assert_eq!(
            &icmp[12..16],
            &[10, 2, 0, 1],
            "from where the packet was going"
        );
        assert_eq!(&icmp[16..20], &[10, 1, 0, 1], "to the sender");
        assert_eq!(icmp[9], 1);
        assert!(sum_ok(&icmp[..20]), "IPv4 header checksum");
        assert_eq!((icmp[20], icmp[21]), (3, 4));
        assert_eq!(u16::from_be_bytes([icmp[26], icmp[27]]), 1225);
        assert!(sum_ok(&icmp[20..]), "ICMP checksum");
        assert_eq!(&icmp[28..], &big[..28], "quotes the header and 8 bytes");
        // 1225 bytes fit once sealed: 20 + 8 + 8 + roundup16(1227) + 16 = 1284.
        let (v, sealed) = out(&mut plane, &packet(1225, true), 4);
        assert!(
            matches!(v, OutVerdict::Send(_)) && sealed.len() <= 1300,
            "{v:?}"
        );
        // No DF: sent (the outer copies DF, so routers may fragment it).
        let (v, _) = out(&mut plane, &packet(1400, false), 5);
        assert!(matches!(v, OutVerdict::Send(_)), "{v:?}");
        // Expired.
        let later = 3 + PATH_MTU_TTL.as_nanos() as u64 + 1;
        let (v, _) = out(&mut plane, &big, later);
        assert!(matches!(v, OutVerdict::Send(_)), "{v:?}");
        assert_eq!(plane.path_mtu(Timestamp(later), s.remote), None);
    }
}
