//! The Peer Authorization Database (RFC 4301 4.4.3).
//!
//! It links the SPD to IKE: for each peer (or group of peers) it says which
//! identities are accepted, how the peer must authenticate, and which traffic
//! selectors it may ask child SAs for. RFC 4301 4.4.3.1: "the PAD entries are
//! ordered [...] matching is performed on the ID payload [...] with exact
//! matches preferred" — here an exact identity always wins over a pattern, and
//! among patterns the first inserted wins.
//!
//! Identities are those of RFC 7296 3.5: ID_IPV4_ADDR, ID_IPV6_ADDR, ID_FQDN,
//! ID_RFC822_ADDR, ID_DER_ASN1_DN, ID_KEY_ID. Patterns ([`IdPattern`]) add
//! address ranges, `*.example.com` (FQDN suffix), `*@example.com` (any user at
//! a domain) and ANY. Text forms follow strongSwan: `@host` forces an FQDN,
//! `@#hex` is a KEY_ID, `user@domain` is an RFC822 address.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::HashMap;

use thiserror::Error;

use crate::selector::{AddrRange, Selector};

/// A peer identity (RFC 7296 3.5). FQDNs and RFC822 domains are kept in
/// lower case without a trailing dot, so comparison is by value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerId {
    /// ID_IPV4_ADDR (1).
    Ipv4(Ipv4Addr),
    /// ID_IPV6_ADDR (5).
    Ipv6(Ipv6Addr),
    /// ID_FQDN (2).
    Fqdn(String),
    /// ID_RFC822_ADDR (3).
    Rfc822(String),
    /// ID_DER_ASN1_DN (9): the DER encoding of a Name.
    DerDn(Vec<u8>),
    /// ID_KEY_ID (11): opaque octets.
    KeyId(Vec<u8>),
}

impl PeerId {
    /// RFC 7296 ID type number.
    pub fn id_type(&self) -> u8 {
        match self {
            PeerId::Ipv4(_) => 1,
            PeerId::Fqdn(_) => 2,
            PeerId::Rfc822(_) => 3,
            PeerId::Ipv6(_) => 5,
            PeerId::DerDn(_) => 9,
            PeerId::KeyId(_) => 11,
        }
    }

    /// An FQDN, normalised.
    pub fn fqdn(name: &str) -> Self {
        PeerId::Fqdn(normalise_dns(name))
    }

    /// An RFC822 address, with the domain part normalised (the local part is
    /// kept as is: RFC 5321 lets it be case-sensitive).
    pub fn rfc822(addr: &str) -> Self {
        match addr.rsplit_once('@') {
            Some((user, dom)) => PeerId::Rfc822(format!("{user}@{}", normalise_dns(dom))),
            None => PeerId::Rfc822(addr.to_string()),
        }
    }

    /// From an IP address.
    pub fn ip(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => PeerId::Ipv4(a),
            IpAddr::V6(a) => PeerId::Ipv6(a),
        }
    }
}

impl core::fmt::Display for PeerId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PeerId::Ipv4(a) => write!(f, "{a}"),
            PeerId::Ipv6(a) => write!(f, "{a}"),
            PeerId::Fqdn(n) => write!(f, "@{n}"),
            PeerId::Rfc822(n) => write!(f, "{n}"),
            PeerId::DerDn(d) => write!(f, "dn:{}", hex_string(d)),
            PeerId::KeyId(k) => write!(f, "@#{}", hex_string(k)),
        }
    }
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn normalise_dns(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Text that is no identity.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PadError {
    /// Could not parse.
    #[error("cannot parse peer identity {0:?}: expected an IP address or range, @fqdn, user@domain, *.domain, *@domain, @#hex (KEY_ID) or \"any\"")]
    Syntax(String),
}

/// Which identities a PAD entry accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdPattern {
    /// This identity exactly.
    Exact(PeerId),
    /// An IPv4/IPv6 identity inside this range.
    Addresses(AddrRange),
    /// An FQDN equal to or under this domain (`*.example.com` stores
    /// `example.com`; it matches `a.example.com` and `b.a.example.com`, not
    /// `example.com` itself).
    FqdnSuffix(String),
    /// An RFC822 address at this domain (`*@example.com`).
    Rfc822Domain(String),
    /// Anybody (authentication still applies).
    Any,
}

impl IdPattern {
    /// Whether `id` matches.
    pub fn matches(&self, id: &PeerId) -> bool {
        match (self, id) {
            (IdPattern::Any, _) => true,
            (IdPattern::Exact(e), id) => e == id,
            (IdPattern::Addresses(r), PeerId::Ipv4(a)) => r.contains(&IpAddr::V4(*a)),
            (IdPattern::Addresses(r), PeerId::Ipv6(a)) => r.contains(&IpAddr::V6(*a)),
            (IdPattern::FqdnSuffix(dom), PeerId::Fqdn(name)) => {
                name.len() > dom.len() + 1
                    && name.ends_with(dom.as_str())
                    && name.as_bytes()[name.len() - dom.len() - 1] == b'.'
            }
            (IdPattern::Rfc822Domain(dom), PeerId::Rfc822(addr)) => {
                addr.rsplit_once('@').is_some_and(|(_, d)| d == dom)
            }
            _ => false,
        }
    }

    /// Parse the text form (see the module docs).
    pub fn parse(s: &str) -> Result<Self, PadError> {
        let s = s.trim();
        let bad = || PadError::Syntax(s.to_string());
        if s.is_empty() {
            return Err(bad());
        }
        if s.eq_ignore_ascii_case("any") || s == "%any" || s == "*" {
            return Ok(IdPattern::Any);
        }
        if let Some(hex) = s.strip_prefix("@#") {
            return decode_hex(hex)
                .map(|k| IdPattern::Exact(PeerId::KeyId(k)))
                .ok_or_else(bad);
        }
        if let Some(dom) = s.strip_prefix("*@") {
            return valid_dns(dom)
                .then(|| IdPattern::Rfc822Domain(normalise_dns(dom)))
                .ok_or_else(bad);
        }
        if let Some(dom) = s.strip_prefix("*.").or_else(|| s.strip_prefix("@*.")) {
            return valid_dns(dom)
                .then(|| IdPattern::FqdnSuffix(normalise_dns(dom)))
                .ok_or_else(bad);
        }
        if let Some(name) = s.strip_prefix('@') {
            return valid_dns(name)
                .then(|| IdPattern::Exact(PeerId::fqdn(name)))
                .ok_or_else(bad);
        }
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(IdPattern::Exact(PeerId::ip(a)));
        }
        if let Ok(r) = s.parse::<AddrRange>() {
            return Ok(IdPattern::Addresses(r));
        }
        if let Some((user, dom)) = s.rsplit_once('@') {
            return (!user.is_empty() && valid_dns(dom))
                .then(|| IdPattern::Exact(PeerId::rfc822(s)))
                .ok_or_else(bad);
        }
        valid_dns(s)
            .then(|| IdPattern::Exact(PeerId::fqdn(s)))
            .ok_or_else(bad)
    }
}

fn valid_dns(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// How a peer must prove its identity. The secret or trust anchor itself is
/// held elsewhere (the daemon's credential store); the PAD names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// Pre-shared key, by credential name.
    Psk {
        /// Name of the key in the credential store.
        key_ref: String,
    },
    /// Signature with a key certified by (or pinned as) this reference.
    PubKey {
        /// Trust anchor or pinned key name.
        trust_ref: String,
    },
    /// EAP, with the method and backend named.
    Eap {
        /// E.g. `mschapv2`, `tls`, `radius`.
        method_ref: String,
    },
}

/// One PAD entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PadEntry {
    /// Name for logs (the connection name).
    pub name: String,
    /// Accepted identities.
    pub id: IdPattern,
    /// Required authentication.
    pub auth: AuthMethod,
    /// Traffic selectors child SAs with this peer may cover (RFC 4301 4.4.3.3:
    /// "the PAD entry [...] constrains the [...] SPD entries [...] the peer is
    /// allowed to create"), from this host's point of view.
    pub allowed: Vec<Selector>,
}

impl PadEntry {
    /// Whether the peer may have a child SA for `requested` (one of the
    /// allowed selectors covers it entirely).
    pub fn authorizes(&self, requested: &Selector) -> bool {
        self.allowed.iter().any(|a| a.covers(requested))
    }
}

/// The PAD.
#[derive(Debug, Clone, Default)]
pub struct Pad {
    entries: Vec<PadEntry>,
    exact: HashMap<PeerId, usize>,
    patterns: Vec<usize>,
}

impl Pad {
    /// An empty PAD (which authorizes nobody).
    pub fn new() -> Self {
        Self::default()
    }

    /// Add an entry. A second entry with the same exact identity is kept but
    /// shadowed by the first (ordered database: the first wins).
    pub fn insert(&mut self, entry: PadEntry) {
        let i = self.entries.len();
        match &entry.id {
            IdPattern::Exact(id) => {
                self.exact.entry(id.clone()).or_insert(i);
            }
            _ => self.patterns.push(i),
        }
        self.entries.push(entry);
    }

    /// The entry for `id`: an exact match first, else the first pattern that
    /// matches.
    pub fn lookup(&self, id: &PeerId) -> Option<&PadEntry> {
        if let Some(&i) = self.exact.get(id) {
            return self.entries.get(i);
        }
        self.patterns
            .iter()
            .filter_map(|&i| self.entries.get(i))
            .find(|e| e.id.matches(id))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &PadEntry> + '_ {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, id: &str) -> PadEntry {
        PadEntry {
            name: name.into(),
            id: IdPattern::parse(id).unwrap(),
            auth: AuthMethod::Psk {
                key_ref: name.into(),
            },
            allowed: vec![Selector::between(
                "10.1.0.0/16".parse().unwrap(),
                "10.2.0.0/16".parse().unwrap(),
            )],
        }
    }

    #[test]
    fn parse_forms() {
        assert_eq!(
            IdPattern::parse("@gw.Example.COM.").unwrap(),
            IdPattern::Exact(PeerId::Fqdn("gw.example.com".into()))
        );
        assert_eq!(
            IdPattern::parse("gw.example.com").unwrap(),
            IdPattern::Exact(PeerId::fqdn("gw.example.com"))
        );
        assert_eq!(
            IdPattern::parse("alice@Example.com").unwrap(),
            IdPattern::Exact(PeerId::Rfc822("alice@example.com".into()))
        );
        assert_eq!(
            IdPattern::parse("*.example.com").unwrap(),
            IdPattern::FqdnSuffix("example.com".into())
        );
        assert_eq!(
            IdPattern::parse("*@example.com").unwrap(),
            IdPattern::Rfc822Domain("example.com".into())
        );
        assert_eq!(
            IdPattern::parse("@#0a0B").unwrap(),
            IdPattern::Exact(PeerId::KeyId(vec![10, 11]))
        );
        assert_eq!(
            IdPattern::parse("192.0.2.1").unwrap(),
            IdPattern::Exact(PeerId::Ipv4("192.0.2.1".parse().unwrap()))
        );
        assert!(matches!(
            IdPattern::parse("192.0.2.0/24").unwrap(),
            IdPattern::Addresses(_)
        ));
        assert_eq!(IdPattern::parse("%any").unwrap(), IdPattern::Any);
        for bad in ["", "@#abc", "@#zz", "*.", "bad name", "@", "a@"] {
            let e = IdPattern::parse(bad).unwrap_err();
            assert!(
                e.to_string().contains("cannot parse peer identity"),
                "{bad}"
            );
        }
    }

    #[test]
    fn exact_before_wildcard() {
        let mut pad = Pad::new();
        pad.insert(entry("wild", "*.example.com"));
        pad.insert(entry("gw", "@gw.example.com"));
        pad.insert(entry("users", "*@example.com"));
        pad.insert(entry("net", "192.0.2.0/24"));
        assert_eq!(
            pad.lookup(&PeerId::fqdn("GW.example.com")).unwrap().name,
            "gw"
        );
        assert_eq!(
            pad.lookup(&PeerId::fqdn("x.y.example.com")).unwrap().name,
            "wild"
        );
        assert!(pad.lookup(&PeerId::fqdn("example.com")).is_none());
        assert!(pad.lookup(&PeerId::fqdn("badexample.com")).is_none());
        assert_eq!(
            pad.lookup(&PeerId::rfc822("bob@EXAMPLE.com")).unwrap().name,
            "users"
        );
        assert_eq!(
            pad.lookup(&PeerId::ip("192.0.2.77".parse().unwrap()))
                .unwrap()
                .name,
            "net"
        );
        assert!(pad.lookup(&PeerId::KeyId(vec![1])).is_none());
    }

    #[test]
    fn child_sa_authorization() {
        let e = entry("gw", "@gw.example.com");
        let ok = Selector::between("10.1.2.0/24".parse().unwrap(), "10.2.0.5".parse().unwrap());
        let too_wide =
            Selector::between("10.0.0.0/8".parse().unwrap(), "10.2.0.5".parse().unwrap());
        assert!(e.authorizes(&ok));
        assert!(!e.authorizes(&too_wide));
    }
}
