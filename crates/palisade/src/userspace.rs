//! The userspace data plane behind the daemon's [`Dataplane`] seam: one TUN
//! device, raw ESP/AH and ESP-in-UDP sockets, and a worker thread running the
//! palisade-dataplane [`Plane`](palisade_dataplane::plane::Plane). Manual SAs
//! from the config become SA pairs, outbound policies and routes; reload
//! replaces only the manual SAs that changed, so untouched SAs keep their
//! sequence numbers, replay windows and counters.

use crate::config::{Config, ConfigDiff, Encapsulation, ManualSa, Mode};
use crate::control::dataplane::{manual_policies, manual_sa_status, Dataplane};
use crate::control::protocol::{IkeSaStatus, PolicyStatus, SaStatus};
use crate::ike::convert::{self, Loaded};
use crate::ike::{open_ike_socket, IkeService, IkeSockets, NATT_PORT};
use crate::mtu::{SharedMtu, TunMtu};
use palisade_dataplane::manual::{self, DirKeys, Installed, ManualSpec, Wire};
use palisade_dataplane::netcfg::NetConfig;
use palisade_dataplane::plane::Plane;
use palisade_dataplane::worker::{Command, Handle, Worker};
use palisade_dataplane::Tun;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Per manual SA: what was installed in the plane and the routes made for it.
struct Entry {
    installed: Installed,
    net: NetConfig,
}

struct Running {
    handle: Handle,
    /// The IKE thread, when the config has connections.
    ike: Option<IkeService>,
    thread: Option<JoinHandle<std::io::Result<Worker>>>,
    tun_name: String,
    entries: HashMap<String, Entry>,
    /// The TUN MTU, lowered by the installed SAs (manual and negotiated).
    mtu: SharedMtu,
    /// The raw and UDP sockets opened at start for IKE (ESP and port 4500 on
    /// each IKE address): kept while the IKE thread runs, which sends from
    /// clones of the UDP ones. Every other socket is closed when no manual
    /// SA needs it any more.
    ike_needs: (Vec<(IpAddr, u8)>, Vec<SocketAddr>),
    /// Whether the TUN runs with TCP segmentation offload.
    offload: bool,
    /// Host-wide changes (the TUN's link settings need no undo; it goes away
    /// with its descriptor).
    _net: NetConfig,
}

/// The daemon's real data plane.
#[derive(Default)]
pub struct Userspace {
    running: Mutex<Option<Running>>,
    /// The manual SAs of the config in force, for status rows.
    manual: Mutex<Vec<ManualSa>>,
}

/// Packets, bytes and drops by reason of one SA in the plane.
pub(crate) type SaCounts = (u64, u64, BTreeMap<String, u64>);

/// Every SA in `plane` by (its plane name, "<name> in" or "<name> out", and
/// "esp" or "ah": the two SAs of a direction of an AH+ESP bundle share the
/// name).
pub(crate) fn plane_counts(plane: &Plane) -> HashMap<(String, String), SaCounts> {
    plane
        .sad
        .iter()
        .map(|(_, e)| {
            let proto = match e.sa.protocol() {
                palisade_sa::sa::Protocol::Esp => "esp",
                palisade_sa::sa::Protocol::Ah => "ah",
            };
            let c = e.sa.counters();
            let drops = c
                .drops
                .iter()
                .map(|(r, n)| (r.name().to_string(), n))
                .collect();
            let (p, b) = if e.name.ends_with(" in") {
                (c.packets_in, c.bytes_in)
            } else {
                (c.packets_out, c.bytes_out)
            };
            ((e.name.clone(), proto.to_string()), (p, b, drops))
        })
        .collect()
}

fn no_ike(name: &str) -> String {
    format!("no connection `{name}`: the config has no [[connection]], so IKE is not running")
}

/// Every `[[connection]]` in the engine's form, or why it cannot run.
fn load_connections(config: &Config) -> Vec<(String, Result<Loaded, String>)> {
    config
        .connections
        .iter()
        .map(|c| (c.name.clone(), convert::connection(c)))
        .collect()
}

/// The local addresses IKE needs sockets on: each connection's own, or the
/// wildcard of the peer's family (both when the peer is `%any`). A wildcard
/// replaces the specific addresses of its family, which it covers.
fn ike_local_addrs(conns: &[(String, Result<Loaded, String>)]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut push = |a: IpAddr| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for (_, c) in conns {
        let Ok(l) = c else { continue };
        match (l.engine.local_addr, l.engine.remote_addr) {
            (Some(a), _) => push(a.ip()),
            (None, Some(r)) if r.is_ipv6() => push(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            (None, Some(_)) => push(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            (None, None) => {
                push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
            }
        }
    }
    let wild4 = out.contains(&IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let wild6 = out.contains(&IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    out.retain(|a| a.is_unspecified() || !(if a.is_ipv4() { wild4 } else { wild6 }));
    out
}

/// The IKE port for local address `a` (500 unless a connection there says
/// otherwise).
fn ike_port(conns: &[(String, Result<Loaded, String>)], a: IpAddr) -> u16 {
    conns
        .iter()
        .filter_map(|(_, c)| c.as_ref().ok())
        .filter_map(|l| l.engine.local_addr)
        .find(|l| l.ip() == a)
        .map_or(crate::ike::IKE_PORT, |l| l.port())
}

impl Userspace {
    fn ike_handle(&self) -> Option<crate::ike::IkeHandle> {
        let guard = self.running.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref()?.ike.as_ref().map(|i| i.handle().clone())
    }

    fn with_ike<R>(&self, f: impl FnOnce(&crate::ike::IkeHandle) -> R) -> Option<R> {
        self.ike_handle().map(|h| f(&h))
    }

    fn configured(&self) -> Vec<ManualSa> {
        self.manual
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn secret_or_empty(s: &palisade_crypto::Secret) -> Option<palisade_crypto::Secret> {
    (!s.is_empty()).then(|| s.clone())
}

/// Translate a validated config entry into the data plane's neutral form.
pub fn spec_of(m: &ManualSa) -> ManualSpec {
    let wire = match m.encapsulation {
        Encapsulation::Esp => Wire::Esp,
        Encapsulation::EspUdp {
            local_port,
            remote_port,
        } => Wire::EspUdp {
            local_port,
            remote_port,
        },
        Encapsulation::Ah => Wire::Ah,
        Encapsulation::AhEsp => Wire::AhEsp,
    };
    let esp = m.esp.as_ref();
    let ah = m.ah.as_ref();
    let keys = |inbound: bool| DirKeys {
        enc: esp.and_then(|k| {
            secret_or_empty(if inbound {
                &k.enc_key_in
            } else {
                &k.enc_key_out
            })
        }),
        esp_auth: esp.and_then(|k| {
            secret_or_empty(if inbound {
                &k.auth_key_in
            } else {
                &k.auth_key_out
            })
        }),
        ah_auth: ah.and_then(|k| {
            secret_or_empty(if inbound {
                &k.auth_key_in
            } else {
                &k.auth_key_out
            })
        }),
    };
    // AH alone uses the AH SPIs as the pair's SPIs.
    let (spi_in, spi_out) = match (esp, ah) {
        (Some(e), _) => (e.spi_in, e.spi_out),
        (None, Some(a)) => (a.spi_in, a.spi_out),
        (None, None) => (0, 0),
    };
    ManualSpec {
        name: m.name.clone(),
        tunnel: m.mode == Mode::Tunnel,
        local: m.local_addr,
        remote: m.remote_addr,
        wire,
        spi_in,
        spi_out,
        ah_spi_in: ah.map_or(0, |a| a.spi_in),
        ah_spi_out: ah.map_or(0, |a| a.spi_out),
        encr: esp
            .and_then(|k| k.encr.as_ref())
            .map(|t| (t.id, t.key_bits)),
        esp_integ: esp.and_then(|k| k.integ.as_ref()).map(|t| t.id),
        ah_integ: ah.and_then(|k| k.integ.as_ref()).map(|t| t.id),
        keys_in: keys(true),
        keys_out: keys(false),
        local_ts: m.local_ts.iter().map(|s| (s.addr, s.prefix)).collect(),
        remote_ts: m.remote_ts.iter().map(|s| (s.addr, s.prefix)).collect(),
        esn: m.esn,
        replay_window: m.replay_window,
        tfc_pad_to: match m.tfc_padding {
            crate::config::TfcPadding::Bytes(n) => n,
            crate::config::TfcPadding::Off | crate::config::TfcPadding::Mtu => 0,
        },
        // Resolved at install to the TUN MTU the worker's plane was given.
        tfc_pad_to_mtu: m.tfc_padding == crate::config::TfcPadding::Mtu,
        allow_insecure: m.allow_insecure,
        lifetime: Default::default(),
    }
}

/// Install `m` into the running worker's plane and route it.
fn install_one(handle: &Handle, tun: &str, m: &ManualSa, priority: u32) -> Result<Entry, String> {
    let spec = spec_of(m);
    let for_plane = spec.clone();
    let installed = handle
        .query(move |plane: &mut Plane| manual::install(plane, &for_plane, priority))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let mut net = NetConfig::new();
    if let Err(e) = manual::route(&mut net, tun, &spec) {
        let undo = installed.clone();
        let _ = handle.query(move |plane: &mut Plane| manual::uninstall(plane, &undo));
        return Err(format!("manual SA `{}`: {e}", m.name));
    }
    Ok(Entry { installed, net })
}

impl Dataplane for Userspace {
    fn name(&self) -> &'static str {
        "userspace (TUN + raw/UDP sockets)"
    }

    fn requires_tun(&self) -> bool {
        true
    }

    fn start(&self, config: &Config) -> Result<(), String> {
        let tun_name = config.daemon.tun_name.clone();
        // TCP segmentation offload (virtio-net header): the kernel hands over
        // 64 KiB TCP super-packets, cut in user space, and takes coalesced
        // ones back. A kernel that refuses it gets a plain TUN, said once;
        // `tun_offload = false` asks for the plain one.
        let tun = if !config.daemon.tun_offload {
            tracing::info!(
                "TUN `{tun_name}`: offload off (tun_offload = false), one packet per read"
            );
            Tun::open(&tun_name).map_err(|e| e.to_string())?
        } else {
            match Tun::open_offload(&tun_name) {
                Ok(t) => {
                    tracing::info!("TUN `{tun_name}` opened with TCP segmentation offload");
                    t
                }
                Err(e) => {
                    tracing::warn!("TUN `{tun_name}`: offloads refused ({e}); using a plain TUN, one packet per read");
                    Tun::open(&tun_name).map_err(|e| e.to_string())?
                }
            }
        };
        let offload = tun.offload();
        let mut net = NetConfig::new();
        // No IPv6 link-local address on the TUN: it would only send router
        // solicitations into the tunnel, to be dropped as policy misses.
        let _ = std::process::Command::new("ip")
            .args(["link", "set", "dev", &tun_name, "addrgenmode", "none"])
            .status();
        let specs: Vec<ManualSpec> = config.manual.iter().map(spec_of).collect();
        let mut tun_mtu = TunMtu::new(&tun_name, config.daemon.tun_mtu);
        for spec in &specs {
            tun_mtu.add(TunMtu::manual_key(&spec.name), spec);
        }
        let mtu = tun_mtu.wanted();
        tun_mtu.set_current(mtu);
        net.link_up(&tun_name, u32::from(mtu))
            .map_err(|e| e.to_string())?;
        // Decapsulated packets come out of the TUN with the peer's addresses;
        // strict reverse-path filtering would drop them.
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{tun_name}/rp_filter"), "0");
        let conns = load_connections(config);
        let ike_addrs = ike_local_addrs(&conns);
        let (mut raw_needs, mut udp_needs) = manual::socket_needs(&specs);
        let ike_needs: (Vec<(IpAddr, u8)>, Vec<SocketAddr>) = (
            ike_addrs
                .iter()
                .map(|a| (*a, palisade_dataplane::sock::IPPROTO_ESP))
                .collect(),
            ike_addrs
                .iter()
                .map(|a| SocketAddr::new(*a, NATT_PORT))
                .collect(),
        );
        raw_needs.extend(ike_needs.0.iter().copied());
        udp_needs.extend(ike_needs.1.iter().copied());
        let (raw, udp) = manual::open_sockets(&raw_needs, &udp_needs).map_err(|e| e.to_string())?;
        let mut ike_sockets = IkeSockets {
            ike: Vec::new(),
            natt: Vec::new(),
        };
        if !conns.is_empty() {
            for u in udp.iter().filter(|u| u.local.port() == NATT_PORT) {
                ike_sockets.natt.push(u.sock.try_clone().map_err(|e| {
                    format!("cannot share the UDP {} socket with IKE: {e}", u.local)
                })?);
            }
            for a in &ike_addrs {
                let port = ike_port(&conns, *a);
                let at = SocketAddr::new(*a, port);
                ike_sockets.ike.push(open_ike_socket(at).map_err(|e| {
                    format!("cannot open the IKE socket on UDP {at}: {e} (is another IKE daemon, e.g. strongSwan, running?)")
                })?);
            }
        }
        let mut plane = Plane::new();
        plane.nat_keepalive = config.daemon.nat_keepalive;
        plane.inner_mtu = mtu;
        let (mut worker, handle) = Worker::new(plane, tun, raw, udp).map_err(|e| e.to_string())?;
        tun_mtu.set_worker(handle.clone());
        let tun_mtu = Arc::new(Mutex::new(tun_mtu));
        let ike = if conns.is_empty() {
            None
        } else {
            let retransmit = palisade_ike::Retransmit {
                initial: config.daemon.retransmit_timeout,
                max_interval: config.daemon.retransmit_limit,
                tries: config.daemon.retransmit_tries,
            };
            let service = IkeService::start(
                retransmit,
                conns,
                ike_sockets,
                handle.clone(),
                tun_name.clone(),
                tun_mtu.clone(),
            )
            .map_err(|e| format!("cannot start the IKE thread: {e}"))?;
            worker.set_ike_sink(service.handle().datagram_sink());
            worker.set_acquire_sink(service.handle().acquire_sink());
            worker.set_lifetime_sink(service.handle().lifetime_sink());
            Some(service)
        };
        let thread = std::thread::Builder::new()
            .name("palisade-dataplane".into())
            .spawn(move || worker.run())
            .map_err(|e| format!("cannot start the data-plane thread: {e}"))?;
        let mut running = Running {
            handle,
            ike,
            thread: Some(thread),
            tun_name,
            entries: HashMap::new(),
            mtu: tun_mtu,
            ike_needs,
            offload,
            _net: net,
        };
        for (i, m) in config.manual.iter().enumerate() {
            let entry = install_one(&running.handle, &running.tun_name, m, 100 + i as u32)?;
            tracing::info!(sa = %m.name, "manual SA installed ({} {} {} <-> {})", m.mode, m.encapsulation, m.local_addr, m.remote_addr);
            running.entries.insert(m.name.clone(), entry);
        }
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(running);
        *self.manual.lock().unwrap_or_else(|e| e.into_inner()) = config.manual.clone();
        Ok(())
    }

    fn apply(&self, diff: &ConfigDiff, _old: &Config, new: &Config) -> Result<(), String> {
        let mut guard = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let Some(running) = guard.as_mut() else {
            return Err("the data plane is not running".into());
        };
        let gone: Vec<&String> = diff
            .manual
            .removed
            .iter()
            .chain(diff.manual.changed.iter())
            .collect();
        for name in gone {
            if let Some(mut entry) = running.entries.remove(name.as_str()) {
                let installed = entry.installed.clone();
                running
                    .handle
                    .query(move |plane: &mut Plane| manual::uninstall(plane, &installed))
                    .map_err(|e| e.to_string())?;
                entry.net.undo();
                tracing::info!(sa = %name, "manual SA removed");
            }
        }
        let fresh = |m: &&ManualSa| {
            diff.manual.added.contains(&m.name) || diff.manual.changed.contains(&m.name)
        };
        {
            // The MTU first, so that `tfc_padding = "mtu"` pads to the new one.
            let mut mtu = running.mtu.lock().unwrap_or_else(|e| e.into_inner());
            for name in diff.manual.removed.iter().chain(&diff.manual.changed) {
                mtu.remove(&TunMtu::manual_key(name));
            }
            for m in new.manual.iter().filter(fresh) {
                mtu.add(TunMtu::manual_key(&m.name), &spec_of(m));
            }
            mtu.apply();
        }
        for (i, m) in new.manual.iter().enumerate() {
            if fresh(&m) {
                // A new local address or UDP port gets its socket now.
                manual::add_sockets(&running.handle, &[spec_of(m)])
                    .map_err(|e| format!("manual SA `{}`: {e}", m.name))?;
                let entry = install_one(&running.handle, &running.tun_name, m, 100 + i as u32)?;
                tracing::info!(sa = %m.name, "manual SA installed");
                running.entries.insert(m.name.clone(), entry);
            }
        }
        *self.manual.lock().unwrap_or_else(|e| e.into_inner()) = new.manual.clone();
        // Sockets that only removed or moved SAs used are closed.
        let specs: Vec<ManualSpec> = new.manual.iter().map(spec_of).collect();
        let (mut raw_needs, mut udp_needs) = manual::socket_needs(&specs);
        raw_needs.extend(running.ike_needs.0.iter().copied());
        udp_needs.extend(running.ike_needs.1.iter().copied());
        manual::retain_sockets(&running.handle, raw_needs, udp_needs).map_err(|e| e.to_string())?;
        let c = &diff.connections;
        if !(c.added.is_empty() && c.removed.is_empty() && c.changed.is_empty()) {
            let Some(ike) = running.ike.as_ref() else {
                return Err("connections were added, but the daemon started without any [[connection]] and so without IKE sockets; restart it (`palisade stop`, then start it again)".into());
            };
            let removed: Vec<String> = c.removed.iter().chain(&c.changed).cloned().collect();
            let added = load_connections(new)
                .into_iter()
                .filter(|(n, _)| c.added.contains(n) || c.changed.contains(n))
                .collect();
            ike.handle().apply(removed, added)?;
        }
        Ok(())
    }

    fn sas(&self) -> Vec<SaStatus> {
        let guard = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let Some(running) = guard.as_ref() else {
            return Vec::new();
        };
        let counters = running
            .handle
            .query(|plane: &mut Plane| plane_counts(plane))
            .unwrap_or_default();
        let ike_rows = running
            .ike
            .as_ref()
            .map(|i| i.handle().sas())
            .unwrap_or_default();
        drop(guard);
        let mut rows = ike_rows;
        rows.extend(self.configured().iter().flat_map(|m| {
            manual_sa_status(m, "installed").into_iter().map(|mut s| {
                let key = (format!("{} {}", s.name, s.direction), s.protocol.clone());
                if let Some((p, b, d)) = counters.get(&key) {
                    s.packets = *p;
                    s.bytes = *b;
                    s.drops = d.clone();
                }
                s
            })
        }));
        rows
    }

    fn policies(&self) -> Vec<PolicyStatus> {
        let mut rows: Vec<PolicyStatus> =
            self.configured().iter().flat_map(manual_policies).collect();
        rows.extend(self.with_ike(|i| i.policies()).unwrap_or_default());
        rows
    }

    fn up(&self, name: &str) -> Result<String, String> {
        // The handle is cloned out so the wait does not hold the lock.
        let h = self.ike_handle().ok_or_else(|| no_ike(name))?;
        h.up(name)
    }

    fn down(&self, name: &str) -> Result<String, String> {
        let h = self.ike_handle().ok_or_else(|| no_ike(name))?;
        h.down(name)
    }

    fn ike_sas(&self) -> Vec<IkeSaStatus> {
        self.with_ike(|i| i.ike_sas()).unwrap_or_default()
    }

    fn ike_stats(&self) -> BTreeMap<String, u64> {
        self.with_ike(|i| i.stats()).unwrap_or_default()
    }

    fn stats(&self) -> BTreeMap<String, u64> {
        let guard = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let Some(running) = guard.as_ref() else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        if let Ok(io) = running.handle.io_counters() {
            for (k, v) in [
                ("tun_in", io.tun_in),
                ("tun_out", io.tun_out),
                ("wire_in", io.wire_in),
                ("wire_out", io.wire_out),
                ("send_errors", io.send_errors),
                ("keepalives_sent", io.keepalives_sent),
                ("ike_on_4500", io.ike_on_4500),
                ("tun_bad_offload", io.tun_bad_offload),
                ("gso_fallbacks", io.gso_fallbacks),
            ] {
                out.insert(k.to_string(), v);
            }
        }
        if let Ok((too_big, sas, policies)) = running
            .handle
            .query(|plane: &mut Plane| (plane.too_big, plane.sad.len(), plane.spd.len()))
        {
            out.insert("too_big_sent".to_string(), too_big);
            // What the data plane holds, whoever put it there (manual SAs,
            // CHILD_SAs, traps): after rekeys and deletes these must come
            // back to what the live SAs and policies need. The plane's SPD
            // is outbound only (inbound traffic is checked against the
            // selectors of the SA that opened it).
            out.insert("sad_entries".to_string(), sas as u64);
            out.insert("spd_entries".to_string(), policies as u64);
        }
        let mtu = running
            .mtu
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .current();
        out.insert("tun_mtu".to_string(), u64::from(mtu));
        out.insert("tun_offload".to_string(), u64::from(running.offload));
        out
    }

    fn connection_states(&self) -> BTreeMap<String, String> {
        self.with_ike(|i| i.connection_states()).unwrap_or_default()
    }

    fn shutdown(&self) {
        let mut guard = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut running) = guard.take() {
            // IKE first: its Deletes go out while the data plane still runs,
            // and it removes the SAs and routes it installed.
            if let Some(mut ike) = running.ike.take() {
                ike.stop();
            }
            for (_, mut entry) in running.entries.drain() {
                entry.net.undo();
            }
            let _ = running.handle.send(Command::Stop);
            if let Some(t) = running.thread.take() {
                let _ = t.join();
            }
        }
    }
}
