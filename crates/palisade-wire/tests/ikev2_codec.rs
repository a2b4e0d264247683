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
    assert!(matches!(m.find(payload::KE), Some(Payload::Ke(KePayload { group: 31, .. }))));
    let n = NotifyPayload::invalid_ke_payload(19);
    assert!(n.is_error());
    assert_eq!(n.data_u16(), Some(19));
    assert_eq!(n.data_u32(), None);
    let sha = NotifyPayload::new(notify::SIGNATURE_HASH_ALGORITHMS, vec![0, 2, 0, 3, 0, 4]);
    assert_eq!(sha.data_u16_list(), Some(vec![2, 3, 4]));
    assert!(!sha.is_error());
}
