//! Run the IKEv2 engine over real UDP sockets (ports 500 and 4500) against
//! another implementation and print the negotiated CHILD_SA.
//!
//! ```text
//! ike_interop --role initiator|responder --local 192.0.2.1 [--remote 192.0.2.2]
//!             --local-id alice.sw.test [--remote-id bob.sw.test] --psk SECRET
//!             --local-ts 10.200.1.0/24 --remote-ts 10.200.2.0/24
//!             [--ike aes256gcm16-prfsha256-x25519] [--esp aes256gcm16]
//!             [--timeout SECONDS] [--linger SECONDS]
//!             [--rekey SECONDS] [--ike-rekey SECONDS] [--dpd SECONDS]
//!             [--retransmit MILLISECONDS] [--retransmit-tries N]
//!             [--key-digests] [--stay]
//! ```
//!
//! Exit code 0 once a CHILD_SA is installed (after `--linger` seconds, so that
//! retransmitted requests still get answers); 1 on failure or timeout.
//! With `--stay` it keeps running after that and exits 0 when no IKE SA is
//! left (deleted by either side, dead peer) or on `quit`; still 1 if the
//! IKE SA fails before any CHILD_SA or `--timeout` passes.
//!
//! Commands on stdin, one a line, act on the newest IKE SA / CHILD_SA:
//! `delete-child`, `delete-ike`, `rekey-child`, `rekey-ike`, `quit`.
//! Each is echoed as `command: ...` with its result, so a test driving it
//! through a FIFO sees when it was done.
//! Keys are not printed; their lengths are, and with `--key-digests` the
//! first 8 bytes of each key's SHA-256, so a test can compare them with the
//! peer's key log without the keys leaving the process.

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use palisade_crypto::proposal;
use palisade_ike::*;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A numeric option: absent is `None`, unparsable is an error naming it.
fn num(args: &[String], name: &str) -> Result<Option<u64>, String> {
    match arg(args, name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} {v}: expected a whole number")),
    }
}

/// Lines from stdin, read on their own thread so the event loop never blocks.
fn stdin_commands() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim().to_string()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Carry out one stdin command on the IKE SA that holds the newest CHILD_SA
/// (`last_child`, an inbound SPI; it moves to the new IKE SA on an IKE
/// rekey), or any established one. `Ok(true)` means quit.
fn command(
    ep: &mut Endpoint,
    now: Instant,
    last_child: Option<u32>,
    cmd: &str,
) -> Result<bool, String> {
    let established: Vec<IkeSaId> = ep
        .ike_sas()
        .into_iter()
        .filter(|id| ep.is_established(*id))
        .collect();
    let holder = established.iter().copied().find(|id| {
        ep.child_sas(*id)
            .iter()
            .any(|c| Some(c.inbound_spi) == last_child)
    });
    let ike = holder.or(established.first().copied());
    let child = |ike: IkeSaId| {
        let children = ep.child_sas(ike);
        children
            .iter()
            .find(|c| Some(c.inbound_spi) == last_child)
            .or(children.last())
            .map(|c| c.inbound_spi)
            .ok_or(format!("IKE SA {ike} has no CHILD_SA"))
    };
    let no_ike = || "no established IKE SA".to_string();
    let r = match cmd {
        "" => Ok(()),
        "quit" => return Ok(true),
        "delete-ike" => ep.delete_ike_sa(now, ike.ok_or_else(no_ike)?),
        "rekey-ike" => ep.rekey_ike_sa(now, ike.ok_or_else(no_ike)?),
        "delete-child" => {
            let ike = ike.ok_or_else(no_ike)?;
            ep.delete_child_sa(now, ike, child(ike)?)
        }
        "rekey-child" => {
            let ike = ike.ok_or_else(no_ike)?;
            ep.rekey_child_sa(now, ike, child(ike)?)
        }
        other => {
            return Err(format!(
                "unknown command {other:?} (delete-child, delete-ike, rekey-child, rekey-ike, quit)"
            ))
        }
    };
    r.map(|()| false).map_err(|e| e.to_string())
}

fn identity(s: &str) -> Identity {
    match s.parse::<IpAddr>() {
        Ok(a) => Identity::addr(a),
        Err(_) if s.contains('@') => Identity::Rfc822(s.to_string()),
        Err(_) => Identity::Fqdn(s.to_string()),
    }
}

fn cidr(s: &str) -> Result<TrafficSelector, String> {
    let (a, len) = s.split_once('/').unwrap_or((s, ""));
    let addr: IpAddr = a.parse().map_err(|e| format!("{s}: {e}"))?;
    let addresses = match addr {
        IpAddr::V4(v) => {
            let len: u32 = if len.is_empty() {
                32
            } else {
                len.parse().map_err(|_| format!("{s}: prefix"))?
            };
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len.min(32))
            };
            let start = u32::from(v) & mask;
            AddressRange::V4 {
                start: Ipv4Addr::from(start),
                end: Ipv4Addr::from(start | !mask),
            }
        }
        IpAddr::V6(v) => {
            let len: u32 = if len.is_empty() {
                128
            } else {
                len.parse().map_err(|_| format!("{s}: prefix"))?
            };
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len.min(128))
            };
            let start = u128::from(v) & mask;
            AddressRange::V6 {
                start: Ipv6Addr::from(start),
                end: Ipv6Addr::from(start | !mask),
            }
        }
    };
    Ok(TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        addresses,
    })
}

fn ike_proposal(s: &str) -> Result<IkeProposal, String> {
    let p = proposal::parse_one(proposal::Protocol::Ike, s).map_err(|e| e.to_string())?;
    Ok(IkeProposal::from_parsed(&p))
}

fn esp_proposal(s: &str) -> Result<EspProposal, String> {
    let p = proposal::parse_one(proposal::Protocol::Esp, s).map_err(|e| e.to_string())?;
    Ok(EspProposal::from_parsed(&p))
}

fn digest(k: &palisade_crypto::Secret) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, k.as_bytes());
    hex(&d.as_ref()[..8])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let need = |n: &str| arg(&args, n).ok_or(format!("missing {n}"));
    let role = need("--role")?;
    let initiator = match role.as_str() {
        "initiator" => true,
        "responder" => false,
        r => return Err(format!("--role {r}: initiator or responder")),
    };
    let local_ip: IpAddr = need("--local")?
        .parse()
        .map_err(|e| format!("--local: {e}"))?;
    let remote_ip: Option<IpAddr> = match arg(&args, "--remote") {
        Some(r) => Some(r.parse().map_err(|e| format!("--remote: {e}"))?),
        None => None,
    };
    let timeout = Duration::from_secs(num(&args, "--timeout")?.unwrap_or(30));
    let linger = Duration::from_secs(num(&args, "--linger")?.unwrap_or(3));
    let stay = args.iter().any(|a| a == "--stay");

    let mut conn = Connection::psk(
        "interop",
        identity(&need("--local-id")?),
        arg(&args, "--remote-id").map(|r| identity(&r)),
        need("--psk")?.as_bytes(),
    );
    conn.local_addr = Some(SocketAddr::new(local_ip, 500));
    conn.remote_addr = remote_ip.map(|r| SocketAddr::new(r, 500));
    conn.ike_proposals = vec![ike_proposal(
        &arg(&args, "--ike").unwrap_or("aes256gcm16-prfsha256-x25519".into()),
    )?];
    let mut child = ChildConfig::tunnel(
        "interop",
        cidr(&need("--local-ts")?)?,
        cidr(&need("--remote-ts")?)?,
    );
    child.esp_proposals = vec![esp_proposal(
        &arg(&args, "--esp").unwrap_or("aes256gcm16".into()),
    )?];
    let secs = |n: &str| num(&args, n).map(|v| v.map(Duration::from_secs));
    child.rekey_time = secs("--rekey")?;
    conn.ike_rekey_time = secs("--ike-rekey")?;
    conn.dpd_delay = secs("--dpd")?;
    conn.children.push(child);
    let mut config = Config {
        connections: vec![conn],
        ..Config::default()
    };
    if let Some(ms) = num(&args, "--retransmit")? {
        config.retransmit.initial = Duration::from_millis(ms.max(1));
    }
    if let Some(n) = num(&args, "--retransmit-tries")? {
        config.retransmit.tries =
            u32::try_from(n.max(1)).map_err(|_| format!("--retransmit-tries {n}: too large"))?;
    }

    let s500 = UdpSocket::bind(SocketAddr::new(local_ip, 500))
        .map_err(|e| format!("bind {local_ip}:500: {e}"))?;
    let s4500 = UdpSocket::bind(SocketAddr::new(local_ip, 4500))
        .map_err(|e| format!("bind {local_ip}:4500: {e}"))?;
    for s in [&s500, &s4500] {
        s.set_read_timeout(Some(Duration::from_millis(10)))
            .map_err(|e| e.to_string())?;
    }
    let mut ep = Endpoint::new(config, SystemRng);
    let start = Instant::now();
    if initiator {
        ep.initiate(start, "interop").map_err(|e| e.to_string())?;
    }
    println!("listening on {local_ip} ports 500 and 4500");
    let commands = stdin_commands();
    let mut done_at: Option<Instant> = None;
    let mut last_child: Option<u32> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        while let Some(t) = ep.poll_transmit() {
            let sock = if t.local.port() == 4500 {
                &s4500
            } else {
                &s500
            };
            sock.send_to(&t.bytes, t.remote)
                .map_err(|e| format!("send to {}: {e}", t.remote))?;
        }
        while let Some(ev) = ep.poll_event() {
            match ev {
                Event::IkeSaUp { ike_sa, initiator, local, remote, spi_i, spi_r, remote_id, nat_detected, .. } => println!(
                    "IKE_SA up: {ike_sa} {} {local} <-> {remote} SPIi {} SPIr {} peer {} nat {nat_detected}",
                    if initiator { "initiator" } else { "responder" },
                    hex(&spi_i),
                    hex(&spi_r),
                    remote_id.map_or("?".into(), |r| r.to_string())
                ),
                Event::ChildSaInstalled(c) => {
                    println!(
                        "CHILD_SA installed: {} in {:08x} out {:08x} encr {:?} integ {:?} esn {} mode {:?} encap {} pfs {:?} keys in {}+{} out {}+{} bytes, via {} <-> {}, TS {} === {}",
                        c.name,
                        c.inbound_spi,
                        c.outbound_spi,
                        c.encr,
                        c.integ,
                        c.esn,
                        c.mode,
                        c.encap,
                        c.pfs_group,
                        c.inbound_encr_key.len(),
                        c.inbound_integ_key.len(),
                        c.outbound_encr_key.len(),
                        c.outbound_integ_key.len(),
                        c.local,
                        c.remote,
                        ts_display(&c.local_ts),
                        ts_display(&c.remote_ts)
                    );
                    if args.iter().any(|a| a == "--key-digests") {
                        println!(
                            "key digests: {:08x} out-encr {} out-integ {} in-encr {} in-integ {}",
                            c.inbound_spi,
                            digest(&c.outbound_encr_key),
                            digest(&c.outbound_integ_key),
                            digest(&c.inbound_encr_key),
                            digest(&c.inbound_integ_key)
                        );
                    }
                    last_child = Some(c.inbound_spi);
                    done_at.get_or_insert(now + linger);
                }
                Event::IkeSaDown { reason, .. } => {
                    println!("IKE_SA down: {reason:?}");
                    if done_at.is_none() {
                        return Err(format!("IKE SA failed: {reason:?}"));
                    }
                }
                other => println!("{other:?}"),
            }
        }
        while let Ok(cmd) = commands.try_recv() {
            match command(&mut ep, now, last_child, &cmd) {
                Ok(true) => {
                    println!("command: quit; stats: {:?}", ep.stats());
                    return Ok(());
                }
                Ok(false) => println!("command: {cmd}: ok"),
                Err(e) => println!("command: {cmd}: failed: {e}"),
            }
        }
        if stay {
            if done_at.is_some() && ep.ike_sa_count() == 0 {
                println!("no IKE SA left; stats: {:?}", ep.stats());
                return Ok(());
            }
        } else if done_at.is_some_and(|d| now >= d) {
            println!("stats: {:?}", ep.stats());
            return Ok(());
        }
        if now - start > timeout {
            return Err(format!("timeout after {timeout:?}; stats {:?}", ep.stats()));
        }
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now);
        }
        for (sock, port) in [(&s500, 500u16), (&s4500, 4500u16)] {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                ep.handle_datagram(
                    Instant::now(),
                    SocketAddr::new(local_ip, port),
                    from,
                    &buf[..n],
                );
            }
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ike_interop: {e}");
            ExitCode::FAILURE
        }
    }
}
