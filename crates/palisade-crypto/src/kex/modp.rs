//! Finite-field Diffie-Hellman over the RFC 2409 / RFC 3526 MODP groups
//! (generator 2), with `crypto-bigint`'s constant-time Montgomery exponentiation.
//!
//! Private exponent size: the groups are safe primes (p = 2q + 1), so any
//! exponent below q is as good as any other, and the work of the discrete log
//! is bounded by the group (NFS), not the exponent, as long as the exponent is
//! at least twice the group's security strength (Pollard's lambda costs
//! sqrt(2^bits)). We use twice the upper strength estimate of RFC 3526 section 8,
//! rounded up to a multiple of 64 bits (256 bits at minimum). A full-size
//! exponent would cost 6 to 13 times more per exponentiation for no gain.
//! The top bit of the exponent is set so every exponent has exactly that many
//! bits: the running time then reveals nothing about the value.

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Uint, U1024, U1536, U2048, U3072, U4096, U6144, U640, U768, U8192};
use std::sync::OnceLock;
use zeroize::{Zeroize, Zeroizing};

use super::{check_len, GroupInfo, KeyExchange};
use crate::{Error, Secret};

/// The type that holds a private exponent; 640 bits is the largest we use.
type Exponent = U640;
const MAX_EXPONENT_BYTES: usize = Exponent::BITS / 8;

/// Exponent size in bits for a group (see the module comment for the why).
fn exponent_bits(id: u16) -> usize {
    match id {
        super::MODP_3072 => 448,
        super::MODP_4096 => 512,
        super::MODP_6144 => 576,
        super::MODP_8192 => 640,
        super::MODP_2048 => 320,
        // MODP-768/1024/1536: strength at most 120 bits (RFC 3526 section 8).
        _ => 256,
    }
}

/// MODP group 1 (768-bit prime).
static G768: Group<{ U768::LIMBS }> = Group::new(Uint::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3620FFFFFFFFFFFFFFFF",
)));
/// MODP group 2 (1024-bit prime).
static G1024: Group<{ U1024::LIMBS }> = Group::new(Uint::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
)));
/// MODP group 5 (1536-bit prime).
static G1536: Group<{ U1536::LIMBS }> = Group::new(Uint::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
)));
/// MODP group 14 (2048-bit prime).
static G2048: Group<{ U2048::LIMBS }> = Group::new(Uint::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
)));
/// MODP group 15 (3072-bit prime).
static G3072: Group<{ U3072::LIMBS }> = Group::new(Uint::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
)));
/// MODP group 16 (4096-bit prime).
static G4096: Group<{ U4096::LIMBS }> = Group::new(Uint::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7",
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8",
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2",
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9",
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
)));
/// MODP group 17 (6144-bit prime).
static G6144: Group<{ U6144::LIMBS }> = Group::new(Uint::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7",
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8",
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2",
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9",
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C93402849236C3FAB4D27C7026",
    "C1D4DCB2602646DEC9751E763DBA37BDF8FF9406AD9E530EE5DB382F413001AE",
    "B06A53ED9027D831179727B0865A8918DA3EDBEBCF9B14ED44CE6CBACED4BB1B",
    "DB7F1447E6CC254B332051512BD7AF426FB8F401378CD2BF5983CA01C64B92EC",
    "F032EA15D1721D03F482D7CE6E74FEF6D55E702F46980C82B5A84031900B1C9E",
    "59E7C97FBEC7E8F323A97A7E36CC88BE0F1D45B7FF585AC54BD407B22B4154AA",
    "CC8F6D7EBF48E1D814CC5ED20F8037E0A79715EEF29BE32806A1D58BB7C5DA76",
    "F550AA3D8A1FBFF0EB19CCB1A313D55CDA56C9EC2EF29632387FE8D76E3C0468",
    "043E8F663F4860EE12BF2D5B0B7474D6E694F91E6DCC4024FFFFFFFFFFFFFFFF",
)));
/// MODP group 18 (8192-bit prime).
static G8192: Group<{ U8192::LIMBS }> = Group::new(Uint::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7",
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8",
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2",
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9",
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C93402849236C3FAB4D27C7026",
    "C1D4DCB2602646DEC9751E763DBA37BDF8FF9406AD9E530EE5DB382F413001AE",
    "B06A53ED9027D831179727B0865A8918DA3EDBEBCF9B14ED44CE6CBACED4BB1B",
    "DB7F1447E6CC254B332051512BD7AF426FB8F401378CD2BF5983CA01C64B92EC",
    "F032EA15D1721D03F482D7CE6E74FEF6D55E702F46980C82B5A84031900B1C9E",
    "59E7C97FBEC7E8F323A97A7E36CC88BE0F1D45B7FF585AC54BD407B22B4154AA",
    "CC8F6D7EBF48E1D814CC5ED20F8037E0A79715EEF29BE32806A1D58BB7C5DA76",
    "F550AA3D8A1FBFF0EB19CCB1A313D55CDA56C9EC2EF29632387FE8D76E3C0468",
    "043E8F663F4860EE12BF2D5B0B7474D6E694F91E6DBE115974A3926F12FEE5E4",
    "38777CB6A932DF8CD8BEC4D073B931BA3BC832B68D9DD300741FA7BF8AFC47ED",
    "2576F6936BA424663AAB639C5AE4F5683423B4742BF1C978238F16CBE39D652D",
    "E3FDB8BEFC848AD922222E04A4037C0713EB57A81A23F0C73473FC646CEA306B",
    "4BCBC8862F8385DDFA9D4B7FA2C087E879683303ED5BDD3A062B3CF5B3A278A6",
    "6D2A13F83F44F82DDF310EE074AB6A364597E899A0255DC164F31CC50846851D",
    "F9AB48195DED7EA1B1D510BD7EE74D73FAF36BC31ECFA268359046F4EB879F92",
    "4009438B481C6CD7889A002ED5EE382BC9190DA6FC026E479558E4475677E9AA",
    "9E3050E2765694DFC81F56E880B96E7160C980DD98EDD3DFFFFFFFFFFFFFFFFF",
)));

/// A MODP group: its prime and, computed on first use, the Montgomery
/// parameters. Computing those takes two long divisions, which for the
/// smaller groups costs about as much as an exponentiation, so we do it once.
struct Group<const L: usize> {
    p: Uint<L>,
    params: OnceLock<DynResidueParams<L>>,
}

impl<const L: usize> Group<L> {
    const fn new(p: Uint<L>) -> Self {
        Group {
            p,
            params: OnceLock::new(),
        }
    }

    fn params(&self) -> DynResidueParams<L> {
        // All our moduli are odd primes, which is all `DynResidueParams::new` asks.
        *self.params.get_or_init(|| DynResidueParams::new(&self.p))
    }
}

/// Run `$body` with `$p` bound to MODP group `$id` (a different
/// `Uint` width per group, so the body is monomorphised per group).
macro_rules! with_prime {
    ($id:expr, |$p:ident| $body:expr) => {
        match $id {
            super::MODP_768 => {
                let $p = &G768;
                $body
            }
            super::MODP_1024 => {
                let $p = &G1024;
                $body
            }
            super::MODP_1536 => {
                let $p = &G1536;
                $body
            }
            super::MODP_2048 => {
                let $p = &G2048;
                $body
            }
            super::MODP_3072 => {
                let $p = &G3072;
                $body
            }
            super::MODP_4096 => {
                let $p = &G4096;
                $body
            }
            super::MODP_6144 => {
                let $p = &G6144;
                $body
            }
            super::MODP_8192 => {
                let $p = &G8192;
                $body
            }
            _ => Err(Error::Unsupported {
                kind: "KE",
                id: $id,
            }),
        }
    };
}

/// A fresh random exponent for group `info`.
pub(super) fn generate(info: &'static GroupInfo) -> Result<Box<dyn KeyExchange>, Error> {
    let bits = exponent_bits(info.id);
    let mut bytes = Zeroizing::new(vec![0u8; bits / 8]);
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Library("MODP: random exponent"))?;
    // Top bit set: fixed-length exponent, never zero or one.
    bytes[0] |= 0x80;
    from_exponent(info, &bytes)
}

/// Use the given exponent (known-answer tests).
pub(super) fn from_exponent(
    info: &'static GroupInfo,
    x: &[u8],
) -> Result<Box<dyn KeyExchange>, Error> {
    if x.is_empty() || x.len() > MAX_EXPONENT_BYTES || x.iter().all(|&b| b == 0) {
        return Err(Error::KeyLength {
            name: info.name,
            got: x.len(),
            expected: MAX_EXPONENT_BYTES,
        });
    }
    let mut padded = Zeroizing::new([0u8; MAX_EXPONENT_BYTES]);
    padded[MAX_EXPONENT_BYTES - x.len()..].copy_from_slice(x);
    let exponent = SecretExponent(Exponent::from_be_slice(&padded[..]));
    let exponent_bits = x.len() * 8;
    with_prime!(info.id, |p| Ok(
        Box::new(Modp::new(info, p, exponent, exponent_bits)) as Box<dyn KeyExchange>
    ))
}

/// An exponent that is wiped on drop (`crypto-bigint` is built without its
/// `zeroize` feature, so we wipe the limbs ourselves).
struct SecretExponent(Exponent);

impl Drop for SecretExponent {
    fn drop(&mut self) {
        self.0.as_words_mut().zeroize();
    }
}

struct Modp<const L: usize> {
    info: &'static GroupInfo,
    group: &'static Group<L>,
    x: SecretExponent,
    x_bits: usize,
    public: Vec<u8>,
}

impl<const L: usize> Modp<L> {
    fn new(
        info: &'static GroupInfo,
        group: &'static Group<L>,
        x: SecretExponent,
        x_bits: usize,
    ) -> Self {
        let public = to_be_bytes(&modpow(group, &Uint::from_u64(2), &x, x_bits));
        Modp {
            info,
            group,
            x,
            x_bits,
            public,
        }
    }
}

/// `base^x mod p` in constant time for a fixed exponent length.
fn modpow<const L: usize>(
    group: &Group<L>,
    base: &Uint<L>,
    x: &SecretExponent,
    x_bits: usize,
) -> Uint<L> {
    DynResidue::new(base, group.params())
        .pow_bounded_exp(&x.0, x_bits)
        .retrieve()
}

fn to_be_bytes<const L: usize>(v: &Uint<L>) -> Vec<u8> {
    v.as_words()
        .iter()
        .rev()
        .flat_map(|w| w.to_be_bytes())
        .collect()
}

impl<const L: usize> KeyExchange for Modp<L> {
    fn group(&self) -> u16 {
        self.info.id
    }

    fn public_value(&self) -> &[u8] {
        &self.public
    }

    fn complete(self: Box<Self>, peer: &[u8]) -> Result<Secret, Error> {
        // RFC 7296 section 3.4: the DH value is zero-padded to the prime length.
        check_len(
            self.info,
            peer.len(),
            self.public.len(),
            "length is not the prime length (RFC 7296 section 3.4)",
        )?;
        let y = Uint::<L>::from_be_slice(peer);
        // RFC 6989 section 2.1: for safe-prime groups, 1 < y < p-1 is the whole check
        // (it excludes the elements of order 1 and 2; every other element has order q or 2q).
        let p_minus_1 = self.group.p.wrapping_sub(&Uint::ONE);
        if y <= Uint::ONE || y >= p_minus_1 {
            return Err(Error::InvalidPublicValue {
                group: self.info.name,
                why: "not in the range 1 < y < p-1 (RFC 6989)",
            });
        }
        let mut z = modpow(self.group, &y, &self.x, self.x_bits);
        let shared = Secret::new(to_be_bytes(&z));
        z.as_words_mut().zeroize();
        Ok(shared)
    }
}
