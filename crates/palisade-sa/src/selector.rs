//! Traffic selectors (RFC 4301 4.4.1.1) and the per-packet key matched against
//! them.
//!
//! A [`Selector`] names local and remote address ranges, the next-layer
//! protocol and local/remote port ranges. For ICMP and ICMPv6 the ports carry
//! the message type and code, as RFC 7296 3.13.1 encodes them: "the two
//! one-octet fields Type and Code are treated as a single 16-bit integer port
//! number, with Type in the most significant eight bits and Code in the least
//! significant eight bits" (RFC 4301 4.4.1.1 defines the same selector).
//!
//! A [`SelectorKey`] is what the caller extracts from the (inner) packet: source,
//! destination, protocol and ports. It is built by the caller so that this
//! module does not depend on packet parsing. `local`/`remote` are resolved from
//! `src`/`dst` by [`Direction`]: outbound, local = source; inbound, local =
//! destination.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::ops::RangeInclusive;
use core::str::FromStr;
use thiserror::Error;

/// IANA protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IANA protocol number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;

/// Which way a packet travels relative to this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Leaving: local address = source.
    Outbound,
    /// Arriving: local address = destination.
    Inbound,
}

/// A selector that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorError {
    /// Prefix longer than the address.
    #[error("prefix length /{len} is too long for {addr} (at most /{max})")]
    PrefixTooLong {
        /// The address given.
        addr: IpAddr,
        /// The prefix length given.
        len: u8,
        /// 32 or 128.
        max: u8,
    },
    /// Range ends of different families.
    #[error("address range {start}-{end} mixes IPv4 and IPv6")]
    MixedFamilies {
        /// Start.
        start: IpAddr,
        /// End.
        end: IpAddr,
    },
    /// Range start after end.
    #[error("range {start}-{end} is empty (start after end)")]
    EmptyRange {
        /// Start, as text.
        start: String,
        /// End, as text.
        end: String,
    },
    /// Text that is no address, prefix, range or `any`.
    #[error("cannot parse {0:?} as an address, prefix (a/n), range (a-b) or \"any\"")]
    Syntax(String),
}

/// An inclusive range of addresses of one family, or ANY (both families).
///
/// Addresses are kept as integers so matching is two comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrRange {
    /// Every address, IPv4 and IPv6.
    Any,
    /// `start..=end` of IPv4.
    V4 {
        /// First address.
        start: u32,
        /// Last address.
        end: u32,
    },
    /// `start..=end` of IPv6.
    V6 {
        /// First address.
        start: u128,
        /// Last address.
        end: u128,
    },
}

impl AddrRange {
    /// One address.
    pub fn host(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => {
                let v = u32::from(a);
                AddrRange::V4 { start: v, end: v }
            }
            IpAddr::V6(a) => {
                let v = u128::from(a);
                AddrRange::V6 { start: v, end: v }
            }
        }
    }

    /// `addr/len`; host bits of `addr` are ignored.
    pub fn prefix(addr: IpAddr, len: u8) -> Result<Self, SelectorError> {
        match addr {
            IpAddr::V4(a) => {
                if len > 32 {
                    return Err(SelectorError::PrefixTooLong { addr, len, max: 32 });
                }
                let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                let v = u32::from(a);
                Ok(AddrRange::V4 {
                    start: v & !host,
                    end: v | host,
                })
            }
            IpAddr::V6(a) => {
                if len > 128 {
                    return Err(SelectorError::PrefixTooLong {
                        addr,
                        len,
                        max: 128,
                    });
                }
                let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                let v = u128::from(a);
                Ok(AddrRange::V6 {
                    start: v & !host,
                    end: v | host,
                })
            }
        }
    }

    /// `start..=end`, both of one family.
    pub fn range(start: IpAddr, end: IpAddr) -> Result<Self, SelectorError> {
        let empty = || SelectorError::EmptyRange {
            start: start.to_string(),
            end: end.to_string(),
        };
        match (start, end) {
            (IpAddr::V4(s), IpAddr::V4(e)) => {
                let (s, e) = (u32::from(s), u32::from(e));
                if s > e {
                    return Err(empty());
                }
                Ok(AddrRange::V4 { start: s, end: e })
            }
            (IpAddr::V6(s), IpAddr::V6(e)) => {
                let (s, e) = (u128::from(s), u128::from(e));
                if s > e {
                    return Err(empty());
                }
                Ok(AddrRange::V6 { start: s, end: e })
            }
            _ => Err(SelectorError::MixedFamilies { start, end }),
        }
    }

    /// Whether `addr` is in the range.
    #[inline]
    pub fn contains(&self, addr: &IpAddr) -> bool {
        match (self, addr) {
            (AddrRange::Any, _) => true,
            (AddrRange::V4 { start, end }, IpAddr::V4(a)) => {
                let a = u32::from(*a);
                *start <= a && a <= *end
            }
            (AddrRange::V6 { start, end }, IpAddr::V6(a)) => {
                let a = u128::from(*a);
                *start <= a && a <= *end
            }
            _ => false,
        }
    }

    /// Whether every address of `other` is in `self`.
    pub fn covers(&self, other: &AddrRange) -> bool {
        match (self, other) {
            (AddrRange::Any, _) => true,
            (_, AddrRange::Any) => false,
            (AddrRange::V4 { start, end }, AddrRange::V4 { start: s, end: e }) => {
                start <= s && e <= end
            }
            (AddrRange::V6 { start, end }, AddrRange::V6 { start: s, end: e }) => {
                start <= s && e <= end
            }
            _ => false,
        }
    }

    /// The single address this range holds, if it is one host.
    pub fn as_host(&self) -> Option<IpAddr> {
        match *self {
            AddrRange::V4 { start, end } if start == end => Some(IpAddr::V4(Ipv4Addr::from(start))),
            AddrRange::V6 { start, end } if start == end => Some(IpAddr::V6(Ipv6Addr::from(start))),
            _ => None,
        }
    }
}

impl fmt::Display for AddrRange {
    /// `any`, a host, `a/n` when the range is a prefix, else `a-b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AddrRange::Any => f.write_str("any"),
            AddrRange::V4 { start, end } => {
                let (s, e) = (Ipv4Addr::from(start), Ipv4Addr::from(end));
                let host = start ^ end;
                if start == end {
                    write!(f, "{s}")
                } else if host & host.wrapping_add(1) == 0 && start & host == 0 {
                    write!(f, "{s}/{}", host.leading_zeros())
                } else {
                    write!(f, "{s}-{e}")
                }
            }
            AddrRange::V6 { start, end } => {
                let (s, e) = (Ipv6Addr::from(start), Ipv6Addr::from(end));
                let host = start ^ end;
                if start == end {
                    write!(f, "{s}")
                } else if host & host.wrapping_add(1) == 0 && start & host == 0 {
                    write!(f, "{s}/{}", host.leading_zeros())
                } else {
                    write!(f, "{s}-{e}")
                }
            }
        }
    }
}

impl FromStr for AddrRange {
    type Err = SelectorError;

    /// `any`, `192.0.2.1`, `10.0.0.0/8`, `2001:db8::/32`, `10.0.0.1-10.0.0.9`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let syntax = || SelectorError::Syntax(s.to_string());
        if s.eq_ignore_ascii_case("any") || s == "*" {
            return Ok(AddrRange::Any);
        }
        if let Some((a, len)) = s.split_once('/') {
            let addr: IpAddr = a.parse().map_err(|_| syntax())?;
            let len: u8 = len.parse().map_err(|_| syntax())?;
            return AddrRange::prefix(addr, len);
        }
        if let Some((a, b)) = s.split_once('-') {
            let a: IpAddr = a.trim().parse().map_err(|_| syntax())?;
            let b: IpAddr = b.trim().parse().map_err(|_| syntax())?;
            return AddrRange::range(a, b);
        }
        s.parse::<IpAddr>()
            .map(AddrRange::host)
            .map_err(|_| syntax())
    }
}

/// A port (or ICMP type/code) selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortRange {
    /// Any value, and also packets whose ports are not available.
    Any,
    /// `lo..=hi`.
    Range {
        /// First port.
        lo: u16,
        /// Last port.
        hi: u16,
    },
    /// Only packets whose ports are not available: RFC 4301 4.4.1.1, "OPAQUE"
    /// (a non-initial fragment, or a next layer this host cannot read).
    Opaque,
}

impl PortRange {
    /// One port.
    pub fn port(p: u16) -> Self {
        PortRange::Range { lo: p, hi: p }
    }

    /// `lo..=hi`; `None` if empty.
    pub fn range(lo: u16, hi: u16) -> Option<Self> {
        (lo <= hi).then_some(PortRange::Range { lo, hi })
    }

    /// ICMP/ICMPv6 type (ANY when `None`) and code range, in the 16-bit
    /// type<<8|code form of RFC 7296 3.13.1.
    pub fn icmp(icmp_type: Option<u8>, codes: RangeInclusive<u8>) -> Option<Self> {
        match icmp_type {
            None => Some(PortRange::Any),
            Some(t) => {
                let t = u16::from(t) << 8;
                PortRange::range(t | u16::from(*codes.start()), t | u16::from(*codes.end()))
            }
        }
    }

    /// Whether a packet's port (`None`: not available) matches.
    #[inline]
    pub fn contains(&self, port: Option<u16>) -> bool {
        match (self, port) {
            (PortRange::Any, _) => true,
            (PortRange::Range { lo, hi }, Some(p)) => *lo <= p && p <= *hi,
            (PortRange::Opaque, None) => true,
            _ => false,
        }
    }

    /// Whether every packet matching `other` matches `self`.
    pub fn covers(&self, other: &PortRange) -> bool {
        match (self, other) {
            (PortRange::Any, _) => true,
            (PortRange::Range { lo, hi }, PortRange::Range { lo: l, hi: h }) => lo <= l && h <= hi,
            (PortRange::Opaque, PortRange::Opaque) => true,
            _ => false,
        }
    }
}

/// One policy's traffic selector, written from this host's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Addresses on this side.
    pub local: AddrRange,
    /// Addresses on the peer's side.
    pub remote: AddrRange,
    /// Next-layer protocol; `None` is ANY.
    pub proto: Option<u8>,
    /// Local port (or ICMP type/code).
    pub local_port: PortRange,
    /// Remote port (or ICMP type/code).
    pub remote_port: PortRange,
}

impl Selector {
    /// Everything between `local` and `remote`, any protocol and port.
    pub fn between(local: AddrRange, remote: AddrRange) -> Self {
        Selector {
            local,
            remote,
            proto: None,
            local_port: PortRange::Any,
            remote_port: PortRange::Any,
        }
    }

    /// Whether the packet `key`, travelling `dir`, matches.
    #[inline]
    pub fn matches(&self, key: &SelectorKey, dir: Direction) -> bool {
        let o = key.oriented(dir);
        self.matches_oriented(&o)
    }

    #[inline]
    pub(crate) fn matches_oriented(&self, o: &Oriented) -> bool {
        self.proto.is_none_or(|p| p == o.proto)
            && self.remote.contains(&o.remote)
            && self.local.contains(&o.local)
            && self.remote_port.contains(o.remote_port)
            && self.local_port.contains(o.local_port)
    }

    /// Whether every packet matching `other` matches `self` (used to check that
    /// a peer's requested traffic selectors are within what it may ask for).
    pub fn covers(&self, other: &Selector) -> bool {
        let proto = match (self.proto, other.proto) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
        };
        proto
            && self.local.covers(&other.local)
            && self.remote.covers(&other.remote)
            && self.local_port.covers(&other.local_port)
            && self.remote_port.covers(&other.remote_port)
    }
}

/// The selector fields of one packet, as the caller read them from the (inner)
/// IP header and next-layer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SelectorKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Next-layer protocol (after extension headers for IPv6).
    pub proto: u8,
    /// Source port; ICMP type<<8|code; `None` when not available (OPAQUE).
    pub sport: Option<u16>,
    /// Destination port; ICMP type<<8|code; `None` when not available.
    pub dport: Option<u16>,
}

impl SelectorKey {
    /// A packet with ports (TCP, UDP, SCTP, ...).
    pub fn new(src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> Self {
        SelectorKey {
            src,
            dst,
            proto,
            sport: Some(sport),
            dport: Some(dport),
        }
    }

    /// An ICMP or ICMPv6 message: type and code stand in both port positions,
    /// so local and remote port selectors both constrain them.
    pub fn icmp(src: IpAddr, dst: IpAddr, proto: u8, icmp_type: u8, code: u8) -> Self {
        let tc = Some(u16::from(icmp_type) << 8 | u16::from(code));
        SelectorKey {
            src,
            dst,
            proto,
            sport: tc,
            dport: tc,
        }
    }

    /// A packet whose ports are unavailable (non-initial fragment, protocol
    /// without ports such as GRE or ESP): matches port selectors ANY and OPAQUE.
    pub fn without_ports(src: IpAddr, dst: IpAddr, proto: u8) -> Self {
        SelectorKey {
            src,
            dst,
            proto,
            sport: None,
            dport: None,
        }
    }

    /// Local/remote view of the packet for direction `dir`.
    #[inline]
    pub fn oriented(&self, dir: Direction) -> Oriented {
        match dir {
            Direction::Outbound => Oriented {
                local: self.src,
                remote: self.dst,
                proto: self.proto,
                local_port: self.sport,
                remote_port: self.dport,
            },
            Direction::Inbound => Oriented {
                local: self.dst,
                remote: self.src,
                proto: self.proto,
                local_port: self.dport,
                remote_port: self.sport,
            },
        }
    }
}

/// A [`SelectorKey`] seen from this host: local and remote instead of src/dst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Oriented {
    /// This host's side.
    pub local: IpAddr,
    /// The peer's side.
    pub remote: IpAddr,
    /// Next-layer protocol.
    pub proto: u8,
    /// Port on this side.
    pub local_port: Option<u16>,
    /// Port on the peer's side.
    pub remote_port: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_and_ranges() {
        let r: AddrRange = "10.1.0.0/16".parse().unwrap();
        assert!(r.contains(&ip("10.1.255.255")));
        assert!(!r.contains(&ip("10.2.0.0")));
        assert!(!r.contains(&ip("::1")));
        assert_eq!(r.to_string(), "10.1.0.0/16");
        let r: AddrRange = "10.1.2.3/0".parse().unwrap();
        assert_eq!(
            r,
            AddrRange::V4 {
                start: 0,
                end: u32::MAX
            }
        );
        let r: AddrRange = "2001:db8::/32".parse().unwrap();
        assert!(r.contains(&ip("2001:db8:ffff::1")));
        assert!(!r.contains(&ip("2001:db9::")));
        let r: AddrRange = "192.0.2.10-192.0.2.20".parse().unwrap();
        assert!(r.contains(&ip("192.0.2.15")) && !r.contains(&ip("192.0.2.21")));
        assert_eq!(r.to_string(), "192.0.2.10-192.0.2.20");
        assert_eq!("any".parse::<AddrRange>().unwrap(), AddrRange::Any);
        assert!(AddrRange::Any.contains(&ip("::")));
        assert_eq!(
            "::1".parse::<AddrRange>().unwrap().as_host(),
            Some(ip("::1"))
        );
        let e = "10.0.0.0/33".parse::<AddrRange>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "prefix length /33 is too long for 10.0.0.0 (at most /32)"
        );
        assert!(matches!(
            "10.0.0.9-10.0.0.1".parse::<AddrRange>(),
            Err(SelectorError::EmptyRange { .. })
        ));
        assert!(matches!(
            "10.0.0.1-::1".parse::<AddrRange>(),
            Err(SelectorError::MixedFamilies { .. })
        ));
        assert!(matches!(
            "nonsense".parse::<AddrRange>(),
            Err(SelectorError::Syntax(_))
        ));
    }

    #[test]
    fn ports_opaque_and_icmp() {
        assert!(PortRange::Any.contains(None));
        assert!(PortRange::Opaque.contains(None));
        assert!(!PortRange::Opaque.contains(Some(1)));
        assert!(!PortRange::port(80).contains(None));
        let echo = PortRange::icmp(Some(8), 0..=0).unwrap();
        let sel = Selector {
            proto: Some(PROTO_ICMP),
            local_port: echo,
            ..Selector::between(AddrRange::Any, AddrRange::Any)
        };
        let req = SelectorKey::icmp(ip("10.0.0.1"), ip("10.0.0.2"), PROTO_ICMP, 8, 0);
        let reply = SelectorKey::icmp(ip("10.0.0.1"), ip("10.0.0.2"), PROTO_ICMP, 0, 0);
        assert!(sel.matches(&req, Direction::Outbound));
        assert!(sel.matches(&req, Direction::Inbound));
        assert!(!sel.matches(&reply, Direction::Outbound));
    }

    #[test]
    fn direction_orients() {
        let sel = Selector {
            proto: Some(6),
            remote_port: PortRange::port(443),
            ..Selector::between(
                "10.1.0.0/16".parse().unwrap(),
                "10.2.0.0/16".parse().unwrap(),
            )
        };
        let out = SelectorKey::new(ip("10.1.0.5"), ip("10.2.0.9"), 6, 40000, 443);
        assert!(sel.matches(&out, Direction::Outbound));
        assert!(!sel.matches(&out, Direction::Inbound));
        let back = SelectorKey::new(ip("10.2.0.9"), ip("10.1.0.5"), 6, 443, 40000);
        assert!(sel.matches(&back, Direction::Inbound));
        assert!(!sel.matches(&SelectorKey { proto: 17, ..out }, Direction::Outbound));
    }

    #[test]
    fn covers() {
        let wide = Selector::between("10.0.0.0/8".parse().unwrap(), AddrRange::Any);
        let narrow = Selector {
            proto: Some(17),
            ..Selector::between("10.1.0.0/16".parse().unwrap(), "::/0".parse().unwrap())
        };
        assert!(wide.covers(&narrow));
        assert!(!narrow.covers(&wide));
        assert!(!Selector {
            proto: Some(6),
            ..wide
        }
        .covers(&narrow));
    }
}
