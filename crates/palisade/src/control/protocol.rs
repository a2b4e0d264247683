//! The JSON shapes on the control socket. They are the `--json` output of the
//! CLI too, so scripts see the same fields whichever way they ask.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest request or response line accepted, so a confused client cannot
/// make the daemon buffer without bound.
pub const MAX_LINE: usize = 4 << 20;

/// A request: `{"cmd":"status"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Ping,
    Status,
    SaList,
    PolicyList,
    Reload,
    Stop,
    /// Set up a connection's IKE SA and first CHILD_SA; answers when it is up.
    Up {
        name: String,
    },
    /// Delete a connection's IKE SAs (and their CHILD_SAs).
    Down {
        name: String,
    },
}

impl Request {
    pub const NAMES: &'static str =
        "ping, status, sa_list, policy_list, reload, stop, up (with name), down (with name)";
}

/// A response: `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: impl Serialize) -> Response {
        match serde_json::to_value(data) {
            Ok(data) => Response {
                ok: true,
                error: None,
                data,
            },
            Err(e) => Response::err(format!("internal error encoding the response: {e}")),
        }
    }
    pub fn err(msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(msg.into()),
            data: serde_json::Value::Null,
        }
    }
}

/// Everything `palisade status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub daemon: DaemonInfo,
    pub sas: Vec<SaStatus>,
    pub policies: Vec<PolicyStatus>,
    pub connections: Vec<ConnectionStatus>,
    /// IKE SAs, half-open ones included.
    #[serde(default)]
    pub ike_sas: Vec<IkeSaStatus>,
    /// IKE messages received, dropped by reason, retransmitted (empty when
    /// IKE is not running).
    #[serde(default)]
    pub ike_stats: BTreeMap<String, u64>,
    /// The data plane's own counters by name (packets through the TUN and
    /// the wire sockets, send errors, NAT-keepalives and ICMP too-big sent,
    /// IKE seen on port 4500, unusable offload reads) and the TUN MTU; empty
    /// without a data plane.
    #[serde(default)]
    pub data_plane: BTreeMap<String, u64>,
}

/// One IKE SA. Keys are never part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSaStatus {
    /// Our SPI, in hex.
    pub id: String,
    pub connection: String,
    /// "connecting", "established", "rekeying", "deleting".
    pub state: String,
    pub initiator: bool,
    pub local: String,
    pub remote: String,
    pub remote_id: Option<String>,
    /// A NAT was detected: IKE and ESP use UDP 4500.
    pub nat: bool,
    /// The IKE SA's transforms, once negotiated.
    pub algorithms: Option<String>,
    pub established_s: Option<u64>,
    /// "child in-SPI/out-SPI" per CHILD_SA.
    pub children: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub version: String,
    pub pid: u32,
    pub config: String,
    pub uptime_s: u64,
    /// Which data plane serves the SAs (e.g. "config-only").
    pub dataplane: String,
    /// Warnings from the loaded config.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One direction of one SA. Keys are never part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaStatus {
    /// The manual SA or connection/child it belongs to.
    pub name: String,
    /// "in" or "out".
    pub direction: String,
    /// "esp" or "ah".
    pub protocol: String,
    pub spi: u32,
    pub mode: String,
    pub src: String,
    pub dst: String,
    pub encapsulation: String,
    /// The proposal, in strongSwan syntax.
    pub algorithms: String,
    pub esn: bool,
    pub replay_window: u32,
    /// "configured" (known, not installed), "installed", ...
    pub state: String,
    pub packets: u64,
    pub bytes: u64,
    /// Drops by reason (palisade-sa's `DropReason` names); zeros included so
    /// scripts can rely on every key.
    pub drops: BTreeMap<String, u64>,
    pub lifetime: Lifetime,
}

/// What is left before the SA expires; `None` where there is no limit (manual
/// SAs never expire).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifetime {
    pub soft_seconds_left: Option<u64>,
    pub hard_seconds_left: Option<u64>,
    pub bytes_left: Option<u64>,
    pub packets_left: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatus {
    pub name: String,
    /// "out" or "in".
    pub direction: String,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    /// "protect", "bypass" or "discard".
    pub action: String,
    pub mode: String,
    /// SPIs of the SAs it uses (outbound SPI for "out", inbound for "in").
    pub spis: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionStatus {
    pub name: String,
    pub version: u8,
    pub remote_addrs: Vec<String>,
    pub state: String,
    pub children: Vec<String>,
}

/// What `reload` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    pub manual: NameChanges,
    pub connections: NameChanges,
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// The drop reasons palisade-sa counts (`DropReason::name`), listed here so
/// status can show zeros before a data plane reports any.
pub const DROP_REASONS: &[&str] = &[
    "unknown_spi",
    "replay",
    "icv_failure",
    "bad_padding",
    "policy_mismatch",
    "policy_discard",
    "no_sa",
    "lifetime_expired",
    "sequence_exhausted",
    "malformed",
];

/// A drop map with every reason at zero.
pub fn zero_drops() -> BTreeMap<String, u64> {
    DROP_REASONS.iter().map(|r| (r.to_string(), 0)).collect()
}
