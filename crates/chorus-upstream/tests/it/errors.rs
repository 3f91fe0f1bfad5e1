//! Failures: the upstream's error bodies and statuses, unreachable upstreams, errors and
//! breaks inside a stream.

use chorus_engine::{Backend, BackendError, GenerationEvent};
use futures::StreamExt;
use serde_json::json;

use crate::mock::{CHAT, Mock, Reply, chunk, until};
use crate::{backend, backend_with, chat};

fn upstream(error: BackendError) -> (u16, String, Option<String>) {
    match error {
        BackendError::Upstream { status, message, param } => (status, message, param),
        other => panic!("not an upstream error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_error_object_keeps_status_message_and_param() {
    let mock = Mock::start().await;
    // Health answers wait, so only the failed request could change the health.
    mock.state.open_health(false);
    let body = json!({"error": {"message": "temperature is too high", "type": "invalid_request_error", "param": "temperature", "code": null}});
    mock.state.reply(CHAT, Reply::Status(400, body.to_string()));
    let backend = backend(&[&mock.url]);
    let error = backend.generate(chat(&backend, "hi")).unwrap().collect().await.unwrap_err();
    assert!(error.is_client_error());
    let (status, message, param) = upstream(error);
    assert_eq!(status, 400);
    assert_eq!(message, "temperature is too high");
    assert_eq!(param.as_deref(), Some("temperature"));
    assert!(backend.upstreams()[0].healthy, "a client error says nothing of the upstream's health");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_maps_to_its_status_and_marks_the_url_unhealthy_until_a_check_passes() {
    let mock = Mock::start().await;
    // Health answers wait, so only the failed request decides the health.
    mock.state.open_health(false);
    mock.state.reply(CHAT, Reply::Status(500, "the model crashed".into()));
    let backend = backend(&[&mock.url]);
    let error = backend.generate(chat(&backend, "hi")).unwrap().collect().await.unwrap_err();
    assert!(!error.is_client_error());
    let (status, message, param) = upstream(error);
    assert_eq!(status, 500);
    assert!(message.contains("the model crashed") && message.contains("500"), "{message}");
    assert_eq!(param, None);
    assert!(!backend.upstreams()[0].healthy);
    mock.state.open_health(true);
    until("the next health check passes", || backend.upstreams()[0].healthy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_status_0_naming_its_url() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let backend = backend(&[&url]);
    let error = backend.generate(chat(&backend, "hi")).unwrap().collect().await.unwrap_err();
    let (status, message, _) = upstream(error);
    assert_eq!(status, 0);
    assert!(message.contains(&url), "{message}");
    assert!(!backend.upstreams()[0].healthy);
    until("the request is counted out", || backend.stats().slots_busy == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_inside_the_stream_ends_it_with_the_error() {
    let mock = Mock::start().await;
    mock.state.reply(
        CHAT,
        Reply::Events(vec![
            chunk(json!({"content": "Hel"}), None),
            json!({"error": {"message": "the context is full", "type": "invalid_request_error", "code": 400}})
                .to_string(),
        ]),
    );
    let backend = backend(&[&mock.url]);
    let mut stream = backend.generate(chat(&backend, "hi")).unwrap();
    assert!(matches!(stream.next().await, Some(GenerationEvent::Text(t)) if t == "Hel"));
    match stream.next().await {
        Some(GenerationEvent::Error(e)) => assert_eq!(upstream(e), (400, "the context is full".into(), None)),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(stream.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_ends_without_a_finish_is_an_error() {
    let mock = Mock::start().await;
    mock.state.reply(CHAT, Reply::Events(vec![chunk(json!({"content": "Half an ans"}), None)]));
    let backend = backend(&[&mock.url]);
    let mut stream = backend.generate(chat(&backend, "hi")).unwrap();
    assert!(matches!(stream.next().await, Some(GenerationEvent::Text(_))));
    match stream.next().await {
        Some(GenerationEvent::Error(e)) => {
            let (status, message, _) = upstream(e);
            assert_eq!(status, 0);
            assert!(message.contains("ended before the answer finished"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_health_route_falls_back_to_the_model_list() {
    let mock = Mock::start().await;
    mock.state.set_health(404);
    let backend = backend_with(&[&mock.url], |_| {});
    until("the model list is asked", || mock.state.models_hits() >= 2).await;
    assert!(backend.upstreams()[0].healthy);
    // /health is not asked again once it was missing.
    let hits = mock.state.health_hits();
    until("more checks", || mock.state.models_hits() >= 4).await;
    assert_eq!(mock.state.health_hits(), hits);
}
