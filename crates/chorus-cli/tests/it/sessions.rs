//! Sessions through the native API on the real server: lifecycle over HTTP,
//! streamed prompts, `Last-Event-ID` resume, the prompt queue's order and
//! positions, cancellation, and errors in OpenAI's shape.

use std::time::Duration;

use chorus_client::{Client, ClientError, EventItem, SessionEvent};
use chorus_proto::native::{CreateSessionRequest, Event, Priority, PromptRequest, SessionStatus};
use futures::StreamExt;

use crate::{client, runtime, server};

pub(crate) fn prompt(content: &str, max_tokens: u32) -> PromptRequest {
    PromptRequest {
        content: content.into(),
        stream: false,
        is_async: false,
        priority: Priority::Normal,
        max_tokens: Some(max_tokens),
        ignore_eos: true,
        tool_choice: None,
    }
}

/// Read events until `until` holds for one (included), at most 180 s (a bound for a loaded
/// 2-core machine running other tests' servers, not a speed claim).
async fn read_until(
    events: &mut (impl futures::Stream<Item = Result<EventItem, ClientError>> + Unpin),
    mut until: impl FnMut(&SessionEvent) -> bool,
) -> Vec<SessionEvent> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let item = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("no matching event within 180 s; saw {seen:#?}"))
            .expect("the event stream ended")
            .expect("an event");
        if let EventItem::Event(event) = item {
            let done = until(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

fn api_status(e: ClientError) -> (u16, Option<String>) {
    match e {
        ClientError::Api { status, code, .. } => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[test]
fn session_lifecycle_over_http() {
    let srv = server(&[]);
    let c = client(&srv.url, None);
    runtime().block_on(async {
        let created = c
            .create_session(&CreateSessionRequest { title: Some("first".into()), ..Default::default() })
            .await
            .unwrap();
        assert_eq!((created.title.as_str(), created.status, created.message_count), ("first", SessionStatus::Idle, 0));
        assert_eq!(created.agent, "default");
        assert_eq!(c.session(&created.id).await.unwrap().id, created.id);

        let answer = c.prompt(&created.id, &prompt("Hello", 5)).await.unwrap();
        assert_eq!((answer.role.as_str(), answer.seq), ("assistant", 2));
        assert_eq!(answer.finish_reason.as_deref(), Some("length"));
        assert_eq!(answer.usage.unwrap().completion_tokens, 5);
        assert!(!answer.content.is_empty());

        let messages = c.messages(&created.id).await.unwrap();
        assert_eq!(messages.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(), ["user", "assistant"]);
        assert_eq!(messages[0].content, "Hello");
        assert_eq!(messages[1], answer);

        // A second prompt sees the history: its prompt is longer than the first's.
        let second = c.prompt(&created.id, &prompt("Again", 3)).await.unwrap();
        assert!(second.usage.unwrap().prompt_tokens > answer.usage.unwrap().prompt_tokens);
        let session = c.session(&created.id).await.unwrap();
        assert_eq!((session.message_count, session.status), (4, SessionStatus::Idle));
        assert_eq!(session.token_usage.completion_tokens, 8);

        let listed = c.sessions().await.unwrap();
        assert_eq!(listed.len(), 1);

        let cleared = c.clear(&created.id).await.unwrap();
        assert_eq!(cleared.message_count, 0);
        assert!(c.messages(&created.id).await.unwrap().is_empty());

        assert!(c.delete_session(&created.id).await.unwrap().deleted);
        assert_eq!(api_status(c.session(&created.id).await.unwrap_err()), (404, Some("session_not_found".into())));
        assert_eq!(api_status(c.delete_session(&created.id).await.unwrap_err()).0, 404);
        assert!(c.sessions().await.unwrap().is_empty());
    });
}

#[test]
fn bad_session_requests_are_4xx() {
    let srv = server(&[]);
    let c = client(&srv.url, None);
    runtime().block_on(async {
        let unknown_agent = CreateSessionRequest { agent: Some("nope".into()), ..Default::default() };
        assert_eq!(
            api_status(c.create_session(&unknown_agent).await.unwrap_err()),
            (400, Some("agent_not_found".into()))
        );
        let unknown_model = CreateSessionRequest { model: Some("nope".into()), ..Default::default() };
        assert_eq!(
            api_status(c.create_session(&unknown_model).await.unwrap_err()),
            (404, Some("model_not_found".into()))
        );

        let s = c.create_session(&CreateSessionRequest::default()).await.unwrap();
        assert_eq!(api_status(c.prompt(&s.id, &prompt("   ", 5)).await.unwrap_err()).0, 400);
        assert_eq!(api_status(c.prompt("ses_missing", &prompt("hi", 5)).await.unwrap_err()).0, 404);

        // Raw bodies: unknown fields, wrong types, both stream and async.
        let http = reqwest::Client::new();
        for (body, param) in [
            (r#"{"content": 5}"#, Some("content")),
            (r#"{"content": "hi", "priority": "urgent"}"#, Some("priority")),
            (r#"{"content": "hi", "stream": true, "async": true}"#, Some("async")),
            (r#"{"content": "hi", "max_tokens": 0}"#, Some("max_tokens")),
            (r#"{"contents": "hi"}"#, None),
        ] {
            let r = http
                .post(format!("{}/api/v1/sessions/{}/prompt", srv.url, s.id))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{body}");
            let err: serde_json::Value = r.json().await.unwrap();
            assert_eq!(err["error"]["type"], "invalid_request_error", "{body}: {err}");
            if let Some(param) = param {
                assert_eq!(err["error"]["param"], param, "{body}: {err}");
            }
        }
        let r = http
            .get(format!("{}/api/v1/sessions/{}/events", srv.url, s.id))
            .header("Last-Event-ID", "x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    });
}

#[test]
fn streamed_prompt_and_last_event_id_resume() {
    let srv = server(&[]);
    let c = client(&srv.url, None);
    runtime().block_on(async {
        let s = c.create_session(&CreateSessionRequest::default()).await.unwrap();
        let mut watcher = c.events(Some(&s.id), None).await.unwrap();

        let streamed: Vec<SessionEvent> =
            c.prompt_stream(&s.id, &prompt("Tell me", 8)).await.unwrap().map(|e| e.unwrap()).collect().await;
        let kinds: Vec<&str> = streamed.iter().map(|e| e.event.kind()).collect();
        assert_eq!(kinds.first(), Some(&"message.start"), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&"message.complete"), "{kinds:?}");
        assert_eq!(kinds.get(1), Some(&"agent.thinking"), "{kinds:?}");
        assert!(kinds[2..kinds.len() - 1].iter().all(|k| *k == "message.chunk"), "{kinds:?}");
        let text: String = streamed
            .iter()
            .filter_map(|e| match &e.event {
                Event::MessageChunk { content, .. } => Some(content.as_str()),
                _ => None,
            })
            .collect();
        let Event::MessageComplete { message, .. } = &streamed.last().unwrap().event else { unreachable!() };
        assert_eq!(message.content, text, "the chunks add up to the stored message");
        assert!(streamed.windows(2).all(|w| w[0].id < w[1].id));

        // The session's watcher saw the same prompt events, and the status changes around them.
        let watched = read_until(&mut watcher, |e| matches!(e.event, Event::AgentIdle { .. })).await;
        let watched_prompt: Vec<&SessionEvent> = watched.iter().filter(|e| e.event.prompt_id().is_some()).collect();
        assert_eq!(watched_prompt, streamed.iter().collect::<Vec<_>>());
        let statuses: Vec<SessionStatus> = watched
            .iter()
            .filter_map(|e| match e.event {
                Event::SessionStatusChanged { status, .. } => Some(status),
                _ => None,
            })
            .collect();
        assert_eq!(statuses, [SessionStatus::Busy, SessionStatus::Idle]);

        // Reconnect after the first event: exactly the rest, in order.
        let after = watched[0].id;
        let mut resumed = c.events(Some(&s.id), Some(after)).await.unwrap();
        let last_id = watched.last().unwrap().id;
        let replay = read_until(&mut resumed, |e| e.id == last_id).await;
        assert_eq!(replay, watched[1..].to_vec());

        // The all-sessions stream resumes too: the server's own events (the preloaded model's
        // load) come first, then the session's creation.
        let mut all = c.events(None, Some(0)).await.unwrap();
        let everything = read_until(&mut all, |e| e.id == last_id).await;
        let kinds: Vec<&str> = everything.iter().take(3).map(|e| e.event.kind()).collect();
        assert_eq!(kinds, ["model.loading", "model.loaded", "session.created"], "{everything:?}");
        assert!(matches!(&everything[1].event, Event::ModelLoaded { model, error: None, .. } if model == "tiny"));
        assert!(matches!(&everything[2].event, Event::SessionCreated { session_id, .. } if *session_id == s.id));
        assert!(everything.ends_with(&watched));
    });
}

#[test]
fn queued_prompts_run_in_order_and_cancel_stops_generation() {
    let srv = server(&[]);
    let c = client(&srv.url, None);
    runtime().block_on(async {
        let s = c.create_session(&CreateSessionRequest::default()).await.unwrap();
        let mut events = c.events(Some(&s.id), None).await.unwrap();

        // A long first prompt keeps the session busy while the others queue.
        let first = c.prompt_async(&s.id, &prompt("one", 100_000)).await.unwrap();
        assert_eq!((first.status.as_str(), first.queue_position), ("running", 0));
        let second = c.prompt_async(&s.id, &prompt("two", 2)).await.unwrap();
        let third = c.prompt_async(&s.id, &prompt("three", 2)).await.unwrap();
        let urgent =
            c.prompt_async(&s.id, &PromptRequest { priority: Priority::High, ..prompt("urgent", 2) }).await.unwrap();
        assert_eq!(
            [second.queue_position, third.queue_position, urgent.queue_position],
            [1, 2, 1],
            "a high-priority prompt goes before the normal ones waiting"
        );
        assert_eq!(c.session(&s.id).await.unwrap().queue_length, 3);
        assert_eq!(api_status(c.clear(&s.id).await.unwrap_err()), (409, Some("session_busy".into())));

        // Let the first prompt generate a little, then cancel: it stops, and
        // the queued prompts are dropped.
        read_until(&mut events, |e| matches!(e.event, Event::MessageChunk { .. })).await;
        let result = c.cancel(&s.id).await.unwrap();
        assert!(result.cancelled);
        assert_eq!(result.dropped, 3);
        let seen = read_until(&mut events, |e| matches!(e.event, Event::AgentIdle { .. })).await;
        let errors: Vec<(&str, Option<&str>)> = seen
            .iter()
            .filter_map(|e| match &e.event {
                Event::MessageError { prompt_id, error, .. } => Some((prompt_id.as_str(), error.code.as_deref())),
                _ => None,
            })
            .collect();
        let mut expected = vec![
            (second.prompt_id.as_str(), Some("cancelled")),
            (third.prompt_id.as_str(), Some("cancelled")),
            (urgent.prompt_id.as_str(), Some("cancelled")),
            (first.prompt_id.as_str(), Some("cancelled")),
        ];
        // The queued ones are dropped at once; the running one ends at its next step.
        expected.sort();
        let mut got = errors.clone();
        got.sort();
        assert_eq!(got, expected);
        let session = c.session(&s.id).await.unwrap();
        assert_eq!(session.status, SessionStatus::Cancelled);
        // What the cancelled prompt generated is kept.
        let messages = c.messages(&s.id).await.unwrap();
        assert_eq!(messages.last().unwrap().finish_reason.as_deref(), Some("cancelled"));
        // The cancelled sequence frees its slot (at the model's next step).
        let mut busy = u32::MAX;
        for _ in 0..100 {
            busy = c.health().await.unwrap().slots.busy;
            if busy == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(busy, 0, "the cancelled sequence still holds its slot");

        // Now the order: a long one, then normal, normal, high.
        let long = c.prompt_async(&s.id, &prompt("long", 300)).await.unwrap();
        let a = c.prompt_async(&s.id, &prompt("a", 2)).await.unwrap();
        let b = c.prompt_async(&s.id, &prompt("b", 2)).await.unwrap();
        let h = c.prompt_async(&s.id, &PromptRequest { priority: Priority::High, ..prompt("h", 2) }).await.unwrap();
        let seen = read_until(
            &mut events,
            |e| matches!(&e.event, Event::MessageComplete { prompt_id, .. } if *prompt_id == b.prompt_id),
        )
        .await;
        let order: Vec<&str> = seen
            .iter()
            .filter_map(|e| match &e.event {
                Event::MessageComplete { prompt_id, .. } => Some(prompt_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(order, [long.prompt_id.as_str(), h.prompt_id.as_str(), a.prompt_id.as_str(), b.prompt_id.as_str()]);
        let contents: Vec<String> =
            c.messages(&s.id).await.unwrap().into_iter().filter(|m| m.role == "user").map(|m| m.content).collect();
        assert_eq!(contents[contents.len() - 4..], ["long", "h", "a", "b"]);
    });
}

#[test]
fn two_clients_see_the_same_events() {
    let srv = server(&[]);
    let c1 = client(&srv.url, None);
    let c2: Client = client(&srv.url, None);
    runtime().block_on(async {
        let s = c1.create_session(&CreateSessionRequest::default()).await.unwrap();
        let mut w1 = c1.events(Some(&s.id), None).await.unwrap();
        let mut w2 = c2.events(Some(&s.id), None).await.unwrap();
        c1.prompt_async(&s.id, &prompt("x", 6)).await.unwrap();
        c2.prompt_async(&s.id, &prompt("y", 6)).await.unwrap();
        let second_complete = || {
            let mut n = 0;
            move |e: &SessionEvent| {
                n += usize::from(matches!(e.event, Event::MessageComplete { .. }));
                n == 2
            }
        };
        let seen1 = read_until(&mut w1, second_complete()).await;
        let seen2 = read_until(&mut w2, second_complete()).await;
        assert!(seen1.len() >= 6, "{seen1:#?}");
        assert_eq!(seen1, seen2);
    });
}

mod websocket {
    use chorus_proto::native::CreateSessionRequest;
    use chorus_proto::ws::{Envelope, EnvelopeType};
    use futures::SinkExt;
    use serde_json::json;
    use tokio_tungstenite::tungstenite::Message;

    use crate::{client, runtime, server};

    use crate::ws_seed::Socket;

    async fn connect(url: &str, session: &str) -> Socket {
        crate::ws_seed::connect(url, Some(session)).await
    }

    async fn send(socket: &mut Socket, id: &str, payload: serde_json::Value) {
        let envelope = json!({"type": "request", "id": id, "timestamp": 0, "payload": payload});
        socket.send(Message::Text(envelope.to_string().into())).await.expect("send");
    }

    /// The next envelope (its timestamp checked by `ws_seed::recv`), typed.
    async fn recv(socket: &mut Socket) -> Envelope {
        serde_json::from_value(crate::ws_seed::recv(socket).await).expect("an envelope")
    }

    /// Envelopes until the one `until` accepts (included).
    async fn recv_until(socket: &mut Socket, until: impl Fn(&Envelope) -> bool) -> Vec<Envelope> {
        let mut seen = Vec::new();
        loop {
            let envelope = recv(socket).await;
            let done = until(&envelope);
            seen.push(envelope);
            if done {
                return seen;
            }
        }
    }

    fn is_event(e: &Envelope, kind: &str) -> bool {
        e.kind == EnvelopeType::Event && e.payload["type"] == kind
    }

    #[test]
    fn two_websocket_clients_see_identical_events() {
        let srv = server(&[]);
        let c = client(&srv.url, None);
        runtime().block_on(async {
            let s = c.create_session(&CreateSessionRequest::default()).await.unwrap();
            let mut a = connect(&srv.url, &s.id).await;
            let mut b = connect(&srv.url, &s.id).await;

            send(&mut a, "req-1", json!({"action": "prompt", "content": "Hello", "max_tokens": 6, "ignore_eos": true}))
                .await;
            let seen_a = recv_until(&mut a, |e| is_event(e, "agent.idle")).await;

            // A's own prompt: queued, text chunks, complete, all under its request id.
            let responses: Vec<&Envelope> = seen_a.iter().filter(|e| e.kind == EnvelopeType::Response).collect();
            assert!(responses.iter().all(|e| e.id.as_deref() == Some("req-1")));
            assert_eq!(responses.first().unwrap().payload["kind"], "queued");
            let complete = responses.iter().find(|e| e.payload["kind"] == "complete").expect("a complete response");
            assert_eq!(complete.payload["done"], true);
            assert_eq!(complete.payload["usage"]["completion_tokens"], 6);
            let text: String = responses
                .iter()
                .filter(|e| e.payload["kind"] == "text")
                .map(|e| e.payload["content"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(complete.payload["message"]["content"], text.as_str());

            // B sent nothing: it sees exactly A's events, in the same order, with the same ids.
            let events_a: Vec<&Envelope> = seen_a.iter().filter(|e| e.kind == EnvelopeType::Event).collect();
            let seen_b = recv_until(&mut b, |e| is_event(e, "agent.idle")).await;
            assert!(seen_b.iter().all(|e| e.kind == EnvelopeType::Event), "{seen_b:#?}");
            let events_b: Vec<(&Option<String>, &serde_json::Value)> =
                seen_b.iter().map(|e| (&e.id, &e.payload)).collect();
            assert_eq!(events_b, events_a.iter().map(|e| (&e.id, &e.payload)).collect::<Vec<_>>());
            assert!(events_a.iter().any(|e| e.payload["type"] == "message.chunk"));

            // Bad requests are error envelopes, and the socket stays usable.
            send(&mut a, "req-2", json!({"action": "fly"})).await;
            let e = recv(&mut a).await;
            assert_eq!((e.kind, e.id.as_deref()), (EnvelopeType::Error, Some("req-2")));
            assert_eq!(e.payload["type"], "invalid_request_error");
            a.send(Message::Text("not json".into())).await.unwrap();
            let e = recv(&mut a).await;
            assert_eq!((e.kind, e.id.as_deref()), (EnvelopeType::Error, None));
            send(&mut a, "req-3", json!({"action": "cancel"})).await;
            let e = recv(&mut a).await;
            assert_eq!((e.kind, e.payload["kind"].as_str()), (EnvelopeType::Response, Some("cancelled")));
            assert_eq!(e.payload["cancelled"], false);
        });
    }

    #[test]
    fn websocket_to_an_unknown_session_is_refused() {
        let srv = server(&[]);
        runtime().block_on(async {
            let ws_url = format!("{}/ws?session_id=ses_missing", srv.url.replacen("http://", "ws://", 1));
            let err = tokio_tungstenite::connect_async(ws_url).await.expect_err("no such session");
            match err {
                tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 404),
                other => panic!("expected an HTTP 404, got {other:?}"),
            }
        });
    }
}

#[test]
fn the_simple_agent_api_uses_the_default_session() {
    let srv = server(&[]);
    let c = client(&srv.url, None);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let post = |path: &str, body: serde_json::Value| http.post(format!("{}{path}", srv.url)).json(&body).send();

        let r = post("/request", serde_json::json!({"prompt": "Hello", "max_tokens": 3})).await.unwrap();
        assert_eq!(r.status(), 200);
        let answer: serde_json::Value = r.json().await.unwrap();
        assert_eq!((answer["role"].as_str(), answer["session_id"].as_str()), (Some("assistant"), Some("ses_default")));

        let r = post("/request", serde_json::json!({"prompt": "Again", "max_tokens": 3, "async": true})).await.unwrap();
        assert_eq!(r.status(), 202);
        let accepted: serde_json::Value = r.json().await.unwrap();
        assert_eq!(accepted["session_id"], "ses_default");
        let mut events = c.events(Some("ses_default"), Some(0)).await.unwrap();
        let prompt_id = accepted["prompt_id"].as_str().unwrap().to_owned();
        read_until(&mut events, |e| matches!(&e.event, Event::MessageComplete { prompt_id: p, .. } if *p == prompt_id))
            .await;
        // Wait for the session to settle, then clear it.
        let mut cleared = None;
        for _ in 0..100 {
            let r = post("/clear", serde_json::json!({})).await.unwrap();
            if r.status() == 200 {
                cleared = Some(r.json::<serde_json::Value>().await.unwrap());
                break;
            }
            assert_eq!(r.status(), 409, "busy is the only reason to refuse");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(cleared.expect("the default session cleared")["message_count"], 0);
        assert!(c.messages("ses_default").await.unwrap().is_empty());

        let r = post("/request", serde_json::json!({"question": "x"})).await.unwrap();
        assert_eq!(r.status(), 400);
    });
}

/// `kill -9` while a session streams, then restart on the same store: every message that was
/// acknowledged before the kill is there, and the interrupted session is not left `busy`.
#[test]
fn kill_9_while_streaming_keeps_every_acknowledged_message() {
    let db_dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db_dir.path().join("chorus.db").display());
    // One long sequence (a unified 64k-token cache) keeps the tiny model busy for seconds.
    let flags = ["--database-url", &url, "--kv-unified", "--ctx-size", "65536"];
    let mut srv = server(&flags);
    let c = client(&srv.url, None);
    let (id, acknowledged) = runtime().block_on(async {
        let s = c.create_session(&CreateSessionRequest::default()).await.unwrap();
        let mut acknowledged = Vec::new();
        for i in 0..3 {
            let answer = c.prompt(&s.id, &prompt(&format!("Question {i}"), 4)).await.unwrap();
            acknowledged.push(answer);
        }
        // A long answer, killed mid-stream once a chunk has arrived.
        let mut stream = c.prompt_stream(&s.id, &prompt("Tell me a long story", 60_000)).await.unwrap();
        loop {
            match stream.next().await.expect("the stream ended").expect("an event").event {
                Event::MessageChunk { .. } => break,
                _ => continue,
            }
        }
        (s.id, acknowledged)
    });
    srv.signal("KILL");
    assert!(srv.wait(Duration::from_secs(10)).is_some(), "the server did not die");

    let srv = server(&flags);
    let c = client(&srv.url, None);
    runtime().block_on(async {
        let messages = c.messages(&id).await.unwrap();
        for answer in &acknowledged {
            let stored = messages.iter().find(|m| m.id == answer.id).expect("an acknowledged answer is lost");
            assert_eq!(stored.content, answer.content);
        }
        // 3 questions and answers, and the interrupted prompt's question (stored before its
        // first chunk was sent).
        assert!(messages.len() >= 7, "{messages:#?}");
        assert_eq!(messages[6].content, "Tell me a long story");
        let session = c.session(&id).await.unwrap();
        assert_eq!(session.status, SessionStatus::Error, "an interrupted session is not left busy");
    });
}
