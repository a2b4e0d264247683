//! The Security Association payload (RFC 7296 section 3.3): proposals, each
//! holding transforms, each holding attributes.
//!
//! ```text
//! Proposal substructure:
//! | Last Substruc |   RESERVED    |         Proposal Length       |
//! | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
//! ~                        SPI (variable)                         ~
//! ~                        <Transforms>                           ~
//!
//! Transform substructure:
//! | Last Substruc |   RESERVED    |        Transform Length       |
//! |Transform Type |   RESERVED    |          Transform ID         |
//! ~                      Transform Attributes                     ~
//!
//! Attribute:
//! |A|       Attribute Type        |    AF=0  Attribute Length     |
//! |                               |    AF=1  Attribute Value      |
//! |                   AF=0  Attribute Value (variable)            |
//! ```

use super::chain::{len16, patch16, Reader};
use super::consts::transform_attr;
use crate::{Error, Result};

/// "Last Substruc" values (RFC 7296 sections 3.3.1 and 3.3.2).
const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;

const PROPOSAL_HEADER_LEN: usize = 8;
const TRANSFORM_HEADER_LEN: usize = 8;
const ATTR_FORMAT_TV: u16 = 0x8000;

/// An SA payload: the proposals in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaPayload {
    pub proposals: Vec<Proposal>,
}

/// One proposal. RFC 7296 wants the initiator's numbered 1, 2, ... and a
/// responder to echo the number it picked; that is policy, so the number is
/// kept as received and not checked here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub number: u8,
    /// [`super::consts::protocol`]: IKE, AH or ESP.
    pub protocol_id: u8,
    /// Empty in IKE_SA_INIT; 8 bytes for an IKE SA rekey; 4 for AH/ESP.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// [`super::consts::transform`].
    pub transform_type: u8,
    /// IANA transform ID within the type (ENCR_AES_GCM_16 = 20, ...).
    pub transform_id: u16,
    pub attributes: Vec<TransformAttribute>,
}

/// A transform attribute. The format bit is part of the representation
/// because RFC 7296 fixes it per attribute type (Key Length is always TV).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformAttribute {
    /// AF=1: a 2-byte value in the header. `attr_type` is 15 bits.
    Tv { attr_type: u16, value: u16 },
    /// AF=0: a length-prefixed value. `attr_type` is 15 bits.
    Tlv { attr_type: u16, value: Vec<u8> },
}

impl Transform {
    /// A transform without attributes.
    pub fn new(transform_type: u8, transform_id: u16) -> Transform {
        Transform {
            transform_type,
            transform_id,
            attributes: Vec::new(),
        }
    }

    /// A transform with a Key Length attribute (AES-CBC, AES-GCM, ...).
    pub fn with_key_length(transform_type: u8, transform_id: u16, bits: u16) -> Transform {
        Transform {
            transform_type,
            transform_id,
            attributes: vec![TransformAttribute::Tv {
                attr_type: transform_attr::KEY_LENGTH,
                value: bits,
            }],
        }
    }

    /// The Key Length attribute in bits, if present.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            TransformAttribute::Tv {
                attr_type: transform_attr::KEY_LENGTH,
                value,
            } => Some(*value),
            _ => None,
        })
    }
}

impl SaPayload {
    pub fn parse(body: &[u8]) -> Result<SaPayload> {
        if body.is_empty() {
            return Err(Error::Malformed {
                field: "IKEv2 SA",
                why: "no proposals",
            });
        }
        let mut r = Reader::new(body);
        let mut proposals = Vec::new();
        loop {
            let index = proposals.len() + 1;
            let (p, last) =
                parse_proposal(&mut r).map_err(|e| e.within("IKEv2 SA proposal", index))?;
            proposals.push(p);
            match (last, r.remaining()) {
                (LAST, 0) => return Ok(SaPayload { proposals }),
                (MORE_PROPOSALS, n) if n > 0 => continue,
                (LAST, _) => {
                    return Err(Error::Malformed {
                        field: "last substruc",
                        why: "says last but bytes follow",
                    }
                    .within("IKEv2 SA proposal", index))
                }
                (MORE_PROPOSALS, _) => {
                    return Err(Error::Malformed {
                        field: "last substruc",
                        why: "says more but none follow",
                    }
                    .within("IKEv2 SA proposal", index))
                }
                (v, _) => {
                    return Err(Error::Invalid {
                        field: "last substruc",
                        value: u64::from(v),
                    }
                    .within("IKEv2 SA proposal", index))
                }
            }
        }
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.proposals.is_empty() {
            return Err(Error::Malformed {
                field: "IKEv2 SA",
                why: "no proposals",
            });
        }
        for (i, p) in self.proposals.iter().enumerate() {
            let last = if i + 1 == self.proposals.len() {
                LAST
            } else {
                MORE_PROPOSALS
            };
            emit_proposal(p, last, out).map_err(|e| e.within("IKEv2 SA proposal", i + 1))?;
        }
        Ok(())
    }
}

fn parse_proposal(r: &mut Reader<'_>) -> Result<(Proposal, u8)> {
    let last = r.u8("last substruc")?;
    r.u8("reserved")?;
    let len = usize::from(r.u16("length")?);
    if len < PROPOSAL_HEADER_LEN {
        return Err(Error::Invalid {
            field: "length",
            value: len as u64,
        });
    }
    let mut body = Reader::new(r.bytes(len - 4, "length")?);
    let number = body.u8("number")?;
    let protocol_id = body.u8("protocol ID")?;
    let spi_size = usize::from(body.u8("SPI size")?);
    let count = usize::from(body.u8("number of transforms")?);
    let spi = body.bytes(spi_size, "SPI")?.to_vec();
    let mut transforms = Vec::with_capacity(count);
    for i in 1..=count {
        let (t, t_last) = parse_transform(&mut body).map_err(|e| e.within("transform", i))?;
        let expected = if i == count { LAST } else { MORE_TRANSFORMS };
        if t_last != expected {
            let e = if t_last == LAST || t_last == MORE_TRANSFORMS {
                Error::Malformed {
                    field: "last substruc",
                    why: "disagrees with the number of transforms",
                }
            } else {
                Error::Invalid {
                    field: "last substruc",
                    value: u64::from(t_last),
                }
            };
            return Err(e.within("transform", i));
        }
        transforms.push(t);
    }
    if body.remaining() != 0 {
        return Err(Error::Malformed {
            field: "length",
            why: "longer than its transforms",
        });
    }
    Ok((
        Proposal {
            number,
            protocol_id,
            spi,
            transforms,
        },
        last,
    ))
}

fn parse_transform(r: &mut Reader<'_>) -> Result<(Transform, u8)> {
    let last = r.u8("last substruc")?;
    r.u8("reserved")?;
    let len = usize::from(r.u16("length")?);
    if len < TRANSFORM_HEADER_LEN {
        return Err(Error::Invalid {
            field: "length",
            value: len as u64,
        });
    }
    let mut body = Reader::new(r.bytes(len - 4, "length")?);
    let transform_type = body.u8("type")?;
    body.u8("reserved")?;
    let transform_id = body.u16("ID")?;
    let mut attributes = Vec::new();
    while body.remaining() > 0 {
        let a =
            parse_attribute(&mut body).map_err(|e| e.within("attribute", attributes.len() + 1))?;
        attributes.push(a);
    }
    Ok((
        Transform {
            transform_type,
            transform_id,
            attributes,
        },
        last,
    ))
}

fn parse_attribute(r: &mut Reader<'_>) -> Result<TransformAttribute> {
    let t = r.u16("type")?;
    let attr_type = t & !ATTR_FORMAT_TV;
    if t & ATTR_FORMAT_TV != 0 {
        Ok(TransformAttribute::Tv {
            attr_type,
            value: r.u16("value")?,
        })
    } else {
        let len = usize::from(r.u16("length")?);
        Ok(TransformAttribute::Tlv {
            attr_type,
            value: r.bytes(len, "length")?.to_vec(),
        })
    }
}

fn emit_proposal(p: &Proposal, last: u8, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    let spi_size = u8::try_from(p.spi.len()).map_err(|_| Error::Invalid {
        field: "SPI size",
        value: p.spi.len() as u64,
    })?;
    let count = u8::try_from(p.transforms.len()).map_err(|_| Error::Invalid {
        field: "number of transforms",
        value: p.transforms.len() as u64,
    })?;
    out.extend_from_slice(&[last, 0, 0, 0, p.number, p.protocol_id, spi_size, count]);
    out.extend_from_slice(&p.spi);
    for (i, t) in p.transforms.iter().enumerate() {
        let t_last = if i + 1 == p.transforms.len() {
            LAST
        } else {
            MORE_TRANSFORMS
        };
        emit_transform(t, t_last, out).map_err(|e| e.within("transform", i + 1))?;
    }
    let len = len16(out.len() - start, "length")?;
    patch16(out, start + 2, len);
    Ok(())
}

fn emit_transform(t: &Transform, last: u8, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[last, 0, 0, 0, t.transform_type, 0]);
    out.extend_from_slice(&t.transform_id.to_be_bytes());
    for (i, a) in t.attributes.iter().enumerate() {
        emit_attribute(a, out).map_err(|e| e.within("attribute", i + 1))?;
    }
    let len = len16(out.len() - start, "length")?;
    patch16(out, start + 2, len);
    Ok(())
}

fn emit_attribute(a: &TransformAttribute, out: &mut Vec<u8>) -> Result<()> {
    let check = |t: u16| {
        if t & ATTR_FORMAT_TV != 0 {
            Err(Error::Invalid {
                field: "type",
                value: u64::from(t),
            })
        } else {
            Ok(t)
        }
    };
    match a {
        TransformAttribute::Tv { attr_type, value } => {
            out.extend_from_slice(&(check(*attr_type)? | ATTR_FORMAT_TV).to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        TransformAttribute::Tlv { attr_type, value } => {
            out.extend_from_slice(&check(*attr_type)?.to_be_bytes());
            out.extend_from_slice(&len16(value.len(), "length")?.to_be_bytes());
            out.extend_from_slice(value);
        }
    }
    Ok(())
}
