//! Config keys of the data plane: `[daemon] nat_keepalive` and
//! `[[manual]] tfc_padding`, accepted values and file:line:column errors.

use palisade::config::{Config, LoadError};
use std::path::Path;
use std::time::Duration;

const FILE: &str = "/etc/palisade/test.toml";

fn load(src: &str) -> Result<Config, LoadError> {
    Config::from_str(Path::new(FILE), src)
}

fn one_error(src: &str) -> String {
    match load(src) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => {
            let v: Vec<String> = e.errors.iter().map(|d| d.to_string()).collect();
            assert_eq!(v.len(), 1, "{v:#?}");
            v[0].clone()
        }
    }
}

#[test]
fn nat_keepalive_values() {
    let k = |src: &str| load(src).unwrap().daemon.nat_keepalive;
    assert_eq!(k(""), Some(Duration::from_secs(20)), "strongSwan's default");
    assert_eq!(
        k("[daemon]\nnat_keepalive = \"5s\"\n"),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        k("[daemon]\nnat_keepalive = \"2m\"\n"),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        k("[daemon]\nnat_keepalive = 30\n"),
        Some(Duration::from_secs(30))
    );
    assert_eq!(k("[daemon]\nnat_keepalive = \"0\"\n"), None, "0 disables");
    assert_eq!(k("[daemon]\nnat_keepalive = 0\n"), None, "0 disables");
}

#[test]
fn nat_keepalive_errors() {
    let e = one_error("[daemon]\ntun_mtu = 1400\nnat_keepalive = \"often\"\n");
    assert!(e.starts_with(&format!("{FILE}:3:17")), "{e}");
    assert!(
        e.contains("`nat_keepalive`: \"often\" is not a duration; use seconds"),
        "{e}"
    );
    let e = one_error("[daemon]\nnat_keepalive = -5\n");
    assert!(e.starts_with(&format!("{FILE}:2:17")), "{e}");
    assert!(e.contains("`nat_keepalive`: -5 is not a duration"), "{e}");
    let e = one_error("[daemon]\nnat_keepalive = \"2h\"\n");
    assert!(
        e.contains("`nat_keepalive`: 7200 seconds is too long to keep a NAT mapping alive; use 0 (off) or 1 to 3600 seconds"),
        "{e}"
    );
}

const K36: &str = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223";

fn manual(mode: &str, extra: &str) -> String {
    format!(
        "[[manual]]\nname = \"lab\"\nmode = \"{mode}\"\nlocal_addr = \"192.0.2.1\"\nremote_addr = \"192.0.2.2\"\n\
         spi_in = 0x1001\nspi_out = 0x1002\nesp_proposal = \"aes256gcm16\"\n\
         enc_key_in = \"{K36}\"\nenc_key_out = \"{K36}\"\n{extra}"
    )
}

/// `tfc_padding = "mtu"` reaches the data plane as "pad to the TUN MTU"
/// (no longer as 0); a byte count as that count.
#[test]
fn tfc_padding_mtu_reaches_the_data_plane() {
    let c = load(&manual("tunnel", "tfc_padding = \"mtu\"\n")).unwrap();
    let spec = palisade::userspace::spec_of(&c.manual[0]);
    assert!(spec.tfc_pad_to_mtu);
    assert_eq!(spec.tfc_pad_to, 0);
    let c = load(&manual("tunnel", "tfc_padding = 1000\n")).unwrap();
    let spec = palisade::userspace::spec_of(&c.manual[0]);
    assert!(!spec.tfc_pad_to_mtu);
    assert_eq!(spec.tfc_pad_to, 1000);
    let c = load(&manual("transport", "")).unwrap();
    let spec = palisade::userspace::spec_of(&c.manual[0]);
    assert!(!spec.tfc_pad_to_mtu);
    assert_eq!(spec.tfc_pad_to, 0);
}

/// Transport mode cannot carry TFC padding: refused, not ignored.
#[test]
fn tfc_padding_in_transport_mode_is_refused() {
    for value in ["\"mtu\"", "1200"] {
        let e = one_error(&manual("transport", &format!("tfc_padding = {value}\n")));
        assert!(e.starts_with(&format!("{FILE}:11:15")), "{e}");
        assert!(
            e.contains("`tfc_padding`: TFC padding needs tunnel mode (RFC 4303 2.7"),
            "{e}"
        );
        assert!(e.ends_with("remove it or use mode = \"tunnel\""), "{e}");
    }
    // 0 means off, which transport mode may say.
    assert!(load(&manual("transport", "tfc_padding = 0\n")).is_ok());
}
