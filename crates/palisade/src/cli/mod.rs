//! The `palisade` subcommands other than `selftest`: each returns the process
//! exit code, so `main` stays a dispatcher.
//!
//! Exit codes: 0 success; 1 the daemon is not running, refused, or failed;
//! 2 the config is invalid (or the command line is wrong, which clap reports).

pub mod daemon;
pub mod output;

use crate::config::{Config, DEFAULT_CONTROL_SOCKET};
use crate::control::client::{self, ClientError};
use crate::control::protocol::{PolicyStatus, ReloadReport, SaStatus, Status};
use crate::control::Request;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The socket to talk to: `--socket`, else `PALISADE_SOCKET`, else the default.
pub fn socket_path(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os("PALISADE_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET))
}

/// `palisade check-config FILE`.
pub fn check_config(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                eprintln!("warning: {w}");
            }
            println!("OK: {}", cfg.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            for w in &e.warnings {
                eprintln!("warning: {w}");
            }
            eprint!("{}", e.render());
            let n = e.errors.len();
            eprintln!(
                "FAILED: {n} error{} in {}",
                if n == 1 { "" } else { "s" },
                path.display()
            );
            ExitCode::from(2)
        }
    }
}

/// Sends `req` and hands the data to `show`; prints errors and picks the exit
/// code in one place.
fn call(
    socket: &Path,
    req: Request,
    show: impl FnOnce(serde_json::Value) -> Result<(), String>,
) -> ExitCode {
    match client::request(socket, req) {
        Ok(resp) if resp.ok => match show(resp.data) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("palisade: {e}");
                ExitCode::from(1)
            }
        },
        Ok(resp) => {
            eprintln!(
                "palisade: {}",
                resp.error
                    .unwrap_or_else(|| "the daemon refused the request".into())
            );
            ExitCode::from(1)
        }
        Err(
            e
            @ (ClientError::NotRunning(_) | ClientError::PermissionDenied(_) | ClientError::Io(_)),
        ) => {
            eprintln!("palisade: {e}");
            ExitCode::from(1)
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(v)
        .map_err(|e| format!("unexpected response from the daemon (version mismatch?): {e}"))
}

fn print_json(v: &serde_json::Value) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

pub fn status(socket: &Path, json: bool) -> ExitCode {
    call(socket, Request::Status, |data| {
        if json {
            return print_json(&data);
        }
        let st: Status = decode(data)?;
        print!("{}", output::status(&st));
        Ok(())
    })
}

pub fn sa_list(socket: &Path, json: bool) -> ExitCode {
    call(socket, Request::SaList, |data| {
        if json {
            return print_json(&data);
        }
        let sas: Vec<SaStatus> = decode(data)?;
        print!("{}", output::sas(&sas));
        Ok(())
    })
}

pub fn policy_list(socket: &Path, json: bool) -> ExitCode {
    call(socket, Request::PolicyList, |data| {
        if json {
            return print_json(&data);
        }
        let ps: Vec<PolicyStatus> = decode(data)?;
        print!("{}", output::policies(&ps));
        Ok(())
    })
}

pub fn reload(socket: &Path, json: bool) -> ExitCode {
    call(socket, Request::Reload, |data| {
        if json {
            return print_json(&data);
        }
        let r: ReloadReport = decode(data)?;
        print!("{}", output::reload(&r));
        Ok(())
    })
}

pub fn stop(socket: &Path) -> ExitCode {
    call(socket, Request::Stop, |_| {
        println!("palisade daemon is stopping");
        Ok(())
    })
}

/// `palisade up NAME`: waits until the CHILD_SA is up (or failed).
pub fn up(socket: &Path, name: &str) -> ExitCode {
    call(
        socket,
        Request::Up {
            name: name.to_string(),
        },
        |data| {
            println!("{}", data.as_str().unwrap_or("up"));
            Ok(())
        },
    )
}

/// `palisade down NAME`.
pub fn down(socket: &Path, name: &str) -> ExitCode {
    call(
        socket,
        Request::Down {
            name: name.to_string(),
        },
        |data| {
            println!("{}", data.as_str().unwrap_or("down"));
            Ok(())
        },
    )
}
