//! Writes IKEv2 messages covering every payload type into a pcap file, so that
//! an independent dissector (tshark) can judge the encoder.
//!
//! Usage: `cargo run -p palisade-wire --example ikev2_pcap -- [out.pcap]`
//!
//! Wireshark only dissects payloads inside SK when it can decrypt them, so the
//! payloads that normally travel encrypted (IDi, AUTH, TSi, ...) are also sent
//! here in plaintext IKE_AUTH/INFORMATIONAL messages, which the dissector
//! accepts. The pcap format (Ethernet linktype) is written by hand: it is a
//! 24-byte file header and a 16-byte header per packet.

use std::net::{Ipv4Addr, Ipv6Addr};

use palisade_wire::ikev2::consts::{
    auth, cert, cfg, eap, exchange, id, notify, protocol, transform,
};
use palisade_wire::ikev2::*;

const INITIATOR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const RESPONDER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// One datagram to capture: direction, UDP port (500, or 4500 with the
/// RFC 3948 non-ESP marker) and the IKE message.
pub struct Captured {
    pub from_initiator: bool,
    pub port: u16,
    pub message: Message,
}

fn header(exchange_type: u8, message_id: u32, response: bool) -> HeaderRepr {
    HeaderRepr {
        spi_i: [0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81],
        spi_r: if exchange_type == exchange::IKE_SA_INIT && !response {
            [0; 8]
        } else {
            [0x91, 0xa2, 0xb3, 0xc4, 0xd5, 0xe6, 0xf7, 0x08]
        },
        exchange_type,
        initiator: !response,
        response,
        message_id,
        ..Default::default()
    }
}

fn ike_proposal() -> SaPayload {
    SaPayload {
        proposals: vec![
            Proposal {
                number: 1,
                protocol_id: protocol::IKE,
                spi: vec![],
                transforms: vec![
                    Transform::with_key_length(transform::ENCR, 20, 256), // AES-GCM-16
                    Transform::new(transform::PRF, 5),                    // HMAC-SHA2-256
                    Transform::new(transform::KE, 19),                    // ECP-256
                ],
            },
            Proposal {
                number: 2,
                protocol_id: protocol::IKE,
                spi: vec![],
                transforms: vec![
                    Transform::with_key_length(transform::ENCR, 12, 128), // AES-CBC
                    Transform::new(transform::PRF, 5),
                    Transform::new(transform::INTEG, 12), // HMAC-SHA2-256-128
                    Transform::new(transform::KE, 31),    // Curve25519
                ],
            },
        ],
    }
}

fn esp_proposal() -> SaPayload {
    SaPayload {
        proposals: vec![Proposal {
            number: 1,
            protocol_id: protocol::ESP,
            spi: vec![0xc0, 0x01, 0xd0, 0x0d],
            transforms: vec![
                Transform::with_key_length(transform::ENCR, 20, 256),
                Transform::new(transform::ESN, 0),
            ],
        }],
    }
}

fn selectors() -> TsPayload {
    TsPayload {
        selectors: vec![
            TrafficSelector {
                ip_protocol: 0,
                start_port: 0,
                end_port: 65535,
                addresses: AddressRange::V4 {
                    start: Ipv4Addr::new(10, 1, 0, 0),
                    end: Ipv4Addr::new(10, 1, 255, 255),
                },
            },
            TrafficSelector {
                ip_protocol: 6,
                start_port: 443,
                end_port: 443,
                addresses: AddressRange::V6 {
                    start: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0),
                    end: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0xffff, 0xffff, 0xffff, 0xffff),
                },
            },
        ],
    }
}

fn notify(t: u16, data: &[u8]) -> Payload {
    Payload::Notify(NotifyPayload::new(t, data.to_vec()))
}

/// The messages of the capture, in order.
pub fn messages() -> Vec<Captured> {
    let certreq = Payload::CertReq(CertReqPayload {
        encoding: cert::X509_SIGNATURE,
        data: vec![0x5a; 20],
    });
    let init_common = |nonce: u8| {
        vec![
            Payload::Ke(KePayload {
                group: 19,
                data: vec![0x04; 64],
            }),
            Payload::Nonce(NoncePayload {
                data: vec![nonce; 32],
            }),
            notify(notify::NAT_DETECTION_SOURCE_IP, &[0x11; 20]),
            notify(notify::NAT_DETECTION_DESTINATION_IP, &[0x22; 20]),
            notify(notify::IKEV2_FRAGMENTATION_SUPPORTED, &[]),
            notify(notify::SIGNATURE_HASH_ALGORITHMS, &[0, 2, 0, 3, 0, 4]),
            Payload::VendorId(VendorIdPayload {
                data: b"palisade test vendor id".to_vec(),
            }),
        ]
    };
    let mut init_req = vec![Payload::Sa(ike_proposal())];
    init_req.extend(init_common(0xaa));
    let mut init_resp = vec![Payload::Sa(SaPayload {
        proposals: vec![ike_proposal().proposals[0].clone()],
    })];
    init_resp.extend(init_common(0xbb));
    init_resp.push(certreq);

    let auth_req = vec![
        Payload::IdI(IdPayload {
            id_type: id::FQDN,
            data: b"gw-a.example".to_vec(),
        }),
        Payload::Cert(CertPayload {
            encoding: cert::HASH_URL_X509_CERT,
            data: [&[0x3c; 20][..], b"http://gw-a.example/cert.der"].concat(),
        }),
        notify(notify::INITIAL_CONTACT, &[]),
        Payload::IdR(IdPayload {
            id_type: id::IPV4_ADDR,
            data: RESPONDER.octets().to_vec(),
        }),
        Payload::Auth(AuthPayload {
            method: auth::SHARED_KEY_MIC,
            data: vec![0x77; 32],
        }),
        Payload::Cp(CpPayload {
            cfg_type: cfg::REQUEST,
            attributes: vec![
                CpAttribute {
                    attr_type: cfg::INTERNAL_IP4_ADDRESS,
                    value: vec![],
                },
                CpAttribute {
                    attr_type: cfg::INTERNAL_IP4_DNS,
                    value: vec![],
                },
            ],
        }),
        notify(notify::USE_TRANSPORT_MODE, &[]),
        notify(notify::ESP_TFC_PADDING_NOT_SUPPORTED, &[]),
        Payload::Sa(esp_proposal()),
        Payload::TsI(selectors()),
        Payload::TsR(selectors()),
    ];
    let auth_resp = vec![
        Payload::IdR(IdPayload {
            id_type: id::RFC822_ADDR,
            data: b"admin@gw-b.example".to_vec(),
        }),
        Payload::Auth(AuthPayload {
            method: auth::SHARED_KEY_MIC,
            data: vec![0x78; 32],
        }),
        Payload::Eap(EapPayload {
            code: eap::REQUEST,
            identifier: 1,
            eap_type: Some(1),
            data: b"who?".to_vec(),
        }),
    ];
    let eap_resp = vec![Payload::Eap(EapPayload {
        code: eap::RESPONSE,
        identifier: 1,
        eap_type: Some(1),
        data: b"alice".to_vec(),
    })];
    let cp_reply = vec![Payload::Cp(CpPayload {
        cfg_type: cfg::REPLY,
        attributes: vec![
            CpAttribute {
                attr_type: cfg::INTERNAL_IP4_ADDRESS,
                value: vec![10, 3, 0, 7],
            },
            CpAttribute {
                attr_type: cfg::INTERNAL_IP4_DNS,
                value: vec![10, 3, 0, 1],
            },
        ],
    })];
    let info = vec![
        Payload::Delete(DeletePayload {
            protocol_id: protocol::ESP,
            spi_size: 4,
            spis: vec![vec![0xc0, 1, 0xd0, 0x0d], vec![0xc0, 1, 0xd0, 0x0e]],
        }),
        Payload::Delete(DeletePayload {
            protocol_id: protocol::IKE,
            spi_size: 0,
            spis: vec![],
        }),
    ];
    let sk = vec![Payload::Sk(SkPayload {
        inner_next_payload: consts::payload::IDI,
        data: vec![0xe5; 16 + 64 + 16],
    })];
    let skf = |n: u16| {
        vec![Payload::Skf(SkfPayload {
            inner_next_payload: if n == 1 { consts::payload::IDI } else { 0 },
            fragment_number: n,
            total_fragments: 2,
            data: vec![0xf0 | n as u8; 16 + 48 + 16],
        })]
    };

    let m = |exchange_type, id, response, payloads| Message {
        header: header(exchange_type, id, response),
        payloads,
    };
    let c = |from_initiator, port, message| Captured {
        from_initiator,
        port,
        message,
    };
    vec![
        c(true, 500, m(exchange::IKE_SA_INIT, 0, false, init_req)),
        c(false, 500, m(exchange::IKE_SA_INIT, 0, true, init_resp)),
        c(true, 4500, m(exchange::IKE_AUTH, 1, false, auth_req)),
        c(false, 4500, m(exchange::IKE_AUTH, 1, true, auth_resp)),
        c(true, 4500, m(exchange::IKE_AUTH, 2, false, eap_resp)),
        c(false, 4500, m(exchange::IKE_AUTH, 2, true, cp_reply)),
        c(true, 4500, m(exchange::INFORMATIONAL, 3, false, info)),
        c(true, 4500, m(exchange::IKE_AUTH, 4, false, sk)),
        c(true, 4500, m(exchange::IKE_AUTH, 5, false, skf(1))),
        c(true, 4500, m(exchange::IKE_AUTH, 5, false, skf(2))),
    ]
}

fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 + UDP around one IKE datagram.
fn frame(cap: &Captured, ip_id: u16) -> Vec<u8> {
    let ike = cap.message.to_vec().expect("example messages are valid");
    let mut udp_payload = Vec::new();
    if cap.port == 4500 {
        udp_payload.extend_from_slice(&[0; 4]); // non-ESP marker (RFC 3948 section 2.2)
    }
    udp_payload.extend_from_slice(&ike);
    let (src, dst) = if cap.from_initiator {
        (INITIATOR, RESPONDER)
    } else {
        (RESPONDER, INITIATOR)
    };

    let udp_len = (8 + udp_payload.len()) as u16;
    let mut udp = Vec::new();
    udp.extend_from_slice(&cap.port.to_be_bytes());
    udp.extend_from_slice(&cap.port.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&udp_payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    pseudo.extend_from_slice(&udp);
    let c = match checksum(&pseudo, 0) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());

    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + udp.len() as u16).to_be_bytes());
    ip.extend_from_slice(&ip_id.to_be_bytes());
    ip.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());

    let mac = |last: u8| [0x02, 0, 0, 0, 0, last];
    let (smac, dmac) = if cap.from_initiator {
        (mac(1), mac(2))
    } else {
        (mac(2), mac(1))
    };
    let mut f = Vec::new();
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&udp);
    f
}

/// The whole pcap file (classic format, microsecond timestamps, Ethernet).
pub fn pcap() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (i, cap) in messages().iter().enumerate() {
        let f = frame(cap, i as u16 + 1);
        out.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        out.extend_from_slice(&(i as u32 * 1000).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&f);
    }
    out
}

#[allow(dead_code)] // unused when the tshark test includes this file as a module
fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ikev2.pcap".into());
    // Each message must also survive our own parser before tshark sees it.
    for cap in messages() {
        let bytes = cap.message.to_vec().expect("example messages are valid");
        assert_eq!(
            Message::parse(&bytes).expect("own output parses"),
            cap.message
        );
    }
    std::fs::write(&path, pcap())?;
    println!("wrote {} IKEv2 messages to {path}", messages().len());
    Ok(())
}
