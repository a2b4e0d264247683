//! ESP packet format (RFC 4303 2): the cleartext header, the layout of IV,
//! ciphertext and ICV (whose lengths the SA knows), and the trailer inside the
//! plaintext.
//!
//! ```text
//! |               Security Parameters Index (SPI)                 | ^Int.
//! |                      Sequence Number                          | |Cov-
//! |                    Payload Data* (variable)                   | |erage
//! ~               |     Padding (0-255 bytes)                     | |   ^
//! |                               |  Pad Length   | Next Header   | v   v
//! |         Integrity Check Value-ICV   (variable)                |
//! ```
//!
//! With ESN, the high 32 bits of the sequence number are not on the wire (RFC
//! 4303 2.2.1); the SA layer adds them to the ICV input.

use core::ops::Range;

use crate::error::{Error, Result};
use crate::ip::IpProtocol;

pub mod field {
    use core::ops::Range;
    pub const SPI: Range<usize> = 0..4;
    pub const SEQUENCE: Range<usize> = 4..8;
    pub const PAYLOAD: usize = 8;
}

/// SPI and sequence number.
pub const HEADER_LEN: usize = 8;
/// Pad Length and Next Header, the fixed end of the trailer.
pub const TRAILER_LEN: usize = 2;

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

/// A view of an ESP packet (starting at the SPI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// Where the parts of an ESP packet lie, as ranges into the packet buffer.
/// Ranges rather than slices so that the SA can decrypt in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub iv: Range<usize>,
    /// The encrypted payload, padding, pad length and next header.
    pub ciphertext: Range<usize>,
    pub icv: Range<usize>,
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

    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                field: "ESP header",
                need: HEADER_LEN,
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

    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SPI)
    }

    /// The low 32 bits of the sequence number.
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQUENCE)
    }

    /// The 8 header bytes (SPI and sequence number), which AEAD transforms use
    /// as AAD (RFC 4106 5).
    pub fn header(&self) -> &[u8] {
        self.buffer.as_ref().get(..HEADER_LEN).unwrap_or(&[])
    }

    /// Everything after the header: IV, ciphertext, ICV.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD..).unwrap_or(&[])
    }

    /// Splits the packet given the SA's IV and ICV lengths. The ciphertext must
    /// hold at least Pad Length and Next Header.
    pub fn layout(&self, iv_len: usize, icv_len: usize) -> Result<Layout> {
        let len = self.buffer.as_ref().len();
        // Saturating: absurd lengths from a caller fail the check, never wrap.
        let need = (HEADER_LEN + TRAILER_LEN)
            .saturating_add(iv_len)
            .saturating_add(icv_len);
        if len < need {
            return Err(Error::Truncated {
                field: "ESP payload (IV + trailer + ICV)",
                need,
                have: len,
            });
        }
        let iv = HEADER_LEN..HEADER_LEN + iv_len;
        let icv = len - icv_len..len;
        Ok(Layout {
            ciphertext: iv.end..icv.start,
            iv,
            icv,
        })
    }

    /// The ICV: the last `icv_len` bytes.
    pub fn icv(&self, icv_len: usize) -> Result<&[u8]> {
        let l = self.layout(0, icv_len)?;
        Ok(self.buffer.as_ref().get(l.icv).unwrap_or(&[]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_spi(&mut self, spi: u32) {
        set32(self.buffer.as_mut(), field::SPI, spi);
    }

    pub fn set_seq_number(&mut self, seq: u32) {
        set32(self.buffer.as_mut(), field::SEQUENCE, seq);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::PAYLOAD..)
            .unwrap_or(&mut [])
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The cleartext ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub spi: u32,
    pub seq_number: u32,
}

impl Repr {
    /// "The SPI value of zero (0) is reserved for local, implementation-specific
    /// use and MUST NOT be sent on the wire." (RFC 4303 2.1)
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.spi() == 0 {
            return Err(Error::Invalid {
                field: "ESP SPI",
                value: 0,
            });
        }
        Ok(Repr {
            spi: packet.spi(),
            seq_number: packet.seq_number(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if self.spi == 0 {
            return Err(Error::Invalid {
                field: "ESP SPI",
                value: 0,
            });
        }
        let have = packet.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::BufferTooSmall {
                field: "ESP header",
                need: HEADER_LEN,
                have,
            });
        }
        packet.set_spi(self.spi);
        packet.set_seq_number(self.seq_number);
        Ok(())
    }
}

/// The ESP trailer found at the end of decrypted plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Bytes of padding before the Pad Length byte.
    pub pad_len: u8,
    pub next_header: IpProtocol,
    /// Bytes of payload data before the padding.
    pub payload_len: usize,
}

impl Trailer {
    /// Parses the trailer at the end of `plaintext` (payload || padding || pad
    /// length || next header) and checks the default padding: "The Padding
    /// bytes are initialized with a series of (unsigned, 1-byte) integer
    /// values. The first padding byte appended to the plaintext is numbered 1,
    /// with subsequent padding bytes making up a monotonically increasing
    /// sequence ... the receiver SHOULD inspect the Padding field." (RFC 4303
    /// 2.4) Errors name "ESP padding" with the first wrong byte.
    #[inline]
    pub fn parse(plaintext: &[u8]) -> Result<Trailer> {
        let t = Self::parse_unchecked_padding(plaintext)?;
        let pad = plaintext
            .get(t.payload_len..t.payload_len + usize::from(t.pad_len))
            .unwrap_or(&[]);
        // One compare for the usual case; the byte loop only to name a fault.
        let want = &DEFAULT_PADDING[..pad.len()]; // ok: pad.len() <= pad_len, a u8
        if pad != want {
            for (i, &b) in pad.iter().enumerate() {
                if usize::from(b) != i + 1 {
                    return Err(Error::Invalid {
                        field: "ESP padding",
                        value: b.into(),
                    });
                }
            }
        }
        Ok(t)
    }

    /// Like [`parse`](Self::parse) but does not look at the padding bytes, for
    /// transforms that define their own padding contents.
    #[inline]
    pub fn parse_unchecked_padding(plaintext: &[u8]) -> Result<Trailer> {
        let n = plaintext.len();
        let (pad_len, nh) = match plaintext.get(n.wrapping_sub(2)..) {
            Some(&[p, h]) => (p, h),
            _ => {
                return Err(Error::Truncated {
                    field: "ESP trailer",
                    need: TRAILER_LEN,
                    have: n,
                })
            }
        };
        let used = usize::from(pad_len) + TRAILER_LEN;
        if used > n {
            return Err(Error::Malformed {
                field: "ESP pad length",
                why: "longer than the decrypted payload",
            });
        }
        Ok(Trailer {
            pad_len,
            next_header: IpProtocol(nh),
            payload_len: n - used,
        })
    }

    /// "A transmitter MUST be capable of generating dummy packets marked with
    /// this value in the next protocol field, and a receiver MUST be prepared to
    /// discard such packets" (RFC 4303 2.6): Next Header 59.
    pub fn is_dummy(&self) -> bool {
        self.next_header == IpProtocol::NO_NEXT_HEADER
    }

    /// Padding + Pad Length + Next Header.
    pub fn len(&self) -> usize {
        usize::from(self.pad_len) + TRAILER_LEN
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The alignment the plaintext (payload + padding + trailer) must reach: the
/// cipher's block size, and at least 4 bytes: "the Padding field is used to
/// ensure that the ciphertext terminates on a 4-byte boundary" and "the Pad
/// Length and Next Header fields must be right aligned within a 4-byte word"
/// (RFC 4303 2.4). For block sizes not a multiple of 4 this is their lcm.
pub fn alignment(block_size: usize) -> Result<usize> {
    if block_size == 0 || block_size > 256 {
        return Err(Error::Invalid {
            field: "ESP cipher block size",
            value: block_size as u64,
        });
    }
    // Every block size in use (1, 8, 16) is a power of two, whose lcm with 4
    // is the larger of the two: no division on the packet path.
    let a = if block_size.is_power_of_two() {
        block_size.max(4)
    } else {
        block_size / gcd(block_size, 4) * 4
    };
    if a > 256 {
        return Err(Error::Invalid {
            field: "ESP cipher block size",
            value: block_size as u64,
        });
    }
    Ok(a)
}

/// `n % d` (`d` > 0), as a mask when `d` is a power of two: a 64-bit
/// division costs tens of cycles, several times per packet.
#[inline]
pub fn rem_of(n: usize, d: usize) -> usize {
    if d.is_power_of_two() {
        n & (d - 1)
    } else {
        n % d
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The smallest padding that aligns `payload_len + pad + 2` to
/// [`alignment`]`(block_size)`. Always at most 255.
pub fn pad_len(payload_len: usize, block_size: usize) -> Result<usize> {
    let a = alignment(block_size)?;
    let rem = rem_of(payload_len.saturating_add(TRAILER_LEN), a);
    Ok(if rem == 0 { 0 } else { a - rem })
}

/// Length of payload + padding + trailer for this payload and block size.
pub fn padded_len(payload_len: usize, block_size: usize) -> Result<usize> {
    let pad = pad_len(payload_len, block_size)?;
    payload_len
        .checked_add(pad + TRAILER_LEN)
        .ok_or(Error::Invalid {
            field: "ESP payload length",
            value: payload_len as u64,
        })
}

/// RFC 4303 2.4's default padding, 1, 2, 3, ..., as long as a Pad Length
/// can make it; a packet's padding is a prefix, copied rather than counted
/// out byte by byte.
const DEFAULT_PADDING: [u8; 255] = {
    let mut t = [0u8; 255];
    let mut i = 0;
    while i < 255 {
        t[i] = (i + 1) as u8;
        i += 1;
    }
    t
};

/// Writes the default padding (1, 2, 3, ...), Pad Length and Next Header after
/// `payload_len` bytes of payload already in `plaintext`. Returns the plaintext
/// length (payload + padding + trailer).
pub fn write_trailer(
    plaintext: &mut [u8],
    payload_len: usize,
    pad_len: usize,
    next_header: IpProtocol,
) -> Result<usize> {
    let pad = u8::try_from(pad_len).map_err(|_| Error::Invalid {
        field: "ESP pad length",
        value: pad_len as u64,
    })?;
    let have = plaintext.len();
    let total = payload_len.saturating_add(pad_len + TRAILER_LEN);
    let Some(tail) = plaintext.get_mut(payload_len..total) else {
        return Err(Error::BufferTooSmall {
            field: "ESP trailer",
            need: total,
            have,
        });
    };
    let (padding, trailer) = tail.split_at_mut(pad_len); // ok: tail.len() = pad_len + 2
    padding.copy_from_slice(&DEFAULT_PADDING[..pad_len]); // ok: pad_len <= 255, checked above
    trailer.copy_from_slice(&[pad, next_header.0]);
    Ok(total)
}

/// [`pad_len`] then [`write_trailer`].
pub fn write_padded_trailer(
    plaintext: &mut [u8],
    payload_len: usize,
    block_size: usize,
    next_header: IpProtocol,
) -> Result<usize> {
    let pad = pad_len(payload_len, block_size)?;
    write_trailer(plaintext, payload_len, pad, next_header)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pad length writes 1, 2, 3, ... (RFC 4303 2.4) and parses back;
    /// a wrong byte anywhere in the padding is named.
    #[test]
    fn default_padding_round_trips_at_every_length() {
        for pad in 0..=255usize {
            let mut p = vec![0xeeu8; 3 + pad + TRAILER_LEN];
            assert_eq!(write_trailer(&mut p, 3, pad, IpProtocol::IPV4), Ok(p.len()));
            let want: Vec<u8> = (1..=pad).map(|i| i as u8).collect();
            assert_eq!(&p[3..3 + pad], &want[..]);
            let t = Trailer::parse(&p).unwrap();
            assert_eq!((t.payload_len, usize::from(t.pad_len)), (3, pad));
            if pad > 0 {
                p[3 + pad - 1] ^= 0x80;
                assert!(matches!(
                    Trailer::parse(&p),
                    Err(Error::Invalid {
                        field: "ESP padding",
                        ..
                    })
                ));
            }
        }
        assert!(write_trailer(&mut [0u8; 300], 0, 256, IpProtocol::IPV4).is_err());
    }

    #[test]
    fn pad_lengths() {
        assert_eq!(pad_len(0, 1), Ok(2));
        assert_eq!(pad_len(2, 1), Ok(0));
        assert_eq!(pad_len(14, 16), Ok(0));
        assert_eq!(pad_len(15, 16), Ok(15));
        assert_eq!(alignment(3), Ok(12));
        assert_eq!(alignment(8), Ok(8));
        assert!(alignment(0).is_err());
    }

    /// The power-of-two shortcuts agree with the arithmetic they replace
    /// (lcm with 4, remainder by division) for every legal block size.
    #[test]
    fn alignment_and_padding_without_division_match_the_definition() {
        for block in 1..=64usize {
            let lcm = block / gcd(block, 4) * 4;
            assert_eq!(alignment(block), Ok(lcm), "block {block}");
            for len in 0..300usize {
                assert_eq!(rem_of(len, lcm), len % lcm);
                let pad = pad_len(len, block).unwrap();
                assert_eq!(
                    (len + pad + TRAILER_LEN) % lcm,
                    0,
                    "block {block} len {len}"
                );
                assert!(pad < lcm, "block {block} len {len}: not the least padding");
            }
        }
    }

    #[test]
    fn trailer_roundtrip() {
        let mut b = [0xaau8; 32];
        let n = write_padded_trailer(&mut b, 5, 8, IpProtocol::IPV4).unwrap();
        assert_eq!(n, 8);
        assert_eq!(&b[5..8], &[1, 1, 4]);
        let t = Trailer::parse(&b[..n]).unwrap();
        assert_eq!(t.payload_len, 5);
        assert_eq!(t.next_header, IpProtocol::IPV4);
        b[5] = 9;
        assert_eq!(
            Trailer::parse(&b[..n]),
            Err(Error::Invalid {
                field: "ESP padding",
                value: 9
            })
        );
    }
}
