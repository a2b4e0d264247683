//! Helpers shared by the network-namespace tests of the `palisade` crate.
#![allow(dead_code)] // each test file uses its own subset

use std::process::{Command, Output};

/// True when running as root; otherwise the test should return early, unless
/// PALISADE_REQUIRE_NETNS=1 (CI), which makes a missing root a failure.
pub fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert_ne!(
        std::env::var("PALISADE_REQUIRE_NETNS").as_deref(),
        Ok("1"),
        "PALISADE_REQUIRE_NETNS=1 but not root"
    );
    eprintln!("skipping: needs root");
    false
}

/// Run a command, whatever its exit status.
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Run a command that must succeed.
pub fn sh(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run a command that must succeed inside network namespace `ns`.
pub fn ns_sh(ns: &str, args: &[&str]) {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    sh(&v);
}

/// The MTU of `dev` in network namespace `ns`.
pub fn link_mtu(ns: &str, dev: &str) -> usize {
    let out = run(&["ip", "-n", ns, "-o", "link", "show", dev]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "mtu")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or_else(|| panic!("no MTU for {dev} in {ns}: {text}"))
}

/// The start of every network namespace (and veth) name a test makes:
/// `PALISADE_NETNS_PREFIX` when set (so that runs side by side on one host
/// cannot collide), else `default`.
pub fn netns_prefix(default: &str) -> String {
    std::env::var("PALISADE_NETNS_PREFIX").unwrap_or_else(|_| default.to_string())
}
