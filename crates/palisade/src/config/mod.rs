//! The daemon's configuration: one TOML file (annotated examples in the
//! repository's `examples/`), read into validated types.
//!
//! ```toml
//! [daemon]                      # all optional
//! control_socket = "/run/palisade/palisade.sock"
//! log_level = "info"            # error | warn | info | debug | trace (RUST_LOG wins)
//! tun_name = "palisade0"
//! tun_mtu = 1400
//! tun_offload = true            # TCP segmentation offload on the TUN; false = one packet per read
//! nat_keepalive = "20s"         # RFC 3948 keepalives for ESP-in-UDP; 0 = off
//! retransmit_timeout = "1s"     # IKE: first resend; then doubling...
//! retransmit_limit = "16s"      # ...up to this wait...
//! retransmit_tries = 6          # ...and giving up after this many sends
//!
//! [[manual]]                    # a manually keyed SA pair
//! name = "lab"
//! mode = "tunnel"               # tunnel | transport
//! local_addr = "192.0.2.1"
//! remote_addr = "192.0.2.2"
//! encapsulation = "esp"         # esp | esp-udp | ah | ah+esp
//! udp_ports = { local = 4500, remote = 4500 }   # esp-udp only
//! spi_in = 0x1001               # 256..=0xffffffff, integer or "0x..." string
//! spi_out = 0x1002
//! ah_spi_in = 0x1003            # ah+esp only; default: spi_in / spi_out
//! esp_proposal = "aes256gcm16"  # strongSwan syntax, one algorithm per type
//! ah_proposal = "sha256"        # ah / ah+esp
//! enc_key_in = "0x..."          # or enc_key_in_file = "path" (hex text)
//! enc_key_out = "0x..."
//! auth_key_in = "0x..."         # ESP integrity (non-AEAD only); *_file too
//! auth_key_out = "0x..."
//! ah_key_in = "0x..."           # AH integrity; *_file too
//! ah_key_out = "0x..."
//! local_ts = ["10.1.0.0/16"]    # default: the outer addresses
//! remote_ts = ["10.2.0.0/16"]
//! esn = false
//! replay_window = 128           # 0 disables the check
//! tfc_padding = 0               # tunnel only: bytes, or "mtu" (= the TUN MTU)
//! allow_insecure = false
//!
//! [[connection]]                # IKEv2 (annotated: examples/ikev2-psk.toml)
//! name = "site-b"
//! local_addrs = ["192.0.2.1"]   # default: any (then set local_id)
//! remote_addrs = ["192.0.2.2"]  # or ["%any"] for a responder
//! local_id = "gw-a.example"     # IP, FQDN ("@name" too), user@host, keyid:HEX
//! remote_id = "gw-b.example"    # default / "%any": whoever knows the PSK
//! auth = "psk"
//! psk_file = "site-b.psk"       # or psk = "0x..." / a string
//! ike_proposals = ["aes256gcm16-prfsha256-x25519"]
//! start_action = "none"         # none | start | trap
//! dpd_delay = "30s"             # liveness check after this much silence
//! dpd_action = "clear"          # clear | restart | trap
//! rekey_time = "4h"             # IKE SA; over_time (10 %), rand_time, keyingtries
//!   [[connection.child]]
//!   name = "lan"
//!   local_ts = ["10.1.0.0/16"]  # default: "dynamic" (the IKE address)
//!   remote_ts = ["10.2.0.0/16"]
//!   esp_proposals = ["aes256gcm16"]
//!   mode = "tunnel"             # tunnel | transport
//!   rekey_time = "1h"           # life_time (110 %), rand_time (life - rekey)
//!   rekey_bytes = 0             # volume limits: rekey_/life_ bytes, packets
//!   start_action = "trap"       # overrides the connection's for this child
//! ```
//!
//! Loading happens in two steps. `raw` is the file as written, with spans;
//! `validate` turns it into the types below, checking everything an operator can
//! get wrong (names, addresses, SPIs, proposals, key lengths, key files) and
//! collecting *all* problems rather than stopping at the first, each pointing at
//! file:line:column. The validated types carry no spans and no raw strings for
//! secrets: keys live in [`Secret`], whose `Debug` prints only a length, so a
//! config can be logged with `{:?}` without leaking a key.
//!
//! IKE connections (`[[connection]]`) are parsed and validated in full, also
//! for what the daemon cannot run yet (IKEv1, certificates): the daemon then
//! refuses that connection alone, with the reason (`crate::ike::convert`).

mod diag;
pub mod diff;
pub(crate) mod keys;
mod raw;
mod validate;

pub use diag::{Diagnostic, LoadError};
pub use diff::{diff, ConfigDiff, NameDiff};

use palisade_crypto::proposal::{Proposal, Transform};
use palisade_crypto::Secret;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Where the control socket lives unless the config says otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/palisade/palisade.sock";
/// Where the systemd unit and the messages expect the config.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/palisade/palisade.toml";
/// palisade-sa's default anti-replay window (bits).
pub const DEFAULT_REPLAY_WINDOW: u32 = 128;
/// palisade-sa's largest anti-replay window.
pub const MAX_REPLAY_WINDOW: u32 = 65_536;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from (for messages and reload).
    pub path: PathBuf,
    pub daemon: DaemonConfig,
    pub connections: Vec<Connection>,
    pub manual: Vec<ManualSa>,
    /// Things that are allowed but probably wrong (world-readable key files,
    /// algorithms parsed but not implemented yet). Shown by `check-config` and
    /// logged by the daemon.
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    pub control_socket: PathBuf,
    /// A tracing level (`error`..`trace`); `RUST_LOG` overrides it.
    pub log_level: String,
    /// TUN interface name (at most 15 bytes, the kernel's IFNAMSIZ - 1).
    pub tun_name: String,
    pub tun_mtu: u16,
    /// Open the TUN with TCP segmentation offload (virtio-net header), the
    /// fast path; `false` forces the plain TUN, one packet per read, which
    /// the daemon also falls back to when the kernel refuses offload.
    pub tun_offload: bool,
    /// Idle time after which an ESP-in-UDP peer gets a NAT-keepalive (RFC
    /// 3948 4); `None` sends none.
    pub nat_keepalive: Option<std::time::Duration>,
    /// IKE retransmission: the first resend after `retransmit_timeout`, each
    /// next one after twice as long (at most `retransmit_limit`), given up
    /// after `retransmit_tries` sends.
    pub retransmit_timeout: std::time::Duration,
    pub retransmit_tries: u32,
    pub retransmit_limit: std::time::Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            log_level: "info".into(),
            tun_name: "palisade0".into(),
            tun_mtu: 1400,
            tun_offload: true,
            nat_keepalive: Some(std::time::Duration::from_secs(20)),
            retransmit_timeout: std::time::Duration::from_secs(1),
            retransmit_tries: 6,
            retransmit_limit: std::time::Duration::from_secs(16),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tunnel,
    Transport,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Tunnel => "tunnel",
            Mode::Transport => "transport",
        })
    }
}

/// How a manual SA's packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encapsulation {
    /// ESP directly over IP (protocol 50).
    Esp,
    /// ESP inside UDP (RFC 3948), for NAT traversal.
    EspUdp { local_port: u16, remote_port: u16 },
    /// AH alone (protocol 51): integrity only.
    Ah,
    /// AH over ESP (an SA bundle): ESP for confidentiality, AH over the result.
    AhEsp,
}

impl fmt::Display for Encapsulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encapsulation::Esp => f.write_str("esp"),
            Encapsulation::EspUdp {
                local_port,
                remote_port,
            } => write!(f, "esp-udp({local_port}->{remote_port})"),
            Encapsulation::Ah => f.write_str("ah"),
            Encapsulation::AhEsp => f.write_str("ah+esp"),
        }
    }
}

/// An IP prefix such as `10.1.0.0/16` (host bits are zero, checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Subnet {
    pub fn host(addr: IpAddr) -> Self {
        Subnet {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        }
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A child SA's traffic selector: a subnet, or `dynamic` (the IKE address,
/// strongSwan's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficSelector {
    Dynamic,
    Subnet(Subnet),
}

impl fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrafficSelector::Dynamic => f.write_str("dynamic"),
            TrafficSelector::Subnet(s) => s.fmt(f),
        }
    }
}

/// One direction's keyed transform of a manual SA: SPI, algorithm and key.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualKeys {
    pub spi_in: u32,
    pub spi_out: u32,
    /// The proposal as written (exactly one algorithm of each needed type).
    pub proposal: Proposal,
    /// ESP: the cipher or AEAD. `None` for AH.
    pub encr: Option<Transform>,
    /// ESP with a non-AEAD cipher, or AH: the integrity algorithm.
    pub integ: Option<Transform>,
    /// Cipher/AEAD keys (AEAD keys include the salt, RFC 4106 8.1). Empty for
    /// NULL encryption and for AH.
    pub enc_key_in: Secret,
    pub enc_key_out: Secret,
    /// Integrity keys. Empty for AEADs.
    pub auth_key_in: Secret,
    pub auth_key_out: Secret,
}

/// A manually keyed SA pair (`[[manual]]`): both directions, no IKE.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualSa {
    pub name: String,
    pub mode: Mode,
    pub local_addr: IpAddr,
    pub remote_addr: IpAddr,
    pub encapsulation: Encapsulation,
    /// Present for `esp`, `esp-udp` and `ah+esp`.
    pub esp: Option<ManualKeys>,
    /// Present for `ah` and `ah+esp`.
    pub ah: Option<ManualKeys>,
    pub local_ts: Vec<Subnet>,
    pub remote_ts: Vec<Subnet>,
    pub esn: bool,
    /// Anti-replay window in packets; 0 turns the check off.
    pub replay_window: u32,
    pub tfc_padding: TfcPadding,
    pub allow_insecure: bool,
}

/// Traffic flow confidentiality padding (RFC 4303 2.7), strongSwan's
/// `tfc_padding`: pad each ESP payload (the inner IP packet, tunnel mode
/// only) to a length, or with `Mtu` to the TUN MTU, the largest inner packet
/// the tunnel carries, which the daemon lowers from `tun_mtu` until a full
/// packet sealed fits the route to every peer. So with `"mtu"` every ESP
/// packet has the size of a full-MTU one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TfcPadding {
    Off,
    Bytes(u16),
    Mtu,
}

impl fmt::Display for TfcPadding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TfcPadding::Off => f.write_str("0"),
            TfcPadding::Bytes(n) => write!(f, "{n}"),
            TfcPadding::Mtu => f.write_str("mtu"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAction {
    None,
    Start,
    Trap,
}

/// What to do when dead peer detection finds the peer gone (strongSwan's
/// `dpd_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpdAction {
    /// Remove the SAs.
    Clear,
    /// Remove the SAs and initiate again.
    Restart,
    /// Remove the SAs and set them up again when traffic needs them.
    Trap,
}

/// How an IKE connection authenticates.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    Psk(Secret),
    Pubkey {
        cert: PathBuf,
        key: PathBuf,
        ca_certs: Vec<PathBuf>,
    },
}

/// An IKE connection (`[[connection]]`), validated; `crate::ike::convert`
/// turns it into the engine's form.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub name: String,
    pub version: u8,
    pub local_addrs: Vec<String>,
    pub remote_addrs: Vec<String>,
    pub local_port: u16,
    pub remote_port: u16,
    pub local_id: Option<String>,
    pub remote_id: Option<String>,
    pub auth: Auth,
    pub ike_proposals: Vec<Proposal>,
    pub start_action: StartAction,
    pub dpd_delay_s: Option<u64>,
    pub dpd_action: DpdAction,
    /// IKE SA rekey interval; `None` = strongSwan's default (4 h), `Some(0)` = never.
    pub rekey_time_s: Option<u64>,
    /// How long past `rekey_time` the IKE SA may live when rekeying fails.
    pub over_time_s: Option<u64>,
    /// Random jitter subtracted from `rekey_time`.
    pub rand_time_s: Option<u64>,
    /// Attempts to set up the IKE SA (strongSwan's `keyingtries`; 0 = forever).
    pub keyingtries: u32,
    pub allow_insecure: bool,
    pub children: Vec<Child>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    pub name: String,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub esp_proposals: Vec<Proposal>,
    pub ah_proposals: Vec<Proposal>,
    pub mode: Mode,
    pub start_action: Option<StartAction>,
    /// CHILD_SA rekey interval; `None` = strongSwan's default (1 h), `Some(0)` = never.
    pub rekey_time_s: Option<u64>,
    /// Hard limit; `None` = 110 % of `rekey_time`.
    pub life_time_s: Option<u64>,
    /// Jitter subtracted from `rekey_time`; `None` = `life_time - rekey_time`.
    pub rand_time_s: Option<u64>,
    /// Volume limits (soft: rekey; hard: delete), counted by the data plane.
    pub rekey_bytes: Option<u64>,
    pub life_bytes: Option<u64>,
    pub rekey_packets: Option<u64>,
    pub life_packets: Option<u64>,
    pub replay_window: u32,
    pub tfc_padding: TfcPadding,
}

impl Config {
    /// Reads and validates `path`. Relative key and certificate paths are taken
    /// relative to the config file's directory, so a config and its keys can
    /// be moved together.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let src = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, &e))?;
        Config::from_str(path, &src)
    }

    /// Validates `src` as if read from `path` (which names it in messages and
    /// anchors relative paths).
    pub fn from_str(path: &Path, src: &str) -> Result<Config, LoadError> {
        validate::validate(path, src)
    }

    /// "N connections, M manual SAs", for `check-config` and the logs.
    pub fn summary(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "{}, {}",
            plural(self.connections.len(), "connection", "connections"),
            plural(self.manual.len(), "manual SA", "manual SAs")
        )
    }
}
