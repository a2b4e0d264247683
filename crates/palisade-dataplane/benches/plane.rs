//! The data plane's own per-packet cost: `Plane::outbound` and
//! `Plane::inbound_udp` of a 1400-byte TCP segment through an AES-256-GCM
//! ESP-in-UDP tunnel, against the AEAD alone on the same bytes (what
//! `tunnel_bench relay --seal`, the crypto floor of `scripts/bench-tunnel.sh`,
//! does per packet). The difference is what palisade adds: SPD and SAD lookup,
//! ESP framing, replay window, lifetimes, counters, the inbound policy check.
//!
//! `cargo bench -p palisade-dataplane --bench plane [-- SIZE...]` prints ns
//! per packet for each side and plane / bare (sizes 64, 576 and 1400 unless
//! given: one size alone is handy under `perf record`). Each figure is the
//! best of 40 runs of at least 20 ms (the machine is shared; the minimum is
//! the least noisy). Between invocations the figures still move by 20 % here;
//! compare ratios, or builds run alternately. `-- parts` splits the outbound
//! overhead into its steps; `-- batch` runs the worker's outbound round
//! (super-packet copied in, cut into the 64 ring slots, sealed, copied out)
//! through the plane and as the crypto floor, without the system calls.
//! `-- count plane|bare N` runs N 1400-byte packets out and back in through
//! the planes (or the bare AEAD) and nothing else, for an instruction count
//! that does not depend on the machine's load:
//! `valgrind --tool=callgrind <bench binary> count plane 10000`, the same with
//! `bare`; the difference over N is what palisade adds, in instructions.

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use palisade_crypto::aead::Aead;
use palisade_crypto::{registry, Policy, Secret};
use palisade_dataplane::manual::{self, DirKeys, ManualSpec, Wire};
use palisade_dataplane::plane::{FlowHint, InVerdict, OutVerdict, Plane};
use palisade_sa::buf::PacketBuf;
use palisade_sa::lifetime::Timestamp;

const HEADROOM: usize = 128;
const SIZES: [usize; 3] = [64, 576, 1400];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One gateway's plane: `me` protects 10.`me_net`.0.0/16 towards the peer's.
fn plane(me: &str, peer: &str, me_net: u8, peer_net: u8, out_key: u8, in_key: u8) -> Plane {
    let keys = |b: u8| DirKeys {
        enc: Some(Secret::new(vec![b; 36])),
        esp_auth: None,
        ah_auth: None,
    };
    let wire = Wire::EspUdp {
        local_port: 4500,
        remote_port: 4500,
    };
    let spec = ManualSpec {
        spi_in: 0x100 + u32::from(in_key),
        spi_out: 0x100 + u32::from(out_key),
        encr: Some((20, Some(256))), // ENCR_AES_GCM_16
        keys_in: keys(in_key),
        keys_out: keys(out_key),
        local_ts: vec![(ip(&format!("10.{me_net}.0.0")), 16)],
        remote_ts: vec![(ip(&format!("10.{peer_net}.0.0")), 16)],
        ..ManualSpec::esp_tunnel("bench", ip(me), ip(peer), wire)
    };
    let mut p = Plane::new();
    manual::install(&mut p, &spec, 1).unwrap();
    p
}

/// An IPv4 TCP segment of `total` bytes from 10.1.0.5:40000 to 10.2.0.7:5201.
fn tcp_segment(total: usize) -> Vec<u8> {
    let mut p = vec![0x5au8; total];
    p[..20].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 1, 0, 5, 10, 2, 0, 7,
    ]);
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    let mut h = palisade_wire::ipv4::Packet::new_unchecked(&mut p[..]);
    h.fill_checksum();
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5201u16.to_be_bytes());
    p[32] = 0x50; // data offset 5
    p
}

/// Best ns/iteration of `f` over 40 runs of >= 20 ms.
fn time(mut f: impl FnMut()) -> f64 {
    for _ in 0..1000 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..40 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(20) {
            for _ in 0..64 {
                f();
            }
            n += 64;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

/// Segments per TSO super-packet the worker reads from the TUN (64 KB of
/// TCP in 1400-byte packets): A asks its SPD once per this many packets, as
/// the worker does (`FlowHint`).
const SEGMENTS: usize = 46;

/// Two gateways' planes, A sealing towards B, over ESP-in-UDP port 4500.
struct Pair {
    a: Plane,
    b: Plane,
    from_a: SocketAddr,
    b_local: SocketAddr,
    flow: FlowHint,
    cut: usize,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            a: plane("192.0.2.1", "192.0.2.2", 1, 2, 0xa0, 0xb0),
            b: plane("192.0.2.2", "192.0.2.1", 2, 1, 0xb0, 0xa0),
            from_a: "192.0.2.1:4500".parse().unwrap(),
            b_local: "192.0.2.2:4500".parse().unwrap(),
            flow: FlowHint::default(),
            cut: 0,
        }
    }

    /// `pkt` sealed by A in `storage` (which it must be): where the sealed
    /// bytes start and how many.
    fn out(&mut self, storage: &mut [u8], pkt: &[u8]) -> (usize, usize) {
        let mut buf = PacketBuf::with_packet(storage, HEADROOM, pkt).unwrap();
        if self.cut.is_multiple_of(SEGMENTS) {
            self.flow = FlowHint::default();
        }
        self.cut += 1;
        assert!(matches!(
            self.a
                .outbound_in_flow(Timestamp(1), &mut buf, &mut self.flow),
            OutVerdict::Send(_)
        ));
        (buf.offset(), buf.len())
    }

    /// `pkt` sealed by A and opened by B, which must deliver it.
    fn round_trip(&mut self, storage: &mut [u8], pkt: &[u8]) {
        let (start, len) = self.out(storage, pkt);
        let mut buf = PacketBuf::new(storage, start, len).unwrap();
        let v = self
            .b
            .inbound_udp(Timestamp(1), &mut buf, &self.from_a, &self.b_local, 0);
        assert_eq!(v, InVerdict::Deliver);
    }
}

/// (outbound ns, outbound + inbound ns) per packet through two planes.
fn plane_cost(size: usize) -> (f64, f64) {
    let mut pair = Pair::new();
    let pkt = tcp_segment(size);
    let mut storage = vec![0u8; size + 512];
    let out = time(|| {
        black_box(pair.out(&mut storage, &pkt));
    });
    let both = time(|| {
        pair.round_trip(&mut storage, &pkt);
        black_box(&storage);
    });
    (out, both)
}

/// Seal the `n` bytes at `buf[at..]` as the crypto floor does: 16 bytes of
/// sequence number and IV in front (AAD and nonce), the packet and ESP's
/// 2-byte trailer padded to whole blocks as palisade pads, a 16-byte ICV
/// behind. Where the sealed bytes start, and how many.
fn floor_seal(aead: &dyn Aead, seq: u64, buf: &mut [u8], at: usize, n: usize) -> (usize, usize) {
    let ct = (n + 2).div_ceil(16) * 16;
    let (head, rest) = buf[at - 16..].split_at_mut(16);
    head[..8].copy_from_slice(&seq.to_be_bytes());
    head[8..].copy_from_slice(&seq.to_be_bytes());
    let (body, tail) = rest.split_at_mut(ct);
    aead.seal_in_place_detached(&head[8..], &head[..8], body, &mut tail[..16])
        .unwrap();
    (at - 16, 16 + ct + 16)
}

/// The same with the AEAD alone, framed as the crypto floor frames it: the
/// packet and ESP's 2-byte trailer, padded to whole blocks as palisade pads.
fn bare_cost(size: usize) -> (f64, f64) {
    let seal = registry::aead(20, Some(256), &[0xa0; 36], Policy::SECURE).unwrap();
    let open = registry::aead(20, Some(256), &[0xa0; 36], Policy::SECURE).unwrap();
    let pkt = tcp_segment(size);
    let mut storage = vec![0u8; size + 512];
    let mut seq = 0u64;
    let mut sealed = |storage: &mut [u8], seal: &dyn Aead| {
        seq += 1;
        storage[HEADROOM..HEADROOM + size].copy_from_slice(&pkt);
        floor_seal(seal, seq, storage, HEADROOM, size)
    };
    let out = time(|| {
        sealed(&mut storage, seal.as_ref());
        black_box(&storage);
    });
    let both = time(|| {
        let (start, len) = sealed(&mut storage, seal.as_ref());
        floor_open(open.as_ref(), &mut storage[start..start + len]);
        black_box(&storage);
    });
    (out, both)
}

/// Open what [`floor_seal`] sealed (`sealed` = its bytes).
fn floor_open(aead: &dyn Aead, sealed: &mut [u8]) {
    let len = sealed.len();
    let (head, rest) = sealed.split_at_mut(16);
    let (body, tail) = rest.split_at_mut(len - 32);
    aead.open_in_place_detached(&head[8..], &head[..8], body, &tail[..16])
        .unwrap();
}

/// Where the outbound overhead goes, at `size` bytes: each line adds one
/// step of `Plane::outbound` to the one before, on the same plane.
fn outbound_parts(size: usize) {
    use palisade_sa::encap::selector_key;
    use palisade_sa::selector::Direction;
    let mut a = plane("192.0.2.1", "192.0.2.2", 1, 2, 0xa0, 0xb0);
    let pkt = tcp_segment(size);
    let mut storage = vec![0u8; size + 512];
    let copy = time(|| {
        let buf = PacketBuf::with_packet(&mut storage, HEADROOM, &pkt).unwrap();
        black_box(buf.data());
    });
    let key = time(|| {
        let buf = PacketBuf::with_packet(&mut storage, HEADROOM, &pkt).unwrap();
        black_box(selector_key(buf.data()).unwrap());
    });
    let spd = time(|| {
        let buf = PacketBuf::with_packet(&mut storage, HEADROOM, &pkt).unwrap();
        let k = selector_key(buf.data()).unwrap();
        black_box(a.spd.lookup(Direction::Outbound, &k).map(|p| p.id));
    });
    let h = match a
        .spd
        .lookup(Direction::Outbound, &selector_key(&pkt).unwrap())
        .map(|p| p.spec.action)
    {
        Some(palisade_sa::spd::Action::Protect(p)) => match p.bundle {
            palisade_sa::spd::Bundle::Esp { sa: Some(h) } => h,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let seal = time(|| {
        let mut buf = PacketBuf::with_packet(&mut storage, HEADROOM, &pkt).unwrap();
        let k = selector_key(buf.data()).unwrap();
        black_box(a.spd.lookup(Direction::Outbound, &k).map(|p| p.id));
        let e = a.sad.get_mut(h).unwrap();
        black_box(e.sa.seal_udp_payload(Timestamp(1), &mut buf).unwrap());
    });
    let full = time(|| {
        let mut buf = PacketBuf::with_packet(&mut storage, HEADROOM, &pkt).unwrap();
        black_box(a.outbound(Timestamp(1), &mut buf));
    });
    let (bare, _) = bare_cost(size);
    println!("outbound at {size} bytes, ns per packet (cumulative):");
    println!("  copy into the buffer          {copy:6.0}");
    println!("  + selector key                {key:6.0}");
    println!("  + SPD lookup                  {spd:6.0}");
    println!("  + SAD get + SA seal           {seal:6.0}   (bare AEAD with the copy: {bare:.0})");
    println!("  Plane::outbound               {full:6.0}");
}

/// A TCP super-packet as an offloading TUN hands it over: virtio-net header
/// (TSO, checksum to complete) and an IPv4/TCP packet of `segments` * `mss`
/// payload bytes.
fn super_packet(segments: usize, mss: usize) -> Vec<u8> {
    let mut v = vec![0u8; 10];
    v[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
    v[1] = 1; // VIRTIO_NET_HDR_GSO_TCPV4
    v[2..4].copy_from_slice(&40u16.to_le_bytes());
    v[4..6].copy_from_slice(&(mss as u16).to_le_bytes());
    v[6..8].copy_from_slice(&20u16.to_le_bytes());
    v[8..10].copy_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(&tcp_segment(40 + segments * mss));
    v
}

/// ns per packet of the worker's outbound round without the system calls:
/// copy a super-packet in (the TUN read), cut it into 64 ring slots of the
/// worker's size, seal each (through the plane, or the bare AEAD as the
/// crypto floor does), copy the sealed packets out (the `sendmmsg`). The
/// plane's state now competes with the packet data for the cache, as in
/// the tunnel.
fn batch_cost(plane_side: bool) -> f64 {
    use palisade_dataplane::tun::Offload;
    use palisade_dataplane::worker::{BUF_SIZE, HEADROOM as RING_HEADROOM, TUN_BATCH};
    const MSS: usize = 1360;
    let mut a = plane("192.0.2.1", "192.0.2.2", 1, 2, 0xa0, 0xb0);
    let aead = registry::aead(20, Some(256), &[0xa0; 36], Policy::SECURE).unwrap();
    let src = super_packet(45, MSS);
    let mut big = vec![0u8; src.len()];
    let mut ring: Vec<Vec<u8>> = (0..TUN_BATCH).map(|_| vec![0u8; BUF_SIZE]).collect();
    let mut out = vec![0u8; TUN_BATCH * 2048];
    let mut sent = vec![(0usize, 0usize); TUN_BATCH];
    let mut pending = 0usize;
    let mut seq = 0u64;
    let mut flow = FlowHint::default();
    let per_round = time(|| {
        for (slot, buf) in ring.iter_mut().enumerate() {
            if pending == 0 {
                big.copy_from_slice(&src);
                flow = FlowHint::default();
            }
            let o = Offload::parse(&big).unwrap();
            let n = o.segment(pending, &mut buf[RING_HEADROOM..]).unwrap();
            pending = (pending + 1) % o.count();
            sent[slot] = if plane_side {
                let mut b = PacketBuf::new(buf, RING_HEADROOM, n).unwrap();
                assert!(matches!(
                    a.outbound_in_flow(Timestamp(1), &mut b, &mut flow),
                    OutVerdict::Send(_)
                ));
                (b.offset(), b.len())
            } else {
                seq += 1;
                floor_seal(aead.as_ref(), seq, buf, RING_HEADROOM, n)
            };
        }
        for (slot, &(start, len)) in sent.iter().enumerate() {
            out[slot * 2048..slot * 2048 + len].copy_from_slice(&ring[slot][start..start + len]);
        }
        black_box(&out);
    });
    per_round / TUN_BATCH as f64
}

/// `-- count`: `n` packets through the planes (or the bare AEAD), untimed.
fn count(plane_side: bool, n: usize) {
    let size = 1400;
    let pkt = tcp_segment(size);
    let mut storage = vec![0u8; size + 512];
    if plane_side {
        let mut pair = Pair::new();
        for _ in 0..n {
            pair.round_trip(&mut storage, &pkt);
            black_box(&storage);
        }
    } else {
        let seal = registry::aead(20, Some(256), &[0xa0; 36], Policy::SECURE).unwrap();
        let open = registry::aead(20, Some(256), &[0xa0; 36], Policy::SECURE).unwrap();
        for seq in 1..=n as u64 {
            storage[HEADROOM..HEADROOM + size].copy_from_slice(&pkt);
            let (start, len) = floor_seal(seal.as_ref(), seq, &mut storage, HEADROOM, size);
            floor_open(open.as_ref(), &mut storage[start..start + len]);
            black_box(&storage);
        }
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("count") {
        let side = std::env::args().nth(2).unwrap_or_default();
        let n = std::env::args()
            .nth(3)
            .and_then(|a| a.parse().ok())
            .unwrap_or(10_000);
        count(side == "plane", n);
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("batch") {
        let (p, f) = (batch_cost(true), batch_cost(false));
        println!("worker round without syscalls, ns per packet: plane {p:.0}, floor {f:.0}, difference {:.0}", p - f);
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("parts") {
        for size in [64, 1400] {
            outbound_parts(size);
        }
        return;
    }
    println!(
        "{:>6} {:>12} {:>12} {:>8} {:>12} {:>12} {:>8}",
        "bytes", "out ns", "bare seal", "ratio", "out+in ns", "bare both", "ratio"
    );
    let asked: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if asked.is_empty() {
        SIZES.to_vec()
    } else {
        asked
    };
    for size in sizes {
        let (po, pb) = plane_cost(size);
        let (bo, bb) = bare_cost(size);
        println!(
            "{size:>6} {po:>12.0} {bo:>12.0} {:>8.3} {pb:>12.0} {bb:>12.0} {:>8.3}",
            po / bo,
            pb / bb
        );
    }
}
