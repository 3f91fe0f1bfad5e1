//! Downloads from the fake hub: first download, cache hits, resume (of a
//! partial file, after a cut connection, after the future was dropped),
//! shared blobs, plain files, renamed repositories, tokens, offline use, and
//! `pull`'s progress events.

use std::time::Duration;

use axum::http::Method;
use chorus_hub::{ChannelProgress, HubError, NoProgress, PullProgress, PullStatus, pull, resolve};
use tokio::sync::mpsc;

use crate::fake_hub::{COMMIT, Entry, FakeHub, Fault, sha256_hex};
use crate::{Recorder, blobs_dir, config, content, hub_source};

const REPO: &str = "acme/tiny-GGUF";
const FILE: &str = "tiny-q4_k_m.gguf";

#[tokio::test]
async fn downloads_through_the_cdn_into_the_cache_layout() {
    let hub = FakeHub::start().await;
    let bytes = content(300_000);
    let etag = sha256_hex(&bytes);
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    let mut progress = Recorder::default();

    let path = resolve(&hub_source(REPO, FILE, "main"), &config, &mut progress).await.expect("resolve");

    let repo_dir = config.cache_dir.join("models--acme--tiny-GGUF");
    assert_eq!(path, repo_dir.join("snapshots").join(COMMIT).join(FILE));
    assert_eq!(std::fs::read(&path).expect("read snapshot"), bytes);
    assert_eq!(std::fs::read(repo_dir.join("blobs").join(&etag)).expect("read blob"), bytes);
    assert_eq!(std::fs::read_to_string(repo_dir.join("refs/main")).expect("read ref"), COMMIT);
    #[cfg(unix)]
    assert_eq!(
        std::fs::read_link(&path).expect("snapshot is a symlink"),
        std::path::Path::new("../../blobs").join(&etag)
    );
    assert!(!repo_dir.join("blobs").join(format!("{etag}.incomplete")).exists());

    let seen = hub.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].method, Method::HEAD);
    assert_eq!(seen[0].path, format!("/{REPO}/resolve/main/{FILE}"));
    assert_eq!(seen[1].method, Method::GET);
    assert_eq!(seen[1].path, format!("/cdn/{etag}"));
    assert_eq!(seen[1].range, None);

    assert_eq!(progress.starts, vec![(FILE.to_owned(), Some(bytes.len() as u64), 0)]);
    assert_eq!(progress.advanced, bytes.len() as u64);
    assert_eq!(progress.finishes, 1);
}

#[tokio::test]
async fn second_resolve_makes_no_request() {
    let hub = FakeHub::start().await;
    let bytes = content(10_000);
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    let source = hub_source(REPO, FILE, "main");

    let first = resolve(&source, &config, &mut NoProgress).await.expect("first resolve");
    let after_first = hub.requests();
    assert!(after_first > 0);
    let mut progress = Recorder::default();
    let second = resolve(&source, &config, &mut progress).await.expect("second resolve");

    assert_eq!(second, first);
    assert_eq!(hub.requests(), after_first, "{:?}", hub.seen());
    assert!(progress.starts.is_empty());
    assert_eq!(std::fs::read(&second).expect("read"), bytes);
}

#[tokio::test]
async fn resumes_a_partial_download_with_a_range_request() {
    let hub = FakeHub::start().await;
    let bytes = content(200_000);
    let etag = sha256_hex(&bytes);
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    let blobs = blobs_dir(&config, REPO);
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let kept = 73_421;
    std::fs::write(blobs.join(format!("{etag}.incomplete")), &bytes[..kept]).expect("write partial");
    let mut progress = Recorder::default();

    let path = resolve(&hub_source(REPO, FILE, "main"), &config, &mut progress).await.expect("resolve");

    let gets = hub.cdn_gets();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0].range.as_deref(), Some(format!("bytes={kept}-").as_str()));
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    assert_eq!(progress.starts, vec![(FILE.to_owned(), Some(bytes.len() as u64), kept as u64)]);
    assert_eq!(progress.advanced, (bytes.len() - kept) as u64);
}

#[tokio::test]
async fn complete_incomplete_file_is_verified_and_kept_without_download() {
    let hub = FakeHub::start().await;
    let bytes = content(30_000);
    let etag = sha256_hex(&bytes);
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    let blobs = blobs_dir(&config, REPO);
    std::fs::create_dir_all(&blobs).expect("mkdir");
    // A previous run received every byte but stopped before the rename.
    std::fs::write(blobs.join(format!("{etag}.incomplete")), &bytes).expect("write partial");

    let path = resolve(&hub_source(REPO, FILE, "main"), &config, &mut NoProgress).await.expect("resolve");

    assert!(hub.cdn_gets().is_empty(), "{:?}", hub.seen());
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    assert!(!blobs.join(format!("{etag}.incomplete")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_resolves_download_once() {
    let hub = FakeHub::start().await;
    let bytes = content(2_000_000);
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    let source = hub_source(REPO, FILE, "main");

    let (mut p1, mut p2, mut p3) = (NoProgress, NoProgress, NoProgress);
    let (a, b, c) = tokio::join!(
        resolve(&source, &config, &mut p1),
        resolve(&source, &config, &mut p2),
        resolve(&source, &config, &mut p3),
    );

    let a = a.expect("first");
    assert_eq!(b.ok().as_ref(), Some(&a));
    assert_eq!(c.ok().as_ref(), Some(&a));
    assert_eq!(std::fs::read(&a).expect("read"), bytes);
    assert_eq!(hub.cdn_gets().len(), 1, "{:?}", hub.seen());
}

#[tokio::test]
async fn restarts_from_zero_when_the_server_ignores_range() {
    let hub = FakeHub::start().await;
    let bytes = content(50_000);
    let etag = sha256_hex(&bytes);
    let entry = Entry::Lfs { content: bytes.clone(), etag: etag.clone(), linked_size: 50_000, honor_range: false };
    hub.add(REPO, "main", FILE, entry);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    let blobs = blobs_dir(&config, REPO);
    std::fs::create_dir_all(&blobs).expect("mkdir");
    // Garbage that would corrupt the file if it were kept.
    std::fs::write(blobs.join(format!("{etag}.incomplete")), vec![0xAA; 20_000]).expect("write partial");

    let path = resolve(&hub_source(REPO, FILE, "main"), &config, &mut NoProgress).await.expect("resolve");

    let gets = hub.cdn_gets();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0].range.as_deref(), Some("bytes=20000-"));
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
}

#[tokio::test]
async fn existing_blob_of_the_right_size_is_linked_without_download() {
    let hub = FakeHub::start().await;
    let bytes = content(4_096);
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    hub.add(REPO, "v1", FILE, Entry::lfs(&bytes));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());

    resolve(&hub_source(REPO, FILE, "main"), &config, &mut NoProgress).await.expect("resolve main");
    assert_eq!(hub.cdn_gets().len(), 1);
    let mut progress = Recorder::default();
    let path = resolve(&hub_source(REPO, FILE, "v1"), &config, &mut progress).await.expect("resolve v1");

    assert_eq!(hub.cdn_gets().len(), 1, "the blob was downloaded again: {:?}", hub.seen());
    assert!(hub.seen().iter().any(|s| s.method == Method::HEAD && s.path.contains("/resolve/v1/")));
    assert!(progress.starts.is_empty());
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
}

#[tokio::test]
async fn plain_file_is_fetched_from_the_hub_itself() {
    let hub = FakeHub::start().await;
    let bytes = b"{\"architectures\": [\"Qwen2\"]}".to_vec();
    let git_etag = "a".repeat(40);
    hub.add(REPO, "main", "sub/config.json", Entry::Plain { content: bytes.clone(), etag: git_etag.clone() });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());

    let path = resolve(&hub_source(REPO, "sub/config.json", "main"), &config, &mut NoProgress).await.expect("resolve");

    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    assert!(blobs_dir(&config, REPO).join(&git_etag).is_file());
    let methods: Vec<Method> = hub.seen().into_iter().map(|s| s.method).collect();
    assert_eq!(methods, vec![Method::HEAD, Method::GET]);
}

#[tokio::test]
async fn relative_redirect_of_a_renamed_repo_is_followed() {
    let hub = FakeHub::start().await;
    let bytes = content(1_000);
    hub.add("acme/old-name", "main", FILE, Entry::Moved { location: format!("/{REPO}/resolve/main/{FILE}") });
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());

    let path = resolve(&hub_source("acme/old-name", FILE, "main"), &config, &mut NoProgress).await.expect("resolve");

    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    assert!(path.starts_with(config.cache_dir.join("models--acme--old-name")));
}

#[tokio::test]
async fn token_goes_to_the_hub_but_not_to_the_cdn() {
    let hub = FakeHub::start().await;
    hub.add(REPO, "main", FILE, Entry::lfs(&content(1_000)));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&hub.endpoint, dir.path());
    config.token = Some("hf_secret".to_owned());

    resolve(&hub_source(REPO, FILE, "main"), &config, &mut NoProgress).await.expect("resolve");

    let seen = hub.seen();
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer hf_secret"));
    assert_eq!(hub.cdn_gets()[0].authorization, None);
}

#[tokio::test]
async fn offline_with_a_cached_copy_returns_it_without_network() {
    let hub = FakeHub::start().await;
    let bytes = content(2_000);
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    let dir = tempfile::tempdir().expect("tempdir");
    let online = config(&hub.endpoint, dir.path());
    let source = hub_source(REPO, FILE, "main");
    let cached = resolve(&source, &online, &mut NoProgress).await.expect("download");
    let before = hub.requests();

    let offline = chorus_hub::HubConfig { offline: true, ..online.clone() };
    let got = resolve(&source, &offline, &mut NoProgress).await.expect("offline resolve");

    assert_eq!(got, cached);
    assert_eq!(hub.requests(), before);
    assert_eq!(std::fs::read(&got).expect("read"), bytes);

    // The same revision pinned by its commit hash is found too.
    let by_commit = hub_source(REPO, FILE, COMMIT);
    assert_eq!(resolve(&by_commit, &offline, &mut NoProgress).await.ok(), Some(cached));
}

#[tokio::test]
async fn offline_without_a_cached_copy_fails_with_a_hint() {
    let hub = FakeHub::start().await;
    hub.add(REPO, "main", FILE, Entry::lfs(&content(100)));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = chorus_hub::HubConfig { offline: true, ..config(&hub.endpoint, dir.path()) };

    let err = resolve(&hub_source(REPO, FILE, "main"), &config, &mut NoProgress).await.err();

    assert!(matches!(err, Some(HubError::OfflineNotCached { .. })), "{err:?}");
    assert!(err.map(|e| e.to_string()).unwrap_or_default().contains("--model"));
    assert_eq!(hub.requests(), 0);
}

#[tokio::test]
async fn a_cut_connection_leaves_a_partial_file_that_the_next_resolve_resumes() {
    let hub = FakeHub::start().await;
    let bytes = content(300_000);
    let etag = sha256_hex(&bytes);
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    let cut = 120_000;
    hub.fail_once(&etag, Fault::CutAfter(cut));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    let source = hub_source(REPO, FILE, "main");
    let incomplete = blobs_dir(&config, REPO).join(format!("{etag}.incomplete"));

    let mut first = Recorder::default();
    let err = resolve(&source, &config, &mut first).await.err();

    match &err {
        Some(HubError::Interrupted { received, total, .. }) => {
            assert_eq!(*received, cut as u64);
            assert_eq!(*total, Some(bytes.len() as u64));
        }
        other => panic!("expected an interrupted download, got {other:?}"),
    }
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("broke off after 120000 of 300000 bytes"), "{message}");
    assert!(message.contains("run it again to resume"), "{message}");
    assert_eq!(std::fs::read(&incomplete).expect("partial file kept"), &bytes[..cut]);
    assert_eq!(first.finishes, 1);
    let partial = chorus_hub::list_partial(&config.cache_dir).expect("list partial");
    assert_eq!(partial.iter().map(|p| (p.blob.as_str(), p.bytes)).collect::<Vec<_>>(), [(etag.as_str(), cut as u64)]);
    assert_eq!(chorus_hub::list_cached(&config.cache_dir).expect("list"), []);

    let mut second = Recorder::default();
    let path = resolve(&source, &config, &mut second).await.expect("second resolve");

    let gets = hub.cdn_gets();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].range, None);
    assert_eq!(gets[1].range.as_deref(), Some("bytes=120000-"));
    assert_eq!(second.starts, vec![(FILE.to_owned(), Some(bytes.len() as u64), cut as u64)]);
    assert_eq!(second.advanced, (bytes.len() - cut) as u64);
    assert_eq!(sha256_hex(&std::fs::read(&path).expect("read")), etag);
    assert!(!incomplete.exists());
}

#[tokio::test]
async fn dropping_resolve_mid_download_leaves_a_resumable_partial_file() {
    let hub = FakeHub::start().await;
    let bytes = content(400_000);
    let etag = sha256_hex(&bytes);
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    let stall = 150_000;
    hub.fail_once(&etag, Fault::StallAfter(stall));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    let source = hub_source(REPO, FILE, "main");
    let incomplete = blobs_dir(&config, REPO).join(format!("{etag}.incomplete"));

    let (sender, mut events) = mpsc::unbounded_channel();
    let mut progress = ChannelProgress::with_interval(sender, Duration::ZERO);
    {
        let download = resolve(&source, &config, &mut progress);
        let stalled = async {
            while let Some(event) = events.recv().await {
                if event.completed >= stall as u64 {
                    return;
                }
            }
        };
        tokio::select! {
            result = download => panic!("the stalled download ended: {result:?}"),
            () = stalled => {}
        }
        // The resolve future is dropped here, mid-transfer.
    }
    // Every byte handed to the file reaches it, even after the drop.
    for _ in 0..1_000 {
        if std::fs::metadata(&incomplete).is_ok_and(|m| m.len() == stall as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(std::fs::read(&incomplete).expect("partial file kept"), &bytes[..stall]);

    let path = resolve(&source, &config, &mut NoProgress).await.expect("resumed resolve");

    let gets = hub.cdn_gets();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[1].range.as_deref(), Some(format!("bytes={stall}-").as_str()));
    assert_eq!(sha256_hex(&std::fs::read(&path).expect("read")), etag);
}

#[tokio::test]
async fn pull_reports_downloading_verifying_and_done() {
    let hub = FakeHub::start().await;
    let bytes = content(1_000_000);
    let etag = sha256_hex(&bytes);
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    let source = hub_source(REPO, FILE, "main");
    let size = bytes.len() as u64;

    let (sender, mut receiver) = mpsc::unbounded_channel();
    let path = pull(&source, &config, sender).await.expect("pull");
    let events: Vec<PullProgress> = std::iter::from_fn(|| receiver.try_recv().ok()).collect();

    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    let digest = Some(format!("sha256:{etag}"));
    let at = |status, completed| PullProgress {
        status,
        file: FILE.to_owned(),
        digest: digest.clone(),
        total: Some(size),
        completed,
    };
    assert_eq!(events.first(), Some(&at(PullStatus::Downloading, 0)), "{events:?}");
    assert_eq!(
        events[events.len() - 3..],
        [at(PullStatus::Downloading, size), at(PullStatus::Verifying, size), at(PullStatus::Done, size)]
    );
    assert!(events.windows(2).all(|w| w[0].completed <= w[1].completed), "{events:?}");
    assert!(events.iter().rev().skip(2).all(|e| e.status == PullStatus::Downloading));

    // A cached file: only `done`.
    let (sender, mut receiver) = mpsc::unbounded_channel();
    pull(&source, &config, sender).await.expect("second pull");
    let events: Vec<PullProgress> = std::iter::from_fn(|| receiver.try_recv().ok()).collect();
    assert_eq!(
        events,
        [PullProgress {
            status: PullStatus::Done,
            file: FILE.to_owned(),
            digest: None,
            total: Some(size),
            completed: size
        }]
    );
}

#[tokio::test]
async fn pull_sends_nothing_more_after_an_error() {
    let hub = FakeHub::start().await;
    let bytes = content(100_000);
    let etag = sha256_hex(&bytes);
    hub.add(REPO, "main", FILE, Entry::lfs(&bytes));
    hub.fail_once(&etag, Fault::CutAfter(40_000));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());

    let (sender, mut receiver) = mpsc::unbounded_channel();
    let err = pull(&hub_source(REPO, FILE, "main"), &config, sender).await.err();
    let events: Vec<PullProgress> = std::iter::from_fn(|| receiver.try_recv().ok()).collect();

    assert!(matches!(err, Some(HubError::Interrupted { received: 40_000, .. })), "{err:?}");
    let last = events.last().expect("some progress");
    assert_eq!((last.status, last.completed), (PullStatus::Downloading, 40_000), "{events:?}");
    assert!(events.iter().all(|e| e.status == PullStatus::Downloading), "{events:?}");
}
