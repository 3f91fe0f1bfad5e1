//! Integration tests of `chorus_hub`: `resolve` and `pull` against a local
//! imitation of the Hugging Face hub and its CDN (see `fake_hub`), the cache
//! inventory, and model packages.

mod fake_hub;
mod hub_download;
mod hub_errors;
mod inventory;
mod local;
mod package;

use std::path::{Path, PathBuf};

use chorus_hub::{DownloadProgress, HubConfig, HubFile, ModelSource};

/// A config pointing at `endpoint` with a fresh cache under `dir`.
fn config(endpoint: &str, dir: &Path) -> HubConfig {
    HubConfig { endpoint: endpoint.to_owned(), cache_dir: dir.join("cache"), token: None, offline: false }
}

fn hub_source(repo: &str, file: &str, revision: &str) -> ModelSource {
    ModelSource::Hub(HubFile { repo: repo.to_owned(), file: file.to_owned(), revision: revision.to_owned() })
}

/// `n` bytes of a recognisable, non-repeating-looking pattern.
fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + i / 251) % 256) as u8).collect()
}

fn blobs_dir(config: &HubConfig, repo: &str) -> PathBuf {
    config.cache_dir.join(format!("models--{}", repo.replace('/', "--"))).join("blobs")
}

/// Records every progress call.
#[derive(Debug, Default)]
struct Recorder {
    starts: Vec<(String, Option<u64>, u64)>,
    advanced: u64,
    finishes: usize,
}

impl DownloadProgress for Recorder {
    fn start(&mut self, file: &str, total: Option<u64>, already: u64) {
        self.starts.push((file.to_owned(), total, already));
    }
    fn advance(&mut self, bytes: u64) {
        self.advanced += bytes;
    }
    fn finish(&mut self) {
        self.finishes += 1;
    }
}
