//! The CLI side of the control socket: one request, one response, with
//! errors that tell the operator what to do.

use super::protocol::{Request, Response, MAX_LINE};
use crate::config::DEFAULT_CONFIG_PATH;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long the CLI waits for the daemon; a reload that reads key files is
/// the slowest request.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why the CLI could not get an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    NotRunning(String),
    PermissionDenied(String),
    Io(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning(s) | ClientError::PermissionDenied(s) | ClientError::Io(s) => {
                f.write_str(s)
            }
        }
    }
}

/// Sends `req` to the daemon at `socket` and returns its response.
pub fn request(socket: &Path, req: Request) -> Result<Response, ClientError> {
    let s = socket.display();
    let start_hint = format!("start it with `palisade daemon --config {DEFAULT_CONFIG_PATH}`");
    let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            ClientError::NotRunning(format!("palisade daemon is not running (no socket at {s}); {start_hint}"))
        }
        io::ErrorKind::ConnectionRefused => ClientError::NotRunning(format!(
            "palisade daemon is not running (the socket {s} is left over from an earlier run and nobody answers); {start_hint}"
        )),
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(format!(
            "permission denied on {s}: the control socket is root-only; run as root (e.g. `sudo palisade ...`)"
        )),
        _ => ClientError::Io(format!("cannot connect to the palisade daemon at {s}: {e}")),
    })?;
    let io_err =
        |e: io::Error| ClientError::Io(format!("talking to the palisade daemon at {s}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io_err)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io_err)?;
    let mut line = serde_json::to_vec(&req).map_err(|e| ClientError::Io(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io_err)?;
    let mut reader = BufReader::new(stream.take(MAX_LINE as u64 + 1));
    let mut resp = Vec::new();
    reader.read_until(b'\n', &mut resp).map_err(io_err)?;
    if resp.is_empty() {
        return Err(ClientError::Io(format!(
            "the palisade daemon at {s} closed the connection without answering (is it stopping?)"
        )));
    }
    serde_json::from_slice(&resp).map_err(|e| {
        ClientError::Io(format!(
            "the palisade daemon at {s} sent a response that is not valid JSON: {e}"
        ))
    })
}
