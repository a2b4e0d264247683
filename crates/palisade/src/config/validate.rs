//! Raw config -> validated [`Config`], collecting every problem with its place.

use super::keys::{self, decode_hex};
use super::raw::{self, S};
use super::*;
use palisade_crypto::proposal::{self, Protocol, TransformType};
use palisade_crypto::Policy;
use std::collections::HashMap;
use std::ops::Range;

/// Collects diagnostics while walking the raw config.
struct V<'a> {
    path: &'a Path,
    file: String,
    src: &'a str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Span of the `name` of the table being checked, where "missing key"
    /// errors point.
    current_name_span: Range<usize>,
}

impl<'a> V<'a> {
    fn diag(
        &self,
        span: Range<usize>,
        ctx: &str,
        field: &str,
        problem: String,
        fix: Option<String>,
    ) -> Diagnostic {
        let mut d = Diagnostic::at(&self.file, self.src, span);
        d.context = (!ctx.is_empty()).then(|| ctx.to_string());
        d.field = (!field.is_empty()).then(|| field.to_string());
        d.problem = problem;
        d.fix = fix;
        d
    }
    fn err(
        &mut self,
        span: Range<usize>,
        ctx: &str,
        field: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let fix = fix.into();
        let d = self.diag(
            span,
            ctx,
            field,
            problem.into(),
            (!fix.is_empty()).then_some(fix),
        );
        self.errors.push(d);
    }
    fn warn(&mut self, span: Range<usize>, ctx: &str, field: &str, problem: impl Into<String>) {
        let d = self.diag(span, ctx, field, problem.into(), None);
        self.warnings.push(d);
    }
}

pub fn validate(path: &Path, src: &str) -> Result<Config, LoadError> {
    let file = path.display().to_string();
    let raw: raw::File = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => {
            return Err(LoadError {
                errors: vec![serde_error(&file, src, &e)],
                warnings: Vec::new(),
            })
        }
    };
    let mut v = V {
        path,
        file,
        src,
        errors: Vec::new(),
        warnings: Vec::new(),
        current_name_span: 0..0,
    };
    let daemon = match &raw.daemon {
        Some(d) => daemon(&mut v, d),
        None => DaemonConfig::default(),
    };
    let mut names: HashMap<String, (&'static str, usize)> = HashMap::new();
    let mut connections = Vec::new();
    for c in &raw.connection {
        unique_name(&mut v, &mut names, &c.name, "connection");
        if let Some(c) = connection(&mut v, c) {
            connections.push(c);
        }
    }
    let mut manual = Vec::new();
    let mut spis: HashMap<(IpAddr, &'static str, u32), (String, usize)> = HashMap::new();
    for m in &raw.manual {
        unique_name(&mut v, &mut names, &m.name, "manual SA");
        if let Some(sa) = manual_sa(&mut v, m) {
            unique_spis(&mut v, &mut spis, m, &sa);
            manual.push(sa);
        }
    }
    if v.errors.is_empty() {
        Ok(Config {
            path: path.to_path_buf(),
            daemon,
            connections,
            manual,
            warnings: v.warnings,
        })
    } else {
        Err(LoadError {
            errors: v.errors,
            warnings: v.warnings,
        })
    }
}

/// Turns a toml/serde error into a diagnostic, adding a "did you mean" for
/// misspelt keys and values.
fn serde_error(file: &str, src: &str, e: &toml::de::Error) -> Diagnostic {
    let mut d = Diagnostic::at(file, src, e.span().unwrap_or(0..0));
    let msg = e.message().trim().to_string();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let options: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        d.field = Some(name.to_string());
        d.problem =
            "unknown key (palisade rejects keys it does not know rather than ignore them)".into();
        d.fix = Some(match nearest(name, &options) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("valid keys here: {}", options.join(", ")),
        });
    } else if let Some(rest) = msg.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        d.field = Some(name.to_string());
        d.problem = "is required in this table but missing".into();
        d.fix = Some(format!("add `{name} = ...`"));
    } else {
        d.problem = msg;
        d.fix = Some("see examples/*.toml for the expected shape".into());
    }
    d
}

/// The closest option by edit distance, if it is plausibly a typo.
pub(crate) fn nearest<'o>(word: &str, options: &[&'o str]) -> Option<&'o str> {
    fn dist(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    let (best, d) = options
        .iter()
        .map(|o| (*o, dist(word, o)))
        .min_by_key(|(_, d)| *d)?;
    (d <= 2.max(word.len() / 3)).then_some(best)
}

fn daemon(v: &mut V, d: &raw::Daemon) -> DaemonConfig {
    let mut out = DaemonConfig::default();
    let ctx = "[daemon]";
    if let Some(s) = &d.control_socket {
        if !Path::new(s.get_ref()).is_absolute() {
            v.err(
                s.span(),
                ctx,
                "control_socket",
                format!("`{}` is a relative path", s.get_ref()),
                format!("use an absolute path such as `{DEFAULT_CONTROL_SOCKET}`"),
            );
        }
        out.control_socket = PathBuf::from(s.get_ref());
    }
    if let Some(s) = &d.log_level {
        let levels = ["error", "warn", "info", "debug", "trace"];
        if levels.contains(&s.get_ref().as_str()) {
            out.log_level = s.get_ref().clone();
        } else {
            v.err(
                s.span(),
                ctx,
                "log_level",
                format!("`{}` is not a log level", s.get_ref()),
                "use one of error, warn, info, debug, trace",
            );
        }
    }
    if let Some(s) = &d.tun_name {
        let n = s.get_ref();
        if n.is_empty() || n.len() > 15 || n.contains('/') || n.chars().any(char::is_whitespace) {
            v.err(
                s.span(),
                ctx,
                "tun_name",
                format!("`{n}` is not a valid interface name"),
                "use 1 to 15 characters without `/` or spaces, e.g. `palisade0`",
            );
        } else {
            out.tun_name = n.clone();
        }
    }
    if let Some(m) = &d.tun_mtu {
        match u16::try_from(*m.get_ref()) {
            Ok(mtu) if mtu >= 1280 => out.tun_mtu = mtu,
            _ => v.err(
                m.span(),
                ctx,
                "tun_mtu",
                format!("{} is out of range", m.get_ref()),
                "use 1280 (the IPv6 minimum) to 65535; 1400 leaves room for ESP over UDP",
            ),
        }
    }
    if let Some(b) = &d.tun_offload {
        out.tun_offload = *b.get_ref();
    }
    if d.nat_keepalive.is_some() {
        match duration(v, ctx, "nat_keepalive", &d.nat_keepalive) {
            Some(0) => out.nat_keepalive = None,
            // A NAT forgets a UDP mapping after tens of seconds to minutes;
            // more than an hour keeps nothing alive.
            Some(s) if s <= 3600 => out.nat_keepalive = Some(std::time::Duration::from_secs(s)),
            Some(s) => {
                if let Some(k) = &d.nat_keepalive {
                    v.err(
                        k.span(),
                        ctx,
                        "nat_keepalive",
                        format!("{s} seconds is too long to keep a NAT mapping alive"),
                        "use 0 (off) or 1 to 3600 seconds, e.g. \"20s\" (strongSwan's default)",
                    );
                }
            }
            None => {}
        }
    }
    if let Some(t) = millis(v, ctx, "retransmit_timeout", &d.retransmit_timeout) {
        out.retransmit_timeout = t;
    }
    if let Some(t) = millis(v, ctx, "retransmit_limit", &d.retransmit_limit) {
        out.retransmit_limit = t;
    }
    if let Some(n) = count(v, ctx, "retransmit_tries", &d.retransmit_tries, false) {
        match u32::try_from(n) {
            Ok(n) if n <= 100 => out.retransmit_tries = n,
            _ => {
                if let Some(k) = &d.retransmit_tries {
                    v.err(
                        k.span(),
                        ctx,
                        "retransmit_tries",
                        format!("{n} tries would keep a dead exchange alive for days"),
                        "use 1 to 100 (strongSwan's default is 5)",
                    );
                }
            }
        }
    }
    if out.retransmit_limit < out.retransmit_timeout {
        if let Some(k) = &d.retransmit_limit {
            v.err(
                k.span(),
                ctx,
                "retransmit_limit",
                "is shorter than retransmit_timeout",
                "make the longest wait at least the first one",
            );
        }
    }
    out
}

/// A positive duration with millisecond precision: whole seconds (`2`),
/// or a string `"1.5s"`, `"500ms"`, `"2m"`.
fn millis(
    v: &mut V,
    ctx: &str,
    field: &str,
    d: &Option<S<toml::Value>>,
) -> Option<std::time::Duration> {
    let d = d.as_ref()?;
    let ms: Option<f64> = match d.get_ref() {
        toml::Value::Integer(n) => Some(*n as f64 * 1000.0),
        toml::Value::Float(f) => Some(f * 1000.0),
        toml::Value::String(s) => {
            let s = s.trim();
            let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
                (n, 1.0)
            } else if let Some(n) = s.strip_suffix('s') {
                (n, 1000.0)
            } else if let Some(n) = s.strip_suffix('m') {
                (n, 60_000.0)
            } else {
                (s, 1000.0)
            };
            num.trim().parse::<f64>().ok().map(|n| n * mult)
        }
        _ => None,
    };
    match ms {
        Some(ms) if ms.is_finite() && (1.0..=3_600_000.0).contains(&ms) => {
            Some(std::time::Duration::from_millis(ms as u64))
        }
        _ => {
            v.err(
                d.span(),
                ctx,
                field,
                format!("{} is not a duration from 1 ms to 1 h", show(d.get_ref())),
                "use seconds (2), or a string such as \"1.5s\" or \"500ms\"",
            );
            None
        }
    }
}

fn unique_name(
    v: &mut V,
    names: &mut HashMap<String, (&'static str, usize)>,
    name: &S<String>,
    kind: &'static str,
) {
    let n = name.get_ref();
    let ok = !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        v.err(
            name.span(),
            kind,
            "name",
            format!("`{n}` is not a valid name"),
            "use letters, digits, `-`, `_` and `.` only, e.g. `site-b`",
        );
        return;
    }
    let line = Diagnostic::at("", v.src, name.span()).line.unwrap_or(0);
    if let Some((other, other_line)) = names.get(n) {
        v.err(
            name.span(),
            &format!("{kind} `{n}`"),
            "name",
            format!("the name is already used by the {other} on line {other_line}"),
            "give every connection and manual SA its own name",
        );
    } else {
        names.insert(n.clone(), (kind, line));
    }
}

fn parse_mode(v: &mut V, ctx: &str, m: &Option<S<String>>) -> Mode {
    match m.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("tunnel", _)) => Mode::Tunnel,
        Some(("transport", _)) => Mode::Transport,
        Some((other, span)) => {
            v.err(
                span,
                ctx,
                "mode",
                format!("`{other}` is not a mode"),
                "use \"tunnel\" or \"transport\"",
            );
            Mode::Tunnel
        }
    }
}

fn parse_ip(v: &mut V, ctx: &str, field: &str, s: &S<String>) -> Option<IpAddr> {
    match s.get_ref().parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            v.err(
                s.span(),
                ctx,
                field,
                format!("`{}` is not an IP address", s.get_ref()),
                "write an IPv4 or IPv6 address such as \"192.0.2.1\" or \"2001:db8::1\"",
            );
            None
        }
    }
}

/// Parses `10.1.0.0/16` (or a bare address, meaning one host).
pub(crate) fn parse_subnet(text: &str) -> Result<Subnet, (String, String)> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: IpAddr = addr.trim().parse().map_err(|_| {
        (
            format!("`{text}` is not a subnet"),
            "write it in CIDR form such as \"10.1.0.0/16\" or \"2001:db8::/64\"".to_string(),
        )
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => match p.trim().parse::<u8>() {
            Ok(p) if p <= max => p,
            _ => {
                return Err((
                    format!("`{text}` has an invalid prefix length"),
                    format!("use 0 to {max} after the `/`"),
                ))
            }
        },
    };
    let masked = mask(addr, prefix);
    if masked != addr {
        return Err((
            format!("`{text}` has bits set after the /{prefix} prefix"),
            format!("did you mean \"{masked}/{prefix}\"?"),
        ));
    }
    Ok(Subnet { addr, prefix })
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

fn subnets(v: &mut V, ctx: &str, field: &str, list: &[S<String>]) -> Vec<Subnet> {
    let mut out = Vec::new();
    for s in list {
        match parse_subnet(s.get_ref()) {
            Ok(n) => out.push(n),
            Err((problem, fix)) => v.err(s.span(), ctx, field, problem, fix),
        }
    }
    out
}

/// SPIs 1..=255 are reserved by IANA and 0 means "none" (RFC 4303 2.1).
fn parse_spi(v: &mut V, ctx: &str, field: &str, val: &S<toml::Value>) -> Option<u32> {
    let fix = "use a number from 256 to 4294967295, in decimal or hex (e.g. 0x1000)";
    let n: Option<i128> = match val.get_ref() {
        toml::Value::Integer(i) => Some(i128::from(*i)),
        toml::Value::String(s) => {
            let t = s.trim();
            match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(h) => i128::from_str_radix(h, 16).ok(),
                None => t.parse().ok(),
            }
        }
        _ => None,
    };
    match n {
        None => {
            v.err(
                val.span(),
                ctx,
                field,
                format!("{} is not an SPI", show(val.get_ref())),
                fix,
            );
            None
        }
        Some(n) if (256..=i128::from(u32::MAX)).contains(&n) => u32::try_from(n).ok(),
        Some(n) if (0..256).contains(&n) => {
            v.err(
                val.span(),
                ctx,
                field,
                format!("{n} is reserved (SPIs 0-255 are reserved, RFC 4303 2.1)"),
                fix,
            );
            None
        }
        Some(n) => {
            v.err(
                val.span(),
                ctx,
                field,
                format!("{n} does not fit in 32 bits"),
                fix,
            );
            None
        }
    }
}

fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

fn port(v: &mut V, ctx: &str, field: &str, p: &Option<S<i64>>, default: u16) -> u16 {
    match p {
        None => default,
        Some(p) => match u16::try_from(*p.get_ref()) {
            Ok(n) if n != 0 => n,
            _ => {
                v.err(
                    p.span(),
                    ctx,
                    field,
                    format!("{} is not a port", p.get_ref()),
                    "use 1 to 65535",
                );
                default
            }
        },
    }
}

/// A non-negative count (bytes, packets, tries); zero allowed only if `zero_ok`.
fn count(v: &mut V, ctx: &str, field: &str, n: &Option<S<i64>>, zero_ok: bool) -> Option<u64> {
    let n = n.as_ref()?;
    match u64::try_from(*n.get_ref()) {
        Ok(x) if x > 0 || zero_ok => Some(x),
        _ => {
            v.err(
                n.span(),
                ctx,
                field,
                format!("{} is not a valid count", n.get_ref()),
                if zero_ok {
                    "use 0 or a positive whole number"
                } else {
                    "use a positive whole number"
                },
            );
            None
        }
    }
}

fn replay_window(v: &mut V, ctx: &str, w: &Option<S<i64>>) -> u32 {
    match w {
        None => DEFAULT_REPLAY_WINDOW,
        Some(w) => match u32::try_from(*w.get_ref()) {
            Ok(n) if n <= MAX_REPLAY_WINDOW => n,
            _ => {
                v.err(w.span(), ctx, "replay_window", format!("{} is out of range", w.get_ref()), format!("use 0 (no replay protection) to {MAX_REPLAY_WINDOW} packets; the default is {DEFAULT_REPLAY_WINDOW}"));
                DEFAULT_REPLAY_WINDOW
            }
        },
    }
}

fn tfc(v: &mut V, ctx: &str, t: &Option<S<toml::Value>>) -> TfcPadding {
    let Some(t) = t else { return TfcPadding::Off };
    match t.get_ref() {
        toml::Value::Integer(0) => TfcPadding::Off,
        toml::Value::Integer(n) if (1..=65535).contains(n) => TfcPadding::Bytes(*n as u16),
        toml::Value::String(s) if s == "mtu" => TfcPadding::Mtu,
        other => {
            v.err(
                t.span(),
                ctx,
                "tfc_padding",
                format!("{} is not a padding size", show(other)),
                "use 0 (off), a length in bytes up to 65535, or \"mtu\"",
            );
            TfcPadding::Off
        }
    }
}

/// `3600`, `"90s"`, `"30m"`, `"4h"`, `"1d"`.
fn duration(v: &mut V, ctx: &str, field: &str, d: &Option<S<toml::Value>>) -> Option<u64> {
    let d = d.as_ref()?;
    let secs = match d.get_ref() {
        toml::Value::Integer(n) => u64::try_from(*n).ok(),
        toml::Value::String(s) => {
            let s = s.trim();
            let (num, mult) = match s.char_indices().last() {
                Some((i, 's')) => (&s[..i], 1),
                Some((i, 'm')) => (&s[..i], 60),
                Some((i, 'h')) => (&s[..i], 3600),
                Some((i, 'd')) => (&s[..i], 86400),
                _ => (s, 1),
            };
            num.parse::<u64>().ok().and_then(|n| n.checked_mul(mult))
        }
        _ => None,
    };
    if secs.is_none() {
        v.err(
            d.span(),
            ctx,
            field,
            format!("{} is not a duration", show(d.get_ref())),
            "use seconds (3600) or a number with s, m, h or d (\"4h\")",
        );
    }
    secs
}

fn start_action(v: &mut V, ctx: &str, s: &S<String>) -> Option<StartAction> {
    match s.get_ref().as_str() {
        "none" => Some(StartAction::None),
        "start" => Some(StartAction::Start),
        "trap" => Some(StartAction::Trap),
        other => {
            v.err(
                s.span(),
                ctx,
                "start_action",
                format!("`{other}` is not a start action"),
                "use \"none\", \"start\" or \"trap\"",
            );
            None
        }
    }
}

/// Parses a list of proposals (or the default), applies the insecure policy
/// and reports parsed-but-unimplemented algorithms as warnings.
fn proposals(
    v: &mut V,
    ctx: &str,
    field: &str,
    protocol: Protocol,
    list: Option<&S<Vec<S<String>>>>,
    allow_insecure: bool,
) -> Vec<Proposal> {
    let Some(list) = list else {
        return proposal::defaults(protocol);
    };
    if list.get_ref().is_empty() {
        v.err(
            list.span(),
            ctx,
            field,
            "is empty",
            "list at least one proposal, or remove the key to use the defaults",
        );
    }
    let mut out = Vec::new();
    for s in list.get_ref() {
        match proposal::parse(protocol, s.get_ref()) {
            Ok(ps) => {
                for p in ps {
                    if let Err(e) = p.check_policy(Policy { allow_insecure }) {
                        v.err(s.span(), ctx, field, e.to_string(), "");
                    }
                    for (kw, why) in p.unsupported() {
                        v.warn(
                            s.span(),
                            ctx,
                            field,
                            format!("`{kw}` in proposal `{p}`: {why}"),
                        );
                    }
                    out.push(p);
                }
            }
            Err(e) => v.err(s.span(), ctx, field, e.to_string(), ""),
        }
    }
    out
}

fn connection(v: &mut V, c: &raw::Connection) -> Option<Connection> {
    let ctx = format!("connection `{}`", c.name.get_ref());
    let ctx = ctx.as_str();
    let errors_before = v.errors.len();
    let version = match &c.version {
        None => 2,
        Some(n) if matches!(n.get_ref(), 1 | 2) => *n.get_ref() as u8,
        Some(n) => {
            v.err(
                n.span(),
                ctx,
                "version",
                format!("{} is not an IKE version", n.get_ref()),
                "use 2 (IKEv2) or 1 (IKEv1)",
            );
            2
        }
    };
    let addr = |v: &mut V, field: &str, s: &S<String>| {
        let t = s.get_ref();
        let ok = t == "%any"
            || t.parse::<IpAddr>().is_ok()
            || parse_subnet(t).is_ok()
            || (!t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c)));
        if !ok {
            v.err(
                s.span(),
                ctx,
                field,
                format!("`{t}` is not an address"),
                "write an IP address, a subnet, a DNS name or %any",
            );
        }
        t.clone()
    };
    let local_addrs: Vec<String> = c
        .local_addrs
        .iter()
        .map(|s| addr(v, "local_addrs", s))
        .collect();
    let remote_addrs: Vec<String> = c
        .remote_addrs
        .get_ref()
        .iter()
        .map(|s| addr(v, "remote_addrs", s))
        .collect();
    if remote_addrs.is_empty() {
        v.err(
            c.remote_addrs.span(),
            ctx,
            "remote_addrs",
            "is empty",
            "name the peer, e.g. [\"192.0.2.2\"] (or [\"%any\"] for a responder)",
        );
    }
    let local_port = port(v, ctx, "local_port", &c.local_port, 500);
    let remote_port = port(v, ctx, "remote_port", &c.remote_port, 500);
    let auth = connection_auth(v, ctx, c);
    let ike_proposals = proposals(
        v,
        ctx,
        "ike_proposals",
        Protocol::Ike,
        c.ike_proposals.as_ref(),
        c.allow_insecure,
    );
    let start_action = c
        .start_action
        .as_ref()
        .and_then(|s| start_action(v, ctx, s))
        .unwrap_or(StartAction::None);
    let dpd_delay_s = duration(v, ctx, "dpd_delay", &c.dpd_delay);
    let dpd_action = match c.dpd_action.as_ref() {
        None => DpdAction::Clear,
        Some(s) => match s.get_ref().as_str() {
            "clear" => DpdAction::Clear,
            "restart" => DpdAction::Restart,
            "trap" => DpdAction::Trap,
            other => {
                v.err(
                    s.span(),
                    ctx,
                    "dpd_action",
                    format!("`{other}` is not a DPD action"),
                    "use \"clear\", \"restart\" or \"trap\"",
                );
                DpdAction::Clear
            }
        },
    };
    let rekey_time_s = duration(v, ctx, "rekey_time", &c.rekey_time);
    let over_time_s = duration(v, ctx, "over_time", &c.over_time);
    let rand_time_s = duration(v, ctx, "rand_time", &c.rand_time);
    let keyingtries = count(v, ctx, "keyingtries", &c.keyingtries, true).map_or(1, |n| n as u32);
    let mut children = Vec::new();
    let mut child_names = std::collections::HashSet::new();
    if c.child.is_empty() {
        v.warn(
            c.name.span(),
            ctx,
            "child",
            "has no [[connection.child]], so it would set up an IKE SA that protects no traffic",
        );
    }
    for ch in &c.child {
        if !child_names.insert(ch.name.get_ref().as_str()) {
            v.err(
                ch.name.span(),
                ctx,
                "child.name",
                format!("`{}` is used by two children", ch.name.get_ref()),
                "give each child of a connection its own name",
            );
        }
        children.push(child(v, c, ch));
    }
    (v.errors.len() == errors_before).then(|| Connection {
        name: c.name.get_ref().clone(),
        version,
        local_addrs,
        remote_addrs,
        local_port,
        remote_port,
        local_id: c.local_id.as_ref().map(|s| s.get_ref().clone()),
        remote_id: c.remote_id.as_ref().map(|s| s.get_ref().clone()),
        auth: auth.unwrap_or(Auth::Psk(Secret::default())),
        ike_proposals,
        start_action,
        dpd_delay_s,
        dpd_action,
        rekey_time_s,
        over_time_s,
        rand_time_s,
        keyingtries,
        allow_insecure: c.allow_insecure,
        children,
    })
}

fn connection_auth(v: &mut V, ctx: &str, c: &raw::Connection) -> Option<Auth> {
    match c.auth.get_ref().as_str() {
        "psk" => {
            let psk = match (&c.psk, &c.psk_file) {
                (Some(p), None) => Some(Secret::from_slice(p.get_ref().as_bytes())),
                (None, Some(f)) => {
                    let path = keys::resolve(v.path, f.get_ref());
                    match std::fs::read(&path) {
                        Ok(bytes) => {
                            if let Some(w) = std::fs::metadata(&path)
                                .ok()
                                .and_then(|m| keys::world_readable(&path, &m))
                            {
                                v.warn(f.span(), ctx, "psk_file", w);
                            }
                            let mut bytes = zeroize::Zeroizing::new(bytes);
                            while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                                bytes.pop();
                            }
                            Some(Secret::from_slice(&bytes))
                        }
                        Err(e) => {
                            v.err(
                                f.span(),
                                ctx,
                                "psk_file",
                                format!("cannot read `{}`: {e}", path.display()),
                                "point it at a file readable by the daemon (root), mode 0600",
                            );
                            None
                        }
                    }
                }
                (Some(p), Some(_)) => {
                    v.err(
                        p.span(),
                        ctx,
                        "psk",
                        "both `psk` and `psk_file` are set",
                        "keep one; `psk_file` keeps the secret out of the config",
                    );
                    None
                }
                (None, None) => {
                    v.err(
                        c.auth.span(),
                        ctx,
                        "auth",
                        "is \"psk\" but no key is given",
                        "add `psk_file = \"/etc/palisade/NAME.psk\"` (or `psk = \"...\"`)",
                    );
                    None
                }
            };
            if let Some(p) = &psk {
                if p.len() < 16 {
                    let span = c
                        .psk
                        .as_ref()
                        .or(c.psk_file.as_ref())
                        .map_or(c.auth.span(), |s| s.span());
                    v.warn(span, ctx, "psk", format!("the pre-shared key is only {} bytes; use at least 16 random bytes (RFC 7296 2.15)", p.len()));
                }
            }
            psk.map(Auth::Psk)
        }
        "pubkey" => {
            let file = |v: &mut V, field: &str, s: &Option<S<String>>| -> Option<PathBuf> {
                let Some(s) = s else {
                    v.err(
                        c.auth.span(),
                        ctx,
                        field,
                        "is required when auth = \"pubkey\"",
                        format!("add `{field} = \"/etc/palisade/...pem\"`"),
                    );
                    return None;
                };
                let p = keys::resolve(v.path, s.get_ref());
                if let Err(e) = std::fs::metadata(&p) {
                    v.err(
                        s.span(),
                        ctx,
                        field,
                        format!("cannot read `{}`: {e}", p.display()),
                        "point it at an existing PEM file",
                    );
                }
                Some(p)
            };
            let cert = file(v, "local_cert", &c.local_cert);
            let key = file(v, "local_key", &c.local_key);
            let ca_certs = c
                .ca_certs
                .iter()
                .filter_map(|s| file(v, "ca_certs", &Some(s.clone())))
                .collect();
            Some(Auth::Pubkey {
                cert: cert?,
                key: key?,
                ca_certs,
            })
        }
        other => {
            v.err(
                c.auth.span(),
                ctx,
                "auth",
                format!("`{other}` is not an authentication method"),
                "use \"psk\" or \"pubkey\"",
            );
            None
        }
    }
}

fn child(v: &mut V, c: &raw::Connection, ch: &raw::Child) -> Child {
    let ctx = format!(
        "connection `{}` child `{}`",
        c.name.get_ref(),
        ch.name.get_ref()
    );
    let ctx = ctx.as_str();
    let ts = |v: &mut V, field: &str, list: &[S<String>]| -> Vec<TrafficSelector> {
        if list.is_empty() {
            return vec![TrafficSelector::Dynamic];
        }
        let mut out = Vec::new();
        for s in list {
            if s.get_ref() == "dynamic" {
                out.push(TrafficSelector::Dynamic);
                continue;
            }
            match parse_subnet(s.get_ref()) {
                Ok(n) => out.push(TrafficSelector::Subnet(n)),
                Err((p, fix)) => v.err(s.span(), ctx, field, p, format!("{fix}, or \"dynamic\"")),
            }
        }
        out
    };
    let local_ts = ts(v, "local_ts", &ch.local_ts);
    let remote_ts = ts(v, "remote_ts", &ch.remote_ts);
    let (esp_proposals, ah_proposals) = match (&ch.esp_proposals, &ch.ah_proposals) {
        (esp, None) => (
            proposals(
                v,
                ctx,
                "esp_proposals",
                Protocol::Esp,
                esp.as_ref(),
                c.allow_insecure,
            ),
            Vec::new(),
        ),
        (None, ah) => (
            Vec::new(),
            proposals(
                v,
                ctx,
                "ah_proposals",
                Protocol::Ah,
                ah.as_ref(),
                c.allow_insecure,
            ),
        ),
        (esp, ah) => (
            proposals(
                v,
                ctx,
                "esp_proposals",
                Protocol::Esp,
                esp.as_ref(),
                c.allow_insecure,
            ),
            proposals(
                v,
                ctx,
                "ah_proposals",
                Protocol::Ah,
                ah.as_ref(),
                c.allow_insecure,
            ),
        ),
    };
    let rekey_time_s = duration(v, ctx, "rekey_time", &ch.rekey_time);
    let life_time_s = duration(v, ctx, "life_time", &ch.life_time);
    if let (Some(r), Some(l), Some(span)) = (rekey_time_s, life_time_s, ch.life_time.as_ref()) {
        if r != 0 && l <= r {
            v.err(
                span.span(),
                ctx,
                "life_time",
                format!("{l} s is not longer than rekey_time ({r} s), so the SA would expire before it is rekeyed"),
                "make life_time longer than rekey_time (strongSwan's default is 110 % of it)",
            );
        }
    }
    let rekey_bytes = count(v, ctx, "rekey_bytes", &ch.rekey_bytes, false);
    let life_bytes = count(v, ctx, "life_bytes", &ch.life_bytes, false);
    let rekey_packets = count(v, ctx, "rekey_packets", &ch.rekey_packets, false);
    let life_packets = count(v, ctx, "life_packets", &ch.life_packets, false);
    for (field, soft, hard, span) in [
        ("life_bytes", rekey_bytes, life_bytes, &ch.life_bytes),
        (
            "life_packets",
            rekey_packets,
            life_packets,
            &ch.life_packets,
        ),
    ] {
        if let (Some(s), Some(h), Some(span)) = (soft, hard, span.as_ref()) {
            if h <= s {
                v.err(
                    span.span(),
                    ctx,
                    field,
                    format!("{h} is not more than the rekey limit ({s})"),
                    "the hard limit must exceed the soft one so the rekey can happen first",
                );
            }
        }
    }
    Child {
        name: ch.name.get_ref().clone(),
        local_ts,
        remote_ts,
        esp_proposals,
        ah_proposals,
        mode: parse_mode(v, ctx, &ch.mode),
        start_action: ch
            .start_action
            .as_ref()
            .and_then(|s| start_action(v, ctx, s)),
        rekey_time_s,
        life_time_s,
        rand_time_s: duration(v, ctx, "rand_time", &ch.rand_time),
        rekey_bytes,
        life_bytes,
        rekey_packets,
        life_packets,
        replay_window: replay_window(v, ctx, &ch.replay_window),
        tfc_padding: tfc(v, ctx, &ch.tfc_padding),
    }
}

fn manual_sa(v: &mut V, m: &raw::Manual) -> Option<ManualSa> {
    let ctx = format!("manual SA `{}`", m.name.get_ref());
    let ctx = ctx.as_str();
    let errors_before = v.errors.len();
    v.current_name_span = m.name.span();
    let mode = parse_mode(v, ctx, &m.mode);
    let local_addr = parse_ip(v, ctx, "local_addr", &m.local_addr);
    let remote_addr = parse_ip(v, ctx, "remote_addr", &m.remote_addr);
    if let (Some(l), Some(r)) = (local_addr, remote_addr) {
        if l.is_ipv4() != r.is_ipv4() {
            v.err(m.remote_addr.span(), ctx, "remote_addr", format!("`{r}` and local_addr `{l}` are of different IP versions"), "use two IPv4 or two IPv6 addresses (inner traffic may still be of the other version in tunnel mode)");
        }
    }
    let encapsulation = encapsulation(v, ctx, m);
    let uses_esp = matches!(
        encapsulation,
        Encapsulation::Esp | Encapsulation::EspUdp { .. } | Encapsulation::AhEsp
    );
    let uses_ah = matches!(encapsulation, Encapsulation::Ah | Encapsulation::AhEsp);
    let esn = m.esn.as_ref().is_some_and(|e| *e.get_ref());

    let spi_in = parse_spi(v, ctx, "spi_in", &m.spi_in);
    let spi_out = parse_spi(v, ctx, "spi_out", &m.spi_out);
    let esp = if uses_esp {
        manual_esp(v, ctx, m, spi_in, spi_out)
    } else {
        forbid(
            v,
            ctx,
            "esp_proposal",
            &m.esp_proposal,
            "encapsulation = \"ah\" carries no ESP; remove it or use \"ah+esp\"",
        );
        for (f, k) in [
            ("enc_key_in", &m.enc_key_in),
            ("enc_key_out", &m.enc_key_out),
            ("auth_key_in", &m.auth_key_in),
            ("auth_key_out", &m.auth_key_out),
        ] {
            forbid(v, ctx, f, k, "AH keys are `ah_key_in`/`ah_key_out`");
        }
        None
    };
    let ah = if uses_ah {
        let (ai, ao) = if encapsulation == Encapsulation::AhEsp {
            let ai = m
                .ah_spi_in
                .as_ref()
                .map_or(spi_in, |s| parse_spi(v, ctx, "ah_spi_in", s));
            let ao = m
                .ah_spi_out
                .as_ref()
                .map_or(spi_out, |s| parse_spi(v, ctx, "ah_spi_out", s));
            (ai, ao)
        } else {
            forbid(
                v,
                ctx,
                "ah_spi_in",
                &m.ah_spi_in,
                "with encapsulation = \"ah\" the AH SPIs are `spi_in`/`spi_out`",
            );
            forbid(
                v,
                ctx,
                "ah_spi_out",
                &m.ah_spi_out,
                "with encapsulation = \"ah\" the AH SPIs are `spi_in`/`spi_out`",
            );
            (spi_in, spi_out)
        };
        manual_ah(v, ctx, m, ai, ao)
    } else {
        forbid(
            v,
            ctx,
            "ah_proposal",
            &m.ah_proposal,
            "only encapsulation = \"ah\" or \"ah+esp\" uses AH",
        );
        forbid(
            v,
            ctx,
            "ah_key_in",
            &m.ah_key_in,
            "only encapsulation = \"ah\" or \"ah+esp\" uses AH",
        );
        forbid(
            v,
            ctx,
            "ah_key_out",
            &m.ah_key_out,
            "only encapsulation = \"ah\" or \"ah+esp\" uses AH",
        );
        forbid(
            v,
            ctx,
            "ah_spi_in",
            &m.ah_spi_in,
            "only encapsulation = \"ah+esp\" has separate AH SPIs",
        );
        forbid(
            v,
            ctx,
            "ah_spi_out",
            &m.ah_spi_out,
            "only encapsulation = \"ah+esp\" has separate AH SPIs",
        );
        None
    };
    let (local_ts, remote_ts) = manual_ts(v, ctx, m, mode, local_addr, remote_addr);
    let replay_window = replay_window(v, ctx, &m.replay_window);
    let tfc_padding = tfc(v, ctx, &m.tfc_padding);
    if tfc_padding != TfcPadding::Off && !uses_esp {
        if let Some(t) = &m.tfc_padding {
            v.err(
                t.span(),
                ctx,
                "tfc_padding",
                "TFC padding needs ESP (RFC 4303 2.7)",
                "remove it or use an ESP encapsulation",
            );
        }
    } else if tfc_padding != TfcPadding::Off && mode == Mode::Transport {
        // The receiver strips TFC padding by the inner IP header's length,
        // which transport mode does not carry (RFC 4303 2.7); the SA layer
        // would pad nothing, so refuse rather than ignore it.
        if let Some(t) = &m.tfc_padding {
            v.err(
                t.span(),
                ctx,
                "tfc_padding",
                "TFC padding needs tunnel mode (RFC 4303 2.7: only an inner IP header tells the receiver where the padding starts)",
                "remove it or use mode = \"tunnel\"",
            );
        }
    }
    if v.errors.len() != errors_before {
        return None;
    }
    Some(ManualSa {
        name: m.name.get_ref().clone(),
        mode,
        local_addr: local_addr?,
        remote_addr: remote_addr?,
        encapsulation,
        esp,
        ah,
        local_ts,
        remote_ts,
        esn,
        replay_window,
        tfc_padding,
        allow_insecure: m.allow_insecure,
    })
}

fn forbid<T>(v: &mut V, ctx: &str, field: &str, val: &Option<S<T>>, why: &str) {
    if let Some(val) = val {
        v.err(val.span(), ctx, field, "does not apply here", why);
    }
}

fn encapsulation(v: &mut V, ctx: &str, m: &raw::Manual) -> Encapsulation {
    let e = match m
        .encapsulation
        .as_ref()
        .map(|e| (e.get_ref().as_str(), e.span()))
    {
        None | Some(("esp", _)) => Encapsulation::Esp,
        Some(("esp-udp", _)) => {
            let (l, r) = match &m.udp_ports {
                Some(p) => (&p.get_ref().local, &p.get_ref().remote),
                None => (&None, &None),
            };
            let local_port = port(v, ctx, "udp_ports.local", l, 4500);
            let remote_port = port(v, ctx, "udp_ports.remote", r, 4500);
            return Encapsulation::EspUdp {
                local_port,
                remote_port,
            };
        }
        Some(("ah", _)) => Encapsulation::Ah,
        Some(("ah+esp", _)) => Encapsulation::AhEsp,
        Some((other, span)) => {
            let fix = match nearest(other, &["esp", "esp-udp", "ah", "ah+esp"]) {
                Some(s) => format!(
                    "did you mean \"{s}\"? (one of \"esp\", \"esp-udp\", \"ah\", \"ah+esp\")"
                ),
                None => "use \"esp\", \"esp-udp\", \"ah\" or \"ah+esp\"".into(),
            };
            v.err(
                span,
                ctx,
                "encapsulation",
                format!("`{other}` is not an encapsulation"),
                fix,
            );
            Encapsulation::Esp
        }
    };
    if let Some(p) = &m.udp_ports {
        v.err(
            p.span(),
            ctx,
            "udp_ports",
            "only applies to encapsulation = \"esp-udp\"",
            "remove it, or set encapsulation = \"esp-udp\"",
        );
    }
    e
}

/// Parses a manual SA's proposal: exactly one algorithm per needed type, no
/// key exchange, ESN from the `esn` key.
fn manual_proposal(
    v: &mut V,
    ctx: &str,
    field: &str,
    protocol: Protocol,
    s: &S<String>,
    allow_insecure: bool,
) -> Option<Proposal> {
    let text = s.get_ref();
    if text.trim() == "default" {
        v.err(
            s.span(),
            ctx,
            field,
            "`default` offers several algorithms, but a manual SA needs exactly one",
            "name it, e.g. \"aes256gcm16\" or \"aes256-sha256\"",
        );
        return None;
    }
    let p = match proposal::parse_one(protocol, text) {
        Ok(p) => p,
        Err(e) => {
            v.err(s.span(), ctx, field, e.to_string(), "");
            return None;
        }
    };
    let bad = |v: &mut V, problem: String, fix: &str| {
        v.err(s.span(), ctx, field, problem, fix);
    };
    if p.encr.len() > 1 || p.integ.len() > 1 {
        bad(v, format!("`{text}` lists several algorithms of one kind, but a manual SA has nothing to negotiate"), "keep one, e.g. \"aes256gcm16\" or \"aes256-sha256\"");
        return None;
    }
    if let Some(t) = p.ke.first().or(p.add_ke.iter().flatten().next()) {
        bad(
            v,
            format!(
                "`{}` is a key exchange, but a manual SA's keys are given, not exchanged",
                t.keyword
            ),
            "remove it from the proposal",
        );
        return None;
    }
    if text
        .to_ascii_lowercase()
        .split('-')
        .any(|t| t == "esn" || t == "noesn")
    {
        bad(v, "a manual SA takes extended sequence numbers from `esn = true|false`, not from the proposal".into(), "remove `esn`/`noesn` from the proposal and set `esn`");
        return None;
    }
    if let Err(e) = p.check_policy(Policy { allow_insecure }) {
        bad(v, e.to_string(), "");
        return None;
    }
    if let Some((kw, why)) = p.unsupported().first() {
        bad(
            v,
            format!("`{kw}` cannot be used: {why}"),
            "choose another algorithm, e.g. \"aes256gcm16\"",
        );
        return None;
    }
    debug_assert!(p.transforms().all(|t| t.kind != TransformType::Prf));
    Some(p)
}

/// A key given inline (`<name>`) or by file (`<name>_file`), checked against
/// the length `need` (bytes) with `why` explaining it.
// The two spellings of the field and what the error must say about it.
#[allow(clippy::too_many_arguments)]
fn key(
    v: &mut V,
    ctx: &str,
    name: &str,
    inline: &Option<S<String>>,
    file: &Option<S<String>>,
    need: usize,
    algo: &str,
    why: &str,
) -> Option<Secret> {
    let file_field = format!("{name}_file");
    let (key, span, field) = match (inline, file) {
        (Some(_), Some(f)) => {
            v.err(
                f.span(),
                ctx,
                &file_field,
                format!("both `{name}` and `{file_field}` are set"),
                "keep one",
            );
            return None;
        }
        (None, None) => {
            if need == 0 {
                return Some(Secret::default());
            }
            let d = missing_key(v, ctx, name, &file_field, need, algo, why);
            v.errors.push(d);
            return None;
        }
        (Some(k), None) => match decode_hex(k.get_ref()) {
            Ok(key) => (key, k.span(), name.to_string()),
            Err(e) => {
                v.err(
                    k.span(),
                    ctx,
                    name,
                    format!("the key {e}"),
                    format!("give {} hex digits", need * 2),
                );
                return None;
            }
        },
        (None, Some(f)) => {
            let path = keys::resolve(v.path, f.get_ref());
            match keys::read_key_file(&path) {
                Ok(kf) => {
                    if let Some(w) = kf.warning {
                        v.warn(f.span(), ctx, &file_field, w);
                    }
                    (kf.key, f.span(), file_field.clone())
                }
                Err(e) => {
                    v.err(f.span(), ctx, &file_field, e, "point it at a file readable by the daemon (root, mode 0600) holding the key as hex");
                    return None;
                }
            }
        }
    };
    if key.len() != need {
        let fix = if need == 0 {
            "remove it".to_string()
        } else {
            format!("give {} hex digits", need * 2)
        };
        v.err(
            span,
            ctx,
            &field,
            format!(
                "the key is {} bytes, but {algo} needs {need} bytes ({why})",
                key.len()
            ),
            fix,
        );
        return None;
    }
    Some(key)
}

/// The "missing key" diagnostic points at the table's name, where the key
/// would be added.
fn missing_key(
    v: &V,
    ctx: &str,
    name: &str,
    file_field: &str,
    need: usize,
    algo: &str,
    why: &str,
) -> Diagnostic {
    let span = v.current_name_span.clone();
    v.diag(
        span,
        ctx,
        name,
        format!("is missing; {algo} needs a {need}-byte key ({why})"),
        Some(format!(
            "add `{name} = \"0x...\"` ({} hex digits) or `{file_field} = \"/etc/palisade/...\"`",
            need * 2
        )),
    )
}

fn manual_esp(
    v: &mut V,
    ctx: &str,
    m: &raw::Manual,
    spi_in: Option<u32>,
    spi_out: Option<u32>,
) -> Option<ManualKeys> {
    let Some(ps) = &m.esp_proposal else {
        let d = v.diag(
            m.name.span(),
            ctx,
            "esp_proposal",
            "is missing".into(),
            Some("add e.g. `esp_proposal = \"aes256gcm16\"`".into()),
        );
        v.errors.push(d);
        return None;
    };
    let p = manual_proposal(v, ctx, "esp_proposal", Protocol::Esp, ps, m.allow_insecure)?;
    let encr = *p.encr.first()?;
    let Some((enc_len, enc_why)) = keys::encr_key_len(&encr) else {
        v.err(
            ps.span(),
            ctx,
            "esp_proposal",
            format!("`{}` cannot be used in a manual SA", encr.keyword),
            "use e.g. \"aes256gcm16\"",
        );
        return None;
    };
    let enc_key_in = key(
        v,
        ctx,
        "enc_key_in",
        &m.enc_key_in,
        &m.enc_key_in_file,
        enc_len,
        encr.keyword,
        &enc_why,
    );
    let enc_key_out = key(
        v,
        ctx,
        "enc_key_out",
        &m.enc_key_out,
        &m.enc_key_out_file,
        enc_len,
        encr.keyword,
        &enc_why,
    );
    let integ = p.integ.first().copied();
    let (auth_key_in, auth_key_out) = match integ {
        Some(i) => {
            let Some((len, why)) = keys::integ_key_len(&i) else {
                v.err(
                    ps.span(),
                    ctx,
                    "esp_proposal",
                    format!("`{}` cannot be used in a manual SA", i.keyword),
                    "use e.g. \"aes256-sha256\"",
                );
                return None;
            };
            (
                key(
                    v,
                    ctx,
                    "auth_key_in",
                    &m.auth_key_in,
                    &m.auth_key_in_file,
                    len,
                    i.keyword,
                    &why,
                ),
                key(
                    v,
                    ctx,
                    "auth_key_out",
                    &m.auth_key_out,
                    &m.auth_key_out_file,
                    len,
                    i.keyword,
                    &why,
                ),
            )
        }
        None => {
            let why = format!(
                "{} is an AEAD: it authenticates with the encryption key",
                encr.keyword
            );
            for (f, k) in [
                ("auth_key_in", &m.auth_key_in),
                ("auth_key_out", &m.auth_key_out),
                ("auth_key_in_file", &m.auth_key_in_file),
                ("auth_key_out_file", &m.auth_key_out_file),
            ] {
                forbid(v, ctx, f, k, &why);
            }
            (Some(Secret::default()), Some(Secret::default()))
        }
    };
    Some(ManualKeys {
        spi_in: spi_in?,
        spi_out: spi_out?,
        encr: Some(encr),
        integ,
        enc_key_in: enc_key_in?,
        enc_key_out: enc_key_out?,
        auth_key_in: auth_key_in?,
        auth_key_out: auth_key_out?,
        proposal: p,
    })
}

fn manual_ah(
    v: &mut V,
    ctx: &str,
    m: &raw::Manual,
    spi_in: Option<u32>,
    spi_out: Option<u32>,
) -> Option<ManualKeys> {
    let Some(ps) = &m.ah_proposal else {
        let d = v.diag(
            m.name.span(),
            ctx,
            "ah_proposal",
            "is missing".into(),
            Some("add e.g. `ah_proposal = \"sha256\"`".into()),
        );
        v.errors.push(d);
        return None;
    };
    let p = manual_proposal(v, ctx, "ah_proposal", Protocol::Ah, ps, m.allow_insecure)?;
    let integ = *p.integ.first()?;
    let Some((len, why)) = keys::integ_key_len(&integ) else {
        v.err(
            ps.span(),
            ctx,
            "ah_proposal",
            format!("`{}` cannot be used in a manual SA", integ.keyword),
            "use e.g. \"sha256\"",
        );
        return None;
    };
    let auth_key_in = key(
        v,
        ctx,
        "ah_key_in",
        &m.ah_key_in,
        &m.ah_key_in_file,
        len,
        integ.keyword,
        &why,
    );
    let auth_key_out = key(
        v,
        ctx,
        "ah_key_out",
        &m.ah_key_out,
        &m.ah_key_out_file,
        len,
        integ.keyword,
        &why,
    );
    Some(ManualKeys {
        spi_in: spi_in?,
        spi_out: spi_out?,
        encr: None,
        integ: Some(integ),
        enc_key_in: Secret::default(),
        enc_key_out: Secret::default(),
        auth_key_in: auth_key_in?,
        auth_key_out: auth_key_out?,
        proposal: p,
    })
}

/// Selectors default to the two hosts. In transport mode they must be of the
/// outer addresses' IP version (the packet is the outer packet); in tunnel
/// mode the inner version may differ, but each side needs a partner of its
/// own version on the other side or nothing could ever match.
fn manual_ts(
    v: &mut V,
    ctx: &str,
    m: &raw::Manual,
    mode: Mode,
    local: Option<IpAddr>,
    remote: Option<IpAddr>,
) -> (Vec<Subnet>, Vec<Subnet>) {
    let errors_before = v.errors.len();
    let mut l = subnets(v, ctx, "local_ts", &m.local_ts);
    let mut r = subnets(v, ctx, "remote_ts", &m.remote_ts);
    if v.errors.len() != errors_before {
        // A selector that did not parse would make the pairing checks below
        // report follow-on errors that only confuse.
        return (l, r);
    }
    if m.local_ts.is_empty() {
        l.extend(local.map(Subnet::host));
    }
    if m.remote_ts.is_empty() {
        r.extend(remote.map(Subnet::host));
    }
    if mode == Mode::Transport {
        if let Some(outer_v4) = local.map(|a| a.is_ipv4()) {
            for (field, list, raw) in [
                ("local_ts", &l, &m.local_ts),
                ("remote_ts", &r, &m.remote_ts),
            ] {
                for (s, span) in list.iter().zip(raw.iter().map(|x| x.span())) {
                    if s.addr.is_ipv4() != outer_v4 {
                        v.err(span, ctx, field, format!("`{s}` is not of the outer addresses' IP version"), "in transport mode the selectors describe the outer packet; use addresses of the same version as local_addr/remote_addr");
                    }
                }
            }
        }
    }
    for (field, mine, theirs, raw) in [
        ("local_ts", &l, &r, &m.local_ts),
        ("remote_ts", &r, &l, &m.remote_ts),
    ] {
        for (s, span) in mine.iter().zip(raw.iter().map(|x| x.span())) {
            if !theirs.iter().any(|t| t.addr.is_ipv4() == s.addr.is_ipv4()) {
                let other = if field == "local_ts" {
                    "remote_ts"
                } else {
                    "local_ts"
                };
                v.err(
                    span,
                    ctx,
                    field,
                    format!(
                        "`{s}` has no {} selector in {other} to pair with",
                        if s.addr.is_ipv4() { "IPv4" } else { "IPv6" }
                    ),
                    format!("add one to {other}, or remove this one"),
                );
            }
        }
    }
    (l, r)
}

/// Inbound SAs are found by (destination, protocol, SPI) (RFC 4301 4.1), so
/// two manual SAs must not share that triple.
fn unique_spis(
    v: &mut V,
    seen: &mut HashMap<(IpAddr, &'static str, u32), (String, usize)>,
    m: &raw::Manual,
    sa: &ManualSa,
) {
    let line = Diagnostic::at("", v.src, m.spi_in.span()).line.unwrap_or(0);
    for (proto, keys) in [("ESP", &sa.esp), ("AH", &sa.ah)] {
        let Some(k) = keys else { continue };
        let key = (sa.local_addr, proto, k.spi_in);
        if let Some((other, other_line)) = seen.get(&key) {
            let (other, other_line) = (other.clone(), *other_line);
            v.err(m.spi_in.span(), &format!("manual SA `{}`", sa.name), "spi_in", format!("{proto} SPI {:#x} to {} is also the inbound SPI of manual SA `{other}` (line {other_line})", k.spi_in, sa.local_addr), "inbound SPIs must be unique per local address and protocol; pick another");
        } else {
            seen.insert(key, (sa.name.clone(), line));
        }
    }
}
