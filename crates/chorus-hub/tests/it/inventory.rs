//! The cache inventory: `list_cached`, `list_partial` and `remove_cached`
//! over caches the fake hub filled.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chorus_hub::{HubConfig, HubError, ModelSource, NoProgress, list_cached, list_partial, remove_cached, resolve};

use crate::fake_hub::{COMMIT, Entry, FakeHub, sha256_hex};
use crate::{blobs_dir, config, content, hub_source};

const REPO: &str = "acme/tiny-GGUF";
const FILE: &str = "tiny-q4_k_m.gguf";
const OTHER: &str = "sub/other.gguf";
/// An older commit that holds the same `FILE`.
const OLD: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn repo_dir(config: &HubConfig) -> PathBuf {
    config.cache_dir.join("models--acme--tiny-GGUF")
}

async fn fetch(config: &HubConfig, file: &str, revision: &str) -> PathBuf {
    resolve(&hub_source(REPO, file, revision), config, &mut NoProgress).await.expect("resolve")
}

fn sources(cache_dir: &Path) -> Vec<String> {
    list_cached(cache_dir).expect("list").into_iter().map(|m| m.source).collect()
}

#[tokio::test]
async fn lists_every_cached_gguf_with_the_source_that_names_it() {
    let hub = FakeHub::start().await;
    let (tiny, other) = (content(5_000), content(7_000));
    hub.add(REPO, "main", FILE, Entry::lfs(&tiny));
    hub.add(REPO, OLD, FILE, Entry::lfs(&tiny));
    hub.add(REPO, "main", OTHER, Entry::lfs(&other));
    hub.add(REPO, "main", "config.json", Entry::Plain { content: b"{}".to_vec(), etag: "c".repeat(40) });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    let before = SystemTime::now() - Duration::from_secs(60);
    let tiny_path = fetch(&config, FILE, "main").await;
    fetch(&config, FILE, OLD).await;
    fetch(&config, OTHER, "main").await;
    fetch(&config, "config.json", "main").await;

    let models = list_cached(&config.cache_dir).expect("list");

    let listed: Vec<&str> = models.iter().map(|m| m.source.as_str()).collect();
    assert_eq!(
        listed,
        [
            "hf:acme/tiny-GGUF/sub/other.gguf".to_owned(),
            "hf:acme/tiny-GGUF/tiny-q4_k_m.gguf".to_owned(),
            format!("hf:acme/tiny-GGUF/tiny-q4_k_m.gguf@{OLD}"),
        ]
    );
    let main = &models[1];
    assert_eq!(main.repo, REPO);
    assert_eq!(main.file, FILE);
    assert_eq!(main.revision, COMMIT);
    assert_eq!(main.refs, ["main"]);
    assert_eq!(main.path, tiny_path);
    assert_eq!(main.size, 5_000);
    #[cfg(unix)]
    assert_eq!(main.blob.as_deref(), Some(sha256_hex(&tiny).as_str()));
    assert!(main.modified >= before && main.modified <= SystemTime::now() + Duration::from_secs(60));
    let old = &models[2];
    assert_eq!((old.revision.as_str(), old.refs.len(), old.size), (OLD, 0, 5_000));
    assert_eq!(old.blob, main.blob, "both revisions share one blob");
    assert_eq!(models[0].file, OTHER);

    // Every listed source resolves offline to the listed path.
    let offline = HubConfig { offline: true, ..config.clone() };
    for model in &models {
        let source: ModelSource = model.source.parse().expect("source parses");
        let path = resolve(&source, &offline, &mut NoProgress).await.expect("offline resolve");
        assert_eq!(path, model.path);
    }
}

#[tokio::test]
async fn partial_downloads_are_listed_apart() {
    let hub = FakeHub::start().await;
    hub.add(REPO, "main", FILE, Entry::lfs(&content(1_000)));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    fetch(&config, FILE, "main").await;
    let blob = "ab".repeat(32);
    let path = blobs_dir(&config, REPO).join(format!("{blob}.incomplete"));
    std::fs::write(&path, [7u8; 321]).expect("write partial");

    let partial = list_partial(&config.cache_dir).expect("list partial");

    assert_eq!(partial.len(), 1, "{partial:?}");
    assert_eq!((partial[0].repo.as_str(), partial[0].blob.as_str()), (REPO, blob.as_str()));
    assert_eq!((partial[0].path.as_path(), partial[0].bytes), (path.as_path(), 321));
    assert_eq!(sources(&config.cache_dir), ["hf:acme/tiny-GGUF/tiny-q4_k_m.gguf"]);
}

// Elsewhere snapshot entries are copies or hard links, which name no blob.
#[cfg(unix)]
#[tokio::test]
async fn removing_a_revision_keeps_the_blob_another_links_then_the_last_frees_everything() {
    let hub = FakeHub::start().await;
    let tiny = content(5_000);
    hub.add(REPO, "main", FILE, Entry::lfs(&tiny));
    hub.add(REPO, OLD, FILE, Entry::lfs(&tiny));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    fetch(&config, FILE, "main").await;
    fetch(&config, FILE, OLD).await;
    let blob = blobs_dir(&config, REPO).join(sha256_hex(&tiny));

    let freed = remove_cached(&config.cache_dir, &hub_source(REPO, FILE, OLD)).expect("remove old");

    assert_eq!(freed, 0, "the main revision still links the blob");
    assert!(blob.is_file());
    assert!(!repo_dir(&config).join("snapshots").join(OLD).exists(), "its emptied snapshot folder goes");
    assert_eq!(sources(&config.cache_dir), ["hf:acme/tiny-GGUF/tiny-q4_k_m.gguf"]);

    let freed = remove_cached(&config.cache_dir, &hub_source(REPO, FILE, "main")).expect("remove main");

    assert_eq!(freed, 5_000);
    assert!(!blob.exists());
    assert!(!repo_dir(&config).exists(), "the emptied repository folder goes, refs and all");
    assert_eq!(sources(&config.cache_dir), Vec::<String>::new());

    let again = remove_cached(&config.cache_dir, &hub_source(REPO, FILE, "main")).err();
    assert!(matches!(&again, Some(HubError::NotCached { model, .. }) if model == "hf:acme/tiny-GGUF/tiny-q4_k_m.gguf"));
    let message = again.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("is not in the model cache") && message.contains("nothing was removed"), "{message}");
    assert!(config.cache_dir.is_dir(), "the cache folder itself stays");
}

#[tokio::test]
async fn removing_one_file_keeps_the_rest_of_its_snapshot_and_partial_downloads() {
    let hub = FakeHub::start().await;
    let (tiny, other) = (content(5_000), content(7_000));
    hub.add(REPO, "main", FILE, Entry::lfs(&tiny));
    hub.add(REPO, "main", OTHER, Entry::lfs(&other));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    fetch(&config, FILE, "main").await;
    fetch(&config, OTHER, "main").await;
    let partial = blobs_dir(&config, REPO).join(format!("{}.incomplete", "ab".repeat(32)));
    std::fs::write(&partial, [1u8; 10]).expect("write partial");

    let freed = remove_cached(&config.cache_dir, &hub_source(REPO, OTHER, "main")).expect("remove");

    assert_eq!(freed, 7_000);
    assert!(!repo_dir(&config).join("snapshots").join(COMMIT).join("sub").exists(), "its emptied folder goes");
    assert!(repo_dir(&config).join("refs/main").is_file(), "main still names a cached snapshot");
    assert!(partial.is_file());
    assert_eq!(sources(&config.cache_dir), ["hf:acme/tiny-GGUF/tiny-q4_k_m.gguf"]);
}

#[tokio::test]
async fn a_local_path_is_not_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("model.gguf");
    std::fs::write(&file, b"GGUF").expect("write");

    let err = remove_cached(dir.path(), &ModelSource::Local(file.clone())).err();

    assert!(matches!(err, Some(HubError::InvalidSource { .. })), "{err:?}");
    assert!(file.is_file());
}

#[tokio::test]
async fn a_blob_being_downloaded_is_not_removed() {
    let hub = FakeHub::start().await;
    let tiny = content(2_000);
    hub.add(REPO, "main", FILE, Entry::lfs(&tiny));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&hub.endpoint, dir.path());
    let path = fetch(&config, FILE, "main").await;
    // What a download of the blob holds while it runs.
    let lock_path = config.cache_dir.join(".locks/models--acme--tiny-GGUF").join(format!("{}.lock", sha256_hex(&tiny)));
    let lock =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).expect("open lock");
    fs4::FileExt::try_lock(&lock).expect("lock");

    let err = remove_cached(&config.cache_dir, &hub_source(REPO, FILE, "main")).err();

    assert!(matches!(err, Some(HubError::DownloadInProgress { .. })), "{err:?}");
    assert!(path.is_file());
    drop(lock);
    assert_eq!(remove_cached(&config.cache_dir, &hub_source(REPO, FILE, "main")).ok(), Some(2_000));
}
