//! UDP (RFC 768): the view, a `Repr`, and the checksum over the IPv4 or IPv6
//! pseudo-header. UDP carries IKE (500/4500) and ESP-in-UDP (RFC 3948).

use core::net::IpAddr;

use crate::error::{Error, Result};
use crate::ip::{checksum, IpProtocol};

pub mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

pub const HEADER_LEN: usize = 8;

/// The IKE port (RFC 7296 2).
pub const PORT_IKE: u16 = 500;
/// The NAT-traversal port for IKE and ESP-in-UDP (RFC 3948 2, RFC 7296 2.23).
pub const PORT_NAT_T: u16 = 4500;

/// A view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    match b.get(r) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

fn set16(b: &mut [u8], r: core::ops::Range<usize>, v: u16) {
    if let Some(s) = b.get_mut(r) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// A full header; "Length is the length in octets of this user datagram
    /// including this header and the data. (This means the minimum value of the
    /// length is eight.)" (RFC 768); length within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                field: "UDP header",
                need: HEADER_LEN,
                have,
            });
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::Invalid {
                field: "UDP length",
                value: len as u64,
            });
        }
        if have < len {
            return Err(Error::Truncated {
                field: "UDP length",
                need: len,
                have,
            });
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The datagram as its length field describes it.
    pub fn datagram(&self) -> &[u8] {
        let len = usize::from(self.len());
        self.buffer.as_ref().get(..len).unwrap_or(&[])
    }

    pub fn payload(&self) -> &[u8] {
        let len = usize::from(self.len());
        self.buffer.as_ref().get(HEADER_LEN..len).unwrap_or(&[])
    }

    fn computed(&self, src: &IpAddr, dst: &IpAddr) -> u16 {
        let d = self.datagram();
        let ph = checksum::pseudo_header(src, dst, IpProtocol::UDP, d.len() as u32);
        !checksum::fold(checksum::add(ph, checksum::sum(d)))
    }

    /// Verifies the checksum. Over IPv4, "An all zero transmitted checksum
    /// value means that the transmitter generated no checksum" (RFC 768) and
    /// passes; over IPv6 a zero checksum is invalid ("IPv6 receivers must
    /// discard UDP packets containing a zero checksum", RFC 8200 8.1).
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return matches!((src, dst), (IpAddr::V4(_), IpAddr::V4(_)));
        }
        self.computed(src, dst) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, p: u16) {
        set16(self.buffer.as_mut(), field::SRC_PORT, p);
    }

    pub fn set_dst_port(&mut self, p: u16) {
        set16(self.buffer.as_mut(), field::DST_PORT, p);
    }

    pub fn set_len(&mut self, l: u16) {
        set16(self.buffer.as_mut(), field::LENGTH, l);
    }

    pub fn set_checksum(&mut self, c: u16) {
        set16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..len)
            .unwrap_or(&mut [])
    }

    /// Computes and stores the checksum. "If the computed checksum is zero, it
    /// is transmitted as all ones" (RFC 768), since zero means "none".
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let c = self.computed(src, dst);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

/// The parsed header. The payload stays in the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl Repr {
    /// Parses a checked datagram. The checksum is not verified here because it
    /// needs the IP addresses: call `Packet::verify_checksum`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.payload().len(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.payload_len)
    }

    /// Writes the header with a zero checksum; fill the payload, then call
    /// `fill_checksum` (or leave zero: RFC 3948 3.1.1 allows a zero checksum for
    /// ESP-in-UDP over IPv4).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let len = u16::try_from(self.buffer_len()).map_err(|_| Error::Invalid {
            field: "UDP length",
            value: self.buffer_len() as u64,
        })?;
        let have = packet.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::BufferTooSmall {
                field: "UDP header",
                need: HEADER_LEN,
                have,
            });
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.set_checksum(0);
        Ok(())
    }
}
