//! The IP-level plumbing shared by ESP and AH: where the IPsec header goes
//! (transport mode), the outer header of tunnel mode (RFC 4301 5.1.2), ECN
//! (RFC 6040) and DF (RFC 4301 8.1), the UDP header of ESP-in-UDP (RFC 3948)
//! and the transport-mode checksum fix-up after a NAT, and a classifier that
//! finds the SPI of an inbound packet for the SAD lookup.

use core::net::IpAddr;

use palisade_wire::ip::{checksum, IpProtocol, Version};
use palisade_wire::{ipv4, ipv6, udp, udp_encap, Error};

use crate::sa::DfBit;
use crate::selector::SelectorKey;

/// ECN codepoints (RFC 3168 5).
pub mod ecn {
    pub const NOT_ECT: u8 = 0b00;
    pub const ECT1: u8 = 0b01;
    pub const ECT0: u8 = 0b10;
    pub const CE: u8 = 0b11;
}

fn malformed(field: &'static str, why: &'static str) -> Error {
    Error::Malformed { field, why }
}

/// Where the IPsec (or UDP) header sits in a received packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Located {
    pub version: Version,
    /// Index of the byte that names the protocol at `l4_off` (IPv4 protocol
    /// field, or the Next Header of the IPv6 header before it).
    pub nh_pos: usize,
    /// Start of the ESP/AH/UDP header.
    pub l4_off: usize,
    /// End of the IP packet (total length); bytes after it are ignored.
    pub end: usize,
    /// ECN and DSCP of the (outer) header.
    pub ecn: u8,
}

/// Finds the header of protocol `want` (ESP, AH or UDP) in a received packet.
/// IPv4 fragments are refused: "The receiver MUST perform reassembly before
/// IPsec processing" (RFC 4303 3.4.1). In IPv6 the extension-header chain is
/// walked to it.
pub(crate) fn locate(pkt: &[u8], want: IpProtocol) -> Result<Located, Error> {
    locate_any(pkt, &[want]).map(|(loc, _)| loc)
}

/// [`locate`] for the first (outermost) header of any protocol in `wants`,
/// and which one it is: one pass over the headers, one IPv4 checksum check.
pub(crate) fn locate_any(pkt: &[u8], wants: &[IpProtocol]) -> Result<(Located, IpProtocol), Error> {
    match Version::of(pkt)? {
        Version::V4 => {
            let p = ipv4::Packet::new_checked(pkt)?;
            if !p.verify_checksum() {
                return Err(Error::Invalid {
                    field: "IPv4 header checksum",
                    value: p.checksum().into(),
                });
            }
            if p.is_fragment() {
                return Err(malformed(
                    "IPv4 fragment",
                    "IPsec packets must be reassembled before processing (RFC 4303 3.4.1)",
                ));
            }
            let proto = p.protocol();
            if !wants.contains(&proto) {
                return Err(Error::Invalid {
                    field: "IPv4 protocol",
                    value: proto.0.into(),
                });
            }
            let loc = Located {
                version: Version::V4,
                nh_pos: ipv4::field::PROTOCOL,
                l4_off: p.header_len(),
                end: usize::from(p.total_len()),
                ecn: p.ecn(),
            };
            Ok((loc, proto))
        }
        Version::V6 => {
            let p = ipv6::Packet::new_checked(pkt)?;
            let end = ipv6::HEADER_LEN + usize::from(p.payload_len());
            let mut nh_pos = ipv6::field::NEXT_HEADER;
            let found = |nh_pos, l4_off| Located {
                version: Version::V6,
                nh_pos,
                l4_off,
                end,
                ecn: p.ecn(),
            };
            let mut it = p.ext_headers();
            for h in &mut it {
                let h = h?;
                if wants.contains(&h.kind) {
                    return Ok((found(nh_pos, h.offset), h.kind));
                }
                if h.kind == IpProtocol::IPV6_FRAGMENT {
                    return Err(malformed(
                        "IPv6 fragment",
                        "IPsec packets must be reassembled before processing (RFC 4303 3.4.1)",
                    ));
                }
                nh_pos = h.offset;
            }
            match it.upper_layer() {
                Some(u) if wants.contains(&u.protocol) => Ok((found(nh_pos, u.offset), u.protocol)),
                Some(u) => Err(Error::Invalid {
                    field: "IPv6 next header",
                    value: u.protocol.0.into(),
                }),
                None => Err(malformed("IPv6 extension headers", "chain did not end")),
            }
        }
    }
}

/// Where transport mode inserts ESP/AH into an outbound packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InsertPoint {
    pub version: Version,
    /// Offset the IPsec header goes to.
    pub at: usize,
    /// Byte holding the protocol of what follows `at`; becomes ESP/AH/UDP.
    pub nh_pos: usize,
    /// The protocol currently at `at` (the IPsec header's next header).
    pub next: IpProtocol,
    pub end: usize,
}

/// RFC 4303 3.1.1: "In the IPv4 context, ESP is placed after the IP header
/// and before the next layer protocol header" and "In the IPv6 context, ESP
/// is viewed as an end-to-end payload, and thus should appear after
/// hop-by-hop, routing, and fragmentation extension headers. Destination
/// options extension header(s) could appear before, after, or both before and
/// after the ESP header" -- here a Destination Options header stays in front
/// only when a Routing header follows it (it is then meant for the routers on
/// the way); one after the last Routing header is end-to-end and gets
/// protected. RFC 4302 3.1.1 places AH the same way.
pub(crate) fn insert_point(pkt: &[u8]) -> Result<InsertPoint, Error> {
    match Version::of(pkt)? {
        Version::V4 => {
            let p = ipv4::Packet::new_checked(pkt)?;
            if p.is_fragment() {
                return Err(malformed(
                    "IPv4 fragment",
                    "IPsec protects whole packets (fragment after, RFC 4301 7)",
                ));
            }
            Ok(InsertPoint {
                version: Version::V4,
                at: p.header_len(),
                nh_pos: ipv4::field::PROTOCOL,
                next: p.protocol(),
                end: usize::from(p.total_len()),
            })
        }
        Version::V6 => {
            let p = ipv6::Packet::new_checked(pkt)?;
            let end = ipv6::HEADER_LEN + usize::from(p.payload_len());
            let mut best = InsertPoint {
                version: Version::V6,
                at: ipv6::HEADER_LEN,
                nh_pos: ipv6::field::NEXT_HEADER,
                next: p.next_header(),
                end,
            };
            for h in p.ext_headers() {
                let h = h?;
                match h.kind {
                    IpProtocol::HOP_BY_HOP
                    | IpProtocol::IPV6_ROUTING
                    | IpProtocol::IPV6_FRAGMENT => {
                        best.at = h.offset + h.len;
                        best.nh_pos = h.offset;
                        best.next = h.next_header;
                    }
                    IpProtocol::IPV6_DEST_OPTS => {}
                    // Anything else (AH, Mobility...) ends the unprotectable part.
                    _ => break,
                }
            }
            Ok(best)
        }
    }
}

/// Rewrites the length fields after the packet changed to `total` bytes:
/// IPv4 total length and header checksum, or IPv6 payload length.
pub(crate) fn set_ip_len(pkt: &mut [u8], version: Version, total: usize) -> Result<(), Error> {
    match version {
        Version::V4 => {
            let tl = u16::try_from(total).map_err(|_| Error::Invalid {
                field: "IPv4 total length",
                value: total as u64,
            })?;
            let mut p = ipv4::Packet::new_unchecked(pkt);
            p.set_total_len(tl);
            p.fill_checksum();
        }
        Version::V6 => {
            let pl = total.saturating_sub(ipv6::HEADER_LEN);
            let pl = u16::try_from(pl).map_err(|_| Error::Invalid {
                field: "IPv6 payload length",
                value: pl as u64,
            })?;
            ipv6::Packet::new_unchecked(pkt).set_payload_len(pl);
        }
    }
    Ok(())
}

/// Writes `nh` into the protocol / next-header byte at `pos`, keeping the
/// IPv4 header checksum right.
pub(crate) fn set_next_header(pkt: &mut [u8], version: Version, pos: usize, nh: IpProtocol) {
    if let Some(b) = pkt.get_mut(pos) {
        *b = nh.0;
    }
    if version == Version::V4 {
        ipv4::Packet::new_unchecked(pkt).fill_checksum();
    }
}

/// What the outer header copies from the inner packet (RFC 4301 5.1.2.1).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Inner {
    pub version: Option<Version>,
    pub dscp: u8,
    pub ecn: u8,
    pub df: bool,
    pub flow_label: u32,
    pub total_len: usize,
}

/// Reads and checks the inner packet of tunnel mode.
#[inline]
pub(crate) fn inner_info(pkt: &[u8]) -> Result<Inner, Error> {
    match Version::of(pkt)? {
        Version::V4 => {
            let p = ipv4::Packet::new_checked(pkt)?;
            Ok(Inner {
                version: Some(Version::V4),
                dscp: p.dscp(),
                ecn: p.ecn(),
                df: p.dont_frag(),
                flow_label: 0,
                total_len: usize::from(p.total_len()),
            })
        }
        Version::V6 => {
            let p = ipv6::Packet::new_checked(pkt)?;
            Ok(Inner {
                version: Some(Version::V6),
                dscp: p.dscp(),
                ecn: p.ecn(),
                df: true,
                flow_label: p.flow_label(),
                total_len: ipv6::HEADER_LEN + usize::from(p.payload_len()),
            })
        }
    }
}

/// Length of the outer header for tunnel endpoints `dst`.
pub(crate) fn outer_len(dst: &IpAddr) -> usize {
    match dst {
        IpAddr::V4(_) => ipv4::MIN_HEADER_LEN,
        IpAddr::V6(_) => ipv6::HEADER_LEN,
    }
}

/// Parameters of one outer header.
pub(crate) struct Outer<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpProtocol,
    pub payload_len: usize,
    pub inner: &'a Inner,
    pub df: DfBit,
    pub ttl: u8,
    pub ident: u16,
}

/// Writes the tunnel-mode outer header into `hdr` (exactly [`outer_len`]
/// bytes). RFC 4301 5.1.2.1: DSCP is copied from the inner header; ECN per
/// RFC 6040 4.1 normal mode: "the encapsulator MUST copy the ECN field from
/// the inner header to the outer header"; DF per the SA (RFC 4301 8.1);
/// TTL/hop limit and addresses are constructed; the IPv6 flow label is copied
/// from an IPv6 inner packet (5.1.2.2 lets it be copied or configured) and 0
/// otherwise; no options or extension headers are added.
pub(crate) fn write_outer(hdr: &mut [u8], o: &Outer<'_>) -> Result<(), Error> {
    match (o.src, o.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let df = match o.df {
                DfBit::Copy => o.inner.df,
                DfBit::Set => true,
                DfBit::Clear => false,
            };
            let repr = ipv4::Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: o.protocol,
                payload_len: o.payload_len,
                ttl: o.ttl,
                dscp: o.inner.dscp,
                ecn: o.inner.ecn,
                ident: o.ident,
                dont_frag: df,
                more_frags: false,
                frag_offset: 0,
                options: &[],
            };
            repr.emit(&mut ipv4::Packet::new_unchecked(hdr))
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let repr = ipv6::Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: o.protocol,
                payload_len: o.payload_len,
                hop_limit: o.ttl,
                traffic_class: (o.inner.dscp << 2) | o.inner.ecn,
                flow_label: o.inner.flow_label,
            };
            repr.emit(&mut ipv6::Packet::new_unchecked(hdr))
        }
        _ => Err(malformed(
            "tunnel endpoints",
            "source and destination differ in IP version",
        )),
    }
}

/// RFC 6040 3.2 decapsulation table (rows inner, columns outer): the ECN to
/// put on the inner packet, or `None` = "drop" (Not-ECT inner, CE outer).
///
/// ```text
///             Not-ECT   ECT(0)   ECT(1)   CE
///   Not-ECT   Not-ECT   Not-ECT  Not-ECT  <drop>
///   ECT(0)    ECT(0)    ECT(0)   ECT(1)   CE
///   ECT(1)    ECT(1)    ECT(1)   ECT(1)   CE
///   CE        CE        CE       CE(!!!)  CE
/// ```
pub fn ecn_decapsulate(inner: u8, outer: u8) -> Option<u8> {
    match (inner & 3, outer & 3) {
        (ecn::NOT_ECT, ecn::CE) => None,
        (ecn::NOT_ECT, _) => Some(ecn::NOT_ECT),
        (_, ecn::CE) => Some(ecn::CE),
        (ecn::ECT0, ecn::ECT1) => Some(ecn::ECT1),
        (i, _) => Some(i),
    }
}

/// Sets the ECN field of the packet at the start of `pkt` (IPv4 checksum
/// updated incrementally, RFC 1624).
pub(crate) fn set_ecn(pkt: &mut [u8], new: u8) {
    match Version::of(pkt) {
        Ok(Version::V4) => {
            let mut p = ipv4::Packet::new_unchecked(pkt);
            let old_word = u16::from_be_bytes([0x40 | ((p.header_len() / 4) as u8 & 0xf), p.tos()]);
            p.set_ecn(new);
            let new_word = u16::from_be_bytes([0x40 | ((p.header_len() / 4) as u8 & 0xf), p.tos()]);
            let c = checksum::update_word(p.checksum(), old_word, new_word);
            p.set_checksum(c);
        }
        Ok(Version::V6) => {
            let mut p = ipv6::Packet::new_unchecked(pkt);
            let tc = (p.traffic_class() & !3) | (new & 3);
            p.set_traffic_class(tc);
        }
        Err(_) => {}
    }
}

/// Writes an ESP-in-UDP header: "the UDP checksum ... SHOULD be transmitted
/// as a zero value" for IPv4 (RFC 3948 2.1); over IPv6 a zero checksum is not
/// allowed (RFC 8200 8.1) so the caller fills it once the ESP bytes are final
/// ([`fill_udp_checksum`]).
pub(crate) fn write_udp(
    hdr: &mut [u8],
    src_port: u16,
    dst_port: u16,
    len: usize,
) -> Result<(), Error> {
    let l = u16::try_from(len).map_err(|_| Error::Invalid {
        field: "UDP length",
        value: len as u64,
    })?;
    let mut u = udp::Packet::new_unchecked(hdr);
    u.set_src_port(src_port);
    u.set_dst_port(dst_port);
    u.set_len(l);
    u.set_checksum(0);
    Ok(())
}

fn addrs(pkt: &[u8], version: Version) -> (IpAddr, IpAddr) {
    match version {
        Version::V4 => {
            let p = ipv4::Packet::new_unchecked(pkt);
            (IpAddr::V4(p.src_addr()), IpAddr::V4(p.dst_addr()))
        }
        Version::V6 => {
            let p = ipv6::Packet::new_unchecked(pkt);
            (IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()))
        }
    }
}

/// Computes the UDP checksum of the datagram at `l4_off` (IPv6 outer only).
pub(crate) fn fill_udp_checksum(pkt: &mut [u8], version: Version, l4_off: usize) {
    if version == Version::V6 {
        let (s, d) = addrs(pkt, version);
        if let Some(dg) = pkt.get_mut(l4_off..) {
            udp::Packet::new_unchecked(dg).fill_checksum(&s, &d);
        }
    }
}

/// Checks the UDP header of ESP-in-UDP: length consistent with the IP
/// packet, and over IPv6 a valid (non-zero) checksum. Over IPv4 the checksum
/// is not checked: "the receiver MUST NOT depend on the UDP checksum" being
/// there, and the ESP ICV covers everything it would (RFC 3948 3.1).
pub(crate) fn check_udp(pkt: &[u8], loc: &Located) -> Result<(), Error> {
    let dg = pkt
        .get(loc.l4_off..loc.end)
        .ok_or(malformed("UDP header", "beyond the IP packet"))?;
    let u = udp::Packet::new_checked(dg)?;
    if usize::from(u.len()) != dg.len() {
        return Err(malformed(
            "UDP length",
            "does not match the IP payload length",
        ));
    }
    if loc.version == Version::V6 {
        let (s, d) = addrs(pkt, loc.version);
        if !u.verify_checksum(&s, &d) {
            return Err(Error::Invalid {
                field: "UDP checksum",
                value: u.checksum().into(),
            });
        }
    }
    Ok(())
}

/// RFC 3948 3.1.2: after transport-mode decapsulation the TCP/UDP checksum
/// was computed by the peer over its own (pre-NAT) addresses. Of the options
/// the RFC gives, palisade takes "the receiver ... may recompute the
/// checksum" -- after the ICV verified the payload is authentic, so a fresh
/// checksum over the addresses in the packet we actually hold is as good as
/// the original and needs no NAT-OA payload. A UDP checksum of zero over IPv4
/// (none sent) stays zero. Other protocols carry no pseudo-header checksum.
pub fn fix_transport_checksum(pkt: &mut [u8]) -> Result<(), Error> {
    let (version, proto, off, end) = match Version::of(pkt)? {
        Version::V4 => {
            let p = ipv4::Packet::new_checked(&*pkt)?;
            if p.is_fragment() {
                return Ok(());
            }
            (
                Version::V4,
                p.protocol(),
                p.header_len(),
                usize::from(p.total_len()),
            )
        }
        Version::V6 => {
            let p = ipv6::Packet::new_checked(&*pkt)?;
            let u = p.upper_layer()?;
            if u.non_first_fragment {
                return Ok(());
            }
            (
                Version::V6,
                u.protocol,
                u.offset,
                ipv6::HEADER_LEN + usize::from(p.payload_len()),
            )
        }
    };
    let (src, dst) = addrs(pkt, version);
    let seg = pkt
        .get_mut(off..end)
        .ok_or(malformed("transport payload", "beyond the packet"))?;
    let pos = match proto {
        IpProtocol::TCP => 16,
        IpProtocol::UDP => {
            if version == Version::V4 && seg.get(6..8) == Some(&[0, 0]) {
                return Ok(());
            }
            6
        }
        _ => return Ok(()),
    };
    if seg.len() < pos + 2 {
        return Err(malformed("transport header", "too short for its checksum"));
    }
    seg[pos] = 0; // ok: seg.len() >= pos + 2
    seg[pos + 1] = 0;
    let ph = checksum::pseudo_header(&src, &dst, proto, seg.len() as u32);
    let mut c = !checksum::fold(checksum::add(ph, checksum::sum(seg)));
    if proto == IpProtocol::UDP && c == 0 {
        c = 0xffff;
    }
    seg[pos..pos + 2].copy_from_slice(&c.to_be_bytes()); // ok: checked above
    Ok(())
}

/// The selector key of an IP packet (RFC 4301 4.4.1.1): addresses, the
/// upper-layer protocol, and ports (TCP, UDP, SCTP, UDP-Lite, DCCP) or ICMP
/// type/code; `None` ports ("OPAQUE") when the packet is a non-initial
/// fragment or the protocol has no ports. Used by the inbound policy check
/// after `open`.
#[inline]
pub fn selector_key(pkt: &[u8]) -> Result<SelectorKey, Error> {
    let (src, dst, proto, off, end, fragment) = match Version::of(pkt)? {
        Version::V4 => {
            let p = ipv4::Packet::new_checked(pkt)?;
            let frag = p.frag_offset() != 0;
            (
                IpAddr::V4(p.src_addr()),
                IpAddr::V4(p.dst_addr()),
                p.protocol(),
                p.header_len(),
                usize::from(p.total_len()),
                frag,
            )
        }
        Version::V6 => {
            let p = ipv6::Packet::new_checked(pkt)?;
            let u = p.upper_layer()?;
            (
                IpAddr::V6(p.src_addr()),
                IpAddr::V6(p.dst_addr()),
                u.protocol,
                u.offset,
                ipv6::HEADER_LEN + usize::from(p.payload_len()),
                u.non_first_fragment,
            )
        }
    };
    let l4 = pkt.get(off..end).unwrap_or(&[]);
    if fragment {
        return Ok(SelectorKey::without_ports(src, dst, proto.0));
    }
    Ok(match proto.0 {
        6 | 17 | 33 | 132 | 136 => match l4.get(..4) {
            Some(&[a, b, c, d]) => SelectorKey::new(
                src,
                dst,
                proto.0,
                u16::from_be_bytes([a, b]),
                u16::from_be_bytes([c, d]),
            ),
            _ => {
                return Err(Error::Truncated {
                    field: "transport ports",
                    need: 4,
                    have: l4.len(),
                })
            }
        },
        1 | 58 => match l4.get(..2) {
            Some(&[t, c]) => SelectorKey::icmp(src, dst, proto.0, t, c),
            _ => {
                return Err(Error::Truncated {
                    field: "ICMP type and code",
                    need: 2,
                    have: l4.len(),
                })
            }
        },
        p => SelectorKey::without_ports(src, dst, p),
    })
}

/// What an inbound packet carries, for the SAD lookup before `open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    Esp {
        spi: u32,
    },
    Ah {
        spi: u32,
    },
    /// ESP in UDP (RFC 3948).
    UdpEsp {
        spi: u32,
    },
    /// NAT-keepalive (RFC 3948 2.3).
    Keepalive,
    /// IKE behind the non-ESP marker on port 4500.
    Ike,
}

/// Looks into a received IP packet for the SPI (and destination) the SAD
/// needs. `udp_encap` says whether UDP datagrams are to be treated as RFC
/// 3948 (i.e. the packet arrived on the ESP-in-UDP port).
pub fn classify(pkt: &[u8]) -> Result<(Inbound, IpAddr), Error> {
    let version = Version::of(pkt)?;
    let dst = match version {
        Version::V4 => IpAddr::V4(ipv4::Packet::new_checked(pkt)?.dst_addr()),
        Version::V6 => IpAddr::V6(ipv6::Packet::new_checked(pkt)?.dst_addr()),
    };
    let spi_at = |off: usize| -> Result<u32, Error> {
        match pkt.get(off..off + 4) {
            Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
            _ => Err(Error::Truncated {
                field: "SPI",
                need: off + 4,
                have: pkt.len(),
            }),
        }
    };
    // The outermost IPsec header is the one the SAD must see; in IPv6 the
    // walk meets it first.
    let (loc, proto) = match locate_any(pkt, &[IpProtocol::AH, IpProtocol::ESP, IpProtocol::UDP]) {
        Ok(found) => found,
        Err(Error::Invalid {
            field: "IPv4 protocol" | "IPv6 next header",
            ..
        }) => return Err(malformed("IP payload", "neither ESP, AH nor UDP")),
        Err(e) => return Err(e),
    };
    let kind = match proto {
        IpProtocol::ESP => Inbound::Esp {
            spi: spi_at(loc.l4_off)?,
        },
        IpProtocol::AH => Inbound::Ah {
            spi: spi_at(loc.l4_off + 4)?,
        },
        _ => {
            check_udp(pkt, &loc)?;
            let payload = pkt
                .get(loc.l4_off + udp::HEADER_LEN..loc.end)
                .unwrap_or(&[]);
            match udp_encap::Payload::classify(payload)? {
                udp_encap::Payload::Keepalive => Inbound::Keepalive,
                udp_encap::Payload::Ike(_) => Inbound::Ike,
                udp_encap::Payload::Esp(_) => Inbound::UdpEsp {
                    spi: spi_at(loc.l4_off + udp::HEADER_LEN)?,
                },
            }
        }
    };
    Ok((kind, dst))
}

/// The selector fields of a TCP or UDP packet over IPv4, whole or a first
/// fragment (so its ports are there), as one number: protocol, source,
/// destination, source and destination port. Read only from a packet that
/// [`selector_key`] reads the same way (version 4, a header of at least 20
/// bytes, a total length covering it and the ports and within the bytes
/// given); `None` for any other packet. Two packets with one flow number
/// have one selector key, so an answer about the key (the inbound selector
/// check) holds for every packet of the flow.
pub fn tcp_udp_v4_flow(p: &[u8]) -> Option<u128> {
    let word = |at: usize| {
        p.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let head = word(0)?;
    let (version, hl, total) = (
        head >> 28,
        ((head >> 24) & 0x0f) as usize * 4,
        (head & 0xffff) as usize,
    );
    let (frag, proto) = (word(4)? & 0x1fff, (word(8)? >> 16) as u8);
    if version != 4 || hl < 20 || total < hl + 4 || p.len() < total || frag != 0 {
        return None;
    }
    if proto != 6 && proto != 17 {
        return None;
    }
    Some(
        u128::from(proto) << 96
            | u128::from(word(12)?) << 64
            | u128::from(word(16)?) << 32
            | u128::from(word(hl)?),
    )
}

/// The flow number [`tcp_udp_v4_flow`] gives a packet with selector key
/// `k`: its definition in terms of the key, for checking the two against
/// each other. `None` unless TCP or UDP between IPv4 addresses with ports.
pub fn key_flow(k: &SelectorKey) -> Option<u128> {
    let (IpAddr::V4(src), IpAddr::V4(dst), Some(sp), Some(dp)) = (k.src, k.dst, k.sport, k.dport)
    else {
        return None;
    };
    if k.proto != 6 && k.proto != 17 {
        return None;
    }
    Some(
        u128::from(k.proto) << 96
            | u128::from(u32::from(src)) << 64
            | u128::from(u32::from(dst)) << 32
            | u128::from(sp) << 16
            | u128::from(dp),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flow number is read only where `selector_key` reads the packet
    /// too, and then holds exactly its fields: so two packets with one flow
    /// number have one selector key, and the cached answer is the answer.
    /// Every byte of the headers is varied through values around the
    /// boundaries (versions, IHL, lengths, fragment offsets, protocols).
    #[test]
    fn the_v4_flow_number_is_the_selector_key() {
        let mut base = vec![0u8; 60];
        base[..24].copy_from_slice(&[
            0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 1, 0, 1, 10, 2, 0, 1, 0x9c, 0x40, 0x14,
            0x51,
        ]);
        let values = [
            0u8, 1, 4, 5, 6, 17, 0x1f, 0x20, 0x3c, 0x40, 0x45, 0x46, 0x4f, 0x55, 0xff,
        ];
        let mut checked = 0;
        for at in 0..28 {
            for &v in &values {
                for len in [23usize, 24, 40, 59, 60] {
                    let mut p = base.clone();
                    p[at] = v;
                    p.truncate(len);
                    let Some(flow) = tcp_udp_v4_flow(&p) else {
                        continue;
                    };
                    let k = selector_key(&p).expect("read where selector_key reads");
                    assert_eq!(key_flow(&k), Some(flow), "byte {at} = {v:#x}, {len} bytes");
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "{checked}");
        // Not for ICMP, a later fragment, or IPv6.
        let mut icmp = base.clone();
        icmp[9] = 1;
        assert_eq!(tcp_udp_v4_flow(&icmp), None);
        let mut frag = base.clone();
        frag[7] = 1;
        assert_eq!(tcp_udp_v4_flow(&frag), None);
        let mut v6 = base.clone();
        v6[0] = 0x60;
        assert_eq!(tcp_udp_v4_flow(&v6), None);
    }

    #[test]
    fn rfc6040_table() {
        use ecn::*;
        assert_eq!(ecn_decapsulate(NOT_ECT, CE), None);
        assert_eq!(ecn_decapsulate(NOT_ECT, ECT0), Some(NOT_ECT));
        assert_eq!(ecn_decapsulate(ECT0, CE), Some(CE));
        assert_eq!(ecn_decapsulate(ECT1, CE), Some(CE));
        assert_eq!(ecn_decapsulate(ECT0, ECT1), Some(ECT1));
        assert_eq!(ecn_decapsulate(ECT1, ECT0), Some(ECT1));
        assert_eq!(ecn_decapsulate(CE, ECT1), Some(CE));
        assert_eq!(ecn_decapsulate(CE, NOT_ECT), Some(CE));
        assert_eq!(ecn_decapsulate(ECT0, NOT_ECT), Some(ECT0));
    }
}
