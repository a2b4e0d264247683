//! AH (RFC 4302) seal and open, transport and tunnel mode, IPv4 and IPv6.
//!
//! The ICV covers the whole IP packet with the fields that change in transit
//! zeroed (RFC 4302 3.3.3.1): IPv4 TOS, flags, fragment offset, TTL, header
//! checksum and mutable options; IPv6 class, flow label, hop limit and the
//! data of options with the change-en-route bit; the IPv6 destination and
//! routing header as they will look at the final destination; and the AH ICV
//! field itself. With ESN the high 32 bits of the sequence number are
//! appended after the packet for the ICV only ("the high-order 32 bits are
//! ... included in the ICV computation ... but not transmitted", RFC 4302
//! 2.5.1; appended at the end, as Linux and strongSwan do).
//!
//! The mutable fields are zeroed in place and restored afterwards, from a
//! copy on the stack of the headers that precede the upper layer, so that no
//! per-packet allocation or packet copy is needed.

use palisade_wire::ah as wah;
use palisade_wire::ip::{IpProtocol, Version};
use palisade_wire::{ipv4, ipv6, Error as WireError};

use crate::buf::PacketBuf;
use crate::encap::{self, Inner, Outer};
use crate::lifetime::Timestamp;
use crate::sa::{Mode, OpenError, Opened, SealError, Sealed, SecurityAssociation};

/// Most header bytes (IP header and extension headers up to the upper layer)
/// whose mutable fields can be zeroed for one ICV; longer chains are refused.
const MAX_MUTABLE_PREFIX: usize = 1024;

/// Largest ICV handled (SHA-512 untruncated).
const MAX_ICV: usize = 64;

fn wire(field: &'static str, why: &'static str) -> WireError {
    WireError::Malformed { field, why }
}

/// Length of the headers whose mutable parts are zeroed: the IPv4 header, or
/// the IPv6 header and every extension header up to the upper layer.
fn mutable_prefix(pkt: &[u8], version: Version) -> Result<usize, WireError> {
    match version {
        Version::V4 => Ok(ipv4::Packet::new_checked(pkt)?.header_len()),
        Version::V6 => Ok(ipv6::Packet::new_checked(pkt)?.upper_layer()?.offset),
    }
}

/// Zeroes the mutable fields, runs `f` over the packet, and restores them.
/// The AH ICV field must already be zero.
fn with_immutable_view<R>(
    pkt: &mut [u8],
    version: Version,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, WireError> {
    let n = mutable_prefix(pkt, version)?;
    let mut saved = [0u8; MAX_MUTABLE_PREFIX];
    let saved = saved.get_mut(..n).ok_or(wire(
        "IP extension headers",
        "longer than AH processing supports (1024 bytes)",
    ))?;
    saved.copy_from_slice(pkt.get(..n).ok_or(wire("IP header", "truncated"))?);
    let zeroed = match version {
        Version::V4 => ipv4::Packet::new_unchecked(&mut *pkt).zero_mutable_fields(),
        Version::V6 => ipv6::prepare_for_ah_icv(pkt),
    };
    let r = zeroed.map(|()| f(pkt));
    if let Some(p) = pkt.get_mut(..n) {
        p.copy_from_slice(saved);
    }
    r
}

fn compute_icv(
    sa: &SecurityAssociation,
    pkt: &mut [u8],
    version: Version,
    seq: u64,
    out: &mut [u8],
) -> Result<(), SealError> {
    let integ = sa
        .crypto
        .integ()
        .ok_or(SealError::WrongUse("AH without integrity"))?;
    let hi = ((seq >> 32) as u32).to_be_bytes();
    let esn = sa.esn;
    with_immutable_view(pkt, version, |p| {
        if esn {
            integ.compute(&[p, &hi], out)
        } else {
            integ.compute(&[p], out)
        }
    })??;
    Ok(())
}

fn write_ah(h: &mut [u8], next: IpProtocol, spi: u32, seq: u64) -> Result<(), SealError> {
    let len = h.len();
    let mut p = wah::Packet::new_unchecked(h);
    p.set_next_header(next);
    // "the length of AH in 32-bit words (4-byte units), minus 2" (RFC 4302 2.2)
    p.set_payload_len(
        u8::try_from(len / 4 - 2).map_err(|_| wire("AH payload length", "too long"))?,
    );
    p.set_reserved(0);
    p.set_spi(spi);
    p.set_seq_number(seq as u32);
    p.zero_icv();
    Ok(())
}

/// AH seal (see [`SecurityAssociation::seal`], which counts errors).
pub(crate) fn seal(
    sa: &mut SecurityAssociation,
    now: Timestamp,
    buf: &mut PacketBuf<'_>,
) -> Result<Sealed, SealError> {
    let icv_len = sa.crypto.icv_len();
    let (ah_off, version, seq, lifetime) = match sa.mode {
        Mode::Tunnel { src, dst } => {
            let inner = encap::inner_info(buf.data())?;
            buf.truncate(inner.total_len);
            let version = if dst.is_ipv4() {
                Version::V4
            } else {
                Version::V6
            };
            let ah_len = wah::header_len_for(version, icv_len)?;
            let outer = encap::outer_len(&dst);
            if buf.headroom() < outer + ah_len {
                return Err(crate::buf::NoRoom {
                    op: "AH seal (headroom)",
                    need: outer + ah_len,
                    have: buf.headroom(),
                }
                .into());
            }
            let (seq, ev) = sa.next_seq(now, inner.total_len)?;
            let next = inner
                .version
                .unwrap_or(Version::V4)
                .encapsulation_protocol();
            write_ah(buf.prepend(ah_len)?, next, sa.spi, seq)?;
            sa.ip_ident = sa.ip_ident.wrapping_add(1);
            let o = Outer {
                src,
                dst,
                protocol: IpProtocol::AH,
                payload_len: buf.len(),
                inner: &inner,
                df: sa.df,
                ttl: sa.outer_ttl,
                ident: sa.ip_ident,
            };
            encap::write_outer(buf.prepend(outer)?, &o)?;
            (outer, version, seq, ev)
        }
        Mode::Transport => {
            let ip = encap::insert_point(buf.data())?;
            buf.truncate(ip.end);
            let ah_len = wah::header_len_for(ip.version, icv_len)?;
            if buf.headroom() < ah_len {
                return Err(crate::buf::NoRoom {
                    op: "AH seal (headroom)",
                    need: ah_len,
                    have: buf.headroom(),
                }
                .into());
            }
            let (seq, ev) = sa.next_seq(now, ip.end - ip.at)?;
            write_ah(buf.insert_gap(ip.at, ah_len)?, ip.next, sa.spi, seq)?;
            let total = buf.len();
            let pkt = buf.data_mut();
            if let Some(b) = pkt.get_mut(ip.nh_pos) {
                *b = IpProtocol::AH.0;
            }
            encap::set_ip_len(pkt, ip.version, total)?;
            (ip.at, ip.version, seq, ev)
        }
    };
    let mut icv = [0u8; MAX_ICV];
    let icv = icv
        .get_mut(..icv_len)
        .ok_or(SealError::WrongUse("ICV longer than 64 bytes"))?;
    compute_icv(sa, buf.data_mut(), version, seq, icv)?;
    let pkt = buf.data_mut();
    pkt.get_mut(ah_off + wah::FIXED_LEN..ah_off + wah::FIXED_LEN + icv_len)
        .ok_or(wire("AH ICV", "outside the packet"))?
        .copy_from_slice(icv);
    if version == Version::V4 {
        // The checksum was zeroed and restored around the ICV; the length
        // changed before, so it was refreshed by set_ip_len / write_outer.
        ipv4::Packet::new_unchecked(&mut *pkt).fill_checksum();
    }
    sa.counters.count_out(buf.len() as u64);
    Ok(Sealed {
        seq,
        l4_offset: ah_off,
        lifetime,
        bare: false,
    })
}

/// AH open (see [`SecurityAssociation::open`], which counts errors).
pub(crate) fn open(
    sa: &mut SecurityAssociation,
    now: Timestamp,
    buf: &mut PacketBuf<'_>,
) -> Result<Opened, OpenError> {
    let loc = encap::locate(buf.data(), IpProtocol::AH)?;
    buf.truncate(loc.end);
    let icv_len = sa.crypto.icv_len();
    let (spi, seq_low, next, ah_len) = {
        let p = wah::Packet::new_checked(buf.data().get(loc.l4_off..).unwrap_or(&[]))?;
        p.check_icv_len(loc.version, icv_len)?;
        (p.spi(), p.seq_number(), p.next_header(), p.header_len())
    };
    if spi != sa.spi {
        return Err(OpenError::WrongSpi {
            got: spi,
            want: sa.spi,
        });
    }
    let seq = sa.pre_icv(seq_low)?;
    let integ = sa.crypto.integ().ok_or(OpenError::IcvFailure)?;
    let mut icv = [0u8; MAX_ICV];
    let icv = icv.get_mut(..icv_len).ok_or(OpenError::IcvFailure)?;
    {
        let pkt = buf.data_mut();
        let mut p = wah::Packet::new_unchecked(pkt.get_mut(loc.l4_off..).unwrap_or(&mut []));
        icv.copy_from_slice(p.icv(icv_len)?);
        p.zero_icv();
    }
    let hi = ((seq >> 32) as u32).to_be_bytes();
    let esn = sa.esn;
    with_immutable_view(buf.data_mut(), loc.version, |p| {
        if esn {
            integ.verify(&[p, &hi], icv)
        } else {
            integ.verify(&[p], icv)
        }
    })?
    .map_err(|_| OpenError::IcvFailure)?;
    let lifetime = sa.post_icv(now, seq, buf.len() - loc.l4_off - ah_len)?;
    match sa.mode {
        Mode::Tunnel { .. } => {
            let expect = match next {
                IpProtocol::IPV4 => Version::V4,
                IpProtocol::IPV6 => Version::V6,
                _ => {
                    return Err(WireError::Invalid {
                        field: "AH next header (tunnel mode)",
                        value: next.0.into(),
                    }
                    .into())
                }
            };
            let inner: Inner =
                encap::inner_info(buf.data().get(loc.l4_off + ah_len..).unwrap_or(&[]))?;
            if inner.version != Some(expect) {
                return Err(wire("inner IP version", "does not match the AH next header").into());
            }
            let ecn = encap::ecn_decapsulate(inner.ecn, loc.ecn).ok_or(OpenError::EcnDrop)?;
            buf.trim_front(loc.l4_off + ah_len)?;
            buf.truncate(inner.total_len);
            if ecn != inner.ecn {
                encap::set_ecn(buf.data_mut(), ecn);
            }
        }
        Mode::Transport => {
            encap::set_next_header(buf.data_mut(), loc.version, loc.nh_pos, next);
            buf.remove_gap(loc.l4_off, ah_len)?;
            let total = buf.len();
            encap::set_ip_len(buf.data_mut(), loc.version, total)?;
        }
    }
    sa.counters.count_in(buf.len() as u64);
    Ok(Opened::Packet {
        seq,
        next_header: next,
        lifetime,
    })
}
