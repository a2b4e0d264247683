//! The Security Policy Database (RFC 4301 4.4.1).
//!
//! An ordered list of policies, each a [`Selector`], a [`Direction`] and an
//! [`Action`]: PROTECT (with the SA bundle and mode), BYPASS or DISCARD. Lookup
//! returns the first match in order (priority, then insertion). RFC 4301 4.4.1:
//! "the SPD is an ordered database [...] the first matching entry is used",
//! and what matches nothing is discarded (RFC 4301 5.1: "If no match is found
//! [...] the packet MUST be discarded") — see [`Spd::decide`].
//!
//! Direction. Each policy carries its direction; the outbound and inbound views
//! are indexed separately. Outbound: the key's source is local. Inbound (for
//! unprotected traffic, RFC 4301 5.2 step 3, and to check a decapsulated packet
//! against policy): the key's destination is local.
//!
//! Speed. A linear scan of 10,000 policies costs tens of microseconds; the index
//! makes lookup logarithmic in practice. Per direction it cuts the remote
//! address axis into elementary intervals (every policy range's start and end+1
//! is a cut); each interval lists, in policy order, the policies whose remote
//! range covers it. Long lists are cut again on the local address axis. Policies
//! with ANY on an axis sit in a "rest" list beside that axis's intervals. Lookup
//! is one binary search per axis, then a short in-order scan that stops at the
//! first full match (or at the best position already found). Because positions
//! in the sorted policy list are the order, "first match" across the lists is a
//! minimum of positions. Where nesting would make the index large (more than
//! [`INDEX_FANOUT_LIMIT`] copies per policy), that level stays a linear list,
//! so memory is bounded and lookup degrades to a scan, never to a wrong answer.
//!
//! Changes rebuild the index (O(n log n); about a millisecond per thousand
//! policies): add policies in bulk with [`Spd::extend`]. Changing an action
//! (e.g. the SA handle once IKE installed the SA) does not rebuild.

use core::net::IpAddr;
use std::collections::{BTreeSet, BinaryHeap};

use crate::sad::SaHandle;
use crate::selector::{AddrRange, Direction, Oriented, Selector, SelectorKey};

/// Bound on index size: at most this many list entries per policy per level;
/// past it the level is left as a linear list.
pub const INDEX_FANOUT_LIMIT: usize = 16;

/// Lists shorter than this are scanned, not split further.
const SPLIT_THRESHOLD: usize = 8;

/// Stable name of a policy within one [`Spd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(pub u64);

/// IPsec mode of the SAs a PROTECT policy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Protect the payload of the original IP packet.
    Transport,
    /// Protect the whole packet inside a new outer IP header.
    Tunnel,
}

/// The SA bundle a PROTECT policy applies. Handles are `None` until IKE has
/// installed the SA (an outbound packet then is dropped as
/// [`crate::counters::DropReason::NoSa`] and IKE is asked for an SA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bundle {
    /// ESP only.
    Esp {
        /// Outbound (or expected inbound) ESP SA.
        sa: Option<SaHandle>,
    },
    /// AH only.
    Ah {
        /// The AH SA.
        sa: Option<SaHandle>,
    },
    /// ESP inside AH (RFC 4301 4.3: ESP applied first, then AH outside it).
    AhEsp {
        /// The outer AH SA.
        ah: Option<SaHandle>,
        /// The inner ESP SA.
        esp: Option<SaHandle>,
    },
}

/// PROTECT details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Protect {
    /// Which SAs.
    pub bundle: Bundle,
    /// Transport or tunnel.
    pub mode: Mode,
}

/// What to do with a packet a policy matches (RFC 4301 4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Apply IPsec with these SAs.
    Protect(Protect),
    /// Let it through without IPsec.
    Bypass,
    /// Drop it.
    Discard,
}

/// A policy as given to [`Spd::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicySpec {
    /// Lower comes first; equal priorities keep insertion order.
    pub priority: u32,
    /// Outbound or inbound.
    pub direction: Direction,
    /// What traffic.
    pub selector: Selector,
    /// What to do.
    pub action: Action,
}

/// A policy in the SPD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Its name here.
    pub id: PolicyId,
    /// Priority, direction, selector and action as inserted.
    pub spec: PolicySpec,
}

/// The SPD.
#[derive(Debug, Clone, Default)]
pub struct Spd {
    /// Sorted by (priority, id); a policy's position is its order.
    policies: Vec<Policy>,
    outbound: Cell,
    inbound: Cell,
    next_id: u64,
}

impl Spd {
    /// An empty SPD (which discards everything).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of policies (both directions).
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Add one policy. Rebuilds the index; for many, use [`Self::extend`].
    pub fn insert(&mut self, spec: PolicySpec) -> PolicyId {
        let id = self.push(spec);
        self.rebuild();
        id
    }

    /// Add many policies with one index rebuild; returns their ids in order.
    pub fn extend(&mut self, specs: impl IntoIterator<Item = PolicySpec>) -> Vec<PolicyId> {
        let ids = specs.into_iter().map(|s| self.push(s)).collect();
        self.rebuild();
        ids
    }

    /// Remove a policy.
    pub fn remove(&mut self, id: PolicyId) -> Option<PolicySpec> {
        let pos = self.policies.iter().position(|p| p.id == id)?;
        let p = self.policies.remove(pos);
        self.rebuild();
        Some(p.spec)
    }

    /// Change a policy's action (e.g. fill in the SA handle); no rebuild.
    pub fn set_action(&mut self, id: PolicyId, action: Action) -> Option<Action> {
        let p = self.policies.iter_mut().find(|p| p.id == id)?;
        Some(core::mem::replace(&mut p.spec.action, action))
    }

    /// A policy by id.
    pub fn get(&self, id: PolicyId) -> Option<&Policy> {
        self.policies.iter().find(|p| p.id == id)
    }

    /// All policies in lookup order.
    pub fn iter(&self) -> impl Iterator<Item = &Policy> + '_ {
        self.policies.iter()
    }

    /// The first policy of direction `dir` matching `key`.
    #[inline]
    pub fn lookup(&self, dir: Direction, key: &SelectorKey) -> Option<&Policy> {
        let o = key.oriented(dir);
        let root = match dir {
            Direction::Outbound => &self.outbound,
            Direction::Inbound => &self.inbound,
        };
        let pos = root.lookup(&o, &self.policies, u32::MAX);
        self.policies.get(pos as usize)
    }

    /// The action for `key`: the first match's, or DISCARD when none matches
    /// (default deny; never "clear").
    #[inline]
    pub fn decide(&self, dir: Direction, key: &SelectorKey) -> Action {
        self.lookup(dir, key)
            .map_or(Action::Discard, |p| p.spec.action)
    }

    /// The same answer as [`Self::lookup`] by a linear scan: the reference the
    /// index is tested against, and a fallback for debugging.
    pub fn lookup_linear(&self, dir: Direction, key: &SelectorKey) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| p.spec.direction == dir && p.spec.selector.matches(key, dir))
    }

    /// Number of list entries in the index (memory diagnostics).
    pub fn index_entries(&self) -> usize {
        self.outbound.size() + self.inbound.size()
    }

    fn push(&mut self, spec: PolicySpec) -> PolicyId {
        let id = PolicyId(self.next_id);
        self.next_id += 1;
        let at = self
            .policies
            .partition_point(|p| p.spec.priority <= spec.priority);
        self.policies.insert(at, Policy { id, spec });
        id
    }

    fn rebuild(&mut self) {
        for dir in [Direction::Outbound, Direction::Inbound] {
            let members: Vec<u32> = self
                .policies
                .iter()
                .enumerate()
                .filter(|(_, p)| p.spec.direction == dir)
                .map(|(i, _)| i as u32) // ok: a Vec of policies stays far below 2^32 entries
                .collect();
            let cell = Cell::build(&self.policies, members, &[Axis::Remote, Axis::Local]);
            match dir {
                Direction::Outbound => self.outbound = cell,
                Direction::Inbound => self.inbound = cell,
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    Remote,
    Local,
}

impl Axis {
    fn range(self, s: &Selector) -> AddrRange {
        match self {
            Axis::Remote => s.remote,
            Axis::Local => s.local,
        }
    }

    fn addr(self, o: &Oriented) -> IpAddr {
        match self {
            Axis::Remote => o.remote,
            Axis::Local => o.local,
        }
    }
}

/// Positions (into the sorted policy list) to consider, in order.
#[derive(Debug, Clone)]
enum Cell {
    Flat(Box<[u32]>),
    Split(Box<Level>),
}

impl Default for Cell {
    fn default() -> Self {
        Cell::Flat(Box::new([]))
    }
}

/// One axis: intervals per family, plus the policies with ANY on this axis.
#[derive(Debug, Clone)]
struct Level {
    axis: Axis,
    v4: Intervals,
    v6: Intervals,
    rest: Cell,
}

/// `cells[i]` holds the policies covering `[bounds[i], bounds[i + 1])`.
#[derive(Debug, Clone, Default)]
struct Intervals {
    bounds: Box<[u128]>,
    cells: Box<[Cell]>,
}

impl Cell {
    fn build(policies: &[Policy], members: Vec<u32>, axes: &[Axis]) -> Cell {
        match axes.split_first() {
            Some((axis, next)) if members.len() > SPLIT_THRESHOLD => {
                Level::build(policies, members, *axis, next)
                    .unwrap_or_else(|members| Cell::Flat(members.into()))
            }
            _ => Cell::Flat(members.into()),
        }
    }

    #[inline]
    fn lookup(&self, o: &Oriented, policies: &[Policy], best: u32) -> u32 {
        match self {
            Cell::Flat(list) => first_match(list, o, policies, best),
            Cell::Split(level) => level.lookup(o, policies, best),
        }
    }

    fn size(&self) -> usize {
        match self {
            Cell::Flat(l) => l.len(),
            Cell::Split(level) => {
                level.rest.size()
                    + [&level.v4, &level.v6]
                        .iter()
                        .map(|iv| iv.cells.iter().map(Cell::size).sum::<usize>())
                        .sum::<usize>()
            }
        }
    }
}

#[inline]
fn first_match(list: &[u32], o: &Oriented, policies: &[Policy], best: u32) -> u32 {
    for &pos in list {
        if pos >= best {
            break;
        }
        if policies
            .get(pos as usize)
            .is_some_and(|p| p.spec.selector.matches_oriented(o))
        {
            return pos;
        }
    }
    best
}

impl Level {
    /// `Err(members)` when splitting on `axis` would exceed the size bound.
    fn build(
        policies: &[Policy],
        members: Vec<u32>,
        axis: Axis,
        next: &[Axis],
    ) -> Result<Cell, Vec<u32>> {
        let mut rest = Vec::new();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for &pos in &members {
            match axis.range(&policies[pos as usize].spec.selector) {
                AddrRange::Any => rest.push(pos),
                AddrRange::V4 { start, end } => v4.push((pos, u128::from(start), u128::from(end))),
                AddrRange::V6 { start, end } => v6.push((pos, start, end)),
            }
        }
        if rest.len() == members.len() {
            // Nothing to cut on this axis; try the next one.
            return Ok(Cell::build(policies, members, next));
        }
        let budget = members.len() * INDEX_FANOUT_LIMIT + 1024;
        let v4 = Intervals::build(policies, v4, u128::from(u32::MAX), budget, next);
        let v6 = Intervals::build(policies, v6, u128::MAX, budget, next);
        match (v4, v6) {
            (Some(v4), Some(v6)) => Ok(Cell::Split(Box::new(Level {
                axis,
                v4,
                v6,
                rest: Cell::build(policies, rest, next),
            }))),
            _ => Err(members),
        }
    }

    #[inline]
    fn lookup(&self, o: &Oriented, policies: &[Policy], best: u32) -> u32 {
        let (iv, x) = match self.axis.addr(o) {
            IpAddr::V4(a) => (&self.v4, u128::from(u32::from(a))),
            IpAddr::V6(a) => (&self.v6, u128::from(a)),
        };
        let mut best = best;
        if !iv.bounds.is_empty() {
            // bounds[0] == 0, so the partition point is at least 1.
            let i = iv.bounds.partition_point(|b| *b <= x).saturating_sub(1);
            if let Some(cell) = iv.cells.get(i) {
                best = cell.lookup(o, policies, best);
            }
        }
        self.rest.lookup(o, policies, best)
    }
}

/// What [`Intervals::build`]'s sweep calls with the policies active over each
/// elementary interval; `false` stops the sweep.
type SweepVisit<'a> = Box<dyn FnMut(&BTreeSet<u32>) -> bool + 'a>;

impl Intervals {
    /// Sweep over the cut points. `None` if the lists would total more than
    /// `budget` entries.
    fn build(
        policies: &[Policy],
        mut items: Vec<(u32, u128, u128)>,
        max: u128,
        budget: usize,
        next: &[Axis],
    ) -> Option<Intervals> {
        if items.is_empty() {
            return Some(Intervals::default());
        }
        let mut bounds: Vec<u128> = Vec::with_capacity(items.len() * 2 + 1);
        bounds.push(0);
        for &(_, s, e) in &items {
            bounds.push(s);
            if e < max {
                bounds.push(e + 1);
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        items.sort_unstable_by_key(|&(_, s, _)| s);

        // Pass 1 counts, pass 2 fills: never materialise an oversized index.
        let sweep = |mut visit: SweepVisit<'_>| -> bool {
            let mut active = BTreeSet::new();
            let mut ends: BinaryHeap<core::cmp::Reverse<(u128, u32)>> = BinaryHeap::new();
            let mut next_item = 0;
            for &b in &bounds {
                while let Some(core::cmp::Reverse((e, pos))) = ends.peek().copied() {
                    if e >= b {
                        break;
                    }
                    ends.pop();
                    active.remove(&pos);
                }
                while let Some(&(pos, s, e)) = items.get(next_item) {
                    if s > b {
                        break;
                    }
                    active.insert(pos);
                    ends.push(core::cmp::Reverse((e, pos)));
                    next_item += 1;
                }
                if !visit(&active) {
                    return false;
                }
            }
            true
        };
        let mut total = 0usize;
        if !sweep(Box::new(|a| {
            total += a.len();
            total <= budget
        })) {
            return None;
        }
        let mut cells = Vec::with_capacity(bounds.len());
        sweep(Box::new(|a| {
            cells.push(Cell::build(policies, a.iter().copied().collect(), next));
            true
        }));
        Some(Intervals {
            bounds: bounds.into(),
            cells: cells.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::PortRange;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pol(prio: u32, dir: Direction, local: &str, remote: &str, action: Action) -> PolicySpec {
        PolicySpec {
            priority: prio,
            direction: dir,
            selector: Selector::between(local.parse().unwrap(), remote.parse().unwrap()),
            action,
        }
    }

    fn esp() -> Action {
        Action::Protect(Protect {
            bundle: Bundle::Esp { sa: None },
            mode: Mode::Tunnel,
        })
    }

    #[test]
    fn empty_discards() {
        let spd = Spd::new();
        let k = SelectorKey::new(ip("10.0.0.1"), ip("10.0.0.2"), 6, 1, 2);
        assert_eq!(spd.lookup(Direction::Outbound, &k), None);
        assert_eq!(spd.decide(Direction::Outbound, &k), Action::Discard);
    }

    #[test]
    fn first_match_by_priority_then_insertion() {
        let mut spd = Spd::new();
        let wide = spd.insert(pol(
            10,
            Direction::Outbound,
            "10.1.0.0/16",
            "10.2.0.0/16",
            esp(),
        ));
        let narrow = spd.insert(pol(
            5,
            Direction::Outbound,
            "10.1.0.0/16",
            "10.2.3.0/24",
            Action::Bypass,
        ));
        let tie = spd.insert(pol(10, Direction::Outbound, "any", "any", Action::Discard));
        let k = SelectorKey::new(ip("10.1.0.1"), ip("10.2.3.4"), 17, 5, 53);
        assert_eq!(
            spd.lookup(Direction::Outbound, &k).map(|p| p.id),
            Some(narrow)
        );
        let k2 = SelectorKey {
            dst: ip("10.2.4.4"),
            ..k
        };
        assert_eq!(
            spd.lookup(Direction::Outbound, &k2).map(|p| p.id),
            Some(wide)
        );
        let k3 = SelectorKey {
            dst: ip("192.0.2.1"),
            ..k
        };
        assert_eq!(
            spd.lookup(Direction::Outbound, &k3).map(|p| p.id),
            Some(tie)
        );
        // Inbound view is separate: nothing inbound, so discard.
        assert_eq!(spd.decide(Direction::Inbound, &k), Action::Discard);
        spd.remove(narrow);
        assert_eq!(
            spd.lookup(Direction::Outbound, &k).map(|p| p.id),
            Some(wide)
        );
        let h = Action::Protect(Protect {
            bundle: Bundle::Ah { sa: None },
            mode: Mode::Transport,
        });
        assert_eq!(spd.set_action(wide, h), Some(esp()));
        assert_eq!(spd.decide(Direction::Outbound, &k), h);
    }

    #[test]
    fn index_agrees_with_linear_on_overlaps() {
        let mut spd = Spd::new();
        let mut specs = Vec::new();
        for i in 0..200u32 {
            let a = i % 7;
            let local = format!("10.{a}.0.0/{}", 8 + (i % 17));
            let remote = format!("172.16.{}.0/{}", i % 13, 16 + (i % 9));
            let mut s = pol(
                i % 5,
                Direction::Outbound,
                &local,
                &remote,
                if i % 2 == 0 { esp() } else { Action::Bypass },
            );
            if i % 3 == 0 {
                s.selector.proto = Some(6);
                s.selector.remote_port = PortRange::range(100, 200 + i as u16).unwrap();
            }
            if i % 11 == 0 {
                s.selector.remote = AddrRange::Any;
            }
            specs.push(s);
        }
        spd.extend(specs);
        for i in 0..5000u32 {
            let src = IpAddr::from([10, (i % 9) as u8, (i / 7 % 256) as u8, 1]);
            let dst = IpAddr::from([172, 16, (i % 15) as u8, (i * 31 % 256) as u8]);
            let k = SelectorKey::new(
                src,
                dst,
                if i % 2 == 0 { 6 } else { 17 },
                1000,
                (i % 300) as u16,
            );
            assert_eq!(
                spd.lookup(Direction::Outbound, &k),
                spd.lookup_linear(Direction::Outbound, &k),
                "{k:?}"
            );
        }
    }
}
