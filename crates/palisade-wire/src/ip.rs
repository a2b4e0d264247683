//! What IPv4 and IPv6 share: the version nibble, protocol numbers, addresses, and
//! the Internet checksum (RFC 1071) with its pseudo-headers and its incremental
//! update (RFC 1624).
//!
//! The SA layer needs the incremental update for RFC 3948 3.1.2 ("transport mode
//! decapsulation NAT procedure"): after a NAT rewrote the outer addresses, the
//! inner TCP/UDP checksum is fixed by the difference between the original and the
//! current addresses, without summing the payload again.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};
use crate::{ipv4, ipv6};

/// An IP protocol number ("Protocol" in IPv4, "Next Header" in IPv6), as
/// registered by IANA. A newtype and not an enum so that every byte value is
/// representable and round-trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// IPv6 Hop-by-Hop Options (RFC 8200 4.3).
    pub const HOP_BY_HOP: Self = Self(0);
    pub const ICMP: Self = Self(1);
    /// IPv4 encapsulated in IP: the inner packet of an IPv4 tunnel-mode SA.
    pub const IPV4: Self = Self(4);
    pub const TCP: Self = Self(6);
    pub const UDP: Self = Self(17);
    /// IPv6 encapsulated in IP: the inner packet of an IPv6 tunnel-mode SA.
    pub const IPV6: Self = Self(41);
    /// IPv6 Routing header (RFC 8200 4.4).
    pub const IPV6_ROUTING: Self = Self(43);
    /// IPv6 Fragment header (RFC 8200 4.5).
    pub const IPV6_FRAGMENT: Self = Self(44);
    /// Encapsulating Security Payload (RFC 4303).
    pub const ESP: Self = Self(50);
    /// Authentication Header (RFC 4302).
    pub const AH: Self = Self(51);
    pub const ICMPV6: Self = Self(58);
    /// IPv6 No Next Header (RFC 8200 4.7); in ESP, a dummy packet (RFC 4303 2.6).
    pub const NO_NEXT_HEADER: Self = Self(59);
    /// IPv6 Destination Options (RFC 8200 4.6).
    pub const IPV6_DEST_OPTS: Self = Self(60);
    /// Mobility header (RFC 6275), an extension header in the RFC 6564 format.
    pub const MOBILITY: Self = Self(135);
    /// Host Identity Protocol (RFC 7401), an extension header in the RFC 6564 format.
    pub const HIP: Self = Self(139);
    /// Shim6 (RFC 5533), an extension header in the RFC 6564 format.
    pub const SHIM6: Self = Self(140);
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        Self(v)
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        p.0
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::HOP_BY_HOP => "HOPOPT",
            Self::ICMP => "ICMP",
            Self::IPV4 => "IPv4",
            Self::TCP => "TCP",
            Self::UDP => "UDP",
            Self::IPV6 => "IPv6",
            Self::IPV6_ROUTING => "IPv6-Route",
            Self::IPV6_FRAGMENT => "IPv6-Frag",
            Self::ESP => "ESP",
            Self::AH => "AH",
            Self::ICMPV6 => "IPv6-ICMP",
            Self::NO_NEXT_HEADER => "IPv6-NoNxt",
            Self::IPV6_DEST_OPTS => "IPv6-Opts",
            _ => return write!(f, "protocol {}", self.0),
        };
        f.write_str(name)
    }
}

/// The IP version of a packet, from the first nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V4,
    V6,
}

impl Version {
    /// Reads the version nibble of the first byte. Errors name "IP version".
    pub fn of(packet: &[u8]) -> Result<Version> {
        let first = *packet.first().ok_or(Error::Truncated {
            field: "IP version",
            need: 1,
            have: 0,
        })?;
        match first >> 4 {
            4 => Ok(Version::V4),
            6 => Ok(Version::V6),
            v => Err(Error::Invalid {
                field: "IP version",
                value: v.into(),
            }),
        }
    }

    /// Alignment of the AH header for this version in bytes: RFC 4302 2.6 says
    /// the AH header must be "an integral multiple of 32 bits (IPv4) or 64 bits
    /// (IPv6) in length".
    pub const fn ah_alignment(self) -> usize {
        match self {
            Version::V4 => 4,
            Version::V6 => 8,
        }
    }

    /// The protocol number that carries a whole packet of this version inside
    /// another one (tunnel mode's Next Header).
    pub const fn encapsulation_protocol(self) -> IpProtocol {
        match self {
            Version::V4 => IpProtocol::IPV4,
            Version::V6 => IpProtocol::IPV6,
        }
    }
}

/// A checked view of an IPv4 or IPv6 packet, chosen by the version nibble.
#[derive(Debug, Clone)]
pub enum IpPacket<T: AsRef<[u8]>> {
    V4(ipv4::Packet<T>),
    V6(ipv6::Packet<T>),
}

impl<T: AsRef<[u8]>> IpPacket<T> {
    /// Reads the version nibble and builds the matching checked view.
    pub fn new_checked(buffer: T) -> Result<Self> {
        match Version::of(buffer.as_ref())? {
            Version::V4 => Ok(IpPacket::V4(ipv4::Packet::new_checked(buffer)?)),
            Version::V6 => Ok(IpPacket::V6(ipv6::Packet::new_checked(buffer)?)),
        }
    }

    pub fn version(&self) -> Version {
        match self {
            IpPacket::V4(_) => Version::V4,
            IpPacket::V6(_) => Version::V6,
        }
    }

    pub fn src_addr(&self) -> IpAddr {
        match self {
            IpPacket::V4(p) => IpAddr::V4(p.src_addr()),
            IpPacket::V6(p) => IpAddr::V6(p.src_addr()),
        }
    }

    pub fn dst_addr(&self) -> IpAddr {
        match self {
            IpPacket::V4(p) => IpAddr::V4(p.dst_addr()),
            IpPacket::V6(p) => IpAddr::V6(p.dst_addr()),
        }
    }

    /// The length the header says the packet has (IPv4 total length, IPv6 40 +
    /// payload length). It may be shorter than the buffer (link padding, ESP TFC
    /// padding after a tunnelled packet), never longer once checked.
    pub fn total_len(&self) -> usize {
        match self {
            IpPacket::V4(p) => p.total_len().into(),
            IpPacket::V6(p) => ipv6::HEADER_LEN + usize::from(p.payload_len()),
        }
    }

    pub fn into_inner(self) -> T {
        match self {
            IpPacket::V4(p) => p.into_inner(),
            IpPacket::V6(p) => p.into_inner(),
        }
    }
}

/// ECN codepoints (RFC 3168 5) and the tunnel rules of RFC 6040, which RFC
/// 4301 5.1.2.1 defers to for tunnel-mode ECN handling.
pub mod ecn {
    pub const NOT_ECT: u8 = 0b00;
    pub const ECT1: u8 = 0b01;
    pub const ECT0: u8 = 0b10;
    pub const CE: u8 = 0b11;

    /// Outer ECN for a tunnel-mode packet, RFC 6040 4.1 normal mode: "the
    /// ingress MUST copy the ECN field of the arriving header to the outer".
    pub const fn encapsulate(inner: u8) -> u8 {
        inner & 0b11
    }

    /// Inner ECN after decapsulation (RFC 6040 4.2, Figure 4), or `None` when
    /// the packet must be dropped (outer CE over a Not-ECT inner: the
    /// congestion mark cannot be passed on).
    pub const fn decapsulate(outer: u8, inner: u8) -> Option<u8> {
        let (outer, inner) = (outer & 0b11, inner & 0b11);
        match (inner, outer) {
            (NOT_ECT, CE) => None,
            (NOT_ECT, _) => Some(NOT_ECT),
            (_, CE) => Some(CE),
            (ECT0, ECT1) => Some(ECT1),
            (i, _) => Some(i),
        }
    }
}

/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
pub mod checksum {
    use super::*;

    /// One's-complement sum of `data` as big-endian 16-bit words (an odd last
    /// byte is padded with zero), folded to at most 17 bits.
    ///
    /// The bulk is summed eight bytes at a time in the machine's byte order,
    /// which gives the byte-swapped result on a little-endian machine (RFC 1071
    /// 2(B): the sum is byte-order independent), swapped back once at the end.
    /// A u64 of 32-bit halves cannot overflow below 16 GiB of input.
    pub fn sum(data: &[u8]) -> u32 {
        let mut chunks = data.chunks_exact(8);
        let mut wide: u64 = 0;
        for c in &mut chunks {
            let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]); // ok: chunks_exact(8)
            wide += (w & 0xffff_ffff) + (w >> 32);
        }
        while wide >> 16 != 0 {
            wide = (wide & 0xffff) + (wide >> 16);
        }
        // ok: the loop left at most 16 bits.
        let mut acc = u32::from(u16::from_be(wide as u16));
        let mut tail = chunks.remainder().chunks_exact(2);
        for w in &mut tail {
            acc = add(acc, u32::from(u16::from_be_bytes([w[0], w[1]]))); // ok: chunks_exact(2)
        }
        if let [last] = tail.remainder() {
            acc = add(acc, u32::from(u16::from_be_bytes([*last, 0])));
        }
        acc
    }

    /// Adds two partial sums with end-around carry, keeping the value below 2^17.
    pub fn add(a: u32, b: u32) -> u32 {
        let s = u64::from(a) + u64::from(b);
        let s = (s & 0xffff) + (s >> 16);
        let s = (s & 0xffff) + (s >> 16);
        // ok: two folds of a value < 2^33 leave at most 17 bits.
        s as u32
    }

    /// Folds a partial sum to 16 bits (not complemented).
    pub fn fold(sum: u32) -> u16 {
        let s = (sum & 0xffff) + (sum >> 16);
        let s = (s & 0xffff) + (s >> 16);
        // ok: two folds of a u32 leave at most 16 bits.
        s as u16
    }

    /// The checksum field value for `data`: the complement of the folded sum.
    pub fn data(data: &[u8]) -> u16 {
        !fold(sum(data))
    }

    /// Partial sum of the pseudo-header for an upper-layer checksum.
    ///
    /// IPv4 (RFC 768): source, destination, zero, protocol, UDP length.
    /// IPv6 (RFC 8200 8.1): source, destination, 32-bit upper-layer packet
    /// length, three zero bytes, next header. Mixed versions give the IPv4 form of
    /// the v4 address only when both are v4; otherwise v4 addresses are mapped.
    pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, protocol: IpProtocol, len: u32) -> u32 {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_v4(s, d, protocol, len),
            _ => pseudo_header_v6(&to_v6(src), &to_v6(dst), protocol, len),
        }
    }

    pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: IpProtocol, len: u32) -> u32 {
        let mut acc = add(sum(&src.octets()), sum(&dst.octets()));
        acc = add(acc, u32::from(protocol.0));
        // The v4 pseudo-header carries a 16-bit length; callers pass the UDP/TCP
        // length, which fits, but sum both halves so a larger value is not lost.
        add(acc, (len >> 16) + (len & 0xffff))
    }

    pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, protocol: IpProtocol, len: u32) -> u32 {
        let mut acc = add(sum(&src.octets()), sum(&dst.octets()));
        acc = add(acc, (len >> 16) + (len & 0xffff));
        add(acc, u32::from(protocol.0))
    }

    fn to_v6(a: &IpAddr) -> Ipv6Addr {
        match a {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => *v6,
        }
    }

    /// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`, the new checksum field after
    /// one 16-bit word of the covered data changed from `old` to `new`.
    ///
    /// Eqn. 3 (not eqn. 2) is used because it never produces 0x0000 from a
    /// non-zero input where a full recomputation would give 0xFFFF (RFC 1624 §3).
    pub fn update_word(checksum: u16, old: u16, new: u16) -> u16 {
        let acc = add(u32::from(!checksum), u32::from(!old));
        !fold(add(acc, u32::from(new)))
    }

    /// RFC 1624 update for a run of bytes that changed from `old` to `new`
    /// (e.g. an address rewritten by a NAT). Both slices must have the same
    /// length and start on an even offset of the covered data.
    pub fn update(checksum: u16, old: &[u8], new: &[u8]) -> Result<u16> {
        if old.len() != new.len() {
            return Err(Error::Malformed {
                field: "checksum update",
                why: "old and new data differ in length",
            });
        }
        // ~HC + sum(~m) + sum(m'); the complement of a sum equals the sum of the
        // complemented words in one's-complement arithmetic.
        let acc = add(u32::from(!checksum), u32::from(!fold(sum(old))));
        Ok(!fold(add(acc, sum(new))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 1.4 ("Numerical Examples"): bytes 00 01 f2 03 f4 f5 f6 f7
    /// sum to ddf2 after folding.
    #[test]
    fn checksum_rfc1071_example() {
        let b = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum::fold(checksum::sum(&b)), 0xddf2);
        // The same bytes split at every odd and even point, and misaligned.
        let mut v = vec![0u8; 3];
        v.extend_from_slice(&b);
        assert_eq!(checksum::fold(checksum::sum(&v[3..])), 0xddf2);
    }

    proptest::proptest! {
        /// The eight-bytes-at-a-time sum equals the plain RFC 1071 loop over
        /// big-endian 16-bit words, for every length and alignment.
        #[test]
        fn checksum_sum_matches_the_plain_loop(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
                                              skip in 0usize..8) {
            let d = &data[skip.min(data.len())..];
            let mut plain: u64 = 0;
            for (i, b) in d.iter().enumerate() {
                plain += if i % 2 == 0 { u64::from(*b) << 8 } else { u64::from(*b) };
            }
            while plain >> 16 != 0 {
                plain = (plain & 0xffff) + (plain >> 16);
            }
            // 0 and ffff are the same number in one's complement.
            let got = checksum::fold(checksum::sum(d));
            proptest::prop_assert!(u64::from(got) == plain || (got == 0xffff && plain == 0) || (got == 0 && plain == 0xffff),
                "got {:04x} want {:04x}", got, plain);
        }
    }

    #[test]
    fn version_nibble() {
        assert_eq!(Version::of(&[0x45]), Ok(Version::V4));
        assert_eq!(Version::of(&[0x60]), Ok(Version::V6));
        assert_eq!(
            Version::of(&[0x50]),
            Err(Error::Invalid {
                field: "IP version",
                value: 5
            })
        );
        assert!(matches!(Version::of(&[]), Err(Error::Truncated { .. })));
    }

    #[test]
    fn rfc6040_decapsulation_table() {
        use ecn::*;
        // Rows: inner; columns: outer Not-ECT, ECT(0), ECT(1), CE.
        let table = [
            (NOT_ECT, [Some(NOT_ECT), Some(NOT_ECT), Some(NOT_ECT), None]),
            (ECT0, [Some(ECT0), Some(ECT0), Some(ECT1), Some(CE)]),
            (ECT1, [Some(ECT1), Some(ECT1), Some(ECT1), Some(CE)]),
            (CE, [Some(CE), Some(CE), Some(CE), Some(CE)]),
        ];
        for (inner, row) in table {
            for (outer, want) in [NOT_ECT, ECT0, ECT1, CE].into_iter().zip(row) {
                assert_eq!(
                    decapsulate(outer, inner),
                    want,
                    "inner {inner} outer {outer}"
                );
            }
        }
        assert_eq!(encapsulate(CE), CE);
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 4.1 numerical example: sum of 0001 f203 f4f5 f6f7 is ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum::fold(checksum::sum(&d)), 0xddf2);
        assert_eq!(checksum::data(&d), !0xddf2);
    }

    #[test]
    fn incremental_matches_full() {
        let mut d = [0x12u8, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x02];
        let c = checksum::data(&d);
        let old = [d[2], d[3], d[4], d[5]];
        d[2..6].copy_from_slice(&[0xc0, 0xa8, 0x00, 0x01]);
        let c2 = checksum::update(c, &old, &d[2..6]).unwrap();
        assert_eq!(c2, checksum::data(&d));
        let c3 = checksum::update_word(c, 0x1234, 0xffff);
        d[0] = 0xff;
        d[1] = 0xff;
        d[2..6].copy_from_slice(&old);
        assert_eq!(c3, checksum::data(&d));
    }
}
