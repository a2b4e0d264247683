//! Proposal selection (RFC 7296 2.7, 3.3) and traffic selector narrowing (2.9).

use palisade_crypto::registry;
use palisade_wire::ikev2::consts::{protocol, transform};
use palisade_wire::ikev2::{AddressRange, Proposal, SaPayload, TrafficSelector, Transform};

use crate::config::{EspProposal, IkeProposal};

/// What both sides agreed on, one transform per type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    pub encr: (u16, Option<u16>),
    pub prf: Option<u16>,
    pub integ: Option<u16>,
    pub ke: Option<u16>,
    pub esn: Option<bool>,
}

impl Chosen {
    pub fn is_aead(self) -> bool {
        registry::encr_info(self.encr.0, self.encr.1)
            .map(|i| i.kind == registry::EncrKind::Aead)
            .unwrap_or(false)
    }

    /// The single proposal a responder returns, numbered as the one it took.
    pub fn to_proposal(self, number: u8, protocol_id: u8, spi: Vec<u8>) -> Proposal {
        let mut transforms = vec![encr_transform(self.encr)];
        if let Some(p) = self.prf {
            transforms.push(Transform::new(transform::PRF, p));
        }
        if let Some(i) = self.integ {
            transforms.push(Transform::new(transform::INTEG, i));
        }
        if let Some(k) = self.ke {
            transforms.push(Transform::new(transform::KE, k));
        }
        if let Some(e) = self.esn {
            transforms.push(Transform::new(transform::ESN, u16::from(e)));
        }
        Proposal {
            number,
            protocol_id,
            spi,
            transforms,
        }
    }
}

fn encr_transform((id, bits): (u16, Option<u16>)) -> Transform {
    match bits {
        Some(b) => Transform::with_key_length(transform::ENCR, id, b),
        None => Transform::new(transform::ENCR, id),
    }
}

/// Our IKE proposals as an SA payload; `first_ke` moves a group to the front
/// (after INVALID_KE_PAYLOAD named it).
pub fn ike_sa_payload(props: &[IkeProposal], spi: Vec<u8>) -> SaPayload {
    let proposals = props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t: Vec<Transform> = p.encr.iter().map(|&e| encr_transform(e)).collect();
            t.extend(p.prf.iter().map(|&x| Transform::new(transform::PRF, x)));
            t.extend(p.integ.iter().map(|&x| Transform::new(transform::INTEG, x)));
            t.extend(p.ke.iter().map(|&x| Transform::new(transform::KE, x)));
            Proposal {
                number: (i + 1) as u8,
                protocol_id: protocol::IKE,
                spi: spi.clone(),
                transforms: t,
            }
        })
        .collect();
    SaPayload { proposals }
}

/// Our ESP proposals; `pfs` adds the KE transforms (CREATE_CHILD_SA only).
pub fn esp_sa_payload(props: &[EspProposal], spi: u32, pfs: bool) -> SaPayload {
    let proposals = props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t: Vec<Transform> = p.encr.iter().map(|&e| encr_transform(e)).collect();
            t.extend(p.integ.iter().map(|&x| Transform::new(transform::INTEG, x)));
            if pfs {
                t.extend(p.ke.iter().map(|&x| Transform::new(transform::KE, x)));
            }
            let esn = if p.esn.is_empty() {
                &[false][..]
            } else {
                &p.esn[..]
            };
            t.extend(
                esn.iter()
                    .map(|&e| Transform::new(transform::ESN, u16::from(e))),
            );
            Proposal {
                number: (i + 1) as u8,
                protocol_id: protocol::ESP,
                spi: spi.to_be_bytes().to_vec(),
                transforms: t,
            }
        })
        .collect();
    SaPayload { proposals }
}

/// Ours, flattened to the same shape as a received proposal's transforms.
struct Offer<'a> {
    encr: &'a [(u16, Option<u16>)],
    prf: &'a [u16],
    integ: &'a [u16],
    ke: &'a [u16],
    esn: Option<Vec<bool>>,
}

fn pick_u16(theirs: &[&Transform], ours: &[u16]) -> Option<u16> {
    theirs
        .iter()
        .map(|t| t.transform_id)
        .find(|id| ours.contains(id))
}

/// The first of the peer's transforms of each type that we also offer, for
/// the peer's proposal `p` against our `o`. `None` if a type cannot be agreed.
fn match_one(p: &Proposal, o: &Offer<'_>, want_prf: bool) -> Option<Chosen> {
    let of = |ty: u8| -> Vec<&Transform> {
        p.transforms
            .iter()
            .filter(|t| t.transform_type == ty)
            .collect()
    };
    // Any transform type we do not understand makes the proposal unusable.
    if p.transforms
        .iter()
        .any(|t| !(1..=5).contains(&t.transform_type))
    {
        return None;
    }
    let encr = of(transform::ENCR)
        .iter()
        .map(|t| (t.transform_id, t.key_length()))
        .find(|e| o.encr.contains(e))?;
    let aead = registry::encr_info(encr.0, encr.1)
        .map(|i| i.kind == registry::EncrKind::Aead)
        .ok()?;
    let prf = if want_prf {
        Some(pick_u16(&of(transform::PRF), o.prf)?)
    } else {
        None
    };
    let their_integ: Vec<&Transform> = of(transform::INTEG)
        .into_iter()
        .filter(|t| t.transform_id != 0)
        .collect();
    let integ = if aead {
        if !their_integ.is_empty() {
            return None;
        }
        None
    } else {
        Some(pick_u16(&their_integ, o.integ)?)
    };
    let their_ke: Vec<&Transform> = of(transform::KE)
        .into_iter()
        .filter(|t| t.transform_id != 0)
        .collect();
    let ke = match (their_ke.is_empty(), o.ke.is_empty()) {
        (true, true) => None,
        (false, false) => Some(pick_u16(&their_ke, o.ke)?),
        _ => return None,
    };
    let esn = match &o.esn {
        None => None,
        Some(ours) => {
            let theirs = of(transform::ESN);
            let ours = if ours.is_empty() {
                vec![false]
            } else {
                ours.clone()
            };
            Some(
                theirs
                    .iter()
                    .filter_map(|t| match t.transform_id {
                        0 => Some(false),
                        1 => Some(true),
                        _ => None,
                    })
                    .find(|e| ours.contains(e))?,
            )
        }
    };
    Some(Chosen {
        encr,
        prf,
        integ,
        ke,
        esn,
    })
}

/// Responder choice for IKE: the peer's proposals in its order, each against
/// ours in our order. Returns the chosen transforms and the proposal number.
pub fn select_ike(theirs: &SaPayload, ours: &[IkeProposal]) -> Option<(Chosen, u8)> {
    theirs
        .proposals
        .iter()
        .filter(|p| p.protocol_id == protocol::IKE)
        .find_map(|p| {
            ours.iter().find_map(|o| {
                let offer = Offer {
                    encr: &o.encr,
                    prf: &o.prf,
                    integ: &o.integ,
                    ke: &o.ke,
                    esn: None,
                };
                match_one(p, &offer, true).map(|c| (c, p.number))
            })
        })
}

/// Responder choice for ESP. `pfs`: whether KE transforms are to be matched
/// (CREATE_CHILD_SA); in IKE_AUTH any KE transform in a proposal is ignored
/// (RFC 7296 1.2: the first CHILD_SA never uses a KE).
pub fn select_esp(
    theirs: &SaPayload,
    ours: &[EspProposal],
    pfs: bool,
) -> Option<(Chosen, u8, u32)> {
    theirs
        .proposals
        .iter()
        .filter(|p| p.protocol_id == protocol::ESP && p.spi.len() == 4)
        .find_map(|p| {
            let mut p = p.clone();
            if !pfs {
                p.transforms.retain(|t| t.transform_type != transform::KE);
            }
            let spi = u32::from_be_bytes([p.spi[0], p.spi[1], p.spi[2], p.spi[3]]);
            ours.iter().find_map(|o| {
                let no_ke: [u16; 0] = [];
                let offer = Offer {
                    encr: &o.encr,
                    prf: &[],
                    integ: &o.integ,
                    ke: if pfs { &o.ke } else { &no_ke },
                    esn: Some(o.esn.clone()),
                };
                match_one(&p, &offer, false).map(|c| (c, p.number, spi))
            })
        })
}

/// Initiator's check of the responder's answer: exactly one proposal whose
/// transforms all come from one of ours.
pub fn accept_ike(answer: &SaPayload, ours: &[IkeProposal]) -> Option<Chosen> {
    let [p] = &answer.proposals[..] else {
        return None;
    };
    select_ike(
        &SaPayload {
            proposals: vec![p.clone()],
        },
        ours,
    )
    .map(|(c, _)| c)
}

pub fn accept_esp(answer: &SaPayload, ours: &[EspProposal], pfs: bool) -> Option<(Chosen, u32)> {
    let [p] = &answer.proposals[..] else {
        return None;
    };
    select_esp(
        &SaPayload {
            proposals: vec![p.clone()],
        },
        ours,
        pfs,
    )
    .map(|(c, _, spi)| (c, spi))
}

/// Human form of an SA payload for log lines: "IKE:ENCR_AES_GCM_16(256)/PRF_HMAC_SHA2_256/31".
pub fn sa_display(sa: &SaPayload) -> String {
    let props: Vec<String> = sa
        .proposals
        .iter()
        .map(|p| {
            let ts: Vec<String> = p
                .transforms
                .iter()
                .map(|t| {
                    let id = t.transform_id;
                    let name = match t.transform_type {
                        transform::ENCR => registry::encr_name(id).map(str::to_string),
                        transform::PRF => registry::prf_name(id).map(str::to_string),
                        transform::INTEG => registry::integ_name(id).map(str::to_string),
                        transform::KE => palisade_crypto::kex::group_name(id).map(str::to_string),
                        transform::ESN => Some(if id == 1 { "ESN" } else { "NO_ESN" }.to_string()),
                        _ => None,
                    }
                    .unwrap_or_else(|| format!("{}:{}", t.transform_type, id));
                    match t.key_length() {
                        Some(b) => format!("{name}({b})"),
                        None => name,
                    }
                })
                .collect();
            let proto = match p.protocol_id {
                protocol::IKE => "IKE",
                protocol::ESP => "ESP",
                protocol::AH => "AH",
                _ => "?",
            };
            format!("{proto}:{}", ts.join("/"))
        })
        .collect();
    format!("[{}]", props.join(", "))
}

/// "10.1.0.0..10.1.255.255 proto 0 ports 0-65535" style list for log lines.
pub fn ts_display(ts: &[TrafficSelector]) -> String {
    let v: Vec<String> = ts
        .iter()
        .map(|t| {
            let (s, e) = match t.addresses {
                AddressRange::V4 { start, end } => (start.to_string(), end.to_string()),
                AddressRange::V6 { start, end } => (start.to_string(), end.to_string()),
            };
            let mut out = if s == e { s } else { format!("{s}..{e}") };
            if t.ip_protocol != 0 {
                out.push_str(&format!(" proto {}", t.ip_protocol));
            }
            if (t.start_port, t.end_port) != (0, 65535) {
                out.push_str(&format!(" ports {}-{}", t.start_port, t.end_port));
            }
            out
        })
        .collect();
    format!("[{}]", v.join(", "))
}

fn intersect_one(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    let ip_protocol = match (a.ip_protocol, b.ip_protocol) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let start_port = a.start_port.max(b.start_port);
    let end_port = a.end_port.min(b.end_port);
    if start_port > end_port {
        return None;
    }
    let addresses = match (a.addresses, b.addresses) {
        (AddressRange::V4 { start: s1, end: e1 }, AddressRange::V4 { start: s2, end: e2 }) => {
            let (s, e) = (s1.max(s2), e1.min(e2));
            if s > e {
                return None;
            }
            AddressRange::V4 { start: s, end: e }
        }
        (AddressRange::V6 { start: s1, end: e1 }, AddressRange::V6 { start: s2, end: e2 }) => {
            let (s, e) = (s1.max(s2), e1.min(e2));
            if s > e {
                return None;
            }
            AddressRange::V6 { start: s, end: e }
        }
        _ => return None,
    };
    Some(TrafficSelector {
        ip_protocol,
        start_port,
        end_port,
        addresses,
    })
}

/// Narrowing (RFC 7296 2.9): every non-empty intersection of a proposed
/// selector with a configured one, in the peer's order, without duplicates
/// and without selectors that another one in the result covers (the exact
/// selectors of a triggering packet that an initiator puts first fall
/// inside the configured ranges that follow them).
pub fn narrow(
    proposed: &[TrafficSelector],
    configured: &[TrafficSelector],
) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for p in proposed {
        for c in configured {
            if let Some(x) = intersect_one(p, c) {
                if !out.contains(&x) {
                    out.push(x);
                }
            }
        }
    }
    let all = out.clone();
    out.retain(|x| !all.iter().any(|y| y != x && covers(y, x)));
    out
}

/// Whether `outer` contains all of `inner`.
fn covers(outer: &TrafficSelector, inner: &TrafficSelector) -> bool {
    intersect_one(inner, outer).as_ref() == Some(inner)
}

/// Whether each selector of `got` lies within one of `proposed` (what a
/// responder may return, 2.9).
pub fn within(got: &[TrafficSelector], proposed: &[TrafficSelector]) -> bool {
    got.iter().all(|g| proposed.iter().any(|p| covers(p, g)))
}
