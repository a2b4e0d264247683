//! Errors returned to the caller of the engine's API (not packet errors,
//! which are counted in [`crate::Stats`] and logged, never returned).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no connection named `{0}` in the configuration")]
    UnknownConnection(String),
    #[error("a connection named `{0}` exists already; remove it first or pick another name")]
    ConnectionExists(String),
    #[error("connection `{0}` has no remote address to initiate to")]
    NoRemoteAddress(String),
    #[error("connection `{name}`: {why}")]
    BadConfig { name: String, why: String },
    #[error("connection `{connection}` has no child `{child}`")]
    UnknownChild { connection: String, child: String },
    #[error("connection `{connection}` child `{child}`: the triggering packet {packet} is outside the child's traffic selectors")]
    TriggerOutsideSelectors {
        connection: String,
        child: String,
        packet: String,
    },
    #[error("no IKE SA {0:016x}")]
    UnknownIkeSa(u64),
    #[error("IKE SA {ike:016x}: no CHILD_SA with inbound SPI {spi:08x}")]
    UnknownChildSa { ike: u64, spi: u32 },
    #[error("crypto: {0}")]
    Crypto(#[from] palisade_crypto::Error),
    #[error("encoding: {0}")]
    Wire(#[from] palisade_wire::Error),
}
