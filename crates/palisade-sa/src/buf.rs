//! A packet buffer with headroom and tailroom, so that ESP/AH seal can grow a
//! packet in place (outer IP header, UDP header, ESP header and IV in front;
//! padding, trailer and ICV behind) and open can shrink it, with no allocation
//! per packet.
//!
//! The caller owns the storage (a `Vec`, an array, a slot of a batch ring) and
//! reserves the room once: [`PacketBuf::new`] places the packet at an offset
//! inside it. [`crate::sa::SecurityAssociation::overhead`] says how much
//! headroom and tailroom one seal needs at most.

use core::fmt;

/// Not enough headroom or tailroom for a prepend/append, or a trim larger than
/// the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom {
    /// What was asked for.
    pub op: &'static str,
    /// Bytes needed.
    pub need: usize,
    /// Bytes available.
    pub have: usize,
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "packet buffer: {} needs {} bytes, {} available",
            self.op, self.need, self.have
        )
    }
}

impl std::error::Error for NoRoom {}

/// A window `storage[start..end]` holding one packet, inside storage the caller
/// owns. Everything before `start` is headroom, everything after `end` tailroom.
pub struct PacketBuf<'a> {
    storage: &'a mut [u8],
    start: usize,
    end: usize,
}

impl fmt::Debug for PacketBuf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketBuf")
            .field("headroom", &self.start)
            .field("len", &self.len())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}

impl<'a> PacketBuf<'a> {
    /// The packet is `storage[start..start + len]`.
    pub fn new(storage: &'a mut [u8], start: usize, len: usize) -> Result<Self, NoRoom> {
        let cap = storage.len();
        match start.checked_add(len) {
            Some(end) if end <= cap => Ok(PacketBuf {
                storage,
                start,
                end,
            }),
            _ => Err(NoRoom {
                op: "new",
                need: start.saturating_add(len),
                have: cap,
            }),
        }
    }

    /// Copies `packet` into `storage` at offset `headroom` and wraps it.
    pub fn with_packet(
        storage: &'a mut [u8],
        headroom: usize,
        packet: &[u8],
    ) -> Result<Self, NoRoom> {
        let cap = storage.len();
        let end = headroom.saturating_add(packet.len());
        match storage.get_mut(headroom..end) {
            Some(dst) => dst.copy_from_slice(packet),
            None => {
                return Err(NoRoom {
                    op: "with_packet",
                    need: end,
                    have: cap,
                })
            }
        }
        Ok(PacketBuf {
            storage,
            start: headroom,
            end,
        })
    }

    /// The packet bytes.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end] // ok: start <= end <= len, kept by every method
    }

    /// The packet bytes, writable.
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end] // ok: invariant start <= end <= len
    }

    /// Packet length.
    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when the packet is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Free bytes before the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Free bytes after the packet.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.storage.len() - self.end
    }

    /// Offset of the packet inside the storage.
    #[inline]
    pub fn offset(&self) -> usize {
        self.start
    }

    /// Grows the packet by `n` bytes at the front and returns them (their
    /// contents are whatever the headroom held).
    #[inline(always)]
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8], NoRoom> {
        if n > self.start {
            return Err(NoRoom {
                op: "prepend",
                need: n,
                have: self.start,
            });
        }
        self.start -= n;
        Ok(&mut self.storage[self.start..self.start + n]) // ok: start + n = old start <= end
    }

    /// Grows the packet by `n` bytes at the back and returns them.
    #[inline]
    pub fn append(&mut self, n: usize) -> Result<&mut [u8], NoRoom> {
        let room = self.tailroom();
        if n > room {
            return Err(NoRoom {
                op: "append",
                need: n,
                have: room,
            });
        }
        let old = self.end;
        self.end += n;
        Ok(&mut self.storage[old..self.end]) // ok: end <= len checked above
    }

    /// Drops `n` bytes from the front.
    #[inline]
    pub fn trim_front(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.len() {
            return Err(NoRoom {
                op: "trim_front",
                need: n,
                have: self.len(),
            });
        }
        self.start += n;
        Ok(())
    }

    /// Drops `n` bytes from the back.
    #[inline]
    pub fn trim_back(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.len() {
            return Err(NoRoom {
                op: "trim_back",
                need: n,
                have: self.len(),
            });
        }
        self.end -= n;
        Ok(())
    }

    /// Keeps only the first `len` bytes.
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.end = self.start + len;
        }
    }

    /// Opens a gap of `n` bytes at packet offset `at` by moving the first `at`
    /// bytes (a header) `n` bytes into the headroom; returns the gap. This is
    /// how transport mode inserts ESP/AH after the IP header: the header is
    /// short, so moving it is cheaper than moving the payload.
    pub fn insert_gap(&mut self, at: usize, n: usize) -> Result<&mut [u8], NoRoom> {
        if at > self.len() {
            return Err(NoRoom {
                op: "insert_gap",
                need: at,
                have: self.len(),
            });
        }
        if n > self.start {
            return Err(NoRoom {
                op: "insert_gap (headroom)",
                need: n,
                have: self.start,
            });
        }
        let s = self.start;
        self.storage.copy_within(s..s + at, s - n); // ok: s + at <= end, s - n >= 0
        self.start = s - n;
        Ok(&mut self.storage[s - n + at..s + at]) // ok: within [start, end)
    }

    /// Removes `n` bytes at packet offset `at` by moving the first `at` bytes
    /// forward over them (the reverse of [`Self::insert_gap`]).
    pub fn remove_gap(&mut self, at: usize, n: usize) -> Result<(), NoRoom> {
        let need = at.saturating_add(n);
        if need > self.len() {
            return Err(NoRoom {
                op: "remove_gap",
                need,
                have: self.len(),
            });
        }
        let s = self.start;
        self.storage.copy_within(s..s + at, s + n); // ok: s + at + n <= end
        self.start = s + n;
        Ok(())
    }

    /// Re-points the packet at `storage[start..end]` (checked).
    pub fn set_range(&mut self, start: usize, end: usize) -> Result<(), NoRoom> {
        if start > end || end > self.storage.len() {
            return Err(NoRoom {
                op: "set_range",
                need: end,
                have: self.storage.len(),
            });
        }
        self.start = start;
        self.end = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_and_shrink() {
        let mut s = [0u8; 32];
        let mut b = PacketBuf::with_packet(&mut s, 8, b"abcd").unwrap();
        b.prepend(2).unwrap().copy_from_slice(b"xy");
        b.append(1).unwrap().copy_from_slice(b"z");
        assert_eq!(b.data(), b"xyabcdz");
        let g = b.insert_gap(2, 3).unwrap();
        g.copy_from_slice(b"123");
        assert_eq!(b.data(), b"xy123abcdz");
        b.remove_gap(2, 3).unwrap();
        assert_eq!(b.data(), b"xyabcdz");
        b.trim_front(2).unwrap();
        b.trim_back(1).unwrap();
        assert_eq!(b.data(), b"abcd");
        assert!(b.prepend(9).is_err());
        assert!(b.append(100).is_err());
        assert!(b.trim_back(5).is_err());
        assert!(b.insert_gap(5, 1).is_err());
    }
}
