//! Embeddings.

use chorus_engine::{Backend, BackendError, EmbedRequest, EmbeddingInput};
use serde_json::json;

use crate::backend;
use crate::mock::{EMBEDDINGS, Mock, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_come_back_in_order_normalised() {
    let mock = Mock::start().await;
    let backend = backend(&[&mock.url]);
    let request = EmbedRequest {
        inputs: vec![
            EmbeddingInput::Text("abc".into()),
            EmbeddingInput::Tokens(vec![5, 6, 7, 8]),
            EmbeddingInput::Text("hello world!".into()),
        ],
        truncate: true,
    };
    let answer = backend.embed(request).unwrap().await.unwrap().unwrap();
    let expect = |n: f32| {
        let norm = (n * n + 1.0).sqrt();
        vec![n / norm, 1.0 / norm]
    };
    assert_eq!(answer.vectors.len(), 3);
    for (got, n) in answer.vectors.iter().zip([3.0, 4.0, 12.0]) {
        let want = expect(n);
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} != {want:?}");
    }
    assert_eq!(answer.prompt_tokens, 3 + 4 + 12);
    // OpenAI's `input` holds one kind: the texts and the token arrays go separately.
    let sent = mock.state.received(EMBEDDINGS);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].body["input"], json!(["abc", "hello world!"]));
    assert_eq!(sent[1].body["input"], json!([[5, 6, 7, 8]]));
    assert_eq!(sent[0].body["encoding_format"], "float");
    assert_eq!(sent[0].body["model"], "up-model");
    assert_eq!(sent[0].body["truncate"], true);
    assert_eq!(backend.stats().slots_busy, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embeddings_error_is_the_upstreams() {
    let mock = Mock::start().await;
    let body = json!({"error": {"message": "input is too long", "type": "invalid_request_error", "param": "input", "code": null}});
    mock.state.reply(EMBEDDINGS, Reply::Status(400, body.to_string()));
    let backend = backend(&[&mock.url]);
    let request = EmbedRequest { inputs: vec![EmbeddingInput::Text("x".into())], truncate: false };
    let error = backend.embed(request).unwrap().await.unwrap().unwrap_err();
    assert_eq!(
        error,
        BackendError::Upstream { status: 400, message: "input is too long".into(), param: Some("input".into()) }
    );
    assert!(mock.state.received(EMBEDDINGS)[0].body.get("truncate").is_none());
}
