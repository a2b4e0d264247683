//! `palisade daemon --config FILE`: the foreground daemon.
//!
//! It loads the config, binds the control socket, hands the config to the
//! data plane and then waits for requests and signals: SIGHUP or `palisade
//! reload` re-reads the config and applies only the difference; SIGTERM,
//! SIGINT or `palisade stop` shut down and remove everything the daemon
//! created (data plane state, the socket, its directory if it made it).
//! Logs go to stderr through `tracing`, which is what journald collects.

use crate::config::{self, Config, ConfigDiff, NameDiff};
use crate::control::dataplane::Dataplane;
use crate::control::protocol::{ConnectionStatus, DaemonInfo, NameChanges, ReloadReport, Status};
use crate::control::server::{self, ControlSocket, Handler};
use crate::control::{Request, Response};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// The daemon's shared state: the running config and the data plane.
pub struct Daemon {
    config: Mutex<Config>,
    dataplane: Box<dyn Dataplane>,
    started: Instant,
    stop: Notify,
    /// Serialises reloads (SIGHUP and `palisade reload` at once).
    reload_lock: Mutex<()>,
}

impl Daemon {
    fn config(&self) -> Config {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn status(&self) -> Status {
        let cfg = self.config();
        let states = self.dataplane.connection_states();
        Status {
            daemon: DaemonInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                pid: std::process::id(),
                config: cfg.path.display().to_string(),
                uptime_s: self.started.elapsed().as_secs(),
                dataplane: self.dataplane.name().into(),
                warnings: cfg.warnings.iter().map(|w| w.to_string()).collect(),
            },
            sas: self.dataplane.sas(),
            policies: self.dataplane.policies(),
            connections: cfg
                .connections
                .iter()
                .map(|c| ConnectionStatus {
                    name: c.name.clone(),
                    version: c.version,
                    remote_addrs: c.remote_addrs.clone(),
                    state: states
                        .get(&c.name)
                        .cloned()
                        .unwrap_or_else(|| "configured (IKE is off without a data plane)".into()),
                    children: c.children.iter().map(|ch| ch.name.clone()).collect(),
                })
                .collect(),
            ike_sas: self.dataplane.ike_sas(),
            ike_stats: self.dataplane.ike_stats(),
            data_plane: self.dataplane.stats(),
        }
    }

    /// Re-reads the config file and applies the difference. On any error the
    /// running config stays as it was.
    pub fn reload(&self) -> Result<ReloadReport, String> {
        let _guard = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.config();
        tracing::info!(config = %old.path.display(), "reloading");
        let new = Config::load(&old.path).map_err(|e| {
            let msg = format!("reload refused, the running config is unchanged: {e}");
            tracing::error!("{msg}");
            msg
        })?;
        for w in &new.warnings {
            tracing::warn!("{w}");
        }
        let diff = config::diff(&old, &new);
        log_diff(&diff);
        let mut notes = Vec::new();
        let (o, n) = (&old.daemon, &new.daemon);
        if n.control_socket != o.control_socket
            || n.tun_name != o.tun_name
            || n.tun_offload != o.tun_offload
            || (n.retransmit_timeout, n.retransmit_limit, n.retransmit_tries)
                != (o.retransmit_timeout, o.retransmit_limit, o.retransmit_tries)
        {
            let n = "[daemon] control_socket, tun_name, tun_offload and retransmit_* take effect only when the daemon restarts"
                .to_string();
            tracing::warn!("{n}");
            notes.push(n);
        }
        // Keep the socket path the daemon actually serves (it may come from
        // --socket), so status shows the truth.
        let mut new = new;
        new.daemon.control_socket = old.daemon.control_socket.clone();
        if !diff.manual.is_empty() || !diff.connections.is_empty() {
            self.dataplane.apply(&diff, &old, &new).map_err(|e| {
                let msg = format!("the data plane could not apply the new config: {e}");
                tracing::error!("{msg}");
                msg
            })?;
        }
        if diff.is_empty() {
            tracing::info!("reload: nothing changed");
        }
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = new;
        Ok(ReloadReport {
            manual: changes(diff.manual),
            connections: changes(diff.connections),
            notes,
        })
    }
}

fn changes(d: NameDiff) -> NameChanges {
    NameChanges {
        added: d.added,
        removed: d.removed,
        changed: d.changed,
        unchanged: d.unchanged,
    }
}

fn log_diff(d: &ConfigDiff) {
    for (what, n) in [("manual SA", &d.manual), ("connection", &d.connections)] {
        for name in &n.added {
            tracing::info!("reload: {what} `{name}` added");
        }
        for name in &n.removed {
            tracing::info!("reload: {what} `{name}` removed");
        }
        for name in &n.changed {
            tracing::info!("reload: {what} `{name}` changed");
        }
        for name in &n.unchanged {
            tracing::debug!("reload: {what} `{name}` unchanged, left as it is");
        }
    }
}

impl Handler for Daemon {
    fn handle(&self, req: Request) -> Response {
        tracing::debug!(?req, "control request");
        match req {
            Request::Ping => Response::ok("pong"),
            Request::Status => Response::ok(self.status()),
            Request::SaList => Response::ok(self.dataplane.sas()),
            Request::PolicyList => Response::ok(self.dataplane.policies()),
            Request::Reload => match self.reload() {
                Ok(r) => Response::ok(r),
                Err(e) => Response::err(e),
            },
            Request::Up { name } => match self.dataplane.up(&name) {
                Ok(r) => Response::ok(r),
                Err(e) => Response::err(e),
            },
            Request::Down { name } => match self.dataplane.down(&name) {
                Ok(r) => Response::ok(r),
                Err(e) => Response::err(e),
            },
            Request::Stop => {
                tracing::info!("stop requested over the control socket");
                self.stop.notify_one();
                Response::ok("stopping")
            }
        }
    }
}

/// Sets up tracing to stderr: `RUST_LOG` if set, else the config's level.
fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not for journald.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Checks /dev/net/tun and says what to do when it is missing.
fn tun_problem() -> Option<String> {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun") {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(
            "TUN is unavailable: /dev/net/tun does not exist; load the module (`modprobe tun`) or, in a container, pass the device (e.g. `--device /dev/net/tun`)".into(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(
            "TUN is unavailable: permission denied on /dev/net/tun; run as root (or with CAP_NET_ADMIN)".into(),
        ),
        Err(e) => Some(format!("TUN is unavailable: cannot open /dev/net/tun: {e}")),
    }
}

/// Runs the daemon in the foreground until stopped. `socket` overrides the
/// config's `control_socket`.
pub fn run(config_path: &Path, socket: Option<PathBuf>, dataplane: Box<dyn Dataplane>) -> ExitCode {
    // Reload re-reads this path, so pin it down now in case the working
    // directory means something else later.
    let config_path =
        &std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let mut cfg = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}", e.render());
            eprintln!("palisade: not starting: the config has errors (check it with `palisade check-config {}`)", config_path.display());
            return ExitCode::from(2);
        }
    };
    init_logging(&cfg.daemon.log_level);
    if let Some(s) = socket {
        cfg.daemon.control_socket = s;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        tracing::warn!(
            "not running as root: the data plane needs root (or CAP_NET_ADMIN and CAP_NET_RAW)"
        );
    }
    if let Some(p) = tun_problem() {
        if dataplane.requires_tun() {
            tracing::error!("{p}");
            eprintln!("palisade: {p}");
            return ExitCode::from(1);
        }
        tracing::warn!("{p}");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("palisade: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(serve(cfg, dataplane))
}

async fn serve(cfg: Config, dataplane: Box<dyn Dataplane>) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let sock = match ControlSocket::bind(&cfg.daemon.control_socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!("cannot install signal handlers");
            sock.remove();
            return ExitCode::from(1);
        }
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    if let Err(e) = dataplane.start(&cfg) {
        tracing::error!("the data plane could not start: {e}");
        sock.remove();
        return ExitCode::from(1);
    }
    tracing::info!(
        config = %cfg.path.display(),
        socket = %sock.path.display(),
        dataplane = dataplane.name(),
        "palisade daemon started: {}",
        cfg.summary()
    );
    let daemon = Arc::new(Daemon {
        config: Mutex::new(cfg),
        dataplane,
        started: Instant::now(),
        stop: Notify::new(),
        reload_lock: Mutex::new(()),
    });
    loop {
        tokio::select! {
            accepted = sock.listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let h: Arc<dyn Handler> = daemon.clone();
                    tokio::spawn(server::serve_connection(stream, h));
                }
                Err(e) => tracing::warn!("control socket accept failed: {e}"),
            },
            _ = hup.recv() => {
                tracing::info!("SIGHUP received");
                let _ = daemon.reload();
            }
            _ = term.recv() => { tracing::info!("SIGTERM received, stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT received, stopping"); break; }
            _ = daemon.stop.notified() => break,
        }
    }
    // Let a `stop` response reach its client before the socket goes away.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    daemon.dataplane.shutdown();
    sock.remove();
    tracing::info!("palisade daemon stopped");
    ExitCode::SUCCESS
}
