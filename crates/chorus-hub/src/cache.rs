//! The on-disk cache, laid out like huggingface_hub's
//! (<https://huggingface.co/docs/huggingface_hub/guides/manage-cache>):
//!
//! ```text
//! {cache_dir}/models--OWNER--REPO/
//!     blobs/{etag}                 the file contents, named by the hub's ETag
//!     blobs/{etag}.incomplete      a download in progress (resumed if found)
//!     refs/{revision}              the commit hash a branch or tag resolved to
//!     snapshots/{commit}/{file}    relative symlink to ../../blobs/{etag}
//! {cache_dir}/.locks/models--OWNER--REPO/{etag}.lock
//! ```
//!
//! Snapshot entries are relative symbolic links on Unix, as huggingface_hub
//! makes them; elsewhere a hard link, or a copy where hard links fail. When the
//! hub sends no `X-Repo-Commit`, the revision name stands in for the commit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::source::is_safe_name;
use crate::{HubError, HubFile};

/// The cache folder of one repository.
pub(crate) struct RepoCache {
    /// `{cache_dir}/models--OWNER--REPO`.
    dir: PathBuf,
    /// `{cache_dir}/.locks/models--OWNER--REPO`.
    locks: PathBuf,
}

impl RepoCache {
    /// `repo` must be a validated `OWNER/REPO`.
    pub(crate) fn new(cache_dir: &Path, repo: &str) -> Self {
        let folder = format!("models--{}", repo.replace('/', "--"));
        RepoCache { dir: cache_dir.join(&folder), locks: cache_dir.join(".locks").join(folder) }
    }

    /// `{cache_dir}/models--OWNER--REPO`.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// `blobs/{etag}`; `etag` must be a safe file name.
    pub(crate) fn blob(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    /// `blobs/{etag}.incomplete`.
    pub(crate) fn incomplete(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{etag}.incomplete"))
    }

    /// The lock file guarding the download of `etag`.
    pub(crate) fn lock_file(&self, etag: &str) -> PathBuf {
        self.locks.join(format!("{etag}.lock"))
    }

    /// `snapshots/{commit}/{file}`, with the file's `/`-separated segments.
    pub(crate) fn snapshot(&self, commit: &str, file: &str) -> PathBuf {
        let mut path = self.dir.join("snapshots").join(commit);
        path.extend(file.split('/'));
        path
    }

    /// `refs/{revision}` (a revision like `refs/pr/1` makes subfolders).
    pub(crate) fn ref_file(&self, revision: &str) -> PathBuf {
        let mut path = self.dir.join("refs");
        path.extend(revision.split('/'));
        path
    }

    /// The cached copy of `file` at its revision, if there is one: for a
    /// commit hash `snapshots/{hash}/{file}`; for a branch or tag the commit
    /// recorded in `refs/{revision}`; failing that `snapshots/{revision}/{file}`.
    /// A dangling link counts as absent.
    pub(crate) async fn cached(&self, file: &HubFile) -> Option<PathBuf> {
        let mut candidates = Vec::with_capacity(2);
        if !is_commit_hash(&file.revision)
            && let Ok(text) = tokio::fs::read_to_string(self.ref_file(&file.revision)).await
        {
            let commit = text.trim();
            if is_safe_name(commit) {
                candidates.push(self.snapshot(commit, &file.file));
            }
        }
        candidates.push(self.snapshot(&file.revision, &file.file));
        for path in candidates {
            if tokio::fs::metadata(&path).await.is_ok_and(|meta| meta.is_file()) {
                return Some(path);
            }
        }
        None
    }

    /// Records that `revision` resolved to `commit` (nothing when they are equal).
    pub(crate) async fn write_ref(&self, revision: &str, commit: &str) -> Result<(), HubError> {
        if revision == commit {
            return Ok(());
        }
        let path = self.ref_file(revision);
        create_parent(&path).await?;
        let temp = unique_temp(&path);
        tokio::fs::write(&temp, commit).await.map_err(|e| HubError::io("write", &temp, e))?;
        tokio::fs::rename(&temp, &path).await.map_err(|e| HubError::io("rename into", &path, e))
    }

    /// Makes `snapshots/{commit}/{file}` point at `blobs/{etag}`, replacing
    /// whatever was there, and returns its path.
    pub(crate) async fn link_snapshot(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf, HubError> {
        let link = self.snapshot(commit, file);
        create_parent(&link).await?;
        if tokio::fs::symlink_metadata(&link).await.is_ok() {
            tokio::fs::remove_file(&link).await.map_err(|e| HubError::io("remove", &link, e))?;
        }
        let blob = self.blob(etag);
        place_link(&blob, &link, file, etag).await?;
        Ok(link)
    }
}

#[cfg(unix)]
async fn place_link(_blob: &Path, link: &Path, file: &str, etag: &str) -> Result<(), HubError> {
    // From snapshots/{commit}/{dirs of file}/ up to the repository folder.
    let depth = 1 + file.split('/').count();
    let mut target = PathBuf::new();
    target.extend(std::iter::repeat_n("..", depth));
    target.push("blobs");
    target.push(etag);
    tokio::fs::symlink(&target, link).await.map_err(|e| HubError::io("create symlink", link, e))
}

#[cfg(not(unix))]
async fn place_link(blob: &Path, link: &Path, _file: &str, _etag: &str) -> Result<(), HubError> {
    if tokio::fs::hard_link(blob, link).await.is_ok() {
        return Ok(());
    }
    tokio::fs::copy(blob, link).await.map(drop).map_err(|e| HubError::io("copy into", link, e))
}

/// A sibling of `path` named `{name}.{pid}.{n}.tmp`, unique within this
/// process and across processes, for write-then-rename.
pub(crate) fn unique_temp(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{name}.{}.{n}.tmp", std::process::id()))
}

/// Creates the parent folder of `path` and its ancestors.
pub(crate) async fn create_parent(path: &Path) -> Result<(), HubError> {
    match path.parent() {
        Some(parent) => {
            tokio::fs::create_dir_all(parent).await.map_err(|e| HubError::io("create directory", parent, e))
        }
        None => Ok(()),
    }
}

/// A full git commit hash: 40 lower-case hex digits.
pub(crate) fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_huggingface_hub() {
        let cache = RepoCache::new(Path::new("/c"), "Qwen/Qwen2.5-GGUF");
        assert_eq!(cache.blob("abc"), Path::new("/c/models--Qwen--Qwen2.5-GGUF/blobs/abc"));
        assert_eq!(cache.incomplete("abc"), Path::new("/c/models--Qwen--Qwen2.5-GGUF/blobs/abc.incomplete"));
        assert_eq!(
            cache.snapshot("c0ffee", "d/f.gguf"),
            Path::new("/c/models--Qwen--Qwen2.5-GGUF/snapshots/c0ffee/d/f.gguf")
        );
        assert_eq!(cache.ref_file("refs/pr/1"), Path::new("/c/models--Qwen--Qwen2.5-GGUF/refs/refs/pr/1"));
        assert_eq!(cache.lock_file("abc"), Path::new("/c/.locks/models--Qwen--Qwen2.5-GGUF/abc.lock"));
    }

    #[test]
    fn commit_hashes_are_40_lower_hex() {
        assert!(is_commit_hash("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit_hash("main"));
        assert!(!is_commit_hash("0123456789ABCDEF0123456789abcdef01234567"));
        assert!(!is_commit_hash("0123456789abcdef0123456789abcdef0123456"));
    }
}
