//! Failures: verification, the hub's refusals, an unreachable endpoint.

use axum::http::StatusCode;
use chorus_hub::{HubConfig, HubError, NoProgress, resolve};

use crate::fake_hub::{Entry, FakeHub, sha256_hex};
use crate::{Recorder, blobs_dir, config, content, hub_source};

const REPO: &str = "acme/tiny-GGUF";
const FILE: &str = "tiny.gguf";

/// Everything under the repository's cache folder that is a file or link.
fn cached_files(config: &HubConfig) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&config.cache_dir.join("models--acme--tiny-GGUF"), &mut out);
    out
}

async fn resolve_err(hub: &FakeHub, dir: &std::path::Path) -> (HubError, HubConfig) {
    let config = config(&hub.endpoint, dir);
    let err = resolve(&hub_source(REPO, FILE, "main"), &config, &mut NoProgress).await.err();
    (err.expect("resolve should fail"), config)
}

#[tokio::test]
async fn announced_size_larger_than_served_is_an_error_and_leaves_no_file() {
    let hub = FakeHub::start().await;
    let bytes = content(10_000);
    let entry = Entry::Lfs { etag: sha256_hex(&bytes), linked_size: 10_007, content: bytes, honor_range: true };
    hub.add(REPO, "main", FILE, entry);
    let dir = tempfile::tempdir().expect("tempdir");

    let (err, config) = resolve_err(&hub, dir.path()).await;

    assert!(matches!(err, HubError::SizeMismatch { expected: 10_007, actual: 10_000, .. }), "{err:?}");
    assert_eq!(cached_files(&config), Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn served_more_than_announced_is_an_error_and_leaves_no_file() {
    let hub = FakeHub::start().await;
    let bytes = content(10_000);
    let entry = Entry::Lfs { etag: sha256_hex(&bytes), linked_size: 9_000, content: bytes, honor_range: true };
    hub.add(REPO, "main", FILE, entry);
    let dir = tempfile::tempdir().expect("tempdir");

    let (err, config) = resolve_err(&hub, dir.path()).await;

    assert!(matches!(err, HubError::SizeMismatch { expected: 9_000, .. }), "{err:?}");
    assert_eq!(cached_files(&config), Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn sha256_mismatch_is_an_error_and_removes_the_file() {
    let hub = FakeHub::start().await;
    let bytes = content(10_000);
    let wrong = sha256_hex(b"something else");
    let entry = Entry::Lfs { etag: wrong.clone(), linked_size: 10_000, content: bytes.clone(), honor_range: true };
    hub.add(REPO, "main", FILE, entry);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut progress = Recorder::default();
    let config = config(&hub.endpoint, dir.path());

    let err = resolve(&hub_source(REPO, FILE, "main"), &config, &mut progress).await.err();

    match err {
        Some(HubError::HashMismatch { expected, actual, .. }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, sha256_hex(&bytes));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    assert_eq!(cached_files(&config), Vec::<std::path::PathBuf>::new());
    assert!(!blobs_dir(&config, REPO).join(&wrong).exists());
    assert_eq!(progress.finishes, 1, "finish must be reported after a failed transfer");
}

#[tokio::test]
async fn a_resumed_download_with_a_corrupt_kept_part_is_refused_and_the_retry_starts_afresh() {
    let hub = FakeHub::start().await;
    let bytes = content(50_000);
    let etag = sha256_hex(&bytes);
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    let blobs = blobs_dir(&config, REPO);
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let mut kept = bytes[..20_000].to_vec();
    kept[1_234] ^= 0x01;
    std::fs::write(blobs.join(format!("{etag}.incomplete")), &kept).expect("write partial");
    let source = hub_source(REPO, FILE, "main");

    let err = resolve(&source, &config, &mut NoProgress).await.err();

    let mut whole = kept.clone();
    whole.extend_from_slice(&bytes[20_000..]);
    match &err {
        Some(HubError::HashMismatch { expected, actual, .. }) => {
            assert_eq!(*expected, etag);
            assert_eq!(*actual, sha256_hex(&whole));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    assert!(err.map(|e| e.to_string()).unwrap_or_default().contains("the bad file was removed"));
    assert_eq!(cached_files(&config), Vec::<std::path::PathBuf>::new(), "nothing placed, nothing kept");
    assert_eq!(hub.cdn_gets()[0].range.as_deref(), Some("bytes=20000-"));

    let path = resolve(&source, &config, &mut NoProgress).await.expect("retry");

    let gets = hub.cdn_gets();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[1].range, None, "the retry starts from the first byte");
    assert_eq!(sha256_hex(&std::fs::read(&path).expect("read")), etag);
}

#[tokio::test]
async fn missing_file_is_a_not_found_error() {
    let hub = FakeHub::start().await;
    let dir = tempfile::tempdir().expect("tempdir");

    let (err, _) = resolve_err(&hub, dir.path()).await;

    assert!(matches!(&err, HubError::NotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("check the") && message.contains(FILE), "{message}");
}

#[tokio::test]
async fn bare_404_is_a_not_found_error() {
    let hub = FakeHub::start().await;
    hub.add(REPO, "main", FILE, Entry::Error { status: StatusCode::NOT_FOUND, code: None });
    let dir = tempfile::tempdir().expect("tempdir");

    let (err, _) = resolve_err(&hub, dir.path()).await;

    assert!(matches!(err, HubError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn gated_repo_asks_for_hf_token() {
    let hub = FakeHub::start().await;
    hub.add(REPO, "main", FILE, Entry::Error { status: StatusCode::UNAUTHORIZED, code: Some("GatedRepo") });
    let dir = tempfile::tempdir().expect("tempdir");

    let (err, _) = resolve_err(&hub, dir.path()).await;

    assert!(matches!(err, HubError::Gated { .. }), "{err:?}");
    assert!(err.to_string().contains("HF_TOKEN"));
}

#[tokio::test]
async fn unauthorized_and_forbidden_are_distinct() {
    let hub = FakeHub::start().await;
    hub.add(REPO, "main", FILE, Entry::Error { status: StatusCode::UNAUTHORIZED, code: None });
    hub.add(REPO, "main", "other.gguf", Entry::Error { status: StatusCode::FORBIDDEN, code: None });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());

    let unauthorized = resolve(&hub_source(REPO, FILE, "main"), &config, &mut NoProgress).await.err();
    let forbidden = resolve(&hub_source(REPO, "other.gguf", "main"), &config, &mut NoProgress).await.err();

    assert!(matches!(unauthorized, Some(HubError::Unauthorized { token_sent: false, .. })), "{unauthorized:?}");
    assert!(matches!(forbidden, Some(HubError::Forbidden { .. })), "{forbidden:?}");
}

#[tokio::test]
async fn unreachable_endpoint_suggests_a_local_file() {
    // Bind and drop a listener to get a port with nothing listening.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&format!("http://127.0.0.1:{port}"), dir.path());

    let err = resolve(&hub_source(REPO, FILE, "main"), &config, &mut NoProgress).await.err();

    assert!(matches!(err, Some(HubError::Unreachable { .. })), "{err:?}");
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.starts_with(&format!("cannot download hf:{REPO}/{FILE}: ")), "{message}");
    assert!(message.contains("--model"), "{message}");
}
