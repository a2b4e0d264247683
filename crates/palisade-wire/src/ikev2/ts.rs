//! Traffic Selector payloads, TSi and TSr (RFC 7296 section 3.13).
//!
//! ```text
//! | Number of TSs |                 RESERVED                      |
//! ~                       <Traffic Selectors>                     ~
//!
//! |   TS Type     |IP Protocol ID*|       Selector Length         |
//! |           Start Port*         |           End Port*           |
//! ~                         Starting Address*                     ~
//! ~                         Ending Address*                       ~
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use super::chain::Reader;
use super::consts::ts;
use crate::{Error, Result};

const V4_LEN: u16 = 16;
const V6_LEN: u16 = 40;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsPayload {
    pub selectors: Vec<TrafficSelector>,
}

/// One selector: an IP protocol (0 = any), a port range and an address range.
/// Start > end is kept as sent; deciding what it means is policy's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficSelector {
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub addresses: AddressRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRange {
    /// TS_IPV4_ADDR_RANGE (7).
    V4 { start: Ipv4Addr, end: Ipv4Addr },
    /// TS_IPV6_ADDR_RANGE (8).
    V6 { start: Ipv6Addr, end: Ipv6Addr },
}

impl TrafficSelector {
    pub fn ts_type(&self) -> u8 {
        match self.addresses {
            AddressRange::V4 { .. } => ts::IPV4_ADDR_RANGE,
            AddressRange::V6 { .. } => ts::IPV6_ADDR_RANGE,
        }
    }

    fn parse(r: &mut Reader<'_>) -> Result<TrafficSelector> {
        let ts_type = r.u8("type")?;
        let ip_protocol = r.u8("IP protocol ID")?;
        let len = r.u16("selector length")?;
        let want = match ts_type {
            ts::IPV4_ADDR_RANGE => V4_LEN,
            ts::IPV6_ADDR_RANGE => V6_LEN,
            other => {
                return Err(Error::Invalid {
                    field: "type",
                    value: u64::from(other),
                })
            }
        };
        if len != want {
            return Err(Error::Invalid {
                field: "selector length",
                value: u64::from(len),
            });
        }
        let start_port = r.u16("start port")?;
        let end_port = r.u16("end port")?;
        let addresses = if ts_type == ts::IPV4_ADDR_RANGE {
            let start = Ipv4Addr::from(r.array::<4>("starting address")?);
            AddressRange::V4 {
                start,
                end: Ipv4Addr::from(r.array::<4>("ending address")?),
            }
        } else {
            let start = Ipv6Addr::from(r.array::<16>("starting address")?);
            AddressRange::V6 {
                start,
                end: Ipv6Addr::from(r.array::<16>("ending address")?),
            }
        };
        Ok(TrafficSelector {
            ip_protocol,
            start_port,
            end_port,
            addresses,
        })
    }

    fn emit(&self, out: &mut Vec<u8>) {
        let len = if matches!(self.addresses, AddressRange::V4 { .. }) {
            V4_LEN
        } else {
            V6_LEN
        };
        out.extend_from_slice(&[self.ts_type(), self.ip_protocol]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.start_port.to_be_bytes());
        out.extend_from_slice(&self.end_port.to_be_bytes());
        match self.addresses {
            AddressRange::V4 { start, end } => {
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            AddressRange::V6 { start, end } => {
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
        }
    }
}

impl TsPayload {
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let count = usize::from(r.u8("IKEv2 TS number of TSs")?);
        r.bytes(3, "IKEv2 TS reserved")?;
        let selectors = (1..=count)
            .map(|i| TrafficSelector::parse(&mut r).map_err(|e| e.within("IKEv2 TS", i)))
            .collect::<Result<Vec<_>>>()?;
        if r.remaining() != 0 {
            return Err(Error::Malformed {
                field: "IKEv2 TS number of TSs",
                why: "bytes follow the last selector",
            });
        }
        Ok(TsPayload { selectors })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let count = u8::try_from(self.selectors.len()).map_err(|_| Error::Invalid {
            field: "IKEv2 TS number of TSs",
            value: self.selectors.len() as u64,
        })?;
        out.extend_from_slice(&[count, 0, 0, 0]);
        for s in &self.selectors {
            s.emit(out);
        }
        Ok(())
    }
}
