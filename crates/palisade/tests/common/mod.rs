//! Helpers shared by the network-namespace tests of the `palisade` crate.
#![allow(dead_code)] // each test file uses its own subset

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// True when running as root; otherwise the test should return early, unless
/// PALISADE_REQUIRE_NETNS=1 (CI), which makes a missing root a failure.
pub fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert_ne!(
        std::env::var("PALISADE_REQUIRE_NETNS").as_deref(),
        Ok("1"),
        "PALISADE_REQUIRE_NETNS=1 but not root"
    );
    eprintln!("skipping: needs root");
    false
}

/// Run a command, whatever its exit status.
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Run a command that must succeed.
pub fn sh(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run a command that must succeed inside network namespace `ns`.
pub fn ns_sh(ns: &str, args: &[&str]) {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    sh(&v);
}

/// The MTU of `dev` in network namespace `ns`.
pub fn link_mtu(ns: &str, dev: &str) -> usize {
    let out = run(&["ip", "-n", ns, "-o", "link", "show", dev]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "mtu")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or_else(|| panic!("no MTU for {dev} in {ns}: {text}"))
}

/// The start of every network namespace (and veth) name a test makes:
/// `PALISADE_NETNS_PREFIX` when set (so that runs side by side on one host
/// cannot collide), else `default`.
pub fn netns_prefix(default: &str) -> String {
    std::env::var("PALISADE_NETNS_PREFIX").unwrap_or_else(|_| default.to_string())
}

/// Run `f` on a thread that has entered network namespace `ns`.
pub fn in_ns<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on an open namespace file; only this thread moves.
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        f()
    })
    .join()
    .unwrap()
}

/// How [`Impairer`] treats the packets it picks, in percent.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub drop: u64,
    pub duplicate: u64,
    /// Held back and sent after the packet that comes next.
    pub reorder: u64,
    /// One byte flipped (where the picker allows it), the UDP checksum
    /// made anew so that only the protocol's own integrity check can tell.
    pub corrupt: u64,
}

/// What [`Impairer`] did to the picked packets toward one side.
#[derive(Debug, Default, Clone, Copy)]
pub struct Impaired {
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
    pub passed: u64,
}

/// Which packets [`Impairer`] works on: `None` to pass the packet
/// untouched, `Some(None)` to impair it but never corrupt it, `Some(Some(at))`
/// to impair it and allow a flipped byte from offset `at` on. Called with the
/// packet, its IP protocol (for IPv6 the first next header) and where the
/// header of that protocol starts.
pub type Pick = fn(&[u8], u8, usize) -> Option<Option<usize>>;

/// The IP protocol and its header's offset of an IPv4 or IPv6 packet (for
/// IPv6 the first next header: the ones here carry no extension headers),
/// with the source and destination addresses.
fn ip_parts(p: &[u8]) -> Option<(u8, usize, IpAddr, IpAddr)> {
    match p.first()? >> 4 {
        4 if p.len() >= 20 => {
            let ihl = usize::from(p[0] & 15) * 4;
            let a = |at: usize| IpAddr::from(<[u8; 4]>::try_from(&p[at..at + 4]).unwrap());
            Some((p[9], ihl, a(12), a(16)))
        }
        6 if p.len() >= 40 => {
            let a = |at: usize| IpAddr::from(<[u8; 16]>::try_from(&p[at..at + 16]).unwrap());
            Some((p[6], 40, a(8), a(24)))
        }
        _ => None,
    }
}

/// A bad wire in a router namespace: every packet the router forwards goes
/// through a TUN device (`imp0`, by policy routing on the two incoming
/// links) and a thread that drops, duplicates, holds back behind the next
/// packet or corrupts a share of the packets [`Pick`] chooses, from a fixed
/// seed, and counts what it did toward each side. [`Impairer::clean`] makes
/// it pass everything from then on.
pub struct Impairer {
    stop: Arc<AtomicBool>,
    clean: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<[Impaired; 2]>>,
}

impl Impairer {
    /// Start it in router namespace `nr`, whose links toward the two sides
    /// are `links`; packets to `a_outer` count as toward A, others toward B.
    pub fn start(
        nr: &str,
        links: [&str; 2],
        a_outer: IpAddr,
        rates: Rates,
        pick: Pick,
    ) -> Impairer {
        // Packets that come in on either link are routed into imp0; what the
        // thread writes back comes in on imp0 and takes the main table out.
        let tun = in_ns(nr, || {
            palisade_dataplane::Tun::open("imp0").expect("a TUN in the router")
        });
        let fam = if a_outer.is_ipv4() { "-4" } else { "-6" };
        let rule =
            |link: &str, pref: &str| format!("ip {fam} rule add iif {link} lookup 100 pref {pref}");
        for cmd in [
            "ip link set imp0 up".to_string(),
            format!("ip {fam} route add default dev imp0 table 100"),
            rule(links[0], "100"),
            rule(links[1], "101"),
            if a_outer.is_ipv4() {
                "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.imp0.rp_filter=0"
            } else {
                "sysctl -qw net.ipv6.conf.all.forwarding=1"
            }
            .to_string(),
        ] {
            let mut args = vec!["ip", "netns", "exec", nr];
            args.extend(cmd.split(' '));
            sh(&args);
        }
        tun.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let clean = Arc::new(AtomicBool::new(false));
        let (stop2, clean2) = (stop.clone(), clean.clone());
        let thread = std::thread::spawn(move || {
            let mut seen = [Impaired::default(); 2];
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            let mut held: Option<Vec<u8>> = None;
            let mut buf = vec![0u8; 2048];
            let mut fds = [libc::pollfd {
                fd: tun.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            while !stop2.load(Ordering::SeqCst) {
                // SAFETY: fds is a live array of one pollfd.
                if unsafe { libc::poll(fds.as_mut_ptr(), 1, 20) } <= 0 {
                    // Nothing came for a while: let a held packet go.
                    if let Some(p) = held.take() {
                        let _ = tun.send(&p);
                    }
                    continue;
                }
                while let Ok(n) = tun.recv(&mut buf) {
                    let p = &mut buf[..n];
                    let parts = ip_parts(p).filter(|&(_, l4, _, _)| n >= l4 + 8);
                    let picked = match parts {
                        Some((proto, l4, _, _)) if !clean2.load(Ordering::SeqCst) => {
                            pick(p, proto, l4)
                        }
                        _ => None,
                    };
                    let to = usize::from(parts.is_some_and(|(_, _, _, dst)| dst == a_outer));
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let roll = picked.map_or(100, |_| rng % 100);
                    let corrupt_from = picked.flatten().filter(|&at| at < n);
                    let r = rates;
                    if roll < r.drop {
                        seen[to].dropped += 1;
                    } else if roll < r.drop + r.duplicate {
                        seen[to].duplicated += 1;
                        let _ = tun.send(p);
                        let _ = tun.send(p);
                    } else if roll < r.drop + r.duplicate + r.reorder {
                        seen[to].reordered += 1;
                        if let Some(old) = held.replace(p.to_vec()) {
                            let _ = tun.send(&old);
                        }
                        continue;
                    } else if let Some(start) =
                        corrupt_from.filter(|_| roll < r.drop + r.duplicate + r.reorder + r.corrupt)
                    {
                        seen[to].corrupted += 1;
                        let at = start + (rng >> 8) as usize % (n - start);
                        p[at] ^= 0x5a;
                        // A new UDP checksum, or the receiver's kernel
                        // would catch it before the protocol's own check.
                        if let Some((17, l4, src, dst)) = parts {
                            if let Ok(mut u) = palisade_wire::udp::Packet::new_checked(&mut p[l4..])
                            {
                                u.fill_checksum(&src, &dst);
                            }
                        }
                        let _ = tun.send(p);
                    } else {
                        if picked.is_some() {
                            seen[to].passed += 1;
                        }
                        let _ = tun.send(p);
                    }
                    // A held packet goes after the one that came next.
                    if let Some(old) = held.take() {
                        let _ = tun.send(&old);
                    }
                }
            }
            seen
        });
        Impairer {
            stop,
            clean,
            thread: Some(thread),
        }
    }

    /// Pass everything from now on (after a packet held back, if any).
    pub fn clean(&self) {
        self.clean.store(true, Ordering::SeqCst);
    }

    /// Stop; what was done toward B (`[0]`) and toward A (`[1]`).
    pub fn finish(mut self) -> [Impaired; 2] {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Impairer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
