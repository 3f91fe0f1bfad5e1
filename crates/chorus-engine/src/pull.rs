//! Pulling a model from where the engine cannot see: the [`ModelPuller`] trait, which the
//! binary implements over its hub client (download, register in the pool, remember it; and
//! removing and copying what it remembers, Ollama's `/api/delete` and `/api/copy`), the
//! progress it reports ([`PullUpdate`]) and why a pull fails ([`PullError`]). The engine holds
//! at most one puller ([`crate::Engine::set_puller`]); an engine without one refuses pulls
//! with [`PullError::NotSupported`].

use futures::future::BoxFuture;
use tokio::sync::mpsc::UnboundedSender;

use crate::error::{ErrorClass, PublicError};

/// What a pull is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStage {
    /// Bytes are arriving (`completed` of `total`).
    Downloading,
    /// Every byte is in; the file is being synced and checked (size, SHA-256).
    Verifying,
}

/// One progress report of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullUpdate {
    /// The stage.
    pub stage: PullStage,
    /// The blob being fetched, `sha256:HEX` when its name is a digest.
    pub digest: Option<String>,
    /// Its size in bytes, when known.
    pub total: Option<u64>,
    /// Bytes present so far (a resumed download starts at what it had).
    pub completed: u64,
}

impl PullUpdate {
    /// What a [`PullStage::Verifying`] update checks, as Ollama's progress line words it:
    /// `verifying sha256 digest` when the blob is named by its digest, else `verifying size`
    /// (the hub's git-style ETag of a small non-LFS file names no SHA-256).
    #[must_use]
    pub fn verifying_status(&self) -> &'static str {
        if self.digest.is_some() { "verifying sha256 digest" } else { "verifying size" }
    }
}

/// Why a pull was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    /// This engine has no puller (it was built without a model source that pulls).
    #[error("this server cannot pull models; download the file yourself and register it with --model or [[models]]")]
    NotSupported,
    /// The request is at fault: a source that cannot be pulled, an unusable id.
    #[error("{message}")]
    Invalid {
        /// The request field at fault (`source`, `id`).
        param: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// The id is registered already for another model.
    #[error("{0}")]
    Conflict(String),
    /// No registered model has that name.
    #[error("the model `{0}` does not exist")]
    NotFound(String),
    /// The download or the registration failed; the message says what to do (a broken-off
    /// download resumes when the pull is repeated).
    #[error("{0}")]
    Failed(String),
}

impl PullError {
    /// What a client sees of this error.
    pub fn public(&self) -> PublicError {
        let (class, param, code) = match self {
            Self::NotSupported => (ErrorClass::NotSupported, None, Some("not_supported")),
            Self::Invalid { param, .. } => (ErrorClass::InvalidRequest, Some(*param), None),
            Self::Conflict(_) => (ErrorClass::Conflict, Some("id"), Some("model_exists")),
            Self::NotFound(_) => (ErrorClass::NotFound, Some("model"), Some("model_not_found")),
            Self::Failed(_) => (ErrorClass::Unavailable, None, Some("pull_failed")),
        };
        PublicError {
            class,
            message: self.to_string(),
            param: param.map(str::to_owned),
            code,
            retry_after: None,
            context_size: None,
        }
    }
}

/// Fetches a model and registers it in the engine's pool. The binary implements it (the
/// engine knows no hub); the server's `POST /api/v1/models/pull` drives it.
pub trait ModelPuller: Send + Sync + 'static {
    /// Pull `source` and register it as `id` (default: chosen by the puller), reporting
    /// progress into `progress` until the returned future resolves (then the sender is
    /// dropped, so a receiver knows every report is in); resolves to the registered id.
    ///
    /// Refusals that need no download ([`PullError::Invalid`], [`PullError::Conflict`]) should
    /// come before any progress, so a server can answer them with an HTTP error.
    fn pull(
        &self,
        source: String,
        id: Option<String>,
        progress: UnboundedSender<PullUpdate>,
    ) -> BoxFuture<'static, Result<String, PullError>>;

    /// Take the model named `name` out of the pool and out of what the puller remembers,
    /// deleting its downloaded file when no other model uses it; resolves to its id.
    /// The default refuses with [`PullError::NotSupported`].
    fn remove(&self, name: String) -> BoxFuture<'static, Result<String, PullError>> {
        let _ = name;
        Box::pin(std::future::ready(Err(PullError::NotSupported)))
    }

    /// Register the model named `source` again as `destination` (same file and settings),
    /// remembered as the pulled ones are; resolves to the new id. The default refuses with
    /// [`PullError::NotSupported`].
    fn copy(&self, source: String, destination: String) -> BoxFuture<'static, Result<String, PullError>> {
        let _ = (source, destination);
        Box::pin(std::future::ready(Err(PullError::NotSupported)))
    }
}
