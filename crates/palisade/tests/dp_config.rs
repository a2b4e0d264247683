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
