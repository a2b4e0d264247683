//! The CLI against a real daemon process: start it with a temp config and a
//! temp socket, ask for status, edit the config and reload, stop it, and check
//! exit codes and messages (including "not running").

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");
const K36: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223";

fn manual(name: &str, spi: u32) -> String {
    format!(
        "[[manual]]\nname = \"{name}\"\nlocal_addr = \"192.0.2.1\"\nremote_addr = \"192.0.2.2\"\nspi_in = {spi}\nspi_out = {}\nesp_proposal = \"aes256gcm16\"\nenc_key_in = \"{K36}\"\nenc_key_out = \"{K36}\"\nlocal_ts = [\"10.1.0.0/16\"]\nremote_ts = [\"10.2.0.0/16\"]\n",
        spi + 1
    )
}

struct Daemon {
    child: Child,
    socket: PathBuf,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(config: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("palisade.toml");
        std::fs::write(&cfg, config).unwrap();
        // A subdirectory the daemon must create (mode 0700) and remove.
        let socket = dir.path().join("run").join("palisade.sock");
        let child = Command::new(BIN)
            .args(["daemon", "--dataplane", "none", "--config"])
            .arg(&cfg)
            .arg("--socket")
            .arg(&socket)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            socket,
            config: cfg,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !d.socket.exists() {
            assert!(
                Instant::now() < deadline,
                "daemon did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// Waits for exit and returns (exit success, stderr).
    fn wait(mut self) -> (bool, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                for l in BufReader::new(self.child.stderr.take().unwrap()).lines() {
                    err.push_str(&l.unwrap());
                    err.push('\n');
                }
                return (st.success(), err);
            }
            assert!(Instant::now() < deadline, "daemon did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn status_reload_stop() {
    let d = Daemon::start(&format!(
        "{}{}",
        manual("alpha", 0x1000),
        manual("beta", 0x2000)
    ));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode");
    let dmode = std::fs::metadata(d.socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dmode, 0o700, "socket directory mode");

    let o = d.cli(&["status", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sas = v["sas"].as_array().unwrap();
    assert_eq!(sas.len(), 4, "two pairs, two directions each");
    assert_eq!(sas[0]["name"], "alpha");
    assert_eq!(sas[0]["direction"], "in");
    assert_eq!(sas[0]["spi"], 0x1000);
    assert_eq!(sas[0]["algorithms"], "aes256gcm16");
    assert_eq!(sas[0]["packets"], 0);
    assert_eq!(sas[0]["drops"]["replay"], 0);
    assert_eq!(v["policies"].as_array().unwrap().len(), 4);
    assert_eq!(v["daemon"]["pid"], d.child.id());
    // `--dataplane none` moves no packets: no data-plane counters.
    assert_eq!(v["data_plane"], serde_json::json!({}), "{v}");
    let text = String::from_utf8_lossy(&o.stdout).to_lowercase();
    assert!(
        !text.contains("0405060708090a0b"),
        "keys must not appear in status"
    );

    let o = d.cli(&["status"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(s.contains("Security associations (4):"), "{s}");
    assert!(s.contains("spi 0x00001000"), "{s}");
    assert!(s.contains("10.1.0.0/16 -> 10.2.0.0/16"), "{s}");
    assert!(!s.contains("Data plane:"), "{s}");
    assert!(!s.contains("0405060708090a0b"));

    let o = d.cli(&["sa", "list", "--json"]);
    assert!(o.status.success());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let o = d.cli(&["policy", "list"]);
    assert!(stdout(&o).starts_with("Policies (4):"), "{}", stdout(&o));

    // Edit: drop beta, change alpha's SPI, add gamma.
    std::fs::write(
        &d.config,
        format!("{}{}", manual("alpha", 0x1100), manual("gamma", 0x3000)),
    )
    .unwrap();
    let o = d.cli(&["reload", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["manual"]["added"], serde_json::json!(["gamma"]));
    assert_eq!(r["manual"]["removed"], serde_json::json!(["beta"]));
    assert_eq!(r["manual"]["changed"], serde_json::json!(["alpha"]));
    let o = d.cli(&["reload"]);
    assert!(
        stdout(&o).contains("manual SAs: added -; removed -; changed -; unchanged alpha, gamma"),
        "{}",
        stdout(&o)
    );

    // A broken config is refused and the old one keeps running.
    std::fs::write(
        &d.config,
        format!("{}spi_inn = 1\n", manual("alpha", 0x1100)),
    )
    .unwrap();
    let o = d.cli(&["reload"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("reload refused, the running config is unchanged"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("palisade.toml:12:1: `spi_inn`: unknown key"),
        "{}",
        stderr(&o)
    );
    let o = d.cli(&["sa", "list", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        4
    );

    let o = d.cli(&["stop"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("stopping"));
    let socket = d.socket.clone();
    let (ok, log) = d.wait();
    assert!(ok, "{log}");
    assert!(
        log.contains("palisade daemon started: 0 connections, 2 manual SAs"),
        "{log}"
    );
    assert!(log.contains("manual SA `gamma` added"), "{log}");
    assert!(log.contains("manual SA `beta` removed"), "{log}");
    assert!(log.contains("palisade daemon stopped"), "{log}");
    assert!(!log.contains("0405060708090a0b"), "keys must not be logged");
    assert!(!socket.exists(), "socket removed on stop");
    assert!(
        !socket.parent().unwrap().exists(),
        "directory the daemon created removed on stop"
    );
}

fn signal(d: &Daemon, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(d.child.id() as i32, sig) }, 0);
}

#[test]
fn sighup_reloads_and_sigterm_stops_cleanly() {
    let d = Daemon::start(&manual("alpha", 0x1000));
    std::fs::write(
        &d.config,
        format!("{}{}", manual("alpha", 0x1000), manual("beta", 0x2000)),
    )
    .unwrap();
    signal(&d, libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = d.cli(&["sa", "list", "--json"]);
        let n = serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .map(|v| v.as_array().map_or(0, |a| a.len()));
        if n.ok() == Some(4) {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&d, libc::SIGTERM);
    let socket = d.socket.clone();
    let (ok, log) = d.wait();
    assert!(ok, "{log}");
    assert!(log.contains("SIGHUP received"), "{log}");
    assert!(log.contains("SIGTERM received, stopping"), "{log}");
    assert!(!socket.exists());
}

#[test]
fn sigint_stops() {
    let d = Daemon::start(&manual("alpha", 0x1000));
    signal(&d, libc::SIGINT);
    let socket = d.socket.clone();
    let (ok, log) = d.wait();
    assert!(ok, "{log}");
    assert!(!socket.exists());
}

#[test]
fn second_daemon_on_same_socket_is_refused() {
    let d = Daemon::start(&manual("alpha", 0x1000));
    let o = Command::new(BIN)
        .args(["daemon", "--dataplane", "none", "--config"])
        .arg(&d.config)
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("another palisade daemon is already running"),
        "{}",
        stderr(&o)
    );
    assert!(
        d.socket.exists(),
        "the running daemon's socket is untouched"
    );
}

#[test]
fn not_running_messages() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["sa", "list"],
        &["policy", "list"],
        &["reload"],
        &["stop"],
    ] {
        let o = Command::new(BIN)
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&o),
            format!(
                "palisade: palisade daemon is not running (no socket at {}); start it with `palisade daemon --config /etc/palisade/palisade.toml`\n",
                sock.display()
            )
        );
    }
    // A stale socket file nobody listens on.
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    drop(l);
    let o = Command::new(BIN)
        .arg("--socket")
        .arg(&sock)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is not running (the socket"),
        "{}",
        stderr(&o)
    );
    // PALISADE_SOCKET works like --socket.
    let o = Command::new(BIN)
        .env("PALISADE_SOCKET", dir.path().join("x.sock"))
        .arg("status")
        .output()
        .unwrap();
    assert!(stderr(&o).contains("x.sock"), "{}", stderr(&o));
}

#[test]
fn daemon_with_bad_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[[manual]]\nname = \"x\"\n").unwrap();
    let o = Command::new(BIN)
        .args(["daemon", "--dataplane", "none", "--config"])
        .arg(&cfg)
        .arg("--socket")
        .arg(dir.path().join("s"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("bad.toml:1:1: `local_addr`: is required"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("not starting"), "{}", stderr(&o));
}

#[test]
fn check_config_ok_and_failed() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, manual("alpha", 0x1000)).unwrap();
    let o = Command::new(BIN)
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "OK: 0 connections, 1 manual SA\n");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, manual("alpha", 17)).unwrap();
    let o = Command::new(BIN)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "error: {}:5:10: manual SA `alpha`: `spi_in`: 17 is reserved",
            bad.display()
        )),
        "{e}"
    );
    assert!(e.contains("5 | spi_in = 17"), "{e}");
    assert!(
        e.contains(&format!(
            "{}:6:11: manual SA `alpha`: `spi_out`: 18 is reserved",
            bad.display()
        )) && e.ends_with(&format!("FAILED: 2 errors in {}\n", bad.display())),
        "{e}"
    );

    let o = Command::new(BIN)
        .arg("check-config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot read the config"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn raw_protocol_over_the_socket() {
    let d = Daemon::start(&manual("alpha", 0x1000));
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.write_all(b"{\"cmd\":\"ping\"}\n{\"cmd\":\"dance\"}\nnot json\n{\"cmd\":\"policy_list\"}\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let mut lines = Vec::new();
    for _ in 0..4 {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        lines.push(serde_json::from_str::<serde_json::Value>(&l).unwrap());
    }
    assert_eq!(lines[0], serde_json::json!({"ok": true, "data": "pong"}));
    assert_eq!(lines[1]["ok"], false);
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .contains("commands: ping, status, sa_list, policy_list, reload, stop"));
    assert_eq!(lines[2]["ok"], false);
    assert_eq!(lines[3]["data"].as_array().unwrap().len(), 2);
    let _ = Path::new("");
}

/// A non-root user asking a root daemon gets "run as root". Needs root to
/// switch to `nobody`; skipped otherwise.
#[test]
fn permission_denied_says_run_as_root() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run the CLI as another user");
        return;
    }
    let d = Daemon::start(&manual("alpha", 0x1000));
    let o = match Command::new(BIN)
        .uid(65534)
        .gid(65534)
        .arg("--socket")
        .arg(&d.socket)
        .arg("status")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped: cannot run as nobody: {e}");
            return;
        }
    };
    if o.status.code() == Some(126)
        || stderr(&o).contains("Permission denied (os error 13)")
            && o.stdout.is_empty()
            && !stderr(&o).contains("palisade:")
    {
        eprintln!("skipped: nobody cannot execute the test binary");
        return;
    }
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "palisade: permission denied on {}: the control socket is root-only; run as root (e.g. `sudo palisade ...`)\n",
            d.socket.display()
        )
    );
}
