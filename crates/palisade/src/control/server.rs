//! The daemon side of the control socket: binding it safely and serving
//! requests through a [`Handler`].

use super::protocol::{Request, Response, MAX_LINE};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Answers one request. The daemon implements it; tests can too.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> Response;
}

/// A bound control socket, and what to remove when the daemon stops.
pub struct ControlSocket {
    pub listener: UnixListener,
    pub path: PathBuf,
    /// The directory, if this daemon created it.
    created_dir: Option<PathBuf>,
}

/// Why the socket could not be bound, phrased for the operator.
#[derive(Debug)]
pub struct BindError(pub String);

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl ControlSocket {
    /// Binds `path` with mode 0600 in a directory of mode 0700 (created if
    /// missing), so only root (the daemon's user) can talk to the daemon. A
    /// socket file left by a crashed daemon is replaced; one that answers
    /// means another daemon runs, which is refused.
    pub fn bind(path: &Path) -> Result<ControlSocket, BindError> {
        let root_hint = |e: &io::Error| {
            if e.kind() == io::ErrorKind::PermissionDenied {
                "; run as root (the control socket and the data plane need it)"
            } else {
                ""
            }
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut created_dir = None;
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    BindError(format!(
                        "cannot create the control socket directory {}: {e}{}",
                        dir.display(),
                        root_hint(&e)
                    ))
                })?;
            created_dir = Some(dir.to_path_buf());
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BindError(format!(
                    "another palisade daemon is already running (it answers on {}); stop it with `palisade stop`",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(|e| {
                BindError(format!(
                    "cannot remove the stale socket {}: {e}{}",
                    path.display(),
                    root_hint(&e)
                ))
            })?;
        }
        // Bind under a umask that leaves no group/other bits, so there is no
        // moment in which the socket is reachable by others; then set 0600
        // explicitly in case the umask was ignored.
        // SAFETY: umask only swaps the process file-mode mask.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old) };
        let listener = bound.map_err(|e| {
            BindError(format!(
                "cannot bind the control socket {}: {e}{}",
                path.display(),
                root_hint(&e)
            ))
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| BindError(format!("cannot set mode 0600 on {}: {e}", path.display())))?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            created_dir,
        })
    }

    /// Removes the socket (and the directory if this daemon made it and it is
    /// empty): a clean stop leaves nothing behind.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(d) = &self.created_dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Serves one client connection: a request per line, a response per line,
/// until the client closes.
pub async fn serve_connection(stream: UnixStream, handler: Arc<dyn Handler>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("control client read failed: {e}");
                return;
            }
        };
        if n == 0 {
            return;
        }
        let resp = if line.len() > MAX_LINE {
            Response::err(format!("request longer than {MAX_LINE} bytes"))
        } else {
            // Some requests wait (`up` until the CHILD_SA is there): answer
            // them off the runtime's only thread so others are still served.
            let (h, l) = (handler.clone(), line.clone());
            tokio::task::spawn_blocking(move || handle_line(&l, h.as_ref()))
                .await
                .unwrap_or_else(|e| Response::err(format!("internal error: {e}")))
        };
        let mut out = serde_json::to_vec(&resp)
            .unwrap_or_else(|_| br#"{"ok":false,"error":"encoding"}"#.to_vec());
        out.push(b'\n');
        if write.write_all(&out).await.is_err() || line.len() > MAX_LINE {
            return;
        }
    }
}

use tokio::io::AsyncReadExt as _;

/// Parses one request line and answers it.
pub fn handle_line(line: &[u8], handler: &dyn Handler) -> Response {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Response::err(format!(
            "empty request; send e.g. {{\"cmd\":\"status\"}} (commands: {})",
            Request::NAMES
        ));
    }
    match serde_json::from_str::<Request>(text) {
        Ok(req) => handler.handle(req),
        Err(e) => Response::err(format!(
            "bad request ({e}); send one JSON object per line such as {{\"cmd\":\"status\"}} (commands: {})",
            Request::NAMES
        )),
    }
}
