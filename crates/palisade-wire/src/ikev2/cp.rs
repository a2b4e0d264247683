//! Configuration payload (RFC 7296 section 3.15).
//!
//! ```text
//! |   CFG Type    |                    RESERVED                   |
//! ~                   Configuration Attributes                    ~
//!
//! |R|         Attribute Type      |            Length             |
//! ~                             Value                             ~
//! ```

use super::chain::{len16, Reader};
use crate::{Error, Result};

const RESERVED_BIT: u16 = 0x8000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpPayload {
    /// [`super::consts::cfg`]: REQUEST, REPLY, SET, ACK.
    pub cfg_type: u8,
    pub attributes: Vec<CpAttribute>,
}

/// One attribute; an empty value is how a request asks for something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpAttribute {
    /// 15 bits; [`super::consts::cfg`] INTERNAL_IP4_ADDRESS etc.
    pub attr_type: u16,
    pub value: Vec<u8>,
}

impl CpPayload {
    /// The R bit is reserved: ignored on receipt, sent clear.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let cfg_type = r.u8("IKEv2 CP type")?;
        r.bytes(3, "IKEv2 CP reserved")?;
        let mut attributes = Vec::new();
        while r.remaining() > 0 {
            let at = |e: Error, n: usize| e.within("IKEv2 CP attribute", n);
            let n = attributes.len() + 1;
            let attr_type = r.u16("type").map_err(|e| at(e, n))? & !RESERVED_BIT;
            let len = usize::from(r.u16("length").map_err(|e| at(e, n))?);
            let value = r.bytes(len, "length").map_err(|e| at(e, n))?.to_vec();
            attributes.push(CpAttribute { attr_type, value });
        }
        Ok(CpPayload {
            cfg_type,
            attributes,
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&[self.cfg_type, 0, 0, 0]);
        for (i, a) in self.attributes.iter().enumerate() {
            if a.attr_type & RESERVED_BIT != 0 {
                return Err(Error::Invalid {
                    field: "type",
                    value: u64::from(a.attr_type),
                }
                .within("IKEv2 CP attribute", i + 1));
            }
            out.extend_from_slice(&a.attr_type.to_be_bytes());
            let len = len16(a.value.len(), "length")
                .map_err(|e| e.within("IKEv2 CP attribute", i + 1))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&a.value);
        }
        Ok(())
    }
}
