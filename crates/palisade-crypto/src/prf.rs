//! Pseudo-random functions (IKEv2 transform type 2) and prf+ (RFC 7296 2.13).

use crate::Error;

/// A keyed PRF. The key is given per call because IKE keys its PRFs with many
/// different values (nonces, SKEYSEED, SK_d, SK_p*).
pub trait Prf: Send + Sync {
    /// Human name, e.g. "PRF_HMAC_SHA2_256".
    fn name(&self) -> &'static str;
    /// Output length in bytes.
    fn output_len(&self) -> usize;
    /// The key length used for derived PRF keys (SK_d, SK_pi, SK_pr), RFC 7296 2.14.
    fn key_len(&self) -> usize;
    /// `out = prf(key, data[0] | data[1] | ...)`; `out.len() == output_len()`.
    fn compute(&self, key: &[u8], data: &[&[u8]], out: &mut [u8]) -> Result<(), Error>;
}
