//! SA lifetimes (RFC 4301 4.4.2.1 "Lifetime of this SA"): soft and hard limits
//! by time, bytes and packets.
//!
//! > If a soft lifetime expires, then [...] the SA is rekeyed [...]. If a hard
//! > lifetime expires, the SA MUST be terminated [and] the packet that caused
//! > it must not be processed.
//!
//! Time is passed in ([`Timestamp`], nanoseconds on whatever monotonic clock the
//! caller uses); this module never reads a clock. Time limits count from the
//! SA's creation, like strongSwan's `life_time`/`rekey_time` and Linux XFRM's
//! `add_expires`. Use-based expiry (XFRM's `use_expires`) is left out: an idle
//! SA is cheap, and creation-based limits are what IKE negotiates and what peers
//! assume; [`Lifetime::first_use`] is kept for idle reporting.

use core::time::Duration;
use thiserror::Error;

/// A point in time: nanoseconds since an epoch the caller picks (typically a
/// monotonic clock read once per batch). Only differences matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `self + d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ns))
    }

    /// Time from `earlier` to `self` (zero if `earlier` is later).
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// One set of limits; `None` means unlimited in that dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Age since creation.
    pub time: Option<Duration>,
    /// Bytes of payload charged.
    pub bytes: Option<u64>,
    /// Packets charged.
    pub packets: Option<u64>,
}

/// Soft (rekey) and hard (delete) limits of one SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LifetimeConfig {
    /// Reaching any soft limit asks for a rekey, once.
    pub soft: Limits,
    /// Reaching any hard limit ends the SA.
    pub hard: Limits,
}

/// Which limit fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Age.
    Time,
    /// Bytes.
    Bytes,
    /// Packets.
    Packets,
}

impl core::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LimitKind::Time => "time",
            LimitKind::Bytes => "bytes",
            LimitKind::Packets => "packets",
        })
    }
}

/// What crossing a limit means for the caller. Each of `SoftExpired` and
/// `HardExpired` is reported exactly once over the SA's life (by whichever of
/// [`Lifetime::charge`] / [`Lifetime::check`] sees it first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeEvent {
    /// Nothing new.
    None,
    /// A soft limit was reached: start a rekey. The SA stays usable.
    SoftExpired(LimitKind),
    /// A hard limit was reached: delete the SA. Only [`Lifetime::check`]
    /// returns this; [`Lifetime::charge`] reports it as an error.
    HardExpired(LimitKind),
}

/// The SA has passed a hard limit; the packet must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("SA lifetime expired: hard {limit} limit reached")]
pub struct LifetimeExpired {
    /// The limit that ended the SA.
    pub limit: LimitKind,
    /// True exactly once: for the call that found the SA expired first (that
    /// caller deletes the SA and tells IKE). Later calls get `false`.
    pub first: bool,
}

/// Lifetime state of one SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    config: LifetimeConfig,
    created: Timestamp,
    first_use: Option<Timestamp>,
    bytes: u64,
    packets: u64,
    soft_reported: bool,
    hard: Option<LimitKind>,
    hard_reported: bool,
    /// Below these marks no limit can fire, so [`Self::charge`] only adds.
    quiet: Quiet,
}

/// The marks [`Lifetime::charge`]'s fast path stays under: a packet that
/// leaves the byte and packet totals below `bytes` and `packets` and comes
/// before `until` reaches no soft limit still to report and no hard limit.
/// All zero (nothing is quiet) until the first packet and after a hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Quiet {
    bytes: u64,
    packets: u64,
    until: Timestamp,
}

impl Lifetime {
    /// Start counting at `created`.
    pub fn new(config: LifetimeConfig, created: Timestamp) -> Self {
        Self {
            config,
            created,
            first_use: None,
            bytes: 0,
            packets: 0,
            soft_reported: false,
            hard: None,
            hard_reported: false,
            quiet: Quiet::default(),
        }
    }

    /// The marks below which nothing can fire, from the limits and what has
    /// been reported: a hard byte or packet limit fires when a total goes
    /// past it, a soft one when a total reaches it, either time limit when
    /// `now` reaches it.
    fn quiet_marks(&self) -> Quiet {
        if self.hard.is_some() {
            return Quiet::default();
        }
        let (soft, hard) = (&self.config.soft, &self.config.hard);
        let soft_on = !self.soft_reported;
        let mark = |soft: Option<u64>, hard: Option<u64>| {
            let hard = hard.map_or(u64::MAX, |h| h.saturating_add(1));
            soft.filter(|_| soft_on).map_or(hard, |s| s.min(hard))
        };
        let at = |d: Duration| self.created.saturating_add(d);
        let soft_time = soft.time.filter(|_| soft_on).map(at);
        Quiet {
            bytes: mark(soft.bytes, hard.bytes),
            packets: mark(soft.packets, hard.packets),
            until: [soft_time, hard.time.map(at)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(Timestamp(u64::MAX)),
        }
    }

    /// Account one packet of `bytes` at `now`, before it is processed.
    ///
    /// `Ok(SoftExpired)` once when a soft limit is reached (the packet is still
    /// processed); `Err` when the packet would pass a hard limit or the SA is
    /// already expired — then nothing is charged and the packet must be dropped.
    /// A hard byte or packet limit is the most the SA may carry: a packet that
    /// would carry the total past it is refused.
    #[inline]
    pub fn charge(&mut self, now: Timestamp, bytes: u64) -> Result<LifetimeEvent, LifetimeExpired> {
        let packets = self.packets.saturating_add(1);
        let total = self.bytes.saturating_add(bytes);
        let q = &self.quiet;
        if total < q.bytes && packets < q.packets && now < q.until {
            self.packets = packets;
            self.bytes = total;
            return Ok(LifetimeEvent::None);
        }
        self.charge_checked(now, bytes)
    }

    /// [`Self::charge`] with every limit checked (and the quiet marks
    /// renewed): the first packet, and any that may cross a mark.
    fn charge_checked(
        &mut self,
        now: Timestamp,
        bytes: u64,
    ) -> Result<LifetimeEvent, LifetimeExpired> {
        let ev = self.charge_limits(now, bytes);
        self.quiet = self.quiet_marks();
        ev
    }

    fn charge_limits(
        &mut self,
        now: Timestamp,
        bytes: u64,
    ) -> Result<LifetimeEvent, LifetimeExpired> {
        if let Some(limit) = self.hard {
            return Err(self.expired(limit));
        }
        let packets = self.packets.saturating_add(1);
        let total = self.bytes.saturating_add(bytes);
        let hard = &self.config.hard;
        let over = if self.time_reached(now, hard.time) {
            Some(LimitKind::Time)
        } else if hard.bytes.is_some_and(|b| total > b) {
            Some(LimitKind::Bytes)
        } else if hard.packets.is_some_and(|p| packets > p) {
            Some(LimitKind::Packets)
        } else {
            None
        };
        if let Some(limit) = over {
            self.hard = Some(limit);
            return Err(self.expired(limit));
        }
        self.packets = packets;
        self.bytes = total;
        if self.first_use.is_none() {
            self.first_use = Some(now);
        }
        Ok(self.soft_event(now))
    }

    /// Timer-driven check: reports a soft or hard expiry by time (or a count
    /// limit already reached) once. Call it when [`Self::next_deadline`] passes.
    pub fn check(&mut self, now: Timestamp) -> LifetimeEvent {
        let ev = self.check_limits(now);
        if self.first_use.is_some() {
            self.quiet = self.quiet_marks();
        }
        ev
    }

    fn check_limits(&mut self, now: Timestamp) -> LifetimeEvent {
        if self.hard.is_none() {
            let hard = &self.config.hard;
            if self.time_reached(now, hard.time) {
                self.hard = Some(LimitKind::Time);
            } else if hard.bytes.is_some_and(|b| self.bytes >= b) {
                self.hard = Some(LimitKind::Bytes);
            } else if hard.packets.is_some_and(|p| self.packets >= p) {
                self.hard = Some(LimitKind::Packets);
            }
        }
        if let Some(limit) = self.hard {
            // A hard expiry supersedes the rekey request.
            self.soft_reported = true;
            if !self.hard_reported {
                self.hard_reported = true;
                return LifetimeEvent::HardExpired(limit);
            }
            return LifetimeEvent::None;
        }
        self.soft_event(now)
    }

    /// The next time at which [`Self::check`] may have something to report
    /// (for a sans-IO `poll_timeout`); `None` when no time limit is pending.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        if self.hard_reported {
            return None;
        }
        let soft = if self.soft_reported {
            None
        } else {
            self.config.soft.time
        };
        [soft, self.config.hard.time]
            .into_iter()
            .flatten()
            .map(|d| self.created.saturating_add(d))
            .min()
    }

    /// Whether a hard limit was reached; every later `charge` fails.
    pub fn is_expired(&self) -> bool {
        self.hard.is_some()
    }

    /// Bytes charged so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Packets charged so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// When the SA was created.
    pub fn created(&self) -> Timestamp {
        self.created
    }

    /// When the first packet was charged, if any.
    pub fn first_use(&self) -> Option<Timestamp> {
        self.first_use
    }

    /// The configured limits.
    pub fn config(&self) -> &LifetimeConfig {
        &self.config
    }

    fn time_reached(&self, now: Timestamp, limit: Option<Duration>) -> bool {
        limit.is_some_and(|d| now >= self.created.saturating_add(d))
    }

    fn soft_event(&mut self, now: Timestamp) -> LifetimeEvent {
        if self.soft_reported {
            return LifetimeEvent::None;
        }
        let soft = &self.config.soft;
        let kind = if self.time_reached(now, soft.time) {
            LimitKind::Time
        } else if soft.bytes.is_some_and(|b| self.bytes >= b) {
            LimitKind::Bytes
        } else if soft.packets.is_some_and(|p| self.packets >= p) {
            LimitKind::Packets
        } else {
            return LifetimeEvent::None;
        };
        self.soft_reported = true;
        LifetimeEvent::SoftExpired(kind)
    }

    fn expired(&mut self, limit: LimitKind) -> LifetimeExpired {
        let first = !self.hard_reported;
        self.hard_reported = true;
        self.soft_reported = true;
        LifetimeExpired { limit, first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn cfg() -> LifetimeConfig {
        LifetimeConfig {
            soft: Limits {
                time: Some(Duration::from_secs(10)),
                bytes: Some(1000),
                packets: Some(5),
            },
            hard: Limits {
                time: Some(Duration::from_secs(20)),
                bytes: Some(2000),
                packets: Some(8),
            },
        }
    }

    #[test]
    fn soft_by_packets_once_then_hard_by_packets() {
        let mut l = Lifetime::new(cfg(), Timestamp(0));
        for i in 1..=8u64 {
            let ev = l.charge(Timestamp(i), 10).unwrap();
            assert_eq!(
                ev,
                if i == 5 {
                    LifetimeEvent::SoftExpired(LimitKind::Packets)
                } else {
                    LifetimeEvent::None
                }
            );
        }
        let e = l.charge(Timestamp(9), 10).unwrap_err();
        assert_eq!(
            e,
            LifetimeExpired {
                limit: LimitKind::Packets,
                first: true
            }
        );
        assert_eq!(
            e.to_string(),
            "SA lifetime expired: hard packets limit reached"
        );
        assert!(!l.charge(Timestamp(10), 1).unwrap_err().first);
        assert_eq!(l.packets(), 8);
        assert_eq!(l.check(Timestamp(11)), LifetimeEvent::None);
        assert!(l.is_expired());
    }

    #[test]
    fn bytes_limits() {
        let mut l = Lifetime::new(cfg(), Timestamp(0));
        assert_eq!(l.charge(Timestamp(0), 999).unwrap(), LifetimeEvent::None);
        assert_eq!(
            l.charge(Timestamp(0), 1).unwrap(),
            LifetimeEvent::SoftExpired(LimitKind::Bytes)
        );
        assert_eq!(l.charge(Timestamp(0), 1000).unwrap(), LifetimeEvent::None);
        assert_eq!(
            l.charge(Timestamp(0), 1).unwrap_err().limit,
            LimitKind::Bytes
        );
        assert_eq!(l.bytes(), 2000);
    }

    #[test]
    fn time_limits_via_check_and_deadline() {
        let mut l = Lifetime::new(cfg(), Timestamp(5 * S));
        assert_eq!(l.next_deadline(), Some(Timestamp(15 * S)));
        assert_eq!(l.check(Timestamp(14 * S)), LifetimeEvent::None);
        assert_eq!(
            l.check(Timestamp(15 * S)),
            LifetimeEvent::SoftExpired(LimitKind::Time)
        );
        assert_eq!(l.check(Timestamp(16 * S)), LifetimeEvent::None);
        assert_eq!(l.charge(Timestamp(16 * S), 1).unwrap(), LifetimeEvent::None);
        assert_eq!(l.next_deadline(), Some(Timestamp(25 * S)));
        assert_eq!(
            l.check(Timestamp(25 * S)),
            LifetimeEvent::HardExpired(LimitKind::Time)
        );
        assert_eq!(l.check(Timestamp(26 * S)), LifetimeEvent::None);
        assert_eq!(l.next_deadline(), None);
        assert_eq!(
            l.charge(Timestamp(26 * S), 1).unwrap_err(),
            LifetimeExpired {
                limit: LimitKind::Time,
                first: false
            }
        );
    }

    #[test]
    fn hard_first_seen_by_charge() {
        let mut l = Lifetime::new(cfg(), Timestamp(0));
        let e = l.charge(Timestamp(30 * S), 1).unwrap_err();
        assert!(e.first);
        assert_eq!(l.check(Timestamp(31 * S)), LifetimeEvent::None);
    }

    #[test]
    fn unlimited() {
        let mut l = Lifetime::new(LifetimeConfig::default(), Timestamp(0));
        for _ in 0..100 {
            assert_eq!(
                l.charge(Timestamp(u64::MAX), u64::MAX).unwrap(),
                LifetimeEvent::None
            );
        }
        assert_eq!(l.check(Timestamp(u64::MAX)), LifetimeEvent::None);
        assert_eq!(l.next_deadline(), None);
        assert_eq!(l.first_use(), Some(Timestamp(u64::MAX)));
    }

    fn limits(time: Option<u64>, bytes: Option<u64>, packets: Option<u64>) -> Limits {
        Limits {
            time: time.map(Duration::from_secs),
            bytes,
            packets,
        }
    }

    proptest::proptest! {
        /// The fast path of `charge` (totals below the quiet marks) answers
        /// exactly as every limit checked on every packet does: the same
        /// events, errors and totals, for limits near the traffic (so the
        /// marks are crossed, by charges and by timer checks alike), the
        /// largest values (saturation), and unlimited ones.
        #[test]
        fn fast_path_agrees_with_checking_every_limit(
            soft in (
                proptest::option::of(0u64..30),
                proptest::option::of(proptest::prop_oneof![0u64..3000, proptest::strategy::Just(u64::MAX)]),
                proptest::option::of(0u64..40),
            ),
            hard in (
                proptest::option::of(0u64..30),
                proptest::option::of(proptest::prop_oneof![0u64..6000, proptest::strategy::Just(u64::MAX)]),
                proptest::option::of(0u64..60),
            ),
            ops in proptest::collection::vec((0u8..8, 0u64..3 * S, 0u64..300), 0..120),
        ) {
            let config = LifetimeConfig {
                soft: limits(soft.0, soft.1, soft.2),
                hard: limits(hard.0, hard.1, hard.2),
            };
            let mut fast = Lifetime::new(config, Timestamp(5 * S));
            let mut every = fast;
            let mut now = Timestamp(5 * S);
            for (op, dt, bytes) in ops {
                now = Timestamp(now.0 + dt);
                if op == 0 {
                    proptest::prop_assert_eq!(fast.check(now), every.check_limits(now));
                } else {
                    proptest::prop_assert_eq!(
                        fast.charge(now, bytes),
                        every.charge_limits(now, bytes)
                    );
                }
                proptest::prop_assert_eq!(
                    (fast.bytes, fast.packets, fast.first_use, fast.hard),
                    (every.bytes, every.packets, every.first_use, every.hard)
                );
            }
        }
    }
}
