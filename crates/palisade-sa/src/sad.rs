//! The Security Association Database (RFC 4301 4.4.2).
//!
//! SAs are one-way. Inbound SAs are found by what the packet carries; outbound
//! SAs by the [`SaHandle`] that the SPD entry holds (RFC 4301 4.4.2: "For
//! outbound processing, each SAD entry is pointed to by entries in the SPD-S
//! part of the SPD cache").
//!
//! Inbound lookup follows RFC 4301 4.1, longest match first:
//!
//! > 1. Search the SAD for a match on the combination of SPI, destination
//! >    address, and source address. [...]
//! > 2. Otherwise, search the SAD for a match on both SPI and destination
//! >    address. [...]
//! > 3. Otherwise, search for a match on only SPI if the receiver has chosen to
//! >    maintain a single SPI space for AH and ESP, and on both SPI and protocol
//! >    otherwise.
//!
//! Steps 1 and 2 exist for multicast group SAs (the group controller picks the
//! SPI, so it is only unique per group); unicast SAs are keyed by (SPI,
//! protocol) — IKE allocates inbound SPIs, and palisade keeps separate ESP and
//! AH SPI spaces. The multicast maps are skipped when empty, so a unicast-only
//! SAD costs one hash probe per packet.
//!
//! `Sad<S>` stores the SA value itself (the transform's `SecurityAssociation`,
//! or anything else) in a slab; handles are (slot, generation) pairs so a handle
//! kept after its SA was deleted finds nothing instead of a newer SA.
//!
//! The hash is a fixed (unkeyed) multiply-mix. That is safe against hash
//! flooding here because only this host inserts keys, and the SPIs it inserts
//! are random: a peer choosing SPIs in packets can make lookups miss, not make
//! the table's chains long.

use core::hash::{BuildHasherDefault, Hasher};
use core::net::IpAddr;
use std::collections::HashMap;
use thiserror::Error;

/// IPsec protocol of an SA, with its IANA protocol number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SecurityProtocol {
    /// Encapsulating Security Payload, IP protocol 50.
    Esp = 50,
    /// Authentication Header, IP protocol 51.
    Ah = 51,
}

impl core::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SecurityProtocol::Esp => "ESP",
            SecurityProtocol::Ah => "AH",
        })
    }
}

/// Whom an inbound SA's SPI is unique for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaScope {
    /// Unicast: the SPI (with the protocol) alone names the SA.
    Unicast,
    /// Multicast group SA: SPI + destination (group) address, and optionally
    /// the sender's address too (RFC 4301 4.1 steps 1 and 2).
    Multicast {
        /// Group address.
        dst: IpAddr,
        /// Sender, for source-specific group SAs.
        src: Option<IpAddr>,
    },
}

/// What an inbound SA is found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InboundKey {
    /// Security Parameters Index, as carried in the packet.
    pub spi: u32,
    /// ESP or AH.
    pub proto: SecurityProtocol,
    /// Unicast or multicast.
    pub scope: SaScope,
}

/// A reference to one SA in a [`Sad`]; stale once that SA is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaHandle {
    index: u32,
    generation: u32,
}

impl SaHandle {
    /// Slot number (stable while the SA lives; for logs and metrics).
    pub fn index(&self) -> u32 {
        self.index
    }
}

/// Why an SA could not be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SadError {
    /// The key is taken by another SA.
    #[error("{proto} SPI {spi:#010x} is already in use by another inbound SA")]
    DuplicateSpi {
        /// The SPI.
        spi: u32,
        /// The protocol.
        proto: SecurityProtocol,
    },
    /// SPIs 1-255 are reserved by IANA and 0 is never sent (RFC 4303 2.1).
    #[error("{proto} SPI {spi} is reserved (SPIs 0-255 are never assigned to SAs)")]
    ReservedSpi {
        /// The SPI.
        spi: u32,
        /// The protocol.
        proto: SecurityProtocol,
    },
    /// More than 2^32 - 1 SAs.
    #[error("SAD is full (2^32 - 1 SAs)")]
    Full,
}

/// FxHash-style word mixer with a murmur3 finaliser, so both the high bits
/// (hashbrown's tag) and low bits (its bucket) are well spread.
#[derive(Debug, Default, Clone, Copy)]
pub struct SadHasher(u64);

impl Hasher for SadHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

type Build = BuildHasherDefault<SadHasher>;

#[inline]
fn unicast_key(spi: u32, proto: SecurityProtocol) -> u64 {
    (u64::from(spi) << 8) | proto as u64
}

#[derive(Debug, Clone)]
struct Slot<S> {
    generation: u32,
    key: Option<InboundKey>,
    value: Option<S>,
}

/// The SAD: inbound SAs by SPI, all SAs by handle.
#[derive(Debug, Clone)]
pub struct Sad<S> {
    slots: Vec<Slot<S>>,
    free: Vec<u32>,
    unicast: HashMap<u64, u32, Build>,
    multicast_dst: HashMap<(u64, IpAddr), u32, Build>,
    multicast_dst_src: HashMap<(u64, IpAddr, IpAddr), u32, Build>,
    len: usize,
    /// The unicast SA [`Self::inbound_mut`] found last, by its map key: a
    /// run of packets for one SA skips the hash lookup. Used only while no
    /// multicast SA exists (then SPI and protocol alone decide); a handle
    /// gone stale (the SA removed) is simply looked up again.
    last_unicast: Option<(u64, SaHandle)>,
}

impl<S> Default for Sad<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Sad<S> {
    /// An empty SAD.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty SAD with room for `n` SAs (half of them inbound) before
    /// reallocating.
    pub fn with_capacity(n: usize) -> Self {
        Sad {
            slots: Vec::with_capacity(n),
            free: Vec::new(),
            unicast: HashMap::with_capacity_and_hasher(n / 2, Build::default()),
            multicast_dst: HashMap::default(),
            multicast_dst_src: HashMap::default(),
            len: 0,
            last_unicast: None,
        }
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Install an inbound SA found by `key`.
    pub fn insert_inbound(&mut self, key: InboundKey, sa: S) -> Result<SaHandle, SadError> {
        if key.spi < 256 {
            return Err(SadError::ReservedSpi {
                spi: key.spi,
                proto: key.proto,
            });
        }
        let k = unicast_key(key.spi, key.proto);
        let taken = match key.scope {
            SaScope::Unicast => self.unicast.contains_key(&k),
            SaScope::Multicast { dst, src: None } => self.multicast_dst.contains_key(&(k, dst)),
            SaScope::Multicast {
                dst,
                src: Some(src),
            } => self.multicast_dst_src.contains_key(&(k, dst, src)),
        };
        if taken {
            return Err(SadError::DuplicateSpi {
                spi: key.spi,
                proto: key.proto,
            });
        }
        let handle = self.alloc(Some(key), sa)?;
        match key.scope {
            SaScope::Unicast => self.unicast.insert(k, handle.index),
            SaScope::Multicast { dst, src: None } => {
                self.multicast_dst.insert((k, dst), handle.index)
            }
            SaScope::Multicast {
                dst,
                src: Some(src),
            } => self.multicast_dst_src.insert((k, dst, src), handle.index),
        };
        Ok(handle)
    }

    /// Install an outbound SA; the SPD entry keeps the handle.
    pub fn insert_outbound(&mut self, sa: S) -> Result<SaHandle, SadError> {
        self.alloc(None, sa)
    }

    /// Whether an inbound unicast SA uses `spi` (for SPI allocation).
    pub fn spi_in_use(&self, spi: u32, proto: SecurityProtocol) -> bool {
        self.unicast.contains_key(&unicast_key(spi, proto))
    }

    /// RFC 4301 4.1 inbound lookup for a packet with `spi` (under `proto`)
    /// sent from `src` to `dst`.
    #[inline]
    pub fn lookup_inbound(
        &self,
        spi: u32,
        proto: SecurityProtocol,
        dst: IpAddr,
        src: IpAddr,
    ) -> Option<SaHandle> {
        let k = unicast_key(spi, proto);
        let index = (!self.multicast_dst_src.is_empty())
            .then(|| self.multicast_dst_src.get(&(k, dst, src)))
            .flatten()
            .or_else(|| {
                (!self.multicast_dst.is_empty())
                    .then(|| self.multicast_dst.get(&(k, dst)))
                    .flatten()
            })
            .or_else(|| self.unicast.get(&k))?;
        let slot = self.slots.get(*index as usize)?;
        Some(SaHandle {
            index: *index,
            generation: slot.generation,
        })
    }

    /// [`Self::lookup_inbound`] and borrow the SA mutably (replay window,
    /// counters, lifetime all change per packet).
    #[inline(always)]
    pub fn inbound_mut(
        &mut self,
        spi: u32,
        proto: SecurityProtocol,
        dst: IpAddr,
        src: IpAddr,
    ) -> Option<(SaHandle, &mut S)> {
        let h = match self.remembered(spi, proto) {
            Some(h) => h,
            None => self.lookup_and_remember(spi, proto, dst, src)?,
        };
        self.get_mut(h).map(|s| (h, s))
    }

    /// The remembered unicast SA for `spi`, if it is that and still there.
    #[inline(always)]
    fn remembered(&self, spi: u32, proto: SecurityProtocol) -> Option<SaHandle> {
        let (last, h) = self.last_unicast?;
        (self.unicast_only() && last == unicast_key(spi, proto) && self.get(h).is_some())
            .then_some(h)
    }

    /// No multicast SA is installed: SPI and protocol alone find an SA.
    #[inline(always)]
    fn unicast_only(&self) -> bool {
        self.multicast_dst.is_empty() && self.multicast_dst_src.is_empty()
    }

    /// [`Self::lookup_inbound`], remembering a unicast answer.
    fn lookup_and_remember(
        &mut self,
        spi: u32,
        proto: SecurityProtocol,
        dst: IpAddr,
        src: IpAddr,
    ) -> Option<SaHandle> {
        let h = self.lookup_inbound(spi, proto, dst, src)?;
        if self.unicast_only() {
            self.last_unicast = Some((unicast_key(spi, proto), h));
        }
        Some(h)
    }

    /// The SA behind `h`, unless it was removed.
    #[inline]
    pub fn get(&self, h: SaHandle) -> Option<&S> {
        let slot = self.slots.get(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.value.as_ref()
    }

    /// The SA behind `h`, mutably.
    #[inline]
    pub fn get_mut(&mut self, h: SaHandle) -> Option<&mut S> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// The key an inbound SA was installed under.
    pub fn inbound_key(&self, h: SaHandle) -> Option<InboundKey> {
        let slot = self.slots.get(h.index as usize)?;
        (slot.generation == h.generation)
            .then_some(slot.key)
            .flatten()
    }

    /// Delete the SA behind `h` and return it; `h` (and copies) go stale.
    pub fn remove(&mut self, h: SaHandle) -> Option<S> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation || slot.value.is_none() {
            return None;
        }
        let value = slot.value.take();
        slot.generation = slot.generation.wrapping_add(1);
        if let Some(key) = slot.key.take() {
            let k = unicast_key(key.spi, key.proto);
            match key.scope {
                SaScope::Unicast => self.unicast.remove(&k),
                SaScope::Multicast { dst, src: None } => self.multicast_dst.remove(&(k, dst)),
                SaScope::Multicast {
                    dst,
                    src: Some(src),
                } => self.multicast_dst_src.remove(&(k, dst, src)),
            };
        }
        self.free.push(h.index);
        self.len -= 1;
        value
    }

    /// Every SA with its handle.
    pub fn iter(&self) -> impl Iterator<Item = (SaHandle, &S)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.value.as_ref().map(|v| {
                (
                    SaHandle {
                        index: i as u32,
                        generation: s.generation,
                    },
                    v,
                )
            })
        })
    }

    /// Bytes this SAD uses for its own bookkeeping per SA, beyond the SA value
    /// itself (`size_of::<S>()` plus what `S` owns on the heap): the slot's
    /// handle generation and inbound key, and the unicast map's entry (key,
    /// value and hashbrown's control byte) at the map's current load.
    pub fn overhead_bytes_per_sa(&self) -> usize {
        let slot = core::mem::size_of::<Slot<S>>() - core::mem::size_of::<S>();
        let slab = slot * self.slots.capacity() / self.len.max(1);
        let entry = core::mem::size_of::<(u64, u32)>() + 1;
        let map = self.unicast.capacity() * entry / self.len.max(1);
        slab + map
    }

    fn alloc(&mut self, key: Option<InboundKey>, value: S) -> Result<SaHandle, SadError> {
        let handle = if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize]; // ok: free holds only indices of existing slots
            slot.key = key;
            slot.value = Some(value);
            SaHandle {
                index,
                generation: slot.generation,
            }
        } else {
            let index = u32::try_from(self.slots.len()).map_err(|_| SadError::Full)?;
            if index == u32::MAX {
                return Err(SadError::Full);
            }
            self.slots.push(Slot {
                generation: 0,
                key,
                value: Some(value),
            });
            SaHandle {
                index,
                generation: 0,
            }
        };
        self.len += 1;
        Ok(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn uni(spi: u32) -> InboundKey {
        InboundKey {
            spi,
            proto: SecurityProtocol::Esp,
            scope: SaScope::Unicast,
        }
    }

    #[test]
    fn inbound_outbound_remove_stale_handle() {
        let mut sad: Sad<&str> = Sad::new();
        let a = sad.insert_inbound(uni(0x1000), "in-a").unwrap();
        let o = sad.insert_outbound("out").unwrap();
        assert_eq!(sad.len(), 2);
        let (d, s) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert_eq!(
            sad.lookup_inbound(0x1000, SecurityProtocol::Esp, d, s),
            Some(a)
        );
        assert_eq!(sad.lookup_inbound(0x1000, SecurityProtocol::Ah, d, s), None);
        assert_eq!(sad.get(o), Some(&"out"));
        assert_eq!(
            sad.insert_inbound(uni(0x1000), "dup")
                .unwrap_err()
                .to_string(),
            "ESP SPI 0x00001000 is already in use by another inbound SA"
        );
        assert!(matches!(
            sad.insert_inbound(uni(255), "x"),
            Err(SadError::ReservedSpi { .. })
        ));
        assert_eq!(sad.remove(a), Some("in-a"));
        assert_eq!(sad.remove(a), None);
        assert_eq!(sad.get(a), None);
        assert_eq!(
            sad.lookup_inbound(0x1000, SecurityProtocol::Esp, d, s),
            None
        );
        // Slot reuse does not revive the old handle.
        let b = sad.insert_inbound(uni(0x2000), "in-b").unwrap();
        assert_eq!(b.index(), a.index());
        assert_eq!(sad.get(a), None);
        assert_eq!(sad.get(b), Some(&"in-b"));
        assert_eq!(sad.iter().count(), 2);
    }

    /// `inbound_mut` remembers the last unicast SA it found, but a removed
    /// SA, an SPI taken over by a new SA, or a multicast SA installed later
    /// (which takes precedence for its group) is never answered from memory.
    #[test]
    fn the_remembered_inbound_sa_never_goes_stale() {
        let mut sad: Sad<u8> = Sad::new();
        let (d, s) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let esp = SecurityProtocol::Esp;
        let a = sad.insert_inbound(uni(0x1000), 1).unwrap();
        sad.insert_inbound(uni(0x2000), 2).unwrap();
        for (spi, want) in [(0x1000, 1), (0x1000, 1), (0x2000, 2), (0x1000, 1)] {
            assert_eq!(sad.inbound_mut(spi, esp, d, s).map(|(_, v)| *v), Some(want));
        }
        assert_eq!(sad.inbound_mut(0x1000, SecurityProtocol::Ah, d, s), None);
        sad.remove(a);
        assert!(sad.inbound_mut(0x1000, esp, d, s).is_none());
        let b = sad.insert_inbound(uni(0x1000), 3).unwrap();
        assert_eq!(sad.inbound_mut(0x1000, esp, d, s), Some((b, &mut 3)));
        let group = ip("239.1.1.1");
        sad.insert_inbound(
            InboundKey {
                scope: SaScope::Multicast {
                    dst: group,
                    src: None,
                },
                ..uni(0x1000)
            },
            4,
        )
        .unwrap();
        assert_eq!(
            sad.inbound_mut(0x1000, esp, group, s).map(|(_, v)| *v),
            Some(4)
        );
        assert_eq!(sad.inbound_mut(0x1000, esp, d, s).map(|(_, v)| *v), Some(3));
    }

    #[test]
    fn multicast_longest_match_first() {
        let mut sad: Sad<u8> = Sad::new();
        let group = ip("239.1.1.1");
        let (s1, s2) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let u = sad.insert_inbound(uni(0x500), 1).unwrap();
        let g = sad
            .insert_inbound(
                InboundKey {
                    scope: SaScope::Multicast {
                        dst: group,
                        src: None,
                    },
                    ..uni(0x500)
                },
                2,
            )
            .unwrap();
        let gs = sad
            .insert_inbound(
                InboundKey {
                    scope: SaScope::Multicast {
                        dst: group,
                        src: Some(s1),
                    },
                    ..uni(0x500)
                },
                3,
            )
            .unwrap();
        assert_eq!(
            sad.lookup_inbound(0x500, SecurityProtocol::Esp, group, s1),
            Some(gs)
        );
        assert_eq!(
            sad.lookup_inbound(0x500, SecurityProtocol::Esp, group, s2),
            Some(g)
        );
        assert_eq!(
            sad.lookup_inbound(0x500, SecurityProtocol::Esp, ip("192.0.2.9"), s2),
            Some(u)
        );
        *sad.inbound_mut(0x500, SecurityProtocol::Esp, group, s2)
            .unwrap()
            .1 += 10;
        assert_eq!(sad.get(g), Some(&12));
        sad.remove(gs);
        assert_eq!(
            sad.lookup_inbound(0x500, SecurityProtocol::Esp, group, s1),
            Some(g)
        );
    }
}
