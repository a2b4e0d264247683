//! End to end with IKEv2: two `palisade daemon`s in network namespaces
//! negotiate their SAs with PSK (no keys in the config), and real traffic
//! flows through them. Checked: the connection comes up (by itself with
//! `start_action = "start"`, or with `palisade up`), ping passes, both sides'
//! ESP counters move, `palisade down` removes the SAs and routes on both
//! sides, reload adds and removes connections, a NAT in between moves
//! everything to UDP 4500, a connection the daemon cannot run is shown
//! with the reason, and a wire that loses, repeats and reorders IKE
//! messages while CHILD_SAs rekey leaves both sides with the same SAs.
//!
//! Needs root; skips otherwise unless PALISADE_REQUIRE_NETNS=1. Each test
//! makes and removes its own namespaces (prefix `pik`, or PALISADE_NETNS_PREFIX).

mod common;

use common::{link_mtu, netns_prefix, ns_sh, root_or_skip, run, sh, Impairer, Rates};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_palisade");
const PSK: &str = "0x6b3a9c1e5f20d4879a0b1c2d3e4f50617283949a5b6c7d8e9f00112233445566";

/// One side: its namespace, addresses and daemon.
struct Side {
    ns: String,
    dir: PathBuf,
    daemon: Option<Child>,
}

impl Side {
    fn sock(&self) -> String {
        self.dir.join("palisade.sock").display().to_string()
    }
    fn config(&self) -> PathBuf {
        self.dir.join("palisade.toml")
    }
    fn cli(&self, args: &[&str]) -> Output {
        let mut v = vec![EXE, "--socket"];
        let s = self.sock();
        v.push(&s);
        v.extend_from_slice(args);
        run(&v)
    }
    fn status(&self) -> serde_json::Value {
        let out = self.cli(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }
    fn conn_state(&self, name: &str) -> String {
        self.status()["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }
    /// ESP packets through the installed SAs of `conn` in `dir`.
    fn packets(&self, conn: &str, dir: &str) -> u64 {
        self.status()["sas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["name"].as_str().unwrap().starts_with(&format!("{conn}/"))
                    && s["direction"] == dir
            })
            .map(|s| s["packets"].as_u64().unwrap())
            .sum()
    }
    fn start(&mut self, toml: &str) {
        std::fs::write(self.config(), toml).unwrap();
        let log = std::fs::File::create(self.dir.join("daemon.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, EXE, "daemon", "--config"])
            .arg(self.config())
            .env("RUST_LOG", "info,palisade_ike=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let t0 = Instant::now();
        while self.cli(&["status"]).status.code() != Some(0) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "daemon in {} did not start:\n{}",
                self.ns,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }
    fn wait_state(&self, name: &str, want: &str, limit: Duration) {
        let t0 = Instant::now();
        loop {
            let st = self.conn_state(name);
            if st == want {
                return;
            }
            assert!(
                t0.elapsed() < limit,
                "{}: connection `{name}` is `{st}`, wanted `{want}`; log:\n{}",
                self.ns,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Namespaces `pik<tag>a`, `pik<tag>b` (and `pik<tag>r` for NAT; `pik` is
/// [`netns_prefix`]) with their
/// daemons; all removed on drop.
struct Lab {
    a: Side,
    b: Side,
    namespaces: Vec<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for s in [&mut self.a, &mut self.b] {
            if s.daemon.is_some() {
                let _ = s.cli(&["stop"]);
            }
            if let Some(mut d) = s.daemon.take() {
                let t0 = Instant::now();
                while d.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(5)
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = d.kill();
                let _ = d.wait();
            }
        }
        for ns in &self.namespaces {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(&self.a.dir);
        let _ = std::fs::remove_dir_all(&self.b.dir);
    }
}

struct Addrs {
    a_outer: &'static str,
    b_outer: &'static str,
    a_inner: &'static str,
    b_inner: &'static str,
    a_net: &'static str,
    b_net: &'static str,
}

const V4: Addrs = Addrs {
    a_outer: "192.0.2.1",
    b_outer: "192.0.2.2",
    a_inner: "10.1.0.1",
    b_inner: "10.2.0.1",
    a_net: "10.1.0.0/16",
    b_net: "10.2.0.0/16",
};

const V6: Addrs = Addrs {
    a_outer: "2001:db8:2::1",
    b_outer: "2001:db8:2::2",
    a_inner: "fd00:1::1",
    b_inner: "fd00:2::1",
    a_net: "fd00:1::/64",
    b_net: "fd00:2::/64",
};

/// How A and B are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// One veth pair.
    Direct,
    /// Through router namespace `pik<tag>r`, which MASQUERADEs A.
    Nat,
    /// Through the same router, without NAT (A 198.51.100.10, B 203.0.113.2).
    Routed,
}

fn lab(tag: &str, ad: &Addrs, path: Path) -> Lab {
    let p = netns_prefix("pik");
    let (na, nb, nr) = (
        format!("{p}{tag}a"),
        format!("{p}{tag}b"),
        format!("{p}{tag}r"),
    );
    for n in [&na, &nb, &nr] {
        let _ = run(&["ip", "netns", "del", n]);
    }
    let mut namespaces = vec![na.clone(), nb.clone()];
    let dir = |n: &str| {
        let d = std::env::temp_dir().join(format!("palisade-ike-{n}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let mut lab = Lab {
        a: Side {
            ns: na.clone(),
            dir: dir(&na),
            daemon: None,
        },
        b: Side {
            ns: nb.clone(),
            dir: dir(&nb),
            daemon: None,
        },
        namespaces: Vec::new(),
    };
    for n in [&na, &nb] {
        sh(&["ip", "netns", "add", n]);
        ns_sh(n, &["ip", "link", "set", "lo", "up"]);
    }
    let v6 = ad.a_outer.contains(':');
    let plen = if v6 { "64" } else { "24" };
    let (va, vb) = (format!("{p}{tag}a0"), format!("{p}{tag}b0"));
    if path != Path::Direct {
        // A (198.51.100.10) -> R (masquerade if Nat) -> B (203.0.113.2).
        sh(&["ip", "netns", "add", &nr]);
        namespaces.push(nr.clone());
        let (ra, rb) = (format!("{p}{tag}ra"), format!("{p}{tag}rb"));
        sh(&[
            "ip", "link", "add", &va, "netns", &na, "type", "veth", "peer", "name", &ra, "netns",
            &nr,
        ]);
        sh(&[
            "ip", "link", "add", &vb, "netns", &nb, "type", "veth", "peer", "name", &rb, "netns",
            &nr,
        ]);
        ns_sh(&na, &["ip", "addr", "add", "198.51.100.10/24", "dev", &va]);
        ns_sh(&nr, &["ip", "addr", "add", "198.51.100.1/24", "dev", &ra]);
        ns_sh(&nr, &["ip", "addr", "add", "203.0.113.1/24", "dev", &rb]);
        ns_sh(&nb, &["ip", "addr", "add", "203.0.113.2/24", "dev", &vb]);
        for (n, d) in [(&na, &va), (&nr, &ra), (&nr, &rb), (&nb, &vb)] {
            ns_sh(n, &["ip", "link", "set", d, "up"]);
        }
        ns_sh(
            &na,
            &["ip", "route", "add", "default", "via", "198.51.100.1"],
        );
        ns_sh(&nr, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        if path == Path::Routed {
            ns_sh(
                &nb,
                &["ip", "route", "add", "default", "via", "203.0.113.1"],
            );
        }
    }
    if path == Path::Nat {
        let (rb, nr) = (format!("{p}{tag}rb"), &nr);
        let rules = format!(
            "table ip piknat {{\n chain post {{\n  type nat hook postrouting priority 100;\n  oifname \"{rb}\" meta l4proto udp masquerade to :20000-20999 random\n  oifname \"{rb}\" masquerade\n }}\n}}\n"
        );
        let file = lab.a.dir.join("nat.nft");
        std::fs::write(&file, rules).unwrap();
        ns_sh(nr, &["nft", "-f", &file.display().to_string()]);
    }
    if path == Path::Direct {
        sh(&[
            "ip", "link", "add", &va, "netns", &na, "type", "veth", "peer", "name", &vb, "netns",
            &nb,
        ]);
        for (n, addr, dev) in [(&na, ad.a_outer, &va), (&nb, ad.b_outer, &vb)] {
            let cidr = format!("{addr}/{plen}");
            let mut cmd = vec!["ip", "addr", "add", &cidr, "dev", dev];
            if v6 {
                cmd.push("nodad"); // usable at once, not after duplicate detection
            }
            ns_sh(n, &cmd);
        }
        ns_sh(&na, &["ip", "link", "set", &va, "up"]);
        ns_sh(&nb, &["ip", "link", "set", &vb, "up"]);
    }
    let host = if v6 { "128" } else { "32" };
    ns_sh(
        &na,
        &[
            "ip",
            "addr",
            "add",
            &format!("{}/{host}", ad.a_inner),
            "dev",
            "lo",
        ],
    );
    ns_sh(
        &nb,
        &[
            "ip",
            "addr",
            "add",
            &format!("{}/{host}", ad.b_inner),
            "dev",
            "lo",
        ],
    );
    lab.namespaces = namespaces;
    lab
}

#[allow(clippy::too_many_arguments)]
fn conn_toml(
    side: &Side,
    name: &str,
    local: &str,
    remote: &str,
    ids: (&str, &str),
    start: &str,
    children: &str,
    extra: &str,
) -> String {
    format!(
        r#"[daemon]
control_socket = "{sock}"
tun_name = "{ns}t"

[[connection]]
name = "{name}"
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
local_id = "{lid}"
remote_id = "{rid}"
auth = "psk"
psk = "{PSK}"
ike_proposals = ["aes256gcm16-prfsha256-x25519"]
start_action = "{start}"
{extra}
{children}
"#,
        sock = side.sock(),
        ns = side.ns,
        lid = ids.0,
        rid = ids.1,
    )
}

fn child(name: &str, local_ts: &str, remote_ts: &str, mode: &str) -> String {
    format!(
        r#"  [[connection.child]]
  name = "{name}"
  local_ts = ["{local_ts}"]
  remote_ts = ["{remote_ts}"]
  esp_proposals = ["aes256gcm16"]
  mode = "{mode}"
"#
    )
}

fn ping(ns: &str, from: &str, to: &str, count: u32) -> bool {
    run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "ping",
        "-c",
        &count.to_string(),
        "-i",
        "0.2",
        "-W",
        "2",
        "-I",
        from,
        to,
    ])
    .status
    .success()
}

fn routes(ns: &str) -> String {
    let out = run(&[
        "ip", "netns", "exec", ns, "ip", "-4", "route", "show", "table", "all",
    ]);
    let out6 = run(&[
        "ip", "netns", "exec", ns, "ip", "-6", "route", "show", "table", "all",
    ]);
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out6.stdout)
}

/// What differs between the tunnel tests: A's start action, lines added to
/// both `[daemon]`s and to A's, A's connection and both children.
#[derive(Default)]
struct Opts<'a> {
    a_start: &'a str,
    daemon: &'a str,
    a_daemon: &'a str,
    a_conn: &'a str,
    child: &'a str,
}

/// A lab (`nat`: A behind the MASQUERADE router) with a tunnel connection
/// `name` between the two LANs configured on both sides and both daemons
/// running; B only responds.
fn tunnel_pair(tag: &str, ad: &Addrs, path: Path, name: &str, o: Opts) -> Lab {
    let mut l = lab(tag, ad, path);
    let (a_local, a_remote, b_local, b_remote) = match path {
        // B cannot know the NAT's address: it accepts any peer.
        Path::Nat => ("198.51.100.10", "203.0.113.2", "203.0.113.2", "%any"),
        Path::Routed => (
            "198.51.100.10",
            "203.0.113.2",
            "203.0.113.2",
            "198.51.100.10",
        ),
        Path::Direct => (ad.a_outer, ad.b_outer, ad.b_outer, ad.a_outer),
    };
    let a_child = child("net", ad.a_net, ad.b_net, "tunnel") + o.child;
    let b_child = child("net", ad.b_net, ad.a_net, "tunnel") + o.child;
    let start = if o.a_start.is_empty() {
        "start"
    } else {
        o.a_start
    };
    let a_cfg = conn_toml(
        &l.a,
        name,
        a_local,
        a_remote,
        ("a.test", "b.test"),
        start,
        &a_child,
        o.a_conn,
    )
    .replacen(
        "[daemon]\n",
        &format!("[daemon]\n{}{}", o.daemon, o.a_daemon),
        1,
    );
    let b_cfg = conn_toml(
        &l.b,
        name,
        b_local,
        b_remote,
        ("b.test", "a.test"),
        "none",
        &b_child,
        "",
    )
    .replacen("[daemon]\n", &format!("[daemon]\n{}", o.daemon), 1);
    l.b.start(&b_cfg);
    l.a.start(&a_cfg);
    l
}

/// Both sides up (A starts it), traffic, then down from B and up again from B.
fn tunnel_round_trip(tag: &str, ad: &Addrs) {
    let l = tunnel_pair(tag, ad, Path::Direct, "ab", Opts::default());
    l.a.wait_state("ab", "established", Duration::from_secs(15));
    l.b.wait_state("ab", "established", Duration::from_secs(5));
    assert!(
        ping(&l.a.ns, ad.a_inner, ad.b_inner, 3),
        "ping through the IKE tunnel failed\nA:\n{}\nB:\n{}",
        l.a.log(),
        l.b.log()
    );
    assert!(
        l.a.packets("ab", "out") >= 3 && l.b.packets("ab", "in") >= 3,
        "ESP counters did not move: {}",
        l.a.status()
    );
    let st = l.a.status();
    let ike = st["ike_sas"].clone();
    assert_eq!(ike.as_array().unwrap().len(), 1, "{ike}");
    assert!(st["ike_stats"]["received"].as_u64().unwrap() >= 2, "{st}");
    // strongSwan's defaults: rekey after 1 h minus up to 6 min of jitter,
    // expiry at 110 % (66 min).
    let life = &st["sas"][0]["lifetime"];
    let soft = life["soft_seconds_left"].as_u64().unwrap();
    let hard = life["hard_seconds_left"].as_u64().unwrap();
    assert!((3230..=3600).contains(&soft), "{life}");
    assert!((3950..=3960).contains(&hard), "{life}");
    assert_eq!(st["ike_stats"]["integrity_failed"], 0, "{st}");
    assert_eq!(ike[0]["remote_id"], "b.test");
    assert_eq!(ike[0]["initiator"], true);
    let net = ad.b_net.split('/').next().unwrap();
    assert!(routes(&l.a.ns).contains(net), "no route for {net}");

    // Down from the responder side: both sides drop everything.
    let out = l.b.cli(&["down", "ab"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is down"));
    l.a.wait_state("ab", "down", Duration::from_secs(5));
    assert!(l.a.status()["sas"].as_array().unwrap().is_empty());
    assert!(
        !routes(&l.a.ns).contains(net),
        "route for {net} left behind:\n{}",
        routes(&l.a.ns)
    );
    assert!(
        !ping(&l.a.ns, ad.a_inner, ad.b_inner, 1),
        "ping passed without an SA"
    );

    // Up from B this time; `up` returns once the CHILD_SA is installed.
    let out = l.b.cli(&["up", "ab"]);
    assert!(
        out.status.success(),
        "up: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        l.b.log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("established"));
    assert!(ping(&l.b.ns, ad.b_inner, ad.a_inner, 2));
    let again = l.b.cli(&["up", "ab"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already up"));
}

#[test]
fn ikev2_tunnel_v4_up_traffic_down_up() {
    if root_or_skip() {
        tunnel_round_trip("4", &V4);
    }
}

#[test]
fn ikev2_tunnel_v6_outer_and_inner() {
    if root_or_skip() {
        tunnel_round_trip("6", &V6);
    }
}

#[test]
fn ikev2_transport_mode_v4() {
    if !root_or_skip() {
        return;
    }
    let mut l = lab("t", &V4, Path::Direct);
    let host = |a: &str| format!("{a}/32");
    let a_cfg = conn_toml(
        &l.a,
        "tr",
        V4.a_outer,
        V4.b_outer,
        ("192.0.2.1", "192.0.2.2"),
        "start",
        &child("host", &host(V4.a_outer), &host(V4.b_outer), "transport"),
        "",
    );
    let b_cfg = conn_toml(
        &l.b,
        "tr",
        V4.b_outer,
        V4.a_outer,
        ("192.0.2.2", "192.0.2.1"),
        "none",
        &child("host", &host(V4.b_outer), &host(V4.a_outer), "transport"),
        "",
    );
    l.b.start(&b_cfg);
    l.a.start(&a_cfg);
    l.a.wait_state("tr", "established", Duration::from_secs(15));
    // IKE itself runs between the same two addresses the policy covers: it
    // must keep working (its sockets bypass the transport-mode routing).
    assert!(
        ping(&l.a.ns, V4.a_outer, V4.b_outer, 3),
        "A:\n{}\nB:\n{}",
        l.a.log(),
        l.b.log()
    );
    assert!(l.b.packets("tr", "in") >= 3);
    let out = l.a.cli(&["down", "tr"]);
    assert!(out.status.success());
    l.b.wait_state("tr", "down", Duration::from_secs(5));
    assert!(
        ping(&l.a.ns, V4.a_outer, V4.b_outer, 1),
        "plain traffic must flow again once the SA is gone"
    );
}

#[test]
fn ikev2_through_nat_uses_udp_4500() {
    if !root_or_skip() {
        return;
    }
    let l = tunnel_pair("n", &V4, Path::Nat, "nat", Opts::default());
    l.a.wait_state("nat", "established", Duration::from_secs(15));
    assert!(
        ping(&l.a.ns, V4.a_inner, V4.b_inner, 3),
        "A:\n{}\nB:\n{}",
        l.a.log(),
        l.b.log()
    );
    let st = l.b.status();
    let ike = &st["ike_sas"][0];
    assert_eq!(ike["nat"], true, "{st}");
    assert!(
        ike["remote"].as_str().unwrap().starts_with("203.0.113.1:"),
        "B sees the NAT's address: {ike}"
    );
    assert!(
        !ike["remote"].as_str().unwrap().ends_with(":4500"),
        "the NAT picked a port from 20000-20999: {ike}"
    );
    let sa = st["sas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["direction"] == "out")
        .unwrap()
        .clone();
    assert!(
        sa["encapsulation"]
            .as_str()
            .unwrap()
            .starts_with("esp-udp(4500->"),
        "{sa}"
    );
}

#[test]
fn reload_adds_and_removes_connections_and_refuses_what_it_cannot_run() {
    if !root_or_skip() {
        return;
    }
    let mut l = lab("r", &V4, Path::Direct);
    let ch_a = child("net", V4.a_net, V4.b_net, "tunnel");
    let ch_b = child("net", V4.b_net, V4.a_net, "tunnel");
    let a_cfg = conn_toml(
        &l.a,
        "ab",
        V4.a_outer,
        V4.b_outer,
        ("a.test", "b.test"),
        "start",
        &ch_a,
        "",
    );
    let b_cfg = conn_toml(
        &l.b,
        "ab",
        V4.b_outer,
        V4.a_outer,
        ("b.test", "a.test"),
        "none",
        &ch_b,
        "",
    );
    // A second connection B cannot run: IKEv1.
    let v1 = r#"
[[connection]]
name = "old"
version = 1
remote_addrs = ["192.0.2.9"]
auth = "psk"
psk = "0x00112233445566778899aabbccddeeff"
ike_proposals = ["aes256-sha256-modp2048"]
"#;
    l.b.start(&(b_cfg.clone() + v1));
    l.a.start(&a_cfg);
    l.a.wait_state("ab", "established", Duration::from_secs(15));
    let st = l.b.conn_state("old");
    assert!(st.starts_with("not loaded") && st.contains("IKEv1"), "{st}");
    let out = l.b.cli(&["up", "old"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("IKEv1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = l.b.cli(&["up", "nosuch"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("configured: ab, old"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Remove `ab` from A's config: A deletes it, B follows.
    let without = conn_toml(
        &l.a,
        "other",
        V4.a_outer,
        "192.0.2.77",
        ("a.test", "c.test"),
        "none",
        &child("x", "10.9.0.0/16", "10.8.0.0/16", "tunnel"),
        "",
    );
    std::fs::write(l.a.config(), &without).unwrap();
    let out = l.a.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    l.b.wait_state("ab", "down", Duration::from_secs(5));
    assert!(l.a.status()["ike_sas"].as_array().unwrap().is_empty());
    // Put it back: start_action = start brings it up again.
    std::fs::write(l.a.config(), &a_cfg).unwrap();
    assert!(l.a.cli(&["reload"]).status.success());
    l.a.wait_state("ab", "established", Duration::from_secs(15));
    assert!(ping(&l.a.ns, V4.a_inner, V4.b_inner, 2));
}

#[test]
fn ikev2_trap_negotiates_on_the_first_packet() {
    if !root_or_skip() {
        return;
    }
    let l = tunnel_pair(
        "p",
        &V4,
        Path::Direct,
        "tp",
        Opts {
            a_start: "trap",
            ..Opts::default()
        },
    );
    // Nothing is negotiated until traffic needs it, but the route is there
    // already, so the first packets are held back (dropped), never sent in clear.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(l.a.conn_state("tp"), "down");
    assert!(
        routes(&l.a.ns).contains("10.2.0.0/16 dev"),
        "{}",
        routes(&l.a.ns)
    );
    // The first ping triggers the negotiation; a few later ones pass.
    let _ = ping(&l.a.ns, V4.a_inner, V4.b_inner, 1);
    l.a.wait_state("tp", "established", Duration::from_secs(10));
    let ike = l.a.status()["ike_sas"].clone();
    assert_eq!(ike[0]["initiator"], true, "{ike}");
    assert!(
        ping(&l.a.ns, V4.a_inner, V4.b_inner, 3),
        "A:\n{}\nB:\n{}",
        l.a.log(),
        l.b.log()
    );
    // The narrowed CHILD_SA starts with the triggering packet's selectors
    // (RFC 7296 2.9); B's policy shows what was agreed.
    let pol = l.b.status()["policies"].to_string();
    assert!(
        pol.contains("10.2.0.1") || pol.contains("10.2.0.0"),
        "{pol}"
    );
    // Down: the SA goes, the trap stays and brings it back on the next packet.
    assert!(l.a.cli(&["down", "tp"]).status.success());
    assert!(
        routes(&l.a.ns).contains("10.2.0.0/16 dev"),
        "the trap's route must stay"
    );
    let _ = ping(&l.a.ns, V4.a_inner, V4.b_inner, 1);
    l.a.wait_state("tp", "established", Duration::from_secs(10));
}

/// `rekey_packets`: the data plane counts, the engine rekeys; traffic keeps
/// flowing through the switch to the new SA without loss.
#[test]
fn ikev2_rekey_on_packet_count_without_loss() {
    if !root_or_skip() {
        return;
    }
    let l = tunnel_pair(
        "k",
        &V4,
        Path::Direct,
        "rk",
        Opts {
            child: "  rekey_packets = 20\n  life_packets = 100000\n",
            ..Opts::default()
        },
    );
    l.a.wait_state("rk", "established", Duration::from_secs(15));
    let first = l.a.status()["ike_sas"][0]["children"][0].clone();
    let out = run(&[
        "ip", "netns", "exec", &l.a.ns, "ping", "-c", "60", "-i", "0.02", "-W", "1", "-I",
        V4.a_inner, V4.b_inner,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "{text}\nA:\n{}\nB:\n{}\nA: {}\nB: {}",
        l.a.log(),
        l.b.log(),
        l.a.status(),
        l.b.status()
    );
    let now = l.a.status()["ike_sas"][0]["children"].clone();
    assert!(
        !now.as_array().unwrap().contains(&first),
        "no rekey happened: {first} still in {now}"
    );
    assert!(
        l.a.log().contains("soft") || l.b.log().contains("soft"),
        "no volume-limit report in the logs"
    );
}

/// Dead peer detection: B's daemon is killed (no Delete); A notices within
/// dpd_delay + its retransmissions, removes the SAs and routes, and with
/// dpd_action = "restart" keeps trying to set the connection up again.
#[test]
fn ikev2_dpd_notices_a_dead_peer_and_restarts() {
    if !root_or_skip() {
        return;
    }
    let mut l = tunnel_pair(
        "d",
        &V4,
        Path::Direct,
        "dp",
        Opts {
            a_daemon: "retransmit_timeout = \"200ms\"\nretransmit_limit = \"400ms\"\nretransmit_tries = 3\n",
            a_conn: "dpd_delay = \"1s\"\ndpd_action = \"restart\"",
            ..Opts::default()
        },
    );
    l.a.wait_state("dp", "established", Duration::from_secs(15));
    // A live peer answers the liveness checks: still up after several delays.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(l.a.conn_state("dp"), "established", "{}", l.a.log());
    let tries = |log: &str| {
        log.matches("palisade_ike::endpoint: initiating IKE SA")
            .count()
    };
    let before = tries(&l.a.log());
    let mut b = l.b.daemon.take().unwrap();
    let _ = run(&["kill", "-KILL", &b.id().to_string()]);
    let _ = b.wait();
    // The `ip netns exec` wrapper exec()s, so that was the daemon itself.
    let t0 = Instant::now();
    while !l.a.log().contains("dead peer detected") {
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "no DPD verdict in 8 s:\n{}",
            l.a.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("DPD verdict {secs:.1} s after the peer died");
    assert!(
        l.a.status()["sas"].as_array().unwrap().is_empty(),
        "SAs left after DPD"
    );
    // restart: A tries again (and fails, the peer being gone).
    let t0 = Instant::now();
    while tries(&l.a.log()) <= before {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no restart after DPD:\n{}",
            l.a.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The NAT forgets A's mapping (its UDP timeout is cut to 1 s): A's next IKE
/// message (a liveness check) arrives from a new port, B's IKE SA follows it
/// (RFC 7296 2.23) and so must B's installed CHILD_SA, or B's ESP would go to
/// the dead mapping and the pings below would get no answer.
#[test]
fn ikev2_nat_rebinding_moves_the_child_sa() {
    if !root_or_skip() {
        return;
    }
    let l = tunnel_pair(
        "m",
        &V4,
        Path::Nat,
        "nat",
        Opts {
            a_conn: "dpd_delay = \"1s\"",
            ..Opts::default()
        },
    );
    l.a.wait_state("nat", "established", Duration::from_secs(15));
    assert!(ping(&l.a.ns, V4.a_inner, V4.b_inner, 2));
    let before = l.b.status()["ike_sas"][0]["remote"]
        .as_str()
        .unwrap()
        .to_string();
    let r = format!("{}mr", netns_prefix("pik"));
    for key in [
        "nf_conntrack_udp_timeout",
        "nf_conntrack_udp_timeout_stream",
    ] {
        ns_sh(&r, &["sysctl", "-qw", &format!("net.netfilter.{key}=1")]);
    }
    // Idle long enough for the mapping to go, and for A's DPD to speak.
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = l.b.status()["ike_sas"][0]["remote"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if now != before && !now.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "B never saw A from a new port (still {before})\nB:\n{}",
            l.b.log()
        );
    }
    for key in [
        "nf_conntrack_udp_timeout",
        "nf_conntrack_udp_timeout_stream",
    ] {
        ns_sh(&r, &["sysctl", "-qw", &format!("net.netfilter.{key}=120")]);
    }
    assert!(l.b.log().contains("moved to"), "B's log:\n{}", l.b.log());
    let out = l.b.status();
    let sa = out["sas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["direction"] == "out")
        .unwrap()
        .clone();
    let now = out["ike_sas"][0]["remote"].as_str().unwrap().to_string();
    let port = now.rsplit(':').next().unwrap();
    assert!(
        sa["encapsulation"]
            .as_str()
            .unwrap()
            .ends_with(&format!("->{port})")),
        "B's CHILD_SA did not follow to {now}: {sa}"
    );
    assert!(
        ping(&l.b.ns, V4.b_inner, V4.a_inner, 3),
        "B -> A after the rebinding\nA:\n{}\nB:\n{}",
        l.a.log(),
        l.b.log()
    );
}

/// Wait until both TUNs have MTU `want`.
fn wait_tun_mtu(l: &Lab, want: u64, what: &str) {
    let t0 = Instant::now();
    loop {
        let got: Vec<u64> = [&l.a, &l.b]
            .iter()
            .map(|s| link_mtu(&s.ns, &format!("{}t", s.ns)) as u64)
            .collect();
        if got.iter().all(|m| *m == want) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{what}: TUN MTUs (A, B) are {got:?}, wanted {want}\nA:\n{}\nB:\n{}",
            l.a.log(),
            l.b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The TUN MTU follows the negotiated CHILD_SAs as it follows manual SAs:
/// with the link towards the peer at 1420, a CHILD_SA lowers the TUN from
/// the configured 1400 to what a full packet sealed with it allows (the same
/// with ESP-in-UDP through a NAT: its 8 bytes fit in the padding that fills
/// the last AES block), a packet of exactly that size
/// crosses with DF, status shows the value, a rekey (after 20 packets) keeps
/// it, and once the CHILD_SA is gone the TUN is back at 1400. The link
/// changes once each way, never in between.
fn child_sa_sets_tun_mtu(tag: &str, nat: bool) -> u64 {
    let l = tunnel_pair(
        tag,
        &V4,
        if nat { Path::Nat } else { Path::Direct },
        "mtu",
        Opts {
            a_start: "none",
            child: "  rekey_packets = 20\n  life_packets = 100000\n",
            ..Opts::default()
        },
    );
    wait_tun_mtu(&l, 1400, "before `up`");
    for s in [&l.a, &l.b] {
        ns_sh(
            &s.ns,
            &[
                "ip",
                "link",
                "set",
                "dev",
                &format!("{}0", s.ns),
                "mtu",
                "1420",
            ],
        );
    }
    let out = l.a.cli(&["up", "mtu"]);
    assert!(
        out.status.success(),
        "up: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        l.a.log()
    );
    // AES-256-GCM, tunnel mode, IPv4: 20 (outer IP) + 8 (ESP header) + 8
    // (IV) + 16 (ICV), payload + 2 (trailer) padded to 16: 1420 - 52 = 1368
    // leaves 1360 = 85 blocks, so 1358. The UDP header's 8 bytes leave 1360
    // too.
    let want = 1358;
    wait_tun_mtu(&l, want, "after `up`");
    for s in [&l.a, &l.b] {
        let st = s.status();
        assert_eq!(st["data_plane"]["tun_mtu"], want, "{}", st["data_plane"]);
    }
    let df = |size: u64| {
        run(&[
            "ip",
            "netns",
            "exec",
            &l.a.ns,
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            &size.to_string(),
            "-I",
            V4.a_inner,
            V4.b_inner,
        ])
        .status
        .success()
    };
    assert!(
        df(want - 28),
        "a DF packet of exactly the TUN MTU crosses\nA:\n{}",
        l.a.log()
    );
    assert!(!df(want - 27), "one byte more does not fit the TUN");
    let first = l.a.status()["ike_sas"][0]["children"][0].clone();
    let out = run(&[
        "ip", "netns", "exec", &l.a.ns, "ping", "-c", "40", "-i", "0.02", "-W", "1", "-I",
        V4.a_inner, V4.b_inner,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let now = l.a.status()["ike_sas"][0]["children"].clone();
    assert!(
        !now.as_array().unwrap().contains(&first),
        "no rekey happened: {first} still in {now}"
    );
    // Let the rekeyed SA's lingering inbound half go too.
    std::thread::sleep(Duration::from_millis(2500));
    wait_tun_mtu(&l, want, "after a rekey");
    let out = l.a.cli(&["down", "mtu"]);
    assert!(
        out.status.success(),
        "down: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_tun_mtu(&l, 1400, "after `down`");
    for s in [&l.a, &l.b] {
        let changes = s.log().matches(" MTU 1400 -> ").count();
        assert_eq!(changes, 1, "{}: one change down\n{}", s.ns, s.log());
        let back = s.log().matches(&format!(" MTU {want} -> 1400")).count();
        assert_eq!(back, 1, "{}: one change back\n{}", s.ns, s.log());
    }
    want
}

#[test]
fn ikev2_child_sa_sets_the_tun_mtu() {
    if !root_or_skip() {
        return;
    }
    let esp = child_sa_sets_tun_mtu("mt", false);
    let udp = child_sa_sets_tun_mtu("mu", true);
    println!("TUN MTU with a CHILD_SA over a 1420 link: ESP {esp}, ESP-in-UDP {udp}; 1400 without");
}

/// IKE retransmission for a lossy wire: resends after 0.2, 0.6, 1.6 s and
/// then every second, twelve sends in all.
const LOSSY_RETRANSMIT: &str =
    "retransmit_timeout = \"200ms\"\nretransmit_limit = \"1s\"\nretransmit_tries = 12\n";

/// CHILD_SAs rekeyed every 30 packets (300 pings 10 ms apart rekey them
/// about ten times), never expiring by volume first.
const REKEY_EVERY_30_PACKETS: &str = "  rekey_packets = 30\n  life_packets = 100000\n";

/// The CHILD_SAs of every IKE SA in `status --json`, as (in-SPI, out-SPI),
/// the out-SPI marked `*` for one already replaced by a rekey.
fn child_spis(st: &serde_json::Value) -> Vec<(String, String)> {
    st["ike_sas"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["children"].as_array().unwrap().clone())
        .map(|c| {
            let c = c.as_str().unwrap().to_string();
            let spis = c.split(' ').nth(1).unwrap_or_default();
            let (i, o) = spis.split_once('/').unwrap_or_default();
            (
                i.to_string(),
                o.to_string() + if c.contains("rekeyed") { "*" } else { "" },
            )
        })
        .collect()
}

/// What the data plane of a daemon holds: (SAD entries, SPD entries).
fn plane_sizes(st: &serde_json::Value) -> (Option<u64>, Option<u64>) {
    let dp = &st["data_plane"];
    (dp["sad_entries"].as_u64(), dp["spd_entries"].as_u64())
}

/// Wait (20 s at most, pinging A -> B to keep the SAs' traffic going) until
/// both sides have one IKE SA and the same CHILD_SAs (A's inbound SPIs are
/// B's outbound ones and the reverse), none of them replaced; returns both
/// statuses. `what` is said if they never do.
fn wait_mirrored(l: &Lab, what: &str) -> (serde_json::Value, serde_json::Value) {
    let t0 = Instant::now();
    loop {
        let _ = ping(&l.a.ns, V4.a_inner, V4.b_inner, 1);
        let (sa, sb) = (l.a.status(), l.b.status());
        let (mut ca, cb) = (child_spis(&sa), child_spis(&sb));
        let mut mirrored: Vec<(String, String)> =
            cb.iter().map(|(i, o)| (o.clone(), i.clone())).collect();
        ca.sort();
        mirrored.sort();
        let settled = sa["ike_sas"].as_array().unwrap().len() == 1
            && sb["ike_sas"].as_array().unwrap().len() == 1
            && !ca.is_empty()
            && ca.iter().chain(&cb).all(|(_, o)| !o.ends_with('*'))
            && ca == mirrored;
        if settled {
            return (sa, sb);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the sides did not settle on the same SAs after {what}:\nA: {sa}\nB: {sb}\nA log:\n{}\nB log:\n{}",
            l.a.log(),
            l.b.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The PSK is nowhere in what the daemons wrote or show.
fn assert_psk_hidden(l: &Lab) {
    let psk = PSK.trim_start_matches("0x");
    for (side, text) in [
        ("A", format!("{}{}", l.a.log(), l.a.status())),
        ("B", format!("{}{}", l.b.log(), l.b.status())),
    ] {
        assert!(
            !text.to_lowercase().contains(&psk[..24]),
            "{side}: the PSK is in the log or status:\n{text}"
        );
    }
}

/// IKEv2 across a wire that loses, duplicates and reorders a tenth of the
/// IKE messages each (and of the ESP, 2 % of which it also corrupts), with
/// CHILD_SAs rekeyed every 30 packets under traffic, so rekeys run into
/// one another (RFC 7296 2.8.1) and their messages cross, go missing and
/// come twice, and A probes the peer every second (DPD): the connection
/// comes up by retransmission and is never taken for dead, and once the
/// wire is clean again both sides settle on one IKE SA and the same
/// CHILD_SAs (A's inbound SPIs are B's outbound ones and the reverse), the
/// data planes hold just those, and traffic flows.
#[test]
fn ikev2_survives_a_bad_wire_and_rekeys_across_it() {
    if !root_or_skip() {
        return;
    }
    let l = tunnel_pair(
        "w",
        &V4,
        Path::Routed,
        "bw",
        Opts {
            a_start: "none",
            daemon: LOSSY_RETRANSMIT,
            // DPD every second must not take the losses for a dead peer.
            // A rekeys the IKE SA after 2 s too, so the CHILD_SAs move to
            // its successor while they rekey themselves (in most runs: B
            // turns the rekey down with TEMPORARY_FAILURE when a CHILD_SA
            // rekey is under way, and A tries again only 10-15 s later).
            a_conn: "rekey_time = \"2s\"\nover_time = \"60s\"\ndpd_delay = \"1s\"\n",
            child: REKEY_EVERY_30_PACKETS,
            ..Opts::default()
        },
    );
    let p = netns_prefix("pik");
    let imp = Impairer::start(
        &format!("{p}wr"),
        [&format!("{p}wra"), &format!("{p}wrb")],
        "198.51.100.10".parse().unwrap(),
        Rates {
            drop: 10,
            duplicate: 10,
            reorder: 10,
            corrupt: 2,
        },
        |p, proto, l4| {
            let port = |at: usize| u16::from_be_bytes([p[l4 + at], p[l4 + at + 1]]);
            match proto {
                // ESP: corrupt past the SPI and sequence number.
                50 => Some(Some(l4 + 8)),
                // IKE: lose, repeat or reorder, never corrupt (a changed
                // IKE_SA_INIT is an authentication failure, not a bad wire).
                17 if [500, 4500].contains(&port(0)) || [500, 4500].contains(&port(2)) => {
                    Some(None)
                }
                _ => None,
            }
        },
    );
    let up = l.a.cli(&["up", "bw"]);
    assert!(
        up.status.success(),
        "up: {}\nA:\n{}\nB:\n{}",
        String::from_utf8_lossy(&up.stderr),
        l.a.log(),
        l.b.log()
    );
    let first = l.a.status()["ike_sas"][0]["children"].clone();
    // What the data planes hold for one CHILD_SA, to hold them to after.
    let one_child = (plane_sizes(&l.a.status()), plane_sizes(&l.b.status()));
    assert!(
        one_child.0 .0.is_some_and(|n| n >= 2),
        "no SAD size in status: {}",
        l.a.status()
    );
    // 300 pings in 3 s: about ten rekeys on each side, most of them
    // started by both at once.
    run(&[
        "ip", "netns", "exec", &l.a.ns, "ping", "-q", "-c", "300", "-i", "0.01", "-W", "1", "-I",
        V4.a_inner, V4.b_inner,
    ]);
    imp.clean();
    let seen = imp.finish();
    let (sa, sb) = wait_mirrored(&l, &format!("the wire ({seen:?}) was clean"));
    assert_eq!(sa["ike_sas"][0]["state"], "established", "{sa}");
    assert_eq!(
        (plane_sizes(&sa), plane_sizes(&sb)),
        one_child,
        "the data planes hold more (or less) than one CHILD_SA needs after the rekeys: A: {sa}\nB: {sb}"
    );
    assert_ne!(
        sa["ike_sas"][0]["children"], first,
        "no CHILD_SA was rekeyed: {sa}"
    );
    for (k, side) in ["B", "A"].iter().enumerate() {
        assert!(
            seen[k].dropped > 0 && seen[k].duplicated > 0 && seen[k].reordered > 0,
            "the wire toward {side} was not bad enough to test anything: {:?}",
            seen[k]
        );
    }
    assert!(
        ping(&l.a.ns, V4.a_inner, V4.b_inner, 5),
        "no traffic on the settled SAs: A: {sa}\nB: {sb}"
    );
    assert_psk_hidden(&l);
    let count = |log: String, what: &str| log.lines().filter(|l| l.contains(what)).count();
    let ike_rekeys = count(l.a.log(), "rekeyed, now");
    println!(
        "bad wire toward B {:?}, toward A {:?}; CHILD_SAs installed: A {}, B {}; IKE SA rekeys {ike_rekeys}; settled on {:?}",
        seen[0],
        seen[1],
        count(l.a.log(), "installed, SPIs"),
        count(l.b.log(), "installed, SPIs"),
        child_spis(&sa)
    );
}

/// A behind the MASQUERADE router, with nftables there losing and repeating
/// a fifth of the IKE messages each way (UDP 500, and 4500 with the non-ESP
/// marker; the repeats made after the NAT): IKE floats to 4500 through the
/// losses, B (the responder, which sees A at the NAT's mapped port) answers
/// repeats from its cache, the CHILD_SAs rekey every 30 packets under
/// traffic with DPD every second, and once the router is clean both sides
/// settle on one IKE SA with mirrored CHILD_SAs and data planes that hold
/// just those.
#[test]
fn ikev2_through_a_lossy_nat() {
    if !root_or_skip() {
        return;
    }
    let l = tunnel_pair(
        "ln",
        &V4,
        Path::Nat,
        "ln",
        Opts {
            a_start: "none",
            daemon: LOSSY_RETRANSMIT,
            a_conn: "dpd_delay = \"1s\"\n",
            child: REKEY_EVERY_30_PACKETS,
            ..Opts::default()
        },
    );
    let p = netns_prefix("pik");
    let (nr, ra, rb) = (format!("{p}lnr"), format!("{p}lnra"), format!("{p}lnrb"));
    // The same lossy router as the strongSwan check's daemon-lossy case.
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/checks/lossy-ike.nft"
    );
    ns_sh(
        &nr,
        &[
            "nft",
            "-D",
            &format!("ra={ra}"),
            "-D",
            &format!("rb={rb}"),
            "-D",
            "a=198.51.100.10",
            "-D",
            "b=203.0.113.2",
            "-D",
            "pct=20",
            "-f",
            rules,
        ],
    );
    let up = l.a.cli(&["up", "ln"]);
    assert!(
        up.status.success(),
        "up through the lossy NAT: {}\nA:\n{}\nB:\n{}",
        String::from_utf8_lossy(&up.stderr),
        l.a.log(),
        l.b.log()
    );
    let one_child = (plane_sizes(&l.a.status()), plane_sizes(&l.b.status()));
    run(&[
        "ip", "netns", "exec", &l.a.ns, "ping", "-q", "-c", "300", "-i", "0.01", "-W", "1", "-I",
        V4.a_inner, V4.b_inner,
    ]);
    let counts = run(&[
        "ip",
        "netns",
        "exec",
        &nr,
        "nft",
        "list",
        "table",
        "ip",
        "lossy_ike",
    ]);
    let counts = String::from_utf8_lossy(&counts.stdout).to_string();
    ns_sh(&nr, &["nft", "delete", "table", "ip", "lossy_ike"]);
    let (sa, sb) = wait_mirrored(&l, "the NAT stopped losing IKE messages");
    assert_eq!(sb["ike_sas"][0]["nat"], true, "{sb}");
    assert_eq!(
        (plane_sizes(&sa), plane_sizes(&sb)),
        one_child,
        "the data planes hold more (or less) than one CHILD_SA needs: A: {sa}\nB: {sb}"
    );
    let packets = |chain: &str| -> u64 {
        counts
            .split("chain ")
            .find(|c| c.starts_with(chain))
            .map(|c| {
                c.split("packets ")
                    .skip(1)
                    .filter_map(|x| x.split(' ').next()?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0)
    };
    let (lost, repeated) = (packets("lose"), packets("repeat"));
    assert!(
        lost > 0 && repeated > 0,
        "the NAT was not lossy enough to test anything:\n{counts}"
    );
    assert!(
        ping(&l.a.ns, V4.a_inner, V4.b_inner, 3),
        "no traffic on the settled SAs: A: {sa}\nB: {sb}"
    );
    assert_psk_hidden(&l);
    println!(
        "lossy NAT: {lost} IKE messages lost, {repeated} repeated; IKE stats A {}, B {}; settled on {:?}",
        sa["ike_stats"], sb["ike_stats"],
        child_spis(&sa)
    );
}
