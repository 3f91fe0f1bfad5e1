//! `HubConfig`: the hub settings the binary builds (endpoint, cache directory,
//! token, offline flag), and the platform default cache directory.
//!
//! This crate never reads the environment: the CLI maps `HF_ENDPOINT`,
//! `HF_TOKEN` and its offline flag onto these fields.

use std::fmt;
use std::path::PathBuf;

/// The public Hugging Face hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Settings for reaching the hub and caching its files.
#[derive(Clone)]
pub struct HubConfig {
    /// Base URL of the hub (`http` or `https`; a trailing `/` is ignored),
    /// e.g. [`DEFAULT_ENDPOINT`] or a mirror (the CLI passes `HF_ENDPOINT`).
    pub endpoint: String,
    /// Root of the model cache; repositories live in `models--OWNER--REPO/`
    /// below it (see [`default_cache_dir`]).
    pub cache_dir: PathBuf,
    /// Access token sent as `Authorization: Bearer TOKEN` to the hub (not to
    /// a CDN on another host); needed for gated and private repositories.
    pub token: Option<String>,
    /// Never touch the network: only files already in the cache resolve.
    pub offline: bool,
}

impl HubConfig {
    /// Settings for the public hub with the given cache directory, no token,
    /// online.
    pub fn new(cache_dir: PathBuf) -> Self {
        HubConfig { endpoint: DEFAULT_ENDPOINT.to_owned(), cache_dir, token: None, offline: false }
    }
}

impl fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConfig")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("offline", &self.offline)
            .finish()
    }
}

/// The platform cache directory for models: `chorus/models` under the user's
/// cache directory (`$XDG_CACHE_HOME/chorus/models` or `~/.cache/chorus/models`
/// on Linux, `~/Library/Caches/chorus/models` on macOS,
/// `%LOCALAPPDATA%\chorus\cache\models` on Windows). `None` when no home
/// directory can be found.
pub fn default_cache_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "chorus").map(|dirs| dirs.cache_dir().join("models"))
}
