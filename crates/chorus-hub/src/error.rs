//! `HubError`: every way resolving a model source can fail.
//!
//! Messages are self-contained (the underlying cause is written into the
//! message, not exposed through `source()`), so the CLI can print them as they
//! are. Errors about reaching the hub end with a hint on passing a local file.

use std::path::PathBuf;

/// An error from parsing or resolving a [`ModelSource`](crate::ModelSource).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The `--model` value could not be parsed (`input` is the value as given).
    #[error("invalid model source `{input}`: {reason}")]
    InvalidSource {
        /// The text that was parsed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A local model path does not exist.
    #[error("model file {} does not exist", path.display())]
    LocalMissing {
        /// The path as given.
        path: PathBuf,
    },

    /// A local model path exists but is not a regular file (a directory, say).
    #[error("model path {} is not a file", path.display())]
    LocalNotFile {
        /// The path as given.
        path: PathBuf,
    },

    /// The configured hub endpoint does not form a valid URL with the file.
    #[error("invalid hub endpoint `{endpoint}`: {cause}")]
    InvalidEndpoint {
        /// The endpoint from [`HubConfig::endpoint`](crate::HubConfig::endpoint).
        endpoint: String,
        /// Why the URL is invalid.
        cause: String,
    },

    /// The hub or its CDN could not be reached (connection refused, DNS
    /// failure, connect timeout, no answer to a request), and the file is not
    /// in the cache. A transfer that breaks off once bytes flow is
    /// [`HubError::Interrupted`].
    #[error("cannot download {model}: {cause}; pass a local GGUF file with --model PATH.gguf")]
    Unreachable {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
        /// The transport error with its chain of causes.
        cause: String,
    },

    /// Offline mode is on and the file is not in the cache.
    #[error(
        "cannot download {model}: offline mode is on and it is not in the cache; pass a local GGUF file with --model PATH.gguf"
    )]
    OfflineNotCached {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
    },

    /// HTTP 401 without a more specific error code from the hub.
    #[error("{}", unauthorized_message(model, *token_sent))]
    Unauthorized {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
        /// Whether an `Authorization` header was sent (then the token was rejected).
        token_sent: bool,
    },

    /// The repository is gated (hub error code `GatedRepo`, on 401 or 403).
    #[error(
        "{model} is in a gated repository: accept its conditions on the hub with your account, then set HF_TOKEN to an access token of that account"
    )]
    Gated {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
    },

    /// HTTP 403 without a more specific error code from the hub.
    #[error("access to {model} is forbidden: set HF_TOKEN to an access token with read access to {repo}")]
    Forbidden {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
        /// `OWNER/REPO`.
        repo: String,
    },

    /// HTTP 404, or the hub's `RepoNotFound`, `RevisionNotFound` or
    /// `EntryNotFound` error codes (the hub answers 401 `RepoNotFound` for a
    /// repository that does not exist or is private).
    #[error("{model} not found: no {what}; check the repository, file and revision names")]
    NotFound {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
        /// What is missing, e.g. `repository Qwen/Nope (set HF_TOKEN if it is private)`.
        what: String,
    },

    /// Any other unsuccessful HTTP status from the hub or its CDN.
    #[error(
        "cannot download {model}: {url} answered HTTP {status}{detail}; pass a local GGUF file with --model PATH.gguf"
    )]
    Http {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
        /// The URL requested (without query string, which may hold a CDN signature).
        url: String,
        /// The HTTP status code.
        status: u16,
        /// `": "` followed by the hub's `X-Error-Message`, or empty.
        detail: String,
    },

    /// The hub's answer lacks what a download needs (an ETag) or carries
    /// headers that cannot be used (a size that is not a number, an ETag or
    /// commit that is not a safe file name).
    #[error("the hub sent unusable metadata for {model}: {reason}")]
    BadMetadata {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
        /// What is wrong.
        reason: String,
    },

    /// The transfer broke off after it had begun (the connection was cut or
    /// stalled past the read timeout). The bytes received are kept in the
    /// cache's `.incomplete` file, and the next attempt resumes from them.
    #[error(
        "the download of {model} broke off after {received} of {} bytes: {cause}; run it again to resume from there",
        total.map_or_else(|| "an unknown number of".to_owned(), |t| t.to_string())
    )]
    Interrupted {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
        /// Bytes of the file now in the partial download (kept ones included).
        received: u64,
        /// The file's full size in bytes, when the hub announced it.
        total: Option<u64>,
        /// The transport error with its chain of causes.
        cause: String,
    },

    /// The downloaded file does not have the size the hub announced
    /// (`X-Linked-Size` or `Content-Length`); the partial file was removed.
    #[error("downloaded {model} has {actual} bytes, expected {expected}; the bad file was removed")]
    SizeMismatch {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
        /// Size announced by the hub, in bytes.
        expected: u64,
        /// Size received (at least; the transfer stops once it passes `expected`).
        actual: u64,
    },

    /// The downloaded file's SHA-256 differs from the hub's ETag (LFS files
    /// have the SHA-256 of their content as ETag); the file was removed.
    #[error("downloaded {model} has sha256 {actual}, expected {expected}; the bad file was removed")]
    HashMismatch {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
        /// Expected digest, 64 lower-case hex digits.
        expected: String,
        /// Digest of the received bytes, 64 lower-case hex digits.
        actual: String,
    },

    /// A file-system operation on the cache failed.
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        /// What was being done, e.g. `write`.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating-system error.
        cause: std::io::Error,
    },

    /// [`remove_cached`](crate::remove_cached) was asked for a hub file that
    /// has no snapshot entry in the cache.
    #[error("{model} is not in the model cache {}: nothing was removed; list the cached models to see their names", cache_dir.display())]
    NotCached {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
        /// The cache that was searched.
        cache_dir: PathBuf,
    },

    /// [`remove_cached`](crate::remove_cached) found the file's blob being
    /// downloaded by another task or process (its lock is held).
    #[error("{model} is being downloaded right now: nothing was removed; try again once the download has ended")]
    DownloadInProgress {
        /// The source, written as `hf:OWNER/REPO/FILE[@REVISION]`.
        model: String,
    },

    /// A file given as a GGUF model does not start with the `GGUF` magic.
    #[error("{} is not a GGUF file (it does not start with `GGUF`): pass the model's .gguf file", path.display())]
    NotGguf {
        /// The file that was read.
        path: PathBuf,
    },

    /// A model id cannot name a package or an installed model's folder.
    #[error("invalid model id `{id}`: {reason}")]
    InvalidModelId {
        /// The id as given (or as read from a package's manifest).
        id: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The registry entry given to [`package::export`](crate::package::export)
    /// is not a TOML table.
    #[error("the registry entry is not a TOML table: {cause}; pass the model's entry as TOML text")]
    InvalidEntry {
        /// The TOML parser's message.
        cause: String,
    },

    /// The GGUF file changed (size or content) while it was being exported;
    /// the half-written package was removed.
    #[error("{} changed while it was being exported: nothing was written; export again once nothing writes to it", path.display())]
    ChangedDuringExport {
        /// The GGUF file.
        path: PathBuf,
    },

    /// A package cannot be read as one: not a tar file, no `manifest.json`
    /// first, a manifest that does not parse or lists the wrong files, an
    /// unknown format version, a file the manifest lists but the tar lacks.
    /// Nothing was imported.
    #[error("{} is not a usable chorus model package: {reason}; nothing was imported; export the model again", package.display())]
    InvalidPackage {
        /// The package file.
        package: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A package holds an entry that import refuses: a path that would leave
    /// the target folder, a link or other non-regular file, a name the
    /// package format does not have, or a name that appears twice. Nothing
    /// was imported.
    #[error("{} holds a refused entry `{entry}`: {reason}; nothing was imported; do not import packages from unknown sources", package.display())]
    UnsafePackageEntry {
        /// The package file.
        package: PathBuf,
        /// The entry's path as written in the tar (lossily decoded).
        entry: String,
        /// Why it is refused.
        reason: String,
    },

    /// A file in a package does not have the size its manifest records.
    /// Nothing was imported.
    #[error("{file} in {} has {actual} bytes but its manifest says {expected}: the package is damaged; nothing was imported; copy or export it again", package.display())]
    PackageSizeMismatch {
        /// The package file.
        package: PathBuf,
        /// The file's name inside the package, e.g. `model.gguf`.
        file: String,
        /// Size in the manifest, in bytes.
        expected: u64,
        /// Size in the tar, in bytes.
        actual: u64,
    },

    /// A file in a package does not have the SHA-256 its manifest records.
    /// Nothing was imported.
    #[error("{file} in {} has sha256 {actual} but its manifest says {expected}: the package is damaged; nothing was imported; copy or export it again", package.display())]
    PackageHashMismatch {
        /// The package file.
        package: PathBuf,
        /// The file's name inside the package, e.g. `model.gguf`.
        file: String,
        /// Digest in the manifest, 64 lower-case hex digits.
        expected: String,
        /// Digest of the bytes in the tar, 64 lower-case hex digits.
        actual: String,
    },

    /// The package's model is already installed: its folder exists.
    #[error("model `{id}` is already installed at {}: nothing was imported; remove that folder first to replace it", dir.display())]
    AlreadyInstalled {
        /// The model id from the package's manifest.
        id: String,
        /// The folder that exists, `{into_dir}/{id}`.
        dir: PathBuf,
    },

    /// The HTTP client could not be built (TLS set-up failed).
    #[error("cannot build the HTTP client: {cause}")]
    Client {
        /// The error from reqwest.
        cause: String,
    },
}

impl HubError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        HubError::Io { action, path: path.into(), cause }
    }
}

fn unauthorized_message(model: &str, token_sent: bool) -> String {
    if token_sent {
        format!("the hub rejected HF_TOKEN for {model}: check that the token is valid and has read access")
    } else {
        format!("the hub requires authentication for {model}: set HF_TOKEN to a Hugging Face access token")
    }
}

/// Describes a reqwest transport error briefly: `HOST[:PORT]: ` followed by
/// the error's chain of causes without the full URL (which may carry a CDN
/// signature), e.g. `huggingface.co: error sending request: client error
/// (Connect): tcp connect error: Connection refused (os error 111)`.
pub(crate) fn transport_cause(err: reqwest::Error) -> String {
    let host = err.url().and_then(|url| {
        let host = url.host_str()?;
        Some(match url.port() {
            Some(port) => format!("{host}:{port}: "),
            None => format!("{host}: "),
        })
    });
    format!("{}{}", host.unwrap_or_default(), error_chain(&err.without_url()))
}

/// Writes an error and its chain of sources as `outer: inner: innermost`
/// (reqwest's own message names only the URL; the cause is in the chain).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(inner) = next {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = inner.source();
    }
    text
}
