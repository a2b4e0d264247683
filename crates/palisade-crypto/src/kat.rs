//! Known-answer tests that `palisade selftest` runs at start-up. Each module that
//! implements transforms contributes its own list; this module gathers them.

/// The outcome of one transform's known-answer test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KatResult {
    /// Transform name as IANA spells it, e.g. "ENCR_AES_GCM_16 (256)".
    pub transform: String,
    /// IKEv2 transform type: "ENCR", "PRF", "INTEG", "KE", "SIG", "KDF".
    pub kind: &'static str,
    /// IANA transform ID (0 where the registry has none, e.g. signatures).
    pub iana_id: u16,
    /// Whether the computed output matched the published vector.
    pub ok: bool,
    /// Where the vector comes from, e.g. "RFC 4106 / draft-mcgrew-gcm-test-01 case 3".
    pub source: &'static str,
}
