//! From the validated `[[connection]]` config to palisade-ike's engine
//! configuration: addresses resolved, identities typed, proposals turned into
//! IANA ids. What the daemon cannot run yet (IKEv1, certificates) is refused
//! here with a message that says so, for that connection only.

use crate::config::{self, Auth, StartAction, TrafficSelector as CfgTs};
use palisade_crypto::Policy;
use palisade_ike::{
    AddressRange, ChildConfig, Connection, DpdAction, EspProposal, Identity, IkeProposal, Mode,
    TrafficSelector,
};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// strongSwan's default anti-replay window for CHILD_SAs.
pub const DEFAULT_REPLAY_WINDOW: u32 = 32;
/// strongSwan's default lifetimes: IKE SAs rekey after 4 h, CHILD_SAs after
/// 1 h; a CHILD_SA's hard limit is 110 % of that, an IKE SA may live 10 %
/// past its rekey time; the jitter is the difference.
pub const DEFAULT_IKE_REKEY: u64 = 4 * 3600;
pub const DEFAULT_CHILD_REKEY: u64 = 3600;

/// `Some(0)` in the config means "never"; `None` means the default.
fn interval(s: Option<u64>, default: u64) -> Option<Duration> {
    match s.unwrap_or(default) {
        0 => None,
        n => Some(Duration::from_secs(n)),
    }
}

/// A connection ready for the engine, plus what the daemon keeps beside it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub engine: Connection,
    pub start_action: StartAction,
    /// Children whose start action (their own, else the connection's) is
    /// `trap`: their policies are installed at load and negotiate on demand.
    pub trap_children: Vec<String>,
    /// Per child (same order as the engine's children): replay window.
    pub replay_windows: Vec<u32>,
    pub allow_insecure: bool,
}

/// An IKE identity from its config text, strongSwan-style: an IP address is
/// ID_IPV4/ID_IPV6, `user@host` is ID_RFC822_ADDR, `@name` and other names
/// are ID_FQDN, `keyid:HEX` is ID_KEY_ID.
pub fn identity(text: &str) -> Result<Identity, String> {
    if let Ok(a) = text.parse::<IpAddr>() {
        return Ok(Identity::addr(a));
    }
    if let Some(hex) = text.strip_prefix("keyid:") {
        return crate::config::keys::decode_hex(hex)
            .map(|k| Identity::KeyId(k.as_bytes().to_vec()))
            .map_err(|e| format!("identity `{text}`: the key id {e}"));
    }
    if let Some(name) = text.strip_prefix('@') {
        // strongSwan's "@name" forces ID_FQDN; "@#hex" is not supported.
        if name.is_empty() || name.starts_with('#') {
            return Err(format!(
                "identity `{text}` is not supported; write a name such as `@gw.example` or `gw.example`"
            ));
        }
        return Ok(Identity::Fqdn(name.to_string()));
    }
    if text.contains('=') {
        return Err(format!(
            "identity `{text}` looks like a distinguished name, which only certificate authentication uses (not supported yet); use an FQDN, an e-mail address or an IP address with a PSK"
        ));
    }
    if text.contains('@') {
        return Ok(Identity::Rfc822(text.to_string()));
    }
    if text.is_empty() {
        return Err("an empty identity is not allowed".into());
    }
    Ok(Identity::Fqdn(text.to_string()))
}

/// The first address `text` names: an IP literal or a DNS name resolved now.
/// `%any` and subnets name no single peer: `None`.
fn resolve(text: &str, port: u16) -> Result<Option<SocketAddr>, String> {
    if text == "%any" || text.contains('/') {
        return Ok(None);
    }
    if let Ok(a) = text.parse::<IpAddr>() {
        return Ok(Some(SocketAddr::new(a, port)));
    }
    match (text, port).to_socket_addrs() {
        Ok(mut it) => Ok(it.next()),
        Err(e) => Err(format!("cannot resolve `{text}`: {e}")),
    }
}

/// An IKE traffic selector covering `addr/prefix`, any protocol and port.
pub fn subnet_ts(addr: IpAddr, prefix: u8) -> TrafficSelector {
    let addresses = match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            AddressRange::V4 {
                start: (bits & mask).into(),
                end: (bits | !mask).into(),
            }
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            AddressRange::V6 {
                start: (bits & mask).into(),
                end: (bits | !mask).into(),
            }
        }
    };
    TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        addresses,
    }
}

fn selectors(
    list: &[CfgTs],
    own: Option<IpAddr>,
    side: &str,
) -> Result<Vec<TrafficSelector>, String> {
    if list.is_empty() {
        return selectors(&[CfgTs::Dynamic], own, side);
    }
    list.iter()
        .map(|t| match t {
            CfgTs::Subnet(s) => Ok(subnet_ts(s.addr, s.prefix)),
            // `dynamic` is the IKE address; when it is not known in advance
            // (a %any responder), offer everything of the family and let
            // narrowing pick the peer's address.
            CfgTs::Dynamic => match own {
                Some(a) => Ok(subnet_ts(a, if a.is_ipv4() { 32 } else { 128 })),
                None => Err(format!(
                    "{side}_ts is `dynamic` (the default) but the {side} address is not known in advance; set {side}_addrs to an IP address or write {side}_ts explicitly"
                )),
            },
        })
        .collect()
}

/// Turn one validated connection into the engine's form.
pub fn connection(c: &config::Connection) -> Result<Loaded, String> {
    if c.version != 2 {
        return Err(
            "IKEv1 (version = 1) is not supported by the daemon yet; use version = 2".into(),
        );
    }
    let psk = match &c.auth {
        Auth::Psk(p) => p.clone(),
        Auth::Pubkey { .. } => {
            return Err(
                "certificate authentication (auth = \"pubkey\") is not supported by the daemon yet; use auth = \"psk\"".into(),
            )
        }
    };
    let local = match c.local_addrs.first() {
        Some(t) => resolve(t, c.local_port)?,
        None => None,
    };
    let remote = c
        .remote_addrs
        .iter()
        .map(|t| resolve(t, c.remote_port))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .next();
    let local_id = match (&c.local_id, local) {
        (Some(t), _) => identity(t)?,
        (None, Some(a)) => Identity::addr(a.ip()),
        (None, None) => {
            return Err(
                "local_id is not set and no local address is configured to use instead; set local_id (e.g. \"gw-a.example\") or local_addrs".into(),
            )
        }
    };
    let remote_id = match c.remote_id.as_deref() {
        None | Some("%any") => None,
        Some(t) => Some(identity(t)?),
    };
    let mut ike_proposals: Vec<IkeProposal> = c
        .ike_proposals
        .iter()
        .map(IkeProposal::from_parsed)
        .collect();
    if ike_proposals.is_empty() {
        ike_proposals =
            palisade_crypto::proposal::defaults(palisade_crypto::proposal::Protocol::Ike)
                .iter()
                .map(IkeProposal::from_parsed)
                .collect();
    }
    let mut children = Vec::new();
    let mut replay_windows = Vec::new();
    for ch in &c.children {
        if !ch.ah_proposals.is_empty() {
            return Err(format!(
                "child `{}`: ah_proposals is not supported with IKE yet; use esp_proposals",
                ch.name
            ));
        }
        let mut esp: Vec<EspProposal> = ch
            .esp_proposals
            .iter()
            .map(EspProposal::from_parsed)
            .collect();
        if esp.is_empty() {
            esp = palisade_crypto::proposal::defaults(palisade_crypto::proposal::Protocol::Esp)
                .iter()
                .map(EspProposal::from_parsed)
                .collect();
        }
        let local_ts = selectors(&ch.local_ts, local.map(|a| a.ip()), "local")?;
        let remote_ts = selectors(&ch.remote_ts, remote.map(|a| a.ip()), "remote")?;
        children.push(ChildConfig {
            name: ch.name.clone(),
            local_ts,
            remote_ts,
            esp_proposals: esp,
            mode: match ch.mode {
                config::Mode::Tunnel => Mode::Tunnel,
                config::Mode::Transport => Mode::Transport,
            },
            rekey_time: interval(ch.rekey_time_s, DEFAULT_CHILD_REKEY),
            life_time: match (
                ch.life_time_s,
                interval(ch.rekey_time_s, DEFAULT_CHILD_REKEY),
            ) {
                (Some(l), _) => Some(Duration::from_secs(l)),
                (None, Some(r)) => Some(r + r / 10),
                (None, None) => None,
            },
            rand_time: ch.rand_time_s.map(Duration::from_secs),
            rekey_bytes: ch.rekey_bytes,
            life_bytes: ch.life_bytes,
            rekey_packets: ch.rekey_packets,
            life_packets: ch.life_packets,
        });
        replay_windows.push(ch.replay_window);
    }
    let policy = Policy {
        allow_insecure: c.allow_insecure,
    };
    let mut engine = Connection::psk(&c.name, local_id, remote_id, &[]);
    engine.psk = psk;
    engine.local_addr = local;
    engine.remote_addr = remote;
    engine.ike_proposals = ike_proposals;
    engine.children = children;
    engine.dpd_delay = c.dpd_delay_s.map(Duration::from_secs);
    engine.dpd_action = match c.dpd_action {
        config::DpdAction::Clear => DpdAction::Clear,
        config::DpdAction::Restart => DpdAction::Restart,
        config::DpdAction::Trap => DpdAction::Trap,
    };
    engine.keying_tries = if c.keyingtries == 0 {
        u32::MAX
    } else {
        c.keyingtries
    };
    engine.ike_rekey_time = interval(c.rekey_time_s, DEFAULT_IKE_REKEY);
    engine.ike_life_time = engine
        .ike_rekey_time
        .map(|r| r + c.over_time_s.map(Duration::from_secs).unwrap_or(r / 10));
    engine.ike_rand_time = c.rand_time_s.map(Duration::from_secs);
    engine.policy = policy;
    Ok(Loaded {
        engine,
        start_action: c.start_action,
        trap_children: c
            .children
            .iter()
            .filter(|ch| ch.start_action.unwrap_or(c.start_action) == StartAction::Trap)
            .map(|ch| ch.name.clone())
            .collect(),
        replay_windows,
        allow_insecure: c.allow_insecure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_typed_like_strongswan() {
        assert_eq!(
            identity("192.0.2.1").unwrap(),
            Identity::Ipv4("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            identity("2001:db8::1").unwrap(),
            Identity::Ipv6("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            identity("gw.example").unwrap(),
            Identity::Fqdn("gw.example".into())
        );
        assert_eq!(
            identity("@gw.example").unwrap(),
            Identity::Fqdn("gw.example".into())
        );
        assert_eq!(
            identity("ops@example.org").unwrap(),
            Identity::Rfc822("ops@example.org".into())
        );
        assert_eq!(
            identity("keyid:0a0b").unwrap(),
            Identity::KeyId(vec![10, 11])
        );
        assert!(identity("C=CH, O=x, CN=gw")
            .unwrap_err()
            .contains("distinguished name"));
        assert!(identity("keyid:zz").is_err());
    }

    #[test]
    fn subnet_selectors_cover_the_prefix() {
        let t = subnet_ts("10.1.0.0".parse().unwrap(), 16);
        assert_eq!(
            t.addresses,
            AddressRange::V4 {
                start: "10.1.0.0".parse().unwrap(),
                end: "10.1.255.255".parse().unwrap()
            }
        );
        let t = subnet_ts("fd00::".parse().unwrap(), 0);
        assert!(
            matches!(t.addresses, AddressRange::V6 { end, .. } if end == std::net::Ipv6Addr::from(u128::MAX))
        );
    }
}
