//! IKEv2 codec against hand-assembled messages (bytes written out from the
//! RFC 7296 section 3 diagrams, not produced by the emitter) and error cases.

use palisade_wire::error::{Fault, Location};
use palisade_wire::ikev2::consts::{exchange, notify, payload, protocol, transform};
use palisade_wire::ikev2::*;
use palisade_wire::Error;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// IKE_SA_INIT request: SA(AES-GCM-16/256, PRF-HMAC-SHA2-256, X25519), KE,
/// Ni, N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP).
fn ike_sa_init_bytes() -> Vec<u8> {
    let header = [
        1, 2, 3, 4, 5, 6, 7, 8, // SPIi
        0, 0, 0, 0, 0, 0, 0, 0, // SPIr
        33, 0x20, 34, 0x08, // next SA, v2.0, IKE_SA_INIT, I
        0, 0, 0, 0, // message ID
        0, 0, 0, 200, // length
    ];
    let sa = cat(&[
        &[34, 0, 0, 40],             // next KE, length 40
        &[0, 0, 0, 36, 1, 1, 0, 3],  // last proposal, len 36, #1, IKE, no SPI, 3 transforms
        &[3, 0, 0, 12, 1, 0, 0, 20], // more, len 12, ENCR, AES-GCM-16
        &[0x80, 14, 1, 0],           // Key Length 256 (TV)
        &[3, 0, 0, 8, 2, 0, 0, 5],   // more, PRF, HMAC-SHA2-256
        &[0, 0, 0, 8, 4, 0, 0, 31],  // last, KE, curve25519
    ]);
    let ke = cat(&[&[40, 0, 0, 40, 0, 31, 0, 0], &[0xaa; 32]]);
    let nonce = cat(&[&[41, 0, 0, 36], &[0xbb; 32]]);
    let nat_src = cat(&[&[41, 0, 0, 28, 0, 0, 0x40, 0x04], &[0xcc; 20]]);
    let nat_dst = cat(&[&[0, 0, 0, 28, 0, 0, 0x40, 0x05], &[0xdd; 20]]);
    let m = cat(&[&header, &sa, &ke, &nonce, &nat_src, &nat_dst]);
    assert_eq!(m.len(), 200);
    m
}

fn ike_sa_init_repr() -> Message {
    Message {
        header: HeaderRepr {
            spi_i: [1, 2, 3, 4, 5, 6, 7, 8],
            spi_r: [0; 8],
            minor_version: 0,
            exchange_type: exchange::IKE_SA_INIT,
            initiator: true,
            version: false,
            response: false,
            message_id: 0,
        },
        payloads: vec![
            Payload::Sa(SaPayload {
                proposals: vec![Proposal {
                    number: 1,
                    protocol_id: protocol::IKE,
                    spi: vec![],
                    transforms: vec![
                        Transform::with_key_length(transform::ENCR, 20, 256),
                        Transform::new(transform::PRF, 5),
                        Transform::new(transform::KE, 31),
                    ],
                }],
            }),
            Payload::Ke(KePayload {
                group: 31,
                data: vec![0xaa; 32],
            }),
            Payload::Nonce(NoncePayload {
                data: vec![0xbb; 32],
            }),
            Payload::Notify(NotifyPayload::new(
                notify::NAT_DETECTION_SOURCE_IP,
                vec![0xcc; 20],
            )),
            Payload::Notify(NotifyPayload::new(
                notify::NAT_DETECTION_DESTINATION_IP,
                vec![0xdd; 20],
            )),
        ],
    }
}

#[test]
fn ike_sa_init_parses_and_emits_byte_exact() {
    let bytes = ike_sa_init_bytes();
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m, ike_sa_init_repr());
    assert_eq!(m.to_vec().unwrap(), bytes);
    let Payload::Sa(sa) = &m.payloads[0] else {
        panic!()
    };
    assert_eq!(sa.proposals[0].transforms[0].key_length(), Some(256));
    assert_eq!(sa.proposals[0].transforms[1].key_length(), None);

    let mut buf = [0u8; 300];
    assert_eq!(m.emit(&mut buf).unwrap(), 200);
    assert_eq!(&buf[..200], &bytes[..]);
    assert!(matches!(
        m.emit(&mut buf[..100]),
        Err(Error::BufferTooSmall { need: 200, .. })
    ));
}

#[test]
fn header_view_reads_fields() {
    let bytes = ike_sa_init_bytes();
    let h = Header::new_checked(&bytes[..]).unwrap();
    assert_eq!(h.next_payload(), payload::SA);
    assert_eq!((h.major_version(), h.minor_version()), (2, 0));
    assert_eq!(h.exchange_type(), exchange::IKE_SA_INIT);
    assert_eq!(h.length(), 200);
    assert_eq!(h.payload_bytes().len(), 172);
    let types: Vec<u8> = PayloadIter::new(h.next_payload(), h.payload_bytes())
        .map(|p| p.unwrap().payload_type)
        .collect();
    assert_eq!(types, [33, 34, 40, 41, 41]);
}

#[test]
fn header_errors() {
    let bytes = ike_sa_init_bytes();
    assert_eq!(
        Message::parse(&bytes[..20]),
        Err(Error::Truncated {
            field: "IKEv2 header",
            need: 28,
            have: 20
        })
    );
    assert_eq!(
        Message::parse(&bytes[..150]),
        Err(Error::Truncated {
            field: "IKEv2 header length",
            need: 200,
            have: 150
        })
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Message::parse(&longer),
        Err(Error::Malformed {
            field: "IKEv2 header length",
            ..
        })
    ));
    let mut v1 = bytes.clone();
    v1[17] = 0x10;
    assert_eq!(
        Message::parse(&v1),
        Err(Error::Invalid {
            field: "IKEv2 header major version",
            value: 1
        })
    );
    let mut short = bytes.clone();
    short[27] = 27;
    assert_eq!(
        Message::parse(&short),
        Err(Error::Invalid {
            field: "IKEv2 header length",
            value: 27
        })
    );
}

#[test]
fn transform_length_error_names_proposal_and_transform() {
    let mut bytes = ike_sa_init_bytes();
    // Second transform of proposal 1 starts at 28 + 4 + 8 + 12; claim 200 bytes.
    let t2 = 28 + 4 + 8 + 12;
    assert_eq!(bytes[t2 + 4], transform::PRF);
    bytes[t2 + 3] = 200;
    let e = Message::parse(&bytes).unwrap_err();
    assert_eq!(
        e.to_string(),
        "IKEv2 SA proposal 1 transform 2 length: truncated (need 196 bytes, have 12)"
    );
    assert!(matches!(
        e,
        Error::Located {
            field: "length",
            fault: Fault::Truncated { .. },
            ..
        }
    ));
}

#[test]
fn last_substructure_markers_are_checked() {
    let mut bytes = ike_sa_init_bytes();
    let t3 = 28 + 4 + 8 + 12 + 8;
    bytes[t3] = 3; // says "more transforms" on the last one
    assert_eq!(
        Message::parse(&bytes).unwrap_err().to_string(),
        "IKEv2 SA proposal 1 transform 3 last substruc: disagrees with the number of transforms"
    );
    bytes[t3] = 7;
    assert_eq!(
        Message::parse(&bytes).unwrap_err().to_string(),
        "IKEv2 SA proposal 1 transform 3 last substruc: invalid value 7"
    );
    let mut bytes = ike_sa_init_bytes();
    bytes[32] = 2; // proposal 1 says "more proposals", none follow
    assert_eq!(
        Message::parse(&bytes).unwrap_err().to_string(),
        "IKEv2 SA proposal 1 last substruc: says more but none follow"
    );
}

fn with_extra_payload(extra_type: u8, critical: bool) -> Vec<u8> {
    // IKE header -> N(COOKIE) -> extra -> nothing.
    let mut m = vec![0; 28];
    m[16] = payload::NOTIFY;
    m[17] = 0x20;
    m[18] = exchange::INFORMATIONAL;
    m.extend_from_slice(&[extra_type, 0, 0, 12, 0, 0, 0x40, 0x06, 9, 9, 9, 9]);
    m.extend_from_slice(&[0, if critical { 0x80 } else { 0 }, 0, 7, 1, 2, 3]);
    let len = m.len() as u32;
    m[24..28].copy_from_slice(&len.to_be_bytes());
    m
}

#[test]
fn unknown_payloads_skipped_unless_critical() {
    let m = Message::parse(&with_extra_payload(60, false)).unwrap();
    assert_eq!(
        m.payloads,
        vec![Payload::Notify(NotifyPayload::new(
            notify::COOKIE,
            vec![9; 4]
        ))]
    );
    assert_eq!(
        Message::parse(&with_extra_payload(60, true)),
        Err(Error::UnsupportedCriticalPayload { payload_type: 60 })
    );
    // A known type with the critical bit is simply parsed (RFC 7296 2.5).
    let bytes = with_extra_payload(payload::VENDOR_ID, true);
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(
        m.payloads[1],
        Payload::VendorId(VendorIdPayload {
            data: vec![1, 2, 3]
        })
    );
}

#[test]
fn chain_errors_name_the_payload() {
    let mut bytes = with_extra_payload(payload::VENDOR_ID, false);
    bytes[28 + 12 + 3] = 2; // payload length below the generic header
    assert_eq!(
        Message::parse(&bytes).unwrap_err().to_string(),
        "IKEv2 payload 2 length: invalid value 2"
    );
    let mut bytes = with_extra_payload(payload::VENDOR_ID, false);
    bytes[28 + 12 + 3] = 6; // one byte left over after the last payload
    assert_eq!(
        Message::parse(&bytes),
        Err(Error::Malformed {
            field: "IKEv2 payload chain",
            why: "bytes follow the last payload"
        })
    );
    let mut bytes = with_extra_payload(payload::VENDOR_ID, false);
    bytes[28 + 12] = payload::NONCE; // chain claims another payload: none there
    assert_eq!(
        Message::parse(&bytes).unwrap_err(),
        Error::Truncated {
            field: "header",
            need: 4,
            have: 0
        }
        .within("IKEv2 payload", 3)
    );
}

fn header(exchange_type: u8) -> HeaderRepr {
    HeaderRepr {
        spi_i: [0x11; 8],
        spi_r: [0x22; 8],
        exchange_type,
        initiator: true,
        message_id: 1,
        ..Default::default()
    }
}

#[test]
fn sk_must_be_last_and_aad_is_located() {
    let inner = vec![
        Payload::IdI(IdPayload {
            id_type: 2,
            data: b"gw-a.example".to_vec(),
        }),
        Payload::Auth(AuthPayload {
            method: 2,
            data: vec![7; 32],
        }),
    ];
    let mut plain = Vec::new();
    let first = emit_chain(&inner, &mut plain).unwrap();
    assert_eq!(first, payload::IDI);
    let m = Message {
        header: header(exchange::IKE_AUTH),
        payloads: vec![Payload::Sk(SkPayload {
            inner_next_payload: first,
            data: vec![0x55; 64],
        })],
    };
    let bytes = m.to_vec().unwrap();
    assert_eq!(bytes[16], payload::SK);
    assert_eq!(bytes[28], payload::IDI);
    let loc = locate_encrypted(&bytes).unwrap().unwrap();
    assert_eq!(loc.aad_len, 32);
    assert_eq!(loc.aad(&bytes), &bytes[..32]);
    assert_eq!(loc.body, 32..96);
    assert_eq!(loc.fragment, None);
    let parsed = Message::parse(&bytes).unwrap();
    assert_eq!(parsed, m);
    assert_eq!(parsed.parse_inner(&plain).unwrap(), inner);

    let mut bad = m.clone();
    bad.payloads
        .push(Payload::VendorId(VendorIdPayload { data: vec![1] }));
    assert!(matches!(
        bad.to_vec(),
        Err(Error::Malformed {
            field: "IKEv2 Encrypted payload",
            ..
        })
    ));
    // Bytes after SK on the wire.
    let mut trailing = bytes.clone();
    trailing[31] -= 4; // shorten SK by 4: the last 4 bytes now follow it
    assert!(matches!(
        Message::parse(&trailing),
        Err(Error::Malformed {
            field: "IKEv2 Encrypted payload",
            why: "not the last payload of the message"
        })
    ));
    // SK inside SK.
    let mut nested = Vec::new();
    let f = emit_chain(&m.payloads, &mut nested).unwrap();
    assert!(parse_inner_chain(f, &nested).is_err());
}

#[test]
fn skf_aad_covers_fragment_fields() {
    let m = Message {
        header: header(exchange::IKE_AUTH),
        payloads: vec![Payload::Skf(SkfPayload {
            inner_next_payload: payload::IDI,
            fragment_number: 1,
            total_fragments: 3,
            data: vec![1; 40],
        })],
    };
    let bytes = m.to_vec().unwrap();
    let loc = locate_encrypted(&bytes).unwrap().unwrap();
    assert_eq!(
        (loc.payload_type, loc.aad_len, loc.fragment),
        (payload::SKF, 36, Some((1, 3)))
    );
    assert_eq!(loc.body(&bytes), &[1; 40][..]);
    assert_eq!(Message::parse(&bytes).unwrap(), m);
    let mut bad = bytes.clone();
    bad[33] = 0; // fragment number 0
    assert_eq!(
        Message::parse(&bad),
        Err(Error::Invalid {
            field: "IKEv2 SKF fragment number",
            value: 0
        })
    );
    bad[33] = 4; // 4 of 3
    assert!(matches!(
        Message::parse(&bad),
        Err(Error::Malformed {
            field: "IKEv2 SKF fragment number",
            ..
        })
    ));
    assert_eq!(locate_encrypted(&ike_sa_init_bytes()).unwrap(), None);
}

fn one_payload_message(ptype: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0; 28];
    m[16] = ptype;
    m[17] = 0x20;
    m[18] = exchange::IKE_AUTH;
    m.extend_from_slice(&[0, 0, 0, 4 + body.len() as u8]);
    m.extend_from_slice(body);
    let len = m.len() as u32;
    m[24..28].copy_from_slice(&len.to_be_bytes());
    m
}

#[test]
fn payload_body_errors() {
    let parse = |t, b: &[u8]| Message::parse(&one_payload_message(t, b));
    assert_eq!(
        parse(payload::NONCE, &[0; 15]),
        Err(Error::Invalid {
            field: "IKEv2 Nonce length",
            value: 15
        })
    );
    assert!(parse(payload::NONCE, &[0; 16]).is_ok());
    assert_eq!(
        parse(payload::IDI, &[1, 0, 0, 0, 10, 0, 0])
            .unwrap_err()
            .to_string(),
        "IKEv2 ID address length: invalid value 3"
    );
    assert!(matches!(
        parse(payload::DELETE, &[3, 4, 0, 2, 1, 2, 3, 4]),
        Err(Error::Malformed {
            field: "IKEv2 Delete SPIs",
            ..
        })
    ));
    assert!(matches!(
        parse(payload::EAP, &[1, 1, 0, 9, 1, 0]),
        Err(Error::Malformed {
            field: "IKEv2 EAP length",
            ..
        })
    ));
    assert!(matches!(
        parse(payload::EAP, &[3, 1, 0, 5, 1]),
        Err(Error::Malformed {
            field: "IKEv2 EAP length",
            ..
        })
    ));
    assert!(matches!(
        parse(payload::NOTIFY, &[3, 4, 0x40, 0x09, 1, 2]),
        Err(Error::Truncated {
            field: "IKEv2 Notify SPI",
            need: 4,
            have: 2
        })
    ));
    // TS of RFC 4595 type 9 (FC): an error naming the type.
    let ts = [
        1, 0, 0, 0, 9, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(
        parse(payload::TSI, &ts).unwrap_err().to_string(),
        "IKEv2 TS 1 type: invalid value 9"
    );
    let mut ts4 = [
        1, 0, 0, 0, 7, 6, 0, 16, 0, 0, 0xff, 0xff, 10, 0, 0, 0, 10, 0, 0, 255,
    ];
    assert_eq!(
        parse(payload::TSR, &ts4).unwrap().payloads[0],
        Payload::TsR(TsPayload {
            selectors: vec![TrafficSelector {
                ip_protocol: 6,
                start_port: 0,
                end_port: 0xffff,
                addresses: AddressRange::V4 {
                    start: [10, 0, 0, 0].into(),
                    end: [10, 0, 0, 255].into()
                },
            }]
        })
    );
    ts4[7] = 40;
    assert_eq!(
        parse(payload::TSR, &ts4).unwrap_err().to_string(),
        "IKEv2 TS 1 selector length: invalid value 40"
    );
    ts4[0] = 2;
    ts4[7] = 16;
    assert!(parse(payload::TSR, &ts4)
        .unwrap_err()
        .to_string()
        .starts_with("IKEv2 TS 2 type: truncated"));
    // CP attribute running past the payload.
    let e = parse(payload::CP, &[1, 0, 0, 0, 0, 1, 0, 4, 10, 0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "IKEv2 CP attribute 1 length: truncated (need 4 bytes, have 2)"
    );
    assert!(matches!(
        parse(payload::SA, &[]),
        Err(Error::Malformed {
            field: "IKEv2 SA",
            ..
        })
    ));
}

#[test]
fn located_error_display_and_depth() {
    let e = Error::Invalid {
        field: "type",
        value: 1,
    }
    .within("attribute", 4)
    .within("transform", 3)
    .within("IKEv2 SA proposal", 2);
    assert_eq!(
        e.to_string(),
        "IKEv2 SA proposal 2 transform 3 attribute 4 type: invalid value 1"
    );
    let Error::Located { at, .. } = e else {
        panic!()
    };
    assert_eq!(at.depth, 3);
    let _: Location = at;
}

#[test]
fn emit_rejects_unrepresentable_reprs() {
    let bad_nonce = Message {
        header: header(exchange::IKE_SA_INIT),
        payloads: vec![Payload::Nonce(NoncePayload { data: vec![0; 300] })],
    };
    assert!(bad_nonce.to_vec().is_err());
    let big_attr = Payload::Sa(SaPayload {
        proposals: vec![Proposal {
            number: 1,
            protocol_id: protocol::ESP,
            spi: vec![1, 2, 3, 4],
            transforms: vec![Transform {
                transform_type: 1,
                transform_id: 12,
                attributes: vec![TransformAttribute::Tv {
                    attr_type: 0x8001,
                    value: 1,
                }],
            }],
        }],
    });
    let e = emit_chain(&[big_attr], &mut Vec::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "IKEv2 SA proposal 1 transform 1 attribute 1 type: invalid value 32769"
    );
    let huge = Payload::VendorId(VendorIdPayload {
        data: vec![0; 70000],
    });
    assert!(emit_chain(&[huge], &mut Vec::new()).is_err());
}

#[test]
fn notify_helpers() {
    let m = Message::parse(&ike_sa_init_bytes()).unwrap();
    assert_eq!(m.notifies(notify::NAT_DETECTION_DESTINATION_IP).count(), 1);
    assert_eq!(m.notifies(notify::COOKIE).count(), 0);
    assert!(matches!(
        m.find(payload::KE),
        Some(Payload::Ke(KePayload { group: 31, .. }))
    ));
    let n = NotifyPayload::invalid_ke_payload(19);
    assert!(n.is_error());
    assert_eq!(n.data_u16(), Some(19));
    assert_eq!(n.data_u32(), None);
    let sha = NotifyPayload::new(notify::SIGNATURE_HASH_ALGORITHMS, vec![0, 2, 0, 3, 0, 4]);
    assert_eq!(sha.data_u16_list(), Some(vec![2, 3, 4]));
    assert!(!sha.is_error());
}

/// A captured IKE_SA_INIT request from a real implementation (328 bytes).
/// Source: the test vector `IKEV2_INIT_REQ` of rusticata/ipsec-parser
/// (src/ikev2_parser.rs, MIT/Apache-2.0), itself taken from a capture.
#[rustfmt::skip]
const CAPTURED_INIT_REQ: &[u8] = &[
    0x01, 0xf8, 0xc3, 0xd4, 0xbb, 0x77, 0x3f, 0x2f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x21, 0x20, 0x22, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x48, 0x22, 0x00, 0x00, 0x30,
    0x00, 0x00, 0x00, 0x2c, 0x01, 0x01, 0x00, 0x04, 0x03, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x14,
    0x80, 0x0e, 0x00, 0x80, 0x03, 0x00, 0x00, 0x08, 0x03, 0x00, 0x00, 0x0c, 0x03, 0x00, 0x00, 0x08,
    0x02, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x08, 0x04, 0x00, 0x00, 0x1e, 0x28, 0x00, 0x00, 0x88,
    0x00, 0x1e, 0x00, 0x00, 0x8f, 0xe6, 0xf3, 0x6e, 0x88, 0x7b, 0x18, 0x9b, 0x5e, 0xce, 0xf2, 0x56,
    0xf9, 0x8d, 0x76, 0xaa, 0xcb, 0x07, 0xb3, 0xb9, 0x58, 0xee, 0x73, 0xea, 0x7b, 0x73, 0xb1, 0x04,
    0x7e, 0xa4, 0x2a, 0x4e, 0x44, 0x1f, 0xb9, 0x3e, 0xf9, 0xa9, 0xab, 0x0c, 0x54, 0x5a, 0xa7, 0x46,
    0x2e, 0x58, 0x3c, 0x06, 0xb2, 0xed, 0x91, 0x8d, 0x11, 0xca, 0x67, 0xdb, 0x21, 0x6b, 0xb8, 0xad,
    0xbf, 0x57, 0x3f, 0xba, 0x5a, 0xa6, 0x7d, 0x49, 0x83, 0x4b, 0xa9, 0x93, 0x6f, 0x4c, 0xe9, 0x66,
    0xcd, 0x57, 0x5c, 0xba, 0x07, 0x42, 0xfa, 0x0b, 0xe8, 0xb9, 0xd0, 0x25, 0xc4, 0xb9, 0xdf, 0x29,
    0xd7, 0xe4, 0x6e, 0xd6, 0x54, 0x78, 0xaa, 0x95, 0x02, 0xbf, 0x25, 0x55, 0x71, 0xfa, 0x9e, 0xcb,
    0x05, 0xea, 0x8f, 0x7b, 0x14, 0x0e, 0x1d, 0xdf, 0xb4, 0x03, 0x5f, 0x2d, 0x21, 0x66, 0x58, 0x6e,
    0x42, 0x72, 0x32, 0x03, 0x29, 0x00, 0x00, 0x24, 0xe3, 0x3b, 0x52, 0xaa, 0x6f, 0x6d, 0x62, 0x87,
    0x16, 0xd7, 0xab, 0xc6, 0x45, 0xa6, 0xcc, 0x97, 0x07, 0x43, 0x3d, 0x85, 0x83, 0xde, 0xab, 0x97,
    0xdb, 0xbf, 0x08, 0xce, 0x0f, 0xad, 0x59, 0x71, 0x29, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x40, 0x04,
    0xcc, 0xc0, 0x64, 0x5c, 0x1e, 0xeb, 0xc2, 0x1d, 0x09, 0x2b, 0xf0, 0x7f, 0xca, 0x34, 0xc3, 0xe6,
    0x2b, 0x20, 0xec, 0x8f, 0x29, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x40, 0x05, 0x15, 0x39, 0x75, 0x77,
    0xf5, 0x54, 0x87, 0xa3, 0x8f, 0xd8, 0xaf, 0x70, 0xb0, 0x9c, 0x20, 0x9c, 0xff, 0x4a, 0x37, 0xd1,
    0x29, 0x00, 0x00, 0x10, 0x00, 0x00, 0x40, 0x2f, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x04,
    0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x40, 0x16,
];

#[test]
fn captured_ike_sa_init_round_trips() {
    let m = Message::parse(CAPTURED_INIT_REQ).unwrap();
    assert_eq!(
        m.header.spi_i,
        [0x01, 0xf8, 0xc3, 0xd4, 0xbb, 0x77, 0x3f, 0x2f]
    );
    assert_eq!(m.header.exchange_type, exchange::IKE_SA_INIT);
    assert!(m.header.initiator && !m.header.response);
    let types: Vec<u8> = m.payloads.iter().map(Payload::payload_type).collect();
    assert_eq!(types, [33, 34, 40, 41, 41, 41, 41]);
    let Payload::Sa(sa) = &m.payloads[0] else {
        panic!()
    };
    let p = &sa.proposals[0];
    assert_eq!(
        (p.number, p.protocol_id, p.spi.len()),
        (1, protocol::IKE, 0)
    );
    let t: Vec<(u8, u16, Option<u16>)> = p
        .transforms
        .iter()
        .map(|t| (t.transform_type, t.transform_id, t.key_length()))
        .collect();
    assert_eq!(
        t,
        [
            (1, 20, Some(128)),
            (3, 12, None),
            (2, 5, None),
            (4, 30, None)
        ]
    );
    let Payload::Ke(ke) = &m.payloads[1] else {
        panic!()
    };
    assert_eq!((ke.group, ke.data.len()), (30, 128));
    let hashes = m
        .notifies(notify::SIGNATURE_HASH_ALGORITHMS)
        .next()
        .unwrap();
    assert_eq!(hashes.data_u16_list(), Some(vec![1, 2, 3, 4]));
    assert_eq!(m.notifies(notify::REDIRECT_SUPPORTED).count(), 1);
    assert_eq!(m.to_vec().unwrap(), CAPTURED_INIT_REQ);
}

#[test]
fn parse_errors_map_to_notifications() {
    let e = Message::parse(&with_extra_payload(60, true)).unwrap_err();
    let n = notify_for_parse_error(&e);
    assert_eq!(
        (n.notify_type, n.data),
        (notify::UNSUPPORTED_CRITICAL_PAYLOAD, vec![60])
    );
    let mut v3 = ike_sa_init_bytes();
    v3[17] = 0x30;
    let n = notify_for_parse_error(&Message::parse(&v3).unwrap_err());
    assert_eq!(n.notify_type, notify::INVALID_MAJOR_VERSION);
    let mut bad = ike_sa_init_bytes();
    bad[32] = 9;
    let n = notify_for_parse_error(&Message::parse(&bad).unwrap_err());
    assert_eq!(n.notify_type, notify::INVALID_SYNTAX);
}

#[test]
fn generic_payload_view() {
    let mut buf = [0u8; 8];
    let mut p = GenericPayload::new_unchecked(&mut buf[..]);
    p.set_next_payload(payload::NONCE);
    p.set_critical(true);
    p.set_payload_length(6);
    let p = GenericPayload::new_checked(&buf[..]).unwrap();
    assert_eq!(
        (
            p.next_payload(),
            p.critical(),
            p.payload_length(),
            p.body().len()
        ),
        (40, true, 6, 2)
    );
    assert!(GenericPayload::new_checked(&buf[..3]).is_err());
    buf[3] = 9;
    assert_eq!(
        GenericPayload::new_checked(&buf[..]).err(),
        Some(Error::Truncated {
            field: "IKEv2 payload length",
            need: 9,
            have: 8
        })
    );
    assert!(is_known(payload::SA) && is_known(payload::EAP) && is_known(payload::SKF));
    assert!(!is_known(payload::GSPM) && !is_known(0) && !is_known(32));
}

/// RFC 7296 section 1.4: a liveness check is an INFORMATIONAL request whose
/// SK payload encrypts nothing, so the SK header's Next Payload is 0.
#[test]
fn empty_informational_liveness_check() {
    let mut bytes = vec![0u8; 28];
    bytes[..8].copy_from_slice(&[0x11; 8]);
    bytes[8..16].copy_from_slice(&[0x22; 8]);
    bytes[16] = payload::SK;
    bytes[17] = 0x20;
    bytes[18] = exchange::INFORMATIONAL;
    bytes[19] = 0x08;
    bytes[23] = 7; // message ID
    bytes.extend_from_slice(&[0, 0, 0, 4 + 32]); // SK: inner Next Payload 0
    bytes.extend_from_slice(&[0xab; 32]); // IV 16 + one padded block 16, ICV omitted here
    let len = bytes.len() as u32;
    bytes[24..28].copy_from_slice(&len.to_be_bytes());

    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.header.message_id, 7);
    assert_eq!(
        m.payloads,
        vec![Payload::Sk(SkPayload {
            inner_next_payload: 0,
            data: vec![0xab; 32]
        })]
    );
    assert_eq!(m.parse_inner(&[]).unwrap(), vec![]);
    assert!(
        m.parse_inner(&[0]).is_err(),
        "plaintext after a chain that claims to be empty"
    );
    let loc = locate_encrypted(&bytes).unwrap().unwrap();
    assert_eq!(
        (loc.inner_next_payload, loc.aad_len, loc.body.clone()),
        (0, 32, 32..64)
    );
    assert_eq!(m.to_vec().unwrap(), bytes);
}

#[test]
fn header_view_setters_round_trip() {
    let mut buf = [0u8; 28];
    let mut h = Header::new_unchecked(&mut buf[..]);
    h.set_spi_i([1; 8]);
    h.set_spi_r([2; 8]);
    h.set_next_payload(payload::NOTIFY);
    h.set_version(2, 1);
    h.set_exchange_type(exchange::CREATE_CHILD_SA);
    h.set_flags(0x20 | 0x08);
    h.set_message_id(0xdead_beef);
    h.set_length(28);
    let h = Header::new_checked(&buf[..]).unwrap();
    let r = HeaderRepr::parse(&h).unwrap();
    assert_eq!((r.spi_i, r.spi_r, r.minor_version), ([1; 8], [2; 8], 1));
    assert_eq!(
        (r.exchange_type, r.initiator, r.response, r.version),
        (36, true, true, false)
    );
    assert_eq!(
        (r.message_id, h.next_payload(), h.payload_bytes().len()),
        (0xdead_beef, 41, 0)
    );
    let mut again = [0u8; 28];
    r.emit(&mut Header::new_unchecked(&mut again[..]), 41, 28)
        .unwrap();
    assert_eq!(again, buf);
    // Reserved flag bits are ignored on receipt and not re-sent.
    let mut with_reserved = buf;
    with_reserved[19] |= 0x81;
    assert_eq!(
        HeaderRepr::parse(&Header::new_checked(&with_reserved[..]).unwrap()).unwrap(),
        r
    );
}
