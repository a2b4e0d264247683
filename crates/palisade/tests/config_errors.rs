//! Every config error path: the message names file:line:column, the table,
//! the field, what is wrong and what would be right.

use palisade::config::{Config, Encapsulation, LoadError, Mode, TfcPadding};
use std::path::Path;

const FILE: &str = "/etc/palisade/test.toml";
/// 36 bytes: an AES-256-GCM key with its salt.
const K36: &str = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223";
const K32: &str = "1111111111111111111111111111111111111111111111111111111111111111";

fn load(src: &str) -> Result<Config, LoadError> {
    Config::from_str(Path::new(FILE), src)
}

fn errors(src: &str) -> Vec<String> {
    match load(src) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.errors.iter().map(|d| d.to_string()).collect(),
    }
}

fn one_error(src: &str) -> String {
    let e = errors(src);
    assert_eq!(e.len(), 1, "{e:#?}");
    e[0].clone()
}

/// A valid manual SA with `extra` appended and the keys named in `drop` left out.
fn manual(drop: &[&str], extra: &str) -> String {
    let lines = [
        ("name", "name = \"lab\"".to_string()),
        ("local_addr", "local_addr = \"192.0.2.1\"".into()),
        ("remote_addr", "remote_addr = \"192.0.2.2\"".into()),
        ("spi_in", "spi_in = 0x1001".into()),
        ("spi_out", "spi_out = 0x1002".into()),
        ("esp_proposal", "esp_proposal = \"aes256gcm16\"".into()),
        ("enc_key_in", format!("enc_key_in = \"{K36}\"")),
        ("enc_key_out", format!("enc_key_out = \"{K36}\"")),
    ];
    let mut s = String::from("[[manual]]\n");
    for (k, l) in lines {
        if !drop.contains(&k) {
            s.push_str(&l);
            s.push('\n');
        }
    }
    s.push_str(extra);
    s
}

#[test]
fn valid_manual_sa_loads_with_defaults() {
    let c = load(&manual(&[], "")).unwrap();
    assert_eq!(c.summary(), "0 connections, 1 manual SA");
    let m = &c.manual[0];
    assert_eq!(m.mode, Mode::Tunnel);
    assert_eq!(m.encapsulation, Encapsulation::Esp);
    let esp = m.esp.as_ref().unwrap();
    assert_eq!((esp.spi_in, esp.spi_out), (0x1001, 0x1002));
    assert_eq!(esp.enc_key_in.len(), 36);
    assert_eq!(esp.encr.unwrap().id, 20);
    assert!(m.ah.is_none());
    assert_eq!(m.local_ts[0].to_string(), "192.0.2.1/32");
    assert_eq!(m.replay_window, 128);
    assert_eq!(m.tfc_padding, TfcPadding::Off);
    assert!(!m.esn);
}

#[test]
fn debug_output_never_contains_keys() {
    let psk = "a-very-secret-pre-shared-key-123";
    let src = format!(
        "{}\n[[connection]]\nname = \"c\"\nremote_addrs = [\"192.0.2.9\"]\nauth = \"psk\"\npsk = \"{psk}\"\n[[connection.child]]\nname = \"x\"\n",
        manual(&[], "")
    );
    let c = load(&src).unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("0405060708090a0b"), "key hex leaked: {dbg}");
    assert!(!dbg.to_lowercase().contains("0405060708090a0b"));
    assert!(!dbg.contains(psk), "psk leaked");
    assert!(dbg.contains("Secret(36 bytes)"));
    // Nor the error of a wrong-length key.
    let e = one_error(&manual(
        &["enc_key_in"],
        "enc_key_in = \"0xdeadbeefcafe\"\n",
    ));
    assert!(!e.contains("deadbeef"), "{e}");
}

#[test]
fn unknown_key_is_an_error_with_suggestion() {
    let e = one_error(&manual(&[], "spi_inn = 5\n"));
    assert_eq!(
        e,
        "/etc/palisade/test.toml:10:1: `spi_inn`: unknown key (palisade rejects keys it does not know rather than ignore them); did you mean `spi_in`?"
    );
    let e = one_error("[daemon]\ncontrol_sock = \"/run/x.sock\"\n");
    assert!(
        e.starts_with("/etc/palisade/test.toml:2:1: `control_sock`: unknown key"),
        "{e}"
    );
    assert!(e.ends_with("did you mean `control_socket`?"), "{e}");
    let e = one_error("[demon]\n");
    assert!(e.contains("`demon`: unknown key"), "{e}");
    assert!(e.contains("did you mean `daemon`?"), "{e}");
    let e = one_error("[daemon]\ntun_offload = \"yes\"\n");
    assert!(e.starts_with("/etc/palisade/test.toml:2:15: "), "{e}");
    assert!(e.contains("expected a boolean"), "{e}");
}

#[test]
fn missing_required_field() {
    let e = one_error(&manual(&["local_addr"], ""));
    assert!(e.starts_with("/etc/palisade/test.toml:1:1: `local_addr`: is required in this table but missing; add `local_addr = ...`"), "{e}");
}

#[test]
fn syntax_error_points_at_place() {
    let e = one_error("[daemon]\nlog_level = \n");
    assert!(e.starts_with("/etc/palisade/test.toml:2:"), "{e}");
}

#[test]
fn spi_errors() {
    assert_eq!(
        one_error(&manual(&["spi_in"], "spi_in = 17\n")),
        "/etc/palisade/test.toml:9:10: manual SA `lab`: `spi_in`: 17 is reserved (SPIs 0-255 are reserved, RFC 4303 2.1); use a number from 256 to 4294967295, in decimal or hex (e.g. 0x1000)"
    );
    assert_eq!(
        one_error(&manual(&["spi_out"], "spi_out = \"0x100000000\"\n")),
        "/etc/palisade/test.toml:9:11: manual SA `lab`: `spi_out`: 4294967296 does not fit in 32 bits; use a number from 256 to 4294967295, in decimal or hex (e.g. 0x1000)"
    );
    assert!(one_error(&manual(&["spi_out"], "spi_out = \"zz\"\n"))
        .contains("`spi_out`: \"zz\" is not an SPI"));
    let c = load(&manual(
        &["spi_in", "spi_out"],
        "spi_in = \"0x100\"\nspi_out = 4294967295\n",
    ))
    .unwrap();
    assert_eq!(c.manual[0].esp.as_ref().unwrap().spi_in, 256);
}

#[test]
fn duplicate_inbound_spi() {
    let src = format!(
        "{}{}",
        manual(&[], ""),
        manual(&["name"], "name = \"lab2\"\n")
    );
    let e = one_error(&src);
    assert_eq!(
        e,
        "/etc/palisade/test.toml:13:10: manual SA `lab2`: `spi_in`: ESP SPI 0x1001 to 192.0.2.1 is also the inbound SPI of manual SA `lab` (line 5); inbound SPIs must be unique per local address and protocol; pick another"
    );
}

#[test]
fn duplicate_names() {
    let src = format!(
        "{}{}",
        manual(&[], ""),
        manual(&["spi_in"], "spi_in = 0x3000\n")
    );
    let e = one_error(&src);
    assert_eq!(
        e,
        "/etc/palisade/test.toml:11:8: manual SA `lab`: `name`: the name is already used by the manual SA on line 2; give every connection and manual SA its own name"
    );
    let e = one_error(&manual(&["name"], "name = \"has space\"\n"));
    assert!(
        e.contains("`name`: `has space` is not a valid name; use letters, digits"),
        "{e}"
    );
}

#[test]
fn key_length_names_expected_length() {
    let e = one_error(&manual(
        &["enc_key_in"],
        &format!("enc_key_in = \"{K32}\"\n"),
    ));
    assert_eq!(
        e,
        "/etc/palisade/test.toml:9:14: manual SA `lab`: `enc_key_in`: the key is 32 bytes, but aes256gcm16 needs 36 bytes (32-byte AES key + 4-byte salt, RFC 4106 8.1); give 72 hex digits"
    );
    let e = one_error(&manual(&["enc_key_out"], "enc_key_out = \"0x12345\"\n"));
    assert!(e.contains("`enc_key_out`: the key has an odd number of hex digits (5); each byte takes two; give 72 hex digits"), "{e}");
    let e = one_error(&manual(&["enc_key_out"], "enc_key_out = \"0x12g4\"\n"));
    assert!(
        e.contains("`enc_key_out`: the key is not hex: unexpected character at position 5"),
        "{e}"
    );
}

#[test]
fn missing_key_says_what_to_add() {
    let e = one_error(&manual(&["enc_key_out"], ""));
    assert_eq!(
        e,
        "/etc/palisade/test.toml:2:8: manual SA `lab`: `enc_key_out`: is missing; aes256gcm16 needs a 36-byte key (32-byte AES key + 4-byte salt, RFC 4106 8.1); add `enc_key_out = \"0x...\"` (72 hex digits) or `enc_key_out_file = \"/etc/palisade/...\"`"
    );
}

#[test]
fn classic_esp_needs_auth_keys_and_aead_refuses_them() {
    let base = manual(&["esp_proposal", "enc_key_in", "enc_key_out"], "esp_proposal = \"aes128-sha256\"\nenc_key_in = \"00112233445566778899aabbccddeeff\"\nenc_key_out = \"00112233445566778899aabbccddeeff\"\n");
    let e = errors(&base);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].contains("`auth_key_in`: is missing; sha256 needs a 32-byte key (HMAC-SHA-256 key)"),
        "{}",
        e[0]
    );
    let ok = format!("{base}auth_key_in = \"{K32}\"\nauth_key_out_file = \"/nonexistent/k\"\n");
    let e = one_error(&ok);
    assert!(
        e.contains(
            "`auth_key_out_file`: cannot read key file `/nonexistent/k`: No such file or directory"
        ),
        "{e}"
    );
    assert!(
        e.ends_with(
            "point it at a file readable by the daemon (root, mode 0600) holding the key as hex"
        ),
        "{e}"
    );

    let e = one_error(&manual(&[], &format!("auth_key_in = \"{K32}\"\n")));
    assert!(e.contains("`auth_key_in`: does not apply here; aes256gcm16 is an AEAD: it authenticates with the encryption key"), "{e}");
}

#[test]
fn key_given_twice() {
    let e = one_error(&manual(&[], "enc_key_in_file = \"/x\"\n"));
    assert!(
        e.contains("`enc_key_in_file`: both `enc_key_in` and `enc_key_in_file` are set; keep one"),
        "{e}"
    );
}

#[test]
fn key_files_are_read_and_world_readable_warns() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("in.key");
    std::fs::write(&k, format!("{}\n", &K36[2..])).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg_path = dir.path().join("p.toml");
    // Relative to the config file's directory.
    let src = manual(&["enc_key_in"], "enc_key_in_file = \"in.key\"\n");
    let c = Config::from_str(&cfg_path, &src).unwrap();
    assert_eq!(c.manual[0].esp.as_ref().unwrap().enc_key_in.len(), 36);
    assert_eq!(c.warnings.len(), 1);
    let w = c.warnings[0].to_string();
    assert!(w.contains("`enc_key_in_file`: "), "{w}");
    assert!(
        w.contains("is readable by every user (mode 0644); run `chmod 600"),
        "{w}"
    );
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Config::from_str(&cfg_path, &src)
        .unwrap()
        .warnings
        .is_empty());
}

#[test]
fn proposal_errors_in_manual_sa() {
    let e = one_error(&manual(&["esp_proposal"], "esp_proposal = \"aes256gcm\"\n"));
    assert_eq!(
        e,
        "/etc/palisade/test.toml:9:16: manual SA `lab`: `esp_proposal`: unknown algorithm `aes256gcm` in proposal `aes256gcm`; did you mean `aes256gcm16`?"
    );
    let e = one_error(&manual(&["esp_proposal"], "esp_proposal = \"default\"\n"));
    assert!(
        e.contains(
            "`default` offers several algorithms, but a manual SA needs exactly one; name it"
        ),
        "{e}"
    );
    let e = one_error(&manual(
        &["esp_proposal"],
        "esp_proposal = \"aes256gcm16-aes128gcm16\"\n",
    ));
    assert!(e.contains("lists several algorithms of one kind"), "{e}");
    let e = one_error(&manual(
        &["esp_proposal"],
        "esp_proposal = \"aes256gcm16-modp2048\"\n",
    ));
    assert!(
        e.contains("`modp2048` is a key exchange, but a manual SA's keys are given"),
        "{e}"
    );
    let e = one_error(&manual(
        &["esp_proposal"],
        "esp_proposal = \"aes256gcm16-esn\"\n",
    ));
    assert!(
        e.contains("from `esn = true|false`, not from the proposal"),
        "{e}"
    );
}

#[test]
fn insecure_algorithms_need_allow_insecure() {
    let src = manual(
        &["esp_proposal", "enc_key_in", "enc_key_out"],
        &format!("esp_proposal = \"3des-sha1\"\nenc_key_in = \"{k}\"\nenc_key_out = \"{k}\"\nauth_key_in = \"{a}\"\nauth_key_out = \"{a}\"\n", k = &K36[2..50], a = &K36[2..42]),
    );
    let e = one_error(&src);
    assert_eq!(
        e,
        "/etc/palisade/test.toml:7:16: manual SA `lab`: `esp_proposal`: proposal `3des-sha1` uses 3DES, which is insecure (64-bit block, open to birthday attacks such as Sweet32); set allow_insecure = true to use it"
    );
    assert!(load(&format!("{src}allow_insecure = true\n")).is_ok());
}

#[test]
fn connection_insecure_proposal_message() {
    let src = "[[connection]]\nname = \"site-b\"\nremote_addrs = [\"192.0.2.2\"]\nauth = \"psk\"\npsk = \"0123456789abcdef0123\"\nike_proposals = [\"aes256-sha1-modp1024\"]\n[[connection.child]]\nname = \"lan\"\n";
    let e = one_error(src);
    assert_eq!(
        e,
        "/etc/palisade/test.toml:6:18: connection `site-b`: `ike_proposals`: proposal `aes256-sha1-modp1024` uses MODP-1024, which is insecure (1024-bit groups are within reach of nation-state precomputation (Logjam)); set allow_insecure = true to use it"
    );
    let ok = src.replace(
        "[[connection.child]]",
        "allow_insecure = true\n[[connection.child]]",
    );
    assert!(load(&ok).is_ok());
}

#[test]
fn addresses_and_families() {
    let e = one_error(&manual(&["remote_addr"], "remote_addr = \"192.0.2.300\"\n"));
    assert!(e.ends_with("`remote_addr`: `192.0.2.300` is not an IP address; write an IPv4 or IPv6 address such as \"192.0.2.1\" or \"2001:db8::1\""), "{e}");
    let e = errors(&manual(&["remote_addr"], "remote_addr = \"2001:db8::2\"\n"));
    assert!(
        e[0].contains(
            "`remote_addr`: `2001:db8::2` and local_addr `192.0.2.1` are of different IP versions"
        ),
        "{e:?}"
    );
    // IPv6 inside IPv4 is fine in tunnel mode when both sides have IPv6 selectors.
    assert!(load(&manual(
        &[],
        "local_ts = [\"2001:db8:1::/48\"]\nremote_ts = [\"2001:db8:2::/48\"]\n"
    ))
    .is_ok());
    let e = errors(&manual(
        &[],
        "local_ts = [\"10.1.0.0/16\"]\nremote_ts = [\"2001:db8:2::/48\"]\n",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[1].contains(
            "`remote_ts`: `2001:db8:2::/48` has no IPv6 selector in local_ts to pair with"
        ),
        "{e:?}"
    );
    let e = &e[0];
    assert!(e.contains("`local_ts`: `10.1.0.0/16` has no IPv4 selector in remote_ts to pair with; add one to remote_ts, or remove this one"), "{e}");
    let e = &errors(&manual(&[], "mode = \"transport\"\nlocal_ts = [\"2001:db8:1::/48\"]\nremote_ts = [\"2001:db8:2::/48\"]\n"))[0];
    assert!(
        e.contains("is not of the outer addresses' IP version"),
        "{e}"
    );
}

#[test]
fn traffic_selector_errors() {
    let e = one_error(&manual(
        &[],
        "local_ts = [\"10.1.2.3/16\"]\nremote_ts = [\"10.2.0.0/16\"]\n",
    ));
    assert_eq!(
        e,
        "/etc/palisade/test.toml:10:13: manual SA `lab`: `local_ts`: `10.1.2.3/16` has bits set after the /16 prefix; did you mean \"10.1.0.0/16\"?"
    );
    let e = one_error(&manual(&[], "local_ts = [\"10.1.0.0/33\"]\n"));
    assert!(
        e.contains("`10.1.0.0/33` has an invalid prefix length; use 0 to 32 after the `/`"),
        "{e}"
    );
    let e = one_error(&manual(&[], "local_ts = [\"lan\"]\n"));
    assert!(
        e.contains("`lan` is not a subnet; write it in CIDR form"),
        "{e}"
    );
}

#[test]
fn mode_encapsulation_and_ports() {
    let e = one_error(&manual(&[], "mode = \"tunel\"\n"));
    assert!(
        e.ends_with("`mode`: `tunel` is not a mode; use \"tunnel\" or \"transport\""),
        "{e}"
    );
    let e = one_error(&manual(&[], "encapsulation = \"esp_udp\"\n"));
    assert!(e.ends_with("`encapsulation`: `esp_udp` is not an encapsulation; did you mean \"esp-udp\"? (one of \"esp\", \"esp-udp\", \"ah\", \"ah+esp\")"), "{e}");
    let e = one_error(&manual(
        &[],
        "udp_ports = { local = 4500, remote = 4500 }\n",
    ));
    assert!(
        e.contains("`udp_ports`: only applies to encapsulation = \"esp-udp\""),
        "{e}"
    );
    let e = one_error(&manual(
        &[],
        "encapsulation = \"esp-udp\"\nudp_ports = { local = 70000 }\n",
    ));
    assert!(
        e.contains("`udp_ports.local`: 70000 is not a port; use 1 to 65535"),
        "{e}"
    );
    let c = load(&manual(
        &[],
        "encapsulation = \"esp-udp\"\nudp_ports = { remote = 4501 }\n",
    ))
    .unwrap();
    assert_eq!(
        c.manual[0].encapsulation,
        Encapsulation::EspUdp {
            local_port: 4500,
            remote_port: 4501
        }
    );
}

#[test]
fn ah_and_ah_plus_esp() {
    let ah = format!(
        "[[manual]]\nname = \"a\"\nlocal_addr = \"192.0.2.1\"\nremote_addr = \"192.0.2.2\"\nencapsulation = \"ah\"\nspi_in = 0x500\nspi_out = 0x501\nah_proposal = \"sha256\"\nah_key_in = \"{K32}\"\nah_key_out = \"{K32}\"\n"
    );
    let c = load(&ah).unwrap();
    let a = c.manual[0].ah.as_ref().unwrap();
    assert_eq!((a.spi_in, a.integ.unwrap().id), (0x500, 12));
    assert!(c.manual[0].esp.is_none());
    let e = one_error(&format!("{ah}esp_proposal = \"aes256gcm16\"\n"));
    assert!(
        e.contains("`esp_proposal`: does not apply here; encapsulation = \"ah\" carries no ESP"),
        "{e}"
    );
    let e = one_error(&ah.replace(
        "ah_proposal = \"sha256\"",
        "ah_proposal = \"aes128-sha256\"",
    ));
    assert!(e.contains("AH only authenticates"), "{e}");

    let both = manual(&[], &format!("encapsulation = \"ah+esp\"\nah_proposal = \"sha512\"\nah_spi_in = 0x600\nah_key_in = \"{K32}{K32}\"\nah_key_out = \"{K32}{K32}\"\n"));
    let c = load(&both).unwrap();
    let m = &c.manual[0];
    assert_eq!(m.ah.as_ref().unwrap().spi_in, 0x600);
    assert_eq!(
        m.ah.as_ref().unwrap().spi_out,
        0x1002,
        "AH out SPI defaults to spi_out"
    );
    assert_eq!(m.esp.as_ref().unwrap().spi_in, 0x1001);
    let e = one_error(&manual(&[], "ah_proposal = \"sha256\"\n"));
    assert!(
        e.contains(
            "`ah_proposal`: does not apply here; only encapsulation = \"ah\" or \"ah+esp\" uses AH"
        ),
        "{e}"
    );
    let e = errors(&manual(&[], "encapsulation = \"ah\"\n"));
    assert!(
        e.iter()
            .any(|e| e.contains("`ah_proposal`: is missing; add e.g. `ah_proposal = \"sha256\"`")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|e| e
            .contains("`enc_key_in`: does not apply here; AH keys are `ah_key_in`/`ah_key_out`")),
        "{e:?}"
    );
}

#[test]
fn replay_window_esn_tfc() {
    let c = load(&manual(
        &[],
        "esn = true\nreplay_window = 0\ntfc_padding = 1200\n",
    ))
    .unwrap();
    assert!(c.manual[0].esn);
    assert_eq!(c.manual[0].replay_window, 0);
    assert_eq!(c.manual[0].tfc_padding, TfcPadding::Bytes(1200));
    let e = one_error(&manual(&[], "replay_window = 100000\n"));
    assert_eq!(
        e,
        "/etc/palisade/test.toml:10:17: manual SA `lab`: `replay_window`: 100000 is out of range; use 0 (no replay protection) to 65536 packets; the default is 128"
    );
    let e = one_error(&manual(&[], "tfc_padding = \"max\"\n"));
    assert!(e.ends_with("`tfc_padding`: \"max\" is not a padding size; use 0 (off), a length in bytes up to 65535, or \"mtu\""), "{e}");
    let e = one_error(&manual(&[], "esn = \"yes\"\n"));
    assert!(e.starts_with("/etc/palisade/test.toml:10:7:"), "{e}");
}

#[test]
fn daemon_section_errors() {
    let e = one_error("[daemon]\ncontrol_socket = \"palisade.sock\"\n");
    assert_eq!(e, "/etc/palisade/test.toml:2:18: [daemon]: `control_socket`: `palisade.sock` is a relative path; use an absolute path such as `/run/palisade/palisade.sock`");
    let e = one_error("[daemon]\nlog_level = \"verbose\"\n");
    assert!(
        e.ends_with(
            "`log_level`: `verbose` is not a log level; use one of error, warn, info, debug, trace"
        ),
        "{e}"
    );
    let e = one_error("[daemon]\ntun_name = \"a-very-long-interface-name\"\n");
    assert!(
        e.contains("`tun_name`: `a-very-long-interface-name` is not a valid interface name"),
        "{e}"
    );
    let e = one_error("[daemon]\ntun_mtu = 100\n");
    assert!(
        e.contains("`tun_mtu`: 100 is out of range; use 1280"),
        "{e}"
    );
}

#[test]
fn connection_errors() {
    let base = "[[connection]]\nname = \"c\"\nremote_addrs = [\"192.0.2.2\"]\n";
    let child = "[[connection.child]]\nname = \"lan\"\n";
    let e = one_error(&format!("{base}auth = \"psk\"\n{child}"));
    assert!(
        e.contains("connection `c`: `auth`: is \"psk\" but no key is given; add `psk_file"),
        "{e}"
    );
    let e = one_error(&format!("{base}auth = \"cert\"\n{child}"));
    assert!(
        e.contains("`auth`: `cert` is not an authentication method; use \"psk\" or \"pubkey\""),
        "{e}"
    );
    let e = one_error(&format!(
        "{base}auth = \"psk\"\npsk = \"0123456789abcdef\"\npsk_file = \"/x\"\n{child}"
    ));
    assert!(e.contains("both `psk` and `psk_file` are set"), "{e}");
    let e = one_error(&format!(
        "{base}auth = \"psk\"\npsk_file = \"/nonexistent.psk\"\n{child}"
    ));
    assert!(
        e.contains("`psk_file`: cannot read `/nonexistent.psk`"),
        "{e}"
    );
    let e = errors(&format!("{base}auth = \"pubkey\"\n{child}"));
    assert!(
        e[0].contains("`local_cert`: is required when auth = \"pubkey\""),
        "{e:?}"
    );
    let ok = format!("{base}auth = \"psk\"\npsk = \"0123456789abcdef\"\n");
    let e = one_error(&format!("{ok}version = 3\n{child}"));
    assert!(
        e.contains("`version`: 3 is not an IKE version; use 2 (IKEv2) or 1 (IKEv1)"),
        "{e}"
    );
    let e = one_error(&format!("{ok}start_action = \"go\"\n{child}"));
    assert!(
        e.contains("`start_action`: `go` is not a start action"),
        "{e}"
    );
    let e = one_error(&format!("{ok}dpd_delay = \"soon\"\n{child}"));
    assert!(e.contains("`dpd_delay`: \"soon\" is not a duration"), "{e}");
    let e = one_error(&format!(
        "{ok}ike_proposals = [\"aes256gcm16-x25519\"]\n{child}"
    ));
    assert!(e.contains("`ike_proposals`: IKE proposal `aes256gcm16-x25519`: the AEAD `aes256gcm16` needs a PRF in IKE; add one, e.g. `prfsha256`"), "{e}");
    let e = one_error(&format!("{ok}ike_proposals = []\n{child}"));
    assert!(e.contains("`ike_proposals`: is empty"), "{e}");
    let e = one_error(&format!("{ok}{child}local_ts = [\"10.0.0.1/8\"]\n"));
    assert!(
        e.contains("connection `c` child `lan`: `local_ts`: `10.0.0.1/8` has bits set"),
        "{e}"
    );
    let e = one_error(&format!("{ok}{child}esp_proposals = [\"aes256-sha265\"]\n"));
    assert!(e.contains("did you mean `sha256`?"), "{e}");
    let e = one_error(&format!("{ok}{child}mode = \"tunel\"\n"));
    assert!(e.contains("`mode`: `tunel` is not a mode"), "{e}");
    let e = one_error(&format!("{ok}{child}{child}"));
    assert!(
        e.contains("`child.name`: `lan` is used by two children"),
        "{e}"
    );
    let e = one_error(&format!("{ok}remote_addrs2 = 1\n"));
    assert!(e.contains("did you mean `remote_addrs`?"), "{e}");

    let c = load(&format!("{ok}{child}")).unwrap();
    assert_eq!(
        c.connections[0].ike_proposals.len(),
        2,
        "default expands to AEAD + classic"
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = load(&format!(
        "{ok}ike_proposals = [\"aes256gcm16-prfsha256-x25519-ke1_mlkem768\"]\n{child}"
    ))
    .unwrap();
    assert!(
        c.warnings[0].to_string().contains("RFC 9370"),
        "{:?}",
        c.warnings
    );
    let c = load(&ok).unwrap();
    assert!(c.warnings[0]
        .to_string()
        .contains("has no [[connection.child]]"));
}

#[test]
fn all_errors_are_reported_not_just_the_first() {
    let src = manual(
        &["spi_in", "remote_addr"],
        "spi_in = 1\nremote_addr = \"nope\"\nreplay_window = -1\n",
    );
    let e = errors(&src);
    assert_eq!(e.len(), 3, "{e:#?}");
}

#[test]
fn render_shows_source_line_and_caret() {
    let e = load(&manual(&["spi_in"], "spi_in = 17\n")).unwrap_err();
    let r = e.render();
    assert!(r.contains("error: /etc/palisade/test.toml:9:10:"), "{r}");
    assert!(r.contains("9 | spi_in = 17\n"), "{r}");
    assert!(r.contains("  |          ^\n"), "{r}");
}

#[test]
fn unreadable_config_file() {
    let e = Config::load(Path::new("/nonexistent/palisade.toml")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/nonexistent/palisade.toml: cannot read the config: No such file or directory (os error 2); check the path; the examples/ directory has configs to start from"
    );
}

/// A minimal valid IKE connection with `extra` lines in it and `child_extra`
/// in its child.
fn connection(extra: &str, child_extra: &str) -> String {
    format!(
        "[[connection]]\nname = \"gw\"\nremote_addrs = [\"192.0.2.2\"]\nauth = \"psk\"\npsk = \"{K32}\"\n{extra}\n\
         [[connection.child]]\nname = \"net\"\nlocal_ts = [\"10.1.0.0/16\"]\nremote_ts = [\"10.2.0.0/16\"]\n{child_extra}\n"
    )
}

#[test]
fn ike_lifetimes_and_dpd_action_are_validated() {
    let c = load(&connection(
        "dpd_action = \"restart\"\nover_time = \"5m\"\nkeyingtries = 0",
        "life_time = \"2h\"\nrekey_time = \"1h\"\nrekey_bytes = 1000000\nlife_bytes = 2000000",
    ))
    .unwrap();
    let k = &c.connections[0];
    assert_eq!(k.dpd_action, palisade::config::DpdAction::Restart);
    assert_eq!((k.over_time_s, k.keyingtries), (Some(300), 0));
    assert_eq!(k.children[0].life_bytes, Some(2_000_000));
    let e = one_error(&connection("dpd_action = \"hold\"", ""));
    assert!(
        e.contains("dpd_action") && e.contains("\"clear\", \"restart\" or \"trap\""),
        "{e}"
    );
    let e = one_error(&connection("", "rekey_time = \"1h\"\nlife_time = \"30m\""));
    assert!(
        e.contains("life_time") && e.contains("not longer than rekey_time"),
        "{e}"
    );
    let e = one_error(&connection("", "rekey_packets = 100\nlife_packets = 50"));
    assert!(
        e.contains("life_packets") && e.contains("not more than the rekey limit"),
        "{e}"
    );
    let e = one_error(&connection("", "rekey_bytes = -1"));
    assert!(
        e.contains("rekey_bytes") && e.contains("positive whole number"),
        "{e}"
    );
}

#[test]
fn retransmit_settings_are_validated() {
    let c = load(
        "[daemon]\nretransmit_timeout = \"500ms\"\nretransmit_tries = 3\nretransmit_limit = 2.5\n",
    )
    .unwrap();
    assert_eq!(
        c.daemon.retransmit_timeout,
        std::time::Duration::from_millis(500)
    );
    assert_eq!(
        c.daemon.retransmit_limit,
        std::time::Duration::from_millis(2500)
    );
    assert_eq!(c.daemon.retransmit_tries, 3);
    let e = one_error("[daemon]\nretransmit_timeout = \"soon\"\n");
    assert!(
        e.contains("retransmit_timeout") && e.contains("500ms"),
        "{e}"
    );
    let e = one_error("[daemon]\nretransmit_timeout = \"10s\"\nretransmit_limit = \"2s\"\n");
    assert!(
        e.contains("retransmit_limit") && e.contains("shorter than retransmit_timeout"),
        "{e}"
    );
    let e = one_error("[daemon]\nretransmit_tries = 1000\n");
    assert!(e.contains("retransmit_tries"), "{e}");
}
