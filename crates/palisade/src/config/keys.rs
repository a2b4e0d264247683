//! Key material from the config: inline hex or a file, checked against the
//! length the algorithm needs.
//!
//! Messages here never include key bytes or hex, only lengths and positions,
//! because config errors end up in terminals, logs and bug reports.

use palisade_crypto::proposal::{ids, Transform, TransformType};
use palisade_crypto::Secret;
use std::path::{Path, PathBuf};

/// Decodes hex (optional `0x`, `:` separators and whitespace ignored). The
/// error says where the first bad character is, never what the key is.
pub fn decode_hex(text: &str) -> Result<Secret, String> {
    let t = text.trim();
    // Positions in messages count from the start of what the operator wrote.
    let lead = text.len() - text.trim_start().len();
    let (t, prefix) = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(rest) => (rest, 2),
        None => (t, 0),
    };
    let mut digits = zeroize::Zeroizing::new(Vec::with_capacity(t.len()));
    for (i, c) in t.chars().enumerate() {
        match c {
            ':' | ' ' | '\t' | '\n' | '\r' => {}
            c if c.is_ascii_hexdigit() => digits.push(c as u8),
            _ => {
                return Err(format!(
                    "is not hex: unexpected character at position {} (keys are hex digits, optionally with a 0x prefix)",
                    lead + prefix + i + 1
                ))
            }
        }
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "has an odd number of hex digits ({}); each byte takes two",
            digits.len()
        ));
    }
    let mut out = Secret::zeroed(digits.len() / 2);
    hex::decode_to_slice(&digits[..], out.as_mut_bytes())
        .map_err(|_| "is not valid hex".to_string())?;
    Ok(out)
}

/// What reading a key file found: the key, and a warning if others can read it.
pub struct KeyFile {
    pub key: Secret,
    pub warning: Option<String>,
}

/// Resolves `path` against the config file's directory.
pub fn resolve(config_path: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config_path.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Reads a key file holding hex text.
pub fn read_key_file(path: &Path) -> Result<KeyFile, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read key file `{}`: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "key file `{}` is not a regular file",
            path.display()
        ));
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read key file `{}`: {e}", path.display()))?,
    );
    let key = decode_hex(&text).map_err(|e| format!("key file `{}` {e}", path.display()))?;
    Ok(KeyFile {
        key,
        warning: world_readable(path, &meta),
    })
}

/// A warning if the file is readable by every user.
pub fn world_readable(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    (mode & 0o004 != 0).then(|| {
        format!(
            "`{}` is readable by every user (mode {mode:04o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        )
    })
}

/// Bytes of keying material a cipher/AEAD takes, and how that number is made
/// up (said in the error when the key has the wrong length).
pub fn encr_key_len(t: &Transform) -> Option<(usize, String)> {
    use ids::encr::*;
    let bits = usize::from(t.key_bits.unwrap_or(0));
    let k = bits / 8;
    Some(match t.id {
        NULL => (0, "NULL encryption takes no key".into()),
        DES => (8, "8-byte DES key".into()),
        TRIPLE_DES => (24, "24-byte 3DES key".into()),
        CAST => (16, "16-byte CAST-128 key".into()),
        BLOWFISH | AES_CBC | CAMELLIA_CBC => (k, format!("{k}-byte key")),
        AES_CTR | CAMELLIA_CTR => (k + 4, format!("{k}-byte key + 4-byte nonce, RFC 3686 5.1")),
        AES_GCM_8 | AES_GCM_12 | AES_GCM_16 => (
            k + 4,
            format!("{k}-byte AES key + 4-byte salt, RFC 4106 8.1"),
        ),
        NULL_AUTH_AES_GMAC => (
            k + 4,
            format!("{k}-byte AES key + 4-byte salt, RFC 4543 3.2"),
        ),
        AES_CCM_8 | AES_CCM_12 | AES_CCM_16 | CAMELLIA_CCM_8 | CAMELLIA_CCM_12
        | CAMELLIA_CCM_16 => (k + 3, format!("{k}-byte key + 3-byte salt, RFC 4309 7.1")),
        CHACHA20_POLY1305 => (36, "32-byte ChaCha20 key + 4-byte salt, RFC 7634 2".into()),
        _ => return None,
    })
}

/// Bytes of key an integrity algorithm takes.
pub fn integ_key_len(t: &Transform) -> Option<(usize, String)> {
    use ids::integ::*;
    debug_assert_eq!(t.kind, TransformType::Integ);
    Some(match t.id {
        HMAC_MD5_96 | HMAC_MD5_128 => (16, "HMAC-MD5 key".into()),
        HMAC_SHA1_96 | HMAC_SHA1_160 => (20, "HMAC-SHA-1 key".into()),
        AES_XCBC_96 => (16, "AES-XCBC key".into()),
        AES_CMAC_96 => (16, "AES-CMAC key".into()),
        HMAC_SHA2_256_128 => (32, "HMAC-SHA-256 key".into()),
        HMAC_SHA2_384_192 => (48, "HMAC-SHA-384 key".into()),
        HMAC_SHA2_512_256 => (64, "HMAC-SHA-512 key".into()),
        AES_128_GMAC => (20, "16-byte AES key + 4-byte salt, RFC 4543 3.2".into()),
        AES_192_GMAC => (28, "24-byte AES key + 4-byte salt, RFC 4543 3.2".into()),
        AES_256_GMAC => (36, "32-byte AES key + 4-byte salt, RFC 4543 3.2".into()),
        _ => return None,
    })
}
