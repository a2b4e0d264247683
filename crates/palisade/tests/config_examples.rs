//! Every example config in the repository passes `check-config`.

use palisade::config::Config;
use std::path::PathBuf;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_example_loads() {
    let all = examples();
    assert!(all.len() >= 2, "{all:?}");
    for p in all {
        if let Err(e) = Config::load(&p) {
            panic!("{}:\n{}", p.display(), e.render());
        }
    }
}

#[test]
fn every_example_passes_check_config() {
    for p in examples() {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
            .arg("check-config")
            .arg(&p)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}{}",
            p.display(),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("OK: "), "{stdout}");
    }
}

#[test]
fn named_examples_have_expected_shape() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let m = Config::load(&dir.join("manual-tunnel.toml")).unwrap();
    assert_eq!(m.summary(), "0 connections, 2 manual SAs");
    let i = Config::load(&dir.join("ikev2-psk.toml")).unwrap();
    assert_eq!(i.summary(), "1 connection, 0 manual SAs");
}
