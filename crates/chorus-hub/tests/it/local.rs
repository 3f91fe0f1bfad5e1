//! Local model paths.

use chorus_hub::{HubError, ModelSource, NoProgress, resolve};

use crate::config;

#[tokio::test]
async fn existing_local_file_is_returned_as_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, b"GGUF").expect("write");
    let source: ModelSource = path.to_str().expect("utf-8 path").parse().expect("parse");
    let got = resolve(&source, &config("http://127.0.0.1:9", dir.path()), &mut NoProgress).await;
    assert_eq!(got.ok(), Some(path));
}

#[tokio::test]
async fn missing_local_file_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.gguf");
    let source = ModelSource::Local(path.clone());
    let err = resolve(&source, &config("http://127.0.0.1:9", dir.path()), &mut NoProgress).await.err();
    assert!(matches!(&err, Some(HubError::LocalMissing { path: p }) if *p == path), "{err:?}");
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[tokio::test]
async fn local_directory_is_not_a_model_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = ModelSource::Local(dir.path().to_path_buf());
    let err = resolve(&source, &config("http://127.0.0.1:9", dir.path()), &mut NoProgress).await.err();
    assert!(matches!(err, Some(HubError::LocalNotFile { .. })), "{err:?}");
}
