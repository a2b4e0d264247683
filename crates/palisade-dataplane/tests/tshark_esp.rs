//! An independent check of palisade's ESP wire format: packets sealed by the
//! data plane are written to a pcap, and tshark (Wireshark's dissector, with
//! its own ESP decryption configured from the SA keys through its `esp_sa`
//! table) must decrypt them, verify the ICV where it can, and find the
//! original payload. Skips when tshark is missing unless
//! PALISADE_REQUIRE_TSHARK=1 (scripts/test sets it).

use palisade_crypto::{Policy, Secret};
use palisade_dataplane::plane::{rebuild_udp_outer, InstalledSa, OutVerdict, Plane, Transmit};
use palisade_sa::buf::PacketBuf;
use palisade_sa::lifetime::Timestamp;
use palisade_sa::sa::{
    Encap, EncrConfig, IntegConfig, Mode, Protocol, SaConfig, SecurityAssociation,
};
use palisade_sa::selector::{AddrRange, Direction, Selector};
use palisade_sa::spd::{Action, Bundle, PolicySpec, Protect};
use std::net::IpAddr;
use std::process::Command;

struct Case {
    name: &'static str,
    encr: (u16, u16),
    integ: Option<u16>,
    /// Wireshark's names from its esp_sa table.
    ws_encr: &'static str,
    ws_auth: &'static str,
    udp: bool,
    v6: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "aes256gcm16",
        encr: (20, 256),
        integ: None,
        ws_encr: "AES-GCM with 16 octet ICV [RFC4106]",
        ws_auth: "NULL",
        udp: false,
        v6: false,
    },
    Case {
        name: "aes128gcm16-udp",
        encr: (20, 128),
        integ: None,
        ws_encr: "AES-GCM with 16 octet ICV [RFC4106]",
        ws_auth: "NULL",
        udp: true,
        v6: false,
    },
    Case {
        name: "aes256gcm16-v6",
        encr: (20, 256),
        integ: None,
        ws_encr: "AES-GCM with 16 octet ICV [RFC4106]",
        ws_auth: "NULL",
        udp: false,
        v6: true,
    },
    Case {
        name: "aes256-sha256",
        encr: (12, 256),
        integ: Some(12),
        ws_encr: "AES-CBC [RFC3602]",
        ws_auth: "HMAC-SHA-256-128 [RFC4868]",
        udp: false,
        v6: false,
    },
    Case {
        name: "aes128-sha1",
        encr: (12, 128),
        integ: Some(2),
        ws_encr: "AES-CBC [RFC3602]",
        ws_auth: "HMAC-SHA-1-96 [RFC2404]",
        udp: false,
        v6: false,
    },
    Case {
        name: "aes128ctr-sha512-udp",
        encr: (13, 128),
        integ: Some(14),
        ws_encr: "AES-CTR [RFC3686]",
        ws_auth: "HMAC-SHA-512-256 [RFC4868]",
        udp: true,
        v6: false,
    },
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn key_for(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn inner_udp(v6: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    if v6 {
        p.extend_from_slice(&[0x60, 0, 0, 0]);
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[17, 64]);
        p.extend_from_slice(&"fd00:1::5".parse::<std::net::Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"fd00:2::7".parse::<std::net::Ipv6Addr>().unwrap().octets());
    } else {
        let total = 28 + payload.len();
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 5, 10, 2, 0, 7]);
        let mut ip = palisade_wire::ipv4::Packet::new_unchecked(&mut p[..]);
        ip.fill_checksum();
    }
    p.extend_from_slice(&4321u16.to_be_bytes());
    p.extend_from_slice(&9999u16.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]); // UDP checksum 0: fine for IPv4; tshark does not care for v6 here
    p.extend_from_slice(payload);
    p
}

/// Seal three packets with `case`; returns (wire packets, esp_sa UAT line).
fn seal(case: &Case, spi: u32) -> (Vec<Vec<u8>>, String) {
    let (src, dst): (IpAddr, IpAddr) = if case.v6 {
        (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
    } else {
        ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())
    };
    let info = palisade_crypto::registry::encr_info(case.encr.0, Some(case.encr.1)).unwrap();
    let enc_key = key_for(info.keymat_len, spi as u8);
    let mut c = SaConfig::new(spi, Protocol::Esp, Mode::Tunnel { src, dst });
    c.encr = Some(EncrConfig {
        id: case.encr.0,
        key_bits: Some(case.encr.1),
        keymat: Secret::from_slice(&enc_key),
    });
    let mut auth_key = Vec::new();
    if let Some(integ) = case.integ {
        let sizes = palisade_crypto::registry::integ_sizes(integ).unwrap();
        auth_key = key_for(sizes.key_len, 0x77);
        c.integ = Some(IntegConfig {
            id: integ,
            key: Secret::from_slice(&auth_key),
        });
    }
    if case.udp {
        c.encap = Encap::Udp {
            src_port: 4500,
            dst_port: 4500,
        };
    }
    c.policy = Policy::SECURE;
    let sa = SecurityAssociation::new(c, Timestamp(0)).unwrap();
    let mut plane = Plane::new();
    let h = plane
        .sad
        .insert_outbound(InstalledSa::new("out", sa, vec![]))
        .unwrap();
    let any = |v6: bool| {
        AddrRange::prefix(
            if v6 {
                "::".parse().unwrap()
            } else {
                "0.0.0.0".parse().unwrap()
            },
            0,
        )
        .unwrap()
    };
    plane.spd.insert(PolicySpec {
        priority: 1,
        direction: Direction::Outbound,
        selector: Selector::between(any(case.v6), any(case.v6)),
        action: Action::Protect(Protect {
            bundle: Bundle::Esp { sa: Some(h) },
            mode: palisade_sa::spd::Mode::Tunnel,
        }),
    });
    let mut packets = Vec::new();
    for i in 0..3u8 {
        let payload = format!("palisade-{}-{i}-{}", case.name, "x".repeat(17 * i as usize));
        let inner = inner_udp(case.v6, payload.as_bytes());
        let mut storage = vec![0u8; 4096];
        let mut buf = PacketBuf::with_packet(&mut storage, 128, &inner).unwrap();
        match plane.outbound(Timestamp(1), &mut buf) {
            // ESP-in-UDP leaves the plane as the UDP payload; put on the
            // IP and UDP headers that the kernel's socket would add.
            OutVerdict::Send(Transmit::Udp {
                dst, src, offset, ..
            }) => {
                buf.trim_front(offset).unwrap();
                rebuild_udp_outer(&mut buf, src, dst).unwrap();
            }
            OutVerdict::Send(Transmit::Raw { .. }) => {}
            other => panic!("{}: seal: {other:?}", case.name),
        }
        packets.push(buf.data().to_vec());
    }
    let family = if case.v6 { "IPv6" } else { "IPv4" };
    let auth = if auth_key.is_empty() {
        String::new()
    } else {
        format!("0x{}", hex(&auth_key))
    };
    let uat = format!(
        "\"{family}\",\"{src}\",\"{dst}\",\"{spi:#010x}\",\"{}\",\"0x{}\",\"{}\",\"{auth}\"",
        case.ws_encr,
        hex(&enc_key),
        case.ws_auth
    );
    (packets, uat)
}

fn write_pcap(path: &std::path::Path, packets: &[Vec<u8>]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW: packets start with the IP header
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&(i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    std::fs::write(path, f).unwrap();
}

#[test]
fn tshark_decrypts_what_palisade_seals() {
    if Command::new("tshark").arg("-v").output().is_err() {
        assert_ne!(
            std::env::var("PALISADE_REQUIRE_TSHARK").as_deref(),
            Ok("1"),
            "tshark is required but missing"
        );
        eprintln!("skipping: tshark is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("palisade-tshark-esp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    for (n, case) in CASES.iter().enumerate() {
        let spi = 0x0100_0000 + n as u32;
        let (packets, uat) = seal(case, spi);
        let pcap = dir.join(format!("{}.pcap", case.name));
        write_pcap(&pcap, &packets);
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&pcap)
            .args([
                "-o",
                "esp.enable_encryption_decode:TRUE",
                "-o",
                "esp.enable_authentication_check:TRUE",
            ])
            .args(["-o", &format!("uat:esp_sa:{uat}")])
            .args([
                "-T",
                "fields",
                "-e",
                "esp.spi",
                "-e",
                "data.data",
                "-e",
                "esp.icv_good",
                "-e",
                "_ws.malformed",
            ])
            .output()
            .expect("run tshark");
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        let mut ok = lines.len() == 3;
        for (i, line) in lines.iter().enumerate() {
            let want = hex(format!("palisade-{}-{i}", case.name).as_bytes());
            let cols: Vec<&str> = line.split('\t').collect();
            let data = cols.get(1).copied().unwrap_or("");
            let malformed = cols.get(3).copied().unwrap_or("");
            if !data.contains(&want) || !malformed.is_empty() {
                ok = false;
            }
            // Where Wireshark checks the ICV (HMAC cases) it must say good.
            if case.integ.is_some()
                && cols.get(2).copied() != Some("1")
                && cols.get(2).copied() != Some("True")
            {
                ok = false;
            }
        }
        println!(
            "{:<24} {}",
            case.name,
            if ok {
                "tshark decrypted all 3 packets"
            } else {
                "FAILED"
            }
        );
        if !ok {
            failures.push(format!(
                "{}:\n{}\n{}",
                case.name,
                text,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "tshark could not decrypt:\n{}",
        failures.join("\n")
    );
}
