//! Status rows (`palisade status`) from the engine and the plane's counters.

use super::*;

impl State {
    pub(super) fn connection_states(&self) -> BTreeMap<String, String> {
        self.conns
            .iter()
            .map(|(name, c)| {
                let state = match c {
                    ConnState::Refused(e) => format!("not loaded: {e}"),
                    ConnState::Loaded(_) => {
                        let ids = self.ike_sas_of(name);
                        if ids.iter().any(|id| self.ike.is_established(*id)) {
                            "established".to_string()
                        } else if !ids.is_empty() {
                            "connecting".to_string()
                        } else {
                            "down".to_string()
                        }
                    }
                };
                (name.clone(), state)
            })
            .collect()
    }

    pub(super) fn ike_sa_rows(&self) -> Vec<IkeSaStatus> {
        let now = Instant::now();
        self.ike
            .ike_sa_infos()
            .into_iter()
            .map(|i| {
                let children = self
                    .children
                    .values()
                    .filter(|c| c.ike_sa == i.id)
                    .map(|c| {
                        format!(
                            "{} {:08x}/{:08x}{}",
                            c.child,
                            c.inbound_spi,
                            c.outbound_spi,
                            if c.replaced { " (rekeyed)" } else { "" }
                        )
                    })
                    .collect();
                IkeSaStatus {
                    id: i.id.to_string(),
                    connection: i.connection,
                    state: i.state.to_string(),
                    initiator: i.initiator,
                    local: i.local.to_string(),
                    remote: i.remote.to_string(),
                    remote_id: i.remote_id.map(|r| r.to_string()),
                    nat: i.nat,
                    algorithms: i.transforms.as_ref().map(ike_algorithms),
                    established_s: i.established.map(|t| now.duration_since(t).as_secs()),
                    children,
                }
            })
            .collect()
    }

    pub(super) fn sa_rows(&self) -> Vec<SaStatus> {
        let counters = self
            .dp
            .query(|plane: &mut Plane| crate::userspace::plane_counts(plane))
            .unwrap_or_default();
        let mut rows = Vec::new();
        let now = Instant::now();
        for c in self.children.values() {
            // Time limits are the engine's (jittered rekey, hard expiry).
            let (rekey, expire) = self
                .ike
                .child_sa_deadlines(c.ike_sa, c.inbound_spi)
                .unwrap_or((None, None));
            let left = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(now).as_secs());
            let lifetime = Lifetime {
                soft_seconds_left: left(rekey),
                hard_seconds_left: left(expire),
                ..Lifetime::default()
            };
            for (dir, spi, src, dst) in [
                ("in", c.inbound_spi, c.remote, c.local),
                ("out", c.outbound_spi, c.local, c.remote),
            ] {
                if dir == "out" && c.replaced {
                    continue;
                }
                let (packets, bytes, drops) = counters
                    .get(&(format!("{} {dir}", c.plane_name), "esp".to_string()))
                    .cloned()
                    .unwrap_or_else(|| (0, 0, zero_drops()));
                let mut all = zero_drops();
                all.extend(drops);
                rows.push(SaStatus {
                    name: format!("{}/{}", c.connection, c.child),
                    direction: dir.into(),
                    protocol: "esp".into(),
                    spi,
                    mode: match c.mode {
                        Mode::Tunnel => "tunnel".into(),
                        Mode::Transport => "transport".into(),
                    },
                    src: src.ip().to_string(),
                    dst: dst.ip().to_string(),
                    encapsulation: if c.encap {
                        format!("esp-udp({}->{})", src.port(), dst.port())
                    } else {
                        "esp".into()
                    },
                    algorithms: c.algorithms.clone(),
                    esn: c.esn,
                    replay_window: c.replay_window,
                    state: if c.replaced {
                        "rekeyed".into()
                    } else {
                        "installed".into()
                    },
                    packets,
                    bytes,
                    drops: all,
                    lifetime: lifetime.clone(),
                });
            }
        }
        rows
    }

    pub(super) fn policy_rows(&self) -> Vec<PolicyStatus> {
        let mut rows = Vec::new();
        for c in self.children.values().filter(|c| !c.replaced) {
            let mode = match c.mode {
                Mode::Tunnel => "tunnel esp",
                Mode::Transport => "transport esp",
            };
            for (dir, spi) in [("out", c.outbound_spi), ("in", c.inbound_spi)] {
                rows.push(PolicyStatus {
                    name: format!("{}/{}", c.connection, c.child),
                    direction: dir.into(),
                    local_ts: c.local_ts.clone(),
                    remote_ts: c.remote_ts.clone(),
                    action: "protect".into(),
                    mode: mode.into(),
                    spis: vec![spi],
                });
            }
        }
        rows
    }
}

/// strongSwan-style names of a CHILD_SA's transforms, for status.
pub(super) fn algorithms(info: &ChildSaInfo) -> String {
    let encr = palisade_crypto::registry::encr_info(info.encr.0, info.encr.1)
        .map(|e| e.name.to_string())
        .unwrap_or_else(|_| format!("ENCR {}", info.encr.0));
    match info.integ {
        None => encr,
        Some(i) => format!("{encr}/{}", integ_name(i)),
    }
}

pub(super) fn integ_name(id: u16) -> String {
    palisade_crypto::registry::integ_name(id).map_or_else(|| format!("INTEG {id}"), str::to_string)
}

/// The IKE SA's transforms by IANA name.
pub(super) fn ike_algorithms(t: &palisade_ike::IkeTransforms) -> String {
    use palisade_crypto::registry;
    let encr = registry::encr_info(t.encr.0, t.encr.1)
        .map(|e| e.name.to_string())
        .unwrap_or_else(|_| format!("ENCR {}", t.encr.0));
    let prf = registry::prf_name(t.prf).map_or_else(|| format!("PRF {}", t.prf), str::to_string);
    let ke = palisade_crypto::kex::group_name(t.ke)
        .map_or_else(|| format!("KE {}", t.ke), str::to_string);
    match t.integ {
        None => format!("{encr}/{prf}/{ke}"),
        Some(i) => format!("{encr}/{}/{prf}/{ke}", integ_name(i)),
    }
}
