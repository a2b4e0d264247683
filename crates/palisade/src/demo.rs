//! `palisade demo`: two hosts in two network namespaces, two real `palisade
//! daemon`s that set up an AES-256-GCM ESP tunnel with IKEv2 (pre-shared key,
//! X25519) when asked with `palisade up` (or, with `--manual`, from manually
//! keyed SAs), real traffic through it (ping and a TCP transfer), a capture
//! of the wire that shows only IKE and ESP crossed it, and a summary.
//! Everything it creates is removed at the end, on failure and on Ctrl-C.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NS_A: &str = "palisade-demo-a";
const NS_B: &str = "palisade-demo-b";
const TCP_BYTES: usize = 32 << 20;
/// Bytes that appear in every payload the demo sends; the capture must never
/// contain them.
const MARKER: &[u8] = b"PALISADE-CLEARTEXT-MARKER";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Everything the demo made, undone on drop (normal end, error, or Ctrl-C).
struct Lab {
    dir: PathBuf,
    daemons: Vec<Child>,
    namespaces: Vec<&'static str>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            // SIGTERM: the daemon removes its TUN, routes and socket itself.
            // SAFETY: kill(2) on the pid of a child we spawned and still own.
            unsafe { libc::kill(d.id() as libc::pid_t, libc::SIGTERM) };
        }
        for d in &mut self.daemons {
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = d.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn step(msg: &str) {
    println!("==> {msg}");
}

fn sh(cmd: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", cmd[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn check_interrupted() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Why the demo cannot run here, in words that say what to do.
fn preflight() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "the demo creates network namespaces and TUN devices: run it as root (sudo)".into(),
        );
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun is missing: load the tun module (`modprobe tun`)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Err("`ip` (iproute2) is not installed: apt-get install iproute2".into());
    }
    Ok(())
}

fn random_hex(n: usize) -> Result<String, String> {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// How the demo's SAs are keyed.
enum Keying {
    /// IKEv2 with this pre-shared key (hex).
    Ike { psk: String },
    /// Manual SAs with these AES-256-GCM keys (hex, A->B and B->A).
    Manual { key_ab: String, key_ba: String },
}

fn write_config(dir: &Path, side: char, keying: &Keying) -> Result<PathBuf, String> {
    let (key_ab, key_ba) = match keying {
        Keying::Manual { key_ab, key_ba } => (key_ab.as_str(), key_ba.as_str()),
        Keying::Ike { .. } => ("", ""),
    };
    let (me, peer, lnet, rnet, spi_in, spi_out, key_in, key_out) = if side == 'a' {
        (
            "192.0.2.1",
            "192.0.2.2",
            "10.1.0.0/16",
            "10.2.0.0/16",
            "0x2000",
            "0x1000",
            key_ba,
            key_ab,
        )
    } else {
        (
            "192.0.2.2",
            "192.0.2.1",
            "10.2.0.0/16",
            "10.1.0.0/16",
            "0x1000",
            "0x2000",
            key_ab,
            key_ba,
        )
    };
    let daemon = format!(
        "[daemon]\ncontrol_socket = \"{sock}\"\nlog_level = \"info\"\ntun_name = \"pal-demo\"\ntun_mtu = 1400\n\n",
        sock = dir.join(format!("{side}.sock")).display(),
    );
    let text = match keying {
        Keying::Manual { .. } => format!(
            "# Generated by `palisade demo --manual` (fresh random keys each run).\n{daemon}\
             [[manual]]\nname = \"demo\"\nmode = \"tunnel\"\nlocal_addr = \"{me}\"\nremote_addr = \"{peer}\"\n\
             encapsulation = \"esp\"\nspi_in = \"{spi_in}\"\nspi_out = \"{spi_out}\"\nesp_proposal = \"aes256gcm16\"\n\
             enc_key_in = \"0x{key_in}\"\nenc_key_out = \"0x{key_out}\"\n\
             local_ts = [\"{lnet}\"]\nremote_ts = [\"{rnet}\"]\nreplay_window = 1024\n"
        ),
        Keying::Ike { psk } => {
            let (me_id, peer_id) = if side == 'a' {
                ("a.demo.test", "b.demo.test")
            } else {
                ("b.demo.test", "a.demo.test")
            };
            format!(
                "# Generated by `palisade demo` (a fresh random pre-shared key each run).\n{daemon}\
                 [[connection]]\nname = \"demo\"\nlocal_addrs = [\"{me}\"]\nremote_addrs = [\"{peer}\"]\n\
                 local_id = \"{me_id}\"\nremote_id = \"{peer_id}\"\nauth = \"psk\"\npsk = \"0x{psk}\"\n\
                 ike_proposals = [\"aes256gcm16-prfsha256-x25519\"]\ndpd_delay = \"30s\"\n\n\
                 [[connection.child]]\nname = \"lan\"\nlocal_ts = [\"{lnet}\"]\nremote_ts = [\"{rnet}\"]\n\
                 esp_proposals = [\"aes256gcm16\"]\nreplay_window = 1024\n"
            )
        }
    };
    let path = dir.join(format!("{side}.toml"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode_0600()
        .open(&path)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// Run `f` on a thread inside namespace `ns` (sockets it opens stay there).
fn in_ns<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> Result<R, String> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || -> Result<R, String> {
        let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        // SAFETY: setns on a namespace fd we just opened; affects this thread only.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
        }
        Ok(f())
    })
    .join()
    .map_err(|_| "a demo thread panicked".to_string())?
}

/// What crossed the veth, as seen by a packet socket on B's side.
#[derive(Default, Debug)]
struct WireStats {
    frames: u64,
    esp: u64,
    /// IKE messages (UDP 500, or 4500 with the non-ESP marker).
    ike: u64,
    arp: u64,
    /// ICMP errors a kernel sent about an ESP packet (they quote its header
    /// and the first bytes of ciphertext, never cleartext).
    icmp_about_esp: u64,
    other_ip: u64,
    marker_seen: u64,
    /// Ethertype and IP protocol of the first few non-ESP, non-ARP frames.
    others: Vec<String>,
}

fn capture(stop: Arc<AtomicBool>) -> Result<WireStats, String> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        )
    };
    if fd < 0 {
        return Err(format!(
            "packet socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: setting a timeval option on our socket.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let ifindex = {
        let name = std::ffi::CString::new("veth-b").map_err(|e| e.to_string())?;
        // SAFETY: valid NUL-terminated name.
        unsafe { libc::if_nametoindex(name.as_ptr()) }
    };
    let mut stats = WireStats::default();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        // SAFETY: buf is writable for its length; sockaddr_ll filled by the kernel.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
                &mut sll as *mut _ as *mut libc::sockaddr,
                &mut len,
            )
        };
        if n <= 14 || sll.sll_ifindex as u32 != ifindex {
            continue;
        }
        let frame = &buf[..n as usize];
        stats.frames += 1;
        if frame.windows(MARKER.len()).any(|w| w == MARKER) {
            stats.marker_seen += 1;
        }
        match (
            u16::from_be_bytes([frame[12], frame[13]]),
            frame.get(14 + 9),
        ) {
            (0x0806, _) => stats.arp += 1,
            (0x0800, Some(50)) => stats.esp += 1,
            (0x0800, Some(17)) if is_ike(&frame[14..]) => stats.ike += 1,
            (0x0800, Some(1)) if icmp_error_quoting_esp(&frame[14..]) => stats.icmp_about_esp += 1,
            (ethertype, proto) => {
                stats.other_ip += 1;
                if stats.others.len() < 5 {
                    let ip = &frame[14..];
                    let desc = if ethertype == 0x0800 && ip.len() >= 24 {
                        let ihl = usize::from(ip[0] & 15) * 4;
                        format!(
                            "IPv4 {}.{}.{}.{} -> {}.{}.{}.{} protocol {} (first bytes of payload: {:02x?})",
                            ip[12], ip[13], ip[14], ip[15], ip[16], ip[17], ip[18], ip[19], ip[9],
                            &ip[ihl.min(ip.len())..(ihl + 44).min(ip.len())]
                        )
                    } else {
                        format!(
                            "ethertype {ethertype:#06x}, protocol {}",
                            proto.copied().unwrap_or(0)
                        )
                    };
                    stats.others.push(desc);
                }
            }
        }
    }
    // SAFETY: closing the socket we opened.
    unsafe { libc::close(fd) };
    Ok(stats)
}

/// An IPv4 UDP datagram between the IKE ports.
fn is_ike(ip: &[u8]) -> bool {
    let ihl = usize::from(ip.first().copied().unwrap_or(0) & 15) * 4;
    let port = |at: usize| ip.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    match (port(ihl), port(ihl + 2)) {
        (Some(500), Some(500)) => true,
        // On 4500, IKE starts with the four-byte non-ESP marker (zero).
        (Some(4500), Some(4500)) => ip.get(ihl + 8..ihl + 12) == Some(&[0, 0, 0, 0][..]),
        _ => false,
    }
}

/// An IPv4 ICMP destination-unreachable / time-exceeded / parameter-problem
/// message whose quoted packet is ESP.
fn icmp_error_quoting_esp(ip: &[u8]) -> bool {
    let ihl = usize::from(ip.first().copied().unwrap_or(0) & 15) * 4;
    matches!(
        (ip.get(ihl), ip.get(ihl + 8 + 9)),
        (Some(3 | 11 | 12), Some(50))
    )
}

fn status(exe: &Path, sock: &Path) -> String {
    Command::new(exe)
        .args(["--socket"])
        .arg(sock)
        .args(["status"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn wait_for(path: &Path, what: &str, daemon: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        check_interrupted()?;
        if let Ok(Some(st)) = daemon.try_wait() {
            return Err(format!(
                "{what} exited ({st}) before it was ready; see its log above"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{what} did not open its control socket within 10 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Run the demo; `manual` keys the SAs by hand instead of with IKEv2.
pub fn run(manual: bool) -> ExitCode {
    if let Err(e) = preflight() {
        eprintln!("palisade demo: {e}");
        return ExitCode::from(2);
    }
    // SAFETY: installing an async-signal-safe handler that only stores a flag.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let dir = std::env::temp_dir().join(format!("palisade-demo-{}", std::process::id()));
    let mut lab = Lab {
        dir: dir.clone(),
        daemons: Vec::new(),
        namespaces: Vec::new(),
    };
    match demo(&mut lab, manual) {
        Ok(()) => {
            step("cleaning up (daemons stopped, namespaces removed)");
            drop(lab);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade demo: {e}");
            drop(lab);
            eprintln!("palisade demo: everything it created has been removed");
            ExitCode::FAILURE
        }
    }
}

fn demo(lab: &mut Lab, manual: bool) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;
    std::fs::create_dir_all(&lab.dir).map_err(|e| format!("{}: {e}", lab.dir.display()))?;

    step("creating two hosts: namespaces palisade-demo-a (192.0.2.1, LAN 10.1.0.0/16) and palisade-demo-b (192.0.2.2, LAN 10.2.0.0/16)");
    for ns in [NS_A, NS_B] {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
        sh(&["ip", "netns", "add", ns])?;
        lab.namespaces.push(ns);
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    }
    sh(&[
        "ip", "-n", NS_A, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b",
        "netns", NS_B,
    ])?;
    sh(&[
        "ip",
        "-n",
        NS_A,
        "addr",
        "add",
        "192.0.2.1/24",
        "dev",
        "veth-a",
    ])?;
    sh(&[
        "ip",
        "-n",
        NS_B,
        "addr",
        "add",
        "192.0.2.2/24",
        "dev",
        "veth-b",
    ])?;
    sh(&["ip", "-n", NS_A, "addr", "add", "10.1.0.1/32", "dev", "lo"])?;
    sh(&["ip", "-n", NS_B, "addr", "add", "10.2.0.1/32", "dev", "lo"])?;
    // IPv6 is not part of this demo; without it the wire carries nothing but
    // the tunnel and ARP (no router solicitations or MLD reports).
    for (ns, dev) in [(NS_A, "veth-a"), (NS_B, "veth-b")] {
        sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            &format!("echo 1 > /proc/sys/net/ipv6/conf/{dev}/disable_ipv6"),
        ])?;
    }
    sh(&["ip", "-n", NS_A, "link", "set", "veth-a", "up"])?;
    sh(&["ip", "-n", NS_B, "link", "set", "veth-b", "up"])?;
    check_interrupted()?;

    let keying = if manual {
        step("generating fresh AES-256-GCM keys (32-byte key + 4-byte salt per direction) and two configs with manual SAs");
        Keying::Manual {
            key_ab: random_hex(36)?,
            key_ba: random_hex(36)?,
        }
    } else {
        step("generating a fresh 32-byte pre-shared key and two configs with an IKEv2 connection");
        Keying::Ike {
            psk: random_hex(32)?,
        }
    };
    let cfg_a = write_config(&lab.dir, 'a', &keying)?;
    let cfg_b = write_config(&lab.dir, 'b', &keying)?;

    step("starting `palisade daemon` in each namespace");
    for (ns, cfg, side) in [(NS_A, &cfg_a, 'a'), (NS_B, &cfg_b, 'b')] {
        let log = std::fs::File::create(lab.dir.join(format!("{side}.log")))
            .map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&exe)
            .arg("daemon")
            .arg("--config")
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the daemon: {e}"))?;
        lab.daemons.push(child);
    }
    for (i, side) in ['a', 'b'].iter().enumerate() {
        let sock = lab.dir.join(format!("{side}.sock"));
        let what = format!("the daemon in {}", if *side == 'a' { NS_A } else { NS_B });
        if let Err(e) = wait_for(&sock, &what, &mut lab.daemons[i]) {
            let log =
                std::fs::read_to_string(lab.dir.join(format!("{side}.log"))).unwrap_or_default();
            return Err(format!("{e}\n--- its log ---\n{log}"));
        }
    }
    step("capturing everything that crosses the wire (veth-b)");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let cap = std::thread::spawn(move || in_ns(NS_B, move || capture(stop2)));
    std::thread::sleep(Duration::from_millis(200));
    if manual {
        // Routes are installed just after the socket opens.
        std::thread::sleep(Duration::from_millis(300));
    } else {
        step("palisade up demo (in palisade-demo-a): IKE_SA_INIT + IKE_AUTH, PSK, X25519, AES-256-GCM");
        let t0 = Instant::now();
        let out = Command::new(&exe)
            .arg("--socket")
            .arg(lab.dir.join("a.sock"))
            .args(["up", "demo"])
            .output()
            .map_err(|e| format!("cannot run `palisade up`: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(lab.dir.join("a.log")).unwrap_or_default();
            return Err(format!(
                "`palisade up demo` failed: {}\n--- the daemon's log ---\n{log}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        println!(
            "    {} ({:.1} ms, including starting the CLI)",
            String::from_utf8_lossy(&out.stdout).trim(),
            t0.elapsed().as_secs_f64() * 1e3
        );
    }

    step("ping 10.1.0.1 -> 10.2.0.1 through the tunnel");
    let have_ping = Command::new("ping").arg("-V").output().is_ok();
    let ping = if !have_ping {
        Err(std::io::Error::from(std::io::ErrorKind::NotFound))
    } else {
        Command::new("ip")
            .args([
                "netns", "exec", NS_A, "ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", "10.1.0.1",
                "-p",
            ])
            .arg(
                MARKER[..16]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            )
            .arg("10.2.0.1")
            .output()
    };
    let ping_summary = match ping {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines()
                .filter(|l| l.contains("packets transmitted") || l.contains("rtt"))
                .collect::<Vec<_>>()
                .join("\n    ")
        }
        Ok(o) => {
            return Err(format!(
                "ping through the tunnel failed:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ))
        }
        Err(_) => "ping is not installed (apt-get install iputils-ping); skipped".into(),
    };
    println!("    {ping_summary}");
    check_interrupted()?;

    step(&format!(
        "TCP transfer of {} MiB 10.1.0.1 -> 10.2.0.1:5001 through the tunnel",
        TCP_BYTES >> 20
    ));
    let listener =
        in_ns(NS_B, || TcpListener::bind("10.2.0.1:5001"))?.map_err(|e| format!("listen: {e}"))?;
    let server = std::thread::spawn(move || -> std::io::Result<usize> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    });
    let started = Instant::now();
    let sent = in_ns(NS_A, || -> std::io::Result<usize> {
        let mut s = TcpStream::connect_timeout(
            &"10.2.0.1:5001".parse().expect("literal address"),
            Duration::from_secs(5),
        )?;
        s.set_write_timeout(Some(Duration::from_secs(20)))?;
        let mut chunk = vec![0u8; 1 << 16];
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = MARKER[i % MARKER.len()];
        }
        let mut sent = 0;
        while sent < TCP_BYTES {
            s.write_all(&chunk)?;
            sent += chunk.len();
        }
        Ok(sent)
    })?
    .map_err(|e| format!("TCP transfer through the tunnel failed: {e}"))?;
    let received = server
        .join()
        .map_err(|_| "TCP server thread panicked")?
        .map_err(|e| format!("TCP server: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    if received != sent {
        return Err(format!(
            "TCP transfer: sent {sent} bytes, received {received}"
        ));
    }
    println!(
        "    {} MiB in {:.2} s = {:.0} Mbit/s",
        sent >> 20,
        secs,
        sent as f64 * 8.0 / secs / 1e6
    );

    stop.store(true, Ordering::SeqCst);
    let wire = cap.join().map_err(|_| "capture thread panicked")??;
    let wire = wire?;

    step("what crossed the wire");
    println!(
        "    {} frames: {} ESP, {} IKE, {} ARP, {} other IP; cleartext marker seen in {} frames",
        wire.frames, wire.esp, wire.ike, wire.arp, wire.other_ip, wire.marker_seen
    );
    if wire.icmp_about_esp > 0 {
        println!(
            "    ({} ICMP errors from a kernel about ESP packets it could not hand to palisade's raw socket; \
             they quote only the ESP header and ciphertext)",
            wire.icmp_about_esp
        );
    }
    step("status of the daemon in palisade-demo-a");
    for line in status(&exe, &lab.dir.join("a.sock")).lines() {
        println!("    {line}");
    }
    for other in &wire.others {
        println!("    other frame: {other}");
    }
    if wire.marker_seen > 0 || wire.other_ip > 0 || wire.esp == 0 {
        return Err("the wire carried something other than ESP; the tunnel leaked".into());
    }
    step(if manual {
        "only ESP crossed the wire: the tunnel works"
    } else {
        "only IKE and ESP crossed the wire: the tunnel works"
    });
    Ok(())
}
