//! IPv4 header (RFC 791): a view, a `Repr`, options, and what AH needs to know
//! about which fields change in transit (RFC 4302 3.3.3.1.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |  DSCP     |ECN|          Total Length         |
//! |         Identification        |Flags|      Fragment Offset    |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! |                    Options                    |    Padding    |
//! ```

use core::net::Ipv4Addr;

use crate::error::{Error, Result};
use crate::ip::{checksum, IpProtocol};

/// Byte offsets of the fixed header's fields.
pub mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of the header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// IHL is 4 bits of 32-bit words: at most 60 bytes, so at most 40 of options.
pub const MAX_HEADER_LEN: usize = 60;
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - MIN_HEADER_LEN;

const FLAG_RESERVED: u16 = 0x8000;
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// Reads a big-endian u16 at a range the caller has length-checked.
fn be16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    match b.get(r) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

fn addr(b: &[u8], r: core::ops::Range<usize>) -> Ipv4Addr {
    match b.get(r) {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

fn byte(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Accessors on a buffer shorter than
    /// the header return zeroes instead of panicking, but the values mean
    /// nothing: use `new_checked` on anything received.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that every accessor reads inside the buffer: version 4, IHL at
    /// least 5, header within the buffer and within total length, total length
    /// within the buffer. The buffer may be longer than total length (link-layer
    /// padding, ESP TFC padding); `payload` stops at total length.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated {
                field: "IPv4 header",
                need: MIN_HEADER_LEN,
                have: b.len(),
            });
        }
        if self.version() != 4 {
            return Err(Error::Invalid {
                field: "IPv4 version",
                value: self.version().into(),
            });
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(Error::Invalid {
                field: "IPv4 IHL",
                value: (hl / 4) as u64,
            });
        }
        if b.len() < hl {
            return Err(Error::Truncated {
                field: "IPv4 options",
                need: hl,
                have: b.len(),
            });
        }
        let tl = usize::from(self.total_len());
        if tl < hl {
            return Err(Error::Malformed {
                field: "IPv4 total length",
                why: "shorter than the header length (IHL)",
            });
        }
        if b.len() < tl {
            return Err(Error::Truncated {
                field: "IPv4 total length",
                need: tl,
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

    pub fn version(&self) -> u8 {
        byte(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL * 4), 0..=60.
    pub fn header_len(&self) -> usize {
        usize::from(byte(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }

    /// Differentiated Services Code Point (RFC 2474), the top 6 bits of the
    /// former TOS byte.
    pub fn dscp(&self) -> u8 {
        byte(self.buffer.as_ref(), field::DSCP_ECN) >> 2
    }

    /// Explicit Congestion Notification (RFC 3168), the low 2 bits.
    pub fn ecn(&self) -> u8 {
        byte(self.buffer.as_ref(), field::DSCP_ECN) & 0x03
    }

    /// The whole former TOS byte (DSCP << 2 | ECN).
    pub fn tos(&self) -> u8 {
        byte(self.buffer.as_ref(), field::DSCP_ECN)
    }

    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// The reserved flag bit ("Bit 0: reserved, must be zero", RFC 791).
    pub fn reserved_flag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_RESERVED != 0
    }

    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET_MASK) << 3
    }

    /// True if this is a fragment (MF set or offset non-zero); IPsec processes
    /// only whole packets (RFC 4303 3.4.1: reassembly comes first).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        byte(self.buffer.as_ref(), field::TTL)
    }

    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(byte(self.buffer.as_ref(), field::PROTOCOL))
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref(), field::SRC_ADDR)
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// The options area (IHL > 5), including any end-of-list padding.
    pub fn options(&self) -> &[u8] {
        let hl = self.header_len();
        self.buffer.as_ref().get(MIN_HEADER_LEN..hl).unwrap_or(&[])
    }

    /// Iterates over the options as TLVs.
    pub fn option_iter(&self) -> OptionIter<'_> {
        OptionIter::new(self.options())
    }

    /// The header bytes (fixed part and options).
    pub fn header(&self) -> &[u8] {
        let hl = self.header_len();
        self.buffer.as_ref().get(..hl).unwrap_or(&[])
    }

    /// The payload, from the end of the header to total length.
    pub fn payload(&self) -> &[u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        self.buffer.as_ref().get(hl..tl).unwrap_or(&[])
    }

    /// "The checksum field is the 16 bit one's complement of the one's
    /// complement sum of all 16 bit words in the header." (RFC 791 3.1) Summing
    /// a header that holds its correct checksum gives all ones.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.header())) == 0xffff
    }
}

fn set16(b: &mut [u8], r: core::ops::Range<usize>, v: u16) {
    if let Some(s) = b.get_mut(r) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

fn set_byte(b: &mut [u8], i: usize, v: u8) {
    if let Some(s) = b.get_mut(i) {
        *s = v;
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and IHL from a header length in bytes (multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        let ihl = (header_len / 4).min(15) as u8; // ok: clamped to 4 bits
        set_byte(self.buffer.as_mut(), field::VER_IHL, 0x40 | ihl);
    }

    pub fn set_dscp(&mut self, dscp: u8) {
        let v = (dscp << 2) | self.ecn();
        set_byte(self.buffer.as_mut(), field::DSCP_ECN, v);
    }

    pub fn set_ecn(&mut self, ecn: u8) {
        let v = (self.tos() & !0x03) | (ecn & 0x03);
        set_byte(self.buffer.as_mut(), field::DSCP_ECN, v);
    }

    pub fn set_tos(&mut self, tos: u8) {
        set_byte(self.buffer.as_mut(), field::DSCP_ECN, tos);
    }

    pub fn set_total_len(&mut self, len: u16) {
        set16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_ident(&mut self, ident: u16) {
        set16(self.buffer.as_mut(), field::IDENT, ident);
    }

    /// Sets the three flag bits and the offset (in bytes; the low 3 bits are
    /// dropped because the field counts 8-byte units).
    pub fn set_flags_and_frag_offset(&mut self, df: bool, mf: bool, offset_bytes: u16) {
        let mut v = (offset_bytes >> 3) & FRAG_OFFSET_MASK;
        if df {
            v |= FLAG_DF;
        }
        if mf {
            v |= FLAG_MF;
        }
        set16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    pub fn set_dont_frag(&mut self, df: bool) {
        let (mf, off) = (self.more_frags(), self.frag_offset());
        self.set_flags_and_frag_offset(df, mf, off);
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        set_byte(self.buffer.as_mut(), field::TTL, ttl);
    }

    pub fn set_protocol(&mut self, p: IpProtocol) {
        set_byte(self.buffer.as_mut(), field::PROTOCOL, p.0);
    }

    pub fn set_checksum(&mut self, c: u16) {
        set16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        if let Some(s) = self.buffer.as_mut().get_mut(field::SRC_ADDR) {
            s.copy_from_slice(&a.octets());
        }
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        if let Some(s) = self.buffer.as_mut().get_mut(field::DST_ADDR) {
            s.copy_from_slice(&a.octets());
        }
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        self.buffer
            .as_mut()
            .get_mut(MIN_HEADER_LEN..hl)
            .unwrap_or(&mut [])
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        self.buffer.as_mut().get_mut(hl..tl).unwrap_or(&mut [])
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::data(self.header());
        self.set_checksum(c);
    }

    /// Zeroes what RFC 4302 3.3.3.1.1.1 lists as mutable in the base header,
    /// then every mutable option (3.3.3.1.1.2), so the header can be fed to the
    /// AH ICV:
    ///
    /// > Mutable (zeroed prior to ICV calculation): Type of Service (TOS),
    /// > Flags, Fragment Offset, Time to Live (TTL), Header Checksum
    ///
    /// > Mutable but predictable: Destination Address (with loose or strict
    /// > source routing)
    ///
    /// so when a Loose or Strict Source Route option still has addresses to
    /// visit, the destination is replaced by the last address of the route
    /// (where the packet will arrive); at the receiver the route is complete
    /// and the destination already is that address. Fails if the options do not
    /// parse, because an AH ICV cannot be computed over an ambiguous header.
    pub fn zero_mutable_fields(&mut self) -> Result<()> {
        if let Some(final_dst) = source_route_final_destination(self.options())? {
            self.set_dst_addr(final_dst);
        }
        self.set_tos(0);
        set16(self.buffer.as_mut(), field::FLG_OFF, 0);
        self.set_ttl(0);
        self.set_checksum(0);
        zero_mutable_options(self.options_mut())
    }
}

/// The destination a source-routed packet will finally reach, if a Loose or
/// Strict Source Route option has not been completed yet. RFC 791: "If the
/// pointer is greater than the length, the source route is empty (and the
/// recorded route full) and the routing is to be based on the destination
/// address field"; otherwise the last address of the route data is where the
/// packet ends up.
pub fn source_route_final_destination(options: &[u8]) -> Result<Option<Ipv4Addr>> {
    for opt in OptionIter::new(options) {
        let opt = opt?;
        if opt.kind != option::LOOSE_SOURCE_ROUTE && opt.kind != option::STRICT_SOURCE_ROUTE {
            continue;
        }
        // type, length, pointer, then 4-byte addresses.
        let body = options.get(opt.offset..opt.offset + opt.len).unwrap_or(&[]);
        let pointer = usize::from(body.get(2).copied().unwrap_or(0));
        let n = body.len().saturating_sub(3) / 4;
        if n == 0 || pointer > body.len() {
            return Ok(None);
        }
        let last = 3 + 4 * (n - 1);
        return Ok(match body.get(last..last + 4) {
            Some(&[a, b, c, d]) => Some(Ipv4Addr::new(a, b, c, d)),
            _ => None,
        });
    }
    Ok(None)
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// How AH treats an IPv4 option (RFC 4302 Appendix A.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionMutability {
    /// "IMMUTABLE -- included in ICV calculation".
    Immutable,
    /// "MUTABLE -- zeroed", and every option the table does not list as
    /// immutable (experimental, superseded, unknown): 3.3.3.1.1.2 says "if an
    /// option is classified as mutable, the entire option is zeroed for ICV
    /// computation purposes"; an unknown option cannot be known not to change.
    Mutable,
}

/// Option types (copy flag, class and number in one byte).
pub mod option {
    pub const END_OF_LIST: u8 = 0;
    pub const NO_OPERATION: u8 = 1;
    pub const RECORD_ROUTE: u8 = 7;
    pub const TIMESTAMP: u8 = 68;
    pub const SECURITY: u8 = 130;
    pub const LOOSE_SOURCE_ROUTE: u8 = 131;
    pub const EXTENDED_SECURITY: u8 = 133;
    pub const COMMERCIAL_SECURITY: u8 = 134;
    pub const SDMDD: u8 = 149;
    pub const STRICT_SOURCE_ROUTE: u8 = 137;
    pub const ROUTER_ALERT: u8 = 148;
}

/// Classifies an option type per RFC 4302 Appendix A.1. The table lists option
/// numbers with their copy flag and class; the full type bytes are: EOL 0,
/// NOP 1, Security 130, Extended Security 133, Commercial Security 134, Router
/// Alert 148, Sender Directed Multi-Destination Delivery 149 -- all immutable.
pub fn option_mutability(kind: u8) -> OptionMutability {
    use option::*;
    match kind {
        END_OF_LIST | NO_OPERATION | SECURITY | EXTENDED_SECURITY | COMMERCIAL_SECURITY
        | ROUTER_ALERT | SDMDD => OptionMutability::Immutable,
        _ => OptionMutability::Mutable,
    }
}

/// One option found in an options area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionTlv {
    /// The option-type byte.
    pub kind: u8,
    /// Offset of the type byte within the options area.
    pub offset: usize,
    /// Length of the whole option (1 for EOL and NOP; else the length byte).
    pub len: usize,
}

/// Iterates over IPv4 options (RFC 791 3.1). Stops after End of Option List:
/// the bytes after it are padding. Yields one error and stops on an option
/// whose length byte is missing, below 2, or runs past the area.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> OptionIter<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        OptionIter {
            data,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<OptionTlv>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let kind = match self.data.get(self.pos) {
            Some(&k) => k,
            None => {
                self.done = true;
                return None;
            }
        };
        let offset = self.pos;
        if kind == option::END_OF_LIST || kind == option::NO_OPERATION {
            // "Case 1: A single octet of option-type."
            self.pos += 1;
            self.done = kind == option::END_OF_LIST;
            return Some(Ok(OptionTlv {
                kind,
                offset,
                len: 1,
            }));
        }
        // "Case 2: An option-type octet, an option-length octet, and the actual
        // option-data octets. The option-length octet counts the option-type
        // octet and the option-length octet as well as the option-data octets."
        self.done = true;
        let Some(&len) = self.data.get(offset + 1) else {
            return Some(Err(Error::Truncated {
                field: "IPv4 option length",
                need: offset + 2,
                have: self.data.len(),
            }));
        };
        let len = usize::from(len);
        if len < 2 {
            return Some(Err(Error::Invalid {
                field: "IPv4 option length",
                value: len as u64,
            }));
        }
        if offset + len > self.data.len() {
            return Some(Err(Error::Truncated {
                field: "IPv4 option data",
                need: offset + len,
                have: self.data.len(),
            }));
        }
        self.done = false;
        self.pos = offset + len;
        Some(Ok(OptionTlv { kind, offset, len }))
    }
}

/// Zeroes every mutable option in an options area, whole (type and length
/// included): "For IPv4, the entire option is viewed as a unit; so even though
/// the type and length fields within most options are immutable in transit, if
/// an option is classified as mutable, the entire option is zeroed for ICV
/// computation purposes." (RFC 4302 3.3.3.1.1.2)
pub fn zero_mutable_options(options: &mut [u8]) -> Result<()> {
    let mut pos = 0;
    while pos < options.len() {
        // Re-parse from `pos` so we never hold a borrow across the write.
        let opt = match OptionIter::new(options.get(pos..).unwrap_or(&[])).next() {
            Some(r) => r?,
            None => break,
        };
        let start = pos + opt.offset;
        let end = start + opt.len;
        if option_mutability(opt.kind) == OptionMutability::Mutable {
            if let Some(s) = options.get_mut(start..end) {
                s.fill(0);
            }
        }
        if opt.kind == option::END_OF_LIST {
            break;
        }
        pos = end;
    }
    Ok(())
}

/// The parsed fields of an IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    /// Bytes after the header (total length - header length).
    pub payload_len: usize,
    pub ttl: u8,
    pub dscp: u8,
    pub ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// In bytes, a multiple of 8.
    pub frag_offset: u16,
    /// Raw options area, a multiple of 4 bytes, at most 40.
    pub options: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a checked packet, verifying the header checksum and the options'
    /// TLV structure. The reserved flag must be zero (RFC 791).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Invalid {
                field: "IPv4 header checksum",
                value: packet.checksum().into(),
            });
        }
        if packet.reserved_flag() {
            return Err(Error::Invalid {
                field: "IPv4 reserved flag",
                value: 1,
            });
        }
        let whole: &'a T = packet.buffer;
        let options = whole
            .as_ref()
            .get(MIN_HEADER_LEN..packet.header_len())
            .unwrap_or(&[]);
        for opt in OptionIter::new(options) {
            opt?;
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload().len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            options,
        })
    }

    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options.len()
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len().saturating_add(self.payload_len)
    }

    /// Writes the header (payload untouched) and its checksum. Fails if the
    /// options are not a multiple of 4 bytes up to 40, the total length does not
    /// fit 16 bits, the offset is not a multiple of 8 or too large, DSCP/ECN
    /// overflow their bits, or the buffer is too small for the header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if self.options.len() > MAX_OPTIONS_LEN || self.options.len() & 3 != 0 {
            return Err(Error::Invalid {
                field: "IPv4 options length",
                value: self.options.len() as u64,
            });
        }
        let total = u16::try_from(self.buffer_len()).map_err(|_| Error::Invalid {
            field: "IPv4 total length",
            value: self.buffer_len() as u64,
        })?;
        if self.frag_offset & 7 != 0 || self.frag_offset >> 3 > FRAG_OFFSET_MASK {
            return Err(Error::Invalid {
                field: "IPv4 fragment offset",
                value: self.frag_offset.into(),
            });
        }
        if self.dscp > 0x3f {
            return Err(Error::Invalid {
                field: "IPv4 DSCP",
                value: self.dscp.into(),
            });
        }
        if self.ecn > 3 {
            return Err(Error::Invalid {
                field: "IPv4 ECN",
                value: self.ecn.into(),
            });
        }
        let hl = self.header_len();
        let have = packet.buffer.as_ref().len();
        if have < hl {
            return Err(Error::BufferTooSmall {
                field: "IPv4 header",
                need: hl,
                have,
            });
        }
        packet.set_version_and_header_len(hl);
        packet.set_tos((self.dscp << 2) | self.ecn);
        packet.set_total_len(total);
        packet.set_ident(self.ident);
        packet.set_flags_and_frag_offset(self.dont_frag, self.more_frags, self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.options_mut().copy_from_slice(self.options); // ok: hl checked above
        packet.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A header from a real capture (ICMP echo, 84 bytes), checksum 0xb861.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x54, 0xa6, 0xf2, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn checksum_roundtrip() {
        let mut buf = [0u8; 84];
        buf[..20].copy_from_slice(&HDR);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert!(p.dont_frag());
        assert_eq!(p.protocol(), IpProtocol::ICMP);
        assert_eq!(p.payload().len(), 64);
    }
}
