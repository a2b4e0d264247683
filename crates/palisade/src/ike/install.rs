//! CHILD_SAs, trap policies and their routes in the data plane.

use super::*;
use crate::mtu::TunMtu;

impl State {
    pub(super) fn replay_window(&self, conn: &str, child: &str) -> u32 {
        match self.conns.get(conn) {
            Some(ConnState::Loaded(l)) => l
                .engine
                .children
                .iter()
                .position(|c| c.name == child)
                .and_then(|i| l.replay_windows.get(i).copied())
                .unwrap_or(convert::DEFAULT_REPLAY_WINDOW),
            _ => convert::DEFAULT_REPLAY_WINDOW,
        }
    }

    /// The byte and packet limits of a child, as SA lifetimes (time limits
    /// are the engine's: it rekeys and deletes on its own timers).
    pub(super) fn volume_limits(
        &self,
        conn: &str,
        child: &str,
    ) -> palisade_sa::lifetime::LifetimeConfig {
        use palisade_sa::lifetime::{LifetimeConfig, Limits};
        let Some(ConnState::Loaded(l)) = self.conns.get(conn) else {
            return LifetimeConfig::default();
        };
        let Some(c) = l.engine.children.iter().find(|c| c.name == child) else {
            return LifetimeConfig::default();
        };
        LifetimeConfig {
            soft: Limits {
                time: None,
                bytes: c.rekey_bytes,
                packets: c.rekey_packets,
            },
            hard: Limits {
                time: None,
                bytes: c.life_bytes,
                packets: c.life_packets,
            },
        }
    }

    pub(super) fn install_child(&mut self, info: &ChildSaInfo) -> Result<(), String> {
        let plane_name = format!(
            "{}/{}[{:08x}]",
            info.connection, info.name, info.inbound_spi
        );
        let allow_insecure = match self.conns.get(&info.connection) {
            Some(ConnState::Loaded(l)) => l.allow_insecure,
            _ => false,
        };
        let keys = |enc: &palisade_crypto::Secret, auth: &palisade_crypto::Secret| DirKeys {
            enc: Some(enc.clone()),
            esp_auth: info.integ.map(|_| auth.clone()),
            ah_auth: None,
        };
        let remote_cidrs: Vec<(IpAddr, u8)> = info.remote_ts.iter().flat_map(ts_cidrs).collect();
        let local_cidrs: Vec<(IpAddr, u8)> = info.local_ts.iter().flat_map(ts_cidrs).collect();
        let spec = ManualSpec {
            name: plane_name.clone(),
            tunnel: info.mode == Mode::Tunnel,
            local: info.local.ip(),
            remote: info.remote.ip(),
            wire: if info.encap {
                Wire::EspUdp {
                    local_port: info.local.port(),
                    remote_port: info.remote.port(),
                }
            } else {
                Wire::Esp
            },
            spi_in: info.inbound_spi,
            spi_out: info.outbound_spi,
            ah_spi_in: 0,
            ah_spi_out: 0,
            encr: Some(info.encr),
            esp_integ: info.integ,
            ah_integ: None,
            keys_in: keys(&info.inbound_encr_key, &info.inbound_integ_key),
            keys_out: keys(&info.outbound_encr_key, &info.outbound_integ_key),
            local_ts: local_cidrs.clone(),
            remote_ts: remote_cidrs.clone(),
            esn: info.esn,
            replay_window: self.replay_window(&info.connection, &info.name),
            tfc_pad_to: 0,
            tfc_pad_to_mtu: false,
            allow_insecure,
            lifetime: self.volume_limits(&info.connection, &info.name),
        };
        let selectors = info.selectors();
        if selectors.is_empty() {
            return Err("the negotiated traffic selectors give no usable policy".into());
        }
        // Which SA carries outbound traffic is the SPD's choice: the first
        // matching policy. A new CHILD_SA ranks before the older ones, so a
        // rekey we asked for takes over at once (the peer installed it
        // before answering), and if we then lose a simultaneous rekey
        // (2.8.1) and delete it, the old SA is back in charge. A rekey the
        // peer asked for is installed by the peer only when our answer
        // arrives: it ranks right after the SA it replaces and takes over
        // when the peer's Delete of that one shows the peer has it.
        let replaced = info
            .rekeys
            .and_then(|old| self.children.get(&old))
            .map(|old| old.priority);
        let priority = match replaced {
            Some(old) if !info.initiator => old.saturating_add(1),
            _ => {
                self.installs = self.installs.wrapping_add(1);
                CHILD_PRIORITY_BASE - self.installs % 1_000_000_000
            }
        };
        let for_plane = spec.clone();
        let installed = self
            .dp
            .query(move |plane: &mut Plane| {
                manual::install_with_selectors(plane, &for_plane, selectors, priority)
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if let Some(old) = info.rekeys {
            if let Some(o) = self.children.get_mut(&old) {
                o.replaced = true;
            }
        }
        let routes = self.add_routes(
            info.mode,
            &local_cidrs,
            &remote_cidrs,
            info.local.ip(),
            info.remote.ip(),
        );
        for h in &installed.sas {
            self.sa_owner.insert(*h, info.inbound_spi);
        }
        self.update_mtu(|m| m.add(TunMtu::child_key(&plane_name), &spec));
        let show = |t: &TrafficSelector| palisade_ike::ts_display(std::slice::from_ref(t));
        self.children.insert(
            info.inbound_spi,
            ChildEntry {
                priority,
                ike_sa: info.ike_sa,
                connection: info.connection.clone(),
                child: info.name.clone(),
                plane_name,
                inbound_spi: info.inbound_spi,
                outbound_spi: info.outbound_spi,
                mode: info.mode,
                local: info.local,
                remote: info.remote,
                encap: info.encap,
                algorithms: super::status::algorithms(info),
                esn: info.esn,
                replay_window: spec.replay_window,
                installed,
                routes,
                local_ts: info.local_ts.iter().map(show).collect(),
                remote_ts: info.remote_ts.iter().map(show).collect(),
                replaced: false,
            },
        );
        Ok(())
    }

    /// Take references on the routes a CHILD_SA or trap needs
    /// ([`manual::route_items`]), making the ones that are new. Returns the
    /// keys referenced.
    pub(super) fn add_routes(
        &mut self,
        mode: Mode,
        local_cidrs: &[(IpAddr, u8)],
        remote_cidrs: &[(IpAddr, u8)],
        local: IpAddr,
        remote: IpAddr,
    ) -> Vec<String> {
        let items = manual::route_items(
            mode == Mode::Tunnel,
            local,
            remote,
            local_cidrs,
            remote_cidrs,
        );
        let mut keys = Vec::new();
        for item in items {
            let (key, tun) = (item.key(), self.tun.clone());
            if self.route_ref(&key, |net| item.apply(net, &tun)) {
                keys.push(key);
            }
        }
        keys
    }

    /// Install trap policies (and their routes) for the children of `conn`
    /// that trap, or for all of them when `all` (DPD's `trap` action).
    pub(super) fn install_traps(&mut self, conn: &str, all: bool) {
        let Some(ConnState::Loaded(l)) = self.conns.get(conn) else {
            return;
        };
        let l = l.clone();
        let (Some(local), Some(remote)) = (l.engine.local_addr, l.engine.remote_addr) else {
            if !l.trap_children.is_empty() || all {
                tracing::warn!(connection = %conn, "start_action/dpd_action = trap needs local_addrs and remote_addrs that name one address each; no trap installed");
            }
            return;
        };
        for ch in &l.engine.children {
            let key = (conn.to_string(), ch.name.clone());
            if !(all || l.trap_children.contains(&ch.name)) || self.trap_entries.contains_key(&key)
            {
                continue;
            }
            let selectors = palisade_ike::ts_selectors(&ch.local_ts, &ch.remote_ts);
            let mode = match ch.mode {
                Mode::Tunnel => palisade_sa::spd::Mode::Tunnel,
                Mode::Transport => palisade_sa::spd::Mode::Transport,
            };
            let ids = self
                .dp
                .query(move |plane: &mut Plane| {
                    selectors
                        .into_iter()
                        .map(|selector| {
                            plane.spd.insert(PolicySpec {
                                priority: TRAP_PRIORITY,
                                direction: palisade_sa::selector::Direction::Outbound,
                                selector,
                                action: Action::Protect(Protect {
                                    bundle: Bundle::Esp { sa: None },
                                    mode,
                                }),
                            })
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let local_cidrs: Vec<(IpAddr, u8)> = ch.local_ts.iter().flat_map(ts_cidrs).collect();
            let remote_cidrs: Vec<(IpAddr, u8)> = ch.remote_ts.iter().flat_map(ts_cidrs).collect();
            let routes = self.add_routes(
                ch.mode,
                &local_cidrs,
                &remote_cidrs,
                local.ip(),
                remote.ip(),
            );
            for id in &ids {
                self.traps.insert(*id, key.clone());
            }
            tracing::info!(connection = %conn, "trap installed for child {}: the first packet starts it", ch.name);
            self.trap_entries.insert(key, (ids, routes));
        }
    }

    pub(super) fn remove_traps(&mut self, conn: &str) {
        let keys: Vec<(String, String)> = self
            .trap_entries
            .keys()
            .filter(|(c, _)| c == conn)
            .cloned()
            .collect();
        for key in keys {
            if let Some((ids, routes)) = self.trap_entries.remove(&key) {
                for id in &ids {
                    self.traps.remove(id);
                }
                self.remove_policies(ids);
                for r in routes {
                    self.route_unref(&r);
                }
            }
        }
    }

    /// Remove these policies from the plane's SPD.
    pub(super) fn remove_policies(&self, ids: Vec<PolicyId>) {
        let _ = self.dp.query(move |plane: &mut Plane| {
            for id in ids {
                plane.spd.remove(id);
            }
        });
    }

    /// Take a reference on route `key`, making it with `make` if it is new.
    /// False if it could not be made (logged; the SA still works for traffic
    /// routed into the TUN some other way).
    pub(super) fn route_ref(
        &mut self,
        key: &str,
        make: impl FnOnce(&mut NetConfig) -> Result<(), palisade_dataplane::netcfg::NetCfgError>,
    ) -> bool {
        if let Some((n, _)) = self.routes.get_mut(key) {
            *n += 1;
            return true;
        }
        let mut net = NetConfig::new();
        match make(&mut net) {
            Ok(()) => {
                self.routes.insert(key.to_string(), (1, net));
                true
            }
            Err(e) => {
                net.undo();
                tracing::warn!("route {key}: {e}");
                false
            }
        }
    }

    pub(super) fn route_unref(&mut self, key: &str) {
        if let Some((n, _)) = self.routes.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                if let Some((_, mut net)) = self.routes.remove(key) {
                    net.undo();
                }
            }
        }
    }

    pub(super) fn remove_child(&mut self, inbound_spi: u32) {
        let Some(c) = self.children.remove(&inbound_spi) else {
            return;
        };
        for h in &c.installed.sas {
            self.sa_owner.remove(h);
        }
        let installed = c.installed.clone();
        let _ = self
            .dp
            .query(move |plane: &mut Plane| manual::uninstall(plane, &installed));
        for key in &c.routes {
            self.route_unref(key);
        }
        self.update_mtu(|m| m.remove(&TunMtu::child_key(&c.plane_name)));
    }

    /// Change the set of SA pairs that bound the TUN MTU and give the TUN
    /// the new value if it differs ([`TunMtu::apply`]).
    fn update_mtu(&self, f: impl FnOnce(&mut TunMtu)) {
        let mut m = self.mtu.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut m);
        m.apply();
    }

    pub(super) fn shutdown(&mut self) {
        let now = Instant::now();
        for id in self.ike.ike_sas() {
            let _ = self.ike.delete_ike_sa(now, id);
        }
        // The Deletes go out once; there is no waiting for answers at exit.
        while let Some(t) = self.ike.poll_transmit() {
            self.transmit(&t.local, &t.remote, &t.bytes);
        }
        let spis: Vec<u32> = self.children.keys().copied().collect();
        for spi in spis {
            self.remove_child(spi);
        }
        let trapped: Vec<String> = self.trap_entries.keys().map(|(c, _)| c.clone()).collect();
        for c in trapped {
            self.remove_traps(&c);
        }
        for (_, (_, mut net)) in self.routes.drain() {
            net.undo();
        }
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Err("the daemon is stopping".into()));
        }
    }
}

/// The prefixes that exactly cover a traffic selector's address range.
pub fn ts_cidrs(t: &TrafficSelector) -> Vec<(IpAddr, u8)> {
    let (start, end, bits, v6) = match t.addresses {
        AddressRange::V4 { start, end } => (
            u32::from(start) as u128,
            u32::from(end) as u128,
            32u32,
            false,
        ),
        AddressRange::V6 { start, end } => (u128::from(start), u128::from(end), 128u32, true),
    };
    let mut out = Vec::new();
    if start > end {
        return out;
    }
    // A block of 2^k addresses at `cur` fits if it ends at or before `end`.
    let fits = |cur: u128, k: u32| {
        if k == 128 {
            cur == 0 && end == u128::MAX
        } else {
            cur.checked_add((1u128 << k) - 1)
                .is_some_and(|last| last <= end)
        }
    };
    let mut cur = start;
    loop {
        let mut k = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        while k > 0 && !fits(cur, k) {
            k -= 1;
        }
        let addr = if v6 {
            IpAddr::V6(cur.into())
        } else {
            IpAddr::V4((cur as u32).into())
        };
        out.push((addr, (bits - k) as u8));
        if out.len() >= MAX_ROUTES_PER_TS {
            tracing::warn!(
                "a traffic selector needs more than {MAX_ROUTES_PER_TS} routes; only the first are installed"
            );
            break;
        }
        match (k < 128).then(|| cur.checked_add(1u128 << k)).flatten() {
            Some(next) if next <= end => cur = next,
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str, e: &str) -> TrafficSelector {
        TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            addresses: AddressRange::V4 {
                start: s.parse().unwrap(),
                end: e.parse().unwrap(),
            },
        }
    }

    #[test]
    fn ranges_become_covering_prefixes() {
        let p = |v: Vec<(IpAddr, u8)>| {
            v.iter()
                .map(|(a, l)| format!("{a}/{l}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            p(ts_cidrs(&v4("10.1.0.0", "10.1.255.255"))),
            ["10.1.0.0/16"]
        );
        assert_eq!(p(ts_cidrs(&v4("10.0.0.1", "10.0.0.1"))), ["10.0.0.1/32"]);
        assert_eq!(
            p(ts_cidrs(&v4("0.0.0.0", "255.255.255.255"))),
            ["0.0.0.0/0"]
        );
        assert_eq!(
            p(ts_cidrs(&v4("10.0.0.1", "10.0.0.6"))),
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        assert!(ts_cidrs(&v4("10.0.0.9", "10.0.0.1")).is_empty());
        let all6 = TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            addresses: AddressRange::V6 {
                start: std::net::Ipv6Addr::UNSPECIFIED,
                end: u128::MAX.into(),
            },
        };
        assert_eq!(p(ts_cidrs(&all6)), ["::/0"]);
        let net6 = TrafficSelector {
            addresses: AddressRange::V6 {
                start: "fd00:200:1::".parse().unwrap(),
                end: "fd00:200:1:0:ffff:ffff:ffff:ffff".parse().unwrap(),
            },
            ..all6
        };
        assert_eq!(p(ts_cidrs(&net6)), ["fd00:200:1::/64"]);
    }
}
