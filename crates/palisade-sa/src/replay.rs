//! Anti-replay: the receiver's sliding window (RFC 4303 3.4.3 and Appendix A,
//! RFC 4302 3.4.3) with 32-bit or extended (64-bit, RFC 4304) sequence numbers,
//! and the sender's sequence counter that refuses to cycle (RFC 4303 3.3.3).
//!
//! The receive path is split in two on purpose. RFC 4303 3.4.3:
//!
//! > If the received packet falls within the window and is new, or if the packet
//! > is to the right of the window, then the receiver proceeds to ICV
//! > verification. [...] The receive window is updated only if the ICV
//! > verification succeeds.
//!
//! So [`ReplayWindow::check`] runs before the ICV (cheap, read-only, and for ESN
//! it also yields the inferred high half the ICV needs), and
//! [`ReplayWindow::accept`] runs after the ICV verified and is the only call that
//! moves the window. `accept` checks again, because another packet with the same
//! number may have been accepted between the two calls (a batch holding a
//! duplicate).
//!
//! The bitmap is a ring of `u64` words in the style of RFC 6479: bit `seq % N`
//! (N = 64 x words, a power of two, at least `window + 64`) says whether `seq` was
//! seen. Sliding right clears whole words instead of shifting the bitmap, so the
//! cost of a new packet does not grow with the window size.

use thiserror::Error;

/// Window size used when the configuration names none. RFC 4303 3.4.3 asks for
/// at least 32 and recommends 64; 128 matches Linux's and strongSwan's
/// `replay_window` practice for fast links.
pub const DEFAULT_WINDOW: u32 = 128;

/// Largest window accepted. Far above anything configured in practice (Linux
/// caps ESN windows at 4096 x 8 bits); the bitmap for it is 8 KiB.
pub const MAX_WINDOW: u32 = 65_536;

/// Why a received sequence number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReplayError {
    /// The number was already accepted: a replay or a network duplicate.
    #[error("replayed packet: sequence number {seq} was already received")]
    Duplicate {
        /// Full (64-bit when ESN) sequence number.
        seq: u64,
    },
    /// The number is left of the window: too old to tell new from replayed.
    #[error(
        "stale packet: sequence number {seq} is left of the anti-replay window \
         (highest received {highest}, window {window})"
    )]
    TooOld {
        /// Full sequence number as inferred (for ESN, the inference may place it
        /// before the first packet; then `seq` is 0).
        seq: u64,
        /// Highest sequence number accepted so far.
        highest: u64,
        /// Window size in packets.
        window: u32,
    },
    /// Sequence number 0 is never sent: the counter starts at 0 and the first
    /// packet carries 1 (RFC 4303 3.3.3).
    #[error("sequence number 0 is never sent (the first packet of an SA carries 1)")]
    Zero,
}

/// A window size outside `1..=MAX_WINDOW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("anti-replay window size {0} is out of range (1..={MAX_WINDOW})")]
pub struct WindowSizeError(pub u32);

/// Receiver side anti-replay state of one inbound SA.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// Ring bitmap; length is a power of two and covers `window + 64` bits.
    bits: Box<[u64]>,
    /// Highest accepted full sequence number; 0 while nothing was accepted.
    top: u64,
    window: u32,
    esn: bool,
}

impl ReplayWindow {
    /// A window of `size` packets; `esn` selects 64-bit sequence numbers
    /// (RFC 4304) of which only the low 32 bits travel in the packet.
    pub fn new(size: u32, esn: bool) -> Result<Self, WindowSizeError> {
        if size == 0 || size > MAX_WINDOW {
            return Err(WindowSizeError(size));
        }
        // One spare word so that the word holding `top` and the words covering
        // the `size - 1` numbers below it never alias (RFC 6479 2.).
        let words = (size as usize).div_ceil(64) + 1;
        let words = words.next_power_of_two();
        Ok(Self {
            bits: vec![0u64; words].into_boxed_slice(),
            top: 0,
            window: size,
            esn,
        })
    }

    /// A window of [`DEFAULT_WINDOW`] packets.
    pub fn with_default_size(esn: bool) -> Self {
        Self {
            bits: vec![0u64; 4].into_boxed_slice(),
            top: 0,
            window: DEFAULT_WINDOW,
            esn,
        }
    }

    /// Window size in packets.
    pub fn size(&self) -> u32 {
        self.window
    }

    /// Whether the SA uses extended (64-bit) sequence numbers.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// Highest sequence number accepted so far (0: none yet).
    pub fn highest(&self) -> u64 {
        self.top
    }

    /// Before the ICV: is `seq_low` (the 32 bits carried in the packet) new?
    ///
    /// Returns the full sequence number: for ESN with the high half inferred
    /// from the window (RFC 4303 A2.2); the caller feeds `full >> 32` into the
    /// ICV and, once the ICV verified, passes `full` to [`Self::accept`].
    /// Does not change the window.
    #[inline]
    pub fn check(&self, seq_low: u32) -> Result<u64, ReplayError> {
        let seq = if self.esn {
            self.infer_esn(seq_low)?
        } else {
            u64::from(seq_low)
        };
        self.check_full(seq)?;
        Ok(seq)
    }

    /// After the ICV verified: record `seq` and slide the window if it is the
    /// new highest. Fails (and changes nothing) if `seq` is no longer acceptable,
    /// e.g. the same number was accepted since [`Self::check`].
    #[inline]
    pub fn accept(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check_full(seq)?;
        let mask = self.bits.len() as u64 - 1;
        if seq > self.top {
            let old_word = self.top >> 6;
            let new_word = seq >> 6;
            let advance = new_word - old_word;
            if advance >= self.bits.len() as u64 {
                self.bits.fill(0);
            } else {
                for w in old_word + 1..=new_word {
                    self.bits[(w & mask) as usize] = 0;
                }
            }
            self.top = seq;
        }
        self.bits[((seq >> 6) & mask) as usize] |= 1u64 << (seq & 63);
        Ok(())
    }

    /// RFC 4303 A2.2: pick the high half that puts `seq_low` in or right of the
    /// window, i.e. the unique full number in `[bottom, bottom + 2^32)` where
    /// `bottom = top - W + 1`.
    ///
    /// > Case A: Tl >= (W - 1). [...] If Seql >= Bl (where Bl = Tl - W + 1),
    /// > then Seqh = Th; else Seqh = Th + 1.
    /// > Case B: Tl < (W - 1). [...] If Seql >= Bl (where Bl = Tl - W + 1 mod 2^32),
    /// > then Seqh = Th - 1; else Seqh = Th.
    #[inline]
    fn infer_esn(&self, seq_low: u32) -> Result<u64, ReplayError> {
        let tl = self.top as u32;
        let th = (self.top >> 32) as u32;
        let w1 = self.window - 1;
        let bl = tl.wrapping_sub(w1);
        let high = if tl >= w1 {
            if seq_low >= bl {
                Some(th)
            } else {
                // The sender stops at 2^64 - 1, so Th + 1 overflowing means the
                // number cannot be genuine; call it stale.
                th.checked_add(1)
            }
        } else if seq_low >= bl {
            // Below zero: before the first packet of the SA.
            th.checked_sub(1)
        } else {
            Some(th)
        };
        match high {
            Some(h) => Ok((u64::from(h) << 32) | u64::from(seq_low)),
            None => Err(ReplayError::TooOld {
                seq: 0,
                highest: self.top,
                window: self.window,
            }),
        }
    }

    #[inline]
    fn check_full(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= u64::from(self.window) {
            return Err(ReplayError::TooOld {
                seq,
                highest: self.top,
                window: self.window,
            });
        }
        let mask = self.bits.len() as u64 - 1;
        if self.bits[((seq >> 6) & mask) as usize] & (1u64 << (seq & 63)) != 0 {
            return Err(ReplayError::Duplicate { seq });
        }
        Ok(())
    }
}

/// The sender's counter has reached its last value: the SA must be rekeyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "SA needs rekey: the {}-bit sequence number space is exhausted at {last} \
     (RFC 4303 3.3.3: the counter must not cycle)",
    if *.esn { 64 } else { 32 }
)]
pub struct SeqExhausted {
    /// Last sequence number handed out.
    pub last: u64,
    /// Whether the SA uses extended sequence numbers.
    pub esn: bool,
}

/// Sender side sequence number of one outbound SA.
///
/// RFC 4303 3.3.3: "The sender's counter is initialized to 0 when an SA is
/// established. [...] If anti-replay is enabled (the default), the transmitted
/// Sequence Number must never be allowed to cycle." The first packet gets 1; the
/// last one gets 2^32 - 1 (2^64 - 1 with ESN); every later [`Self::next`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqCounter {
    last: u64,
    esn: bool,
}

impl SeqCounter {
    /// A fresh counter (nothing sent yet).
    pub fn new(esn: bool) -> Self {
        Self { last: 0, esn }
    }

    /// The sequence number for the next packet (full 64 bits; the packet
    /// carries the low 32, ESN ICVs cover the high 32 too).
    #[inline]
    pub fn take_next(&mut self) -> Result<u64, SeqExhausted> {
        if self.last >= self.max() {
            return Err(SeqExhausted {
                last: self.last,
                esn: self.esn,
            });
        }
        self.last += 1;
        Ok(self.last)
    }

    /// Last number handed out (0: none yet).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// How many more packets may be sent before the SA must be rekeyed.
    pub fn remaining(&self) -> u64 {
        self.max() - self.last
    }

    /// Whether the SA uses extended sequence numbers.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// Move the counter forward to `last` (tests, or resuming an SA's state);
    /// never backwards, since reusing a number would defeat the peer's window.
    pub fn advance_to(&mut self, last: u64) {
        self.last = self.last.max(last.min(self.max()));
    }

    fn max(&self) -> u64 {
        if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sizes() {
        assert_eq!(ReplayWindow::new(0, false).unwrap_err(), WindowSizeError(0));
        assert!(ReplayWindow::new(MAX_WINDOW + 1, false).is_err());
        for size in [1, 32, 63, 64, 65, 128, 1000, 4096, MAX_WINDOW] {
            let w = ReplayWindow::new(size, false).unwrap();
            assert!(w.bits.len() * 64 >= size as usize + 64);
            assert!(w.bits.len().is_power_of_two());
        }
        assert_eq!(ReplayWindow::with_default_size(true).size(), DEFAULT_WINDOW);
        let d = ReplayWindow::new(DEFAULT_WINDOW, true).unwrap();
        assert_eq!(
            d.bits.len(),
            ReplayWindow::with_default_size(true).bits.len()
        );
    }

    #[test]
    fn in_order_duplicate_old() {
        let mut w = ReplayWindow::new(64, false).unwrap();
        assert_eq!(w.check(0), Err(ReplayError::Zero));
        for s in 1..=200u32 {
            assert_eq!(w.check(s), Ok(u64::from(s)));
            w.accept(u64::from(s)).unwrap();
            assert_eq!(w.check(s), Err(ReplayError::Duplicate { seq: s.into() }));
        }
        // 200 - 137 = 63 < 64: inside, already seen.
        assert_eq!(w.check(137), Err(ReplayError::Duplicate { seq: 137 }));
        assert!(matches!(
            w.check(136),
            Err(ReplayError::TooOld {
                seq: 136,
                highest: 200,
                window: 64
            })
        ));
    }

    #[test]
    fn check_does_not_update_and_accept_rechecks() {
        let mut w = ReplayWindow::new(32, false).unwrap();
        let s = w.check(5).unwrap();
        assert_eq!(w.highest(), 0);
        w.accept(s).unwrap();
        assert_eq!(w.accept(s), Err(ReplayError::Duplicate { seq: 5 }));
        // Out of order inside the window, then a big jump clears the old bits.
        w.accept(3).unwrap();
        assert!(w.check(4).is_ok());
        w.accept(10_000).unwrap();
        assert!(w.check(9_969).is_ok());
        assert!(w.check(9_968).is_err());
        assert_eq!(w.check(10_000), Err(ReplayError::Duplicate { seq: 10_000 }));
    }

    #[test]
    fn esn_crosses_2_pow_32() {
        let mut w = ReplayWindow::new(128, true).unwrap();
        let start = (1u64 << 32) - 100;
        w.accept(start).unwrap();
        // Case A, right of window in the same subspace.
        assert_eq!(w.check(u32::MAX), Ok(u64::from(u32::MAX)));
        // Low half wrapped: next subspace.
        assert_eq!(w.check(5), Ok((1 << 32) + 5));
        w.accept((1 << 32) + 5).unwrap();
        // Case B: window spans both subspaces; old half resolves to Th - 1.
        assert_eq!(w.check(u32::MAX - 10), Ok(u64::from(u32::MAX - 10)));
        assert_eq!(w.check(u32::MAX), Ok(u64::from(u32::MAX)));
        assert_eq!(w.check(7), Ok((1 << 32) + 7));
        assert_eq!(
            w.check(5),
            Err(ReplayError::Duplicate { seq: (1 << 32) + 5 })
        );
        // Before the first packet ever: nothing below zero.
        let fresh = ReplayWindow::new(128, true).unwrap();
        assert!(matches!(
            fresh.check(u32::MAX),
            Err(ReplayError::TooOld { .. })
        ));
        assert_eq!(fresh.check(1), Ok(1));
    }

    #[test]
    fn non_esn_does_not_infer() {
        let mut w = ReplayWindow::new(128, false).unwrap();
        w.accept(u64::from(u32::MAX - 3)).unwrap();
        assert!(matches!(w.check(2), Err(ReplayError::TooOld { .. })));
    }

    #[test]
    fn counter_never_cycles() {
        let mut c = SeqCounter::new(false);
        assert_eq!(c.take_next(), Ok(1));
        c.advance_to(u64::from(u32::MAX) - 1);
        assert_eq!(c.take_next(), Ok(u64::from(u32::MAX)));
        let e = c.take_next().unwrap_err();
        assert_eq!(
            e,
            SeqExhausted {
                last: u32::MAX.into(),
                esn: false
            }
        );
        assert!(e.to_string().contains("SA needs rekey"));
        assert!(e.to_string().contains("32-bit"));
        assert_eq!(c.remaining(), 0);

        let mut c = SeqCounter::new(true);
        c.advance_to(u64::from(u32::MAX));
        assert_eq!(c.take_next(), Ok(1 << 32));
        c.advance_to(u64::MAX - 1);
        assert_eq!(c.take_next(), Ok(u64::MAX));
        assert!(c.take_next().unwrap_err().to_string().contains("64-bit"));
        c.advance_to(3);
        assert_eq!(c.last(), u64::MAX);
    }
}
