//! ESP (RFC 4303) seal and open, in place, transport and tunnel mode, IPv4
//! and IPv6, raw or in UDP (RFC 3948).
//!
//! # The transforms and what they cover
//!
//! * AEAD (AES-GCM RFC 4106, AES-CCM RFC 4309, ChaCha20-Poly1305 RFC 7634):
//!   the payload is encrypted, "the AAD is the SPI and (32-bit or 64-bit)
//!   sequence number" -- with ESN, SPI || seq high || seq low (RFC 4106 5).
//! * ENCR_NULL_AUTH_AES_GMAC (RFC 4543 3): nothing is encrypted; the AAD is
//!   the SPI, the sequence number (64-bit with ESN), the IV and the whole
//!   plaintext, padding and trailer included (the crypto crate's GMAC `Aead`
//!   authenticates `aad | iv | in_out`, so ESP passes the same AAD as for the
//!   other AEADs).
//! * A cipher (CBC, CTR) or ENCR_NULL, plus an INTEG transform: the ICV covers
//!   the ESP header, IV and ciphertext; with ESN "the high-order 32 bits ...
//!   are appended after the Next Header field" for the ICV computation only
//!   (RFC 4303 3.3.2.1, RFC 4304 2).
//!
//! # IVs
//!
//! Counter modes and AEADs must never repeat an IV under one key; the IV is
//! the 64-bit sequence number (big endian), which the SA never repeats (the
//! counter refuses to cycle, RFC 4303 3.3.3). This is what RFC 4106 3.1
//! suggests ("the IV ... MAY be a counter") and what Linux's `seqiv` does.
//! CBC needs an unpredictable IV (RFC 3602 3); it comes from aws-lc-rs's
//! CSPRNG, filling a stack array (no allocation).

use palisade_crypto::aead::Aead;
use palisade_crypto::cipher::Cipher;
use palisade_crypto::integ::Integ;
use palisade_crypto::registry::{self, encr};
use palisade_crypto::Policy;
use palisade_wire::esp::{self as wesp, Trailer};
use palisade_wire::ip::{IpProtocol, Version};
use palisade_wire::{udp, udp_encap, Error as WireError};

use crate::buf::PacketBuf;
use crate::encap::{self, Inner, Located, Outer};
use crate::lifetime::Timestamp;
use crate::sa::{
    ConfigError, Encap, EncrConfig, IntegConfig, Mode, OpenError, Opened, SealError, Sealed,
    SecurityAssociation,
};

/// AES-GCM's block: outbound padding fills the last one (see
/// [`EspCrypto::pad_align`]).
const GCM_PAD_ALIGN: usize = 16;

/// How a cipher's IV is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IvKind {
    /// Unpredictable (CBC): from the CSPRNG.
    Random,
    /// Unique (CTR, AEADs): the sequence number.
    Counter,
}

/// The keyed transforms of one SA, with the sizes every packet needs fixed
/// when the SA is made (not asked of the transforms per packet).
pub(crate) struct EspCrypto {
    t: Transforms,
    iv_len: usize,
    icv_len: usize,
    block: usize,
    align: usize,
    iv_kind: IvKind,
}

/// The keyed transforms themselves.
enum Transforms {
    Aead {
        aead: Box<dyn Aead>,
        name: &'static str,
        /// What outbound padding aligns the ciphertext to (see
        /// [`EspCrypto::pad_align`]).
        align: usize,
    },
    Gmac {
        aead: Box<dyn Aead>,
    },
    Split {
        cipher: Option<Box<dyn Cipher>>,
        iv: IvKind,
        integ: Option<Box<dyn Integ>>,
        name: &'static str,
    },
}

fn is_aead(id: u16) -> bool {
    matches!(
        id,
        encr::AES_CCM_8
            | encr::AES_CCM_12
            | encr::AES_CCM_16
            | encr::AES_GCM_8
            | encr::AES_GCM_12
            | encr::AES_GCM_16
            | encr::CAMELLIA_CCM_8
            | encr::CAMELLIA_CCM_12
            | encr::CAMELLIA_CCM_16
            | encr::CHACHA20_POLY1305
    )
}

fn make_integ(
    integ: Option<&IntegConfig>,
    policy: Policy,
) -> Result<Option<Box<dyn Integ>>, ConfigError> {
    match integ {
        None => Ok(None),
        Some(i) if i.id == registry::integ_id::NONE => Ok(None),
        Some(i) => Ok(Some(registry::integ(i.id, i.key.as_bytes(), policy)?)),
    }
}

impl EspCrypto {
    pub(crate) fn new_esp(
        encr_cfg: Option<&EncrConfig>,
        integ: Option<&IntegConfig>,
        policy: Policy,
    ) -> Result<Self, ConfigError> {
        let Some(e) = encr_cfg else {
            return Err(ConfigError::Transform(
                "ESP needs an encryption transform (ENCR_NULL = 11 for integrity-only ESP)",
            ));
        };
        let integ = make_integ(integ, policy)?;
        if is_aead(e.id) || e.id == encr::NULL_AUTH_AES_GMAC {
            if integ.is_some() {
                return Err(ConfigError::Transform(
                    "an AEAD (GCM, CCM, ChaCha20-Poly1305, GMAC) takes no integrity transform (RFC 7296 3.3)",
                ));
            }
            let aead = registry::aead(e.id, e.key_bits, e.keymat.as_bytes(), policy)?;
            return Ok(EspCrypto::fix(if e.id == encr::NULL_AUTH_AES_GMAC {
                Transforms::Gmac { aead }
            } else {
                Transforms::Aead {
                    aead,
                    name: registry::encr_name(e.id).unwrap_or("AEAD"),
                    align: if matches!(e.id, encr::AES_GCM_8 | encr::AES_GCM_12 | encr::AES_GCM_16)
                    {
                        GCM_PAD_ALIGN
                    } else {
                        1
                    },
                }
            }));
        }
        if e.id == encr::NULL {
            if integ.is_none() {
                return Err(ConfigError::Transform(
                    "ENCR_NULL with no integrity transform: ESP would protect nothing (RFC 4303 3.2 forbids it)",
                ));
            }
            return Ok(EspCrypto::fix(Transforms::Split {
                cipher: None,
                iv: IvKind::Counter,
                integ,
                name: "ENCR_NULL",
            }));
        }
        if integ.is_none() && !policy.allow_insecure {
            return Err(ConfigError::Transform(
                "encryption without integrity is open to active attacks (RFC 4303 3.2); set allow_insecure to use it",
            ));
        }
        let cipher = registry::cipher(e.id, e.key_bits, e.keymat.as_bytes(), policy)?;
        let iv = if matches!(e.id, encr::AES_CTR | encr::CAMELLIA_CTR) {
            IvKind::Counter
        } else {
            IvKind::Random
        };
        Ok(EspCrypto::fix(Transforms::Split {
            cipher: Some(cipher),
            iv,
            integ,
            name: registry::encr_name(e.id).unwrap_or("cipher"),
        }))
    }

    pub(crate) fn new_ah(integ: Option<&IntegConfig>, policy: Policy) -> Result<Self, ConfigError> {
        let integ = make_integ(integ, policy)?;
        if integ.is_none() {
            return Err(ConfigError::Transform("AH needs an integrity transform"));
        }
        Ok(EspCrypto::fix(Transforms::Split {
            cipher: None,
            iv: IvKind::Counter,
            integ,
            name: "AH",
        }))
    }

    /// `t` with its sizes worked out once.
    fn fix(t: Transforms) -> Self {
        let (iv_len, icv_len, block, align, iv_kind) = match &t {
            Transforms::Aead { aead, align, .. } => {
                (aead.iv_len(), aead.icv_len(), 1, *align, IvKind::Counter)
            }
            Transforms::Gmac { aead } => (aead.iv_len(), aead.icv_len(), 1, 1, IvKind::Counter),
            Transforms::Split {
                cipher, iv, integ, ..
            } => {
                // Padding must reach the cipher's block only where the
                // cipher works in blocks (CBC); CTR is a stream.
                let block = match (cipher, iv) {
                    (Some(c), IvKind::Random) => c.block_size(),
                    _ => 1,
                };
                (
                    cipher.as_ref().map_or(0, |c| c.iv_len()),
                    integ.as_ref().map_or(0, |i| i.icv_len()),
                    block,
                    block,
                    *iv,
                )
            }
        };
        EspCrypto {
            t,
            iv_len,
            icv_len,
            block,
            align,
            iv_kind,
        }
    }

    pub(crate) fn describe(&self) -> &'static str {
        match &self.t {
            Transforms::Aead { name, .. } => name,
            Transforms::Gmac { .. } => "ENCR_NULL_AUTH_AES_GMAC",
            Transforms::Split { name, .. } => name,
        }
    }

    #[inline]
    pub(crate) fn iv_len(&self) -> usize {
        self.iv_len
    }

    #[inline]
    pub(crate) fn icv_len(&self) -> usize {
        self.icv_len
    }

    /// The block size padding must reach (before the 4-byte rule of RFC 4303
    /// 2.4, which `wire::esp::alignment` adds).
    #[inline]
    pub(crate) fn block_size(&self) -> usize {
        self.block
    }

    /// The block size outbound padding reaches: the cipher's for CBC, and
    /// for AES-GCM whole 16-byte blocks although GCM needs none. RFC 4303
    /// 2.4 lets a sender pad more than it must, and GCM libraries (ring's
    /// VAES code here) take a slower path for a final partial block: about
    /// 60 ns of a 1400-byte seal, and again on open, for at most 12 more
    /// bytes on the wire. Inbound only [`Self::block_size`] is enforced.
    #[inline]
    pub(crate) fn pad_align(&self) -> usize {
        self.align
    }

    /// Largest AH header for this ICV (IPv6 alignment).
    pub(crate) fn ah_header_len(&self) -> usize {
        palisade_wire::ah::header_len_for(Version::V6, self.icv_len()).unwrap_or(0)
    }

    pub(crate) fn integ(&self) -> Option<&dyn Integ> {
        match &self.t {
            Transforms::Split { integ: Some(i), .. } => Some(i.as_ref()),
            _ => None,
        }
    }

    #[inline]
    fn iv_kind(&self) -> IvKind {
        self.iv_kind
    }

    /// Encrypts and authenticates the ESP packet at `pkt[esp..]`: header and
    /// IV written, plaintext (payload, padding, trailer) in place, ICV space
    /// at the end. `pkt[..esp]` (IP and UDP headers) is not touched.
    fn seal(
        &self,
        pkt: &mut [u8],
        esp: usize,
        seq: u64,
        esn: bool,
    ) -> Result<(), palisade_crypto::Error> {
        let iv_len = self.iv_len();
        let icv_len = self.icv_len();
        let ct = esp + wesp::HEADER_LEN + iv_len;
        let ct_end = pkt
            .len()
            .checked_sub(icv_len)
            .filter(|&e| e >= ct)
            .ok_or(len_err())?;
        let hi = ((seq >> 32) as u32).to_be_bytes();
        match &self.t {
            // GMAC too: its Aead authenticates `aad | iv | in_out` and leaves
            // `in_out` in clear, which is RFC 4543 3.2's AAD exactly.
            Transforms::Aead { aead, .. } | Transforms::Gmac { aead } => {
                let (head, rest) = pkt.split_at_mut(ct); // ok: ct <= ct_end <= len
                let (body, icv) = rest.split_at_mut(ct_end - ct); // ok: ct <= ct_end
                let aad = Aad::new(head.get(esp..esp + 8).ok_or(len_err())?, esn, hi);
                let iv = head.get(esp + 8..ct).ok_or(len_err())?;
                aead.seal_in_place_detached(iv, aad.bytes(), body, icv)
            }
            Transforms::Split { cipher, integ, .. } => {
                let (head, rest) = pkt.split_at_mut(ct); // ok: ct <= len
                if let Some(c) = cipher {
                    let iv = head.get(esp + 8..).ok_or(len_err())?;
                    c.encrypt_in_place(iv, rest.get_mut(..ct_end - ct).ok_or(len_err())?)?;
                }
                if let Some(i) = integ {
                    let (covered, icv) = pkt.split_at_mut(ct_end); // ok: ct_end <= len
                    let covered = covered.get(esp..).ok_or(len_err())?;
                    if esn {
                        i.compute(&[covered, &hi], icv)?;
                    } else {
                        i.compute(&[covered], icv)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Verifies and decrypts in place; the reverse of [`Self::seal`].
    fn open(
        &self,
        pkt: &mut [u8],
        esp: usize,
        seq: u64,
        esn: bool,
    ) -> Result<(), palisade_crypto::Error> {
        let iv_len = self.iv_len();
        let icv_len = self.icv_len();
        let ct = esp + wesp::HEADER_LEN + iv_len;
        let ct_end = pkt
            .len()
            .checked_sub(icv_len)
            .filter(|&e| e >= ct)
            .ok_or(len_err())?;
        let hi = ((seq >> 32) as u32).to_be_bytes();
        match &self.t {
            Transforms::Aead { aead, .. } | Transforms::Gmac { aead } => {
                let (head, rest) = pkt.split_at_mut(ct); // ok: ct <= len
                let (body, icv) = rest.split_at_mut(ct_end - ct); // ok: ct <= ct_end
                let aad = Aad::new(head.get(esp..esp + 8).ok_or(len_err())?, esn, hi);
                let iv = head.get(esp + 8..ct).ok_or(len_err())?;
                aead.open_in_place_detached(iv, aad.bytes(), body, icv)
            }
            Transforms::Split { cipher, integ, .. } => {
                if let Some(i) = integ {
                    let (covered, icv) = pkt.split_at(ct_end); // ok: ct_end <= len
                    let covered = covered.get(esp..).ok_or(len_err())?;
                    if esn {
                        i.verify(&[covered, &hi], icv)?;
                    } else {
                        i.verify(&[covered], icv)?;
                    }
                }
                if let Some(c) = cipher {
                    let (head, rest) = pkt.split_at_mut(ct); // ok: ct <= len
                    let iv = head.get(esp + 8..).ok_or(len_err())?;
                    c.decrypt_in_place(iv, rest.get_mut(..ct_end - ct).ok_or(len_err())?)?;
                }
                Ok(())
            }
        }
    }
}

fn len_err() -> palisade_crypto::Error {
    palisade_crypto::Error::DataLength {
        name: "ESP",
        got: 0,
        why: "packet shorter than header, IV and ICV",
    }
}

/// SPI || seq (8 bytes, in place) or SPI || seq high || seq low (12 bytes).
struct Aad<'a> {
    wire: &'a [u8],
    esn: Option<[u8; 12]>,
}

impl<'a> Aad<'a> {
    fn new(wire: &'a [u8], esn: bool, hi: [u8; 4]) -> Self {
        let esn = esn.then(|| {
            let mut a = [0u8; 12];
            for (d, s) in a[..4].iter_mut().zip(wire) {
                // ok: a is [u8; 12]
                *d = *s;
            }
            a[4..8].copy_from_slice(&hi); // ok: a is [u8; 12]
            for (d, s) in a[8..].iter_mut().zip(wire.iter().skip(4)) {
                // ok: a is [u8; 12]
                *d = *s;
            }
            a
        });
        Aad { wire, esn }
    }

    fn bytes(&self) -> &[u8] {
        match &self.esn {
            Some(a) => a,
            None => self.wire,
        }
    }
}

fn wire(field: &'static str, why: &'static str) -> WireError {
    WireError::Malformed { field, why }
}

fn fill_iv(kind: IvKind, iv: &mut [u8], seq: u64, forced: Option<&[u8]>) -> Result<(), SealError> {
    if let Some(f) = forced {
        if f.len() != iv.len() {
            return Err(SealError::Crypto(palisade_crypto::Error::IvLength {
                name: "ESP",
                got: f.len(),
                expected: iv.len(),
            }));
        }
        iv.copy_from_slice(f);
        return Ok(());
    }
    match kind {
        IvKind::Counter => {
            let s = seq.to_be_bytes();
            let n = iv.len();
            if let Ok(iv) = <&mut [u8; 8]>::try_from(&mut *iv) {
                // Every AEAD's and CTR's ESP IV (RFC 4106 3.1, 3686 3.1).
                *iv = s;
            } else if n >= 8 {
                let (zero, low) = iv.split_at_mut(n - 8); // ok: n >= 8
                zero.fill(0);
                low.copy_from_slice(&s);
            } else {
                iv.copy_from_slice(&s[8 - n..]); // ok: n < 8
            }
            Ok(())
        }
        IvKind::Random => aws_lc_rs::rand::fill(iv)
            .map_err(|_| SealError::Crypto(palisade_crypto::Error::Library("CSPRNG"))),
    }
}

fn udp_len(encap: Encap) -> usize {
    match encap {
        Encap::None => 0,
        Encap::Udp { .. } => udp::HEADER_LEN,
    }
}

/// Appends TFC padding, ESP padding, trailer and ICV room after the `body`
/// bytes at the end of `buf` (`payload_end` = offset in the packet).
fn append_trailer(
    buf: &mut PacketBuf<'_>,
    payload_end: usize,
    tfc: usize,
    pad: usize,
    icv_len: usize,
    nh: IpProtocol,
) -> Result<(), SealError> {
    buf.append(tfc + pad + wesp::TRAILER_LEN + icv_len)?;
    let data = buf.data_mut();
    // (Tested first: filling nothing is still a call to memset.)
    if tfc > 0 {
        if let Some(t) = data.get_mut(payload_end..payload_end + tfc) {
            t.fill(0);
        }
    }
    wesp::write_trailer(data, payload_end + tfc, pad, nh)?;
    Ok(())
}

fn write_esp_header(h: &mut [u8], spi: u32, seq: u64) {
    if let Some(s) = h.get_mut(0..4) {
        s.copy_from_slice(&spi.to_be_bytes());
    }
    if let Some(s) = h.get_mut(4..8) {
        s.copy_from_slice(&(seq as u32).to_be_bytes());
    }
}

/// ESP seal (see [`SecurityAssociation::seal`], which counts errors); a
/// dummy packet (next header 59) of `dummy` bytes when it is `Some`. With
/// `bare`, a tunnel-mode ESP-in-UDP SA leaves out the outer IP and UDP
/// headers (a UDP socket adds its own): `buf` ends up holding the UDP payload.
/// Always inlined (as are `finish_seal` and `open_at`) into its few callers,
/// whose constant arguments (no dummy, no forced IV, bare or not) then fold
/// away: 100 fewer instructions per packet out and in.
#[inline(always)]
pub(crate) fn seal(
    sa: &mut SecurityAssociation,
    now: Timestamp,
    buf: &mut PacketBuf<'_>,
    forced_iv: Option<&[u8]>,
    dummy: Option<usize>,
    bare: bool,
) -> Result<Sealed, SealError> {
    let iv_len = sa.crypto.iv_len();
    let icv_len = sa.crypto.icv_len();
    let align_block = sa.crypto.pad_align();
    let udp = udp_len(sa.encap);
    let bare = bare && udp > 0 && matches!(sa.mode, Mode::Tunnel { .. });
    // Outer header bytes a bare packet goes without (still counted as sent).
    let mut skipped = 0;
    let (esp_off, seq, lifetime) = match sa.mode {
        Mode::Tunnel { src, dst } => {
            let (inner, payload_len, nh) = match dummy {
                Some(n) => {
                    buf.truncate(0);
                    buf.append(n)?.fill(0);
                    (Inner::default(), n, IpProtocol::NO_NEXT_HEADER)
                }
                None => {
                    let inner = encap::inner_info(buf.data())?;
                    buf.truncate(inner.total_len);
                    let v = inner.version.unwrap_or(Version::V4);
                    (inner, inner.total_len, v.encapsulation_protocol())
                }
            };
            let tfc = if dummy.is_none() {
                usize::from(sa.tfc_pad_to).saturating_sub(payload_len)
            } else {
                0
            };
            let pad = wesp::pad_len(payload_len + tfc, align_block)?;
            let outer = encap::outer_len(&dst);
            if bare {
                skipped = outer + udp;
            }
            let head = outer + udp + wesp::HEADER_LEN + iv_len - skipped;
            let tail = tfc + pad + wesp::TRAILER_LEN + icv_len;
            room(buf, head, tail)?;
            let (seq, ev) = sa.next_seq(now, payload_len)?;
            append_trailer(buf, payload_len, tfc, pad, icv_len, nh)?;
            let h = buf.prepend(wesp::HEADER_LEN + iv_len)?;
            write_esp_header(h, sa.spi, seq);
            fill_iv(
                sa.crypto.iv_kind(),
                h.get_mut(8..).unwrap_or(&mut []),
                seq,
                forced_iv,
            )?;
            if bare {
                // What the socket will carry; no headers of ours (so no
                // IPv4 identification used either).
                return finish_seal(sa, buf, 0, seq, ev, skipped);
            }
            if let Encap::Udp { src_port, dst_port } = sa.encap {
                let len = buf.len() + udp::HEADER_LEN;
                encap::write_udp(buf.prepend(udp::HEADER_LEN)?, src_port, dst_port, len)?;
            }
            let payload_len = buf.len();
            sa.ip_ident = sa.ip_ident.wrapping_add(1);
            let o = Outer {
                src,
                dst,
                protocol: if udp > 0 {
                    IpProtocol::UDP
                } else {
                    IpProtocol::ESP
                },
                payload_len,
                inner: &inner,
                df: sa.df,
                ttl: sa.outer_ttl,
                ident: sa.ip_ident,
            };
            encap::write_outer(buf.prepend(outer)?, &o)?;
            (outer + udp, seq, ev)
        }
        Mode::Transport => {
            let ip = encap::insert_point(buf.data())?;
            let (payload_len, nh) = match dummy {
                Some(n) => {
                    buf.truncate(ip.at);
                    buf.append(n)?.fill(0);
                    (n, IpProtocol::NO_NEXT_HEADER)
                }
                None => {
                    buf.truncate(ip.end);
                    (ip.end - ip.at, ip.next)
                }
            };
            let pad = wesp::pad_len(payload_len, align_block)?;
            let head = udp + wesp::HEADER_LEN + iv_len;
            let tail = pad + wesp::TRAILER_LEN + icv_len;
            room(buf, head, tail)?;
            let (seq, ev) = sa.next_seq(now, payload_len)?;
            append_trailer(buf, ip.at + payload_len, 0, pad, icv_len, nh)?;
            let total = buf.len() + head;
            let gap = buf.insert_gap(ip.at, head)?;
            let (u, h) = gap.split_at_mut(udp); // ok: gap.len() = head >= udp
            if let Encap::Udp { src_port, dst_port } = sa.encap {
                encap::write_udp(u, src_port, dst_port, total - ip.at)?;
            }
            write_esp_header(h, sa.spi, seq);
            fill_iv(
                sa.crypto.iv_kind(),
                h.get_mut(8..).unwrap_or(&mut []),
                seq,
                forced_iv,
            )?;
            let pkt = buf.data_mut();
            let p = if udp > 0 {
                IpProtocol::UDP
            } else {
                IpProtocol::ESP
            };
            if let Some(b) = pkt.get_mut(ip.nh_pos) {
                *b = p.0;
            }
            encap::set_ip_len(pkt, ip.version, total)?;
            (ip.at + udp, seq, ev)
        }
    };
    finish_seal(sa, buf, esp_off, seq, lifetime, 0)
}

/// Encrypts the packet `seal` has laid out, with ESP at `esp_off`, and counts
/// it (`skipped` = outer header bytes left out of a bare packet).
#[inline(always)]
fn finish_seal(
    sa: &mut SecurityAssociation,
    buf: &mut PacketBuf<'_>,
    esp_off: usize,
    seq: u64,
    lifetime: crate::lifetime::LifetimeEvent,
    skipped: usize,
) -> Result<Sealed, SealError> {
    let udp = udp_len(sa.encap);
    let pkt = buf.data_mut();
    sa.crypto.seal(pkt, esp_off, seq, sa.esn)?;
    let bare = skipped > 0;
    if udp > 0 && !bare {
        let v = Version::of(pkt)?;
        encap::fill_udp_checksum(pkt, v, esp_off - udp);
    }
    let n = (buf.len() + skipped) as u64;
    sa.counters.count_out(n);
    Ok(Sealed {
        seq,
        l4_offset: if bare { 0 } else { esp_off - udp },
        lifetime,
        bare,
    })
}

fn room(buf: &PacketBuf<'_>, head: usize, tail: usize) -> Result<(), SealError> {
    if buf.headroom() < head {
        return Err(crate::buf::NoRoom {
            op: "seal (headroom)",
            need: head,
            have: buf.headroom(),
        }
        .into());
    }
    if buf.tailroom() < tail {
        return Err(crate::buf::NoRoom {
            op: "seal (tailroom)",
            need: tail,
            have: buf.tailroom(),
        }
        .into());
    }
    Ok(())
}

/// ESP open (see [`SecurityAssociation::open`], which counts errors).
pub(crate) fn open(
    sa: &mut SecurityAssociation,
    now: Timestamp,
    buf: &mut PacketBuf<'_>,
) -> Result<Opened, OpenError> {
    let udp = udp_len(sa.encap);
    let want = if udp > 0 {
        IpProtocol::UDP
    } else {
        IpProtocol::ESP
    };
    let loc = encap::locate(buf.data(), want)?;
    buf.truncate(loc.end);
    if udp > 0 {
        encap::check_udp(buf.data(), &loc)?;
        let payload = buf.data().get(loc.l4_off + udp..).unwrap_or(&[]);
        match udp_encap::Payload::classify(payload)? {
            udp_encap::Payload::Keepalive => {
                buf.trim_front(buf.len())?;
                return Ok(Opened::Keepalive);
            }
            udp_encap::Payload::Ike(_) => {
                buf.trim_front(loc.l4_off + udp + udp_encap::NON_ESP_MARKER.len())?;
                return Ok(Opened::Ike);
            }
            udp_encap::Payload::Esp(_) => {}
        }
    }
    open_at(sa, now, buf, loc.l4_off + udp, &loc)
}

/// ESP-in-UDP of a tunnel-mode SA as a UDP socket delivers it: `buf` holds
/// the UDP payload, starting at the ESP header (the caller has told the
/// non-ESP marker and keepalives apart); the kernel has checked the IP and
/// UDP headers, so there is nothing to rebuild or re-check. `outer_ecn` is
/// the ECN field of the outer header, as the socket reported it.
pub(crate) fn open_udp_tunnel(
    sa: &mut SecurityAssociation,
    now: Timestamp,
    buf: &mut PacketBuf<'_>,
    outer: Version,
    outer_ecn: u8,
) -> Result<Opened, OpenError> {
    if !matches!(sa.mode, Mode::Tunnel { .. }) || udp_len(sa.encap) == 0 {
        return Err(wire(
            "ESP-in-UDP payload",
            "only tunnel-mode UDP-encapsulated SAs open a bare UDP payload",
        )
        .into());
    }
    let loc = Located {
        version: outer,
        nh_pos: 0,
        l4_off: 0,
        end: buf.len(),
        ecn: outer_ecn & 0x03,
    };
    open_at(sa, now, buf, 0, &loc)
}

/// The ESP packet at `esp_off` of `buf`, in the IP packet `loc` describes.
#[inline(always)]
fn open_at(
    sa: &mut SecurityAssociation,
    now: Timestamp,
    buf: &mut PacketBuf<'_>,
    esp_off: usize,
    loc: &Located,
) -> Result<Opened, OpenError> {
    let (spi, seq_low) = {
        let p = wesp::Packet::new_checked(buf.data().get(esp_off..).unwrap_or(&[]))?;
        (p.spi(), p.seq_number())
    };
    if spi != sa.spi {
        return Err(OpenError::WrongSpi {
            got: spi,
            want: sa.spi,
        });
    }
    let iv_len = sa.crypto.iv_len();
    let icv_len = sa.crypto.icv_len();
    let ct_start = esp_off + wesp::HEADER_LEN + iv_len;
    let ct_len = buf
        .len()
        .checked_sub(ct_start + icv_len)
        .filter(|&n| n >= wesp::TRAILER_LEN)
        .ok_or(wire(
            "ESP packet",
            "shorter than header, IV, trailer and ICV",
        ))?;
    let block = sa.crypto.block_size();
    if block > 1 && wesp::rem_of(ct_len, block) != 0 {
        return Err(wire("ESP ciphertext", "not a multiple of the cipher block size").into());
    }
    let seq = sa.pre_icv(seq_low)?;
    sa.crypto
        .open(buf.data_mut(), esp_off, seq, sa.esn)
        .map_err(|e| match e {
            palisade_crypto::Error::IntegrityCheckFailed => OpenError::IcvFailure,
            _ => OpenError::Malformed(wire("ESP ciphertext", "rejected by the cipher")),
        })?;
    let lifetime = sa.post_icv(now, seq, ct_len)?;
    let trailer = Trailer::parse(buf.data().get(ct_start..ct_start + ct_len).unwrap_or(&[]))
        .map_err(OpenError::BadPadding)?;
    if trailer.is_dummy() {
        sa.dummies_in = sa.dummies_in.wrapping_add(1);
        buf.truncate(0);
        return Ok(Opened::Dummy { seq });
    }
    let nh = trailer.next_header;
    let payload_end = ct_start + trailer.payload_len;
    match sa.mode {
        Mode::Tunnel { .. } => {
            let expect = match nh {
                IpProtocol::IPV4 => Version::V4,
                IpProtocol::IPV6 => Version::V6,
                _ => {
                    return Err(WireError::Invalid {
                        field: "ESP next header (tunnel mode)",
                        value: nh.0.into(),
                    }
                    .into())
                }
            };
            let inner_bytes = buf.data().get(ct_start..payload_end).unwrap_or(&[]);
            let inner = encap::inner_info(inner_bytes)?;
            if inner.version != Some(expect) {
                return Err(wire("inner IP version", "does not match the ESP next header").into());
            }
            let ecn = encap::ecn_decapsulate(inner.ecn, loc.ecn).ok_or(OpenError::EcnDrop)?;
            buf.trim_front(ct_start)?;
            // TFC padding (RFC 4303 2.7) ends where the inner header says.
            buf.truncate(inner.total_len);
            if ecn != inner.ecn {
                encap::set_ecn(buf.data_mut(), ecn);
            }
        }
        Mode::Transport => {
            buf.truncate(payload_end);
            encap::set_next_header(buf.data_mut(), loc.version, loc.nh_pos, nh);
            buf.remove_gap(loc.l4_off, ct_start - loc.l4_off)?;
            let total = buf.len();
            encap::set_ip_len(buf.data_mut(), loc.version, total)?;
            if udp_len(sa.encap) > 0 {
                encap::fix_transport_checksum(buf.data_mut())?;
            }
        }
    }
    sa.counters.count_in(buf.len() as u64);
    Ok(Opened::Packet {
        seq,
        next_header: nh,
        lifetime,
    })
}
