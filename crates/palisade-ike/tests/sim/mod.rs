//! Deterministic simulator: two endpoints, a virtual clock, and a network
//! that drops, delays, duplicates, reorders and truncates packets, all drawn
//! from one seed.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use palisade_ike::*;

pub const A: usize = 0;
pub const B: usize = 1;

pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1 + i as u8], 500))
}

pub fn ts(a: [u8; 4], b: [u8; 4]) -> TrafficSelector {
    TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        addresses: AddressRange::V4 {
            start: Ipv4Addr::from(a),
            end: Ipv4Addr::from(b),
        },
    }
}

/// A's view: 10.1.0.0/16 (local) <-> 10.2.0.0/16 (remote).
pub fn conn(i: usize) -> Connection {
    let me = Identity::Fqdn(format!("{}.sim.test", ["a", "b"][i]));
    let peer = Identity::Fqdn(format!("{}.sim.test", ["b", "a"][i]));
    let mut c = Connection::psk(["ab", "ba"][i], me, Some(peer), b"simulated pre-shared key");
    c.local_addr = Some(addr(i));
    c.remote_addr = Some(addr(1 - i));
    let (l, r) = if i == A {
        (
            ts([10, 1, 0, 0], [10, 1, 255, 255]),
            ts([10, 2, 0, 0], [10, 2, 255, 255]),
        )
    } else {
        (
            ts([10, 2, 0, 0], [10, 2, 255, 255]),
            ts([10, 1, 0, 0], [10, 1, 255, 255]),
        )
    };
    c.children.push(ChildConfig::tunnel("net", l, r));
    c.keying_tries = 3;
    c
}

pub fn config(i: usize) -> Config {
    Config {
        connections: vec![conn(i)],
        cookie_threshold: 16,
        half_open_per_source: 16,
        retransmit: Retransmit {
            initial: Duration::from_millis(500),
            max_interval: Duration::from_secs(4),
            tries: 20,
        },
        half_open_timeout: Duration::from_secs(120),
    }
}

/// Decides to drop a datagram: (sending side, datagram) -> drop it.
pub type DropIf = Box<dyn FnMut(usize, &Transmit) -> bool>;

#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Probabilities in parts per thousand.
    pub loss: u64,
    pub dup: u64,
    pub truncate: u64,
    /// Flip one random bit.
    pub corrupt: u64,
    /// Extra random delay up to this many ms (reordering).
    pub jitter_ms: u64,
}

impl Faults {
    pub fn random(rng: &mut SeededRng) -> Faults {
        Faults {
            loss: rng.next_u64() % 300,
            dup: rng.next_u64() % 100,
            truncate: rng.next_u64() % 50,
            // One seed in three also flips bits (never caught by a checksum here).
            corrupt: if rng.next_u64() % 3 < 1 {
                rng.next_u64() % 30
            } else {
                0
            },
            jitter_ms: rng.next_u64() % 80,
        }
    }
}

/// What one side believes, rebuilt from its events only.
#[derive(Debug, Default)]
pub struct Model {
    pub ike_up: BTreeMap<IkeSaId, bool>,
    pub children: BTreeMap<u32, ChildSaInfo>,
    pub downs: Vec<DownReason>,
    pub child_failures: Vec<String>,
    pub ike_rekeys: usize,
    /// IkeSaMoved events seen (NAT rebinding).
    pub moves: usize,
    /// Every CHILD_SA install: (virtual time since start, inbound SPI, the
    /// inbound SPI of the SA it replaces).
    pub installs: Vec<(Duration, u32, Option<u32>)>,
    /// Every IKE SA rekey, at virtual time since start.
    pub ike_rekey_times: Vec<Duration>,
}

pub struct Sim {
    pub seed: u64,
    pub start: Instant,
    pub now: Instant,
    pub eps: Vec<Endpoint>,
    pub models: Vec<Model>,
    pub faults: Faults,
    rng: SeededRng,
    /// (deliver at, sequence, destination, datagram)
    flight: Vec<(Instant, u64, usize, Transmit)>,
    seq: u64,
    /// Endpoints that are cut off (vanished peer).
    pub dead: [bool; 2],
    pub delivered: u64,
    /// A NAT in front of A: its source address and ports are rewritten to
    /// NAT_IP with ports from NAT_PORT_BASE (RFC 3948 / 7296 2.23 territory).
    pub nat: bool,
    /// Changes the NAT's port mapping (a rebinding NAT).
    pub nat_epoch: u16,
    /// Drops the datagrams it returns true for (sending side, datagram):
    /// one chosen packet lost, where `faults` loses them at random.
    pub drop_if: Option<DropIf>,
}

pub const NAT_IP: [u8; 4] = [203, 0, 113, 1];
pub const NAT_PORT_BASE: u16 = 20000;

impl Sim {
    pub fn new(seed: u64, faults: Faults, ca: Config, cb: Config) -> Sim {
        let start = Instant::now();
        Sim {
            seed,
            start,
            now: start,
            eps: vec![
                Endpoint::new(ca, SeededRng::new(seed.wrapping_mul(2).wrapping_add(1))),
                Endpoint::new(cb, SeededRng::new(seed.wrapping_mul(2).wrapping_add(2))),
            ],
            models: vec![Model::default(), Model::default()],
            faults,
            rng: SeededRng::new(seed ^ 0x5eed_5eed),
            flight: Vec::new(),
            seq: 0,
            dead: [false; 2],
            delivered: 0,
            nat: false,
            nat_epoch: 0,
            drop_if: None,
        }
    }

    pub fn pair(seed: u64, faults: Faults) -> Sim {
        Sim::new(seed, faults, config(A), config(B))
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        per_mille > 0 && self.rng.next_u64() % 1000 < per_mille
    }

    fn collect(&mut self) {
        for i in 0..2 {
            while let Some(t) = self.eps[i].poll_transmit() {
                let nat_ip = std::net::IpAddr::from(NAT_IP);
                let to = if t.remote.ip() == addr(A).ip() || t.remote.ip() == nat_ip {
                    A
                } else {
                    B
                };
                let mut t = t;
                if self.nat && i == A {
                    // Outbound through the NAT: one external port per inner port.
                    let p = NAT_PORT_BASE + self.nat_epoch * 2 + u16::from(t.local.port() == 4500);
                    t.local = SocketAddr::new(nat_ip, p);
                }
                if self.nat && to == A {
                    // Inbound: back to A's real address and port (any epoch).
                    let off = t.remote.port().wrapping_sub(NAT_PORT_BASE);
                    let port = if off % 2 == 1 { 4500 } else { 500 };
                    t.remote = SocketAddr::new(addr(A).ip(), port);
                }
                if self.dead[i] || self.dead[to] || self.chance(self.faults.loss) {
                    continue;
                }
                if self.drop_if.as_mut().is_some_and(|f| f(i, &t)) {
                    continue;
                }
                let copies = if self.chance(self.faults.dup) { 2 } else { 1 };
                for _ in 0..copies {
                    let mut t = t.clone();
                    if self.chance(self.faults.truncate) && !t.bytes.is_empty() {
                        let n = (self.rng.next_u64() as usize) % t.bytes.len();
                        t.bytes.truncate(n);
                    }
                    if self.chance(self.faults.corrupt) && !t.bytes.is_empty() {
                        let bit = (self.rng.next_u64() as usize) % (t.bytes.len() * 8);
                        t.bytes[bit / 8] ^= 1 << (bit % 8);
                    }
                    let jitter = if self.faults.jitter_ms > 0 {
                        self.rng.next_u64() % self.faults.jitter_ms
                    } else {
                        0
                    };
                    let at = self.now + Duration::from_millis(5 + jitter);
                    self.seq += 1;
                    self.flight.push((at, self.seq, to, t));
                }
            }
            while let Some(ev) = self.eps[i].poll_event() {
                if std::env::var_os("PALISADE_SIM_TRACE").is_some() {
                    let line = format!("{ev:?}");
                    println!(
                        "{:>8.3}s side {i}: {}",
                        (self.now - self.start).as_secs_f64(),
                        &line[..line.len().min(160)]
                    );
                }
                let m = &mut self.models[i];
                match ev {
                    Event::IkeSaUp { ike_sa, .. } => {
                        m.ike_up.insert(ike_sa, true);
                    }
                    Event::IkeSaDown { ike_sa, reason, .. } => {
                        m.ike_up.remove(&ike_sa);
                        m.downs.push(reason);
                    }
                    Event::ChildSaInstalled(info) => {
                        m.installs
                            .push((self.now - self.start, info.inbound_spi, info.rekeys));
                        assert!(
                            m.children.insert(info.inbound_spi, info).is_none(),
                            "seed {}: inbound SPI installed twice",
                            self.seed
                        );
                    }
                    Event::ChildSaDeleted { inbound_spi, .. } => {
                        assert!(
                            m.children.remove(&inbound_spi).is_some(),
                            "seed {}: deleted a CHILD_SA that was never installed",
                            self.seed
                        );
                    }
                    Event::ChildSaFailed { reason, .. } => m.child_failures.push(reason),
                    Event::IkeSaMoved {
                        ike_sa,
                        local,
                        remote,
                    } => {
                        m.moves += 1;
                        // What the data plane does: every CHILD_SA of the IKE
                        // SA now uses the new addresses.
                        for c in m.children.values_mut().filter(|c| c.ike_sa == ike_sa) {
                            c.local = local;
                            c.remote = remote;
                        }
                    }
                    Event::IkeSaRekeyed { old, new } => {
                        assert!(
                            m.ike_up.remove(&old).is_some(),
                            "seed {}: rekeyed an IKE SA that was not up",
                            self.seed
                        );
                        m.ike_up.insert(new, true);
                        for c in m.children.values_mut().filter(|c| c.ike_sa == old) {
                            c.ike_sa = new;
                        }
                        m.ike_rekeys += 1;
                        m.ike_rekey_times.push(self.now - self.start);
                    }
                }
            }
        }
    }

    /// Advance until `done` holds or virtual time passes `limit`.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let deadline = self.now + limit;
        loop {
            self.collect();
            if done(self) {
                return true;
            }
            let mut next = self.flight.iter().map(|f| f.0).min();
            for e in &self.eps {
                if let Some(t) = e.poll_timeout() {
                    next = Some(next.map_or(t, |n: Instant| n.min(t)));
                }
            }
            let Some(next) = next else { return false };
            if next > deadline {
                self.now = deadline;
                return false;
            }
            self.now = self.now.max(next);
            let now = self.now;
            // Deliver in (time, sequence) order: the jitter reorders.
            self.flight.sort_by_key(|f| (f.0, f.1));
            let ready: Vec<_> = {
                let n = self.flight.iter().take_while(|f| f.0 <= now).count();
                self.flight.drain(..n).collect()
            };
            let trace = std::env::var_os("PALISADE_SIM_TRACE").is_some();
            for (_, _, to, t) in ready {
                self.delivered += 1;
                if trace {
                    let b = t.bytes.strip_prefix(&[0u8; 4][..]).unwrap_or(&t.bytes);
                    if b.len() >= 28 {
                        println!(
                            "{:>8.3}s {} -> {}: exch {} flags {:02x} id {} len {}",
                            (now - self.start).as_secs_f64(),
                            1 - to,
                            to,
                            b[18],
                            b[19],
                            u32::from_be_bytes([b[20], b[21], b[22], b[23]]),
                            b.len()
                        );
                    }
                }
                self.eps[to].handle_datagram(now, t.remote, t.local, &t.bytes);
            }
            for e in &mut self.eps {
                if e.poll_timeout().is_some_and(|t| t <= now) {
                    e.handle_timeout(now);
                }
            }
        }
    }

    /// Run for a fixed virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    pub fn established(&self) -> bool {
        self.models.iter().all(|m| !m.ike_up.is_empty())
    }

    pub fn child_pairs(&self) -> usize {
        self.models[A]
            .children
            .len()
            .min(self.models[B].children.len())
    }

    /// The CHILD_SAs mirror each other by SPI (no exchange half done).
    pub fn mirrored(&self) -> bool {
        let (a, b) = (&self.models[A], &self.models[B]);
        a.children.len() == b.children.len()
            && a.children
                .values()
                .all(|c| b.children.contains_key(&c.outbound_spi))
    }

    /// Both sides hold the same CHILD_SAs, mirrored: SPIs, keys, selectors,
    /// transforms, mode. And the engines agree with their event streams.
    pub fn check_agreement(&self) {
        let s = self.seed;
        let (a, b) = (&self.models[A], &self.models[B]);
        assert_eq!(
            a.children.len(),
            b.children.len(),
            "seed {s}: A has {} CHILD_SAs, B has {}",
            a.children.len(),
            b.children.len()
        );
        for (spi, ca) in &a.children {
            let cb = b
                .children
                .values()
                .find(|c| c.outbound_spi == *spi)
                .unwrap_or_else(|| {
                    panic!("seed {s}: B has no CHILD_SA sending to A's SPI {spi:08x}")
                });
            assert_eq!(ca.outbound_spi, cb.inbound_spi, "seed {s}");
            assert_eq!(
                ca.inbound_encr_key, cb.outbound_encr_key,
                "seed {s}: keys differ"
            );
            assert_eq!(
                ca.outbound_encr_key, cb.inbound_encr_key,
                "seed {s}: keys differ"
            );
            assert_eq!(ca.inbound_integ_key, cb.outbound_integ_key, "seed {s}");
            assert_eq!(ca.outbound_integ_key, cb.inbound_integ_key, "seed {s}");
            assert_ne!(
                ca.inbound_encr_key, ca.outbound_encr_key,
                "seed {s}: same key both ways"
            );
            assert_eq!(ca.local_ts, cb.remote_ts, "seed {s}: selectors differ");
            assert_eq!(ca.remote_ts, cb.local_ts, "seed {s}: selectors differ");
            assert_eq!(
                (ca.encr, ca.integ, ca.esn, ca.mode),
                (cb.encr, cb.integ, cb.esn, cb.mode),
                "seed {s}"
            );
        }
        for (i, m) in self.models.iter().enumerate() {
            let mut engine: Vec<u32> = self.eps[i]
                .ike_sas()
                .into_iter()
                .flat_map(|id| self.eps[i].child_sas(id))
                .map(|c| c.inbound_spi)
                .collect();
            engine.sort();
            let model: Vec<u32> = m.children.keys().copied().collect();
            assert_eq!(
                engine, model,
                "seed {s}: side {i}'s engine and events disagree"
            );
        }
    }
}
