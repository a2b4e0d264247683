//! The data plane's I/O primitives against a real kernel, inside a network
//! namespace that each test creates and removes (nothing touches the host's
//! own network). Needs root; without it the tests print why and pass vacuously
//! unless PALISADE_REQUIRE_NETNS=1 (set by scripts/test when running as root).

use palisade_dataplane::sock::{RawSocket, RecvBatch, IPPROTO_ESP};
use palisade_dataplane::Tun;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;

/// A network namespace that the current thread has entered; deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    /// Create `name` and move this thread into it (setns affects the calling
    /// thread only, so each test thread gets its own namespace).
    fn enter(name: &str) -> Option<Netns> {
        if unsafe { libc::geteuid() } != 0 {
            if std::env::var("PALISADE_REQUIRE_NETNS").as_deref() == Ok("1") {
                panic!("PALISADE_REQUIRE_NETNS=1 but not running as root");
            }
            eprintln!("skipping: network-namespace tests need root");
            return None;
        }
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ip netns add {name} failed");
        let f = std::fs::File::open(format!("/run/netns/{name}")).expect("open netns");
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let ok = Command::new("ip")
            .args(["netns", "exec", name, "ip", "link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(ok.success());
        Some(Netns {
            name: name.to_string(),
        })
    }

    fn ip(&self, args: &[&str]) {
        let mut full = vec!["netns", "exec", &self.name, "ip"];
        full.extend_from_slice(args);
        let st = Command::new("ip").args(&full).status().expect("run ip");
        assert!(st.success(), "ip {args:?} failed");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn udp_packet_v4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let ck = checksum(&[&p[..20]]);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    let ck = checksum(&[&pseudo, &p[20..]]);
    p[26..28].copy_from_slice(&ck.to_be_bytes());
    p
}

fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let all: Vec<u8> = parts.concat();
    for c in all.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += w as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn tun_carries_packets_both_ways() {
    let Some(ns) = Netns::enter("pdp-io-tun") else {
        return;
    };
    let tun = Tun::open("paltest0").expect("open TUN");
    assert_eq!(tun.name(), "paltest0");
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "paltest0"]);
    ns.ip(&["link", "set", "dev", "paltest0", "mtu", "1400", "up"]);

    // Kernel -> TUN: a datagram routed to the TUN's subnet comes out of the device.
    let sock = UdpSocket::bind("10.99.0.1:4000").unwrap();
    sock.send_to(b"hello tun", "10.99.0.2:9").unwrap();
    let mut buf = [0u8; 2000];
    let packet = loop {
        let n = tun.recv(&mut buf).unwrap();
        // Skip IPv6 router solicitations and the like.
        if buf[0] >> 4 == 4 && buf[9] == 17 {
            break buf[..n].to_vec();
        }
    };
    assert_eq!(&packet[16..20], &[10, 99, 0, 2], "destination address");
    assert_eq!(&packet[28..], b"hello tun");

    // TUN -> kernel: a packet written to the device is delivered locally.
    let reply = udp_packet_v4(
        Ipv4Addr::new(10, 99, 0, 2),
        Ipv4Addr::new(10, 99, 0, 1),
        9,
        4000,
        b"hello back",
    );
    tun.send(&reply).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello back");
    assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)));
}

#[test]
fn tun_open_rejects_bad_names() {
    let err = Tun::open("this-name-is-far-too-long").unwrap_err();
    assert!(err.to_string().contains("invalid"), "{err}");
}

#[test]
fn raw_esp_socket_round_trip_with_batch_receive() {
    let Some(_ns) = Netns::enter("pdp-io-raw") else {
        return;
    };
    let tx = RawSocket::open(false, IPPROTO_ESP, Some(0x50)).expect("raw tx");
    let rx = RawSocket::open(false, IPPROTO_ESP, None).expect("raw rx");
    rx.set_nonblocking(true).unwrap();
    // A fake ESP packet (SPI 0x1234, seq 1, 8 bytes of "ciphertext").
    let mut pkt = vec![0u8; 20 + 16];
    pkt[0] = 0x45;
    pkt[2..4].copy_from_slice(&36u16.to_be_bytes());
    pkt[8] = 64;
    pkt[9] = IPPROTO_ESP;
    pkt[12..16].copy_from_slice(&[127, 0, 0, 1]);
    pkt[16..20].copy_from_slice(&[127, 0, 0, 1]);
    pkt[20..24].copy_from_slice(&0x1234u32.to_be_bytes());
    pkt[24..28].copy_from_slice(&1u32.to_be_bytes());
    for i in 0..3 {
        pkt[28] = i;
        tx.send(&pkt, IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut batch = RecvBatch::new(8, 2048);
    let n = batch.recv(rx.as_raw_fd()).unwrap();
    assert_eq!(n, 3, "one recvmmsg call returns all three datagrams");
    for (i, (src, bytes)) in batch.iter().enumerate() {
        assert_eq!(src.unwrap().ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(bytes.len(), 36, "IPv4 raw receive includes the IP header");
        assert_eq!(&bytes[20..24], &0x1234u32.to_be_bytes());
        assert_eq!(bytes[28], i as u8);
    }
}

/// With `set_recv_tos`, a batch receive reports each datagram's TOS byte
/// (IPv4) or traffic class (IPv6), ECN bits included: the outer ECN that
/// ESP-in-UDP decapsulation passes on. Without it, 0.
#[test]
fn udp_batch_receive_reports_the_tos() {
    use palisade_dataplane::sock::set_recv_tos;
    // lo is up in the namespace, with 127.0.0.1 and ::1.
    let Some(_ns) = Netns::enter("pdp-io-tos") else {
        return;
    };
    for (v6, addr) in [(false, "127.0.0.1:0"), (true, "[::1]:0")] {
        let rx = UdpSocket::bind(addr).unwrap();
        let plain = UdpSocket::bind(addr).unwrap();
        rx.set_nonblocking(true).unwrap();
        plain.set_nonblocking(true).unwrap();
        set_recv_tos(rx.as_raw_fd(), v6).unwrap();
        let tx = UdpSocket::bind(addr).unwrap();
        for (tos, payload) in [
            (0x03u8, b"ce" as &[u8]),
            (0xb8 | 0x02, b"ef+ect0"),
            (0, b"none"),
        ] {
            let (level, opt) = if v6 {
                (libc::IPPROTO_IPV6, libc::IPV6_TCLASS)
            } else {
                (libc::IPPROTO_IP, libc::IP_TOS)
            };
            let v: libc::c_int = tos.into();
            // SAFETY: v outlives the call; the length is that of a c_int.
            let rc = unsafe {
                libc::setsockopt(
                    tx.as_raw_fd(),
                    level,
                    opt,
                    &v as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
            tx.send_to(payload, rx.local_addr().unwrap()).unwrap();
            tx.send_to(payload, plain.local_addr().unwrap()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            let mut batch = RecvBatch::new(4, 2048);
            assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 1);
            assert_eq!(batch.tos(0), tos, "v6={v6} {payload:?}");
            assert_eq!(batch.iter().next().unwrap().1, payload);
            assert_eq!(batch.recv(plain.as_raw_fd()).unwrap(), 1);
            assert_eq!(batch.tos(0), 0, "not asked for: not reported");
        }
    }
}

/// `SendRing::commit` puts each datagram's TOS / traffic class (DSCP and
/// ECN, what ESP-in-UDP copies from the cleartext packet) in the IP header
/// through a control message, GSO runs included: a run of same-size
/// datagrams with one TOS stays one run, a change of TOS starts another, and
/// 0 leaves the socket's own (0).
#[test]
fn send_ring_sets_the_tos_of_each_datagram() {
    use palisade_dataplane::sock::{set_recv_tos, SendRing};
    let Some(_ns) = Netns::enter("pdp-io-stos") else {
        return;
    };
    for (v6, addr) in [(false, "127.0.0.1:0"), (true, "[::1]:0")] {
        let rx = UdpSocket::bind(addr).unwrap();
        rx.set_nonblocking(true).unwrap();
        set_recv_tos(rx.as_raw_fd(), v6).unwrap();
        let tx = UdpSocket::bind(addr).unwrap();
        let dst = rx.local_addr().unwrap();
        let mut ring = SendRing::new(8, 256);
        // Three same-size EF+ECT(0) datagrams (one GSO message), two CE,
        // one with the socket's TOS.
        let plan: [(u8, u8); 6] = [
            (0xba, 1),
            (0xba, 2),
            (0xba, 3),
            (0x03, 4),
            (0x03, 5),
            (0, 6),
        ];
        for (tos, tag) in plan {
            ring.next_buf()[..100].fill(tag);
            assert!(ring.commit(tx.as_raw_fd(), 0, 100, dst, true, tos));
        }
        let f = ring.flush();
        assert_eq!((f.sent, f.failed), (6, 0), "v6={v6}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut batch = RecvBatch::new(8, 2048);
        let n = batch.recv(rx.as_raw_fd()).unwrap();
        assert_eq!(n, 6, "v6={v6}: no GRO asked for, one datagram each");
        for (i, (tos, tag)) in plan.into_iter().enumerate() {
            let (_, data) = batch.iter().nth(i).unwrap();
            assert_eq!((data.len(), data[0]), (100, tag), "v6={v6} datagram {i}");
            assert_eq!(batch.tos(i), tos, "v6={v6} datagram {i}");
        }
    }
}

/// A GSO run the kernel refuses (here: segments larger than the path MTU,
/// which UDP GSO cannot fragment) goes out datagram by datagram instead,
/// and `Flushed::gso_fallbacks` says so (the worker adds it to its
/// `IoCounters`, which `status` shows): nothing is lost.
#[test]
fn a_refused_gso_run_is_resent_one_by_one_and_counted() {
    use palisade_dataplane::sock::SendRing;
    let Some(_ns) = Netns::enter("pdp-io-gsofb") else {
        return;
    };
    let ok = Command::new("ip")
        .args(["link", "set", "lo", "mtu", "1280"])
        .status()
        .unwrap();
    assert!(ok.success());
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_nonblocking(true).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = rx.local_addr().unwrap();
    let mut ring = SendRing::new(4, 2048);
    for tag in 1..=3u8 {
        ring.next_buf()[..1400].fill(tag);
        assert!(ring.commit(tx.as_raw_fd(), 0, 1400, dst, true, 0));
    }
    let f = ring.flush();
    assert_eq!((f.sent, f.failed, f.gso_fallbacks), (3, 0, 1), "{f:?}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut batch = RecvBatch::new(4, 2048);
    assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 3);
    for (i, (_, data)) in batch.iter().enumerate() {
        assert_eq!((data.len(), data[0]), (1400, i as u8 + 1));
    }
    // Below the MTU the same ring still sends one GSO message.
    let mut run = |ring: &mut SendRing, len: usize| {
        for tag in 1..=3u8 {
            ring.next_buf()[..len].fill(tag);
            assert!(ring.commit(tx.as_raw_fd(), 0, len, dst, true, 0));
        }
        let f = ring.flush();
        assert_eq!((f.sent, f.failed), (3, 0), "{len} bytes: {f:?}");
        let n = batch.recv(rx.as_raw_fd()).unwrap();
        assert_eq!(n, 3);
        f.gso_fallbacks
    };
    assert_eq!(run(&mut ring, 1000), 0);
    assert!(ring.gso());
    // Three refusals in a row pause GSO; nothing is lost meanwhile.
    assert_eq!(run(&mut ring, 1400), 1);
    assert_eq!(run(&mut ring, 1400), 1);
    assert!(ring.gso(), "two refusals do not pause it");
    assert_eq!(run(&mut ring, 1400), 1);
    assert!(!ring.gso(), "three do");
    assert_eq!(run(&mut ring, 1400), 0, "paused: single datagrams");
    // Once the path fits again, GSO comes back after its pause.
    let mut flushes = 0;
    while !ring.gso() {
        assert_eq!(run(&mut ring, 1000), 0);
        flushes += 1;
        assert!(flushes <= 5000, "GSO never came back");
    }
    assert!(
        flushes >= 4000,
        "back after {flushes} flushes, before the pause ended"
    );
    assert_eq!(run(&mut ring, 1000), 0);
    assert!(ring.gso());
}

/// With IP_RECVERR on (the worker asks for it, for path MTU discovery), an
/// ICMP error about an earlier datagram (here: port unreachable) fails the
/// next send once. That is not the kernel refusing GSO: the message is sent
/// again as it was, nothing is counted as a GSO fallback, and however often
/// it happens the ring keeps using GSO.
#[test]
fn an_icmp_error_reported_on_send_does_not_cost_gso() {
    use palisade_dataplane::sock::{set_recverr, SendRing};
    let Some(_ns) = Netns::enter("pdp-io-gsoicmp") else {
        return;
    };
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_nonblocking(true).unwrap();
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    set_recverr(tx.as_raw_fd(), false).unwrap();
    let dst = rx.local_addr().unwrap();
    let mut ring = SendRing::new(4, 2048);
    let mut batch = RecvBatch::new(8, 2048);
    for round in 0..4 {
        // A datagram to a port nobody listens on: the ICMP error comes back
        // at once on loopback and waits on the socket.
        tx.send_to(b"x", closed).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        for tag in 1..=3u8 {
            ring.next_buf()[..500].fill(tag);
            assert!(ring.commit(tx.as_raw_fd(), 0, 500, dst, true, 0));
        }
        let f = ring.flush();
        assert_eq!(
            (f.sent, f.failed, f.gso_fallbacks),
            (3, 0, 0),
            "round {round}: {f:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
        assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 3, "round {round}");
    }
}
