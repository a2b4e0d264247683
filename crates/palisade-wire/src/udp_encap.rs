//! UDP encapsulation of ESP (RFC 3948): what a datagram on port 4500 carries.
//!
//! ```text
//! NAT-keepalive:   | 0xFF |
//! IKE:             | 0x00000000 (non-ESP marker) | IKE header ... |
//! ESP:             | SPI (non-zero) | Sequence Number | ...       |
//! ```

use crate::error::{Error, Result};
use crate::esp;

/// "The sender MUST use a one-octet-long payload with the value 0xFF." (RFC
/// 3948 2.3)
pub const KEEPALIVE: [u8; 1] = [0xff];
/// "The Non-ESP Marker is 4 bytes of zero aligning with the SPI field of an ESP
/// packet." (RFC 3948 2.2)
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// A classified port-4500 UDP payload, borrowing the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// A NAT-keepalive; "ignored by the receiver" (RFC 3948 2.3).
    Keepalive,
    /// An IKE message, after the non-ESP marker.
    Ike(&'a [u8]),
    /// An ESP packet, starting at its (non-zero) SPI.
    Esp(&'a [u8]),
}

impl<'a> Payload<'a> {
    /// Classifies a UDP payload received on port 4500.
    ///
    /// A single 0xFF byte is a keepalive; 4 leading zero bytes are the non-ESP
    /// marker before IKE; otherwise the first 4 bytes are an ESP SPI, and the
    /// payload must hold at least an ESP header ("The SPI field in the ESP
    /// header MUST NOT be a zero value", RFC 3948 2.2 -- zero is the marker).
    pub fn classify(payload: &'a [u8]) -> Result<Payload<'a>> {
        if payload == KEEPALIVE {
            return Ok(Payload::Keepalive);
        }
        match payload.get(..4) {
            None => Err(Error::Truncated {
                field: "UDP-encapsulated payload (SPI or non-ESP marker)",
                need: 4,
                have: payload.len(),
            }),
            Some(m) if m == NON_ESP_MARKER => Ok(Payload::Ike(payload.get(4..).unwrap_or(&[]))),
            Some(_) if payload.len() < esp::HEADER_LEN => Err(Error::Truncated {
                field: "UDP-encapsulated ESP header",
                need: esp::HEADER_LEN,
                have: payload.len(),
            }),
            Some(_) => Ok(Payload::Esp(payload)),
        }
    }

    /// The bytes this payload occupies in a UDP datagram.
    pub fn buffer_len(&self) -> usize {
        match self {
            Payload::Keepalive => KEEPALIVE.len(),
            Payload::Ike(ike) => NON_ESP_MARKER.len() + ike.len(),
            Payload::Esp(esp) => esp.len(),
        }
    }

    /// Writes the UDP payload into `buf`; returns its length. An ESP payload
    /// must start with a non-zero SPI so that it classifies back as ESP.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let need = self.buffer_len();
        let have = buf.len();
        let Some(out) = buf.get_mut(..need) else {
            return Err(Error::BufferTooSmall {
                field: "UDP-encapsulated payload",
                need,
                have,
            });
        };
        match self {
            Payload::Keepalive => out.copy_from_slice(&KEEPALIVE),
            Payload::Ike(ike) => {
                let (m, rest) = out.split_at_mut(NON_ESP_MARKER.len()); // ok: need >= 4
                m.copy_from_slice(&NON_ESP_MARKER);
                rest.copy_from_slice(ike);
            }
            Payload::Esp(esp) => {
                if esp.len() < esp::HEADER_LEN || esp.get(..4) == Some(&NON_ESP_MARKER[..]) {
                    return Err(Error::Invalid {
                        field: "UDP-encapsulated ESP SPI",
                        value: 0,
                    });
                }
                out.copy_from_slice(esp);
            }
        }
        Ok(need)
    }
}

/// Writes the non-ESP marker in front of an IKE message that the caller has
/// already placed at `buf[4..4 + ike_len]` (so IKE can be serialized in place).
pub fn emit_non_esp_marker(buf: &mut [u8]) -> Result<()> {
    let have = buf.len();
    match buf.get_mut(..4) {
        Some(m) => {
            m.copy_from_slice(&NON_ESP_MARKER);
            Ok(())
        }
        None => Err(Error::BufferTooSmall {
            field: "non-ESP marker",
            need: 4,
            have,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_forms() {
        assert_eq!(Payload::classify(&[0xff]), Ok(Payload::Keepalive));
        assert_eq!(
            Payload::classify(&[0, 0, 0, 0, 1, 2]),
            Ok(Payload::Ike(&[1, 2]))
        );
        let esp = [0, 0, 1, 0, 0, 0, 0, 1];
        assert_eq!(Payload::classify(&esp), Ok(Payload::Esp(&esp)));
        assert!(Payload::classify(&[0xfe]).is_err());
        assert!(Payload::classify(&[0, 0, 1, 0, 0]).is_err());
    }
}
