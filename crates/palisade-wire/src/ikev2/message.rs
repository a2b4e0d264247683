//! Whole messages: the header plus the ordered payload list, and the helpers
//! the engine needs around the Encrypted payload.

use core::ops::Range;

use super::chain::{len16, patch16, PayloadIter, RawPayload, GENERIC_HEADER_LEN};
use super::consts::payload as pt;
use super::cp::CpPayload;
use super::header::{Header, HeaderRepr, HEADER_LEN};
use super::payloads::*;
use super::sa::SaPayload;
use super::ts::TsPayload;
use crate::{Error, Result};

/// One parsed payload. Unknown non-critical payloads never appear: RFC 7296
/// section 2.5 says to ignore them, and the chain walk skips them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(SaPayload),
    Ke(KePayload),
    IdI(IdPayload),
    IdR(IdPayload),
    Cert(CertPayload),
    CertReq(CertReqPayload),
    Auth(AuthPayload),
    Nonce(NoncePayload),
    Notify(NotifyPayload),
    Delete(DeletePayload),
    VendorId(VendorIdPayload),
    TsI(TsPayload),
    TsR(TsPayload),
    Sk(SkPayload),
    Cp(CpPayload),
    Eap(EapPayload),
    Skf(SkfPayload),
}

impl Payload {
    /// The payload type number ([`super::consts::payload`]).
    pub fn payload_type(&self) -> u8 {
        match self {
            Payload::Sa(_) => pt::SA,
            Payload::Ke(_) => pt::KE,
            Payload::IdI(_) => pt::IDI,
            Payload::IdR(_) => pt::IDR,
            Payload::Cert(_) => pt::CERT,
            Payload::CertReq(_) => pt::CERTREQ,
            Payload::Auth(_) => pt::AUTH,
            Payload::Nonce(_) => pt::NONCE,
            Payload::Notify(_) => pt::NOTIFY,
            Payload::Delete(_) => pt::DELETE,
            Payload::VendorId(_) => pt::VENDOR_ID,
            Payload::TsI(_) => pt::TSI,
            Payload::TsR(_) => pt::TSR,
            Payload::Sk(_) => pt::SK,
            Payload::Cp(_) => pt::CP,
            Payload::Eap(_) => pt::EAP,
            Payload::Skf(_) => pt::SKF,
        }
    }

    /// Interprets a payload met on the chain.
    pub fn parse(raw: &RawPayload<'_>) -> Result<Payload> {
        let b = raw.body;
        Ok(match raw.payload_type {
            pt::SA => Payload::Sa(SaPayload::parse(b)?),
            pt::KE => Payload::Ke(KePayload::parse(b)?),
            pt::IDI => Payload::IdI(IdPayload::parse(b)?),
            pt::IDR => Payload::IdR(IdPayload::parse(b)?),
            pt::CERT => Payload::Cert(CertPayload::parse(b)?),
            pt::CERTREQ => Payload::CertReq(CertReqPayload::parse(b)?),
            pt::AUTH => Payload::Auth(AuthPayload::parse(b)?),
            pt::NONCE => Payload::Nonce(NoncePayload::parse(b)?),
            pt::NOTIFY => Payload::Notify(NotifyPayload::parse(b)?),
            pt::DELETE => Payload::Delete(DeletePayload::parse(b)?),
            pt::VENDOR_ID => Payload::VendorId(VendorIdPayload::parse(b)?),
            pt::TSI => Payload::TsI(TsPayload::parse(b)?),
            pt::TSR => Payload::TsR(TsPayload::parse(b)?),
            pt::SK => Payload::Sk(SkPayload::parse(raw.next_payload, b)?),
            pt::CP => Payload::Cp(CpPayload::parse(b)?),
            pt::EAP => Payload::Eap(EapPayload::parse(b)?),
            pt::SKF => Payload::Skf(SkfPayload::parse(raw.next_payload, b)?),
            other => {
                return Err(Error::UnsupportedCriticalPayload {
                    payload_type: other,
                })
            }
        })
    }

    /// Appends the body (everything after the generic header).
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Payload::Sa(p) => p.emit(out),
            Payload::Ke(p) => p.emit(out),
            Payload::IdI(p) | Payload::IdR(p) => p.emit(out),
            Payload::Cert(p) => p.emit(out),
            Payload::CertReq(p) => p.emit(out),
            Payload::Auth(p) => p.emit(out),
            Payload::Nonce(p) => p.emit(out),
            Payload::Notify(p) => p.emit(out),
            Payload::Delete(p) => p.emit(out),
            Payload::VendorId(p) => p.emit(out),
            Payload::TsI(p) | Payload::TsR(p) => p.emit(out),
            Payload::Sk(p) => p.emit(out),
            Payload::Cp(p) => p.emit(out),
            Payload::Eap(p) => p.emit(out),
            Payload::Skf(p) => p.emit(out),
        }
    }

    /// For SK/SKF, the Next Payload their header carries (the inner type).
    fn inner_next_payload(&self) -> Option<u8> {
        match self {
            Payload::Sk(p) => Some(p.inner_next_payload),
            Payload::Skf(p) => Some(p.inner_next_payload),
            _ => None,
        }
    }
}

/// The notifications of a given type in a payload list (e.g. an inner chain).
pub fn notifies_in(payloads: &[Payload], notify_type: u16) -> impl Iterator<Item = &NotifyPayload> {
    payloads.iter().filter_map(move |p| match p {
        Payload::Notify(n) if n.notify_type == notify_type => Some(n),
        _ => None,
    })
}

/// The notification that answers a request which failed to parse with `e`
/// (RFC 7296 sections 2.5 and 3.10.1): UNSUPPORTED_CRITICAL_PAYLOAD naming
/// the payload type, INVALID_MAJOR_VERSION for a major version above 2, and
/// INVALID_SYNTAX otherwise. Whether to answer at all (only on an
/// authenticated SA, or never for responses) is the engine's call.
pub fn notify_for_parse_error(e: &Error) -> NotifyPayload {
    use super::consts::notify;
    match e {
        Error::UnsupportedCriticalPayload { payload_type } => {
            NotifyPayload::new(notify::UNSUPPORTED_CRITICAL_PAYLOAD, vec![*payload_type])
        }
        Error::Invalid {
            field: "IKEv2 header major version",
            value,
        } if *value > 2 => NotifyPayload::new(notify::INVALID_MAJOR_VERSION, vec![]),
        _ => NotifyPayload::new(notify::INVALID_SYNTAX, vec![]),
    }
}

fn collect(iter: PayloadIter<'_>) -> Result<Vec<Payload>> {
    iter.map(|raw| raw.and_then(|r| Payload::parse(&r)))
        .collect()
}

/// Parses a plaintext payload chain (`first` from the IKE header).
pub fn parse_chain(first: u8, chain: &[u8]) -> Result<Vec<Payload>> {
    collect(PayloadIter::new(first, chain))
}

/// Parses a decrypted inner chain: `first` is the SK header's Next Payload
/// (or that of SKF fragment 1), `plaintext` the decrypted bytes with padding
/// and Pad Length already removed.
pub fn parse_inner_chain(first: u8, plaintext: &[u8]) -> Result<Vec<Payload>> {
    collect(PayloadIter::new_inner(first, plaintext))
}

/// Appends the payloads with their generic headers and returns the type of
/// the first one (for the IKE or SK header's Next Payload; 0 if empty).
/// SK/SKF must come last: their Next Payload field is taken by the inner type.
pub fn emit_chain(payloads: &[Payload], out: &mut Vec<u8>) -> Result<u8> {
    for (i, p) in payloads.iter().enumerate() {
        let next = match (p.inner_next_payload(), payloads.get(i + 1)) {
            (Some(_), Some(_)) => {
                return Err(Error::Malformed {
                    field: "IKEv2 Encrypted payload",
                    why: "not the last payload of the message",
                })
            }
            (Some(inner), None) => inner,
            (None, Some(n)) => n.payload_type(),
            (None, None) => pt::NO_NEXT_PAYLOAD,
        };
        let start = out.len();
        out.extend_from_slice(&[next, 0, 0, 0]);
        p.emit_body(out)?;
        let len = len16(out.len() - start, "IKEv2 payload length")?;
        patch16(out, start + 2, len);
    }
    Ok(payloads
        .first()
        .map_or(pt::NO_NEXT_PAYLOAD, Payload::payload_type))
}

/// An IKEv2 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: HeaderRepr,
    /// In wire order. If there is an SK or SKF payload it is the last one.
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses a whole datagram (without the non-ESP marker). The Length field
    /// must equal the datagram length: anything else is a broken or spliced
    /// message.
    pub fn parse(datagram: &[u8]) -> Result<Message> {
        let h = Header::new_checked(datagram)?;
        let header = HeaderRepr::parse(&h)?;
        if h.length() as usize != datagram.len() {
            return Err(Error::Malformed {
                field: "IKEv2 header length",
                why: "differs from the datagram length",
            });
        }
        let payloads = parse_chain(h.next_payload(), h.payload_bytes())?;
        Ok(Message { header, payloads })
    }

    /// The encoded message.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = vec![0; HEADER_LEN];
        let first = emit_chain(&self.payloads, &mut out)?;
        let len = u32::try_from(out.len()).map_err(|_| Error::Invalid {
            field: "IKEv2 header length",
            value: out.len() as u64,
        })?;
        self.header
            .emit(&mut Header::new_unchecked(&mut out[..]), first, len)?;
        Ok(out)
    }

    /// Encodes into `buf`, returning the length written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let v = self.to_vec()?;
        let have = buf.len();
        let dst = buf.get_mut(..v.len()).ok_or(Error::BufferTooSmall {
            field: "IKEv2 message",
            need: v.len(),
            have,
        })?;
        dst.copy_from_slice(&v);
        Ok(v.len())
    }

    /// The notifications of a given type, in order.
    pub fn notifies(&self, notify_type: u16) -> impl Iterator<Item = &NotifyPayload> {
        notifies_in(&self.payloads, notify_type)
    }

    /// The first payload of a given type ([`super::consts::payload`]).
    pub fn find(&self, payload_type: u8) -> Option<&Payload> {
        self.payloads
            .iter()
            .find(|p| p.payload_type() == payload_type)
    }

    /// The SK or SKF payload, if the message has one.
    pub fn encrypted(&self) -> Option<&Payload> {
        self.payloads
            .last()
            .filter(|p| p.inner_next_payload().is_some())
    }

    /// Parses the decrypted content of this message's SK payload (or of its
    /// SKF fragment 1, when the caller has reassembled all fragments).
    pub fn parse_inner(&self, plaintext: &[u8]) -> Result<Vec<Payload>> {
        match self.encrypted().and_then(Payload::inner_next_payload) {
            Some(first) => parse_inner_chain(first, plaintext),
            None => Err(Error::Malformed {
                field: "IKEv2 message",
                why: "has no Encrypted payload",
            }),
        }
    }
}

/// Where the Encrypted payload sits in an encoded message: what the engine
/// needs to authenticate and decrypt it in place.
///
/// To send, the engine can emit the message with an SK payload whose data is
/// zeros of the final IV | ciphertext | ICV size, locate it, and encrypt into
/// `message[body]` with `message[..aad_len]` as associated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedLocation {
    /// SK or SKF.
    pub payload_type: u8,
    /// The first inner payload type.
    pub inner_next_payload: u8,
    /// For SKF: (fragment number, total fragments).
    pub fragment: Option<(u16, u16)>,
    /// AEAD associated data is `message[..aad_len]`: the IKE header through
    /// the Encrypted payload header (RFC 5282 section 5.1), including the
    /// fragment fields for SKF (RFC 7383 section 2.5). For non-AEAD integrity,
    /// the checked bytes are everything before the ICV.
    pub aad_len: usize,
    /// IV | ciphertext | ICV.
    pub body: Range<usize>,
}

impl EncryptedLocation {
    pub fn aad<'a>(&self, message: &'a [u8]) -> &'a [u8] {
        message.get(..self.aad_len).unwrap_or(&[])
    }
    pub fn body<'a>(&self, message: &'a [u8]) -> &'a [u8] {
        message.get(self.body.clone()).unwrap_or(&[])
    }
}

/// Finds the SK/SKF payload of an encoded message (checking the header and the
/// whole plaintext chain on the way). `Ok(None)` if the message has none.
pub fn locate_encrypted(message: &[u8]) -> Result<Option<EncryptedLocation>> {
    let h = Header::new_checked(message)?;
    HeaderRepr::parse(&h)?;
    for raw in PayloadIter::new(h.next_payload(), h.payload_bytes()) {
        let raw = raw?;
        let (fragment, extra) = match raw.payload_type {
            pt::SK => (None, 0),
            pt::SKF => match SkfPayload::parse(raw.next_payload, raw.body) {
                Ok(p) => (Some((p.fragment_number, p.total_fragments)), SKF_FIELDS_LEN),
                Err(e) => return Err(e),
            },
            _ => continue,
        };
        let aad_len = HEADER_LEN + raw.offset + GENERIC_HEADER_LEN + extra;
        let end = HEADER_LEN + raw.offset + GENERIC_HEADER_LEN + raw.body.len();
        return Ok(Some(EncryptedLocation {
            payload_type: raw.payload_type,
            inner_next_payload: raw.next_payload,
            fragment,
            aad_len,
            body: aad_len..end,
        }));
    }
    Ok(None)
}
