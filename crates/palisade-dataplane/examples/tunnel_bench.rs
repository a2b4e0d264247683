//! One side of the throughput benchmark (`scripts/bench-tunnel.sh`), run inside
//! a network namespace with `ip netns exec`, until SIGTERM/SIGINT.
//!
//! ```text
//! tunnel_bench esp   <gcm|cbc> <a|b> [--raw]   palisade ESP tunnel (UDP 4500, or raw IP 50)
//! tunnel_bench relay <a|b> [--seal]            TUN <-> UDP relay without crypto (the ceiling)
//! ```
//!
//! `relay --seal` is the crypto floor: the same relay, but every packet is
//! sealed (and opened) with AES-256-GCM-16 through palisade-crypto, framed as
//! 16 bytes of sequence number and IV in front and a 16-byte ICV behind, like
//! ESP, with zeros filling the last 16-byte block as palisade's ESP pads it.
//! No SPD, SAD, replay window or ESP parsing: what is left between it and the
//! `esp` case is palisade's own per-packet work.
//!
//! Side `a` is 192.0.2.1 with inner address 10.200.1.1, side `b` 192.0.2.2 with
//! 10.200.2.1 (the addresses of `shared/peers`' basic topology); the script puts
//! the inner addresses on `lo`. The `esp` cases also carry fd00:200:1::/64 <->
//! fd00:200:2::/64 (inner fd00:200:1::1 and fd00:200:2::1), for TCP over
//! IPv6. The TUN device is `pbt0`, MTU 1400 (as strongSwan's
//! kernel-libipsec). The keys are fixed test keys: this is a benchmark, not a
//! way to protect traffic.

use palisade_crypto::aead::Aead;
use palisade_crypto::Secret;
use palisade_dataplane::manual::{self, DirKeys, ManualSpec, Wire};
use palisade_dataplane::netcfg::NetConfig;
use palisade_dataplane::plane::Plane;
use palisade_dataplane::sock::{RecvBatch, SendRing};
use palisade_dataplane::tun::{Coalescer, Offload, OFFLOAD_READ_MAX};
use palisade_dataplane::worker::{Command, Worker, BUF_SIZE, HEADROOM};
use palisade_dataplane::Tun;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;

const TUN_NAME: &str = "pbt0";
const TUN_MTU: u32 = 1400;
const RELAY_PORT: u16 = 4600;

struct Side {
    local: IpAddr,
    remote: IpAddr,
    inner: IpAddr,
    remote_net: (IpAddr, u8),
    local_net: (IpAddr, u8),
    /// The same for IPv6 inside the tunnel (the `esp` cases carry both).
    inner6: IpAddr,
    remote_net6: (IpAddr, u8),
    local_net6: (IpAddr, u8),
}

fn side(name: &str) -> Option<Side> {
    let ip = |s: &str| s.parse::<IpAddr>().ok();
    let (l, r) = match name {
        "a" => (1, 2),
        "b" => (2, 1),
        _ => return None,
    };
    Some(Side {
        local: ip(&format!("192.0.2.{l}"))?,
        remote: ip(&format!("192.0.2.{r}"))?,
        inner: ip(&format!("10.200.{l}.1"))?,
        local_net: (ip(&format!("10.200.{l}.0"))?, 24),
        remote_net: (ip(&format!("10.200.{r}.0"))?, 24),
        inner6: ip(&format!("fd00:200:{l}::1"))?,
        local_net6: (ip(&format!("fd00:200:{l}::"))?, 64),
        remote_net6: (ip(&format!("fd00:200:{r}::"))?, 64),
    })
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: tunnel_bench esp <gcm|cbc> <a|b> [--raw] | tunnel_bench relay <a|b> [--seal]"
    );
    ExitCode::from(2)
}

/// Block SIGTERM and SIGINT in every thread (call before spawning any) and
/// return a function that waits for one of them.
fn block_signals() -> impl FnOnce() + Send {
    // SAFETY: sigset_t is plain data; the libc calls only touch that set.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: set is a valid, initialised signal set; sig is writable.
        unsafe { libc::sigwait(&set, &mut sig) };
    }
}

/// The TUN device, with TCP segmentation offload unless PALISADE_NO_OFFLOAD=1.
fn open_tun() -> Result<Tun, String> {
    if std::env::var("PALISADE_NO_OFFLOAD").as_deref() == Ok("1") {
        Tun::open(TUN_NAME)
    } else {
        Tun::open_offload(TUN_NAME)
    }
    .map_err(|e| e.to_string())
}

fn keys(byte: u8, cbc: bool) -> DirKeys {
    DirKeys {
        enc: Some(Secret::new(vec![byte; if cbc { 32 } else { 36 }])),
        esp_auth: cbc.then(|| Secret::new(vec![byte ^ 0x5a; 32])),
        ah_auth: None,
    }
}

fn run_esp(s: &Side, cbc: bool, raw: bool, a: bool) -> Result<(), String> {
    let wire = if raw {
        Wire::Esp
    } else {
        Wire::EspUdp {
            local_port: 4500,
            remote_port: 4500,
        }
    };
    let (kin, kout) = if a { (0xb0, 0xa0) } else { (0xa0, 0xb0) };
    let (spi_in, spi_out) = if a {
        (0xb000_0001, 0xa000_0001)
    } else {
        (0xa000_0001, 0xb000_0001)
    };
    let spec = ManualSpec {
        spi_in,
        spi_out,
        // ENCR_AES_GCM_16 (20) or ENCR_AES_CBC (12) with AUTH_HMAC_SHA2_256_128 (12).
        encr: Some(if cbc {
            (12, Some(256))
        } else {
            (20, Some(256))
        }),
        esp_integ: cbc.then_some(12),
        keys_in: keys(kin, cbc),
        keys_out: keys(kout, cbc),
        local_ts: vec![s.local_net, s.local_net6],
        remote_ts: vec![s.remote_net, s.remote_net6],
        ..ManualSpec::esp_tunnel("bench", s.local, s.remote, wire)
    };
    let mut plane = Plane::new();
    manual::install(&mut plane, &spec, 1).map_err(|e| e.to_string())?;
    let (raw_eps, udp_eps) =
        manual::sockets(std::slice::from_ref(&spec)).map_err(|e| e.to_string())?;
    let tun = open_tun()?;
    let mut net = NetConfig::new();
    net.link_up(TUN_NAME, TUN_MTU).map_err(|e| e.to_string())?;
    let route = |net: &mut NetConfig, (addr, len): (IpAddr, u8), src: IpAddr| {
        net.route_add(
            &format!("{addr}/{len}"),
            TUN_NAME,
            None,
            Some(&src.to_string()),
        )
    };
    route(&mut net, s.remote_net, s.inner).map_err(|e| e.to_string())?;
    // IPv6 inside only where the script enabled IPv6 (the gcm6 case).
    if let Err(e) = route(&mut net, s.remote_net6, s.inner6) {
        eprintln!("tunnel_bench: no IPv6 inside ({e})");
    }
    let (worker, handle) = Worker::new(plane, tun, raw_eps, udp_eps).map_err(|e| e.to_string())?;
    let wait = block_signals();
    let h2 = handle.clone();
    std::thread::spawn(move || {
        wait();
        let _ = h2.send(Command::Stop);
    });
    drop(handle);
    eprintln!(
        "tunnel_bench: ESP {} ready",
        if cbc { "cbc" } else { "gcm" }
    );
    let w = worker.run().map_err(|e| e.to_string())?;
    eprintln!(
        "tunnel_bench: {:?}; plane drops {:?}; totals out {} in {}",
        w.io, w.plane.drops, w.plane.totals.packets_out, w.plane.totals.packets_in
    );
    Ok(())
}

/// The relay's framing when it seals: sequence number and IV in front (16
/// bytes, the AAD and the explicit IV), ICV behind.
const SEAL_HEAD: usize = 16;
const SEAL_TAIL: usize = 16;

/// Seal `buf[HEADROOM..HEADROOM + n]` for the relay's `--seal` mode and return
/// where the datagram starts and how long it is.
fn relay_seal(aead: &dyn Aead, seq: u64, buf: &mut [u8], n: usize) -> Option<(usize, usize)> {
    let start = HEADROOM - SEAL_HEAD;
    let padded = n.div_ceil(16) * 16;
    buf.get_mut(HEADROOM + n..HEADROOM + padded)?.fill(0);
    let n = padded;
    let (head, rest) = buf[start..].split_at_mut(SEAL_HEAD);
    head[..8].copy_from_slice(&seq.to_be_bytes());
    head[8..].copy_from_slice(&seq.to_be_bytes());
    let (body, tail) = rest.split_at_mut(n);
    aead.seal_in_place_detached(&head[8..], &head[..8], body, &mut tail[..SEAL_TAIL])
        .ok()?;
    Some((start, SEAL_HEAD + n + SEAL_TAIL))
}

/// Open one datagram of the relay's `--seal` mode in place; the plaintext,
/// without the padding (IPv4: the inner packet's total length says where it
/// ends).
fn relay_open<'a>(aead: &dyn Aead, dgram: &'a mut [u8]) -> Option<&'a [u8]> {
    let body_len = dgram.len().checked_sub(SEAL_HEAD + SEAL_TAIL)?;
    let (head, rest) = dgram.split_at_mut(SEAL_HEAD);
    let (body, icv) = rest.split_at_mut(body_len);
    aead.open_in_place_detached(&head[8..], &head[..8], body, icv)
        .ok()?;
    let len = usize::from(u16::from_be_bytes([*body.get(2)?, *body.get(3)?]));
    body.get(..len)
}

/// The ceiling: what the TUN and UDP sockets cost with the same batching as
/// the worker and no crypto, no SPD/SAD lookup. With `seal`, the crypto floor:
/// the same plus AES-256-GCM on every packet.
fn run_relay(s: &Side, seal: bool, a: bool) -> Result<(), String> {
    let e = |e: io::Error| e.to_string();
    let policy = palisade_crypto::Policy::default();
    let aead_for = |byte: u8| {
        // ENCR_AES_GCM_16 (20), 256-bit key + 4-byte salt.
        palisade_crypto::registry::aead(20, Some(256), &[byte; 36], policy)
            .map_err(|e| e.to_string())
    };
    let (kout, kin) = if a { (0xa0, 0xb0) } else { (0xb0, 0xa0) };
    let sealing = if seal {
        Some((aead_for(kout)?, aead_for(kin)?))
    } else {
        None
    };
    let mut seq = 0u64;
    let mut open_failed = 0u64;
    let mut gso_fallbacks = 0u64;
    let tun = open_tun()?;
    let mut net = NetConfig::new();
    net.link_up(TUN_NAME, TUN_MTU).map_err(|e| e.to_string())?;
    net.route_add(
        &format!("{}/{}", s.remote_net.0, s.remote_net.1),
        TUN_NAME,
        None,
        Some(&s.inner.to_string()),
    )
    .map_err(|e| e.to_string())?;
    let sock = UdpSocket::bind(SocketAddr::new(s.local, RELAY_PORT)).map_err(e)?;
    let peer = SocketAddr::new(s.remote, RELAY_PORT);
    sock.set_nonblocking(true).map_err(e)?;
    tun.set_nonblocking(true).map_err(e)?;
    let gro = palisade_dataplane::sock::set_udp_gro(sock.as_raw_fd(), true).is_ok();
    // As the worker does for its wire sockets.
    let _ = palisade_dataplane::sock::set_buffers(sock.as_raw_fd(), 4 << 20);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let wait = block_signals();
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        wait();
        stop2.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let mut ring = SendRing::new(palisade_dataplane::worker::TUN_BATCH, BUF_SIZE);
    let mut batch = RecvBatch::with_headroom(
        palisade_dataplane::worker::BATCH,
        if gro { 65536 } else { BUF_SIZE - HEADROOM },
        HEADROOM,
    );
    let (sfd, tfd) = (sock.as_raw_fd(), tun.as_raw_fd());
    let mut fds = [
        libc::pollfd {
            fd: tfd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sfd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let (mut to_wire, mut to_tun) = (0u64, 0u64);
    let mut big = vec![0u8; OFFLOAD_READ_MAX];
    let mut pending = (0usize, 0usize);
    let mut coalescer = Coalescer::new();
    eprintln!(
        "tunnel_bench: relay ready (udp gro {gro}, tun offload {})",
        tun.offload()
    );
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for f in fds.iter_mut() {
            f.revents = 0;
        }
        // SAFETY: fds is a live array of two pollfd.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, 200) };
        if rc <= 0 {
            continue;
        }
        if fds[0].revents != 0 {
            for _ in 0..4 {
                let mut empty = false;
                while !ring.is_full() {
                    let buf = ring.next_buf();
                    let room = &mut buf[HEADROOM..BUF_SIZE - 512];
                    let n = if tun.offload() {
                        if pending.0 == 0 {
                            match tun.recv(&mut big) {
                                Ok(n) => pending = (n, 0),
                                Err(_) => {
                                    empty = true;
                                    break;
                                }
                            }
                        }
                        let Some(o) = Offload::parse(&big[..pending.0]) else {
                            pending = (0, 0);
                            continue;
                        };
                        let seg = o.segment(pending.1, room);
                        pending.1 += 1;
                        if pending.1 >= o.count() {
                            pending = (0, 0);
                        }
                        match seg {
                            Some(n) => n,
                            None => continue,
                        }
                    } else {
                        match tun.recv(room) {
                            Ok(n) => n,
                            Err(_) => {
                                empty = true;
                                break;
                            }
                        }
                    };
                    let (start, len) = match &sealing {
                        Some((out, _)) => {
                            seq += 1;
                            match relay_seal(out.as_ref(), seq, ring.next_buf(), n) {
                                Some(framed) => framed,
                                None => continue,
                            }
                        }
                        None => (HEADROOM, n),
                    };
                    ring.commit(sfd, start, len, peer, true, 0);
                }
                let f = ring.flush();
                to_wire += f.sent;
                gso_fallbacks += f.gso_fallbacks;
                if empty {
                    break;
                }
            }
        }
        if fds[1].revents != 0 {
            for _ in 0..4 {
                let Ok(n) = batch.recv(sfd) else { break };
                for k in 0..n {
                    let seg = batch.segment_size(k);
                    if let Some((_, storage, head, len)) = batch.slot_mut(k) {
                        let step = seg.unwrap_or(len).max(1);
                        let mut off = head;
                        while off < head + len {
                            let end = (off + step).min(head + len);
                            let plain = match &sealing {
                                Some((_, inb)) => relay_open(inb.as_ref(), &mut storage[off..end]),
                                None => Some(&storage[off..end]),
                            };
                            match plain {
                                Some(p) if coalescer.push(&tun, p).is_ok() => to_tun += 1,
                                Some(_) => {}
                                None => open_failed += 1,
                            }
                            off = end;
                        }
                    }
                }
                let _ = coalescer.flush(&tun);
                if n < batch.capacity() {
                    break;
                }
            }
        }
    }
    eprintln!(
        "tunnel_bench: relay to_wire {to_wire} to_tun {to_tun} open_failed {open_failed} gso_fallbacks {gso_fallbacks}"
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let result = match args.as_slice() {
        ["relay", who, rest @ ..] => {
            let seal = match rest {
                [] => false,
                ["--seal"] => true,
                _ => return usage(),
            };
            match side(who) {
                Some(s) => run_relay(&s, seal, *who == "a"),
                None => return usage(),
            }
        }
        ["esp", cipher @ ("gcm" | "cbc"), who, rest @ ..] => {
            let raw = match rest {
                [] => false,
                ["--raw"] => true,
                _ => return usage(),
            };
            match side(who) {
                Some(s) => run_esp(&s, *cipher == "cbc", raw, *who == "a"),
                None => return usage(),
            }
        }
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tunnel_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
