//! Authentication Header (RFC 4302 2).
//!
//! ```text
//! | Next Header   |  Payload Len  |          RESERVED             |
//! |                 Security Parameters Index (SPI)               |
//! |                    Sequence Number Field                      |
//! +                Integrity Check Value-ICV (variable)           |
//! ```
//!
//! The ICV length is a property of the SA's integrity algorithm, so it is a
//! parameter here. The ICV field may carry padding after the ICV so the header
//! length is a multiple of 4 bytes (IPv4) or 8 bytes (IPv6).

use core::ops::Range;

use crate::error::{Error, Result};
use crate::ip::{IpProtocol, Version};

pub mod field {
    use core::ops::Range;
    pub const NEXT_HEADER: usize = 0;
    pub const PAYLOAD_LEN: usize = 1;
    pub const RESERVED: Range<usize> = 2..4;
    pub const SPI: Range<usize> = 4..8;
    pub const SEQUENCE: Range<usize> = 8..12;
    pub const ICV: usize = 12;
}

/// The header without ICV.
pub const FIXED_LEN: usize = 12;
/// The largest header Payload Len can describe: (255 + 2) * 4.
pub const MAX_HEADER_LEN: usize = (255 + 2) * 4;

fn be32(b: &[u8], r: Range<usize>) -> u32 {
    match b.get(r) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

fn set32(b: &mut [u8], r: Range<usize>, v: u32) {
    if let Some(s) = b.get_mut(r) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// The AH header length for an ICV of `icv_len` bytes: 12 + ICV rounded up to
/// the version's alignment. "This field must be an integral multiple of 32 bits
/// (IPv4 or IPv6) in length ... the ICV field may include explicit padding, if
/// required to ensure that the length of the AH header is an integral multiple
/// of 32 bits (IPv4) or 64 bits (IPv6)." (RFC 4302 2.6)
pub fn header_len_for(version: Version, icv_len: usize) -> Result<usize> {
    let a = version.ah_alignment();
    let len = FIXED_LEN
        .saturating_add(icv_len)
        .div_ceil(a)
        .saturating_mul(a);
    if len > MAX_HEADER_LEN {
        return Err(Error::Invalid {
            field: "AH ICV length",
            value: icv_len as u64,
        });
    }
    Ok(len)
}

/// A view of an AH header followed by its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
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

    /// The fixed part present, Payload Len at least 1 (a 12-byte header, no
    /// ICV), the whole header within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < FIXED_LEN {
            return Err(Error::Truncated {
                field: "AH header",
                need: FIXED_LEN,
                have,
            });
        }
        if self.payload_len() < 1 {
            return Err(Error::Invalid {
                field: "AH payload length",
                value: self.payload_len().into(),
            });
        }
        let need = self.header_len();
        if have < need {
            return Err(Error::Truncated {
                field: "AH payload length",
                need,
                have,
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

    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(
            self.buffer
                .as_ref()
                .get(field::NEXT_HEADER)
                .copied()
                .unwrap_or(0),
        )
    }

    /// The raw field: header length in 32-bit words minus 2.
    pub fn payload_len(&self) -> u8 {
        self.buffer
            .as_ref()
            .get(field::PAYLOAD_LEN)
            .copied()
            .unwrap_or(0)
    }

    /// Header length in bytes: (Payload Len + 2) * 4.
    pub fn header_len(&self) -> usize {
        (usize::from(self.payload_len()) + 2) * 4
    }

    pub fn reserved(&self) -> u16 {
        match self.buffer.as_ref().get(field::RESERVED) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => 0,
        }
    }

    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SPI)
    }

    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQUENCE)
    }

    /// The whole ICV field, ICV and any alignment padding.
    pub fn icv_field(&self) -> &[u8] {
        let end = self.header_len();
        self.buffer.as_ref().get(field::ICV..end).unwrap_or(&[])
    }

    /// The first `icv_len` bytes of the ICV field.
    pub fn icv(&self, icv_len: usize) -> Result<&[u8]> {
        let f = self.icv_field();
        f.get(..icv_len).ok_or(Error::Malformed {
            field: "AH ICV",
            why: "shorter than the SA's ICV length",
        })
    }

    /// What follows the AH header.
    pub fn payload(&self) -> &[u8] {
        let hl = self.header_len();
        self.buffer.as_ref().get(hl..).unwrap_or(&[])
    }

    /// Checks that the header has exactly the length an ICV of `icv_len`
    /// bytes padded for `version` gives. Errors name "AH payload length".
    pub fn check_icv_len(&self, version: Version, icv_len: usize) -> Result<()> {
        let want = header_len_for(version, icv_len)?;
        if self.header_len() != want {
            return Err(Error::Invalid {
                field: "AH payload length",
                value: self.payload_len().into(),
            });
        }
        Ok(())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_next_header(&mut self, p: IpProtocol) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::NEXT_HEADER) {
            *b = p.0;
        }
    }

    pub fn set_payload_len(&mut self, v: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::PAYLOAD_LEN) {
            *b = v;
        }
    }

    pub fn set_reserved(&mut self, v: u16) {
        if let Some(s) = self.buffer.as_mut().get_mut(field::RESERVED) {
            s.copy_from_slice(&v.to_be_bytes());
        }
    }

    pub fn set_spi(&mut self, spi: u32) {
        set32(self.buffer.as_mut(), field::SPI, spi);
    }

    pub fn set_seq_number(&mut self, seq: u32) {
        set32(self.buffer.as_mut(), field::SEQUENCE, seq);
    }

    pub fn icv_field_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        self.buffer
            .as_mut()
            .get_mut(field::ICV..end)
            .unwrap_or(&mut [])
    }

    /// Zeroes the ICV field (ICV and padding) before computing or verifying the
    /// ICV: "the ICV field is set to zero for the ICV computation" (RFC 4302
    /// 3.3.3.1). The caller saves the received ICV first.
    pub fn zero_icv(&mut self) {
        self.icv_field_mut().fill(0);
    }

    /// Writes the ICV at the start of the ICV field.
    pub fn set_icv(&mut self, icv: &[u8]) -> Result<()> {
        let f = self.icv_field_mut();
        let have = f.len();
        match f.get_mut(..icv.len()) {
            Some(s) => {
                s.copy_from_slice(icv);
                Ok(())
            }
            None => Err(Error::BufferTooSmall {
                field: "AH ICV",
                need: icv.len(),
                have,
            }),
        }
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        self.buffer.as_mut().get_mut(hl..).unwrap_or(&mut [])
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The AH header fields. The ICV bytes themselves stay in the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub next_header: IpProtocol,
    pub spi: u32,
    pub seq_number: u32,
    /// ICV length of the SA's integrity algorithm (e.g. 12 for HMAC-SHA1-96).
    pub icv_len: usize,
    /// Decides the alignment padding (4 bytes for IPv4, 8 for IPv6).
    pub version: Version,
}

impl Repr {
    /// Parses a checked header for an SA with `icv_len` on an IP `version`
    /// packet. The header length must be exactly the aligned one; SPI 0 is
    /// refused ("MUST NOT be sent on the wire", RFC 4302 2.4). Reserved is
    /// ignored: it "MUST be set to zero by the sender ... and is otherwise
    /// ignored by the recipient" (2.3).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        version: Version,
        icv_len: usize,
    ) -> Result<Repr> {
        packet.check_len()?;
        packet.check_icv_len(version, icv_len)?;
        if packet.spi() == 0 {
            return Err(Error::Invalid {
                field: "AH SPI",
                value: 0,
            });
        }
        Ok(Repr {
            next_header: packet.next_header(),
            spi: packet.spi(),
            seq_number: packet.seq_number(),
            icv_len,
            version,
        })
    }

    /// Length of the AH header including ICV and padding.
    pub fn buffer_len(&self) -> usize {
        header_len_for(self.version, self.icv_len).unwrap_or(MAX_HEADER_LEN + 1)
    }

    /// Writes the header with reserved zero and the ICV field (and padding)
    /// zeroed, ready for the ICV computation.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let hl = header_len_for(self.version, self.icv_len)?;
        if self.spi == 0 {
            return Err(Error::Invalid {
                field: "AH SPI",
                value: 0,
            });
        }
        let have = packet.buffer.as_ref().len();
        if have < hl {
            return Err(Error::BufferTooSmall {
                field: "AH header",
                need: hl,
                have,
            });
        }
        packet.set_next_header(self.next_header);
        // ok: hl <= MAX_HEADER_LEN, so hl / 4 - 2 <= 255.
        packet.set_payload_len((hl / 4 - 2) as u8);
        packet.set_reserved(0);
        packet.set_spi(self.spi);
        packet.set_seq_number(self.seq_number);
        packet.zero_icv();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment() {
        assert_eq!(header_len_for(Version::V4, 12), Ok(24));
        assert_eq!(header_len_for(Version::V6, 12), Ok(24));
        assert_eq!(header_len_for(Version::V4, 16), Ok(28));
        assert_eq!(header_len_for(Version::V6, 16), Ok(32));
        assert_eq!(header_len_for(Version::V6, 0), Ok(16));
    }
}
