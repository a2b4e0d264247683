//! The SPD index must give exactly the linear scan's answer: first match in
//! order, default discard. Random policy sets over a small address space (so
//! that policies overlap and nest) and random packets.

use std::net::IpAddr;

use palisade_sa::selector::{AddrRange, Direction, PortRange, Selector, SelectorKey};
use palisade_sa::spd::{Action, PolicySpec, Spd};
use proptest::prelude::*;

fn v4(a: u8, b: u8) -> IpAddr {
    IpAddr::from([10, 0, a, b])
}

fn addr_range() -> impl Strategy<Value = AddrRange> {
    prop_oneof![
        1 => Just(AddrRange::Any),
        4 => (any::<u8>(), any::<u8>(), 16u8..=32).prop_map(|(a, b, len)| AddrRange::prefix(v4(a % 8, b), len).unwrap()),
        2 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, n)| {
            let s = u32::from_be_bytes([10, 0, a % 8, b]);
            AddrRange::V4 { start: s, end: s.saturating_add(u32::from(n)) }
        }),
        1 => (0u16..64, 112u8..=128).prop_map(|(x, len)| AddrRange::prefix(format!("2001:db8::{x:x}").parse().unwrap(), len).unwrap()),
    ]
}

fn port_range() -> impl Strategy<Value = PortRange> {
    prop_oneof![
        3 => Just(PortRange::Any),
        1 => Just(PortRange::Opaque),
        2 => (0u16..20, 0u16..20).prop_map(|(a, n)| PortRange::range(a, a + n).unwrap()),
    ]
}

fn policy() -> impl Strategy<Value = PolicySpec> {
    (
        0u32..4,
        any::<bool>(),
        addr_range(),
        addr_range(),
        prop::option::of(prop_oneof![Just(6u8), Just(17)]),
        port_range(),
        port_range(),
        0u8..3,
    )
        .prop_map(
            |(priority, inbound, local, remote, proto, lp, rp, act)| PolicySpec {
                priority,
                direction: if inbound {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                },
                selector: Selector {
                    local,
                    remote,
                    proto,
                    local_port: lp,
                    remote_port: rp,
                },
                action: match act {
                    0 => Action::Bypass,
                    _ => Action::Discard,
                },
            },
        )
}

fn key() -> impl Strategy<Value = (SelectorKey, bool)> {
    let addr = prop_oneof![
        4 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| v4(a % 8, b)),
        1 => (0u16..64).prop_map(|x| format!("2001:db8::{x:x}").parse::<IpAddr>().unwrap()),
    ];
    (
        addr.clone(),
        addr,
        prop_oneof![Just(6u8), Just(17), Just(1)],
        prop::option::of(0u16..25),
        prop::option::of(0u16..25),
        any::<bool>(),
    )
        .prop_map(|(src, dst, proto, sport, dport, inbound)| {
            (
                SelectorKey {
                    src,
                    dst,
                    proto,
                    sport,
                    dport,
                },
                inbound,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn index_equals_linear_scan(pols in prop::collection::vec(policy(), 0..250), keys in prop::collection::vec(key(), 1..200)) {
        let mut spd = Spd::new();
        // Most in bulk, the last few one by one: both paths rebuild the index.
        let half = pols.len().saturating_sub(6);
        spd.extend(pols[..half].iter().copied());
        for p in &pols[half..] {
            spd.insert(*p);
        }
        for (k, inbound) in keys {
            let dir = if inbound { Direction::Inbound } else { Direction::Outbound };
            let fast = spd.lookup(dir, &k).map(|p| p.id);
            let slow = spd.lookup_linear(dir, &k).map(|p| p.id);
            prop_assert_eq!(fast, slow, "{:?} {:?}", dir, k);
            if slow.is_none() {
                prop_assert_eq!(spd.decide(dir, &k), Action::Discard);
            }
        }
    }
}

#[test]
fn many_nested_ranges_stay_bounded() {
    // 3,000 nested ranges around one point: the worst case for the interval
    // cut. The index must stay bounded (it falls back to a scan) and correct.
    let mut spd = Spd::new();
    spd.extend((0..3000u32).map(|i| PolicySpec {
        priority: i,
        direction: Direction::Outbound,
        selector: Selector::between(
            AddrRange::Any,
            AddrRange::V4 {
                start: 0x0a00_0000 + 3000 - i,
                end: 0x0a00_0000 + 3000 + i,
            },
        ),
        action: Action::Bypass,
    }));
    assert!(
        spd.index_entries() <= 3000 * 17 + 2048,
        "index has {} entries",
        spd.index_entries()
    );
    for x in [0u32, 1, 1500, 2999, 3000, 3001, 4500, 5999, 6000, 7000] {
        let k = SelectorKey::new(
            v4(0, 1),
            IpAddr::from((0x0a00_0000u32 + x).to_be_bytes()),
            6,
            1,
            2,
        );
        assert_eq!(
            spd.lookup(Direction::Outbound, &k),
            spd.lookup_linear(Direction::Outbound, &k)
        );
    }
}
