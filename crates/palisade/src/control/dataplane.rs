//! The seam between the control plane (config, reload, status) and the data
//! plane (TUN, sockets, SAD/SPD). The daemon calls these methods; the data
//! plane engineer implements the trait and passes it to
//! [`crate::cli::daemon::run`].

use crate::config::{Config, ConfigDiff, Encapsulation, ManualKeys, ManualSa};
use crate::control::protocol::{zero_drops, IkeSaStatus, Lifetime, PolicyStatus, SaStatus};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What the daemon needs from a data plane. Methods take `&self` because they
/// are called from the control task while the data plane's own threads run;
/// implementations synchronise inside.
pub trait Dataplane: Send + Sync {
    /// Short name for `status` ("config-only", "userspace-tun", ...).
    fn name(&self) -> &'static str;
    /// Whether the daemon must refuse to start without a usable /dev/net/tun.
    fn requires_tun(&self) -> bool {
        false
    }
    /// Install everything `config` describes (called once, at start).
    fn start(&self, config: &Config) -> Result<(), String>;
    /// Apply a reload: `diff` names what was added, removed and changed
    /// between `old` and `new`; entries listed as unchanged must be left
    /// alone (their SAs keep sequence numbers, replay state and counters).
    fn apply(&self, diff: &ConfigDiff, old: &Config, new: &Config) -> Result<(), String>;
    /// Every SA, both directions, with counters.
    fn sas(&self) -> Vec<SaStatus>;
    /// Every policy (SPD entry).
    fn policies(&self) -> Vec<PolicyStatus>;
    /// Remove everything `start`/`apply` created (TUN, routes, sockets).
    fn shutdown(&self);
    /// `palisade up NAME`: negotiate the connection; the text says what came up.
    fn up(&self, name: &str) -> Result<String, String> {
        Err(format!(
            "cannot start connection `{name}`: this daemon runs without a data plane ({}), so IKE is off",
            self.name()
        ))
    }
    /// `palisade down NAME`.
    fn down(&self, name: &str) -> Result<String, String> {
        Err(format!(
            "connection `{name}` cannot be up: this daemon runs without a data plane ({}), so IKE is off",
            self.name()
        ))
    }
    /// IKE SAs for status.
    fn ike_sas(&self) -> Vec<IkeSaStatus> {
        Vec::new()
    }
    /// The IKE engine's message counters for status.
    fn ike_stats(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
    /// The data plane's own counters for status ([`crate::control::protocol::Status::data_plane`]).
    fn stats(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
    /// Per connection name, its state for status ("established", "down", ...);
    /// connections not listed are shown as configured.
    fn connection_states(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

/// The stand-in data plane: it reports the configured manual SAs and their
/// policies with zero counters and installs nothing.
#[derive(Default)]
pub struct ConfigOnly {
    config: Mutex<Option<Config>>,
}

impl Dataplane for ConfigOnly {
    fn name(&self) -> &'static str {
        "config-only (no packets are processed yet)"
    }
    fn start(&self, config: &Config) -> Result<(), String> {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Some(config.clone());
        Ok(())
    }
    fn apply(&self, _diff: &ConfigDiff, _old: &Config, new: &Config) -> Result<(), String> {
        self.start(new)
    }
    fn sas(&self) -> Vec<SaStatus> {
        let cfg = self.config.lock().unwrap_or_else(|e| e.into_inner());
        cfg.iter()
            .flat_map(|c| {
                c.manual
                    .iter()
                    .flat_map(|m| manual_sa_status(m, "configured"))
            })
            .collect()
    }
    fn policies(&self) -> Vec<PolicyStatus> {
        let cfg = self.config.lock().unwrap_or_else(|e| e.into_inner());
        cfg.iter()
            .flat_map(|c| c.manual.iter().flat_map(manual_policies))
            .collect()
    }
    fn shutdown(&self) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The one-way SAs of a manual SA (in and out, per protocol: two for ESP or
/// AH, four for ah+esp), as status rows in state `state` with zero counters.
pub fn manual_sa_status(m: &ManualSa, state: &str) -> Vec<SaStatus> {
    let mut out = Vec::new();
    let protos: [(&str, &Option<ManualKeys>); 2] = [("esp", &m.esp), ("ah", &m.ah)];
    for (proto, keys) in protos {
        let Some(k) = keys else { continue };
        for (dir, spi, src, dst) in [
            ("in", k.spi_in, m.remote_addr, m.local_addr),
            ("out", k.spi_out, m.local_addr, m.remote_addr),
        ] {
            out.push(SaStatus {
                name: m.name.clone(),
                direction: dir.into(),
                protocol: proto.into(),
                spi,
                mode: m.mode.to_string(),
                src: src.to_string(),
                dst: dst.to_string(),
                encapsulation: if proto == "esp" {
                    m.encapsulation.to_string()
                } else {
                    "ah".into()
                },
                algorithms: k.proposal.text.clone(),
                esn: m.esn,
                replay_window: m.replay_window,
                state: state.into(),
                packets: 0,
                bytes: 0,
                drops: zero_drops(),
                lifetime: Lifetime::default(),
            });
        }
    }
    out
}

/// The outbound and inbound policies a manual SA implies.
pub fn manual_policies(m: &ManualSa) -> Vec<PolicyStatus> {
    let spis = |out: bool| -> Vec<u32> {
        [&m.esp, &m.ah]
            .into_iter()
            .flatten()
            .map(|k| if out { k.spi_out } else { k.spi_in })
            .collect()
    };
    let ts = |l: &[crate::config::Subnet]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mode = match m.encapsulation {
        Encapsulation::Ah => format!("{} ah", m.mode),
        e => format!("{} {e}", m.mode),
    };
    vec![
        PolicyStatus {
            name: m.name.clone(),
            direction: "out".into(),
            local_ts: ts(&m.local_ts),
            remote_ts: ts(&m.remote_ts),
            action: "protect".into(),
            mode: mode.clone(),
            spis: spis(true),
        },
        PolicyStatus {
            name: m.name.clone(),
            direction: "in".into(),
            local_ts: ts(&m.local_ts),
            remote_ts: ts(&m.remote_ts),
            action: "protect".into(),
            mode,
            spis: spis(false),
        },
    ]
}
