//! Human-readable renderings of the control-socket answers.

use crate::control::protocol::{
    IkeSaStatus, NameChanges, PolicyStatus, ReloadReport, SaStatus, Status,
};
use std::fmt::Write;

fn duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

pub fn status(st: &Status) -> String {
    let d = &st.daemon;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "palisade {} (pid {}), up {}",
        d.version,
        d.pid,
        duration(d.uptime_s)
    );
    let _ = writeln!(o, "config:     {}", d.config);
    let _ = writeln!(o, "data plane: {}", d.dataplane);
    for w in &d.warnings {
        let _ = writeln!(o, "warning:    {w}");
    }
    let _ = writeln!(o);
    o.push_str(&sas(&st.sas));
    let _ = writeln!(o);
    o.push_str(&policies(&st.policies));
    let _ = writeln!(o);
    let _ = writeln!(o, "Connections ({}):", st.connections.len());
    for c in &st.connections {
        let _ = writeln!(
            o,
            "  {}  IKEv{}  remote {}  children [{}]  {}",
            c.name,
            c.version,
            c.remote_addrs.join(","),
            c.children.join(","),
            c.state
        );
    }
    if !st.ike_sas.is_empty() {
        let _ = writeln!(o);
        o.push_str(&ike_sas(&st.ike_sas));
    }
    if !st.data_plane.is_empty() {
        let n = |k: &str| st.data_plane.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            o,
            "\nData plane: TUN MTU {} ({}); TUN {} in, {} out; wire {} in, {} out; SAD {} entries, SPD {} (outbound)",
            n("tun_mtu"),
            if n("tun_offload") == 1 {
                "TCP offload"
            } else {
                "no offload"
            },
            n("tun_in"),
            n("tun_out"),
            n("wire_in"),
            n("wire_out"),
            n("sad_entries"),
            n("spd_entries"),
        );
        let _ = writeln!(
            o,
            "  send errors {}, NAT-keepalives sent {}, ICMP too-big sent {}, IKE on port 4500 {}, bad offload reads {}, UDP GSO fallbacks {}",
            n("send_errors"),
            n("keepalives_sent"),
            n("too_big_sent"),
            n("ike_on_4500"),
            n("tun_bad_offload"),
            n("gso_fallbacks"),
        );
    }
    if !st.ike_stats.is_empty() {
        let nonzero: Vec<String> = st
            .ike_stats
            .iter()
            .filter(|(k, v)| **v > 0 && k.as_str() != "received")
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            o,
            "\nIKE messages: {} received{}",
            st.ike_stats.get("received").copied().unwrap_or(0),
            if nonzero.is_empty() {
                String::new()
            } else {
                format!("; {}", nonzero.join(", "))
            }
        );
    }
    o
}

pub fn ike_sas(list: &[IkeSaStatus]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "IKE SAs ({}):", list.len());
    for i in list {
        let _ = writeln!(
            o,
            "  {}[{}]  {}  {} ... {}{}  {}{}",
            i.connection,
            i.id,
            i.state,
            i.local,
            i.remote,
            i.remote_id
                .as_ref()
                .map_or(String::new(), |r| format!("[{r}]")),
            if i.initiator {
                "initiator"
            } else {
                "responder"
            },
            if i.nat { ", NAT-T" } else { "" }
        );
        if let Some(a) = &i.algorithms {
            let _ = writeln!(o, "      {a}");
        }
        if let Some(s) = i.established_s {
            let _ = writeln!(o, "      established {} ago", duration(s));
        }
        for c in &i.children {
            let _ = writeln!(o, "      CHILD_SA {c}");
        }
    }
    o
}

fn lifetime(sa: &SaStatus) -> String {
    let l = &sa.lifetime;
    let mut parts = Vec::new();
    if let Some(s) = l.soft_seconds_left {
        parts.push(format!("rekey in {}", duration(s)));
    }
    if let Some(s) = l.hard_seconds_left {
        parts.push(format!("expires in {}", duration(s)));
    }
    if let Some(b) = l.bytes_left {
        parts.push(format!("{b} bytes left"));
    }
    if let Some(p) = l.packets_left {
        parts.push(format!("{p} packets left"));
    }
    if parts.is_empty() {
        "no lifetime limit".into()
    } else {
        parts.join(", ")
    }
}

pub fn sas(list: &[SaStatus]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Security associations ({}):", list.len());
    for sa in list {
        let arrow = if sa.direction == "in" { "<-" } else { "->" };
        let (near, far) = if sa.direction == "in" {
            (&sa.dst, &sa.src)
        } else {
            (&sa.src, &sa.dst)
        };
        let _ = writeln!(
            o,
            "  {:<12} {:<3} {} spi 0x{:08x}  {near} {arrow} {far}  {} {}  {}{}  replay {}  [{}]",
            sa.name,
            sa.direction,
            sa.protocol.to_uppercase(),
            sa.spi,
            sa.mode,
            sa.encapsulation,
            sa.algorithms,
            if sa.esn { " esn" } else { "" },
            sa.replay_window,
            sa.state
        );
        let total: u64 = sa.drops.values().sum();
        let mut drops = format!("drops {total}");
        if total > 0 {
            let by: Vec<String> = sa
                .drops
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            let _ = write!(drops, " ({})", by.join(", "));
        }
        let _ = writeln!(
            o,
            "  {:<12}     {} packets, {} bytes, {drops}; {}",
            "",
            sa.packets,
            sa.bytes,
            lifetime(sa)
        );
    }
    o
}

pub fn policies(list: &[PolicyStatus]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Policies ({}):", list.len());
    for p in list {
        let (from, to) = if p.direction == "out" {
            (&p.local_ts, &p.remote_ts)
        } else {
            (&p.remote_ts, &p.local_ts)
        };
        let spis: Vec<String> = p.spis.iter().map(|s| format!("0x{s:08x}")).collect();
        let _ = writeln!(
            o,
            "  {:<12} {:<3} {} -> {}  {} ({}) spi {}",
            p.name,
            p.direction,
            from.join(","),
            to.join(","),
            p.action,
            p.mode,
            spis.join("+")
        );
    }
    o
}

fn changes(o: &mut String, what: &str, c: &NameChanges) {
    let list = |v: &Vec<String>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let _ = writeln!(
        o,
        "{what}: added {}; removed {}; changed {}; unchanged {}",
        list(&c.added),
        list(&c.removed),
        list(&c.changed),
        list(&c.unchanged)
    );
}

pub fn reload(r: &ReloadReport) -> String {
    let mut o = String::from("reloaded\n");
    changes(&mut o, "manual SAs", &r.manual);
    changes(&mut o, "connections", &r.connections);
    for n in &r.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}
