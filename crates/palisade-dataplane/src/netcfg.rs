//! Interface, route and policy-routing configuration: routes over rtnetlink
//! (`rtnl`), links and rules through iproute2.
//!
//! Every change is recorded so that [`NetConfig::undo`] (also run on drop)
//! removes exactly what palisade added and nothing else. Routes through the TUN
//! device vanish with the device; rules and routes elsewhere do not, so they are
//! the ones that must be recorded.

use std::process::Command;

/// A change palisade made to the host's network configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Route(crate::rtnl::Route),
    Rule { args: Vec<String> },
}

/// Why an iproute2 command failed, with the command line for the log.
#[derive(Debug, thiserror::Error)]
#[error("`ip {cmd}` failed: {stderr}")]
pub struct NetCfgError {
    pub cmd: String,
    pub stderr: String,
}

/// Runs `ip` commands and remembers what to undo.
#[derive(Debug, Default)]
pub struct NetConfig {
    changes: Vec<Change>,
}

fn ip(args: &[String]) -> Result<(), NetCfgError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetCfgError {
            cmd: args.join(" "),
            stderr: format!("cannot run `ip` ({e}); install iproute2"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetCfgError {
            cmd: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `ip link set dev DEV mtu MTU` and then `more` (e.g. `up`).
fn set_mtu(dev: &str, mtu: u32, more: &[&str]) -> Result<(), NetCfgError> {
    let mtu = mtu.to_string();
    let mut args = strings(&["link", "set", "dev", dev, "mtu", &mtu]);
    args.extend(strings(more));
    ip(&args)
}

/// The interface and MTU of the route to `dst` that packets carrying `mark`
/// take (`ip route get`, then the route's own `mtu` or the interface's).
/// `None` when there is no route or iproute2 is missing.
pub fn route_mtu(dst: std::net::IpAddr, mark: u32) -> Option<(String, usize)> {
    let out = Command::new("ip")
        .args(["route", "get", &dst.to_string(), "mark", &mark.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    let after = |key: &str| {
        words
            .windows(2)
            .find(|w| w[0] == key)
            .map(|w| w[1].to_string())
    };
    let dev = after("dev")?;
    // `mtu 1400` or `mtu lock 1400`.
    let route_mtu = words
        .windows(3)
        .find(|w| w[0] == "mtu")
        .and_then(|w| w[1].parse::<usize>().or_else(|_| w[2].parse()).ok());
    let mtu = route_mtu.or_else(|| {
        std::fs::read_to_string(format!("/sys/class/net/{dev}/mtu"))
            .ok()?
            .trim()
            .parse()
            .ok()
    })?;
    Some((dev, mtu))
}

impl NetConfig {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bring `dev` up with the given MTU.
    pub fn link_up(&mut self, dev: &str, mtu: u32) -> Result<(), NetCfgError> {
        set_mtu(dev, mtu, &["up"])
    }

    /// Change the MTU of `dev` (up or down as it is: no flap).
    pub fn link_mtu(&mut self, dev: &str, mtu: u32) -> Result<(), NetCfgError> {
        set_mtu(dev, mtu, &[])
    }

    /// Add an address to `dev` (it goes away with the device).
    pub fn addr_add(&mut self, dev: &str, cidr: &str) -> Result<(), NetCfgError> {
        let family = if cidr.contains(':') { "-6" } else { "-4" };
        ip(&strings(&[family, "addr", "add", cidr, "dev", dev]))
    }

    /// Route `cidr` into `dev`, optionally in `table` and with a preferred
    /// source (over rtnetlink: no process per route).
    pub fn route_add(
        &mut self,
        cidr: &str,
        dev: &str,
        table: Option<u32>,
        src: Option<&str>,
    ) -> Result<(), NetCfgError> {
        let cmd = || {
            let mut c = format!("route add {cidr} dev {dev}");
            if let Some(t) = table {
                c.push_str(&format!(" table {t}"));
            }
            if let Some(s) = src {
                c.push_str(&format!(" src {s}"));
            }
            c
        };
        let fail = |stderr: String| NetCfgError { cmd: cmd(), stderr };
        let (addr, len) = cidr
            .split_once('/')
            .ok_or_else(|| fail("not a prefix (address/length)".into()))?;
        let dst: std::net::IpAddr = addr
            .parse()
            .map_err(|_| fail(format!("`{addr}` is not an IP address")))?;
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= if dst.is_ipv4() { 32 } else { 128 })
            .ok_or_else(|| fail(format!("`{len}` is not a prefix length")))?;
        let src = match src {
            Some(s) => Some(
                s.parse()
                    .map_err(|_| fail(format!("`{s}` is not an IP address")))?,
            ),
            None => None,
        };
        let oif = crate::rtnl::ifindex(dev).map_err(|e| fail(format!("device {dev}: {e}")))?;
        let route = crate::rtnl::Route {
            dst,
            len,
            oif,
            table,
            src,
        };
        crate::rtnl::change(&route, true).map_err(|e| fail(e.to_string()))?;
        self.changes.push(Change::Route(route));
        Ok(())
    }

    /// Send traffic to `cidr` that does NOT carry `mark` through `table`
    /// (transport mode: cleartext to the peer goes into the TUN; palisade's own
    /// marked ESP/AH packets use the main table).
    pub fn rule_add(
        &mut self,
        cidr: &str,
        mark: u32,
        table: u32,
        priority: u32,
    ) -> Result<(), NetCfgError> {
        let family = if cidr.contains(':') { "-6" } else { "-4" };
        let mut args = strings(&[
            family,
            "rule",
            "add",
            "to",
            cidr,
            "not",
            "fwmark",
            &format!("{mark:#x}"),
            "lookup",
            &table.to_string(),
            "priority",
            &priority.to_string(),
        ]);
        ip(&args)?;
        args[2] = "del".into();
        self.changes.push(Change::Rule { args });
        Ok(())
    }

    /// Remove everything this `NetConfig` added, newest first. Failures are
    /// collected, not fatal: a route that vanished with its device is fine.
    pub fn undo(&mut self) -> Vec<NetCfgError> {
        let mut errors = Vec::new();
        while let Some(change) = self.changes.pop() {
            let result = match change {
                Change::Route(r) => crate::rtnl::change(&r, false).map_err(|e| NetCfgError {
                    cmd: format!("route del {}/{} dev #{}", r.dst, r.len, r.oif),
                    stderr: e.to_string(),
                }),
                Change::Rule { args } => ip(&args),
            };
            if let Err(e) = result {
                errors.push(e);
            }
        }
        errors
    }
}

impl Drop for NetConfig {
    fn drop(&mut self) {
        for e in self.undo() {
            tracing::debug!("cleanup: {e}");
        }
    }
}
