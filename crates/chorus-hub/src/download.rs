//! Fetching one blob into the cache: a per-blob file lock, resuming a
//! `.incomplete` file with `Range: bytes=N-`, checking the size and (for LFS
//! files, whose ETag is the SHA-256 of the content) the digest, and renaming
//! the finished file into place.

use std::fmt::Write as _;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use reqwest::header::{self, HeaderMap};
use reqwest::{Client, StatusCode, Url};
use sha2::{Digest, Sha256};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::cache::{RepoCache, create_parent};
use crate::error::transport_cause;
use crate::remote::{FileMetadata, status_error, with_token};
use crate::{DownloadProgress, HubError, HubFile};

/// Everything one blob download needs.
pub(crate) struct BlobRequest<'a> {
    pub(crate) client: &'a Client,
    pub(crate) cache: &'a RepoCache,
    pub(crate) file: &'a HubFile,
    pub(crate) metadata: &'a FileMetadata,
    /// Sent only when the content URL is on the hub's own host.
    pub(crate) token: Option<&'a str>,
}

/// Makes sure `blobs/{etag}` holds the verified file, downloading it unless a
/// blob of the expected size is already there. The caller holds the blob's
/// [`lock`], so two processes never write the same `.incomplete` file.
pub(crate) async fn ensure_blob(
    req: &BlobRequest<'_>,
    progress: &mut dyn DownloadProgress,
) -> Result<PathBuf, HubError> {
    let etag = &req.metadata.etag;
    let blob = req.cache.blob(etag);
    if let Ok(meta) = tokio::fs::metadata(&blob).await {
        if meta.is_file() && req.metadata.size.is_none_or(|size| size == meta.len()) {
            tracing::debug!(blob = %blob.display(), "blob already cached");
            return Ok(blob);
        }
        tracing::warn!(blob = %blob.display(), found = meta.len(), expected = ?req.metadata.size, "cached blob has the wrong size; downloading again");
        tokio::fs::remove_file(&blob).await.map_err(|e| HubError::io("remove", &blob, e))?;
    }
    let incomplete = req.cache.incomplete(etag);
    create_parent(&incomplete).await?;
    let mut started = false;
    let result = transfer(req, &incomplete, progress, &mut started).await;
    if started {
        progress.finish();
    }
    result?;
    tokio::fs::rename(&incomplete, &blob).await.map_err(|e| HubError::io("rename into", &blob, e))?;
    Ok(blob)
}

/// Takes an exclusive lock on `path` (created if needed), waiting on a
/// blocking thread while another process holds it. The lock lasts as long as
/// the returned file is open.
pub(crate) async fn lock(path: &Path) -> Result<std::fs::File, HubError> {
    create_parent(path).await?;
    let owned = path.to_path_buf();
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&owned)?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                tracing::info!(lock = %owned.display(), "another process is downloading this file; waiting for it");
                fs4::FileExt::lock(&file)?;
            }
            Err(fs4::TryLockError::Error(e)) => return Err(e),
        }
        Ok::<_, std::io::Error>(file)
    })
    .await;
    match locked {
        Ok(result) => result.map_err(|e| HubError::io("lock", path, e)),
        Err(join) => Err(HubError::io("lock", path, std::io::Error::other(join.to_string()))),
    }
}

/// Downloads into `incomplete`, resuming it when it already holds bytes, and
/// verifies size and digest. On a verification failure the file is removed;
/// on a transport failure it is kept (flushed) for the next attempt.
async fn transfer(
    req: &BlobRequest<'_>,
    incomplete: &Path,
    progress: &mut dyn DownloadProgress,
    started: &mut bool,
) -> Result<(), HubError> {
    let model = req.file.to_string();
    let expected_size = req.metadata.size;
    let expected_sha = sha256_etag(&req.metadata.etag);
    let mut out = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(incomplete)
        .await
        .map_err(|e| HubError::io("open", incomplete, e))?;
    let mut offset = out.metadata().await.map_err(|e| HubError::io("read metadata of", incomplete, e))?.len();
    if expected_size.is_some_and(|size| offset > size) {
        offset = truncate(&mut out, incomplete).await?;
    }
    let mut hasher = match expected_sha {
        Some(_) => Some(hash_prefix(&mut out, incomplete, offset).await?),
        None => None,
    };

    if expected_size != Some(offset) || offset == 0 {
        let mut response = get(req, &model, offset).await?;
        let status = response.status();
        let restart =
            matches!(status, StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE);
        if offset > 0 && restart && !resumes_at(&response, offset) {
            // 200 (range ignored), 416, or a 206 for another range: start over.
            tracing::info!(%status, "server did not resume at byte {offset}; downloading from the start");
            offset = truncate(&mut out, incomplete).await?;
            hasher = hasher.map(|_| Sha256::new());
            if status != StatusCode::OK {
                response = get(req, &model, 0).await?;
            }
        }
        check_status(req, &response)?;
        tracing::info!(%model, size = ?expected_size, resume_at = offset, "downloading");
        out.seek(SeekFrom::Start(offset)).await.map_err(|e| HubError::io("seek in", incomplete, e))?;
        progress.blob(&req.metadata.etag);
        progress.start(&req.file.file, expected_size, offset);
        *started = true;

        let mut written = offset;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    // Keep what arrived so the next attempt resumes from it.
                    out.flush().await.map_err(|e| HubError::io("write", incomplete, e))?;
                    let cause = transport_cause(e);
                    tracing::warn!(%model, received = written, %cause, "download broke off; the partial file is kept");
                    return Err(HubError::Interrupted { model, received: written, total: expected_size, cause });
                }
            };
            written += chunk.len() as u64;
            if let Some(expected) = expected_size.filter(|&size| written > size) {
                drop(out);
                remove(incomplete).await?;
                return Err(HubError::SizeMismatch { model, expected, actual: written });
            }
            out.write_all(&chunk).await.map_err(|e| HubError::io("write", incomplete, e))?;
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&chunk);
            }
            progress.advance(chunk.len() as u64);
        }
        out.flush().await.map_err(|e| HubError::io("write", incomplete, e))?;
    } else {
        // A previous run received every byte but stopped before the rename.
        progress.blob(&req.metadata.etag);
        progress.start(&req.file.file, expected_size, offset);
        *started = true;
    }
    progress.verifying();
    out.sync_all().await.map_err(|e| HubError::io("sync", incomplete, e))?;
    let actual = out.metadata().await.map_err(|e| HubError::io("read metadata of", incomplete, e))?.len();
    drop(out);

    if let Some(expected) = expected_size.filter(|&size| size != actual) {
        remove(incomplete).await?;
        return Err(HubError::SizeMismatch { model, expected, actual });
    }
    if let (Some(expected), Some(hasher)) = (expected_sha, hasher) {
        let actual = hex(&hasher.finalize());
        if actual != expected {
            remove(incomplete).await?;
            return Err(HubError::HashMismatch { model, expected, actual });
        }
    }
    Ok(())
}

/// Sends the content request, with `Range: bytes={offset}-` when resuming.
async fn get(req: &BlobRequest<'_>, model: &str, offset: u64) -> Result<reqwest::Response, HubError> {
    let url: &Url = &req.metadata.location;
    let mut request = req.client.get(url.clone()).header(header::ACCEPT_ENCODING, "identity");
    if offset > 0 {
        request = request.header(header::RANGE, format!("bytes={offset}-"));
    }
    with_token(request, req.token)
        .send()
        .await
        .map_err(|e| HubError::Unreachable { model: model.to_owned(), cause: transport_cause(e) })
}

/// Whether a response continues the file at `offset`: a 206 whose
/// `Content-Range` starts there.
fn resumes_at(response: &reqwest::Response, offset: u64) -> bool {
    response.status() == StatusCode::PARTIAL_CONTENT && content_range_start(response.headers()) == Some(offset)
}

/// The first byte of `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

fn check_status(req: &BlobRequest<'_>, response: &reqwest::Response) -> Result<(), HubError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(status_error(req.file, response.url(), status, response.headers(), req.token.is_some()))
}

async fn truncate(out: &mut File, path: &Path) -> Result<u64, HubError> {
    out.set_len(0).await.map_err(|e| HubError::io("truncate", path, e))?;
    Ok(0)
}

async fn remove(path: &Path) -> Result<(), HubError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(HubError::io("remove", path, e)),
    }
}

/// Hashes the first `len` bytes of a partial download being resumed.
async fn hash_prefix(out: &mut File, path: &Path, len: u64) -> Result<Sha256, HubError> {
    let mut hasher = Sha256::new();
    if len == 0 {
        return Ok(hasher);
    }
    out.seek(SeekFrom::Start(0)).await.map_err(|e| HubError::io("seek in", path, e))?;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left).map_or(buffer.len(), |left| left.min(buffer.len()));
        let read = out.read(&mut buffer[..want]).await.map_err(|e| HubError::io("read", path, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        left -= read as u64;
    }
    Ok(hasher)
}

/// The expected SHA-256 when the ETag is one: 64 hex digits (LFS files on the
/// hub), lower-cased.
pub(crate) fn sha256_etag(etag: &str) -> Option<String> {
    (etag.len() == 64 && etag.bytes().all(|b| b.is_ascii_hexdigit())).then(|| etag.to_ascii_lowercase())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_start_is_parsed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_RANGE, header::HeaderValue::from_static("bytes 100-199/200"));
        assert_eq!(content_range_start(&headers), Some(100));
        headers.insert(header::CONTENT_RANGE, header::HeaderValue::from_static("bytes */200"));
        assert_eq!(content_range_start(&headers), None);
    }

    #[test]
    fn only_64_hex_etags_are_digests() {
        let digest = "A".repeat(64);
        assert_eq!(sha256_etag(&digest), Some("a".repeat(64)));
        assert_eq!(sha256_etag(&"a".repeat(40)), None);
        assert_eq!(sha256_etag(&"g".repeat(64)), None);
    }

    #[test]
    fn hex_of_sha256_matches_known_digest() {
        let digest = Sha256::digest(b"abc");
        assert_eq!(hex(&digest), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
