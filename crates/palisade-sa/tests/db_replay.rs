//! The anti-replay window against a reference model: a set of accepted numbers
//! plus the highest, with RFC 4303 3.4.3's rules written out the slow way, and
//! ESN inference as its definition ("the unique number congruent to Seql in
//! [bottom, bottom + 2^32)") rather than Appendix A's case split.

use std::collections::HashSet;

use palisade_sa::replay::{ReplayError, ReplayWindow};
use proptest::prelude::*;

struct Model {
    seen: HashSet<u64>,
    top: u64,
    window: u64,
}

impl Model {
    fn check(&self, seq: u64) -> Result<(), &'static str> {
        if seq == 0 {
            return Err("zero");
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.window {
            return Err("old");
        }
        if self.seen.contains(&seq) {
            return Err("dup");
        }
        Ok(())
    }

    fn accept(&mut self, seq: u64) {
        self.seen.insert(seq);
        self.top = self.top.max(seq);
    }

    /// RFC 4304/4303 A2.2 by definition. `None`: below zero.
    fn infer(&self, low: u32) -> Option<u64> {
        let bottom = self.top as i128 - self.window as i128 + 1;
        let base = bottom.rem_euclid(1 << 32);
        let delta = (low as i128 - base).rem_euclid(1 << 32);
        let seq = bottom + delta;
        if seq < 0 || seq > u64::MAX as i128 {
            None
        } else {
            Some(seq as u64)
        }
    }
}

fn kind(e: ReplayError) -> &'static str {
    match e {
        ReplayError::Zero => "zero",
        ReplayError::TooOld { .. } => "old",
        ReplayError::Duplicate { .. } => "dup",
    }
}

/// A true sequence stream: mostly around the top (reordering, duplicates),
/// sometimes far ahead, sometimes far behind.
fn stream() -> impl Strategy<Value = (u32, u64, bool, Vec<i64>)> {
    let window = prop_oneof![
        Just(32u32),
        Just(64),
        Just(100),
        Just(128),
        Just(1024),
        Just(4096),
        1u32..300
    ];
    let start = prop_oneof![
        Just(0u64),
        (1u64 << 32) - 5000..(1u64 << 32) + 5000,
        (3u64 << 32) - 100..(3u64 << 32) + 100,
        any::<u32>().prop_map(u64::from),
    ];
    let step = prop_oneof![
        8 => -300i64..300,
        1 => -10_000i64..10_000,
        1 => 0i64..(1 << 31),
    ];
    (
        window,
        start,
        any::<bool>(),
        prop::collection::vec(step, 1..400),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn window_matches_model((window, start, esn, steps) in stream()) {
        let mut w = ReplayWindow::new(window, esn).unwrap();
        let mut m = Model { seen: HashSet::new(), top: 0, window: u64::from(window) };
        if start > 0 && (esn || start <= u64::from(u32::MAX)) {
            w.accept(start).unwrap();
            m.accept(start);
        }
        let mut cursor = start as i128;
        for step in steps {
            cursor = (cursor + step as i128).max(0);
            let truth = cursor as u64;
            if !esn && truth > u64::from(u32::MAX) {
                continue;
            }
            let low = truth as u32;
            let got = w.check(low);
            let claimed = if esn { m.infer(low) } else { Some(truth) };
            match (got, claimed) {
                (Err(ReplayError::TooOld { seq: 0, .. }), None) => continue,
                (Ok(seq), Some(expect)) => {
                    prop_assert_eq!(seq, expect);
                    prop_assert_eq!(m.check(seq), Ok(()));
                    // The ICV covers the full number: it verifies only if the
                    // inference found the number the sender used.
                    if seq == truth {
                        prop_assert_eq!(w.accept(seq), Ok(()));
                        m.accept(seq);
                        // Accepting twice never works.
                        prop_assert!(w.accept(seq).is_err());
                    }
                }
                (Err(e), Some(expect)) => {
                    prop_assert_eq!(Err(kind(e)), m.check(expect), "seq {} low {}", expect, low);
                    prop_assert!(w.accept(expect).is_err());
                }
                (got, claimed) => prop_assert!(false, "window {:?} model {:?}", got, claimed),
            }
            prop_assert_eq!(w.highest(), m.top);
        }
    }
}

#[test]
fn window_4096_random_within_window() {
    let mut w = ReplayWindow::new(4096, true).unwrap();
    let base = (1u64 << 32) - 2000;
    w.accept(base + 4095).unwrap();
    // Every number in the window once, in a scrambled order.
    let mut order: Vec<u64> = (0..4095).map(|i| (i * 2_654_435_761u64) % 4095).collect();
    order.dedup();
    let mut seen = HashSet::new();
    for off in order {
        let seq = base + off;
        let r = w.check(seq as u32);
        if seen.insert(seq) {
            assert_eq!(r, Ok(seq));
            w.accept(seq).unwrap();
        } else {
            assert_eq!(r, Err(ReplayError::Duplicate { seq }));
        }
    }
    // ESN: a low half left of the window is read as the next subspace.
    assert_eq!(w.check((base - 1) as u32), Ok(base - 1 + (1 << 32)));
}
