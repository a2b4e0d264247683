//! The SK payload (RFC 7296 3.14, RFC 5282 for AEAD), IKE SA key derivation
//! and the PSK AUTH value (2.15).

use palisade_crypto::aead::Aead;
use palisade_crypto::cipher::Cipher;
use palisade_crypto::integ::Integ;
use palisade_crypto::kdf::ikev2 as kdf;
use palisade_crypto::prf::Prf;
use palisade_crypto::{registry, Policy, Secret};
use palisade_wire::ikev2::{
    emit_chain, locate_encrypted, parse_inner_chain, HeaderRepr, Message, Payload, SkPayload,
};

use crate::negotiate::Chosen;
use crate::rng::Rng;

/// Why an encrypted message could not be opened.
#[derive(Debug)]
pub enum OpenError {
    NoSk,
    Fragmented,
    Short,
    Integrity,
    Padding,
    /// The outer message does not parse: unauthenticated, drop it.
    Locate(palisade_wire::Error),
    /// Authentic (the ICV verified) but the inner payloads do not parse.
    Parse(palisade_wire::Error),
}

/// One direction's SK_e/SK_a.
pub enum SkCrypt {
    Aead(Box<dyn Aead>),
    Cbc {
        cipher: Box<dyn Cipher>,
        integ: Box<dyn Integ>,
    },
}

impl SkCrypt {
    fn new(c: &Chosen, sk_e: &Secret, sk_a: &Secret, policy: Policy) -> Result<Self, crate::Error> {
        Ok(if c.is_aead() {
            SkCrypt::Aead(registry::aead(c.encr.0, c.encr.1, sk_e.as_bytes(), policy)?)
        } else {
            let integ_id = c.integ.unwrap_or(0);
            SkCrypt::Cbc {
                cipher: registry::cipher(c.encr.0, c.encr.1, sk_e.as_bytes(), policy)?,
                integ: registry::integ(integ_id, sk_a.as_bytes(), policy)?,
            }
        })
    }

    /// (IV length, ICV length, block size).
    fn sizes(&self) -> (usize, usize, usize) {
        match self {
            SkCrypt::Aead(a) => (a.iv_len(), a.icv_len(), 1),
            SkCrypt::Cbc { cipher, integ } => {
                (cipher.iv_len(), integ.icv_len(), cipher.block_size())
            }
        }
    }

    /// A whole message: `header` with an SK payload holding `inner`.
    pub fn seal(
        &self,
        rng: &mut dyn Rng,
        header: HeaderRepr,
        inner: &[Payload],
    ) -> Result<Vec<u8>, crate::Error> {
        let mut plain = Vec::new();
        let first = emit_chain(inner, &mut plain)?;
        let (iv_len, icv_len, block) = self.sizes();
        // Pad Length byte included; CBC needs whole blocks (3.14).
        let pad = if block > 1 {
            (block - (plain.len() + 1) % block) % block
        } else {
            0
        };
        plain.resize(plain.len() + pad, 0);
        plain.push(pad as u8); // ok: pad < block <= 16
        let data_len = iv_len + plain.len() + icv_len;
        let msg = Message {
            header,
            payloads: vec![Payload::Sk(SkPayload {
                inner_next_payload: first,
                data: vec![0; data_len],
            })],
        };
        let mut out = msg.to_vec()?;
        let body_start = out.len() - data_len; // ok: to_vec wrote the data_len bytes last
        let (aad, rest) = out.split_at_mut(body_start);
        let (iv, rest) = rest.split_at_mut(iv_len);
        rng.fill(iv);
        let (ct, icv) = rest.split_at_mut(plain.len());
        ct.copy_from_slice(&plain);
        match self {
            SkCrypt::Aead(a) => a.seal_in_place_detached(iv, aad, ct, icv)?,
            SkCrypt::Cbc { cipher, integ } => {
                cipher.encrypt_in_place(iv, ct)?;
                let mac_end = out.len() - icv_len;
                let (covered, icv) = out.split_at_mut(mac_end);
                integ.compute(&[covered], icv)?;
            }
        }
        Ok(out)
    }

    /// Check and decrypt the SK payload of `bytes`; returns the inner payloads.
    pub fn open(&self, bytes: &[u8]) -> Result<Vec<Payload>, OpenError> {
        let loc = locate_encrypted(bytes)
            .map_err(OpenError::Locate)?
            .ok_or(OpenError::NoSk)?;
        if loc.fragment.is_some() {
            return Err(OpenError::Fragmented);
        }
        let body = loc.body(bytes);
        let (iv_len, icv_len, block) = self.sizes();
        if body.len() < iv_len + icv_len + 1 || loc.body.end != bytes.len() {
            return Err(OpenError::Short);
        }
        let ct_end = body.len() - icv_len;
        let iv = &body[..iv_len];
        let icv = &body[ct_end..];
        let mut ct = body[iv_len..ct_end].to_vec();
        match self {
            SkCrypt::Aead(a) => a
                .open_in_place_detached(iv, loc.aad(bytes), &mut ct, icv)
                .map_err(|_| OpenError::Integrity)?,
            SkCrypt::Cbc { cipher, integ } => {
                integ
                    .verify(&[&bytes[..bytes.len() - icv_len]], icv)
                    .map_err(|_| OpenError::Integrity)?;
                if ct.len() % block != 0 {
                    return Err(OpenError::Padding);
                }
                cipher
                    .decrypt_in_place(iv, &mut ct)
                    .map_err(|_| OpenError::Padding)?;
            }
        }
        let pad = usize::from(*ct.last().ok_or(OpenError::Padding)?);
        if pad + 1 > ct.len() {
            return Err(OpenError::Padding);
        }
        ct.truncate(ct.len() - pad - 1);
        parse_inner_chain(loc.inner_next_payload, &ct).map_err(OpenError::Parse)
    }
}

/// The keys of one IKE SA, oriented: `out` protects what we send.
pub struct IkeKeys {
    /// The transforms these keys were made for.
    pub chosen: Chosen,
    pub prf: &'static dyn Prf,
    pub sk_d: Secret,
    pub sk_pi: Secret,
    pub sk_pr: Secret,
    pub out: SkCrypt,
    pub inb: SkCrypt,
}

impl IkeKeys {
    /// From SKEYSEED's inputs (2.14) or, for an IKE SA rekey, with `old_sk_d`
    /// (2.18).
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        chosen: Chosen,
        policy: Policy,
        g_ir: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
        we_initiated: bool,
        old_sk_d: Option<&Secret>,
    ) -> Result<IkeKeys, crate::Error> {
        let prf = registry::prf(chosen.prf.unwrap_or(0), policy)?;
        let skeyseed = match old_sk_d {
            None => kdf::skeyseed(prf, ni, nr, g_ir.as_bytes())?,
            Some(d) => kdf::rekey_skeyseed(prf, d.as_bytes(), g_ir.as_bytes(), ni, nr)?,
        };
        let info = registry::encr_info(chosen.encr.0, chosen.encr.1)?;
        let integ = match chosen.integ {
            Some(i) if !chosen.is_aead() => registry::integ_sizes(i)?.key_len,
            _ => 0,
        };
        let lens = kdf::IkeKeyLengths {
            integ,
            encr: info.keymat_len,
        };
        let k = kdf::ike_sa_keys(prf, skeyseed.as_bytes(), ni, nr, spi_i, spi_r, lens)?;
        let ci = SkCrypt::new(&chosen, &k.sk_ei, &k.sk_ai, policy)?;
        let cr = SkCrypt::new(&chosen, &k.sk_er, &k.sk_ar, policy)?;
        let (out, inb) = if we_initiated { (ci, cr) } else { (cr, ci) };
        Ok(IkeKeys {
            chosen,
            prf,
            sk_d: k.sk_d,
            sk_pi: k.sk_pi,
            sk_pr: k.sk_pr,
            out,
            inb,
        })
    }

    /// AUTH for a shared key (2.15):
    /// `prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)` with
    /// SignedOctets = RealMessage | Nonce | prf(SK_p, RestOfIDPayload).
    /// `initiator_side` selects SK_pi (the initiator's AUTH) or SK_pr.
    pub fn psk_auth(
        &self,
        psk: &Secret,
        initiator_side: bool,
        real_message: &[u8],
        nonce: &[u8],
        id_body: &[u8],
    ) -> Result<Secret, crate::Error> {
        let sk_p = if initiator_side {
            &self.sk_pi
        } else {
            &self.sk_pr
        };
        let n = self.prf.output_len();
        let mut maced_id = Secret::zeroed(n);
        self.prf
            .compute(sk_p.as_bytes(), &[id_body], maced_id.as_mut_bytes())?;
        let mut pad_key = Secret::zeroed(n);
        self.prf.compute(
            psk.as_bytes(),
            &[b"Key Pad for IKEv2"],
            pad_key.as_mut_bytes(),
        )?;
        let mut auth = Secret::zeroed(n);
        self.prf.compute(
            pad_key.as_bytes(),
            &[real_message, nonce, maced_id.as_bytes()],
            auth.as_mut_bytes(),
        )?;
        Ok(auth)
    }
}

/// NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | Port) (2.23).
pub fn nat_hash(spi_i: &[u8; 8], spi_r: &[u8; 8], addr: std::net::SocketAddr) -> Vec<u8> {
    use aws_lc_rs::digest;
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(spi_i);
    ctx.update(spi_r);
    match addr.ip() {
        std::net::IpAddr::V4(a) => ctx.update(&a.octets()),
        std::net::IpAddr::V6(a) => ctx.update(&a.octets()),
    }
    ctx.update(&addr.port().to_be_bytes());
    ctx.finish().as_ref().to_vec()
}

/// Stateless cookie (2.6): HMAC-SHA-256(secret, Ni | IPi | SPIi), with a
/// leading version byte so the secret can be rolled.
pub fn cookie(
    secret: &[u8; 32],
    ni: &[u8],
    remote: std::net::SocketAddr,
    spi_i: &[u8; 8],
) -> Vec<u8> {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(ni);
    match remote.ip() {
        std::net::IpAddr::V4(a) => ctx.update(&a.octets()),
        std::net::IpAddr::V6(a) => ctx.update(&a.octets()),
    }
    ctx.update(spi_i);
    let mut out = vec![1u8];
    out.extend_from_slice(ctx.sign().as_ref());
    out
}
