//! Two data-plane workers in two network namespaces joined by a veth pair:
//! cleartext enters A's TUN, crosses the veth as ESP (raw, or in UDP), leaves
//! B's TUN and reaches a socket on B; the reply goes back the same way. Needs
//! root (skips otherwise unless PALISADE_REQUIRE_NETNS=1).

use palisade_crypto::{Policy, Secret};
use palisade_dataplane::plane::{InstalledSa, Plane};
use palisade_dataplane::sock::{RawSocket, IPPROTO_ESP};
use palisade_dataplane::worker::{Command, RawEndpoint, UdpEndpoint, Worker};
use palisade_dataplane::Tun;
use palisade_sa::lifetime::Timestamp;
use palisade_sa::sa::{Encap, EncrConfig, Mode, Protocol, SaConfig, SecurityAssociation};
use palisade_sa::sad::{InboundKey, SaScope, SecurityProtocol};
use palisade_sa::selector::{AddrRange, Direction, Selector};
use palisade_sa::spd::{Action, Bundle, PolicySpec, Protect};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command as Cmd;
use std::time::Duration;

fn sh(args: &[&str]) {
    let st = Cmd::new(args[0]).args(&args[1..]).status().expect("spawn");
    assert!(st.success(), "{args:?} failed");
}

fn is_root() -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert_ne!(
        std::env::var("PALISADE_REQUIRE_NETNS").as_deref(),
        Ok("1"),
        "PALISADE_REQUIRE_NETNS=1 but not root"
    );
    eprintln!("skipping: network-namespace tests need root");
    false
}

/// Two namespaces `<p>a` and `<p>b` with a veth between them; removed on drop.
struct Topology {
    a: String,
    b: String,
}

impl Topology {
    fn new(prefix: &str) -> Topology {
        let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
        for ns in [&a, &b] {
            let _ = Cmd::new("ip").args(["netns", "del", ns]).status();
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip", "-n", &a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
            "netns", &b,
        ]);
        sh(&[
            "ip",
            "-n",
            &a,
            "addr",
            "add",
            "192.0.2.1/24",
            "dev",
            "veth0",
        ]);
        sh(&[
            "ip",
            "-n",
            &b,
            "addr",
            "add",
            "192.0.2.2/24",
            "dev",
            "veth1",
        ]);
        sh(&["ip", "-n", &a, "addr", "add", "10.1.0.1/32", "dev", "lo"]);
        sh(&["ip", "-n", &b, "addr", "add", "10.2.0.1/32", "dev", "lo"]);
        sh(&["ip", "-n", &a, "link", "set", "veth0", "up"]);
        sh(&["ip", "-n", &b, "link", "set", "veth1", "up"]);
        Topology { a, b }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Cmd::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Run `f` in a fresh thread that has entered namespace `ns`; sockets and
/// devices it creates belong to that namespace for good.
fn in_ns<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(path).unwrap();
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        f()
    })
    .join()
    .unwrap()
}

fn sa(spi: u32, src: &str, dst: &str, key: u8, encap: Encap) -> SecurityAssociation {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let mut c = SaConfig::new(
        spi,
        Protocol::Esp,
        Mode::Tunnel {
            src: ip(src),
            dst: ip(dst),
        },
    );
    c.encr = Some(EncrConfig {
        id: 20,
        key_bits: Some(256),
        keymat: Secret::new(vec![key; 36]),
    });
    c.encap = encap;
    c.policy = Policy::SECURE;
    SecurityAssociation::new(c, Timestamp(0)).unwrap()
}

/// Start a worker in `ns` for gateway `me` <-> `peer`, protecting 10.<l>/16 <-> 10.<r>/16.
fn start(
    ns: &str,
    me: &'static str,
    peer: &'static str,
    l: u8,
    r: u8,
    udp: bool,
) -> palisade_dataplane::worker::Handle {
    let tun_name = format!("pal{l}");
    let ns_owned = ns.to_string();
    let (worker, handle) = in_ns(ns, move || {
        let tun = Tun::open(&tun_name).unwrap();
        sh(&[
            "ip", "-n", &ns_owned, "link", "set", "dev", &tun_name, "mtu", "1400", "up",
        ]);
        sh(&[
            "ip",
            "-n",
            &ns_owned,
            "route",
            "add",
            &format!("10.{r}.0.0/16"),
            "dev",
            &tun_name,
            "src",
            &format!("10.{l}.0.1"),
        ]);
        let local: IpAddr = me.parse().unwrap();
        let raw_sock = RawSocket::open(false, IPPROTO_ESP, Some(0x50)).unwrap();
        raw_sock.bind(local).unwrap();
        let raw = vec![RawEndpoint {
            local,
            sock: raw_sock,
        }];
        let udp_local = SocketAddr::new(local, 4500);
        let udp_eps = if udp {
            vec![UdpEndpoint {
                local: udp_local,
                sock: UdpSocket::bind(udp_local).unwrap(),
            }]
        } else {
            vec![]
        };
        let encap = if udp {
            Encap::Udp {
                src_port: 4500,
                dst_port: 4500,
            }
        } else {
            Encap::None
        };
        let (spi_out, spi_in) = (0x1000 + l as u32, 0x1000 + r as u32);
        let mut plane = Plane::new();
        let ip = |s: String| s.parse::<IpAddr>().unwrap();
        let sel = Selector::between(
            AddrRange::prefix(ip(format!("10.{l}.0.0")), 16).unwrap(),
            AddrRange::prefix(ip(format!("10.{r}.0.0")), 16).unwrap(),
        );
        let out = plane
            .sad
            .insert_outbound(InstalledSa::new(
                "out",
                sa(spi_out, me, peer, l, encap),
                vec![],
            ))
            .unwrap();
        plane
            .sad
            .insert_inbound(
                InboundKey {
                    spi: spi_in,
                    proto: SecurityProtocol::Esp,
                    scope: SaScope::Unicast,
                },
                InstalledSa::new("in", sa(spi_in, peer, me, r, encap), vec![sel]),
            )
            .unwrap();
        plane.spd.insert(PolicySpec {
            priority: 1,
            direction: Direction::Outbound,
            selector: sel,
            action: Action::Protect(Protect {
                bundle: Bundle::Esp { sa: Some(out) },
                mode: palisade_sa::spd::Mode::Tunnel,
            }),
        });
        Worker::new(plane, tun, raw, udp_eps).unwrap()
    });
    std::thread::spawn(move || worker.run());
    handle
}

fn echo_round_trip(topo: &Topology, udp: bool) {
    let ha = start(&topo.a, "192.0.2.1", "192.0.2.2", 1, 2, udp);
    let hb = start(&topo.b, "192.0.2.2", "192.0.2.1", 2, 1, udp);
    // A UDP echo server on B's inner address.
    let server = in_ns(&topo.b, || UdpSocket::bind("10.2.0.1:7777").unwrap());
    server
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let client = in_ns(&topo.a, || UdpSocket::bind("10.1.0.1:0").unwrap());
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 2000];
        for _ in 0..5 {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], from).unwrap();
        }
    });
    let mut buf = [0u8; 2000];
    for i in 0..5u8 {
        let msg = vec![i; 100 + 200 * i as usize];
        client.send_to(&msg, "10.2.0.1:7777").unwrap();
        let (n, _) = client
            .recv_from(&mut buf)
            .expect("echo came back through the tunnel");
        assert_eq!(&buf[..n], &msg[..]);
    }
    echo.join().unwrap();
    let (a_out, a_in) = ha
        .query(|p| (p.totals.packets_out, p.totals.packets_in))
        .unwrap();
    let (b_out, b_in) = hb
        .query(|p| (p.totals.packets_out, p.totals.packets_in))
        .unwrap();
    assert_eq!(
        (a_out, a_in, b_out, b_in),
        (5, 5, 5, 5),
        "every datagram sealed once and opened once"
    );
    ha.send(Command::Stop).unwrap();
    hb.send(Command::Stop).unwrap();
}

#[test]
fn esp_tunnel_over_raw_ip() {
    if !is_root() {
        return;
    }
    let topo = Topology::new("pdpt1");
    echo_round_trip(&topo, false);
}

#[test]
fn esp_tunnel_over_udp_4500() {
    if !is_root() {
        return;
    }
    let topo = Topology::new("pdpt2");
    echo_round_trip(&topo, true);
}
