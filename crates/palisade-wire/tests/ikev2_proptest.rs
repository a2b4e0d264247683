//! Property tests: `parse(emit(x)) == x` for generated messages holding every
//! payload type, and no panic on arbitrary bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use palisade_wire::ikev2::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn header() -> impl Strategy<Value = HeaderRepr> {
    (
        any::<[u8; 8]>(),
        any::<[u8; 8]>(),
        0u8..16,
        any::<u8>(),
        any::<[bool; 3]>(),
        any::<u32>(),
    )
        .prop_map(
            |(
                spi_i,
                spi_r,
                minor_version,
                exchange_type,
                [initiator, version, response],
                message_id,
            )| HeaderRepr {
                spi_i,
                spi_r,
                minor_version,
                exchange_type,
                initiator,
                version,
                response,
                message_id,
            },
        )
}

fn attribute() -> impl Strategy<Value = TransformAttribute> {
    prop_oneof![
        (0u16..0x8000, any::<u16>())
            .prop_map(|(attr_type, value)| TransformAttribute::Tv { attr_type, value }),
        (0u16..0x8000, bytes(12))
            .prop_map(|(attr_type, value)| TransformAttribute::Tlv { attr_type, value }),
    ]
}

fn sa() -> impl Strategy<Value = SaPayload> {
    let transform = (any::<u8>(), any::<u16>(), vec(attribute(), 0..3)).prop_map(
        |(transform_type, transform_id, attributes)| Transform {
            transform_type,
            transform_id,
            attributes,
        },
    );
    let proposal = (
        any::<u8>(),
        any::<u8>(),
        prop_oneof![Just(0usize), Just(4), Just(8)],
        vec(transform, 0..6),
    )
        .prop_flat_map(|(number, protocol_id, spi_len, transforms)| {
            vec(any::<u8>(), spi_len).prop_map(move |spi| Proposal {
                number,
                protocol_id,
                spi,
                transforms: transforms.clone(),
            })
        });
    vec(proposal, 1..4).prop_map(|proposals| SaPayload { proposals })
}

fn selector() -> impl Strategy<Value = TrafficSelector> {
    let range = prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, e)| AddressRange::V4 {
            start: Ipv4Addr::from(s),
            end: Ipv4Addr::from(e)
        }),
        (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, e)| AddressRange::V6 {
            start: Ipv6Addr::from(s),
            end: Ipv6Addr::from(e)
        }),
    ];
    (any::<u8>(), any::<u16>(), any::<u16>(), range).prop_map(
        |(ip_protocol, start_port, end_port, addresses)| TrafficSelector {
            ip_protocol,
            start_port,
            end_port,
            addresses,
        },
    )
}

fn id() -> impl Strategy<Value = IdPayload> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IdPayload {
            id_type: 1,
            data: a.to_vec()
        }),
        any::<[u8; 16]>().prop_map(|a| IdPayload {
            id_type: 5,
            data: a.to_vec()
        }),
        ((2u8..=4).prop_union(6u8..=255), bytes(40))
            .prop_map(|(id_type, data)| IdPayload { id_type, data }),
    ]
}

fn eap() -> impl Strategy<Value = EapPayload> {
    prop_oneof![
        (1u8..=2, any::<u8>(), any::<u8>(), bytes(30)).prop_map(|(code, identifier, t, data)| {
            EapPayload {
                code,
                identifier,
                eap_type: Some(t),
                data,
            }
        }),
        (3u8..=4, any::<u8>()).prop_map(|(code, identifier)| EapPayload {
            code,
            identifier,
            eap_type: None,
            data: vec![]
        }),
        (5u8..=255, any::<u8>(), bytes(30)).prop_map(|(code, identifier, data)| EapPayload {
            code,
            identifier,
            eap_type: None,
            data
        }),
    ]
}

/// Every payload except SK/SKF (which can only come last).
fn plain_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        sa().prop_map(Payload::Sa),
        (any::<u16>(), bytes(64)).prop_map(|(group, data)| Payload::Ke(KePayload { group, data })),
        id().prop_map(Payload::IdI),
        id().prop_map(Payload::IdR),
        (any::<u8>(), bytes(64))
            .prop_map(|(encoding, data)| Payload::Cert(CertPayload { encoding, data })),
        (any::<u8>(), bytes(60))
            .prop_map(|(encoding, data)| Payload::CertReq(CertReqPayload { encoding, data })),
        (any::<u8>(), bytes(64))
            .prop_map(|(method, data)| Payload::Auth(AuthPayload { method, data })),
        vec(any::<u8>(), 16..=256).prop_map(|data| Payload::Nonce(NoncePayload { data })),
        (any::<u8>(), bytes(8), any::<u16>(), bytes(40)).prop_map(
            |(protocol_id, spi, notify_type, data)| {
                Payload::Notify(NotifyPayload {
                    protocol_id,
                    spi,
                    notify_type,
                    data,
                })
            }
        ),
        (any::<u8>(), 0u8..=8, 0usize..5).prop_flat_map(|(protocol_id, spi_size, n)| {
            vec(vec(any::<u8>(), usize::from(spi_size)), n).prop_map(move |spis| {
                Payload::Delete(DeletePayload {
                    protocol_id,
                    spi_size,
                    spis,
                })
            })
        }),
        bytes(40).prop_map(|data| Payload::VendorId(VendorIdPayload { data })),
        vec(selector(), 0..4).prop_map(|selectors| Payload::TsI(TsPayload { selectors })),
        vec(selector(), 0..4).prop_map(|selectors| Payload::TsR(TsPayload { selectors })),
        (any::<u8>(), vec((0u16..0x8000, bytes(20)), 0..5)).prop_map(|(cfg_type, attrs)| {
            Payload::Cp(CpPayload {
                cfg_type,
                attributes: attrs
                    .into_iter()
                    .map(|(attr_type, value)| CpAttribute { attr_type, value })
                    .collect(),
            })
        }),
        eap().prop_map(Payload::Eap),
    ]
}

fn encrypted_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (any::<u8>(), bytes(80)).prop_map(|(inner_next_payload, data)| Payload::Sk(SkPayload {
            inner_next_payload,
            data
        })),
        (any::<u8>(), 1u16..=u16::MAX, bytes(80)).prop_flat_map(|(inner, total, data)| {
            (1..=total).prop_map(move |fragment_number| {
                Payload::Skf(SkfPayload {
                    inner_next_payload: inner,
                    fragment_number,
                    total_fragments: total,
                    data: data.clone(),
                })
            })
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        header(),
        vec(plain_payload(), 0..8),
        proptest::option::of(encrypted_payload()),
    )
        .prop_map(|(header, mut payloads, enc)| {
            payloads.extend(enc);
            Message { header, payloads }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn message_round_trips(m in message()) {
        let bytes = m.to_vec().unwrap();
        prop_assert_eq!(Message::parse(&bytes).unwrap(), m.clone());
        // The view agrees with the Repr on framing.
        let h = Header::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(h.length() as usize, bytes.len());
        prop_assert_eq!(h.next_payload(), m.payloads.first().map_or(0, Payload::payload_type));
        // The Encrypted payload is found where the emitter put it.
        match (m.encrypted(), locate_encrypted(&bytes).unwrap()) {
            (None, None) => {}
            (Some(Payload::Sk(sk)), Some(loc)) => prop_assert_eq!(loc.body(&bytes), &sk.data[..]),
            (Some(Payload::Skf(skf)), Some(loc)) => prop_assert_eq!(loc.body(&bytes), &skf.data[..]),
            other => prop_assert!(false, "mismatch {:?}", other),
        }
    }

    #[test]
    fn inner_chain_round_trips(payloads in vec(plain_payload(), 0..8)) {
        let mut plain = Vec::new();
        let first = emit_chain(&payloads, &mut plain).unwrap();
        prop_assert_eq!(parse_inner_chain(first, &plain).unwrap(), payloads);
    }

    #[test]
    fn random_bytes_never_panic(data in bytes(600), first in any::<u8>()) {
        let _ = Message::parse(&data);
        let _ = locate_encrypted(&data);
        let _ = parse_inner_chain(first, &data);
        for raw in PayloadIter::new(first, &data).flatten() {
            let _ = Payload::parse(&raw);
        }
    }

    /// Valid header, random chain: reaches the payload parsers far more often.
    #[test]
    fn random_chain_after_valid_header(h in header(), first in 33u8..=54, chain in bytes(400)) {
        let mut m = vec![0u8; 28];
        HeaderRepr::emit(&h, &mut Header::new_unchecked(&mut m[..]), first, (28 + chain.len()) as u32).unwrap();
        m.extend_from_slice(&chain);
        if let Ok(parsed) = Message::parse(&m) {
            let again = parsed.to_vec().unwrap();
            prop_assert_eq!(Message::parse(&again).unwrap(), parsed);
        }
    }

    /// Mutating one byte of a valid message: parse either fails cleanly or
    /// yields something that re-emits and re-parses to itself.
    #[test]
    fn mutated_messages_stay_consistent(m in message(), pos in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = m.to_vec().unwrap();
        let i = pos.index(bytes.len());
        bytes[i] = b;
        if let Ok(parsed) = Message::parse(&bytes) {
            let again = parsed.to_vec().unwrap();
            prop_assert_eq!(Message::parse(&again).unwrap(), parsed);
        }
    }
}
