//! The transform pairs both symmetric benchmarks measure, shared by `sym.rs`
//! (criterion) and `sym_throughput.rs` (plain MB/s for scripts/bench-crypto.sh).
//! Each case seals one ESP-sized payload the way the ESP layer will: 8-byte AAD
//! (SPI | sequence number), 8-byte IV, detached ICV.

use palisade_crypto::aead::Aead;
use palisade_crypto::cipher::Cipher;
use palisade_crypto::integ::Integ;
use palisade_crypto::registry::{self, encr, integ_id};
use palisade_crypto::Policy;

/// Payload sizes: a small packet, the IPv4 minimum MTU, a typical tunnel MTU
/// after ESP overhead, and a jumbo frame.
pub const SIZES: &[usize] = &[64, 576, 1420, 9000];

pub enum Case {
    Aead(Box<dyn Aead>),
    Pair(Box<dyn Cipher>, Box<dyn Integ>),
}

impl Case {
    /// Seal `buf` in place (encrypt, then MAC for cipher+integ pairs).
    pub fn seal(&self, iv: &[u8; 16], buf: &mut [u8], icv: &mut [u8; 64]) {
        let aad = [0u8, 0, 0x12, 0x34, 0, 0, 0, 1];
        match self {
            Case::Aead(a) => {
                let n = a.icv_len();
                a.seal_in_place_detached(&iv[..8], &aad, buf, &mut icv[..n])
                    .expect("seal");
            }
            Case::Pair(c, i) => {
                let ivl = c.iv_len();
                let whole = buf.len() / c.block_size() * c.block_size();
                c.encrypt_in_place(&iv[..ivl], &mut buf[..whole])
                    .expect("encrypt");
                let n = i.icv_len();
                i.compute(&[&aad, &iv[..ivl], buf], &mut icv[..n])
                    .expect("mac");
            }
        }
    }
}

fn aead(id: u16, bits: Option<u16>) -> Case {
    let info = registry::encr_info(id, bits).expect("info");
    let keymat = vec![0x42u8; info.keymat_len];
    Case::Aead(registry::aead(id, bits, &keymat, Policy::INSECURE).expect("aead"))
}

fn pair(id: u16, bits: Option<u16>, integ: u16) -> Case {
    let info = registry::encr_info(id, bits).expect("info");
    let keymat: Vec<u8> = (0..info.keymat_len as u8)
        .map(|b| b.wrapping_mul(37).wrapping_add(1))
        .collect();
    let ikey = vec![0x17u8; registry::integ_sizes(integ).expect("integ").key_len];
    Case::Pair(
        registry::cipher(id, bits, &keymat, Policy::INSECURE).expect("cipher"),
        registry::integ(integ, &ikey, Policy::INSECURE).expect("integ"),
    )
}

/// (name, case); the comparison script maps names to openssl algorithms.
pub fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("aes128gcm16", aead(encr::AES_GCM_16, Some(128))),
        ("aes256gcm16", aead(encr::AES_GCM_16, Some(256))),
        ("aes256gcm12", aead(encr::AES_GCM_12, Some(256))),
        ("aes256gcm8", aead(encr::AES_GCM_8, Some(256))),
        ("aes128ccm16", aead(encr::AES_CCM_16, Some(128))),
        ("aes256gmac", aead(encr::NULL_AUTH_AES_GMAC, Some(256))),
        ("chacha20poly1305", aead(encr::CHACHA20_POLY1305, None)),
        (
            "aes128cbc-sha1",
            pair(encr::AES_CBC, Some(128), integ_id::HMAC_SHA1_96),
        ),
        (
            "aes128cbc-sha256",
            pair(encr::AES_CBC, Some(128), integ_id::HMAC_SHA2_256_128),
        ),
        (
            "aes256cbc-sha256",
            pair(encr::AES_CBC, Some(256), integ_id::HMAC_SHA2_256_128),
        ),
        (
            "aes256cbc-sha512",
            pair(encr::AES_CBC, Some(256), integ_id::HMAC_SHA2_512_256),
        ),
        (
            "aes256ctr-sha256",
            pair(encr::AES_CTR, Some(256), integ_id::HMAC_SHA2_256_128),
        ),
        (
            "aes128cbc-aesxcbc",
            pair(encr::AES_CBC, Some(128), integ_id::AES_XCBC_96),
        ),
        (
            "aes128cbc-aescmac",
            pair(encr::AES_CBC, Some(128), integ_id::AES_CMAC_96),
        ),
        (
            "3des-sha1",
            pair(encr::TRIPLE_DES, None, integ_id::HMAC_SHA1_96),
        ),
        (
            "null-sha256",
            pair(encr::NULL, None, integ_id::HMAC_SHA2_256_128),
        ),
    ]
}
