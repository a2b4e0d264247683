//! Engine configuration. Proposals are IANA transform IDs; the daemon turns
//! strongSwan proposal strings into these.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use palisade_crypto::proposal::{Proposal, Transform};
use palisade_crypto::{Policy, Secret};
use palisade_wire::ikev2::consts::id;
use palisade_wire::ikev2::{IdPayload, TrafficSelector};

/// Whole-engine settings plus the connections it knows.
#[derive(Debug, Clone)]
pub struct Config {
    pub connections: Vec<Connection>,
    /// Half-open (IKE_SA_INIT answered, IKE_AUTH not yet) responder SAs above
    /// which new IKE_SA_INIT requests must carry a COOKIE (RFC 7296 2.6).
    pub cookie_threshold: usize,
    /// Half-open responder SAs one source IP may hold; a new IKE_SA_INIT
    /// from it beyond that is dropped (strongSwan's `block_threshold`). It
    /// is checked after the COOKIE, so once cookies are required only a
    /// source that can receive our answers is counted against. A spoofer
    /// below the cookie threshold can still use up a victim's share for
    /// `half_open_timeout`; keep the limit well above what one host needs.
    pub half_open_per_source: usize,
    pub retransmit: Retransmit,
    /// A responder SA that has not completed IKE_AUTH after this is dropped.
    pub half_open_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            connections: Vec::new(),
            cookie_threshold: 64,
            half_open_per_source: 16,
            retransmit: Retransmit::default(),
            half_open_timeout: Duration::from_secs(30),
        }
    }
}

/// Retransmission of our requests: the n-th resend waits `initial * 2^n`
/// (capped at `max_interval`); after `tries` sends without an answer the
/// exchange, and with it the IKE SA, is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    pub initial: Duration,
    pub max_interval: Duration,
    pub tries: u32,
}

impl Default for Retransmit {
    fn default() -> Self {
        Retransmit {
            initial: Duration::from_millis(1000),
            max_interval: Duration::from_secs(16),
            tries: 6,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpdAction {
    /// Remove the SAs.
    Clear,
    /// Remove the SAs and initiate the connection again.
    Restart,
    /// Remove the SAs; the daemon keeps (or reinstalls) the trap policies so
    /// that the next matching packet sets them up again through
    /// [`crate::Endpoint::acquire`].
    Trap,
}

#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    /// Our address; `None` accepts any local address (responder) and, for an
    /// initiator, leaves the source to the caller of `initiate`.
    pub local_addr: Option<SocketAddr>,
    /// The peer; required to initiate, `None` accepts any peer as responder.
    pub remote_addr: Option<SocketAddr>,
    pub local_id: Identity,
    /// `None` accepts any identity that proves knowledge of the PSK.
    pub remote_id: Option<Identity>,
    pub psk: Secret,
    pub ike_proposals: Vec<IkeProposal>,
    pub children: Vec<ChildConfig>,
    /// Send a liveness check when nothing was heard from the peer for this long.
    pub dpd_delay: Option<Duration>,
    pub dpd_action: DpdAction,
    /// Attempts to set up the IKE SA when an attempt times out (1 = no retry).
    pub keying_tries: u32,
    /// Rekey the IKE SA this long after it was set up, minus a random
    /// 0..`ike_rand_time` (RFC 7296 2.8: the jitter keeps both ends from
    /// rekeying at once). Either end rekeys on its own timer; a collision
    /// is settled by the 2.8.2 tie-break.
    pub ike_rekey_time: Option<Duration>,
    /// Delete the IKE SA this long after it was set up if no rekey has
    /// replaced it by then (strongSwan's `rekey_time + over_time`).
    pub ike_life_time: Option<Duration>,
    /// Jitter subtracted from `ike_rekey_time`; `None` means
    /// `ike_life_time - ike_rekey_time` when both are set, else none.
    pub ike_rand_time: Option<Duration>,
    pub policy: Policy,
    /// Send INITIAL_CONTACT in IKE_AUTH (we hold no other SA with this peer).
    pub initial_contact: bool,
}

impl Connection {
    /// A PSK connection with AES-256-GCM-16 / PRF-HMAC-SHA2-256 / X25519 for
    /// IKE and AES-256-GCM-16 for ESP, the usual modern choice.
    pub fn psk(name: &str, local_id: Identity, remote_id: Option<Identity>, psk: &[u8]) -> Self {
        Connection {
            name: name.to_string(),
            local_addr: None,
            remote_addr: None,
            local_id,
            remote_id,
            psk: Secret::from_slice(psk),
            ike_proposals: vec![IkeProposal::aes256gcm16_prfsha256_x25519()],
            children: Vec::new(),
            dpd_delay: None,
            dpd_action: DpdAction::Clear,
            ike_rekey_time: None,
            ike_life_time: None,
            ike_rand_time: None,
            keying_tries: 1,
            policy: Policy::SECURE,
            initial_contact: true,
        }
    }
}

/// One IKE proposal: each list is the transforms of one type, in preference
/// order. ENCR entries are (IANA id, key length in bits if the transform
/// takes one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeProposal {
    pub encr: Vec<(u16, Option<u16>)>,
    pub prf: Vec<u16>,
    /// Empty with AEAD ciphers.
    pub integ: Vec<u16>,
    pub ke: Vec<u16>,
}

impl IkeProposal {
    pub fn aes256gcm16_prfsha256_x25519() -> Self {
        IkeProposal {
            encr: vec![(20, Some(256))],
            prf: vec![5],
            integ: vec![],
            ke: vec![31],
        }
    }
    /// aes256-sha256-modp2048 (CBC + HMAC).
    pub fn aes256_sha256_modp2048() -> Self {
        IkeProposal {
            encr: vec![(12, Some(256))],
            prf: vec![5],
            integ: vec![12],
            ke: vec![14],
        }
    }
}

fn encr_of(p: &Proposal) -> Vec<(u16, Option<u16>)> {
    p.encr.iter().map(|t| (t.id, t.key_bits)).collect()
}

fn ids_of(ts: &[Transform]) -> Vec<u16> {
    ts.iter().map(|t| t.id).collect()
}

impl IkeProposal {
    /// From a proposal parsed from strongSwan syntax
    /// (`palisade_crypto::proposal::parse(Protocol::Ike, ..)`), which has
    /// already filled in the PRF strongSwan would derive.
    pub fn from_parsed(p: &Proposal) -> Self {
        IkeProposal {
            encr: encr_of(p),
            prf: ids_of(&p.prf),
            integ: ids_of(&p.integ),
            ke: ids_of(&p.ke),
        }
    }
}

impl EspProposal {
    /// From a proposal parsed from strongSwan syntax for ESP. Without an
    /// `esn`/`noesn` keyword the parser proposes no ESN, as strongSwan does.
    pub fn from_parsed(p: &Proposal) -> Self {
        EspProposal {
            encr: encr_of(p),
            integ: ids_of(&p.integ),
            ke: ids_of(&p.ke),
            esn: p.esn.iter().map(|t| t.id == 1).collect(),
        }
    }
}

/// One ESP proposal. `ke` empty: no PFS on rekey (IKE_AUTH never carries KE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspProposal {
    pub encr: Vec<(u16, Option<u16>)>,
    pub integ: Vec<u16>,
    pub ke: Vec<u16>,
    /// Extended sequence numbers acceptable, in preference order.
    pub esn: Vec<bool>,
}

impl EspProposal {
    pub fn aes256gcm16() -> Self {
        EspProposal {
            encr: vec![(20, Some(256))],
            integ: vec![],
            ke: vec![],
            esn: vec![false, true],
        }
    }
    pub fn aes256_sha256() -> Self {
        EspProposal {
            encr: vec![(12, Some(256))],
            integ: vec![12],
            ke: vec![],
            esn: vec![false, true],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tunnel,
    Transport,
}

#[derive(Debug, Clone)]
pub struct ChildConfig {
    pub name: String,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub esp_proposals: Vec<EspProposal>,
    pub mode: Mode,
    /// Rekey the CHILD_SA this long after it was installed, minus a random
    /// 0..`rand_time`. Either end rekeys on its own timer (as strongSwan
    /// does); a collision is settled by the 2.8.1 tie-break.
    pub rekey_time: Option<Duration>,
    /// Delete the CHILD_SA this long after it was installed (the hard
    /// limit; a rekey normally replaces it before).
    pub life_time: Option<Duration>,
    /// Jitter subtracted from `rekey_time`; `None` means
    /// `life_time - rekey_time` when both are set (strongSwan's default),
    /// else none.
    pub rand_time: Option<Duration>,
    /// Volume limits. The engine does not see traffic: the data plane counts
    /// and reports reaching a soft (`rekey_*`) or hard (`life_*`) limit
    /// through [`crate::Endpoint::child_sa_expired`]. They are here so one
    /// configuration carries everything.
    pub rekey_bytes: Option<u64>,
    pub life_bytes: Option<u64>,
    pub rekey_packets: Option<u64>,
    pub life_packets: Option<u64>,
}

/// `rekey - random(0..rand)` and `life` as offsets from the start of an SA,
/// strongSwan's rules: `rand` defaults to `life - rekey`, and is cut so the
/// rekey never falls before the start. `draw(d)` returns a value in 0..d.
pub(crate) fn lifetimes(
    rekey: Option<Duration>,
    life: Option<Duration>,
    rand: Option<Duration>,
    draw: impl FnOnce(Duration) -> Duration,
) -> (Option<Duration>, Option<Duration>) {
    let rekey_at = rekey.map(|r| {
        let jitter = rand
            .or_else(|| life.map(|l| l.saturating_sub(r)))
            .unwrap_or_default()
            .min(r);
        if jitter.is_zero() {
            r
        } else {
            r - draw(jitter)
        }
    });
    (rekey_at, life)
}

impl ChildConfig {
    pub fn tunnel(name: &str, local: TrafficSelector, remote: TrafficSelector) -> Self {
        ChildConfig {
            name: name.to_string(),
            local_ts: vec![local],
            remote_ts: vec![remote],
            esp_proposals: vec![EspProposal::aes256gcm16()],
            mode: Mode::Tunnel,
            rekey_time: None,
            life_time: None,
            rand_time: None,
            rekey_bytes: None,
            life_bytes: None,
            rekey_packets: None,
            life_packets: None,
        }
    }
}

/// IKE identities (RFC 7296 3.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Fqdn(String),
    Rfc822(String),
    KeyId(Vec<u8>),
}

impl Identity {
    pub fn addr(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => Identity::Ipv4(a),
            IpAddr::V6(a) => Identity::Ipv6(a),
        }
    }

    pub fn to_payload(&self) -> IdPayload {
        let (id_type, data) = match self {
            Identity::Ipv4(a) => (id::IPV4_ADDR, a.octets().to_vec()),
            Identity::Ipv6(a) => (id::IPV6_ADDR, a.octets().to_vec()),
            Identity::Fqdn(s) => (id::FQDN, s.as_bytes().to_vec()),
            Identity::Rfc822(s) => (id::RFC822_ADDR, s.as_bytes().to_vec()),
            Identity::KeyId(k) => (id::KEY_ID, k.clone()),
        };
        IdPayload { id_type, data }
    }

    /// `None` for types we do not match on (DNs and others).
    pub fn from_payload(p: &IdPayload) -> Option<Identity> {
        Some(match p.id_type {
            id::IPV4_ADDR => Identity::Ipv4(Ipv4Addr::from(<[u8; 4]>::try_from(&p.data[..]).ok()?)),
            id::IPV6_ADDR => {
                Identity::Ipv6(Ipv6Addr::from(<[u8; 16]>::try_from(&p.data[..]).ok()?))
            }
            id::FQDN => Identity::Fqdn(String::from_utf8(p.data.clone()).ok()?),
            id::RFC822_ADDR => Identity::Rfc822(String::from_utf8(p.data.clone()).ok()?),
            id::KEY_ID => Identity::KeyId(p.data.clone()),
            _ => return None,
        })
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Ipv6(a) => write!(f, "{a}"),
            Identity::Fqdn(s) => write!(f, "{s}"),
            Identity::Rfc822(s) => write!(f, "{s}"),
            Identity::KeyId(k) => {
                write!(f, "keyid:")?;
                k.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_crypto::proposal::{parse, Protocol};

    #[test]
    fn lifetimes_follow_strongswan() {
        let s = Duration::from_secs;
        let no_draw = |_| panic!("no jitter expected");
        assert_eq!(lifetimes(None, None, None, no_draw), (None, None));
        assert_eq!(
            lifetimes(Some(s(60)), None, None, no_draw),
            (Some(s(60)), None)
        );
        assert_eq!(
            lifetimes(None, Some(s(60)), Some(s(5)), no_draw),
            (None, Some(s(60)))
        );
        // rand_time defaults to life - rekey; the draw is below it.
        let mut asked = None;
        let r = lifetimes(Some(s(60)), Some(s(80)), None, |d| {
            asked = Some(d);
            d - Duration::from_nanos(1)
        });
        assert_eq!(asked, Some(s(20)));
        assert_eq!(r, (Some(s(40) + Duration::from_nanos(1)), Some(s(80))));
        // An explicit rand_time wins, and is cut to rekey_time.
        let mut asked = None;
        lifetimes(Some(s(60)), Some(s(80)), Some(s(500)), |d| {
            asked = Some(d);
            Duration::ZERO
        });
        assert_eq!(asked, Some(s(60)));
        // life <= rekey: no jitter (nothing to spread into).
        assert_eq!(
            lifetimes(Some(s(60)), Some(s(50)), None, no_draw),
            (Some(s(60)), Some(s(50)))
        );
    }

    #[test]
    fn strongswan_syntax_becomes_iana_ids() {
        let ike = parse(Protocol::Ike, "aes256gcm16-prfsha256-x25519").unwrap();
        assert_eq!(
            IkeProposal::from_parsed(&ike[0]),
            IkeProposal::aes256gcm16_prfsha256_x25519()
        );
        let ike = parse(Protocol::Ike, "aes256-sha256-modp2048").unwrap();
        assert_eq!(
            IkeProposal::from_parsed(&ike[0]),
            IkeProposal::aes256_sha256_modp2048()
        );
        let esp = parse(Protocol::Esp, "aes256-sha256").unwrap();
        let e = EspProposal::from_parsed(&esp[0]);
        assert_eq!(
            (e.encr, e.integ, e.esn),
            (vec![(12, Some(256))], vec![12], vec![false])
        );
        let esp = parse(Protocol::Esp, "chacha20poly1305-x25519-esn").unwrap();
        let e = EspProposal::from_parsed(&esp[0]);
        assert_eq!(
            (e.encr, e.ke, e.esn),
            (vec![(28, None)], vec![31], vec![true])
        );
    }
}
