//! The IKE header (RFC 7296 section 3.1).
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Initiator's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Responder's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Message ID                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Length                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::consts::flags;
use crate::{Error, Result};

mod field {
    use core::ops::Range;
    pub const SPI_I: Range<usize> = 0..8;
    pub const SPI_R: Range<usize> = 8..16;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE_TYPE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: Range<usize> = 20..24;
    pub const LENGTH: Range<usize> = 24..28;
}

/// Size of the fixed IKE header.
pub const HEADER_LEN: usize = 28;

/// The only major version this codec speaks. RFC 7296 section 3.1: a receiver
/// MUST drop (and MAY answer INVALID_MAJOR_VERSION to) anything higher.
pub const MAJOR_VERSION: u8 = 2;

/// A read/write view of an IKE header at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checks; accessors may panic on a short buffer.
    /// Use [`Header::new_checked`] for anything that came off the network.
    pub const fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wraps a buffer after [`Header::check_len`]: afterwards no accessor panics.
    pub fn new_checked(buffer: T) -> Result<Header<T>> {
        let h = Header::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Checks that the buffer holds the fixed header and that the Length field
    /// is at least the header and at most the buffer. A longer buffer is fine
    /// (the caller may hand a receive buffer); [`Header::message`] cuts it.
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                field: "IKEv2 header",
                need: HEADER_LEN,
                have,
            });
        }
        let len = self.length();
        if len < HEADER_LEN as u32 {
            return Err(Error::Invalid {
                field: "IKEv2 header length",
                value: u64::from(len),
            });
        }
        if len as usize > have {
            return Err(Error::Truncated {
                field: "IKEv2 header length",
                need: len as usize,
                have,
            });
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn spi_i(&self) -> [u8; 8] {
        let mut s = [0; 8];
        s.copy_from_slice(&self.buffer.as_ref()[field::SPI_I]);
        s
    }

    pub fn spi_r(&self) -> [u8; 8] {
        let mut s = [0; 8];
        s.copy_from_slice(&self.buffer.as_ref()[field::SPI_R]);
        s
    }

    pub fn next_payload(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_PAYLOAD]
    }

    pub fn major_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] >> 4
    }

    pub fn minor_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] & 0x0f
    }

    pub fn exchange_type(&self) -> u8 {
        self.buffer.as_ref()[field::EXCHANGE_TYPE]
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn message_id(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::MESSAGE_ID])
    }

    /// Length of the whole message, header included.
    pub fn length(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The message as the Length field delimits it (header + payloads).
    pub fn message(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..(self.length() as usize).min(b.len())]
    }

    /// The payload chain bytes that follow the header.
    pub fn payload_bytes(&self) -> &[u8] {
        let m = self.message();
        &m[HEADER_LEN.min(m.len())..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    pub fn set_spi_i(&mut self, v: [u8; 8]) {
        self.buffer.as_mut()[field::SPI_I].copy_from_slice(&v);
    }
    pub fn set_spi_r(&mut self, v: [u8; 8]) {
        self.buffer.as_mut()[field::SPI_R].copy_from_slice(&v);
    }
    pub fn set_next_payload(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_PAYLOAD] = v;
    }
    pub fn set_version(&mut self, major: u8, minor: u8) {
        self.buffer.as_mut()[field::VERSION] = (major << 4) | (minor & 0x0f);
    }
    pub fn set_exchange_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::EXCHANGE_TYPE] = v;
    }
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }
    pub fn set_message_id(&mut self, v: u32) {
        self.buffer.as_mut()[field::MESSAGE_ID].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_length(&mut self, v: u32) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
}

/// The header fields a sender chooses. Next Payload and Length are framing:
/// [`super::Message`] fills them in from its payloads, so they are not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderRepr {
    pub spi_i: [u8; 8],
    pub spi_r: [u8; 8],
    /// Minor version; the major version is always [`MAJOR_VERSION`].
    pub minor_version: u8,
    pub exchange_type: u8,
    /// I flag: set by the original initiator of the IKE SA.
    pub initiator: bool,
    /// V flag: "can speak a higher major version"; RFC 7296 says send it clear.
    pub version: bool,
    /// R flag: this message is a response.
    pub response: bool,
    pub message_id: u32,
}

impl HeaderRepr {
    /// Reads the chosen fields. Rejects major versions other than 2 so that an
    /// IKEv1 or IKEv3 message never reaches the IKEv2 payload parser; reserved
    /// flag bits are ignored as RFC 7296 section 3.1 asks.
    pub fn parse<T: AsRef<[u8]>>(h: &Header<T>) -> Result<HeaderRepr> {
        h.check_len()?;
        if h.major_version() != MAJOR_VERSION {
            return Err(Error::Invalid {
                field: "IKEv2 header major version",
                value: u64::from(h.major_version()),
            });
        }
        let f = h.flags();
        Ok(HeaderRepr {
            spi_i: h.spi_i(),
            spi_r: h.spi_r(),
            minor_version: h.minor_version(),
            exchange_type: h.exchange_type(),
            initiator: f & flags::INITIATOR != 0,
            version: f & flags::VERSION != 0,
            response: f & flags::RESPONSE != 0,
            message_id: h.message_id(),
        })
    }

    pub fn flags(&self) -> u8 {
        let mut f = 0;
        if self.initiator {
            f |= flags::INITIATOR;
        }
        if self.version {
            f |= flags::VERSION;
        }
        if self.response {
            f |= flags::RESPONSE;
        }
        f
    }

    /// Writes the header; `next_payload` and `length` (whole message) come
    /// from the caller that laid out the payloads.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        h: &mut Header<T>,
        next_payload: u8,
        length: u32,
    ) -> Result<()> {
        let have = h.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::BufferTooSmall {
                field: "IKEv2 header",
                need: HEADER_LEN,
                have,
            });
        }
        if self.minor_version > 0x0f {
            return Err(Error::Invalid {
                field: "IKEv2 header minor version",
                value: u64::from(self.minor_version),
            });
        }
        h.set_spi_i(self.spi_i);
        h.set_spi_r(self.spi_r);
        h.set_next_payload(next_payload);
        h.set_version(MAJOR_VERSION, self.minor_version);
        h.set_exchange_type(self.exchange_type);
        h.set_flags(self.flags());
        h.set_message_id(self.message_id);
        h.set_length(length);
        Ok(())
    }
}

pub(crate) fn be32(b: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}
