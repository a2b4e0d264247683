//! The config file exactly as written: serde structs with spans, so that
//! validation can point at the line and column of the value it rejects.
//!
//! Every table denies unknown keys: a misspelt `spi_inn` must be an error, not
//! a silently ignored line that leaves the SA half-configured.

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub daemon: Option<Daemon>,
    #[serde(default)]
    pub connection: Vec<Connection>,
    #[serde(default)]
    pub manual: Vec<Manual>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    pub control_socket: Option<S<String>>,
    pub log_level: Option<S<String>>,
    pub tun_name: Option<S<String>>,
    pub tun_mtu: Option<S<i64>>,
    pub tun_offload: Option<S<bool>>,
    pub nat_keepalive: Option<S<toml::Value>>,
    pub retransmit_timeout: Option<S<toml::Value>>,
    pub retransmit_tries: Option<S<i64>>,
    pub retransmit_limit: Option<S<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    pub name: S<String>,
    pub version: Option<S<i64>>,
    #[serde(default)]
    pub local_addrs: Vec<S<String>>,
    pub remote_addrs: S<Vec<S<String>>>,
    pub local_port: Option<S<i64>>,
    pub remote_port: Option<S<i64>>,
    pub local_id: Option<S<String>>,
    pub remote_id: Option<S<String>>,
    pub auth: S<String>,
    pub psk: Option<S<String>>,
    pub psk_file: Option<S<String>>,
    pub local_cert: Option<S<String>>,
    pub local_key: Option<S<String>>,
    #[serde(default)]
    pub ca_certs: Vec<S<String>>,
    pub ike_proposals: Option<S<Vec<S<String>>>>,
    pub start_action: Option<S<String>>,
    pub dpd_delay: Option<S<toml::Value>>,
    pub dpd_action: Option<S<String>>,
    pub rekey_time: Option<S<toml::Value>>,
    pub over_time: Option<S<toml::Value>>,
    pub rand_time: Option<S<toml::Value>>,
    pub keyingtries: Option<S<i64>>,
    #[serde(default)]
    pub allow_insecure: bool,
    #[serde(default)]
    pub child: Vec<Child>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Child {
    pub name: S<String>,
    #[serde(default)]
    pub local_ts: Vec<S<String>>,
    #[serde(default)]
    pub remote_ts: Vec<S<String>>,
    pub esp_proposals: Option<S<Vec<S<String>>>>,
    pub ah_proposals: Option<S<Vec<S<String>>>>,
    pub mode: Option<S<String>>,
    pub start_action: Option<S<String>>,
    pub rekey_time: Option<S<toml::Value>>,
    pub life_time: Option<S<toml::Value>>,
    pub rand_time: Option<S<toml::Value>>,
    pub rekey_bytes: Option<S<i64>>,
    pub life_bytes: Option<S<i64>>,
    pub rekey_packets: Option<S<i64>>,
    pub life_packets: Option<S<i64>>,
    pub replay_window: Option<S<i64>>,
    pub tfc_padding: Option<S<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manual {
    pub name: S<String>,
    pub mode: Option<S<String>>,
    pub local_addr: S<String>,
    pub remote_addr: S<String>,
    pub encapsulation: Option<S<String>>,
    pub udp_ports: Option<S<UdpPorts>>,
    pub spi_in: S<toml::Value>,
    pub spi_out: S<toml::Value>,
    pub ah_spi_in: Option<S<toml::Value>>,
    pub ah_spi_out: Option<S<toml::Value>>,
    pub esp_proposal: Option<S<String>>,
    pub ah_proposal: Option<S<String>>,
    pub enc_key_in: Option<S<String>>,
    pub enc_key_out: Option<S<String>>,
    pub enc_key_in_file: Option<S<String>>,
    pub enc_key_out_file: Option<S<String>>,
    pub auth_key_in: Option<S<String>>,
    pub auth_key_out: Option<S<String>>,
    pub auth_key_in_file: Option<S<String>>,
    pub auth_key_out_file: Option<S<String>>,
    pub ah_key_in: Option<S<String>>,
    pub ah_key_out: Option<S<String>>,
    pub ah_key_in_file: Option<S<String>>,
    pub ah_key_out_file: Option<S<String>>,
    #[serde(default)]
    pub local_ts: Vec<S<String>>,
    #[serde(default)]
    pub remote_ts: Vec<S<String>>,
    pub esn: Option<S<bool>>,
    pub replay_window: Option<S<i64>>,
    pub tfc_padding: Option<S<toml::Value>>,
    #[serde(default)]
    pub allow_insecure: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpPorts {
    pub local: Option<S<i64>>,
    pub remote: Option<S<i64>>,
}
