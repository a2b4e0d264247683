//! The simple payloads of RFC 7296 section 3: a few fixed fields, then data.
//! Each `parse` takes the body after the generic header; each `emit` appends
//! the body to `out` (the chain writer adds the generic header).

use super::chain::{len16, Reader};
use super::consts::{eap, id, notify};
use crate::{Error, Result};

/// Key Exchange payload (section 3.4): group number, 2 reserved, KE data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KePayload {
    pub group: u16,
    pub data: Vec<u8>,
}

impl KePayload {
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let group = r.u16("IKEv2 KE group")?;
        r.bytes(2, "IKEv2 KE reserved")?;
        Ok(KePayload {
            group,
            data: r.rest().to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.group.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Identification payload, IDi or IDr (section 3.5): type, 3 reserved, data.
/// Address types must hold exactly one address; others are opaque here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPayload {
    /// [`super::consts::id`].
    pub id_type: u8,
    pub data: Vec<u8>,
}

impl IdPayload {
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let id_type = r.u8("IKEv2 ID type")?;
        r.bytes(3, "IKEv2 ID reserved")?;
        let p = IdPayload {
            id_type,
            data: r.rest().to_vec(),
        };
        p.check()?;
        Ok(p)
    }
    fn check(&self) -> Result<()> {
        let want = match self.id_type {
            id::IPV4_ADDR => 4,
            id::IPV6_ADDR => 16,
            _ => return Ok(()),
        };
        if self.data.len() != want {
            return Err(Error::Invalid {
                field: "IKEv2 ID address length",
                value: self.data.len() as u64,
            });
        }
        Ok(())
    }
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        self.check()?;
        out.extend_from_slice(&[self.id_type, 0, 0, 0]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Certificate payload (section 3.6): encoding, data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPayload {
    /// [`super::consts::cert`].
    pub encoding: u8,
    pub data: Vec<u8>,
}

/// Certificate Request payload (section 3.7): encoding, CA data. For X.509
/// the data is a concatenation of 20-byte SHA-1 hashes of CA public keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertReqPayload {
    pub encoding: u8,
    pub data: Vec<u8>,
}

impl CertPayload {
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        Ok(CertPayload {
            encoding: r.u8("IKEv2 CERT encoding")?,
            data: r.rest().to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.push(self.encoding);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

impl CertReqPayload {
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        Ok(CertReqPayload {
            encoding: r.u8("IKEv2 CERTREQ encoding")?,
            data: r.rest().to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.push(self.encoding);
        out.extend_from_slice(&self.data);
        Ok(())
    }
    /// The CA key hashes, if the data is a whole number of SHA-1 hashes.
    pub fn sha1_hashes(&self) -> Option<impl Iterator<Item = &[u8]>> {
        let chunks = self.data.chunks_exact(20);
        chunks.remainder().is_empty().then_some(chunks)
    }
}

/// Authentication payload (section 3.8): method, 3 reserved, data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPayload {
    /// [`super::consts::auth`].
    pub method: u8,
    pub data: Vec<u8>,
}

impl AuthPayload {
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let method = r.u8("IKEv2 AUTH method")?;
        r.bytes(3, "IKEv2 AUTH reserved")?;
        Ok(AuthPayload {
            method,
            data: r.rest().to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&[self.method, 0, 0, 0]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Nonce payload (section 3.9): "at least 128 bits in size, and MUST be at
/// most 2048 bits in size".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoncePayload {
    pub data: Vec<u8>,
}

impl NoncePayload {
    pub const MIN_LEN: usize = 16;
    pub const MAX_LEN: usize = 256;

    fn check(len: usize) -> Result<()> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(Error::Invalid {
                field: "IKEv2 Nonce length",
                value: len as u64,
            });
        }
        Ok(())
    }
    pub fn parse(body: &[u8]) -> Result<Self> {
        Self::check(body.len())?;
        Ok(NoncePayload {
            data: body.to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        Self::check(self.data.len())?;
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Notify payload (section 3.10): protocol ID, SPI size, type, SPI, data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPayload {
    /// 0 when not about a particular SA (most IKE SA notifications).
    pub protocol_id: u8,
    pub spi: Vec<u8>,
    /// [`super::consts::notify`].
    pub notify_type: u16,
    pub data: Vec<u8>,
}

impl NotifyPayload {
    /// A notification about no particular SA.
    pub fn new(notify_type: u16, data: Vec<u8>) -> Self {
        NotifyPayload {
            protocol_id: 0,
            spi: Vec::new(),
            notify_type,
            data,
        }
    }
    /// INVALID_KE_PAYLOAD carries the group the responder wants (section 1.3).
    pub fn invalid_ke_payload(group: u16) -> Self {
        Self::new(notify::INVALID_KE_PAYLOAD, group.to_be_bytes().to_vec())
    }

    /// The data read as one 2-byte number (INVALID_KE_PAYLOAD's group).
    pub fn data_u16(&self) -> Option<u16> {
        <[u8; 2]>::try_from(&self.data[..])
            .ok()
            .map(u16::from_be_bytes)
    }

    /// The data read as one 4-byte number (SET_WINDOW_SIZE, AUTH_LIFETIME).
    pub fn data_u32(&self) -> Option<u32> {
        <[u8; 4]>::try_from(&self.data[..])
            .ok()
            .map(u32::from_be_bytes)
    }

    /// The data read as a list of 2-byte numbers (SIGNATURE_HASH_ALGORITHMS,
    /// RFC 7427 section 4); `None` if the length is odd.
    pub fn data_u16_list(&self) -> Option<Vec<u16>> {
        let chunks = self.data.chunks_exact(2);
        let whole = chunks.remainder().is_empty();
        whole.then(|| chunks.map(|c| u16::from_be_bytes([c[0], c[1]])).collect())
    }

    pub fn is_error(&self) -> bool {
        notify::is_error(self.notify_type)
    }

    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let protocol_id = r.u8("IKEv2 Notify protocol ID")?;
        let spi_size = usize::from(r.u8("IKEv2 Notify SPI size")?);
        let notify_type = r.u16("IKEv2 Notify type")?;
        let spi = r.bytes(spi_size, "IKEv2 Notify SPI")?.to_vec();
        Ok(NotifyPayload {
            protocol_id,
            spi,
            notify_type,
            data: r.rest().to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let spi_size = u8::try_from(self.spi.len()).map_err(|_| Error::Invalid {
            field: "IKEv2 Notify SPI size",
            value: self.spi.len() as u64,
        })?;
        out.extend_from_slice(&[self.protocol_id, spi_size]);
        out.extend_from_slice(&self.notify_type.to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Delete payload (section 3.11): protocol ID, SPI size, count, SPIs. For the
/// IKE SA itself the SPI size and count are zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePayload {
    pub protocol_id: u8,
    /// Kept separately so that an empty list still says which size was meant.
    pub spi_size: u8,
    /// Each exactly `spi_size` bytes.
    pub spis: Vec<Vec<u8>>,
}

impl DeletePayload {
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let protocol_id = r.u8("IKEv2 Delete protocol ID")?;
        let spi_size = r.u8("IKEv2 Delete SPI size")?;
        let count = usize::from(r.u16("IKEv2 Delete number of SPIs")?);
        let need = count * usize::from(spi_size);
        if r.remaining() != need {
            return Err(Error::Malformed {
                field: "IKEv2 Delete SPIs",
                why: "length is not SPI size times number of SPIs",
            });
        }
        let spis = (0..count)
            .map(|_| {
                r.bytes(usize::from(spi_size), "IKEv2 Delete SPIs")
                    .map(<[u8]>::to_vec)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DeletePayload {
            protocol_id,
            spi_size,
            spis,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        if self
            .spis
            .iter()
            .any(|s| s.len() != usize::from(self.spi_size))
        {
            return Err(Error::Malformed {
                field: "IKEv2 Delete SPIs",
                why: "an SPI is not SPI size long",
            });
        }
        out.extend_from_slice(&[self.protocol_id, self.spi_size]);
        out.extend_from_slice(
            &len16(self.spis.len(), "IKEv2 Delete number of SPIs")?.to_be_bytes(),
        );
        for s in &self.spis {
            out.extend_from_slice(s);
        }
        Ok(())
    }
}

/// Vendor ID payload (section 3.12): opaque data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorIdPayload {
    pub data: Vec<u8>,
}

impl VendorIdPayload {
    pub fn parse(body: &[u8]) -> Result<Self> {
        Ok(VendorIdPayload {
            data: body.to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Encrypted and Authenticated payload (section 3.14). The codec keeps the
/// IV | ciphertext (with padding and Pad Length) | ICV blob whole: the split
/// depends on the negotiated transforms, which live in the crypto layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkPayload {
    /// Type of the first payload inside the ciphertext (the SK header's
    /// Next Payload field).
    pub inner_next_payload: u8,
    pub data: Vec<u8>,
}

impl SkPayload {
    pub fn parse(next_payload: u8, body: &[u8]) -> Result<Self> {
        Ok(SkPayload {
            inner_next_payload: next_payload,
            data: body.to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Encrypted and Authenticated Fragment payload (RFC 7383 section 2.5):
/// fragment number and total, then the IV | ciphertext | ICV blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkfPayload {
    /// First inner payload type in fragment 1; RFC 7383 says zero in the others.
    pub inner_next_payload: u8,
    /// 1-based.
    pub fragment_number: u16,
    pub total_fragments: u16,
    pub data: Vec<u8>,
}

/// Bytes of the SKF fields before the IV; part of the AAD.
pub const SKF_FIELDS_LEN: usize = 4;

impl SkfPayload {
    fn check(number: u16, total: u16) -> Result<()> {
        if number == 0 {
            return Err(Error::Invalid {
                field: "IKEv2 SKF fragment number",
                value: 0,
            });
        }
        if number > total {
            return Err(Error::Malformed {
                field: "IKEv2 SKF fragment number",
                why: "greater than total fragments (RFC 7383 section 2.5)",
            });
        }
        Ok(())
    }
    pub fn parse(next_payload: u8, body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let fragment_number = r.u16("IKEv2 SKF fragment number")?;
        let total_fragments = r.u16("IKEv2 SKF total fragments")?;
        Self::check(fragment_number, total_fragments)?;
        Ok(SkfPayload {
            inner_next_payload: next_payload,
            fragment_number,
            total_fragments,
            data: r.rest().to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        Self::check(self.fragment_number, self.total_fragments)?;
        out.extend_from_slice(&self.fragment_number.to_be_bytes());
        out.extend_from_slice(&self.total_fragments.to_be_bytes());
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// EAP payload (section 3.16): one EAP message (RFC 3748 section 4), whose own
/// Length must equal the payload body length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EapPayload {
    /// [`super::consts::eap`].
    pub code: u8,
    pub identifier: u8,
    /// Present for Request and Response, absent for every other code.
    pub eap_type: Option<u8>,
    /// Type-Data for Request/Response; for Success/Failure always empty; for
    /// other codes (RFC 6696 Initiate/Finish) everything after Length.
    pub data: Vec<u8>,
}

impl EapPayload {
    fn has_type(code: u8) -> bool {
        code == eap::REQUEST || code == eap::RESPONSE
    }
    fn check(&self) -> Result<()> {
        if Self::has_type(self.code) != self.eap_type.is_some() {
            return Err(Error::Malformed {
                field: "IKEv2 EAP type",
                why: "present exactly for Request and Response",
            });
        }
        if (self.code == eap::SUCCESS || self.code == eap::FAILURE) && !self.data.is_empty() {
            return Err(Error::Malformed {
                field: "IKEv2 EAP length",
                why: "Success and Failure carry no data",
            });
        }
        Ok(())
    }
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let code = r.u8("IKEv2 EAP code")?;
        let identifier = r.u8("IKEv2 EAP identifier")?;
        let len = r.u16("IKEv2 EAP length")?;
        if usize::from(len) != body.len() {
            return Err(Error::Malformed {
                field: "IKEv2 EAP length",
                why: "differs from the payload length",
            });
        }
        let eap_type = if Self::has_type(code) {
            Some(r.u8("IKEv2 EAP type")?)
        } else {
            None
        };
        let p = EapPayload {
            code,
            identifier,
            eap_type,
            data: r.rest().to_vec(),
        };
        p.check()?;
        Ok(p)
    }
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        self.check()?;
        let len = 4 + usize::from(self.eap_type.is_some()) + self.data.len();
        out.extend_from_slice(&[self.code, self.identifier]);
        out.extend_from_slice(&len16(len, "IKEv2 EAP length")?.to_be_bytes());
        out.extend(self.eap_type);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}
