//! [`ControlClient`]: the client of a server's control socket (a Unix socket,
//! mode 0600): `GET /status` and `POST /shutdown`, over reqwest's Unix socket
//! transport. Its errors say whether a server runs at all, so `chorus ctl`
//! can tell the user what to do.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chorus_proto::control::{ShutdownAccepted, Status};
use chorus_proto::openai::ErrorResponse;
use serde::de::DeserializeOwned;

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// There is no socket at the path.
    #[error("no chorus server is running (no control socket at {}); start one with `chorus serve`", .0.display())]
    NotRunning(PathBuf),
    /// The socket is there but nothing listens: its server died.
    #[error(
        "no chorus server is running (the control socket {} is stale: nothing answers on it); start one with `chorus serve`",
        .0.display()
    )]
    Stale(PathBuf),
    /// The socket belongs to someone else.
    #[error(
        "permission denied on the control socket {}; it belongs to the user who started the server: run `chorus ctl` as that user",
        .0.display()
    )]
    PermissionDenied(PathBuf),
    /// The server did not answer in time.
    #[error("the server on the control socket {} did not answer within the timeout", .0.display())]
    Timeout(PathBuf),
    /// Another connection error.
    #[error("cannot talk to the server on the control socket {}: {reason}", path.display())]
    Unreachable {
        /// The socket.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// The server answered with an error object.
    #[error("the server answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error's `message`.
        message: String,
    },
    /// The answer was not what the control API promises.
    #[error("unexpected answer on the control socket: {0}")]
    Protocol(String),
}

impl ControlError {
    /// True when no server runs behind the socket (missing or stale).
    pub fn is_not_running(&self) -> bool {
        matches!(self, Self::NotRunning(_) | Self::Stale(_))
    }
}

/// A client of one control socket.
#[derive(Debug, Clone)]
pub struct ControlClient {
    http: reqwest::Client,
    path: PathBuf,
}

impl ControlClient {
    /// A client for the socket at `path`; each call may take up to `timeout`.
    ///
    /// # Errors
    /// [`ControlError::Protocol`] when the HTTP client cannot be built.
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> Result<Self, ControlError> {
        let path = path.into();
        let http = reqwest::Client::builder()
            .unix_socket(path.as_path())
            .timeout(timeout)
            .build()
            .map_err(|e| ControlError::Protocol(e.to_string()))?;
        Ok(Self { http, path })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `GET /status`.
    ///
    /// # Errors
    /// [`ControlError`]; [`ControlError::is_not_running`] when no server runs.
    pub async fn status(&self) -> Result<Status, ControlError> {
        self.call(self.http.get(Self::url("/status"))).await
    }

    /// `POST /shutdown`: the server answers, then shuts down gracefully as on
    /// SIGTERM. It is still stopping when this returns.
    ///
    /// # Errors
    /// [`ControlError`].
    pub async fn shutdown(&self) -> Result<ShutdownAccepted, ControlError> {
        self.call(self.http.post(Self::url("/shutdown"))).await
    }

    /// The host is never resolved: every connection goes to the socket.
    fn url(path: &str) -> String {
        format!("http://chorus{path}")
    }

    async fn call<T: DeserializeOwned>(&self, rb: reqwest::RequestBuilder) -> Result<T, ControlError> {
        if let Err(e) = std::fs::symlink_metadata(&self.path) {
            return Err(self.io_error(&e));
        }
        let response = rb.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.transport(&e))?;
        if !status.is_success() {
            let message = match serde_json::from_slice::<ErrorResponse>(&body) {
                Ok(e) => e.error.message,
                Err(_) => String::from_utf8_lossy(&body).chars().take(200).collect(),
            };
            return Err(ControlError::Api { status: status.as_u16(), message });
        }
        serde_json::from_slice(&body).map_err(|e| ControlError::Protocol(e.to_string()))
    }

    fn io_error(&self, e: &std::io::Error) -> ControlError {
        let path = self.path.clone();
        match e.kind() {
            ErrorKind::NotFound => ControlError::NotRunning(path),
            ErrorKind::ConnectionRefused => ControlError::Stale(path),
            ErrorKind::PermissionDenied => ControlError::PermissionDenied(path),
            _ => ControlError::Unreachable { path, reason: e.to_string() },
        }
    }

    fn transport(&self, e: &reqwest::Error) -> ControlError {
        if e.is_timeout() {
            return ControlError::Timeout(self.path.clone());
        }
        // The innermost I/O error says what happened to the connection.
        let mut io = None;
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason = s.to_string();
            if let Some(found) = s.downcast_ref::<std::io::Error>() {
                io = Some(found);
            }
            source = s.source();
        }
        match io {
            Some(io) if e.is_connect() => self.io_error(io),
            _ if e.is_connect() => ControlError::Unreachable { path: self.path.clone(), reason },
            _ => ControlError::Protocol(format!("{e}: {reason}")),
        }
    }
}
