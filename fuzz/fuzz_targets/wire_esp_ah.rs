//! Fuzzes ESP (header, layout, trailer), AH (header with every common ICV
//! length on both IP versions) and the RFC 3948 port-4500 classifier. Whatever
//! parses must re-emit to an equal Repr (and, where the format is canonical, to
//! the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_wire::ip::Version;
use palisade_wire::{ah, esp, udp_encap};

fn esp_paths(data: &[u8]) {
    if let Ok(p) = esp::Packet::new_checked(data) {
        if let Ok(r) = esp::Repr::parse(&p) {
            let mut out = [0u8; esp::HEADER_LEN];
            r.emit(&mut esp::Packet::new_unchecked(&mut out[..]))
                .expect("re-emits");
            assert_eq!(&out[..], p.header());
        }
        for (iv, icv) in [(0, 0), (8, 16), (16, 12), (8, 8), (0, 32)] {
            if let Ok(l) = p.layout(iv, icv) {
                assert_eq!(l.iv.start, esp::HEADER_LEN);
                assert_eq!(l.iv.end, l.ciphertext.start);
                assert_eq!(l.ciphertext.end, l.icv.start);
                assert_eq!(l.icv.end, data.len());
                assert!(l.ciphertext.len() >= esp::TRAILER_LEN);
            }
        }
    }
    // The data as decrypted plaintext.
    if let Ok(t) = esp::Trailer::parse(data) {
        let mut out = data[..t.payload_len].to_vec();
        out.resize(data.len(), 0);
        let n = esp::write_trailer(&mut out, t.payload_len, t.pad_len.into(), t.next_header)
            .expect("a parsed trailer re-emits");
        assert_eq!(n, data.len());
        assert_eq!(&out[..], data);
    }
    if let Ok(t) = esp::Trailer::parse_unchecked_padding(data) {
        assert_eq!(t.payload_len + t.len(), data.len());
    }
    // Padding helpers with a block size from the data.
    if let Some(&b) = data.first() {
        let payload_len = data.len();
        if let Ok(total) = esp::padded_len(payload_len, b.into()) {
            let mut buf = data.to_vec();
            buf.resize(total, 0);
            esp::write_padded_trailer(
                &mut buf,
                payload_len,
                b.into(),
                palisade_wire::ip::IpProtocol(4),
            )
            .expect("fits");
            let t = esp::Trailer::parse(&buf).expect("own trailer parses");
            assert_eq!(t.payload_len, payload_len);
        }
    }
}

fn ah_paths(data: &[u8]) {
    let Ok(p) = ah::Packet::new_checked(data) else {
        return;
    };
    let _ = (p.icv_field(), p.payload(), p.reserved());
    for v in [Version::V4, Version::V6] {
        for icv_len in [0usize, 8, 12, 16, 24, 32, 64] {
            let Ok(r) = ah::Repr::parse(&p, v, icv_len) else {
                continue;
            };
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut ah::Packet::new_unchecked(&mut out[..]))
                .expect("re-emits");
            assert_eq!(out.len(), p.header_len());
            // Next header, length, SPI and sequence are identical; reserved and
            // the ICV field are zeroed by emit.
            assert_eq!(&out[..2], &data[..2]);
            assert_eq!(&out[4..12], &data[4..12]);
            let q = ah::Packet::new_checked(&out[..]).expect("emitted AH is well formed");
            assert_eq!(ah::Repr::parse(&q, v, icv_len).expect("parses"), r);
            assert_eq!(p.icv(icv_len).expect("fits").len(), icv_len);
        }
    }
    let mut copy = data.to_vec();
    let mut m = ah::Packet::new_checked(&mut copy[..]).expect("checked above");
    m.zero_icv();
    assert!(m.icv_field().iter().all(|&b| b == 0));
}

fn encap_paths(data: &[u8]) {
    if let Ok(pl) = udp_encap::Payload::classify(data) {
        let mut out = vec![0u8; pl.buffer_len()];
        assert_eq!(
            pl.emit(&mut out).expect("a classified payload re-emits"),
            data.len()
        );
        assert_eq!(&out[..], data);
    }
}

fuzz_target!(|data: &[u8]| {
    esp_paths(data);
    ah_paths(data);
    encap_paths(data);
});
