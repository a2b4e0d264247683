//! Fuzzes the IKEv2 engine with whole datagrams, as the network would deliver
//! them: a responder (and, if the first byte says so, an initiator waiting for
//! its IKE_SA_INIT answer, whose SPI is patched into each datagram so that
//! parsing gets past the SA lookup). Nothing may panic, and the engine's
//! timers and queues must keep working afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_ike::{
    ChildConfig, Config, Connection, Endpoint, Identity, SeededRng, TrafficSelector,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn ts(a: [u8; 4], b: [u8; 4]) -> TrafficSelector {
    TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        addresses: palisade_ike::AddressRange::V4 {
            start: a.into(),
            end: b.into(),
        },
    }
}

fn endpoint(remote: SocketAddr) -> Endpoint {
    let mut c = Connection::psk(
        "fuzz",
        Identity::Fqdn("me.test".into()),
        None,
        b"fuzzing pre-shared key",
    );
    c.remote_addr = Some(remote);
    c.children = vec![ChildConfig::tunnel(
        "net",
        ts([10, 1, 0, 0], [10, 1, 255, 255]),
        ts([10, 2, 0, 0], [10, 2, 255, 255]),
    )];
    let config = Config {
        connections: vec![c],
        ..Config::default()
    };
    Endpoint::new(config, SeededRng::new(7))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let remote: SocketAddr = "192.0.2.2:500".parse().unwrap();
    let now = Instant::now();
    let mut ep = endpoint(remote);
    let mut spi_i = None;
    if mode & 1 == 1 {
        ep.initiate(now, "fuzz").unwrap();
        let t = ep.poll_transmit().expect("an IKE_SA_INIT request");
        spi_i = Some(<[u8; 8]>::try_from(&t.bytes[..8]).unwrap());
    }
    // Datagrams: a two-byte length, then that many bytes (or what is left).
    let mut i = 0u64;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 2048;
        let take = len.min(rest.len() - 2);
        let mut d = rest[2..2 + take].to_vec();
        rest = &rest[2 + take..];
        if let (Some(spi), true) = (spi_i, d.len() >= 8) {
            d[..8].copy_from_slice(&spi);
        }
        let port = if i % 3 == 2 { 4500 } else { 500 };
        let local = SocketAddr::from(([192, 0, 2, 1], port));
        let from = SocketAddr::from(([192, 0, 2, 2], port));
        ep.handle_datagram(now + Duration::from_millis(i), local, from, &d);
        while ep.poll_transmit().is_some() {}
        while ep.poll_event().is_some() {}
        i += 1;
    }
    // Timers after the mess: retransmissions, give-up, half-open expiry.
    for s in [1, 10, 100, 1000] {
        let t = now + Duration::from_secs(s);
        ep.handle_timeout(t);
        while ep.poll_transmit().is_some() {}
        while ep.poll_event().is_some() {}
    }
    let _ = ep.poll_timeout();
});
