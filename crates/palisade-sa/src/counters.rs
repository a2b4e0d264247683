//! Drop reasons and traffic counters, per SA and global.
//!
//! Plain `u64`s, not atomics: the data plane gives each worker its own SAs (and
//! its own [`GlobalCounters`]), and the control plane sums snapshots. RFC 4301
//! 4.4.2 lists the per-SA "lifetime" counters; RFC 4303 3.4 calls each drop an
//! "auditable event" — these counters are what gets audited.

use core::fmt;

/// Why a packet was dropped. Shared by every stage so that logs and metrics use
/// one vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DropReason {
    /// Inbound ESP/AH with an SPI (and destination) the SAD does not hold
    /// (RFC 4303 3.4.2).
    UnknownSpi = 0,
    /// Sequence number already seen or left of the anti-replay window.
    Replay,
    /// Integrity check value (or AEAD tag) did not verify.
    IcvFailure,
    /// ESP padding bytes or pad length inconsistent after decryption.
    BadPadding,
    /// The decapsulated packet does not match the SA's selectors, or the
    /// inbound SPD wants a different SA or protection (RFC 4301 5.2 step 4).
    PolicyMismatch,
    /// The SPD said DISCARD, or no SPD entry matched (default deny).
    PolicyDiscard,
    /// PROTECT, but no outbound SA is installed yet (waiting for IKE).
    NoSa,
    /// The SA passed its hard lifetime (time, bytes or packets).
    LifetimeExpired,
    /// The outbound sequence counter is exhausted; the SA needs rekeying.
    SequenceExhausted,
    /// A header or length that does not parse.
    Malformed,
}

impl DropReason {
    /// Number of reasons; the length of a counter array.
    pub const COUNT: usize = 10;

    /// Every reason, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::UnknownSpi,
        DropReason::Replay,
        DropReason::IcvFailure,
        DropReason::BadPadding,
        DropReason::PolicyMismatch,
        DropReason::PolicyDiscard,
        DropReason::NoSa,
        DropReason::LifetimeExpired,
        DropReason::SequenceExhausted,
        DropReason::Malformed,
    ];

    /// Stable machine name (metrics label, CLI column).
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::UnknownSpi => "unknown_spi",
            DropReason::Replay => "replay",
            DropReason::IcvFailure => "icv_failure",
            DropReason::BadPadding => "bad_padding",
            DropReason::PolicyMismatch => "policy_mismatch",
            DropReason::PolicyDiscard => "policy_discard",
            DropReason::NoSa => "no_sa",
            DropReason::LifetimeExpired => "lifetime_expired",
            DropReason::SequenceExhausted => "sequence_exhausted",
            DropReason::Malformed => "malformed",
        }
    }

    /// Index into a counter array.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::UnknownSpi => "unknown SPI",
            DropReason::Replay => "replayed or stale sequence number",
            DropReason::IcvFailure => "ICV verification failed",
            DropReason::BadPadding => "bad ESP padding",
            DropReason::PolicyMismatch => "policy mismatch",
            DropReason::PolicyDiscard => "discarded by policy",
            DropReason::NoSa => "no SA installed for the policy",
            DropReason::LifetimeExpired => "SA lifetime expired",
            DropReason::SequenceExhausted => "sequence number exhausted (SA needs rekey)",
            DropReason::Malformed => "malformed packet",
        })
    }
}

/// One counter per [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::COUNT]);

impl DropCounters {
    /// Count one drop.
    #[inline]
    pub fn record(&mut self, reason: DropReason) {
        let c = &mut self.0[reason.index()];
        *c = c.wrapping_add(1);
    }

    /// Drops for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    }

    /// `(reason, count)` pairs, in [`DropReason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(move |r| (*r, self.get(*r)))
    }

    /// Add `other` into `self`.
    pub fn merge(&mut self, other: &DropCounters) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.wrapping_add(*b);
        }
    }
}

/// Counters of one SA. An SA is one-way, so an inbound SA only moves the `in`
/// fields and an outbound SA the `out` fields; both exist so one type serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaCounters {
    /// Packets accepted (ICV verified, replay passed, policy matched).
    pub packets_in: u64,
    /// Bytes of those packets (the protected payload, as charged to lifetimes).
    pub bytes_in: u64,
    /// Packets protected and sent.
    pub packets_out: u64,
    /// Bytes of those packets.
    pub bytes_out: u64,
    /// Packets dropped on this SA, by reason.
    pub drops: DropCounters,
}

impl SaCounters {
    /// Count one accepted inbound packet of `bytes`.
    #[inline]
    pub fn count_in(&mut self, bytes: u64) {
        self.packets_in = self.packets_in.wrapping_add(1);
        self.bytes_in = self.bytes_in.wrapping_add(bytes);
    }

    /// Count one protected outbound packet of `bytes`.
    #[inline]
    pub fn count_out(&mut self, bytes: u64) {
        self.packets_out = self.packets_out.wrapping_add(1);
        self.bytes_out = self.bytes_out.wrapping_add(bytes);
    }

    /// Count one drop.
    #[inline]
    pub fn drop_packet(&mut self, reason: DropReason) {
        self.drops.record(reason);
    }

    /// Add `other` into `self`.
    pub fn merge(&mut self, other: &SaCounters) {
        self.packets_in = self.packets_in.wrapping_add(other.packets_in);
        self.bytes_in = self.bytes_in.wrapping_add(other.bytes_in);
        self.packets_out = self.packets_out.wrapping_add(other.packets_out);
        self.bytes_out = self.bytes_out.wrapping_add(other.bytes_out);
        self.drops.merge(&other.drops);
    }
}

/// Counters of a whole worker (or, merged, of the daemon): the same fields as
/// [`SaCounters`], plus drops that belong to no SA (unknown SPI, malformed,
/// policy discard) which are counted only here.
pub type GlobalCounters = SaCounters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_complete_and_ordered() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn display_names_the_reason() {
        assert_eq!(DropReason::UnknownSpi.to_string(), "unknown SPI");
        assert_eq!(
            DropReason::IcvFailure.to_string(),
            "ICV verification failed"
        );
        assert_eq!(DropReason::Malformed.name(), "malformed");
    }

    #[test]
    fn counting_and_merge() {
        let mut a = SaCounters::default();
        a.count_in(100);
        a.count_in(50);
        a.count_out(10);
        a.drop_packet(DropReason::Replay);
        a.drop_packet(DropReason::Replay);
        a.drop_packet(DropReason::IcvFailure);
        assert_eq!(
            (a.packets_in, a.bytes_in, a.packets_out, a.bytes_out),
            (2, 150, 1, 10)
        );
        assert_eq!(a.drops.get(DropReason::Replay), 2);
        assert_eq!(a.drops.total(), 3);
        let mut g = GlobalCounters::default();
        g.drop_packet(DropReason::UnknownSpi);
        g.merge(&a);
        g.merge(&a);
        assert_eq!(g.packets_in, 4);
        assert_eq!(g.drops.get(DropReason::Replay), 4);
        assert_eq!(g.drops.iter().map(|(_, c)| c).sum::<u64>(), 7);
    }
}
