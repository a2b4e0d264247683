//! strongSwan proposal syntax -> IKEv2 transforms by IANA number.
//!
//! Operators copy proposals such as `aes256gcm16-prfsha256-x25519` straight from
//! their `swanctl.conf` / `ipsec.conf`, so palisade reads the same keywords (the
//! table in strongSwan's "IKEv2 Cipher Suites" documentation) and turns them into
//! what the wire speaks: lists of (transform type, IANA transform ID, key length)
//! per the IANA "IKEv2 Parameters" registry.
//!
//! A proposal is a list of keywords joined by `-`; order within one transform
//! type is preference order, order across types does not matter. `default`
//! expands to palisade's default proposals. A keyword prefixed with `ke1_` ..
//! `ke7_` is an additional key exchange (RFC 9370, transform types 6..12).
//!
//! Everything here is pure parsing: no keyword is refused for being legacy at
//! parse time; [`Proposal::check_policy`] does that, so `check-config` can name
//! every insecure algorithm with the connection it belongs to.

use crate::Policy;
use std::fmt;

/// IANA IKEv2 transform IDs used by the keyword table. ENCR, PRF and INTEG
/// come from the registry (it names every IANA value, implemented or not); the
/// key-exchange list is kept here because it also names groups palisade parses
/// but does not implement (ECP-192, Brainpool...), so that the error can say
/// "not supported" instead of "unknown keyword".
pub mod ids {
    pub use crate::registry::encr;
    pub use crate::registry::integ_id as integ;
    pub use crate::registry::prf_id as prf;

    /// Transform Type 4 (Key Exchange Method; "D-H group" before RFC 9370).
    pub mod ke {
        pub const MODP_768: u16 = 1;
        pub const MODP_1024: u16 = 2;
        pub const MODP_1536: u16 = 5;
        pub const MODP_2048: u16 = 14;
        pub const MODP_3072: u16 = 15;
        pub const MODP_4096: u16 = 16;
        pub const MODP_6144: u16 = 17;
        pub const MODP_8192: u16 = 18;
        pub const ECP_256: u16 = 19;
        pub const ECP_384: u16 = 20;
        pub const ECP_521: u16 = 21;
        pub const MODP_1024_S160: u16 = 22;
        pub const MODP_2048_S224: u16 = 23;
        pub const MODP_2048_S256: u16 = 24;
        pub const ECP_192: u16 = 25;
        pub const ECP_224: u16 = 26;
        pub const BRAINPOOL_224: u16 = 27;
        pub const BRAINPOOL_256: u16 = 28;
        pub const BRAINPOOL_384: u16 = 29;
        pub const BRAINPOOL_512: u16 = 30;
        pub const CURVE25519: u16 = 31;
        pub const CURVE448: u16 = 32;
        pub const ML_KEM_512: u16 = 35;
        pub const ML_KEM_768: u16 = 36;
        pub const ML_KEM_1024: u16 = 37;
    }
    /// Transform Type 5 (Extended Sequence Numbers).
    pub mod esn {
        pub const NO_ESN: u16 = 0;
        pub const ESN: u16 = 1;
    }
}

/// Which protocol a proposal is for; the same keyword can mean different
/// transforms (`aes128gmac` is ENCR 21 in ESP but INTEG 9 in AH) and each
/// protocol needs different transform types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Ike,
    Esp,
    Ah,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Ike => "IKE",
            Protocol::Esp => "ESP",
            Protocol::Ah => "AH",
        })
    }
}

/// IKEv2 transform types (RFC 7296 3.3.2, RFC 9370 for ADDKE1..7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransformType {
    Encr,
    Prf,
    Integ,
    Ke,
    Esn,
    /// Additional Key Exchange 1..=7 (RFC 9370), wire types 6..=12.
    AddKe(u8),
}

impl TransformType {
    /// The number carried in the Transform substructure's "Transform Type" field.
    pub fn wire_value(self) -> u8 {
        match self {
            TransformType::Encr => 1,
            TransformType::Prf => 2,
            TransformType::Integ => 3,
            TransformType::Ke => 4,
            TransformType::Esn => 5,
            TransformType::AddKe(n) => 5 + n,
        }
    }
}

/// One transform: what the Transform substructure carries on the wire, plus the
/// keyword it came from so messages can use the operator's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transform {
    pub kind: TransformType,
    /// IANA transform ID within `kind`.
    pub id: u16,
    /// Key Length attribute (bits) for variable-length ciphers (AES, Camellia,
    /// Blowfish); `None` for fixed-length ones.
    pub key_bits: Option<u16>,
    /// The strongSwan keyword as written (lower-cased).
    pub keyword: &'static str,
}

/// One parsed proposal, transforms in preference order per type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub protocol: Protocol,
    /// The text it was parsed from (or the expansion of `default`).
    pub text: String,
    pub encr: Vec<Transform>,
    pub prf: Vec<Transform>,
    pub integ: Vec<Transform>,
    pub ke: Vec<Transform>,
    pub esn: Vec<Transform>,
    /// Additional key exchanges ADDKE1..ADDKE7 (index 0 is ADDKE1).
    pub add_ke: [Vec<Transform>; 7],
}

/// Why a proposal string was not accepted. The `Display` text is meant for the
/// operator: it names the proposal, the token and what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposalError {
    /// An empty string, or `--` / a trailing `-` leaving an empty keyword.
    Empty { proposal: String },
    /// The keyword is not in the table.
    Unknown {
        proposal: String,
        token: String,
        suggestion: Option<String>,
    },
    /// The keyword is known but cannot appear in this protocol's proposals.
    WrongProtocol {
        proposal: String,
        token: String,
        protocol: Protocol,
        why: &'static str,
    },
    /// The combination of keywords does not make a valid proposal.
    Invalid {
        proposal: String,
        protocol: Protocol,
        why: String,
    },
    /// Parsed, but palisade does not implement it.
    Unsupported {
        proposal: String,
        token: String,
        why: &'static str,
    },
    /// An insecure algorithm while the policy does not allow them.
    Insecure {
        proposal: String,
        algorithm: &'static str,
        why: &'static str,
    },
}

impl fmt::Display for ProposalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposalError::Empty { proposal } => write!(
                f,
                "proposal `{proposal}` has an empty keyword; write keywords joined by single `-`, e.g. `aes256gcm16-prfsha256-x25519`"
            ),
            ProposalError::Unknown { proposal, token, suggestion } => {
                write!(f, "unknown algorithm `{token}` in proposal `{proposal}`")?;
                match suggestion {
                    Some(s) => write!(f, "; did you mean `{s}`?"),
                    None => write!(f, "; see strongSwan's IKEv2 cipher suite keywords"),
                }
            }
            ProposalError::WrongProtocol { proposal, token, protocol, why } => {
                write!(f, "`{token}` in {protocol} proposal `{proposal}`: {why}")
            }
            ProposalError::Invalid { proposal, protocol, why } => {
                write!(f, "{protocol} proposal `{proposal}`: {why}")
            }
            ProposalError::Unsupported { proposal, token, why } => {
                write!(f, "proposal `{proposal}`: `{token}` is not supported yet ({why})")
            }
            ProposalError::Insecure { proposal, algorithm, why } => write!(
                f,
                "proposal `{proposal}` uses {algorithm}, which is insecure ({why}); set allow_insecure = true to use it"
            ),
        }
    }
}

impl std::error::Error for ProposalError {}

/// What a keyword denotes before the protocol is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    /// Encryption; `aead` says whether it also provides integrity.
    Encr {
        id: u16,
        bits: Option<u16>,
        aead: bool,
    },
    Integ(u16),
    Prf(u16),
    Ke(u16),
    Esn(u16),
    /// `aesNNNgmac`: ENCR_NULL_AUTH_AES_GMAC in ESP, AUTH_AES_NNN_GMAC in AH.
    Gmac {
        bits: u16,
    },
    /// A strongSwan keyword palisade knows but does not implement.
    Unsupported(&'static str),
}

/// Fixed (non-family) keywords. Family keywords (aesNNN..., camelliaNNN...) are
/// decoded by [`family`], so the table stays short and cannot drift out of step.
const FIXED: &[(&str, Meaning)] = {
    use ids::*;
    use Meaning::*;
    const fn e(id: u16, bits: Option<u16>) -> Meaning {
        Encr {
            id,
            bits,
            aead: false,
        }
    }
    &[
        ("null", e(encr::NULL, None)),
        ("aes", e(encr::AES_CBC, Some(128))),
        ("3des", e(encr::TRIPLE_DES, None)),
        ("des", e(encr::DES, None)),
        ("cast128", e(encr::CAST, Some(128))),
        ("blowfish", e(encr::BLOWFISH, Some(128))),
        ("blowfish128", e(encr::BLOWFISH, Some(128))),
        ("blowfish192", e(encr::BLOWFISH, Some(192))),
        ("blowfish256", e(encr::BLOWFISH, Some(256))),
        ("camellia", e(encr::CAMELLIA_CBC, Some(128))),
        ("chacha20poly1305", Encr { id: encr::CHACHA20_POLY1305, bits: None, aead: true }),
        ("md5", Integ(integ::HMAC_MD5_96)),
        ("md5_128", Integ(integ::HMAC_MD5_128)),
        ("sha1", Integ(integ::HMAC_SHA1_96)),
        ("sha", Integ(integ::HMAC_SHA1_96)),
        ("sha1_160", Integ(integ::HMAC_SHA1_160)),
        ("aesxcbc", Integ(integ::AES_XCBC_96)),
        ("aescmac", Integ(integ::AES_CMAC_96)),
        ("sha256", Integ(integ::HMAC_SHA2_256_128)),
        ("sha2_256", Integ(integ::HMAC_SHA2_256_128)),
        ("sha384", Integ(integ::HMAC_SHA2_384_192)),
        ("sha2_384", Integ(integ::HMAC_SHA2_384_192)),
        ("sha512", Integ(integ::HMAC_SHA2_512_256)),
        ("sha2_512", Integ(integ::HMAC_SHA2_512_256)),
        (
            "sha256_96",
            Unsupported("strongSwan's non-standard 96-bit truncation of HMAC-SHA-256 for old Linux kernels; use `sha256`"),
        ),
        (
            "sha2_256_96",
            Unsupported("strongSwan's non-standard 96-bit truncation of HMAC-SHA-256 for old Linux kernels; use `sha256`"),
        ),
        ("prfmd5", Prf(prf::HMAC_MD5)),
        ("prfsha1", Prf(prf::HMAC_SHA1)),
        ("prfaesxcbc", Prf(prf::AES128_XCBC)),
        ("prfaescmac", Prf(prf::AES128_CMAC)),
        ("prfsha256", Prf(prf::HMAC_SHA2_256)),
        ("prfsha384", Prf(prf::HMAC_SHA2_384)),
        ("prfsha512", Prf(prf::HMAC_SHA2_512)),
        ("modp768", Ke(ke::MODP_768)),
        ("modp1024", Ke(ke::MODP_1024)),
        ("modp1536", Ke(ke::MODP_1536)),
        ("modp2048", Ke(ke::MODP_2048)),
        ("modp3072", Ke(ke::MODP_3072)),
        ("modp4096", Ke(ke::MODP_4096)),
        ("modp6144", Ke(ke::MODP_6144)),
        ("modp8192", Ke(ke::MODP_8192)),
        ("modp1024s160", Ke(ke::MODP_1024_S160)),
        ("modp2048s224", Ke(ke::MODP_2048_S224)),
        ("modp2048s256", Ke(ke::MODP_2048_S256)),
        ("ecp192", Ke(ke::ECP_192)),
        ("ecp224", Ke(ke::ECP_224)),
        ("ecp256", Ke(ke::ECP_256)),
        ("ecp384", Ke(ke::ECP_384)),
        ("ecp521", Ke(ke::ECP_521)),
        ("ecp224bp", Ke(ke::BRAINPOOL_224)),
        ("ecp256bp", Ke(ke::BRAINPOOL_256)),
        ("ecp384bp", Ke(ke::BRAINPOOL_384)),
        ("ecp512bp", Ke(ke::BRAINPOOL_512)),
        ("curve25519", Ke(ke::CURVE25519)),
        ("x25519", Ke(ke::CURVE25519)),
        ("curve448", Ke(ke::CURVE448)),
        ("x448", Ke(ke::CURVE448)),
        ("mlkem512", Ke(ke::ML_KEM_512)),
        ("mlkem768", Ke(ke::ML_KEM_768)),
        ("mlkem1024", Ke(ke::ML_KEM_1024)),
        ("esn", Esn(esn::ESN)),
        ("noesn", Esn(esn::NO_ESN)),
    ]
};

/// Suffixes of the `aesNNN...` / `camelliaNNN...` families, with the ICV-length
/// spellings strongSwan accepts in bytes (16) and bits (128). The preferred
/// spelling of each comes first so that suggestions offer it.
const AES_SUFFIXES: &[(&str, u16, bool)] = {
    use ids::encr::*;
    &[
        ("", AES_CBC, false),
        ("ctr", AES_CTR, false),
        ("gcm16", AES_GCM_16, true),
        ("gcm128", AES_GCM_16, true),
        ("gcm12", AES_GCM_12, true),
        ("gcm96", AES_GCM_12, true),
        ("gcm8", AES_GCM_8, true),
        ("gcm64", AES_GCM_8, true),
        ("ccm16", AES_CCM_16, true),
        ("ccm128", AES_CCM_16, true),
        ("ccm12", AES_CCM_12, true),
        ("ccm96", AES_CCM_12, true),
        ("ccm8", AES_CCM_8, true),
        ("ccm64", AES_CCM_8, true),
    ]
};

const CAMELLIA_SUFFIXES: &[(&str, u16, bool)] = {
    use ids::encr::*;
    &[
        ("", CAMELLIA_CBC, false),
        ("ctr", CAMELLIA_CTR, false),
        ("ccm16", CAMELLIA_CCM_16, true),
        ("ccm128", CAMELLIA_CCM_16, true),
        ("ccm12", CAMELLIA_CCM_12, true),
        ("ccm96", CAMELLIA_CCM_12, true),
        ("ccm8", CAMELLIA_CCM_8, true),
        ("ccm64", CAMELLIA_CCM_8, true),
    ]
};

const KEY_SIZES: [u16; 3] = [128, 192, 256];

/// Decodes `aes256gcm16`, `camellia128ctr`, `aes192gmac`... into a meaning.
fn family(token: &str) -> Option<Meaning> {
    let (rest, suffixes) = if let Some(r) = token.strip_prefix("aes") {
        (r, AES_SUFFIXES)
    } else if let Some(r) = token.strip_prefix("camellia") {
        (r, CAMELLIA_SUFFIXES)
    } else {
        return None;
    };
    let bits = KEY_SIZES
        .iter()
        .copied()
        .find(|b| rest.starts_with(&b.to_string()))?;
    let suffix = &rest[3..];
    if suffix == "gmac" && suffixes == AES_SUFFIXES {
        return Some(Meaning::Gmac { bits });
    }
    let &(_, id, aead) = suffixes.iter().find(|(s, _, _)| *s == suffix)?;
    Some(Meaning::Encr {
        id,
        bits: Some(bits),
        aead,
    })
}

/// The keyword as a `'static` string (so transforms can carry it without
/// allocating), and what it means; `None` if it is not a keyword.
fn lookup(token: &str) -> Option<(&'static str, Meaning)> {
    if let Some(&(kw, m)) = FIXED.iter().find(|(k, _)| *k == token) {
        return Some((kw, m));
    }
    let m = family(token)?;
    let kw = all_keywords().iter().copied().find(|k| *k == token)?;
    Some((kw, m))
}

/// Every keyword, fixed ones and the expanded families, in table order.
fn all_keywords() -> &'static [&'static str] {
    use std::sync::OnceLock;
    static ALL: OnceLock<Vec<&'static str>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut v: Vec<&'static str> = Vec::new();
        for (prefix, suffixes) in [("aes", AES_SUFFIXES), ("camellia", CAMELLIA_SUFFIXES)] {
            for bits in KEY_SIZES {
                for (s, _, _) in suffixes {
                    v.push(Box::leak(format!("{prefix}{bits}{s}").into_boxed_str()));
                }
                if prefix == "aes" {
                    v.push(Box::leak(format!("aes{bits}gmac").into_boxed_str()));
                }
            }
        }
        v.extend(FIXED.iter().map(|(k, _)| *k));
        v
    })
    .as_slice()
}

/// Levenshtein distance; keywords are short, so the quadratic version is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The keyword an operator most likely meant. A keyword that extends what was
/// typed wins (`aes256gcm` -> `aes256gcm16`, the table lists the preferred ICV
/// first); otherwise the closest by edit distance, if it is close at all.
fn suggest(token: &str) -> Option<String> {
    let all = all_keywords();
    // Edit distance to every keyword is quadratic in the token; a token far
    // longer than any keyword is no typo.
    if token.len() > 40 {
        return None;
    }
    // `sha256prf`, `prf-sha256` split oddly: PRF keywords are `prf` + hash.
    let without_prf = token.replace("prf", "");
    if without_prf != token {
        let candidate = format!("prf{without_prf}");
        if all.contains(&candidate.as_str()) {
            return Some(candidate);
        }
    }
    if token.len() >= 3 {
        if let Some(k) = all.iter().find(|k| k.starts_with(token)) {
            return Some((*k).to_string());
        }
    }
    let (best, d) = all
        .iter()
        .map(|k| (*k, edit_distance(token, k)))
        .min_by_key(|(_, d)| *d)?;
    (d <= 3.max(token.len() / 3)).then(|| best.to_string())
}

/// Parses one proposal string (or `default`) for `protocol`. `default` yields
/// two proposals (AEAD and classic), because one proposal cannot mix them.
pub fn parse(protocol: Protocol, text: &str) -> Result<Vec<Proposal>, ProposalError> {
    let text = text.trim();
    if text == "default" {
        return Ok(defaults(protocol));
    }
    Ok(vec![parse_one(protocol, text)?])
}

/// Parses a list of proposal strings (in preference order), expanding `default`.
pub fn parse_list<S: AsRef<str>>(
    protocol: Protocol,
    texts: &[S],
) -> Result<Vec<Proposal>, ProposalError> {
    let mut out = Vec::new();
    for t in texts {
        out.extend(parse(protocol, t.as_ref())?);
    }
    Ok(out)
}

/// palisade's defaults: the algorithms it implements and considers current.
pub fn defaults(protocol: Protocol) -> Vec<Proposal> {
    let texts: &[&str] = match protocol {
        Protocol::Ike => &[
            "aes256gcm16-aes128gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-x25519-ecp256-ecp384-modp3072",
            "aes256-aes128-sha256-sha384-sha512-prfsha256-prfsha384-prfsha512-x25519-ecp256-ecp384-modp3072",
        ],
        Protocol::Esp => &["aes256gcm16-aes128gcm16-chacha20poly1305", "aes256-aes128-sha256-sha384-sha512"],
        Protocol::Ah => &["sha256-sha384-sha512"],
    };
    texts
        .iter()
        .map(|t| parse_one(protocol, t).expect("built-in default proposals parse"))
        .collect()
}

/// Parses a single proposal (no `default`).
pub fn parse_one(protocol: Protocol, text: &str) -> Result<Proposal, ProposalError> {
    let proposal = text.trim().to_string();
    // ipsec.conf marks strict proposals with a trailing `!`; palisade is always
    // strict, so accept it for configs copied over.
    let body = proposal
        .strip_suffix('!')
        .unwrap_or(&proposal)
        .to_ascii_lowercase();
    let mut p = Proposal {
        protocol,
        text: proposal.clone(),
        encr: Vec::new(),
        prf: Vec::new(),
        integ: Vec::new(),
        ke: Vec::new(),
        esn: Vec::new(),
        add_ke: Default::default(),
    };
    let mut aead_tokens = Vec::new();
    let mut classic_tokens = Vec::new();
    for token in body.split('-') {
        if token.is_empty() {
            return Err(ProposalError::Empty { proposal });
        }
        let (slot, name) = match additional_ke_slot(token) {
            Some((n, rest)) => (Some(n), rest),
            None => (None, token),
        };
        let Some((keyword, meaning)) = lookup(name) else {
            return Err(ProposalError::Unknown {
                proposal,
                token: token.to_string(),
                suggestion: suggest(name).map(|s| match slot {
                    Some(n) => format!("ke{n}_{s}"),
                    None => s,
                }),
            });
        };
        let wrong = |why| ProposalError::WrongProtocol {
            proposal: proposal.clone(),
            token: token.to_string(),
            protocol,
            why,
        };
        if let Some(n) = slot {
            let Meaning::Ke(id) = meaning else {
                return Err(wrong(
                    "the `keN_` prefix is only for key exchange methods, e.g. `ke1_mlkem768`",
                ));
            };
            if protocol == Protocol::Ah {
                return Err(wrong("AH proposals cannot carry additional key exchanges"));
            }
            let kind = TransformType::AddKe(n);
            push(
                &mut p.add_ke[usize::from(n - 1)],
                Transform {
                    kind,
                    id,
                    key_bits: None,
                    keyword,
                },
            );
            continue;
        }
        let t = |kind, id, key_bits| Transform {
            kind,
            id,
            key_bits,
            keyword,
        };
        match meaning {
            Meaning::Unsupported(why) => {
                return Err(ProposalError::Unsupported { proposal, token: token.to_string(), why })
            }
            Meaning::Encr { id, bits, aead } => {
                if protocol == Protocol::Ah {
                    return Err(wrong("AH only authenticates; use an integrity algorithm such as `sha256`, or ESP for encryption"));
                }
                if protocol == Protocol::Ike && id == ids::encr::NULL {
                    return Err(wrong("IKE SAs must be encrypted (RFC 7296 5); use e.g. `aes256gcm16`"));
                }
                (if aead { &mut aead_tokens } else { &mut classic_tokens }).push(token.to_string());
                push(&mut p.encr, t(TransformType::Encr, id, bits));
            }
            Meaning::Gmac { bits } => match protocol {
                Protocol::Esp => {
                    aead_tokens.push(token.to_string());
                    push(&mut p.encr, t(TransformType::Encr, ids::encr::NULL_AUTH_AES_GMAC, Some(bits)));
                }
                Protocol::Ah => {
                    let id = match bits {
                        128 => ids::integ::AES_128_GMAC,
                        192 => ids::integ::AES_192_GMAC,
                        _ => ids::integ::AES_256_GMAC,
                    };
                    push(&mut p.integ, t(TransformType::Integ, id, None));
                }
                Protocol::Ike => {
                    return Err(wrong("AES-GMAC authenticates without encrypting, which IKE does not allow; use `aes256gcm16`"))
                }
            },
            Meaning::Integ(id) => push(&mut p.integ, t(TransformType::Integ, id, None)),
            Meaning::Prf(id) => {
                if protocol != Protocol::Ike {
                    return Err(wrong("PRFs belong in IKE proposals only; use an integrity algorithm such as `sha256`"));
                }
                push(&mut p.prf, t(TransformType::Prf, id, None));
            }
            Meaning::Ke(id) => push(&mut p.ke, t(TransformType::Ke, id, None)),
            Meaning::Esn(id) => {
                if protocol == Protocol::Ike {
                    return Err(wrong("extended sequence numbers are a property of ESP/AH SAs, not of IKE SAs"));
                }
                push(&mut p.esn, t(TransformType::Esn, id, None));
            }
        }
    }
    p.validate(&aead_tokens, &classic_tokens)?;
    Ok(p)
}

/// `ke3_mlkem768` -> (3, "mlkem768").
fn additional_ke_slot(token: &str) -> Option<(u8, &str)> {
    let rest = token.strip_prefix("ke")?;
    let (n, name) = rest.split_once('_')?;
    let n: u8 = n.parse().ok()?;
    (1..=7).contains(&n).then_some((n, name))
}

/// Adds a transform unless it is already listed (strongSwan drops duplicates too).
fn push(list: &mut Vec<Transform>, t: Transform) {
    if !list
        .iter()
        .any(|x| x.id == t.id && x.key_bits == t.key_bits)
    {
        list.push(t);
    }
}

/// Each integrity algorithm's matching PRF, used when an IKE proposal lists no
/// PRF (strongSwan derives them the same way).
fn prf_for_integ(integ: u16) -> Option<u16> {
    use ids::{integ as i, prf as p};
    Some(match integ {
        i::HMAC_MD5_96 | i::HMAC_MD5_128 => p::HMAC_MD5,
        i::HMAC_SHA1_96 | i::HMAC_SHA1_160 => p::HMAC_SHA1,
        i::AES_XCBC_96 => p::AES128_XCBC,
        i::AES_CMAC_96 => p::AES128_CMAC,
        i::HMAC_SHA2_256_128 => p::HMAC_SHA2_256,
        i::HMAC_SHA2_384_192 => p::HMAC_SHA2_384,
        i::HMAC_SHA2_512_256 => p::HMAC_SHA2_512,
        _ => return None,
    })
}

const PRF_KEYWORDS: &[(u16, &str)] = &[
    (ids::prf::HMAC_MD5, "prfmd5"),
    (ids::prf::HMAC_SHA1, "prfsha1"),
    (ids::prf::AES128_XCBC, "prfaesxcbc"),
    (ids::prf::AES128_CMAC, "prfaescmac"),
    (ids::prf::HMAC_SHA2_256, "prfsha256"),
    (ids::prf::HMAC_SHA2_384, "prfsha384"),
    (ids::prf::HMAC_SHA2_512, "prfsha512"),
];

impl Proposal {
    /// True if the encryption algorithms are AEADs (no separate INTEG).
    pub fn is_aead(&self) -> bool {
        self.encr.first().is_some_and(|t| is_aead_encr(t.id))
    }

    /// Every transform, in wire order (by type, then preference).
    pub fn transforms(&self) -> impl Iterator<Item = &Transform> {
        self.encr
            .iter()
            .chain(&self.prf)
            .chain(&self.integ)
            .chain(&self.ke)
            .chain(&self.esn)
            .chain(self.add_ke.iter().flatten())
    }

    /// Checks that the keywords form a proposal the protocol can use, and fills
    /// the implied parts (PRF from INTEG in IKE, NO_ESN in ESP/AH).
    fn validate(&mut self, aead: &[String], classic: &[String]) -> Result<(), ProposalError> {
        let (text, protocol) = (self.text.clone(), self.protocol);
        let invalid = move |why: String| ProposalError::Invalid {
            proposal: text.clone(),
            protocol,
            why,
        };
        if let (Some(a), Some(c)) = (aead.first(), classic.first()) {
            return Err(invalid(format!(
                "mixes the AEAD `{a}` with the non-AEAD cipher `{c}`; put them in two proposals, e.g. [\"{a}-...\", \"{c}-sha256-...\"]"
            )));
        }
        let is_aead = !aead.is_empty();
        match self.protocol {
            Protocol::Ike | Protocol::Esp => {
                if self.encr.is_empty() {
                    return Err(invalid(
                        "names no encryption algorithm; add one, e.g. `aes256gcm16` or `aes256-sha256`".into(),
                    ));
                }
                if is_aead && !self.integ.is_empty() {
                    return Err(invalid(format!(
                        "`{}` already authenticates; remove the integrity algorithm `{}`",
                        aead[0], self.integ[0].keyword
                    )));
                }
                if !is_aead && self.integ.is_empty() {
                    return Err(invalid(format!(
                        "the non-AEAD cipher `{}` needs an integrity algorithm; add one, e.g. `{}-sha256`",
                        classic[0], classic[0]
                    )));
                }
            }
            Protocol::Ah => {
                if self.integ.is_empty() {
                    return Err(invalid(
                        "names no integrity algorithm; add one, e.g. `sha256`".into(),
                    ));
                }
            }
        }
        if self.protocol == Protocol::Ike {
            if self.ke.is_empty() {
                return Err(invalid(
                    "names no key exchange method; add one, e.g. `x25519`, `ecp256` or `modp3072`"
                        .into(),
                ));
            }
            if self.prf.is_empty() {
                if is_aead {
                    return Err(invalid(format!(
                        "the AEAD `{}` needs a PRF in IKE; add one, e.g. `prfsha256`",
                        aead[0]
                    )));
                }
                for id in self
                    .integ
                    .iter()
                    .filter_map(|t| prf_for_integ(t.id))
                    .collect::<Vec<_>>()
                {
                    let keyword = PRF_KEYWORDS
                        .iter()
                        .find(|(i, _)| *i == id)
                        .map_or("prf", |(_, k)| *k);
                    push(
                        &mut self.prf,
                        Transform {
                            kind: TransformType::Prf,
                            id,
                            key_bits: None,
                            keyword,
                        },
                    );
                }
                if self.prf.is_empty() {
                    return Err(invalid("no PRF can be derived from the integrity algorithms; add one, e.g. `prfsha256`".into()));
                }
            }
        } else if self.esn.is_empty() {
            self.esn.push(Transform {
                kind: TransformType::Esn,
                id: ids::esn::NO_ESN,
                key_bits: None,
                keyword: "noesn",
            });
        }
        Ok(())
    }

    /// Refuses legacy algorithms unless `policy.allow_insecure`; the error names
    /// the first one found and why it is refused.
    pub fn check_policy(&self, policy: Policy) -> Result<(), ProposalError> {
        if policy.allow_insecure {
            return Ok(());
        }
        match self.transforms().find_map(insecurity) {
            Some((algorithm, why)) => Err(ProposalError::Insecure {
                proposal: self.text.clone(),
                algorithm,
                why,
            }),
            None => Ok(()),
        }
    }

    /// Transforms that parse but palisade cannot run yet, as (keyword, reason).
    /// Config validation reports these so an operator learns it before a peer
    /// fails to negotiate.
    pub fn unsupported(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        for t in self.transforms() {
            let why = match (t.kind, t.id) {
                (TransformType::AddKe(_), _) => {
                    "additional key exchanges (RFC 9370) are parsed but not negotiated yet"
                }
                (TransformType::Encr, ids::encr::CAST | ids::encr::BLOWFISH) => {
                    "this cipher is not implemented"
                }
                (TransformType::Encr, id)
                    if (ids::encr::CAMELLIA_CBC..=ids::encr::CAMELLIA_CCM_16).contains(&id) =>
                {
                    "Camellia is not implemented"
                }
                (TransformType::Integ, ids::integ::HMAC_MD5_128 | ids::integ::HMAC_SHA1_160) => {
                    "this untruncated HMAC is not implemented"
                }
                (
                    TransformType::Ke,
                    ids::ke::MODP_1024_S160 | ids::ke::MODP_2048_S224 | ids::ke::MODP_2048_S256,
                ) => "MODP groups with prime-order subgroups are not implemented",
                (TransformType::Ke, ids::ke::ECP_192 | ids::ke::ECP_224) => {
                    "this NIST curve is not implemented"
                }
                (TransformType::Ke, id)
                    if (ids::ke::BRAINPOOL_224..=ids::ke::BRAINPOOL_512).contains(&id) =>
                {
                    "Brainpool curves are not implemented"
                }
                (TransformType::Ke, ids::ke::CURVE448) => "Curve448 is not implemented",
                _ => continue,
            };
            out.push((t.keyword, why));
        }
        out
    }
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_aead_encr(id: u16) -> bool {
    use ids::encr::*;
    matches!(
        id,
        AES_CCM_8
            | AES_CCM_12
            | AES_CCM_16
            | AES_GCM_8
            | AES_GCM_12
            | AES_GCM_16
            | NULL_AUTH_AES_GMAC
            | CAMELLIA_CCM_8
            | CAMELLIA_CCM_12
            | CAMELLIA_CCM_16
            | CHACHA20_POLY1305
    )
}

/// Why a transform is insecure, as (name for the operator, reason); `None` if
/// it is fine. The list is DESIGN.md's: DES, MD5, MODP-768/1024 and 64-bit-block
/// ciphers.
fn insecurity(t: &Transform) -> Option<(&'static str, &'static str)> {
    use ids::*;
    const BLOCK64: &str = "64-bit block, open to birthday attacks such as Sweet32";
    Some(match (t.kind, t.id) {
        (TransformType::Encr, encr::DES) => ("DES", "56-bit key, brute-forced in hours"),
        (TransformType::Encr, encr::TRIPLE_DES) => ("3DES", BLOCK64),
        (TransformType::Encr, encr::BLOWFISH) => ("Blowfish", BLOCK64),
        (TransformType::Encr, encr::CAST) => ("CAST-128", BLOCK64),
        (TransformType::Integ, integ::HMAC_MD5_96 | integ::HMAC_MD5_128)
        | (TransformType::Prf, prf::HMAC_MD5) => ("MD5", "MD5 is broken (RFC 6151)"),
        (TransformType::Ke | TransformType::AddKe(_), ke::MODP_768) => (
            "MODP-768",
            "a 768-bit group is within reach of a discrete-log computation",
        ),
        (TransformType::Ke | TransformType::AddKe(_), ke::MODP_1024) => (
            "MODP-1024",
            "1024-bit groups are within reach of nation-state precomputation (Logjam)",
        ),
        (TransformType::Ke | TransformType::AddKe(_), ke::MODP_1024_S160) => (
            "MODP-1024 with 160-bit subgroup",
            "1024-bit groups are within reach of nation-state precomputation (Logjam)",
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("sha265", "sha256"), 2);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }

    #[test]
    fn every_keyword_looks_up() {
        for k in all_keywords() {
            assert!(lookup(k).is_some(), "{k}");
        }
    }
}
