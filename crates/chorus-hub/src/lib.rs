//! Model sources for chorus: a local GGUF path or a file on the Hugging Face
//! hub, and resumable, verified downloads into a cache laid out like
//! huggingface_hub's.
//!
//! [`ModelSource`] is parsed from the `--model` flag; [`resolve`] turns it into
//! a local file path, downloading when needed. The binary builds the
//! [`HubConfig`] (this crate reads no environment variables) and supplies a
//! [`DownloadProgress`].
//!
//! The protocol is the hub's plain `resolve` URL,
//! `{endpoint}/{repo}/resolve/{revision}/{file}`, spoken over reqwest the way
//! huggingface_hub's `hf_hub_download` speaks it: a `HEAD` that does not
//! follow absolute redirects reads `X-Linked-Etag`/`ETag`,
//! `X-Linked-Size`/`Content-Length` and `X-Repo-Commit` from the first
//! answer, and the `GET` goes to its `Location` (the CDN), without the token
//! when that is another host. The `hf-hub` crate is deliberately not used: it
//! brings a large dependency tree for what two requests do.
//!
//! Cache behaviour: a file whose revision already has a snapshot in the cache
//! is returned without any network request (branches are therefore not
//! re-checked for new commits; remove `refs/{branch}` from the cache, or name a
//! commit, to move on). Otherwise the metadata is fetched; a blob already
//! present with the announced size is linked without a download; else the blob
//! is downloaded into `blobs/{etag}.incomplete`, resumed with `Range` when that
//! file exists, checked (size, and SHA-256 for LFS files whose ETag is the
//! digest) and renamed into place. See the `cache` module for the layout.
//! Dropping the future of [`resolve`] mid-download is safe: the bytes written
//! so far stay in the `.incomplete` file and the next call resumes them; a
//! transfer that breaks off returns [`HubError::Interrupted`] with the same
//! effect.
//!
//! [`pull`] is [`resolve`] for a server: its progress arrives as
//! [`PullProgress`] values on a channel ([`ChannelProgress`]), shaped like
//! Ollama's pull progress. [`list_cached`], [`list_partial`] and
//! [`remove_cached`] manage what the cache holds; the [`package`] module
//! moves a model between machines as one verified tar file.

mod cache;
mod config;
mod download;
mod error;
mod inventory;
pub mod package;
mod progress;
mod remote;
mod repo;
mod source;

use std::path::{Path, PathBuf};

use tokio::sync::mpsc::UnboundedSender;

pub use config::{DEFAULT_ENDPOINT, HubConfig, default_cache_dir};
pub use error::HubError;
pub use inventory::{CachedModel, PartialDownload, list_cached, list_partial, remove_cached};
pub use progress::{ChannelProgress, DownloadProgress, NoProgress, PROGRESS_INTERVAL, PullProgress, PullStatus};
pub use repo::{DEFAULT_QUANT, list_files, parse_ollama_name, pick_quant, resolve_ollama_name};
pub use source::{DEFAULT_REVISION, HUB_PREFIX, HubFile, ModelSource};

use cache::RepoCache;
use download::{BlobRequest, ensure_blob};
use remote::{Clients, file_metadata, resolve_url, same_host};

/// Resolves a source to a local file path, downloading it when needed.
///
/// A local source is returned as given once it is known to be a file
/// ([`HubError::LocalMissing`], [`HubError::LocalNotFile`]). A hub source
/// returns the path of its snapshot entry in the cache,
/// `{cache_dir}/models--OWNER--REPO/snapshots/{commit}/{file}`.
///
/// Errors for hub sources: [`HubError::OfflineNotCached`] when offline and not
/// cached; [`HubError::Unreachable`] when the hub or CDN cannot be reached;
/// [`HubError::Unauthorized`], [`HubError::Gated`], [`HubError::Forbidden`],
/// [`HubError::NotFound`] and [`HubError::Http`] for the hub's refusals;
/// [`HubError::Interrupted`] when the transfer breaks off (the bytes so far
/// are kept and the next call resumes them);
/// [`HubError::SizeMismatch`] and [`HubError::HashMismatch`] when the received
/// file fails verification (it is then removed); [`HubError::Io`] for cache
/// file-system failures.
pub async fn resolve(
    source: &ModelSource,
    config: &HubConfig,
    progress: &mut dyn DownloadProgress,
) -> Result<PathBuf, HubError> {
    match source {
        ModelSource::Local(path) => check_local(path).await,
        ModelSource::Hub(file) => resolve_hub(file, config, progress).await,
    }
}

/// [`resolve`] reporting into a channel: sends [`PullProgress`] values
/// through a [`ChannelProgress`] (`downloading` at most ten times a second,
/// `verifying`), then `done` with the file's size once it is in place,
/// including when it was already cached or is a local file (then `done` is
/// the only value). On an error the last value is the `downloading` count
/// where the transfer stopped, and the error is returned as by [`resolve`]
/// (the caller reports it; no `done` follows). A dropped receiver
/// does not stop the download; dropping this future does, leaving a
/// resumable partial file.
pub async fn pull(
    source: &ModelSource,
    config: &HubConfig,
    events: UnboundedSender<PullProgress>,
) -> Result<PathBuf, HubError> {
    let mut progress = ChannelProgress::new(events);
    let path = resolve(source, config, &mut progress).await?;
    let size = tokio::fs::metadata(&path).await.map_err(|e| HubError::io("read metadata of", &path, e))?.len();
    let file = match source {
        ModelSource::Hub(hub) => hub.file.clone(),
        ModelSource::Local(local) => local.display().to_string(),
    };
    progress.done(&file, size);
    Ok(path)
}

async fn check_local(path: &Path) -> Result<PathBuf, HubError> {
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_file() => Ok(path.to_path_buf()),
        Ok(_) => Err(HubError::LocalNotFile { path: path.to_path_buf() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(HubError::LocalMissing { path: path.to_path_buf() }),
        Err(e) => Err(HubError::io("read metadata of", path, e)),
    }
}

async fn resolve_hub(
    file: &HubFile,
    config: &HubConfig,
    progress: &mut dyn DownloadProgress,
) -> Result<PathBuf, HubError> {
    file.validate().map_err(|reason| HubError::InvalidSource { input: file.to_string(), reason })?;
    let cache = RepoCache::new(&config.cache_dir, &file.repo);
    if let Some(path) = cache.cached(file).await {
        tracing::debug!(model = %file, path = %path.display(), "model found in the cache");
        return Ok(path);
    }
    if config.offline {
        return Err(HubError::OfflineNotCached { model: file.to_string() });
    }

    let url = resolve_url(&config.endpoint, file)?;
    let clients = Clients::new()?;
    let metadata = file_metadata(&clients.metadata, config, file, url.clone()).await?;
    // huggingface_hub: a token goes to the hub, never to a CDN on another host.
    let token = config.token.as_deref().filter(|_| same_host(&url, &metadata.location));
    let request = BlobRequest { client: &clients.download, cache: &cache, file, metadata: &metadata, token };
    // Held until the snapshot link and ref are written: a concurrent resolve
    // of the same file waits, then finds the blob and relinks it.
    let _lock = download::lock(&cache.lock_file(&metadata.etag)).await?;
    ensure_blob(&request, progress).await?;

    let commit = metadata.commit.as_deref().unwrap_or(&file.revision);
    let path = cache.link_snapshot(commit, &file.file, &metadata.etag).await?;
    cache.write_ref(&file.revision, commit).await?;
    Ok(path)
}
