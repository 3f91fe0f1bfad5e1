//! The control socket: a Unix socket only its owner can open (mode 0600) where
//! `chorus ctl` asks `GET /status` and `POST /shutdown`. The caller binds a
//! [`ControlSocket`] (as it binds the TCP listener) and hands it to
//! [`crate::run_with_control`].
//!
//! Binding: when the path exists, a connection is tried first. Something
//! answering means a live server holds it ([`ServerError::ControlSocketInUse`]);
//! a refused connection means a stale file left by a server that died, which
//! is removed. A path that is not a socket is never removed. The socket is
//! bound under a temporary name in the same directory, made 0600, then
//! hard-linked to its final name, so no one ever sees it with the umask's mode,
//! and two servers starting together cannot both take the name. The file is
//! removed when the server stops, if it is still this server's.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chorus_engine::SessionStatus;
use chorus_proto::chorus::SlotsHealth;
use chorus_proto::control::{ModelStatus, ServerState, SessionsStatus, ShutdownAccepted, Status};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{ApiError, AppState, ServerError};

/// How long a live server may take to accept a probing connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What is at a control socket path.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// Nothing.
    Free,
    /// A socket nobody listens on.
    Stale,
}

/// Look at `path` without changing anything.
async fn probe(path: &Path) -> Result<Probe, ServerError> {
    let io_error = |source| ServerError::ControlSocket { path: path.to_owned(), source };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Probe::Free),
        Err(e) => return Err(io_error(e)),
        Ok(meta) if !meta.file_type().is_socket() => return Err(ServerError::ControlSocketNotASocket(path.to_owned())),
        Ok(_) => {}
    }
    match tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await {
        // A listener that is too busy to accept is still alive.
        Ok(Ok(_)) | Err(_) => Err(ServerError::ControlSocketInUse(path.to_owned())),
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => Ok(Probe::Stale),
        Ok(Err(e)) if e.kind() == ErrorKind::NotFound => Ok(Probe::Free),
        Ok(Err(e)) => Err(io_error(e)),
    }
}

/// A bound control socket, not serving yet. Dropping it removes its file.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    file: SocketFile,
}

/// The socket's file; removed on drop if it is still the one this server bound.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    /// Device and inode of the bound socket: a later server may have replaced
    /// the file (after this one stopped answering), and its file must stay.
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the control socket");
        }
    }
}

impl ControlSocket {
    /// Check that `path` can be taken, changing nothing: a server calls this
    /// before it spends time loading a model, and binds after.
    ///
    /// # Errors
    /// [`ServerError::ControlSocketInUse`] when a live server answers there,
    /// [`ServerError::ControlSocketNotASocket`] when something else is there,
    /// [`ServerError::ControlSocket`] when it cannot be checked.
    pub async fn check(path: &Path) -> Result<(), ServerError> {
        probe(path).await.map(drop)
    }

    /// Bind `path` with mode 0600, replacing a stale socket there; its
    /// directory is created (mode 0700) when missing. Connections wait
    /// until [`crate::run_with_control`] serves it.
    ///
    /// # Errors
    /// As [`ControlSocket::check`]; [`ServerError::ControlSocket`] when binding fails.
    pub async fn bind(path: &Path) -> Result<Self, ServerError> {
        let io_error = |source| ServerError::ControlSocket { path: path.to_owned(), source };
        let name = path.file_name().ok_or_else(|| io_error(ErrorKind::InvalidInput.into()))?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_error)?;
        if probe(path).await? == Probe::Stale {
            tracing::info!(path = %path.display(), "replacing a stale control socket");
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(io_error(e)),
                _ => {}
            }
        }
        let temp = dir.join(format!(".{}.{}", name.to_string_lossy(), std::process::id()));
        let _ = std::fs::remove_file(&temp);
        let listener = UnixListener::bind(&temp).map_err(io_error)?;
        let linked = std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::hard_link(&temp, path));
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => {}
            // Another server took the name since the probe.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(ServerError::ControlSocketInUse(path.to_owned()));
            }
            Err(e) => return Err(io_error(e)),
        }
        let meta = std::fs::symlink_metadata(path).map_err(io_error)?;
        Ok(Self { listener, file: SocketFile { path: path.to_owned(), id: (meta.dev(), meta.ino()) } })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Serve the control API until `stop` is cancelled, then remove the file.
    pub(crate) fn serve(self, state: ControlState, stop: CancellationToken) -> JoinHandle<()> {
        let Self { listener, file } = self;
        tracing::info!(path = %file.path.display(), "control socket listening");
        tokio::spawn(async move {
            let served = axum::serve(listener, routes(state)).with_graceful_shutdown(stop.cancelled_owned()).await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the control socket failed");
            }
            drop(file);
        })
    }
}

/// What the control handlers reach.
#[derive(Clone)]
pub(crate) struct ControlState {
    pub(crate) app: AppState,
    /// Base URL of the HTTP API.
    pub(crate) url: Arc<str>,
    /// Cancelled by `POST /shutdown`; the server then shuts down as on SIGTERM.
    pub(crate) shutdown: CancellationToken,
}

fn routes(state: ControlState) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/shutdown", post(shutdown))
        .fallback(crate::error::not_found)
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .with_state(state)
}

async fn status(State(state): State<ControlState>) -> Result<Json<Status>, ApiError> {
    let engine = &state.app.engine;
    let mut sessions = SessionsStatus { total: 0, busy: 0, queued_prompts: 0 };
    for session in engine.store().list_sessions().await? {
        sessions.total += 1;
        sessions.busy += u64::from(session.status == SessionStatus::Busy);
        sessions.queued_prompts += u64::from(engine.queue_length(&session.id));
    }
    let stats = engine.stats();
    let models = engine
        .models()
        .into_iter()
        .filter_map(|m| m.info)
        .map(|m| ModelStatus {
            id: m.id,
            architecture: m.architecture,
            path: m.path.display().to_string(),
            n_ctx: m.n_ctx,
            n_ctx_slot: m.n_ctx_slot,
            n_parallel: m.n_parallel,
            n_params: m.n_params,
            size: m.size,
        })
        .collect();
    Ok(Json(Status {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        state: if state.shutdown.is_cancelled() { ServerState::ShuttingDown } else { ServerState::Running },
        url: state.url.to_string(),
        uptime_s: engine.uptime_s(),
        requests_total: state.app.requests.load(Ordering::Relaxed),
        queue_depth: sessions.queued_prompts + u64::from(stats.queued),
        sessions,
        slots: SlotsHealth { total: stats.slots_total, busy: stats.slots_busy, queued: stats.queued },
        models,
    }))
}

async fn shutdown(State(state): State<ControlState>) -> (StatusCode, Json<ShutdownAccepted>) {
    if !state.shutdown.is_cancelled() {
        tracing::info!("shutdown asked for on the control socket");
    }
    // The graceful shutdown lets this answer finish before the connection closes.
    state.shutdown.cancel();
    (StatusCode::ACCEPTED, Json(ShutdownAccepted { state: ServerState::ShuttingDown, pid: std::process::id() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub").join("c.sock");
        assert_eq!(probe(&path).await.expect("probe"), Probe::Free);

        let first = ControlSocket::bind(&path).await.expect("bind");
        let mode = std::fs::metadata(&path).expect("socket").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(ControlSocket::bind(&path).await, Err(ServerError::ControlSocketInUse(_))));

        // Closing the listener leaves the file: stale.
        let ControlSocket { listener, file } = first;
        drop(listener);
        std::mem::forget(file);
        // Other tests in this process spawn children: one between its fork and
        // its exec holds a copy of every descriptor, the listener's too, for a
        // moment. The socket is stale once that copy is gone.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match probe(&path).await {
                Ok(Probe::Stale) => break,
                Err(ServerError::ControlSocketInUse(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => panic!("a closed listener's socket is stale, got {other:?}"),
            }
        }
        let second = ControlSocket::bind(&path).await.expect("rebind over a stale socket");
        drop(second);
        assert!(!path.exists(), "the socket file is removed with its server");
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_socket_is_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "keep me").expect("write");
        assert!(matches!(ControlSocket::bind(&path).await, Err(ServerError::ControlSocketNotASocket(_))));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "keep me");
    }

    #[tokio::test]
    async fn a_replaced_socket_file_is_not_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.sock");
        let first = ControlSocket::bind(&path).await.expect("bind");
        // Another server replaced the file meanwhile.
        std::fs::remove_file(&path).expect("remove");
        let _other = std::os::unix::net::UnixListener::bind(&path).expect("bind another");
        drop(first);
        assert!(path.exists(), "the other server's socket stays");
    }
}
