//! IPv6 (RFC 8200): the fixed header view and `Repr`, the extension-header
//! walker, option TLVs, and the routing-header prediction AH needs.
//!
//! ```text
//! |Version| Traffic Class |           Flow Label                  |
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! |                   Source Address (16)                         |
//! |                 Destination Address (16)                      |
//! ```
//!
//! Jumbograms (RFC 2675, payload length 0 with a Jumbo Payload option) are not
//! supported: a zero payload length means an empty payload.

use core::net::Ipv6Addr;

use crate::error::{Error, Result};
use crate::ip::IpProtocol;

/// Byte offsets of the fixed header's fields.
pub mod field {
    use core::ops::Range;
    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

pub const HEADER_LEN: usize = 40;

/// A view of an IPv6 packet in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    match b.get(r) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

fn addr(b: &[u8], r: core::ops::Range<usize>) -> Ipv6Addr {
    match b.get(r).and_then(|s| <[u8; 16]>::try_from(s).ok()) {
        Some(a) => Ipv6Addr::from(a),
        None => Ipv6Addr::UNSPECIFIED,
    }
}

fn byte(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it (accessors read zeroes past the end).
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Version 6, a full fixed header, and the payload length within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated {
                field: "IPv6 header",
                need: HEADER_LEN,
                have: b.len(),
            });
        }
        if self.version() != 6 {
            return Err(Error::Invalid {
                field: "IPv6 version",
                value: self.version().into(),
            });
        }
        let need = HEADER_LEN + usize::from(self.payload_len());
        if b.len() < need {
            return Err(Error::Truncated {
                field: "IPv6 payload length",
                need,
                have: b.len(),
            });
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn word0(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW)
    }

    pub fn version(&self) -> u8 {
        (self.word0() >> 28) as u8 // ok: 4 bits
    }

    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8 // ok: truncation keeps the 8 TC bits
    }

    /// DSCP, the top 6 bits of the traffic class (RFC 2474).
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// ECN, the low 2 bits of the traffic class (RFC 3168).
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000f_ffff
    }

    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(byte(self.buffer.as_ref(), field::NEXT_HEADER))
    }

    pub fn hop_limit(&self) -> u8 {
        byte(self.buffer.as_ref(), field::HOP_LIMIT)
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        addr(self.buffer.as_ref(), field::SRC_ADDR)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// Everything after the fixed header, up to payload length.
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// The packet as the header describes it (fixed header + payload length).
    pub fn packet_bytes(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buffer.as_ref().get(..end).unwrap_or(&[])
    }

    /// Walks the extension headers; offsets are from the start of the packet.
    pub fn ext_headers(&self) -> ExtHeaderIter<'_> {
        ExtHeaderIter::new(self.packet_bytes(), self.next_header())
    }

    /// Where a transport-mode ESP or AH header goes: "the ESP header should
    /// appear after hop-by-hop, routing, and fragmentation extension headers.
    /// Destination options extension header(s) could appear before, after, or
    /// both before and after the ESP header" (RFC 4303 3.1.1; RFC 4302 3.1.1
    /// says the same for AH). A Destination Options header is kept before the
    /// IPsec header when a Routing header follows it (it is then for the
    /// intermediate destinations, RFC 8200 4.1).
    pub fn ipsec_insertion_point(&self) -> Result<InsertionPoint> {
        let mut point = InsertionPoint {
            offset: HEADER_LEN,
            next_header: self.next_header(),
            next_header_field: field::NEXT_HEADER,
        };
        for h in self.ext_headers() {
            let h = h?;
            let before = match h.kind {
                IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_ROUTING | IpProtocol::IPV6_FRAGMENT => {
                    true
                }
                IpProtocol::IPV6_DEST_OPTS => h.next_header == IpProtocol::IPV6_ROUTING,
                _ => false,
            };
            if !before {
                break;
            }
            point = InsertionPoint {
                offset: h.offset + h.len,
                next_header: h.next_header,
                next_header_field: h.offset,
            };
        }
        Ok(point)
    }

    /// Walks to the upper-layer header (or ESP, or No Next Header).
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        let mut it = self.ext_headers();
        for h in &mut it {
            h?;
        }
        it.upper_layer().ok_or(Error::Malformed {
            field: "IPv6 extension headers",
            why: "walk ended without an upper layer",
        })
    }
}

fn set_byte(b: &mut [u8], i: usize, v: u8) {
    if let Some(s) = b.get_mut(i) {
        *s = v;
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_word0(&mut self, w: u32) {
        if let Some(s) = self.buffer.as_mut().get_mut(field::VER_TC_FLOW) {
            s.copy_from_slice(&w.to_be_bytes());
        }
    }

    pub fn set_version(&mut self) {
        let w = (self.word0() & 0x0fff_ffff) | (6 << 28);
        self.set_word0(w);
    }

    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = (self.word0() & 0xf00f_ffff) | (u32::from(tc) << 20);
        self.set_word0(w);
    }

    /// Sets the flow label (only the low 20 bits are kept).
    pub fn set_flow_label(&mut self, label: u32) {
        let w = (self.word0() & 0xfff0_0000) | (label & 0x000f_ffff);
        self.set_word0(w);
    }

    pub fn set_payload_len(&mut self, len: u16) {
        if let Some(s) = self.buffer.as_mut().get_mut(field::LENGTH) {
            s.copy_from_slice(&len.to_be_bytes());
        }
    }

    pub fn set_next_header(&mut self, p: IpProtocol) {
        set_byte(self.buffer.as_mut(), field::NEXT_HEADER, p.0);
    }

    pub fn set_hop_limit(&mut self, h: u8) {
        set_byte(self.buffer.as_mut(), field::HOP_LIMIT, h);
    }

    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        if let Some(s) = self.buffer.as_mut().get_mut(field::SRC_ADDR) {
            s.copy_from_slice(&a.octets());
        }
    }

    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        if let Some(s) = self.buffer.as_mut().get_mut(field::DST_ADDR) {
            s.copy_from_slice(&a.octets());
        }
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }

    /// Zeroes the base-header fields RFC 4302 3.3.3.1.2.1 calls mutable: "Class
    /// ... Flow Label ... Hop Limit". (Version, payload length, next header and
    /// source are immutable; the destination is "mutable but predictable", see
    /// [`prepare_for_ah_icv`].)
    pub fn zero_mutable_fields(&mut self) {
        let w = self.word0() & 0xf000_0000;
        self.set_word0(w);
        self.set_hop_limit(0);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: IpProtocol,
    /// Bytes after the fixed header (extension headers included).
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20 bits.
    pub flow_label: u32,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len().into(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.payload_len)
    }

    /// Writes the fixed header; the payload is untouched.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let len = u16::try_from(self.payload_len).map_err(|_| Error::Invalid {
            field: "IPv6 payload length",
            value: self.payload_len as u64,
        })?;
        if self.flow_label > 0x000f_ffff {
            return Err(Error::Invalid {
                field: "IPv6 flow label",
                value: self.flow_label.into(),
            });
        }
        let have = packet.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::BufferTooSmall {
                field: "IPv6 header",
                need: HEADER_LEN,
                have,
            });
        }
        packet.set_word0(6 << 28);
        packet.set_traffic_class(self.traffic_class);
        packet.set_flow_label(self.flow_label);
        packet.set_payload_len(len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Extension headers
// ---------------------------------------------------------------------------

/// One extension header found by the walker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtHeader {
    /// The header's type (the previous header's Next Header value).
    pub kind: IpProtocol,
    /// Offset from the start of the IPv6 packet.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
    /// This header's Next Header field.
    pub next_header: IpProtocol,
}

/// Where the extension-header chain ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The protocol of what follows: TCP, UDP, ICMPv6..., or ESP (whose
    /// encrypted payload cannot be walked), or No Next Header (59).
    pub protocol: IpProtocol,
    /// Offset from the start of the IPv6 packet.
    pub offset: usize,
    /// True if a Fragment header with a non-zero offset came before: the bytes
    /// at `offset` are the middle of the original packet, not a header.
    pub non_first_fragment: bool,
}

/// Where to insert a transport-mode ESP/AH header in an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertionPoint {
    /// Offset (from the start of the packet) where the IPsec header goes.
    pub offset: usize,
    /// The protocol now at `offset`: the IPsec header's Next Header.
    pub next_header: IpProtocol,
    /// Offset of the Next Header byte to set to 50 (ESP) or 51 (AH): byte 6 of
    /// the fixed header, or byte 0 of the last extension header kept before.
    pub next_header_field: usize,
}

/// True for the extension headers this walker understands and skips:
/// Hop-by-Hop (0), Routing (43), Fragment (44), AH (51), Destination Options
/// (60), and Mobility/HIP/Shim6 which use the RFC 6564 uniform format.
pub fn is_extension_header(p: IpProtocol) -> bool {
    matches!(
        p,
        IpProtocol::HOP_BY_HOP
            | IpProtocol::IPV6_ROUTING
            | IpProtocol::IPV6_FRAGMENT
            | IpProtocol::AH
            | IpProtocol::IPV6_DEST_OPTS
            | IpProtocol::MOBILITY
            | IpProtocol::HIP
            | IpProtocol::SHIM6
    )
}

/// One step of the walk: the header of type `kind` at `offset` in `data`.
fn step(
    data: &[u8],
    kind: IpProtocol,
    offset: usize,
) -> Result<core::result::Result<ExtHeader, UpperLayer>> {
    if !is_extension_header(kind) {
        // ESP (50) terminates the walk: what follows is encrypted. So do No Next
        // Header (59) and every upper-layer protocol.
        return Ok(Err(UpperLayer {
            protocol: kind,
            offset,
            non_first_fragment: false,
        }));
    }
    if kind == IpProtocol::HOP_BY_HOP && offset != HEADER_LEN {
        // RFC 8200 4.3: "The Hop-by-Hop Options header, when present, must
        // immediately follow the IPv6 header."
        return Err(Error::Malformed {
            field: "IPv6 Hop-by-Hop Options header",
            why: "not immediately after the IPv6 header",
        });
    }
    let (n0, n1) = match (data.get(offset), data.get(offset + 1)) {
        (Some(&a), Some(&b)) => (a, b),
        _ => {
            return Err(Error::Truncated {
                field: ext_name(kind),
                need: offset + 2,
                have: data.len(),
            })
        }
    };
    let len = match kind {
        // RFC 8200 4.5: the Fragment header is 8 bytes; its second byte is
        // reserved, not a length.
        IpProtocol::IPV6_FRAGMENT => 8,
        // RFC 4302 2.2: "This 8-bit field specifies the length of AH in 32-bit
        // words (4-byte units), minus 2."
        IpProtocol::AH => (usize::from(n1) + 2) * 4,
        // "Length of the ... header in 8-octet units, not including the first 8
        // octets."
        _ => (usize::from(n1) + 1) * 8,
    };
    if offset + len > data.len() {
        return Err(Error::Truncated {
            field: ext_name(kind),
            need: offset + len,
            have: data.len(),
        });
    }
    Ok(Ok(ExtHeader {
        kind,
        offset,
        len,
        next_header: IpProtocol(n0),
    }))
}

fn ext_name(kind: IpProtocol) -> &'static str {
    match kind {
        IpProtocol::HOP_BY_HOP => "IPv6 Hop-by-Hop Options header",
        IpProtocol::IPV6_ROUTING => "IPv6 Routing header",
        IpProtocol::IPV6_FRAGMENT => "IPv6 Fragment header",
        IpProtocol::AH => "IPv6 AH header",
        IpProtocol::IPV6_DEST_OPTS => "IPv6 Destination Options header",
        _ => "IPv6 extension header",
    }
}

/// Fragment offset (in bytes) of a Fragment header at `offset`.
fn fragment_offset(data: &[u8], offset: usize) -> u16 {
    be16(data, offset + 2) & 0xfff8
}

/// Iterator over the extension headers of a packet. Yields each header, or one
/// error and then stops. After it returns `None` without an error,
/// [`upper_layer`](Self::upper_layer) says where the chain ended.
#[derive(Debug, Clone)]
pub struct ExtHeaderIter<'a> {
    data: &'a [u8],
    next: IpProtocol,
    offset: usize,
    end: Option<UpperLayer>,
    failed: bool,
}

impl<'a> ExtHeaderIter<'a> {
    /// `data` is the whole IPv6 packet (fixed header included, trimmed to the
    /// payload length); `first` is the fixed header's Next Header.
    pub fn new(data: &'a [u8], first: IpProtocol) -> Self {
        ExtHeaderIter {
            data,
            next: first,
            offset: HEADER_LEN,
            end: None,
            failed: false,
        }
    }

    /// Where the chain ended, once the iterator is exhausted without error.
    pub fn upper_layer(&self) -> Option<UpperLayer> {
        self.end
    }
}

impl<'a> Iterator for ExtHeaderIter<'a> {
    type Item = Result<ExtHeader>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.end.is_some() {
            return None;
        }
        match step(self.data, self.next, self.offset) {
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
            Ok(Err(upper)) => {
                self.end = Some(upper);
                None
            }
            Ok(Ok(h)) => {
                self.next = h.next_header;
                self.offset = h.offset + h.len;
                if h.kind == IpProtocol::IPV6_FRAGMENT && fragment_offset(self.data, h.offset) != 0
                {
                    // RFC 8200 4.5: in a non-first fragment the bytes after the
                    // Fragment header are a piece of the fragmentable part.
                    self.end = Some(UpperLayer {
                        protocol: h.next_header,
                        offset: self.offset,
                        non_first_fragment: true,
                    });
                }
                Some(Ok(h))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Options (Hop-by-Hop and Destination Options)
// ---------------------------------------------------------------------------

/// Option types with fixed meaning for the walker.
pub mod option {
    /// "The Pad1 option is used to insert one octet of padding ... [it] has no
    /// length and value fields." (RFC 8200 4.2)
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
}

/// "The third-highest-order bit of the Option Type specifies whether or not the
/// Option Data of that option can change en route to the packet's final
/// destination." (RFC 8200 4.2) AH treats such data as zero.
pub const fn option_may_change(kind: u8) -> bool {
    kind & 0x20 != 0
}

/// The two highest-order bits of the option type: what a node that does not
/// recognize the option must do (RFC 8200 4.2): 0 skip, 1 discard, 2 discard
/// and send ICMP, 3 discard and send ICMP unless multicast.
pub const fn option_unrecognized_action(kind: u8) -> u8 {
    kind >> 6
}

/// One option in an options area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionTlv {
    pub kind: u8,
    /// Offset of the type byte within the options area.
    pub offset: usize,
    /// Length of the whole option (1 for Pad1, else 2 + Opt Data Len).
    pub len: usize,
}

impl OptionTlv {
    /// The range of the option data within the options area.
    pub fn data_range(&self) -> core::ops::Range<usize> {
        if self.kind == option::PAD1 {
            self.offset + 1..self.offset + 1
        } else {
            self.offset + 2..self.offset + self.len
        }
    }
}

/// Iterates over the TLV options of a Hop-by-Hop or Destination Options header.
/// `area` is the header without its first two bytes (Next Header, Hdr Ext Len).
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    area: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> OptionIter<'a> {
    pub fn new(area: &'a [u8]) -> Self {
        OptionIter {
            area,
            pos: 0,
            failed: false,
        }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<OptionTlv>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let kind = *self.area.get(self.pos)?;
        let offset = self.pos;
        if kind == option::PAD1 {
            self.pos += 1;
            return Some(Ok(OptionTlv {
                kind,
                offset,
                len: 1,
            }));
        }
        let Some(&data_len) = self.area.get(offset + 1) else {
            self.failed = true;
            return Some(Err(Error::Truncated {
                field: "IPv6 option length",
                need: offset + 2,
                have: self.area.len(),
            }));
        };
        let len = 2 + usize::from(data_len);
        if offset + len > self.area.len() {
            self.failed = true;
            return Some(Err(Error::Truncated {
                field: "IPv6 option data",
                need: offset + len,
                have: self.area.len(),
            }));
        }
        self.pos = offset + len;
        Some(Ok(OptionTlv { kind, offset, len }))
    }
}

/// Zeroes the data of every option whose "may change" bit is set, keeping type
/// and length: "For any option for which contents may change en-route, the
/// entire "Option Data" field must be treated as zero-valued octets when
/// computing or verifying the ICV. The Option Type and Opt Data Len are included
/// in the ICV calculation." (RFC 4302 3.3.3.1.2.1)
pub fn zero_mutable_option_data(area: &mut [u8]) -> Result<()> {
    let mut pos = 0;
    while pos < area.len() {
        let opt = match OptionIter::new(area.get(pos..).unwrap_or(&[])).next() {
            Some(r) => r?,
            None => break,
        };
        let r = opt.data_range();
        if option_may_change(opt.kind) {
            if let Some(s) = area.get_mut(pos + r.start..pos + r.end) {
                s.fill(0);
            }
        }
        pos += opt.len;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Routing header
// ---------------------------------------------------------------------------

/// Routing types this module can predict.
pub mod routing_type {
    /// Deprecated by RFC 5095 but still described by RFC 4302 App. A.2.
    pub const TYPE0: u8 = 0;
    /// Mobile IPv6 home address (RFC 6275 6.4).
    pub const TYPE2: u8 = 2;
    /// Segment Routing Header (RFC 8754).
    pub const SRH: u8 = 4;
}

/// Rewrites a Routing header and the destination address to what they will be
/// at the final destination, as AH needs: "the contents of the packet as it
/// will appear at the receiver are known to the sender and to all intermediate
/// hops ... The transmitter must order the field so that it appears as it will
/// at the receiver, prior to performing the ICV computation." (RFC 4302 A.2)
///
/// `header` is the whole Routing header. With Segments Left 0 nothing changes en
/// route for any type, so this is a no-op (that is also the receiver's case).
/// Types 0 and 2 swap addresses hop by hop (RFC 2460 4.4, RFC 6275 6.4); type 4
/// leaves the destination at Segment List[0]. Other types with Segments Left >
/// 0 are an error.
pub fn predict_routing_at_destination(dst: &mut [u8; 16], header: &mut [u8]) -> Result<()> {
    let (rtype, left) = match header.get(2..4) {
        Some(&[t, l]) => (t, usize::from(l)),
        _ => {
            return Err(Error::Truncated {
                field: "IPv6 Routing header",
                need: 4,
                have: header.len(),
            })
        }
    };
    if left == 0 {
        return Ok(());
    }
    match rtype {
        routing_type::TYPE0 | routing_type::TYPE2 => {
            let addrs = header.get_mut(8..).unwrap_or(&mut []);
            let n = addrs.len() / 16;
            if left > n {
                return Err(Error::Invalid {
                    field: "IPv6 Routing header segments left",
                    value: left as u64,
                });
            }
            // Each hop: i = n - Segments Left; swap the destination with
            // address[i]; decrement Segments Left.
            for i in n - left..n {
                if let Some(slot) = addrs.get_mut(i * 16..i * 16 + 16) {
                    let mut tmp = [0u8; 16];
                    tmp.copy_from_slice(slot);
                    slot.copy_from_slice(dst);
                    *dst = tmp;
                }
            }
        }
        routing_type::SRH => {
            // RFC 8754 4.3.1.1: each segment endpoint decrements Segments Left
            // and copies Segment List[Segments Left] into the destination; the
            // last one copies Segment List[0].
            let last_entry = usize::from(byte(header, 4));
            if left > last_entry + 1 {
                return Err(Error::Invalid {
                    field: "IPv6 SRH segments left",
                    value: left as u64,
                });
            }
            match header.get(8..24).and_then(|s| <[u8; 16]>::try_from(s).ok()) {
                Some(seg0) => *dst = seg0,
                None => {
                    return Err(Error::Truncated {
                        field: "IPv6 SRH segment list",
                        need: 24,
                        have: header.len(),
                    })
                }
            }
        }
        t => {
            return Err(Error::Invalid {
                field: "IPv6 Routing type (unpredictable for AH)",
                value: t.into(),
            })
        }
    }
    set_byte(header, 3, 0);
    Ok(())
}

/// Prepares a whole IPv6 packet for the AH ICV, in place: zeroes the mutable
/// base-header fields, zeroes the data of "may change" options in every
/// Hop-by-Hop and Destination Options header (before and after AH), and puts
/// the routing header and destination in their final form. The AH ICV field
/// itself is left to the caller (see `ah::Packet::zero_icv`).
///
/// The Fragment header is not expected: AH is applied to whole packets (RFC
/// 4302 3.4.1, reassembly first); it is skipped if present.
pub fn prepare_for_ah_icv(packet: &mut [u8]) -> Result<()> {
    let p = Packet::new_checked(&*packet)?;
    let total = p.packet_bytes().len();
    let mut kind = p.next_header();
    let mut dst = p.dst_addr().octets();
    let mut offset = HEADER_LEN;
    let data = packet.get_mut(..total).unwrap_or(&mut []);
    let mut pkt = Packet::new_unchecked(&mut *data);
    pkt.zero_mutable_fields();
    while let Ok(h) = step(data, kind, offset)? {
        let header = data.get_mut(h.offset..h.offset + h.len).unwrap_or(&mut []);
        match h.kind {
            IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_DEST_OPTS => {
                zero_mutable_option_data(header.get_mut(2..).unwrap_or(&mut []))?;
            }
            IpProtocol::IPV6_ROUTING => predict_routing_at_destination(&mut dst, header)?,
            IpProtocol::IPV6_FRAGMENT if fragment_offset(data, h.offset) != 0 => break,
            _ => {}
        }
        kind = h.next_header;
        offset = h.offset + h.len;
    }
    if let Some(s) = data.get_mut(field::DST_ADDR) {
        s.copy_from_slice(&dst);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_and_class() {
        let mut b = [0u8; 40];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version();
        p.set_traffic_class(0xb8);
        p.set_flow_label(0x12345);
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.flow_label(), 0x12345);
        p.zero_mutable_fields();
        assert_eq!((p.version(), p.traffic_class(), p.flow_label()), (6, 0, 0));
    }
}
