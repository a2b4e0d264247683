//! Fuzzes the IKEv2 codec: whole messages, the Encrypted payload locator and
//! decrypted inner chains. Whatever parses must re-emit and re-parse to the
//! same value, so the emitter and parser agree on every accepted input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_wire::ikev2::{emit_chain, locate_encrypted, parse_inner_chain, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        let bytes = m.to_vec().expect("a parsed message re-emits");
        let again = Message::parse(&bytes).expect("re-emitted message parses");
        assert_eq!(again, m);
        assert_eq!(
            locate_encrypted(&bytes).expect("locate").is_some(),
            m.encrypted().is_some()
        );
    }
    let _ = locate_encrypted(data);

    // The first byte picks the inner chain's first payload type, the rest is
    // treated as decrypted SK content.
    if let Some((&first, rest)) = data.split_first() {
        if let Ok(inner) = parse_inner_chain(first, rest) {
            let mut out = Vec::new();
            let f = emit_chain(&inner, &mut out).expect("a parsed chain re-emits");
            assert_eq!(
                parse_inner_chain(f, &out).expect("re-emitted chain parses"),
                inner
            );
        }
    }
});
