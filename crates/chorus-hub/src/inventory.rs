//! What the cache holds and taking things out of it: `list_cached` (every
//! GGUF snapshot entry, with the source that names it), `list_partial` (the
//! `.incomplete` downloads) and `remove_cached` (a snapshot entry, its blob
//! once nothing links to it, and the folders that leaves empty).
//!
//! These functions do blocking file-system work: from async code, call them
//! inside `tokio::task::spawn_blocking`. They read the layout the `cache`
//! module writes; anything else found in the cache folder is skipped.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::cache::{RepoCache, is_commit_hash};
use crate::source::is_safe_name;
use crate::{DEFAULT_REVISION, HUB_PREFIX, HubError, HubFile, ModelSource};

/// A GGUF file in the cache: one snapshot entry
/// `models--OWNER--REPO/snapshots/{revision}/{file}` and the blob it links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    /// The source that resolves to this entry, as `--model` takes it:
    /// `hf:OWNER/REPO/FILE` when the `main` ref points at its commit, else
    /// `@REF` with another ref that does (the first by name), else
    /// `@COMMIT`. Parses into a [`ModelSource`] that
    /// [`remove_cached`] and an offline [`resolve`](crate::resolve) accept.
    pub source: String,
    /// `OWNER/REPO`.
    pub repo: String,
    /// Path of the file inside the repository, `/`-separated.
    pub file: String,
    /// The snapshot folder's name: the commit hash (or the revision name,
    /// when the hub sent no commit).
    pub revision: String,
    /// The branches and tags recorded in `refs/` that resolved to
    /// `revision`, sorted (e.g. `["main"]`; empty for an old snapshot).
    pub refs: Vec<String>,
    /// The snapshot entry, `{cache_dir}/models--OWNER--REPO/snapshots/{revision}/{file}`.
    pub path: PathBuf,
    /// The file's size in bytes.
    pub size: u64,
    /// The blob's name, the hub's ETag (for LFS files the SHA-256 of the
    /// content, 64 hex digits); `None` when the entry is a copy or hard link
    /// rather than a symbolic link (not on Unix).
    pub blob: Option<String>,
    /// When the blob was last modified (about when it was downloaded).
    pub modified: SystemTime,
}

/// A download that has not finished: `models--OWNER--REPO/blobs/{etag}.incomplete`.
/// Resolving the file again resumes it. Which file of the repository it is
/// only the hub knows (the blob is named by its ETag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialDownload {
    /// `OWNER/REPO`.
    pub repo: String,
    /// The blob being downloaded, the hub's ETag (for LFS files the SHA-256
    /// of the content).
    pub blob: String,
    /// The `.incomplete` file.
    pub path: PathBuf,
    /// Bytes received so far.
    pub bytes: u64,
    /// When bytes were last written.
    pub modified: SystemTime,
}

/// Every GGUF file (name ending in `.gguf`, any case) in the cache at
/// `cache_dir`, sorted by `source`. Entries whose blob is missing (dangling
/// links) are skipped; a cache folder that does not exist holds nothing.
///
/// Errors: [`HubError::Io`] when a folder of the cache cannot be read.
pub fn list_cached(cache_dir: &Path) -> Result<Vec<CachedModel>, HubError> {
    let mut models = Vec::new();
    for (repo, dir) in repo_dirs(cache_dir)? {
        let refs = read_refs(&dir.join("refs"))?;
        for (revision, snapshot) in subdirs(&dir.join("snapshots"))? {
            let names: Vec<String> =
                refs.iter().filter(|(_, commit)| **commit == revision).map(|(name, _)| name.clone()).collect();
            for (file, path) in snapshot_entries(&snapshot)? {
                if !file.to_ascii_lowercase().ends_with(".gguf") {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&path) else {
                    tracing::debug!(path = %path.display(), "skipping a dangling snapshot entry");
                    continue;
                };
                let source = source_text(&repo, &file, &revision, &names);
                models.push(CachedModel {
                    source,
                    repo: repo.clone(),
                    file,
                    revision: revision.clone(),
                    refs: names.clone(),
                    size: meta.len(),
                    blob: link_blob(&path),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    path,
                });
            }
        }
    }
    models.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(models)
}

/// Every unfinished download (`blobs/*.incomplete`) in the cache at
/// `cache_dir`, sorted by repository and blob.
///
/// Errors: [`HubError::Io`] when a folder of the cache cannot be read.
pub fn list_partial(cache_dir: &Path) -> Result<Vec<PartialDownload>, HubError> {
    let mut partial = Vec::new();
    for (repo, dir) in repo_dirs(cache_dir)? {
        let blobs = dir.join("blobs");
        for (name, path) in read_dir(&blobs)? {
            let Some(blob) = name.strip_suffix(".incomplete") else { continue };
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if !meta.is_file() {
                continue;
            }
            partial.push(PartialDownload {
                repo: repo.clone(),
                blob: blob.to_owned(),
                bytes: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                path,
            });
        }
    }
    partial.sort_by(|a, b| (&a.repo, &a.blob).cmp(&(&b.repo, &b.blob)));
    Ok(partial)
}

/// Removes a hub file from the cache and returns the bytes freed.
///
/// The snapshot entry the source's revision names goes (a branch or tag is
/// looked up in `refs/` as [`resolve`](crate::resolve) does; other revisions
/// of the file stay), then its blob when no other snapshot entry links to it
/// (the bytes freed are the blob's size; 0 while another revision still
/// uses it), then the folders this leaves empty and the refs that pointed at
/// a snapshot folder that is gone. Partial downloads and lock files stay.
///
/// Errors: [`HubError::InvalidSource`] for a local path or a malformed hub
/// source; [`HubError::NotCached`] when no such entry exists;
/// [`HubError::DownloadInProgress`] when the blob is being downloaded right
/// now; [`HubError::Io`] when a file cannot be removed.
pub fn remove_cached(cache_dir: &Path, source: &ModelSource) -> Result<u64, HubError> {
    let ModelSource::Hub(file) = source else {
        return Err(HubError::InvalidSource {
            input: source.to_string(),
            reason: "only hub models (hf:OWNER/REPO/FILE) are in the cache; delete a local file yourself".to_owned(),
        });
    };
    file.validate().map_err(|reason| HubError::InvalidSource { input: file.to_string(), reason })?;
    let model = file.to_string();
    let cache = RepoCache::new(cache_dir, &file.repo);
    let Some((revision, entry)) = find_entry(&cache, file) else {
        return Err(HubError::NotCached { model, cache_dir: cache_dir.to_path_buf() });
    };
    let blob = link_blob(&entry);
    // Held while removing, so a download of the same blob cannot link a new
    // snapshot to it meanwhile.
    let _lock = match &blob {
        Some(blob) => Some(try_lock(&cache.lock_file(blob), &model)?),
        None => None,
    };

    // A copy (not a link) frees its own bytes.
    let own_size = match &blob {
        None => std::fs::metadata(&entry).map_or(0, |meta| meta.len()),
        Some(_) => 0,
    };
    std::fs::remove_file(&entry).map_err(|e| HubError::io("remove", &entry, e))?;
    let snapshots = cache.dir().join("snapshots");
    let snapshot = snapshots.join(&revision);
    remove_empty_dirs(&entry, &snapshots)?;
    if !snapshot.exists() {
        remove_refs_to(&cache.dir().join("refs"), &revision)?;
    }

    let mut freed = own_size;
    if let Some(blob) = &blob
        && !links_to(&snapshots, blob)?
    {
        let path = cache.blob(blob);
        match std::fs::metadata(&path) {
            Ok(meta) => {
                std::fs::remove_file(&path).map_err(|e| HubError::io("remove", &path, e))?;
                freed += meta.len();
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(HubError::io("read metadata of", &path, e)),
        }
    }
    for dir in ["blobs", "snapshots", "refs", ""] {
        remove_dir_if_empty(&cache.dir().join(dir))?;
    }
    tracing::info!(%model, revision, freed, "removed from the cache");
    Ok(freed)
}

/// The snapshot entry `file` resolves to, as `RepoCache::cached` finds it,
/// but a dangling link counts (it is there to be removed).
fn find_entry(cache: &RepoCache, file: &HubFile) -> Option<(String, PathBuf)> {
    let mut revisions = Vec::with_capacity(2);
    if !is_commit_hash(&file.revision)
        && let Ok(text) = std::fs::read_to_string(cache.ref_file(&file.revision))
    {
        let commit = text.trim();
        if is_safe_name(commit) {
            revisions.push(commit.to_owned());
        }
    }
    revisions.push(file.revision.clone());
    revisions.into_iter().map(|r| (cache.snapshot(&r, &file.file), r)).find_map(|(path, revision)| {
        std::fs::symlink_metadata(&path).ok().filter(|meta| !meta.is_dir()).map(|_| (revision, path))
    })
}

/// Takes the blob's download lock without waiting.
fn try_lock(path: &Path, model: &str) -> Result<std::fs::File, HubError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| HubError::io("create directory", parent, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| HubError::io("open", path, e))?;
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(file),
        Err(fs4::TryLockError::WouldBlock) => Err(HubError::DownloadInProgress { model: model.to_owned() }),
        Err(fs4::TryLockError::Error(e)) => Err(HubError::io("lock", path, e)),
    }
}

/// `hf:OWNER/REPO/FILE`, with `@REF` or `@REVISION` as [`CachedModel::source`] says.
fn source_text(repo: &str, file: &str, revision: &str, refs: &[String]) -> String {
    let suffix = if revision == DEFAULT_REVISION || refs.iter().any(|r| r == DEFAULT_REVISION) {
        String::new()
    } else {
        format!("@{}", refs.first().map_or(revision, String::as_str))
    };
    format!("{HUB_PREFIX}{repo}/{file}{suffix}")
}

/// The blob a snapshot entry links to: the last component of its symlink
/// target, when that is a safe file name.
fn link_blob(entry: &Path) -> Option<String> {
    let target = std::fs::read_link(entry).ok()?;
    let name = target.file_name()?.to_str()?;
    is_safe_name(name).then(|| name.to_owned())
}

/// `(OWNER/REPO, folder)` for every `models--OWNER--REPO` folder.
fn repo_dirs(cache_dir: &Path) -> Result<Vec<(String, PathBuf)>, HubError> {
    let mut repos = Vec::new();
    for (name, path) in read_dir(cache_dir)? {
        let Some(rest) = name.strip_prefix("models--") else { continue };
        let Some((owner, repo)) = rest.split_once("--") else { continue };
        if is_safe_name(owner) && is_safe_name(repo) && path.is_dir() {
            repos.push((format!("{owner}/{repo}"), path));
        }
    }
    Ok(repos)
}

/// Every ref under `refs/`: its `/`-joined name and the commit it holds.
/// Temporary files of an interrupted write are skipped.
fn read_refs(refs: &Path) -> Result<BTreeMap<String, String>, HubError> {
    let mut found = BTreeMap::new();
    let mut stack = vec![(String::new(), refs.to_path_buf())];
    while let Some((prefix, dir)) = stack.pop() {
        for (name, path) in read_dir(&dir)? {
            let full = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            if path.is_dir() {
                stack.push((full, path));
            } else if !name.ends_with(".tmp")
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                found.insert(full, text.trim().to_owned());
            }
        }
    }
    Ok(found)
}

/// The folders inside `dir` (not links to folders), by name.
fn subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, HubError> {
    let entries = read_dir(dir)?;
    Ok(entries.into_iter().filter(|(_, path)| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())).collect())
}

/// Every non-folder entry below a snapshot folder, with its `/`-separated
/// path relative to it.
fn snapshot_entries(snapshot: &Path) -> Result<Vec<(String, PathBuf)>, HubError> {
    let mut found = Vec::new();
    let mut stack = vec![(String::new(), snapshot.to_path_buf())];
    while let Some((prefix, dir)) = stack.pop() {
        for (name, path) in read_dir(&dir)? {
            let full = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => stack.push((full, path)),
                Ok(_) => found.push((full, path)),
                Err(_) => {}
            }
        }
    }
    Ok(found)
}

/// Whether any entry below `snapshots/` is a link to `blob`.
fn links_to(snapshots: &Path, blob: &str) -> Result<bool, HubError> {
    for (_, snapshot) in subdirs(snapshots)? {
        for (_, entry) in snapshot_entries(&snapshot)? {
            if link_blob(&entry).as_deref() == Some(blob) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Removes every file in `refs/` (at any depth) that holds `commit`.
fn remove_refs_to(refs: &Path, commit: &str) -> Result<(), HubError> {
    for (name, held) in read_refs(refs)? {
        if held == commit {
            let mut path = refs.to_path_buf();
            path.extend(name.split('/'));
            std::fs::remove_file(&path).map_err(|e| HubError::io("remove", &path, e))?;
            remove_empty_dirs(&path, refs)?;
        }
    }
    Ok(())
}

/// Removes the empty folders from `path`'s parent up to, but not including, `stop`.
fn remove_empty_dirs(path: &Path, stop: &Path) -> Result<(), HubError> {
    let mut dir = path.parent();
    while let Some(current) = dir {
        if current == stop || !current.starts_with(stop) || !remove_dir_if_empty(current)? {
            break;
        }
        dir = current.parent();
    }
    Ok(())
}

/// Removes `dir` when it is an empty folder; whether it did.
fn remove_dir_if_empty(dir: &Path) -> Result<bool, HubError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::DirectoryNotEmpty) => Ok(false),
        Err(e) => Err(HubError::io("remove", dir, e)),
    }
}

/// The entries of a folder as `(name, path)`, names that are not UTF-8
/// skipped; nothing when the folder does not exist.
fn read_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, HubError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(Vec::new()),
        Err(e) => return Err(HubError::io("read directory", dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| HubError::io("read directory", dir, e))?;
        if let Ok(name) = entry.file_name().into_string() {
            found.push((name, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_text_prefers_main_then_a_ref_then_the_commit() {
        let refs = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(source_text("o/r", "f.gguf", "c0ffee", &refs(&["main", "v1"])), "hf:o/r/f.gguf");
        assert_eq!(source_text("o/r", "f.gguf", "c0ffee", &refs(&["v1"])), "hf:o/r/f.gguf@v1");
        assert_eq!(source_text("o/r", "d/f.gguf", "c0ffee", &[]), "hf:o/r/d/f.gguf@c0ffee");
        // The hub sent no commit: the snapshot is named by the revision.
        assert_eq!(source_text("o/r", "f.gguf", "main", &[]), "hf:o/r/f.gguf");
    }

    #[test]
    fn a_missing_cache_holds_nothing() {
        let missing = Path::new("/nonexistent/chorus-hub-cache");
        assert_eq!(list_cached(missing).ok(), Some(Vec::new()));
        assert_eq!(list_partial(missing).ok(), Some(Vec::new()));
    }
}
